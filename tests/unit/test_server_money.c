/*
 * Exact money (server/money.c): the one spelling of each amount, formatting, and the rounding
 * rule of docs/trading.md §2 checked against a slow decimal reference.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/money.h"

/* A fixed-seed generator (splitmix64), so that a failure always reproduces. */
static uint64_t rng_state = 0x6a09e667f3bcc908u;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A random int64 >= 0 of a random magnitude: small values, powers of ten and the top all occur. */
static int64_t rnd_amount(void)
{
    switch (rnd() % 4) {
    case 0: return (int64_t)(rnd() % 2000);
    case 1: return (int64_t)((rnd() % 10) * 1000000 + rnd() % 3 * 500000);
    default: return (int64_t)(rnd() >> (1 + rnd() % 63));
    }
}

struct parse_case {
    const char *text;
    bool ok;
    int64_t micro;
};

static const struct parse_case parse_cases[] = {
    { "0", true, 0 },
    { "0.0", true, 0 },
    { "0.000000", true, 0 },
    { "0.5", true, 500000 },
    { "0.000001", true, 1 },
    { "1", true, 1000000 },
    { "15.2", true, 15200000 },
    { "15.20", true, 15200000 },
    { "1000", true, 1000000000 },
    { "1.000000", true, 1000000 },
    { "10.000001", true, 10000001 },
    { "9223372036854", true, 9223372036854000000 },
    { "9223372036854.775807", true, INT64_MAX },
    { "9223372036854.775808", false, 0 },
    { "9223372036854.8", false, 0 },
    { "9223372036855", false, 0 },
    { "18446744073709551616", false, 0 },
    { "99999999999999999999999999999999", false, 0 },
    { "1.0000000", false, 0 },
    { "0.0000001", false, 0 },
    { "", false, 0 },
    { "-1", false, 0 },
    { "-0", false, 0 },
    { "+1", false, 0 },
    { "1e3", false, 0 },
    { "1E3", false, 0 },
    { " 1", false, 0 },
    { "1 ", false, 0 },
    { "0x10", false, 0 },
    { "1.", false, 0 },
    { "0.", false, 0 },
    { ".1", false, 0 },
    { ".", false, 0 },
    { "00", false, 0 },
    { "01", false, 0 },
    { "007", false, 0 },
    { "00.5", false, 0 },
    { "1..2", false, 0 },
    { "1.2.3", false, 0 },
    { "1,5", false, 0 },
    { "1_000", false, 0 },
    { "\xd9\xa1", false, 0 }, /* ARABIC-INDIC DIGIT ONE */
    { "NaN", false, 0 },
    { "inf", false, 0 },
};

static void parses_only_the_one_spelling(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        int64_t v = -42;
        bool ok = money_parse(c->text, &v);
        if (ok != c->ok)
            fail_msg("\"%s\": %s, want %s", c->text, ok ? "accepted" : "refused",
                     c->ok ? "accepted" : "refused");
        if (ok && v != c->micro)
            fail_msg("\"%s\": %" PRId64 ", want %" PRId64, c->text, v, c->micro);
        if (!ok && v != -42)
            fail_msg("\"%s\": refused but wrote %" PRId64, c->text, v);
    }
    int64_t v;
    assert_false(money_parse(NULL, &v));
}

struct format_case {
    int64_t micro;
    const char *text;
};

static const struct format_case format_cases[] = {
    { 0, "0" },
    { 1, "0.000001" },
    { 10, "0.00001" },
    { 100000, "0.1" },
    { 999999, "0.999999" },
    { 1000000, "1" },
    { 15200000, "15.2" },
    { 1000000000000, "1000000" },
    { 10000001, "10.000001" },
    { -1, "-0.000001" },
    { -3000001, "-3.000001" },
    { -15200000, "-15.2" },
    { INT64_MAX, "9223372036854.775807" },
    { INT64_MIN, "-9223372036854.775808" },
    { INT64_MIN + 1, "-9223372036854.775807" },
    { INT64_MAX - 775807, "9223372036854" },
};

