/*
 * The declarative request parser: see spec.h. One pass over the table, then one pass over the
 * object's keys to refuse unknown ones. Errors name the dotted path of the field at fault (for a
 * money field, the key actually sent: "price" or "price_micro").
 */
#include "server/spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/money.h"
#include "server/util.h"

__attribute__((format(printf, 4, 5))) static bool fail(struct spec_error *err, enum err code,
                                                       const char *field, const char *fmt, ...)
{
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Index of word in values, or -1. */
static int word_index(const char *const *values, const char *word)
{
    for (int i = 0; values[i] != NULL; i++)
        if (strcmp(values[i], word) == 0)
            return i;
    return -1;
}

/* Writes "a, b, c" of values into out. */
static const char *word_list(const char *const *values, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; values[i] != NULL && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", values[i]);
    return out;
}

static bool parse_object(const json_t *obj, const struct spec *spec, void *dest, const char *prefix,
                         struct spec_error *err);

/* The value of a money field sent as v, in micro-CNY: a decimal CNY string, or an integer of
 * micro-CNY when it came under the key "<name>_micro" (micro is true). path names the key sent. */
static bool parse_money(const json_t *v, const struct spec *s, int64_t *at, bool micro,
                        const char *path, struct spec_error *err)
{
    int64_t x;
    if (micro) {
        if (!json_is_integer(v))
            return fail(
                err, E_INVALID_FIELD, path,
                "%s must be an integer amount of micro-CNY (1 CNY = 1000000), e.g. 15200000", path);
        x = json_integer_value(v);
    } else {
        const char *str = json_is_string(v) ? json_string_value(v) : NULL;
        if (str == NULL || strlen(str) != json_string_length(v) || !money_parse(str, &x))
            return fail(err, E_INVALID_FIELD, path,
                        "%s must be a decimal amount of CNY with at most 6 decimals, e.g. \"15.2\"",
                        path);
    }
    if (x < s->min || x > s->max) {
        if (micro)
            return fail(err, E_INVALID_FIELD, path, "%s must be from %lld to %lld micro-CNY", path,
                        (long long)s->min, (long long)s->max);
        char lo[MONEY_STR_MAX], hi[MONEY_STR_MAX];
        money_format(s->min, lo);
        money_format(s->max, hi);
        return fail(err, E_INVALID_FIELD, path, "%s must be from %s to %s CNY", path, lo, hi);
    }
    *at = x;
    return true;
}

/* Parses one present value v of field s (full dotted name `path`, the key sent) into dest; micro:
 * a SPEC_MONEY value came as "<name>_micro". */
static bool parse_value(const json_t *v, const struct spec *s, void *dest, bool micro,
                        const char *path, struct spec_error *err)
{
    char *at = (char *)dest + s->offset;
    char words[256];
    switch (s->type) {
    case SPEC_STRING: {
        if (!json_is_string(v))
            return fail(err, E_INVALID_FIELD, path, "%s must be a string", path);
        const char *str = json_string_value(v);
        if (strlen(str) != json_string_length(v) || has_control(str))
            return fail(err, E_INVALID_FIELD, path, "%s must not contain control characters", path);
        size_t n = utf8_length(str);
        if ((int64_t)n < s->min || (int64_t)n > s->max)
            return fail(err, E_OUT_OF_RANGE, path, "%s must be %lld to %lld characters long", path,
                        (long long)s->min, (long long)s->max);
        *(const char **)at = str;
        return true;
    }
    case SPEC_INT: {
        if (!json_is_integer(v))
            return fail(err, E_INVALID_FIELD, path, "%s must be an integer", path);
        json_int_t x = json_integer_value(v);
        if (x < s->min || x > s->max)
            return fail(err, E_OUT_OF_RANGE, path, "%s must be from %lld to %lld", path,
                        (long long)s->min, (long long)s->max);
        *(int64_t *)at = x;
        return true;
    }
    case SPEC_BOOL:
        if (!json_is_boolean(v))
            return fail(err, E_INVALID_FIELD, path, "%s must be true or false", path);
        *(bool *)at = json_is_true(v);
        return true;
    case SPEC_ENUM: {
        int i = json_is_string(v) ? word_index(s->values, json_string_value(v)) : -1;
        if (i < 0)
            return fail(err, E_INVALID_FIELD, path, "%s must be one of: %s", path,
                        word_list(s->values, words, sizeof words));
        *(int *)at = i;
        return true;
    }
    case SPEC_SET: {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(err, E_INVALID_FIELD, path, "%s must be a non-empty array of: %s", path,
                        word_list(s->values, words, sizeof words));
        unsigned bits = 0;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            int w = json_is_string(e) ? word_index(s->values, json_string_value(e)) : -1;
            if (w < 0)
                return fail(err, E_INVALID_FIELD, path, "%s may hold only: %s", path,
                            word_list(s->values, words, sizeof words));
            if (bits & (1u << w))
                return fail(err, E_INVALID_FIELD, path, "%s lists \"%s\" twice", path,
                            s->values[w]);
            bits |= 1u << w;
        }
        *(unsigned *)at = bits;
        return true;
    }
    case SPEC_KEY:
        if (!json_is_string(v) ||
            !cpx_public_key_decode(json_string_value(v), json_string_length(v), (uint8_t *)at))
            return fail(err, E_INVALID_FIELD, path,
                        "%s must be a 32-byte Ed25519 public key in base64", path);
        return true;
    case SPEC_TIME:
        if (!json_is_string(v) || !parse_rfc3339(json_string_value(v), (int64_t *)at))
            return fail(err, E_INVALID_FIELD, path,
                        "%s must be an RFC 3339 time such as 2026-11-29T08:00:00Z", path);
        return true;
    case SPEC_OBJECT:
        if (!json_is_object(v))
            return fail(err, E_INVALID_FIELD, path, "%s must be an object", path);
        return parse_object(v, s->fields, dest, path, err);
    case SPEC_MONEY: return parse_money(v, s, (int64_t *)at, micro, path, err);
    }
    return fail(err, E_INTERNAL, path, "unknown field type");
}

