/*
 * The market's objects as the API shows them, shared by the sequencer (which answers from memory
 * right after a batch commits) and the read handlers (which answer from PostgreSQL), so both give
 * the same JSON for the same state (docs/trading.md §4).
 */
#ifndef CPX_SERVER_TRADING_H
#define CPX_SERVER_TRADING_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger/keyfile.h"

#define CLIENT_ORDER_ID_MAX 64
#define ENDPOINT_MAX        512

/* Where an order or listing stands; names in trade_status_names. */
enum trade_status { TRADE_OPEN, TRADE_FILLED, TRADE_CANCELLED, TRADE_EXPIRED };
extern const char *const trade_status_names[]; /* "open", "filled", "cancelled", "expired" */

/* The accounts of an owner (docs/trading.md §2); names in account_kind_names. */
enum account_kind { ACC_AVAILABLE, ACC_HELD, ACC_ESCROW, ACC_EXTERNAL, ACC_COMMISSION, ACC_NKINDS };
extern const char *const account_kind_names[];
/* The index of an account kind's name, or -1. */
int account_kind_index(const char *name);

#define EXCHANGE_ACCOUNT "exchange" /* owner of the external and commission accounts */

struct order_view {
    uint64_t id;
    char buyer[CPX_ID_MAX];
    char client_order_id[CLIENT_ORDER_ID_MAX + 1];
    const json_t *terms; /* the order's terms as shown (borrowed) */
    int64_t remaining, filled_devices, hold, hold_left;
    enum trade_status status;
    char cancel_reason[16]; /* "" when none */
    uint64_t ledger_seq;
    int64_t created_at;       /* unix seconds */
    const json_t *agreements; /* array of agreement ids (borrowed), NULL = [] */
};

struct listing_view {
    uint64_t id;
    char provider[CPX_ID_MAX];
    const json_t *terms; /* borrowed */
    int64_t devices, remaining;
    enum trade_status status;
    char cancel_reason[16];
    uint64_t ledger_seq;
    int64_t created_at;
};

/* New JSON objects (caller decrefs); NULL when out of memory. */
json_t *order_json(const struct order_view *v);
json_t *listing_json(const struct listing_view *v);
json_t *account_json(const char *owner, const int64_t balance[ACC_NKINDS]);

/* Sets obj[key] to the RFC 3339 form of unix seconds t, or null when t is 0. */
void json_set_time(json_t *obj, const char *key, int64_t t);

/*
 * The hold an order needs for `quantity` still to fill (docs/trading.md §2): the value of its
 * worst-case capacity at its limit for its hours, plus the commission at bps on that. The
 * worst case is quantity x per devices for a device order, quantity + per - 1 TFLOPS for a
 * capacity order, where per is the order's max_tflops or the precision's largest. False when it
 * does not fit in int64 (never wraps). Fills of that quantity never cost more in total.
 */
bool trading_hold(int64_t limit, bool devices, int64_t quantity, int64_t per, int64_t hours,
                  int64_t bps, int64_t *hold);

/* The cancel reason word for an engine reason (MX_R_USER -> "user", ...). */
const char *trading_cancel_reason(unsigned mx_reason);

#endif
