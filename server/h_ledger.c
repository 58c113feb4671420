/*
 * The ledger, public to everyone (docs/ledger.md §10): checkpoints, records, a record's receipt
 * (its inclusion proof against a checkpoint), consistency proofs, the exchange's keys, and the
 * whole log as one download.
 *
 *   GET /v1/ledger/checkpoint                     the latest checkpoint
 *   GET /v1/ledger/checkpoints?after=&limit=      all checkpoints, ascending
 *   GET /v1/ledger/checkpoints/{size}             one checkpoint
 *   GET /v1/ledger/records?after=&limit=          records in order, with their stored leaf hashes
 *   GET /v1/ledger/records/{seq}?size=            a receipt: record, checkpoint, inclusion proof
 *   GET /v1/ledger/consistency?first=&second=     a consistency proof
 *   GET /v1/ledger/keys                           the checkpoint key, as a verifier key string
 *   GET /v1/ledger/export                         NDJSON: header, checkpoints, records
 *
 * Proofs are computed from the node table through the two-pass store of ledger/merkle.h: a first
 * run only notes which full nodes the proof reads, one query fetches them, a second run uses them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/merkle.h"
#include "server/db_ledger.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/log.h"
#include "server/server.h"
#include "server/util.h"

#define RECORDS_PAGE_BYTES (4 * 1024 * 1024) /* a records page stops after this many bytes */
#define PROOF_NODES_MAX    512               /* full nodes any proof may read (about 2 x 64) */
#define EXPORT_PAGE        1000              /* rows an export reads per query */
#define EXPORT_PAGE_BYTES  (4 * 1024 * 1024) /* ... and record bytes, at most (one more record) */
#define EXPORT_FORMAT      "cpx-ledger-export"

static json_t *b64_json(const uint8_t *data, size_t n)
{
    char text[CPX_B64_LEN(CPX_HASH_LEN) + 1];
    cpx_b64_encode(data, n, text);
    return json_string(text);
}

static json_t *checkpoint_json(const struct db_checkpoint *cp)
{
    char when[RFC3339_MAX];
    return json_pack("{s:I, s:o, s:s, s:s}", "size", (json_int_t)cp->size, "root",
                     b64_json(cp->root, CPX_HASH_LEN), "note", cp->note, "created_at",
                     format_rfc3339(cp->created_us, when));
}

/*
 * {"seq","record","leaf_hash"} for a stored record; NULL when out of memory. Records are
 * canonical JSON, so valid UTF-8; only a database altered behind cpxd's back holds anything else,
 * and utf8_repaired then puts U+FFFD for each invalid byte -- such a record can never match its
 * leaf, and the auditor names it.
 */
static json_t *record_json(const struct db_record *r)
{
    size_t len;
    char *text = utf8_repaired(r->bytes, r->len, &len);
    json_t *o =
        text ? json_pack("{s:I, s:s%, s:o}", "seq", (json_int_t)r->seq, "record", text, len,
                         "leaf_hash", r->has_leaf ? b64_json(r->leaf, CPX_HASH_LEN) : json_null())
             : NULL;
    free(text);
    return o;
}

/* ---- checkpoints ------------------------------------------------------------------------------
 */

struct checkpoint_ctx {
    uint64_t size; /* 0: the latest */
    struct db_checkpoint cp;
};

static enum db_status checkpoint_fn(struct db_conn *c, void *arg)
{
    struct checkpoint_ctx *x = arg;
    return db_ledger_checkpoint_get(c, x->size, &x->cp);
}

/* Answers with the checkpoint of size (0: latest). */
static void reply_checkpoint(struct request *req, uint64_t size)
{
    struct checkpoint_ctx x = { .size = size };
    enum db_status st = db_run(req->srv->db, checkpoint_fn, &x);
    if (st == DB_OK)
        reply_json(req, 200, checkpoint_json(&x.cp));
    else if (st == DB_NO_ROWS && size == 0)
        reply_error(req, E_CHECKPOINT_NOT_FOUND, NULL, "The ledger is empty.");
    else if (st == DB_NO_ROWS)
        reply_error(req, E_CHECKPOINT_NOT_FOUND, NULL, "No checkpoint has size %llu.",
                    (unsigned long long)size);
    else
        reply_db_error(req, st);
    db_checkpoint_clear(&x.cp);
}

