/*
 * RFC 9162 Merkle tree: hashing, compact ranges, proofs over a node store, verification, and an
 * in-memory tree. See merkle.h for the definitions and the invariants.
 *
 * Proof generation never builds a tree: it names full nodes by (level, index) and asks the store.
 * Two helpers carry all of it:
 *
 *   range_hash(a, b)  MTH(D[a:b]) for an *aligned* range (a is a multiple of the smallest power of
 *                     two >= b - a, which holds for every subtree RFC 9162's recursion visits):
 *                     the range splits into full nodes by the set bits of b - a, largest first,
 *                     and folds from the right, exactly as the RFC's recursion would.
 *   the inclusion path is computed as transparency logs do it: below level `inner` (where the
 *   paths to the leaf and to the last leaf meet) every sibling exists -- full, or the single
 *   partial right-border range; above it only left siblings exist, and they are full.
 *
 * The consistency proof follows RFC 9162 section 2.1.4.1's SUBPROOF recursion literally (depth at
 * most 64), with MTH of each visited subtree taken from range_hash.
 */
#include "ledger/merkle.h"

#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

static const uint8_t LEAF_PREFIX = 0x00;
static const uint8_t NODE_PREFIX = 0x01;

void cpx_merkle_leaf_hash(struct cpx_sha256_ctx *h, const void *data, size_t len,
                          uint8_t out[CPX_HASH_LEN])
{
    if (h != NULL)
        cpx_sha256_ctx_digest(h, &LEAF_PREFIX, 1, data, len, NULL, 0, out);
    else
        cpx_sha256_2(&LEAF_PREFIX, 1, data, len, out);
}

void cpx_merkle_node_hash(struct cpx_sha256_ctx *h, const uint8_t left[CPX_HASH_LEN],
                          const uint8_t right[CPX_HASH_LEN], uint8_t out[CPX_HASH_LEN])
{
    uint8_t msg[1 + 2 * CPX_HASH_LEN]; /* one buffer, one update; out may alias left or right */
    msg[0] = NODE_PREFIX;
    memcpy(msg + 1, left, CPX_HASH_LEN);
    memcpy(msg + 1 + CPX_HASH_LEN, right, CPX_HASH_LEN);
    if (h != NULL)
        cpx_sha256_ctx_digest(h, msg, sizeof msg, NULL, 0, NULL, 0, out);
    else
        cpx_sha256(msg, sizeof msg, out);
}

void cpx_merkle_empty_root(uint8_t out[CPX_HASH_LEN])
{
    cpx_sha256("", 0, out);
}

/* ---- compact range ------------------------------------------------------------------------- */

void cpx_merkle_range_init(struct cpx_merkle_range *r)
{
    r->size = 0;
}

size_t cpx_merkle_range_append_nodes(struct cpx_sha256_ctx *h, struct cpx_merkle_range *r,
                                     const uint8_t leaf_hash[CPX_HASH_LEN],
                                     struct cpx_merkle_node *out)
{
    if (r->size == UINT64_MAX)
        return 0;
    uint8_t carry[CPX_HASH_LEN];
    memcpy(carry, leaf_hash, CPX_HASH_LEN);
    unsigned level = 0;
    size_t n = 0;
    /* Like binary increment: each set low bit merges its peak into the carry, completing the
     * full node one level up. */
    for (;; level++) {
        if (out != NULL) {
            out[n].level = level;
            out[n].index = r->size >> level;
            memcpy(out[n].hash, carry, CPX_HASH_LEN);
        }
        n++;
        if (!((r->size >> level) & 1))
            break;
        cpx_merkle_node_hash(h, r->peaks[level], carry, carry);
    }
    memcpy(r->peaks[level], carry, CPX_HASH_LEN);
    r->size++;
    return n;
}

bool cpx_merkle_range_append(struct cpx_sha256_ctx *h, struct cpx_merkle_range *r,
                             const uint8_t leaf_hash[CPX_HASH_LEN])
{
    return cpx_merkle_range_append_nodes(h, r, leaf_hash, NULL) != 0;
}

