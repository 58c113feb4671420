/*
 * test_matching_explain.c — explain(): for a resting order that does not trade, how many
 * counter-orders each constraint excludes and the price gap to the nearest otherwise-eligible
 * one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tests/support/matching_testkit.h"

#define NOW 1700000000

static mx_engine *engine(unsigned regions)
{
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = regions;
    mx_engine *e = mx_engine_create(&cfg);
    assert_non_null(e);
    return e;
}

static mx_ask listing(uint64_t id, uint64_t owner, unsigned region, int64_t price, uint32_t mem,
                      uint32_t vendor)
{
    mx_ask a = mt_ask(id, owner, region, 4, MX_BF16, 800, price);
    a.memory_gb = mem;
    a.vendor = vendor;
    a.model = 1;
    a.green_permille = 300;
    return a;
}

static void test_bid_explained(void **state)
{
    (void)state;
    mx_engine *e = engine(3);
    /* region 0: 40 GB (memory), vendor 2 (model), 80 GB vendor 1 at 130; region 1: own ask at
     * 120 (self), 80 GB vendor 1 at 125; region 2 (not accepted): 80 GB vendor 1 at 101 */
    mx_ask asks[] = {
        listing(1, 7, 0, 105, 40, 1), listing(2, 7, 0, 110, 80, 2), listing(3, 7, 0, 130, 80, 1),
        listing(4, 9, 1, 120, 80, 1), listing(5, 7, 1, 125, 80, 1), listing(6, 7, 2, 101, 80, 1),
        listing(7, 7, 1, 90, 24, 2),
    };
    for (size_t i = 0; i < sizeof asks / sizeof asks[0]; i++)
        assert_int_equal(mx_submit_ask(e, NOW, &asks[i]), MX_OK);
    mx_bid b = mt_bid(10, 9, MX_BF16, 0, 2, 100);
    b.regions = 3;
    b.min_memory_gb = 64;
    b.n_allow = 1;
    b.allow[0] = (mx_model_ref){ 1, 0 };
    assert_int_equal(mx_submit_bid(e, NOW, &b), MX_OK);
    assert_int_equal(mx_resting(e), 8);

    mx_explanation x;
    assert_int_equal(mx_explain(e, 10, &x), MX_OK);
    assert_int_equal(x.side, MX_BID);
    assert_int_equal(x.examined, 6);              /* regions 0 and 1 */
    assert_int_equal(x.excluded[MX_C_MEMORY], 2); /* ids 1 and 7 */
    assert_int_equal(x.excluded[MX_C_MODEL], 2);  /* ids 2 and 7 */
    assert_int_equal(x.excluded[MX_C_SELF], 1);   /* id 4 */
    assert_int_equal(x.excluded[MX_C_GREEN], 0);
    assert_int_equal(x.eligible, 2); /* ids 3 and 5 */
    assert_true(x.has_nearest);
    assert_int_equal(x.nearest_id, 5);
    assert_int_equal(x.price_gap, 25);
    assert_int_equal(x.nearest_precision, MX_BF16);
    assert_int_equal(x.nearest_region, 1);
    mx_engine_free(e);
}

static void test_ask_explained(void **state)
{
    (void)state;
    mx_engine *e = engine(1);
    mx_bid hot = mt_bid(1, 8, MX_BF16, 0, 1, 90);
    hot.min_green_permille = 900;
    mx_bid cool = mt_bid(2, 8, MX_BF16, 0, 1, 70);
    mx_bid fp8 = mt_bid(3, 8, MX_FP8, 0, 1, 40);
    mx_bid long_job = mt_bid(4, 8, MX_FP8, 0, 1, 45);
    long_job.hours = 100;
    mx_submit_bid(e, NOW, &hot);
    mx_submit_bid(e, NOW, &cool);
    mx_submit_bid(e, NOW, &fp8);
    mx_submit_bid(e, NOW, &long_job);
    mx_ask a = listing(5, 7, 0, 95, 80, 1);
    mt_ask_price(&a, MX_FP8, 1600, 42);
    a.max_hours = 24;
    mx_submit_ask(e, NOW, &a);
    mx_explanation x;
    assert_int_equal(mx_explain(e, 5, &x), MX_OK);
    assert_int_equal(x.side, MX_ASK);
    assert_int_equal(x.examined, 4);
    assert_int_equal(x.excluded[MX_C_GREEN], 1);
    assert_int_equal(x.excluded[MX_C_HOURS], 1);
    assert_int_equal(x.eligible, 2);
    assert_true(x.has_nearest);
    /* BF16: 95 - 70 = 25; FP8: 42 - 40 = 2 */
    assert_int_equal(x.nearest_id, 3);
    assert_int_equal(x.price_gap, 2);
    assert_int_equal(x.nearest_precision, MX_FP8);
    mx_engine_free(e);
}

static void test_nothing_to_explain(void **state)
{
    (void)state;
    mx_engine *e = engine(1);
    mx_explanation x;
    assert_int_equal(mx_explain(e, 1, &x), MX_R_UNKNOWN_ID);
    assert_int_equal(mx_explain(e, 0, &x), MX_R_UNKNOWN_ID);
    mx_bid b = mt_bid(1, 8, MX_FP16, 0, 1, 90);
    mx_submit_bid(e, NOW, &b);
    assert_int_equal(mx_explain(e, 1, &x), MX_OK);
    assert_int_equal(x.examined, 0);
    assert_false(x.has_nearest);
    /* the gang constraint depends on the remaining need */
    mx_ask small = mt_ask(2, 7, 0, 1, MX_FP16, 100, 95);
    mx_submit_ask(e, NOW, &small);
    mx_bid g = mt_bid(3, 8, MX_FP16, 0, 5, 99);
    g.min_devices_per_provider = 2;
    mx_submit_bid(e, NOW, &g);
    assert_int_equal(mx_explain(e, 3, &x), MX_OK);
    assert_int_equal(x.excluded[MX_C_GANG], 1);
    assert_int_equal(x.eligible, 0);
    mx_engine_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bid_explained),
        cmocka_unit_test(test_ask_explained),
        cmocka_unit_test(test_nothing_to_explain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
