/*
 * Unit tests of the server's small parts: route matching, RFC 3339 times, the replay cache,
 * metrics rendering, configuration and role helpers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "server/config.h"
#include "server/identity.h"
#include "server/metrics.h"
#include "server/replay.h"
#include "server/routes.h"
#include "server/util.h"

static enum route_match find(const char *method, const char *path, size_t *index,
                             char params[ROUTE_MAX_PARAMS][CPX_ID_MAX], char allow[64])
{
    return route_find(method, path, strlen(path), index, params, allow);
}

static void routes_match(void **state)
{
    (void)state;
    routes_init();
    size_t i;
    char params[ROUTE_MAX_PARAMS][CPX_ID_MAX], allow[64];
    assert_int_equal(find("GET", "/healthz", &i, params, allow), ROUTE_FOUND);
    assert_string_equal(routes[i].name, "GET /healthz");
    assert_int_equal(find("POST", "/v1/identities/idn_abc/approve", &i, params, allow),
                     ROUTE_FOUND);
    assert_string_equal(routes[i].pattern, "/v1/identities/{id}/approve");
    assert_string_equal(params[0], "idn_abc");
    assert_int_equal(find("GET", "/v1/identities/idn_abc", &i, params, allow), ROUTE_FOUND);
    assert_string_equal(routes[i].pattern, "/v1/identities/{id}");

    assert_int_equal(find("DELETE", "/v1/identities", &i, params, allow), ROUTE_WRONG_METHOD);
    assert_string_equal(allow, "POST, GET");
    assert_int_equal(find("GET", "/v1/identities/idn_abc/approve", &i, params, allow),
                     ROUTE_WRONG_METHOD);
    assert_string_equal(allow, "POST");

    static const char *const misses[] = {
        "/",
        "",
        "/healthz/",
        "/v1/identities/",
        "/v1/identities//approve",
        "/v1/identities/IDN",
        "/v1/identities/a%20b",
        "/v1/identities/a.b",
        "/v1/identities/idn_abc/approve/x",
        "/V1/identities",
        "/v1/identities/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    };
    for (size_t k = 0; k < sizeof misses / sizeof misses[0]; k++)
        if (find("GET", misses[k], &i, params, allow) != ROUTE_NO_PATH)
            fail_msg("%s matched a route", misses[k]);
    /* The path stops at the length given (the query is not part of it). */
    assert_int_equal(route_find("GET", "/healthz?x=1", 8, &i, params, allow), ROUTE_FOUND);
}

