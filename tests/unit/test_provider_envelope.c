/*
 * Unit tests of cpx-provider's pure parts (clients/cpx-provider/envelope.c): the envelope's
 * signature and fields, the acceptance and its signature, usage bodies, times and the
 * metering arithmetic. The tool's objects are not in a library, so its source is compiled in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cpx-provider/envelope.c"
#include "ledger/codec.h"

#define NOW 1795939200 /* 2026-11-29T08:00:00Z */

static const char provider_id[] = "idn_aaaaaaaaaaaaaaaa";

/* A well-formed envelope for agr_000000000007 / dlv_000000000007, with job (or null). */
static char *envelope_text(const char *job_description)
{
    char job[512] = "null";
    if (job_description != NULL) {
        uint8_t digest[CPX_SHA256_LEN];
        char hex[2 * CPX_SHA256_LEN + 1];
        cpx_sha256(job_description, strlen(job_description), digest);
        cpx_hex_encode(digest, sizeof digest, hex);
        snprintf(job, sizeof job, "{\"description\":\"%s\",\"sha256\":\"%s\"}", job_description,
                 hex);
    }
    char *text = NULL;
    assert_true(asprintf(&text,
                         "{\"agreement\":{\"devices\":8,\"id\":\"agr_000000000007\","
                         "\"provider\":\"%s\",\"status\":\"pending_delivery\"},\"attempt\":2,"
                         "\"deliver_by\":\"2026-11-29T08:15:00Z\",\"delivery\":"
                         "\"dlv_000000000007\",\"job\":%s}",
                         provider_id, job) > 0);
    return text;
}

static void parses_envelope(void **state)
{
    (void)state;
    char *text = envelope_text("train resnet-50");
    struct envelope env;
    char why[ENVELOPE_WHY_MAX];
    assert_null(envelope_parse(text, strlen(text), &env, why));
    assert_string_equal(env.agreement, "agr_000000000007");
    assert_string_equal(env.delivery, "dlv_000000000007");
    assert_string_equal(env.provider, provider_id);
    assert_int_equal(env.devices, 8);
    assert_int_equal(env.attempt, 2);
    assert_int_equal(env.deliver_by, NOW + 900);
    assert_string_equal(env.description, "train resnet-50");
    envelope_free(&env);
    free(text);

    text = envelope_text(NULL);
    assert_null(envelope_parse(text, strlen(text), &env, why));
    assert_null(env.description);
    envelope_free(&env);
    free(text);
}

/* Parses text and expects code, with `field` named in the sentence. */
static void refuses(const char *text, const char *code, const char *field)
{
    struct envelope env;
    char why[ENVELOPE_WHY_MAX];
    const char *got = envelope_parse(text, strlen(text), &env, why);
    assert_non_null(got);
    assert_string_equal(got, code);
    if (field != NULL && strstr(why, field) == NULL)
        fail_msg("\"%s\" does not name %s", why, field);
    assert_null(env.description);
}

static void refuses_bad_envelopes(void **state)
{
    (void)state;
    refuses("", "malformed_json", NULL);
    refuses("[1]", "malformed_json", NULL);
    refuses("{\"delivery\":\"dlv_1\",\"delivery\":\"dlv_2\"}", "malformed_json", NULL);
    refuses("{}", "invalid_envelope", "agreement");
    refuses("{\"agreement\":{\"id\":\"agr_../x\"}}", "invalid_envelope", "agreement.id");
    refuses("{\"agreement\":{\"id\":\"agr_1\",\"provider\":\"idn_x\",\"devices\":0}}",
            "invalid_envelope", "agreement.devices");
    refuses("{\"agreement\":{\"id\":\"agr_1\",\"provider\":\"idn_x\",\"devices\":1},"
            "\"delivery\":\"dlv_A B\"}",
            "invalid_envelope", "delivery");
    refuses("{\"agreement\":{\"id\":\"agr_1\",\"provider\":\"idn_x\",\"devices\":1},"
            "\"delivery\":\"dlv_1\",\"deliver_by\":\"tomorrow\"}",
            "invalid_envelope", "deliver_by");
    /* a job whose hash is not the one the buyer's order signed */
    char *text = envelope_text("train resnet-50");
    char *hash = strstr(text, "\"sha256\":\"") + 10;
    hash[0] = hash[0] == '0' ? '1' : '0';
    refuses(text, "invalid_envelope", "job.sha256");
    free(text);
    refuses("{\"agreement\":{\"id\":\"agr_1\",\"provider\":\"idn_x\",\"devices\":1},"
            "\"delivery\":\"dlv_1\",\"deliver_by\":\"2026-11-29T08:15:00Z\",\"job\":7}",
            "invalid_envelope", "job.description");
}

