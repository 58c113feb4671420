/*
 * Ledger queries: see db_ledger.h.
 *
 * Statement table: name, SQL, parameters, and the function that runs it.
 *   ledger_head_lock        db_ledger_head_lock
 *   ledger_head_set         db_ledger_head_set
 *   ledger_nodes_get        db_ledger_nodes_get
 *   ledger_checkpoint_*     db_ledger_checkpoint_insert, _get, _list
 *   ledger_records_list     db_ledger_record_list
 *   retired_key_*           db_retired_key_insert, db_retired_key_get
 *
 * A batch's records and nodes go in with one binary COPY each, whatever the batch size (COPY is
 * the one statement that cannot be prepared; its text is fixed here). Lookups by coordinates
 * travel as array literals built from integers only. Nothing a client wrote reaches SQL text.
 */
#include "server/db_ledger.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "server/log.h"
#include "server/util.h"

#define US(col) "(extract(epoch FROM " col ") * 1000000)::bigint"

const struct db_statement db_ledger_statements[] = {
    { "ledger_head_lock", "SELECT size, ts_ms FROM ledger_head FOR UPDATE", 0 },
    { "ledger_head_set", "UPDATE ledger_head SET size = $1, ts_ms = $2", 2 },
    { "ledger_nodes_get",
      "SELECT q.n, n.hash FROM unnest($1::smallint[], $2::bigint[]) WITH ORDINALITY "
      "AS q(level, idx, n) JOIN ledger_nodes n USING (level, idx)",
      2 },
    { "ledger_checkpoint_insert",
      "INSERT INTO ledger_checkpoints (size, root, note, created_at) "
      "VALUES ($1, $2::bytea, $3, to_timestamp($4::double precision / 1000))",
      4 },
    { "ledger_checkpoint_get",
      "SELECT size, root, note, " US("created_at") " FROM ledger_checkpoints "
                                                   "WHERE size = $1 OR ($1 = 0 AND size = (SELECT "
                                                   "max(size) FROM ledger_checkpoints))",
      1 },
    { "ledger_checkpoint_list",
      "SELECT size, root, note, " US(
          "created_at") " FROM ledger_checkpoints "
                        "WHERE size > $1 AND size <= $2 ORDER BY size LIMIT $3",
      3 },
    /* Rows past max_bytes stay in PostgreSQL: only those whose predecessors on the page hold at
     * most $4 bytes come back (so the row that crosses the limit does, and tells the caller). */
    { "ledger_records_list",
      "SELECT seq, record, hash FROM ("
      "SELECT r.seq, r.record, n.hash, "
      "sum(octet_length(r.record)) OVER (ORDER BY r.seq) - octet_length(r.record) AS before "
      "FROM ledger_records r LEFT JOIN ledger_nodes n ON n.level = 0 AND n.idx = r.seq "
      "WHERE r.seq >= $1 AND r.seq < $2 ORDER BY r.seq LIMIT $3) page "
      "WHERE before <= $4 ORDER BY seq",
      4 },
    { "retired_key_insert",
      "INSERT INTO retired_keys (public_key, identity_id) VALUES ($1::bytea, $2)", 2 },
    { "retired_key_get", "SELECT 1 FROM retired_keys WHERE public_key = $1::bytea", 1 },
    { NULL, NULL, 0 },
};

/* Reads column col of row r as an unsigned count (0 when NULL or negative). */
static uint64_t get_u64(const PGresult *r, int row, int col)
{
    int64_t v = db_get_i64(r, row, col);
    return v > 0 ? (uint64_t)v : 0;
}

enum db_status db_ledger_head_lock(struct db_conn *c, uint64_t *size, int64_t *ts_ms)
{
    PGresult *r;
    enum db_status st = db_query(c, "ledger_head_lock", 0, NULL, &r);
    if (st != DB_OK)
        return st;
    st = PQntuples(r) == 1 ? DB_OK : DB_HARD; /* the migration inserts the one row */
    if (st == DB_OK) {
        *size = get_u64(r, 0, 0);
        *ts_ms = db_get_i64(r, 0, 1);
    }
    PQclear(r);
    return st;
}

enum db_status db_ledger_head_set(struct db_conn *c, uint64_t size, int64_t ts_ms)
{
    char s[24], t[24];
    snprintf(s, sizeof s, "%" PRIu64, size);
    snprintf(t, sizeof t, "%" PRId64, ts_ms);
    const char *params[] = { s, t };
    return db_command(c, "ledger_head_set", 2, params, NULL);
}