void h_ledger_checkpoint(struct request *req)
{
    reply_checkpoint(req, 0);
}

void h_ledger_checkpoint_show(struct request *req)
{
    uint64_t size;
    if (!cpx_decimal_parse(req->params[0], &size) || size == 0) {
        reply_error(req, E_CHECKPOINT_NOT_FOUND, NULL, "No checkpoint has size %s.",
                    req->params[0]);
        return;
    }
    reply_checkpoint(req, size);
}

/* A page of a list: its items and the cursor of the last one. */
struct page {
    uint64_t after; /* cursor in */
    bool has_after; /* a cursor was given */
    int limit;
    json_t *items;
    uint64_t last; /* seq or size of the last item */
    int count;
    size_t bytes; /* record bytes on the page */
    bool more;    /* items beyond this page exist */
    bool oom;
};

static bool checkpoint_add(const struct db_checkpoint *cp, void *arg)
{
    struct page *p = arg;
    if (p->count == p->limit) { /* the one fetched beyond the page */
        p->more = true;
        return false;
    }
    p->oom = p->oom || json_array_append_new(p->items, checkpoint_json(cp)) != 0;
    p->last = cp->size;
    p->count++;
    return !p->oom;
}

static enum db_status checkpoints_fn(struct db_conn *c, void *arg)
{
    struct page *p = arg;
    json_array_clear(p->items);
    p->count = 0;
    p->more = false;
    return db_ledger_checkpoint_list(c, p->after, UINT64_MAX, p->limit + 1, checkpoint_add, p);
}

/* Reads ?limit=&after= where the cursor is a decimal number. */
static bool page_params(struct request *req, struct page *p)
{
    const char *after;
    if (!request_page(req, &p->limit, &after))
        return false;
    p->after = 0;
    p->has_after = *after != '\0';
    if (p->has_after && !cpx_decimal_parse(after, &p->after)) {
        reply_error(req, E_INVALID_QUERY, "after", "after is not a cursor this API gave out");
        return false;
    }
    p->items = json_array();
    if (p->items == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return false;
    }
    return true;
}

/* Answers {"items","next"}: next is the last item's cursor, or null on the last page. */
static void reply_page(struct request *req, struct page *p, enum db_status st)
{
    if (st == DB_OK && p->oom)
        st = DB_HARD;
    if (st != DB_OK) {
        json_decref(p->items);
        reply_db_error(req, st);
        return;
    }
    char cursor[24];
    snprintf(cursor, sizeof cursor, "%llu", (unsigned long long)p->last);
    json_t *next = p->more ? json_string(cursor) : json_null();
    reply_json(req, 200, json_pack("{s:o, s:o}", "items", p->items, "next", next));
}

void h_ledger_checkpoints(struct request *req)
{
    struct page p = { 0 };
    if (!page_params(req, &p))
        return;
    enum db_status st = db_run(req->srv->db, checkpoints_fn, &p);
    reply_page(req, &p, st);
}

/* ---- records ----------------------------------------------------------------------------------
 */

static bool record_add(const struct db_record *r, void *arg)
{
    struct page *p = arg;
    if (p->count == p->limit || (p->count > 0 && p->bytes + r->len > RECORDS_PAGE_BYTES)) {
        p->more = true; /* fetched beyond the page: the next one starts here */
        return false;
    }
    p->oom = p->oom || json_array_append_new(p->items, record_json(r)) != 0;
    p->last = r->seq;
    p->bytes += r->len;
    p->count++;
    return !p->oom;
}

static enum db_status records_fn(struct db_conn *c, void *arg)
{
    struct page *p = arg;
    json_array_clear(p->items);
    p->count = 0;
    p->bytes = 0;
    p->more = false;
    uint64_t from = p->has_after ? p->after + 1 : 0;
    return db_ledger_record_list(c, from, UINT64_MAX, p->limit + 1, RECORDS_PAGE_BYTES, record_add,
                                 p);
}

