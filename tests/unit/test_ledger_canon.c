/*
 * Tests of ledger/canon.c: the writer produces exactly RFC 8785's bytes for the subset, refuses
 * what the subset excludes, and the parser accepts the writer's output and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/canon.h"

/* Finishes w and checks its bytes against want. */
static void expect_bytes(struct cpx_canon_writer *w, const char *want)
{
    const uint8_t *out;
    size_t len;
    assert_int_equal(cpx_canon_writer_finish(w, &out, &len), CPX_CANON_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
    /* Whatever the writer writes, the parser accepts. */
    assert_int_equal(cpx_canon_validate(out, len, NULL), CPX_CANON_OK);
}

static void test_writer_round_trip(void **state)
{
    (void)state;
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_key(&w, "a", 1);
    cpx_canon_begin_array(&w);
    cpx_canon_int(&w, 0);
    cpx_canon_int(&w, -1);
    cpx_canon_int(&w, CPX_CANON_INT_MAX);
    cpx_canon_int(&w, -CPX_CANON_INT_MAX);
    cpx_canon_bool(&w, true);
    cpx_canon_bool(&w, false);
    cpx_canon_null(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_end_object(&w);
    cpx_canon_begin_array(&w);
    cpx_canon_end_array(&w);
    cpx_canon_end_array(&w);
    cpx_canon_kv_string(&w, "b", "x\"y\\z/\x7f");
    cpx_canon_key(&w, "c", 1);
    cpx_canon_raw(&w, "{\"k\":[1,2]}", 11);
    cpx_canon_key(&w, "d", 1);
    cpx_canon_base64(&w, "\x01\x02\x03\x04", 4);
    cpx_canon_end_object(&w);
    expect_bytes(&w, "{\"a\":[0,-1,9007199254740991,-9007199254740991,true,false,null,{},[]],"
                     "\"b\":\"x\\\"y\\\\z/\x7f\",\"c\":{\"k\":[1,2]},\"d\":\"AQIDBA==\"}");

    const uint8_t *out;
    size_t len;
    cpx_canon_writer_finish(&w, &out, &len);
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    assert_int_equal(cpx_canon_parse(&doc, out, len, NULL), CPX_CANON_OK);
    const struct cpx_canon_node *root = cpx_canon_root(&doc);
    assert_int_equal(root->type, CPX_CANON_OBJECT);
    assert_int_equal(root->count, 4);
    const struct cpx_canon_node *a = cpx_canon_get(&doc, root, "a");
    assert_int_equal(a->type, CPX_CANON_ARRAY);
    assert_int_equal(a->count, 9);
    const struct cpx_canon_node *e = cpx_canon_first(&doc, a);
    int64_t want[] = { 0, -1, CPX_CANON_INT_MAX, -CPX_CANON_INT_MAX };
    for (int i = 0; i < 4; i++, e = cpx_canon_next(&doc, e)) {
        assert_int_equal(e->type, CPX_CANON_INT);
        assert_int_equal(e->ival, want[i]);
    }
    assert_int_equal(e->type, CPX_CANON_TRUE);
    char buf[32];
    const struct cpx_canon_node *b = cpx_canon_get(&doc, root, "b");
    assert_int_equal(cpx_canon_string_value(&doc, b, buf, sizeof buf), 7);
    assert_string_equal(buf, "x\"y\\z/\x7f");
    assert_true(cpx_canon_string_eq(&doc, b, "x\"y\\z/\x7f"));
    assert_false(cpx_canon_string_eq(&doc, b, "x\"y\\z/"));
    assert_int_equal(cpx_canon_string_value(&doc, b, buf, 7), -1); /* no room for the NUL */
    size_t clen;
    const uint8_t *c = cpx_canon_bytes(&doc, cpx_canon_get(&doc, root, "c"), &clen);
    assert_int_equal(clen, 11);
    assert_memory_equal(c, "{\"k\":[1,2]}", 11);
    assert_null(cpx_canon_get(&doc, root, "zz"));
    assert_null(cpx_canon_get(&doc, a, "a")); /* not an object */

    /* Reset keeps the buffer and starts a new document. */
    cpx_canon_writer_reset(&w);
    cpx_canon_string(&w, "", 0);
    expect_bytes(&w, "\"\"");
    cpx_canon_doc_free(&doc);
    cpx_canon_writer_free(&w);
}

/* Every control character is escaped as RFC 8785 (ECMAScript) does; nothing else is. */
static void test_string_escapes(void **state)
{
    (void)state;
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    char in[33];
    for (int i = 0; i < 32; i++)
        in[i] = (char)(i + 1 == 32 ? 0 : i + 1);
    in[32] = '\0';
    cpx_canon_string(&w, in, 32); /* 0x01..0x1f then 0x00 */
    expect_bytes(&w, "\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r"
                     "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
                     "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\u0000\"");
    const uint8_t *out;
    size_t len;
    cpx_canon_writer_finish(&w, &out, &len);
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    assert_int_equal(cpx_canon_parse(&doc, out, len, NULL), CPX_CANON_OK);
    char back[64];
    assert_int_equal(cpx_canon_string_value(&doc, cpx_canon_root(&doc), back, sizeof back), 32);
    assert_memory_equal(back, in, 32);

    /* Non-ASCII, U+2028 and the largest code point stay literal UTF-8. */
    cpx_canon_writer_reset(&w);
    const char *u = "\xc3\xa9\xe2\x80\xa8\xf4\x8f\xbf\xbf\xe4\xb8\xad";
    cpx_canon_string(&w, u, strlen(u));
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", u);
    expect_bytes(&w, want);
    cpx_canon_doc_free(&doc);
    cpx_canon_writer_free(&w);
}

/* Keys sort by UTF-16 code units (RFC 8785 3.2.3), not by bytes or code points. */
static void test_key_order_utf16(void **state)
{
    (void)state;
    /* U+00E9 < U+1F600 (D83D DE00) < U+FB01 in UTF-16; UTF-8 byte order would put U+FB01 second. */
    const char *e_acute = "\xc3\xa9", *grin = "\xf0\x9f\x98\x80", *fi = "\xef\xac\x81";
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, "", 0);
    cpx_canon_kv_int(&w, "\r", 1); /* escaped key compares by its value */
    cpx_canon_kv_int(&w, "1", 1);
    cpx_canon_kv_int(&w, "A", 1);
    cpx_canon_kv_int(&w, "a", 1);
    cpx_canon_kv_int(&w, "ab", 1);
    cpx_canon_kv_int(&w, e_acute, 1);
    cpx_canon_kv_int(&w, grin, 1);
    cpx_canon_kv_int(&w, fi, 1);
    assert_int_equal(cpx_canon_end_object(&w), CPX_CANON_OK);
    const uint8_t *out;
    size_t len;
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_OK);
    assert_int_equal(cpx_canon_validate(out, len, NULL), CPX_CANON_OK);

    cpx_canon_writer_reset(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, e_acute, 1);
    cpx_canon_kv_int(&w, fi, 1);
    assert_int_equal(cpx_canon_kv_int(&w, grin, 1), CPX_CANON_E_KEY_ORDER);

    char doc[64];
    int n = snprintf(doc, sizeof doc, "{\"%s\":1,\"%s\":2}", fi, grin);
    assert_int_equal(cpx_canon_validate(doc, (size_t)n, NULL), CPX_CANON_E_KEY_ORDER);
    n = snprintf(doc, sizeof doc, "{\"%s\":1,\"%s\":2}", grin, fi);
    assert_int_equal(cpx_canon_validate(doc, (size_t)n, NULL), CPX_CANON_OK);
    cpx_canon_writer_free(&w);
}

