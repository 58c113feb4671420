/*
 * test_matching_constraints.c — only pairs whose constraints both sides satisfy trade: memory,
 * TFLOPS per device (minimum and maximum), vendor/model allow-lists, green share, the ask's min/max
 * hours, the bid's start window, the ask's availability window and the agreement's start time, gang
 * (min devices per provider, with re-matching when a gang bid's need falls), and the skipping of
 * ineligible counter-orders without losing eligible ones behind them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tests/support/matching_testkit.h"

#define NOW  1700000000
#define HOUR 3600

static void on_check_failure(void *ctx, const char *what, const char *file, int line)
{
    (void)ctx;
    fprintf(stderr, "invariant failed: %s (%s:%d)\n", what, file, line);
}

static mx_engine *engine(mt_log *log)
{
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = 2;
    cfg.stp = MX_STP_CANCEL_NEWEST;
    cfg.sink = mt_log_sink;
    cfg.sink_ctx = log;
    cfg.on_check_failure = on_check_failure;
    mx_engine *e = mx_engine_create(&cfg);
    assert_non_null(e);
    return e;
}

/* A typical listing: 8 devices, 80 GB, vendor 1 model 1, 500 permille green, FP16 990 TFLOPS. */
static mx_ask listing(uint64_t id, int64_t price)
{
    mx_ask a = mt_ask(id, 7, 0, 8, MX_FP16, 990, price);
    a.memory_gb = 80;
    a.vendor = 1;
    a.model = 1;
    a.green_permille = 500;
    return a;
}

static mx_bid order(uint64_t id, int64_t devices, int64_t limit)
{
    return mt_bid(id, 8, MX_FP16, 0, devices, limit);
}

/* Submits bid b against a book holding ask a; returns the number of fills. */
static size_t fills_between(mx_ask a, mx_bid b)
{
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_submit_ask(e, NOW, &a);
    mt_log_clear(&log);
    mx_submit_bid(e, NOW, &b);
    size_t n = mt_log_count(&log, MX_EV_FILL);
    /* and the same with the bid resting first */
    mx_engine_free(e);
    mt_log_clear(&log);
    e = engine(&log);
    mx_submit_bid(e, NOW, &b);
    mt_log_clear(&log);
    mx_submit_ask(e, NOW, &a);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), n);
    mx_engine_free(e);
    mt_log_free(&log);
    return n;
}

static void test_memory(void **state)
{
    (void)state;
    mx_bid b = order(2, 1, 100);
    b.min_memory_gb = 80;
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.min_memory_gb = 81;
    assert_int_equal(fills_between(listing(1, 100), b), 0);
}

static void test_min_tflops(void **state)
{
    (void)state;
    mx_bid b = order(2, 1, 100);
    b.min_tflops = 990;
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.min_tflops = 991;
    assert_int_equal(fills_between(listing(1, 100), b), 0);
}

/* max_tflops: an ask with exactly max_tflops trades, one more TFLOPS does not; both bounds at
 * once; a bid whose only constraint is max_tflops against a plain ask (no attributes). */
static void test_max_tflops(void **state)
{
    (void)state;
    mx_bid b = order(2, 1, 100);
    b.max_tflops = 990;
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.max_tflops = 989;
    assert_int_equal(fills_between(listing(1, 100), b), 0);
    b.max_tflops = 0; /* no maximum */
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.min_tflops = 990;
    b.max_tflops = 990;
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    mx_ask plain = mt_ask(1, 7, 0, 8, MX_FP16, 990, 100);
    mx_bid only = order(2, 1, 100);
    only.max_tflops = 989;
    assert_int_equal(fills_between(plain, only), 0);
    only.max_tflops = 990;
    assert_int_equal(fills_between(plain, only), 1);
    /* capacity bids too: the bound is per device, whatever the quantity */
    mx_bid cap = order(2, 5000, 100);
    cap.qty_kind = MX_QTY_TFLOPS;
    cap.max_tflops = 989;
    assert_int_equal(fills_between(listing(1, 100), cap), 0);
    cap.max_tflops = 990;
    assert_int_equal(fills_between(listing(1, 100), cap), 1);
}

