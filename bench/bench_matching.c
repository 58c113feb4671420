/*
 * bench_matching.c — throughput and latency of the matching engine on seeded workloads.
 *
 *   cpx-bench-matching                     every shape (A, B, C at 1k/10k/100k resting, D)
 *   cpx-bench-matching --shape C --resting 100000 [--ops N] [--seed S] [--reps R]
 *   cpx-bench-matching --shape A --emit FILE   also write the plain stream it generated
 *   cpx-bench-matching --stream FILE           replay a plain stream file
 *
 * Each run prints one line:
 *   bench matching shape=<S> resting=<N> ops=<n> seconds=<s> ops_per_s=<x> p50_ns=<a>
 *   p99_ns=<b> p999_ns=<c> trades=<t> volume=<v> bytes_per_resting=<m>
 *
 * How a run works. The workload is generated first, untimed, by driving a scratch engine (so
 * that cancels and replaces aim at orders that are really alive) and recording the commands.
 * A shape may start with a prefill (commands that build the resting book) that is replayed but
 * not timed. Then:
 *  - throughput: a fresh engine replays prefill + ops; the clock is read only before and after
 *    the measured ops (no per-op clock). Repeated --reps times (default 3); the median is shown.
 *  - latency: another fresh engine replays the same; each measured op is timed on its own with
 *    clock_gettime(CLOCK_MONOTONIC); p50/p99/p999 of those.
 * trades and volume (devices) count the whole stream (prefill included; prefills never trade);
 * resting is the resting count after the run; bytes_per_resting is mx_memory_bytes() (every
 * pool at capacity, tables, the engine) divided by it.
 *
 * Shapes (one book FP16/region 0 for A-C; prices in ticks, quantities in devices, owner = id):
 *  A  ~1,000 resting over ~750 levels; 9% GTC adds, 3% IOC, 6% cancels, 82% replaces (moves)
 *     - the mix published for the Java exchange-core benchmark.
 *  B  add-only, alternating buy/sell; buys in [m, m+9], sells in [m+4, m+13] (10-tick windows
 *     overlapping by 6 ticks: about half the orders fill).
 *  C  50% passive adds around a mid, 10% IOC sweeping from the touch, 40% cancels of live
 *     orders; the resting count is held at --resting (1k, 10k, 100k).
 *  D  the compute market: 8 regions x 8 precisions, asks priced in 2-4 precisions, bids in 1-4
 *     regions with constraints (memory, TFLOPS, vendor allow-lists, gang, green, start
 *     windows), capacity and device bids, all TIFs, 30% cancels.
 *
 * Plain stream format (one command per line; owner = id; unknown-id cancels are ignored):
 *   A <id> <B|S> <price> <qty>    GTC limit add
 *   I <id> <B|S> <price> <qty>    IOC limit
 *   C <id>                        cancel
 * A replace (shape A's move) is written as C then A of the same id, which is what replace
 * means, so a replay gives the same trades and volume.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "matching/matching.h"

#define PLAIN_PREC MX_FP16 /* the book of the plain shapes */

/* ---- random numbers ------------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t range(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

/* ---- workloads ------------------------------------------------------------------------------ */

/* One command of a workload. Plain shapes use id/side/price/qty; shape D points at a spec. */
typedef struct op {
    uint64_t id;   /* order id (owner too, in plain shapes) */
    int64_t price; /* ticks */
    int32_t qty;   /* devices */
    uint32_t spec; /* shape D: index into bids[] or asks[] */
    char kind;     /* 'A' add GTC, 'I' IOC, 'C' cancel, 'R' replace (move), 'b'/'a' D bid/ask */
    char side;     /* 'B' buy or 'S' sell */
} op;

typedef struct workload {
    const char *shape; /* "A".."D", "stream"; shape D cancels carry their clock in price */
    op *ops;           /* prefill then measured ops */
    size_t n;          /* total ops */
    size_t cap;        /* allocated */
    size_t prefill;    /* the first `prefill` ops build the book, untimed */
    mx_bid *bids;      /* shape D specs */
    size_t nbids;      /* used */
    mx_ask *asks;      /* shape D specs */
    size_t nasks;      /* used */
    size_t expected;   /* resting orders to size the engine for */
    unsigned regions;  /* regions of the engine */
} workload;

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return p;
}

