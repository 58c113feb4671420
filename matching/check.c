/*
 * check.c — every invariant of matching_int.h, checked from scratch.
 *
 * mx_engine_check() recomputes what the engine maintains incrementally and compares: the id
 * table against the records, each record's nodes against the books it must be in, each level's
 * FIFO (links, arrival order, aggregate quantities) and each side's AVL tree (order, parents,
 * heights, balance, best), the expiry heap, the conservation counters, the pool counters, that
 * no eligible pair of resting orders crosses (the brute-force form of "the matching loop missed
 * nothing"), and finally that the maintained state hash equals the full recomputation.
 *
 * In check builds (MATCHING_CHECK_INVARIANTS, which the tests link) the engine runs it after
 * every command and aborts on the first failure, after telling on_check_failure which
 * condition failed. Failures are bugs of the engine, never caller input. The cost is
 * O(resting orders + levels + crossed pairs) per command: fine for tests and fuzzing, and why
 * the release library does not do it.
 */
#include <stdlib.h>

#include "matching/matching_int.h"

typedef struct checker {
    const mx_engine *e; /* engine under check */
    const char *what;   /* first failed condition, NULL while all hold */
    int line;           /* its line in this file */
} checker;

/* Records the first failure. Returns 0. */
static int failed(checker *ck, const char *what, int line)
{
    if (ck->what == NULL) {
        ck->what = what;
        ck->line = line;
    }
    return 0;
}

/* Makes the enclosing function return 0 (CHECK) or -1 (CHECK_H) when cond is false. */
#define CHECK(ck, cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return failed((ck), #cond, __LINE__);                                                  \
    } while (0)
#define CHECK_H(ck, cond)                                                                          \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return failed((ck), #cond, __LINE__) - 1;                                              \
    } while (0)

/* Mask of the books a record belongs to: regions for a bid, precisions for an ask. */
static uint64_t book_mask(const mx_engine *e, const mx_rec *r)
{
    if (r->side == MX_BID)
        return r->ext == MX_NIL ? UINT64_C(1) << r->region : e->exts[r->ext].spec.bid.regions;
    return r->ext == MX_NIL ? UINT64_C(1) << r->prec : e->exts[r->ext].spec.ask.priced;
}

/* Record ri's price in the book of level L. */
static int64_t price_in(const mx_engine *e, const mx_rec *r, const mx_level *L)
{
    return r->side == MX_BID ? r->price : mx_ask_price(e, r, L->prec);
}

/* ---- records -------------------------------------------------------------------------------- */

/* Invariant 1 for record ri; adds its pool nodes to *nodes. */
static int check_record(checker *ck, uint32_t ri, uint64_t *nodes)
{
    const mx_engine *e = ck->e;
    const mx_rec *r = &e->recs[ri];
    CHECK(ck, (r->flags & ~MX_F_HASHQ) == MX_F_LINKED);
    CHECK(ck, mx_find(e, r->id) == ri);
    CHECK(ck, r->remaining > 0);
    uint64_t mask = book_mask(e, r);
    uint32_t ref = ri;
    for (; mask != 0; mask &= mask - 1) {
        unsigned bit = (unsigned)__builtin_ctzll(mask);
        CHECK(ck, ref != MX_NIL);
        CHECK(ck, mx_rec_of(e, ref) == ri);
        const mx_link *k = mx_link_of(e, ref);
        CHECK(ck, k->level < e->level_top);
        const mx_level *L = &e->levels[k->level];
        unsigned prec = r->side == MX_BID ? r->prec : bit;
        unsigned region = r->side == MX_BID ? bit : r->region;
        CHECK(ck, L->side == mx_side_index(e, prec, region, r->side));
        CHECK(ck, L->prec == prec && L->region == region && L->is_ask == r->side);
        CHECK(ck, L->price == price_in(e, r, L));
        if (ref & MX_NODE_TAG)
            (*nodes)++;
        ref = mx_next_node(e, ri, ref);
    }
    CHECK(ck, ref == MX_NIL);
    return 1;
}

