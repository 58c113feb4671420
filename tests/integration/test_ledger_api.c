/*
 * End-to-end tests of the ledger in a real cpxd over HTTPS: identity events become records that
 * the library's auditor verifies (signatures, checkpoints, roots), receipts and consistency proofs
 * verify against the exchange's key, the tables refuse rewrites, identity bodies must be
 * canonical, key rotation works as a record, identities older than the ledger become genesis
 * records, and the export holds exactly what the API serves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/merkle.h"
#include "tests/support/live_ledger.h"
#include "tests/support/testenv.h"

static struct test_server srv;
static struct cpx_note_verifier verifier;

static int setup(void **state)
{
    (void)state;
    test_server_start(&srv, NULL, NULL);
    live_verifier(srv.verifier_key, &verifier);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(test_server_stop(&srv), 0);
    return 0;
}

/* Sends a request and returns the reply (caller frees). */
static struct client_reply call(struct client *cl, const char *method, const char *target,
                                const char *body, bool sign)
{
    struct client_reply r;
    assert_true(client_call(cl, method, target, body, sign, NULL, &r));
    return r;
}

/* Asserts the reply's status and error code ("" for none) and frees it. */
static void expect(struct client_reply r, long status, const char *code)
{
    if (r.status != status || strcmp(reply_code(r.json), code) != 0)
        fail_msg("got %ld %s, want %ld %s", r.status, r.body ? r.body : "", status, code);
    client_reply_free(&r);
}

/* The ledger's size, from the latest checkpoint. */
static uint64_t ledger_size(struct client *cl)
{
    struct client_reply r = call(cl, "GET", "/v1/ledger/checkpoint", NULL, false);
    assert_int_equal(r.status, 200);
    uint64_t n = (uint64_t)json_integer_value(json_object_get(r.json, "size"));
    client_reply_free(&r);
    return n;
}

/* Downloads the ledger and asserts that the auditor finds nothing; returns the record count. */
static size_t audit_clean(struct client *cl)
{
    return live_audit_clean(cl, srv.verifier_key);
}

/* Rotates cl's key to a fresh one (cl then signs with it); returns the reply's status. */
static long rotate(struct client *cl, struct cpx_keyfile *next)
{
    *next = cl->key;
    cpx_keypair_generate(&next->kp);
    char pk[45], body[128], target[128];
    cpx_public_key_encode(next->kp.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    snprintf(target, sizeof target, "/v1/identities/%s/keys", cl->key.identity);
    struct client_reply r = call(cl, "POST", target, body, true);
    long status = r.status;
    if (status == 200) {
        assert_true(json_integer_value(json_object_get(r.json, "ledger_seq")) > 0);
        cl->key = *next;
    }
    client_reply_free(&r);
    return status;
}

static void identity_events_audit(void **state)
{
    (void)state;
    struct client anon, op, a, b, c;
    char ida[CPX_ID_MAX], idb[CPX_ID_MAX], idc[CPX_ID_MAX], target[128];
    test_client(&srv, &anon, NULL);
    uint64_t before = ledger_size(&anon);
    test_identity(&srv, "alpha", "buyer,provider", true, &a, ida);
    test_identity(&srv, "beta", "regulator", true, &b, idb);
    test_identity(&srv, "gamma", "buyer", false, &c, idc);
    test_client(&srv, &op, srv.operator_key);
    snprintf(target, sizeof target, "/v1/identities/%s/reject", idc);
    struct client_reply r =
        call(&op, "POST", target, "{\"reason\":\"unknown company — 未知\"}", true);
    assert_int_equal(r.status, 200);
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(r.json, "ledger_seq"));
    client_reply_free(&r);
    struct cpx_keyfile next;
    assert_int_equal(rotate(&a, &next), 200);
    /* 3 registrations, 3 decisions, 1 rotation; the rejection was the 6th of them */
    assert_int_equal(ledger_size(&anon), before + 7);
    assert_int_equal(seq, before + 5);
    assert_int_equal(audit_clean(&anon), before + 7);
    /* operators can watch the ledger grow and checkpoints being signed */
    struct client_reply m = call(&anon, "GET", "/metrics", NULL, false);
    char line[64];
    snprintf(line, sizeof line, "\ncpx_ledger_size %" PRIu64 "\n", before + 7);
    assert_non_null(strstr(m.body, line));
    assert_non_null(strstr(m.body, "\ncpx_ledger_checkpoints_signed_total "));
    assert_null(strstr(m.body, "\ncpx_ledger_last_checkpoint_timestamp_seconds 0.000000\n"));
    client_reply_free(&m);
    client_free(&anon);
    client_free(&op);
    client_free(&a);
    client_free(&b);
    client_free(&c);
}

