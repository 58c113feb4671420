/*
 * The ledger's Merkle tree: RFC 9162 (Certificate Transparency v2) section 2.1, as used by every
 * transparency log (Trillian, Tessera, Sigstore's Rekor, the Go checksum database).
 *
 *   leaf hash   SHA-256(0x00 || record bytes)
 *   node hash   SHA-256(0x01 || left || right)
 *   MTH({})     SHA-256("")          (the empty tree)
 *   MTH(D[n])   for n > 1: k = largest power of two < n,
 *               node hash(MTH(D[0:k]), MTH(D[k:n]))
 *
 * Leaf i of the tree is the record with sequence number i (records count from 0).
 *
 * Full nodes. The node at (level L, index i) is the root of the *full* subtree over leaves
 * [i * 2^L, (i + 1) * 2^L). Once written it never changes: appending only creates new full nodes.
 * A tree of size n has exactly the full nodes with (i + 1) * 2^L <= n. Every hash any proof needs
 * is either a full node or the MTH of a right-border range [a, n), which is the fold of at most
 * 64 full nodes (its "compact range"). So a store that keeps full nodes by (level, index) -- an
 * array in memory, or a PostgreSQL table keyed by (level, index) in the server -- answers any
 * root, inclusion proof or consistency proof in O(log n) reads. The store is the callback pair
 * struct cpx_merkle_store; which nodes a proof reads depends only on the sizes and the index,
 * never on hash values, so a caller may run a proof once with a store that records the requested
 * coordinates, fetch them all in one query, and run it again from the fetched set.
 *
 * Compact range. struct cpx_merkle_range holds, for a tree of size n, the full nodes for the set
 * bits of n (the "peaks": bit L set means a full subtree of 2^L leaves). 64 hashes at most: this
 * is all an auditor needs to keep to extend the tree and compute its root, and it is what the
 * audit state saves between runs.
 *
 * The in-memory tree (struct cpx_merkle_tree) keeps every full node in one growable array per
 * level: appending hashes the leaf and, on average, one node (level L gains a node every 2^L
 * appends). The root is computed on demand from the peaks (popcount(n) - 1 node hashes) and
 * cached until the next append.
 *
 * Verification follows RFC 9162 sections 2.1.3.2 (inclusion) and 2.1.4.2 (consistency) exactly,
 * including its length rules: a proof with a hash too many or too few fails. Two edge cases the
 * RFC leaves open are settled as the Go implementations settle them: a consistency proof between
 * equal sizes is empty and holds when the roots are equal; one from size 0 is empty and always
 * holds.
 *
 * Wire shapes (canonical JSON, hashes in standard base64):
 *   inclusion    {"hashes":["<b64>",...],"leaf_index":I,"tree_size":N}
 *   consistency  {"first":M,"hashes":["<b64>",...],"second":N}
 * The hashes are in the RFC's order: from the leaf (or the old root) upwards.
 */
#ifndef CPX_LEDGER_MERKLE_H
#define CPX_LEDGER_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/canon.h"
#include "ledger/crypto.h"

#define CPX_HASH_LEN          CPX_SHA256_LEN
#define CPX_MERKLE_MAX_LEVELS 64  /* tree sizes are uint64_t: at most 64 levels of full nodes */
#define CPX_MERKLE_MAX_PROOF  128 /* longest proof accepted: inclusion <= 64, consistency <= 128 */

/* Why a proof could not be produced. */
enum cpx_merkle_error {
    CPX_MERKLE_OK = 0,
    CPX_MERKLE_E_ARGS,  /* index >= size, first > second, or a size beyond the tree */
    CPX_MERKLE_E_STORE, /* the store could not supply a node */
    CPX_MERKLE_E_NOMEM, /* allocation failed */
};

/* ---- hashing ------------------------------------------------------------------------------- */

/*
 * out = SHA-256(0x00 || data[0..len)). h is a reusable context (fast) or NULL (cpx_sha256_2,
 * slower): every hashing call below takes h the same way.
 */
void cpx_merkle_leaf_hash(struct cpx_sha256_ctx *h, const void *data, size_t len,
                          uint8_t out[CPX_HASH_LEN]);

/* out = SHA-256(0x01 || left || right). out may alias left or right. */
void cpx_merkle_node_hash(struct cpx_sha256_ctx *h, const uint8_t left[CPX_HASH_LEN],
                          const uint8_t right[CPX_HASH_LEN], uint8_t out[CPX_HASH_LEN]);

