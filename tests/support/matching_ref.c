/*
 * matching_ref.c — the naive reference matcher (see matching_ref.h).
 *
 * Read it next to docs/matching.md: each function implements one paragraph of the rules.
 * Nothing here is clever on purpose. Resting orders live in `orders[0..n)`, unordered;
 * removing one swaps the last into its place.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/support/matching_ref.h"

typedef struct ref_order {
    int side;          /* MX_BID or MX_ASK */
    mx_bid bid;        /* the spec, for a bid */
    mx_ask ask;        /* the spec, for an ask */
    int64_t remaining; /* devices, or TFLOPS for a capacity bid */
    uint64_t seq;      /* arrival sequence */
    int marked;        /* consumed in the current FOK dry run */
} ref_order;

struct ref_engine {
    unsigned regions;    /* configured regions */
    mx_stp stp;          /* self-trade policy */
    size_t max_orders;   /* resting limit, 0 = none */
    mx_sink_fn sink;     /* event sink */
    void *sink_ctx;      /* its context */
    int64_t now;         /* clock */
    uint64_t seq;        /* last sequence handed out */
    uint64_t matches;    /* fills so far */
    ref_order *orders;   /* resting orders */
    size_t n;            /* how many */
    size_t cap;          /* allocated */
    uint64_t reactivate; /* id of a gang bid to re-match, 0 = none */
};

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t id_of(const ref_order *o)
{
    return o->side == MX_BID ? o->bid.id : o->ask.id;
}

static uint64_t owner_of(const ref_order *o)
{
    return o->side == MX_BID ? o->bid.owner : o->ask.owner;
}

