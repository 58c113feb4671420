/*
 * End-to-end tests of identities against a real cpxd over HTTPS: registration signed by the new
 * key, approval by the operator, reading, listing, roles, Idempotency-Key, and the durable
 * replay guard across a restart.
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

/* GET or POST with the client's key; returns the reply (caller frees). */
static struct client_reply call(struct client *cl, const char *method, const char *target,
                                const char *body)
{
    struct client_reply r;
    assert_true(client_call(cl, method, target, body, true, NULL, &r));
    return r;
}

static const char *code_of(const struct client_reply *r)
{
    return reply_code(r->json);
}

static void register_show_approve(void **state)
{
    (void)state;
    struct client alice, op;
    char id[CPX_ID_MAX], target[128];
    test_identity(&srv, "alice", "buyer,provider", false, &alice, id);
    assert_string_equal(id, alice.key.identity);

    /* A pending identity reads itself. */
    snprintf(target, sizeof target, "/v1/identities/%s", id);
    struct client_reply r = call(&alice, "GET", target, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "pending");
    assert_string_equal(json_string_value(json_object_get(r.json, "name")), "alice");
    assert_int_equal(json_array_size(json_object_get(r.json, "roles")), 2);
    client_reply_free(&r);

    /* ... but cannot act in its roles or read others yet. */
    test_client(&srv, &op, srv.operator_key);
    char op_target[128];
    snprintf(op_target, sizeof op_target, "/v1/identities/%s", op.key.identity);
    r = call(&alice, "GET", op_target, NULL);
    assert_int_equal(r.status, 403);
    assert_string_equal(code_of(&r), "not_approved");
    client_reply_free(&r);

    /* The operator sees it among the pending and approves it. */
    r = call(&op, "GET", "/v1/identities?status=pending", NULL);
    assert_int_equal(r.status, 200);
    bool listed = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.json, "items"), i, e)
    {
        listed |= strcmp(json_string_value(json_object_get(e, "id")), id) == 0;
    }
    assert_true(listed);
    client_reply_free(&r);

    snprintf(target, sizeof target, "/v1/identities/%s/approve", id);
    r = call(&op, "POST", target, "{}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "approved");
    assert_string_equal(json_string_value(json_object_get(r.json, "decided_by")), op.key.identity);
    client_reply_free(&r);

    /* Approving twice is a conflict, not a second approval. */
    r = call(&op, "POST", target, "{}");
    assert_int_equal(r.status, 409);
    assert_string_equal(code_of(&r), "invalid_state");
    client_reply_free(&r);

    /* Approved, it reads others; it still may not list identities (operators, regulators). */
    r = call(&alice, "GET", op_target, NULL);
    assert_int_equal(r.status, 200);
    client_reply_free(&r);
    r = call(&alice, "GET", "/v1/identities", NULL);
    assert_int_equal(r.status, 403);
    assert_string_equal(code_of(&r), "forbidden_role");
    client_reply_free(&r);

    assert_int_equal(test_db_scalar(srv.db_url, "SELECT count(*) FROM identities WHERE status = "
                                                "'approved' AND decided_by IS NOT NULL"),
                     2);
    client_free(&alice);
    client_free(&op);
}

static void reject_needs_reason(void **state)
{
    (void)state;
    struct client bob, op;
    char id[CPX_ID_MAX], target[128];
    test_identity(&srv, "bob", "buyer", false, &bob, id);
    test_client(&srv, &op, srv.operator_key);
    snprintf(target, sizeof target, "/v1/identities/%s/reject", id);
    struct client_reply r = call(&op, "POST", target, "{}");
    assert_int_equal(r.status, 400);
    assert_string_equal(code_of(&r), "missing_field");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "error"), "field")), "reason");
    client_reply_free(&r);
    r = call(&op, "POST", target, "{\"reason\":\"registration number not found\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "rejected");
    assert_string_equal(json_string_value(json_object_get(r.json, "reason")),
                        "registration number not found");
    client_reply_free(&r);

    /* A rejected identity can read its own record (to learn why) and nothing else. */
    snprintf(target, sizeof target, "/v1/identities/%s", id);
    r = call(&bob, "GET", target, NULL);
    assert_int_equal(r.status, 200);
    client_reply_free(&r);
    client_free(&bob);
    client_free(&op);
}

static void register_conflicts(void **state)
{
    (void)state;
    struct client carol, dave;
    char id[CPX_ID_MAX];
    test_identity(&srv, "carol", "provider", false, &carol, id);

    /* The same key again: 409 identity_exists. */
    char pk[45];
    cpx_public_key_encode(carol.key.kp.pk, pk);
    char body[512];
    snprintf(
        body, sizeof body,
        "{\"name\":\"carol again\",\"public_key\":\"%s\",\"reg_no\":\"X-1\",\"roles\":[\"buyer\"]}",
        pk);
    struct client_reply r = call(&carol, "POST", "/v1/identities", body);
    assert_int_equal(r.status, 409);
    assert_string_equal(code_of(&r), "identity_exists");
    client_reply_free(&r);

    /* Another key with carol's registration number: 409 reg_no_taken. */
    test_identity(&srv, "dave", "buyer", false, &dave, id);
    char reg_no[64];
    snprintf(reg_no, sizeof reg_no, "REG-%.40s", carol.key.identity + 4);
    struct cpx_keyfile other = { 0 };
    cpx_keypair_generate(&other.kp);
    cpx_identity_id_for_key(other.kp.pk, other.identity);
    cpx_public_key_encode(other.kp.pk, pk);
    snprintf(body, sizeof body,
             "{\"name\":\"eve\",\"public_key\":\"%s\",\"reg_no\":\"%s\",\"roles\":[\"buyer\"]}", pk,
             reg_no);
    char auth[CPX_AUTH_HEADER_MAX + 32];
    sign_header(&other, "POST", "/v1/identities", (int64_t)time(NULL), body, strlen(body), auth);
    const char *headers[] = { auth, "Content-Type: application/json", NULL };
    struct raw_reply rr;
    raw_call(&srv, "POST", "/v1/identities", headers, body, strlen(body), &rr);
    assert_int_equal(rr.status, 409);
    assert_string_equal(reply_code(rr.json), "reg_no_taken");
    raw_reply_free(&rr);
    client_free(&carol);
    client_free(&dave);
}