/* obj[key], or NULL when it is absent or null. */
static json_t *present(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Is key the "<name>_micro" twin of money field name? */
static bool is_micro_key(const char *name, const char *key)
{
    size_t n = strlen(name);
    return strncmp(key, name, n) == 0 && strcmp(key + n, "_micro") == 0;
}

static bool parse_object(const json_t *obj, const struct spec *spec, void *dest, const char *prefix,
                         struct spec_error *err)
{
    char path[128];
    for (const struct spec *s = spec; s->name != NULL; s++) {
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", s->name);
        json_t *v = present(obj, s->name);
        bool micro = false;
        if (s->type == SPEC_MONEY) {
            char key[128];
            snprintf(key, sizeof key, "%s_micro", s->name);
            json_t *m = present(obj, key);
            if (v != NULL && m != NULL)
                return fail(err, E_INVALID_FIELD, path,
                            "%s and %s_micro are the same amount: send one of them, not both", path,
                            path);
            if (m != NULL) {
                v = m;
                micro = true;
                snprintf(path, sizeof path, "%s%s%s_micro", prefix, *prefix ? "." : "", s->name);
            } else if (v == NULL && s->required) {
                return fail(err, E_MISSING_FIELD, path,
                            "%s is required (a decimal amount of CNY such as \"15.2\", or "
                            "%s_micro in micro-CNY)",
                            path, path);
            }
        }
        if (v == NULL) {
            if (s->required)
                return fail(err, E_MISSING_FIELD, path, "%s is required", path);
            if (s->type == SPEC_ENUM)
                *(int *)((char *)dest + s->offset) = -1;
            continue;
        }
        if (!parse_value(v, s, dest, micro, path, err))
            return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool found = false;
        for (const struct spec *s = spec; s->name != NULL && !found; s++)
            found =
                strcmp(s->name, key) == 0 || (s->type == SPEC_MONEY && is_micro_key(s->name, key));
        if (!found) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
            return fail(err, E_UNKNOWN_FIELD, path, "%s is not a field of this request", path);
        }
    }
    return true;
}

bool spec_parse(const json_t *obj, const struct spec *spec, void *dest, struct spec_error *err)
{
    if (!json_is_object(obj))
        return fail(err, E_MALFORMED_JSON, "", "the body must be a JSON object");
    return parse_object(obj, spec, dest, "", err);
}