/* Invariant 1 for all records, and the pool and table counters. */
static int check_records(checker *ck)
{
    const mx_engine *e = ck->e;
    uint64_t linked = 0, exts = 0, nodes = 0;
    for (uint32_t ri = 0; ri < e->rec_top; ri++) {
        const mx_rec *r = &e->recs[ri];
        if (r->id == 0) {
            CHECK(ck, r->flags == 0);
            continue;
        }
        if (!check_record(ck, ri, &nodes))
            return 0;
        linked++;
        exts += r->ext != MX_NIL;
    }
    CHECK(ck, linked == e->resting);
    CHECK(ck, e->rec_live == e->resting);
    CHECK(ck, e->ext_live == exts);
    CHECK(ck, e->node_live == nodes);
    uint64_t in_table = 0;
    for (uint32_t b = 0; b < (UINT32_C(1) << e->bucket_bits); b++)
        for (uint32_t ri = e->buckets[b]; ri != MX_NIL; ri = e->recs[ri].id_next)
            in_table++;
    CHECK(ck, in_table == e->resting);
    CHECK(ck, e->reactivate == MX_NIL && e->marks_len == 0);
    return 1;
}

/* ---- books ---------------------------------------------------------------------------------- */

/* Invariant 2 for level lv: FIFO links, arrival order, aggregates. */
static int check_fifo(checker *ck, uint32_t lv)
{
    const mx_engine *e = ck->e;
    const mx_level *L = &e->levels[lv];
    uint32_t prev = MX_NIL, count = 0;
    uint64_t devices = 0, tflops = 0, last_seq = 0;
    for (uint32_t ref = L->head; ref != MX_NIL; ref = mx_link_of(e, ref)->next) {
        const mx_link *k = mx_link_of(e, ref);
        const mx_rec *r = &e->recs[mx_rec_of(e, ref)];
        CHECK(ck, k->level == lv && k->prev == prev);
        CHECK(ck, r->flags & MX_F_LINKED);
        CHECK(ck, count == 0 || r->seq > last_seq);
        uint64_t d, t;
        mx_contribution(e, r, L->prec, r->remaining, &d, &t);
        devices += d;
        tflops += t;
        last_seq = r->seq;
        prev = ref;
        CHECK(ck, ++count <= e->rec_top);
    }
    CHECK(ck, L->tail == prev);
    CHECK(ck, L->count == count && count > 0);
    CHECK(ck, L->devices == devices && L->tflops == tflops);
    return 1;
}

/* Invariant 3 below level lv: parents, local order, heights, balance. Returns the subtree's
 * height, or -1 on failure. Adds its levels and nodes to the counters. */
static int check_subtree(checker *ck, uint32_t sidx, uint32_t lv, uint32_t parent, uint32_t *levels,
                         uint32_t *orders)
{
    const mx_engine *e = ck->e;
    if (lv == MX_NIL)
        return 0;
    CHECK_H(ck, lv < e->level_top);
    const mx_level *L = &e->levels[lv];
    CHECK_H(ck, L->side == sidx && L->parent == parent);
    CHECK_H(ck, L->left == MX_NIL || e->levels[L->left].price < L->price);
    CHECK_H(ck, L->right == MX_NIL || e->levels[L->right].price > L->price);
    int hl = check_subtree(ck, sidx, L->left, lv, levels, orders);
    int hr = check_subtree(ck, sidx, L->right, lv, levels, orders);
    if (hl < 0 || hr < 0 || !check_fifo(ck, lv))
        return -1;
    int h = (hl > hr ? hl : hr) + 1;
    CHECK_H(ck, L->height == h && hl - hr <= 1 && hr - hl <= 1);
    (*levels)++;
    *orders += L->count;
    return h;
}

