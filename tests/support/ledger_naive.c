/*
 * RFC 9162 section 2.1, literally: see ledger_naive.h.
 */
#include "tests/support/ledger_naive.h"

#include <string.h>

#include "ledger/crypto.h"

void naive_leaf_hash(const void *data, size_t len, uint8_t out[32])
{
    static const uint8_t zero = 0x00;
    cpx_sha256_2(&zero, 1, data, len, out);
}

/* SHA-256(0x01 || l || r). */
static void naive_node(const uint8_t l[32], const uint8_t r[32], uint8_t out[32])
{
    uint8_t buf[65];
    buf[0] = 0x01;
    memcpy(buf + 1, l, 32);
    memcpy(buf + 33, r, 32);
    cpx_sha256(buf, sizeof buf, out);
}

/* The largest power of two strictly less than n (n > 1). */
static uint64_t naive_k(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

void naive_mth(const uint8_t (*leaves)[32], uint64_t n, uint8_t out[32])
{
    if (n == 0) {
        cpx_sha256("", 0, out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaves[0], 32);
        return;
    }
    uint64_t k = naive_k(n);
    uint8_t l[32], r[32];
    naive_mth(leaves, k, l);
    naive_mth(leaves + k, n - k, r);
    naive_node(l, r, out);
}

size_t naive_path(const uint8_t (*leaves)[32], uint64_t m, uint64_t n, uint8_t (*out)[32])
{
    if (n <= 1)
        return 0;
    uint64_t k = naive_k(n);
    size_t c;
    if (m < k) {
        c = naive_path(leaves, m, k, out);
        naive_mth(leaves + k, n - k, out[c]);
    } else {
        c = naive_path(leaves + k, m - k, n - k, out);
        naive_mth(leaves, k, out[c]);
    }
    return c + 1;
}

/* SUBPROOF(m, D[0:n], b). */
static size_t naive_subproof(const uint8_t (*leaves)[32], uint64_t m, uint64_t n, int b,
                             uint8_t (*out)[32])
{
    if (m == n) {
        if (b)
            return 0;
        naive_mth(leaves, n, out[0]);
        return 1;
    }
    uint64_t k = naive_k(n);
    size_t c;
    if (m <= k) {
        c = naive_subproof(leaves, m, k, b, out);
        naive_mth(leaves + k, n - k, out[c]);
    } else {
        c = naive_subproof(leaves + k, m - k, n - k, 0, out);
        naive_mth(leaves, k, out[c]);
    }
    return c + 1;
}

size_t naive_consistency(const uint8_t (*leaves)[32], uint64_t m, uint64_t n, uint8_t (*out)[32])
{
    return naive_subproof(leaves, m, n, 1, out);
}
