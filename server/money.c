/*
 * Exact money: decimal CNY strings <-> int64 micro-CNY, and the exchange's rounding rule. See
 * money.h and docs/trading.md §2.
 */
#include "server/money.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest whole number of CNY: INT64_MAX micro is 9223372036854.775807 CNY. */
#define WHOLE_MAX (INT64_MAX / MONEY_MICRO)

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool money_parse(const char *s, int64_t *micro)
{
    if (s == NULL || !is_digit(*s))
        return false; /* empty, sign, space, ".5" */
    if (s[0] == '0' && is_digit(s[1]))
        return false; /* "007", "00": one spelling per amount */
    uint64_t whole = 0;
    for (; is_digit(*s); s++) {
        whole = whole * 10 + (uint64_t)(*s - '0'); /* cannot wrap: whole <= WHOLE_MAX before */
        if (whole > WHOLE_MAX)
            return false;
    }
    uint64_t frac = 0;
    if (*s == '.') {
        s++;
        int digits = 0;
        for (; is_digit(*s); s++, digits++) {
            if (digits == 6)
                return false; /* more than a micro-CNY */
            frac = frac * 10 + (uint64_t)(*s - '0');
        }
        if (digits == 0)
            return false; /* "5." */
        for (; digits < 6; digits++)
            frac *= 10; /* "15.2" is 15 CNY and 200000 micro */
    }
    if (*s != '\0')
        return false; /* exponent, space, second point, any other character */
    uint64_t total = whole * MONEY_MICRO + frac; /* <= 9223372036854999999: fits in 64 bits */
    if (total > INT64_MAX)
        return false;
    *micro = (int64_t)total;
    return true;
}

void money_format(int64_t micro, char out[MONEY_STR_MAX])
{
    /* The magnitude in unsigned arithmetic, so that INT64_MIN has one too. */
    uint64_t u = micro < 0 ? 0 - (uint64_t)micro : (uint64_t)micro;
    unsigned long long whole = u / MONEY_MICRO;
    unsigned frac = (unsigned)(u % MONEY_MICRO);
    int n = snprintf(out, MONEY_STR_MAX, "%s%llu", micro < 0 ? "-" : "", whole);
    if (frac == 0)
        return;
    int digits = 6;
    while (frac % 10 == 0) { /* shortest: no trailing zeros */
        frac /= 10;
        digits--;
    }
    snprintf(out + n, MONEY_STR_MAX - (size_t)n, ".%0*u", digits, frac);
}

bool money_value(int64_t price, int64_t tflops, int64_t devices, int64_t hours, int64_t *out)
{
    if (price < 0 || tflops < 0 || devices < 0 || hours < 0)
        return false;
    if (price == 0 || tflops == 0 || devices == 0 || hours == 0) {
        *out = 0;
        return true;
    }
    /* The largest product whose value still fits: floor(limit / 1000) == INT64_MAX. Every factor
     * is >= 1, so the running product only grows: once past the limit, the value cannot fit.
     * Checking before each multiplication keeps the product below 2^73, far from 2^128. */
    const unsigned __int128 limit = (unsigned __int128)INT64_MAX * 1000 + 999;
    const int64_t factors[] = { tflops, devices, hours };
    unsigned __int128 p = (unsigned __int128)price;
    for (size_t i = 0; i < sizeof factors / sizeof factors[0]; i++) {
        if (p > limit / (uint64_t)factors[i])
            return false;
        p *= (uint64_t)factors[i];
    }
    *out = (int64_t)(p / 1000); /* floor: towards the buyer */
    return true;
}

bool money_usage(int64_t price, int64_t tflops, int64_t device_seconds, int64_t *out)
{
    if (price < 0 || tflops < 0 || device_seconds < 0)
        return false;
    /* price < 2^63, tflops < 2^63, device_seconds < 2^63: the product may need 189 bits, so
     * check each step against what can still fit after the division. */
    const unsigned __int128 limit = (unsigned __int128)INT64_MAX * 3600000 + 3599999;
    unsigned __int128 p = (unsigned __int128)price;
    const int64_t factors[] = { tflops, device_seconds };
    for (size_t i = 0; i < 2; i++) {
        if (factors[i] != 0 && p > limit / (uint64_t)factors[i])
            return false;
        p *= (uint64_t)factors[i];
    }
    *out = (int64_t)(p / 3600000); /* floor: towards the buyer */
    return true;
}

bool money_commission(int64_t value, int64_t bps, int64_t *out)
{
    if (value < 0 || bps < 0 || bps > 10000)
        return false;
    /* value × bps < 2^77, and the result is at most value. */
    *out = (int64_t)((__int128)value * bps / 10000); /* floor: towards the buyer */
    return true;
}

/* obj[key + "_micro"] = v. */
static void set_micro(json_t *obj, const char *key, json_t *v)
{
    size_t n = strlen(key);
    char *name = malloc(n + sizeof "_micro");
    if (name == NULL) {
        json_decref(v);
        return;
    }
    memcpy(name, key, n);
    memcpy(name + n, "_micro", sizeof "_micro");
    json_object_set_new(obj, name, v);
    free(name);
}

void money_json_set(json_t *obj, const char *key, int64_t micro)
{
    char text[MONEY_STR_MAX];
    money_format(micro, text);
    json_object_set_new(obj, key, json_string(text));
    set_micro(obj, key, json_integer((json_int_t)micro));
}

void money_json_null(json_t *obj, const char *key)
{
    json_object_set_new(obj, key, json_null());
    set_micro(obj, key, json_null());
}

/* Both leave *out untouched on overflow, like money_value. */
bool money_add(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

bool money_mul(int64_t a, int64_t b, int64_t *out)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}