/* Folds peaks of the set bits of size (lowest first, each new one on the left) into out. */
static void fold_peaks(struct cpx_sha256_ctx *h, const uint8_t (*peaks)[CPX_HASH_LEN],
                       uint64_t size, uint8_t out[CPX_HASH_LEN])
{
    if (size == 0) {
        cpx_merkle_empty_root(out);
        return;
    }
    unsigned level = (unsigned)__builtin_ctzll(size);
    memcpy(out, peaks[level], CPX_HASH_LEN);
    for (level++; level < CPX_MERKLE_MAX_LEVELS; level++)
        if ((size >> level) & 1)
            cpx_merkle_node_hash(h, peaks[level], out, out);
}

void cpx_merkle_range_root(struct cpx_sha256_ctx *h, const struct cpx_merkle_range *r,
                           uint8_t out[CPX_HASH_LEN])
{
    fold_peaks(h, (const uint8_t(*)[CPX_HASH_LEN])r->peaks, r->size, out);
}

/* ---- proofs over a store ------------------------------------------------------------------- */

/* The largest power of two strictly below n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
    return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/* out = MTH(D[a:b]) for an aligned range a < b (see the file comment). */
static enum cpx_merkle_error range_hash(const struct cpx_merkle_store *s, struct cpx_sha256_ctx *h,
                                        uint64_t a, uint64_t b, uint8_t out[CPX_HASH_LEN])
{
    uint8_t parts[CPX_MERKLE_MAX_LEVELS][CPX_HASH_LEN];
    unsigned n = 0;
    uint64_t pos = a, left = b - a;
    for (int level = 63; level >= 0; level--) {
        uint64_t width = (uint64_t)1 << level;
        if (!(left & width))
            continue;
        if (s->get(s->ctx, (unsigned)level, pos >> level, parts[n]) != 0)
            return CPX_MERKLE_E_STORE;
        n++;
        pos += width;
    }
    memcpy(out, parts[n - 1], CPX_HASH_LEN);
    while (n-- > 1)
        cpx_merkle_node_hash(h, parts[n - 1], out, out);
    return CPX_MERKLE_OK;
}

enum cpx_merkle_error cpx_merkle_root_from_store(const struct cpx_merkle_store *s,
                                                 struct cpx_sha256_ctx *h, uint64_t size,
                                                 uint8_t out[CPX_HASH_LEN])
{
    if (size == 0) {
        cpx_merkle_empty_root(out);
        return CPX_MERKLE_OK;
    }
    return range_hash(s, h, 0, size, out);
}

enum cpx_merkle_error cpx_merkle_inclusion_proof(const struct cpx_merkle_store *s,
                                                 struct cpx_sha256_ctx *h, uint64_t index,
                                                 uint64_t size, struct cpx_inclusion_proof *out)
{
    out->leaf_index = index;
    out->tree_size = size;
    out->n = 0;
    if (index >= size)
        return CPX_MERKLE_E_ARGS;
    uint64_t diff = index ^ (size - 1);
    unsigned inner = diff == 0 ? 0 : 64 - (unsigned)__builtin_clzll(diff);
    for (unsigned level = 0; level < inner; level++) {
        uint64_t sib = (index >> level) ^ 1;
        uint64_t start = sib << level, width = (uint64_t)1 << level;
        enum cpx_merkle_error err;
        if (size - start >= width) /* a full sibling */
            err = s->get(s->ctx, level, sib, out->hashes[out->n]) == 0 ? CPX_MERKLE_OK
                                                                       : CPX_MERKLE_E_STORE;
        else /* the partial right border: fold its full nodes */
            err = range_hash(s, h, start, size, out->hashes[out->n]);
        if (err != CPX_MERKLE_OK)
            return err;
        out->n++;
    }
    for (unsigned level = inner; level < 64; level++) {
        if (!((index >> level) & 1))
            continue;
        if (s->get(s->ctx, level, (index >> level) - 1, out->hashes[out->n]) != 0)
            return CPX_MERKLE_E_STORE;
        out->n++;
    }
    return CPX_MERKLE_OK;
}

