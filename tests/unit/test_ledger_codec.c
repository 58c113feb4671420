/*
 * Tests of the foundation's ledger modules: codec.c (base64 with canonical-only decoding, hex,
 * base32), reqsig.c (Authorization header parsing, the signed string, sign/verify) and
 * keyfile.c (key file parse errors, identity ids).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "ledger/codec.h"
#include "ledger/crypto.h"
#include "ledger/keyfile.h"
#include "ledger/reqsig.h"

static int setup(void **state)
{
    (void)state;
    return cpx_crypto_init();
}

/* RFC 4648 section 10 test vectors. */
static const char *const rfc_in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
static const char *const rfc_b64[] = { "",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
static const char *const rfc_b32[] = { "",        "my",       "mzxq",      "mzxw6",
                                       "mzxw6yq", "mzxw6ytb", "mzxw6ytboi" };

static void test_base64(void **state)
{
    (void)state;
    char out[64];
    uint8_t back[64];
    for (size_t i = 0; i < 7; i++) {
        size_t n = strlen(rfc_in[i]);
        assert_int_equal(cpx_b64_encode((const uint8_t *)rfc_in[i], n, out), strlen(rfc_b64[i]));
        assert_string_equal(out, rfc_b64[i]);
        assert_int_equal(CPX_B64_LEN(n), strlen(rfc_b64[i]));
        assert_int_equal(cpx_b64_decode(rfc_b64[i], strlen(rfc_b64[i]), back, sizeof back),
                         (long)n);
        assert_memory_equal(back, rfc_in[i], n);
    }
    /* Every byte value survives a round trip. */
    uint8_t all[256];
    char text[CPX_B64_LEN(256) + 1];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    size_t tl = cpx_b64_encode(all, 256, text);
    uint8_t dec[256];
    assert_int_equal(cpx_b64_decode(text, tl, dec, sizeof dec), 256);
    assert_memory_equal(dec, all, 256);

    /* Only the canonical spelling decodes. */
    static const char *const bad[] = {
        "Zg",                 /* no padding */
        "Zg=",                /* short padding */
        "Zh==",               /* unused bits set: same bytes as Zg== otherwise */
        "Zm9=",               /* unused bits set */
        "Zg==Zg==",           /* padding in the middle */
        "Z===",               /* three pads */
        "====",     "Zm9v\n", /* whitespace */
        " Zm9v",    "Zm9-",   /* URL-safe alphabet */
        "Zm9_",     "Zm9v=",  "Zm\0v",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = i == sizeof bad / sizeof bad[0] - 1 ? 4 : strlen(bad[i]);
        if (cpx_b64_decode(bad[i], len, back, sizeof back) != -1)
            fail_msg("non-canonical base64 \"%s\" decoded", bad[i]);
    }
    /* Output capacity is respected. */
    assert_int_equal(cpx_b64_decode("Zm9vYmFy", 8, back, 5), -1);
    assert_int_equal(cpx_b64_decode("Zm9vYmFy", 8, back, 6), 6);
}

static void test_hex_and_base32(void **state)
{
    (void)state;
    char out[64];
    uint8_t back[8];
    cpx_hex_encode((const uint8_t *)"\x00\x01\xab\xff", 4, out);
    assert_string_equal(out, "0001abff");
    assert_true(cpx_hex_decode("0001abff", 8, back, 4));
    assert_memory_equal(back, "\x00\x01\xab\xff", 4);
    assert_true(cpx_hex_decode("0001ABFF", 8, back, 4));
    assert_memory_equal(back, "\x00\x01\xab\xff", 4);
    assert_false(cpx_hex_decode("0001abf", 7, back, 4));
    assert_false(cpx_hex_decode("0001abffaa", 10, back, 4));
    assert_false(cpx_hex_decode("0001abfg", 8, back, 4));
    assert_false(cpx_hex_decode("0x01abff", 8, back, 4));
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(cpx_b32_encode((const uint8_t *)rfc_in[i], strlen(rfc_in[i]), out),
                         strlen(rfc_b32[i]));
        assert_string_equal(out, rfc_b32[i]);
    }
}