enum db_status db_ledger_nodes_get(struct db_conn *c, const struct cpx_merkle_node *coords,
                                   size_t n, uint8_t (*hashes)[CPX_HASH_LEN], bool *found)
{
    memset(found, 0, n * sizeof *found);
    if (n == 0)
        return DB_OK;
    struct strbuf levels = { 0 }, idxs = { 0 };
    for (size_t i = 0; i < n; i++) {
        strbuf_addf(&levels, "%c%u", i ? ',' : '{', coords[i].level);
        strbuf_addf(&idxs, "%c%" PRIu64, i ? ',' : '{', coords[i].index);
    }
    strbuf_add(&levels, "}", 1);
    strbuf_add(&idxs, "}", 1);
    enum db_status st = DB_HARD;
    PGresult *r = NULL;
    if (!levels.failed && !idxs.failed) {
        const char *params[] = { levels.data, idxs.data };
        st = db_query(c, "ledger_nodes_get", 2, params, &r);
    }
    strbuf_free(&levels);
    strbuf_free(&idxs);
    if (st != DB_OK)
        return st;
    for (int row = 0; row < PQntuples(r); row++) {
        int64_t ord = db_get_i64(r, row, 0); /* WITH ORDINALITY counts from 1 */
        if (ord < 1 || (uint64_t)ord > n)
            continue;
        size_t i = (size_t)ord - 1;
        found[i] = db_get_bytea(r, row, 1, hashes[i], CPX_HASH_LEN);
    }
    PQclear(r);
    return DB_OK;
}

/*
 * PostgreSQL's binary COPY format: a header, then per row a field count and each field as a
 * 32-bit length and its bytes (integers big-endian), then a trailer. No text to parse on either
 * side, and record bytes travel as they are (no hex).
 */
static void copy_u16(struct strbuf *b, uint16_t v)
{
    uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    strbuf_add(b, x, 2);
}

static void copy_u32(struct strbuf *b, uint32_t v)
{
    uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    strbuf_add(b, x, 4);
}

static void copy_begin(struct strbuf *b)
{
    strbuf_add(b, "PGCOPY\n\377\r\n\0", 11);
    copy_u32(b, 0); /* flags */
    copy_u32(b, 0); /* header extension length */
}

static void copy_end(struct strbuf *b)
{
    copy_u16(b, 0xffff); /* -1: no more rows */
}

/* A field of len bytes (a NULL when data is NULL). */
static void copy_field(struct strbuf *b, const void *data, size_t len)
{
    if (data == NULL) {
        copy_u32(b, 0xffffffffu);
        return;
    }
    copy_u32(b, (uint32_t)len);
    strbuf_add(b, data, len);
}

static void copy_i64(struct strbuf *b, int64_t v)
{
    copy_u32(b, 8);
    copy_u32(b, (uint32_t)((uint64_t)v >> 32));
    copy_u32(b, (uint32_t)v);
}

static void copy_i16(struct strbuf *b, int16_t v)
{
    copy_u32(b, 2);
    copy_u16(b, (uint16_t)v);
}

/* Ends the COPY data in b, sends it with the statement sql (named `what` in logs), frees b. */
static enum db_status copy_send(struct db_conn *c, struct strbuf *b, const char *what,
                                const char *sql)
{
    copy_end(b);
    enum db_status st = DB_HARD;
    if (b->failed)
        log_error("ledger: out of memory building %s", what);
    else
        st = db_copy_in(c, what, sql, b->data, b->len);
    strbuf_free(b);
    return st;
}

static enum db_status insert_records(struct db_conn *c, const struct db_ledger_row *rows, size_t n)
{
    struct strbuf b = { 0 };
    copy_begin(&b);
    for (size_t i = 0; i < n; i++) {
        copy_u16(&b, 5);
        copy_i64(&b, (int64_t)rows[i].seq);
        copy_field(&b, rows[i].kind, strlen(rows[i].kind));
        copy_i64(&b, rows[i].ts_ms);
        copy_field(&b, rows[i].party_id[0] ? rows[i].party_id : NULL, strlen(rows[i].party_id));
        copy_field(&b, rows[i].bytes, rows[i].len);
    }
    return copy_send(c, &b, "ledger_records_copy",
                     "COPY ledger_records (seq, kind, ts_ms, party_id, record) "
                     "FROM STDIN (FORMAT binary)");
}

static enum db_status insert_nodes(struct db_conn *c, const struct cpx_merkle_node *nodes, size_t m)
{
    struct strbuf b = { 0 };
    copy_begin(&b);
    for (size_t i = 0; i < m; i++) {
        copy_u16(&b, 3);
        copy_i16(&b, (int16_t)nodes[i].level);
        copy_i64(&b, (int64_t)nodes[i].index);
        copy_field(&b, nodes[i].hash, CPX_HASH_LEN);
    }
    return copy_send(c, &b, "ledger_nodes_copy",
                     "COPY ledger_nodes (level, idx, hash) FROM STDIN (FORMAT binary)");
}

enum db_status db_ledger_insert(struct db_conn *c, const struct db_ledger_row *rows, size_t n,
                                const struct cpx_merkle_node *nodes, size_t m)
{
    enum db_status st = n ? insert_records(c, rows, n) : DB_OK;
    if (st == DB_OK && m)
        st = insert_nodes(c, nodes, m);
    return st;
}

void db_checkpoint_clear(struct db_checkpoint *cp)
{
    free(cp->note);
    memset(cp, 0, sizeof *cp);
}