/* Invariants 2 and 3 for one book side. */
static int check_side(checker *ck, uint32_t sidx, uint64_t *levels, uint64_t *orders)
{
    const mx_engine *e = ck->e;
    const mx_bookside *s = &e->sides[sidx];
    uint32_t nlev = 0, nord = 0;
    if (check_subtree(ck, sidx, s->root, MX_NIL, &nlev, &nord) < 0)
        return 0;
    CHECK(ck, nlev == s->levels && nord == s->orders);
    CHECK(ck, (s->root == MX_NIL) == (s->best == MX_NIL));
    if (s->best != MX_NIL) {
        /* best is the end of the tree in priority order, and priority order is monotone */
        uint32_t lv = s->root, is_ask = sidx & 1;
        while ((is_ask ? e->levels[lv].left : e->levels[lv].right) != MX_NIL)
            lv = is_ask ? e->levels[lv].left : e->levels[lv].right;
        CHECK(ck, lv == s->best);
        uint32_t walked = 0;
        for (lv = s->best; lv != MX_NIL; lv = mx_level_next(e, lv)) {
            uint32_t next = mx_level_next(e, lv);
            CHECK(ck, next == MX_NIL || (is_ask ? e->levels[next].price > e->levels[lv].price
                                                : e->levels[next].price < e->levels[lv].price));
            CHECK(ck, ++walked <= nlev);
        }
        CHECK(ck, walked == nlev);
    }
    *levels += nlev;
    *orders += nord;
    return 1;
}

/* Invariants 2 and 3 for every book, and the level and node counts. Returns 1 when they hold. */
static int check_books(checker *ck)
{
    const mx_engine *e = ck->e;
    uint64_t levels = 0, orders = 0, expected_orders = 0;
    for (uint32_t sidx = 0; sidx < MX_NPREC * e->nregions * 2; sidx++)
        if (!check_side(ck, sidx, &levels, &orders))
            return 0;
    for (uint32_t ri = 0; ri < e->rec_top; ri++)
        if (e->recs[ri].id != 0)
            expected_orders += (uint64_t)__builtin_popcountll(book_mask(e, &e->recs[ri]));
    CHECK(ck, levels == e->level_live);
    CHECK(ck, orders == expected_orders);
    return 1;
}

/* ---- expiry heap and conservation ----------------------------------------------------------- */

/* Invariant 4. Returns 1 when it holds. */
static int check_heap(checker *ck)
{
    const mx_engine *e = ck->e;
    uint64_t expiring = 0;
    for (uint32_t ri = 0; ri < e->rec_top; ri++) {
        const mx_rec *r = &e->recs[ri];
        if (r->id == 0 || r->ext == MX_NIL)
            continue;
        const mx_ext *x = &e->exts[r->ext];
        CHECK(ck, (x->expires != 0) == (x->heap_pos != MX_NIL));
        if (x->expires == 0)
            continue;
        expiring++;
        CHECK(ck, x->heap_pos < e->heap_len && e->heap[x->heap_pos].rec == ri);
        CHECK(ck, x->expires > e->now);
    }
    CHECK(ck, expiring == e->heap_len);
    for (uint32_t i = 0; i < e->heap_len; i++) {
        const mx_expiry *h = &e->heap[i];
        const mx_rec *r = &e->recs[h->rec];
        CHECK(ck, r->id != 0 && r->ext != MX_NIL && h->seq == r->seq);
        CHECK(ck, h->expires == e->exts[r->ext].expires);
        if (i > 0) {
            const mx_expiry *p = &e->heap[(i - 1) / 2];
            CHECK(ck, p->expires < h->expires || (p->expires == h->expires && p->seq < h->seq));
        }
    }
    return 1;
}

/* Invariant 5. */
static int check_conservation(checker *ck)
{
    const mx_engine *e = ck->e;
    uint64_t resting[3] = { 0, 0, 0 };
    for (uint32_t ri = 0; ri < e->rec_top; ri++)
        if (e->recs[ri].id != 0)
            resting[mx_qclass(&e->recs[ri])] += (uint64_t)e->recs[ri].remaining;
    for (unsigned q = 0; q < 3; q++)
        CHECK(ck, e->totals.in[q] == e->totals.filled[q] + e->totals.removed[q] + resting[q]);
    return 1;
}

/* ---- no eligible crossed pair --------------------------------------------------------------- */

