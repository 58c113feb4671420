/*
 * match.c — the matching loop: who trades with whom, how much, at what price.
 *
 * The taker and its cursors
 * -------------------------
 * An incoming order (the *taker*) meets the opposite side of every book it belongs to: a bid
 * the ask sides of (its precision, r) for each accepted region r; an ask the bid sides of
 * (p, its region) for each priced precision p. The loop keeps one *cursor* per such book side,
 * standing on the best node not yet passed, and each step takes the cursor with the best key:
 *
 *   taker is a bid:  lowest ask price, then lowest arrival sequence;
 *   taker is an ask: highest bid price x the taker's TFLOPS per device in that precision (the
 *                    provider's revenue per device-hour: the normalised price), then lowest
 *                    arrival sequence.
 *
 * A cursor stops at the first level that no longer crosses the taker's price, so the loop never
 * looks past the crossing part of any book. A counter-order can be in only one of the taker's
 * books (an ask has one region, a bid one precision), so the merge never meets an order twice.
 *
 * One step
 * --------
 * The node under the best cursor is a candidate. If any constraint of the pair fails
 * (mx_pair_fails), the cursor steps past it: it stays where it is in the book. If it has the
 * taker's owner, self-trade prevention acts (cancel the taker's rest, cancel the resting order,
 * or step past it). Otherwise the pair trades: devices = min(ask remaining, devices the bid
 * still needs), where a capacity bid needs ceil(remaining TFLOPS / the ask's TFLOPS per device);
 * the price is the maker's; the agreement starts at max(now, ask.available_from,
 * bid.start_earliest); the bid's hours are the agreement's hours.
 *
 * Why skipping is safe: within one command, a candidate that fails a constraint keeps failing
 * it while the loop runs, with one exception: a gang bid's threshold min(gang, devices still
 * needed) falls as the bid fills, and an ask it skipped for having too few devices may now
 * qualify. So after each fill of a gang bid taker the cursors restart from the top of the books.
 * The same effect on a *resting* gang bid (filled in part by an incoming ask, or reduced) is
 * handled by re-matching it as a taker before the command ends (mx_run_reactivation); that
 * re-match never cancels anything for self-trade, it only steps past the owner's own asks.
 * With these two rules no eligible crossed pair is ever left resting (invariant 6).
 *
 * Fill-or-kill
 * ------------
 * A FOK order first runs the same loop as a *dry run*: nothing changes, counter-orders the real
 * run would consume (fill completely, or cancel for self-trade) are marked so that a restart
 * skips them, and the taker's remaining is tracked in the loop. Only when the dry run fills
 * the taker completely does the real run happen; otherwise the order is cancelled (MX_R_FOK)
 * with no fill. Exactly one counter-order can be left partly filled by a run (the last), so
 * marking the consumed ones is all the state a dry run needs.
 *
 * Events of an incoming order, in order: ACCEPTED (or REPLACED), then for each trade FILL and,
 * when the maker is used up, DONE for the maker (or CANCELLED/STP for a resting order removed by
 * self-trade prevention), then DONE for the taker if filled, CANCELLED (IOC, FOK or STP) if its
 * rest cannot rest, or nothing when it rests; then the events of a gang re-match, if any.
 */
#include "matching/matching_int.h"

typedef struct taker {
    uint32_t ri;       /* the taker's record */
    int is_ask;        /* the taker's side */
    int dry;           /* FOK dry run: change nothing, mark what would be consumed */
    int rematch;       /* re-matching a resting gang bid: self-trades are stepped past */
    int gang;          /* the taker is a gang bid: restart the cursors after each fill */
    int64_t remaining; /* the taker's remaining quantity during the run */
    unsigned ncur;     /* cursors in use */
    mx_cursor cur[MX_MAX_REGIONS]; /* one per counter book side (<= 64 regions or 8 precisions) */
} taker;

/* ---- constraints ---------------------------------------------------------------------------- */

