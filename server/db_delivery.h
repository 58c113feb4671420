/*
 * Delivery and billing queries (schema/0004_delivery.sql, docs/delivery.md): the agreement's life
 * after the match, the outbox, usage reports and bills. The sequencer reads and writes agreement
 * and bill state in its batch transaction; the dispatcher claims outbox rows and records its
 * attempts; the handlers read.
 */
#ifndef CPX_SERVER_DB_DELIVERY_H
#define CPX_SERVER_DB_DELIVERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger/reqsig.h"
#include "server/db.h"

extern const struct db_statement db_delivery_statements[];

/* An agreement's state as delivery and billing need it. */
struct agreement_state {
    uint64_t id, listing;
    char buyer[CPX_ID_MAX], provider[CPX_ID_MAX];
    int64_t devices, tflops, hours, price, value, commission, commission_bps;
    int64_t deliver_by, started_at, ends_at, metered_until; /* unix seconds; 0: not yet */
    int64_t escrow_left, reserved, commission_billed;
    char status[24];
};

/* The agreement, locked for the batch: DB_NO_ROWS when there is none. */
enum db_status db_agreement_state(struct db_conn *c, uint64_t id, struct agreement_state *out);
/* Writes back the mutable part (status, times, escrow_left, reserved, commission_billed). */
enum db_status db_agreement_state_put(struct db_conn *c, const struct agreement_state *a);

struct bill_state {
    uint64_t id, agreement;
    char buyer[CPX_ID_MAX], provider[CPX_ID_MAX];
    int64_t amount, commission, dispute_until;
    char status[16];
};

enum db_status db_bill_state(struct db_conn *c, uint64_t id, struct bill_state *out);

/* Columns of the bill queries, and their JSON (docs/delivery.md §4). */
#define BILL_COLUMNS                                                                               \
    "b.id, b.agreement_id, b.buyer, b.provider, b.period_start, b.period_end, b.device_seconds, "  \
    "b.amount, b.commission, b.final, b.status, b.dispute_until, b.ledger_seq, "                   \
    "extract(epoch FROM b.created_at)::bigint, "                                                   \
    "coalesce(extract(epoch FROM b.settled_at)::bigint, 0), coalesce(b.dispute_reason, ''), "      \
    "coalesce(b.resolution_note, '')"
json_t *db_bill_json(const PGresult *r, int row);

/* One bill (BILL_COLUMNS). */
enum db_status db_bill_get(struct db_conn *c, uint64_t id, PGresult **res);
/* party's bills (as buyer or provider; NULL: all), id > after, optional filters (NULL: any). */
enum db_status db_bill_list(struct db_conn *c, const char *party, uint64_t agreement,
                            const char *status, uint64_t after, int limit, PGresult **res);

#endif
