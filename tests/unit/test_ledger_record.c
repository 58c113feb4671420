/*
 * Tests of ledger/record.c: envelope round trips, refusal of every malformed envelope, the party
 * signature, and the identity-family payloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/record.h"
#include "tests/support/ledger_fixtures.h"

static int setup(void **state)
{
    (void)state;
    return cpx_crypto_init();
}

static void test_kind_names(void **state)
{
    (void)state;
    for (int k = 1; k < CPX_KIND_COUNT; k++) {
        const char *name = cpx_kind_name((enum cpx_kind)k);
        assert_non_null(name);
        assert_int_equal(cpx_kind_from_name(name, strlen(name)), k);
    }
    assert_null(cpx_kind_name(CPX_KIND_UNKNOWN));
    assert_null(cpx_kind_name(CPX_KIND_COUNT));
    assert_int_equal(cpx_kind_from_name("orders", 6), CPX_KIND_UNKNOWN);
    assert_int_equal(cpx_kind_from_name("order", 4), CPX_KIND_UNKNOWN);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct fx_log l;
    struct fx_party buyer;
    fx_log_init(&l);
    fx_party_new(&buyer);
    uint64_t s0 = fx_bill(&l, 7);
    uint64_t s1 = fx_order(&l, &buyer, 1);
    assert_int_equal(s0, 0);
    assert_int_equal(s1, 1);
    char want[256];
    snprintf(want, sizeof want,
             "{\"kind\":\"bill\",\"payload\":{\"amount\":1000007,\"id\":\"bil_000007\"},\"seq\":0,"
             "\"ts\":1764403200000,\"v\":1}");
    assert_int_equal(l.len[0], strlen(want));
    assert_memory_equal(l.rec[0], want, l.len[0]);

    struct cpx_record r;
    cpx_record_init(&r);
    assert_int_equal(cpx_record_decode(&r, l.rec[1], l.len[1]), CPX_RECORD_OK);
    assert_int_equal(r.seq, 1);
    assert_int_equal(r.kind, CPX_KIND_ORDER);
    assert_string_equal(r.kind_name, "order");
    assert_int_equal(r.ts, 1764403200001);
    assert_true(r.has_party);
    assert_string_equal(r.party.id, buyer.id);
    assert_string_equal(r.party.method, "POST");
    assert_string_equal(r.party.target, "/v1/orders");
    assert_int_equal(r.party.ts, 1764403200);
    assert_true(r.party.body_len > 0 && r.party.body[0] == '{');
    assert_true(cpx_record_party_verify(&r, buyer.kp.pk));
    struct fx_party other;
    fx_party_new(&other);
    assert_false(cpx_record_party_verify(&r, other.kp.pk));
    assert_int_equal(memcmp(r.payload, "{\"buyer\":", 9), 0);
    assert_int_equal(r.payload[r.payload_len - 1], '}');

    /* Re-encoding the decoded record gives the same bytes. */
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    assert_int_equal(cpx_record_encode(&w, &r), CPX_CANON_OK);
    const uint8_t *out;
    size_t len;
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_OK);
    assert_int_equal(len, l.len[1]);
    assert_memory_equal(out, l.rec[1], len);

    /* An exchange record decodes without a party. */
    assert_int_equal(cpx_record_decode(&r, l.rec[0], l.len[0]), CPX_RECORD_OK);
    assert_false(r.has_party);
    assert_false(cpx_record_party_verify(&r, buyer.kp.pk));

    /* Encoding refuses a payload that is not an object, bad party fields, negative ts. */
    struct cpx_record e;
    cpx_record_init(&e);
    e.kind = CPX_KIND_BILL;
    e.payload = (const uint8_t *)"[1]";
    e.payload_len = 3;
    cpx_canon_writer_reset(&w);
    assert_int_not_equal(cpx_record_encode(&w, &e), CPX_CANON_OK);
    e.payload = (const uint8_t *)"{\"a\":1.5}";
    e.payload_len = 9;
    cpx_canon_writer_reset(&w);
    assert_int_equal(cpx_record_encode(&w, &e), CPX_CANON_E_NUMBER);
    e.payload = (const uint8_t *)"{}";
    e.payload_len = 2;
    e.has_party = true;
    snprintf(e.party.id, sizeof e.party.id, "nobody");
    cpx_canon_writer_reset(&w);
    assert_int_not_equal(cpx_record_encode(&w, &e), CPX_CANON_OK);
    cpx_canon_writer_free(&w);
    cpx_record_free(&e);
    cpx_record_free(&r);
    fx_log_free(&l);
}