enum db_status db_ledger_checkpoint_insert(struct db_conn *c, uint64_t size,
                                           const uint8_t root[CPX_HASH_LEN], const char *note,
                                           int64_t ts_ms)
{
    char s[24], r[2 * CPX_HASH_LEN + 3], t[24];
    snprintf(s, sizeof s, "%" PRIu64, size);
    snprintf(t, sizeof t, "%" PRId64, ts_ms);
    const char *params[] = { s, db_bytea_param(root, CPX_HASH_LEN, r), note, t };
    return db_command(c, "ledger_checkpoint_insert", 4, params, NULL);
}

/* Fills out from a row of size, root, note, created_at; false when out of memory. */
static bool checkpoint_from_row(const PGresult *r, int row, struct db_checkpoint *out)
{
    out->size = get_u64(r, row, 0);
    db_get_bytea(r, row, 1, out->root, CPX_HASH_LEN);
    out->note = strdup(PQgetvalue(r, row, 2));
    out->created_us = db_get_i64(r, row, 3);
    return out->note != NULL;
}

enum db_status db_ledger_checkpoint_get(struct db_conn *c, uint64_t size, struct db_checkpoint *out)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, size);
    const char *params[] = { s };
    PGresult *r;
    enum db_status st = db_query(c, "ledger_checkpoint_get", 1, params, &r);
    if (st != DB_OK)
        return st;
    db_checkpoint_clear(out);
    if (PQntuples(r) != 1)
        st = DB_NO_ROWS;
    else if (!checkpoint_from_row(r, 0, out))
        st = DB_HARD;
    PQclear(r);
    return st;
}

/* The text parameters of a range query: from, upto (clamped to the bigint range), limit, bytes. */
struct range_params {
    char from[24], upto[24], limit[16], bytes[24];
    const char *v[4];
};

static void range_params(struct range_params *p, uint64_t from, uint64_t upto, int limit,
                         size_t bytes)
{
    snprintf(p->from, sizeof p->from, "%" PRIu64, from);
    snprintf(p->upto, sizeof p->upto, "%" PRIu64, upto > INT64_MAX ? (uint64_t)INT64_MAX : upto);
    snprintf(p->limit, sizeof p->limit, "%d", limit);
    snprintf(p->bytes, sizeof p->bytes, "%zu", bytes);
    p->v[0] = p->from;
    p->v[1] = p->upto;
    p->v[2] = p->limit;
    p->v[3] = p->bytes;
}

enum db_status db_ledger_checkpoint_list(struct db_conn *c, uint64_t after, uint64_t upto,
                                         int limit,
                                         bool (*fn)(const struct db_checkpoint *, void *),
                                         void *arg)
{
    struct range_params p;
    range_params(&p, after, upto, limit, 0);
    PGresult *r;
    enum db_status st = db_query(c, "ledger_checkpoint_list", 3, p.v, &r);
    if (st != DB_OK)
        return st;
    for (int row = 0; row < PQntuples(r); row++) {
        struct db_checkpoint cp = { 0 };
        bool ok = checkpoint_from_row(r, row, &cp);
        bool more = ok && fn(&cp, arg);
        db_checkpoint_clear(&cp);
        if (!ok)
            st = DB_HARD;
        if (!more)
            break;
    }
    PQclear(r);
    return st;
}

enum db_status db_ledger_record_list(struct db_conn *c, uint64_t from, uint64_t upto, int limit,
                                     size_t max_bytes, bool (*fn)(const struct db_record *, void *),
                                     void *arg)
{
    if (from > INT64_MAX)
        return DB_OK; /* beyond any seq */
    struct range_params p;
    range_params(&p, from, upto, limit, max_bytes);
    PGresult *r;
    enum db_status st = db_query(c, "ledger_records_list", 4, p.v, &r);
    if (st != DB_OK)
        return st;
    for (int row = 0; row < PQntuples(r); row++) {
        struct db_record rec = { .seq = get_u64(r, row, 0) };
        size_t len = 0;
        rec.bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 1), &len);
        if (rec.bytes == NULL) {
            st = DB_HARD;
            break;
        }
        rec.len = len;
        rec.has_leaf = db_get_bytea(r, row, 2, rec.leaf, CPX_HASH_LEN);
        bool more = fn(&rec, arg);
        PQfreemem(rec.bytes);
        if (!more)
            break;
    }
    PQclear(r);
    return st;
}

enum db_status db_retired_key_insert(struct db_conn *c, const uint8_t key[CPX_ED25519_PK_LEN],
                                     const char *identity_id)
{
    char k[2 * CPX_ED25519_PK_LEN + 3];
    const char *params[] = { db_bytea_param(key, CPX_ED25519_PK_LEN, k), identity_id };
    return db_command(c, "retired_key_insert", 2, params, NULL);
}

enum db_status db_retired_key_get(struct db_conn *c, const uint8_t key[CPX_ED25519_PK_LEN])
{
    char k[2 * CPX_ED25519_PK_LEN + 3];
    const char *params[] = { db_bytea_param(key, CPX_ED25519_PK_LEN, k) };
    PGresult *r;
    enum db_status st = db_query_row(c, "retired_key_get", 1, params, &r);
    PQclear(r);
    return st;
}
