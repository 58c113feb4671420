/*
 * Known-answer tests of ledger/merkle.c:
 *   - the RFC 6962 test vectors that Go's transparency-dev/merkle and Trillian use (hasher
 *     answers, roots of the eight-leaf tree, their inclusion and consistency proofs);
 *   - the root of every tree size 1..512 against a naive recursive MTH;
 *   - every inclusion proof (index < size <= 128) and every consistency proof (m <= n <= 128)
 *     against the RFC's recursive PATH and PROOF, and through the verifier;
 *   - rejection of every single-bit change of every proof for sizes up to 32, and of wrong
 *     indices, sizes, truncated and extended proofs;
 *   - the wire form: round trip and rejection of malformed proofs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/crypto.h"
#include "ledger/merkle.h"
#include "tests/support/ledger_naive.h"

#define MAX_TREE       512
#define MAX_PROOF_TREE 128
#define MAX_FLIP_TREE  32

/* Shared by the tests: leaf hashes of records "leaf-0" ... and a tree holding them all. */
struct fixture {
    uint8_t leaves[MAX_TREE][32];
    struct cpx_merkle_tree tree;
    struct cpx_sha256_ctx *h;
};

static int setup(void **state)
{
    static struct fixture f;
    cpx_crypto_init();
    if (cpx_merkle_tree_init(&f.tree) != 0)
        return -1;
    f.h = cpx_sha256_ctx_new();
    for (int i = 0; i < MAX_TREE; i++) {
        char rec[32];
        int n = snprintf(rec, sizeof rec, "leaf-%d", i);
        naive_leaf_hash(rec, (size_t)n, f.leaves[i]);
        if (cpx_merkle_tree_append(&f.tree, rec, (size_t)n) != 0)
            return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    cpx_merkle_tree_free(&f->tree);
    cpx_sha256_ctx_free(f->h);
    return 0;
}

static void hex32(const char *hex, uint8_t out[32])
{
    assert_true(cpx_hex_decode(hex, strlen(hex), out, 32));
}

/* ---- RFC 6962 vectors (transparency-dev/merkle rfc6962_test.go and proof/verify_test.go) -- */

static void test_hasher_vectors(void **state)
{
    (void)state;
    uint8_t got[32], want[32];
    cpx_merkle_empty_root(got);
    hex32("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
    assert_memory_equal(got, want, 32);
    cpx_merkle_leaf_hash(NULL, "", 0, got);
    hex32("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", want);
    assert_memory_equal(got, want, 32);
    cpx_merkle_leaf_hash(NULL, "L123456", 7, got);
    hex32("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56", want);
    assert_memory_equal(got, want, 32);
    /* The context and the context-free paths agree. */
    struct cpx_sha256_ctx *h = cpx_sha256_ctx_new();
    cpx_merkle_leaf_hash(h, "L123456", 7, got);
    assert_memory_equal(got, want, 32);
    uint8_t a[32], b[32];
    cpx_merkle_node_hash(h, want, got, a);
    cpx_merkle_node_hash(NULL, want, got, b);
    assert_memory_equal(a, b, 32);
    cpx_sha256_ctx_free(h);
}

/* The eight leaves of the RFC 6962 test tree and its roots at sizes 1..8. */
static const char *const rfc_leaves_hex[8] = {
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
};
static const char *const rfc_roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

/* A known proof: (a, b) is (leaf index, size) or (first, second). */
struct known_proof {
    uint64_t a, b;
    size_t n;
    const char *hashes[4];
};

static const struct known_proof rfc_inclusion[] = {
    { 0,
      8,
      3,
      { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
    { 5,
      8,
      3,
      { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
    { 2, 3, 1, { "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125" } },
    { 1,
      5,
      3,
      { "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
    { 0, 1, 0, { NULL } },
};

static const struct known_proof rfc_consistency[] = {
    { 1, 1, 0, { NULL } },
    { 1,
      8,
      3,
      { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
    { 6,
      8,
      3,
      { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
    { 2,
      5,
      2,
      { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
    { 6,
      7,
      3,
      { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
};

static void test_rfc6962_vectors(void **state)
{
    (void)state;
    struct cpx_merkle_tree t;
    assert_int_equal(cpx_merkle_tree_init(&t), 0);
    uint8_t leaf_hashes[8][32], want[32], got[32];
    for (int i = 0; i < 8; i++) {
        uint8_t data[16];
        size_t n = strlen(rfc_leaves_hex[i]) / 2;
        assert_true(cpx_hex_decode(rfc_leaves_hex[i], 2 * n, data, n));
        cpx_merkle_leaf_hash(NULL, data, n, leaf_hashes[i]);
        assert_int_equal(cpx_merkle_tree_append(&t, data, n), 0);
        cpx_merkle_tree_root(&t, got);
        hex32(rfc_roots[i], want);
        assert_memory_equal(got, want, 32);
    }
    struct cpx_merkle_store s = cpx_merkle_tree_store(&t);
    for (size_t k = 0; k < sizeof rfc_inclusion / sizeof rfc_inclusion[0]; k++) {
        const struct known_proof *kp = &rfc_inclusion[k];
        struct cpx_inclusion_proof p;
        assert_int_equal(cpx_merkle_inclusion_proof(&s, NULL, kp->a, kp->b, &p), CPX_MERKLE_OK);
        assert_int_equal(p.n, kp->n);
        uint8_t hashes[4][32];
        for (size_t i = 0; i < kp->n; i++) {
            hex32(kp->hashes[i], hashes[i]);
            assert_memory_equal(p.hashes[i], hashes[i], 32);
        }
        hex32(rfc_roots[kp->b - 1], want);
        assert_true(cpx_merkle_verify_inclusion(NULL, kp->a, kp->b, leaf_hashes[kp->a],
                                                (const uint8_t(*)[32])hashes, kp->n, want));
    }
    for (size_t k = 0; k < sizeof rfc_consistency / sizeof rfc_consistency[0]; k++) {
        const struct known_proof *kp = &rfc_consistency[k];
        struct cpx_consistency_proof p;
        assert_int_equal(cpx_merkle_consistency_proof(&s, NULL, kp->a, kp->b, &p), CPX_MERKLE_OK);
        assert_int_equal(p.n, kp->n);
        uint8_t hashes[4][32], r1[32], r2[32];
        for (size_t i = 0; i < kp->n; i++) {
            hex32(kp->hashes[i], hashes[i]);
            assert_memory_equal(p.hashes[i], hashes[i], 32);
        }
        hex32(rfc_roots[kp->a - 1], r1);
        hex32(rfc_roots[kp->b - 1], r2);
        assert_true(cpx_merkle_verify_consistency(NULL, kp->a, kp->b, r1, r2,
                                                  (const uint8_t(*)[32])hashes, kp->n));
        if (kp->n > 0) /* swapped roots never verify */
            assert_false(cpx_merkle_verify_consistency(NULL, kp->a, kp->b, r2, r1,
                                                       (const uint8_t(*)[32])hashes, kp->n));
    }
    cpx_merkle_tree_free(&t);
}

/* The edge cases of transparency-dev's TestVerifyConsistency and TestVerifyInclusion. */
static void test_verifier_edge_cases(void **state)
{
    (void)state;
    uint8_t r1[32], r2[32], empty[32], one[1][32];
    memset(r1, 1, 32);
    memset(r2, 2, 32);
    cpx_merkle_empty_root(empty);
    memcpy(one[0], empty, 32);
    assert_false(cpx_merkle_verify_consistency(NULL, 0, 0, r1, r2, NULL, 0));
    assert_false(cpx_merkle_verify_consistency(NULL, 1, 1, r1, r2, NULL, 0));
    assert_true(cpx_merkle_verify_consistency(NULL, 0, 0, r1, r1, NULL, 0));
    assert_true(cpx_merkle_verify_consistency(NULL, 0, 1, r1, r2, NULL, 0));
    assert_true(cpx_merkle_verify_consistency(NULL, 1, 1, r2, r2, NULL, 0));
    assert_false(cpx_merkle_verify_consistency(NULL, 1, 0, r1, r2, NULL, 0));
    assert_false(cpx_merkle_verify_consistency(NULL, 2, 1, r1, r2, NULL, 0));
    assert_false(cpx_merkle_verify_consistency(NULL, 1, 2, r1, r2, NULL, 0));
    assert_false(cpx_merkle_verify_consistency(NULL, 0, 0, empty, empty, one, 1));
    assert_false(cpx_merkle_verify_consistency(NULL, 0, 1, empty, empty, one, 1));
    assert_false(cpx_merkle_verify_consistency(NULL, 1, 1, empty, empty, one, 1));
    /* Inclusion: no leaf in an empty tree, no index at or past the size. */
    assert_false(cpx_merkle_verify_inclusion(NULL, 0, 0, r1, NULL, 0, r1));
    assert_false(cpx_merkle_verify_inclusion(NULL, 1, 0, r1, NULL, 0, r1));
    assert_false(cpx_merkle_verify_inclusion(NULL, 2, 1, r1, NULL, 0, r1));
    assert_true(cpx_merkle_verify_inclusion(NULL, 0, 1, r1, NULL, 0, r1));
    assert_false(cpx_merkle_verify_inclusion(NULL, 0, 1, r1, NULL, 0, r2));
    assert_false(cpx_merkle_verify_inclusion(NULL, 0, 1, r1, one, 1, r1));
}

/* ---- against the naive implementation ------------------------------------------------------ */

static void test_roots_all_sizes(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_tree t;
    struct cpx_merkle_range r;
    assert_int_equal(cpx_merkle_tree_init(&t), 0);
    cpx_merkle_range_init(&r);
    struct cpx_merkle_store fs = cpx_merkle_tree_store(&f->tree);
    uint8_t want[32], got[32];
    naive_mth(f->leaves, 0, want);
    cpx_merkle_tree_root(&t, got);
    assert_memory_equal(got, want, 32);
    for (uint64_t n = 1; n <= MAX_TREE; n++) {
        assert_int_equal(cpx_merkle_tree_append_hash(&t, f->leaves[n - 1]), 0);
        assert_true(cpx_merkle_range_append(f->h, &r, f->leaves[n - 1]));
        naive_mth(f->leaves, n, want);
        cpx_merkle_tree_root(&t, got);
        assert_memory_equal(got, want, 32);
        cpx_merkle_range_root(f->h, &r, got);
        assert_memory_equal(got, want, 32);
        /* The full tree's store gives the root of every earlier size. */
        assert_int_equal(cpx_merkle_root_from_store(&fs, f->h, n, got), CPX_MERKLE_OK);
        assert_memory_equal(got, want, 32);
    }
    assert_int_equal(cpx_merkle_root_from_store(&fs, f->h, MAX_TREE + 1, got), CPX_MERKLE_E_STORE);
    cpx_merkle_tree_free(&t);
}

static void test_inclusion_all_pairs(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_store s = cpx_merkle_tree_store(&f->tree);
    uint8_t naive[64][32], root[32];
    struct cpx_inclusion_proof p;
    for (uint64_t n = 1; n <= MAX_PROOF_TREE; n++) {
        naive_mth(f->leaves, n, root);
        for (uint64_t i = 0; i < n; i++) {
            assert_int_equal(cpx_merkle_inclusion_proof(&s, f->h, i, n, &p), CPX_MERKLE_OK);
            size_t k = naive_path(f->leaves, i, n, naive);
            assert_int_equal(p.n, k);
            assert_memory_equal(p.hashes, naive, k * 32);
            const uint8_t(*hs)[32] = (const uint8_t(*)[32])p.hashes;
            assert_true(cpx_merkle_verify_inclusion(f->h, i, n, f->leaves[i], hs, p.n, root));
            /* Wrong leaf, index, or size. (Size n + 1 is not tested: where the shapes of the two
             * trees' paths agree the verifier cannot tell them apart, as in every RFC 9162
             * verifier; the signed checkpoint fixes the size.) */
            assert_false(cpx_merkle_verify_inclusion(f->h, i, n, f->leaves[(i + 1) % MAX_TREE], hs,
                                                     p.n, root));
            if (i + 1 < n)
                assert_false(
                    cpx_merkle_verify_inclusion(f->h, i + 1, n, f->leaves[i], hs, p.n, root));
            if (i > 0)
                assert_false(
                    cpx_merkle_verify_inclusion(f->h, i - 1, n, f->leaves[i], hs, p.n, root));
            assert_false(cpx_merkle_verify_inclusion(f->h, i, 2 * n, f->leaves[i], hs, p.n, root));
            /* Truncated and extended proofs. */
            if (p.n > 0)
                assert_false(
                    cpx_merkle_verify_inclusion(f->h, i, n, f->leaves[i], hs, p.n - 1, root));
            memcpy(p.hashes[p.n], root, 32);
            assert_false(cpx_merkle_verify_inclusion(f->h, i, n, f->leaves[i], hs, p.n + 1, root));
        }
    }
    assert_int_equal(cpx_merkle_inclusion_proof(&s, f->h, 5, 5, &p), CPX_MERKLE_E_ARGS);
}

static void test_consistency_all_pairs(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_store s = cpx_merkle_tree_store(&f->tree);
    static uint8_t roots[MAX_PROOF_TREE + 1][32];
    uint8_t naive[128][32];
    struct cpx_consistency_proof p;
    for (uint64_t n = 0; n <= MAX_PROOF_TREE; n++)
        naive_mth(f->leaves, n, roots[n]);
    for (uint64_t n = 1; n <= MAX_PROOF_TREE; n++) {
        for (uint64_t m = 0; m <= n; m++) {
            assert_int_equal(cpx_merkle_consistency_proof(&s, f->h, m, n, &p), CPX_MERKLE_OK);
            size_t k = (m == 0 || m == n) ? 0 : naive_consistency(f->leaves, m, n, naive);
            assert_int_equal(p.n, k);
            assert_memory_equal(p.hashes, naive, k * 32);
            const uint8_t(*hs)[32] = (const uint8_t(*)[32])p.hashes;
            assert_true(cpx_merkle_verify_consistency(f->h, m, n, roots[m], roots[n], hs, p.n));
            if (m == 0 || m == n)
                continue;
            assert_false(cpx_merkle_verify_consistency(f->h, m, n, roots[n], roots[m], hs, p.n));
            assert_false(
                cpx_merkle_verify_consistency(f->h, m, n, roots[m - 1], roots[n], hs, p.n));
            assert_false(
                cpx_merkle_verify_consistency(f->h, m - 1, n, roots[m], roots[n], hs, p.n));
            assert_false(
                cpx_merkle_verify_consistency(f->h, m, 2 * n, roots[m], roots[n], hs, p.n));
            assert_false(
                cpx_merkle_verify_consistency(f->h, m, n, roots[m], roots[n], hs, p.n - 1));
            memcpy(p.hashes[p.n], roots[n], 32);
            assert_false(
                cpx_merkle_verify_consistency(f->h, m, n, roots[m], roots[n], hs, p.n + 1));
        }
    }
    assert_int_equal(cpx_merkle_consistency_proof(&s, f->h, 3, 2, &p), CPX_MERKLE_E_ARGS);
}

/* Every single-bit change of every proof of trees up to MAX_FLIP_TREE is rejected. */
static void test_bit_flips_rejected(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_store s = cpx_merkle_tree_store(&f->tree);
    uint8_t roots[MAX_FLIP_TREE + 1][32];
    for (uint64_t n = 0; n <= MAX_FLIP_TREE; n++)
        naive_mth(f->leaves, n, roots[n]);
    long checked = 0;
    for (uint64_t n = 1; n <= MAX_FLIP_TREE; n++) {
        for (uint64_t i = 0; i < n; i++) {
            struct cpx_inclusion_proof p;
            assert_int_equal(cpx_merkle_inclusion_proof(&s, f->h, i, n, &p), CPX_MERKLE_OK);
            for (size_t bit = 0; bit < p.n * 256; bit++) {
                p.hashes[bit / 256][bit % 256 / 8] ^= (uint8_t)(1u << (bit % 8));
                assert_false(cpx_merkle_verify_inclusion(
                    f->h, i, n, f->leaves[i], (const uint8_t(*)[32])p.hashes, p.n, roots[n]));
                p.hashes[bit / 256][bit % 256 / 8] ^= (uint8_t)(1u << (bit % 8));
                checked++;
            }
            /* ... and of the leaf hash and the root. */
            for (size_t bit = 0; bit < 256; bit++) {
                uint8_t leaf[32], root[32];
                memcpy(leaf, f->leaves[i], 32);
                memcpy(root, roots[n], 32);
                leaf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                assert_false(cpx_merkle_verify_inclusion(
                    f->h, i, n, leaf, (const uint8_t(*)[32])p.hashes, p.n, roots[n]));
                root[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                assert_false(cpx_merkle_verify_inclusion(
                    f->h, i, n, f->leaves[i], (const uint8_t(*)[32])p.hashes, p.n, root));
                checked += 2;
            }
        }
        for (uint64_t m = 1; m < n; m++) {
            struct cpx_consistency_proof p;
            assert_int_equal(cpx_merkle_consistency_proof(&s, f->h, m, n, &p), CPX_MERKLE_OK);
            for (size_t bit = 0; bit < p.n * 256; bit++) {
                p.hashes[bit / 256][bit % 256 / 8] ^= (uint8_t)(1u << (bit % 8));
                assert_false(cpx_merkle_verify_consistency(f->h, m, n, roots[m], roots[n],
                                                           (const uint8_t(*)[32])p.hashes, p.n));
                p.hashes[bit / 256][bit % 256 / 8] ^= (uint8_t)(1u << (bit % 8));
                checked++;
            }
        }
    }
    assert_true(checked > 100000);
}

/* A store that counts reads, and fails after a budget. */
struct counting_store {
    struct cpx_merkle_store inner; /* the real store */
    long reads;                    /* reads so far */
    long fail_after;               /* fail the read after this many; -1 never */
};

static int counting_get(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
    struct counting_store *c = ctx;
    if (c->fail_after >= 0 && c->reads >= c->fail_after)
        return -1;
    c->reads++;
    return c->inner.get(c->inner.ctx, level, index, out);
}

static void test_store_reads_logarithmic(void **state)
{
    struct fixture *f = *state;
    struct counting_store c = { cpx_merkle_tree_store(&f->tree), 0, -1 };
    struct cpx_merkle_store s = { counting_get, &c };
    struct cpx_inclusion_proof ip;
    struct cpx_consistency_proof cp;
    for (uint64_t n = 1; n <= MAX_TREE; n += 7) {
        for (uint64_t i = 0; i < n; i += 5) {
            c.reads = 0;
            assert_int_equal(cpx_merkle_inclusion_proof(&s, f->h, i, n, &ip), CPX_MERKLE_OK);
            assert_true(c.reads <= 2 * 9 + 2); /* log2(512) = 9 */
            c.reads = 0;
            assert_int_equal(cpx_merkle_consistency_proof(&s, f->h, i, n, &cp), CPX_MERKLE_OK);
            assert_true(c.reads <= 3 * 9 + 2);
        }
    }
    /* A failing store makes the proof fail, never produce a wrong one. */
    for (long budget = 0; budget < 6; budget++) {
        c.reads = 0;
        c.fail_after = budget;
        assert_int_equal(cpx_merkle_inclusion_proof(&s, f->h, 300, 511, &ip), CPX_MERKLE_E_STORE);
        c.reads = 0;
        assert_int_equal(cpx_merkle_consistency_proof(&s, f->h, 300, 511, &cp), CPX_MERKLE_E_STORE);
    }
}

/* The nodes an append completes are exactly the full nodes the in-memory tree gains. */
static void test_append_nodes(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_store s = cpx_merkle_tree_store(&f->tree);
    struct cpx_merkle_range r;
    struct cpx_merkle_node nodes[CPX_MERKLE_MAX_LEVELS + 1];
    cpx_merkle_range_init(&r);
    size_t total = 0;
    for (uint64_t i = 0; i < MAX_TREE; i++) {
        size_t n = cpx_merkle_range_append_nodes(f->h, &r, f->leaves[i], nodes);
        assert_int_equal(n, 1 + (size_t)__builtin_ctzll(~i));
        for (size_t k = 0; k < n; k++) {
            uint8_t want[32];
            assert_int_equal(nodes[k].level, k);
            assert_int_equal(nodes[k].index, i >> k);
            assert_int_equal(s.get(s.ctx, nodes[k].level, nodes[k].index, want), 0);
            assert_memory_equal(nodes[k].hash, want, 32);
        }
        total += n;
    }
    assert_int_equal(total, 2 * MAX_TREE - 1); /* 512 leaves: a perfect tree */
}

/* A store that only records which nodes were asked for, then one that serves a fetched set:
 * the two-pass pattern merkle.h describes for a database. */
struct recorder {
    struct cpx_merkle_node asked[256]; /* requested coordinates (hashes filled by the fetch) */
    size_t n;                          /* how many */
};

static int record_get(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
    struct recorder *r = ctx;
    if (r->n == 256)
        return -1;
    r->asked[r->n].level = level;
    r->asked[r->n++].index = index;
    memset(out, 0, 32);
    return 0;
}

static int fetched_get(void *ctx, unsigned level, uint64_t index, uint8_t out[32])
{
    const struct recorder *r = ctx;
    for (size_t k = 0; k < r->n; k++)
        if (r->asked[k].level == level && r->asked[k].index == index) {
            memcpy(out, r->asked[k].hash, 32);
            return 0;
        }
    return -1;
}

static void test_two_pass_store(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_store real = cpx_merkle_tree_store(&f->tree);
    struct recorder rec;
    struct cpx_merkle_store first = { record_get, &rec }, second = { fetched_get, &rec };
    for (uint64_t n = 2; n <= MAX_TREE; n += 37) {
        for (uint64_t i = 0; i < n; i += 11) {
            struct cpx_inclusion_proof want, got;
            rec.n = 0;
            assert_int_equal(cpx_merkle_inclusion_proof(&first, f->h, i, n, &got), CPX_MERKLE_OK);
            for (size_t k = 0; k < rec.n; k++) /* the one query */
                assert_int_equal(
                    real.get(real.ctx, rec.asked[k].level, rec.asked[k].index, rec.asked[k].hash),
                    0);
            assert_int_equal(cpx_merkle_inclusion_proof(&second, f->h, i, n, &got), CPX_MERKLE_OK);
            assert_int_equal(cpx_merkle_inclusion_proof(&real, f->h, i, n, &want), CPX_MERKLE_OK);
            assert_int_equal(got.n, want.n);
            assert_memory_equal(got.hashes, want.hashes, want.n * 32);

            struct cpx_consistency_proof cw, cg;
            rec.n = 0;
            assert_int_equal(cpx_merkle_consistency_proof(&first, f->h, i, n, &cg), CPX_MERKLE_OK);
            for (size_t k = 0; k < rec.n; k++)
                real.get(real.ctx, rec.asked[k].level, rec.asked[k].index, rec.asked[k].hash);
            assert_int_equal(cpx_merkle_consistency_proof(&second, f->h, i, n, &cg), CPX_MERKLE_OK);
            assert_int_equal(cpx_merkle_consistency_proof(&real, f->h, i, n, &cw), CPX_MERKLE_OK);
            assert_int_equal(cg.n, cw.n);
            assert_memory_equal(cg.hashes, cw.hashes, cw.n * 32);
        }
    }
}

/* ---- wire form ----------------------------------------------------------------------------- */

static void test_wire_round_trip(void **state)
{
    struct fixture *f = *state;
    struct cpx_merkle_store s = cpx_merkle_tree_store(&f->tree);
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    struct cpx_inclusion_proof ip, ip2;
    struct cpx_consistency_proof cp, cp2;
    const uint8_t *out;
    size_t len;
    assert_int_equal(cpx_merkle_inclusion_proof(&s, f->h, 6, 8, &ip), CPX_MERKLE_OK);
    cpx_inclusion_proof_write(&w, &ip);
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_OK);
    assert_null(cpx_inclusion_proof_parse(out, len, &ip2));
    assert_int_equal(ip2.leaf_index, 6);
    assert_int_equal(ip2.tree_size, 8);
    assert_int_equal(ip2.n, ip.n);
    assert_memory_equal(ip2.hashes, ip.hashes, ip.n * 32);
    assert_int_equal(memcmp(out, "{\"hashes\":[\"", 12), 0);

    cpx_canon_writer_reset(&w);
    assert_int_equal(cpx_merkle_consistency_proof(&s, f->h, 3, 100, &cp), CPX_MERKLE_OK);
    cpx_consistency_proof_write(&w, &cp);
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_OK);
    assert_null(cpx_consistency_proof_parse(out, len, &cp2));
    assert_int_equal(cp2.first, 3);
    assert_int_equal(cp2.second, 100);
    assert_int_equal(cp2.n, cp.n);
    assert_memory_equal(cp2.hashes, cp.hashes, cp.n * 32);
    cpx_canon_writer_free(&w);

    static const char *const bad_inclusion[] = {
        "",
        "{}",
        "{\"hashes\":[],\"leaf_index\":0}",
        "{\"hashes\":[],\"leaf_index\":1,\"tree_size\":1}",
        "{\"hashes\":[],\"leaf_index\":-1,\"tree_size\":1}",
        "{\"hashes\":[\"AA==\"],\"leaf_index\":0,\"tree_size\":2}",
        "{\"hashes\":[1],\"leaf_index\":0,\"tree_size\":2}",
        "{\"hashes\":{},\"leaf_index\":0,\"tree_size\":2}",
        "{\"hashes\":[],\"leaf_index\":0,\"tree_size\":1,\"x\":1}",
        "{\"leaf_index\":0,\"hashes\":[],\"tree_size\":1}",
        "{\"hashes\": [],\"leaf_index\":0,\"tree_size\":1}",
        "{\"hashes\":[],\"leaf_index\":0.0,\"tree_size\":1}",
        ("{\"hashes\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\"],\"leaf_index\":0,"
         "\"tree_size\":2}"),
    };
    for (size_t i = 0; i < sizeof bad_inclusion / sizeof bad_inclusion[0]; i++)
        assert_non_null(
            cpx_inclusion_proof_parse(bad_inclusion[i], strlen(bad_inclusion[i]), &ip2));
    static const char good[] = "{\"hashes\":[\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"],"
                               "\"leaf_index\":0,\"tree_size\":2}";
    assert_null(cpx_inclusion_proof_parse(good, strlen(good), &ip2));
    static const char *const bad_consistency[] = {
        "{\"first\":3,\"hashes\":[],\"second\":2}",
        "{\"first\":1,\"hashes\":[]}",
        "{\"first\":1,\"hashes\":[],\"second\":2,\"z\":0}",
    };
    for (size_t i = 0; i < sizeof bad_consistency / sizeof bad_consistency[0]; i++)
        assert_non_null(
            cpx_consistency_proof_parse(bad_consistency[i], strlen(bad_consistency[i]), &cp2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hasher_vectors),      cmocka_unit_test(test_rfc6962_vectors),
        cmocka_unit_test(test_verifier_edge_cases), cmocka_unit_test(test_roots_all_sizes),
        cmocka_unit_test(test_inclusion_all_pairs), cmocka_unit_test(test_consistency_all_pairs),
        cmocka_unit_test(test_bit_flips_rejected),  cmocka_unit_test(test_store_reads_logarithmic),
        cmocka_unit_test(test_append_nodes),        cmocka_unit_test(test_two_pass_store),
        cmocka_unit_test(test_wire_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