/* The bound applies to the ask's TFLOPS at the bid's precision, not at its other precisions. */
static void test_max_tflops_at_the_bids_precision(void **state)
{
    (void)state;
    mx_ask a = listing(1, 100); /* FP16 990 */
    mt_ask_price(&a, MX_BF16, 500, 100);
    mx_bid b = mt_bid(2, 8, MX_BF16, 0, 1, 100);
    b.max_tflops = 500;
    assert_int_equal(fills_between(a, b), 1);
    b.max_tflops = 499;
    assert_int_equal(fills_between(a, b), 0);
    mx_bid f = order(3, 1, 100); /* FP16 */
    f.max_tflops = 500;
    assert_int_equal(fills_between(a, f), 0);
}

/* A bid steps past a cheaper ask above its max_tflops to a dearer one within it, which keeps
 * its place; an incoming ask steps past a better-paying bid whose max_tflops it exceeds. */
static void test_max_tflops_skips(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask big = listing(1, 90); /* 990 TFLOPS */
    mx_ask small = listing(2, 95);
    small.tflops[MX_FP16] = 400;
    mx_submit_ask(e, NOW, &big);
    mx_submit_ask(e, NOW, &small);
    mt_log_clear(&log);
    mx_bid b = order(3, 1, 100);
    b.max_tflops = 600;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    assert_int_equal(log.ev[1].maker_id, 2);
    assert_int_equal(log.ev[1].tflops, 400);
    assert_int_equal(log.ev[1].price, 95);
    mx_order_info info;
    assert_true(mx_lookup(e, 1, &info));
    assert_int_equal(info.remaining, 8);
    mx_engine_free(e);

    /* the other way round: bid 4 pays more per device-hour but accepts at most 500 TFLOPS */
    mt_log_clear(&log);
    e = engine(&log);
    mx_bid rich = order(4, 1, 200);
    rich.max_tflops = 500;
    mx_bid poor = order(5, 1, 150);
    assert_int_equal(mx_submit_bid(e, NOW, &rich), MX_OK);
    assert_int_equal(mx_submit_bid(e, NOW, &poor), MX_OK);
    mt_log_clear(&log);
    mx_ask a = listing(6, 100);
    a.devices = 2;
    mx_submit_ask(e, NOW, &a);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    assert_int_equal(log.ev[1].maker_id, 5);
    assert_int_equal(log.ev[1].price, 150);
    assert_true(mx_lookup(e, 4, &info));
    mx_engine_free(e);
    mt_log_free(&log);
}

/* Validation: max_tflops is 0 or min_tflops..maxT(p) (1..maxT when min_tflops is 0); a device
 * bid's product check uses max_tflops instead of maxT(p), and limit x maxT(p) must still fit. */
