/*
 * matching_testkit.c — see matching_testkit.h.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/matching_testkit.h"

/* ---- random numbers ------------------------------------------------------------------------- */

uint64_t mt_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

int64_t mt_range(uint64_t *state, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1;
    return span == 0 ? (int64_t)mt_rand(state) : lo + (int64_t)(mt_rand(state) % span);
}

bool mt_chance(uint64_t *state, unsigned percent)
{
    return mt_rand(state) % 100 < percent;
}

/* ---- event log ------------------------------------------------------------------------------ */

void mt_log_sink(void *ctx, const mx_event *ev)
{
    mt_log *log = ctx;
    if (log->n == log->cap) {
        size_t cap = log->cap ? log->cap * 2 : 64;
        mx_event *p = realloc(log->ev, cap * sizeof *p);
        if (p == NULL)
            abort();
        log->ev = p;
        log->cap = cap;
    }
    log->ev[log->n++] = *ev;
}

void mt_log_clear(mt_log *log)
{
    log->n = 0;
}

void mt_log_free(mt_log *log)
{
    free(log->ev);
    *log = (mt_log){ NULL, 0, 0 };
}

long mt_log_find(const mt_log *log, size_t from, mx_event_kind kind)
{
    for (size_t i = from; i < log->n; i++)
        if (log->ev[i].kind == kind)
            return (long)i;
    return -1;
}

size_t mt_log_count(const mt_log *log, mx_event_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < log->n; i++)
        n += log->ev[i].kind == kind;
    return n;
}

/* ---- comparing and printing ----------------------------------------------------------------- */

bool mt_event_equal(const mx_event *a, const mx_event *b)
{
    return a->kind == b->kind && a->reason == b->reason && a->side == b->side && a->id == b->id &&
           a->owner == b->owner && a->remaining == b->remaining && a->now == b->now &&
           a->match == b->match && a->maker_id == b->maker_id && a->taker_id == b->taker_id &&
           a->maker_owner == b->maker_owner && a->taker_owner == b->taker_owner &&
           a->maker_remaining == b->maker_remaining && a->taker_remaining == b->taker_remaining &&
           a->devices == b->devices && a->price == b->price && a->start == b->start &&
           a->tflops == b->tflops && a->hours == b->hours && a->taker_side == b->taker_side &&
           a->precision == b->precision && a->region == b->region;
}

void mt_print_event(FILE *f, const mx_event *ev)
{
    fprintf(f, "%s id=%" PRIu64 " side=%s owner=%" PRIu64 " rem=%" PRId64 " now=%" PRId64,
            mx_event_name((mx_event_kind)ev->kind), ev->id, ev->side == MX_BID ? "bid" : "ask",
            ev->owner, ev->remaining, ev->now);
    if (ev->reason != MX_OK)
        fprintf(f, " reason=%s", mx_reason_name((mx_reason)ev->reason));
    if (ev->kind == MX_EV_FILL)
        fprintf(f,
                " #%" PRIu64 " maker=%" PRIu64 "/%" PRIu64 " rem=%" PRId64 " taker=%" PRIu64
                "/%" PRIu64 " rem=%" PRId64 " dev=%" PRId64 " price=%" PRId64 " start=%" PRId64
                " tflops=%u hours=%u %s r%u",
                ev->match, ev->maker_id, ev->maker_owner, ev->maker_remaining, ev->taker_id,
                ev->taker_owner, ev->taker_remaining, ev->devices, ev->price, ev->start, ev->tflops,
                ev->hours, mx_precision_name(ev->precision), ev->region);
    fputc('\n', f);
}

static const char *tif_name(unsigned tif)
{
    static const char *const names[] = { "GTC", "GTD", "IOC", "FOK" };
    return tif < 4 ? names[tif] : "?";
}

static void print_bid(FILE *f, const mx_bid *b)
{
    fprintf(f,
            "id=%" PRIu64 " owner=%" PRIu64 " %s %s qty=%" PRId64 " %s limit=%" PRId64
            " hours=%u regions=%#" PRIx64 " expiry=%" PRId64 " start=[%" PRId64 ",%" PRId64
            "] mem>=%u tflops>=%u tflops<=%u gang=%u green>=%u allow=",
            b->id, b->owner, mx_precision_name(b->precision), tif_name(b->tif), b->quantity,
            b->qty_kind == MX_QTY_DEVICES ? "dev" : "TFLOPS", b->limit, b->hours, b->regions,
            b->expiry, b->start_earliest, b->start_latest, b->min_memory_gb, b->min_tflops,
            b->max_tflops, b->min_devices_per_provider, b->min_green_permille);
    for (unsigned i = 0; i < b->n_allow && i < MX_MAX_ALLOW; i++)
        fprintf(f, "%s%u/%u", i ? "," : "", b->allow[i].vendor, b->allow[i].model);
}

