/*
 * The declarative request parser (server/spec.c): every field type, its bounds, and the errors
 * that name the field at fault.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/spec.h"

static const char *const colours[] = { "red", "green", "blue", NULL };

struct inner {
    int64_t depth;
};

struct req {
    const char *name;
    int64_t count;
    bool flag;
    int colour;
    unsigned set;
    uint8_t key[32];
    int64_t when;
    int64_t depth;
};

static const struct spec nested[] = {
    SPEC_INT("depth", struct req, depth, true, 0, 10),
    SPEC_END,
};

static const struct spec spec[] = {
    SPEC_STR("name", struct req, name, true, 1, 5),
    SPEC_INT("count", struct req, count, false, -3, 1000),
    SPEC_BOOL("flag", struct req, flag, false),
    SPEC_ENUM("colour", struct req, colour, false, colours),
    SPEC_SET("set", struct req, set, false, colours),
    SPEC_KEY("key", struct req, key, false),
    SPEC_TIME("when", struct req, when, false),
    SPEC_OBJ("inner", false, nested),
    SPEC_END,
};

/* Parses text; returns true on success, else fills err. */
static bool parse(const char *text, struct req *r, struct spec_error *err)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    assert_non_null(j);
    memset(r, 0, sizeof *r);
    r->count = 42;
    bool ok = spec_parse(j, spec, r, err);
    json_decref(j); /* strings are borrowed: only compare them before this in real code */
    return ok;
}

static void accepts_every_type(void **state)
{
    (void)state;
    struct req r;
    struct spec_error err;
    json_t *j = json_loads("{\"name\":\"ab\\u4e2d\",\"count\":-3,\"flag\":true,\"colour\":\"blue\","
                           "\"set\":[\"green\",\"red\"],"
                           "\"key\":\"siS4a7ZKRsgQ5JS2d0slj1eGYJYHRHNBNjJiq73r6Wc=\","
                           "\"when\":\"2026-11-29T08:00:00.5+08:00\",\"inner\":{\"depth\":3}}",
                           0, NULL);
    assert_non_null(j);
    memset(&r, 0, sizeof r);
    assert_true(spec_parse(j, spec, &r, &err));
    assert_string_equal(r.name, "ab\xe4\xb8\xad");
    assert_int_equal(r.count, -3);
    assert_true(r.flag);
    assert_int_equal(r.colour, 2);
    assert_int_equal(r.set, 3);
    assert_int_equal(r.key[0], 0xb2);
    assert_int_equal(r.when, 1795939200LL * 1000000 - 8 * 3600 * 1000000LL + 500000);
    assert_int_equal(r.depth, 3);
    json_decref(j);
}

static void defaults_when_absent(void **state)
{
    (void)state;
    struct req r;
    struct spec_error err;
    assert_true(parse("{\"name\":\"x\",\"count\":null}", &r, &err));
    assert_int_equal(r.count, 42); /* untouched */
    assert_int_equal(r.colour, -1);
    assert_int_equal(r.set, 0);
}

struct bad {
    const char *body;
    enum err code;
    const char *field;
};