static unsigned tif_of(const ref_order *o)
{
    return o->side == MX_BID ? o->bid.tif : o->ask.tif;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static ref_order *find(ref_engine *r, uint64_t id)
{
    for (size_t i = 0; i < r->n; i++)
        if (id_of(&r->orders[i]) == id)
            return &r->orders[i];
    return NULL;
}

static void remove_order(ref_engine *r, ref_order *o)
{
    *o = r->orders[--r->n];
}

static void emit(ref_engine *r, const mx_event *ev)
{
    if (r->sink != NULL)
        r->sink(r->sink_ctx, ev);
}

static void emit_order(ref_engine *r, const ref_order *o, mx_event_kind kind, mx_reason reason)
{
    mx_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = (uint8_t)kind;
    ev.reason = (uint8_t)reason;
    ev.side = (uint8_t)o->side;
    ev.id = id_of(o);
    ev.owner = owner_of(o);
    ev.remaining = o->remaining;
    ev.now = r->now;
    emit(r, &ev);
}

static mx_reason reject(ref_engine *r, mx_reason reason, uint64_t id, int side, uint64_t owner)
{
    mx_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = MX_EV_REJECTED;
    ev.reason = (uint8_t)reason;
    ev.side = (uint8_t)side;
    ev.id = id;
    ev.owner = owner;
    ev.now = r->now;
    emit(r, &ev);
    return reason;
}

/* ---- validation (docs/matching.md, "Validation", in that order) ----------------------------- */

/* True when a * b * c * d (all >= 0) fits in int64; stops at the first step above INT64_MAX so
 * that the 128-bit products cannot overflow themselves. */
static int fits(int64_t a, int64_t b, int64_t c, int64_t d)
{
    __int128 x = (__int128)a * b;
    if (x > INT64_MAX)
        return 0;
    x *= c;
    if (x > INT64_MAX)
        return 0;
    x *= d;
    return x <= INT64_MAX;
}

static int time_ok(int64_t t)
{
    return t >= 0 && t <= MX_MAX_TIME;
}

static mx_reason check_bid(const ref_engine *r, const mx_bid *b)
{
    if (b->id == 0)
        return MX_R_BAD_ID;
    if (b->precision >= MX_NPREC)
        return MX_R_BAD_PRECISION;
    for (unsigned bit = r->regions; bit < 64; bit++)
        if (b->regions >> bit & 1)
            return MX_R_BAD_REGION;
    if (b->regions == 0)
        return MX_R_BAD_REGION;
    if (b->qty_kind > 1 || b->quantity <= 0)
        return MX_R_BAD_QUANTITY;
    if (b->quantity > (b->qty_kind == MX_QTY_DEVICES ? MX_MAX_DEVICES : MX_MAX_CAPACITY))
        return MX_R_BAD_QUANTITY;
    if (b->limit <= 0)
        return MX_R_BAD_PRICE;
    if (b->hours < 1 || b->hours > MX_MAX_HOURS)
        return MX_R_BAD_HOURS;
    if (b->tif > MX_FOK)
        return MX_R_BAD_TIF;
    if (b->tif == MX_GTD && !(b->expiry > r->now && b->expiry <= MX_MAX_TIME))
        return MX_R_BAD_EXPIRY;
    if (!time_ok(b->start_earliest) || !time_ok(b->start_latest))
        return MX_R_BAD_WINDOW;
    if (b->start_latest != 0 && (b->start_latest < b->start_earliest || b->start_latest < r->now))
        return MX_R_BAD_WINDOW;
    if (b->n_allow > MX_MAX_ALLOW || b->min_green_permille > 1000 ||
        b->min_tflops > mx_max_tflops(b->precision))
        return MX_R_BAD_CONSTRAINT;
    if (b->max_tflops != 0) {
        uint32_t lo = b->min_tflops > 1 ? b->min_tflops : 1;
        if (b->max_tflops < lo || b->max_tflops > mx_max_tflops(b->precision))
            return MX_R_BAD_CONSTRAINT;
    }
    for (unsigned i = 0; i < b->n_allow; i++)
        if (b->allow[i].vendor == 0)
            return MX_R_BAD_CONSTRAINT;
    int64_t cap = mx_max_tflops(b->precision);
    if (b->qty_kind == MX_QTY_DEVICES) {
        /* fills meet asks of at most max_tflops; ranking still needs limit x maxT */
        int64_t t = b->max_tflops != 0 ? b->max_tflops : cap;
        if (!fits(b->limit, t, b->quantity, b->hours) || !fits(b->limit, cap, 1, 1))
            return MX_R_OVERFLOW;
    } else if (!fits(b->limit, b->quantity + cap, b->hours, 1)) {
        return MX_R_OVERFLOW;
    }
    return MX_OK;
}

static mx_reason check_ask(const ref_engine *r, const mx_ask *a)
{
    if (a->id == 0)
        return MX_R_BAD_ID;
    if (a->priced == 0)
        return MX_R_BAD_PRECISION;
    if (a->region >= r->regions)
        return MX_R_BAD_REGION;
    if (a->devices <= 0 || a->devices > MX_MAX_DEVICES)
        return MX_R_BAD_QUANTITY;
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (!(a->priced >> p & 1))
            continue;
        if (a->tflops[p] < 1 || a->tflops[p] > mx_max_tflops(p))
            return MX_R_BAD_QUANTITY;
        if (a->price[p] <= 0)
            return MX_R_BAD_PRICE;
    }
    if (a->max_hours != 0 && (a->max_hours < a->min_hours || a->max_hours > MX_MAX_HOURS))
        return MX_R_BAD_HOURS;
    if (a->min_hours > MX_MAX_HOURS)
        return MX_R_BAD_HOURS;
    if (a->tif > MX_FOK)
        return MX_R_BAD_TIF;
    if (a->tif == MX_GTD && !(a->expiry > r->now && a->expiry <= MX_MAX_TIME))
        return MX_R_BAD_EXPIRY;
    if (!time_ok(a->available_from) || !time_ok(a->available_until))
        return MX_R_BAD_WINDOW;
    if (a->available_until != 0 &&
        (a->available_until <= a->available_from || a->available_until <= r->now))
        return MX_R_BAD_WINDOW;
    if (a->green_permille > 1000)
        return MX_R_BAD_CONSTRAINT;
    return MX_OK;
}