void h_ledger_records(struct request *req)
{
    struct page p = { 0 };
    if (!page_params(req, &p))
        return;
    enum db_status st = db_run(req->srv->db, records_fn, &p);
    reply_page(req, &p, st);
}

/* ---- proofs -----------------------------------------------------------------------------------
 */

/* The two-pass node store: pass one notes coordinates, pass two answers from what was fetched. */
struct node_fetch {
    struct db_conn *conn;
    bool fetched;  /* pass two */
    size_t n;      /* coordinates noted */
    bool overflow; /* more than PROOF_NODES_MAX were asked for */
    struct cpx_merkle_node coords[PROOF_NODES_MAX];
    uint8_t hashes[PROOF_NODES_MAX][CPX_HASH_LEN];
    bool found[PROOF_NODES_MAX];
};

static int fetch_get(void *ctx, unsigned level, uint64_t index, uint8_t out[CPX_HASH_LEN])
{
    struct node_fetch *f = ctx;
    if (!f->fetched) {
        if (f->n == PROOF_NODES_MAX)
            f->overflow = true;
        else
            f->coords[f->n++] = (struct cpx_merkle_node){ .level = level, .index = index };
        memset(out, 0, CPX_HASH_LEN);
        return 0;
    }
    for (size_t i = 0; i < f->n; i++)
        if (f->coords[i].level == level && f->coords[i].index == index) {
            if (!f->found[i])
                return -1;
            memcpy(out, f->hashes[i], CPX_HASH_LEN);
            return 0;
        }
    return -1;
}

/* What a proof is of. */
struct proof_ctx {
    bool consistency; /* else inclusion */
    uint64_t a, b;    /* inclusion: index, size; consistency: first, second */
    struct cpx_inclusion_proof incl;
    struct cpx_consistency_proof cons;
    struct node_fetch fetch;
    struct cpx_sha256_ctx *hash;
    bool missing; /* the node table lacks a node the proof needs */
};

static enum cpx_merkle_error proof_run(struct proof_ctx *x)
{
    struct cpx_merkle_store store = { fetch_get, &x->fetch };
    return x->consistency ? cpx_merkle_consistency_proof(&store, x->hash, x->a, x->b, &x->cons)
                          : cpx_merkle_inclusion_proof(&store, x->hash, x->a, x->b, &x->incl);
}

/* Computes the proof on connection c: note, fetch, compute. */
static enum db_status proof_compute(struct db_conn *c, struct proof_ctx *x)
{
    x->fetch.conn = c;
    x->fetch.fetched = false;
    x->fetch.n = 0;
    x->missing = false;
    if (proof_run(x) != CPX_MERKLE_OK || x->fetch.overflow)
        return DB_HARD;
    enum db_status st =
        db_ledger_nodes_get(c, x->fetch.coords, x->fetch.n, x->fetch.hashes, x->fetch.found);
    if (st != DB_OK)
        return st;
    x->fetch.fetched = true;
    enum cpx_merkle_error e = proof_run(x);
    x->missing = e == CPX_MERKLE_E_STORE;
    return e == CPX_MERKLE_OK || x->missing ? DB_OK : DB_HARD;
}

/* The proof in its wire form (docs/ledger.md §4) as a JSON value. */
static json_t *proof_json(const struct proof_ctx *x)
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    if (x->consistency)
        cpx_consistency_proof_write(&w, &x->cons);
    else
        cpx_inclusion_proof_write(&w, &x->incl);
    const uint8_t *text;
    size_t len;
    json_t *j = NULL;
    if (cpx_canon_writer_finish(&w, &text, &len) == CPX_CANON_OK)
        j = json_loadb((const char *)text, len, 0, NULL);
    cpx_canon_writer_free(&w);
    return j;
}