static void checks_the_exchange_signature(void **state)
{
    (void)state;
    struct cpx_keypair exchange, other;
    cpx_keypair_generate(&exchange);
    cpx_keypair_generate(&other);
    const char *body = "{\"delivery\":\"dlv_1\"}", *target = "/cpx/jobs?site=a";
    struct cpx_auth auth = { .id = "exchange" };
    char header[CPX_AUTH_HEADER_MAX];
    assert_true(cpx_reqsig_sign(&exchange, "POST", target, NOW, body, strlen(body), &auth));
    cpx_auth_format(&auth, header);
    assert_null(envelope_check_auth(exchange.pk, header, target, body, strlen(body), NOW));
    assert_null(
        envelope_check_auth(exchange.pk, header, target, body, strlen(body), NOW + CLOCK_WINDOW));
    assert_string_equal(envelope_check_auth(exchange.pk, header, target, body, strlen(body),
                                            NOW + CLOCK_WINDOW + 1),
                        "stale_timestamp");
    assert_string_equal(envelope_check_auth(other.pk, header, target, body, strlen(body), NOW),
                        "bad_signature");
    assert_string_equal(
        envelope_check_auth(exchange.pk, header, "/cpx/jobs", body, strlen(body), NOW),
        "bad_signature");
    assert_string_equal(envelope_check_auth(exchange.pk, header, target, "{}", 2, NOW),
                        "bad_signature");
    assert_string_equal(envelope_check_auth(exchange.pk, NULL, target, body, strlen(body), NOW),
                        "unauthenticated");
    assert_string_equal(envelope_check_auth(exchange.pk, "Bearer x", target, body, 4, NOW),
                        "bad_authorization");
    /* signed by the right key but naming a party: only "exchange" delivers jobs */
    snprintf(auth.id, sizeof auth.id, "%s", provider_id);
    cpx_auth_format(&auth, header);
    assert_string_equal(envelope_check_auth(exchange.pk, header, target, body, strlen(body), NOW),
                        "unknown_identity");
}

static void builds_and_signs_the_acceptance(void **state)
{
    (void)state;
    char *body = acceptance_body("agr_000000000007", "dlv_000000000007");
    assert_string_equal(body, "{\"agreement\":\"agr_000000000007\",\"delivery\":"
                              "\"dlv_000000000007\"}");
    struct cpx_keyfile key = { 0 };
    cpx_keypair_generate(&key.kp);
    cpx_identity_id_for_key(key.kp.pk, key.identity);
    char header[CPX_AUTH_HEADER_MAX];
    assert_true(acceptance_sign(&key, "dlv_000000000007", NOW, body, header));
    struct cpx_auth auth;
    assert_int_equal(cpx_auth_parse(header, strlen(header), &auth), CPX_AUTH_OK);
    assert_string_equal(auth.id, key.identity);
    assert_int_equal(auth.ts, NOW);
    assert_true(cpx_reqsig_verify(key.kp.pk, "POST", "/v1/deliveries/dlv_000000000007/acceptance",
                                  NOW, body, strlen(body), auth.sig));
    free(body);
}

static void usage_bodies_are_canonical(void **state)
{
    (void)state;
    char *body = usage_body(NOW, NOW + 600, 4800, false);
    assert_string_equal(body, "{\"device_seconds\":4800,\"period_end\":\"2026-11-29T08:10:00Z\","
                              "\"period_start\":\"2026-11-29T08:00:00Z\"}");
    assert_int_equal(cpx_canon_validate(body, strlen(body), NULL), CPX_CANON_OK);
    free(body);
    body = usage_body(NOW + 600, NOW + 750, 1200, true);
    assert_string_equal(body,
                        "{\"device_seconds\":1200,\"final\":true,\"period_end\":"
                        "\"2026-11-29T08:12:30Z\",\"period_start\":\"2026-11-29T08:10:00Z\"}");
    assert_int_equal(cpx_canon_validate(body, strlen(body), NULL), CPX_CANON_OK);
    free(body);
}

