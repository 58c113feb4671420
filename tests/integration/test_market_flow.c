/*
 * The market end to end against a real cpxd over HTTPS: a provider lists capacity in two
 * regions, a buyer orders across both with a limit that crosses one listing; the agreement
 * appears for both parties, holds, escrow and the book move as docs/trading.md says, the public
 * market endpoints show it, a restart rebuilds the same books from the journal, and the ledger
 * audits clean.
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

#include "tests/support/live_ledger.h"
#include "tests/support/market_kit.h"
#include "tests/support/testenv.h"

static struct test_server srv;

static int setup(void **state)
{
    (void)state;
    test_server_start(&srv, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

#define LISTING                                                                                    \
    "{\"vendor\":\"nvidia\",\"model\":\"H100-SXM\",\"device_type\":\"gpu\",\"devices\":%d,"        \
    "\"precisions\":{\"bf16\":{\"tflops\":1000,\"price\":\"%s\"}},\"memory_gb\":80,"               \
    "\"region\":\"%s\",\"endpoint\":\"https://provider.example/jobs\"}"

static void test_two_regions_one_cross(void **state)
{
    (void)state;
    struct client op, prov, buyer, anon;
    char prov_id[CPX_ID_MAX], buyer_id[CPX_ID_MAX];
    test_client(&srv, &op, srv.operator_key);
    test_identity(&srv, "prov", "provider", true, &prov, prov_id);
    test_identity(&srv, "buyer", "buyer", true, &buyer, buyer_id);
    test_client(&srv, &anon, "/nonexistent");

    char body[1024], target[256];
    /* Money first: the buyer cannot order without it. */
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", buyer_id);
    const char *key[] = { "Idempotency-Key: dep-1", NULL };
    struct client_reply r;
    for (int k = 0; k < 2; k++) { /* a retried deposit credits once and answers the same */
        assert_true(client_call(&op, "POST", target, "{\"amount\":\"100000\"}", true, key, &r));
        assert_int_equal(r.status, 201);
        assert_int_equal(mk_micro(json_object_get(r.json, "account"), "available"), 100000000000LL);
        client_reply_free(&r);
    }

    /* Two listings: 4 devices at 12 CNY/PFLOPS-h in yangtze, 4 at 20 in gansu. */
    snprintf(body, sizeof body, LISTING, 4, "12", "yangtze");
    json_t *l1 = mk_call(&prov, "POST", "/v1/listings", body, 201);
    snprintf(body, sizeof body, LISTING, 4, "20", "gansu");
    const char *lkey[] = { "Idempotency-Key: gansu-1", NULL };
    assert_true(client_call(&prov, "POST", "/v1/listings", body, true, lkey, &r));
    assert_int_equal(r.status, 201);
    json_t *l2 = json_incref(r.json);
    client_reply_free(&r);
    /* A retry after a lost answer lists nothing twice: the same answer, the same id. */
    assert_true(client_call(&prov, "POST", "/v1/listings", body, true, lkey, &r));
    assert_int_equal(r.status, 201);
    assert_string_equal(mk_str(r.json, "id"), mk_str(l2, "id"));
    client_reply_free(&r);
    assert_string_equal(mk_str(l1, "status"), "open");
    assert_int_equal(json_integer_value(json_object_get(l1, "remaining_devices")), 4);

    /* The book shows them. */
    json_t *book = mk_call(&anon, "GET", "/v1/markets/bf16/yangtze/book", NULL, 200);
    json_t *asks = json_object_get(book, "asks");
    assert_int_equal(json_array_size(asks), 1);
    assert_int_equal(mk_micro(json_array_get(asks, 0), "price"), 12000000);
    json_decref(book);

    /* An order for 6 devices x 10 h across both regions at a limit of 15: crosses yangtze only. */
    const char *order = "{\"client_order_id\":\"o-1\",\"precision\":\"bf16\",\"devices\":6,"
                        "\"hours\":10,\"regions\":[\"yangtze\",\"gansu\"],\"limit_price\":\"15\","
                        "\"constraints\":{\"max_tflops\":1000}}";
    json_t *o = mk_call(&buyer, "POST", "/v1/orders", order, 201);
    assert_string_equal(mk_str(o, "status"), "open");
    assert_int_equal(json_integer_value(json_object_get(o, "filled_devices")), 4);
    assert_int_equal(json_integer_value(json_object_get(o, "remaining")), 2);
    assert_int_equal(json_array_size(json_object_get(o, "agreements")), 1);
    /* hold = 15 x (6 x 1000 TFLOPS = 6 PFLOPS) x 10 h = 900 CNY, + 20 bps = 901.8 */
    assert_int_equal(mk_micro(o, "hold"), 901800000);
    /* fill: 12 x 4 PFLOPS x 10 h = 480 CNY + taker 20 bps 0.96 -> 480.96 in escrow; the rest of
     * the order (2 devices) needs 15 x 2 PFLOPS x 10 h = 300 + 0.6 held, the price improvement
     * (901.8 - 480.96 - 300.6 = 120.24) is back in available at once */
    assert_int_equal(mk_micro(o, "hold_left"), 300600000);

    /* The same client order id again: the original answer, nothing new. */
    json_t *again = mk_call(&buyer, "POST", "/v1/orders", order, 200);
    assert_string_equal(mk_str(again, "id"), mk_str(o, "id"));
    json_decref(again);
    const char *other = "{\"client_order_id\":\"o-1\",\"precision\":\"bf16\",\"devices\":1,"
                        "\"hours\":10,\"regions\":[\"yangtze\"],\"limit_price\":\"15\"}";
    assert_true(client_call(&buyer, "POST", "/v1/orders", other, true, NULL, &r));
    assert_int_equal(r.status, 409);
    assert_string_equal(reply_code(r.json), "client_order_id_reused");
    client_reply_free(&r);

    /* The agreement, for both parties. */
    const char *agr = json_string_value(json_array_get(json_object_get(o, "agreements"), 0));
    snprintf(target, sizeof target, "/v1/agreements/%s", agr);
    json_t *a1 = mk_call(&buyer, "GET", target, NULL, 200);
    json_t *a2 = mk_call(&prov, "GET", target, NULL, 200);
    assert_string_equal(mk_str(a1, "provider"), prov_id);
    assert_string_equal(mk_str(a2, "buyer"), buyer_id);
    assert_string_equal(mk_str(a1, "region"), "yangtze");
    assert_int_equal(json_integer_value(json_object_get(a1, "devices")), 4);
    assert_int_equal(mk_micro(a1, "value"), 480000000);
    assert_int_equal(mk_micro(a1, "commission"), 960000);
    assert_string_equal(mk_str(a1, "maker"), "provider");
    json_decref(a1);
    json_decref(a2);

    /* Balances: available + held + escrow = deposits. */
    json_t *acct = mk_call(&buyer, "GET", "/v1/accounts/me", NULL, 200);
    assert_int_equal(mk_micro(acct, "escrow"), 480960000);
    assert_int_equal(mk_micro(acct, "held"), 300600000);
    assert_int_equal(mk_micro(acct, "available") + mk_micro(acct, "held") +
                         mk_micro(acct, "escrow"),
                     100000000000LL);
    json_decref(acct);

    /* The book: yangtze's asks are gone, the bid rests in both regions at 15. */
    book = mk_call(&anon, "GET", "/v1/markets/bf16/yangtze/book", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(book, "asks")), 0);
    assert_int_equal(mk_micro(json_array_get(json_object_get(book, "bids"), 0), "price"), 15000000);
    json_decref(book);
    json_t *markets = mk_call(&anon, "GET", "/v1/markets", NULL, 200);
    size_t i;
    json_t *m;
    bool seen = false;
    json_array_foreach(json_object_get(markets, "items"), i, m)
    {
        if (strcmp(mk_str(m, "precision"), "bf16") || strcmp(mk_str(m, "region"), "yangtze"))
            continue;
        seen = true;
        assert_int_equal(mk_micro(m, "last_price"), 12000000);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(m, "volume_24h"), "devices")), 4);
    }
    assert_true(seen);
    json_decref(markets);
    json_t *trades = mk_call(&anon, "GET", "/v1/trades", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(trades, "items")), 1);
    assert_null(json_object_get(json_array_get(json_object_get(trades, "items"), 0), "buyer"));
    json_decref(trades);
    json_t *index = mk_call(&anon, "GET", "/v1/markets/bf16/index", NULL, 200);
    assert_int_equal(mk_micro(index, "price"), 12000000);
    json_decref(index);

    /* A restart rebuilds the books from the journal and the same order is still resting. */
    assert_int_equal(test_server_stop(&srv), 0);
    test_server_restart(&srv, NULL);
    struct client *moved[] = { &op, &prov, &buyer, &anon };
    for (size_t k = 0; k < 4; k++)
        snprintf(moved[k]->url, sizeof moved[k]->url, "%s", srv.url);
    book = mk_call(&anon, "GET", "/v1/markets/bf16/gansu/book", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(book, "bids")), 1);
    assert_int_equal(json_array_size(json_object_get(book, "asks")), 1);
    json_decref(book);

    /* Cancel: the rest of the hold comes back; the escrow stays. */
    snprintf(target, sizeof target, "/v1/orders/%s", mk_str(o, "id"));
    json_t *c = mk_call(&buyer, "DELETE", target, NULL, 200);
    assert_string_equal(mk_str(c, "status"), "cancelled");
    assert_string_equal(mk_str(c, "cancel_reason"), "user");
    assert_int_equal(mk_micro(c, "hold_left"), 0);
    json_decref(c);
    acct = mk_call(&buyer, "GET", "/v1/accounts/me", NULL, 200);
    assert_int_equal(mk_micro(acct, "held"), 0);
    assert_int_equal(mk_micro(acct, "available"), 100000000000LL - 480960000);
    json_decref(acct);
    assert_true(client_call(&buyer, "DELETE", target, NULL, true, NULL, &r));
    assert_int_equal(r.status, 409);
    client_reply_free(&r);

    /* The provider delists what is left in gansu. */
    snprintf(target, sizeof target, "/v1/listings/%s", mk_str(l2, "id"));
    json_t *d = mk_call(&prov, "DELETE", target, NULL, 200);
    assert_string_equal(mk_str(d, "status"), "cancelled");
    json_decref(d);

    live_audit_clean(&anon, srv.verifier_key);
    json_decref(o);
    json_decref(l1);
    json_decref(l2);
    client_free(&op);
    client_free(&prov);
    client_free(&buyer);
    client_free(&anon);
}

static void test_insufficient_funds(void **state)
{
    (void)state;
    struct client buyer;
    char buyer_id[CPX_ID_MAX];
    test_identity(&srv, "poor", "buyer", true, &buyer, buyer_id);
    struct client_reply r;
    const char *order = "{\"client_order_id\":\"p-1\",\"precision\":\"fp16\",\"tflops\":100,"
                        "\"hours\":1,\"regions\":[\"ningxia\"],\"limit_price\":\"1\"}";
    assert_true(client_call(&buyer, "POST", "/v1/orders", order, true, NULL, &r));
    assert_int_equal(r.status, 422);
    assert_string_equal(reply_code(r.json), "insufficient_funds");
    client_reply_free(&r);
    client_free(&buyer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_regions_one_cross),
        cmocka_unit_test(test_insufficient_funds),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