struct receipt_ctx {
    uint64_t seq;
    uint64_t size; /* checkpoint size asked for; 0: latest */
    struct db_checkpoint cp;
    json_t *record;
    struct proof_ctx *proof;
};

static bool receipt_record(const struct db_record *r, void *arg)
{
    struct receipt_ctx *x = arg;
    x->record = record_json(r);
    return false;
}

static enum db_status receipt_fn(struct db_conn *c, void *arg)
{
    struct receipt_ctx *x = arg;
    json_decref(x->record);
    x->record = NULL;
    enum db_status st = db_ledger_checkpoint_get(c, x->size, &x->cp);
    if (st != DB_OK || x->cp.size <= x->seq)
        return st;
    st = db_ledger_record_list(c, x->seq, x->seq + 1, 1, CPX_RECORD_MAX, receipt_record, x);
    if (st != DB_OK || x->record == NULL)
        return st;
    x->proof->a = x->seq;
    x->proof->b = x->cp.size;
    return proof_compute(c, x->proof);
}

/* Allocates a proof context with its hashing context; NULL when out of memory. */
static struct proof_ctx *proof_new(bool consistency)
{
    struct proof_ctx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    x->consistency = consistency;
    x->hash = cpx_sha256_ctx_new();
    if (x->hash == NULL) {
        free(x);
        return NULL;
    }
    return x;
}

static void proof_free(struct proof_ctx *x)
{
    if (x != NULL)
        cpx_sha256_ctx_free(x->hash);
    free(x);
}

void h_ledger_record(struct request *req)
{
    struct receipt_ctx x = { 0 };
    if (!cpx_decimal_parse(req->params[0], &x.seq)) {
        reply_error(req, E_RECORD_NOT_FOUND, NULL, "No record has the seq %s.", req->params[0]);
        return;
    }
    if (!request_query_u64(req, "size", &x.size))
        return;
    if (request_query(req, "size") != NULL && x.size == 0) {
        reply_error(req, E_CHECKPOINT_NOT_FOUND, "size", "No checkpoint has size 0.");
        return;
    }
    x.proof = proof_new(false);
    enum db_status st = x.proof ? db_run(req->srv->db, receipt_fn, &x) : DB_HARD;
    if (st == DB_NO_ROWS && x.size == 0)
        reply_error(req, E_RECORD_NOT_FOUND, NULL, "The ledger is empty.");
    else if (st == DB_NO_ROWS)
        reply_error(req, E_CHECKPOINT_NOT_FOUND, "size", "No checkpoint has size %llu.",
                    (unsigned long long)x.size);
    else if (st != DB_OK)
        reply_db_error(req, st);
    else if (x.cp.size <= x.seq && x.size != 0)
        reply_error(req, E_INVALID_QUERY, "size",
                    "The checkpoint of size %llu does not cover record %llu.",
                    (unsigned long long)x.cp.size, (unsigned long long)x.seq);
    else if (x.cp.size <= x.seq || x.record == NULL)
        reply_error(req, E_RECORD_NOT_FOUND, NULL, "No record has the seq %llu yet.",
                    (unsigned long long)x.seq);
    else if (x.proof->missing) {
        log_error("ledger: a node of the tree of size %llu is missing",
                  (unsigned long long)x.cp.size);
        reply_error(req, E_INTERNAL, NULL, NULL);
    } else {
        json_object_set_new(x.record, "checkpoint", checkpoint_json(&x.cp));
        json_object_set_new(x.record, "inclusion", proof_json(x.proof));
        reply_json(req, 200, json_incref(x.record));
    }
    json_decref(x.record);
    db_checkpoint_clear(&x.cp);
    proof_free(x.proof);
}

struct consistency_ctx {
    uint64_t latest; /* size of the latest checkpoint */
    struct db_checkpoint cp;
    struct proof_ctx *proof;
};

static enum db_status consistency_fn(struct db_conn *c, void *arg)
{
    struct consistency_ctx *x = arg;
    enum db_status st = db_ledger_checkpoint_get(c, 0, &x->cp);
    x->latest = st == DB_OK ? x->cp.size : 0;
    if (st == DB_NO_ROWS)
        st = DB_OK;
    if (st != DB_OK || x->proof->b > x->latest)
        return st;
    return proof_compute(c, x->proof);
}