/* out = SHA-256(""), the root of the empty tree. */
void cpx_merkle_empty_root(uint8_t out[CPX_HASH_LEN]);

/* ---- compact range ------------------------------------------------------------------------- */

/* The peaks of a tree of `size` leaves: enough to extend it and to compute its root. */
struct cpx_merkle_range {
    uint64_t size;                                      /* leaves covered, [0, size) */
    uint8_t peaks[CPX_MERKLE_MAX_LEVELS][CPX_HASH_LEN]; /* peaks[L]: full node (L, (size >> L) - 1)
                                                           when bit L of size is set; else unused */
};

/* Makes r the range of the empty tree. */
void cpx_merkle_range_init(struct cpx_merkle_range *r);

/* Appends one leaf hash. Returns false (r unchanged) when r already holds 2^64 - 1 leaves. */
bool cpx_merkle_range_append(struct cpx_sha256_ctx *h, struct cpx_merkle_range *r,
                             const uint8_t leaf_hash[CPX_HASH_LEN]);

/* A full node by its coordinates, as a node store keeps it. */
struct cpx_merkle_node {
    unsigned level;             /* 0 for leaves */
    uint64_t index;             /* position within the level */
    uint8_t hash[CPX_HASH_LEN]; /* its hash */
};

/*
 * Appends one leaf hash like cpx_merkle_range_append and writes into out (room for
 * CPX_MERKLE_MAX_LEVELS + 1 entries) every full node the append completes: the leaf at (0, old
 * size) and one node per level the carry reaches. These are exactly the rows a node store must
 * gain for the new size. Returns their number (1 + the trailing one bits of the old size), or 0
 * (r unchanged) when r is full.
 */
size_t cpx_merkle_range_append_nodes(struct cpx_sha256_ctx *h, struct cpx_merkle_range *r,
                                     const uint8_t leaf_hash[CPX_HASH_LEN],
                                     struct cpx_merkle_node *out);

/* out = MTH of the range's tree (the empty-tree hash for size 0). */
void cpx_merkle_range_root(struct cpx_sha256_ctx *h, const struct cpx_merkle_range *r,
                           uint8_t out[CPX_HASH_LEN]);

/* ---- node store ---------------------------------------------------------------------------- */

/*
 * Read access to full nodes. get writes the hash of full node (level, index) into out and returns
 * 0, or returns -1 when it cannot (missing node, database error). Proof functions call it only for
 * nodes that exist in a tree of the size they are asked about.
 */
struct cpx_merkle_store {
    int (*get)(void *ctx, unsigned level, uint64_t index, uint8_t out[CPX_HASH_LEN]);
    void *ctx; /* passed to get */
};

/* An inclusion proof of leaf leaf_index in the tree of size tree_size. */
struct cpx_inclusion_proof {
    uint64_t leaf_index;                                /* the leaf (record sequence number) */
    uint64_t tree_size;                                 /* the tree the proof leads to */
    size_t n;                                           /* hashes in use */
    uint8_t hashes[CPX_MERKLE_MAX_PROOF][CPX_HASH_LEN]; /* from the leaf's sibling upwards */
};

/* A consistency proof from the tree of size first to the tree of size second. */
struct cpx_consistency_proof {
    uint64_t first;                                     /* the older, smaller tree */
    uint64_t second;                                    /* the newer tree */
    size_t n;                                           /* hashes in use */
    uint8_t hashes[CPX_MERKLE_MAX_PROOF][CPX_HASH_LEN]; /* RFC 9162 section 2.1.4.1 order */
};

/* out = MTH of the first `size` leaves, from full nodes (at most 64 reads). */
enum cpx_merkle_error cpx_merkle_root_from_store(const struct cpx_merkle_store *s,
                                                 struct cpx_sha256_ctx *h, uint64_t size,
                                                 uint8_t out[CPX_HASH_LEN]);

/* Fills out with the inclusion proof of leaf index in the tree of size `size` (O(log n) reads). */
enum cpx_merkle_error cpx_merkle_inclusion_proof(const struct cpx_merkle_store *s,
                                                 struct cpx_sha256_ctx *h, uint64_t index,
                                                 uint64_t size, struct cpx_inclusion_proof *out);

/* Fills out with the consistency proof from size first to size second (first <= second). */
enum cpx_merkle_error cpx_merkle_consistency_proof(const struct cpx_merkle_store *s,
                                                   struct cpx_sha256_ctx *h, uint64_t first,
                                                   uint64_t second,
                                                   struct cpx_consistency_proof *out);

