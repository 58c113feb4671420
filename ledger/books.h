/*
 * The books checker: the money of the market re-derived from the ledger's records alone
 * (docs/delivery.md sections 4-6, docs/trading.md section 2, docs/ledger.md section 11). Pure C
 * like the auditor (audit.h): no I/O, no threads; the caller feeds it.
 *
 * Feed it every record in order, decoded (the struct cpx_record the auditor decoded), and it
 * keeps what the money depends on -- the fee schedule in force, every order's hold and remaining
 * quantity, every agreement's terms, escrow and metering, every usage report and bill, and every
 * account's balance per (owner, kind) -- and checks each record against it:
 *
 *   orders       the hold is the one the terms give (limit x worst-case     order_hold
 *                capacity x hours, plus the fee at the order's hold_bps)
 *   agreements   value, commission and escrow by the one rounding rule, the agreement_amount
 *                rate within the order's; what the fill releases of the hold release_amount
 *   usage        inside the agreement's window, from the previous report's  usage_window,
 *                end on, at most devices x seconds                          usage_overlap,
 *                                                                           usage_capacity
 *   bills        amount = floor(price x tflops x device_seconds / 3600000)  bill_amount
 *   commissions  min(left, max(minimum, floor(amount x bps / 10000)))       commission_amount
 *   settlements  the bill's amount and commission, once; refunds likewise   settlement
 *   releases     cancel, failure and completion return what is derived      release_amount
 *   balances     none ever negative (the exchange's external excepted)      balance_negative,
 *                                                                           balance_overflow
 *   references   ids that exist, parties that match, ids made once, steps   books_reference,
 *                the state allows (an acceptance starting at its record's   duplicate_id,
 *                time, a dispute before dispute_until), payloads the books  lifecycle,
 *                can read                                                   books_payload
 *   requests     a usage, acceptance, dispute or resolution record is what  signed_body
 *                its party signed: the method and target name what the
 *                payload names, and the body, read as the exchange reads
 *                it, holds the payload's numbers and words
 *
 * Each failure names the record's seq and the order, agreement, bill or account concerned. After a
 * wrong number the books go on with the number the record says (what moved), so one wrong number
 * is one failure, not a cascade.
 *
 * Records are taken once, in order: a record whose seq is not above the last one taken (a repeat,
 * which the auditor reports as seq_order) is ignored.
 *
 * The exchange's own books. cpx_books_compare_* hold the exchange's answer to GET /v1/audit/bills
 * and GET /v1/audit/balances against the derivation ("books_bill", "books_balance").
 *
 * State. cpx_books_state_write emits the books as lines of canonical JSON (a header, then one
 * line per account, open order, agreement, unbilled usage report and bill); a later run loads
 * them line by line into fresh books and goes on from there. Orders that closed and usage reports
 * that were billed are left out: no record may name them again.
 *
 * Partial history. Books configured `partial` start from a later record without the earlier
 * history: references to what they never saw are not failures, and balances, being only the
 * movements since, are never judged (nor compared).
 */
#ifndef CPX_LEDGER_BOOKS_H
#define CPX_LEDGER_BOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/record.h"

#define CPX_BOOKS_MESSAGE_MAX 200        /* longest failure message, with its NUL */
#define CPX_BOOKS_ID_MAX      48         /* longest id the books keep, with its NUL */
#define CPX_BOOKS_EXCHANGE    "exchange" /* owner of the external and commission accounts */

/* What failed; cpx_books_reason_code gives the stable snake_case code used in reports. */
enum cpx_books_reason {
    CPX_BOOKS_PAYLOAD = 1, /* a market record lacks a member the books need */
    CPX_BOOKS_REFERENCE,   /* names an unknown order/agreement/usage/bill, or the wrong party */
    CPX_BOOKS_DUPLICATE,   /* an order, agreement, usage or bill id made twice */
    CPX_BOOKS_LIFECYCLE,   /* a step the agreement's, order's or bill's state does not allow */
    CPX_BOOKS_ORDER_HOLD,  /* an order's hold differs from its terms' */
    CPX_BOOKS_AGREEMENT_AMOUNT,  /* a fill's value, commission, escrow or rate is wrong */
    CPX_BOOKS_USAGE_WINDOW,      /* a usage period outside the agreement's window (or future) */
    CPX_BOOKS_USAGE_OVERLAP,     /* a usage period starting before the previous one ended */
    CPX_BOOKS_USAGE_CAPACITY,    /* more device-seconds than the devices have in the period */
    CPX_BOOKS_BILL_AMOUNT,       /* a bill's amount differs from its usage's */
    CPX_BOOKS_COMMISSION_AMOUNT, /* a commission (or its bps or minimum) differs */
    CPX_BOOKS_SETTLEMENT,        /* a settlement or refund differs from its bill, or repeats */
    CPX_BOOKS_RELEASE_AMOUNT,    /* a release (fill, cancel, failure, completion) differs */
    CPX_BOOKS_BALANCE_NEGATIVE,  /* an account (or an agreement's escrow) goes below zero */
    CPX_BOOKS_BALANCE_OVERFLOW,  /* a balance leaves the 64-bit range */
    CPX_BOOKS_EXCHANGE_BILL,     /* the exchange's books differ from the ledger on a bill */
    CPX_BOOKS_EXCHANGE_BALANCE,  /* the exchange's books differ from the ledger on a balance */
    CPX_BOOKS_SIGNED_BODY,       /* a record differs from the request its party signed */
};