static const struct bad bads[] = {
    { "{}", E_MISSING_FIELD, "name" },
    { "{\"name\":null}", E_MISSING_FIELD, "name" },
    { "{\"name\":1}", E_INVALID_FIELD, "name" },
    { "{\"name\":\"\"}", E_OUT_OF_RANGE, "name" },
    { "{\"name\":\"abcdef\"}", E_OUT_OF_RANGE, "name" },
    { "{\"name\":\"\\u4e2d\\u4e2d\\u4e2d\\u4e2d\\u4e2d\\u4e2d\"}", E_OUT_OF_RANGE, "name" },
    { "{\"name\":\"a\\tb\"}", E_INVALID_FIELD, "name" },
    { "{\"name\":\"a\\u007f\"}", E_INVALID_FIELD, "name" },
    { "{\"name\":\"x\",\"count\":1001}", E_OUT_OF_RANGE, "count" },
    { "{\"name\":\"x\",\"count\":-4}", E_OUT_OF_RANGE, "count" },
    { "{\"name\":\"x\",\"count\":1.5}", E_INVALID_FIELD, "count" },
    { "{\"name\":\"x\",\"count\":\"7\"}", E_INVALID_FIELD, "count" },
    { "{\"name\":\"x\",\"flag\":1}", E_INVALID_FIELD, "flag" },
    { "{\"name\":\"x\",\"colour\":\"Red\"}", E_INVALID_FIELD, "colour" },
    { "{\"name\":\"x\",\"colour\":3}", E_INVALID_FIELD, "colour" },
    { "{\"name\":\"x\",\"set\":[]}", E_INVALID_FIELD, "set" },
    { "{\"name\":\"x\",\"set\":[\"red\",\"red\"]}", E_INVALID_FIELD, "set" },
    { "{\"name\":\"x\",\"set\":\"red\"}", E_INVALID_FIELD, "set" },
    { "{\"name\":\"x\",\"key\":\"AAAA\"}", E_INVALID_FIELD, "key" },
    { "{\"name\":\"x\",\"key\":\"siS4a7ZKRsgQ5JS2d0slj1eGYJYHRHNBNjJiq73r6Wd=\"}", E_INVALID_FIELD,
      "key" }, /* non-zero trailing bits: not canonical base64 */
    { "{\"name\":\"x\",\"when\":\"2026-02-30T00:00:00Z\"}", E_INVALID_FIELD, "when" },
    { "{\"name\":\"x\",\"when\":\"2026-11-29 08:00:00Z\"}", E_INVALID_FIELD, "when" },
    { "{\"name\":\"x\",\"when\":\"2026-11-29T08:00:00\"}", E_INVALID_FIELD, "when" },
    { "{\"name\":\"x\",\"inner\":{}}", E_MISSING_FIELD, "inner.depth" },
    { "{\"name\":\"x\",\"inner\":{\"depth\":11}}", E_OUT_OF_RANGE, "inner.depth" },
    { "{\"name\":\"x\",\"inner\":{\"depth\":1,\"deep\":2}}", E_UNKNOWN_FIELD, "inner.deep" },
    { "{\"name\":\"x\",\"inner\":[]}", E_INVALID_FIELD, "inner" },
    { "{\"name\":\"x\",\"nmae\":\"y\"}", E_UNKNOWN_FIELD, "nmae" },
    { "{\"name\":\"x\",\"count_micro\":1}", E_UNKNOWN_FIELD, "count_micro" }, /* not money */
};

static void refuses_and_names_the_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        struct req r;
        struct spec_error err;
        if (parse(bads[i].body, &r, &err))
            fail_msg("accepted %s", bads[i].body);
        if (err.code != bads[i].code || strcmp(err.field, bads[i].field) != 0)
            fail_msg("%s: code %d field %s, want %d %s", bads[i].body, err.code, err.field,
                     bads[i].code, bads[i].field);
        assert_true(strlen(err.message) > 0);
    }
}

static void refuses_non_objects(void **state)
{
    (void)state;
    struct req r;
    struct spec_error err;
    json_t *a = json_array();
    assert_false(spec_parse(a, spec, &r, &err));
    assert_int_equal(err.code, E_MALFORMED_JSON);
    json_decref(a);
    assert_false(spec_parse(NULL, spec, &r, &err));
}

/* ---- SPEC_MONEY: "x":"15.2" or "x_micro":15200000 ---------------------------------------- */

struct order {
    int64_t limit;
    int64_t fee;
    int64_t cap;
};

static const struct spec money_inner[] = {
    SPEC_MONEY("cap", struct order, cap, true, 0, INT64_MAX),
    SPEC_END,
};

static const struct spec money_spec[] = {
    SPEC_MONEY("limit_price", struct order, limit, true, 1, 1000000000000000000), /* 10^12 CNY */
    SPEC_MONEY("fee", struct order, fee, false, 0, 5000000),
    SPEC_OBJ("inner", false, money_inner),
    SPEC_END,
};

/* Parses text against money_spec, with -1 in every field first; true on success, else err. */
static bool parse_money(const char *text, struct order *o, struct spec_error *err)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", text, jerr.text);
    o->limit = o->fee = o->cap = -1;
    bool ok = spec_parse(j, money_spec, o, err);
    json_decref(j);
    return ok;
}

struct money_good {
    const char *body;
    int64_t limit, fee, cap;
};