/* ---- verification (RFC 9162 2.1.3.2 and 2.1.4.2) ------------------------------------------- */

/*
 * Computes the root that an inclusion proof leads to from leaf_hash. Returns false when the
 * proof's length or shape does not fit (index, size); then root is unspecified.
 */
bool cpx_merkle_root_from_inclusion(struct cpx_sha256_ctx *h, uint64_t index, uint64_t size,
                                    const uint8_t leaf_hash[CPX_HASH_LEN],
                                    const uint8_t (*hashes)[CPX_HASH_LEN], size_t n,
                                    uint8_t root[CPX_HASH_LEN]);

/* True when the proof shows leaf_hash at index in the tree of size `size` whose root is root. */
bool cpx_merkle_verify_inclusion(struct cpx_sha256_ctx *h, uint64_t index, uint64_t size,
                                 const uint8_t leaf_hash[CPX_HASH_LEN],
                                 const uint8_t (*hashes)[CPX_HASH_LEN], size_t n,
                                 const uint8_t root[CPX_HASH_LEN]);

/* True when the proof shows the tree (first, root1) is a prefix of the tree (second, root2). */
bool cpx_merkle_verify_consistency(struct cpx_sha256_ctx *h, uint64_t first, uint64_t second,
                                   const uint8_t root1[CPX_HASH_LEN],
                                   const uint8_t root2[CPX_HASH_LEN],
                                   const uint8_t (*hashes)[CPX_HASH_LEN], size_t n);

/* ---- in-memory tree ------------------------------------------------------------------------ */

/* The full nodes of one level, in index order. */
struct cpx_merkle_level {
    uint8_t (*h)[CPX_HASH_LEN]; /* h[i] = full node (level, i); NULL while empty */
    uint64_t cap;               /* entries allocated */
};

/* An appendable tree that keeps every full node in memory (about 64 bytes per leaf). */
struct cpx_merkle_tree {
    uint64_t size;                                         /* leaves appended */
    struct cpx_merkle_level levels[CPX_MERKLE_MAX_LEVELS]; /* level L holds size >> L nodes */
    struct cpx_sha256_ctx *hash;                           /* owned hashing context */
    uint64_t root_size;                                    /* size at which root was computed */
    bool root_valid;                                       /* root is the MTH at root_size */
    uint8_t root[CPX_HASH_LEN];                            /* cached root */
};

/* Makes t an empty tree. Returns 0, or -1 when the hashing context cannot be allocated. */
int cpx_merkle_tree_init(struct cpx_merkle_tree *t);

/* Frees everything t holds. */
void cpx_merkle_tree_free(struct cpx_merkle_tree *t);

/* Appends the record data[0..len) as the next leaf. Returns 0, or -1 (t unchanged) on no memory. */
int cpx_merkle_tree_append(struct cpx_merkle_tree *t, const void *data, size_t len);

/* Appends an already computed leaf hash. Returns 0, or -1 (t unchanged) on no memory. */
int cpx_merkle_tree_append_hash(struct cpx_merkle_tree *t, const uint8_t leaf_hash[CPX_HASH_LEN]);

/* out = the current root (cached until the next append). */
void cpx_merkle_tree_root(struct cpx_merkle_tree *t, uint8_t out[CPX_HASH_LEN]);

/* A store reading t's full nodes; valid while t lives (appends keep it valid). */
struct cpx_merkle_store cpx_merkle_tree_store(struct cpx_merkle_tree *t);

/* ---- wire form ----------------------------------------------------------------------------- */

/* Writes p as canonical JSON into w (see the shapes above). Returns w's error state. */
enum cpx_canon_error cpx_inclusion_proof_write(struct cpx_canon_writer *w,
                                               const struct cpx_inclusion_proof *p);
enum cpx_canon_error cpx_consistency_proof_write(struct cpx_canon_writer *w,
                                                 const struct cpx_consistency_proof *p);

/*
 * Parses a proof from canonical JSON (untrusted). Returns NULL on success, or a sentence saying
 * what is wrong (out is then unspecified). Parsing checks shape only; verify to trust it.
 */
const char *cpx_inclusion_proof_parse(const void *json, size_t len,
                                      struct cpx_inclusion_proof *out);
const char *cpx_consistency_proof_parse(const void *json, size_t len,
                                        struct cpx_consistency_proof *out);

#endif
