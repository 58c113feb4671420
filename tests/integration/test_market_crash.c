/*
 * Crash: buyers place signed orders from several threads while cpxd is killed with SIGKILL
 * several times and restarted. Each client keeps every order it sent until it is acknowledged,
 * resending it (same client_order_id, same body) after a failure, as a real client must.
 * Afterwards: every acknowledged order exists exactly once, with the id it was acknowledged
 * with; no order or listing traded more than it had; every buyer's available + held + escrow
 * equals its deposits, every balance equals its entries and all balances sum to zero; and
 * cpx-audit verifies the ledger. Each restart also had to rebuild the books from the journal
 * with the state hash of the last committed batch, or cpxd would have refused to start.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ledger/checkpoint.h"
#include "tests/support/audit_tool.h"
#include "tests/support/live_ledger.h"
#include "tests/support/testenv.h"

#define BUYERS        4
#define PER_BUYER     60 /* orders each buyer places */
#define KILLS         4  /* SIGKILLs while they do */
#define DEPOSIT       "1000000"
#define DEPOSIT_MICRO INT64_C(1000000000000)

static struct test_server srv;
static pthread_mutex_t url_mu = PTHREAD_MUTEX_INITIALIZER;
static char current_url[64];
static atomic_bool stop_sending;

static int setup(void **state)
{
    (void)state;
    test_server_start(&srv, NULL, NULL);
    snprintf(current_url, sizeof current_url, "%s", srv.url);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

struct buyer {
    int index;
    struct client cl;
    char id[CPX_ID_MAX];
    char acked[PER_BUYER][32]; /* order id each client order id was acknowledged with */
    int sent, failures, unexpected;
    char last_error[256];
};

static void order_body(const struct buyer *b, int i, char *out, size_t cap)
{
    /* Limits around the asks (10..14 CNY): about half cross. Devices and IOC vary. */
    snprintf(out, cap,
             "{\"client_order_id\":\"b%d-%d\",\"constraints\":{\"max_tflops\":1000},"
             "\"devices\":%d,\"hours\":2,\"limit_price\":\"%d.5\",\"precision\":\"bf16\","
             "\"regions\":[\"yangtze\",\"gansu\"],\"time_in_force\":\"%s\"}",
             b->index, i, 1 + i % 3, 9 + (i * 7 + b->index) % 6, i % 5 == 0 ? "ioc" : "gtc");
}

/* Sends order i until it is acknowledged (or sending stops); true when acknowledged. */
static bool place(struct buyer *b, int i)
{
    char body[512];
    order_body(b, i, body, sizeof body);
    while (!atomic_load(&stop_sending)) {
        pthread_mutex_lock(&url_mu);
        snprintf(b->cl.url, sizeof b->cl.url, "%s", current_url);
        pthread_mutex_unlock(&url_mu);
        struct client_reply r;
        bool got = client_call(&b->cl, "POST", "/v1/orders", body, true, NULL, &r);
        if (got && (r.status == 201 || r.status == 200)) {
            const char *id = json_string_value(json_object_get(r.json, "id"));
            if (id == NULL || (b->acked[i][0] != '\0' && strcmp(b->acked[i], id) != 0))
                b->unexpected++; /* acknowledged twice with different ids */
            else
                snprintf(b->acked[i], sizeof b->acked[i], "%s", id);
            client_reply_free(&r);
            return true;
        }
        if (got && r.status != 503) {
            b->unexpected++;
            snprintf(b->last_error, sizeof b->last_error, "%ld %s", r.status, r.body ? r.body : "");
        }
        b->failures++;
        client_reply_free(&r);
        usleep(20000); /* cpxd is down or restarting */
    }
    return false;
}

static void *buyer_main(void *arg)
{
    struct buyer *b = arg;
    for (int i = 0; i < PER_BUYER && !atomic_load(&stop_sending); i++) {
        b->sent++;
        place(b, i);
    }
    return NULL;
}

/* Kills cpxd without warning and starts it again on the same database. */
static void crash_and_restart(void)
{
    assert_int_equal(kill(srv.pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(srv.pid, &status, 0), srv.pid);
    srv.pid = 0;
    test_server_restart(&srv, NULL);
    pthread_mutex_lock(&url_mu);
    snprintf(current_url, sizeof current_url, "%s", srv.url);
    pthread_mutex_unlock(&url_mu);
}

static int64_t scalar(const char *sql)
{
    return test_db_scalar(srv.db_url, sql);
}

static void test_kill_while_trading(void **state)
{
    (void)state;
    struct client op, prov;
    char prov_id[CPX_ID_MAX], target[256];
    test_client(&srv, &op, srv.operator_key);
    test_identity(&srv, "prov", "provider", true, &prov, prov_id);
    static struct buyer buyers[BUYERS];
    for (int k = 0; k < BUYERS; k++) {
        char name[16];
        snprintf(name, sizeof name, "buyer%d", k);
        buyers[k].index = k;
        test_identity(&srv, name, "buyer", true, &buyers[k].cl, buyers[k].id);
        snprintf(target, sizeof target, "/v1/accounts/%s/deposits", buyers[k].id);
        struct client_reply r;
        assert_true(
            client_call(&op, "POST", target, "{\"amount\":\"" DEPOSIT "\"}", true, NULL, &r));
        assert_int_equal(r.status, 201);
        client_reply_free(&r);
    }
    for (int k = 0; k < 6; k++) {
        char body[512];
        snprintf(body, sizeof body,
                 "{\"vendor\":\"nvidia\",\"model\":\"H100-SXM\",\"device_type\":\"gpu\","
                 "\"devices\":%d,\"precisions\":{\"bf16\":{\"tflops\":1000,\"price\":\"%d\"}},"
                 "\"memory_gb\":80,\"region\":\"%s\",\"endpoint\":\"https://p.example/jobs\"}",
                 40, 10 + k % 5, k % 2 ? "yangtze" : "gansu");
        struct client_reply r;
        assert_true(client_call(&prov, "POST", "/v1/listings", body, true, NULL, &r));
        assert_int_equal(r.status, 201);
        client_reply_free(&r);
    }

    pthread_t threads[BUYERS];
    for (int k = 0; k < BUYERS; k++)
        assert_int_equal(pthread_create(&threads[k], NULL, buyer_main, &buyers[k]), 0);
    for (int k = 0; k < KILLS; k++) {
        usleep(250000 + (useconds_t)(rand() % 250000));
        crash_and_restart();
    }
    for (int k = 0; k < BUYERS; k++)
        pthread_join(threads[k], NULL);

    /* Every order sent was acknowledged in the end (the clients resent until it was). */
    int64_t acked = 0, failures = 0;
    for (int k = 0; k < BUYERS; k++) {
        struct buyer *b = &buyers[k];
        if (b->unexpected)
            fail_msg("buyer %d got %d unexpected answers, last: %s", k, b->unexpected,
                     b->last_error);
        assert_int_equal(b->sent, PER_BUYER);
        failures += b->failures;
        for (int i = 0; i < PER_BUYER; i++) {
            assert_true(b->acked[i][0] != '\0');
            acked++;
            /* ... and exists exactly once, under the id it was acknowledged with. */
            char sql[512];
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM orders WHERE buyer = '%s' AND client_order_id = "
                     "'b%d-%d' AND 'ord_' || lpad(id::text, 12, '0') = '%s'",
                     b->id, k, i, b->acked[i]);
            assert_int_equal(scalar(sql), 1);
        }
    }
    print_message("crash: %" PRId64 " orders acknowledged across %d kills; %" PRId64
                  " sends failed while cpxd was down\n",
                  acked, KILLS, failures);
    assert_int_equal(scalar("SELECT count(*) FROM orders"), acked);

    /* Nothing traded more than it had. */
    assert_int_equal(scalar("SELECT count(*) FROM orders o WHERE o.filled_devices <> "
                            "(SELECT coalesce(sum(devices), 0) FROM agreements a "
                            "WHERE a.order_id = o.id) OR o.filled_devices > "
                            "(o.spec->>'devices')::bigint"),
                     0);
    assert_int_equal(scalar("SELECT count(*) FROM listings l WHERE l.devices - l.remaining <> "
                            "(SELECT coalesce(sum(devices), 0) FROM agreements a "
                            "WHERE a.listing_id = l.id)"),
                     0);
    /* The money adds up: per buyer, per account from the entries, and in total. */
    for (int k = 0; k < BUYERS; k++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT sum(balance) FROM accounts WHERE owner = '%s'",
                 buyers[k].id);
        assert_int_equal(scalar(sql), DEPOSIT_MICRO);
    }
    assert_int_equal(scalar("SELECT count(*) FROM accounts a WHERE a.balance <> "
                            "(SELECT coalesce(sum(amount), 0) FROM entries e WHERE e.to_owner = "
                            "a.owner AND e.to_kind = a.kind) - (SELECT coalesce(sum(amount), 0) "
                            "FROM entries e WHERE e.from_owner = a.owner AND e.from_kind = "
                            "a.kind)"),
                     0);
    assert_int_equal(scalar("SELECT sum(balance) FROM accounts"), 0);
    assert_int_equal(scalar("SELECT count(*) FROM orders WHERE status <> 'open' AND hold_left "
                            "<> 0"),
                     0);

    /* The regulator's tool verifies the whole ledger. */
    struct cpx_note_verifier v;
    live_verifier(srv.verifier_key, &v);
    struct audit_dir dir;
    audit_dir_init_verifier(&dir, &v);
    char cacert[512];
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
    const char *args[] = { "--url", srv.url, "--cacert", cacert, NULL };
    json_t *report = NULL;
    int rc = audit_run(&dir, args, &report);
    if (rc != 0)
        fail_msg("cpx-audit exited %d: %s", rc, report ? json_dumps(report, 0) : "(no report)");
    json_decref(report);
    audit_dir_free(&dir);
    for (int k = 0; k < BUYERS; k++)
        client_free(&buyers[k].cl);
    client_free(&op);
    client_free(&prov);
}

int main(void)
{
    srand((unsigned)time(NULL));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_while_trading),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
