/*
 * The declarative request parser: see spec.h. One pass over the table, then one pass over the
 * object's keys to refuse unknown ones. Errors name the dotted path of the field at fault.
 */
#include "server/spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ledger/keyfile.h"
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

/* Parses one present value v of field s (full dotted name `path`) into dest. */
static bool parse_value(const json_t *v, const struct spec *s, void *dest, const char *path,
                        struct spec_error *err)
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
    }
    return fail(err, E_INTERNAL, path, "unknown field type");
}

static bool parse_object(const json_t *obj, const struct spec *spec, void *dest, const char *prefix,
                         struct spec_error *err)
{
    char path[128];
    for (const struct spec *s = spec; s->name != NULL; s++) {
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", s->name);
        json_t *v = json_object_get(obj, s->name);
        if (v == NULL || json_is_null(v)) {
            if (s->required)
                return fail(err, E_MISSING_FIELD, path, "%s is required", path);
            if (s->type == SPEC_ENUM)
                *(int *)((char *)dest + s->offset) = -1;
            continue;
        }
        if (!parse_value(v, s, dest, path, err))
            return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool found = false;
        for (const struct spec *s = spec; s->name != NULL && !found; s++)
            found = strcmp(s->name, key) == 0;
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
