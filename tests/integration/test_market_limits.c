/*
 * The market at its limits, each a way a client or an operator could once stop or wedge cpxd
 * (found in review): a body too large for a ledger record, fees raised across a restart while
 * orders rest, a full book whose refusals must not bind a restart with more room, allow-lists
 * naming models nobody listed, and ids beyond PostgreSQL's bigint. Each time cpxd answers with a
 * clear error and keeps running, and the ledger audits clean.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/live_ledger.h"
#include "tests/support/market_kit.h"
#include "tests/support/testenv.h"

static struct test_server srv;
static struct client op, prov, buyer, anon;
static char prov_id[CPX_ID_MAX], buyer_id[CPX_ID_MAX];

static const char *const no_fees[] = {
    "--fee-maker-bps", "0", "--fee-taker-bps", "0", "--max-resting", "3", NULL
};
static const char *const roomy[] = {
    "--fee-maker-bps", "0", "--fee-taker-bps", "0", "--max-resting", "10", NULL
};

static int setup(void **state)
{
    (void)state;
    test_server_start(&srv, NULL, no_fees);
    test_client(&srv, &op, srv.operator_key);
    test_identity(&srv, "prov", "provider", true, &prov, prov_id);
    test_identity(&srv, "buyer", "buyer", true, &buyer, buyer_id);
    test_client(&srv, &anon, "/nonexistent");
    mk_deposit(&op, buyer_id, "1000000");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_free(&op);
    client_free(&prov);
    client_free(&buyer);
    client_free(&anon);
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

static void restart(const char *const *args)
{
    assert_int_equal(test_server_stop(&srv), 0);
    test_server_restart(&srv, args);
    struct client *all[] = { &op, &prov, &buyer, &anon };
    for (size_t i = 0; i < 4; i++)
        snprintf(all[i]->url, sizeof all[i]->url, "%s", srv.url);
}

static void expect(struct client *cl, const char *method, const char *target, const char *body,
                   long status, const char *code)
{
    struct client_reply r;
    assert_true(client_call(cl, method, target, body, cl->have_key, NULL, &r));
    if (r.status != status || strcmp(reply_code(r.json), code) != 0)
        fail_msg("%s %s: got %ld %s, want %ld %s", method, target, r.status, r.body ? r.body : "",
                 status, code);
    client_reply_free(&r);
}

#define LISTING(devices, price)                                                                    \
    "{\"vendor\":\"nvidia\",\"model\":\"H100-SXM\",\"device_type\":\"gpu\",\"devices\":" devices   \
    ",\"precisions\":{\"bf16\":{\"tflops\":1000,\"price\":\"" price "\"}},\"memory_gb\":80,"       \
    "\"region\":\"yangtze\",\"endpoint\":\"https://p.example/jobs\"}"

/* A body a record cannot hold (over 256 KiB, under --max-body) is refused before it is queued. */
static void test_body_too_large_for_a_record(void **state)
{
    (void)state;
    const char *listing = LISTING("1", "10");
    size_t n = strlen(listing), pad = 300 * 1024;
    char *body = malloc(n + pad + 1);
    assert_non_null(body);
    memcpy(body, listing, n - 1);
    memset(body + n - 1, ' ', pad);
    memcpy(body + n - 1 + pad, "}", 2);
    expect(&prov, "POST", "/v1/listings", body, 413, "body_too_large");
    expect(&buyer, "DELETE", "/v1/orders/ord_000000000001", body, 413, "body_too_large");
    free(body);
    expect(&anon, "GET", "/healthz", NULL, 200, ""); /* still running */
}

/* Refusals for a full book are not journalled: a restart with more room must start. */
static void test_full_book_then_more_room(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        json_decref(mk_call(&prov, "POST", "/v1/listings", LISTING("1", "50"), 201));
    expect(&prov, "POST", "/v1/listings", LISTING("1", "50"), 503, "book_full");
    restart(roomy);
    json_decref(mk_call(&prov, "POST", "/v1/listings", LISTING("1", "50"), 201));
    /* ... and one with less room than is resting starts too, refusing new orders until some go */
    restart(no_fees);
    expect(&prov, "POST", "/v1/listings", LISTING("1", "50"), 503, "book_full");
    restart(roomy);
}

/* A resting order's hold covers the fees in force when it was placed; raising them by a restart
 * charges it no more than that. */
static void test_fees_raised_while_resting(void **state)
{
    (void)state;
    const char *order = "{\"client_order_id\":\"f-1\",\"precision\":\"bf16\",\"devices\":1,"
                        "\"hours\":1,\"regions\":[\"yangtze\"],\"limit_price\":\"10\","
                        "\"constraints\":{\"max_tflops\":1000}}";
    json_t *o = mk_call(&buyer, "POST", "/v1/orders", order, 201);
    assert_int_equal(mk_micro(o, "hold"), 10000000); /* 10 x 1 PFLOPS x 1 h, no commission */
    json_decref(o);
    restart((const char *const[]){ "--fee-maker-bps", "1000", "--fee-taker-bps", "1000",
                                   "--max-resting", "10", NULL });
    json_t *l = mk_call(&prov, "POST", "/v1/listings", LISTING("1", "10"), 201);
    assert_string_equal(mk_str(l, "status"), "filled");
    json_decref(l);
    json_t *g = mk_call(&buyer, "GET", "/v1/agreements", NULL, 200);
    json_t *a = json_array_get(json_object_get(g, "items"), 0);
    assert_int_equal(mk_micro(a, "value"), 10000000);
    assert_int_equal(mk_micro(a, "commission"), 0); /* capped at what the hold covered */
    json_decref(g);
    expect(&anon, "GET", "/healthz", NULL, 200, "");
}

