/*
 * Market queries (schema/0003_trading.sql): the reads of the API handlers, and the statements
 * the sequencer runs in its batch transaction. One function per statement where a handler calls
 * it; the sequencer runs its own by name (db_query / db_command) with array parameters.
 */
#ifndef CPX_SERVER_DB_TRADING_H
#define CPX_SERVER_DB_TRADING_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/db.h"
#include "server/trading.h"

/* An order as stored: the view plus what it owns. */
struct order_row {
    struct order_view v; /* v.terms and v.agreements point at the two below */
    json_t *terms;
    json_t *agreements; /* array of "agr_..." ids */
    uint8_t body_sha256[32];
    int64_t hold_bps; /* the commission rate its hold covers: fills never charge more */
};

struct listing_row {
    struct listing_view v; /* v.terms points at terms */
    json_t *terms;
    char region[32];
    char endpoint[ENDPOINT_MAX + 1];
};

void order_row_free(struct order_row *o);
void listing_row_free(struct listing_row *l);

/* Columns of the order and listing queries, and their decoding. False on a malformed row. */
#define ORDER_COLUMNS                                                                              \
    "o.id, o.buyer, o.client_order_id, encode(o.body_sha256, 'hex'), o.spec::text, o.remaining, "  \
    "o.filled_devices, o.hold, o.hold_left, o.status, coalesce(o.cancel_reason, ''), "             \
    "o.ledger_seq, extract(epoch FROM o.created_at)::bigint, "                                     \
    "(SELECT coalesce(string_agg(a.id::text, ',' ORDER BY a.id), '') FROM agreements a "           \
    "WHERE a.order_id = o.id), o.hold_bps"
#define LISTING_COLUMNS                                                                            \
    "l.id, l.provider, l.spec::text, l.region, l.devices, l.remaining, l.status, "                 \
    "coalesce(l.cancel_reason, ''), l.ledger_seq, extract(epoch FROM l.created_at)::bigint, "      \
    "coalesce(l.spec->>'endpoint', '')"
bool db_order_from_row(const PGresult *r, int row, struct order_row *out);
bool db_listing_from_row(const PGresult *r, int row, struct listing_row *out);

/* One order or listing by id: DB_NO_ROWS when there is none. */
enum db_status db_order_get(struct db_conn *c, uint64_t id, struct order_row *out);
enum db_status db_listing_get(struct db_conn *c, uint64_t id, struct listing_row *out);

/* The rows of an owner's orders or listings with id > after, at most limit, by id; status
 * filter NULL (all), "open" or "closed". *res holds them (caller PQclears). */
enum db_status db_order_list(struct db_conn *c, const char *buyer, const char *status,
                             uint64_t after, int limit, PGresult **res);
enum db_status db_listing_list(struct db_conn *c, const char *provider, const char *status,
                               uint64_t after, int limit, PGresult **res);

/* Agreements (AGREEMENT_COLUMNS) as API JSON. party NULL: every agreement. */
json_t *db_agreement_json(const PGresult *r, int row, bool with_parties);
enum db_status db_agreement_get(struct db_conn *c, uint64_t id, PGresult **res);
enum db_status db_agreement_list(struct db_conn *c, const char *party, uint64_t after, int limit,
                                 PGresult **res);

/* Public trades, newest first: id < before (0 = from the newest), optional filters. */
enum db_status db_trade_list(struct db_conn *c, const char *precision, const char *region,
                             uint64_t before, int limit, PGresult **res);

/* Per (precision, region): last price and the 24 h volume. Rows: precision, region, last price,
 * agreements, devices, pflops-hours (TFLOPS-hours / 1000, floored). */
enum db_status db_market_stats(struct db_conn *c, PGresult **res);

/* The volume-weighted price of precision over the last hours: rows (Σ price×w, Σ w, count) as
 * numeric text, w = tflops×devices×hours. */
enum db_status db_price_index(struct db_conn *c, const char *precision, int hours, PGresult **res);

/* The balances of owner; zeros when it has no accounts yet. */
enum db_status db_account_get(struct db_conn *c, const char *owner, int64_t balance[ACC_NKINDS]);

/* Stores a job description (idempotent): DB_NO_ROWS when buyer already keeps `quota` others.
 * db_job_exists checks that buyer stored one with this hash. */
enum db_status db_job_put(struct db_conn *c, const char *buyer, const uint8_t sha256[32],
                          const char *description, int quota);
enum db_status db_job_exists(struct db_conn *c, const char *buyer, const uint8_t sha256[32]);

#endif