/* Opens a checkpoint note with the exchange's key. */
static void open_checkpoint(const char *note, struct cpx_checkpoint *cp)
{
    assert_int_equal(cpx_checkpoint_open(note, strlen(note), &verifier, cp), CPX_NOTE_OK);
}

static void receipts_verify(void **state)
{
    (void)state;
    struct client anon, a;
    char ida[CPX_ID_MAX], target[128];
    test_identity(&srv, "delta", "buyer", true, &a, ida);
    test_client(&srv, &anon, NULL);
    struct live_ledger l;
    live_download(&anon, &l);
    assert_true(l.ncp >= 2);
    struct cpx_sha256_ctx *h = cpx_sha256_ctx_new();
    for (size_t i = 0; i < l.n; i++) {
        /* against the latest checkpoint, and against the first one that covers the record */
        uint64_t first_cover = 0;
        for (size_t k = 0; k < l.ncp && first_cover == 0; k++)
            if (l.cp_size[k] > l.seq[i])
                first_cover = l.cp_size[k];
        for (int which = 0; which < 2; which++) {
            if (which == 0)
                snprintf(target, sizeof target, "/v1/ledger/records/%" PRIu64, l.seq[i]);
            else
                snprintf(target, sizeof target, "/v1/ledger/records/%" PRIu64 "?size=%" PRIu64,
                         l.seq[i], first_cover);
            struct client_reply r = call(&anon, "GET", target, NULL, false);
            assert_int_equal(r.status, 200);
            const char *rec = json_string_value(json_object_get(r.json, "record"));
            assert_string_equal(rec, l.rec[i]);
            struct cpx_checkpoint cp;
            open_checkpoint(
                json_string_value(json_object_get(json_object_get(r.json, "checkpoint"), "note")),
                &cp);
            if (which == 1)
                assert_int_equal(cp.size, first_cover);
            char *proof =
                json_dumps(json_object_get(r.json, "inclusion"), JSON_COMPACT | JSON_SORT_KEYS);
            struct cpx_inclusion_proof p;
            assert_null(cpx_inclusion_proof_parse(proof, strlen(proof), &p));
            free(proof);
            uint8_t leaf[32];
            cpx_merkle_leaf_hash(h, rec, strlen(rec), leaf);
            assert_int_equal(p.leaf_index, l.seq[i]);
            assert_int_equal(p.tree_size, cp.size);
            assert_true(cpx_merkle_verify_inclusion(h, p.leaf_index, p.tree_size, leaf,
                                                    (const uint8_t(*)[32])p.hashes, p.n, cp.root));
            client_reply_free(&r);
        }
    }
    /* every pair of checkpoints is consistent */
    for (size_t i = 0; i < l.ncp; i++)
        for (size_t j = i; j < l.ncp; j++) {
            snprintf(target, sizeof target,
                     "/v1/ledger/consistency?first=%" PRIu64 "&second=%" PRIu64, l.cp_size[i],
                     l.cp_size[j]);
            struct client_reply r = call(&anon, "GET", target, NULL, false);
            assert_int_equal(r.status, 200);
            struct cpx_checkpoint c1, c2;
            open_checkpoint(l.cp[i], &c1);
            open_checkpoint(l.cp[j], &c2);
            struct cpx_consistency_proof p;
            assert_null(cpx_consistency_proof_parse(r.body, strlen(r.body) - 1, &p));
            assert_true(cpx_merkle_verify_consistency(h, c1.size, c2.size, c1.root, c2.root,
                                                      (const uint8_t(*)[32])p.hashes, p.n));
            client_reply_free(&r);
        }
    cpx_sha256_ctx_free(h);
    uint64_t n = l.n;
    live_free(&l);

    /* what is not there */
    snprintf(target, sizeof target, "/v1/ledger/records/%" PRIu64, n + 5);
    expect(call(&anon, "GET", target, NULL, false), 404, "record_not_found");
    expect(call(&anon, "GET", "/v1/ledger/records/x", NULL, false), 404, "record_not_found");
    expect(call(&anon, "GET", "/v1/ledger/records/0?size=999999", NULL, false), 404,
           "checkpoint_not_found");
    expect(call(&anon, "GET", "/v1/ledger/records/3?size=2", NULL, false), 400, "invalid_query");
    expect(call(&anon, "GET", "/v1/ledger/records/0?size=-1", NULL, false), 400, "invalid_query");
    expect(call(&anon, "GET", "/v1/ledger/checkpoints/0", NULL, false), 404,
           "checkpoint_not_found");
    expect(call(&anon, "GET", "/v1/ledger/checkpoints/007", NULL, false), 404,
           "checkpoint_not_found");
    expect(call(&anon, "GET", "/v1/ledger/consistency?first=1", NULL, false), 400, "invalid_query");
    expect(call(&anon, "GET", "/v1/ledger/consistency?first=3&second=2", NULL, false), 400,
           "invalid_query");
    expect(call(&anon, "GET", "/v1/ledger/consistency?first=1&second=99999999", NULL, false), 400,
           "invalid_query");
    expect(call(&anon, "GET", "/v1/ledger/consistency?first=1&second=99999999999999999999999", NULL,
                false),
           400, "invalid_query");
    expect(call(&anon, "GET", "/v1/ledger/records?after=abc", NULL, false), 400, "invalid_query");
    /* the largest cursor: an empty last page, not an error */
    struct client_reply last =
        call(&anon, "GET", "/v1/ledger/records?after=9223372036854775807", NULL, false);
    assert_int_equal(last.status, 200);
    assert_int_equal(json_array_size(json_object_get(last.json, "items")), 0);
    assert_true(json_is_null(json_object_get(last.json, "next")));
    client_reply_free(&last);
    /* a page that ends exactly at the end of the log is the last page */
    snprintf(target, sizeof target, "/v1/ledger/records?limit=%" PRIu64, n);
    last = call(&anon, "GET", target, NULL, false);
    assert_int_equal(json_array_size(json_object_get(last.json, "items")), n);
    assert_true(json_is_null(json_object_get(last.json, "next")));
    client_reply_free(&last);
    snprintf(target, sizeof target, "/v1/ledger/records?limit=%" PRIu64, n - 1);
    last = call(&anon, "GET", target, NULL, false);
    assert_int_equal(json_array_size(json_object_get(last.json, "items")), n - 1);
    char want_next[24];
    snprintf(want_next, sizeof want_next, "%" PRIu64, n - 2);
    assert_string_equal(json_string_value(json_object_get(last.json, "next")), want_next);
    client_reply_free(&last);
    expect(call(&anon, "GET", "/v1/ledger/records?limit=0", NULL, false), 400, "invalid_query");
    expect(call(&anon, "POST", "/v1/ledger/records", "{}", false), 405, "method_not_allowed");
    client_free(&anon);
    client_free(&a);
}

