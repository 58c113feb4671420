/*
 * expiry.c — the expiry heap: which resting order goes next when the clock moves.
 *
 * Orders that can expire (GTD bids and asks, asks with an availability window, bids with a
 * start window) are in a binary min-heap ordered by (expiry time, arrival sequence). Each such
 * record's extension remembers its heap position, so a cancel or fill removes it in O(log n)
 * without a search, and nothing stale is ever left in the heap.
 *
 * Every command first calls mx_expire_due() at its clock: while the heap's top is due
 * (expires <= now) the top record gets an MX_EV_EXPIRED event and is retired. Expired events
 * therefore come out ordered by expiry time, then by arrival sequence: deterministic, and
 * independent of how the heap happens to be laid out. When nothing is due the check is one
 * comparison.
 */
#include "matching/matching_int.h"

/* True when heap entry a must expire before b. */
static int before(const mx_expiry *a, const mx_expiry *b)
{
    return a->expires < b->expires || (a->expires == b->expires && a->seq < b->seq);
}

/* Stores entry x at heap position i and tells its record. */
static void place(mx_engine *e, uint32_t i, mx_expiry x)
{
    e->heap[i] = x;
    e->exts[e->recs[x.rec].ext].heap_pos = i;
}

/* Moves entry i up until its parent expires before it. */
static void sift_up(mx_engine *e, uint32_t i)
{
    mx_expiry x = e->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&x, &e->heap[parent]))
            break;
        place(e, i, e->heap[parent]);
        i = parent;
    }
    place(e, i, x);
}

/* Moves entry i down until both children expire after it. */
static void sift_down(mx_engine *e, uint32_t i)
{
    mx_expiry x = e->heap[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= e->heap_len)
            break;
        if (child + 1 < e->heap_len && before(&e->heap[child + 1], &e->heap[child]))
            child++;
        if (!before(&e->heap[child], &x))
            break;
        place(e, i, e->heap[child]);
        i = child;
    }
    place(e, i, x);
}

void mx_heap_push(mx_engine *e, uint32_t ri)
{
    const mx_rec *r = &e->recs[ri];
    uint32_t i = e->heap_len++;
    e->heap[i] = (mx_expiry){ .expires = e->exts[r->ext].expires, .seq = r->seq, .rec = ri };
    sift_up(e, i);
}

void mx_heap_remove(mx_engine *e, uint32_t ri)
{
    const mx_rec *r = &e->recs[ri];
    if (r->ext == MX_NIL || e->exts[r->ext].heap_pos == MX_NIL)
        return;
    uint32_t i = e->exts[r->ext].heap_pos;
    e->exts[r->ext].heap_pos = MX_NIL;
    uint32_t last = --e->heap_len;
    if (i == last)
        return;
    place(e, i, e->heap[last]);
    if (i > 0 && before(&e->heap[i], &e->heap[(i - 1) / 2]))
        sift_up(e, i);
    else
        sift_down(e, i);
}

void mx_expire_due(mx_engine *e)
{
    while (e->heap_len > 0 && e->heap[0].expires <= e->now) {
        uint32_t ri = e->heap[0].rec;
        mx_emit_rec(e, ri, MX_EV_EXPIRED, MX_R_EXPIRED);
        mx_retire(e, ri);
    }
}