/* The stable code of reason r ("bill_amount"). Never NULL; static. */
const char *cpx_books_reason_code(enum cpx_books_reason r);

/* One finding. */
struct cpx_books_failure {
    uint64_t seq;                        /* the record's seq */
    enum cpx_books_reason reason;        /* what failed */
    char message[CPX_BOOKS_MESSAGE_MAX]; /* a sentence for people */
};

/* The kinds of account, in the exchange's order (docs/trading.md section 2). */
enum cpx_books_kind {
    CPX_BOOKS_AVAILABLE = 0,
    CPX_BOOKS_HELD,
    CPX_BOOKS_ESCROW,
    CPX_BOOKS_EXTERNAL,
    CPX_BOOKS_COMMISSION,
    CPX_BOOKS_KINDS
};

/* The name of kind k ("available"), or NULL when out of range. */
const char *cpx_books_kind_name(enum cpx_books_kind k);

/* The kind named name, or -1. */
int cpx_books_kind_from_name(const char *name);

/* How books are set up. */
struct cpx_books_config {
    size_t max_failures; /* failures kept in detail (0: 10000); all are counted */
    bool partial;        /* the history before the first record fed is unknown (see above) */
    uint64_t start_seq;  /* partial books: the seq of the first record they are to take */
};

/* One account as derived: an owner's balance of every kind. */
struct cpx_books_account {
    const char *owner;                /* identity id, or CPX_BOOKS_EXCHANGE */
    int64_t balance[CPX_BOOKS_KINDS]; /* micro-CNY */
    uint64_t seq;                     /* the last record that moved it */
};

/* Where a bill stands. */
enum cpx_books_bill_status {
    CPX_BOOKS_BILL_OPEN = 0, /* in its dispute window, or resolved "pay" and due to settle */
    CPX_BOOKS_BILL_DISPUTED, /* disputed, not yet resolved */
    CPX_BOOKS_BILL_SETTLED,  /* paid to the provider */
    CPX_BOOKS_BILL_REFUNDED, /* returned to the buyer */
};

/* The name of status s ("open"), as GET /v1/audit/bills writes it. */
const char *cpx_books_bill_status_name(enum cpx_books_bill_status s);

/* One bill as the ledger says it. */
struct cpx_books_bill {
    const char *id;                    /* "bil_..." */
    const char *agreement;             /* its agreement's id */
    int64_t amount;                    /* the bill record's amount_micro */
    int64_t commission;                /* its commission record's, 0 until there is one */
    enum cpx_books_bill_status status; /* as the records leave it */
    uint64_t seq;                      /* the bill record's seq */
};

/* What the books have seen so far. */
struct cpx_books_counts {
    uint64_t records;     /* records taken (all kinds) */
    uint64_t orders;      /* order records checked */
    uint64_t agreements;  /* agreement records checked */
    uint64_t usages;      /* usage records checked */
    uint64_t bills;       /* bill records re-derived */
    uint64_t commissions; /* commission records re-derived */
    uint64_t settlements; /* settlement and refund records checked */
    uint64_t accounts;    /* accounts (owner and kind) with a balance that ever moved, in total */
    uint64_t compared_bills;    /* bills of the exchange's books compared */
    uint64_t compared_accounts; /* accounts (owner and kind) of the exchange's books compared */
};

/* The result of a feeding call. */
enum cpx_books_status {
    CPX_BOOKS_OK = 0,  /* processed (findings, if any, were recorded) */
    CPX_BOOKS_E_NOMEM, /* out of memory: the books cannot go on */
};

struct cpx_books;

/* New books, or NULL when out of memory. Free with cpx_books_free. */
struct cpx_books *cpx_books_new(const struct cpx_books_config *cfg);

