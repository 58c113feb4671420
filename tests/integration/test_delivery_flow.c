/*
 * Delivery and billing end to end (docs/delivery.md), against a real cpxd over HTTPS and a
 * provider endpoint in this process (tests/support/fake_provider.h): an agreement is dispatched
 * and accepted, the provider meters it, each report is refused or billed by the written rules,
 * a bill is disputed and refunded, the last one settles after its window, the agreement ends
 * early with the job, and the money, the statements, the public books and the ledger agree.
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
#include <time.h>
#include <unistd.h>

#include "server/util.h"
#include "tests/support/audit_tool.h"
#include "tests/support/fake_provider.h"
#include "tests/support/live_ledger.h"
#include "tests/support/market_kit.h"
#include "tests/support/testenv.h"

#define DISPUTE_WINDOW 4    /* seconds */
#define FEE_MIN        1000 /* micro-CNY: more than the rate gives on the small bills below */

static struct test_server srv;
static char cacert[512];

static int setup(void **state)
{
    (void)state;
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
    const char *args[] = { "--delivery-ca",
                           cacert,
                           "--dispute-window",
                           "4",
                           "--fee-min-micro",
                           "1000",
                           "--delivery-timeout",
                           "3",
                           NULL };
    test_server_start(&srv, NULL, args);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

/* Unix seconds of an RFC 3339 member. */
static int64_t time_of(const json_t *o, const char *key)
{
    int64_t us;
    assert_true(parse_rfc3339(mk_str(o, key), &us));
    return us / 1000000;
}

static void sleep_until(int64_t unix_s)
{
    while ((int64_t)time(NULL) < unix_s)
        usleep(100 * 1000);
}

/* Polls the agreement (as cl) until its status is want; returns it. Once a second: the same
 * signed request twice in one second would be a replay, which the client avoids by signing with
 * a later second, and fast polling would drift past the exchange's clock window. */
static json_t *await_status(struct client *cl, const char *agr, const char *want)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/agreements/%s", agr);
    for (int i = 0; i < 30; i++) {
        json_t *a = mk_call(cl, "GET", target, NULL, 200);
        if (strcmp(mk_str(a, "status"), want) == 0)
            return a;
        json_decref(a);
        sleep(1);
    }
    fail_msg("agreement %s never became %s", agr, want);
    return NULL;
}

/* Posts a usage report and checks the answer's status (and error code, when not 201). */
static json_t *report(struct client *prov, const char *agr, int64_t from, int64_t to,
                      int64_t device_seconds, bool final, long want, const char *code)
{
    char body[256], target[128], a[RFC3339_MAX], b[RFC3339_MAX];
    snprintf(target, sizeof target, "/v1/agreements/%s/usage", agr);
    snprintf(body, sizeof body,
             "{\"period_start\":\"%s\",\"period_end\":\"%s\",\"device_seconds\":%" PRId64 "%s}",
             format_rfc3339(from * 1000000, a), format_rfc3339(to * 1000000, b), device_seconds,
             final ? ",\"final\":true" : "");
    json_t *r = mk_call(prov, "POST", target, body, want);
    if (code != NULL)
        assert_string_equal(reply_code(r), code);
    return r;
}

static int64_t records_of(const char *kind)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM ledger_records WHERE kind = '%s'", kind);
    return test_db_scalar(srv.db_url, sql);
}

