/*
 * What the parts of the cpx client share: its context, the helpers that send a request and
 * report its answer (main.c), the market commands (market.c) and the delivery and billing
 * commands (billing.c), listed in main.c's table.
 * Exit statuses, for every command: 0 done, 1 the exchange refused (the error is printed),
 * 2 usage, 3 unreachable.
 */
#ifndef CPX_CLIENTS_CPX_H
#define CPX_CLIENTS_CPX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "clients/common/cli.h"
#include "clients/common/client.h"

struct ctx {
    struct client cl; /* connection settings and key */
    bool json;        /* --json */
};

/* Sends a request (body stolen). Returns false when no reply arrived. */
bool send_request(struct ctx *c, const char *method, const char *target, json_t *body, bool sign,
                  const char *idempotency_key, struct client_reply *r);

/* Sends a request and prints the reply; returns the exit status. */
int call(struct ctx *c, const char *method, const char *target, json_t *body, bool sign,
         const char *idempotency_key);

/* Appends "name=value" to a query string when value is set (values are plain words here). */
void add_query(char *q, size_t cap, const char *name, const char *value);

/* ---- market commands (market.c) ------------------------------------------------------------ */

typedef int cpx_command_fn(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a);

extern const struct cli_flag list_capacity_flags[], order_flags[], mine_flags[], page_flags[],
    markets_flags[], book_flags[], trades_flags[], index_flags[], deposit_flags[];

cpx_command_fn cmd_list_capacity, cmd_delist, cmd_listings, cmd_order, cmd_cancel, cmd_orders,
    cmd_agreements, cmd_regions, cmd_markets, cmd_book, cmd_trades, cmd_index, cmd_deposit,
    cmd_balance;

/* ---- delivery and billing commands (billing.c) --------------------------------------------- */

extern const struct cli_flag bills_flags[], dispute_flags[], resolve_flags[], usage_flags[],
    statement_flags[];

cpx_command_fn cmd_deliveries, cmd_usage, cmd_bills, cmd_bill, cmd_dispute, cmd_resolve,
    cmd_statement;

#endif