/* RFC 9162 SUBPROOF(m, D[start:start+n], b), appended to out. */
static enum cpx_merkle_error subproof(const struct cpx_merkle_store *s, struct cpx_sha256_ctx *h,
                                      uint64_t m, uint64_t start, uint64_t n, bool b,
                                      struct cpx_consistency_proof *out)
{
    enum cpx_merkle_error err;
    if (m == n) {
        if (b)
            return CPX_MERKLE_OK;
        err = range_hash(s, h, start, start + n, out->hashes[out->n]);
    } else {
        uint64_t k = split_point(n);
        if (m <= k) {
            err = subproof(s, h, m, start, k, b, out);
            if (err == CPX_MERKLE_OK)
                err = range_hash(s, h, start + k, start + n, out->hashes[out->n]);
        } else {
            err = subproof(s, h, m - k, start + k, n - k, false, out);
            if (err == CPX_MERKLE_OK)
                err = range_hash(s, h, start, start + k, out->hashes[out->n]);
        }
    }
    if (err == CPX_MERKLE_OK)
        out->n++;
    return err;
}

enum cpx_merkle_error cpx_merkle_consistency_proof(const struct cpx_merkle_store *s,
                                                   struct cpx_sha256_ctx *h, uint64_t first,
                                                   uint64_t second,
                                                   struct cpx_consistency_proof *out)
{
    out->first = first;
    out->second = second;
    out->n = 0;
    if (first > second)
        return CPX_MERKLE_E_ARGS;
    if (first == 0 || first == second)
        return CPX_MERKLE_OK;
    return subproof(s, h, first, 0, second, true, out);
}

/* ---- verification -------------------------------------------------------------------------- */