static const struct money_good money_goods[] = {
    { "{\"limit_price\":\"15.2\"}", 15200000, -1, -1 },
    { "{\"limit_price_micro\":15200000}", 15200000, -1, -1 },
    { "{\"limit_price\":\"0.000001\"}", 1, -1, -1 },
    { "{\"limit_price_micro\":1}", 1, -1, -1 },
    { "{\"limit_price\":\"1000000000000\"}", 1000000000000000000, -1, -1 },
    { "{\"limit_price_micro\":1000000000000000000}", 1000000000000000000, -1, -1 },
    { "{\"limit_price\":\"15.20\"}", 15200000, -1, -1 },
    { "{\"limit_price\":\"1\",\"fee\":\"0\"}", 1000000, 0, -1 },
    { "{\"limit_price\":\"1\",\"fee\":\"5\"}", 1000000, 5000000, -1 },
    { "{\"limit_price\":\"1\",\"fee_micro\":0}", 1000000, 0, -1 },
    { "{\"limit_price\":\"1\",\"fee\":null}", 1000000, -1, -1 },
    { "{\"limit_price\":\"1\",\"fee_micro\":null}", 1000000, -1, -1 },
    /* A null twin is absent, as null is for every field. */
    { "{\"limit_price\":null,\"limit_price_micro\":7}", 7, -1, -1 },
    { "{\"limit_price\":\"2\",\"limit_price_micro\":null}", 2000000, -1, -1 },
    /* Nested: dotted paths, both forms. */
    { "{\"limit_price\":\"1\",\"inner\":{\"cap\":\"0.5\"}}", 1000000, -1, 500000 },
    { "{\"limit_price\":\"1\",\"inner\":{\"cap_micro\":5}}", 1000000, -1, 5 },
    { "{\"limit_price\":\"1\",\"inner\":{\"cap\":\"9223372036854.775807\"}}", 1000000, -1,
      INT64_MAX },
    { "{\"inner\":{\"cap_micro\":0},\"fee_micro\":3,\"limit_price_micro\":4}", 4, 3, 0 },
};

static void money_either_form(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof money_goods / sizeof money_goods[0]; i++) {
        const struct money_good *g = &money_goods[i];
        struct order o;
        struct spec_error err;
        if (!parse_money(g->body, &o, &err))
            fail_msg("refused %s: %s %s", g->body, err.field, err.message);
        if (o.limit != g->limit || o.fee != g->fee || o.cap != g->cap)
            fail_msg("%s: %lld %lld %lld", g->body, (long long)o.limit, (long long)o.fee,
                     (long long)o.cap);
    }
}

struct money_bad {
    const char *body;
    enum err code;
    const char *field;
    const char *says; /* a part of the message */
};