static void test_life_cycle(void **state)
{
    (void)state;
    struct client op, prov, buyer, other;
    char prov_id[CPX_ID_MAX], buyer_id[CPX_ID_MAX], other_id[CPX_ID_MAX], key[512];
    test_client(&srv, &op, srv.operator_key);
    test_identity(&srv, "prov", "provider", true, &prov, prov_id);
    test_identity(&srv, "other", "provider", true, &other, other_id);
    test_identity(&srv, "buyer", "buyer", true, &buyer, buyer_id);
    snprintf(key, sizeof key, "%s/prov.key", srv.dir);
    struct fake_provider *fp = fake_provider_start(key, srv.verifier_key);
    mk_deposit(&op, buyer_id, "1000");

    /* 2 devices of 1000 bf16 TFLOPS at 12 CNY per PFLOPS-hour; a buyer's order for both, with
     * a job description the provider must receive. */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"vendor\":\"nvidia\",\"model\":\"H100-SXM\",\"device_type\":\"gpu\",\"devices\":2,"
             "\"precisions\":{\"bf16\":{\"tflops\":1000,\"price\":\"12\"}},\"memory_gb\":80,"
             "\"region\":\"yangtze\",\"endpoint\":\"%s\"}",
             fake_provider_url(fp));
    json_t *listing = mk_call(&prov, "POST", "/v1/listings", body, 201);
    json_t *job = mk_call(&buyer, "POST", "/v1/jobs",
                          "{\"description\":\"python train.py --epochs 3\"}", 201);
    snprintf(
        body, sizeof body,
        "{\"client_order_id\":\"o-1\",\"precision\":\"bf16\",\"regions\":[\"yangtze\"],"
        "\"devices\":2,\"hours\":1,\"limit_price\":\"12\",\"constraints\":{\"max_tflops\":1000},"
        "\"job_sha256\":\"%s\"}",
        mk_str(job, "job_sha256"));
    json_t *order = mk_call(&buyer, "POST", "/v1/orders", body, 201);
    const char *agr = json_string_value(json_array_get(json_object_get(order, "agreements"), 0));
    assert_non_null(agr);
    char dlv[64];
    snprintf(dlv, sizeof dlv, "dlv_%s", agr + 4);

    /* Dispatched, accepted, the clock runs. */
    json_t *a = await_status(&buyer, agr, "active");
    int64_t value = mk_micro(a, "value"), commission = mk_micro(a, "commission");
    assert_int_equal(value, 24000000);   /* 12 CNY x 2 PFLOPS x 1 h */
    assert_int_equal(commission, 48000); /* taker: 20 bps */
    assert_int_equal(mk_int(a, "commission_bps"), 20);
    int64_t started = time_of(a, "started_at"), ends = time_of(a, "ends_at");
    assert_int_equal(ends - started, 3600);
    assert_int_equal(fake_provider_runs(fp, dlv), 1);
    json_t *env = fake_provider_last_envelope(fp, dlv);
    assert_non_null(env);
    assert_string_equal(mk_str(json_object_get(env, "agreement"), "id"), agr);
    assert_string_equal(mk_str(json_object_get(env, "job"), "description"),
                        "python train.py --epochs 3");
    json_decref(env);
    assert_int_equal(records_of("acceptance"), 1);

    /* Reports the rules refuse; none leaves a trace. */
    sleep_until(started + 3);
    json_decref(
        report(&prov, agr, started - 1, started + 1, 1, false, 422, "usage_outside_window"));
    json_decref(report(&prov, agr, started, started + 600, 1, false, 422, "usage_outside_window"));
    json_decref(
        report(&prov, agr, started + 2, started + 1, 1, false, 422, "usage_outside_window"));
    json_decref(report(&prov, agr, started, started + 2, 5, false, 422, "usage_exceeds_capacity"));
    json_decref(report(&other, agr, started, started + 2, 1, false, 404, "agreement_not_found"));

    /* Bill 1: 4 device-seconds. amount = floor(12e6 x 1000 x 4 / 3.6e6) = 13333; the rate gives
     * 26, the minimum makes it 1000. */
    json_t *r1 = report(&prov, agr, started, started + 2, 4, false, 201, NULL);
    json_t *bill1 = json_object_get(r1, "bill");
    assert_int_equal(mk_int(r1, "ledger_seq") + 1, mk_int(bill1, "ledger_seq")); /* usage, bill */
    assert_int_equal(mk_micro(bill1, "amount"), 13333);
    assert_int_equal(mk_micro(bill1, "commission"), FEE_MIN);
    assert_string_equal(mk_str(bill1, "status"), "open");
    assert_false(json_is_true(json_object_get(bill1, "final")));
    json_decref(report(&prov, agr, started + 1, started + 3, 1, false, 409, "usage_overlaps"));

    /* The buyer disputes it; the operator refunds it. A reason of 500 characters but more than
     * 500 bytes is refused whole (it was once cut inside a character, and the database's refusal
     * of the bytes stopped cpxd). */
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/dispute", mk_str(bill1, "id"));
    char long_reason[1100] = "{\"reason\":\"a";
    for (int i = 0; i < 499; i++)
        strcat(long_reason, "\u00e9");
    strcat(long_reason, "\"}");
    json_t *d = mk_call(&buyer, "POST", target, long_reason, 400);
    assert_string_equal(reply_code(d), "out_of_range");
    json_decref(d);
    d = mk_call(&buyer, "POST", target, "{\"reason\":\"the job never started\"}", 200);
    assert_string_equal(mk_str(json_object_get(d, "bill"), "status"), "disputed");
    assert_true(mk_int(d, "ledger_seq") > mk_int(bill1, "ledger_seq"));
    json_decref(d);
    d = mk_call(&buyer, "POST", target, "{\"reason\":\"again\"}", 409);
    assert_string_equal(reply_code(d), "bill_not_open");
    json_decref(d);
    snprintf(target, sizeof target, "/v1/bills/%s/resolution", mk_str(bill1, "id"));
    d = mk_call(&buyer, "POST", target, "{\"outcome\":\"refund\"}", 403);
    json_decref(d);
    d = mk_call(&op, "POST", target, "{\"outcome\":\"refund\",\"note\":\"no output\"}", 200);
    assert_string_equal(mk_str(json_object_get(d, "bill"), "status"), "refunded");
    assert_string_equal(mk_str(json_object_get(d, "bill"), "resolution_note"), "no output");
    json_decref(d);

    /* Bill 2 ends the job early: 8 device-seconds, final. The rest of the escrow comes back. */
    json_t *r2 = report(&prov, agr, started + 2, started + 3, 2, true, 201, NULL);
    json_t *bill2 = json_object_get(r2, "bill");
    int64_t amount2 = mk_micro(bill2, "amount");
    assert_int_equal(amount2, 6666);
    assert_int_equal(mk_micro(bill2, "commission"), FEE_MIN);
    assert_true(json_is_true(json_object_get(bill2, "final")));
    json_decref(await_status(&buyer, agr, "completed"));
    json_decref(
        report(&prov, agr, started + 3, started + 4, 1, false, 409, "agreement_not_active"));
    int64_t bal[3];
    mk_balances(&buyer, buyer_id, bal);
    assert_int_equal(bal[1], 0);                 /* held */
    assert_int_equal(bal[2], amount2 + FEE_MIN); /* escrow: only the open bill */

    /* Its window passes: it settles. */
    sleep_until(time_of(bill2, "dispute_until") + 1);
    snprintf(target, sizeof target, "/v1/bills/%s", mk_str(bill2, "id"));
    for (int i = 0; i < 10; i++) { /* once a second (see await_status) */
        d = mk_call(&prov, "GET", target, NULL, 200);
        bool settled = strcmp(mk_str(d, "status"), "settled") == 0;
        json_decref(d);
        if (settled)
            break;
        sleep(1);
    }
    d = mk_call(&prov, "GET", target, NULL, 200);
    assert_string_equal(mk_str(d, "status"), "settled");
    json_decref(d);
    mk_balances(&buyer, buyer_id, bal);
    assert_int_equal(bal[0], 1000000000 - amount2 - FEE_MIN);
    assert_int_equal(bal[1] + bal[2], 0);
    mk_balances(&prov, prov_id, bal);
    assert_int_equal(bal[0], amount2);
    assert_int_equal(test_db_scalar(srv.db_url, "SELECT balance FROM accounts WHERE owner = "
                                                "'exchange' AND kind = 'commission'"),
                     FEE_MIN);

    /* The books balance, and every balance is its entries. */
    assert_int_equal(test_db_scalar(srv.db_url, "SELECT coalesce(sum(balance), 0) FROM accounts"),
                     0);
    assert_int_equal(
        test_db_scalar(srv.db_url,
                       "SELECT count(*) FROM accounts a WHERE a.balance <> coalesce((SELECT "
                       "sum(amount) FROM entries WHERE to_owner = a.owner AND to_kind = a.kind), "
                       "0) - coalesce((SELECT sum(amount) FROM entries WHERE from_owner = a.owner "
                       "AND from_kind = a.kind), 0)"),
        0);

    /* Bills as each party sees them; a stranger sees none. */
    json_t *list = mk_call(&buyer, "GET", "/v1/bills", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 2);
    json_decref(list);
    list = mk_call(&other, "GET", "/v1/bills", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(list, "items")), 0);
    json_decref(list);
    snprintf(target, sizeof target, "/v1/bills/%s", mk_str(bill2, "id"));
    json_decref(mk_call(&other, "GET", target, NULL, 404));

    /* Statements: the provider earned amount2; the buyer's CSV has a line per movement. */
    json_t *st = mk_call(&prov, "GET", "/v1/statements", NULL, 200);
    json_t *entries = json_object_get(st, "entries");
    assert_int_equal(json_array_size(entries), 1);
    assert_string_equal(mk_str(json_array_get(entries, 0), "reason"), "settle");
    assert_int_equal(mk_micro(json_array_get(entries, 0), "amount"), amount2);
    json_decref(st);
    struct client_reply csv;
    assert_true(client_call(&buyer, "GET", "/v1/statements?format=csv", NULL, true, NULL, &csv));
    assert_int_equal(csv.status, 200);
    assert_non_null(strstr(csv.body, "id,at,account,direction"));
    assert_non_null(strstr(csv.body, ",refund,"));
    assert_non_null(strstr(csv.body, ",commission,"));
    client_reply_free(&csv);

    /* Deliveries: one attempt, accepted. */
    snprintf(target, sizeof target, "/v1/agreements/%s/deliveries", agr);
    json_t *dl = mk_call(&buyer, "GET", target, NULL, 200);
    assert_string_equal(mk_str(dl, "state"), "accepted");
    json_t *att = json_object_get(dl, "attempts");
    assert_string_equal(mk_str(json_array_get(att, json_array_size(att) - 1), "outcome"),
                        "accepted");
    json_decref(dl);

    /* The public books and the ledger. */
    struct client anon;
    test_client(&srv, &anon, "/nonexistent");
    json_t *books = mk_call(&anon, "GET", "/v1/audit/bills", NULL, 200);
    assert_int_equal(json_array_size(json_object_get(books, "items")), 2);
    json_decref(books);
    books = mk_call(&anon, "GET", "/v1/audit/bills?limit=1", NULL, 200);
    snprintf(target, sizeof target, "/v1/audit/bills?limit=1&after=%s", mk_str(books, "next"));
    json_decref(books);
    books = mk_call(&anon, "GET", target, NULL, 200);
    assert_string_equal(mk_str(json_array_get(json_object_get(books, "items"), 0), "id"),
                        mk_str(bill2, "id"));
    json_decref(books);
    books = mk_call(&anon, "GET", "/v1/audit/balances?limit=2", NULL, 200);
    snprintf(target, sizeof target, "/v1/audit/balances?after=%s", mk_str(books, "next"));
    json_decref(books);
    books = mk_call(&anon, "GET", target, NULL, 200); /* the rest, after the first two */
    assert_true(json_array_size(json_object_get(books, "items")) >= 1);
    json_decref(books);
    const char *bad_cursors[] = { "/v1/audit/bills?after=abc", "/v1/audit/bills?after=-1",
                                  "/v1/audit/balances?after=%ff%fe",
                                  "/v1/audit/balances?after=nokind" };
    for (size_t i = 0; i < sizeof bad_cursors / sizeof bad_cursors[0]; i++) {
        books = mk_call(&anon, "GET", bad_cursors[i], NULL, 400);
        assert_string_equal(reply_code(books), "invalid_query");
        json_decref(books);
    }
    assert_int_equal(records_of("usage"), 2);
    assert_int_equal(records_of("bill"), 2);
    assert_int_equal(records_of("commission"), 2);
    assert_int_equal(records_of("dispute"), 1);
    assert_int_equal(records_of("resolution"), 1);
    assert_int_equal(records_of("settlement"), 1);
    assert_int_equal(records_of("completion"), 1);
    assert_int_equal(records_of("fee_schedule"), 1);
    live_audit_clean(&anon, srv.verifier_key);

    json_decref(r1);
    json_decref(r2);
    json_decref(a);
    json_decref(order);
    json_decref(job);
    json_decref(listing);
    fake_provider_stop(fp);
    client_free(&anon);
    client_free(&op);
    client_free(&prov);
    client_free(&other);
    client_free(&buyer);
}

