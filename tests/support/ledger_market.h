/*
 * Market records for the tests, shaped as docs/ledger.md section 11 and docs/delivery.md section
 * 5 fix them: deposits, orders, agreements, cancels, acceptances, failures, usage reports, bills,
 * commissions, settlements, disputes, resolutions, completions and fee schedules, appended to a
 * struct fx_log (ledger_fixtures.h). Every number is the caller's: the helpers only write the
 * payloads, so a test can write an honest ledger and then one with exactly one wrong number.
 *
 * Party-originated records are signed by the party (cpx-audit verifies them), or, when the
 * builder is made with sign = false, carry a zero signature: the books checker does not verify
 * signatures, and a long synthetic ledger then costs no Ed25519.
 *
 * The party part is the request the party would have sent: a usage report's body is the one
 * cpx-provider sends ({"device_seconds","final" when true,"period_end","period_start"}, times in
 * RFC 3339), an acceptance's the provider's {"agreement","delivery"}, a dispute's {"reason"} and a
 * resolution's {"note","outcome"}; other kinds sign their payload. A test makes the next party
 * record sign something else with next_body, next_target or next_method.
 */
#ifndef CPX_TESTS_LEDGER_MARKET_H
#define CPX_TESTS_LEDGER_MARKET_H

#include <stdbool.h>
#include <stdint.h>

#include "tests/support/ledger_fixtures.h"

/* Appends market records to a log. */
struct lm {
    struct fx_log *log; /* the log appended to */
    bool sign;          /* sign party records (else a zero signature) */
    /* The next party record's request instead of the honest one (each cleared once used). */
    const char *next_body;   /* its body */
    const char *next_target; /* its request target */
    const char *next_method; /* its method */
};

/* An order's terms and hold. */
struct lm_order {
    const char *id;        /* "ord_..." */
    const char *precision; /* "bf16" */
    int64_t devices;       /* devices ordered, or 0 for a capacity order */
    int64_t tflops;        /* TFLOPS ordered (capacity order), else 0 */
    int64_t hours;         /* hours */
    int64_t limit;         /* limit_price_micro */
    int64_t max_tflops;    /* constraints.max_tflops, 0 when not stated */
    int64_t hold_bps;      /* the fee rate its hold covers */
    int64_t hold;          /* hold_micro */
};

/* An agreement (a fill). */
struct lm_agreement {
    const char *id, *order, *buyer, *provider; /* ids */
    const char *maker;                         /* "buyer" or "provider" */
    int64_t price, tflops, devices, hours;     /* price_micro per PFLOPS-hour, per device */
    int64_t value, commission, escrow;         /* value_micro, commission_micro, escrow_micro */
    int64_t released;                          /* released_micro of the order's hold */
    int64_t bps;                               /* commission_bps, or -1 to leave it out */
    int64_t start, deliver_by;                 /* unix seconds; deliver_by -1 to leave it out */
};

/* Writes unix second t as cpx-provider does: "YYYY-MM-DDTHH:MM:SSZ". */
void lm_rfc3339(int64_t t, char out[32]);

/* Sets the log's clock so that the next record is at unix second t. */
void lm_at(struct lm *m, int64_t t);

/* The unix second of the next record. */
int64_t lm_now(const struct lm *m);

uint64_t lm_fee_schedule(struct lm *m, int64_t maker_bps, int64_t taker_bps, int64_t minimum);
uint64_t lm_deposit(struct lm *m, const struct fx_party *op, const char *account, int64_t amount);
uint64_t lm_order(struct lm *m, const struct fx_party *buyer, const struct lm_order *o);
uint64_t lm_agreement(struct lm *m, const struct lm_agreement *a);
/* party NULL: the exchange's cancel (expiry, IOC, ...); released -1 for a listing's cancel. */
uint64_t lm_cancel(struct lm *m, const struct fx_party *party, const char *id, const char *reason,
                   int64_t remaining, int64_t released);
uint64_t lm_acceptance(struct lm *m, const struct fx_party *provider, const char *agreement,
                       int64_t start, int64_t end);
uint64_t lm_failure(struct lm *m, const char *agreement, int64_t released);
/* final: the report's "final" (the job finished; a report reaching the end says true too). */
uint64_t lm_usage(struct lm *m, const struct fx_party *provider, const char *agreement,
                  const char *id, int64_t start, int64_t end, int64_t device_seconds, bool final);
uint64_t lm_bill(struct lm *m, const char *agreement, const char *id, const char *usage,
                 int64_t amount, int64_t dispute_until, bool final);
uint64_t lm_commission(struct lm *m, const char *agreement, const char *bill, int64_t bps,
                       int64_t commission, int64_t minimum);
uint64_t lm_settlement(struct lm *m, const char *agreement, const char *bill, int64_t to_provider,
                       int64_t commission);
uint64_t lm_dispute(struct lm *m, const struct fx_party *buyer, const char *bill);
uint64_t lm_resolution(struct lm *m, const struct fx_party *op, const char *bill,
                       const char *outcome, int64_t refunded);