/* ---- time ----------------------------------------------------------------------------------- */

/* When an order expires (0 = never): GTD expiry, an ask's window end, a bid's start window end
 * (one second after start_latest), whichever is first. */
static int64_t expiry_of(const ref_order *o)
{
    int64_t t[2] = { 0, 0 };
    if (o->side == MX_BID) {
        t[0] = o->bid.tif == MX_GTD ? o->bid.expiry : 0;
        t[1] = o->bid.start_latest != 0 ? o->bid.start_latest + 1 : 0;
    } else {
        t[0] = o->ask.tif == MX_GTD ? o->ask.expiry : 0;
        t[1] = o->ask.available_until;
    }
    if (t[0] == 0)
        return t[1];
    if (t[1] == 0)
        return t[0];
    return min64(t[0], t[1]);
}

/* Expires every due order, by (expiry, sequence). */
static void expire_due(ref_engine *r)
{
    for (;;) {
        ref_order *first = NULL;
        for (size_t i = 0; i < r->n; i++) {
            ref_order *o = &r->orders[i];
            int64_t x = expiry_of(o);
            if (x == 0 || x > r->now)
                continue;
            if (first == NULL || x < expiry_of(first) ||
                (x == expiry_of(first) && o->seq < first->seq))
                first = o;
        }
        if (first == NULL)
            return;
        emit_order(r, first, MX_EV_EXPIRED, MX_R_EXPIRED);
        remove_order(r, first);
    }
}

/* ---- the pair rules ------------------------------------------------------------------------- */

/* True when bid b and ask a share the book of precision p (the bid's) and the ask's region. */
static int share_book(const mx_bid *b, const mx_ask *a)
{
    return (b->regions >> a->region & 1) && (a->priced >> b->precision & 1);
}

static int64_t need_of(const mx_bid *b, int64_t bid_rem, uint32_t tflops)
{
    if (b->qty_kind == MX_QTY_DEVICES)
        return bid_rem;
    return (bid_rem + tflops - 1) / tflops;
}

/* Bit mask of the constraints (1 << MX_C_*) the pair fails, self-trade excluded; *start gets
 * the agreement's start. */
static unsigned pair_fails(const ref_engine *r, const mx_bid *b, int64_t bid_rem, const mx_ask *a,
                           int64_t ask_rem, int64_t *start)
{
    unsigned p = b->precision, fails = 0;
    uint32_t tflops = a->tflops[p];
    if (a->memory_gb < b->min_memory_gb)
        fails |= 1u << MX_C_MEMORY;
    if (tflops < b->min_tflops)
        fails |= 1u << MX_C_TFLOPS;
    if (b->max_tflops != 0 && tflops > b->max_tflops)
        fails |= 1u << MX_C_MAX_TFLOPS;
    if (b->n_allow > 0) {
        int ok = 0;
        for (unsigned i = 0; i < b->n_allow; i++)
            if (b->allow[i].vendor == a->vendor &&
                (b->allow[i].model == 0 || b->allow[i].model == a->model))
                ok = 1;
        if (!ok)
            fails |= 1u << MX_C_MODEL;
    }
    if (a->green_permille < b->min_green_permille)
        fails |= 1u << MX_C_GREEN;
    if (b->hours < a->min_hours || (a->max_hours != 0 && b->hours > a->max_hours))
        fails |= 1u << MX_C_HOURS;
    *start = max64(r->now, max64(a->available_from, b->start_earliest));
    if (b->start_latest != 0 && *start > b->start_latest)
        fails |= 1u << MX_C_START;
    if (a->available_until != 0 && *start + (int64_t)b->hours * 3600 > a->available_until)
        fails |= 1u << MX_C_AVAILABILITY;
    int64_t need = need_of(b, bid_rem, tflops);
    if (b->min_devices_per_provider > 1 && ask_rem < min64(b->min_devices_per_provider, need))
        fails |= 1u << MX_C_GANG;
    return fails;
}