static void push(workload *w, op o)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->ops = xrealloc(w->ops, w->cap * sizeof *w->ops);
    }
    w->ops[w->n++] = o;
}

static void workload_free(workload *w)
{
    free(w->ops);
    free(w->bids);
    free(w->asks);
}

/* ---- running ops ---------------------------------------------------------------------------- */

/* Counts trades and traded devices. */
typedef struct tally {
    uint64_t trades; /* FILL events */
    uint64_t volume; /* devices traded */
} tally;

static void tally_sink(void *ctx, const mx_event *ev)
{
    tally *t = ctx;
    if (ev->kind == MX_EV_FILL) {
        t->trades++;
        t->volume += (uint64_t)ev->devices;
    }
}

static mx_bid plain_bid_template;
static mx_ask plain_ask_template;

static void templates_init(void)
{
    memset(&plain_bid_template, 0, sizeof plain_bid_template);
    plain_bid_template.precision = PLAIN_PREC;
    plain_bid_template.qty_kind = MX_QTY_DEVICES;
    plain_bid_template.hours = 1;
    plain_bid_template.regions = 1;
    memset(&plain_ask_template, 0, sizeof plain_ask_template);
    plain_ask_template.priced = 1u << PLAIN_PREC;
    plain_ask_template.tflops[PLAIN_PREC] = 1;
}

/* The engine clock of the plain shapes: constant (nothing expires). */
#define PLAIN_NOW 1000

static void run_op(mx_engine *e, const workload *w, const op *o)
{
    switch (o->kind) {
    case 'C': mx_cancel(e, w->shape[0] == 'D' ? o->price : PLAIN_NOW, o->id); return;
    case 'b': mx_submit_bid(e, (int64_t)o->price, &w->bids[o->spec]); return;
    case 'a': mx_submit_ask(e, (int64_t)o->price, &w->asks[o->spec]); return;
    default: break;
    }
    uint8_t tif = o->kind == 'I' ? MX_IOC : MX_GTC;
    if (o->side == 'B') {
        mx_bid b = plain_bid_template;
        b.id = b.owner = o->id;
        b.limit = o->price;
        b.quantity = o->qty;
        b.tif = tif;
        if (o->kind == 'R')
            mx_replace_bid(e, PLAIN_NOW, &b);
        else
            mx_submit_bid(e, PLAIN_NOW, &b);
    } else {
        mx_ask a = plain_ask_template;
        a.id = a.owner = o->id;
        a.price[PLAIN_PREC] = o->price;
        a.devices = o->qty;
        a.tif = tif;
        if (o->kind == 'R')
            mx_replace_ask(e, PLAIN_NOW, &a);
        else
            mx_submit_ask(e, PLAIN_NOW, &a);
    }
}

