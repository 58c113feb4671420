/*
 * What the parts of the cpx client share: its context, the helpers that send a request and
 * report its answer (main.c), those that build a request target and print an answer as lines and
 * tables (helpers.c), the market commands (market.c) and the delivery and billing commands
 * (billing.c), listed in main.c's table.
 * Exit statuses, for every command: 0 done, 1 the exchange refused (the error is printed),
 * 2 usage, 3 unreachable.
 */
#ifndef CPX_CLIENTS_CPX_H
#define CPX_CLIENTS_CPX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

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

/* ---- building requests and printing answers (helpers.c) ------------------------------------ */

/* Is s an id the exchange could have made (lst_..., ord_..., agr_..., bil_...) or a precision or
 * region name: 1 to 64 of [A-Za-z0-9._-]? Anything else would not stay one path segment. */
bool word_ok(const char *s);

/* Appends "name=value" (percent-encoded) to a query string when value is set. */
void add_query_escaped(char *q, size_t cap, const char *name, const char *value);

/* A string member, or "-". */
const char *str_of(const json_t *o, const char *key);

/* A scalar member as text: strings as they are, numbers in decimal, null or absent as "-". */
const char *text_of(const json_t *o, const char *key, char *buf, size_t cap);

/* One aligned "label  value" line. */
void line(FILE *out, const char *label, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A table of text cells, printed with every column as wide as its widest cell. */
#define TABLE_MAX_COLS 12
struct table {
    int ncols;
    size_t nrows, cap;
    char **cells; /* nrows x ncols, row 0 the headers */
};

/* Adds a row of ncols cells (const char *; NULL shows as "-"). */
void table_add(struct table *t, ...);

/* Prints the table, or `empty` when it has no rows but the headers; frees it. */
void table_print(struct table *t, const char *empty);

/* The footer of a page of a list: how to get the next one. */
void print_next(const json_t *page);

/*
 * Reports a reply unless it is a success to print as text: returns true when the caller prints
 * it (*rc 0), false when it is done (*rc the exit status; --json answers are printed here).
 */
bool to_print(struct ctx *c, bool ok, const struct client_reply *r, int *rc);

/* Sends a request and prints the answer with print (or as JSON); returns the exit status. */
int show(struct ctx *c, const char *method, const char *target, json_t *body, bool sign,
         const char *idempotency_key, void (*print)(const json_t *));

/* A command without arguments: GETs path with every value flag given as a query parameter (in
 * the order of flags) and prints the answer as show does; returns the exit status. */
int show_query(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a,
               const char *usage, const char *path, bool sign, void (*print)(const json_t *));

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