/* ---- matching ------------------------------------------------------------------------------- */

/* The taker's view during one run. */
typedef struct run {
    ref_order *t;      /* the taker (not in orders[] unless rematch) */
    int64_t remaining; /* working remaining */
    int dry;           /* FOK dry run */
    int rematch;       /* a resting gang bid re-matched */
} run;

/* True when candidate m ranks before candidate best for taker t (best may be NULL). */
static int ranks_before(const ref_order *t, const ref_order *m, const ref_order *best)
{
    if (best == NULL)
        return 1;
    if (t->side == MX_BID) {
        int64_t pm = m->ask.price[t->bid.precision], pb = best->ask.price[t->bid.precision];
        if (pm != pb)
            return pm < pb;
    } else {
        int64_t vm = m->bid.limit * t->ask.tflops[m->bid.precision];
        int64_t vb = best->bid.limit * t->ask.tflops[best->bid.precision];
        if (vm != vb)
            return vm > vb;
    }
    return m->seq < best->seq;
}

/* The best counter-order for the taker: crossing, not marked, passing every constraint, and,
 * when self-trades are skipped, of another owner. NULL when none. */
static ref_order *best_counter(ref_engine *r, const run *u)
{
    const ref_order *t = u->t;
    int skip_self = u->rematch || r->stp == MX_STP_SKIP;
    ref_order *best = NULL;
    for (size_t i = 0; i < r->n; i++) {
        ref_order *m = &r->orders[i];
        if (m->side == t->side || m->marked)
            continue;
        const ref_order *bo = t->side == MX_BID ? t : m, *ao = t->side == MX_BID ? m : t;
        if (!share_book(&bo->bid, &ao->ask))
            continue;
        if (ao->ask.price[bo->bid.precision] > bo->bid.limit)
            continue;
        int64_t bid_rem = t->side == MX_BID ? u->remaining : m->remaining;
        int64_t ask_rem = t->side == MX_ASK ? u->remaining : m->remaining;
        int64_t start;
        if (pair_fails(r, &bo->bid, bid_rem, &ao->ask, ask_rem, &start) != 0)
            continue;
        if (skip_self && owner_of(m) == owner_of(t))
            continue;
        if (ranks_before(t, m, best))
            best = m;
    }
    return best;
}

/* Trades between the run's taker and m. Returns 1 when m was used up (and removed). */
static void trade(ref_engine *r, run *u, ref_order *m)
{
    ref_order *t = u->t;
    const ref_order *bo = t->side == MX_BID ? t : m, *ao = t->side == MX_BID ? m : t;
    unsigned p = bo->bid.precision;
    int64_t bid_rem = t->side == MX_BID ? u->remaining : m->remaining;
    int64_t ask_rem = t->side == MX_ASK ? u->remaining : m->remaining;
    int64_t start;
    pair_fails(r, &bo->bid, bid_rem, &ao->ask, ask_rem, &start);
    uint32_t tflops = ao->ask.tflops[p];
    int64_t devices = min64(ask_rem, need_of(&bo->bid, bid_rem, tflops));
    int64_t bid_used =
        bo->bid.qty_kind == MX_QTY_DEVICES ? devices : min64(devices * tflops, bid_rem);
    int64_t bid_left = bid_rem - bid_used, ask_left = ask_rem - devices;
    int64_t taker_left = t->side == MX_BID ? bid_left : ask_left;
    int64_t maker_left = t->side == MX_BID ? ask_left : bid_left;
    u->remaining = taker_left;
    if (u->dry) {
        if (maker_left == 0)
            m->marked = 1;
        return;
    }
    t->remaining = taker_left;
    m->remaining = maker_left;
    r->matches++;
    mx_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = MX_EV_FILL;
    ev.side = (uint8_t)t->side;
    ev.id = id_of(t);
    ev.owner = owner_of(t);
    ev.remaining = taker_left;
    ev.now = r->now;
    ev.match = r->matches;
    ev.maker_id = id_of(m);
    ev.taker_id = id_of(t);
    ev.maker_owner = owner_of(m);
    ev.taker_owner = owner_of(t);
    ev.maker_remaining = maker_left;
    ev.taker_remaining = taker_left;
    ev.devices = devices;
    ev.price = m->side == MX_ASK ? m->ask.price[p] : m->bid.limit;
    ev.start = start;
    ev.tflops = tflops;
    ev.hours = bo->bid.hours;
    ev.taker_side = (uint8_t)t->side;
    ev.precision = (uint8_t)p;
    ev.region = ao->ask.region;
    emit(r, &ev);
    if (maker_left == 0) {
        emit_order(r, m, MX_EV_DONE, MX_OK);
        remove_order(r, m);
    } else if (m->side == MX_BID && m->bid.min_devices_per_provider > 1) {
        r->reactivate = m->bid.id;
    }
}

