/*
 * Money of the exchange, exactly (docs/trading.md §1, §2). Every amount is an int64_t count of
 * micro-CNY (1 CNY = 1,000,000 micro); the API shows it twice, as a decimal CNY string ("15.2")
 * and as the integer ("15200000"). No floating point anywhere.
 *
 * This file holds the one written rounding rule of the exchange:
 *
 *     value      = floor(price × tflops × devices × hours / 1000)   (price per PFLOPS-hour)
 *     commission = floor(value × bps / 10000)
 *
 * both exact in 128 bits and both rounding towards the buyer, so the parts of a fill never cost
 * more than the hold computed on the whole. Pure functions, no I/O.
 */
#ifndef CPX_SERVER_MONEY_H
#define CPX_SERVER_MONEY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MONEY_STR_MAX 32      /* longest formatted amount with its NUL */
#define MONEY_MICRO   1000000 /* micro-CNY per CNY */

/* Parses a decimal CNY string ("15.2", "0.000001", "1000") into micro-CNY. Accepts only
 * [0-9]+ optionally followed by '.' and 1..6 digits; no sign, no spaces, no exponent, no leading
 * '+', no ".5" or "5."; leading zeros like "007" are refused except a single "0" before the point
 * ("0.5"). Refuses values above INT64_MAX micro. Returns true and sets *micro, or false. */
bool money_parse(const char *s, int64_t *micro);

/* Formats micro-CNY as the shortest exact decimal: 15200000 -> "15.2", 1 -> "0.000001", 0 -> "0",
 * -3000001 -> "-3.000001", INT64_MIN works. */
void money_format(int64_t micro, char out[MONEY_STR_MAX]);

/* value = floor(price * tflops * devices * hours / 1000), computed exactly with __int128; all
 * inputs >= 0. Returns false (leaving *out untouched) when an input is negative or the result
 * exceeds INT64_MAX. */
bool money_value(int64_t price, int64_t tflops, int64_t devices, int64_t hours, int64_t *out);

/* A bill's amount (docs/delivery.md §4): floor(price * tflops * device_seconds / 3600000), i.e.
 * value() with devices x hours measured in device-seconds. Exact; false when negative input or
 * the result does not fit int64. */
bool money_usage(int64_t price, int64_t tflops, int64_t device_seconds, int64_t *out);

/* commission = floor(value * bps / 10000); bps 0..10000, value >= 0. false on bad input. */
bool money_commission(int64_t value, int64_t bps, int64_t *out);

/* Sets obj[key] = money_format(micro) as a JSON string and obj[key + "_micro"] = micro as an
 * integer. */
void money_json_set(json_t *obj, const char *key, int64_t micro);

/* Sets obj[key] = null and obj[key_micro] = null. */
void money_json_null(json_t *obj, const char *key);

/* Checked int64 helpers for the callers: a + b, a * b; return false on overflow. */
bool money_add(int64_t a, int64_t b, int64_t *out);
bool money_mul(int64_t a, int64_t b, int64_t *out);

#endif
