/*
 * Identity, idempotency and request-signature queries: see db_identities.h.
 *
 * Statement table: name, SQL, parameters, and the function that runs it.
 *   identity_insert     db_identity_insert
 *   identity_bootstrap  db_identity_bootstrap
 *   identity_get        db_identity_get
 *   identity_lock       db_identity_lock
 *   identity_decide     db_identity_decide
 *   identity_list       db_identity_list
 *   identity_all        db_identity_all
 *   identity_set_key    db_identity_set_key
 *   idempotency_get     db_idempotency_get
 *   idempotency_put     db_idempotency_put
 *   signature_record    db_signature_record
 *   signature_prune     db_signature_prune
 * Times travel as integer unix microseconds; roles as text[] literals built from the fixed role
 * words (never from client text); keys as bytea in its "\x" hex text form.
 */
#include "server/db_identities.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"
#define IDENTITY_COLUMNS                                                                           \
    "id, name, reg_no, array_to_string(roles, ','), public_key, status, " US(                      \
        "created_at") ", "                                                                         \
                      "coalesce(" US("decided_at") ", 0), coalesce(decided_by, ''), "              \
                                                   "coalesce(decision_reason, '')"

const struct db_statement db_identity_statements[] = {
    { "identity_insert",
      "INSERT INTO identities (id, name, reg_no, roles, public_key) "
      "VALUES ($1, $2, $3, $4::text[], $5::bytea) RETURNING " US("created_at"),
      5 },
    { "identity_bootstrap",
      "INSERT INTO identities (id, name, reg_no, roles, public_key, status, decided_at, "
      "decided_by) VALUES ($1, $2, $3, $4::text[], $5::bytea, 'approved', now(), $1) "
      "ON CONFLICT (id) DO NOTHING",
      5 },
    { "identity_get", "SELECT " IDENTITY_COLUMNS " FROM identities WHERE id = $1", 1 },
    { "identity_lock", "SELECT " IDENTITY_COLUMNS " FROM identities WHERE id = $1 FOR SHARE", 1 },
    { "identity_decide",
      "UPDATE identities SET status = $2, decided_at = now(), decided_by = $3, "
      "decision_reason = $4 WHERE id = $1 AND status = 'pending' RETURNING " IDENTITY_COLUMNS,
      4 },
    { "identity_list",
      "SELECT " IDENTITY_COLUMNS " FROM identities "
      "WHERE ($1::text IS NULL OR status = $1) AND id > $2 ORDER BY id LIMIT $3",
      3 },
    { "identity_all", "SELECT " IDENTITY_COLUMNS " FROM identities ORDER BY created_at, id", 0 },
    { "identity_set_key",
      "UPDATE identities SET public_key = $3::bytea "
      "WHERE id = $1 AND public_key = $2::bytea AND status = 'approved'",
      3 },
    { "idempotency_get",
      "SELECT request_hash, status, response FROM idempotency_keys "
      "WHERE identity_id = $1 AND key = $2",
      2 },
    { "idempotency_put",
      "INSERT INTO idempotency_keys (identity_id, key, request_hash, status, response) "
      "VALUES ($1, $2, $3::bytea, $4, $5)",
      5 },
    { "signature_record",
      "INSERT INTO request_signatures (sig_prefix, expires_at) "
      "VALUES ($1::bytea, to_timestamp($2))",
      2 },
    { "signature_prune", "DELETE FROM request_signatures WHERE expires_at < now()", 0 },
    { NULL, NULL, 0 },
};

/* Fills out from row `row` of a result with IDENTITY_COLUMNS. */
static void identity_from_row(const PGresult *r, int row, struct identity *out)
{
    char buf[64];
    memset(out, 0, sizeof *out);
    db_get_str(r, row, 0, out->id, sizeof out->id);
    db_get_str(r, row, 1, out->name, sizeof out->name);
    db_get_str(r, row, 2, out->reg_no, sizeof out->reg_no);
    out->roles = roles_from_list(PQgetvalue(r, row, 3));
    db_get_bytea(r, row, 4, out->public_key, sizeof out->public_key);
    db_get_str(r, row, 5, buf, sizeof buf);
    out->status = identity_status_of(buf);
    out->created_at = db_get_i64(r, row, 6);
    out->decided_at = db_get_i64(r, row, 7);
    db_get_str(r, row, 8, out->decided_by, sizeof out->decided_by);
    db_get_str(r, row, 9, out->reason, sizeof out->reason);
}

enum db_status db_identity_insert(struct db_conn *c, struct identity *idn)
{
    char roles[64], key[2 * CPX_ED25519_PK_LEN + 3];
    roles_to_pg_array(idn->roles, roles);
    const char *params[] = { idn->id, idn->name, idn->reg_no, roles,
                             db_bytea_param(idn->public_key, CPX_ED25519_PK_LEN, key) };
    PGresult *r;
    enum db_status st = db_query(c, "identity_insert", 5, params, &r);
    if (st != DB_OK)
        return st;
    idn->created_at = db_get_i64(r, 0, 0);
    idn->status = IDENTITY_PENDING;
    PQclear(r);
    return DB_OK;
}