/* Runs the taker until filled or no counter-order qualifies. Returns MX_R_STP when self-trade
 * prevention (cancel-newest) stops it. Pointers into orders[] are not kept across removals:
 * the taker of a rematch is found again by id after each trade. */
static mx_reason run_taker(ref_engine *r, run *u)
{
    uint64_t tid = id_of(u->t);
    while (u->remaining > 0) {
        if (u->rematch)
            u->t = find(r, tid);
        ref_order *m = best_counter(r, u);
        if (m == NULL)
            break;
        if (owner_of(m) == owner_of(u->t)) {
            if (r->stp == MX_STP_CANCEL_NEWEST)
                return MX_R_STP;
            /* cancel-oldest: the resting order goes */
            if (u->dry) {
                m->marked = 1;
            } else {
                emit_order(r, m, MX_EV_CANCELLED, MX_R_STP);
                remove_order(r, m);
            }
            continue;
        }
        trade(r, u, m);
    }
    return MX_OK;
}

static void clear_marks(ref_engine *r)
{
    for (size_t i = 0; i < r->n; i++)
        r->orders[i].marked = 0;
}

/* Re-matches a gang bid whose need fell, if any. */
static void rematch(ref_engine *r)
{
    uint64_t id = r->reactivate;
    r->reactivate = 0;
    ref_order *o = id != 0 ? find(r, id) : NULL;
    if (o == NULL)
        return;
    run u = { o, o->remaining, 0, 1 };
    run_taker(r, &u);
    o = find(r, id);
    if (o->remaining == 0) {
        emit_order(r, o, MX_EV_DONE, MX_OK);
        remove_order(r, o);
    }
}

/* Grows the array so that one more order fits. Returns 0 when out of memory. */
static int reserve(ref_engine *r)
{
    if (r->n < r->cap)
        return 1;
    size_t cap = r->cap ? r->cap * 2 : 64;
    ref_order *p = realloc(r->orders, cap * sizeof *p);
    if (p == NULL)
        return 0;
    r->orders = p;
    r->cap = cap;
    return 1;
}

/* Matches incoming order o (a copy, not resting), then rests, completes or cancels it. */
static void incoming(ref_engine *r, ref_order o)
{
    unsigned tif = tif_of(&o);
    if (tif == MX_FOK) {
        run dry = { &o, o.remaining, 1, 0 };
        mx_reason stop = run_taker(r, &dry);
        clear_marks(r);
        if (stop != MX_OK || dry.remaining > 0) {
            emit_order(r, &o, MX_EV_CANCELLED, MX_R_FOK);
            return;
        }
    }
    run u = { &o, o.remaining, 0, 0 };
    mx_reason stop = run_taker(r, &u);
    if (o.remaining == 0)
        emit_order(r, &o, MX_EV_DONE, MX_OK);
    else if (stop == MX_R_STP)
        emit_order(r, &o, MX_EV_CANCELLED, MX_R_STP);
    else if (tif == MX_IOC || tif == MX_FOK)
        emit_order(r, &o, MX_EV_CANCELLED, tif == MX_IOC ? MX_R_IOC : MX_R_FOK);
    else
        r->orders[r->n++] = o; /* room was reserved */
    rematch(r);
}