/* True when the ask's vendor/model is on the bid's allow-list (an empty list allows all). */
static int model_allowed(const mx_bid *b, const mx_ask *a)
{
    if (b->n_allow == 0)
        return 1;
    for (unsigned i = 0; i < b->n_allow && i < MX_MAX_ALLOW; i++)
        if (b->allow[i].vendor == a->vendor &&
            (b->allow[i].model == 0 || b->allow[i].model == a->model))
            return 1;
    return 0;
}

/* Devices bid record `bid` (remaining bid_rem) still needs from an ask of `tflops` per device. */
static int64_t devices_needed(const mx_rec *bid, int64_t bid_rem, uint32_t tflops)
{
    if (bid->qty_kind == MX_QTY_DEVICES)
        return bid_rem;
    return (bid_rem + tflops - 1) / tflops;
}

unsigned mx_pair_fails(const mx_engine *e, const mx_rec *bid, const mx_rec *ask, unsigned p,
                       int64_t now, int64_t bid_rem, int64_t ask_rem, int64_t *start,
                       int64_t *devices)
{
    uint32_t tflops = mx_ask_tflops(e, ask, p);
    int64_t need = devices_needed(bid, bid_rem, tflops);
    *devices = ask_rem < need ? ask_rem : need;
    *start = now;
    if (bid->ext == MX_NIL && ask->ext == MX_NIL)
        return 0; /* plain pair: no constraint can fail */

    const mx_bid *b = mx_bid_spec(e, bid);
    const mx_ask *a = mx_ask_spec(e, ask);
    unsigned fails = 0;
    if (a->memory_gb < b->min_memory_gb)
        fails |= 1u << MX_C_MEMORY;
    if (tflops < b->min_tflops)
        fails |= 1u << MX_C_TFLOPS;
    if (b->max_tflops != 0 && tflops > b->max_tflops)
        fails |= 1u << MX_C_MAX_TFLOPS;
    if (!model_allowed(b, a))
        fails |= 1u << MX_C_MODEL;
    if (a->green_permille < b->min_green_permille)
        fails |= 1u << MX_C_GREEN;
    uint32_t hours = bid->size;
    if (hours < a->min_hours || (a->max_hours != 0 && hours > a->max_hours))
        fails |= 1u << MX_C_HOURS;
    if (a->available_from > *start)
        *start = a->available_from;
    if (b->start_earliest > *start)
        *start = b->start_earliest;
    if (b->start_latest != 0 && *start > b->start_latest)
        fails |= 1u << MX_C_START;
    if (a->available_until != 0 && *start + (int64_t)hours * 3600 > a->available_until)
        fails |= 1u << MX_C_AVAILABILITY;
    uint32_t gang = b->min_devices_per_provider;
    if (gang > 1 && ask_rem < (need < gang ? need : (int64_t)gang))
        fails |= 1u << MX_C_GANG;
    return fails;
}

/* ---- cursors -------------------------------------------------------------------------------- */

/* True when level lv crosses the taker's price bound in cursor c. */
static int crosses(const mx_engine *e, const taker *t, const mx_cursor *c, uint32_t lv)
{
    int64_t price = e->levels[lv].price;
    return t->is_ask ? price >= c->bound : price <= c->bound;
}

/* Moves cursor c to the first node of level lv, or marks it exhausted when lv does not cross. */
static void cursor_at(const mx_engine *e, const taker *t, mx_cursor *c, uint32_t lv)
{
    if (lv == MX_NIL || !crosses(e, t, c, lv)) {
        c->level = MX_NIL;
        return;
    }
    c->level = lv;
    c->ref = e->levels[lv].head;
}

/* Steps cursor c past its current node. */
static void cursor_step(const mx_engine *e, const taker *t, mx_cursor *c)
{
    uint32_t next = mx_link_of(e, c->ref)->next;
    if (next != MX_NIL)
        c->ref = next;
    else
        cursor_at(e, t, c, mx_level_next(e, c->level));
}

