/*
 * Tests of ledger/checkpoint.c: the Go sumdb/note reference vector (PeterNeumann) byte for byte,
 * verifier key strings, checkpoint sign/open round trips, and every way a checkpoint is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ledger/checkpoint.h"
#include "ledger/codec.h"

/* golang.org/x/mod/sumdb/note's test key and note (note_test.go). */
static const char go_vkey[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char go_skey_b64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"; /* 0x01 || seed */
static const char go_text[] = "If you think cryptography is the answer to your problem,\n"
                              "then you don't know what your problem is.\n";
static const char go_note[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xe2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static int setup(void **state)
{
    (void)state;
    return cpx_crypto_init();
}

static void go_keypair(struct cpx_keypair *kp)
{
    uint8_t raw[33];
    assert_int_equal(cpx_b64_decode(go_skey_b64, strlen(go_skey_b64), raw, sizeof raw), 33);
    assert_int_equal(raw[0], 1);
    crypto_sign_seed_keypair(kp->pk, kp->sk, raw + 1);
}

static void test_go_note_vector(void **state)
{
    (void)state;
    struct cpx_note_verifier v;
    assert_null(cpx_note_verifier_parse(go_vkey, strlen(go_vkey), &v));
    assert_string_equal(v.name, "PeterNeumann");
    assert_int_equal(v.key_id, 0xc74f20a3);
    char back[CPX_VERIFIER_KEY_MAX];
    assert_int_equal(cpx_note_verifier_format(&v, back), strlen(go_vkey));
    assert_string_equal(back, go_vkey);

    size_t tlen;
    assert_int_equal(cpx_note_open(go_note, strlen(go_note), &v, &tlen), CPX_NOTE_OK);
    assert_int_equal(tlen, strlen(go_text));

    /* Ed25519 is deterministic: signing the text with the same key gives the same note. */
    struct cpx_keypair kp;
    go_keypair(&kp);
    assert_memory_equal(kp.pk, v.pk, 32);
    char out[512];
    long n = cpx_note_sign(go_text, strlen(go_text), "PeterNeumann", &kp, out, sizeof out);
    assert_int_equal(n, (long)strlen(go_note));
    assert_string_equal(out, go_note);

    /* One changed letter of the text breaks the signature. */
    char bad[sizeof go_note];
    memcpy(bad, go_note, sizeof go_note);
    bad[3] = 'Y';
    assert_int_equal(cpx_note_open(bad, strlen(bad), &v, &tlen), CPX_NOTE_E_BAD_SIG);
}

static void test_verifier_key_manglings(void **state)
{
    (void)state;
    struct cpx_note_verifier v;
    char b[sizeof go_vkey];
    size_t len = strlen(go_vkey);
    /* Every proper substring and every single-character change is refused (as Go's test does). */
    for (size_t i = 0; i < len; i++)
        for (size_t j = i + 1; j <= len; j++)
            if (i != 0 || j != len)
                assert_non_null(cpx_note_verifier_parse(go_vkey + i, j - i, &v));
    memcpy(b, go_vkey, sizeof b);
    for (size_t i = 0; i < len; i++) {
        b[i]++;
        assert_non_null(cpx_note_verifier_parse(b, len, &v));
        b[i]--;
    }
    /* Upper-case hex names the same key id (Go accepts it too). */
    assert_null(cpx_note_verifier_parse("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/"
                                        "LDE4izWy10TW",
                                        len, &v));
    assert_non_null(cpx_note_verifier_parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq"
                                            "/LDE4izWy10TW",
                                            len, &v));
}

static void test_key_names(void **state)
{
    (void)state;
    assert_true(cpx_note_name_valid("cpx.example/ledger", 18));
    assert_true(cpx_note_name_valid("\xe4\xb8\xad", 3));
    assert_false(cpx_note_name_valid("", 0));
    assert_false(cpx_note_name_valid("a b", 3));
    assert_false(cpx_note_name_valid("a+b", 3));
    assert_false(cpx_note_name_valid("a\tb", 3));
    assert_false(cpx_note_name_valid("a\xc2\xa0"
                                     "b",
                                     4)); /* NBSP */
    assert_false(cpx_note_name_valid("a\xe3\x80\x80"
                                     "b",
                                     5)); /* ideographic space */
    assert_false(cpx_note_name_valid("a\xe2\x80\x83"
                                     "b",
                                     5)); /* em space */
    assert_false(cpx_note_name_valid("a\xff", 2));
}

/* A signed checkpoint of a fixed tree head, by a fresh key, with its verifier. */
struct signed_cp {
    struct cpx_keypair kp;
    struct cpx_note_verifier v;
    struct cpx_checkpoint cp;
    char note[1024];
    size_t len;
};

static void make_cp(struct signed_cp *s, const char *name)
{
    cpx_keypair_generate(&s->kp);
    assert_true(cpx_note_verifier_init(&s->v, name, s->kp.pk));
    memset(&s->cp, 0, sizeof s->cp);
    snprintf(s->cp.origin, sizeof s->cp.origin, "%s", name);
    s->cp.size = 20852163;
    for (int i = 0; i < 32; i++)
        s->cp.root[i] = (uint8_t)(i * 7);
    long n = cpx_checkpoint_sign(&s->cp, name, &s->kp, s->note, sizeof s->note);
    assert_true(n > 0);
    s->len = (size_t)n;
}

static void test_checkpoint_round_trip(void **state)
{
    (void)state;
    struct signed_cp s;
    make_cp(&s, "cpx.test/ledger");
    char want_text[256];
    char root[45];
    cpx_b64_encode(s.cp.root, 32, root);
    snprintf(want_text, sizeof want_text,
             "cpx.test/ledger\n20852163\n%s\n\n\xe2\x80\x94 cpx.test/ledger ", root);
    assert_memory_equal(s.note, want_text, strlen(want_text));
    struct cpx_checkpoint got;
    assert_int_equal(cpx_checkpoint_open(s.note, s.len, &s.v, &got), CPX_NOTE_OK);
    assert_string_equal(got.origin, "cpx.test/ledger");
    assert_int_equal(got.size, 20852163);
    assert_memory_equal(got.root, s.cp.root, 32);
    assert_int_equal(got.ext_len, 0);

    /* Extension lines are signed and kept. */
    memcpy(s.cp.ext, "ext one\nx\n", 10);
    s.cp.ext_len = 10;
    long n = cpx_checkpoint_sign(&s.cp, "cpx.test/ledger", &s.kp, s.note, sizeof s.note);
    assert_int_equal(cpx_checkpoint_open(s.note, (size_t)n, &s.v, &got), CPX_NOTE_OK);
    assert_int_equal(got.ext_len, 10);
    assert_memory_equal(got.ext, "ext one\nx\n", 10);

    /* A cosignature by another key (a witness) is ignored; ours still verifies. */
    struct cpx_keypair witness;
    cpx_keypair_generate(&witness);
    char twice[2048];
    size_t text_len = (size_t)n - CPX_NOTE_SIGLINE_LEN(strlen("cpx.test/ledger")) - 1;
    long m = cpx_note_sign(s.note, text_len, "witness.example", &witness, twice, sizeof twice);
    assert_true(m > 0);
    memcpy(twice + m, s.note + text_len + 1, (size_t)n - text_len - 1);
    m += n - (long)text_len - 1;
    assert_int_equal(cpx_checkpoint_open(twice, (size_t)m, &s.v, &got), CPX_NOTE_OK);

    /* Size 0: the empty tree. */
    s.cp.size = 0;
    s.cp.ext_len = 0;
    n = cpx_checkpoint_sign(&s.cp, "cpx.test/ledger", &s.kp, s.note, sizeof s.note);
    assert_int_equal(cpx_checkpoint_open(s.note, (size_t)n, &s.v, &got), CPX_NOTE_OK);
    assert_int_equal(got.size, 0);
}

static void test_checkpoint_rejections(void **state)
{
    (void)state;
    struct signed_cp s, other;
    make_cp(&s, "cpx.test/ledger");
    make_cp(&other, "cpx.test/ledger"); /* same name, another key */
    struct cpx_checkpoint got;
    char buf[2048];

    /* Wrong key: the other key's checkpoint has our name but not our key id. */
    assert_int_equal(cpx_checkpoint_open(other.note, other.len, &s.v, &got), CPX_NOTE_E_UNSIGNED);

    /* Wrong key hash: our signature relabelled with another key id is an unknown key. */
    memcpy(buf, s.note, s.len);
    char *sig = strstr(buf, "\xe2\x80\x94 cpx.test/ledger ") + 4 + 15 + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A'; /* first base64 char: top bits of the key id */
    assert_int_equal(cpx_checkpoint_open(buf, s.len, &s.v, &got), CPX_NOTE_E_UNSIGNED);

    /* Right name and key id, wrong signature bytes. */
    memcpy(buf, s.note, s.len);
    sig = strstr(buf, "\xe2\x80\x94 cpx.test/ledger ") + 4 + 15 + 1;
    sig[20] = sig[20] == 'A' ? 'B' : 'A';
    assert_int_equal(cpx_checkpoint_open(buf, s.len, &s.v, &got), CPX_NOTE_E_BAD_SIG);

    /* Modified body: a different size. */
    memcpy(buf, s.note, s.len);
    char *size = strchr(buf, '\n') + 1;
    size[0] = '3';
    assert_int_equal(cpx_checkpoint_open(buf, s.len, &s.v, &got), CPX_NOTE_E_BAD_SIG);

    /* Missing blank line. */
    const char *blank = strstr(s.note, "\n\n");
    size_t at = (size_t)(blank - s.note) + 1;
    memcpy(buf, s.note, at);
    memcpy(buf + at, s.note + at + 1, s.len - at - 1);
    assert_int_equal(cpx_checkpoint_open(buf, s.len - 1, &s.v, &got), CPX_NOTE_E_MALFORMED);

    /* No exchange signature at all: only a witness signed. */
    struct cpx_keypair witness;
    cpx_keypair_generate(&witness);
    char text[256];
    long tl = cpx_checkpoint_text(&s.cp, text, sizeof text);
    long n = cpx_note_sign(text, (size_t)tl, "witness.example", &witness, buf, sizeof buf);
    assert_int_equal(cpx_checkpoint_open(buf, (size_t)n, &s.v, &got), CPX_NOTE_E_UNSIGNED);

    /* No signature lines, truncated note, control characters, bad UTF-8, CRLF. */
    assert_int_equal(cpx_checkpoint_open(text, (size_t)tl, &s.v, &got), CPX_NOTE_E_MALFORMED);
    memcpy(buf, text, (size_t)tl);
    buf[tl] = '\n';
    assert_int_equal(cpx_checkpoint_open(buf, (size_t)tl + 1, &s.v, &got), CPX_NOTE_E_MALFORMED);
    assert_int_equal(cpx_checkpoint_open(s.note, s.len - 1, &s.v, &got), CPX_NOTE_E_MALFORMED);
    memcpy(buf, s.note, s.len);
    buf[2] = '\r';
    assert_int_equal(cpx_checkpoint_open(buf, s.len, &s.v, &got), CPX_NOTE_E_MALFORMED);
    buf[2] = (char)0xff;
    assert_int_equal(cpx_checkpoint_open(buf, s.len, &s.v, &got), CPX_NOTE_E_MALFORMED);
    /* A signature line without the em dash. */
    memcpy(buf, s.note, s.len);
    sig = strstr(buf, "\xe2\x80\x94");
    sig[2] = (char)0x93; /* en dash */
    assert_int_equal(cpx_checkpoint_open(buf, s.len, &s.v, &got), CPX_NOTE_E_MALFORMED);

    /* Bodies that are signed but are not checkpoints. */
    static const char *const bodies[] = {
        "cpx.test/ledger\n5\n",
        "cpx.test/ledger\n05\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "cpx.test/ledger\n-5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "cpx.test/ledger\n18446744073709551616\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "cpx.test/ledger\n5\nAAAA\n",
        "cpx.test/ledger\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n",
        "\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        n = cpx_note_sign(bodies[i], strlen(bodies[i]), "cpx.test/ledger", &s.kp, buf, sizeof buf);
        if (n < 0) /* the empty first line makes a blank line: not even a note */
            continue;
        assert_int_equal(cpx_checkpoint_open(buf, (size_t)n, &s.v, &got), CPX_NOTE_E_BODY);
    }
    /* The largest size is fine. */
    static const char big[] =
        "cpx.test/ledger\n18446744073709551615\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    n = cpx_note_sign(big, strlen(big), "cpx.test/ledger", &s.kp, buf, sizeof buf);
    assert_int_equal(cpx_checkpoint_open(buf, (size_t)n, &s.v, &got), CPX_NOTE_OK);
    assert_true(got.size == UINT64_MAX);

    /* Signing refuses invalid text and names. */
    assert_int_equal(cpx_note_sign("no newline", 10, "n", &s.kp, buf, sizeof buf), -1);
    assert_int_equal(cpx_note_sign("a\tb\n", 4, "n", &s.kp, buf, sizeof buf), -1);
    assert_int_equal(cpx_note_sign("ok\n", 3, "bad name", &s.kp, buf, sizeof buf), -1);
    assert_int_equal(cpx_note_sign("ok\n", 3, "n", &s.kp, buf, 10), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_note_vector),
        cmocka_unit_test(test_verifier_key_manglings),
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_checkpoint_round_trip),
        cmocka_unit_test(test_checkpoint_rejections),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