static void test_writer_refusals(void **state)
{
    (void)state;
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    const uint8_t *out;
    size_t len;

    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, "b", 1);
    assert_int_equal(cpx_canon_kv_int(&w, "a", 1), CPX_CANON_E_KEY_ORDER);
    /* Errors are sticky: later calls do nothing and finish reports the first. */
    assert_int_equal(cpx_canon_end_object(&w), CPX_CANON_E_KEY_ORDER);
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_E_KEY_ORDER);

    cpx_canon_writer_reset(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_kv_int(&w, "a", 1);
    assert_int_equal(cpx_canon_kv_int(&w, "a", 2), CPX_CANON_E_DUP_KEY);

    static const char *const bad_utf8[] = {
        "\x80",
        "\xc0\xaf",
        "\xc1\xbf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xf0\x80\x80\xaf",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xff",
        "\xe2\x82",
        "a\xc3",
        "\xc3\x28",
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        cpx_canon_writer_reset(&w);
        assert_int_equal(cpx_canon_string(&w, bad_utf8[i], strlen(bad_utf8[i])), CPX_CANON_E_UTF8);
        cpx_canon_writer_reset(&w);
        cpx_canon_begin_object(&w);
        assert_int_equal(cpx_canon_key(&w, bad_utf8[i], strlen(bad_utf8[i])), CPX_CANON_E_UTF8);
    }

    int64_t out_of_range[] = { CPX_CANON_INT_MAX + 1, -CPX_CANON_INT_MAX - 1, INT64_MAX,
                               INT64_MIN };
    for (size_t i = 0; i < 4; i++) {
        cpx_canon_writer_reset(&w);
        assert_int_equal(cpx_canon_int(&w, out_of_range[i]), CPX_CANON_E_RANGE);
    }

    cpx_canon_writer_reset(&w);
    cpx_canon_begin_object(&w);
    assert_int_equal(cpx_canon_int(&w, 1), CPX_CANON_E_STATE); /* value without a key */
    cpx_canon_writer_reset(&w);
    cpx_canon_begin_array(&w);
    assert_int_equal(cpx_canon_key(&w, "a", 1), CPX_CANON_E_STATE); /* key in an array */
    cpx_canon_writer_reset(&w);
    cpx_canon_begin_object(&w);
    cpx_canon_key(&w, "a", 1);
    assert_int_equal(cpx_canon_end_object(&w), CPX_CANON_E_STATE); /* key without value */
    cpx_canon_writer_reset(&w);
    cpx_canon_begin_array(&w);
    assert_int_equal(cpx_canon_end_object(&w), CPX_CANON_E_STATE); /* mismatched end */
    cpx_canon_writer_reset(&w);
    cpx_canon_int(&w, 1);
    assert_int_equal(cpx_canon_int(&w, 2), CPX_CANON_E_STATE); /* two top-level values */
    cpx_canon_writer_reset(&w);
    cpx_canon_begin_array(&w);
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_E_STATE); /* unfinished */
    cpx_canon_writer_reset(&w);
    assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_E_STATE); /* empty */

    /* Depth: 32 levels are fine, the 33rd is refused, by the writer and by raw insertion. */
    cpx_canon_writer_reset(&w);
    for (int i = 0; i < CPX_CANON_MAX_DEPTH; i++)
        assert_int_equal(cpx_canon_begin_array(&w), CPX_CANON_OK);
    assert_int_equal(cpx_canon_begin_array(&w), CPX_CANON_E_DEPTH);
    cpx_canon_writer_reset(&w);
    cpx_canon_begin_array(&w);
    assert_int_equal(cpx_canon_raw(&w, "[[]]", 4), CPX_CANON_OK);
    cpx_canon_writer_reset(&w);
    for (int i = 0; i < CPX_CANON_MAX_DEPTH - 1; i++)
        cpx_canon_begin_array(&w);
    assert_int_equal(cpx_canon_raw(&w, "[[]]", 4), CPX_CANON_E_DEPTH);

    /* Raw values must be canonical. */
    cpx_canon_writer_reset(&w);
    assert_int_equal(cpx_canon_raw(&w, "1.5", 3), CPX_CANON_E_NUMBER);
    cpx_canon_writer_reset(&w);
    assert_int_equal(cpx_canon_raw(&w, "{\"b\":1,\"a\":2}", 13), CPX_CANON_E_KEY_ORDER);
    cpx_canon_writer_free(&w);
}

