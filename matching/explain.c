/*
 * explain.c — why a resting order does not trade.
 *
 * Buyers on today's compute marketplaces see a job sit idle with no reason given. explain()
 * walks every counter-order in the books the order rests in (the ask sides of its regions for a
 * bid, the bid sides of its precisions for an ask), evaluates every constraint of each pair at
 * the engine's clock with the same function the matching loop uses (mx_pair_fails), and counts
 * how many counter-orders each constraint excludes. Among counter-orders that pass every
 * constraint, it reports the one nearest in price: the gap is ask price - bid price per
 * PFLOPS-hour at that book's precision, which is positive for a resting order (invariant 6:
 * an eligible crossing pair would have traded).
 *
 * It reads only; it is O(counter-orders in those books) and meant for on-demand queries, not
 * for the hot path. Ties in the gap go to the first counter-order met, in book order (books by
 * region or precision id, levels by priority, FIFO order), so the answer is deterministic.
 */
#include <string.h>

#include "matching/matching_int.h"

/* Accounts counter-order mi of level lv against the explained record ri. */
static void explain_one(const mx_engine *e, uint32_t ri, uint32_t mi, uint32_t lv,
                        mx_explanation *out)
{
    const mx_rec *r = &e->recs[ri], *m = &e->recs[mi];
    const mx_rec *bid = r->side == MX_BID ? r : m, *ask = r->side == MX_BID ? m : r;
    unsigned p = e->levels[lv].prec;
    int64_t start, devices;
    unsigned fails =
        mx_pair_fails(e, bid, ask, p, e->now, bid->remaining, ask->remaining, &start, &devices);
    if (m->owner == r->owner)
        fails |= 1u << MX_C_SELF;
    out->examined++;
    for (unsigned c = 0; c < MX_NCONSTRAINTS; c++)
        if (fails >> c & 1)
            out->excluded[c]++;
    if (fails != 0)
        return;
    out->eligible++;
    int64_t gap = mx_ask_price(e, ask, p) - bid->price;
    if (!out->has_nearest || gap < out->price_gap) {
        out->has_nearest = true;
        out->price_gap = gap;
        out->nearest_id = m->id;
        out->nearest_precision = (uint8_t)p;
        out->nearest_region = e->levels[lv].region;
    }
}

/* Accounts every counter-order on book side sidx. */
static void explain_side(const mx_engine *e, uint32_t ri, uint32_t sidx, mx_explanation *out)
{
    for (uint32_t lv = e->sides[sidx].best; lv != MX_NIL; lv = mx_level_next(e, lv))
        for (uint32_t ref = e->levels[lv].head; ref != MX_NIL; ref = mx_link_of(e, ref)->next)
            explain_one(e, ri, mx_rec_of(e, ref), lv, out);
}

mx_reason mx_explain(const mx_engine *e, uint64_t id, mx_explanation *out)
{
    memset(out, 0, sizeof *out);
    uint32_t ri = id != 0 ? mx_find(e, id) : MX_NIL;
    if (ri == MX_NIL)
        return MX_R_UNKNOWN_ID;
    const mx_rec *r = &e->recs[ri];
    out->side = (uint8_t)r->side;
    if (r->side == MX_BID) {
        uint64_t mask =
            r->ext == MX_NIL ? UINT64_C(1) << r->region : e->exts[r->ext].spec.bid.regions;
        for (; mask != 0; mask &= mask - 1)
            explain_side(e, ri, mx_side_index(e, r->prec, (unsigned)__builtin_ctzll(mask), MX_ASK),
                         out);
    } else {
        unsigned mask = r->ext == MX_NIL ? 1u << r->prec : e->exts[r->ext].spec.ask.priced;
        for (; mask != 0; mask &= mask - 1)
            explain_side(e, ri, mx_side_index(e, (unsigned)__builtin_ctz(mask), r->region, MX_BID),
                         out);
    }
    return MX_OK;
}