static const struct money_bad money_bads[] = {
    /* Neither form of a required field. */
    { "{}", E_MISSING_FIELD, "limit_price", "limit_price_micro" },
    { "{\"limit_price\":null}", E_MISSING_FIELD, "limit_price", "required" },
    { "{\"limit_price\":null,\"limit_price_micro\":null}", E_MISSING_FIELD, "limit_price",
      "required" },
    { "{\"limit_price\":\"1\",\"inner\":{}}", E_MISSING_FIELD, "inner.cap", "inner.cap_micro" },
    /* Both forms. */
    { "{\"limit_price\":\"1\",\"limit_price_micro\":1000000}", E_INVALID_FIELD, "limit_price",
      "one of them" },
    { "{\"limit_price\":\"1\",\"limit_price_micro\":\"1\"}", E_INVALID_FIELD, "limit_price",
      "limit_price_micro" },
    { "{\"limit_price\":\"1\",\"inner\":{\"cap\":\"1\",\"cap_micro\":1}}", E_INVALID_FIELD,
      "inner.cap", "inner.cap_micro" },
    /* The string form: a decimal string, one spelling. */
    { "{\"limit_price\":15.2}", E_INVALID_FIELD, "limit_price", "decimal amount of CNY" },
    { "{\"limit_price\":15}", E_INVALID_FIELD, "limit_price", "\"15.2\"" },
    { "{\"limit_price\":true}", E_INVALID_FIELD, "limit_price", "at most 6 decimals" },
    { "{\"limit_price\":[\"1\"]}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":{}}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"15.2 \"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"1e3\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"-1\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"+1\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\".5\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"5.\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"01\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"1.0000001\"}", E_INVALID_FIELD, "limit_price", "6 decimals" },
    { "{\"limit_price\":\"1\\u00002\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    { "{\"limit_price\":\"18446744073709551616\"}", E_INVALID_FIELD, "limit_price", "decimal" },
    /* The micro form: an integer. */
    { "{\"limit_price_micro\":\"15200000\"}", E_INVALID_FIELD, "limit_price_micro",
      "integer amount of micro-CNY" },
    { "{\"limit_price_micro\":1.5}", E_INVALID_FIELD, "limit_price_micro", "integer" },
    { "{\"limit_price_micro\":1e6}", E_INVALID_FIELD, "limit_price_micro", "integer" },
    { "{\"limit_price_micro\":false}", E_INVALID_FIELD, "limit_price_micro", "integer" },
    { "{\"limit_price\":\"1\",\"inner\":{\"cap_micro\":\"1\"}}", E_INVALID_FIELD, "inner.cap_micro",
      "inner.cap_micro must be an integer" },
    /* Bounds, in the unit of the form sent. */
    { "{\"limit_price\":\"0\"}", E_INVALID_FIELD, "limit_price",
      "from 0.000001 to 1000000000000 CNY" },
    { "{\"limit_price\":\"1000000000000.000001\"}", E_INVALID_FIELD, "limit_price",
      "1000000000000 CNY" },
    { "{\"limit_price_micro\":0}", E_INVALID_FIELD, "limit_price_micro",
      "from 1 to 1000000000000000000 micro-CNY" },
    { "{\"limit_price_micro\":-15200000}", E_INVALID_FIELD, "limit_price_micro", "micro-CNY" },
    { "{\"limit_price_micro\":1000000000000000001}", E_INVALID_FIELD, "limit_price_micro",
      "micro-CNY" },
    { "{\"limit_price\":\"1\",\"fee\":\"5.000001\"}", E_INVALID_FIELD, "fee", "from 0 to 5 CNY" },
    { "{\"limit_price\":\"1\",\"fee_micro\":-1}", E_INVALID_FIELD, "fee_micro",
      "from 0 to 5000000" },
    { "{\"limit_price\":\"1\",\"inner\":{\"cap_micro\":-1}}", E_INVALID_FIELD, "inner.cap_micro",
      "micro-CNY" },
    /* Only the money fields have a _micro twin, and only in their own object. */
    { "{\"limit_price\":\"1\",\"limit_price_micros\":1}", E_UNKNOWN_FIELD, "limit_price_micros",
      "not a field" },
    { "{\"limit_price\":\"1\",\"fee_MICRO\":1}", E_UNKNOWN_FIELD, "fee_MICRO", "not a field" },
    { "{\"limit_price\":\"1\",\"_micro\":1}", E_UNKNOWN_FIELD, "_micro", "not a field" },
    { "{\"limit_price\":\"1\",\"inner_micro\":{}}", E_UNKNOWN_FIELD, "inner_micro", "not a field" },
    { "{\"limit_price\":\"1\",\"cap_micro\":1}", E_UNKNOWN_FIELD, "cap_micro", "not a field" },
    { "{\"limit_price\":\"1\",\"inner\":{\"cap\":\"1\",\"fee_micro\":1}}", E_UNKNOWN_FIELD,
      "inner.fee_micro", "not a field" },
};

static void money_refusals_name_the_key_sent(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof money_bads / sizeof money_bads[0]; i++) {
        const struct money_bad *b = &money_bads[i];
        struct order o;
        struct spec_error err;
        memset(&err, 0, sizeof err);
        if (parse_money(b->body, &o, &err))
            fail_msg("accepted %s", b->body);
        if (err.code != b->code || strcmp(err.field, b->field) != 0)
            fail_msg("%s: code %d field %s, want %d %s", b->body, err.code, err.field, b->code,
                     b->field);
        if (strstr(err.message, b->says) == NULL)
            fail_msg("%s: message \"%s\" does not say \"%s\"", b->body, err.message, b->says);
    }
}

static void money_message_for_a_person(void **state)
{
    (void)state;
    struct order o;
    struct spec_error err;
    assert_false(parse_money("{\"limit_price\":\"15,2\"}", &o, &err));
    assert_string_equal(err.message, "limit_price must be a decimal amount of CNY with at most 6 "
                                     "decimals, e.g. \"15.2\"");
    assert_false(parse_money("{\"limit_price\":\"1\",\"limit_price_micro\":1}", &o, &err));
    assert_string_equal(err.message, "limit_price and limit_price_micro are the same amount: send "
                                     "one of them, not both");
}

static void counts_code_points(void **state)
{
    (void)state;
    assert_int_equal(utf8_length(""), 0);
    assert_int_equal(utf8_length("abc"), 3);
    assert_int_equal(utf8_length("\xe4\xb8\xad\xe6\x96\x87"), 2);
    assert_int_equal(utf8_length("\xf0\x9f\x98\x80x"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_every_type),
        cmocka_unit_test(defaults_when_absent),
        cmocka_unit_test(refuses_and_names_the_field),
        cmocka_unit_test(refuses_non_objects),
        cmocka_unit_test(counts_code_points),
        cmocka_unit_test(money_either_form),
        cmocka_unit_test(money_refusals_name_the_key_sent),
        cmocka_unit_test(money_message_for_a_person),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
