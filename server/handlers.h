/*
 * Every endpoint handler, one file per family (h_<family>.c). The route table (routes.c) says
 * which path and access each serves.
 */
#ifndef CPX_SERVER_HANDLERS_H
#define CPX_SERVER_HANDLERS_H

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

#endif