static void test_envelope_rejections(void **state)
{
    (void)state;
    struct fx_party p;
    fx_party_new(&p);
    char sig[89], doc[8192];
    uint8_t zero[64] = { 0 };
    cpx_b64_encode(zero, 64, sig);
    /* A valid party part, to be varied one member at a time. */
    char party[512];
    snprintf(party, sizeof party,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"/v1/orders\",\"ts\":1}",
             p.id, sig);
    struct cpx_record r;
    cpx_record_init(&r);
    snprintf(doc, sizeof doc,
             "{\"kind\":\"order\",\"party\":%s,\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}", party);
    assert_int_equal(cpx_record_decode(&r, doc, strlen(doc)), CPX_RECORD_OK);
    assert_int_equal(r.party.body_len, 2);
    assert_memory_equal(r.party.body, "{}", 2);

    static const char *const canon_bad[] = {
        "{\"kind\":\"bill\", \"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}",
        "{\"payload\":{},\"kind\":\"bill\",\"seq\":0,\"ts\":0,\"v\":1}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":0,\"ts\":0.5,\"v\":1}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}\n",
    };
    for (size_t i = 0; i < sizeof canon_bad / sizeof canon_bad[0]; i++)
        assert_int_equal(cpx_record_decode(&r, canon_bad[i], strlen(canon_bad[i])),
                         CPX_RECORD_E_CANON);

    static const char *const envelope_bad[] = {
        "[]",
        "{}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":0,\"ts\":0}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":0,\"ts\":0,\"v\":2}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":-1,\"ts\":0,\"v\":1}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":0,\"ts\":-5,\"v\":1}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":\"0\",\"ts\":0,\"v\":1}",
        "{\"kind\":\"Bill\",\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}",
        "{\"kind\":\"\",\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}",
        ("{\"kind\":\"a_very_long_kind_name_beyond_31_chars\",\"payload\":{},\"seq\":0,"
         "\"ts\":0,\"v\":1}"),
        "{\"kind\":\"bill\",\"payload\":[],\"seq\":0,\"ts\":0,\"v\":1}",
        "{\"kind\":\"bill\",\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1,\"x\":0}",
        "{\"kind\":\"bill\",\"party\":null,\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}",
        "{\"kind\":1,\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}",
    };
    for (size_t i = 0; i < sizeof envelope_bad / sizeof envelope_bad[0]; i++) {
        if (cpx_record_decode(&r, envelope_bad[i], strlen(envelope_bad[i])) !=
            CPX_RECORD_E_ENVELOPE)
            fail_msg("envelope %zu accepted: %s", i, envelope_bad[i]);
        assert_non_null(r.error);
    }

    /* Party parts wrong in one member each. */
    char bad_party[8][512];
    snprintf(bad_party[0], 512,
             "{\"body\":\"e30=\",\"id\":\"nobody\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"/v1/orders\",\"ts\":1}",
             sig);
    snprintf(bad_party[1], 512,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"post\",\"sig\":\"%s\","
             "\"target\":\"/v1/orders\",\"ts\":1}",
             p.id, sig);
    snprintf(bad_party[2], 512,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"v1/orders\",\"ts\":1}",
             p.id, sig);
    snprintf(bad_party[3], 512,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"AAAA\","
             "\"target\":\"/v1/orders\",\"ts\":1}",
             p.id);
    snprintf(bad_party[4], 512,
             "{\"body\":\"e31=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"/v1/orders\",\"ts\":1}",
             p.id, sig);
    snprintf(bad_party[5], 512,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"/v1/orders\",\"ts\":-1}",
             p.id, sig);
    snprintf(bad_party[6], 512,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"/v1/a b\",\"ts\":1}",
             p.id, sig);
    snprintf(bad_party[7], 512,
             "{\"body\":\"e30=\",\"id\":\"%s\",\"method\":\"POST\",\"sig\":\"%s\","
             "\"target\":\"/v1/orders\"}",
             p.id, sig);
    for (size_t i = 0; i < 8; i++) {
        snprintf(doc, sizeof doc,
                 "{\"kind\":\"order\",\"party\":%s,\"payload\":{},\"seq\":0,\"ts\":0,\"v\":1}",
                 bad_party[i]);
        if (cpx_record_decode(&r, doc, strlen(doc)) != CPX_RECORD_E_ENVELOPE)
            fail_msg("party %zu accepted", i);
    }
    /* Unknown kinds decode (auditors report them); the name is kept. */
    const char *unk = "{\"kind\":\"teleport\",\"payload\":{},\"seq\":3,\"ts\":0,\"v\":1}";
    assert_int_equal(cpx_record_decode(&r, unk, strlen(unk)), CPX_RECORD_OK);
    assert_int_equal(r.kind, CPX_KIND_UNKNOWN);
    assert_string_equal(r.kind_name, "teleport");
    cpx_record_free(&r);
}

