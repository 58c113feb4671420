/*
 * test_matching_rules.c — the matching rules, one test per rule: price-time priority, trade at
 * the resting price, whole devices, capacity bids, time in force, cancel/reduce/replace,
 * self-trade prevention, multi-region bids and multi-precision asks with normalised price,
 * shared remaining quantity, validation, expiry, the clock, depth, the state hash, memory
 * hooks and limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/matching_testkit.h"

#define NOW 1700000000

static void on_check_failure(void *ctx, const char *what, const char *file, int line)
{
    (void)ctx;
    fprintf(stderr, "invariant failed: %s (%s:%d)\n", what, file, line);
}

/* An engine whose events go to log. */
static mx_engine *engine(mt_log *log, unsigned regions, mx_stp stp)
{
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = regions;
    cfg.stp = stp;
    cfg.sink = mt_log_sink;
    cfg.sink_ctx = log;
    cfg.on_check_failure = on_check_failure;
    mx_engine *e = mx_engine_create(&cfg);
    assert_non_null(e);
    return e;
}

/* The i-th FILL event of the log (asserts it exists). */
static const mx_event *fill(const mt_log *log, size_t i)
{
    size_t seen = 0;
    for (size_t k = 0; k < log->n; k++)
        if (log->ev[k].kind == MX_EV_FILL && seen++ == i)
            return &log->ev[k];
    fail_msg("no fill %zu", i);
    return NULL;
}

static int64_t remaining_of(const mx_engine *e, uint64_t id)
{
    mx_order_info info;
    return mx_lookup(e, id, &info) ? info.remaining : -1;
}

static mx_bid bid(uint64_t id, int64_t devices, int64_t limit)
{
    return mt_bid(id, 1000 + id, MX_FP16, 0, devices, limit);
}

static mx_ask ask(uint64_t id, int64_t devices, int64_t price)
{
    return mt_ask(id, 2000 + id, 0, devices, MX_FP16, 1, price);
}

/* ---- accept, rest, priority, price ---------------------------------------------------------- */