/* ---- commands ------------------------------------------------------------------------------- */

static mx_reason add(ref_engine *r, int side, const mx_bid *b, const mx_ask *a, int replacing)
{
    uint64_t id = side == MX_BID ? b->id : a->id;
    uint64_t owner = side == MX_BID ? b->owner : a->owner;
    ref_order *old = NULL;
    if (replacing) {
        old = find(r, id);
        if (old == NULL)
            return reject(r, MX_R_UNKNOWN_ID, id, side, owner);
        if (old->side != side)
            return reject(r, MX_R_WRONG_SIDE, id, side, owner);
        if (owner_of(old) != owner)
            return reject(r, MX_R_OWNER_MISMATCH, id, side, owner);
    }
    mx_reason why = side == MX_BID ? check_bid(r, b) : check_ask(r, a);
    if (why == MX_OK && !replacing && find(r, id) != NULL)
        why = MX_R_DUPLICATE_ID;
    if (why == MX_OK && !replacing && r->max_orders != 0 && r->n >= r->max_orders)
        why = MX_R_FULL;
    if (why == MX_OK && (r->seq >= MX_MAX_SEQ))
        why = MX_R_FULL;
    if (why == MX_OK && !reserve(r))
        why = MX_R_NO_MEMORY;
    if (why != MX_OK)
        return reject(r, why, id, side, owner);
    if (old != NULL)
        remove_order(r, old);
    ref_order o;
    memset(&o, 0, sizeof o);
    o.side = side;
    if (side == MX_BID) {
        o.bid = *b;
        o.remaining = b->quantity;
    } else {
        o.ask = *a;
        o.remaining = a->devices;
    }
    o.seq = ++r->seq;
    emit_order(r, &o, replacing ? MX_EV_REPLACED : MX_EV_ACCEPTED, MX_OK);
    incoming(r, o);
    return MX_OK;
}

static mx_reason cancel(ref_engine *r, uint64_t id)
{
    ref_order *o = find(r, id);
    if (o == NULL)
        return reject(r, MX_R_UNKNOWN_ID, id, MX_BID, 0);
    emit_order(r, o, MX_EV_CANCELLED, MX_R_USER);
    remove_order(r, o);
    return MX_OK;
}

static mx_reason reduce(ref_engine *r, uint64_t id, int64_t q)
{
    ref_order *o = find(r, id);
    if (o == NULL)
        return reject(r, MX_R_UNKNOWN_ID, id, MX_BID, 0);
    if (q <= 0)
        return reject(r, MX_R_BAD_QUANTITY, id, o->side, owner_of(o));
    if (q >= o->remaining)
        return reject(r, MX_R_NOT_REDUCING, id, o->side, owner_of(o));
    o->remaining = q;
    emit_order(r, o, MX_EV_REDUCED, MX_OK);
    if (o->side == MX_BID && o->bid.min_devices_per_provider > 1) {
        r->reactivate = id;
        rematch(r);
    }
    return MX_OK;
}