/* A document the parser must refuse, and why. */
struct bad_doc {
    const char *text;
    enum cpx_canon_error err;
};

static void test_parser_rejections(void **state)
{
    (void)state;
    static const struct bad_doc bad[] = {
        { "", CPX_CANON_E_SYNTAX },
        { " 1", CPX_CANON_E_SYNTAX },
        { "1 ", CPX_CANON_E_SYNTAX },
        { "{\"a\": 1}", CPX_CANON_E_SYNTAX },
        { "[1, 2]", CPX_CANON_E_SYNTAX },
        { "[1,2,]", CPX_CANON_E_SYNTAX },
        { "{\"a\":1,}", CPX_CANON_E_SYNTAX },
        { "[1]x", CPX_CANON_E_SYNTAX },
        { "[1][2]", CPX_CANON_E_SYNTAX },
        { "tru", CPX_CANON_E_SYNTAX },
        { "nul", CPX_CANON_E_SYNTAX },
        { "True", CPX_CANON_E_SYNTAX },
        { "+1", CPX_CANON_E_SYNTAX },
        { "-", CPX_CANON_E_SYNTAX },
        { "\xef\xbb\xbf{}", CPX_CANON_E_SYNTAX }, /* BOM */
        { "{1:2}", CPX_CANON_E_SYNTAX },
        { "\"abc", CPX_CANON_E_SYNTAX },
        { "\"\\", CPX_CANON_E_SYNTAX },
        { "\"\\u00", CPX_CANON_E_SYNTAX },
        { "[", CPX_CANON_E_SYNTAX },
        { "{\"a\"", CPX_CANON_E_SYNTAX },
        { "1.0", CPX_CANON_E_NUMBER },
        { "1.5", CPX_CANON_E_NUMBER },
        { "1e3", CPX_CANON_E_NUMBER },
        { "1E3", CPX_CANON_E_NUMBER },
        { "0.1", CPX_CANON_E_NUMBER },
        { "-0", CPX_CANON_E_NUMBER },
        { "01", CPX_CANON_E_NUMBER },
        { "-01", CPX_CANON_E_NUMBER },
        { "00", CPX_CANON_E_NUMBER },
        { "9007199254740992", CPX_CANON_E_RANGE },
        { "-9007199254740992", CPX_CANON_E_RANGE },
        { "99999999999999999999", CPX_CANON_E_RANGE },
        { "\"\\u0041\"", CPX_CANON_E_ESCAPE },        /* 'A' must be literal */
        { "\"\\/\"", CPX_CANON_E_ESCAPE },            /* '/' is never escaped */
        { "\"\\u001F\"", CPX_CANON_E_ESCAPE },        /* upper-case hex */
        { "\"\\u000a\"", CPX_CANON_E_ESCAPE },        /* has a short form: \n */
        { "\"\\u0022\"", CPX_CANON_E_ESCAPE },        /* has a short form: \" */
        { "\"\\u00e9\"", CPX_CANON_E_ESCAPE },        /* non-ASCII is literal */
        { "\"\\ud83d\\ude00\"", CPX_CANON_E_ESCAPE }, /* surrogate escapes */
        { "\"\\a\"", CPX_CANON_E_ESCAPE },
        { "\"a\tb\"", CPX_CANON_E_ESCAPE }, /* raw control character */
        { "\"a\nb\"", CPX_CANON_E_ESCAPE },
        { "\"\xc0\xaf\"", CPX_CANON_E_UTF8 }, /* overlong '/' */
        { "\"\xe0\x80\xaf\"", CPX_CANON_E_UTF8 },
        { "\"\xf0\x80\x80\xaf\"", CPX_CANON_E_UTF8 },
        { "\"\xed\xa0\x80\"", CPX_CANON_E_UTF8 },     /* high surrogate */
        { "\"\xed\xbf\xbf\"", CPX_CANON_E_UTF8 },     /* low surrogate */
        { "\"\xf4\x90\x80\x80\"", CPX_CANON_E_UTF8 }, /* > U+10FFFF */
        { "\"\xe2\x82\"", CPX_CANON_E_UTF8 },         /* truncated */
        { "\"\x80\"", CPX_CANON_E_UTF8 },             /* stray continuation */
        { "\"\xff\"", CPX_CANON_E_UTF8 },
        { "{\"b\":1,\"a\":2}", CPX_CANON_E_KEY_ORDER },
        { "{\"a\":1,\"a\":2}", CPX_CANON_E_DUP_KEY },
        { "{\"a\":{\"y\":1,\"x\":2}}", CPX_CANON_E_KEY_ORDER },
        { "{\"\\n\":1,\"\\b\":2}", CPX_CANON_E_KEY_ORDER },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
        size_t len = strlen(bad[i].text);
        enum cpx_canon_error got = cpx_canon_parse(&doc, bad[i].text, len, NULL);
        if (got != bad[i].err)
            fail_msg("document %zu (%s): got %s, want %s", i, bad[i].text,
                     cpx_canon_error_text(got), cpx_canon_error_text(bad[i].err));
        assert_null(cpx_canon_root(&doc));
        assert_int_equal(cpx_canon_validate(bad[i].text, len, NULL), bad[i].err);
        cpx_canon_doc_free(&doc);
    }
    /* A NUL byte inside the buffer is not the end of the document. */
    assert_int_equal(cpx_canon_validate("1\0", 2, NULL), CPX_CANON_E_SYNTAX);
}

