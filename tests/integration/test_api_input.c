/*
 * Bad input against a real cpxd over HTTPS: every kind of malformed, mistyped, missing,
 * out-of-range, oversize or unauthenticated request gets the right 4xx and a JSON error naming
 * the problem, nothing is half-written, and the server keeps serving.
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
#include <time.h>

#include "tests/support/testenv.h"

static struct test_server srv;
static struct cpx_keyfile newkey; /* a key not yet registered */
static char newkey_pk[45];
static struct client op; /* the operator */

static int setup(void **state)
{
    (void)state;
    test_server_start(&srv, NULL, NULL);
    cpx_keypair_generate(&newkey.kp);
    cpx_identity_id_for_key(newkey.kp.pk, newkey.identity);
    cpx_public_key_encode(newkey.kp.pk, newkey_pk);
    test_client(&srv, &op, srv.operator_key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    client_free(&op);
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

static int64_t identities(void)
{
    return test_db_scalar(srv.db_url, "SELECT count(*) FROM identities");
}

/* Posts body to /v1/identities signed by newkey, as a client that means well but sends this. */
static void post_register(const char *body, size_t len, const char *content_type,
                          struct raw_reply *r)
{
    char auth[CPX_AUTH_HEADER_MAX + 32], ct[128];
    static int64_t bump; /* distinct timestamps: identical requests would be replays */
    sign_header(&newkey, "POST", "/v1/identities", (int64_t)time(NULL) - (bump++ % 30), body, len,
                auth);
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    const char *headers[] = { auth, ct, NULL };
    raw_call(&srv, "POST", "/v1/identities", headers, body, len, r);
}

struct bad_case {
    const char *what;
    const char *body; /* "%s" is replaced by newkey's public key */
    long status;
    const char *code;
    const char *field; /* NULL: no field expected */
};

static const struct bad_case bad_bodies[] = {
    { "not JSON", "{\"name\":", 400, "malformed_json", NULL },
    { "an array", "[1,2]", 400, "malformed_json", NULL },
    { "a string", "\"hello\"", 400, "malformed_json", NULL },
    { "duplicate keys",
      "{\"name\":\"a\",\"name\":\"b\",\"public_key\":\"%"
      "s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}",
      400, "malformed_json", NULL },
    { "missing name", "{\"reg_no\":\"R1\",\"roles\":[\"buyer\"],\"public_key\":\"%s\"}", 400,
      "missing_field", "name" },
    { "null name", "{\"name\":null,\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}",
      400, "missing_field", "name" },
    { "name a number", "{\"name\":7,\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}",
      400, "invalid_field", "name" },
    { "empty name", "{\"name\":\"\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}",
      400, "out_of_range", "name" },
    { "name with a newline",
      "{\"name\":\"a\\nb\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}", 400,
      "invalid_field", "name" },
    { "name with a NUL escape (refused by the JSON decoder)",
      "{\"name\":\"a\\u0000b\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}", 400,
      "malformed_json", NULL },
    { "reg_no with a space",
      "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R 1\",\"roles\":[\"buyer\"]}", 400,
      "invalid_field", "reg_no" },
    { "roles not an array",
      "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":\"buyer\"}", 400,
      "invalid_field", "roles" },
    { "roles empty", "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[]}", 400,
      "invalid_field", "roles" },
    { "unknown role",
      "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"king\"]}", 400,
      "invalid_field", "roles" },
    { "role twice",
      "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\",\"buyer\"]}",
      400, "invalid_field", "roles" },
    { "role a number", "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[1]}",
      400, "invalid_field", "roles" },
    { "key bad base64",
      "{\"name\":\"a\",\"public_key\":\"!!!notbase64\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}",
      400, "invalid_field", "public_key" },
    { "key too short",
      "{\"name\":\"a\",\"public_key\":\"AAAA\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}", 400,
      "invalid_field", "public_key" },
    { "unknown field",
      "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"],\"x\":1}", 400,
      "unknown_field", "x" },
    { "huge integer where a string goes",
      "{\"name\":99999999999999999999999999,\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}", 400,
      "malformed_json", NULL },
};

static void bad_bodies_refused(void **state)
{
    (void)state;
    int64_t before = identities();
    for (size_t i = 0; i < sizeof bad_bodies / sizeof bad_bodies[0]; i++) {
        const struct bad_case *c = &bad_bodies[i];
        char body[1024];
        /* Only the cases that use a key have a "%s"; the others pass through unchanged. */
        if (strstr(c->body, "%s") != NULL)
            snprintf(body, sizeof body, c->body, newkey_pk);
        else
            snprintf(body, sizeof body, "%s", c->body);
        size_t len = strlen(body);
        struct raw_reply r;
        post_register(body, len, "application/json", &r);
        if (r.status != c->status || strcmp(reply_code(r.json), c->code) != 0)
            fail_msg("%s: got %ld %s, want %ld %s", c->what, r.status, r.body ? r.body : "",
                     c->status, c->code);
        json_t *err = json_object_get(r.json, "error");
        assert_non_null(json_string_value(json_object_get(err, "message")));
        if (c->field != NULL) {
            const char *field = json_string_value(json_object_get(err, "field"));
            if (field == NULL || strcmp(field, c->field) != 0)
                fail_msg("%s: field %s, want %s", c->what, field ? field : "(none)", c->field);
        }
        raw_reply_free(&r);
    }
    assert_int_equal(identities(), before); /* nothing half-written */
}

static void http_level_errors(void **state)
{
    (void)state;
    struct raw_reply r;
    raw_call(&srv, "GET", "/v1/nothing-here", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(reply_code(r.json), "not_found");
    raw_reply_free(&r);

    raw_call(&srv, "PUT", "/v1/identities", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(reply_code(r.json), "method_not_allowed");
    assert_string_equal(r.allow, "POST, GET");
    raw_reply_free(&r);

    /* An id segment with characters no id has is not a route. */
    raw_call(&srv, "GET", "/v1/identities/ID%20X", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 404);
    raw_reply_free(&r);

    /* Wrong media type. */
    char body[512];
    snprintf(body, sizeof body,
             "{\"name\":\"a\",\"public_key\":\"%s\",\"reg_no\":\"R1\",\"roles\":[\"buyer\"]}",
             newkey_pk);
    post_register(body, strlen(body), "text/plain", &r);
    assert_int_equal(r.status, 415);
    assert_string_equal(reply_code(r.json), "unsupported_media_type");
    raw_reply_free(&r);

    /* Oversize body: declared length and actual bytes both over the 1 MiB cap. */
    size_t big = (1u << 20) + 10;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    post_register(huge, big, "application/json", &r);
    assert_int_equal(r.status, 413);
    assert_string_equal(reply_code(r.json), "body_too_large");
    raw_reply_free(&r);
    free(huge);

    /* Still serving, with metrics that counted all of the above. */
    raw_call(&srv, "GET", "/healthz", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    raw_reply_free(&r);
    raw_call(&srv, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "cpx_http_requests_total{route=\"unmatched\",status=\"404\"}"));
    assert_non_null(strstr(r.body, "status=\"413\""));
    assert_non_null(strstr(r.body, "cpx_http_request_duration_seconds_bucket"));
    assert_non_null(strstr(r.body, "cpx_db_pool_connections{state=\"in_use\"}"));
    raw_reply_free(&r);
    raw_call(&srv, "GET", "/v1/openapi.json", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(json_object_get(r.json, "paths"));
    raw_reply_free(&r);
}

/* Signs GET target as key k at ts and returns the reply. */
static void signed_get(const struct cpx_keyfile *k, const char *target, int64_t ts,
                       struct raw_reply *r)
{
    char auth[CPX_AUTH_HEADER_MAX + 32];
    sign_header(k, "GET", target, ts, NULL, 0, auth);
    const char *headers[] = { auth, NULL };
    raw_call(&srv, "GET", target, headers, NULL, 0, r);
}

static void expect(struct raw_reply *r, long status, const char *code)
{
    if (r->status != status || strcmp(reply_code(r->json), code) != 0)
        fail_msg("got %ld %s, want %ld %s", r->status, r->body ? r->body : "", status, code);
    raw_reply_free(r);
}

static void authentication_failures(void **state)
{
    (void)state;
    int64_t now = (int64_t)time(NULL);
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s", op.key.identity);
    struct raw_reply r;

    raw_call(&srv, "GET", target, NULL, NULL, 0, &r);
    expect(&r, 401, "unauthenticated");

    const char *bad_headers[][2] = {
        { "Authorization: Bearer abc", NULL },
        { "Authorization: CPX-Ed25519 id=idn_x,ts=1", NULL },
        { "Authorization: CPX-Ed25519 id=idn_aaaaaaaaaaaaaaaa,ts=12,sig=***", NULL },
        { "Authorization: CPX-Ed25519 id=IDN,ts=12,sig=AAAA", NULL },
        { "Authorization: CPX-Ed25519 id=idn_aaaaaaaaaaaaaaaa,ts=-5,sig=AAAA", NULL },
    };
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        raw_call(&srv, "GET", target, bad_headers[i], NULL, 0, &r);
        expect(&r, 401, "bad_authorization");
    }

    /* A well-formed signature by a key nobody registered. */
    signed_get(&newkey, target, now, &r);
    expect(&r, 401, "unknown_identity");

    /* Stale and future timestamps. */
    signed_get(&op.key, target, now - 120, &r);
    expect(&r, 401, "stale_timestamp");
    signed_get(&op.key, target, now + 120, &r);
    expect(&r, 401, "stale_timestamp");

    /* The signature of another request (path changed after signing). */
    char auth[CPX_AUTH_HEADER_MAX + 32];
    sign_header(&op.key, "GET", "/v1/identities", now, NULL, 0, auth);
    const char *h1[] = { auth, NULL };
    raw_call(&srv, "GET", target, h1, NULL, 0, &r);
    expect(&r, 401, "bad_signature");

    /* Replay: the same signed request twice. */
    signed_get(&op.key, target, now - 1, &r);
    expect(&r, 200, "");
    signed_get(&op.key, target, now - 1, &r);
    expect(&r, 401, "replayed_request");
}

static void tampered_body(void **state)
{
    (void)state;
    int64_t before = identities();
    char body[512], tampered[512], auth[CPX_AUTH_HEADER_MAX + 32];
    snprintf(body, sizeof body,
             "{\"name\":\"honest\",\"public_key\":\"%s\",\"reg_no\":\"T1\",\"roles\":[\"buyer\"]}",
             newkey_pk);
    snprintf(
        tampered, sizeof tampered,
        "{\"name\":\"honest\",\"public_key\":\"%s\",\"reg_no\":\"T1\",\"roles\":[\"operator\"]}",
        newkey_pk);
    sign_header(&newkey, "POST", "/v1/identities", (int64_t)time(NULL), body, strlen(body), auth);
    const char *headers[] = { auth, "Content-Type: application/json", NULL };
    struct raw_reply r;
    raw_call(&srv, "POST", "/v1/identities", headers, tampered, strlen(tampered), &r);
    expect(&r, 401, "bad_signature");

    /* Registering a key while signing as another identity. */
    sign_header(&op.key, "POST", "/v1/identities", (int64_t)time(NULL), body, strlen(body), auth);
    raw_call(&srv, "POST", "/v1/identities", headers, body, strlen(body), &r);
    expect(&r, 401, "key_mismatch");

    /* An operator route called by a pending identity and by one without the role. */
    assert_int_equal(identities(), before);
}

static void roles_enforced(void **state)
{
    (void)state;
    struct client pending, buyer;
    char pid[CPX_ID_MAX], bid[CPX_ID_MAX], target[128];
    test_identity(&srv, "pending-op", "operator", false, &pending, pid);
    test_identity(&srv, "buyer", "buyer", true, &buyer, bid);
    snprintf(target, sizeof target, "/v1/identities/%s/approve", pid);
    struct client_reply r;
    assert_true(client_call(&pending, "POST", target, "{}", true, NULL, &r));
    assert_int_equal(r.status, 403);
    assert_string_equal(reply_code(r.json), "not_approved");
    client_reply_free(&r);
    assert_true(client_call(&buyer, "POST", target, "{}", true, NULL, &r));
    assert_int_equal(r.status, 403);
    assert_string_equal(reply_code(r.json), "forbidden_role");
    client_reply_free(&r);
    assert_int_equal(test_db_scalar(srv.db_url, "SELECT count(*) FROM identities "
                                                "WHERE status = 'pending'"),
                     1);
    client_free(&pending);
    client_free(&buyer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_bodies_refused),      cmocka_unit_test(http_level_errors),
        cmocka_unit_test(authentication_failures), cmocka_unit_test(tampered_body),
        cmocka_unit_test(roles_enforced),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
