/*
 * The sequencer's insides, shared by its files: sequencer.c (batches, the market's commands, start
 * and replay) and seq_delivery.c (delivery, usage, bills and settlement: docs/delivery.md). Only
 * the sequencer thread touches any of this.
 */
#ifndef CPX_SERVER_SEQUENCER_INT_H
#define CPX_SERVER_SEQUENCER_INT_H

#include <pthread.h>

#include "ledger/record.h"
#include "server/db.h"
#include "server/db_trading.h"
#include "server/ledger_writer.h"
#include "server/sequencer.h"
#include "server/txn.h"
#include "server/u64map.h"
#include "server/util.h"

struct live_order {
    struct order_row row;
    char *terms_text;  /* its terms as JSON, for the row insert (new orders, until written) */
    bool is_new;       /* inserted by the batch in progress */
    bool dirty;        /* changed by the batch in progress (listed in b.orders) */
    int64_t closed_at; /* unix seconds, once it left the book */
};

struct live_listing {
    struct listing_row row;
    mx_ask ask; /* as the engine took it, for the row's `ask` (new listings) */
    char *terms_text;
    bool is_new, dirty;
    int64_t closed_at;
};

struct account {
    char owner[CPX_ID_MAX];
    int64_t bal[ACC_NKINDS];
    bool dirty;       /* listed in the batch's accounts */
    unsigned changed; /* bit k: bal[k] moved in this batch */
};

struct name {
    uint32_t id;
    char text[MARKET_NAME_MAX];
};

/* What the batch in progress will write. */
struct batch {
    struct seq_cmd **cmds;
    struct tx_reply *out;
    size_t n, cap;
    struct ledger_batch ledger;
    struct strbuf journal, agreements, entries, new_orders, new_listings, deliveries;
    bool agreed;                /* the batch made agreements: wake the dispatchers after COMMIT */
    struct live_order **orders; /* dirty orders */
    size_t norders, orders_cap;
    struct live_listing **listings;
    size_t nlistings, listings_cap;
    struct account **accounts;
    size_t naccounts, accounts_cap;
    size_t names_before;   /* names known before the batch: the rest are new */
    struct u64map placed;  /* hash(buyer, client_order_id) -> live_order placed in this batch */
    struct u64map repeats; /* hash(buyer, client_order_id) -> order_row found in the database */
    bool wrote;            /* something to commit */
};

struct sequencer {
    struct server *srv;
    mx_engine *engine;
    mx_event *events;
    size_t nevents, events_cap;
    bool events_failed;
    struct u64map orders, listings, accounts;
    struct name *names;
    size_t nnames, names_cap;
    struct u64map name_index; /* text_key(text) -> index + 1 into names */
    uint64_t next_id, next_agreement, next_entry, batch_id, journal_len;
    int64_t now;
    int64_t maker_bps, taker_bps;
    struct batch b;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    struct seq_cmd *head, *tail;
    size_t queued; /* commands in the queue */
    bool running, stop;
    pthread_t thread;
    PGconn *lock_conn;        /* holds the advisory lock that makes this the one sequencer */
    uint64_t next_usage;      /* next usage report (and bill) number */
    int64_t books_checked_at; /* when seq_books_tick last ran (once a second at most) */
    bool fees_recorded;       /* the fee_schedule record is in force */
    void (*on_agreements)(void *);
    void *on_agreements_arg;
};

/* An internal command's caller waits on this (sequencer_call). */
struct seq_waiter {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;
    bool done;
    int status;
    char message[512];
};

struct ctx {
    struct sequencer *s;
    struct db_conn *c;
    const struct request *req; /* the command's request (its party); NULL for a tick or for the
                                * dispatcher's commands */
    bool relisting; /* devices going back to a listing: its acceptance is not a new listing */
};

/* ---- helpers (sequencer.c) ----------------------------------------------------------------- */

/* Stops cpxd (exit 70): something failed after the books moved (see sequencer.c). */
__attribute__((noreturn)) void seq_fatal(const char *what, enum db_status st);
/* Grows *arr (of elements of size) to hold n + 1; false when out of memory. */
bool seq_grow(void **arr, size_t *cap, size_t n, size_t size);
/* COPY text fields: a tab (unless first) and s escaped, or \N for NULL. */
void seq_copy_text(struct strbuf *b, bool first, const char *s);
void seq_copy_i64(struct strbuf *b, int64_t v);
void seq_copy_time(struct strbuf *b, int64_t unix_s);
/* The accounts of owner (created empty the first time). */
struct account *seq_account(struct sequencer *s, const char *owner);
/* Moves amount (>= 0; 0 does nothing) between two accounts as one entry of the batch. */
void seq_move(struct sequencer *s, struct account *from, enum account_kind fk, struct account *to,
              enum account_kind tk, int64_t amount, const char *reason, const char *ref);
void seq_dirty_listing(struct sequencer *s, struct live_listing *l);
/* Runs and journals one engine command at the sequencer's clock; events in s->events. */
mx_reason seq_run(struct sequencer *s, mx_command *cmd);
const mx_event *seq_rejection(const struct sequencer *s);
void seq_refuse_engine(struct tx_reply *out, const mx_event *ev, const char *what);
/* Appends a record (payload consumed) with req's signed request as its party, or none. */
uint64_t seq_record(struct sequencer *s, enum cpx_kind kind, json_t *payload,
                    const struct request *party, struct db_conn *c);
/* ... with a party's signature that did not come as a request to cpxd (an acceptance). */
uint64_t seq_record_signed(struct sequencer *s, enum cpx_kind kind, json_t *payload,
                           const struct cpx_party *party, struct db_conn *c);
json_t *seq_id_json(const char *prefix, uint64_t id);
/* Applies the engine events in s->events (records, rows, money). */
void seq_apply_events(struct ctx *x);

/* ---- delivery and billing (seq_delivery.c) ------------------------------------------------- */

void seq_do_accept(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out);
void seq_do_undeliverable(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out);
void seq_do_usage(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out);
void seq_do_dispute(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out);
void seq_do_resolve(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out);
/* Settles bills whose dispute window passed and completes agreements past their usage grace. */
void seq_books_tick(struct ctx *x);
/* Before the first record this process makes that depends on the fees (an order's hold, an
 * agreement, a commission):
 * appends the fee_schedule record when cpxd's schedule differs from the last one recorded. */
void seq_fees_in_force(struct ctx *x);

#endif