void h_ledger_consistency(struct request *req)
{
    uint64_t first = 0, second = 0;
    if (request_query(req, "first") == NULL || request_query(req, "second") == NULL) {
        reply_error(req, E_INVALID_QUERY, request_query(req, "first") ? "second" : "first",
                    "consistency needs both first and second (tree sizes)");
        return;
    }
    if (!request_query_u64(req, "first", &first) || !request_query_u64(req, "second", &second))
        return;
    if (first > second) {
        reply_error(req, E_INVALID_QUERY, "first", "first must not exceed second");
        return;
    }
    struct consistency_ctx x = { 0 };
    x.proof = proof_new(true);
    if (x.proof != NULL) {
        x.proof->a = first;
        x.proof->b = second;
    }
    enum db_status st = x.proof ? db_run(req->srv->db, consistency_fn, &x) : DB_HARD;
    if (st != DB_OK)
        reply_db_error(req, st);
    else if (second > x.latest)
        reply_error(req, E_INVALID_QUERY, "second",
                    "second must not exceed the latest checkpoint's size, %llu",
                    (unsigned long long)x.latest);
    else if (x.proof->missing)
        reply_error(req, E_INTERNAL, NULL, NULL);
    else
        reply_json(req, 200, proof_json(x.proof));
    db_checkpoint_clear(&x.cp);
    proof_free(x.proof);
}

/* ---- keys -------------------------------------------------------------------------------------
 */

void h_ledger_keys(struct request *req)
{
    const struct ledger_signer *s = &req->srv->signer;
    char key_id[9];
    snprintf(key_id, sizeof key_id, "%08x", (unsigned)s->verifier.key_id);
    json_t *key =
        json_pack("{s:s, s:b, s:s, s:s, s:o, s:s}", "algorithm", "ed25519", "current", 1, "key_id",
                  key_id, "origin", s->origin, "public_key", b64_json(s->kp.pk, CPX_ED25519_PK_LEN),
                  "verifier_key", s->verifier_key);
    reply_json(req, 200, json_pack("{s:[o]}", "items", key));
}

/* ---- export -----------------------------------------------------------------------------------
 */

enum export_phase { EXPORT_CHECKPOINTS, EXPORT_RECORDS, EXPORT_DONE };

/* The state of one export download, read page by page as the client drains it. */
struct export
{
    struct server *srv;
    uint64_t size; /* records to export: [0, size) */
    enum export_phase phase;
    uint64_t next;             /* next checkpoint size floor (exclusive) or next record seq */
    struct strbuf buf;         /* lines not yet sent */
    size_t sent;               /* bytes of buf already sent */
    struct cpx_canon_writer w; /* line encoder */
    bool failed;
};

/* Ends the line in e->w and appends it to the buffer. */
static void export_line(struct export *e)
{
    const uint8_t *text;
    size_t len;
    if (cpx_canon_writer_finish(&e->w, &text, &len) != CPX_CANON_OK) {
        e->failed = true;
        return;
    }
    strbuf_add(&e->buf, text, len);
    strbuf_add(&e->buf, "\n", 1);
    cpx_canon_writer_reset(&e->w);
}

static bool export_checkpoint(const struct db_checkpoint *cp, void *arg)
{
    struct export *e = arg;
    cpx_canon_begin_object(&e->w);
    cpx_canon_kv_string(&e->w, "checkpoint", cp->note);
    cpx_canon_kv_int(&e->w, "size", (int64_t)cp->size);
    cpx_canon_end_object(&e->w);
    export_line(e);
    e->next = cp->size;
    return !e->failed;
}