/* Decodes a one-record log's record i into r. */
static void decode(struct fx_log *l, size_t i, struct cpx_record *r)
{
    assert_int_equal(cpx_record_decode(r, l->rec[i], l->len[i]), CPX_RECORD_OK);
}

static void test_identity_payloads(void **state)
{
    (void)state;
    struct fx_log l;
    struct fx_party p, op;
    fx_log_init(&l);
    fx_party_new(&p);
    fx_party_new(&op);
    fx_register(&l, &p, CPX_ROLE_BUYER | CPX_ROLE_PROVIDER);
    fx_decide(&l, &p, &op, 1);
    fx_decide(&l, &p, &op, 0);
    struct cpx_keypair next;
    cpx_keypair_generate(&next);
    uint8_t old_pk[32];
    memcpy(old_pk, p.kp.pk, 32);
    fx_rotate(&l, &p, &next);

    struct cpx_record r;
    struct cpx_canon_doc scratch = CPX_CANON_DOC_INIT;
    cpx_record_init(&r);
    decode(&l, 0, &r);
    struct cpx_identity_payload ip;
    assert_null(cpx_identity_payload_parse(&r, &ip));
    assert_string_equal(ip.id, p.id);
    assert_int_equal(ip.roles, CPX_ROLE_BUYER | CPX_ROLE_PROVIDER);
    assert_memory_equal(ip.public_key, old_pk, 32);
    assert_true(cpx_record_body_in_payload(&r, &scratch));
    assert_int_equal(memcmp(r.payload, "{\"id\":", 6), 0);

    struct cpx_decision_payload dp;
    decode(&l, 1, &r);
    assert_null(cpx_decision_payload_parse(&r, &dp));
    assert_string_equal(dp.id, p.id);
    assert_string_equal(dp.reason, "");
    decode(&l, 2, &r);
    assert_null(cpx_decision_payload_parse(&r, &dp));
    assert_string_equal(dp.reason, "incomplete papers");

    struct cpx_key_rotation_payload kp;
    decode(&l, 3, &r);
    assert_null(cpx_key_rotation_payload_parse(&r, &kp));
    assert_memory_equal(kp.new_public_key, next.pk, 32);
    assert_memory_equal(kp.old_public_key, old_pk, 32);
    assert_true(cpx_record_body_in_payload(&r, &scratch));
    assert_true(cpx_record_party_verify(&r, old_pk));

    /* Identity payloads wrong one way each. */
    char pk64[45], other64[45], other_id[CPX_ID_MAX];
    cpx_public_key_encode(old_pk, pk64);
    cpx_public_key_encode(op.kp.pk, other64);
    cpx_identity_id_for_key(op.kp.pk, other_id);
    char bad[8][512];
    snprintf(bad[0], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"%s\",\"reg_no\":\"1\","
             "\"roles\":[\"buyer\"]}",
             other_id, pk64); /* id of another key */
    snprintf(bad[1], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"%s\",\"reg_no\":\"1\","
             "\"roles\":[\"provider\",\"buyer\"]}",
             p.id, pk64); /* roles unsorted */
    snprintf(bad[2], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"%s\",\"reg_no\":\"1\","
             "\"roles\":[\"admin\"]}",
             p.id, pk64);
    snprintf(bad[3], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"%s\",\"reg_no\":\"1\",\"roles\":[]}",
             p.id, pk64);
    snprintf(bad[4], 512,
             "{\"id\":\"%s\",\"name\":\"\",\"public_key\":\"%s\",\"reg_no\":\"1\","
             "\"roles\":[\"buyer\"]}",
             p.id, pk64);
    snprintf(bad[5], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"%s\",\"reg_no\":\"1 2\","
             "\"roles\":[\"buyer\"]}",
             p.id, pk64);
    snprintf(bad[6], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"AAAA\",\"reg_no\":\"1\","
             "\"roles\":[\"buyer\"]}",
             p.id);
    snprintf(bad[7], 512,
             "{\"id\":\"%s\",\"name\":\"A\",\"public_key\":\"%s\",\"reg_no\":\"1\","
             "\"roles\":[\"buyer\",\"buyer\"]}",
             p.id, pk64);
    /* 200 characters of Chinese (600 bytes) are a valid name, 201 are not. */
    char long_name[1024], payload[2048];
    for (int chars = 200; chars <= 201; chars++) {
        long_name[0] = '\0';
        for (int i = 0; i < chars; i++)
            strcat(long_name, "\xe4\xb8\xad");
        snprintf(payload, sizeof payload,
                 "{\"id\":\"%s\",\"name\":\"%s\",\"public_key\":\"%s\",\"reg_no\":\"1\","
                 "\"roles\":[\"buyer\"]}",
                 p.id, long_name, pk64);
        struct fx_log m;
        fx_log_init(&m);
        fx_append(&m, "identity", payload, NULL, NULL, NULL, NULL);
        decode(&m, 0, &r);
        if ((cpx_identity_payload_parse(&r, &ip) == NULL) != (chars == 200))
            fail_msg("name of %d characters", chars);
        fx_log_free(&m);
    }
    for (size_t i = 0; i < 8; i++) {
        struct fx_log m;
        fx_log_init(&m);
        fx_append(&m, "identity", bad[i], NULL, NULL, NULL, NULL);
        decode(&m, 0, &r);
        if (cpx_identity_payload_parse(&r, &ip) == NULL)
            fail_msg("identity payload %zu accepted", i);
        fx_log_free(&m);
    }
    struct fx_log m;
    fx_log_init(&m);
    char rot[256];
    snprintf(rot, sizeof rot, "{\"id\":\"%s\",\"new_public_key\":\"%s\",\"old_public_key\":\"%s\"}",
             p.id, pk64, pk64);
    fx_append(&m, "key_rotation", rot, NULL, NULL, NULL, NULL);
    decode(&m, 0, &r);
    assert_non_null(cpx_key_rotation_payload_parse(&r, &kp)); /* same key twice */
    fx_append(&m, "approval", "{\"id\":\"idn_x\"}", NULL, NULL, NULL, NULL);
    decode(&m, 1, &r);
    assert_non_null(cpx_decision_payload_parse(&r, &dp));
    fx_append(&m, "rejection", "{\"id\":\"idn_aaaaaaaaaaaaaaaa\"}", NULL, NULL, NULL, NULL);
    decode(&m, 2, &r);
    assert_non_null(cpx_decision_payload_parse(&r, &dp)); /* rejection needs a reason */
    fx_log_free(&m);

    cpx_canon_doc_free(&scratch);
    cpx_record_free(&r);
    fx_log_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_envelope_rejections),
        cmocka_unit_test(test_identity_payloads),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