static void idempotency_key(void **state)
{
    (void)state;
    struct client frank, op;
    char id[CPX_ID_MAX], target[128];
    test_identity(&srv, "frank", "buyer", false, &frank, id);
    test_client(&srv, &op, srv.operator_key);
    snprintf(target, sizeof target, "/v1/identities/%s/approve", id);
    const char *headers[] = { "Idempotency-Key: approve-frank-1", NULL };
    struct client_reply a, b, c;
    assert_true(client_call(&op, "POST", target, "{}", true, headers, &a));
    assert_true(client_call(&op, "POST", target, "{}", true, headers, &b));
    assert_int_equal(a.status, 200);
    assert_int_equal(b.status, 200); /* the first answer again, not 409 */
    assert_string_equal(a.body, b.body);
    /* The same key for a different request is refused. */
    snprintf(target, sizeof target, "/v1/identities/%s/reject", id);
    assert_true(client_call(&op, "POST", target, "{\"reason\":\"other\"}", true, headers, &c));
    assert_int_equal(c.status, 409);
    assert_string_equal(reply_code(c.json), "idempotency_key_reused");
    client_reply_free(&a);
    client_reply_free(&b);
    client_reply_free(&c);
    client_free(&frank);
    client_free(&op);
}

static void paging(void **state)
{
    (void)state;
    struct client op;
    test_client(&srv, &op, srv.operator_key);
    int64_t total = test_db_scalar(srv.db_url, "SELECT count(*) FROM identities");
    assert_true(total >= 3);
    char target[256] = "/v1/identities?limit=2";
    int64_t seen = 0;
    char last[CPX_ID_MAX] = "";
    for (int pages = 0; pages < 100; pages++) {
        struct client_reply r;
        assert_true(client_call(&op, "GET", target, NULL, true, NULL, &r));
        assert_int_equal(r.status, 200);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r.json, "items"), i, e)
        {
            const char *id = json_string_value(json_object_get(e, "id"));
            assert_true(strcmp(id, last) > 0); /* ordered, no repeats */
            snprintf(last, sizeof last, "%s", id);
            seen++;
        }
        const char *next = json_string_value(json_object_get(r.json, "next"));
        if (next == NULL) {
            client_reply_free(&r);
            break;
        }
        snprintf(target, sizeof target, "/v1/identities?limit=2&after=%s", next);
        client_reply_free(&r);
    }
    assert_int_equal(seen, total);
    struct client_reply r;
    assert_true(client_call(&op, "GET", "/v1/identities?limit=0", NULL, true, NULL, &r));
    assert_int_equal(r.status, 400);
    assert_string_equal(reply_code(r.json), "invalid_query");
    client_reply_free(&r);
    assert_true(client_call(&op, "GET", "/v1/identities?status=sleeping", NULL, true, NULL, &r));
    assert_int_equal(r.status, 400);
    client_reply_free(&r);
    client_free(&op);
}

/* A signed state-changing request replayed after a restart (empty in-memory cache) is still
 * refused: its signature was recorded in the database with the change. */
static void replay_refused_across_restart(void **state)
{
    (void)state;
    struct cpx_keyfile k = { 0 };
    cpx_keypair_generate(&k.kp);
    cpx_identity_id_for_key(k.kp.pk, k.identity);
    char pk[45], body[512], auth[CPX_AUTH_HEADER_MAX + 32];
    cpx_public_key_encode(k.kp.pk, pk);
    snprintf(
        body, sizeof body,
        "{\"name\":\"grace\",\"public_key\":\"%s\",\"reg_no\":\"GR-%s\",\"roles\":[\"buyer\"]}", pk,
        k.identity + 4);
    sign_header(&k, "POST", "/v1/identities", (int64_t)time(NULL), body, strlen(body), auth);
    const char *headers[] = { auth, "Content-Type: application/json", NULL };
    struct raw_reply r;
    raw_call(&srv, "POST", "/v1/identities", headers, body, strlen(body), &r);
    assert_int_equal(r.status, 201);
    raw_reply_free(&r);

    assert_int_equal(test_server_stop(&srv), 0);
    test_server_restart(&srv, NULL);
    raw_call(&srv, "POST", "/v1/identities", headers, body, strlen(body), &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(reply_code(r.json), "replayed_request");
    raw_reply_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(register_show_approve),
        cmocka_unit_test(reject_needs_reason),
        cmocka_unit_test(register_conflicts),
        cmocka_unit_test(idempotency_key),
        cmocka_unit_test(paging),
        cmocka_unit_test(replay_refused_across_restart),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
