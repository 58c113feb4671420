/*
 * A small ledger builder for the tests: an exchange key, parties with keys and identity ids, and
 * helpers that append correctly signed records the way the server will write them (identity,
 * approval, key rotation, orders, bills), then sign checkpoints over any prefix. Records are kept
 * as exact bytes, so a test can tamper with them one way at a time before feeding an auditor.
 */
#ifndef CPX_TESTS_LEDGER_FIXTURES_H
#define CPX_TESTS_LEDGER_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "ledger/audit.h"
#include "ledger/checkpoint.h"
#include "ledger/record.h"

#define FX_ORIGIN "cpx.test/ledger"

/* A party: its key pair and identity id. */
struct fx_party {
    struct cpx_keypair kp; /* current key */
    char id[CPX_ID_MAX];   /* identity id derived from its first key */
};

/* A ledger under construction. */
struct fx_log {
    struct cpx_keypair exchange;       /* the exchange's checkpoint key */
    struct cpx_note_verifier verifier; /* its verifier (name FX_ORIGIN) */
    uint8_t **rec;                     /* record bytes, by seq */
    size_t *len;                       /* their lengths */
    size_t n, cap;                     /* records and slots */
    int64_t ts_ms;                     /* next record time */
};

void fx_log_init(struct fx_log *l);
void fx_log_free(struct fx_log *l);

/* A party with a fresh key. */
void fx_party_new(struct fx_party *p);

/* Appends a record (payload is canonical JSON; signer NULL for exchange records, else the party
 * signs `method target` with body). Returns its seq. */
uint64_t fx_append(struct fx_log *l, const char *kind, const char *payload,
                   const struct fx_party *signer, const char *method, const char *target,
                   const char *body);

/* The same with a zero signature for party's records: for the books checker, which does not
 * verify signatures, so that a long synthetic ledger costs no Ed25519. */
uint64_t fx_append_unsigned(struct fx_log *l, const char *kind, const char *payload,
                            const struct fx_party *party, const char *method, const char *target,
                            const char *body);

/* Identity-family and business helpers; each returns the seq of the (last) record appended. */
uint64_t fx_register(struct fx_log *l, const struct fx_party *p, unsigned roles);
uint64_t fx_register_exchange(struct fx_log *l, const struct fx_party *p, unsigned roles);
uint64_t fx_decide(struct fx_log *l, const struct fx_party *subject,
                   const struct fx_party *operator, int approve);
uint64_t fx_rotate(struct fx_log *l, struct fx_party *p, const struct cpx_keypair *next);
uint64_t fx_order(struct fx_log *l, const struct fx_party *buyer, int n);
uint64_t fx_bill(struct fx_log *l, int n);

/* Writes a checkpoint over records [0, size) signed by key (NULL: the exchange) under origin
 * (NULL: FX_ORIGIN) into out; returns its length. */
size_t fx_checkpoint(const struct fx_log *l, uint64_t size, const struct cpx_keypair *key,
                     const char *origin, char *out, size_t cap);

/* The leaf hash of record i as logged. */
void fx_leaf(const struct fx_log *l, size_t i, uint8_t out[32]);

/* Fills an in-memory tree with records [0, size). */
void fx_tree(const struct fx_log *l, uint64_t size, struct cpx_merkle_tree *t);

/*
 * Writes records [0, l->n) as the export file of docs/ledger.md section 10 to path: the header
 * (size l->n), a checkpoint line for each of the n_sizes sizes (ascending, signed by the
 * exchange), then one line per record with its leaf hash. Fails the test program on I/O errors.
 */
void fx_export_write(const struct fx_log *l, const uint64_t *sizes, size_t n_sizes,
                     const char *path);

/* An audit configuration for this log's exchange key. */
struct cpx_audit_config fx_config(const struct fx_log *l, enum cpx_audit_sigmode sigs);

#endif