/* An allow-list may name only what has been listed: buyers cannot grow the name table. */
static void test_unknown_models(void **state)
{
    (void)state;
    const char *unknown = "{\"client_order_id\":\"m-1\",\"precision\":\"bf16\",\"devices\":1,"
                          "\"hours\":1,\"regions\":[\"yangtze\"],\"limit_price\":\"1\","
                          "\"constraints\":{\"models\":[\"nvidia/B999\"]}}";
    expect(&buyer, "POST", "/v1/orders", unknown, 422, "order_rejected");
    const char *known = "{\"client_order_id\":\"m-2\",\"precision\":\"bf16\",\"devices\":1,"
                        "\"hours\":1,\"regions\":[\"yangtze\"],\"limit_price\":\"1\","
                        "\"time_in_force\":\"ioc\",\"constraints\":{\"models\":"
                        "[\"nvidia/H100-SXM\",\"nvidia\"]}}";
    json_decref(mk_call(&buyer, "POST", "/v1/orders", known, 201));
    assert_int_equal(test_db_scalar(srv.db_url, "SELECT count(*) FROM market_names"), 2);
}

/* Bounds that once slipped through: a gang of 2^32, ids beyond bigint, a cursor past 2^31. */
static void test_numbers_at_the_edge(void **state)
{
    (void)state;
    const char *gang = "{\"client_order_id\":\"g-1\",\"precision\":\"bf16\",\"devices\":1,"
                       "\"hours\":1,\"regions\":[\"yangtze\"],\"limit_price\":\"1\","
                       "\"constraints\":{\"min_devices_per_provider\":4294967296}}";
    expect(&buyer, "POST", "/v1/orders", gang, 400, "out_of_range");
    expect(&buyer, "GET", "/v1/orders/ord_9999999999999999999", NULL, 404, "order_not_found");
    expect(&buyer, "DELETE", "/v1/orders/ord_9999999999999999999", NULL, 404, "order_not_found");
    expect(&buyer, "GET", "/v1/agreements/agr_9999999999999999999", NULL, 404,
           "agreement_not_found");
    expect(&anon, "GET", "/v1/trades?after=agr_003000000000", NULL, 200, "");
    expect(&buyer, "GET", "/v1/orders?after=ord_9999999999999999999", NULL, 400, "invalid_query");
    live_audit_clean(&anon, srv.verifier_key);
}

/* A buyer keeps at most 1000 job descriptions; one it stored before is always accepted again. */
static void test_job_quota(void **state)
{
    (void)state;
    json_t *first = mk_call(&buyer, "POST", "/v1/jobs", "{\"description\":\"job 0\"}", 201);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (buyer, sha256, description) SELECT '%s', "
             "sha256(('filler ' || i)::bytea), 'filler ' || i FROM generate_series(1, 999) i",
             buyer_id);
    test_db_exec(srv.db_url, sql);
    expect(&buyer, "POST", "/v1/jobs", "{\"description\":\"one too many\"}", 422, "job_quota");
    json_t *again = mk_call(&buyer, "POST", "/v1/jobs", "{\"description\":\"job 0\"}", 201);
    assert_string_equal(mk_str(again, "job_sha256"), mk_str(first, "job_sha256"));
    json_decref(first);
    json_decref(again);
}

/* One identity sending faster than --rate-limit is answered 429 with Retry-After; others are
 * not slowed down by it. */
static void test_rate_limit(void **state)
{
    (void)state;
    restart((const char *const[]){ "--rate-limit", "2", "--max-resting", "1000", NULL });
    int limited = 0;
    for (int i = 0; i < 8; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"client_order_id\":\"r-%d\",\"precision\":\"fp16\",\"devices\":1,"
                 "\"hours\":1,\"regions\":[\"ningxia\"],\"limit_price\":\"0.01\"}",
                 i);
        struct client_reply r;
        assert_true(client_call(&buyer, "POST", "/v1/orders", body, true, NULL, &r));
        if (r.status == 429) {
            assert_string_equal(reply_code(r.json), "rate_limited");
            limited++;
        } else {
            assert_int_equal(r.status, 201);
        }
        client_reply_free(&r);
    }
    assert_true(limited >= 3); /* a burst of 4, then 2 a second */
    json_decref(
        mk_call(&prov, "POST", "/v1/listings", LISTING("1", "99"), 201)); /* another identity */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_too_large_for_a_record),
        cmocka_unit_test(test_full_book_then_more_room),
        cmocka_unit_test(test_fees_raised_while_resting),
        cmocka_unit_test(test_unknown_models),
        cmocka_unit_test(test_numbers_at_the_edge),
        cmocka_unit_test(test_job_quota),
        cmocka_unit_test(test_rate_limit),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