bool cpx_merkle_root_from_inclusion(struct cpx_sha256_ctx *h, uint64_t index, uint64_t size,
                                    const uint8_t leaf_hash[CPX_HASH_LEN],
                                    const uint8_t (*hashes)[CPX_HASH_LEN], size_t n,
                                    uint8_t root[CPX_HASH_LEN])
{
    /* RFC 9162 section 2.1.3.2, step by step. */
    if (index >= size || n > 64)
        return false;
    uint64_t fn = index, sn = size - 1;
    memcpy(root, leaf_hash, CPX_HASH_LEN);
    for (size_t i = 0; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            cpx_merkle_node_hash(h, hashes[i], root, root);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            cpx_merkle_node_hash(h, root, hashes[i], root);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0;
}

bool cpx_merkle_verify_inclusion(struct cpx_sha256_ctx *h, uint64_t index, uint64_t size,
                                 const uint8_t leaf_hash[CPX_HASH_LEN],
                                 const uint8_t (*hashes)[CPX_HASH_LEN], size_t n,
                                 const uint8_t root[CPX_HASH_LEN])
{
    uint8_t got[CPX_HASH_LEN];
    return cpx_merkle_root_from_inclusion(h, index, size, leaf_hash, hashes, n, got) &&
           memcmp(got, root, CPX_HASH_LEN) == 0;
}

bool cpx_merkle_verify_consistency(struct cpx_sha256_ctx *h, uint64_t first, uint64_t second,
                                   const uint8_t root1[CPX_HASH_LEN],
                                   const uint8_t root2[CPX_HASH_LEN],
                                   const uint8_t (*hashes)[CPX_HASH_LEN], size_t n)
{
    if (first > second || n > CPX_MERKLE_MAX_PROOF)
        return false;
    if (first == second)
        return n == 0 && memcmp(root1, root2, CPX_HASH_LEN) == 0;
    if (first == 0)
        return n == 0;
    /* RFC 9162 section 2.1.4.2. */
    if (n == 0)
        return false;
    uint8_t fr[CPX_HASH_LEN], sr[CPX_HASH_LEN];
    size_t i = 0;
    if ((first & (first - 1)) == 0) { /* first is a power of two: the path starts at root1 */
        memcpy(fr, root1, CPX_HASH_LEN);
    } else {
        memcpy(fr, hashes[0], CPX_HASH_LEN);
        i = 1;
    }
    memcpy(sr, fr, CPX_HASH_LEN);
    uint64_t fn = first - 1, sn = second - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; i < n; i++) {
        if (sn == 0)
            return false;
        if ((fn & 1) || fn == sn) {
            cpx_merkle_node_hash(h, hashes[i], fr, fr);
            cpx_merkle_node_hash(h, hashes[i], sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            cpx_merkle_node_hash(h, sr, hashes[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(fr, root1, CPX_HASH_LEN) == 0 && memcmp(sr, root2, CPX_HASH_LEN) == 0;
}

/* ---- in-memory tree ------------------------------------------------------------------------ */

int cpx_merkle_tree_init(struct cpx_merkle_tree *t)
{
    memset(t, 0, sizeof *t);
    t->hash = cpx_sha256_ctx_new();
    return t->hash != NULL ? 0 : -1;
}

void cpx_merkle_tree_free(struct cpx_merkle_tree *t)
{
    for (unsigned l = 0; l < CPX_MERKLE_MAX_LEVELS; l++)
        free(t->levels[l].h);
    cpx_sha256_ctx_free(t->hash);
    memset(t, 0, sizeof *t);
}

/* Makes room for node `index` at level l. Returns false on no memory. */
static bool level_reserve(struct cpx_merkle_level *lv, uint64_t index)
{
    if (index < lv->cap)
        return true;
    uint64_t cap = lv->cap ? lv->cap * 2 : 1024;
    if (cap > SIZE_MAX / CPX_HASH_LEN)
        return false;
    uint8_t(*bigger)[CPX_HASH_LEN] = realloc(lv->h, (size_t)cap * CPX_HASH_LEN);
    if (bigger == NULL)
        return false;
    lv->h = bigger;
    lv->cap = cap;
    return true;
}

int cpx_merkle_tree_append_hash(struct cpx_merkle_tree *t, const uint8_t leaf_hash[CPX_HASH_LEN])
{
    if (t->size == UINT64_MAX)
        return -1;
    /* Reserve every level this append writes first, so that failure leaves t unchanged. */
    uint64_t index = t->size;
    unsigned top = (unsigned)__builtin_ctzll(~index); /* levels 0..top gain a node */
    for (unsigned l = 0; l <= top; l++)
        if (!level_reserve(&t->levels[l], index >> l))
            return -1;
    memcpy(t->levels[0].h[index], leaf_hash, CPX_HASH_LEN);
    for (unsigned l = 0; l < top; l++) {
        uint64_t i = index >> l; /* odd: the right child just completed */
        cpx_merkle_node_hash(t->hash, t->levels[l].h[i - 1], t->levels[l].h[i],
                             t->levels[l + 1].h[i >> 1]);
    }
    t->size++;
    t->root_valid = false;
    return 0;
}

int cpx_merkle_tree_append(struct cpx_merkle_tree *t, const void *data, size_t len)
{
    uint8_t leaf[CPX_HASH_LEN];
    cpx_merkle_leaf_hash(t->hash, data, len, leaf);
    return cpx_merkle_tree_append_hash(t, leaf);
}

void cpx_merkle_tree_root(struct cpx_merkle_tree *t, uint8_t out[CPX_HASH_LEN])
{
    if (!t->root_valid || t->root_size != t->size) {
        uint8_t peaks[CPX_MERKLE_MAX_LEVELS][CPX_HASH_LEN];
        for (unsigned l = 0; l < CPX_MERKLE_MAX_LEVELS; l++)
            if ((t->size >> l) & 1)
                memcpy(peaks[l], t->levels[l].h[(t->size >> l) - 1], CPX_HASH_LEN);
        fold_peaks(t->hash, (const uint8_t(*)[CPX_HASH_LEN])peaks, t->size, t->root);
        t->root_size = t->size;
        t->root_valid = true;
    }
    memcpy(out, t->root, CPX_HASH_LEN);
}

/* The store callback of an in-memory tree. */
static int tree_get(void *ctx, unsigned level, uint64_t index, uint8_t out[CPX_HASH_LEN])
{
    const struct cpx_merkle_tree *t = ctx;
    if (level >= CPX_MERKLE_MAX_LEVELS || index >= (t->size >> level))
        return -1;
    memcpy(out, t->levels[level].h[index], CPX_HASH_LEN);
    return 0;
}

struct cpx_merkle_store cpx_merkle_tree_store(struct cpx_merkle_tree *t)
{
    return (struct cpx_merkle_store){ .get = tree_get, .ctx = t };
}

/* ---- wire form ----------------------------------------------------------------------------- */

/* Writes "hashes":[...] (the key too). */
static void write_hashes(struct cpx_canon_writer *w, const uint8_t (*hashes)[CPX_HASH_LEN],
                         size_t n)
{
    cpx_canon_key(w, "hashes", 6);
    cpx_canon_begin_array(w);
    for (size_t i = 0; i < n; i++)
        cpx_canon_base64(w, hashes[i], CPX_HASH_LEN);
    cpx_canon_end_array(w);
}

enum cpx_canon_error cpx_inclusion_proof_write(struct cpx_canon_writer *w,
                                               const struct cpx_inclusion_proof *p)
{
    cpx_canon_begin_object(w);
    write_hashes(w, (const uint8_t(*)[CPX_HASH_LEN])p->hashes, p->n);
    cpx_canon_kv_int(w, "leaf_index", (int64_t)p->leaf_index);
    cpx_canon_kv_int(w, "tree_size", (int64_t)p->tree_size);
    return cpx_canon_end_object(w);
}

enum cpx_canon_error cpx_consistency_proof_write(struct cpx_canon_writer *w,
                                                 const struct cpx_consistency_proof *p)
{
    cpx_canon_begin_object(w);
    cpx_canon_kv_int(w, "first", (int64_t)p->first);
    write_hashes(w, (const uint8_t(*)[CPX_HASH_LEN])p->hashes, p->n);
    cpx_canon_kv_int(w, "second", (int64_t)p->second);
    return cpx_canon_end_object(w);
}

/* Reads a non-negative integer member. Returns false when missing or negative. */
static bool get_size(const struct cpx_canon_doc *d, const struct cpx_canon_node *obj,
                     const char *key, uint64_t *out)
{
    const struct cpx_canon_node *v = cpx_canon_get(d, obj, key);
    if (v == NULL || v->type != CPX_CANON_INT || v->ival < 0)
        return false;
    *out = (uint64_t)v->ival;
    return true;
}

/*
 * Parses {"<a>":int,"hashes":[...],"<b>":int} with exactly those three members. Returns NULL or
 * an error sentence.
 */
static const char *parse_proof(const void *json, size_t len, const char *ka, const char *kb,
                               size_t max, uint64_t *a, uint64_t *b,
                               uint8_t (*hashes)[CPX_HASH_LEN], size_t *n)
{
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    const char *err = NULL;
    if (cpx_canon_parse(&doc, json, len, NULL) != CPX_CANON_OK) {
        err = "proof is not canonical JSON";
        goto cleanup;
    }
    const struct cpx_canon_node *root = cpx_canon_root(&doc);
    if (root->type != CPX_CANON_OBJECT || root->count != 3) {
        err = "proof must be an object with exactly three members";
        goto cleanup;
    }
    if (!get_size(&doc, root, ka, a) || !get_size(&doc, root, kb, b)) {
        err = "proof sizes must be non-negative integers";
        goto cleanup;
    }
    const struct cpx_canon_node *arr = cpx_canon_get(&doc, root, "hashes");
    if (arr == NULL || arr->type != CPX_CANON_ARRAY) {
        err = "proof hashes must be an array";
        goto cleanup;
    }
    if (arr->count > max) {
        err = "proof has too many hashes";
        goto cleanup;
    }
    *n = 0;
    for (const struct cpx_canon_node *e = cpx_canon_first(&doc, arr); e != NULL;
         e = cpx_canon_next(&doc, e)) {
        size_t blen;
        const uint8_t *b64 = cpx_canon_bytes(&doc, e, &blen);
        if (e->type != CPX_CANON_STRING || blen != CPX_B64_LEN(CPX_HASH_LEN) + 2 ||
            cpx_b64_decode((const char *)b64 + 1, blen - 2, hashes[*n], CPX_HASH_LEN) !=
                CPX_HASH_LEN) {
            err = "proof hash is not base64 of 32 bytes";
            goto cleanup;
        }
        (*n)++;
    }
cleanup:
    cpx_canon_doc_free(&doc);
    return err;
}

const char *cpx_inclusion_proof_parse(const void *json, size_t len, struct cpx_inclusion_proof *out)
{
    const char *err = parse_proof(json, len, "leaf_index", "tree_size", 64, &out->leaf_index,
                                  &out->tree_size, out->hashes, &out->n);
    if (err == NULL && out->leaf_index >= out->tree_size)
        err = "proof leaf_index must be below tree_size";
    return err;
}

const char *cpx_consistency_proof_parse(const void *json, size_t len,
                                        struct cpx_consistency_proof *out)
{
    const char *err = parse_proof(json, len, "first", "second", CPX_MERKLE_MAX_PROOF, &out->first,
                                  &out->second, out->hashes, &out->n);
    if (err == NULL && out->first > out->second)
        err = "proof first must not exceed second";
    return err;
}