/* Adds a cursor on book side sidx at its best level, if that crosses. */
static void cursor_add(const mx_engine *e, taker *t, uint32_t sidx, unsigned prec, unsigned region,
                       int64_t bound, uint32_t mult)
{
    uint32_t best = e->sides[sidx].best;
    if (best == MX_NIL)
        return;
    mx_cursor *c = &t->cur[t->ncur];
    *c = (mx_cursor){
        .side = sidx, .mult = mult, .bound = bound, .prec = (uint8_t)prec, .region = (uint8_t)region
    };
    cursor_at(e, t, c, best);
    if (c->level != MX_NIL)
        t->ncur++;
}

/* (Re)starts the taker's cursors at the best levels of its counter book sides. */
static void cursors_start(const mx_engine *e, taker *t)
{
    const mx_rec *r = &e->recs[t->ri];
    t->ncur = 0;
    if (!t->is_ask) {
        uint64_t mask =
            r->ext == MX_NIL ? UINT64_C(1) << r->region : e->exts[r->ext].spec.bid.regions;
        for (; mask != 0; mask &= mask - 1) {
            unsigned region = (unsigned)__builtin_ctzll(mask);
            cursor_add(e, t, mx_side_index(e, r->prec, region, MX_ASK), r->prec, region, r->price,
                       1);
        }
    } else {
        unsigned mask = r->ext == MX_NIL ? 1u << r->prec : e->exts[r->ext].spec.ask.priced;
        for (; mask != 0; mask &= mask - 1) {
            unsigned p = (unsigned)__builtin_ctz(mask);
            cursor_add(e, t, mx_side_index(e, p, r->region, MX_BID), p, r->region,
                       mx_ask_price(e, r, p), mx_ask_tflops(e, r, p));
        }
    }
}

/* True when cursor a's candidate has priority over cursor b's. */
static int cursor_before(const mx_engine *e, const taker *t, const mx_cursor *a, const mx_cursor *b)
{
    int64_t pa = e->levels[a->level].price, pb = e->levels[b->level].price;
    if (t->is_ask) {
        /* Bid price x TFLOPS fits in int64: the bid's overflow check bounds it (limit x maxT,
         * even for a bid whose max_tflops the ask exceeds: ranking comes before eligibility). */
        pa *= a->mult;
        pb *= b->mult;
        if (pa != pb)
            return pa > pb;
    } else if (pa != pb) {
        return pa < pb;
    }
    return e->recs[mx_rec_of(e, a->ref)].seq < e->recs[mx_rec_of(e, b->ref)].seq;
}

/* The cursor with the best candidate, or NULL when no book has a crossing candidate left. */
static mx_cursor *cursor_best(const mx_engine *e, taker *t)
{
    mx_cursor *best = NULL;
    for (unsigned i = 0; i < t->ncur; i++) {
        mx_cursor *c = &t->cur[i];
        if (c->level != MX_NIL && (best == NULL || cursor_before(e, t, c, best)))
            best = c;
    }
    return best;
}

/* ---- effects -------------------------------------------------------------------------------- */

/* Marks record mi as consumed in a dry run. */
static void mark(mx_engine *e, uint32_t mi)
{
    e->recs[mi].flags |= MX_F_MARKED;
    e->marks[e->marks_len++] = mi;
}

/* Clears every dry-run mark. */
static void clear_marks(mx_engine *e)
{
    for (uint32_t i = 0; i < e->marks_len; i++)
        e->recs[e->marks[i]].flags &= ~MX_F_MARKED;
    e->marks_len = 0;
}

/* True when record ri is a bid with a gang constraint. */
static int gang_bid(const mx_engine *e, const mx_rec *r)
{
    return r->side == MX_BID && r->ext != MX_NIL &&
           e->exts[r->ext].spec.bid.min_devices_per_provider > 1;
}

