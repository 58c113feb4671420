/*
 * The ledger writer: see ledger_writer.h.
 */
#include "server/ledger_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/log.h"
#include "server/util.h"

#define KEYFILE_READ_MAX 4096

const char *ledger_signer_load(struct ledger_signer *s, const char *path, const char *origin)
{
    static _Thread_local char why[512];
    memset(s, 0, sizeof *s);
    if (!cpx_note_name_valid(origin, strlen(origin)) || strlen(origin) >= sizeof s->origin)
        return "the ledger origin must be a non-empty name without spaces or '+'";
    size_t len;
    char *text = read_file(path, KEYFILE_READ_MAX, &len);
    if (text == NULL) {
        snprintf(why, sizeof why, "cannot read it: %s", strerror(errno));
        return why;
    }
    struct cpx_keyfile kf;
    const char *bad = cpx_keyfile_parse(text, len, &kf);
    memset(text, 0, len);
    free(text);
    if (bad != NULL)
        return bad;
    snprintf(s->origin, sizeof s->origin, "%s", origin);
    s->kp = kf.kp;
    cpx_keypair_wipe(&kf.kp);
    if (!cpx_note_verifier_init(&s->verifier, origin, s->kp.pk))
        return "the ledger origin is not a valid key name";
    cpx_note_verifier_format(&s->verifier, s->verifier_key);
    return NULL;
}

void ledger_signer_wipe(struct ledger_signer *s)
{
    cpx_keypair_wipe(&s->kp);
}

void ledger_batch_init(struct ledger_batch *b, const struct ledger_signer *signer)
{
    memset(b, 0, sizeof *b);
    b->signer = signer;
    cpx_canon_writer_init(&b->w);
}

void ledger_batch_reset(struct ledger_batch *b)
{
    for (size_t i = 0; i < b->nrows; i++)
        free((void *)b->rows[i].bytes);
    b->nrows = 0;
    b->nnodes = 0;
    b->begun = false;
}

void ledger_batch_free(struct ledger_batch *b)
{
    ledger_batch_reset(b);
    free(b->rows);
    free(b->nodes);
    cpx_canon_writer_free(&b->w);
    cpx_sha256_ctx_free(b->hash);
    memset(b, 0, sizeof *b);
}

/* Locks the head and loads the tree's compact range: its peaks are full nodes in the table. */
enum db_status ledger_batch_begin(struct db_conn *c, struct ledger_batch *b)
{
    if (b->begun)
        return DB_OK;
    if (b->hash == NULL && (b->hash = cpx_sha256_ctx_new()) == NULL)
        return DB_HARD;
    uint64_t size;
    enum db_status st = db_ledger_head_lock(c, &size, &b->ts_ms);
    if (st != DB_OK)
        return st;
    struct cpx_merkle_node peaks[CPX_MERKLE_MAX_LEVELS];
    uint8_t hashes[CPX_MERKLE_MAX_LEVELS][CPX_HASH_LEN];
    bool found[CPX_MERKLE_MAX_LEVELS];
    size_t n = 0;
    for (unsigned level = 0; level < CPX_MERKLE_MAX_LEVELS; level++)
        if ((size >> level) & 1)
            peaks[n++] = (struct cpx_merkle_node){ .level = level, .index = (size >> level) - 1 };
    st = db_ledger_nodes_get(c, peaks, n, hashes, found);
    if (st != DB_OK)
        return st;
    cpx_merkle_range_init(&b->range);
    b->range.size = size;
    for (size_t i = 0; i < n; i++) {
        if (!found[i]) {
            log_error("ledger: node (%u, %llu) of the tree of size %llu is missing", peaks[i].level,
                      (unsigned long long)peaks[i].index, (unsigned long long)size);
            return DB_HARD;
        }
        memcpy(b->range.peaks[peaks[i].level], hashes[i], CPX_HASH_LEN);
    }
    b->start = size;
    b->begun = true;
    return DB_OK;
}

