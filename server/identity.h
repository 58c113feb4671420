/*
 * Identities: the organisations trading on CPX, as the server holds them in memory.
 */
#ifndef CPX_SERVER_IDENTITY_H
#define CPX_SERVER_IDENTITY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger/crypto.h"
#include "ledger/reqsig.h"

/* Roles, as bits of identity.roles. */
enum role {
    ROLE_BUYER = 1 << 0,
    ROLE_PROVIDER = 1 << 1,
    ROLE_REGULATOR = 1 << 2,
    ROLE_OPERATOR = 1 << 3,
};
#define ROLE_ALL (ROLE_BUYER | ROLE_PROVIDER | ROLE_REGULATOR | ROLE_OPERATOR)

/* The role words in bit order, NULL-terminated: role_names[i] names bit 1 << i. */
extern const char *const role_names[];

enum identity_status { IDENTITY_PENDING, IDENTITY_APPROVED, IDENTITY_REJECTED };
extern const char *const identity_status_names[];

/* The status named s; IDENTITY_PENDING for an unknown word. */
enum identity_status identity_status_of(const char *s);

#define IDENTITY_NAME_MAX   200 /* characters */
#define IDENTITY_REG_NO_MAX 64  /* characters (ASCII) */
#define IDENTITY_REASON_MAX 500

struct identity {
    char id[CPX_ID_MAX];                      /* "idn_..." */
    char name[IDENTITY_NAME_MAX * 4 + 1];     /* UTF-8 */
    char reg_no[IDENTITY_REG_NO_MAX + 1];     /* registration number, [A-Za-z0-9-] */
    unsigned roles;                           /* enum role bits */
    uint8_t public_key[CPX_ED25519_PK_LEN];   /* the key that signs its requests now */
    enum identity_status status;              /* pending until an operator decides */
    int64_t created_at;                       /* unix microseconds */
    int64_t decided_at;                       /* unix microseconds; 0 while pending */
    char decided_by[CPX_ID_MAX];              /* operator who decided; "" while pending */
    char reason[IDENTITY_REASON_MAX * 4 + 1]; /* rejection reason; "" when none */
};

/* Writes roles as a PostgreSQL array literal of role words, e.g. "{buyer,provider}". */
void roles_to_pg_array(unsigned roles, char out[64]);

/* Parses a comma-separated list of role words (as array_to_string gives); unknown words are 0. */
unsigned roles_from_list(const char *list);

/* The identity as the API shows it: a new JSON object (caller decrefs), NULL when out of memory. */
json_t *identity_to_json(const struct identity *idn);

#endif