static void test_max_tflops_validation(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    uint32_t cap = mx_max_tflops(MX_FP16);
    uint64_t id = 100;
#define SUBMIT(stmt, want)                                                                         \
    do {                                                                                           \
        mx_bid b = order(id++, 1, 1);                                                              \
        b.tif = MX_IOC;                                                                            \
        stmt;                                                                                      \
        mt_log_clear(&log);                                                                        \
        assert_int_equal(mx_submit_bid(e, NOW, &b), want);                                         \
        assert_int_equal(log.ev[0].kind, want == MX_OK ? MX_EV_ACCEPTED : MX_EV_REJECTED);         \
        assert_int_equal(log.ev[0].reason, want);                                                  \
    } while (0)
    SUBMIT(b.max_tflops = 1, MX_OK);
    SUBMIT(b.max_tflops = cap, MX_OK);
    SUBMIT(b.max_tflops = cap + 1, MX_R_BAD_CONSTRAINT);
    SUBMIT(b.max_tflops = UINT32_MAX, MX_R_BAD_CONSTRAINT);
    SUBMIT((b.min_tflops = 500, b.max_tflops = 500), MX_OK);
    SUBMIT((b.min_tflops = 500, b.max_tflops = 499), MX_R_BAD_CONSTRAINT);
    SUBMIT((b.min_tflops = 500, b.max_tflops = 0), MX_OK);
    SUBMIT((b.precision = MX_FP64, b.max_tflops = mx_max_tflops(MX_FP64) + 1), MX_R_BAD_CONSTRAINT);
    /* a constraint refusal comes before the product check */
    SUBMIT((b.max_tflops = cap + 1, b.limit = INT64_MAX), MX_R_BAD_CONSTRAINT);

    /* device bid: limit x T x quantity x hours <= INT64_MAX with T = max_tflops, exactly */
    int64_t lim = INT64_MAX / (100 * 200);
    SUBMIT((b.max_tflops = 100, b.quantity = 200, b.limit = lim), MX_OK);
    SUBMIT((b.max_tflops = 100, b.quantity = 200, b.limit = lim + 1), MX_R_OVERFLOW);
    SUBMIT((b.max_tflops = 0, b.quantity = 200, b.limit = lim), MX_R_OVERFLOW);
    SUBMIT((b.max_tflops = cap, b.quantity = 200, b.limit = lim), MX_R_OVERFLOW);
    int64_t big = INT64_C(1) << 36; /* x 16384 x 1024 x 100 overflows; x 16 x 1024 x 100 fits */
    SUBMIT((b.max_tflops = 16, b.quantity = 1024, b.hours = 100, b.limit = big), MX_OK);
    SUBMIT((b.quantity = 1024, b.hours = 100, b.limit = big), MX_R_OVERFLOW);
    /* ... and limit x maxT(p), the normalised price of any crossing ask, must fit too */
    int64_t norm = INT64_MAX / cap;
    SUBMIT((b.max_tflops = 1, b.limit = norm), MX_OK);
    SUBMIT((b.max_tflops = 1, b.limit = norm + 1), MX_R_OVERFLOW);
    /* a capacity bid's check is unchanged: it still uses maxT(p) */
    int64_t clim = INT64_MAX / (1000 + cap);
    SUBMIT((b.qty_kind = MX_QTY_TFLOPS, b.quantity = 1000, b.max_tflops = 10, b.limit = clim),
           MX_OK);
    SUBMIT((b.qty_kind = MX_QTY_TFLOPS, b.quantity = 1000, b.max_tflops = 10, b.limit = clim + 1),
           MX_R_OVERFLOW);
#undef SUBMIT
    mx_engine_free(e);
    mt_log_free(&log);
}

/* A resting bid at the largest limit its max_tflops allows meets an incoming ask with far more
 * TFLOPS per device: ranking computes limit x TFLOPS before the constraint steps past it. */