static void print_ask(FILE *f, const mx_ask *a)
{
    fprintf(f, "id=%" PRIu64 " owner=%" PRIu64 " %s devices=%" PRId64 " region=%u prices=", a->id,
            a->owner, tif_name(a->tif), a->devices, a->region);
    for (unsigned p = 0; p < MX_NPREC; p++)
        if (a->priced >> p & 1)
            fprintf(f, "%s:%ux%" PRId64 " ", mx_precision_name(p), a->tflops[p], a->price[p]);
    fprintf(f,
            "window=[%" PRId64 ",%" PRId64 "] expiry=%" PRId64 " mem=%u vendor=%u/%u green=%u "
            "hours=[%u,%u]",
            a->available_from, a->available_until, a->expiry, a->memory_gb, a->vendor, a->model,
            a->green_permille, a->min_hours, a->max_hours);
}

void mt_print_command(FILE *f, const mx_command *c)
{
    fprintf(f, "now=%" PRId64 " ", c->now);
    switch (c->kind) {
    case MX_CMD_BID:
        fputs("BID ", f);
        print_bid(f, &c->bid);
        break;
    case MX_CMD_REPLACE_BID:
        fputs("REPLACE_BID ", f);
        print_bid(f, &c->bid);
        break;
    case MX_CMD_ASK:
        fputs("ASK ", f);
        print_ask(f, &c->ask);
        break;
    case MX_CMD_REPLACE_ASK:
        fputs("REPLACE_ASK ", f);
        print_ask(f, &c->ask);
        break;
    case MX_CMD_CANCEL: fprintf(f, "CANCEL id=%" PRIu64, c->id); break;
    case MX_CMD_REDUCE: fprintf(f, "REDUCE id=%" PRIu64 " to=%" PRId64, c->id, c->quantity); break;
    case MX_CMD_EXPIRE: fputs("EXPIRE", f); break;
    default: fprintf(f, "kind=%u", c->kind); break;
    }
    fputc('\n', f);
}

/* ---- spec builders -------------------------------------------------------------------------- */

mx_bid mt_bid(uint64_t id, uint64_t owner, unsigned precision, unsigned region, int64_t devices,
              int64_t limit)
{
    mx_bid b;
    memset(&b, 0, sizeof b);
    b.id = id;
    b.owner = owner;
    b.precision = (uint8_t)precision;
    b.qty_kind = MX_QTY_DEVICES;
    b.tif = MX_GTC;
    b.quantity = devices;
    b.limit = limit;
    b.hours = 1;
    b.regions = UINT64_C(1) << region;
    return b;
}

mx_ask mt_ask(uint64_t id, uint64_t owner, unsigned region, int64_t devices, unsigned precision,
              uint32_t tflops, int64_t price)
{
    mx_ask a;
    memset(&a, 0, sizeof a);
    a.id = id;
    a.owner = owner;
    a.devices = devices;
    a.region = (uint8_t)region;
    a.tif = MX_GTC;
    mt_ask_price(&a, precision, tflops, price);
    return a;
}

void mt_ask_price(mx_ask *a, unsigned precision, uint32_t tflops, int64_t price)
{
    a->priced |= (uint8_t)(1u << precision);
    a->tflops[precision] = tflops;
    a->price[precision] = price;
}

/* ---- the pair ------------------------------------------------------------------------------- */

bool mt_pair_init(mt_pair *p, const mx_config *cfg)
{
    memset(p, 0, sizeof *p);
    mx_config c = *cfg;
    p->regions = cfg->regions;
    c.sink = mt_log_sink;
    c.sink_ctx = &p->got;
    p->engine = mx_engine_create(&c);
    c.sink_ctx = &p->want;
    p->ref = ref_create(&c);
    if (p->engine == NULL || p->ref == NULL) {
        mt_pair_free(p);
        return false;
    }
    return true;
}

void mt_pair_free(mt_pair *p)
{
    mx_engine_free(p->engine);
    ref_free(p->ref);
    mt_log_free(&p->got);
    mt_log_free(&p->want);
    memset(p, 0, sizeof *p);
}

/* Writes a formatted difference into why. Returns false. */
static bool differ(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return false;
}

static bool same_level(const mx_level_info *a, const mx_level_info *b)
{
    return a->price == b->price && a->devices == b->devices && a->tflops == b->tflops &&
           a->orders == b->orders;
}

static bool same_explanation(const mx_explanation *a, const mx_explanation *b)
{
    if (a->side != b->side || a->examined != b->examined || a->eligible != b->eligible ||
        a->has_nearest != b->has_nearest)
        return false;
    for (unsigned c = 0; c < MX_NCONSTRAINTS; c++)
        if (a->excluded[c] != b->excluded[c])
            return false;
    return !a->has_nearest ||
           (a->price_gap == b->price_gap && a->nearest_id == b->nearest_id &&
            a->nearest_precision == b->nearest_precision && a->nearest_region == b->nearest_region);
}

