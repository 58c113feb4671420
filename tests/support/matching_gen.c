/*
 * matching_gen.c — see matching_gen.h.
 */
#include <string.h>

#include "tests/support/matching_gen.h"
#include "tests/support/matching_testkit.h"

mx_config mt_gen_config(uint64_t seed)
{
    uint64_t s = seed ^ UINT64_C(0x5eed);
    mx_config c;
    memset(&c, 0, sizeof c);
    c.regions = (unsigned)mt_range(&s, 1, 4);
    c.stp = (mx_stp)mt_range(&s, 0, 2);
    c.max_orders = mt_chance(&s, 10) ? (size_t)mt_range(&s, 5, 30) : 0;
    c.expected_orders = mt_chance(&s, 50) ? 0 : 4;
    return c;
}

void mt_gen_init(mt_gen *g, uint64_t seed, unsigned regions)
{
    memset(g, 0, sizeof *g);
    g->rng = seed;
    g->regions = regions;
    int plain = mt_chance(&g->rng, 20);
    g->nprecs = plain ? 1 : (unsigned)mt_range(&g->rng, 1, 3);
    for (unsigned i = 0; i < g->nprecs; i++) {
        uint8_t p;
        int dup;
        do {
            p = (uint8_t)mt_range(&g->rng, 0, MX_NPREC - 1);
            dup = 0;
            for (unsigned j = 0; j < i; j++)
                dup |= g->precs[j] == p;
        } while (dup);
        g->precs[i] = p;
    }
    g->owners = (unsigned)mt_range(&g->rng, 2, 8);
    g->constraint_pct = plain ? 0 : (unsigned)mt_range(&g->rng, 10, 60);
    g->invalid_pct = (unsigned)mt_range(&g->rng, 0, 6);
    g->next_id = 1;
    g->now = mt_range(&g->rng, 0, 1000000);
    g->base = mt_range(&g->rng, 50, 5000);
}

static unsigned pick_prec(mt_gen *g)
{
    return g->precs[mt_range(&g->rng, 0, g->nprecs - 1)];
}

static int64_t price_near(mt_gen *g)
{
    int64_t spread = g->base / 8 + 1;
    return g->base + mt_range(&g->rng, -spread, spread);
}

static uint32_t pick(mt_gen *g, const uint32_t *choices, unsigned n)
{
    return choices[mt_range(&g->rng, 0, n - 1)];
}

/*
 * A max_tflops for bid b (asks offer 60..600 TFLOPS per device): mostly at or above its
 * min_tflops, so that both bounds cut; sometimes out of range (refused); sometimes, for a device
 * bid, with the largest limit that the bound lets through the overflow check, which either
 * passes only thanks to max_tflops or fails the normalised-price check (limit x maxT).
 */
static void gen_max_tflops(mt_gen *g, mx_bid *b)
{
    static const uint32_t maxs[] = { 150, 300, 450, 600 };
    b->max_tflops = pick(g, maxs, 4);
    if (b->max_tflops < b->min_tflops)
        b->max_tflops = b->min_tflops;
    int64_t r = mt_range(&g->rng, 0, 99);
    if (r < 4)
        b->max_tflops = b->min_tflops > 1 ? b->min_tflops - 1 : mx_max_tflops(b->precision) + 1;
    else if (r < 6)
        b->max_tflops = mx_max_tflops(b->precision) + (uint32_t)mt_range(&g->rng, 0, 1);
    else if (r < 14 && b->qty_kind == MX_QTY_DEVICES)
        b->limit = INT64_MAX / ((int64_t)b->max_tflops * b->quantity * b->hours);
}

