/*
 * Every endpoint handler, one file per family (h_<family>.c). The route table (routes.c) says
 * which path and access each serves.
 */
#ifndef CPX_SERVER_HANDLERS_H
#define CPX_SERVER_HANDLERS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct request;

/* h_health.c */
void h_healthz(struct request *req);
void h_metrics(struct request *req);
void h_openapi(struct request *req);

/* h_identities.c */
void h_identity_register(struct request *req);
void h_identity_list(struct request *req);
void h_identity_show(struct request *req);
void h_identity_approve(struct request *req);
void h_identity_reject(struct request *req);
void h_identity_rotate_key(struct request *req);

/* h_ledger.c */
void h_ledger_checkpoint(struct request *req);
void h_ledger_checkpoints(struct request *req);
void h_ledger_checkpoint_show(struct request *req);
void h_ledger_records(struct request *req);
void h_ledger_record(struct request *req);
void h_ledger_consistency(struct request *req);
void h_ledger_keys(struct request *req);
void h_ledger_export(struct request *req);

/* h_market.c */
void h_regions(struct request *req);
void h_listing_create(struct request *req);
void h_listing_cancel(struct request *req);
void h_listing_list(struct request *req);
void h_listing_show(struct request *req);
void h_job_create(struct request *req);
void h_order_create(struct request *req);
void h_order_cancel(struct request *req);
void h_order_list(struct request *req);
void h_order_show(struct request *req);
void h_agreement_list(struct request *req);
void h_agreement_show(struct request *req);
void h_deposit(struct request *req);
void h_account_me(struct request *req);
void h_account_show(struct request *req);
void h_markets(struct request *req);
void h_fees(struct request *req);
void h_book(struct request *req);
void h_price_index(struct request *req);
void h_trades(struct request *req);

/* h_delivery.c (docs/delivery.md) */
void h_usage_report(struct request *req);
void h_deliveries(struct request *req);
void h_bill_list(struct request *req);
void h_bill_show(struct request *req);
void h_bill_dispute(struct request *req);
void h_bill_resolve(struct request *req);
void h_statement(struct request *req);
void h_audit_bills(struct request *req);
void h_audit_balances(struct request *req);

/* ---- helpers the market's handlers share (h_market.c) ---------------------------------------- */

/* A time field not sent: SPEC_TIME leaves the field untouched, so it starts as this. */
#define TIME_ABSENT INT64_MIN

/* A time field in whole seconds (SPEC_TIME gives microseconds); 0 when absent. Answers 400 and
 * returns false for a fraction of a second or a time out of range. */
bool market_whole_seconds(struct request *req, const char *field, int64_t us, int64_t *out);
/* Regulators and operators read every party's market data. */
bool market_may_read_all(const struct request *req);
/* ?limit= and ?after= (an id with prefix), and ?status=open|closed when status is not NULL. */
bool market_list_params(struct request *req, const char *prefix, int *limit, uint64_t *after,
                        const char **status);
/* {"items":items,"next":<prefix + last when the page is full, else null>}. */
void market_reply_page(struct request *req, json_t *items, int limit, const char *prefix,
                       uint64_t last);

#endif
