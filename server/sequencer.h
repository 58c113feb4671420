/*
 * The sequencer: the single writer of the market (docs/trading.md §5).
 *
 * HTTP threads validate a request, build a command and hand it over with sequencer_submit, which
 * suspends the request's connection. The sequencer thread takes every queued command (up to
 * --batch-max) as one batch, applies them in order to the matching engine and the accounts,
 * writes the whole batch -- journal, rows, money entries, ledger records and a signed checkpoint
 * -- in one PostgreSQL transaction, and after COMMIT answers and resumes every request of the
 * batch. It also expires orders as time passes. On start it rebuilds the books by replaying the
 * journal and checks the engine's state hash against the last batch's.
 */
#ifndef CPX_SERVER_SEQUENCER_H
#define CPX_SERVER_SEQUENCER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger/record.h"
#include "matching/matching.h"
#include "server/trading.h"

struct request;
struct server;
struct sequencer;
struct seq_waiter;

enum seq_op {
    SEQ_LISTING = 1,
    SEQ_ORDER,
    SEQ_CANCEL,
    SEQ_DEPOSIT,
    SEQ_USAGE,         /* a provider's usage report: usage, bill, commission (docs/delivery.md) */
    SEQ_DISPUTE,       /* a buyer disputes a bill */
    SEQ_RESOLVE,       /* an operator resolves a dispute */
    SEQ_ACCEPT,        /* internal: the dispatcher got the provider's signed acceptance */
    SEQ_UNDELIVERABLE, /* internal: a job was not accepted by its deadline */
};

#define MARKET_NAME_MAX 98 /* "vendor/model" and its NUL */

/* A validated listing; the sequencer assigns ask.id, ask.owner, ask.vendor and ask.model. */
struct seq_listing {
    mx_ask ask;
    char vendor[MARKET_NAME_MAX]; /* "nvidia" */
    char model[MARKET_NAME_MAX];  /* "nvidia/H100-SXM" */
    char region[32];
    char endpoint[ENDPOINT_MAX + 1];
    json_t *terms;    /* as the API shows them (owned) */
    char *terms_text; /* the same as JSON text, made on the HTTP thread (owned) */
};

/* A validated order; the sequencer assigns bid.id, bid.owner and bid.allow. */
struct seq_order {
    mx_bid bid;
    char models[MX_MAX_ALLOW][MARKET_NAME_MAX]; /* allow-list names, bid.n_allow of them */
    char client_order_id[CLIENT_ORDER_ID_MAX + 1];
    uint8_t body_sha256[32]; /* tells a repeat of the order from a reuse of its id */
    int64_t hold;            /* micro-CNY to hold (docs/trading.md §2) */
    int64_t hold_bps;        /* the commission rate the hold covers */
    json_t *terms;           /* owned */
    char *terms_text;        /* the same as JSON text, made on the HTTP thread (owned) */
};

struct seq_cancel {
    uint64_t id;  /* order or listing */
    bool listing; /* which of the two */
};

struct seq_deposit {
    char account[CPX_ID_MAX]; /* an approved identity */
    int64_t amount;           /* micro-CNY, > 0 */
};

struct seq_usage {
    uint64_t agreement;
    int64_t start, end;     /* the period, unix seconds */
    int64_t device_seconds; /* >= 0 */
    bool final;             /* the provider declares the job finished: the agreement ends */
};

#define BILL_TEXT_MAX 500 /* a dispute's reason, a resolution's note: bytes */

struct seq_bill_op {
    uint64_t bill;
    char text[BILL_TEXT_MAX + 1]; /* reason (dispute) or note (resolution) */
    bool refund;                  /* resolution: refund rather than pay */
};

/* The dispatcher's report on an agreement's delivery. */
struct seq_delivery {
    uint64_t agreement;
    struct cpx_party party; /* SEQ_ACCEPT: the provider's signed acceptance (body owned) */
};

/* One command. The request stays suspended until the sequencer answers it; an internal command
 * (req NULL, from the dispatcher) is waited for with sequencer_call. */
struct seq_cmd {
    enum seq_op op;
    struct request *req;
    struct seq_listing listing;
    struct seq_order order;
    struct seq_cancel cancel;
    struct seq_deposit deposit;
    struct seq_usage usage;
    struct seq_bill_op bill;
    struct seq_delivery delivery;
    struct seq_waiter *waiter; /* internal commands */
    const char *idem_key;      /* Idempotency-Key (the request's header) of a listing or deposit */
    uint8_t idem_hash[32];     /* the request's digest for it */
    struct seq_cmd *next;      /* queue link */
};

/* A zeroed command for req (NULL when out of memory). */
struct seq_cmd *seq_cmd_new(enum seq_op op, struct request *req);

/*
 * Rebuilds the market from the database (journal replay, state hash check), then starts the
 * sequencer thread. Returns NULL with *err (malloc'd) when the database and the journal disagree
 * or cannot be read.
 */
struct sequencer *sequencer_start(struct server *srv, char **err);

/* Answers whatever is still queued with 503 and stops the thread; later submissions are answered
 * 503 at once. */
void sequencer_stop(struct sequencer *s);

/* Frees the sequencer (after sequencer_stop, once no request can reach it any more). */
void sequencer_free(struct sequencer *s);

/*
 * Hands cmd over (the sequencer owns it from here) and suspends its request; the sequencer
 * answers it after the batch that carries it commits. When the sequencer is not running the
 * request is answered 503 at once.
 */
void sequencer_submit(struct sequencer *s, struct seq_cmd *cmd);

/*
 * Runs an internal command (req NULL; the caller keeps ownership of cmd) and waits until its
 * batch committed. Returns the HTTP-like status of the outcome (200 done, 409 nothing to do,
 * 503 the sequencer is not running or the database failed) and copies its message into msg.
 */
int sequencer_call(struct sequencer *s, struct seq_cmd *cmd, char *msg, size_t msg_cap);

/* Wakes the dispatchers (a batch made agreements); set by the dispatcher at its start. */
void sequencer_on_agreements(struct sequencer *s, void (*fn)(void *), void *arg);

/* The fee schedule in force. */
void sequencer_fees(const struct sequencer *s, int64_t *maker_bps, int64_t *taker_bps);

#endif