/* Frees b and everything it holds (NULL is fine). */
void cpx_books_free(struct cpx_books *b);

/* Takes the next record (decoded, untrusted). Returns CPX_BOOKS_OK or CPX_BOOKS_E_NOMEM. */
enum cpx_books_status cpx_books_record(struct cpx_books *b, const struct cpx_record *r);

/*
 * Ends the records: a bill still without its commission record is a failure (a bill's commission
 * is written in its batch, and a ledger ends at a batch's checkpoint). Sorts the failures.
 */
void cpx_books_finish(struct cpx_books *b);

/* The failures kept so far (sorted by seq after cpx_books_finish); *n gets their number. */
const struct cpx_books_failure *cpx_books_failures(const struct cpx_books *b, size_t *n);

/* All failures found, including those beyond max_failures. */
uint64_t cpx_books_failure_total(const struct cpx_books *b);

/* Fills out with what the books have seen. */
void cpx_books_counts(const struct cpx_books *b, struct cpx_books_counts *out);

/* True when the books lack the history before their first record (see above). */
bool cpx_books_partial(const struct cpx_books *b);

/* The seq the next record should carry (one past the last taken; 0 at first). */
uint64_t cpx_books_next_seq(const struct cpx_books *b);

/*
 * Accounts, in the order they first moved: start with *cursor = 0; each call fills out and
 * returns true until there are no more. out->owner stays valid until the next record is fed.
 */
bool cpx_books_account_next(const struct cpx_books *b, size_t *cursor,
                            struct cpx_books_account *out);

/* The account of owner; false when no record ever moved it. */
bool cpx_books_account_find(const struct cpx_books *b, const char *owner,
                            struct cpx_books_account *out);

/* Bills, in ledger order, as cpx_books_account_next. */
bool cpx_books_bill_next(const struct cpx_books *b, size_t *cursor, struct cpx_books_bill *out);

/* The bill with id; false when no bill record made it. */
bool cpx_books_bill_find(const struct cpx_books *b, const char *id, struct cpx_books_bill *out);

/* ---- the exchange's books ------------------------------------------------------------------ */

/* A bill as GET /v1/audit/bills lists it (untrusted; every string NUL-terminated). */
struct cpx_books_claimed_bill {
    const char *id;        /* "bil_..." */
    const char *agreement; /* its agreement */
    const char *status;    /* "open", "disputed", "settled", "refunded" */
    int64_t amount;        /* amount_micro */
    int64_t commission;    /* commission_micro */
    bool has_seq;          /* ledger_seq was given */
    uint64_t ledger_seq;   /* the seq of its bill record */
};

/*
 * Starts a comparison with the exchange's books, which should reflect the first `size` records
 * (those fed). `moving`: the exchange's ledger has grown past `size` already, so only what never
 * changes once recorded can be compared -- a bill's agreement, amount, commission and seq -- and
 * bills it lists beyond `size` are not judged. With partial books only the bills fed are judged.
 */
void cpx_books_compare_begin(struct cpx_books *b, uint64_t size, bool moving);

/* Compares one bill of the exchange's books. */
void cpx_books_compare_bill(struct cpx_books *b, const struct cpx_books_claimed_bill *c);

/* Compares one account of the exchange's books (skipped when moving or partial). */
void cpx_books_compare_balance(struct cpx_books *b, const char *owner, enum cpx_books_kind kind,
                               int64_t balance);

/*
 * Ends the comparison. `bills` and `balances`: the exchange served that list in full, so what the
 * ledger has and the list lacks is a difference too. `moved`: the exchange's ledger grew while
 * its books were being read, so the findings that depend on the moment -- statuses, balances --
 * are dropped. Findings become failures; the failures are sorted again.
 */
void cpx_books_compare_end(struct cpx_books *b, bool bills, bool balances, bool moved);

/* ---- state --------------------------------------------------------------------------------- */

/* Receives one line of the state (canonical JSON, no newline); false stops the writing. */
typedef bool (*cpx_books_emit_fn)(void *ctx, const uint8_t *line, size_t len);

/* Emits the state line by line. Returns false when emit refused a line or memory ran out. */
bool cpx_books_state_write(const struct cpx_books *b, cpx_books_emit_fn emit, void *ctx);

/*
 * Loads one line of a state into fresh books (the header first). Returns NULL, or a sentence
 * saying what is wrong (then the books hold part of the state and should be freed).
 */
const char *cpx_books_state_load_line(struct cpx_books *b, const void *line, size_t len);

/* After the last line: NULL when the state was complete, else what is missing. */
const char *cpx_books_state_load_end(struct cpx_books *b);

#endif