static void test_parser_accepts(void **state)
{
    (void)state;
    static const char *const good[] = {
        "0",
        "-1",
        "9007199254740991",
        "-9007199254740991",
        "true",
        "false",
        "null",
        "\"\"",
        "{}",
        "[]",
        "[[],{}]",
        "{\"\":0}",
        "\"\\b\\t\\n\\f\\r\\\"\\\\\\u0000\\u001f\x7f/\"",
        "{\"a\":{\"a\":{\"a\":[1,\"x\",null]}},\"b\":true}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(cpx_canon_validate(good[i], strlen(good[i]), NULL), CPX_CANON_OK);
}

static void test_depth_limits(void **state)
{
    (void)state;
    char doc[2 * (CPX_CANON_MAX_DEPTH + 1) + 1];
    size_t n = 0;
    for (int i = 0; i < CPX_CANON_MAX_DEPTH; i++)
        doc[n++] = '[';
    for (int i = 0; i < CPX_CANON_MAX_DEPTH; i++)
        doc[n++] = ']';
    assert_int_equal(cpx_canon_validate(doc, n, NULL), CPX_CANON_OK);
    n = 0;
    for (int i = 0; i <= CPX_CANON_MAX_DEPTH; i++)
        doc[n++] = '[';
    for (int i = 0; i <= CPX_CANON_MAX_DEPTH; i++)
        doc[n++] = ']';
    assert_int_equal(cpx_canon_validate(doc, n, NULL), CPX_CANON_E_DEPTH);
    /* Very deep input is refused at the bound, without deep recursion. */
    size_t big = 100000;
    char *deep = malloc(big);
    memset(deep, '[', big);
    assert_int_equal(cpx_canon_validate(deep, big, NULL), CPX_CANON_E_DEPTH);
    memset(deep, '{', big);
    assert_int_equal(cpx_canon_validate(deep, big, NULL), CPX_CANON_E_SYNTAX);
    free(deep);
}

/* Random documents: written, parsed, walked, and every prefix refused. */
static void test_random_round_trips(void **state)
{
    (void)state;
    struct cpx_canon_writer w;
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    cpx_canon_writer_init(&w);
    uint64_t rng = 12345;
    for (int round = 0; round < 300; round++) {
        cpx_canon_writer_reset(&w);
        cpx_canon_begin_object(&w);
        int members = (int)(rng % 7);
        for (int m = 0; m < members; m++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            char key[8];
            snprintf(key, sizeof key, "k%02d", m); /* ascending */
            cpx_canon_key(&w, key, strlen(key));
            switch ((rng >> 33) % 4) {
            case 0: cpx_canon_int(&w, (int64_t)(rng >> 20) % CPX_CANON_INT_MAX - 1000); break;
            case 1: {
                char s[6] = { (char)(rng >> 40), (char)(rng >> 48) & 0x7f, '\\', '"', 'z', 0 };
                if (s[0] < 0)
                    s[0] = 'q';
                cpx_canon_string(&w, s, 5);
                break;
            }
            case 2:
                cpx_canon_begin_array(&w);
                cpx_canon_null(&w);
                cpx_canon_bool(&w, rng & 1);
                cpx_canon_end_array(&w);
                break;
            default: cpx_canon_raw(&w, "{\"x\":[]}", 8); break;
            }
        }
        cpx_canon_end_object(&w);
        const uint8_t *out;
        size_t len;
        assert_int_equal(cpx_canon_writer_finish(&w, &out, &len), CPX_CANON_OK);
        assert_int_equal(cpx_canon_parse(&doc, out, len, NULL), CPX_CANON_OK);
        assert_int_equal(cpx_canon_root(&doc)->count, (uint32_t)members);
        for (size_t cut = 0; cut < len; cut++)
            assert_int_not_equal(cpx_canon_validate(out, cut, NULL), CPX_CANON_OK);
    }
    cpx_canon_doc_free(&doc);
    cpx_canon_writer_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_round_trip), cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_key_order_utf16),   cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_parser_rejections), cmocka_unit_test(test_parser_accepts),
        cmocka_unit_test(test_depth_limits),      cmocka_unit_test(test_random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