/* Makes room for one more row and CPX_MERKLE_MAX_LEVELS + 1 more nodes. */
static bool batch_grow(struct ledger_batch *b)
{
    if (b->nrows == b->rows_cap) {
        size_t cap = b->rows_cap ? 2 * b->rows_cap : 8;
        void *p = realloc(b->rows, cap * sizeof *b->rows);
        if (p == NULL)
            return false;
        b->rows = p;
        b->rows_cap = cap;
    }
    if (b->nodes_cap - b->nnodes < CPX_MERKLE_MAX_LEVELS + 1) {
        size_t cap = 2 * b->nodes_cap + CPX_MERKLE_MAX_LEVELS + 1;
        void *p = realloc(b->nodes, cap * sizeof *b->nodes);
        if (p == NULL)
            return false;
        b->nodes = p;
        b->nodes_cap = cap;
    }
    return true;
}

enum db_status ledger_append(struct db_conn *c, struct ledger_batch *b, enum cpx_kind kind,
                             const struct cpx_party *party, const uint8_t *payload, size_t len,
                             uint64_t *seq)
{
    enum db_status st = ledger_batch_begin(c, b);
    if (st != DB_OK)
        return st;
    if (!batch_grow(b))
        return DB_HARD;
    int64_t now_ms = now_us() / 1000;
    struct cpx_record r;
    cpx_record_init(&r);
    r.seq = b->range.size;
    r.kind = kind;
    r.ts = now_ms > b->ts_ms ? now_ms : b->ts_ms;
    r.payload = payload;
    r.payload_len = len;
    r.has_party = party != NULL;
    if (party != NULL)
        r.party = *party;
    cpx_canon_writer_reset(&b->w);
    const uint8_t *bytes;
    size_t n;
    enum cpx_canon_error err = cpx_record_encode(&b->w, &r);
    if (err == CPX_CANON_OK)
        err = cpx_canon_writer_finish(&b->w, &bytes, &n);
    if (err != CPX_CANON_OK) {
        log_error("ledger: cannot encode a %s record: %s", cpx_kind_name(kind),
                  cpx_canon_error_text(err));
        return DB_HARD;
    }
    uint8_t *copy = malloc(n);
    if (copy == NULL)
        return DB_HARD;
    memcpy(copy, bytes, n);
    uint8_t leaf[CPX_HASH_LEN];
    cpx_merkle_leaf_hash(b->hash, copy, n, leaf);
    size_t added = cpx_merkle_range_append_nodes(b->hash, &b->range, leaf, b->nodes + b->nnodes);
    if (added == 0) {
        free(copy);
        return DB_HARD;
    }
    b->nnodes += added;
    struct db_ledger_row *row = &b->rows[b->nrows++];
    *row = (struct db_ledger_row){
        .seq = r.seq, .kind = cpx_kind_name(kind), .ts_ms = r.ts, .bytes = copy, .len = n
    };
    if (party != NULL)
        snprintf(row->party_id, sizeof row->party_id, "%s", party->id);
    b->ts_ms = r.ts;
    *seq = r.seq;
    return DB_OK;
}

enum db_status ledger_batch_commit(struct db_conn *c, struct ledger_batch *b)
{
    if (!b->begun || b->nrows == 0)
        return DB_OK;
    enum db_status st = db_ledger_insert(c, b->rows, b->nrows, b->nodes, b->nnodes);
    if (st != DB_OK)
        return st;
    struct cpx_checkpoint cp = { .size = b->range.size };
    snprintf(cp.origin, sizeof cp.origin, "%s", b->signer->origin);
    cpx_merkle_range_root(b->hash, &b->range, cp.root);
    char note[CPX_ORIGIN_MAX + 256];
    long len = cpx_checkpoint_sign(&cp, b->signer->origin, &b->signer->kp, note, sizeof note);
    if (len < 0) {
        log_error("ledger: cannot sign the checkpoint of size %llu", (unsigned long long)cp.size);
        return DB_HARD;
    }
    st = db_ledger_checkpoint_insert(c, cp.size, cp.root, note, b->ts_ms);
    if (st == DB_OK)
        st = db_ledger_head_set(c, b->range.size, b->ts_ms);
    return st;
}