static void formats_the_shortest_exact_decimal(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof format_cases / sizeof format_cases[0]; i++) {
        char out[MONEY_STR_MAX];
        memset(out, 'x', sizeof out);
        money_format(format_cases[i].micro, out);
        if (strcmp(out, format_cases[i].text) != 0)
            fail_msg("%" PRId64 ": \"%s\", want \"%s\"", format_cases[i].micro, out,
                     format_cases[i].text);
    }
}

static void format_then_parse_is_identity(void **state)
{
    (void)state;
    for (int i = 0; i < 200000; i++) {
        int64_t x = rnd_amount(), back = -1;
        char text[MONEY_STR_MAX];
        money_format(x, text);
        if (!money_parse(text, &back) || back != x)
            fail_msg("%" PRId64 " -> \"%s\" -> %" PRId64, x, text, back);
        /* The shortest form: a fraction never ends in 0. */
        if (strchr(text, '.') != NULL && text[strlen(text) - 1] == '0')
            fail_msg("%" PRId64 " -> \"%s\" has a trailing zero", x, text);
    }
    int64_t back;
    char text[MONEY_STR_MAX];
    money_format(INT64_MAX, text);
    assert_true(money_parse(text, &back));
    assert_true(back == INT64_MAX);
}

/* ---- the slow reference: non-negative integers as decimal digit strings ---------------- */

/* digits := digits * m, for a decimal string without leading zeros ("0" for zero). */
static void dec_mul(char *digits, size_t cap, uint64_t m)
{
    char m_text[24];
    snprintf(m_text, sizeof m_text, "%" PRIu64, m);
    size_t a = strlen(digits), b = strlen(m_text);
    int acc[128] = { 0 }; /* acc[k]: the digit of 10^k, before carrying */
    assert_true(a + b < sizeof acc / sizeof acc[0] && a + b < cap);
    for (size_t i = 0; i < a; i++)
        for (size_t j = 0; j < b; j++)
            acc[(a - 1 - i) + (b - 1 - j)] += (digits[i] - '0') * (m_text[j] - '0');
    int carry = 0;
    for (size_t k = 0; k < a + b; k++) {
        acc[k] += carry;
        carry = acc[k] / 10;
        acc[k] %= 10;
    }
    size_t top = a + b;
    while (top > 1 && acc[top - 1] == 0)
        top--;
    for (size_t k = 0; k < top; k++)
        digits[k] = (char)('0' + acc[top - 1 - k]);
    digits[top] = '\0';
}

/* Reference value: floor(p*t*d*h / 1000) when it fits in int64. */
static bool ref_value(int64_t p, int64_t t, int64_t d, int64_t h, int64_t *out)
{
    char digits[128] = "1";
    dec_mul(digits, sizeof digits, (uint64_t)p);
    dec_mul(digits, sizeof digits, (uint64_t)t);
    dec_mul(digits, sizeof digits, (uint64_t)d);
    dec_mul(digits, sizeof digits, (uint64_t)h);
    size_t n = strlen(digits);
    if (n <= 3) { /* below 1000 */
        *out = 0;
        return true;
    }
    digits[n - 3] = '\0'; /* floor of the division by 1000 */
    n -= 3;
    static const char max[] = "9223372036854775807";
    if (n > strlen(max) || (n == strlen(max) && strcmp(digits, max) > 0))
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (digits[i] - '0');
    *out = v;
    return true;
}

static void value_matches_the_reference(void **state)
{
    (void)state;
    int fits = 0, overflows = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t p = rnd_amount(), t = rnd_amount(), d = rnd_amount(), h = rnd_amount();
        /* Keep about half of the cases in range: realistic sizes for some of the factors. */
        if (i % 2) {
            t = (int64_t)(rnd() % 70000);
            d = (int64_t)(rnd() % 5000);
        }
        int64_t want = -1, got = -2;
        bool want_ok = ref_value(p, t, d, h, &want);
        bool ok = money_value(p, t, d, h, &got);
        if (ok != want_ok || (ok && got != want))
            fail_msg("value(%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "): %s %" PRId64
                     ", want %s %" PRId64,
                     p, t, d, h, ok ? "ok" : "overflow", got, want_ok ? "ok" : "overflow", want);
        if (!ok && got != -2)
            fail_msg("overflow wrote %" PRId64, got);
        ok ? fits++ : overflows++;
    }
    /* Both outcomes were exercised often. */
    assert_true(fits > 10000);
    assert_true(overflows > 10000);
}