static void times(void **state)
{
    (void)state;
    char text[RFC3339_LEN];
    rfc3339_format(NOW, text);
    assert_string_equal(text, "2026-11-29T08:00:00Z");
    int64_t t = 0;
    assert_true(rfc3339_parse("2026-11-29T08:00:00Z", true, &t));
    assert_int_equal(t, NOW);
    assert_true(rfc3339_parse("2026-11-29T08:00:00.000Z", true, &t));
    assert_int_equal(t, NOW);
    assert_true(rfc3339_parse("2026-11-29T08:00:00.25Z", true, &t));
    assert_int_equal(t, NOW + 1);
    assert_true(rfc3339_parse("2026-11-29T08:00:00.25Z", false, &t));
    assert_int_equal(t, NOW);
    static const char *const bad[] = {
        "2026-11-29 08:00:00Z",      "2026-11-29T08:00:00",
        "2026-11-29T08:00:00+08:00", "2026-13-29T08:00:00Z",
        "+026-11-29T08:00:00Z",      "2026-11-29T08:00:00.Z",
        "2026-11-29T24:00:00Z",      "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rfc3339_parse(bad[i], false, &t))
            fail_msg("accepted %s", bad[i]);
}

static void reads_agreements(void **state)
{
    (void)state;
    struct agreement_view v;
    json_t *a =
        json_pack("{s:s, s:s, s:s, s:n}", "status", "active", "started_at",
                  "2026-11-29T08:00:00.5Z", "ends_at", "2026-11-29T09:00:00Z", "metered_until");
    assert_true(agreement_view_parse(a, &v));
    assert_string_equal(v.status, "active");
    assert_int_equal(v.started_at, NOW + 1); /* rounded inwards */
    assert_int_equal(v.ends_at, NOW + 3600);
    assert_int_equal(v.metered_until, 0);
    json_object_set_new(a, "metered_until", json_string("2026-11-29T08:10:00Z"));
    assert_true(agreement_view_parse(a, &v));
    assert_int_equal(v.metered_until, NOW + 600);
    json_object_del(a, "ends_at"); /* active without its end: unusable */
    assert_false(agreement_view_parse(a, &v));
    json_object_set_new(a, "status", json_string("pending_delivery"));
    json_object_del(a, "started_at");
    assert_true(agreement_view_parse(a, &v));
    assert_int_equal(v.started_at, 0);
    json_decref(a);
    assert_false(agreement_view_parse(NULL, &v));
}

static void meters(void **state)
{
    (void)state;
    int64_t start_ms = (int64_t)NOW * 1000 + 250; /* ran from NOW+0.25 s to NOW+10.75 s */
    int64_t end_ms = (int64_t)(NOW + 10) * 1000 + 750;
    assert_int_equal(meter_device_seconds(8, start_ms, end_ms, NOW, NOW + 5), 8 * 4750 / 1000);
    assert_int_equal(meter_device_seconds(8, start_ms, end_ms, NOW + 5, NOW + 10), 40);
    assert_int_equal(meter_device_seconds(8, start_ms, end_ms, NOW + 10, NOW + 20), 6);
    assert_int_equal(meter_device_seconds(8, start_ms, end_ms, NOW + 20, NOW + 30), 0);
    assert_int_equal(meter_device_seconds(8, start_ms, INT64_MAX, NOW + 20, NOW + 30), 80);
    /* never more than devices × period, even for 2^32 devices over 100000 hours */
    int64_t devices = 1LL << 32, hours = 100000LL * 3600;
    assert_int_equal(meter_device_seconds(devices, 0, INT64_MAX, 0, hours), devices * hours);
}

static void schedules_reports(void **state)
{
    (void)state;
    bool final = true;
    int64_t hour = NOW + 3600;
    /* running, end unknown: every minute, the last at the agreement's end */
    assert_int_equal(next_report(NOW, hour, 60, INT64_MAX, &final), NOW + 60);
    assert_false(final);
    assert_int_equal(next_report(NOW + 3590, hour, 60, INT64_MAX, &final), hour);
    assert_true(final);
    /* the workload ends in 30 s: the final report then, not at the hour */
    assert_int_equal(next_report(NOW, hour, 60, NOW + 30, &final), NOW + 30);
    assert_true(final);
    assert_int_equal(next_report(NOW, hour, 60, NOW + 90, &final), NOW + 60);
    assert_false(final);
    /* it ended within a period already reported: a final second */
    assert_int_equal(next_report(NOW + 120, hour, 60, NOW + 100, &final), NOW + 121);
    assert_true(final);
    /* simulated to the end, or past the end after a restart */
    assert_int_equal(next_report(NOW + 3570, hour, 60, hour, &final), hour);
    assert_true(final);
    assert_int_equal(next_report(hour - 1, hour, 60, 0, &final), hour);
    assert_true(final);
    for (int n = 1; n < 40; n++) {
        int64_t cap = n < 7 ? 1000LL << (n - 1) : 60000;
        assert_true(backoff_ms(n, 60000, 0) == cap / 2);
        assert_true(backoff_ms(n, 60000, UINT32_MAX) <= cap);
    }
}

static void ids(void **state)
{
    (void)state;
    assert_true(provider_id_valid("agr_000000000001", "agr_"));
    assert_false(provider_id_valid("agr_", "agr_"));
    assert_false(provider_id_valid("dlv_1", "agr_"));
    assert_false(provider_id_valid("agr_1/../x", "agr_"));
    assert_false(provider_id_valid("agr_ABC", "agr_"));
    char long_id[CPX_ID_MAX + 1];
    memset(long_id, 'a', sizeof long_id - 1);
    memcpy(long_id, "agr_", 4);
    long_id[CPX_ID_MAX] = '\0';
    assert_false(provider_id_valid(long_id, "agr_"));
}

int main(void)
{
    assert_int_equal(cpx_crypto_init(), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_envelope),
        cmocka_unit_test(refuses_bad_envelopes),
        cmocka_unit_test(checks_the_exchange_signature),
        cmocka_unit_test(builds_and_signs_the_acceptance),
        cmocka_unit_test(usage_bodies_are_canonical),
        cmocka_unit_test(times),
        cmocka_unit_test(reads_agreements),
        cmocka_unit_test(meters),
        cmocka_unit_test(schedules_reports),
        cmocka_unit_test(ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