/* A random bid with id and owner; constraints with the stream's probability. */
static void gen_bid(mt_gen *g, mx_bid *b, uint64_t id, uint64_t owner)
{
    memset(b, 0, sizeof *b);
    b->id = id;
    b->owner = owner;
    b->precision = (uint8_t)pick_prec(g);
    b->qty_kind = mt_chance(&g->rng, 70) ? MX_QTY_DEVICES : MX_QTY_TFLOPS;
    b->quantity =
        b->qty_kind == MX_QTY_DEVICES ? mt_range(&g->rng, 1, 12) : mt_range(&g->rng, 50, 4000);
    b->limit = price_near(g);
    b->hours = (uint32_t)mt_range(&g->rng, 1, 6);
    b->regions = UINT64_C(1) << mt_range(&g->rng, 0, g->regions - 1);
    if (mt_chance(&g->rng, 40))
        b->regions |= (uint64_t)mt_range(&g->rng, 0, (1 << g->regions) - 1);
    static const uint8_t tifs[] = { MX_GTC, MX_GTC, MX_GTC, MX_GTD, MX_GTD, MX_IOC, MX_FOK };
    b->tif = tifs[mt_range(&g->rng, 0, sizeof tifs - 1)];
    if (b->tif == MX_GTD)
        b->expiry = g->now + mt_range(&g->rng, 1, 4000);
    unsigned c = g->constraint_pct;
    static const uint32_t mems[] = { 16, 40, 80, 96 }, tfs[] = { 100, 250, 400 },
                          greens[] = { 200, 500, 800 };
    if (mt_chance(&g->rng, c))
        b->min_memory_gb = pick(g, mems, 4);
    if (mt_chance(&g->rng, c))
        b->min_tflops = pick(g, tfs, 3);
    if (c > 0 && mt_chance(&g->rng, 10))
        gen_max_tflops(g, b);
    if (mt_chance(&g->rng, c)) {
        b->n_allow = (uint8_t)mt_range(&g->rng, 1, 2);
        for (unsigned i = 0; i < b->n_allow; i++) {
            b->allow[i].vendor = (uint32_t)mt_range(&g->rng, 1, 3);
            b->allow[i].model = (uint32_t)mt_range(&g->rng, 0, 2);
        }
    }
    if (mt_chance(&g->rng, c))
        b->min_devices_per_provider = (uint32_t)mt_range(&g->rng, 1, 6);
    if (mt_chance(&g->rng, c))
        b->min_green_permille = pick(g, greens, 3);
    if (mt_chance(&g->rng, c)) {
        b->start_earliest = mt_chance(&g->rng, 50) ? 0 : g->now + mt_range(&g->rng, 0, 7200);
        int64_t from = b->start_earliest > g->now ? b->start_earliest : g->now;
        b->start_latest = mt_chance(&g->rng, 30) ? 0 : from + mt_range(&g->rng, 0, 7200);
    }
}

/* A random ask with id and owner. */
static void gen_ask(mt_gen *g, mx_ask *a, uint64_t id, uint64_t owner)
{
    memset(a, 0, sizeof *a);
    a->id = id;
    a->owner = owner;
    a->devices = mt_range(&g->rng, 1, 10);
    a->region = (uint8_t)mt_range(&g->rng, 0, g->regions - 1);
    unsigned n = (unsigned)mt_range(&g->rng, 1, g->nprecs);
    for (unsigned i = 0; i < n; i++) {
        unsigned p = pick_prec(g);
        a->priced |= (uint8_t)(1u << p);
        a->tflops[p] = (uint32_t)mt_range(&g->rng, 60, 600);
        a->price[p] = price_near(g);
    }
    static const uint8_t tifs[] = { MX_GTC, MX_GTC, MX_GTC, MX_GTD, MX_IOC, MX_FOK };
    a->tif = tifs[mt_range(&g->rng, 0, sizeof tifs - 1)];
    if (a->tif == MX_GTD)
        a->expiry = g->now + mt_range(&g->rng, 1, 6000);
    unsigned c = g->constraint_pct;
    if (c == 0)
        return; /* plain stream: no attributes */
    static const uint32_t mems[] = { 24, 40, 80, 141 };
    a->memory_gb = pick(g, mems, 4);
    a->vendor = (uint32_t)mt_range(&g->rng, 1, 3);
    a->model = (uint32_t)mt_range(&g->rng, 1, 2);
    a->interconnect = (uint32_t)mt_range(&g->rng, 0, 3);
    a->green_permille = (uint32_t)mt_range(&g->rng, 0, 1000);
    if (mt_chance(&g->rng, c)) {
        a->available_from = mt_chance(&g->rng, 50) ? 0 : g->now + mt_range(&g->rng, 0, 7200);
        int64_t from = a->available_from > g->now ? a->available_from : g->now;
        a->available_until = mt_chance(&g->rng, 30) ? 0 : from + 3600 * mt_range(&g->rng, 1, 12);
    }
    if (mt_chance(&g->rng, c)) {
        a->min_hours = (uint32_t)mt_range(&g->rng, 0, 2);
        a->max_hours = mt_chance(&g->rng, 50) ? 0 : (uint32_t)mt_range(&g->rng, 3, 8);
    }
}