/* Runs sql as role cpx (the application's role) and asserts the database refuses it. */
static void refused(const char *sql)
{
    PGconn *db = test_db_connect(srv.db_url);
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        fail_msg("the database accepted: %s", sql);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (msg == NULL || (strstr(msg, "append-only") == NULL && strstr(msg, "forward") == NULL))
        fail_msg("%s: unexpected error %s", sql, msg ? msg : "(none)");
    PQclear(r);
    PQfinish(db);
}

static void tables_append_only(void **state)
{
    (void)state;
    refused("UPDATE ledger_records SET record = record || '\\x20'::bytea WHERE seq = 0");
    refused("DELETE FROM ledger_records WHERE seq = 0");
    refused("TRUNCATE ledger_records");
    refused("UPDATE ledger_nodes SET hash = hash WHERE level = 0");
    refused("DELETE FROM ledger_nodes");
    refused("TRUNCATE ledger_nodes");
    refused("UPDATE ledger_checkpoints SET note = note");
    refused("DELETE FROM ledger_checkpoints");
    refused("TRUNCATE ledger_checkpoints");
    refused("UPDATE ledger_head SET size = 0");
    refused("DELETE FROM ledger_head");
}

static void identity_bodies_canonical(void **state)
{
    (void)state;
    struct client anon, op, e;
    char ide[CPX_ID_MAX], target[128], body[1024], pk[45];
    test_client(&srv, &anon, NULL);
    test_client(&srv, &op, srv.operator_key);
    test_identity(&srv, "epsilon", "buyer", false, &e, ide);
    uint64_t before = ledger_size(&anon);

    /* register: keys out of order, whitespace, roles out of order or repeated */
    struct cpx_keyfile k;
    cpx_keypair_generate(&k.kp);
    cpx_identity_id_for_key(k.kp.pk, k.identity);
    struct client nk = anon;
    nk.key = k;
    nk.have_key = true;
    cpx_public_key_encode(k.kp.pk, pk);
    const char *const forms[] = {
        "{\"reg_no\":\"Z-1\",\"name\":\"zeta\",\"public_key\":\"%s\",\"roles\":[\"buyer\"]}",
        "{\"name\": \"zeta\",\"public_key\":\"%s\",\"reg_no\":\"Z-1\",\"roles\":[\"buyer\"]}",
        "{\"name\":\"zeta\",\"public_key\":\"%s\",\"reg_no\":\"Z-1\",\"roles\":[\"provider\","
        "\"buyer\"]}",
        "{\"name\":\"z\\u0065ta\",\"public_key\":\"%s\",\"reg_no\":\"Z-1\",\"roles\":[\"buyer\"]}",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(body, sizeof body, forms[i], pk);
        expect(call(&nk, "POST", "/v1/identities", body, true), 400, "body_not_canonical");
    }
    /* decisions: no body, whitespace, out of order */
    snprintf(target, sizeof target, "/v1/identities/%s/approve", ide);
    expect(call(&op, "POST", target, NULL, true), 400, "body_not_canonical");
    expect(call(&op, "POST", target, "{ }", true), 400, "body_not_canonical");
    expect(call(&op, "POST", target, "{\"reason\":\"fine\"}", true), 400, "unknown_field");
    snprintf(target, sizeof target, "/v1/identities/%s/reject", ide);
    char longer[700];
    memset(longer, 0, sizeof longer);
    for (int i = 0; i < 170; i++)
        strcat(longer, "未"); /* 170 characters, 510 bytes: over the ledger's 500 */
    snprintf(body, sizeof body, "{\"reason\":\"%s\"}", longer);
    expect(call(&op, "POST", target, body, true), 400, "out_of_range");
    assert_int_equal(ledger_size(&anon), before);
    client_free(&anon);
    client_free(&op);
    client_free(&e);
}