static bool export_record(const struct db_record *r, void *arg)
{
    struct export *e = arg;
    size_t len;
    char *text = utf8_repaired(r->bytes, r->len, &len);
    if (text == NULL) {
        e->failed = true;
        return false;
    }
    char leaf[CPX_B64_LEN(CPX_HASH_LEN) + 1];
    cpx_b64_encode(r->leaf, CPX_HASH_LEN, leaf);
    cpx_canon_begin_object(&e->w);
    cpx_canon_key(&e->w, "leaf_hash", 9);
    if (r->has_leaf)
        cpx_canon_string(&e->w, leaf, strlen(leaf));
    else
        cpx_canon_null(&e->w);
    cpx_canon_key(&e->w, "record", 6);
    cpx_canon_string(&e->w, text, len);
    cpx_canon_kv_int(&e->w, "seq", (int64_t)r->seq);
    cpx_canon_end_object(&e->w);
    free(text);
    export_line(e);
    e->next = r->seq + 1;
    return !e->failed;
}

static enum db_status export_fn(struct db_conn *c, void *arg)
{
    struct export *e = arg;
    if (e->phase == EXPORT_CHECKPOINTS)
        return db_ledger_checkpoint_list(c, e->next, e->size, EXPORT_PAGE, export_checkpoint, e);
    return db_ledger_record_list(c, e->next, e->size, EXPORT_PAGE, EXPORT_PAGE_BYTES, export_record,
                                 e);
}

/*
 * Refills the buffer with the next page of lines, moving through the phases: a phase is over
 * when a page brings nothing new (or, for records, the last one was sent). Records missing from
 * the table are not this code's business: the export shows what is stored, and the auditor
 * reports the gap.
 */
static void export_refill(struct export *e)
{
    strbuf_reset(&e->buf);
    e->sent = 0;
    while (e->buf.len == 0 && e->phase != EXPORT_DONE && !e->failed) {
        uint64_t before = e->next;
        enum db_status st = db_run(e->srv->db, export_fn, e);
        if (st != DB_OK || e->buf.failed) {
            log_warn("ledger export: cut short (%s)", st == DB_OK ? "out of memory" : "database");
            e->failed = true;
        } else if (e->phase == EXPORT_CHECKPOINTS && e->next == before) {
            e->phase = EXPORT_RECORDS;
            e->next = 0;
        } else if (e->phase == EXPORT_RECORDS && (e->next == before || e->next >= e->size)) {
            e->phase = EXPORT_DONE;
        }
    }
}

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct export *e = cls;
    if (e->sent == e->buf.len)
        export_refill(e);
    if (e->sent == e->buf.len)
        return e->failed ? REPLY_STREAM_ERROR : REPLY_STREAM_END;
    size_t n = e->buf.len - e->sent;
    if (n > max)
        n = max;
    memcpy(buf, e->buf.data + e->sent, n);
    e->sent += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    struct export *e = cls;
    strbuf_free(&e->buf);
    cpx_canon_writer_free(&e->w);
    free(e);
}

void h_ledger_export(struct request *req)
{
    struct checkpoint_ctx x = { 0 };
    enum db_status st = db_run(req->srv->db, checkpoint_fn, &x);
    if (st != DB_OK && st != DB_NO_ROWS) {
        reply_db_error(req, st);
        return;
    }
    struct export *e = calloc(1, sizeof *e);
    if (e == NULL) {
        db_checkpoint_clear(&x.cp);
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    e->srv = req->srv;
    e->size = st == DB_OK ? x.cp.size : 0;
    db_checkpoint_clear(&x.cp);
    cpx_canon_writer_init(&e->w);
    cpx_canon_begin_object(&e->w);
    cpx_canon_kv_string(&e->w, "format", EXPORT_FORMAT);
    cpx_canon_kv_string(&e->w, "origin", req->srv->signer.origin);
    cpx_canon_kv_int(&e->w, "size", (int64_t)e->size);
    cpx_canon_kv_int(&e->w, "v", 1);
    cpx_canon_end_object(&e->w);
    export_line(e);
    e->phase = e->size == 0 ? EXPORT_DONE : EXPORT_CHECKPOINTS;
    reply_stream(req, 200, "application/x-ndjson", export_read, e, export_free);
}
