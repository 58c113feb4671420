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
#include "server/idcache.h"
#include "server/market.h"
#include "server/ratelimit.h"
#include "server/u64map.h"
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

/* The authentication cache: hits while fresh, forgets on change, and never stores a row read
 * before a change that it forgot meanwhile. */
static void identity_cache(void **state)
{
    (void)state;
    struct identity_cache *c = identity_cache_create(64, 60000);
    assert_non_null(c);
    struct identity a = { .id = "idn_aaaaaaaaaaaaaaaa", .status = IDENTITY_PENDING }, out;
    uint64_t gen;
    assert_false(identity_cache_get(c, a.id, &out, &gen));
    identity_cache_put(c, &a, gen);
    assert_true(identity_cache_get(c, a.id, &out, &gen));
    assert_int_equal(out.status, IDENTITY_PENDING);
    /* a reader misses, reads the old row; meanwhile the identity is approved and forgotten */
    identity_cache_forget(c, a.id);
    assert_false(identity_cache_get(c, a.id, &out, &gen));
    uint64_t stale = gen;
    identity_cache_forget(c, a.id); /* the change commits after the read */
    identity_cache_put(c, &a, stale);
    assert_false(identity_cache_get(c, a.id, &out, &gen)); /* the stale row was not kept */
    a.status = IDENTITY_APPROVED;
    identity_cache_put(c, &a, gen);
    assert_true(identity_cache_get(c, a.id, &out, &gen));
    assert_int_equal(out.status, IDENTITY_APPROVED);
    identity_cache_free(c);
    /* entries expire */
    c = identity_cache_create(8, 0);
    identity_cache_get(c, a.id, &out, &gen);
    identity_cache_put(c, &a, gen);
    assert_false(identity_cache_get(c, a.id, &out, &gen));
    identity_cache_free(c);
}

/* The sequencer's map: every key stays reachable through puts, deletes and growth. */
static void u64map_churn(void **state)
{
    (void)state;
    struct u64map m = { 0 };
    enum { N = 5000 };
    static char present[N + 1];
    for (uint64_t round = 0; round < 20000; round++) {
        uint64_t k = 1 + (round * 7919) % N;
        if (present[k]) {
            assert_ptr_equal(u64map_del(&m, k), (void *)(uintptr_t)k);
            present[k] = 0;
        } else {
            assert_true(u64map_put(&m, k, (void *)(uintptr_t)k));
            present[k] = 1;
        }
        if (round % 997 == 0)
            for (uint64_t j = 1; j <= N; j++)
                assert_ptr_equal(u64map_get(&m, j), present[j] ? (void *)(uintptr_t)j : NULL);
    }
    size_t count = 0;
    for (uint64_t j = 1; j <= N; j++)
        count += present[j];
    assert_int_equal(m.count, count);
    assert_null(u64map_get(&m, 0));
    u64map_free(&m);
}

/* Token buckets: a burst, then the rate; identities apart; off at rate 0. */
static void rate_limits(void **state)
{
    (void)state;
    assert_null(rate_limiter_create(16, 0, 0));
    int64_t retry;
    assert_true(rate_limit_take(NULL, "idn_a", 0, &retry));
    struct rate_limiter *r = rate_limiter_create(4096, 2, 4);
    for (int i = 0; i < 4; i++)
        assert_true(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", 1000, &retry));
    assert_false(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", 1000, &retry));
    assert_true(retry >= 1);
    assert_true(rate_limit_take(r, "idn_bbbbbbbbbbbbbbbb", 1000, &retry));  /* another identity */
    assert_false(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", 1400, &retry)); /* 0.8 of a token */
    assert_true(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", 1500, &retry));  /* one back */
    assert_false(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", 1500, &retry));
    for (int i = 0; i < 4; i++) /* a long pause refills only up to the burst */
        assert_true(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", INT64_C(1) << 40, &retry));
    assert_false(rate_limit_take(r, "idn_aaaaaaaaaaaaaaaa", INT64_C(1) << 40, &retry));
    rate_limiter_free(r);
}

/* Market ids have one spelling, within PostgreSQL's bigint. */
static void market_ids(void **state)
{
    (void)state;
    char id[MARKET_ID_MAX];
    market_id_format(id, "ord_", 42);
    assert_string_equal(id, "ord_000000000042");
    assert_int_equal(market_id_parse(id, "ord_"), 42);
    assert_int_equal(market_id_parse(id, "lst_"), 0);
    assert_int_equal(market_id_parse("ord_42", "ord_"), 0);
    assert_int_equal(market_id_parse("ord_0000000000042", "ord_"), 0);
    assert_int_equal(market_id_parse("ord_9223372036854775807", "ord_"), INT64_MAX);
    assert_int_equal(market_id_parse("ord_9223372036854775808", "ord_"), 0);
    assert_int_equal(market_id_parse("ord_000000000000", "ord_"), 0);
    assert_int_equal(market_owner_number("idn_aaaaaaaaaaaaaaaa") != 0, 1);
    assert_int_equal(market_precision_index("bf16"), MX_BF16);
    assert_int_equal(market_region_index("greater-bay"), 2);
    assert_int_equal(market_region_index("atlantis"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_match),      cmocka_unit_test(rfc3339),
        cmocka_unit_test(replay_cache),      cmocka_unit_test(metrics_render_counts),
        cmocka_unit_test(config_precedence), cmocka_unit_test(roles),
        cmocka_unit_test(identity_cache),    cmocka_unit_test(u64map_churn),
        cmocka_unit_test(market_ids),        cmocka_unit_test(rate_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