static void test_max_tflops_huge_limit(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_bid b = order(1, 1, INT64_MAX / mx_max_tflops(MX_FP16));
    b.max_tflops = 1;
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    mx_bid other = order(2, 1, 100);
    assert_int_equal(mx_submit_bid(e, NOW, &other), MX_OK);
    mt_log_clear(&log);
    mx_ask a = mt_ask(3, 7, 0, 1, MX_FP16, mx_max_tflops(MX_FP16), 100);
    assert_int_equal(mx_submit_ask(e, NOW, &a), MX_OK);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    assert_int_equal(log.ev[1].maker_id, 2);
    mx_ask one = mt_ask(4, 7, 0, 1, MX_FP16, 1, 100);
    mt_log_clear(&log);
    assert_int_equal(mx_submit_ask(e, NOW, &one), MX_OK);
    assert_int_equal(log.ev[1].kind, MX_EV_FILL);
    assert_int_equal(log.ev[1].maker_id, 1);
    assert_int_equal(log.ev[1].price, b.limit);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* explain() counts the asks max_tflops excludes, apart from those min_tflops excludes. */
static void test_max_tflops_explained(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask a1 = listing(1, 120); /* 990: above the maximum */
    mx_ask a2 = listing(2, 130);
    a2.tflops[MX_FP16] = 200; /* below the minimum */
    mx_ask a3 = listing(3, 140);
    a3.tflops[MX_FP16] = 601; /* just above the maximum */
    mx_ask a4 = listing(4, 150);
    a4.tflops[MX_FP16] = 600; /* eligible, too dear */
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mx_submit_ask(e, NOW, &a3);
    mx_submit_ask(e, NOW, &a4);
    mx_bid b = order(5, 1, 125);
    b.min_tflops = 300;
    b.max_tflops = 600;
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    assert_int_equal(mx_resting(e), 5);
    mx_explanation x;
    assert_int_equal(mx_explain(e, 5, &x), MX_OK);
    assert_int_equal(x.examined, 4);
    assert_int_equal(x.excluded[MX_C_MAX_TFLOPS], 2); /* ids 1 and 3 */
    assert_int_equal(x.excluded[MX_C_TFLOPS], 1);     /* id 2 */
    assert_int_equal(x.eligible, 1);
    assert_true(x.has_nearest);
    assert_int_equal(x.nearest_id, 4);
    assert_int_equal(x.price_gap, 25);
    /* from the ask's side: the bid excludes it by max_tflops */
    assert_int_equal(mx_explain(e, 1, &x), MX_OK);
    assert_int_equal(x.examined, 1);
    assert_int_equal(x.excluded[MX_C_MAX_TFLOPS], 1);
    assert_int_equal(x.excluded[MX_C_TFLOPS], 0);
    assert_int_equal(x.eligible, 0);
    assert_string_equal(mx_constraint_name(MX_C_MAX_TFLOPS), "max_tflops");
    mx_engine_free(e);
    mt_log_free(&log);
}

/* max_tflops is part of the resting spec: mx_get_bid returns it and the state hash covers it. */
static void test_max_tflops_spec_and_hash(void **state)
{
    (void)state;
    mt_log l1 = { 0 }, l2 = { 0 };
    mx_engine *e1 = engine(&l1), *e2 = engine(&l2);
    mx_bid b = order(1, 1, 100);
    b.max_tflops = 700;
    mx_bid c = b;
    c.max_tflops = 701;
    assert_int_equal(mx_submit_bid(e1, NOW, &b), MX_OK);
    assert_int_equal(mx_submit_bid(e2, NOW, &c), MX_OK);
    mx_bid got;
    assert_true(mx_get_bid(e1, 1, &got));
    assert_int_equal(got.max_tflops, 700);
    assert_true(mx_state_hash(e1) != mx_state_hash(e2));
    assert_true(mx_hash_bid(&b, 1, 1) != mx_hash_bid(&c, 1, 1));
    mx_engine_free(e1);
    mx_engine_free(e2);
    mt_log_free(&l1);
    mt_log_free(&l2);
}

static void test_allow_list(void **state)
{
    (void)state;
    mx_bid b = order(2, 1, 100);
    b.n_allow = 1;
    b.allow[0] = (mx_model_ref){ 1, 0 }; /* any model of vendor 1 */
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.allow[0] = (mx_model_ref){ 1, 1 }; /* exactly model 1 */
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.allow[0] = (mx_model_ref){ 1, 2 };
    assert_int_equal(fills_between(listing(1, 100), b), 0);
    b.allow[0] = (mx_model_ref){ 2, 0 };
    assert_int_equal(fills_between(listing(1, 100), b), 0);
    b.n_allow = 2;
    b.allow[1] = (mx_model_ref){ 1, 1 };
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    /* an unknown vendor never passes a non-empty list */
    mx_ask a = listing(1, 100);
    a.vendor = 0;
    assert_int_equal(fills_between(a, b), 0);
}

static void test_green(void **state)
{
    (void)state;
    mx_bid b = order(2, 1, 100);
    b.min_green_permille = 500;
    assert_int_equal(fills_between(listing(1, 100), b), 1);
    b.min_green_permille = 501;
    assert_int_equal(fills_between(listing(1, 100), b), 0);
}

static void test_hours(void **state)
{
    (void)state;
    mx_ask a = listing(1, 100);
    a.min_hours = 4;
    a.max_hours = 10;
    mx_bid b = order(2, 1, 100);
    b.hours = 3;
    assert_int_equal(fills_between(a, b), 0);
    b.hours = 4;
    assert_int_equal(fills_between(a, b), 1);
    b.hours = 10;
    assert_int_equal(fills_between(a, b), 1);
    b.hours = 11;
    assert_int_equal(fills_between(a, b), 0);
}

static void test_start_time_and_windows(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask a = listing(1, 100);
    a.available_from = NOW + 2 * HOUR;
    a.available_until = NOW + 10 * HOUR;
    mx_submit_ask(e, NOW, &a);
    /* start = max(now, available_from, start_earliest) */
    mt_log_clear(&log);
    mx_bid b = order(2, 1, 100);
    b.start_earliest = NOW + 3 * HOUR;
    b.hours = 7;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    assert_int_equal(log.ev[1].start, NOW + 3 * HOUR);
    /* start + hours must end by available_until: 3h + 8h > 10h */
    mt_log_clear(&log);
    mx_bid c = order(3, 1, 100);
    c.start_earliest = NOW + 3 * HOUR;
    c.hours = 8;
    c.tif = MX_IOC;
    mx_submit_bid(e, NOW, &c);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    /* the bid must be able to start by start_latest: listing opens at +2h */
    mt_log_clear(&log);
    mx_bid d = order(4, 1, 100);
    d.start_latest = NOW + HOUR;
    mx_submit_bid(e, NOW, &d);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    mx_explanation x;
    assert_int_equal(mx_explain(e, 4, &x), MX_OK);
    assert_int_equal(x.excluded[MX_C_START], 1);
    /* its start window closes at start_latest: it expires one second later */
    mt_log_clear(&log);
    mx_expire(e, NOW + HOUR);
    assert_int_equal(log.n, 0);
    mx_expire(e, NOW + HOUR + 1);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ev[0].kind, MX_EV_EXPIRED);
    assert_int_equal(log.ev[0].id, 4);
    /* no start before now: a bid at +5h starts at +5h */
    mt_log_clear(&log);
    mx_bid f = order(5, 1, 100);
    f.hours = 2;
    mx_submit_bid(e, NOW + 5 * HOUR, &f);
    assert_int_equal(log.ev[1].kind, MX_EV_FILL);
    assert_int_equal(log.ev[1].start, NOW + 5 * HOUR);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_gang(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask small = listing(1, 90); /* cheapest, but only 3 devices */
    small.devices = 3;
    mx_ask big = listing(2, 100);
    big.devices = 8;
    mx_submit_ask(e, NOW, &small);
    mx_submit_ask(e, NOW, &big);
    mt_log_clear(&log);
    /* needs 10 devices, at least 4 from one provider: the 3-device listing does not qualify
     * until the need falls to 2 (min(4, 2) = 2 <= 3) */
    mx_bid b = order(3, 10, 100);
    b.min_devices_per_provider = 4;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 2);
    const mx_event *f1 = &log.ev[mt_log_find(&log, 0, MX_EV_FILL)];
    const mx_event *f2 = &log.ev[mt_log_find(&log, (size_t)(f1 - log.ev) + 1, MX_EV_FILL)];
    assert_int_equal(f1->maker_id, 2);
    assert_int_equal(f1->devices, 8);
    assert_int_equal(f2->maker_id, 1);
    assert_int_equal(f2->devices, 2);
    assert_int_equal(mx_resting(e), 1); /* 1 device of the small listing */
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_gang_rematch_after_partial_fill(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask small = listing(1, 90); /* 3 devices: too few for the gang bid of 10 */
    small.devices = 3;
    mx_submit_ask(e, NOW, &small);
    mx_bid b = order(2, 10, 100);
    b.min_devices_per_provider = 4;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mx_resting(e), 2); /* crossed but ineligible */
    /* an incoming ask fills 8: the bid now needs 2 <= 3, so the small listing qualifies and the
     * bid is re-matched against it before the command ends */
    mt_log_clear(&log);
    mx_ask big = listing(3, 95);
    big.devices = 8;
    mx_submit_ask(e, NOW, &big);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 2);
    long i = mt_log_find(&log, 0, MX_EV_FILL);
    assert_int_equal(log.ev[i].taker_id, 3);
    assert_int_equal(log.ev[i].price, 100); /* the resting bid's price */
    i = mt_log_find(&log, (size_t)i + 1, MX_EV_FILL);
    assert_int_equal(log.ev[i].taker_id, 2); /* the re-matched bid takes */
    assert_int_equal(log.ev[i].maker_id, 1);
    assert_int_equal(log.ev[i].devices, 2);
    assert_int_equal(log.ev[i].price, 90);
    assert_int_equal(log.ev[log.n - 1].kind, MX_EV_DONE);
    assert_int_equal(log.ev[log.n - 1].id, 2);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_gang_rematch_after_reduce(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask small = listing(1, 90);
    small.devices = 3;
    mx_submit_ask(e, NOW, &small);
    mx_bid b = order(2, 10, 100);
    b.min_devices_per_provider = 4;
    mx_submit_bid(e, NOW, &b);
    mt_log_clear(&log);
    assert_int_equal(mx_reduce(e, NOW, 2, 3), MX_OK);
    assert_int_equal(log.ev[0].kind, MX_EV_REDUCED);
    assert_int_equal(log.ev[1].kind, MX_EV_FILL);
    assert_int_equal(log.ev[1].devices, 3);
    assert_int_equal(mx_resting(e), 0);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_capacity_gang(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask a = listing(1, 100); /* 8 x 990 */
    a.devices = 2;
    mx_submit_ask(e, NOW, &a);
    mt_log_clear(&log);
    /* 2000 TFLOPS = ceil(2000/990) = 3 devices, gang 3: a 2-device listing is not enough */
    mx_bid b = order(2, 2000, 100);
    b.qty_kind = MX_QTY_TFLOPS;
    b.min_devices_per_provider = 3;
    b.tif = MX_IOC;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    /* 1900 TFLOPS needs 2 devices: min(3, 2) = 2 */
    mt_log_clear(&log);
    b.id = 3;
    b.quantity = 1900;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* An ineligible best ask is stepped over; the eligible one behind it trades, and the ineligible
 * one keeps its place. */
static void test_skip_ineligible(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask cheap = listing(1, 90);
    cheap.memory_gb = 40;
    mx_ask other = listing(2, 95);
    mx_submit_ask(e, NOW, &cheap);
    mx_submit_ask(e, NOW, &other);
    mt_log_clear(&log);
    mx_bid b = order(3, 1, 100);
    b.min_memory_gb = 80;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(log.ev[1].kind, MX_EV_FILL);
    assert_int_equal(log.ev[1].maker_id, 2);
    mt_log_clear(&log);
    mx_bid c = order(4, 1, 100);
    mx_submit_bid(e, NOW, &c);
    assert_int_equal(log.ev[1].maker_id, 1);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* FOK with constraints: the dry run counts only eligible asks. */
static void test_fok_with_constraints(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask a1 = listing(1, 90), a2 = listing(2, 95);
    a1.green_permille = 100;
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mt_log_clear(&log);
    mx_bid b = order(3, 9, 100);
    b.min_green_permille = 400;
    b.tif = MX_FOK;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    assert_int_equal(log.ev[log.n - 1].reason, MX_R_FOK);
    b.quantity = 8;
    b.id = 4;
    mt_log_clear(&log);
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* A multi-region bid whose best ask region fails a constraint takes the next region. */
static void test_constraints_across_regions(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log);
    mx_ask r0 = listing(1, 90), r1 = listing(2, 95);
    r0.vendor = 2;
    r1.region = 1;
    mx_submit_ask(e, NOW, &r0);
    mx_submit_ask(e, NOW, &r1);
    mt_log_clear(&log);
    mx_bid b = order(3, 1, 100);
    b.regions = 3;
    b.n_allow = 1;
    b.allow[0] = (mx_model_ref){ 1, 0 };
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(log.ev[1].maker_id, 2);
    assert_int_equal(log.ev[1].region, 1);
    mx_engine_free(e);
    mt_log_free(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_min_tflops),
        cmocka_unit_test(test_max_tflops),
        cmocka_unit_test(test_max_tflops_at_the_bids_precision),
        cmocka_unit_test(test_max_tflops_skips),
        cmocka_unit_test(test_max_tflops_validation),
        cmocka_unit_test(test_max_tflops_huge_limit),
        cmocka_unit_test(test_max_tflops_explained),
        cmocka_unit_test(test_max_tflops_spec_and_hash),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_green),
        cmocka_unit_test(test_hours),
        cmocka_unit_test(test_start_time_and_windows),
        cmocka_unit_test(test_gang),
        cmocka_unit_test(test_gang_rematch_after_partial_fill),
        cmocka_unit_test(test_gang_rematch_after_reduce),
        cmocka_unit_test(test_capacity_gang),
        cmocka_unit_test(test_skip_ineligible),
        cmocka_unit_test(test_fok_with_constraints),
        cmocka_unit_test(test_constraints_across_regions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