/* Invariant 6 for bid node `bref` against the asks of the same book that it crosses. */
static int check_bid_node(checker *ck, uint32_t bref, uint32_t ask_side, int64_t bid_price)
{
    const mx_engine *e = ck->e;
    const mx_rec *bid = &e->recs[mx_rec_of(e, bref)];
    for (uint32_t lv = e->sides[ask_side].best; lv != MX_NIL && e->levels[lv].price <= bid_price;
         lv = mx_level_next(e, lv)) {
        for (uint32_t ref = e->levels[lv].head; ref != MX_NIL; ref = mx_link_of(e, ref)->next) {
            const mx_rec *ask = &e->recs[mx_rec_of(e, ref)];
            int64_t start, devices;
            unsigned fails = mx_pair_fails(e, bid, ask, e->levels[lv].prec, e->now, bid->remaining,
                                           ask->remaining, &start, &devices);
            CHECK(ck, fails != 0 || bid->owner == ask->owner);
        }
    }
    return 1;
}

/* Invariant 6: for every book, no resting bid and ask that cross are eligible. Returns 1
 * when it holds. */
static int check_uncrossed(checker *ck)
{
    const mx_engine *e = ck->e;
    for (uint32_t sidx = 0; sidx < MX_NPREC * e->nregions * 2; sidx += 2) {
        uint32_t ask_best = e->sides[sidx + 1].best;
        if (ask_best == MX_NIL)
            continue;
        int64_t ask_price = e->levels[ask_best].price;
        for (uint32_t lv = e->sides[sidx].best; lv != MX_NIL && e->levels[lv].price >= ask_price;
             lv = mx_level_next(e, lv))
            for (uint32_t ref = e->levels[lv].head; ref != MX_NIL; ref = mx_link_of(e, ref)->next)
                if (!check_bid_node(ck, ref, sidx + 1, e->levels[lv].price))
                    return 0;
    }
    return 1;
}

/* ---- state hash ----------------------------------------------------------------------------- */

/* Invariant 7: every resting record's hash is either queued, once, or cached with the value
 * the definition gives and counted in hash_sum, and the maintained state hash equals the one
 * recomputed from every resting order. */
static int check_state_hash(checker *ck)
{
    const mx_engine *e = ck->e;
    uint64_t queued = 0, sum = 0;
    CHECK(ck, e->hash_jobs <= MX_HASH_QUEUE && e->hashes_cap >= e->rec_top);
    for (uint32_t l = 0; l < e->hash_jobs; l++) {
        uint32_t ri = e->hash_job[l].rec;
        CHECK(ck, ri < e->rec_top && (e->recs[ri].flags & MX_F_HASHQ));
        for (uint32_t k = 0; k < l; k++)
            CHECK(ck, e->hash_job[k].rec != ri);
    }
    for (uint32_t ri = 0; ri < e->rec_top; ri++) {
        const mx_rec *r = &e->recs[ri];
        if (r->id == 0)
            continue;
        if (r->flags & MX_F_HASHQ) {
            queued++;
        } else {
            CHECK(ck, e->hashes[ri] == mx_hash_of(e, ri));
            sum += e->hashes[ri];
        }
    }
    CHECK(ck, queued == e->hash_jobs);
    CHECK(ck, sum == e->hash_sum);
    CHECK(ck, mx_state_hash(e) == mx_state_hash_full(e));
    return 1;
}

/* ---- entry points --------------------------------------------------------------------------- */

/* Every invariant, stopping at the first failure (recorded in ck). Returns 1 when all hold. */
static int check_all(checker *ck)
{
    return check_records(ck) && check_books(ck) && check_heap(ck) && check_conservation(ck) &&
           check_uncrossed(ck) && check_state_hash(ck);
}

bool mx_engine_check(const mx_engine *e)
{
    checker ck = { e, NULL, 0 };
    return check_all(&ck);
}

_Noreturn void mx_check_failed(const mx_engine *e, const char *what, const char *file, int line)
{
    if (e->on_check_failure != NULL)
        e->on_check_failure(e->check_ctx, what, file, line);
    abort();
}

void mx_check_after_command(mx_engine *e)
{
    checker ck = { e, NULL, 0 };
    if (!check_all(&ck))
        mx_check_failed(e, ck.what, __FILE__, ck.line);
}