static mx_engine *engine_new(const workload *w, mx_sink_fn sink, void *ctx)
{
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = w->regions;
    cfg.stp = MX_STP_CANCEL_NEWEST;
    cfg.sink = sink;
    cfg.sink_ctx = ctx;
    cfg.expected_orders = w->expected;
    mx_engine *e = mx_engine_create(&cfg);
    if (e == NULL) {
        fprintf(stderr, "bench: cannot create engine\n");
        exit(1);
    }
    return e;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- generation helpers: live orders -------------------------------------------------------- */

/* The set of live ids during generation, with O(1) insert, remove and random pick. */
typedef struct liveset {
    uint64_t *ids;  /* live ids, unordered */
    size_t n;       /* how many */
    uint32_t *pos;  /* pos[id] = index in ids + 1, 0 when not live */
    size_t max_id;  /* size of pos */
    char *side;     /* side[id] of plain orders ('B'/'S') */
    int64_t *price; /* price[id] of plain orders */
    int32_t *qty;   /* qty[id] of plain orders */
} liveset;

static void live_init(liveset *l, size_t max_id)
{
    memset(l, 0, sizeof *l);
    l->max_id = max_id + 1;
    l->ids = xrealloc(NULL, l->max_id * sizeof *l->ids);
    l->pos = calloc(l->max_id, sizeof *l->pos);
    l->side = calloc(l->max_id, 1);
    l->price = calloc(l->max_id, sizeof *l->price);
    l->qty = calloc(l->max_id, sizeof *l->qty);
    if (!l->pos || !l->side || !l->price || !l->qty) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
}

static void live_free(liveset *l)
{
    free(l->ids);
    free(l->pos);
    free(l->side);
    free(l->price);
    free(l->qty);
}

static void live_add(liveset *l, uint64_t id)
{
    if (id < l->max_id && l->pos[id] == 0) {
        l->ids[l->n++] = id;
        l->pos[id] = (uint32_t)l->n;
    }
}

static void live_remove(liveset *l, uint64_t id)
{
    if (id >= l->max_id || l->pos[id] == 0)
        return;
    size_t i = l->pos[id] - 1;
    uint64_t last = l->ids[--l->n];
    l->ids[i] = last;
    l->pos[last] = (uint32_t)(i + 1);
    l->pos[id] = 0;
}

/* Sink of the generation engine: orders leaving the book leave the live set. */
static void live_sink(void *ctx, const mx_event *ev)
{
    liveset *l = ctx;
    if (ev->kind == MX_EV_DONE || ev->kind == MX_EV_CANCELLED || ev->kind == MX_EV_EXPIRED)
        live_remove(l, ev->id);
}

/* Runs op o on the generation engine and records it. */
static void gen_apply(workload *w, mx_engine *e, liveset *l, op o)
{
    push(w, o);
    run_op(e, w, &o);
    if (o.kind == 'C')
        return;
    uint64_t id = o.kind == 'b' ? w->bids[o.spec].id : o.kind == 'a' ? w->asks[o.spec].id : o.id;
    mx_order_info info;
    if (mx_lookup(e, id, &info)) {
        live_add(l, id);
        if (id < l->max_id && o.side) {
            l->side[id] = o.side;
            l->price[id] = o.price;
            l->qty[id] = o.qty;
        }
    }
}

static uint64_t live_pick(liveset *l, uint64_t *s)
{
    return l->ids[rnd(s) % l->n];
}

/* Best price on one side of the plain book, or `dflt` when empty. */
static int64_t best_or(mx_engine *e, mx_side side, int64_t dflt)
{
    mx_level_info L;
    return mx_best(e, PLAIN_PREC, 0, side, &L) ? L.price : dflt;
}

/* ---- shape A -------------------------------------------------------------------------------- */

static void gen_shape_a(workload *w, size_t nops, uint64_t seed)
{
    enum { TARGET = 1000, HALF_LEVELS = 375, MID = 100000 };
    uint64_t s = seed;
    w->shape = "A";
    w->regions = 1;
    w->expected = TARGET + TARGET / 16;
    liveset l;
    live_init(&l, nops + TARGET + 16);
    mx_engine *e = engine_new(w, live_sink, &l);
    uint64_t id = 1;
    for (; id <= TARGET; id++) { /* prefill: passive orders over ~750 levels */
        char side = rnd(&s) & 1 ? 'B' : 'S';
        int64_t d = range(&s, 1, HALF_LEVELS);
        gen_apply(
            w, e, &l,
            (op){ id, side == 'B' ? MID - d : MID + d, (int32_t)range(&s, 1, 20), 0, 'A', side });
    }
    w->prefill = w->n;
    while (w->n - w->prefill < nops) {
        int64_t r = range(&s, 0, 99);
        if (l.n < TARGET - TARGET / 20 && r >= 12 && r < 18)
            r = 0; /* too few: add instead of cancel */
        else if (l.n > TARGET + TARGET / 20 && r < 9)
            r = 12; /* too many: cancel instead of add */
        if (r < 9 || l.n == 0) {
            char side = rnd(&s) & 1 ? 'B' : 'S';
            int64_t d = range(&s, 1, HALF_LEVELS);
            gen_apply(w, e, &l,
                      (op){ id++, side == 'B' ? MID - d : MID + d, (int32_t)range(&s, 1, 20), 0,
                            'A', side });
        } else if (r < 12) {
            char side = rnd(&s) & 1 ? 'B' : 'S';
            int64_t price = side == 'B' ? best_or(e, MX_ASK, MID + 1) + range(&s, 0, 3)
                                        : best_or(e, MX_BID, MID - 1) - range(&s, 0, 3);
            gen_apply(w, e, &l, (op){ id++, price, (int32_t)range(&s, 1, 30), 0, 'I', side });
        } else if (r < 18) {
            gen_apply(w, e, &l, (op){ live_pick(&l, &s), 0, 0, 0, 'C', 0 });
        } else {
            uint64_t target = live_pick(&l, &s);
            char side = l.side[target];
            int64_t price = l.price[target] + range(&s, -5, 5);
            price =
                side == 'B' ? (price >= MID ? MID - 1 : price) : (price <= MID ? MID + 1 : price);
            gen_apply(w, e, &l, (op){ target, price, l.qty[target], 0, 'R', side });
        }
    }
    mx_engine_free(e);
    live_free(&l);
}

/* ---- shape B -------------------------------------------------------------------------------- */

static void gen_shape_b(workload *w, size_t nops, uint64_t seed)
{
    enum { M = 100000 };
    uint64_t s = seed;
    w->shape = "B";
    w->regions = 1;
    w->expected = nops / 2;
    w->prefill = 0;
    for (uint64_t id = 1; id <= nops; id++) {
        char side = id & 1 ? 'B' : 'S';
        int64_t price = side == 'B' ? M + range(&s, 0, 9) : M + 4 + range(&s, 0, 9);
        push(w, (op){ id, price, (int32_t)range(&s, 1, 10), 0, 'A', side });
    }
}

/* ---- shape C -------------------------------------------------------------------------------- */

/* A passive price: distance from the mid concentrated near the touch (1..200 ticks). */
static int64_t passive_distance(uint64_t *s)
{
    int64_t a = range(s, 1, 200), b = range(s, 1, 200);
    return a < b ? a : b;
}

static void gen_shape_c(workload *w, size_t nops, size_t target, uint64_t seed)
{
    enum { MID = 100000 };
    uint64_t s = seed;
    w->shape = "C";
    w->regions = 1;
    w->expected = target + target / 32 + 16; /* the book is held within 2% */
    liveset l;
    live_init(&l, nops + target + 16);
    mx_engine *e = engine_new(w, live_sink, &l);
    uint64_t id = 1;
    while (l.n < target) {
        char side = rnd(&s) & 1 ? 'B' : 'S';
        int64_t d = passive_distance(&s);
        gen_apply(
            w, e, &l,
            (op){ id++, side == 'B' ? MID - d : MID + d, (int32_t)range(&s, 1, 10), 0, 'A', side });
    }
    w->prefill = w->n;
    while (w->n - w->prefill < nops) {
        int64_t r = range(&s, 0, 99);
        if (r < 50 && l.n > target + target / 50)
            r = 99; /* hold the book: cancel instead of add */
        else if (r >= 60 && l.n < target - target / 50)
            r = 0; /* add instead of cancel */
        char side = rnd(&s) & 1 ? 'B' : 'S';
        if (r < 50) {
            int64_t d = passive_distance(&s);
            int64_t price = side == 'B' ? MID - d : MID + d;
            gen_apply(w, e, &l, (op){ id++, price, (int32_t)range(&s, 1, 10), 0, 'A', side });
        } else if (r < 60) {
            int64_t price = side == 'B' ? best_or(e, MX_ASK, MID + 1) + range(&s, 0, 2)
                                        : best_or(e, MX_BID, MID - 1) - range(&s, 0, 2);
            gen_apply(w, e, &l, (op){ id++, price, (int32_t)range(&s, 1, 12), 0, 'I', side });
        } else {
            gen_apply(w, e, &l, (op){ live_pick(&l, &s), 0, 0, 0, 'C', 0 });
        }
    }
    mx_engine_free(e);
    live_free(&l);
}

/* ---- shape D: the compute market ------------------------------------------------------------ */

/* A device model: rated TFLOPS per precision (0 = unsupported), memory, vendor/model ids. */
typedef struct device_model {
    uint32_t tflops[MX_NPREC];
    uint32_t memory_gb;
    uint32_t vendor, model;
} device_model;

static const device_model models[] = {
    { { 67, 67, 495, 990, 990, 1979, 1979, 0 }, 80, 1, 1 },     /* H100-class */
    { { 34, 67, 378, 756, 756, 1513, 1513, 0 }, 94, 1, 2 },     /* H20-class */
    { { 19, 19, 156, 312, 312, 0, 624, 1248 }, 40, 1, 3 },      /* A100-class */
    { { 0, 0, 0, 320, 320, 0, 640, 0 }, 64, 2, 1 },             /* 910B-class */
    { { 0, 0, 0, 280, 280, 0, 560, 1120 }, 64, 2, 2 },          /* another NPU */
    { { 81, 163, 653, 1307, 1307, 2615, 2615, 0 }, 192, 3, 1 }, /* MI300-class */
};
#define NMODELS (sizeof models / sizeof models[0])

/* Reference price per PFLOPS-hour (micro-CNY) of each precision. */
static const int64_t ref_price[MX_NPREC] = { 200000000, 100000000, 30000000, 15000000,
                                             15000000,  8000000,   8000000,  4000000 };

static int64_t scaled(uint64_t *s, int64_t ref, int lo_pct, int hi_pct)
{
    return ref * range(s, lo_pct, hi_pct) / 100;
}

static uint32_t d_ask(workload *w, uint64_t *s, uint64_t id, int64_t now)
{
    if (w->nasks % 4096 == 0)
        w->asks = xrealloc(w->asks, (w->nasks + 4096) * sizeof *w->asks);
    mx_ask *a = &w->asks[w->nasks];
    memset(a, 0, sizeof *a);
    const device_model *m = &models[rnd(s) % NMODELS];
    a->id = id;
    a->owner = (uint64_t)range(s, 1, 200);
    a->devices = range(s, 4, 64);
    a->region = (uint8_t)range(s, 0, 7);
    unsigned want = (unsigned)range(s, 2, 4);
    for (unsigned tries = 0; tries < 16 && (unsigned)__builtin_popcount(a->priced) < want;
         tries++) {
        unsigned p = (unsigned)range(s, 0, MX_NPREC - 1);
        if (m->tflops[p] == 0)
            continue;
        a->priced |= (uint8_t)(1u << p);
        a->tflops[p] = m->tflops[p];
        a->price[p] = scaled(s, ref_price[p], 95, 140);
    }
    a->memory_gb = m->memory_gb;
    a->vendor = m->vendor;
    a->model = m->model;
    a->interconnect = (uint32_t)range(s, 1, 3);
    a->green_permille = (uint32_t)range(s, 0, 1000);
    if (range(s, 0, 99) < 30) {
        a->available_from = now + range(s, 0, 3) * 3600;
        a->available_until = a->available_from + range(s, 24, 24 * 30) * 3600;
    }
    if (range(s, 0, 99) < 20)
        a->max_hours = (uint32_t)range(s, 24, 720);
    a->tif = range(s, 0, 99) < 10 ? MX_IOC : MX_GTC;
    return (uint32_t)w->nasks++;
}

static uint32_t d_bid(workload *w, uint64_t *s, uint64_t id, int64_t now)
{
    if (w->nbids % 4096 == 0)
        w->bids = xrealloc(w->bids, (w->nbids + 4096) * sizeof *w->bids);
    mx_bid *b = &w->bids[w->nbids];
    memset(b, 0, sizeof *b);
    static const uint8_t common[] = { MX_BF16, MX_FP16, MX_FP8,  MX_INT8,
                                      MX_TF32, MX_FP32, MX_FP64, MX_INT4 };
    b->id = id;
    b->owner = (uint64_t)range(s, 201, 2000);
    b->precision = common[range(s, 0, 99) < 70 ? range(s, 0, 3) : range(s, 4, 7)];
    b->qty_kind = range(s, 0, 99) < 60 ? MX_QTY_DEVICES : MX_QTY_TFLOPS;
    b->quantity = b->qty_kind == MX_QTY_DEVICES ? range(s, 1, 32) : range(s, 500, 20000);
    b->limit = scaled(s, ref_price[b->precision], 70, 105);
    b->hours = (uint32_t)range(s, 1, 72);
    unsigned nreg = (unsigned)range(s, 1, 4);
    for (unsigned i = 0; i < nreg; i++)
        b->regions |= UINT64_C(1) << range(s, 0, 7);
    int64_t r = range(s, 0, 99);
    b->tif = r < 70 ? MX_GTC : r < 80 ? MX_GTD : r < 92 ? MX_IOC : MX_FOK;
    if (b->tif == MX_GTD)
        b->expiry = now + range(s, 60, 7200);
    if (range(s, 0, 99) < 30)
        b->min_memory_gb = (uint32_t)(range(s, 0, 1) ? 64 : 80);
    if (range(s, 0, 99) < 20)
        b->min_tflops = (uint32_t)(ref_price[b->precision] < 10000000 ? 600 : 60);
    if (range(s, 0, 99) < 25) {
        b->n_allow = (uint8_t)range(s, 1, 2);
        for (unsigned i = 0; i < b->n_allow; i++) {
            b->allow[i].vendor = (uint32_t)range(s, 1, 3);
            b->allow[i].model = (uint32_t)range(s, 0, 2);
        }
    }
    if (range(s, 0, 99) < 20)
        b->min_devices_per_provider = (uint32_t)range(s, 2, 8);
    if (range(s, 0, 99) < 20)
        b->min_green_permille = (uint32_t)range(s, 300, 800);
    if (range(s, 0, 99) < 15) {
        b->start_earliest = now + range(s, 0, 6) * 3600;
        b->start_latest = b->start_earliest + range(s, 1, 48) * 3600;
    }
    return (uint32_t)w->nbids++;
}

static void gen_shape_d(workload *w, size_t nops, size_t target, uint64_t seed)
{
    uint64_t s = seed;
    w->shape = "D";
    w->regions = 8;
    w->expected = target + target / 32 + 16;
    liveset l;
    live_init(&l, nops + 16);
    mx_engine *e = engine_new(w, live_sink, &l);
    int64_t now = 1700000000;
    w->prefill = 0;
    for (uint64_t id = 1; w->n < nops; id++) {
        now += range(&s, 0, 2); /* the clock runs: windows and GTD orders expire */
        int64_t r = range(&s, 0, 99);
        if (r >= 30 && l.n > target + target / 50)
            r = 0; /* hold the book: cancel instead of add */
        if (r < 30 && l.n > 0) {
            gen_apply(w, e, &l, (op){ live_pick(&l, &s), now, 0, 0, 'C', 0 });
        } else if (r < 62) {
            gen_apply(w, e, &l, (op){ 0, now, 0, d_ask(w, &s, id, now), 'a', 0 });
        } else {
            gen_apply(w, e, &l, (op){ 0, now, 0, d_bid(w, &s, id, now), 'b', 0 });
        }
    }
    mx_engine_free(e);
    live_free(&l);
}

/* ---- measuring ------------------------------------------------------------------------------ */

typedef struct result {
    double seconds;          /* median time of the measured ops */
    uint64_t p50, p99, p999; /* per-op latency, ns */
    tally t;                 /* trades and volume of the whole stream */
    size_t resting;          /* resting after the run */
    double bytes_per_resting;
} result;

/* One throughput run. Returns the seconds of the measured part. */
static double throughput_once(const workload *w, tally *t, size_t *resting, double *bpr)
{
    *t = (tally){ 0, 0 };
    mx_engine *e = engine_new(w, tally_sink, t);
    for (size_t i = 0; i < w->prefill; i++)
        run_op(e, w, &w->ops[i]);
    double t0 = seconds_now();
    for (size_t i = w->prefill; i < w->n; i++)
        run_op(e, w, &w->ops[i]);
    double t1 = seconds_now();
    *resting = mx_resting(e);
    *bpr = *resting ? (double)mx_memory_bytes(e) / (double)*resting : 0;
    mx_engine_free(e);
    return t1 - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void latency(const workload *w, result *r)
{
    tally t = { 0, 0 };
    size_t n = w->n - w->prefill;
    uint32_t *ns = xrealloc(NULL, (n ? n : 1) * sizeof *ns);
    mx_engine *e = engine_new(w, tally_sink, &t);
    for (size_t i = 0; i < w->prefill; i++)
        run_op(e, w, &w->ops[i]);
    for (size_t i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        run_op(e, w, &w->ops[w->prefill + i]);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t d = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
        ns[i] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    mx_engine_free(e);
    qsort(ns, n, sizeof *ns, cmp_u32);
    r->p50 = n ? ns[n / 2] : 0;
    r->p99 = n ? ns[(size_t)((double)n * 0.99)] : 0;
    r->p999 = n ? ns[(size_t)((double)n * 0.999)] : 0;
    free(ns);
}

static void measure(const workload *w, unsigned reps, result *r)
{
    double secs[16];
    if (reps > 16)
        reps = 16;
    for (unsigned i = 0; i < reps; i++)
        secs[i] = throughput_once(w, &r->t, &r->resting, &r->bytes_per_resting);
    qsort(secs, reps, sizeof secs[0], cmp_double);
    r->seconds = secs[reps / 2];
    latency(w, r);
}

static void print_result(const workload *w, const result *r)
{
    size_t ops = w->n - w->prefill;
    printf("bench matching shape=%s resting=%zu ops=%zu seconds=%.3f ops_per_s=%.0f p50_ns=%" PRIu64
           " p99_ns=%" PRIu64 " p999_ns=%" PRIu64 " trades=%" PRIu64 " volume=%" PRIu64
           " bytes_per_resting=%.1f\n",
           w->shape, r->resting, ops, r->seconds, r->seconds > 0 ? (double)ops / r->seconds : 0,
           r->p50, r->p99, r->p999, r->t.trades, r->t.volume, r->bytes_per_resting);
    fflush(stdout);
}

/*
 * mx_state_hash() on the book a workload leaves: a fresh engine replays the whole stream
 * (untimed), then the hash is read repeatedly for at least 0.2 s (and at least 3 times), in
 * batches that double between clock reads; the mean per call is shown. The server reads it after
 * every batch it commits.
 */
static void state_hash_bench(const workload *w)
{
    tally t = { 0, 0 };
    mx_engine *e = engine_new(w, tally_sink, &t);
    for (size_t i = 0; i < w->n; i++)
        run_op(e, w, &w->ops[i]);
    volatile uint64_t sink = 0;
    uint64_t calls = 0, batch = 1;
    double t0 = seconds_now(), t1 = t0;
    do { /* batches of 1, 2, 4, ... calls between clock reads */
        for (uint64_t k = 0; k < batch; k++)
            sink ^= mx_state_hash(e);
        calls += batch;
        batch *= 2;
        t1 = seconds_now();
    } while (t1 - t0 < 0.2 || calls < 3);
    (void)sink;
    printf("bench matching state_hash shape=%s resting=%zu calls=%" PRIu64 " ns_per_call=%.1f\n",
           w->shape, mx_resting(e), calls, (t1 - t0) * 1e9 / (double)calls);
    fflush(stdout);
    mx_engine_free(e);
}

/* ---- stream files --------------------------------------------------------------------------- */

static int emit_stream(const workload *w, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < w->n; i++) {
        const op *o = &w->ops[i];
        switch (o->kind) {
        case 'C': fprintf(f, "C %" PRIu64 "\n", o->id); break;
        case 'R':
            fprintf(f, "C %" PRIu64 "\nA %" PRIu64 " %c %" PRId64 " %d\n", o->id, o->id, o->side,
                    o->price, o->qty);
            break;
        default:
            fprintf(f, "%c %" PRIu64 " %c %" PRId64 " %d\n", o->kind, o->id, o->side, o->price,
                    o->qty);
            break;
        }
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int load_stream(workload *w, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    w->shape = "stream";
    w->regions = 1;
    char line[256];
    size_t lineno = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        lineno++;
        op o = { 0, 0, 0, 0, 0, 0 };
        char kind, side;
        uint64_t id;
        int64_t price;
        int qty;
        if (line[0] == '\n' || line[0] == '#')
            continue;
        if (sscanf(line, " %c %" SCNu64 " %c %" SCNd64 " %d", &kind, &id, &side, &price, &qty) ==
                5 &&
            (kind == 'A' || kind == 'I') && (side == 'B' || side == 'S') && qty > 0) {
            o = (op){ id, price, qty, 0, kind, side };
        } else if (sscanf(line, " %c %" SCNu64, &kind, &id) == 2 && kind == 'C') {
            o = (op){ id, 0, 0, 0, 'C', 0 };
        } else {
            fprintf(stderr, "bench: %s:%zu: bad line\n", path, lineno);
            fclose(f);
            return -1;
        }
        push(w, o);
    }
    fclose(f);
    w->expected = 0; /* unknown book size: start small, grow as needed */
    return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

static void run_shape(char shape, size_t resting, size_t ops, uint64_t seed, unsigned reps,
                      const char *emit)
{
    workload w;
    memset(&w, 0, sizeof w);
    switch (shape) {
    case 'A': gen_shape_a(&w, ops ? ops : 2000000, seed); break;
    case 'B': gen_shape_b(&w, ops ? ops : 2000000, seed); break;
    case 'C': gen_shape_c(&w, ops ? ops : 2000000, resting ? resting : 1000, seed); break;
    case 'D': gen_shape_d(&w, ops ? ops : 1000000, resting ? resting : 10000, seed); break;
    default: fprintf(stderr, "bench: unknown shape %c\n", shape); exit(2);
    }
    if (emit != NULL) {
        if (shape == 'D') {
            fprintf(stderr, "bench: shape D has constraints; the plain stream cannot carry it\n");
            exit(2);
        }
        if (emit_stream(&w, emit) != 0)
            exit(1);
    }
    result r;
    memset(&r, 0, sizeof r);
    measure(&w, reps, &r);
    print_result(&w, &r);
    state_hash_bench(&w);
    workload_free(&w);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cpx-bench-matching [--shape A|B|C|D] [--resting N] [--ops N] [--seed S]\n"
            "                          [--reps R] [--emit FILE] [--stream FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    char shape = 0;
    size_t resting = 0, ops = 0;
    uint64_t seed = 42;
    unsigned reps = 3;
    const char *emit = NULL, *stream = NULL;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            usage();
        if (strcmp(a, "--shape") == 0)
            shape = v[0];
        else if (strcmp(a, "--resting") == 0)
            resting = strtoull(v, NULL, 0);
        else if (strcmp(a, "--ops") == 0)
            ops = strtoull(v, NULL, 0);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(v, NULL, 0);
        else if (strcmp(a, "--reps") == 0)
            reps = (unsigned)strtoul(v, NULL, 0);
        else if (strcmp(a, "--emit") == 0)
            emit = v;
        else if (strcmp(a, "--stream") == 0)
            stream = v;
        else
            usage();
    }
    if (reps == 0)
        reps = 1;
    templates_init();
    if (stream != NULL) {
        workload w;
        memset(&w, 0, sizeof w);
        if (load_stream(&w, stream) != 0)
            return 1;
        result r;
        memset(&r, 0, sizeof r);
        measure(&w, reps, &r);
        print_result(&w, &r);
        workload_free(&w);
        return 0;
    }
    if (shape != 0) {
        run_shape(shape, resting, ops, seed, reps, emit);
        return 0;
    }
    if (emit != NULL)
        usage();
    run_shape('A', 0, ops, seed, reps, NULL);
    run_shape('B', 0, ops, seed, reps, NULL);
    run_shape('C', 1000, ops, seed, reps, NULL);
    run_shape('C', 10000, ops, seed, reps, NULL);
    run_shape('C', 100000, ops, seed, reps, NULL);
    run_shape('D', 10000, ops, seed, reps, NULL);
    return 0;
}