/* Emits the FILL event of a trade. */
static void emit_fill(mx_engine *e, const mx_rec *tr, const mx_rec *m, const mx_cursor *c,
                      int64_t devices, int64_t price, int64_t start)
{
    const mx_rec *ask = tr->side == MX_ASK ? tr : m;
    const mx_rec *bid = tr->side == MX_BID ? tr : m;
    mx_event ev = { .kind = MX_EV_FILL,
                    .side = (uint8_t)tr->side,
                    .id = tr->id,
                    .owner = tr->owner,
                    .remaining = tr->remaining,
                    .now = e->now,
                    .match = e->matches,
                    .maker_id = m->id,
                    .taker_id = tr->id,
                    .maker_owner = m->owner,
                    .taker_owner = tr->owner,
                    .maker_remaining = m->remaining,
                    .taker_remaining = tr->remaining,
                    .devices = devices,
                    .price = price,
                    .start = start,
                    .tflops = mx_ask_tflops(e, ask, c->prec),
                    .hours = bid->size,
                    .taker_side = (uint8_t)tr->side,
                    .precision = c->prec,
                    .region = c->region };
    mx_emit(e, &ev);
}

/*
 * Trades `devices` between the taker and maker mi in cursor c's book. In a dry run only the
 * taker's working remaining changes and a used-up maker is marked. Otherwise both remaining
 * quantities change in every book, the fill is reported, a used-up maker is retired (DONE), and
 * a gang bid maker left with a smaller need is queued for re-matching.
 */
static void trade(mx_engine *e, taker *t, uint32_t mi, const mx_cursor *c, int64_t devices,
                  int64_t start)
{
    mx_rec *tr = &e->recs[t->ri], *m = &e->recs[mi];
    mx_rec *bid = t->is_ask ? m : tr;
    int64_t bid_rem = t->is_ask ? m->remaining : t->remaining;
    int64_t ask_rem = t->is_ask ? t->remaining : m->remaining;
    int64_t bid_used = devices;
    if (bid->qty_kind == MX_QTY_TFLOPS) {
        int64_t tflops = devices * mx_ask_tflops(e, t->is_ask ? tr : m, c->prec);
        bid_used = tflops < bid_rem ? tflops : bid_rem;
    }
    int64_t bid_left = bid_rem - bid_used, ask_left = ask_rem - devices;
    int64_t taker_left = t->is_ask ? ask_left : bid_left;
    int64_t maker_left = t->is_ask ? bid_left : ask_left;
    t->remaining = taker_left;
    if (t->dry) {
        if (maker_left == 0)
            mark(e, mi);
        return;
    }
    int64_t price = t->is_ask ? m->price : mx_ask_price(e, m, c->prec);
    mx_set_remaining(e, t->ri, taker_left);
    mx_set_remaining(e, mi, maker_left);
    e->totals.filled[MX_Q_ASK_DEVICES] += (uint64_t)devices;
    e->totals.filled[mx_qclass(bid)] += (uint64_t)bid_used;
    e->matches++;
    emit_fill(e, tr, m, c, devices, price, start);
    if (maker_left == 0) {
        mx_emit_rec(e, mi, MX_EV_DONE, MX_OK);
        mx_retire(e, mi);
    } else if (gang_bid(e, m)) {
        e->reactivate = mi;
    }
}

/* Handles a self-trade between the taker and the otherwise eligible maker mi under cursor c.
 * Returns 1 when the taker must stop (cancel-newest), 0 to go on. */
static int self_trade(mx_engine *e, taker *t, uint32_t mi, mx_cursor *c)
{
    if (t->rematch || e->stp == MX_STP_SKIP) {
        cursor_step(e, t, c);
        return 0;
    }
    if (e->stp == MX_STP_CANCEL_NEWEST)
        return 1;
    cursor_step(e, t, c); /* cancel-oldest: step off before the maker goes */
    if (t->dry) {
        mark(e, mi);
    } else {
        mx_emit_rec(e, mi, MX_EV_CANCELLED, MX_R_STP);
        mx_retire(e, mi);
    }
    return 0;
}