enum db_status db_identity_bootstrap(struct db_conn *c, const struct identity *idn, bool *created)
{
    char roles[64], key[2 * CPX_ED25519_PK_LEN + 3];
    roles_to_pg_array(idn->roles, roles);
    const char *params[] = { idn->id, idn->name, idn->reg_no, roles,
                             db_bytea_param(idn->public_key, CPX_ED25519_PK_LEN, key) };
    long rows = 0;
    enum db_status st = db_command(c, "identity_bootstrap", 5, params, &rows);
    *created = st == DB_OK && rows == 1;
    return st;
}

/* Runs a statement that returns at most one identity row into out; DB_NO_ROWS when none. */
static enum db_status one_identity(struct db_conn *c, const char *stmt, int nparams,
                                   const char *const *params, struct identity *out)
{
    PGresult *r;
    enum db_status st = db_query_row(c, stmt, nparams, params, &r);
    if (st != DB_OK)
        return st;
    identity_from_row(r, 0, out);
    PQclear(r);
    return DB_OK;
}

enum db_status db_identity_get(struct db_conn *c, const char *id, struct identity *out)
{
    const char *params[] = { id };
    return one_identity(c, "identity_get", 1, params, out);
}

enum db_status db_identity_lock(struct db_conn *c, const char *id, struct identity *out)
{
    const char *params[] = { id };
    return one_identity(c, "identity_lock", 1, params, out);
}

enum db_status db_identity_decide(struct db_conn *c, const char *id, enum identity_status to,
                                  const char *by, const char *reason, struct identity *out)
{
    const char *params[] = { id, identity_status_names[to], by, reason };
    return one_identity(c, "identity_decide", 4, params, out);
}

/* Runs a statement returning identity rows and calls fn for each until it returns false. */
static enum db_status each_identity(struct db_conn *c, const char *stmt, int nparams,
                                    const char *const *params,
                                    bool (*fn)(const struct identity *, void *), void *arg)
{
    PGresult *r;
    enum db_status st = db_query(c, stmt, nparams, params, &r);
    if (st != DB_OK)
        return st;
    struct identity *idn = malloc(sizeof *idn);
    for (int i = 0; idn != NULL && i < PQntuples(r); i++) {
        identity_from_row(r, i, idn);
        if (!fn(idn, arg))
            break;
    }
    if (idn == NULL)
        st = DB_HARD;
    free(idn);
    PQclear(r);
    return st;
}

enum db_status db_identity_list(struct db_conn *c, int status, const char *after, int limit,
                                bool (*fn)(const struct identity *, void *), void *arg)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = { status >= 0 ? identity_status_names[status] : NULL, after, lim };
    return each_identity(c, "identity_list", 3, params, fn, arg);
}

enum db_status db_identity_all(struct db_conn *c, bool (*fn)(const struct identity *, void *),
                               void *arg)
{
    return each_identity(c, "identity_all", 0, NULL, fn, arg);
}

enum db_status db_identity_set_key(struct db_conn *c, const char *id,
                                   const uint8_t old_key[CPX_ED25519_PK_LEN],
                                   const uint8_t new_key[CPX_ED25519_PK_LEN])
{
    char o[2 * CPX_ED25519_PK_LEN + 3], n[2 * CPX_ED25519_PK_LEN + 3];
    const char *params[] = { id, db_bytea_param(old_key, CPX_ED25519_PK_LEN, o),
                             db_bytea_param(new_key, CPX_ED25519_PK_LEN, n) };
    long rows = 0;
    enum db_status st = db_command(c, "identity_set_key", 3, params, &rows);
    return st == DB_OK && rows != 1 ? DB_NO_ROWS : st;
}

enum db_status db_idempotency_get(struct db_conn *c, const char *identity_id, const char *key,
                                  uint8_t hash[32], int *status, char **response)
{
    const char *params[] = { identity_id, key };
    PGresult *r;
    enum db_status st = db_query(c, "idempotency_get", 2, params, &r);
    if (st != DB_OK)
        return st;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return DB_NO_ROWS;
    }
    db_get_bytea(r, 0, 0, hash, 32);
    *status = (int)db_get_i64(r, 0, 1);
    *response = strdup(PQgetvalue(r, 0, 2));
    PQclear(r);
    return *response != NULL ? DB_OK : DB_HARD;
}

enum db_status db_idempotency_put(struct db_conn *c, const char *identity_id, const char *key,
                                  const uint8_t hash[32], int status, const char *response)
{
    char h[2 * 32 + 3], s[16];
    snprintf(s, sizeof s, "%d", status);
    const char *params[] = { identity_id, key, db_bytea_param(hash, 32, h), s, response };
    return db_command(c, "idempotency_put", 5, params, NULL);
}

enum db_status db_signature_record(struct db_conn *c, const uint8_t sig[CPX_ED25519_SIG_LEN],
                                   int64_t expires_s)
{
    char prefix[2 * 16 + 3], exp[24];
    snprintf(exp, sizeof exp, "%" PRId64, expires_s);
    const char *params[] = { db_bytea_param(sig, 16, prefix), exp };
    return db_command(c, "signature_record", 2, params, NULL);
}

enum db_status db_signature_prune(struct db_conn *c, long *rows)
{
    return db_command(c, "signature_prune", 0, NULL, rows);
}
