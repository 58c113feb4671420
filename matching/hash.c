/*
 * hash.c — the state hash: one 64-bit number that two engines agree on exactly when their
 * resting books agree.
 *
 * Each resting order contributes a 64-bit hash of its canonical spec (every field that can
 * affect matching, with those that cannot zeroed by mx_canon_*), its remaining quantity and its
 * arrival sequence (which fixes its priority: within a level the FIFO is in sequence order).
 * The contributions are summed modulo 2^64, so the result depends on the set of resting orders
 * and not on pool layout, table order or the history of how the books were built; the count of
 * resting orders is mixed in at the end.
 *
 * It is computed on demand in O(resting orders), not maintained incrementally: the hot path
 * pays nothing for it, and it is read rarely (after a rebuild, at checkpoints, by tests after
 * every command). The per-order functions are public so that another implementation (the tests'
 * reference matcher, or a server rebuilding from its database) can compute the same number.
 *
 * Not a cryptographic hash: it detects divergence, it does not resist forgery.
 */
#include "matching/matching_int.h"

/* Murmur3's 64-bit finaliser: a bijection that mixes every input bit into every output bit. */
static uint64_t fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* Absorbs v into running hash h. */
static uint64_t absorb(uint64_t h, uint64_t v)
{
    return fmix(h + UINT64_C(0x9E3779B97F4A7C15) + v * UINT64_C(0xbf58476d1ce4e5b9));
}

uint64_t mx_hash_bid(const mx_bid *bid, int64_t remaining, uint64_t seq)
{
    mx_bid b = *bid;
    if (b.n_allow > MX_MAX_ALLOW)
        b.n_allow = MX_MAX_ALLOW;
    mx_canon_bid(&b);
    uint64_t h = absorb(UINT64_C(0x6269640a), b.id); /* "bid" */
    h = absorb(h, b.owner);
    h = absorb(h, seq);
    h = absorb(h, (uint64_t)remaining);
    h = absorb(h, (uint64_t)b.limit);
    h = absorb(h, b.regions);
    h = absorb(h, (uint64_t)b.precision | (uint64_t)b.qty_kind << 8 | (uint64_t)b.tif << 16 |
                      (uint64_t)b.n_allow << 24 | (uint64_t)b.hours << 32);
    h = absorb(h, (uint64_t)b.expiry);
    h = absorb(h, (uint64_t)b.start_earliest);
    h = absorb(h, (uint64_t)b.start_latest);
    h = absorb(h, (uint64_t)b.min_memory_gb | (uint64_t)b.min_tflops << 32);
    h = absorb(h, (uint64_t)b.max_tflops);
    h = absorb(h, (uint64_t)b.min_devices_per_provider | (uint64_t)b.min_green_permille << 32);
    for (unsigned i = 0; i < b.n_allow; i++)
        h = absorb(h, (uint64_t)b.allow[i].vendor | (uint64_t)b.allow[i].model << 32);
    return h;
}

uint64_t mx_hash_ask(const mx_ask *ask, int64_t remaining, uint64_t seq)
{
    mx_ask a = *ask;
    mx_canon_ask(&a);
    uint64_t h = absorb(UINT64_C(0x61736b0a), a.id); /* "ask" */
    h = absorb(h, a.owner);
    h = absorb(h, seq);
    h = absorb(h, (uint64_t)remaining);
    h = absorb(h, (uint64_t)a.priced | (uint64_t)a.region << 8 | (uint64_t)a.tif << 16);
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (a.priced >> p & 1) {
            h = absorb(h, (uint64_t)a.price[p]);
            h = absorb(h, a.tflops[p]);
        }
    }
    h = absorb(h, (uint64_t)a.available_from);
    h = absorb(h, (uint64_t)a.available_until);
    h = absorb(h, (uint64_t)a.expiry);
    h = absorb(h, (uint64_t)a.memory_gb | (uint64_t)a.green_permille << 32);
    h = absorb(h, (uint64_t)a.vendor | (uint64_t)a.model << 32);
    h = absorb(h, (uint64_t)a.interconnect);
    h = absorb(h, (uint64_t)a.min_hours | (uint64_t)a.max_hours << 32);
    return h;
}

uint64_t mx_hash_finish(uint64_t sum, uint64_t count)
{
    return fmix(sum ^ absorb(UINT64_C(0x73746174650a), count)); /* "state" */
}

uint64_t mx_state_hash(const mx_engine *e)
{
    uint64_t sum = 0;
    for (uint32_t ri = 0; ri < e->rec_top; ri++) {
        const mx_rec *r = &e->recs[ri];
        if (!(r->flags & MX_F_LINKED))
            continue;
        if (r->side == MX_BID) {
            mx_bid b;
            mx_rec_bid(e, ri, &b);
            sum += mx_hash_bid(&b, r->remaining, r->seq);
        } else {
            mx_ask a;
            mx_rec_ask(e, ri, &a);
            sum += mx_hash_ask(&a, r->remaining, r->seq);
        }
    }
    return mx_hash_finish(sum, e->resting);
}
