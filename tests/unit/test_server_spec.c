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
        cmocka_unit_test(accepts_every_type),          cmocka_unit_test(defaults_when_absent),
        cmocka_unit_test(refuses_and_names_the_field), cmocka_unit_test(refuses_non_objects),
        cmocka_unit_test(counts_code_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