static void value_at_the_overflow_boundary(void **state)
{
    (void)state;
    int64_t v = -1;
    /* INT64_MAX = 7^2 × 73 × 127 × 337 × 92737 × 649657: a product of exactly INT64_MAX × 1000. */
    const int64_t p = 49LL * 73 * 127 * 337;
    assert_true(money_value(p, 92737, 649657, 1000, &v));
    assert_true(v == INT64_MAX);
    assert_true(money_value(INT64_MAX, 1000, 1, 1, &v));
    assert_true(v == INT64_MAX);
    assert_true(money_value(1, 1, 1000, INT64_MAX, &v));
    assert_true(v == INT64_MAX);
    /* A product above INT64_MAX × 1000 still floors to INT64_MAX: INT64_MAX × 1000 + 500 =
     * 500 × (2^64 - 1), and 2^64 - 1 = 3 × 5 × 17 × 257 × 641 × 65537 × 6700417. */
    v = -1;
    assert_true(money_value(500, 3 * 5 * 17 * 257, 641 * 65537LL, 6700417, &v));
    assert_true(v == INT64_MAX);
    /* One micro-CNY above: (INT64_MAX + 1) × 1000 = 2^66 × 125. */
    v = -1;
    assert_false(money_value(1LL << 62, 2000, 1, 1, &v));
    assert_false(money_value(p, 92737, 649657, 1001, &v));
    assert_false(money_value(INT64_MAX, 1001, 1, 1, &v));
    assert_false(money_value(INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, &v));
    assert_true(v == -1); /* untouched */
    /* Just below: (2^62 - 1) × 2000 = 2^63 × 1000 - 2000. */
    assert_true(money_value((1LL << 62) - 1, 2000, 1, 1, &v));
    assert_true(v == INT64_MAX - 1);
    /* A zero factor makes zero, however large the others. */
    assert_true(money_value(INT64_MAX, INT64_MAX, 0, INT64_MAX, &v));
    assert_true(v == 0);
}

static void value_floors_and_refuses_negatives(void **state)
{
    (void)state;
    int64_t v = -1;
    assert_true(money_value(1, 999, 1, 1, &v));
    assert_true(v == 0);
    assert_true(money_value(1, 1999, 1, 1, &v));
    assert_true(v == 1);
    assert_true(money_value(15200000, 1979, 8, 24, &v)); /* 8 H100 bf16 for a day at 15.2 */
    assert_true(v == 5775513600LL);                      /* 15200000 × 1979 × 8 × 24 / 1000 */
    v = -1;
    assert_false(money_value(-1, 1, 1, 1, &v));
    assert_false(money_value(1, -1, 1, 1, &v));
    assert_false(money_value(1, 1, -1, 1, &v));
    assert_false(money_value(1, 1, 1, -1, &v));
    assert_false(money_value(0, 0, 0, INT64_MIN, &v));
    assert_true(v == -1);
}

