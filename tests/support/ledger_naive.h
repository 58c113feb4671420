/*
 * Naive reference implementations of RFC 9162 section 2.1, written straight from the RFC's
 * recursive definitions (MTH, PATH, PROOF/SUBPROOF) over an array of leaf hashes, with their own
 * hashing (cpx_sha256_2 and explicit prefixes), so that the tests compare ledger/merkle.c against
 * something that shares none of its code paths. Slow on purpose: O(n) hashes per call.
 */
#ifndef CPX_TESTS_LEDGER_NAIVE_H
#define CPX_TESTS_LEDGER_NAIVE_H

#include <stddef.h>
#include <stdint.h>

/* out = SHA-256(0x00 || data). */
void naive_leaf_hash(const void *data, size_t len, uint8_t out[32]);

/* out = MTH(D[0:n]) where leaves[i] is the leaf hash of D[i]. */
void naive_mth(const uint8_t (*leaves)[32], uint64_t n, uint8_t out[32]);

/* PATH(m, D[0:n]) into out (room for 64); returns the number of hashes. */
size_t naive_path(const uint8_t (*leaves)[32], uint64_t m, uint64_t n, uint8_t (*out)[32]);

/* PROOF(m, D[0:n]) for 0 < m <= n into out (room for 128); returns the number of hashes. */
size_t naive_consistency(const uint8_t (*leaves)[32], uint64_t m, uint64_t n, uint8_t (*out)[32]);

#endif