/* Deep comparison: depth of every book, every resting order, one explanation. */
static bool compare_deep(mt_pair *p, uint64_t pick, char *why, size_t n)
{
    enum { MAXL = 64 };
    mx_level_info a[MAXL], b[MAXL];
    for (unsigned prec = 0; prec < MX_NPREC; prec++) {
        for (unsigned region = 0; region < p->regions; region++) {
            for (unsigned side = 0; side < 2; side++) {
                size_t na = mx_depth(p->engine, prec, region, (mx_side)side, a, MAXL);
                size_t nb = ref_depth(p->ref, prec, region, (mx_side)side, b, MAXL);
                if (na != nb)
                    return differ(why, n, "depth %s r%u %s: %zu levels, want %zu",
                                  mx_precision_name(prec), region, side ? "ask" : "bid", na, nb);
                for (size_t i = 0; i < na; i++)
                    if (!same_level(&a[i], &b[i]))
                        return differ(why, n,
                                      "depth %s r%u %s level %zu: %" PRId64 " %" PRIu64
                                      "dev %" PRIu64 "tf %u orders, want %" PRId64 " %" PRIu64
                                      "dev %" PRIu64 "tf %u orders",
                                      mx_precision_name(prec), region, side ? "ask" : "bid", i,
                                      a[i].price, a[i].devices, a[i].tflops, a[i].orders,
                                      b[i].price, b[i].devices, b[i].tflops, b[i].orders);
            }
        }
    }
    size_t resting = ref_resting(p->ref);
    for (size_t i = 0; i < resting; i++) {
        uint64_t id = ref_resting_id(p->ref, i);
        mx_order_info x, y;
        if (!mx_lookup(p->engine, id, &x) || !ref_lookup(p->ref, id, &y))
            return differ(why, n, "order %" PRIu64 " missing in the engine", id);
        if (x.side != y.side || x.owner != y.owner || x.remaining != y.remaining || x.seq != y.seq)
            return differ(why, n,
                          "order %" PRIu64 ": remaining %" PRId64 " seq %" PRIu64 ", want %" PRId64
                          " seq %" PRIu64,
                          id, x.remaining, x.seq, y.remaining, y.seq);
    }
    if (resting > 0) {
        uint64_t id = ref_resting_id(p->ref, pick % resting);
        mx_explanation x, y;
        mx_reason rx = mx_explain(p->engine, id, &x), ry = ref_explain(p->ref, id, &y);
        if (rx != ry || !same_explanation(&x, &y))
            return differ(why, n,
                          "explain %" PRIu64 ": examined %u eligible %u gap %" PRId64
                          " nearest %" PRIu64 ", want examined %u eligible %u gap %" PRId64
                          " nearest %" PRIu64,
                          id, x.examined, x.eligible, x.price_gap, x.nearest_id, y.examined,
                          y.eligible, y.price_gap, y.nearest_id);
    }
    return true;
}

bool mt_pair_step(mt_pair *p, const mx_command *cmd, bool deep, uint64_t pick, char *why, size_t n)
{
    mt_log_clear(&p->got);
    mt_log_clear(&p->want);
    mx_reason rg = mx_apply(p->engine, cmd);
    mx_reason rw = ref_apply(p->ref, cmd);
    if (rg != rw)
        return differ(why, n, "returned %s, want %s", mx_reason_name(rg), mx_reason_name(rw));
    size_t common = p->got.n < p->want.n ? p->got.n : p->want.n;
    for (size_t i = 0; i < common; i++)
        if (!mt_event_equal(&p->got.ev[i], &p->want.ev[i]))
            return differ(why, n, "event %zu differs", i);
    if (p->got.n != p->want.n)
        return differ(why, n, "%zu events, want %zu", p->got.n, p->want.n);
    if (mx_resting(p->engine) != ref_resting(p->ref))
        return differ(why, n, "%zu resting, want %zu", mx_resting(p->engine), ref_resting(p->ref));
    uint64_t hg = mx_state_hash(p->engine), hw = ref_state_hash(p->ref);
    if (hg != hw)
        return differ(why, n, "state hash %016" PRIx64 ", want %016" PRIx64, hg, hw);
    return !deep || compare_deep(p, pick, why, n);
}

void mt_pair_dump(const mt_pair *p, FILE *f)
{
    fprintf(f, "engine events:\n");
    for (size_t i = 0; i < p->got.n; i++) {
        fprintf(f, "  [%zu] ", i);
        mt_print_event(f, &p->got.ev[i]);
    }
    fprintf(f, "reference events:\n");
    for (size_t i = 0; i < p->want.n; i++) {
        fprintf(f, "  [%zu] ", i);
        mt_print_event(f, &p->want.ev[i]);
    }
}