mx_reason ref_apply(ref_engine *r, const mx_command *c)
{
    uint64_t id = 0, owner = 0;
    int side = MX_BID;
    if (c->kind == MX_CMD_BID || c->kind == MX_CMD_REPLACE_BID) {
        id = c->bid.id;
        owner = c->bid.owner;
    } else if (c->kind == MX_CMD_ASK || c->kind == MX_CMD_REPLACE_ASK) {
        id = c->ask.id;
        owner = c->ask.owner;
        side = MX_ASK;
    } else if (c->kind == MX_CMD_CANCEL || c->kind == MX_CMD_REDUCE) {
        id = c->id;
    }
    if (c->kind < MX_CMD_BID || c->kind > MX_CMD_EXPIRE)
        return reject(r, MX_R_BAD_COMMAND, 0, MX_BID, 0);
    if (c->now < 0 || c->now > MX_MAX_TIME)
        return reject(r, MX_R_BAD_TIME, id, side, owner);
    r->now = max64(r->now, c->now);
    expire_due(r);
    switch (c->kind) {
    case MX_CMD_BID: return add(r, MX_BID, &c->bid, NULL, 0);
    case MX_CMD_ASK: return add(r, MX_ASK, NULL, &c->ask, 0);
    case MX_CMD_REPLACE_BID: return add(r, MX_BID, &c->bid, NULL, 1);
    case MX_CMD_REPLACE_ASK: return add(r, MX_ASK, NULL, &c->ask, 1);
    case MX_CMD_CANCEL: return cancel(r, c->id);
    case MX_CMD_REDUCE: return reduce(r, c->id, c->quantity);
    default: return MX_OK; /* EXPIRE */
    }
}

/* ---- life cycle and queries ----------------------------------------------------------------- */

ref_engine *ref_create(const mx_config *cfg)
{
    if (cfg->regions == 0 || cfg->regions > MX_MAX_REGIONS || (unsigned)cfg->stp > MX_STP_SKIP)
        return NULL;
    ref_engine *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->regions = cfg->regions;
    r->stp = cfg->stp;
    r->max_orders = cfg->max_orders;
    r->sink = cfg->sink;
    r->sink_ctx = cfg->sink_ctx;
    return r;
}

void ref_free(ref_engine *r)
{
    if (r == NULL)
        return;
    free(r->orders);
    free(r);
}

uint64_t ref_state_hash(const ref_engine *r)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < r->n; i++) {
        const ref_order *o = &r->orders[i];
        sum += o->side == MX_BID ? mx_hash_bid(&o->bid, o->remaining, o->seq)
                                 : mx_hash_ask(&o->ask, o->remaining, o->seq);
    }
    return mx_hash_finish(sum, r->n);
}

size_t ref_resting(const ref_engine *r)
{
    return r->n;
}

bool ref_lookup(const ref_engine *r, uint64_t id, mx_order_info *out)
{
    for (size_t i = 0; i < r->n; i++) {
        const ref_order *o = &r->orders[i];
        if (id_of(o) == id) {
            out->side = (uint8_t)o->side;
            out->owner = owner_of(o);
            out->remaining = o->remaining;
            out->seq = o->seq;
            return true;
        }
    }
    return false;
}

uint64_t ref_resting_id(const ref_engine *r, size_t i)
{
    return i < r->n ? id_of(&r->orders[i]) : 0;
}

/* Price of order o in book (precision, region) on its side, or 0 when o is not in it. */
static int64_t price_in_book(const ref_order *o, unsigned precision, unsigned region)
{
    if (o->side == MX_BID)
        return o->bid.precision == precision && (o->bid.regions >> region & 1) ? o->bid.limit : 0;
    return o->ask.region == region && (o->ask.priced >> precision & 1) ? o->ask.price[precision]
                                                                       : 0;
}

