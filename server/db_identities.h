/*
 * Queries on identities, idempotency keys and request signatures: one function per prepared
 * statement (the statement tables are in db_identities.c). Each returns a db_status; DB_NO_ROWS
 * means the row the caller asked for does not exist or is not in the state required.
 */
#ifndef CPX_SERVER_DB_IDENTITIES_H
#define CPX_SERVER_DB_IDENTITIES_H

#include "server/db.h"
#include "server/identity.h"

/* Inserts a pending identity from idn (id, name, reg_no, roles, public_key); fills created_at.
 * DB_CONFLICT with c->conflict "identities_pkey"/"identities_public_key" (key registered) or
 * "identities_live_reg_no" (registration number taken). */
enum db_status db_identity_insert(struct db_conn *c, struct identity *idn);

/* Inserts idn as an approved identity that decided itself, unless its id exists. Sets *created. */
enum db_status db_identity_bootstrap(struct db_conn *c, const struct identity *idn, bool *created);

/* Reads identity id into out. */
enum db_status db_identity_get(struct db_conn *c, const char *id, struct identity *out);

/* Reads identity id into out and share-locks its row until the transaction ends: its key and
 * status cannot change before this transaction commits. */
enum db_status db_identity_lock(struct db_conn *c, const char *id, struct identity *out);

/* Moves a pending identity to status `to` decided by `by` (reason may be NULL); fills out with the
 * updated row. DB_NO_ROWS when it does not exist or is not pending. */
enum db_status db_identity_decide(struct db_conn *c, const char *id, enum identity_status to,
                                  const char *by, const char *reason, struct identity *out);

/* Lists up to limit identities with id > after (after may be ""), optionally only those with
 * status (status < 0: any), ordered by id. Calls fn for each; stops early when fn returns false. */
enum db_status db_identity_list(struct db_conn *c, int status, const char *after, int limit,
                                bool (*fn)(const struct identity *, void *), void *arg);

/* Calls fn for every identity in the order they were created (for the ledger's genesis). */
enum db_status db_identity_all(struct db_conn *c, bool (*fn)(const struct identity *, void *),
                               void *arg);

/* Replaces the key of approved identity id; old_key must be the current one (DB_NO_ROWS
 * otherwise).
 * DB_CONFLICT when another identity holds new_key. */
enum db_status db_identity_set_key(struct db_conn *c, const char *id,
                                   const uint8_t old_key[CPX_ED25519_PK_LEN],
                                   const uint8_t new_key[CPX_ED25519_PK_LEN]);

/* Looks up an idempotency key. On DB_OK fills *status, *response (malloc'd, caller frees) and
 * hash; DB_NO_ROWS when the key is new. */
enum db_status db_idempotency_get(struct db_conn *c, const char *identity_id, const char *key,
                                  uint8_t hash[32], int *status, char **response);

/* Stores the first answer to (identity_id, key). */
enum db_status db_idempotency_put(struct db_conn *c, const char *identity_id, const char *key,
                                  const uint8_t hash[32], int status, const char *response);

/* Records a request signature until expires_s (unix seconds). DB_CONFLICT: seen before. */
enum db_status db_signature_record(struct db_conn *c, const uint8_t sig[CPX_ED25519_SIG_LEN],
                                   int64_t expires_s);

/* Deletes signatures whose window has passed; *rows says how many. */
enum db_status db_signature_prune(struct db_conn *c, long *rows);

#endif