/* metered_until -1: null. */
uint64_t lm_completion(struct lm *m, const char *agreement, int64_t metered_until,
                       const char *reason, int64_t released);

/*
 * An order that holds nothing (1 device of at most 1 TFLOPS for an hour at 1 micro-CNY: value 0)
 * and its expiry by the exchange, seq and seq + 1: a buyer-signed record and an exchange-only one
 * whose money the books check without any deposit. Returns the seq of the expiry.
 */
uint64_t lm_order_expired(struct lm *m, const struct fx_party *buyer, int n);

/* ---- the README's trade, as a story --------------------------------------------------------- */

#define LM_T0        1764403200LL /* the fixtures log's first second */
#define LM_CNY       1000000LL    /* micro-CNY in a CNY */
#define LM_HOUR      3600LL
#define LM_WINDOW    86400LL /* the dispute window of the story */
#define LM_MAKER_BPS 10
#define LM_TAKER_BPS 20

/* Which number the exchange gets wrong (and keeps consistent with afterwards). */
enum lm_tamper {
    LM_HONEST = 0,
    LM_HOLD,               /* the order's hold, +1 */
    LM_VALUE,              /* the fill's value, +1 */
    LM_FILL_RELEASE,       /* what the fill releases of the hold, -1 */
    LM_CANCEL_RELEASE,     /* what the cancel releases, -1 */
    LM_USAGE_START,        /* the first report starts 1 s before the agreement */
    LM_OVERLAP,            /* the second report starts 1 s before the first ended */
    LM_CAPACITY,           /* the first report has 1 device-second too many */
    LM_BILL,               /* the first bill's amount, +1 */
    LM_COMMISSION,         /* the first bill's commission, +1 */
    LM_CAP,                /* the second commission ignores what is left of the escrowed one */
    LM_SETTLE,             /* the settlement pays the provider 1 more than the bill */
    LM_SETTLE_COMMISSION,  /* the settlement takes 1 more commission than the bill's */
    LM_REFUND,             /* the refund returns 1 less than amount + commission */
    LM_COMPLETION_RELEASE, /* the completion releases 1 less than is left */
    LM_ORDER_FEE,          /* the order holds for the maker rate only (the fill is capped) */
    LM_POOR,               /* the buyer deposited less than the order holds */
    LM_EARLY_FINAL,        /* honest, but the job ends early: the second report says final */
};

/* Seqs of the story's records. */
struct lm_seqs {
    uint64_t fee, deposit, order, agreement, cancel, acceptance, usage1, bill1, commission1, usage2,
        bill2, commission2, completion, dispute, settlement, resolution;
};

struct lm_story {
    struct fx_log log;
    struct lm lm;
    struct fx_party op, buyer, provider;
    struct lm_seqs at;
    int64_t start, end; /* the agreement's clock */
};

/* docs/trading.md section 2 and docs/delivery.md section 4, written out for the tests. */
int64_t lm_value(int64_t price, int64_t tflops, int64_t devices, int64_t hours);
int64_t lm_bps(int64_t v, int64_t bps);
int64_t lm_hold(int64_t limit, int64_t devices, int64_t per, int64_t hours, int64_t bps);
int64_t lm_bill_amount(int64_t price, int64_t tflops, int64_t device_seconds);
int64_t lm_commission_on(int64_t amount, int64_t bps, int64_t minimum, int64_t left);

/* An order for `devices` bf16 devices of at most max_tflops each, for hours at limit, holding
 * for hold_bps: its hold the one its terms give (lm_hold). */
struct lm_order lm_bf16_order(const char *id, int64_t devices, int64_t max_tflops, int64_t hours,
                              int64_t limit, int64_t hold_bps);

/*
 * A fill of order between buyer and provider: devices of tflops each at price for hours, at bps,
 * with the value, commission and escrow that follow (lm_fill_value); the provider the maker,
 * nothing released of the order's hold, no start and no deliver_by.
 */
struct lm_agreement lm_fill(const char *id, const char *order, const char *buyer,
                            const char *provider, int64_t price, int64_t tflops, int64_t devices,
                            int64_t hours, int64_t bps);

/* Sets a fill's value, and the commission at its bps and the escrow that follow from it. */
void lm_fill_value(struct lm_agreement *a, int64_t value);

/* A log with the identities: an exchange-bootstrapped operator, a buyer and a provider. */
void lm_story_parties(struct lm_story *s, bool sign);

/*
 * The README's trade and what follows it -- a fee schedule, a deposit, the order, the fill, the
 * cancel, the acceptance, two usage reports with their bills and commissions, the completion, a
 * dispute, a settlement and a refund -- told by an exchange that gets `t` wrong and stays
 * consistent with it afterwards; `minimum` is the fee schedule's minimum commission per bill.
 */
void lm_story_build(struct lm_story *s, enum lm_tamper t, int64_t minimum, bool sign);

void lm_story_free(struct lm_story *s);

#endif
