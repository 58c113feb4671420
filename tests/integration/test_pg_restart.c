/*
 * cpxd survives a PostgreSQL restart: while the database is down requests fail with 503 (and
 * /healthz says so), and once it is back they work again without restarting cpxd.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/support/testenv.h"

static void pg(const char *verb)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "CPX_VAR='%s' scripts/pg.sh %s", getenv("CPX_TEST_VAR"), verb);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
}

static long healthz(const struct test_server *ts)
{
    struct raw_reply r;
    raw_call(ts, "GET", "/healthz", NULL, NULL, 0, &r);
    long status = r.status;
    if (status == 503)
        assert_string_equal(reply_code(r.json), "database_unavailable");
    raw_reply_free(&r);
    return status;
}

static void survives_restart(void **state)
{
    (void)state;
    struct test_server ts;
    test_server_start(&ts, NULL, NULL);
    struct client alice;
    char id[CPX_ID_MAX];
    test_identity(&ts, "alice", "buyer", true, &alice, id);
    assert_int_equal(healthz(&ts), 200);

    pg("stop");
    assert_int_equal(healthz(&ts), 503);
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s", id);
    struct client_reply r;
    assert_true(client_call(&alice, "GET", target, NULL, true, NULL, &r));
    assert_int_equal(r.status, 503);
    assert_string_equal(reply_code(r.json), "database_unavailable");
    client_reply_free(&r);

    pg("start");
    long status = 0;
    for (int i = 0; i < 100 && (status = healthz(&ts)) != 200; i++)
        usleep(100000);
    assert_int_equal(status, 200);
    assert_true(client_call(&alice, "GET", target, NULL, true, NULL, &r));
    assert_int_equal(r.status, 200);
    client_reply_free(&r);
    /* Writes work again too. */
    struct client bob;
    test_identity(&ts, "bob", "provider", true, &bob, id);
    client_free(&alice);
    client_free(&bob);
    assert_int_equal(test_server_stop(&ts), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(survives_restart),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], NULL, NULL);
}