/* An agreement that starts in an hour is delivered then, not now: its job waits in the outbox
 * (it was once delivered at once, and billable an hour before its agreed start). */
static void test_future_start_waits(void **state)
{
    (void)state;
    struct client op, prov, buyer;
    char prov_id[CPX_ID_MAX], buyer_id[CPX_ID_MAX], key[512];
    test_client(&srv, &op, srv.operator_key);
    test_identity(&srv, "later-prov", "provider", true, &prov, prov_id);
    test_identity(&srv, "later-buyer", "buyer", true, &buyer, buyer_id);
    snprintf(key, sizeof key, "%s/later-prov.key", srv.dir);
    struct fake_provider *fp = fake_provider_start(key, srv.verifier_key);
    mk_deposit(&op, buyer_id, "100");
    char from[RFC3339_MAX], body[1024];
    int64_t start = (int64_t)time(NULL) + 3600;
    format_rfc3339(start * 1000000, from);
    snprintf(body, sizeof body,
             "{\"vendor\":\"nvidia\",\"model\":\"L40S\",\"device_type\":\"gpu\",\"devices\":1,"
             "\"precisions\":{\"fp8\":{\"tflops\":700,\"price\":\"3\"}},\"memory_gb\":48,"
             "\"region\":\"guizhou\",\"available_from\":\"%s\",\"endpoint\":\"%s\"}",
             from, fake_provider_url(fp));
    json_decref(mk_call(&prov, "POST", "/v1/listings", body, 201));
    snprintf(body, sizeof body,
             "{\"client_order_id\":\"later-1\",\"precision\":\"fp8\",\"regions\":[\"guizhou\"],"
             "\"devices\":1,\"hours\":1,\"limit_price\":\"3\",\"start_earliest\":\"%s\","
             "\"constraints\":{\"max_tflops\":700}}",
             from);
    json_t *order = mk_call(&buyer, "POST", "/v1/orders", body, 201);
    const char *agr = json_string_value(json_array_get(json_object_get(order, "agreements"), 0));
    assert_non_null(agr);
    sleep(2); /* the dispatchers had every chance */
    char target[128];
    snprintf(target, sizeof target, "/v1/agreements/%s/deliveries", agr);
    json_t *dl = mk_call(&buyer, "GET", target, NULL, 200);
    assert_string_equal(mk_str(dl, "state"), "pending");
    assert_int_equal(json_array_size(json_object_get(dl, "attempts")), 0);
    assert_int_equal(time_of(dl, "next_attempt_at"), start);
    assert_int_equal(fake_provider_total_envelopes(fp), 0);
    json_decref(dl);
    json_decref(order);
    fake_provider_stop(fp);
    client_free(&op);
    client_free(&prov);
    client_free(&buyer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_life_cycle),
        cmocka_unit_test(test_future_start_waits),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