static void rfc3339(void **state)
{
    (void)state;
    int64_t t;
    char out[RFC3339_MAX];
    assert_true(parse_rfc3339("2026-11-29T08:00:00Z", &t));
    assert_int_equal(t, 1795939200LL * 1000000);
    assert_string_equal(format_rfc3339(t, out), "2026-11-29T08:00:00Z");
    assert_true(parse_rfc3339("2026-11-29T08:00:00.000123Z", &t));
    assert_string_equal(format_rfc3339(t, out), "2026-11-29T08:00:00.000123Z");
    assert_true(parse_rfc3339("2026-11-29T16:00:00+08:00", &t));
    assert_int_equal(t, 1795939200LL * 1000000);
    assert_true(parse_rfc3339("2024-02-29T00:00:00Z", &t));
    assert_true(parse_rfc3339("1970-01-01T00:00:00Z", &t));
    assert_int_equal(t, 0);
    assert_string_equal(format_rfc3339(-1, out), "1969-12-31T23:59:59.999999Z");
    static const char *const bad[] = {
        "",
        "2026-11-29",
        "2026-11-29T08:00:00",
        "2026-11-29T08:00:00.Z",
        "2026-11-29T08:00:00.1234567Z",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-11-29T24:00:00Z",
        "2026-11-29T08:60:00Z",
        "2026-11-29T08:00:60Z",
        "2026-11-29T08:00:00+0800",
        "2026-11-29T08:00:00Zjunk",
        "1969-12-31T23:59:59Z",
        "+2026-11-29T08:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (parse_rfc3339(bad[i], &t))
            fail_msg("accepted %s", bad[i]);
}

static void replay_cache(void **state)
{
    (void)state;
    struct replay_cache *rc = replay_create(120);
    assert_non_null(rc);
    uint8_t sig[64] = { 0 };
    /* Many distinct signatures are all new, and each is a replay the second time. */
    for (unsigned i = 1; i <= 20000; i++) {
        memcpy(sig, &i, sizeof i);
        sig[16] = (uint8_t)i;
        assert_true(replay_add(rc, sig, 1000));
    }
    for (unsigned i = 1; i <= 20000; i++) {
        memcpy(sig, &i, sizeof i);
        sig[16] = (uint8_t)i;
        assert_false(replay_add(rc, sig, 1001));
    }
    /* An all-zero prefix is stored too. */
    uint8_t zero[64] = { 0 };
    assert_true(replay_add(rc, zero, 1000));
    assert_false(replay_add(rc, zero, 1000));
    /* Remembered for at least one period, forgotten after two. */
    memset(sig, 0xab, sizeof sig);
    assert_true(replay_add(rc, sig, 1000));
    assert_false(replay_add(rc, sig, 1119));
    assert_false(replay_add(rc, sig, 1121)); /* rotated once: still in the old generation */
    assert_true(replay_add(rc, sig, 1400));  /* rotated twice: gone, and recorded afresh */
    assert_false(replay_add(rc, sig, 1401));
    replay_free(rc);
}

static void metrics_render_counts(void **state)
{
    (void)state;
    static const char *const names[] = { "GET /a", "POST /b" };
    struct metrics *m = metrics_create(2, names);
    assert_non_null(m);
    metrics_observe(m, 0, 200, 300000);  /* 0.3 ms */
    metrics_observe(m, 0, 200, 2000000); /* 2 ms */
    metrics_observe(m, 1, 409, 1000);
    metrics_observe(m, 2, 404, 1000);            /* unmatched */
    metrics_observe(m, 99, 418, 10000000000ULL); /* out of range route and status, 10 s */
    char *text = metrics_render(m, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "cpx_http_requests_total{route=\"GET /a\",status=\"200\"} 2\n"));
    assert_non_null(strstr(text, "cpx_http_requests_total{route=\"POST /b\",status=\"409\"} 1\n"));
    assert_non_null(
        strstr(text, "cpx_http_requests_total{route=\"unmatched\",status=\"404\"} 1\n"));
    assert_non_null(
        strstr(text, "cpx_http_requests_total{route=\"unmatched\",status=\"other\"} 1\n"));
    assert_non_null(strstr(text, "{route=\"GET /a\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "{route=\"GET /a\",le=\"0.0025\"} 2\n"));
    assert_non_null(strstr(text, "{route=\"GET /a\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "cpx_http_request_duration_seconds_count{route=\"GET /a\"} 2\n"));
    assert_non_null(strstr(text, "{route=\"unmatched\",le=\"5\"} 1\n"));
    assert_non_null(strstr(text, "{route=\"unmatched\",le=\"+Inf\"} 2\n"));
    free(text);
    metrics_free(m);
}

static void config_precedence(void **state)
{
    (void)state;
    struct config cfg;
    setenv("CPX_DATABASE_URL", "postgresql:///env", 1);
    setenv("CPX_PORT", "9000", 1);
    char *argv1[] = { "cpxd", "--port", "9100", "--threads=3", NULL };
    assert_int_equal(config_load(&cfg, 4, argv1), 0);
    assert_int_equal(cfg.port, 9100); /* the flag wins */
    assert_int_equal(cfg.threads, 3);
    assert_string_equal(cfg.database_url, "postgresql:///env");
    assert_string_equal(cfg.listen, "127.0.0.1");
    assert_int_equal(cfg.clock_skew, 60);
    config_free(&cfg);

    char *argv2[] = { "cpxd", "--port", "70000", NULL };
    assert_int_equal(config_load(&cfg, 3, argv2), -1);
    config_free(&cfg);
    char *argv3[] = { "cpxd", "--bogus", "1", NULL };
    assert_int_equal(config_load(&cfg, 3, argv3), -1);
    config_free(&cfg);
    char *argv4[] = { "cpxd", "--threads", NULL };
    assert_int_equal(config_load(&cfg, 2, argv4), -1);
    config_free(&cfg);
    setenv("CPX_PORT", "eighty", 1);
    char *argv5[] = { "cpxd", NULL };
    assert_int_equal(config_load(&cfg, 1, argv5), -1);
    config_free(&cfg);
    unsetenv("CPX_PORT");
    unsetenv("CPX_DATABASE_URL");
    assert_int_equal(config_load(&cfg, 1, argv5), -1); /* no database */
    config_free(&cfg);
}

static void roles(void **state)
{
    (void)state;
    char buf[64];
    roles_to_pg_array(ROLE_BUYER | ROLE_OPERATOR, buf);
    assert_string_equal(buf, "{buyer,operator}");
    roles_to_pg_array(0, buf);
    assert_string_equal(buf, "{}");
    assert_int_equal(roles_from_list("buyer,provider"), ROLE_BUYER | ROLE_PROVIDER);
    assert_int_equal(roles_from_list(""), 0);
    assert_int_equal(roles_from_list("regulator,nonsense,"), ROLE_REGULATOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_match),      cmocka_unit_test(rfc3339),
        cmocka_unit_test(replay_cache),      cmocka_unit_test(metrics_render_counts),
        cmocka_unit_test(config_precedence), cmocka_unit_test(roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