/* Decimal counts: one spelling each, 0 .. 2^63-1. */
static void test_decimal(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_true(cpx_decimal_parse("0", &v) && v == 0);
    assert_true(cpx_decimal_parse("42", &v) && v == 42);
    assert_true(cpx_decimal_parse("9223372036854775807", &v) && v == 9223372036854775807ull);
    const char *const bad[] = { "",
                                "00",
                                "007",
                                "-1",
                                "+1",
                                " 1",
                                "1 ",
                                "1a",
                                "0x10",
                                "9223372036854775808",
                                "18446744073709551616" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        assert_false(cpx_decimal_parse(bad[i], &v));
        assert_int_equal(v, 7); /* untouched */
    }
}

static void test_auth_header(void **state)
{
    (void)state;
    struct cpx_auth a, b;
    memset(&a, 0, sizeof a);
    snprintf(a.id, sizeof a.id, "idn_abcdefghijklmnop");
    a.ts = 1764403200;
    for (int i = 0; i < 64; i++)
        a.sig[i] = (uint8_t)i;
    char header[CPX_AUTH_HEADER_MAX];
    cpx_auth_format(&a, header);
    assert_int_equal(cpx_auth_parse(header, strlen(header), &b), CPX_AUTH_OK);
    assert_string_equal(b.id, a.id);
    assert_int_equal(b.ts, a.ts);
    assert_memory_equal(b.sig, a.sig, 64);

    char sig[89];
    cpx_b64_encode(a.sig, 64, sig);
    char v[512];
    /* Any order of the three parameters. */
    snprintf(v, sizeof v, "CPX-Ed25519 sig=%s,ts=5,id=idn_x", sig);
    assert_int_equal(cpx_auth_parse(v, strlen(v), &b), CPX_AUTH_OK);
    assert_int_equal(b.ts, 5);

    struct {
        const char *fmt;
        enum cpx_auth_error err;
    } bad[] = {
        { "", CPX_AUTH_SCHEME_MISSING },
        { "Bearer abc", CPX_AUTH_SCHEME_MISSING },
        { "cpx-ed25519 id=idn_x,ts=1,sig=%s", CPX_AUTH_SCHEME_MISSING },
        { "CPX-Ed25519", CPX_AUTH_SCHEME_MISSING },
        { "CPX-Ed25519 ", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=idn_x,ts=1", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=idn_x,ts=1,sig=%s,", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=idn_x,id=idn_y,ts=1,sig=%s", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=idn_x,ts=1,sig=%s,ts=2", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=idn_x,ts=1,nonce=3,sig=%s", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=idn_x, ts=1,sig=%s", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id,ts=1,sig=%s", CPX_AUTH_MALFORMED },
        { "CPX-Ed25519 id=,ts=1,sig=%s", CPX_AUTH_BAD_ID },
        { "CPX-Ed25519 id=IDN_X,ts=1,sig=%s", CPX_AUTH_BAD_ID },
        { "CPX-Ed25519 id=idn-x,ts=1,sig=%s", CPX_AUTH_BAD_ID },
        { "CPX-Ed25519 id=idn_x,ts=,sig=%s", CPX_AUTH_BAD_TS },
        { "CPX-Ed25519 id=idn_x,ts=01,sig=%s", CPX_AUTH_BAD_TS },
        { "CPX-Ed25519 id=idn_x,ts=-1,sig=%s", CPX_AUTH_BAD_TS },
        { "CPX-Ed25519 id=idn_x,ts=1.5,sig=%s", CPX_AUTH_BAD_TS },
        { "CPX-Ed25519 id=idn_x,ts=99999999999999999,sig=%s", CPX_AUTH_BAD_TS },
        { "CPX-Ed25519 id=idn_x,ts=9007199254740993,sig=%s", CPX_AUTH_BAD_TS },
        { "CPX-Ed25519 id=idn_x,ts=1,sig=AAAA", CPX_AUTH_BAD_SIG },
        { "CPX-Ed25519 id=idn_x,ts=1,sig=", CPX_AUTH_BAD_SIG },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(v, sizeof v, bad[i].fmt, sig);
        enum cpx_auth_error got = cpx_auth_parse(v, strlen(v), &b);
        if (got != bad[i].err)
            fail_msg("header %zu (%s): got %d (%s), want %d", i, v, got, cpx_auth_error_text(got),
                     bad[i].err);
        assert_non_null(cpx_auth_error_text(got));
    }
    /* A signature whose last character leaves bits set is not canonical. */
    snprintf(v, sizeof v, "CPX-Ed25519 id=idn_x,ts=1,sig=%s", sig);
    char *last = v + strlen(v) - 3; /* sig ends in "Pw==": 'w' leaves its low bits zero */
    assert_int_equal(*last, 'w');
    *last = 'x';
    assert_int_equal(cpx_auth_parse(v, strlen(v), &b), CPX_AUTH_BAD_SIG);
    /* Length is respected: no reading past len. */
    snprintf(v, sizeof v, "CPX-Ed25519 id=idn_x,ts=1,sig=%s", sig);
    assert_int_equal(cpx_auth_parse(v, strlen(v) - 1, &b), CPX_AUTH_BAD_SIG);
}

static void test_reqsig(void **state)
{
    (void)state;
    char msg[CPX_REQSIG_MESSAGE_MAX];
    long n = cpx_reqsig_message("POST", "/v1/orders?x=1", 1764403200, "{}", 2, msg, sizeof msg);
    /* SHA-256("{}") */
    const char *want = "POST\n/v1/orders?x=1\n1764403200\n"
                       "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    assert_int_equal(n, (long)strlen(want));
    assert_string_equal(msg, want);
    assert_int_equal(cpx_reqsig_message("PO\nST", "/", 1, "", 0, msg, sizeof msg), -1);
    assert_int_equal(cpx_reqsig_message("POST", "/a\nb", 1, "", 0, msg, sizeof msg), -1);
    assert_int_equal(cpx_reqsig_message("", "/", 1, "", 0, msg, sizeof msg), -1);
    assert_int_equal(cpx_reqsig_message("POST", "", 1, "", 0, msg, sizeof msg), -1);
    assert_int_equal(cpx_reqsig_message("POST", "/", -1, "", 0, msg, sizeof msg), -1);
    assert_int_equal(cpx_reqsig_message("VERYLONGMETHODNAME", "/", 1, "", 0, msg, sizeof msg), -1);
    assert_int_equal(cpx_reqsig_message("POST", "/", 1, "", 0, msg, 10), -1);

    struct cpx_keypair kp, other;
    cpx_keypair_generate(&kp);
    cpx_keypair_generate(&other);
    struct cpx_auth auth;
    assert_true(cpx_reqsig_sign(&kp, "POST", "/v1/orders", 77, "body", 4, &auth));
    assert_int_equal(auth.ts, 77);
    assert_true(cpx_reqsig_verify(kp.pk, "POST", "/v1/orders", 77, "body", 4, auth.sig));
    assert_false(cpx_reqsig_verify(other.pk, "POST", "/v1/orders", 77, "body", 4, auth.sig));
    assert_false(cpx_reqsig_verify(kp.pk, "PUT", "/v1/orders", 77, "body", 4, auth.sig));
    assert_false(cpx_reqsig_verify(kp.pk, "POST", "/v1/orders/", 77, "body", 4, auth.sig));
    assert_false(cpx_reqsig_verify(kp.pk, "POST", "/v1/orders", 78, "body", 4, auth.sig));
    assert_false(cpx_reqsig_verify(kp.pk, "POST", "/v1/orders", 77, "bodY", 4, auth.sig));
    assert_false(cpx_reqsig_verify(kp.pk, "POST", "/v1/orders", 77, "body", 3, auth.sig));
    auth.sig[10] ^= 1;
    assert_false(cpx_reqsig_verify(kp.pk, "POST", "/v1/orders", 77, "body", 4, auth.sig));
    assert_false(cpx_reqsig_sign(&kp, "POST", "", 77, "body", 4, &auth));
}

static void test_keyfile(void **state)
{
    (void)state;
    struct cpx_keyfile kf, back;
    memset(&kf, 0, sizeof kf);
    cpx_keypair_generate(&kf.kp);
    char text[CPX_KEYFILE_MAX];
    size_t n = cpx_keyfile_format(&kf, text);
    assert_true(n > 0);
    assert_null(cpx_keyfile_parse(text, n, &back));
    assert_memory_equal(back.kp.pk, kf.kp.pk, 32);
    assert_memory_equal(back.kp.sk, kf.kp.sk, 64);
    char id[CPX_ID_MAX];
    cpx_identity_id_for_key(kf.kp.pk, id);
    assert_string_equal(back.identity, id); /* derived when absent */
    assert_true(cpx_identity_id_valid(id));
    assert_int_equal(strlen(id), 20);

    /* With an identity line (after a rotation the id is another key's). */
    struct cpx_keypair first;
    cpx_keypair_generate(&first);
    cpx_identity_id_for_key(first.pk, kf.identity);
    n = cpx_keyfile_format(&kf, text);
    assert_null(cpx_keyfile_parse(text, n, &back));
    assert_string_equal(back.identity, kf.identity);

    char pk[45], sk[89], other_sk[89], buf[1024];
    cpx_b64_encode(kf.kp.pk, 32, pk);
    cpx_b64_encode(kf.kp.sk, 64, sk);
    cpx_b64_encode(first.sk, 64, other_sk);
    struct {
        const char *fmt;
    } bad[] = {
        { "" },
        { "cpx-ed25519-key v2\npublic %s\nsecret %s\n" },
        { "public %s\nsecret %s\n" },
        { "cpx-ed25519-key v1\n" },
        { "cpx-ed25519-key v1\npublic %s\n" },
        { "cpx-ed25519-key v1\nsecret %2$s\n" },
        { "cpx-ed25519-key v1\npublic %s\nsecret %s\ncomment hello\n" },
        { "cpx-ed25519-key v1\npublic AAAA\nsecret %2$s\n" },
        { "cpx-ed25519-key v1\npublic %s\nsecret AAAA\n" },
        { "cpx-ed25519-key v1\npublic %s\nsecret %3$s\n" },
        { "cpx-ed25519-key v1\nidentity idn_UPPERCASE000000\npublic %s\nsecret %s\n" },
        { "cpx-ed25519-key v1\nidentity nobody\npublic %s\nsecret %s\n" },
        { "cpx-ed25519-key v1\npublic  %s\nsecret %s\n" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int len = snprintf(buf, sizeof buf, bad[i].fmt, pk, sk, other_sk);
        const char *err = cpx_keyfile_parse(buf, (size_t)len, &back);
        if (err == NULL)
            fail_msg("key file %zu accepted:\n%s", i, buf);
    }
    /* A key file whose public key was edited is refused. */
    char pk2[45];
    cpx_b64_encode(first.pk, 32, pk2);
    int len = snprintf(buf, sizeof buf, "cpx-ed25519-key v1\npublic %s\nsecret %s\n", pk2, sk);
    assert_non_null(cpx_keyfile_parse(buf, (size_t)len, &back));
    /* Identity ids. */
    assert_false(cpx_identity_id_valid("idn_"));
    assert_false(cpx_identity_id_valid("idn_abcdefghijklmno"));   /* 15 */
    assert_false(cpx_identity_id_valid("idn_abcdefghijklmnopq")); /* 17 */
    assert_false(cpx_identity_id_valid("idn_abcdefghijklmno1"));  /* 1 is not base32 */
    assert_false(cpx_identity_id_valid("ord_abcdefghijklmnop"));
    assert_true(cpx_identity_id_valid("idn_abcdefghijklmnop"));
    /* Public keys. */
    uint8_t k[32];
    assert_true(cpx_public_key_decode(pk, strlen(pk), k));
    assert_memory_equal(k, kf.kp.pk, 32);
    assert_false(cpx_public_key_decode(sk, strlen(sk), k));
    assert_false(cpx_public_key_decode(pk, strlen(pk) - 1, k));
}

static void test_sha256_context(void **state)
{
    (void)state;
    struct cpx_sha256_ctx *h = cpx_sha256_ctx_new();
    assert_non_null(h);
    uint8_t a[32], b[32];
    /* The context agrees with the one-call functions for every split of the input. */
    const char *abc = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(abc);
    cpx_sha256(abc, n, a);
    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            cpx_sha256_ctx_digest(h, abc, i, abc + i, j - i, abc + j, n - j, b);
            assert_memory_equal(a, b, 32);
        }
        cpx_sha256_2(abc, i, abc + i, n - i, b);
        assert_memory_equal(a, b, 32);
    }
    /* FIPS 180-2 "abc". */
    uint8_t want[32];
    assert_true(cpx_hex_decode("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                               64, want, 32));
    cpx_sha256_ctx_digest(h, "abc", 3, NULL, 0, NULL, 0, b);
    assert_memory_equal(b, want, 32);
    cpx_sha256_ctx_free(h);
    cpx_sha256_ctx_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64),         cmocka_unit_test(test_hex_and_base32),
        cmocka_unit_test(test_decimal),        cmocka_unit_test(test_auth_header),
        cmocka_unit_test(test_reqsig),         cmocka_unit_test(test_keyfile),
        cmocka_unit_test(test_sha256_context),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
