/*
 * test_matching_constraints.c — only pairs whose constraints both sides satisfy trade: memory,
 * TFLOPS per device, vendor/model allow-lists, green share, the ask's min/max hours, the bid's
 * start window, the ask's availability window and the agreement's start time, gang (min devices
 * per provider, with re-matching when a gang bid's need falls), and the skipping of ineligible
 * counter-orders without losing eligible ones behind them.
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