size_t ref_depth(const ref_engine *r, unsigned precision, unsigned region, mx_side side,
                 mx_level_info *out, size_t max)
{
    size_t n = 0;
    int64_t last = 0; /* price of the previous level written */
    for (;;) {
        /* the next price in priority order after `last` */
        int64_t next = 0;
        for (size_t i = 0; i < r->n; i++) {
            const ref_order *o = &r->orders[i];
            int64_t p = o->side == (int)side ? price_in_book(o, precision, region) : 0;
            if (p == 0 || (n > 0 && (side == MX_ASK ? p <= last : p >= last)))
                continue;
            if (next == 0 || (side == MX_ASK ? p < next : p > next))
                next = p;
        }
        if (next == 0 || n == max)
            return n;
        mx_level_info L = { next, 0, 0, 0 };
        for (size_t i = 0; i < r->n; i++) {
            const ref_order *o = &r->orders[i];
            if (o->side != (int)side || price_in_book(o, precision, region) != next)
                continue;
            L.orders++;
            if (side == MX_ASK) {
                L.devices += (uint64_t)o->remaining;
                L.tflops += (uint64_t)o->remaining * o->ask.tflops[precision];
            } else if (o->bid.qty_kind == MX_QTY_DEVICES) {
                L.devices += (uint64_t)o->remaining;
            } else {
                L.tflops += (uint64_t)o->remaining;
            }
        }
        out[n++] = L;
        last = next;
    }
}

mx_reason ref_explain(const ref_engine *r, uint64_t id, mx_explanation *out)
{
    memset(out, 0, sizeof *out);
    const ref_order *o = NULL;
    for (size_t i = 0; i < r->n; i++)
        if (id_of(&r->orders[i]) == id)
            o = &r->orders[i];
    if (o == NULL)
        return MX_R_UNKNOWN_ID;
    out->side = (uint8_t)o->side;
    /* Visit counter-orders in the engine's documented order: books by region (bid) or
     * precision (ask) id, then priority (price, then sequence). Ties in the gap keep the first. */
    const ref_order **list = malloc((r->n + 1) * sizeof *list);
    if (list == NULL)
        return MX_R_NO_MEMORY;
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        const ref_order *m = &r->orders[i];
        if (m->side == o->side)
            continue;
        const ref_order *bo = o->side == MX_BID ? o : m, *ao = o->side == MX_BID ? m : o;
        if (share_book(&bo->bid, &ao->ask))
            list[k++] = m;
    }
    /* insertion sort by (book id, priority) */
    for (size_t i = 1; i < k; i++) {
        for (size_t j = i; j > 0; j--) {
            const ref_order *a = list[j - 1], *b = list[j];
            unsigned ka = o->side == MX_BID ? a->ask.region : a->bid.precision;
            unsigned kb = o->side == MX_BID ? b->ask.region : b->bid.precision;
            int64_t pa = o->side == MX_BID ? a->ask.price[o->bid.precision] : a->bid.limit;
            int64_t pb = o->side == MX_BID ? b->ask.price[o->bid.precision] : b->bid.limit;
            int swap = ka != kb   ? ka > kb
                       : pa != pb ? (o->side == MX_BID ? pa > pb : pa < pb)
                                  : a->seq > b->seq;
            if (!swap)
                break;
            list[j - 1] = b;
            list[j] = a;
        }
    }
    for (size_t i = 0; i < k; i++) {
        const ref_order *m = list[i];
        const ref_order *bo = o->side == MX_BID ? o : m, *ao = o->side == MX_BID ? m : o;
        int64_t start;
        unsigned fails =
            pair_fails((ref_engine *)r, &bo->bid, bo->remaining, &ao->ask, ao->remaining, &start);
        if (owner_of(m) == owner_of(o))
            fails |= 1u << MX_C_SELF;
        out->examined++;
        for (unsigned c = 0; c < MX_NCONSTRAINTS; c++)
            if (fails >> c & 1)
                out->excluded[c]++;
        if (fails != 0)
            continue;
        out->eligible++;
        unsigned p = bo->bid.precision;
        int64_t gap = ao->ask.price[p] - bo->bid.limit;
        if (!out->has_nearest || gap < out->price_gap) {
            out->has_nearest = true;
            out->price_gap = gap;
            out->nearest_id = id_of(m);
            out->nearest_precision = (uint8_t)p;
            out->nearest_region = ao->ask.region;
        }
    }
    free(list);
    return MX_OK;
}