static void key_rotation(void **state)
{
    (void)state;
    struct client anon, t, u;
    char idt[CPX_ID_MAX], idu[CPX_ID_MAX], target[128], body[128], pk[45];
    test_client(&srv, &anon, NULL);
    test_identity(&srv, "theta", "buyer", true, &t, idt);
    test_identity(&srv, "upsilon", "provider", true, &u, idu);
    struct client old = t;
    struct cpx_keyfile next;
    assert_int_equal(rotate(&t, &next), 200);

    /* the old key is gone, the new one works */
    snprintf(target, sizeof target, "/v1/identities/%s", idt);
    expect(call(&old, "GET", target, NULL, true), 401, "bad_signature");
    struct client_reply r = call(&t, "GET", target, NULL, true);
    assert_int_equal(r.status, 200);
    cpx_public_key_encode(next.kp.pk, pk);
    assert_string_equal(json_string_value(json_object_get(r.json, "public_key")), pk);
    client_reply_free(&r);

    /* back to the retired key, to another identity's key, the same key, someone else's */
    snprintf(target, sizeof target, "/v1/identities/%s/keys", idt);
    cpx_public_key_encode(old.key.kp.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    expect(call(&t, "POST", target, body, true), 409, "key_in_use");
    cpx_public_key_encode(u.key.kp.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    expect(call(&t, "POST", target, body, true), 409, "key_in_use");
    cpx_public_key_encode(t.key.kp.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    expect(call(&t, "POST", target, body, true), 400, "invalid_field");
    expect(call(&u, "POST", target, "{\"new_public_key\":\"AAAA\"}", true), 400, "invalid_field");
    cpx_public_key_encode(next.kp.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    expect(call(&u, "POST", target, body, true), 403, "forbidden_role");

    /* only an approved identity rotates: the ledger would not accept a pending one's key */
    struct client pend;
    char idp[CPX_ID_MAX];
    test_identity(&srv, "pending-rho", "buyer", false, &pend, idp);
    snprintf(target, sizeof target, "/v1/identities/%s/keys", idp);
    cpx_public_key_encode(next.kp.pk, pk);
    struct cpx_keyfile fresh;
    cpx_keypair_generate(&fresh.kp);
    cpx_public_key_encode(fresh.kp.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    expect(call(&pend, "POST", target, body, true), 403, "not_approved");
    client_free(&pend);

    /* the retired key cannot register a new identity either */
    struct client reuse = anon;
    reuse.key = old.key;
    reuse.have_key = true;
    cpx_public_key_encode(old.key.kp.pk, pk);
    snprintf(body, sizeof body,
             "{\"name\":\"again\",\"public_key\":\"%s\",\"reg_no\":\"AG-1\",\"roles\":[\"buyer\"]}",
             pk);
    struct client_reply rr = call(&reuse, "POST", "/v1/identities", body, true);
    assert_int_equal(rr.status, 409);
    client_reply_free(&rr);

    /* twice more, and the ledger still audits */
    assert_int_equal(rotate(&t, &next), 200);
    assert_int_equal(rotate(&t, &next), 200);
    audit_clean(&anon);
    client_free(&anon);
    client_free(&t);
    client_free(&u);
}

static void genesis_records(void **state)
{
    (void)state;
    struct test_server g;
    test_server_start(&g, NULL, NULL);
    struct client anon, a, b;
    char ida[CPX_ID_MAX], idb[CPX_ID_MAX];
    test_identity(&g, "old-one", "buyer", true, &a, ida);
    test_identity(&g, "old-two", "provider", false, &b, idb);
    struct client c3;
    char idc[CPX_ID_MAX], sql[256];
    test_identity(&g, "old-three", "buyer", false, &c3, idc);
    client_free(&c3);
    assert_int_equal(test_server_stop(&g), 0);
    /* rejected with a reason the old schema allowed (500 characters) but the ledger does not
     * (500 bytes): recorded cut short on a character boundary */
    snprintf(sql, sizeof sql,
             "UPDATE identities SET status = 'rejected', decided_at = now(), "
             "decision_reason = 'a' || repeat('é', 499) WHERE id = '%s'",
             idc);
    test_db_exec(g.db_url, sql);
    /* a database from before the ledger: identities, but no records */
    test_db_exec(g.db_url, "SET session_replication_role = replica; "
                           "DELETE FROM ledger_records; DELETE FROM ledger_nodes; "
                           "DELETE FROM ledger_checkpoints; UPDATE ledger_head SET size = 0");
    test_server_restart(&g, NULL);
    test_client(&g, &anon, NULL);
    struct live_ledger l;
    live_download(&anon, &l);
    struct cpx_note_verifier v;
    live_verifier(g.verifier_key, &v);
    assert_int_equal(live_audit(&l, &v, NULL, 0), 0);
    /* operator, old-one, old-two, old-three registered; operator and old-one approved,
     * old-three rejected */
    assert_int_equal(l.n, 7);
    for (size_t i = 0; i < l.n; i++)
        assert_null(strstr(l.rec[i], "\"party\"")); /* the exchange vouches for all of them */
    live_free(&l);
    /* later events are recorded as usual */
    struct client op;
    test_client(&g, &op, g.operator_key);
    char target[128];
    snprintf(target, sizeof target, "/v1/identities/%s/approve", idb);
    expect(call(&op, "POST", target, "{}", true), 200, "");
    live_download(&anon, &l);
    assert_int_equal(l.n, 8);
    assert_int_equal(live_audit(&l, &v, NULL, 0), 0);
    live_free(&l);
    assert_int_equal(test_server_stop(&g), 0);
    client_free(&anon);
    client_free(&op);
    client_free(&a);
    client_free(&b);
}

static void export_matches_api(void **state)
{
    (void)state;
    struct client anon;
    test_client(&srv, &anon, NULL);
    struct live_ledger l;
    live_download(&anon, &l);
    struct raw_reply r;
    raw_call(&srv, "GET", "/v1/ledger/export", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    size_t line = 0, ncp = 0, nrec = 0;
    for (char *p = r.body, *end; *p; p = end + 1, line++) {
        end = strchr(p, '\n');
        assert_non_null(end);
        json_t *j = json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(j);
        if (line == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "format")),
                                "cpx-ledger-export");
            assert_string_equal(json_string_value(json_object_get(j, "origin")),
                                TEST_LEDGER_ORIGIN);
            assert_int_equal(json_integer_value(json_object_get(j, "size")), l.n);
        } else if (json_object_get(j, "checkpoint") != NULL) {
            assert_true(ncp < l.ncp);
            assert_string_equal(json_string_value(json_object_get(j, "checkpoint")), l.cp[ncp]);
            ncp++;
        } else {
            assert_true(nrec < l.n);
            assert_string_equal(json_string_value(json_object_get(j, "record")), l.rec[nrec]);
            assert_int_equal(json_integer_value(json_object_get(j, "seq")), l.seq[nrec]);
            nrec++;
        }
        json_decref(j);
    }
    assert_int_equal(ncp, l.ncp);
    assert_int_equal(nrec, l.n);
    raw_reply_free(&r);
    live_free(&l);
    client_free(&anon);
}

/* Sends GET with exactly this request target (bytes as given) and returns the status. */
static long get_raw_target(const char *target, char *body, size_t cap)
{
    CURL *c = curl_easy_init();
    char url[128], cacert[512];
    snprintf(url, sizeof url, "%s/", srv.url);
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
    FILE *out = fmemopen(body, cap, "w");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_REQUEST_TARGET, target);
    curl_easy_setopt(c, CURLOPT_CAINFO, cacert);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    fclose(out);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void targets_must_be_ascii(void **state)
{
    (void)state;
    /* a signature may cover any byte of a target, but a record keeps only visible ASCII */
    const char *const bad[] = { "/v1/ledger/records?x=\xc3\xa9", "/v1/ledger/records?x=\x7f",
                                "/v1/identities/\x01" };
    static char body[256 * 1024];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(body, 0, sizeof body);
        assert_int_equal(get_raw_target(bad[i], body, sizeof body - 1), 400);
        assert_non_null(strstr(body, "invalid_target"));
    }
    memset(body, 0, sizeof body);
    assert_int_equal(get_raw_target("/v1/ledger/records?limit=1&x=%C3%A9", body, sizeof body - 1),
                     200);
}

/* An operator approving in several threads while it rotates its own key. */
struct approver {
    struct client cl;
    const char (*ids)[CPX_ID_MAX];
    int from, to;
    atomic_int *sent; /* approvals sent by all threads */
};

static void *approve_some(void *arg)
{
    struct approver *a = arg;
    for (int i = a->from; i < a->to; i++) {
        char target[128];
        snprintf(target, sizeof target, "/v1/identities/%s/approve", a->ids[i]);
        struct client_reply r;
        if (client_call(&a->cl, "POST", target, "{}", true, NULL, &r))
            client_reply_free(&r);
        atomic_fetch_add(a->sent, 1);
    }
    return NULL;
}

static void rotation_races_signed_changes(void **state)
{
    (void)state;
    enum { IDS = 64, THREADS = 4 };
    struct test_server g;
    test_server_start(&g, NULL, NULL);
    struct client op, anon;
    test_client(&g, &op, g.operator_key);
    test_client(&g, &anon, NULL);
    static char ids[IDS][CPX_ID_MAX];
    for (int i = 0; i < IDS; i++) {
        struct client cl;
        char name[32];
        snprintf(name, sizeof name, "race-%d", i);
        test_identity(&g, name, "buyer", false, &cl, ids[i]);
        client_free(&cl);
    }
    pthread_t t[THREADS];
    struct approver a[THREADS];
    atomic_int sent = 0;
    for (int k = 0; k < THREADS; k++) {
        test_client(&g, &a[k].cl, g.operator_key);
        a[k].ids = (const char(*)[CPX_ID_MAX])ids;
        a[k].from = k * IDS / THREADS;
        a[k].to = (k + 1) * IDS / THREADS;
        a[k].sent = &sent;
        pthread_create(&t[k], NULL, approve_some, &a[k]);
    }
    /* rotate while approvals signed with the old key are in flight */
    while (atomic_load(&sent) < IDS / 4)
        usleep(200);
    struct cpx_keyfile next;
    assert_int_equal(rotate(&op, &next), 200);
    for (int k = 0; k < THREADS; k++) {
        pthread_join(t[k], NULL);
        client_free(&a[k].cl);
    }
    /* whichever approvals won, none is recorded under a key no longer in force */
    live_audit_clean(&anon, g.verifier_key);
    assert_int_equal(test_server_stop(&g), 0);
    client_free(&op);
    client_free(&anon);
}

/* Runs sql as role cpx on url and asserts that PostgreSQL refuses it for lack of rights. */
static void denied(const char *url, const char *sql)
{
    PGconn *db = test_db_connect(url);
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        fail_msg("the application role was allowed: %s", sql);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state == NULL || strcmp(state, "42501") != 0) /* insufficient_privilege */
        fail_msg("%s: %s, not a privilege error", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(db);
}

static void admin_owns_the_schema(void **state)
{
    (void)state;
    char url[512], admin[600];
    test_db_create(url);
    /* the same database as the superuser of the test cluster */
    const char *user = strstr(url, "user=cpx");
    assert_non_null(user);
    snprintf(admin, sizeof admin, "%.*suser=cpx_admin%s", (int)(user - url), url,
             user + strlen("user=cpx"));
    /* first as before this mode existed: cpxd's role owns it all, and plants a schema of its own */
    struct test_server g;
    test_server_start(&g, url, NULL);
    struct client a, anon;
    char ida[CPX_ID_MAX];
    test_identity(&g, "restricted", "buyer", true, &a, ida);
    assert_int_equal(test_server_stop(&g), 0);
    PGconn *app = test_db_connect(url);
    PGresult *r = PQexec(app, "CREATE SCHEMA evil; CREATE FUNCTION evil.f() RETURNS int "
                              "LANGUAGE sql AS 'SELECT 1'");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(app);
    /* then with an administrator: everything changes hands */
    const char *args[] = { "--admin-database-url", admin, NULL };
    test_server_restart(&g, args);
    char key[600];
    snprintf(key, sizeof key, "%s/restricted.key", g.dir);
    client_free(&a);
    test_client(&g, &a, key); /* the restarted cpxd listens on another port */
    struct cpx_keyfile next;
    assert_int_equal(rotate(&a, &next), 200);
    test_client(&g, &anon, NULL);
    assert_int_equal(live_audit_clean(&anon, g.verifier_key), 5);
    /* cpxd's own role can no longer get round the triggers, nor drop what they guard */
    denied(url, "ALTER TABLE ledger_records DISABLE TRIGGER ALL");
    denied(url, "UPDATE ledger_records SET record = record");
    denied(url, "DELETE FROM ledger_nodes");
    denied(url, "DROP TABLE ledger_checkpoints");
    denied(url, "CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$");
    denied(url, "CREATE TABLE sneaky (x int)");
    denied(url, "UPDATE retired_keys SET identity_id = identity_id");
    denied(url, "CREATE SCHEMA evil2");
    denied(url, "CREATE FUNCTION evil.g() RETURNS int LANGUAGE sql AS 'SELECT 2'");
    denied(url, "CREATE OR REPLACE FUNCTION evil.f() RETURNS int LANGUAGE sql AS 'SELECT 3'");
    denied(url, "CREATE DATABASE sneaky");
    /* and a restart (nothing to hand over any more) keeps working */
    assert_int_equal(test_server_stop(&g), 0);
    test_server_restart(&g, args);
    struct client b, anon2;
    char idb[CPX_ID_MAX];
    test_identity(&g, "after-restart", "provider", true, &b, idb);
    test_client(&g, &anon2, NULL);
    assert_int_equal(ledger_size(&anon2), 7);
    assert_int_equal(test_server_stop(&g), 0);
    client_free(&a);
    client_free(&b);
    client_free(&anon);
    client_free(&anon2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identity_events_audit),
        cmocka_unit_test(receipts_verify),
        cmocka_unit_test(tables_append_only),
        cmocka_unit_test(identity_bodies_canonical),
        cmocka_unit_test(key_rotation),
        cmocka_unit_test(genesis_records),
        cmocka_unit_test(export_matches_api),
        cmocka_unit_test(targets_must_be_ascii),
        cmocka_unit_test(rotation_races_signed_changes),
        cmocka_unit_test(admin_owns_the_schema),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
