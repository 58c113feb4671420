/*
 * Declarative request parsing. Each handler declares a table of the fields its JSON body takes;
 * spec_parse walks the table once, converts each value into the handler's struct, and on the
 * first problem fills a spec_error naming the field (dotted path for nested objects) so the API
 * answers 400 with that name. Fields not in the table are refused (a typo is never ignored).
 *
 *     struct register_req { const char *name; unsigned roles; uint8_t key[32]; };
 *     static const struct spec register_spec[] = {
 *         SPEC_STR("name", struct register_req, name, true, 1, 200),
 *         SPEC_SET("roles", struct register_req, roles, true, role_names),
 *         SPEC_KEY("public_key", struct register_req, key, true),
 *         SPEC_END,
 *     };
 *
 * Strings are borrowed from the json_t: they live as long as the parsed body. A money field
 * SPEC_MONEY("price", ...) also accepts the key "price_micro" (docs/trading.md §1).
 */
#ifndef CPX_SERVER_SPEC_H
#define CPX_SERVER_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/errors.h"

enum spec_type {
    SPEC_STRING, /* const char *; min/max: length in characters; no control characters */
    SPEC_INT,    /* int64_t; min/max: value bounds */
    SPEC_BOOL,   /* bool */
    SPEC_ENUM,   /* int: index into values; -1 when absent */
    SPEC_SET,    /* unsigned: bit i set for values[i]; non-empty array of distinct words */
    SPEC_KEY,    /* uint8_t[32]: an Ed25519 public key in base64 */
    SPEC_TIME,   /* int64_t: an RFC 3339 time, as unix microseconds */
    SPEC_OBJECT, /* a nested object parsed by `fields` into the same destination struct */
    SPEC_MONEY,  /* int64_t micro-CNY; min/max: bounds in micro-CNY. Field `x` is sent either as
                    "x":"15.2" (decimal CNY, server/money.h) or as "x_micro":15200000, not both */
};

struct spec {
    const char *name;          /* JSON key; NULL ends a table */
    enum spec_type type;       /* how to read and store it */
    bool required;             /* absent -> missing_field */
    size_t offset;             /* destination within the handler's struct */
    int64_t min, max;          /* bounds, see enum spec_type */
    const char *const *values; /* SPEC_ENUM, SPEC_SET: allowed words, NULL-terminated */
    const struct spec *fields; /* SPEC_OBJECT: the nested table */
};

#define SPEC_STR(n, T, f, req, lo, hi)                                                             \
    {                                                                                              \
        n, SPEC_STRING, req, offsetof(T, f), lo, hi, NULL, NULL                                    \
    }
#define SPEC_INT(n, T, f, req, lo, hi)                                                             \
    {                                                                                              \
        n, SPEC_INT, req, offsetof(T, f), lo, hi, NULL, NULL                                       \
    }
#define SPEC_BOOL(n, T, f, req)                                                                    \
    {                                                                                              \
        n, SPEC_BOOL, req, offsetof(T, f), 0, 0, NULL, NULL                                        \
    }
#define SPEC_ENUM(n, T, f, req, vals)                                                              \
    {                                                                                              \
        n, SPEC_ENUM, req, offsetof(T, f), 0, 0, vals, NULL                                        \
    }
#define SPEC_SET(n, T, f, req, vals)                                                               \
    {                                                                                              \
        n, SPEC_SET, req, offsetof(T, f), 0, 0, vals, NULL                                         \
    }
#define SPEC_KEY(n, T, f, req)                                                                     \
    {                                                                                              \
        n, SPEC_KEY, req, offsetof(T, f), 0, 0, NULL, NULL                                         \
    }
#define SPEC_TIME(n, T, f, req)                                                                    \
    {                                                                                              \
        n, SPEC_TIME, req, offsetof(T, f), 0, 0, NULL, NULL                                        \
    }
#define SPEC_MONEY(n, T, f, req, lo, hi)                                                           \
    {                                                                                              \
        n, SPEC_MONEY, req, offsetof(T, f), lo, hi, NULL, NULL                                     \
    }
#define SPEC_OBJ(n, req, sub)                                                                      \
    {                                                                                              \
        n, SPEC_OBJECT, req, 0, 0, 0, NULL, sub                                                    \
    }
#define SPEC_END                                                                                   \
    {                                                                                              \
        NULL, SPEC_STRING, false, 0, 0, 0, NULL, NULL                                              \
    }

struct spec_error {
    enum err code;     /* E_MALFORMED_JSON, E_MISSING_FIELD, E_INVALID_FIELD, ... */
    char field[128];   /* dotted path of the field at fault */
    char message[256]; /* a sentence for a person */
};

/*
 * Parses object obj against spec into dest. Absent optional fields leave dest untouched (set
 * defaults before calling), except SPEC_ENUM which becomes -1. Returns true, or false with *err.
 */
bool spec_parse(const json_t *obj, const struct spec *spec, void *dest, struct spec_error *err);

/* Counts the code points of a valid UTF-8 string. */
size_t utf8_length(const char *s);

#endif