static void commission_floors(void **state)
{
    (void)state;
    int64_t c = -1;
    assert_true(money_commission(999, 10, &c));
    assert_true(c == 0); /* 0.999 */
    assert_true(money_commission(1000, 10, &c));
    assert_true(c == 1);
    assert_true(money_commission(1999, 10, &c));
    assert_true(c == 1);
    assert_true(money_commission(123456789, 20, &c));
    assert_true(c == 246913); /* 246913.578 */
    assert_true(money_commission(123456789, 0, &c));
    assert_true(c == 0);
    assert_true(money_commission(123456789, 10000, &c));
    assert_true(c == 123456789);
    assert_true(money_commission(INT64_MAX, 10000, &c));
    assert_true(c == INT64_MAX);
    assert_true(money_commission(INT64_MAX, 9999, &c));
    assert_true(c == INT64_MAX - 922337203685478); /* INT64_MAX - ceil(INT64_MAX / 10000) */
    assert_true(money_commission(INT64_MAX, 1, &c));
    assert_true(c == 922337203685477);
    /* Against the reference on random values: floor(value × bps / 10000). */
    for (int i = 0; i < 100000; i++) {
        int64_t value = rnd_amount(), bps = (int64_t)(rnd() % 10001), want, got;
        char digits[128] = "1";
        dec_mul(digits, sizeof digits, (uint64_t)value);
        dec_mul(digits, sizeof digits, (uint64_t)bps);
        size_t n = strlen(digits);
        want = 0;
        for (size_t k = 0; n > 4 && k < n - 4; k++)
            want = want * 10 + (digits[k] - '0');
        assert_true(money_commission(value, bps, &got));
        if (got != want)
            fail_msg("commission(%" PRId64 ", %" PRId64 ") = %" PRId64 ", want %" PRId64, value,
                     bps, got, want);
    }
    c = -1;
    assert_false(money_commission(-1, 10, &c));
    assert_false(money_commission(1, -1, &c));
    assert_false(money_commission(1, 10001, &c));
    assert_true(c == -1);
}

static void checked_add_and_mul(void **state)
{
    (void)state;
    int64_t r = -1;
    assert_true(money_add(INT64_MAX - 1, 1, &r));
    assert_true(r == INT64_MAX);
    r = 7;
    assert_false(money_add(INT64_MAX, 1, &r));
    assert_false(money_add(INT64_MIN, -1, &r));
    assert_true(r == 7);
    assert_true(money_add(INT64_MIN, INT64_MAX, &r));
    assert_true(r == -1);
    assert_true(money_mul(3037000499LL, 3037000499LL, &r));
    assert_true(r == 9223372030926249001LL);
    r = 7;
    assert_false(money_mul(3037000500LL, 3037000500LL, &r));
    assert_false(money_mul(INT64_MIN, -1, &r));
    assert_false(money_mul(INT64_MAX, 2, &r));
    assert_true(r == 7);
    assert_true(money_mul(INT64_MIN, 1, &r));
    assert_true(r == INT64_MIN);
    assert_true(money_mul(-4, 5, &r));
    assert_true(r == -20);
}

static void json_twins(void **state)
{
    (void)state;
    json_t *o = json_object();
    money_json_set(o, "price", 15200000);
    money_json_set(o, "hold", INT64_MIN);
    money_json_null(o, "last_price");
    assert_string_equal(json_string_value(json_object_get(o, "price")), "15.2");
    assert_true(json_integer_value(json_object_get(o, "price_micro")) == 15200000);
    assert_string_equal(json_string_value(json_object_get(o, "hold")), "-9223372036854.775808");
    assert_true(json_integer_value(json_object_get(o, "hold_micro")) == INT64_MIN);
    assert_true(json_is_null(json_object_get(o, "last_price")));
    assert_true(json_is_null(json_object_get(o, "last_price_micro")));
    assert_int_equal(json_object_size(o), 6);
    /* Setting again replaces both. */
    money_json_set(o, "last_price", 1);
    assert_string_equal(json_string_value(json_object_get(o, "last_price")), "0.000001");
    assert_true(json_integer_value(json_object_get(o, "last_price_micro")) == 1);
    char *text = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(text,
                        "{\"hold\":\"-9223372036854.775808\",\"hold_micro\":"
                        "-9223372036854775808,\"last_price\":\"0.000001\","
                        "\"last_price_micro\":1,\"price\":\"15.2\",\"price_micro\":15200000}");
    free(text);
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_only_the_one_spelling),
        cmocka_unit_test(formats_the_shortest_exact_decimal),
        cmocka_unit_test(format_then_parse_is_identity),
        cmocka_unit_test(value_matches_the_reference),
        cmocka_unit_test(value_at_the_overflow_boundary),
        cmocka_unit_test(value_floors_and_refuses_negatives),
        cmocka_unit_test(commission_floors),
        cmocka_unit_test(checked_add_and_mul),
        cmocka_unit_test(json_twins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