/* Makes one field of an add malformed. */
static void corrupt(mt_gen *g, mx_command *c)
{
    mx_bid *b = &c->bid;
    mx_ask *a = &c->ask;
    int bid = c->kind == MX_CMD_BID || c->kind == MX_CMD_REPLACE_BID;
    switch (mt_range(&g->rng, 0, 9)) {
    case 0:
        if (bid)
            b->id = 0;
        else
            a->id = 0;
        break;
    case 1:
        if (bid)
            b->precision = MX_NPREC;
        else
            a->priced = 0;
        break;
    case 2:
        if (bid)
            b->regions |= UINT64_C(1) << g->regions;
        else
            a->region = (uint8_t)g->regions;
        break;
    case 3:
        if (bid)
            b->quantity = 0;
        else
            a->devices = -1;
        break;
    case 4:
        if (bid)
            b->limit = 0;
        else
            a->price[__builtin_ctz(a->priced)] = -5;
        break;
    case 5:
        if (bid)
            b->hours = 0;
        else
            a->max_hours = (a->min_hours = 5) - 1;
        break;
    case 6:
        if (bid)
            b->tif = 4;
        else
            a->tif = 9;
        break;
    case 7:
        if (bid) {
            b->tif = MX_GTD;
            b->expiry = g->now;
        } else {
            a->available_until = g->now;
        }
        break;
    case 8:
        if (bid) {
            b->qty_kind = MX_QTY_DEVICES;
            b->quantity = INT64_C(1) << 30;
            b->hours = 90000;
            b->limit = INT64_C(1) << 20; /* overflow */
        } else {
            a->green_permille = 1001;
        }
        break;
    default:
        if (bid)
            b->start_latest = b->start_earliest = g->now > 10 ? g->now - 5 : 0;
        else
            a->tflops[__builtin_ctz(a->priced)] = mx_max_tflops(__builtin_ctz(a->priced)) + 1;
        break;
    }
}

/* An id to aim a cancel, reduce or replace at: mostly a live order, sometimes anything. */
static uint64_t target(mt_gen *g, const ref_engine *view)
{
    size_t n = ref_resting(view);
    if (n > 0 && mt_chance(&g->rng, 85))
        return ref_resting_id(view, (size_t)mt_range(&g->rng, 0, (int64_t)n - 1));
    return (uint64_t)mt_range(&g->rng, 0, (int64_t)g->next_id + 2);
}

static void advance_clock(mt_gen *g, mx_command *c)
{
    int64_t r = mt_range(&g->rng, 0, 99);
    if (r < 2)
        c->now = g->now - mt_range(&g->rng, 1, 500); /* late clock: the engine keeps its own */
    else if (r < 3)
        c->now = -1; /* bad clock: rejected */
    else
        c->now = g->now += mt_range(&g->rng, 0, r < 60 ? 60 : 900);
    if (c->now < -1)
        c->now = 0;
}

void mt_gen_next(mt_gen *g, const ref_engine *view, mx_command *c)
{
    memset(c, 0, sizeof *c);
    advance_clock(g, c);
    int64_t r = mt_range(&g->rng, 0, 99);
    uint64_t owner = (uint64_t)mt_range(&g->rng, 1, g->owners);
    if (r < 33) {
        c->kind = MX_CMD_BID;
        gen_bid(g, &c->bid, g->next_id++, owner);
    } else if (r < 60) {
        c->kind = MX_CMD_ASK;
        gen_ask(g, &c->ask, g->next_id++, owner);
    } else if (r < 72) {
        c->kind = MX_CMD_CANCEL;
        c->id = target(g, view);
    } else if (r < 80) {
        c->kind = MX_CMD_REDUCE;
        c->id = target(g, view);
        mx_order_info info;
        int64_t rem = ref_lookup(view, c->id, &info) ? info.remaining : 5;
        c->quantity = mt_chance(&g->rng, 90) && rem > 1 ? mt_range(&g->rng, 1, rem - 1)
                                                        : mt_range(&g->rng, -1, rem + 1);
    } else if (r < 95) {
        uint64_t id = target(g, view);
        mx_order_info info;
        int live = ref_lookup(view, id, &info);
        int side = live ? info.side : (int)mt_range(&g->rng, 0, 1);
        if (mt_chance(&g->rng, 5))
            side = !side;
        uint64_t who = live && mt_chance(&g->rng, 92) ? info.owner : owner;
        c->kind = side == MX_BID ? MX_CMD_REPLACE_BID : MX_CMD_REPLACE_ASK;
        if (side == MX_BID)
            gen_bid(g, &c->bid, id, who);
        else
            gen_ask(g, &c->ask, id, who);
    } else if (r < 97) {
        c->kind = MX_CMD_EXPIRE;
    } else if (r < 98) {
        c->kind = mt_chance(&g->rng, 10) ? 0 : MX_CMD_BID; /* unknown kind, or a reused id */
        gen_bid(g, &c->bid, target(g, view), owner);
    } else {
        c->kind = MX_CMD_CANCEL;
        c->id = g->next_id + 1000; /* unknown */
    }
    int add = c->kind == MX_CMD_BID || c->kind == MX_CMD_ASK || c->kind == MX_CMD_REPLACE_BID ||
              c->kind == MX_CMD_REPLACE_ASK;
    if (add && mt_chance(&g->rng, g->invalid_pct))
        corrupt(g, c);
}