/*
 * Runs the taker against its counter books until it is filled or nothing eligible crosses.
 * Returns MX_R_STP when self-trade prevention (cancel-newest) stopped it, MX_OK otherwise.
 */
static mx_reason run(mx_engine *e, taker *t)
{
    cursors_start(e, t);
    while (t->remaining > 0) {
        mx_cursor *c = cursor_best(e, t);
        if (c == NULL)
            break;
        uint32_t mi = mx_rec_of(e, c->ref);
        const mx_rec *tr = &e->recs[t->ri], *m = &e->recs[mi];
        if (m->flags & MX_F_MARKED) {
            cursor_step(e, t, c);
            continue;
        }
        const mx_rec *bid = t->is_ask ? m : tr, *ask = t->is_ask ? tr : m;
        int64_t bid_rem = t->is_ask ? m->remaining : t->remaining;
        int64_t ask_rem = t->is_ask ? t->remaining : m->remaining;
        int64_t start, devices;
        if (mx_pair_fails(e, bid, ask, c->prec, e->now, bid_rem, ask_rem, &start, &devices)) {
            cursor_step(e, t, c);
            continue;
        }
        if (m->owner == tr->owner) {
            if (self_trade(e, t, mi, c))
                return MX_R_STP;
            continue;
        }
        cursor_step(e, t, c); /* before the trade, which may retire the maker */
        trade(e, t, mi, c, devices, start);
        if (t->gang && t->remaining > 0)
            cursors_start(e, t);
    }
    return MX_OK;
}

/* Sets up a taker run for record ri. */
static void taker_init(const mx_engine *e, taker *t, uint32_t ri, int dry, int rematch)
{
    const mx_rec *r = &e->recs[ri];
    t->ri = ri;
    t->is_ask = r->side == MX_ASK;
    t->dry = dry;
    t->rematch = rematch;
    t->gang = gang_bid(e, r);
    t->remaining = r->remaining;
    t->ncur = 0;
}

/* True when a FOK dry run of record ri fills it completely. */
static int fok_fillable(mx_engine *e, uint32_t ri)
{
    taker t;
    taker_init(e, &t, ri, 1, 0);
    mx_reason stop = run(e, &t);
    clear_marks(e);
    return stop == MX_OK && t.remaining == 0;
}

void mx_match_incoming(mx_engine *e, uint32_t ri)
{
    unsigned tif = e->recs[ri].tif;
    if (tif == MX_FOK && !fok_fillable(e, ri)) {
        mx_emit_rec(e, ri, MX_EV_CANCELLED, MX_R_FOK);
        mx_retire(e, ri);
        return;
    }
    taker t;
    taker_init(e, &t, ri, 0, 0);
    mx_reason stop = run(e, &t);
    if (e->recs[ri].remaining == 0) {
        mx_emit_rec(e, ri, MX_EV_DONE, MX_OK);
        mx_retire(e, ri);
    } else if (stop == MX_R_STP) {
        mx_emit_rec(e, ri, MX_EV_CANCELLED, MX_R_STP);
        mx_retire(e, ri);
    } else if (tif == MX_IOC || !MX_ALWAYS(tif != MX_FOK)) {
        /* A FOK order that passed its dry run is filled by the real run: never here. */
        mx_emit_rec(e, ri, MX_EV_CANCELLED, tif == MX_IOC ? MX_R_IOC : MX_R_FOK);
        mx_retire(e, ri);
    } else {
        mx_rest(e, ri);
    }
    mx_run_reactivation(e);
}

void mx_run_reactivation(mx_engine *e)
{
    uint32_t ri = e->reactivate;
    if (ri == MX_NIL)
        return;
    e->reactivate = MX_NIL;
    taker t;
    taker_init(e, &t, ri, 0, 1);
    run(e, &t);
    if (e->recs[ri].remaining == 0) {
        mx_emit_rec(e, ri, MX_EV_DONE, MX_OK);
        mx_retire(e, ri);
    }
}