static void test_accept_and_rest(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_bid b = bid(1, 3, 100);
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ev[0].kind, MX_EV_ACCEPTED);
    assert_int_equal(log.ev[0].id, 1);
    assert_int_equal(log.ev[0].remaining, 3);
    assert_int_equal(log.ev[0].now, NOW);
    assert_int_equal(mx_resting(e), 1);
    mx_level_info L;
    assert_true(mx_best(e, MX_FP16, 0, MX_BID, &L));
    assert_int_equal(L.price, 100);
    assert_int_equal(L.devices, 3);
    assert_int_equal(L.orders, 1);
    assert_false(mx_best(e, MX_FP16, 0, MX_ASK, &L));
    assert_false(mx_best(e, MX_BF16, 0, MX_BID, &L));
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_price_priority_and_resting_price(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a1 = ask(1, 1, 105), a2 = ask(2, 1, 100), a3 = ask(3, 1, 110);
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mx_submit_ask(e, NOW, &a3);
    mt_log_clear(&log);
    mx_bid b = bid(10, 2, 108);
    mx_submit_bid(e, NOW, &b);
    /* cheapest first, at the resting ask's price, and 110 does not cross 108 */
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 2);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    assert_int_equal(fill(&log, 0)->price, 100);
    assert_int_equal(fill(&log, 1)->maker_id, 1);
    assert_int_equal(fill(&log, 1)->price, 105);
    assert_int_equal(remaining_of(e, 3), 1);
    assert_int_equal(remaining_of(e, 10), -1);
    /* ACCEPTED, FILL, DONE(maker 2), FILL, DONE(maker 1), DONE(taker) */
    assert_int_equal(log.n, 6);
    assert_int_equal(log.ev[0].kind, MX_EV_ACCEPTED);
    assert_int_equal(log.ev[2].kind, MX_EV_DONE);
    assert_int_equal(log.ev[2].id, 2);
    assert_int_equal(log.ev[5].kind, MX_EV_DONE);
    assert_int_equal(log.ev[5].id, 10);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_incoming_ask_trades_at_bid_price(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_bid b1 = bid(1, 1, 120), b2 = bid(2, 1, 125);
    mx_submit_bid(e, NOW, &b1);
    mx_submit_bid(e, NOW, &b2);
    mt_log_clear(&log);
    mx_ask a = ask(3, 2, 100);
    mx_submit_ask(e, NOW, &a);
    assert_int_equal(fill(&log, 0)->maker_id, 2); /* highest bid first */
    assert_int_equal(fill(&log, 0)->price, 125);
    assert_int_equal(fill(&log, 0)->taker_side, MX_ASK);
    assert_int_equal(fill(&log, 1)->price, 120);
    assert_int_equal(mx_resting(e), 0);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_time_priority(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    for (uint64_t id = 1; id <= 3; id++) {
        mx_ask a = ask(id, 1, 100);
        mx_submit_ask(e, NOW, &a);
    }
    mt_log_clear(&log);
    mx_bid b = bid(10, 2, 100);
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(fill(&log, 0)->maker_id, 1);
    assert_int_equal(fill(&log, 1)->maker_id, 2);
    assert_int_equal(remaining_of(e, 3), 1);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_whole_devices_partial_fill(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a = mt_ask(1, 7, 0, 5, MX_FP16, 989, 100);
    mx_submit_ask(e, NOW, &a);
    mt_log_clear(&log);
    mx_bid b = mt_bid(2, 8, MX_FP16, 0, 3, 100);
    b.hours = 10;
    mx_submit_bid(e, NOW, &b);
    const mx_event *f = fill(&log, 0);
    assert_int_equal(f->devices, 3);
    assert_int_equal(f->tflops, 989);
    assert_int_equal(f->hours, 10);
    assert_int_equal(f->maker_remaining, 2);
    assert_int_equal(f->taker_remaining, 0);
    assert_int_equal(f->maker_owner, 7);
    assert_int_equal(f->taker_owner, 8);
    assert_int_equal(f->precision, MX_FP16);
    assert_int_equal(f->region, 0);
    assert_int_equal(f->start, NOW);
    assert_int_equal(f->match, 1);
    assert_int_equal(remaining_of(e, 1), 2);
    mx_level_info L;
    assert_true(mx_best(e, MX_FP16, 0, MX_ASK, &L));
    assert_int_equal(L.devices, 2);
    assert_int_equal(L.tflops, 2 * 989);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_capacity_bid_ceil(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a1 = mt_ask(1, 7, 0, 2, MX_FP16, 300, 100);  /* 2 x 300 */
    mx_ask a2 = mt_ask(2, 7, 0, 10, MX_FP16, 400, 101); /* 10 x 400 */
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mt_log_clear(&log);
    mx_bid b = mt_bid(3, 8, MX_FP16, 0, 1000, 200);
    b.qty_kind = MX_QTY_TFLOPS;
    mx_submit_bid(e, NOW, &b);
    /* 2 devices of 300 (600 TFLOPS, both there are), then ceil(400/400) = 1 device */
    assert_int_equal(fill(&log, 0)->devices, 2);
    assert_int_equal(fill(&log, 0)->taker_remaining, 400);
    assert_int_equal(fill(&log, 1)->devices, 1);
    assert_int_equal(fill(&log, 1)->taker_remaining, 0);
    assert_int_equal(remaining_of(e, 2), 9);
    /* ceil rounds up: 450 TFLOPS from 400-TFLOPS devices is 2 devices, remaining floors at 0 */
    mt_log_clear(&log);
    mx_bid c = mt_bid(4, 8, MX_FP16, 0, 450, 200);
    c.qty_kind = MX_QTY_TFLOPS;
    mx_submit_bid(e, NOW, &c);
    assert_int_equal(fill(&log, 0)->devices, 2);
    assert_int_equal(fill(&log, 0)->taker_remaining, 0);
    assert_int_equal(remaining_of(e, 2), 7);
    /* a resting capacity bid shows in depth as TFLOPS */
    mx_bid d = mt_bid(5, 8, MX_FP16, 0, 777, 50);
    d.qty_kind = MX_QTY_TFLOPS;
    mx_submit_bid(e, NOW, &d);
    mx_level_info L;
    assert_true(mx_best(e, MX_FP16, 0, MX_BID, &L));
    assert_int_equal(L.tflops, 777);
    assert_int_equal(L.devices, 0);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- time in force -------------------------------------------------------------------------- */

static void test_ioc(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a = ask(1, 2, 100);
    mx_submit_ask(e, NOW, &a);
    mt_log_clear(&log);
    mx_bid b = bid(2, 5, 100);
    b.tif = MX_IOC;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(fill(&log, 0)->devices, 2);
    assert_int_equal(log.ev[log.n - 1].kind, MX_EV_CANCELLED);
    assert_int_equal(log.ev[log.n - 1].reason, MX_R_IOC);
    assert_int_equal(log.ev[log.n - 1].remaining, 3);
    assert_int_equal(mx_resting(e), 0);
    /* an IOC ask that finds nothing is cancelled whole */
    mt_log_clear(&log);
    mx_ask s = ask(3, 4, 100);
    s.tif = MX_IOC;
    mx_submit_ask(e, NOW, &s);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.ev[1].kind, MX_EV_CANCELLED);
    assert_int_equal(log.ev[1].reason, MX_R_IOC);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_fok(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a1 = ask(1, 2, 100), a2 = ask(2, 2, 101);
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    uint64_t before = mx_state_hash(e);
    mt_log_clear(&log);
    mx_bid b = bid(3, 5, 101);
    b.tif = MX_FOK;
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.ev[1].kind, MX_EV_CANCELLED);
    assert_int_equal(log.ev[1].reason, MX_R_FOK);
    assert_int_equal(mx_state_hash(e), before);
    mt_log_clear(&log);
    mx_bid c = bid(4, 4, 101);
    c.tif = MX_FOK;
    mx_submit_bid(e, NOW, &c);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 2);
    assert_int_equal(log.ev[log.n - 1].kind, MX_EV_DONE);
    assert_int_equal(mx_resting(e), 0);
    /* FOK asks too */
    mx_bid d = bid(5, 1, 100);
    mx_submit_bid(e, NOW, &d);
    mt_log_clear(&log);
    mx_ask s = ask(6, 2, 100);
    s.tif = MX_FOK;
    mx_submit_ask(e, NOW, &s);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    assert_int_equal(remaining_of(e, 5), 1);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_gtd_expiry_order(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_bid b1 = bid(1, 1, 90), b2 = bid(2, 1, 91), b3 = bid(3, 1, 92);
    b1.tif = b2.tif = b3.tif = MX_GTD;
    b1.expiry = NOW + 20;
    b2.expiry = NOW + 10;
    b3.expiry = NOW + 10;
    mx_submit_bid(e, NOW, &b1);
    mx_submit_bid(e, NOW, &b2);
    mx_submit_bid(e, NOW, &b3);
    mx_expire(e, NOW + 9);
    assert_int_equal(mx_resting(e), 3);
    mt_log_clear(&log);
    /* expiries come first, by (expiry, sequence), then the command's own events */
    mx_ask a = ask(4, 1, 50);
    mx_submit_ask(e, NOW + 30, &a);
    assert_int_equal(log.ev[0].kind, MX_EV_EXPIRED);
    assert_int_equal(log.ev[0].id, 2);
    assert_int_equal(log.ev[0].reason, MX_R_EXPIRED);
    assert_int_equal(log.ev[1].id, 3);
    assert_int_equal(log.ev[2].id, 1);
    assert_int_equal(log.ev[3].kind, MX_EV_ACCEPTED);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    /* cancelling an expired order: unknown */
    assert_int_equal(mx_cancel(e, NOW + 30, 1), MX_R_UNKNOWN_ID);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_ask_window_expires(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a = ask(1, 1, 100);
    a.available_until = NOW + 3600 * 5;
    mx_submit_ask(e, NOW, &a);
    mx_expire(e, NOW + 3600 * 5 - 1);
    assert_int_equal(mx_resting(e), 1);
    mt_log_clear(&log);
    mx_expire(e, NOW + 3600 * 5);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.ev[0].kind, MX_EV_EXPIRED);
    assert_int_equal(mx_resting(e), 0);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- cancel, reduce, replace ---------------------------------------------------------------- */

static void test_cancel(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_bid b = bid(1, 4, 100);
    mx_submit_bid(e, NOW, &b);
    mt_log_clear(&log);
    assert_int_equal(mx_cancel(e, NOW, 1), MX_OK);
    assert_int_equal(log.ev[0].kind, MX_EV_CANCELLED);
    assert_int_equal(log.ev[0].reason, MX_R_USER);
    assert_int_equal(log.ev[0].remaining, 4);
    assert_int_equal(mx_resting(e), 0);
    mx_level_info L;
    assert_false(mx_best(e, MX_FP16, 0, MX_BID, &L));
    mt_log_clear(&log);
    assert_int_equal(mx_cancel(e, NOW, 1), MX_R_UNKNOWN_ID);
    assert_int_equal(log.ev[0].kind, MX_EV_REJECTED);
    assert_int_equal(log.ev[0].reason, MX_R_UNKNOWN_ID);
    /* the id can be used again once the order is gone */
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_reduce_keeps_priority(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a1 = ask(1, 5, 100), a2 = ask(2, 5, 100);
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mx_order_info before, after;
    assert_true(mx_lookup(e, 1, &before));
    mt_log_clear(&log);
    assert_int_equal(mx_reduce(e, NOW, 1, 2), MX_OK);
    assert_int_equal(log.ev[0].kind, MX_EV_REDUCED);
    assert_int_equal(log.ev[0].remaining, 2);
    assert_true(mx_lookup(e, 1, &after));
    assert_int_equal(after.seq, before.seq);
    mx_level_info L;
    mx_best(e, MX_FP16, 0, MX_ASK, &L);
    assert_int_equal(L.devices, 7);
    mt_log_clear(&log);
    mx_bid b = bid(3, 1, 100);
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(fill(&log, 0)->maker_id, 1); /* still first */
    assert_int_equal(mx_reduce(e, NOW, 1, 1), MX_R_NOT_REDUCING);
    assert_int_equal(mx_reduce(e, NOW, 1, 0), MX_R_BAD_QUANTITY);
    assert_int_equal(mx_reduce(e, NOW, 99, 1), MX_R_UNKNOWN_ID);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_replace_loses_priority(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_ask a1 = ask(1, 5, 100), a2 = ask(2, 5, 100);
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mx_order_info before, after;
    mx_lookup(e, 1, &before);
    mt_log_clear(&log);
    a1.devices = 6;
    assert_int_equal(mx_replace_ask(e, NOW, &a1), MX_OK);
    assert_int_equal(log.ev[0].kind, MX_EV_REPLACED);
    assert_int_equal(log.ev[0].remaining, 6);
    mx_lookup(e, 1, &after);
    assert_true(after.seq > before.seq);
    mt_log_clear(&log);
    mx_bid b = bid(3, 1, 100);
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    /* a replace that crosses trades at once, after its REPLACED event */
    mx_bid c = bid(4, 2, 90);
    mx_submit_bid(e, NOW, &c);
    mt_log_clear(&log);
    c.limit = 100;
    assert_int_equal(mx_replace_bid(e, NOW, &c), MX_OK);
    assert_int_equal(log.ev[0].kind, MX_EV_REPLACED);
    assert_int_equal(log.ev[1].kind, MX_EV_FILL);
    /* wrong side, wrong owner, unknown id */
    mx_bid x = bid(1, 1, 100);
    assert_int_equal(mx_replace_bid(e, NOW, &x), MX_R_WRONG_SIDE);
    a2.owner = 12345;
    assert_int_equal(mx_replace_ask(e, NOW, &a2), MX_R_OWNER_MISMATCH);
    mx_ask y = ask(77, 1, 100);
    assert_int_equal(mx_replace_ask(e, NOW, &y), MX_R_UNKNOWN_ID);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- self-trade prevention ------------------------------------------------------------------ */

/* Book: ask 1 (owner 5) at 100, ask 2 (owner 6) at 101; owner 5 bids for 2 at 101. */
static mx_engine *stp_book(mt_log *log, mx_stp stp)
{
    mx_engine *e = engine(log, 1, stp);
    mx_ask a1 = mt_ask(1, 5, 0, 1, MX_FP16, 1, 100), a2 = mt_ask(2, 6, 0, 1, MX_FP16, 1, 101);
    mx_submit_ask(e, NOW, &a1);
    mx_submit_ask(e, NOW, &a2);
    mt_log_clear(log);
    mx_bid b = mt_bid(3, 5, MX_FP16, 0, 2, 101);
    mx_submit_bid(e, NOW, &b);
    return e;
}

static void test_stp_cancel_newest(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = stp_book(&log, MX_STP_CANCEL_NEWEST);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 0);
    assert_int_equal(log.ev[1].kind, MX_EV_CANCELLED);
    assert_int_equal(log.ev[1].id, 3);
    assert_int_equal(log.ev[1].reason, MX_R_STP);
    assert_int_equal(mx_resting(e), 2);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_stp_cancel_oldest(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = stp_book(&log, MX_STP_CANCEL_OLDEST);
    assert_int_equal(log.ev[1].kind, MX_EV_CANCELLED);
    assert_int_equal(log.ev[1].id, 1);
    assert_int_equal(log.ev[1].reason, MX_R_STP);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    assert_int_equal(remaining_of(e, 3), 1); /* rests with the rest */
    assert_int_equal(remaining_of(e, 1), -1);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_stp_skip(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = stp_book(&log, MX_STP_SKIP);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 1);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    assert_int_equal(mt_log_count(&log, MX_EV_CANCELLED), 0);
    assert_int_equal(remaining_of(e, 1), 1); /* own ask left alone, crossed */
    assert_int_equal(remaining_of(e, 3), 1);
    assert_true(mx_engine_check(e));
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- several books -------------------------------------------------------------------------- */

static void test_multi_region_bid(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 4, MX_STP_CANCEL_NEWEST);
    mx_ask a0 = mt_ask(1, 7, 0, 1, MX_FP16, 1, 105);
    mx_ask a2 = mt_ask(2, 7, 2, 1, MX_FP16, 1, 100);
    mx_ask a3 = mt_ask(3, 7, 3, 1, MX_FP16, 1, 90); /* region not accepted */
    mx_ask a2b = mt_ask(4, 7, 2, 1, MX_FP16, 1, 105);
    mx_submit_ask(e, NOW, &a0);
    mx_submit_ask(e, NOW, &a2);
    mx_submit_ask(e, NOW, &a3);
    mx_submit_ask(e, NOW, &a2b);
    mt_log_clear(&log);
    mx_bid b = mt_bid(10, 8, MX_FP16, 0, 4, 110);
    b.regions = (1u << 0) | (1u << 2);
    mx_submit_bid(e, NOW, &b);
    /* 100 in region 2, then the two at 105 by arrival: region 0's (id 1) before id 4 */
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 3);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    assert_int_equal(fill(&log, 0)->region, 2);
    assert_int_equal(fill(&log, 1)->maker_id, 1);
    assert_int_equal(fill(&log, 2)->maker_id, 4);
    /* the rest (1 device) rests in both regions, sharing its remaining */
    mx_level_info L0, L2;
    assert_true(mx_best(e, MX_FP16, 0, MX_BID, &L0));
    assert_true(mx_best(e, MX_FP16, 2, MX_BID, &L2));
    assert_int_equal(L0.devices, 1);
    assert_int_equal(L2.devices, 1);
    assert_false(mx_best(e, MX_FP16, 1, MX_BID, &L0));
    /* a fill in region 2 is seen in region 0 */
    mx_ask a = mt_ask(5, 7, 2, 1, MX_FP16, 1, 110);
    mx_submit_ask(e, NOW, &a);
    assert_false(mx_best(e, MX_FP16, 0, MX_BID, &L0));
    assert_false(mx_best(e, MX_FP16, 2, MX_BID, &L2));
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_multi_precision_ask_normalised_price(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    /* FP16 bid pays 100/PFLOPS-h, BF16 bid 90/PFLOPS-h */
    mx_bid b16 = mt_bid(1, 8, MX_FP16, 0, 1, 100), bbf = mt_bid(2, 8, MX_BF16, 0, 1, 90);
    mx_submit_bid(e, NOW, &b16);
    mx_submit_bid(e, NOW, &bbf);
    mt_log_clear(&log);
    /* device: 1000 TFLOPS FP16, 1200 TFLOPS BF16: 100 x 1000 < 90 x 1200, so BF16 first */
    mx_ask a = mt_ask(3, 7, 0, 3, MX_FP16, 1000, 80);
    mt_ask_price(&a, MX_BF16, 1200, 80);
    mx_submit_ask(e, NOW, &a);
    assert_int_equal(mt_log_count(&log, MX_EV_FILL), 2);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    assert_int_equal(fill(&log, 0)->precision, MX_BF16);
    assert_int_equal(fill(&log, 0)->price, 90);
    assert_int_equal(fill(&log, 0)->tflops, 1200);
    assert_int_equal(fill(&log, 1)->maker_id, 1);
    assert_int_equal(fill(&log, 1)->price, 100);
    assert_int_equal(fill(&log, 1)->tflops, 1000);
    /* the last device rests in both books */
    mx_level_info L;
    assert_true(mx_best(e, MX_FP16, 0, MX_ASK, &L));
    assert_int_equal(L.devices, 1);
    assert_int_equal(L.tflops, 1000);
    assert_true(mx_best(e, MX_BF16, 0, MX_ASK, &L));
    assert_int_equal(L.tflops, 1200);
    /* a bid in one book takes it from both */
    mx_bid c = mt_bid(4, 8, MX_BF16, 0, 1, 80);
    mx_submit_bid(e, NOW, &c);
    assert_false(mx_best(e, MX_FP16, 0, MX_ASK, &L));
    assert_false(mx_best(e, MX_BF16, 0, MX_ASK, &L));
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_normalised_price_tie_by_sequence(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_bid late = mt_bid(1, 8, MX_FP16, 0, 1, 100), early = mt_bid(2, 8, MX_BF16, 0, 1, 50);
    mx_submit_bid(e, NOW, &early); /* BF16 bid arrives first */
    mx_submit_bid(e, NOW, &late);
    mt_log_clear(&log);
    mx_ask a = mt_ask(3, 7, 0, 1, MX_FP16, 1000, 10);
    mt_ask_price(&a, MX_BF16, 2000, 10); /* 100 x 1000 == 50 x 2000 */
    mx_submit_ask(e, NOW, &a);
    assert_int_equal(fill(&log, 0)->maker_id, 2);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- validation, clock, limits -------------------------------------------------------------- */

static void test_validation(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 2, MX_STP_CANCEL_NEWEST);
    mx_bid b;
#define BID_CASE(stmt, want)                                                                       \
    do {                                                                                           \
        b = bid(50, 2, 100);                                                                       \
        stmt;                                                                                      \
        mt_log_clear(&log);                                                                        \
        assert_int_equal(mx_submit_bid(e, NOW, &b), want);                                         \
        assert_int_equal(log.n, 1);                                                                \
        assert_int_equal(log.ev[0].kind, MX_EV_REJECTED);                                          \
        assert_int_equal(log.ev[0].reason, want);                                                  \
    } while (0)
    BID_CASE(b.id = 0, MX_R_BAD_ID);
    BID_CASE(b.precision = MX_NPREC, MX_R_BAD_PRECISION);
    BID_CASE(b.regions = 0, MX_R_BAD_REGION);
    BID_CASE(b.regions = 4, MX_R_BAD_REGION);
    BID_CASE(b.quantity = 0, MX_R_BAD_QUANTITY);
    BID_CASE(b.qty_kind = 2, MX_R_BAD_QUANTITY);
    BID_CASE(b.quantity = MX_MAX_DEVICES + 1, MX_R_BAD_QUANTITY);
    BID_CASE(b.limit = -1, MX_R_BAD_PRICE);
    BID_CASE(b.hours = 0, MX_R_BAD_HOURS);
    BID_CASE(b.hours = MX_MAX_HOURS + 1, MX_R_BAD_HOURS);
    BID_CASE(b.tif = 4, MX_R_BAD_TIF);
    BID_CASE((b.tif = MX_GTD, b.expiry = NOW), MX_R_BAD_EXPIRY);
    BID_CASE(b.start_latest = NOW - 1, MX_R_BAD_WINDOW);
    BID_CASE((b.start_earliest = NOW + 10, b.start_latest = NOW + 5), MX_R_BAD_WINDOW);
    BID_CASE(b.start_earliest = -1, MX_R_BAD_WINDOW);
    BID_CASE(b.n_allow = MX_MAX_ALLOW + 1, MX_R_BAD_CONSTRAINT);
    BID_CASE((b.n_allow = 1, b.allow[0].vendor = 0), MX_R_BAD_CONSTRAINT);
    BID_CASE(b.min_green_permille = 1001, MX_R_BAD_CONSTRAINT);
    BID_CASE(b.min_tflops = mx_max_tflops(MX_FP16) + 1, MX_R_BAD_CONSTRAINT);
    /* limit x max TFLOPS x devices x hours must fit in int64 */
    BID_CASE((b.limit = INT64_C(1) << 30, b.quantity = INT64_C(1) << 20, b.hours = 1000),
             MX_R_OVERFLOW);
    BID_CASE(
        (b.qty_kind = MX_QTY_TFLOPS, b.limit = INT64_C(1) << 40, b.quantity = INT64_C(1) << 30),
        MX_R_OVERFLOW);
    mx_bid ok = bid(50, 2, 100);
    assert_int_equal(mx_submit_bid(e, NOW, &ok), MX_OK);
    BID_CASE((void)0, MX_R_DUPLICATE_ID);

    mx_ask a;
#define ASK_CASE(stmt, want)                                                                       \
    do {                                                                                           \
        a = ask(60, 2, 100);                                                                       \
        stmt;                                                                                      \
        mt_log_clear(&log);                                                                        \
        assert_int_equal(mx_submit_ask(e, NOW, &a), want);                                         \
        assert_int_equal(log.ev[0].kind, MX_EV_REJECTED);                                          \
        assert_int_equal(log.ev[0].reason, want);                                                  \
    } while (0)
    ASK_CASE(a.id = 0, MX_R_BAD_ID);
    ASK_CASE(a.priced = 0, MX_R_BAD_PRECISION);
    ASK_CASE(a.region = 2, MX_R_BAD_REGION);
    ASK_CASE(a.devices = 0, MX_R_BAD_QUANTITY);
    ASK_CASE(a.tflops[MX_FP16] = 0, MX_R_BAD_QUANTITY);
    ASK_CASE(a.tflops[MX_FP16] = mx_max_tflops(MX_FP16) + 1, MX_R_BAD_QUANTITY);
    ASK_CASE(a.price[MX_FP16] = 0, MX_R_BAD_PRICE);
    ASK_CASE((a.min_hours = 5, a.max_hours = 4), MX_R_BAD_HOURS);
    ASK_CASE(a.tif = 7, MX_R_BAD_TIF);
    ASK_CASE((a.tif = MX_GTD, a.expiry = 0), MX_R_BAD_EXPIRY);
    ASK_CASE(a.available_until = NOW, MX_R_BAD_WINDOW);
    ASK_CASE((a.available_from = NOW + 100, a.available_until = NOW + 50), MX_R_BAD_WINDOW);
    ASK_CASE(a.green_permille = 2000, MX_R_BAD_CONSTRAINT);
    ASK_CASE(a.id = 50, MX_R_DUPLICATE_ID); /* ids are shared by bids and asks */

    /* a bad clock and an unknown command change nothing */
    uint64_t h = mx_state_hash(e);
    mt_log_clear(&log);
    assert_int_equal(mx_submit_bid(e, -1, &ok), MX_R_BAD_TIME);
    assert_int_equal(mx_expire(e, MX_MAX_TIME + 1), MX_R_BAD_TIME);
    mx_command c;
    memset(&c, 0, sizeof c);
    c.kind = 99;
    assert_int_equal(mx_apply(e, &c), MX_R_BAD_COMMAND);
    assert_int_equal(log.n, 3);
    assert_int_equal(mx_state_hash(e), h);
    assert_int_equal(mx_now(e), NOW);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_clock_never_goes_back(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    mx_bid b = bid(1, 1, 100);
    b.tif = MX_GTD;
    b.expiry = NOW + 100;
    mx_submit_bid(e, NOW + 50, &b);
    mt_log_clear(&log);
    mx_bid c = bid(2, 1, 100);
    mx_submit_bid(e, NOW, &c); /* late clock: runs at NOW + 50 */
    assert_int_equal(log.ev[0].now, NOW + 50);
    assert_int_equal(mx_now(e), NOW + 50);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_max_orders(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = 1;
    cfg.max_orders = 2;
    cfg.sink = mt_log_sink;
    cfg.sink_ctx = &log;
    mx_engine *e = mx_engine_create(&cfg);
    mx_bid b1 = bid(1, 1, 90), b2 = bid(2, 1, 91), b3 = bid(3, 1, 92);
    assert_int_equal(mx_submit_bid(e, NOW, &b1), MX_OK);
    assert_int_equal(mx_submit_bid(e, NOW, &b2), MX_OK);
    assert_int_equal(mx_submit_bid(e, NOW, &b3), MX_R_FULL);
    b2.limit = 95; /* replace does not add an order */
    assert_int_equal(mx_replace_bid(e, NOW, &b2), MX_OK);
    mx_cancel(e, NOW, 1);
    assert_int_equal(mx_submit_bid(e, NOW, &b3), MX_OK);
    mx_engine_free(e);
    mt_log_free(&log);
}

static void test_bad_config(void **state)
{
    (void)state;
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_null(mx_engine_create(NULL));
    assert_null(mx_engine_create(&cfg)); /* no regions */
    cfg.regions = MX_MAX_REGIONS + 1;
    assert_null(mx_engine_create(&cfg));
    cfg.regions = 1;
    cfg.stp = (mx_stp)7;
    assert_null(mx_engine_create(&cfg));
    cfg.stp = MX_STP_SKIP;
    mx_engine *e = mx_engine_create(&cfg); /* no sink is fine */
    assert_non_null(e);
    mx_bid b = bid(1, 1, 1);
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    mx_engine_free(e);
    mx_engine_free(NULL);
}

/* ---- depth ---------------------------------------------------------------------------------- */

static void test_depth(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    int64_t prices[] = { 103, 101, 101, 102, 105, 101 };
    for (uint64_t i = 0; i < 6; i++) {
        mx_ask a = mt_ask(i + 1, 7, 0, (int64_t)i + 1, MX_FP16, 10, prices[i]);
        mx_submit_ask(e, NOW, &a);
    }
    mx_level_info L[8];
    size_t n = mx_depth(e, MX_FP16, 0, MX_ASK, L, 3);
    assert_int_equal(n, 3);
    assert_int_equal(L[0].price, 101);
    assert_int_equal(L[0].orders, 3);
    assert_int_equal(L[0].devices, 2 + 3 + 6);
    assert_int_equal(L[0].tflops, 10 * (2 + 3 + 6));
    assert_int_equal(L[1].price, 102);
    assert_int_equal(L[2].price, 103);
    assert_int_equal(mx_depth(e, MX_FP16, 0, MX_ASK, L, 8), 4);
    assert_int_equal(L[3].price, 105);
    assert_int_equal(mx_depth(e, MX_FP16, 1, MX_ASK, L, 8), 0); /* no such region */
    assert_int_equal(mx_depth(e, MX_NPREC, 0, MX_ASK, L, 8), 0);
    /* bids: best is highest */
    for (uint64_t i = 0; i < 3; i++) {
        mx_bid b = mt_bid(10 + i, 8, MX_FP16, 0, 1, 90 + (int64_t)i * 3);
        mx_submit_bid(e, NOW, &b);
    }
    assert_int_equal(mx_depth(e, MX_FP16, 0, MX_BID, L, 8), 3);
    assert_int_equal(L[0].price, 96);
    assert_int_equal(L[2].price, 90);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- state hash ----------------------------------------------------------------------------- */

static void script(mx_engine *e)
{
    for (uint64_t i = 1; i <= 40; i++) {
        mx_ask a = mt_ask(i, i % 3, 0, (int64_t)(i % 4) + 1, MX_FP16, 100, 100 + (int64_t)(i % 7));
        mx_bid b = mt_bid(1000 + i, i % 5, MX_FP16, 0, (int64_t)(i % 3) + 1, 98 + (int64_t)(i % 6));
        mx_submit_ask(e, NOW + (int64_t)i, &a);
        mx_submit_bid(e, NOW + (int64_t)i, &b);
        if (i % 5 == 0)
            mx_cancel(e, NOW + (int64_t)i, i - 2);
    }
}

static void test_state_hash(void **state)
{
    (void)state;
    mt_log l1 = { 0 }, l2 = { 0 };
    mx_engine *e1 = engine(&l1, 1, MX_STP_CANCEL_NEWEST);
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = 1;
    cfg.sink = mt_log_sink;
    cfg.sink_ctx = &l2;
    cfg.expected_orders = 1; /* other pool sizes, other layout */
    mx_engine *e2 = mx_engine_create(&cfg);
    script(e1);
    script(e2);
    assert_true(mx_resting(e1) > 10);
    assert_int_equal(mx_state_hash(e1), mx_state_hash(e2));
    /* same events, too */
    assert_int_equal(l1.n, l2.n);
    for (size_t i = 0; i < l1.n; i++)
        assert_true(mt_event_equal(&l1.ev[i], &l2.ev[i]));
    /* a different remaining quantity changes it */
    uint64_t h = mx_state_hash(e1);
    mx_order_info info;
    uint64_t some = 0;
    for (uint64_t id = 1; id <= 40 && some == 0; id++)
        if (mx_lookup(e1, id, &info) && info.remaining > 1)
            some = id;
    assert_true(some != 0);
    mx_reduce(e1, NOW + 100, some, 1);
    assert_true(mx_state_hash(e1) != h);
    /* a different priority (replace with the same spec) changes it */
    mx_reduce(e2, NOW + 100, some, 1);
    assert_int_equal(mx_state_hash(e1), mx_state_hash(e2));
    mx_ask a;
    assert_true(mx_get_ask(e2, some, &a));
    assert_int_equal(a.devices, 1);
    mx_replace_ask(e2, NOW + 100, &a);
    assert_true(mx_state_hash(e1) != mx_state_hash(e2));
    mx_engine_free(e1);
    mx_engine_free(e2);
    mt_log_free(&l1);
    mt_log_free(&l2);
}

/*
 * The maintained state hash. hash_script() is a sequence of commands that makes every kind of
 * change to resting orders: they rest (plain, with constraints, in several books, with an
 * expiry), are filled partly and completely (as makers, and as a re-matched gang bid), are
 * reduced, replaced, cancelled by their owner and by self-trade prevention, and expire (GTD and
 * an ask's window); FOK and IOC takers come and go. Ten fillers first, so that some orders'
 * hashes are computed (and cached) and others still queued when they change.
 */
static size_t hash_script(mx_command *c)
{
    size_t n = 0;
    int64_t t = NOW;
#define ADD_BID(b) (c[n++] = (mx_command){ .kind = MX_CMD_BID, .now = ++t, .bid = (b) })
#define ADD_ASK(a) (c[n++] = (mx_command){ .kind = MX_CMD_ASK, .now = ++t, .ask = (a) })
    for (uint64_t i = 1; i <= 10; i++) /* resting far below every ask */
        ADD_BID(mt_bid(1000 + i, 500 + i, MX_FP16, 0, (int64_t)i, 10 + (int64_t)i));
    ADD_ASK(mt_ask(1, 101, 0, 10, MX_FP16, 100, 100));
    mx_ask a2 = mt_ask(2, 102, 0, 8, MX_FP16, 200, 110);
    mt_ask_price(&a2, MX_BF16, 400, 105);
    a2.memory_gb = 80;
    a2.vendor = 1;
    a2.model = 2;
    a2.green_permille = 300;
    a2.tif = MX_GTD;
    a2.expiry = NOW + 100000;
    ADD_ASK(a2);
    mx_ask a3 = mt_ask(3, 103, 1, 5, MX_FP16, 100, 120);
    a3.available_until = NOW + 7200;
    ADD_ASK(a3);
    ADD_BID(mt_bid(20, 120, MX_FP16, 0, 3, 100)); /* ask 1: 10 -> 7 */
    mx_bid b21 = mt_bid(21, 121, MX_FP16, 0, 450, 115);
    b21.qty_kind = MX_QTY_TFLOPS; /* 450 TFLOPS: 5 devices of ask 1 (7 -> 2) */
    b21.regions |= 1u << 1;
    ADD_BID(b21);
    c[n++] = (mx_command){ .kind = MX_CMD_REDUCE, .now = ++t, .id = 2, .quantity = 6 };
    c[n++] = (mx_command){ .kind = MX_CMD_CANCEL, .now = ++t, .id = 1003 };
    mx_ask a1 = mt_ask(1, 101, 0, 4, MX_FP16, 100, 99);
    c[n++] = (mx_command){ .kind = MX_CMD_REPLACE_ASK, .now = ++t, .ask = a1 };
    mx_bid b22 = mt_bid(22, 122, MX_FP16, 0, 2, 120);
    b22.min_memory_gb = 80; /* not ask 1: takes 2 of ask 2 (6 -> 4) */
    b22.n_allow = 1;
    b22.allow[0] = (mx_model_ref){ 1, 0 };
    ADD_BID(b22);
    mx_bid b28 = mt_bid(28, 128, MX_BF16, 0, 3, 50);
    b28.tif = MX_GTD;
    b28.expiry = NOW + 500;
    b28.regions = 0xf;
    ADD_BID(b28); /* rests in four books until it expires */
    mx_bid b23 = mt_bid(23, 123, MX_FP16, 0, 10, 105);
    b23.min_devices_per_provider = 4; /* takes ask 1 (4), rests with 6 */
    ADD_BID(b23);
    ADD_ASK(mt_ask(4, 104, 0, 3, MX_FP16, 100, 100)); /* too small for the gang: rests */
    /* fills the gang bid (6 -> 2), which is then re-matched and takes 2 of ask 4 (3 -> 1) */
    ADD_ASK(mt_ask(5, 105, 0, 4, MX_FP16, 100, 104));
    mx_bid b24 = mt_bid(24, 124, MX_FP16, 0, 5, 200);
    b24.tif = MX_IOC; /* ask 4's last device, then ask 2's 4: both done */
    ADD_BID(b24);
    ADD_ASK(a2); /* again: 8 devices */
    mx_bid b25 = mt_bid(25, 125, MX_FP16, 0, 100, 200);
    b25.tif = MX_FOK; /* cannot fill: nothing changes */
    ADD_BID(b25);
    mx_bid b26 = mt_bid(26, 126, MX_BF16, 0, 2, 106);
    b26.tif = MX_FOK; /* BF16 book: 2 of ask 2 (8 -> 6) */
    ADD_BID(b26);
    mx_ask a6 = mt_ask(6, 106, 0, 6, MX_FP16, 100, 300);
    mt_ask_price(&a6, MX_BF16, 200, 150);
    a6.vendor = 2;
    ADD_ASK(a6);
    c[n++] = (mx_command){ .kind = MX_CMD_REDUCE, .now = ++t, .id = 6, .quantity = 5 };
    ADD_BID(mt_bid(29, 102, MX_FP16, 0, 1, 115)); /* ask 2's owner: STP cancels ask 2 */
    mx_bid b30 = mt_bid(30, 130, MX_BF16, 0, 2, 150);
    b30.start_latest = NOW + 3 * 3600; /* takes 2 of ask 6 in BF16 (5 -> 3) */
    ADD_BID(b30);
    mx_bid b31 = mt_bid(31, 131, MX_FP8, 0, 4, 40);
    b31.regions = 0x6;
    b31.start_latest = NOW + 3600; /* rests; its start window closes */
    ADD_BID(b31);
    c[n++] = (mx_command){ .kind = MX_CMD_REDUCE, .now = ++t, .id = 1007, .quantity = 2 };
    mx_bid b28r = b28;
    b28r.limit = 60;
    b28r.quantity = 7;
    c[n++] = (mx_command){ .kind = MX_CMD_REPLACE_BID, .now = ++t, .bid = b28r };
    c[n++] = (mx_command){ .kind = MX_CMD_EXPIRE, .now = NOW + 600 };  /* bid 28 */
    c[n++] = (mx_command){ .kind = MX_CMD_EXPIRE, .now = NOW + 3601 }; /* bid 31 */
    c[n++] = (mx_command){ .kind = MX_CMD_EXPIRE, .now = NOW + 7200 }; /* ask 3's window */
    t = NOW + 7200;
    c[n++] = (mx_command){ .kind = MX_CMD_CANCEL, .now = ++t, .id = 6 };
    for (uint64_t i = 1; i <= 10; i++)
        if (i != 3)
            c[n++] = (mx_command){ .kind = MX_CMD_CANCEL, .now = ++t, .id = 1000 + i };
#undef ADD_BID
#undef ADD_ASK
    return n;
}

/* The state hash after each command of hash_script(), as the engine computed it before the sum
 * was maintained (a full walk over the resting orders, at the commit before that change): the
 * definition must never change, since the server stores these hashes. */
static const uint64_t hash_script_golden[] = {
    UINT64_C(0xb4c03682155a7623), UINT64_C(0x08f3521d97b49860), UINT64_C(0x5a8ea6f78192ad38),
    UINT64_C(0x3075518109a36c47), UINT64_C(0xdb7e4e3524d88485), UINT64_C(0xbc45922ac0208ccb),
    UINT64_C(0xc0e96e0fe91fec03), UINT64_C(0x7297e2da54150c10), UINT64_C(0x0a5ff5258f46be9f),
    UINT64_C(0xc532d428cf4cd46f), UINT64_C(0x63e46418f6872579), UINT64_C(0xd16463e8c094e85a),
    UINT64_C(0x483bfc6fade712ae), UINT64_C(0x9bc3da5571936955), UINT64_C(0xd8460eb946beb2d0),
    UINT64_C(0xd001c7d112ed9365), UINT64_C(0xed44835081e8ac56), UINT64_C(0x11f85684f5de3927),
    UINT64_C(0x1aacd484ddeb05de), UINT64_C(0xd9ecdddd01faa3d6), UINT64_C(0x0ea66782a5638713),
    UINT64_C(0x5ed30cc102e26b4e), UINT64_C(0x600bd1ce05e04b62), UINT64_C(0xd6e055ae1e45ed7c),
    UINT64_C(0xe58bdc31efad0032), UINT64_C(0xe58bdc31efad0032), UINT64_C(0x1c69040822736438),
    UINT64_C(0x3afed6d24ffdf523), UINT64_C(0xc54e34960cbdbd47), UINT64_C(0xa2d5b38f88f7a669),
    UINT64_C(0xac9da4dfe335a4ab), UINT64_C(0xa41cb412e3eeebe0), UINT64_C(0xacbf553e6ba70243),
    UINT64_C(0x79c77179df83f785), UINT64_C(0xd763a238f148b7af), UINT64_C(0xd264acc2679a11ea),
    UINT64_C(0x479f5985bfc475e7), UINT64_C(0x5f0c71ee0108253a), UINT64_C(0x2de29da897d77f7a),
    UINT64_C(0x9c36ce8c9ebf28e6), UINT64_C(0x2662eaf8725e7115), UINT64_C(0x37d4ad3b650bc5f6),
    UINT64_C(0xe63475ffc2480587), UINT64_C(0x7fe44368d024729f), UINT64_C(0x54974b90b583f258),
    UINT64_C(0x0f2278e9ddaf739e), UINT64_C(0xe59a53702f503145),
};

static void test_state_hash_maintained(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 4, MX_STP_CANCEL_OLDEST);
    mx_command cmds[64];
    size_t n = hash_script(cmds);
    assert_true(n <= sizeof cmds / sizeof cmds[0]);
    assert_int_equal(n, sizeof hash_script_golden / sizeof hash_script_golden[0]);
    assert_int_equal(mx_state_hash(e), mx_state_hash_full(e));
    uint64_t prev = mx_state_hash(e);
    size_t unchanged = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(mx_apply(e, &cmds[i]), MX_OK);
        uint64_t h = mx_state_hash(e);
        if (h != mx_state_hash_full(e) || h != hash_script_golden[i])
            fail_msg("command %zu: state hash %016" PRIx64 ", full %016" PRIx64
                     ", golden %016" PRIx64,
                     i, h, mx_state_hash_full(e), hash_script_golden[i]);
        unchanged += h == prev;
        prev = h;
    }
    assert_int_equal(unchanged, 1);     /* the FOK that could not fill */
    assert_int_equal(mx_resting(e), 1); /* bid 29, which STP let rest */
    /* every kind of change happened */
    assert_true(mt_log_count(&log, MX_EV_FILL) >= 9);
    assert_int_equal(mt_log_count(&log, MX_EV_EXPIRED), 3);
    assert_int_equal(mt_log_count(&log, MX_EV_REDUCED), 3);
    assert_int_equal(mt_log_count(&log, MX_EV_REPLACED), 2);
    size_t stp = 0, fok = 0, ioc = 0, rematch = 0;
    for (size_t i = 0; i < log.n; i++) {
        rematch += log.ev[i].kind == MX_EV_FILL && log.ev[i].taker_id == 23; /* resting taker */
        stp += log.ev[i].kind == MX_EV_CANCELLED && log.ev[i].reason == MX_R_STP;
        fok += log.ev[i].kind == MX_EV_CANCELLED && log.ev[i].reason == MX_R_FOK;
        ioc += log.ev[i].kind == MX_EV_CANCELLED && log.ev[i].reason == MX_R_IOC;
    }
    assert_int_equal(rematch, 2); /* its own fill of ask 1, then its re-match against ask 4 */
    assert_int_equal(stp, 1);
    assert_int_equal(fok, 1);
    assert_int_equal(ioc, 0);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* mx_hash_bid/ask and mx_hash_finish pinned to the values they had before the state hash was
 * maintained (computed by that version of the engine). */
static void test_order_hash_golden(void **state)
{
    (void)state;
    mx_bid b = mt_bid(7, 8, MX_BF16, 3, 5, 1234567);
    assert_int_equal(mx_hash_bid(&b, 5, 9), UINT64_C(0x8c712c1853b3d565));
    b.qty_kind = MX_QTY_TFLOPS;
    b.tif = MX_GTD;
    b.expiry = NOW + 60;
    b.regions = 0x8000000000000009u;
    b.start_earliest = NOW;
    b.start_latest = NOW + 3600;
    b.min_memory_gb = 80;
    b.min_tflops = 100;
    b.max_tflops = 2000;
    b.min_devices_per_provider = 4;
    b.min_green_permille = 250;
    b.n_allow = 3;
    b.allow[0] = (mx_model_ref){ 1, 0 };
    b.allow[1] = (mx_model_ref){ 2, 7 };
    b.allow[2] = (mx_model_ref){ 0xffffffffu, 0xfffffffeu };
    b.allow[5] = (mx_model_ref){ 9, 9 }; /* unused: not hashed */
    assert_int_equal(mx_hash_bid(&b, 123456789, UINT64_C(0xffffffffffff)),
                     UINT64_C(0x8b4a9c727e748830));
    mx_ask a = mt_ask(9, 10, 2, 64, MX_FP16, 990, 15000000);
    assert_int_equal(mx_hash_ask(&a, 64, 1), UINT64_C(0x1c29f2df1fb294ed));
    for (unsigned p = 0; p < MX_NPREC; p++)
        mt_ask_price(&a, p, 100 + p, 1000 + p);
    a.price[MX_FP8] = 0; /* unpriced: ignored */
    a.priced &= (uint8_t) ~(1u << MX_FP8);
    a.available_from = NOW;
    a.available_until = NOW + 86400;
    a.tif = MX_GTD;
    a.expiry = NOW + 3600;
    a.memory_gb = 141;
    a.vendor = 3;
    a.model = 4;
    a.interconnect = 5;
    a.green_permille = 1000;
    a.min_hours = 2;
    a.max_hours = 100;
    assert_int_equal(mx_hash_ask(&a, 1, 42), UINT64_C(0xa017f649ff14985a));
    assert_int_equal(mx_hash_finish(0, 0), UINT64_C(0x40dc4994f7769456));
}

static void test_get_spec(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 4, MX_STP_CANCEL_NEWEST);
    mx_bid b = mt_bid(1, 8, MX_BF16, 1, 5, 100);
    b.regions |= 1u << 3;
    b.min_memory_gb = 80;
    b.n_allow = 1;
    b.allow[0] = (mx_model_ref){ 2, 0 };
    b.allow[1] = (mx_model_ref){ 9, 9 }; /* unused entry: not part of the spec */
    b.expiry = 12345;                    /* not GTD: ignored */
    mx_submit_bid(e, NOW, &b);
    mx_bid got;
    assert_true(mx_get_bid(e, 1, &got));
    assert_int_equal(got.min_memory_gb, 80);
    assert_int_equal(got.regions, b.regions);
    assert_int_equal(got.allow[1].vendor, 0);
    assert_int_equal(got.expiry, 0);
    assert_false(mx_get_ask(e, 1, &(mx_ask){ 0 }));
    mx_ask a = mt_ask(2, 7, 2, 3, MX_FP8, 2000, 50);
    mx_submit_ask(e, NOW, &a);
    mx_ask ga;
    assert_true(mx_get_ask(e, 2, &ga));
    assert_int_equal(ga.devices, 3);
    assert_int_equal(ga.tflops[MX_FP8], 2000);
    assert_int_equal(ga.price[MX_FP8], 50);
    assert_int_equal(mx_hash_ask(&ga, 3, 2), mx_hash_ask(&a, 3, 2));
    mx_engine_free(e);
    mt_log_free(&log);
}

/* ---- memory --------------------------------------------------------------------------------- */

typedef struct counting {
    long allocations; /* live blocks */
    long budget;      /* successful (re)allocations left; < 0 = unlimited */
} counting;

static void *counting_realloc(void *ctx, void *ptr, size_t size)
{
    counting *c = ctx;
    if (c->budget == 0)
        return NULL;
    if (c->budget > 0)
        c->budget--;
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL)
        c->allocations++;
    return p;
}

static void counting_free(void *ctx, void *ptr)
{
    counting *c = ctx;
    if (ptr != NULL)
        c->allocations--;
    free(ptr);
}

static void test_allocator_hooks(void **state)
{
    (void)state;
    counting c = { 0, -1 };
    mx_allocator alloc = { counting_realloc, counting_free, &c };
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = 2;
    cfg.alloc = &alloc;
    cfg.expected_orders = 4;
    mx_engine *e = mx_engine_create(&cfg);
    assert_non_null(e);
    assert_true(c.allocations > 0);
    for (uint64_t i = 1; i <= 500; i++) {
        mx_bid b = mt_bid(i, i, MX_FP16, i % 2, 1, (int64_t)i);
        assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    }
    assert_true(mx_memory_bytes(e) > 500 * 64);
    mx_engine_free(e);
    assert_int_equal(c.allocations, 0);

    /* creation fails cleanly at every allocation */
    for (long budget = 0; budget < 12; budget++) {
        c = (counting){ 0, budget };
        e = mx_engine_create(&cfg);
        mx_engine_free(e);
        assert_int_equal(c.allocations, 0);
    }

    /* out of memory mid-life: commands are rejected and change nothing */
    mt_log log = { 0 };
    c = (counting){ 0, -1 };
    cfg.sink = mt_log_sink;
    cfg.sink_ctx = &log;
    e = mx_engine_create(&cfg);
    uint64_t id = 1;
    c.budget = 0;
    mx_reason r = MX_OK;
    uint64_t h = 0;
    for (; id < 1000 && r == MX_OK; id++) {
        h = mx_state_hash(e);
        mx_bid b = mt_bid(id, id, MX_FP16, 0, 1, (int64_t)id);
        r = mx_submit_bid(e, NOW, &b);
    }
    assert_int_equal(r, MX_R_NO_MEMORY);
    assert_int_equal(mx_state_hash(e), h);
    assert_true(mx_engine_check(e));
    c.budget = -1;
    mx_bid b = mt_bid(id, id, MX_FP16, 0, 1, 1);
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    mx_engine_free(e);
    assert_int_equal(c.allocations, 0);
    mt_log_free(&log);
}

static void test_two_engines(void **state)
{
    (void)state;
    mt_log l1 = { 0 }, l2 = { 0 };
    mx_engine *e1 = engine(&l1, 1, MX_STP_CANCEL_NEWEST);
    mx_engine *e2 = engine(&l2, 1, MX_STP_CANCEL_NEWEST);
    mx_bid b = bid(1, 1, 100);
    mx_submit_bid(e1, NOW, &b);
    assert_int_equal(mx_resting(e1), 1);
    assert_int_equal(mx_resting(e2), 0);
    assert_int_equal(l2.n, 0);
    mx_ask a = ask(1, 1, 100); /* same id, other engine */
    mx_submit_ask(e2, NOW, &a);
    assert_int_equal(mx_resting(e2), 1);
    assert_int_equal(mt_log_count(&l1, MX_EV_FILL), 0);
    mx_engine_free(e1);
    mx_engine_free(e2);
    mt_log_free(&l1);
    mt_log_free(&l2);
}

/* Many levels and cancels: the level tree stays balanced and correct (check build verifies). */
static void test_many_levels(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, 1, MX_STP_CANCEL_NEWEST);
    uint64_t s = 7;
    for (uint64_t id = 1; id <= 3000; id++) {
        mx_ask a = ask(id, 1, 1000 + mt_range(&s, 0, 2000));
        mx_submit_ask(e, NOW, &a);
        if (id % 3 == 0)
            mx_cancel(e, NOW, (uint64_t)mt_range(&s, 1, (int64_t)id));
        mt_log_clear(&log);
    }
    mx_level_info L[4];
    assert_int_equal(mx_depth(e, MX_FP16, 0, MX_ASK, L, 4), 4);
    assert_true(L[0].price < L[1].price && L[1].price < L[2].price);
    mx_bid b = bid(10000, 100000, 3001);
    b.tif = MX_IOC;
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mx_resting(e), 0);
    mx_engine_free(e);
    mt_log_free(&log);
}

/* The widest orders: a bid in all 64 regions, an ask in all 8 precisions. */
static void test_widest_orders(void **state)
{
    (void)state;
    mt_log log = { 0 };
    mx_engine *e = engine(&log, MX_MAX_REGIONS, MX_STP_CANCEL_NEWEST);
    mx_bid b = mt_bid(1, 8, MX_FP8, 0, 5, 100);
    b.regions = UINT64_MAX;
    b.tif = MX_GTD; /* an extension and an expiry as well */
    b.expiry = NOW + 60;
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    mx_level_info L;
    for (unsigned r = 0; r < MX_MAX_REGIONS; r++)
        assert_true(mx_best(e, MX_FP8, r, MX_BID, &L));
    mx_ask a = mt_ask(2, 7, 63, 2, MX_FP8, 1000, 90);
    for (unsigned p = 0; p < MX_NPREC; p++)
        mt_ask_price(&a, p, 100 + p, 90 + p);
    mt_log_clear(&log);
    assert_int_equal(mx_submit_ask(e, NOW, &a), MX_OK);
    assert_int_equal(fill(&log, 0)->region, 63);
    assert_int_equal(fill(&log, 0)->precision, MX_FP8);
    assert_int_equal(fill(&log, 0)->devices, 2);
    assert_int_equal(fill(&log, 0)->price, 100);
    assert_true(mx_best(e, MX_FP8, 0, MX_BID, &L));
    assert_int_equal(L.devices, 3);
    /* an ask resting in all 8 books of its region */
    mx_ask c = mt_ask(3, 7, 5, 4, MX_FP64, 50, 1000);
    for (unsigned p = 1; p < MX_NPREC; p++)
        mt_ask_price(&c, p, 100 + p, 1000 + p);
    mx_submit_ask(e, NOW, &c);
    for (unsigned p = 0; p < MX_NPREC; p++) {
        assert_true(mx_best(e, p, 5, MX_ASK, &L));
        assert_int_equal(L.devices, 4);
    }
    mx_explanation x;
    assert_int_equal(mx_explain(e, 3, &x), MX_OK);
    assert_int_equal(x.examined, 1); /* the FP8 bid, which rests in region 5 too */
    mt_log_clear(&log);
    mx_expire(e, NOW + 60);
    assert_int_equal(log.ev[0].kind, MX_EV_EXPIRED);
    assert_false(mx_best(e, MX_FP8, 17, MX_BID, &L));
    assert_int_equal(mx_cancel(e, NOW + 60, 3), MX_OK);
    for (unsigned p = 0; p < MX_NPREC; p++)
        assert_false(mx_best(e, p, 5, MX_ASK, &L));
    mx_engine_free(e);
    mt_log_free(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_and_rest),
        cmocka_unit_test(test_price_priority_and_resting_price),
        cmocka_unit_test(test_incoming_ask_trades_at_bid_price),
        cmocka_unit_test(test_time_priority),
        cmocka_unit_test(test_whole_devices_partial_fill),
        cmocka_unit_test(test_capacity_bid_ceil),
        cmocka_unit_test(test_ioc),
        cmocka_unit_test(test_fok),
        cmocka_unit_test(test_gtd_expiry_order),
        cmocka_unit_test(test_ask_window_expires),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_reduce_keeps_priority),
        cmocka_unit_test(test_replace_loses_priority),
        cmocka_unit_test(test_stp_cancel_newest),
        cmocka_unit_test(test_stp_cancel_oldest),
        cmocka_unit_test(test_stp_skip),
        cmocka_unit_test(test_multi_region_bid),
        cmocka_unit_test(test_multi_precision_ask_normalised_price),
        cmocka_unit_test(test_normalised_price_tie_by_sequence),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_clock_never_goes_back),
        cmocka_unit_test(test_max_orders),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_state_hash),
        cmocka_unit_test(test_state_hash_maintained),
        cmocka_unit_test(test_order_hash_golden),
        cmocka_unit_test(test_get_spec),
        cmocka_unit_test(test_allocator_hooks),
        cmocka_unit_test(test_two_engines),
        cmocka_unit_test(test_many_levels),
        cmocka_unit_test(test_widest_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
