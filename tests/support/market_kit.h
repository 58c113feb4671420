/*
 * What the market's end-to-end tests share (docs/trading.md): calls that assert their status,
 * the money twins of an answer, registering an existing key on a second exchange (identity ids
 * are derived from keys, so the same key is the same party everywhere), deposits, balances, and
 * reading tables as text to compare two databases or one database before and after.
 */
#ifndef CPX_TESTS_MARKET_KIT_H
#define CPX_TESTS_MARKET_KIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tests/support/testenv.h"

/* Sends a request (signed when cl has a key), fails the test unless the status is want, and
 * returns the parsed body (caller decrefs; may be NULL for an empty body). */
json_t *mk_call(struct client *cl, const char *method, const char *target, const char *body,
                long want);

/* o[key + "_micro"], failing the test when it is not an integer. */
int64_t mk_micro(const json_t *o, const char *key);

/* o[key] as a string / an integer, failing the test when it is not one. */
const char *mk_str(const json_t *o, const char *key);
int64_t mk_int(const json_t *o, const char *key);

/* Credits amount (decimal CNY) to the account of id as the operator op; returns the answer's
 * ledger_seq. */
uint64_t mk_deposit(struct client *op, const char *id, const char *amount);

/* Balances of id read by reader (itself, a regulator or an operator): available, held, escrow. */
void mk_balances(struct client *reader, const char *id, int64_t out[3]);

/* Runs sql as superuser on the database of url and returns every row as text: fields separated
 * by tabs, rows ended by newlines, SQL NULL as "\N" (malloc'd). Fails the test on error. */
char *mk_db_text(const char *url, const char *sql);

/* The number of lines of text (rows of mk_db_text). */
size_t mk_lines(const char *text);

#endif
