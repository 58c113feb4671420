/*
 * Tests of ledger/books.c. An honest market story -- the README's trade: a deposit, an order, a
 * fill, a cancel, delivery, two usage reports, their bills and commissions, a completion, a
 * dispute, a settlement and a refund -- must pass with the README's numbers. Then the same story
 * is told by an exchange that gets exactly one number wrong and stays consistent with it
 * afterwards (as a bug or a fraud would), and the books must name that record and reason and
 * nothing else. Around it: life-cycle and reference rules, the comparison with the exchange's own
 * books, the saved state at every split point, partial history, and a synthetic ledger for speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/books.h"
#include "tests/support/ledger_fixtures.h"
#include "tests/support/ledger_market.h"

/* ---- feeding ------------------------------------------------------------------------------- */

/* Feeds records [from, to) of l into b. */
static void feed(struct cpx_books *b, const struct fx_log *l, size_t from, size_t to)
{
    struct cpx_record r;
    cpx_record_init(&r);
    for (size_t i = from; i < to; i++) {
        assert_int_equal(cpx_record_decode(&r, l->rec[i], l->len[i]), CPX_RECORD_OK);
        assert_int_equal(cpx_books_record(b, &r), CPX_BOOKS_OK);
    }
    cpx_record_free(&r);
}

/* Fresh books over the whole log, finished. */
static struct cpx_books *books_of(const struct fx_log *l)
{
    struct cpx_books_config cfg = { 0 };
    struct cpx_books *b = cpx_books_new(&cfg);
    assert_non_null(b);
    feed(b, l, 0, l->n);
    cpx_books_finish(b);
    return b;
}

/* Prints the failures (to tell what went wrong when an expectation fails). */
static void print_failures(const struct cpx_books *b)
{
    size_t n;
    const struct cpx_books_failure *f = cpx_books_failures(b, &n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  %" PRIu64 " %s: %s\n", f[i].seq, cpx_books_reason_code(f[i].reason),
                f[i].message);
}

/* Asserts that the failures are exactly want[0..n) = (seq, reason), in order. */
static void expect(const struct cpx_books *b, const uint64_t (*want)[2], size_t n)
{
    size_t got;
    const struct cpx_books_failure *f = cpx_books_failures(b, &got);
    if (got != n)
        print_failures(b);
    assert_int_equal(got, n);
    assert_int_equal(cpx_books_failure_total(b), n);
    for (size_t i = 0; i < n; i++) {
        if (f[i].seq != want[i][0] || f[i].reason != want[i][1])
            print_failures(b);
        assert_int_equal(f[i].seq, want[i][0]);
        assert_int_equal(f[i].reason, want[i][1]);
    }
}

/* Asserts a single failure (seq, reason) whose message contains every text given. */
static void expect_one(const struct cpx_books *b, uint64_t seq, enum cpx_books_reason reason,
                       const char *text1, const char *text2)
{
    const uint64_t want[][2] = { { seq, reason } };
    expect(b, want, 1);
    size_t n;
    const char *message = cpx_books_failures(b, &n)[0].message;
    if (text1 != NULL && strstr(message, text1) == NULL)
        fail_msg("\"%s\" does not name %s", message, text1);
    if (text2 != NULL && strstr(message, text2) == NULL)
        fail_msg("\"%s\" does not name %s", message, text2);
}

static int64_t balance(const struct cpx_books *b, const char *owner, enum cpx_books_kind k)
{
    struct cpx_books_account a;
    return cpx_books_account_find(b, owner, &a) ? a.balance[k] : 0;
}

/* ---- the honest story ---------------------------------------------------------------------- */

static void test_honest_story(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);

    /* The README's numbers: the hold, the fill and what the cancel returned. */
    assert_int_equal(lm_hold(15 * LM_CNY, 6, 989, 10, LM_TAKER_BPS), 891880200);
    assert_int_equal(lm_value(12 * LM_CNY, 989, 4, 10), 474720000);
    assert_int_equal(lm_bps(474720000, LM_TAKER_BPS), 949440);
    assert_int_equal(lm_hold(15 * LM_CNY, 2, 989, 10, LM_TAKER_BPS), 297293400);
    /* After the cancel the README shows available 99524.33056 and escrow 475.66944: check the
     * books at that point. */
    struct cpx_books_config cfg = { 0 };
    struct cpx_books *mid = cpx_books_new(&cfg);
    feed(mid, &s.log, 0, s.at.cancel + 1);
    assert_int_equal(balance(mid, s.buyer.id, CPX_BOOKS_AVAILABLE), 99524330560);
    assert_int_equal(balance(mid, s.buyer.id, CPX_BOOKS_HELD), 0);
    assert_int_equal(balance(mid, s.buyer.id, CPX_BOOKS_ESCROW), 475669440);
    cpx_books_free(mid);

    /* Bills: 2400 device-seconds of 4 x 989 TFLOPS at 12 LM_CNY is 7.912 LM_CNY; 100000 are
     * 329.666666 LM_CNY; commissions at 20 bps, the second one not capped. */
    struct cpx_books_bill bill;
    assert_true(cpx_books_bill_find(b, "bil_000000000001", &bill));
    assert_int_equal(bill.amount, 7912000);
    assert_int_equal(bill.commission, 15824);
    assert_int_equal(bill.status, CPX_BOOKS_BILL_SETTLED);
    assert_int_equal(bill.seq, s.at.bill1);
    assert_string_equal(bill.agreement, "agr_000000000001");
    assert_true(cpx_books_bill_find(b, "bil_000000000002", &bill));
    assert_int_equal(bill.amount, 329666666);
    assert_int_equal(bill.commission, 659333);
    assert_int_equal(bill.status, CPX_BOOKS_BILL_REFUNDED);

    /* Final balances: the buyer paid the first bill and its commission, nothing else. */
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_AVAILABLE),
                     100000 * LM_CNY - 7912000 - 15824);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_HELD), 0);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_ESCROW), 0);
    assert_int_equal(balance(b, s.provider.id, CPX_BOOKS_AVAILABLE), 7912000);
    assert_int_equal(balance(b, CPX_BOOKS_EXCHANGE, CPX_BOOKS_COMMISSION), 15824);
    assert_int_equal(balance(b, CPX_BOOKS_EXCHANGE, CPX_BOOKS_EXTERNAL), -100000 * LM_CNY);

    struct cpx_books_counts c;
    cpx_books_counts(b, &c);
    assert_int_equal(c.records, s.log.n);
    assert_int_equal(c.orders, 1);
    assert_int_equal(c.agreements, 1);
    assert_int_equal(c.usages, 2);
    assert_int_equal(c.bills, 2);
    assert_int_equal(c.commissions, 2);
    assert_int_equal(c.settlements, 2);
    assert_int_equal(c.accounts, 6); /* buyer available/held/escrow, provider, exchange x 2 */

    /* Accounts come in the order they first moved; the exchange's first (the deposit). */
    size_t cursor = 0, n = 0;
    struct cpx_books_account acc;
    while (cpx_books_account_next(b, &cursor, &acc))
        n++;
    assert_int_equal(n, 3);
    cpx_books_free(b);
    lm_story_free(&s);
}

/* The minimum commission raises the first bill's; the escrowed commission caps the second's. */
static void test_minimum_and_cap(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 500000, false);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);
    struct cpx_books_bill bill;
    assert_true(cpx_books_bill_find(b, "bil_000000000001", &bill));
    assert_int_equal(bill.commission, 500000);
    assert_true(cpx_books_bill_find(b, "bil_000000000002", &bill));
    assert_int_equal(bill.commission, 949440 - 500000);
    cpx_books_free(b);
    lm_story_free(&s);

    lm_story_build(&s, LM_CAP, 500000, false);
    b = books_of(&s.log);
    expect_one(b, s.at.commission2, CPX_BOOKS_COMMISSION_AMOUNT, "bil_000000000002", "449440");
    cpx_books_free(b);
    lm_story_free(&s);
}

/* A job done early: the report that says "final" ends the agreement, its time unused returns. */
static void test_early_final_report(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_EARLY_FINAL, 0, false);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);
    /* Two bills of 7.912 CNY and their commissions: the rest of the escrow came back. */
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_AVAILABLE),
                     100000 * LM_CNY - 7912000 - 15824);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_ESCROW), 0);
    cpx_books_free(b);

    /* Without the completion the batch is incomplete. */
    free(s.log.rec[s.at.completion]);
    memmove(&s.log.rec[s.at.completion], &s.log.rec[s.at.completion + 1],
            (s.log.n - s.at.completion - 1) * sizeof *s.log.rec);
    memmove(&s.log.len[s.at.completion], &s.log.len[s.at.completion + 1],
            (s.log.n - s.at.completion - 1) * sizeof *s.log.len);
    s.log.n = s.at.completion; /* the records after it are renumbered: drop them too */
    for (size_t i = s.log.n; i < s.at.resolution; i++)
        free(s.log.rec[i]);
    b = books_of(&s.log);
    expect_one(b, s.at.agreement, CPX_BOOKS_LIFECYCLE, "agr_000000000001", "no completion");
    cpx_books_free(b);
    lm_story_free(&s);

    /* A bill that says final of a report that is not. */
    lm_story_build(&s, LM_HONEST, 0, false);
    s.log.n = s.at.usage1 + 1;
    for (size_t i = s.log.n; i <= s.at.resolution; i++)
        free(s.log.rec[i]);
    uint64_t bill = lm_bill(&s.lm, "agr_000000000001", "bil_000000000001", "use_000000000001",
                            7912000, lm_now(&s.lm) + LM_WINDOW, true);
    lm_commission(&s.lm, "agr_000000000001", "bil_000000000001", LM_TAKER_BPS, 15824, 0);
    b = books_of(&s.log);
    expect_one(b, bill, CPX_BOOKS_LIFECYCLE, "bil_000000000001", "neither says final");
    cpx_books_free(b);
    lm_story_free(&s);
}

/* ---- one wrong number at a time ------------------------------------------------------------ */

/* Builds the story with t and asserts the single failure (reason at the record chosen). */
static void one_wrong(enum lm_tamper t, enum cpx_books_reason reason, size_t field,
                      const char *text1, const char *text2)
{
    struct lm_story s;
    lm_story_build(&s, t, 0, false);
    struct cpx_books *b = books_of(&s.log);
    uint64_t seq = ((const uint64_t *)&s.at)[field];
    expect_one(b, seq, reason, text1, text2);
    cpx_books_free(b);
    lm_story_free(&s);
}

#define AT(name) (offsetof(struct lm_seqs, name) / sizeof(uint64_t))

static void test_order_hold(void **state)
{
    (void)state;
    one_wrong(LM_HOLD, CPX_BOOKS_ORDER_HOLD, AT(order), "ord_000000000003", "891880201");

    /* An order's hold_bps is not judged against the recorded schedule (a cpxd records it before
     * its first fill, after any order placed since a restart); the fill's rate is, capped by it. */
    struct lm_story s;
    lm_story_build(&s, LM_ORDER_FEE, 0, false);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);
    cpx_books_free(b);
    lm_story_free(&s);
}

static void test_agreement_amount(void **state)
{
    (void)state;
    one_wrong(LM_VALUE, CPX_BOOKS_AGREEMENT_AMOUNT, AT(agreement), "agr_000000000001", "474720001");
}

static void test_release_amounts(void **state)
{
    (void)state;
    one_wrong(LM_FILL_RELEASE, CPX_BOOKS_RELEASE_AMOUNT, AT(agreement), "agr_000000000001",
              "118917360");
    one_wrong(LM_CANCEL_RELEASE, CPX_BOOKS_RELEASE_AMOUNT, AT(cancel), "ord_000000000003",
              "297293399");
    one_wrong(LM_COMPLETION_RELEASE, CPX_BOOKS_RELEASE_AMOUNT, AT(completion), "agr_000000000001",
              "137415617");
}

static void test_usage_rules(void **state)
{
    (void)state;
    one_wrong(LM_USAGE_START, CPX_BOOKS_USAGE_WINDOW, AT(usage1), "use_000000000001",
              "agr_000000000001");
    one_wrong(LM_OVERLAP, CPX_BOOKS_USAGE_OVERLAP, AT(usage2), "use_000000000002",
              "agr_000000000001");
    one_wrong(LM_CAPACITY, CPX_BOOKS_USAGE_CAPACITY, AT(usage1), "use_000000000001", "2401");
}

static void test_bill_amount(void **state)
{
    (void)state;
    /* The brief's sentence: the bill, its amount, the derivation and where it came from. */
    one_wrong(LM_BILL, CPX_BOOKS_BILL_AMOUNT, AT(bill1),
              "bill bil_000000000001: amount 7912001 differs from 7912000",
              "derived from usage use_000000000001 and agreement agr_000000000001");
}

static void test_commission_amount(void **state)
{
    (void)state;
    one_wrong(LM_COMMISSION, CPX_BOOKS_COMMISSION_AMOUNT, AT(commission1), "bil_000000000001",
              "15825");
}

static void test_settlement(void **state)
{
    (void)state;
    /* Paying 1 more than billed takes money no longer in escrow: the refund after it drives
     * the agreement's escrow and the buyer's escrow account below zero. */
    struct lm_story s;
    lm_story_build(&s, LM_SETTLE, 0, false);
    struct cpx_books *b = books_of(&s.log);
    const uint64_t want[][2] = { { s.at.settlement, CPX_BOOKS_SETTLEMENT },
                                 { s.at.resolution, CPX_BOOKS_BALANCE_NEGATIVE },
                                 { s.at.resolution, CPX_BOOKS_BALANCE_NEGATIVE } };
    expect(b, want, 3);
    assert_non_null(strstr(cpx_books_failures(b, &(size_t){ 0 })[0].message, "7912001"));
    cpx_books_free(b);
    lm_story_free(&s);

    one_wrong(LM_REFUND, CPX_BOOKS_SETTLEMENT, AT(resolution), "bil_000000000002", "330325999");

    /* A bill settles once; paid again, the money comes out of an escrow that no longer holds
     * it. */
    lm_story_build(&s, LM_HONEST, 0, false);
    uint64_t again = lm_settlement(&s.lm, "agr_000000000001", "bil_000000000001", 7912000, 15824);
    b = books_of(&s.log);
    const uint64_t twice[][2] = { { again, CPX_BOOKS_SETTLEMENT },
                                  { again, CPX_BOOKS_BALANCE_NEGATIVE },
                                  { again, CPX_BOOKS_BALANCE_NEGATIVE } };
    expect(b, twice, 3);
    assert_non_null(strstr(cpx_books_failures(b, &(size_t){ 0 })[0].message, "settled at seq"));
    cpx_books_free(b);
    lm_story_free(&s);
}

static void test_settlement_commission(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_SETTLE_COMMISSION, 0, false);
    struct cpx_books *b = books_of(&s.log);
    /* The extra micro-LM_CNY again comes out of escrow the refund needs. */
    const uint64_t want[][2] = { { s.at.settlement, CPX_BOOKS_SETTLEMENT },
                                 { s.at.resolution, CPX_BOOKS_BALANCE_NEGATIVE },
                                 { s.at.resolution, CPX_BOOKS_BALANCE_NEGATIVE } };
    expect(b, want, 3);
    cpx_books_free(b);
    lm_story_free(&s);
}

static void test_balance_negative(void **state)
{
    (void)state;
    /* 800 LM_CNY deposited, 891.8802 held: available goes negative at the order, once. */
    one_wrong(LM_POOR, CPX_BOOKS_BALANCE_NEGATIVE, AT(order), "available", "-91880200");
}

/* ---- life cycle and references ------------------------------------------------------------- */

/* The story up to the agreement and its cancel, for tests that add their own records. */
static void build_fill(struct lm_story *s)
{
    lm_story_build(s, LM_HONEST, 0, false);
    /* Keep records up to the cancel: drop the rest. */
    for (size_t i = s->at.cancel + 1; i < s->log.n; i++)
        free(s->log.rec[i]);
    s->log.n = s->at.cancel + 1;
}

static void test_undelivered_agreement_fails(void **state)
{
    (void)state;
    struct lm_story s;
    build_fill(&s);
    int64_t escrow = 475669440;
    lm_at(&s.lm, LM_T0 + 10 + 900);
    uint64_t failure = lm_failure(&s.lm, "agr_000000000001", escrow);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_ESCROW), 0);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_AVAILABLE), 100000 * LM_CNY);
    cpx_books_free(b);

    /* One micro-LM_CNY kept back; then a failure before the deadline. */
    s.log.n--;
    free(s.log.rec[failure]);
    failure = lm_failure(&s.lm, "agr_000000000001", escrow - 1);
    b = books_of(&s.log);
    expect_one(b, failure, CPX_BOOKS_RELEASE_AMOUNT, "agr_000000000001", "475669440");
    cpx_books_free(b);
    s.log.n--;
    free(s.log.rec[failure]);
    lm_at(&s.lm, LM_T0 + 10 + 899);
    failure = lm_failure(&s.lm, "agr_000000000001", escrow);
    b = books_of(&s.log);
    expect_one(b, failure, CPX_BOOKS_LIFECYCLE, "agr_000000000001", "deliver_by");
    cpx_books_free(b);
    lm_story_free(&s);
}

static void test_lifecycle(void **state)
{
    (void)state;
    struct lm_story s;
    const char *agr = "agr_000000000001";

    /* Usage before the provider accepted. */
    build_fill(&s);
    lm_at(&s.lm, LM_T0 + 700);
    uint64_t u =
        lm_usage(&s.lm, &s.provider, agr, "use_000000000001", LM_T0 + 100, LM_T0 + 600, 10, false);
    struct cpx_books *b = books_of(&s.log);
    expect_one(b, u, CPX_BOOKS_LIFECYCLE, agr, "pending_delivery");
    cpx_books_free(b);
    lm_story_free(&s);

    /* Accepted twice; the acceptance's end not start + hours. */
    build_fill(&s);
    lm_at(&s.lm, LM_T0 + 60);
    lm_acceptance(&s.lm, &s.provider, agr, LM_T0 + 60, LM_T0 + 60 + 10 * LM_HOUR);
    uint64_t again = lm_acceptance(&s.lm, &s.provider, agr, LM_T0 + 60, LM_T0 + 60 + 10 * LM_HOUR);
    b = books_of(&s.log);
    expect_one(b, again, CPX_BOOKS_LIFECYCLE, agr, "which is active");
    cpx_books_free(b);
    lm_story_free(&s);
    build_fill(&s);
    lm_at(&s.lm, LM_T0 + 60);
    uint64_t a = lm_acceptance(&s.lm, &s.provider, agr, LM_T0 + 60, LM_T0 + 60 + 10 * LM_HOUR + 1);
    b = books_of(&s.log);
    expect_one(b, a, CPX_BOOKS_LIFECYCLE, agr, "10 hours");
    cpx_books_free(b);
    lm_story_free(&s);

    /* A usage report ending in the future (after its own record). */
    build_fill(&s);
    lm_at(&s.lm, LM_T0 + 60);
    lm_acceptance(&s.lm, &s.provider, agr, LM_T0 + 60, LM_T0 + 60 + 10 * LM_HOUR);
    lm_at(&s.lm, LM_T0 + 600);
    u = lm_usage(&s.lm, &s.provider, agr, "use_000000000001", LM_T0 + 60, LM_T0 + 660, 10, false);
    b = books_of(&s.log);
    expect_one(b, u, CPX_BOOKS_USAGE_WINDOW, "use_000000000001", "before");
    cpx_books_free(b);
    lm_story_free(&s);

    /* A dispute after the window; a settlement inside it; a resolution of an open bill;
     * a settlement of a disputed bill. */
    lm_story_build(&s, LM_HONEST, 0, false);
    s.log.n = s.at.completion + 1; /* keep the records through the completion */
    for (size_t i = s.log.n; i < s.at.resolution + 1; i++)
        free(s.log.rec[i]);
    lm_at(&s.lm, s.start + 605 + LM_WINDOW + 1);
    uint64_t d = lm_dispute(&s.lm, &s.buyer, "bil_000000000001");
    b = books_of(&s.log);
    expect_one(b, d, CPX_BOOKS_LIFECYCLE, "bil_000000000001", "window closed");
    cpx_books_free(b);
    s.log.n--;
    free(s.log.rec[d]);
    lm_at(&s.lm, s.start + 605 + LM_WINDOW - 1);
    uint64_t early = lm_settlement(&s.lm, agr, "bil_000000000001", 7912000, 15824);
    b = books_of(&s.log);
    expect_one(b, early, CPX_BOOKS_SETTLEMENT, "bil_000000000001", "before its dispute window");
    cpx_books_free(b);
    s.log.n--;
    free(s.log.rec[early]);
    uint64_t r = lm_resolution(&s.lm, &s.op, "bil_000000000001", "pay", 0);
    b = books_of(&s.log);
    expect_one(b, r, CPX_BOOKS_LIFECYCLE, "bil_000000000001", "not disputed");
    cpx_books_free(b);
    s.log.n--;
    free(s.log.rec[r]);
    lm_dispute(&s.lm, &s.buyer, "bil_000000000002");
    uint64_t st = lm_settlement(&s.lm, agr, "bil_000000000002", 329666666, 659333);
    b = books_of(&s.log);
    expect_one(b, st, CPX_BOOKS_SETTLEMENT, "bil_000000000002", "unresolved");
    cpx_books_free(b);
    lm_story_free(&s);
}

/* A dispute resolved "pay" settles as billed. */
static void test_dispute_pay(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    s.log.n = s.at.dispute + 1;
    for (size_t i = s.log.n; i < s.at.resolution + 1; i++)
        free(s.log.rec[i]);
    lm_resolution(&s.lm, &s.op, "bil_000000000002", "pay", 0);
    lm_settlement(&s.lm, "agr_000000000001", "bil_000000000002", 329666666, 659333);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);
    struct cpx_books_bill bill;
    assert_true(cpx_books_bill_find(b, "bil_000000000002", &bill));
    assert_int_equal(bill.status, CPX_BOOKS_BILL_SETTLED);
    assert_int_equal(balance(b, s.provider.id, CPX_BOOKS_AVAILABLE), 329666666);
    cpx_books_free(b);
    lm_story_free(&s);
}

static void test_references(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    uint64_t unknown = lm_settlement(&s.lm, "agr_000000000001", "bil_000000000009", 1, 0);
    uint64_t dup =
        lm_usage(&s.lm, &s.provider, "agr_000000000001", "use_000000000001", 1, 2, 0, false);
    uint64_t nobody = lm_completion(&s.lm, "agr_000000000077", -1, "usage_grace", 0);
    struct cpx_books *b = books_of(&s.log);
    const uint64_t want[][2] = { { unknown, CPX_BOOKS_REFERENCE },
                                 { dup, CPX_BOOKS_DUPLICATE },
                                 { nobody, CPX_BOOKS_REFERENCE } };
    expect(b, want, 3);
    cpx_books_free(b);
    lm_story_free(&s);

    /* Signed by someone else: the usage of the buyer, the dispute of the provider. */
    lm_story_build(&s, LM_HONEST, 0, false);
    s.log.n = s.at.acceptance + 1;
    for (size_t i = s.log.n; i < s.at.resolution + 1; i++)
        free(s.log.rec[i]);
    lm_at(&s.lm, s.start + 605);
    uint64_t u = lm_usage(&s.lm, &s.buyer, "agr_000000000001", "use_000000000001", s.start,
                          s.start + 600, 2400, false);
    b = books_of(&s.log);
    expect_one(b, u, CPX_BOOKS_REFERENCE, s.buyer.id, "provider");
    cpx_books_free(b);
    lm_story_free(&s);

    /* A bill whose payload lacks its usage: its money cannot be derived. */
    lm_story_build(&s, LM_HONEST, 0, false);
    uint64_t odd = fx_append(&s.log, "bill",
                             "{\"agreement\":\"agr_000000000001\",\"amount_micro\":5,"
                             "\"dispute_until\":0,\"final\":false,\"id\":\"bil_000000000003\"}",
                             NULL, NULL, NULL, NULL);
    b = books_of(&s.log);
    expect_one(b, odd, CPX_BOOKS_PAYLOAD, "bill", "usage");
    cpx_books_free(b);
    lm_story_free(&s);

    /* A cancel of an order that had closed. */
    build_fill(&s);
    uint64_t c = lm_cancel(&s.lm, &s.buyer, "ord_000000000003", "user", 2, 0);
    b = books_of(&s.log);
    expect_one(b, c, CPX_BOOKS_LIFECYCLE, "ord_000000000003", "closed at seq");
    cpx_books_free(b);
    lm_story_free(&s);
}

/* A capacity order: fills are whole devices, the last may overshoot; the rest's hold counts. */
static void test_capacity_order(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_parties(&s, false);
    struct lm *m = &s.lm;
    lm_deposit(m, &s.op, s.buyer.id, 10000 * LM_CNY);
    /* 2000 TFLOPS of fp8 for 2 hours at 5 LM_CNY, no max_tflops: T = 2000 + 32768 - 1. */
    int64_t hold = lm_value(5 * LM_CNY, 2000 + 32768 - 1, 1, 2);
    hold += lm_bps(hold, LM_TAKER_BPS);
    struct lm_order o = { .id = "ord_000000000001",
                          .precision = "fp8",
                          .tflops = 2000,
                          .hours = 2,
                          .limit = 5 * LM_CNY,
                          .hold_bps = LM_TAKER_BPS,
                          .hold = hold };
    lm_order(m, &s.buyer, &o);
    /* 1 device of 1500: 500 TFLOPS left, whose hold is for 500 + 32767. */
    int64_t v1 = lm_value(4 * LM_CNY, 1500, 1, 2), c1 = lm_bps(v1, LM_MAKER_BPS);
    int64_t rest = lm_value(5 * LM_CNY, 500 + 32768 - 1, 1, 2);
    rest += lm_bps(rest, LM_TAKER_BPS);
    struct lm_agreement a = lm_fill("agr_000000000001", "ord_000000000001", s.buyer.id,
                                    s.provider.id, 4 * LM_CNY, 1500, 1, 2, LM_MAKER_BPS);
    a.maker = "buyer";
    a.released = hold - v1 - c1 - rest;
    lm_agreement(m, &a);
    /* Then 1 device of 900 TFLOPS: 400 over, the order is done and everything comes back. */
    int64_t v2 = lm_value(4 * LM_CNY, 900, 1, 2), c2 = lm_bps(v2, LM_MAKER_BPS);
    a.id = "agr_000000000002";
    a.tflops = 900;
    a.value = v2;
    a.commission = c2;
    a.escrow = v2 + c2;
    a.released = rest - v2 - c2;
    lm_agreement(m, &a);
    struct cpx_books *b = books_of(&s.log);
    expect(b, NULL, 0);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_HELD), 0);
    assert_int_equal(balance(b, s.buyer.id, CPX_BOOKS_ESCROW), v1 + c1 + v2 + c2);
    cpx_books_free(b);

    /* A third fill of the finished order. */
    a.id = "agr_000000000003";
    a.price = 0; /* no money: only the closed order is wrong */
    a.released = 0;
    a.escrow = a.value = a.commission = 0;
    uint64_t third = lm_agreement(m, &a);
    b = books_of(&s.log);
    expect_one(b, third, CPX_BOOKS_LIFECYCLE, "ord_000000000001", "closed");
    cpx_books_free(b);
    lm_story_free(&s);
}

/* Agreements written before issue #6 carry no commission_bps: the rate is the one their escrowed
 * commission was taken at, within the order's hold_bps; a bps above the order's is refused. */
static void test_commission_rate(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_parties(&s, false);
    struct lm *m = &s.lm;
    lm_deposit(m, &s.op, s.buyer.id, 1000 * LM_CNY);
    struct lm_order o = lm_bf16_order("ord_000000000001", 1, 989, 1, 15 * LM_CNY, 20);
    lm_order(m, &s.buyer, &o);
    int64_t v = lm_value(15 * LM_CNY, 989, 1, 1);
    struct lm_agreement a = lm_fill("agr_000000000001", "ord_000000000001", s.buyer.id,
                                    s.provider.id, 15 * LM_CNY, 989, 1, 1, 30);
    /* 30 bps on an order holding for 20: the rate, the escrow beyond the hold, and the held
     * balance that cannot pay it. */
    uint64_t seq = lm_agreement(m, &a);
    struct cpx_books *b = books_of(&s.log);
    const uint64_t want[][2] = { { seq, CPX_BOOKS_AGREEMENT_AMOUNT },
                                 { seq, CPX_BOOKS_RELEASE_AMOUNT },
                                 { seq, CPX_BOOKS_BALANCE_NEGATIVE } };
    expect(b, want, 3);
    cpx_books_free(b);
    lm_story_free(&s);

    lm_story_parties(&s, false);
    lm_deposit(m, &s.op, s.buyer.id, 1000 * LM_CNY);
    lm_order(m, &s.buyer, &o);
    a.bps = -1; /* a #5 agreement: 10 bps, within the hold */
    a.commission = lm_bps(v, 10);
    a.escrow = v + a.commission;
    a.released = o.hold - a.escrow;
    lm_agreement(m, &a);
    b = books_of(&s.log);
    expect(b, NULL, 0);
    cpx_books_free(b);

    /* Billed later: the rate is the one its commission was escrowed at (10), not the order's
     * hold_bps (20) a migration might assume. */
    int64_t start = lm_now(m);
    lm_acceptance(m, &s.provider, "agr_000000000001", start, start + LM_HOUR);
    lm_at(m, start + 1800);
    lm_usage(m, &s.provider, "agr_000000000001", "use_000000000001", start, start + 1800, 1800,
             false);
    int64_t amount = lm_bill_amount(15 * LM_CNY, 989, 1800);
    lm_bill(m, "agr_000000000001", "bil_000000000001", "use_000000000001", amount,
            lm_now(m) + LM_WINDOW, false);
    uint64_t at20 =
        lm_commission(m, "agr_000000000001", "bil_000000000001", 20, lm_bps(amount, 20), 0);
    b = books_of(&s.log);
    const uint64_t wrong_rate[][2] = { { at20, CPX_BOOKS_COMMISSION_AMOUNT },
                                       { at20, CPX_BOOKS_COMMISSION_AMOUNT } };
    expect(b, wrong_rate, 2); /* the rate, and the commission taken at it */
    assert_non_null(strstr(cpx_books_failures(b, &(size_t){ 0 })[1].message, "bps 20"));
    cpx_books_free(b);
    s.log.n--;
    free(s.log.rec[at20]);
    lm_commission(m, "agr_000000000001", "bil_000000000001", 10, lm_bps(amount, 10), 0);
    b = books_of(&s.log);
    expect(b, NULL, 0);
    cpx_books_free(b);
    lm_story_free(&s);
}

/* A record fed twice (the auditor reports seq_order) is taken once. */
static void test_repeat_is_ignored(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    struct cpx_books_config cfg = { 0 };
    struct cpx_books *b = cpx_books_new(&cfg);
    feed(b, &s.log, 0, s.at.agreement + 1);
    feed(b, &s.log, s.at.order, s.log.n); /* the order and the agreement again */
    cpx_books_finish(b);
    expect(b, NULL, 0);
    cpx_books_free(b);
    lm_story_free(&s);
}

/* ---- the exchange's books ------------------------------------------------------------------ */

/* The exchange's books as honest as the story: every bill and every account. */
static void compare_honest(struct cpx_books *b, const char *skip_bill, const char *skip_owner)
{
    size_t cursor = 0;
    struct cpx_books_bill l;
    while (cpx_books_bill_next(b, &cursor, &l)) {
        if (skip_bill != NULL && strcmp(l.id, skip_bill) == 0)
            continue;
        struct cpx_books_claimed_bill c = { .id = l.id,
                                            .agreement = l.agreement,
                                            .status = cpx_books_bill_status_name(l.status),
                                            .amount = l.amount,
                                            .commission = l.commission,
                                            .has_seq = true,
                                            .ledger_seq = l.seq };
        cpx_books_compare_bill(b, &c);
    }
    cursor = 0;
    struct cpx_books_account a;
    char owners[8][CPX_BOOKS_ID_MAX];
    int64_t bal[8][CPX_BOOKS_KINDS];
    size_t n = 0;
    while (cpx_books_account_next(b, &cursor, &a) && n < 8) {
        snprintf(owners[n], sizeof owners[n], "%s", a.owner);
        memcpy(bal[n++], a.balance, sizeof a.balance);
    }
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < CPX_BOOKS_KINDS; k++)
            if (skip_owner == NULL || strcmp(owners[i], skip_owner) != 0)
                cpx_books_compare_balance(b, owners[i], (enum cpx_books_kind)k, bal[i][k]);
}

static void test_exchange_books(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    uint64_t size = s.log.n;

    /* Identical books: nothing, and everything was compared. */
    struct cpx_books *b = books_of(&s.log);
    cpx_books_compare_begin(b, size, false);
    compare_honest(b, NULL, NULL);
    cpx_books_compare_end(b, true, true, false);
    expect(b, NULL, 0);
    struct cpx_books_counts c;
    cpx_books_counts(b, &c);
    assert_int_equal(c.compared_bills, 2);
    assert_int_equal(c.compared_accounts, 3 * CPX_BOOKS_KINDS);

    /* One bill's amount differs; another is unknown to the ledger; an account differs. */
    cpx_books_compare_begin(b, size, false);
    struct cpx_books_claimed_bill wrong = { .id = "bil_000000000001",
                                            .agreement = "agr_000000000001",
                                            .status = "settled",
                                            .amount = 9000000,
                                            .commission = 15824,
                                            .has_seq = true,
                                            .ledger_seq = s.at.bill1 };
    cpx_books_compare_bill(b, &wrong);
    struct cpx_books_claimed_bill extra = wrong;
    extra.id = "bil_000000000077";
    extra.has_seq = false;
    cpx_books_compare_bill(b, &extra);
    compare_honest(b, "bil_000000000001", s.provider.id);
    cpx_books_compare_balance(b, s.provider.id, CPX_BOOKS_AVAILABLE, 7912001);
    cpx_books_compare_end(b, true, true, false);
    const uint64_t want[][2] = { { s.at.bill1, CPX_BOOKS_EXCHANGE_BILL },
                                 { s.at.settlement, CPX_BOOKS_EXCHANGE_BALANCE },
                                 { size - 1, CPX_BOOKS_EXCHANGE_BILL } };
    expect(b, want, 3);
    size_t n;
    const struct cpx_books_failure *f = cpx_books_failures(b, &n);
    char sentence[CPX_BOOKS_MESSAGE_MAX];
    snprintf(sentence, sizeof sentence,
             "bill bil_000000000001: the exchange's books say amount 9000000, its ledger record "
             "(seq %" PRIu64 ") says 7912000",
             s.at.bill1);
    assert_string_equal(f[0].message, sentence);
    assert_non_null(strstr(f[1].message, s.provider.id));
    assert_non_null(strstr(f[1].message, "7912001"));
    assert_non_null(strstr(f[2].message, "bil_000000000077"));
    cpx_books_free(b);

    /* Missing from the exchange's books: a bill and an account. */
    b = books_of(&s.log);
    cpx_books_compare_begin(b, size, false);
    compare_honest(b, "bil_000000000002", s.provider.id);
    cpx_books_compare_end(b, true, true, false);
    const uint64_t missing[][2] = { { s.at.bill2, CPX_BOOKS_EXCHANGE_BILL },
                                    { s.at.settlement, CPX_BOOKS_EXCHANGE_BALANCE } };
    expect(b, missing, 2);
    cpx_books_free(b);

    /* A status differs: a finding, unless the exchange moved on meanwhile. */
    for (int moved = 0; moved <= 1; moved++) {
        b = books_of(&s.log);
        cpx_books_compare_begin(b, size, false);
        struct cpx_books_claimed_bill open = wrong;
        open.amount = 7912000;
        open.status = "open";
        cpx_books_compare_bill(b, &open);
        compare_honest(b, "bil_000000000001", NULL);
        cpx_books_compare_end(b, true, true, moved);
        if (moved) {
            expect(b, NULL, 0);
        } else {
            expect_one(b, s.at.bill1, CPX_BOOKS_EXCHANGE_BILL, "say open", "settled");
        }
        cpx_books_free(b);
    }

    /* The ledger grew before the books were read: balances are not judged, nor bills beyond
     * the audited size; an amount still is. */
    b = books_of(&s.log);
    cpx_books_compare_begin(b, size, true);
    compare_honest(b, NULL, s.provider.id);
    cpx_books_compare_balance(b, s.provider.id, CPX_BOOKS_AVAILABLE, 1);
    extra.has_seq = true;
    extra.ledger_seq = size + 3;
    cpx_books_compare_bill(b, &extra);
    cpx_books_compare_end(b, true, true, false);
    expect(b, NULL, 0);
    cpx_books_compare_begin(b, size, true);
    cpx_books_compare_bill(b, &wrong);
    cpx_books_compare_end(b, false, false, false);
    expect_one(b, s.at.bill1, CPX_BOOKS_EXCHANGE_BILL, "amount 9000000", NULL);
    cpx_books_free(b);
    lm_story_free(&s);
}

/* ---- what the parties signed --------------------------------------------------------------- */

/* The honest story through record seq `last`, the records after it dropped. */
static void story_through(struct lm_story *s, size_t field)
{
    lm_story_build(s, LM_HONEST, 0, false);
    uint64_t last = ((const uint64_t *)&s->at)[field];
    for (size_t i = last + 1; i < s->log.n; i++)
        free(s->log.rec[i]);
    s->log.n = last + 1;
}

/* Asserts that l holds no finding. */
static void expect_none(const struct fx_log *l)
{
    struct cpx_books *b = books_of(l);
    expect(b, NULL, 0);
    cpx_books_free(b);
}

/* Asserts that l holds one finding, at seq for reason, naming text1 and text2. */
static void expect_only(const struct fx_log *l, uint64_t seq, enum cpx_books_reason reason,
                        const char *text1, const char *text2)
{
    struct cpx_books *b = books_of(l);
    expect_one(b, seq, reason, text1, text2);
    cpx_books_free(b);
}

/*
 * The story through its acceptance, then its first report (2400 device-seconds, the ten minutes
 * from the start), recorded `final` or not, as the provider signed it: body, target and method
 * (NULL: the honest ones). Its bill and commission follow, and its completion when final.
 * Returns the report's seq.
 */
static uint64_t first_report(struct lm_story *s, const char *body, const char *target,
                             const char *method, bool final)
{
    const char *agr = "agr_000000000001";
    story_through(s, AT(acceptance));
    lm_at(&s->lm, s->start + 605);
    s->lm.next_body = body;
    s->lm.next_target = target;
    s->lm.next_method = method;
    uint64_t u = lm_usage(&s->lm, &s->provider, agr, "use_000000000001", s->start, s->start + 600,
                          2400, final);
    lm_bill(&s->lm, agr, "bil_000000000001", "use_000000000001", 7912000,
            lm_now(&s->lm) + LM_WINDOW, final);
    lm_commission(&s->lm, agr, "bil_000000000001", LM_TAKER_BPS, 15824, 0);
    if (final)
        lm_completion(&s->lm, agr, s->start + 600, "final_usage", 475669440 - 7912000 - 15824);
    return u;
}

/* The first report's honest body in another spelling: whitespace, order, zones, escapes. */
static const char *const same_report[] = {
    " { \"period_start\" : "
    "\"2025-11-29T16:01:00+08:00\",\n\t\"period_end\":\"2025-11-29t08:11:00z\","
    "\"device_seconds\":2400 , \"final\":null }\r\n",
    "{\"device_seconds\":2400,\"final\":false,\"period_end\":\"2025-11-29T08:11:00.000000Z\","
    "\"period_start\":\"2025-11-29T07:01:00-01:00\"}",
    "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
    "\"period_\\u0073tart\":\"2025-11-29T08:01:00\\u005a\"}",
};

/* Bodies the exchange refuses, or that say other numbers than the payload (2400, 08:01..08:11). */
static const char *const other_report[][2] = {
    { "{\"device_seconds\":2399,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "device_seconds 2399" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:01Z\"}",
      "period_start 1764403261" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T09:11:00+01:01\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "period_end 1764403800" },
    { "{\"device_seconds\":2400,\"devices\":4,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "\"devices\", not a member" },
    { "{\"device_seconds\":2400,\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "twice" },
    { "{\"period_end\":\"2025-11-29T08:11:00Z\",\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "has no \"device_seconds\"" },
    { "{\"device_seconds\":null,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "has no \"device_seconds\"" },
    { "{\"device_seconds\":2400.0,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "\"device_seconds\" is not" },
    { "{\"device_seconds\":\"2400\",\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "\"device_seconds\" is not" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00.5Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "\"period_end\" is not" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "\"period_end\" is not" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\",\"final\":{}}",
      "\"final\" is not one" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00\\ud800Z\"}",
      "not JSON" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"} x",
      "not JSON" },
    { "{\"device_seconds\":02400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "not JSON" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\",}",
      "not JSON" },
    { "{\"device_seconds\":24e2,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\"}",
      "\"device_seconds\" is not" },
    { "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
      "\"period_start\":\"2025-11-29T08:01:00Z\\u0000\"}",
      "not JSON" },
    { "{\"device_seconds\"}", "not JSON" },
    { "[2400]", "not a JSON object" },
    { "", "not a JSON object" },
};

static void test_signed_usage(void **state)
{
    (void)state;
    struct lm_story s;
    uint64_t u;
    /* Honest, however the provider spelt it, and with a query the router ignores. */
    for (size_t i = 0; i < sizeof same_report / sizeof same_report[0]; i++) {
        first_report(&s, same_report[i], NULL, NULL, false);
        expect_none(&s.log);
        lm_story_free(&s);
    }
    first_report(&s, NULL, "/v1/agreements/agr_000000000001/usage?from=cli", NULL, false);
    expect_none(&s.log);
    lm_story_free(&s);

    /* One thing differs: one finding, at the report, naming it and what differs. */
    for (size_t i = 0; i < sizeof other_report / sizeof other_report[0]; i++) {
        u = first_report(&s, other_report[i][0], NULL, NULL, false);
        expect_only(&s.log, u, CPX_BOOKS_SIGNED_BODY, "use_000000000001", other_report[i][1]);
        lm_story_free(&s);
    }
    u = first_report(&s, NULL, "/v1/agreements/agr_000000000002/usage", NULL, false);
    expect_only(&s.log, u, CPX_BOOKS_SIGNED_BODY, "use_000000000001",
                "not POST /v1/agreements/agr_000000000001/usage");
    lm_story_free(&s);
    u = first_report(&s, NULL, NULL, "PUT", false);
    expect_only(&s.log, u, CPX_BOOKS_SIGNED_BODY, "use_000000000001", "is PUT");
    lm_story_free(&s);

    /* "final": the provider's word, or the end reached. */
    u = first_report(&s,
                     "{\"device_seconds\":2400,\"final\":true,\"period_end\":\"2025-11-29T08:11:"
                     "00Z\",\"period_start\":\"2025-11-29T08:01:00Z\"}",
                     NULL, NULL, false);
    expect_only(&s.log, u, CPX_BOOKS_SIGNED_BODY, "use_000000000001", "body says final");
    lm_story_free(&s);
    u = first_report(&s,
                     "{\"device_seconds\":2400,\"period_end\":\"2025-11-29T08:11:00Z\","
                     "\"period_start\":\"2025-11-29T08:01:00Z\"}",
                     NULL, NULL, true);
    expect_only(&s.log, u, CPX_BOOKS_SIGNED_BODY, "use_000000000001", "payload says final");
    lm_story_free(&s);
    first_report(&s, NULL, NULL, NULL, true); /* said final: honest */
    expect_none(&s.log);
    lm_story_free(&s);

    /* The second report reaches the end without saying final: recorded final, as the exchange
     * does, honest; recorded not final, a finding (its bill and completion as if final). */
    for (int recorded = 0; recorded <= 1; recorded++) {
        const char *agr = "agr_000000000001";
        story_through(&s, AT(commission1));
        lm_at(&s.lm, s.end + 5);
        char body[256], from[32], to[32];
        lm_rfc3339(s.start + 600, from);
        lm_rfc3339(s.end, to);
        snprintf(body, sizeof body,
                 "{\"device_seconds\":100000,\"period_end\":\"%s\",\"period_start\":\"%s\"}", to,
                 from);
        s.lm.next_body = body;
        u = lm_usage(&s.lm, &s.provider, agr, "use_000000000002", s.start + 600, s.end, 100000,
                     recorded);
        lm_bill(&s.lm, agr, "bil_000000000002", "use_000000000002", 329666666,
                lm_now(&s.lm) + LM_WINDOW, true);
        lm_commission(&s.lm, agr, "bil_000000000002", LM_TAKER_BPS, 659333, 0);
        lm_completion(&s.lm, agr, s.end, "final_usage",
                      475669440 - 7912000 - 15824 - 329666666 - 659333);
        if (recorded)
            expect_none(&s.log);
        else
            expect_only(&s.log, u, CPX_BOOKS_SIGNED_BODY, "use_000000000002",
                        "is the agreement's end");
        lm_story_free(&s);
    }
}

/* The story through the cancel, then the provider's acceptance a minute later as signed:
 * body, target (NULL: honest), start (its end start + 10 hours). Returns the acceptance's seq. */
static uint64_t accepted(struct lm_story *s, const char *body, const char *target, int64_t start)
{
    story_through(s, AT(cancel));
    lm_at(&s->lm, LM_T0 + 60);
    s->lm.next_body = body;
    s->lm.next_target = target;
    return lm_acceptance(&s->lm, &s->provider, "agr_000000000001", start, start + 10 * LM_HOUR);
}

static void test_signed_acceptance(void **state)
{
    (void)state;
    struct lm_story s;
    const int64_t t = LM_T0 + 60; /* the acceptance's second */
    accepted(&s,
             " {\"delivery\" : \"dlv_000000000001\", \"agreement\":\"agr_\\u0030\\u0030"
             "0000000001\"}\n",
             NULL, t);
    expect_none(&s.log);
    lm_story_free(&s);

    const char *const other[][2] = {
        { "{\"agreement\":\"agr_000000000001\",\"delivery\":\"dlv_000000000002\"}",
          "delivery \"dlv_000000000002\"" },
        { "{\"agreement\":\"agr_000000000002\",\"delivery\":\"dlv_000000000001\"}",
          "agreement \"agr_000000000002\"" },
        { "{\"agreement\":\"agr_000000000001\",\"delivery\":\"dlv_000000000001\",\"ok\":true}",
          "\"ok\", not a member" },
        { "{\"agreement\":\"agr_000000000001\",\"delivery\":null}", "\"delivery\" is not" },
        { "{\"agreement\":\"agr_000000000001\"}", "has no \"delivery\"" },
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        uint64_t a = accepted(&s, other[i][0], NULL, t);
        expect_only(&s.log, a, CPX_BOOKS_SIGNED_BODY, "agr_000000000001", other[i][1]);
        lm_story_free(&s);
    }
    const char *const targets[] = { "/v1/deliveries/dlv_000000000002/acceptance",
                                    "/v1/deliveries/dlv_000000000001/acceptance?again=1",
                                    "/v1/deliveries/dlv_000000000001" };
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        uint64_t a = accepted(&s, NULL, targets[i], t);
        expect_only(&s.log, a, CPX_BOOKS_SIGNED_BODY, "agr_000000000001",
                    "not POST /v1/deliveries/dlv_000000000001/acceptance");
        lm_story_free(&s);
    }

    /* The clock starts at the record's second, or at the one before when the second turned
     * within the batch; never later, nor earlier. */
    accepted(&s, NULL, NULL, t - 1);
    expect_none(&s.log);
    lm_story_free(&s);
    const int64_t wrong[] = { t - 2, t + 1, LM_T0 };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        uint64_t a = accepted(&s, NULL, NULL, wrong[i]);
        expect_only(&s.log, a, CPX_BOOKS_LIFECYCLE, "agr_000000000001", "its record's time");
        lm_story_free(&s);
    }
}

static void test_signed_dispute_and_resolution(void **state)
{
    (void)state;
    struct lm_story s;
    const char *const dispute[][3] = {
        /* body, target, what the finding names */
        { "{\"reason\":\"the job \\u006eever ran\"}", "/v1/bills/bil_000000000002/dispute?x=1",
          NULL },
        { "{\"reason\":\"the job ran twice\"}", NULL, "reason \"the job ran twice\"" },
        { "{\"reason\":\"the job never ran\",\"bill\":\"bil_000000000002\"}", NULL,
          "\"bill\", not a member" },
        { "{\"reason\":\"\"}", NULL, "\"reason\" is not" },
        { NULL, "/v1/bills/bil_000000000001/dispute", "not POST /v1/bills/bil_000000000002" },
    };
    for (size_t i = 0; i < sizeof dispute / sizeof dispute[0]; i++) {
        story_through(&s, AT(completion));
        lm_at(&s.lm, s.end + 100);
        s.lm.next_body = dispute[i][0];
        s.lm.next_target = dispute[i][1];
        uint64_t d = lm_dispute(&s.lm, &s.buyer, "bil_000000000002");
        if (dispute[i][2] == NULL)
            expect_none(&s.log);
        else
            expect_only(&s.log, d, CPX_BOOKS_SIGNED_BODY, "bil_000000000002", dispute[i][2]);
        lm_story_free(&s);
    }

    const char *const resolution[][3] = {
        { "{\"outcome\":\"refund\",\"note\":\"checked the provider\\u0027s logs\"}", NULL, NULL },
        { "{\"note\":\"checked the provider's logs\",\"outcome\":\"pay\"}", NULL,
          "outcome \"pay\"" },
        { "{\"outcome\":\"refund\"}", NULL, "note \"\"" },
        { "{\"note\":null,\"outcome\":\"refund\"}", NULL, "note \"\"" },
        { "{\"note\":\"checked the provider's logs\"}", NULL, "has no \"outcome\"" },
        { NULL, "/v1/bills/bil_000000000002/dispute", "not POST /v1/bills/bil_000000000002/res" },
    };
    for (size_t i = 0; i < sizeof resolution / sizeof resolution[0]; i++) {
        lm_story_build(&s, LM_HONEST, 0, false);
        free(s.log.rec[--s.log.n]); /* the resolution, written again */
        s.lm.next_body = resolution[i][0];
        s.lm.next_target = resolution[i][1];
        uint64_t r = lm_resolution(&s.lm, &s.op, "bil_000000000002", "refund", 329666666 + 659333);
        if (resolution[i][2] == NULL)
            expect_none(&s.log);
        else
            expect_only(&s.log, r, CPX_BOOKS_SIGNED_BODY, "bil_000000000002", resolution[i][2]);
        lm_story_free(&s);
    }
    /* Without a note, the payload's note is "". */
    lm_story_build(&s, LM_HONEST, 0, false);
    free(s.log.rec[--s.log.n]);
    fx_append_unsigned(&s.log, "resolution",
                       "{\"bill\":\"bil_000000000002\",\"note\":\"\",\"outcome\":\"refund\","
                       "\"refunded_micro\":330325999}",
                       &s.op, "POST", "/v1/bills/bil_000000000002/resolution",
                       "{\"outcome\":\"refund\"}");
    expect_none(&s.log);
    lm_story_free(&s);
}

/* The dispute window, to the millisecond: a dispute before dispute_until, a settlement at it. */
static void test_dispute_window_edges(void **state)
{
    (void)state;
    struct lm_story s;
    const int64_t until = LM_T0 + 60 + 605 + LM_WINDOW; /* the first bill's dispute_until */
    for (int late = 0; late <= 1; late++) {
        story_through(&s, AT(completion));
        s.log.ts_ms = until * 1000 - !late; /* the last millisecond of the window, or its end */
        uint64_t d = lm_dispute(&s.lm, &s.buyer, "bil_000000000001");
        if (late)
            expect_only(&s.log, d, CPX_BOOKS_LIFECYCLE, "bil_000000000001", "window closed");
        else
            expect_none(&s.log);
        lm_story_free(&s);
    }
    for (int early = 0; early <= 1; early++) {
        story_through(&s, AT(dispute));
        s.log.ts_ms = until * 1000 - early;
        uint64_t st = lm_settlement(&s.lm, "agr_000000000001", "bil_000000000001", 7912000, 15824);
        if (early)
            expect_only(&s.log, st, CPX_BOOKS_SETTLEMENT, "bil_000000000001",
                        "before its dispute window");
        else
            expect_none(&s.log);
        lm_story_free(&s);
    }
}

/* ---- state --------------------------------------------------------------------------------- */

/* Collects emitted lines, newline-separated. */
struct text {
    char *buf;
    size_t len, cap;
};

static bool collect(void *ctx, const uint8_t *line, size_t len)
{
    struct text *t = ctx;
    if (t->len + len + 1 > t->cap) {
        t->cap = (t->len + len + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        assert_non_null(t->buf);
    }
    memcpy(t->buf + t->len, line, len);
    t->len += len;
    t->buf[t->len++] = '\n';
    return true;
}

/* Loads newline-separated state text into fresh books. Returns the error, or NULL. */
static const char *load_text(struct cpx_books *b, const struct text *t)
{
    size_t at = 0;
    while (at < t->len) {
        const char *nl = memchr(t->buf + at, '\n', t->len - at);
        size_t len = nl ? (size_t)(nl - (t->buf + at)) : t->len - at;
        const char *err = cpx_books_state_load_line(b, t->buf + at, len);
        if (err != NULL)
            return err;
        at += len + 1;
    }
    return cpx_books_state_load_end(b);
}

static void state_of(const struct cpx_books *b, struct text *t)
{
    memset(t, 0, sizeof *t);
    assert_true(cpx_books_state_write(b, collect, t));
}

/* Saving after any record and going on from the state gives what one run gives. */
static void test_state_at_every_split(void **state)
{
    (void)state;
    for (int tamper = LM_HONEST; tamper <= LM_BILL; tamper += LM_BILL) {
        struct lm_story s;
        lm_story_build(&s, (enum lm_tamper)tamper, 0, false);
        struct cpx_books *whole = books_of(&s.log);
        struct text final;
        state_of(whole, &final);
        for (size_t k = 0; k <= s.log.n; k++) {
            struct cpx_books_config cfg = { 0 };
            struct cpx_books *first = cpx_books_new(&cfg);
            feed(first, &s.log, 0, k);
            struct text t;
            state_of(first, &t);
            cpx_books_free(first);
            struct cpx_books *second = cpx_books_new(&cfg);
            const char *err = load_text(second, &t);
            if (err != NULL)
                fail_msg("split %zu: %s", k, err);
            assert_int_equal(cpx_books_next_seq(second), k);
            /* The loaded state writes back to the same bytes. */
            struct text again;
            state_of(second, &again);
            assert_int_equal(again.len, t.len);
            assert_memory_equal(again.buf, t.buf, t.len);
            feed(second, &s.log, k, s.log.n);
            cpx_books_finish(second);
            /* The failures of the second run: those of the records after the split. */
            size_t n_whole, n_second, expected = 0;
            const struct cpx_books_failure *fw = cpx_books_failures(whole, &n_whole);
            const struct cpx_books_failure *fs = cpx_books_failures(second, &n_second);
            for (size_t i = 0; i < n_whole; i++)
                if (fw[i].seq >= k) {
                    assert_true(expected < n_second);
                    assert_string_equal(fs[expected].message, fw[i].message);
                    expected++;
                }
            assert_int_equal(n_second, expected);
            /* And the books end the same: the state written at the end is identical. */
            struct text end;
            state_of(second, &end);
            assert_int_equal(end.len, final.len);
            assert_memory_equal(end.buf, final.buf, final.len);
            free(end.buf);
            free(again.buf);
            free(t.buf);
            cpx_books_free(second);
        }
        free(final.buf);
        cpx_books_free(whole);
        lm_story_free(&s);
    }
}

static void test_state_refusals(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    struct cpx_books *b = books_of(&s.log);
    struct text t;
    state_of(b, &t);
    cpx_books_free(b);
    struct cpx_books_config cfg = { 0 };

    /* Cut short, a line too many, lines out of order, a changed number that breaks a line. */
    struct text cut = t;
    cut.len = (size_t)((char *)memrchr(t.buf, '\n', t.len - 1) - t.buf) + 1;
    b = cpx_books_new(&cfg);
    assert_non_null(load_text(b, &cut));
    cpx_books_free(b);

    char *twice = malloc(t.len * 2);
    memcpy(twice, t.buf, t.len);
    memcpy(twice + t.len, strchr(t.buf, '\n') + 1,
           t.len - (size_t)(strchr(t.buf, '\n') + 1 - t.buf));
    struct text more = { twice, t.len + t.len - (size_t)(strchr(t.buf, '\n') + 1 - t.buf), 0 };
    b = cpx_books_new(&cfg);
    assert_non_null(load_text(b, &more));
    cpx_books_free(b);
    free(twice);

    const char *bad[] = {
        "{\"books\":2,\"fee\":null,\"lines\":0,\"next_seq\":0,\"partial\":false}",
        "{\"books\":1,\"fee\":null,\"lines\":0,\"next_seq\":0}",
        "{\"books\":1,\"fee\":7,\"lines\":0,\"next_seq\":0,\"partial\":false}",
        "not json",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b = cpx_books_new(&cfg);
        assert_non_null(cpx_books_state_load_line(b, bad[i], strlen(bad[i])));
        cpx_books_free(b);
    }
    /* A bill line naming an agreement the state lacks. */
    const char *lines[] = {
        "{\"books\":1,\"fee\":null,\"lines\":1,\"next_seq\":5,\"partial\":false}",
        "{\"agreement\":\"agr_9\",\"amount\":1,\"bill\":\"bil_1\",\"closed_seq\":0,"
        "\"commission\":null,\"dispute_until\":0,\"final\":false,\"seq\":3,\"status\":\"open\"}",
    };
    b = cpx_books_new(&cfg);
    assert_null(cpx_books_state_load_line(b, lines[0], strlen(lines[0])));
    assert_non_null(cpx_books_state_load_line(b, lines[1], strlen(lines[1])));
    cpx_books_free(b);
    /* Only into fresh books. */
    b = books_of(&s.log);
    assert_non_null(cpx_books_state_load_line(b, lines[0], strlen(lines[0])));
    cpx_books_free(b);
    free(t.buf);
    lm_story_free(&s);
}

/* Partial books (a run from a state that had no books) judge no balances and no references. */
static void test_partial_history(void **state)
{
    (void)state;
    struct lm_story s;
    lm_story_build(&s, LM_HONEST, 0, false);
    struct cpx_books_config cfg = { .partial = true };
    for (size_t k = 0; k < s.log.n; k++) {
        struct cpx_books *b = cpx_books_new(&cfg);
        feed(b, &s.log, k, s.log.n);
        cpx_books_finish(b);
        expect(b, NULL, 0);
        assert_true(cpx_books_partial(b));
        /* The state keeps saying so. */
        struct text t;
        state_of(b, &t);
        struct cpx_books_config plain = { 0 };
        struct cpx_books *next = cpx_books_new(&plain);
        assert_null(load_text(next, &t));
        assert_true(cpx_books_partial(next));
        cpx_books_free(next);
        free(t.buf);
        cpx_books_free(b);
    }
    /* A wrong bill is still a wrong bill, when its agreement is in the history fed. */
    lm_story_free(&s);
    lm_story_build(&s, LM_BILL, 0, false);
    struct cpx_books *b = cpx_books_new(&cfg);
    feed(b, &s.log, s.at.agreement, s.log.n);
    cpx_books_finish(b);
    expect_one(b, s.at.bill1, CPX_BOOKS_BILL_AMOUNT, "bil_000000000001", NULL);
    cpx_books_free(b);
    lm_story_free(&s);
}

/* ---- a synthetic market, for speed --------------------------------------------------------- */

/* n trades of the story's shape between many buyers and providers, all honest. */
static void build_market(struct lm_story *s, int trades)
{
    lm_story_parties(s, false);
    struct lm *m = &s->lm;
    enum { PARTIES = 64 };
    struct fx_party buyers[PARTIES], providers[PARTIES];
    for (int i = 0; i < PARTIES; i++) {
        fx_party_new(&buyers[i]);
        fx_party_new(&providers[i]);
        fx_register(&s->log, &buyers[i], CPX_ROLE_BUYER);
        fx_decide(&s->log, &buyers[i], &s->op, 1);
        fx_register(&s->log, &providers[i], CPX_ROLE_PROVIDER);
        fx_decide(&s->log, &providers[i], &s->op, 1);
        lm_deposit(m, &s->op, buyers[i].id, 1000000000 * LM_CNY);
    }
    lm_fee_schedule(m, LM_MAKER_BPS, LM_TAKER_BPS, 0);
    int64_t t = LM_T0 + 100;
    for (int i = 0; i < trades; i++) {
        const struct fx_party *buyer = &buyers[i % PARTIES], *provider = &providers[i % PARTIES];
        char ord[32], agr[32], use[32], bil[32];
        snprintf(ord, sizeof ord, "ord_%012d", i);
        snprintf(agr, sizeof agr, "agr_%012d", i);
        int64_t devices = 1 + i % 8, hours = 1 + i % 3, price = (10 + i % 7) * LM_CNY;
        struct lm_order o = lm_bf16_order(ord, devices, 989, hours, price + LM_CNY, LM_TAKER_BPS);
        lm_at(m, t);
        lm_order(m, buyer, &o);
        struct lm_agreement a =
            lm_fill(agr, ord, buyer->id, provider->id, price, 989, devices, hours, LM_TAKER_BPS);
        a.released = o.hold - a.escrow;
        a.start = t;
        a.deliver_by = t + 900;
        lm_agreement(m, &a);
        lm_acceptance(m, provider, agr, t, t + hours * LM_HOUR);
        int64_t left = a.commission, escrow = a.escrow;
        int reports = 2;
        for (int r = 0; r < reports; r++) {
            int64_t from = t + r * hours * LM_HOUR / reports,
                    to = t + (r + 1) * hours * LM_HOUR / reports;
            snprintf(use, sizeof use, "use_%010d%02d", i, r);
            snprintf(bil, sizeof bil, "bil_%010d%02d", i, r);
            lm_at(m, to);
            int64_t ds = devices * (to - from) - i % 5;
            lm_usage(m, provider, agr, use, from, to, ds, r == reports - 1);
            int64_t amount = lm_bill_amount(price, 989, ds);
            lm_bill(m, agr, bil, use, amount, to, r == reports - 1);
            int64_t c = lm_commission_on(amount, LM_TAKER_BPS, 0, left);
            left -= c;
            lm_commission(m, agr, bil, LM_TAKER_BPS, c, 0);
            lm_settlement(m, agr, bil, amount, c);
            escrow -= amount + c;
        }
        lm_completion(m, agr, t + hours * LM_HOUR, "final_usage", escrow);
        t += 1;
    }
}

static void test_synthetic_market(void **state)
{
    (void)state;
    struct lm_story s;
    int trades = getenv("CPX_BOOKS_BENCH_TRADES") ? atoi(getenv("CPX_BOOKS_BENCH_TRADES")) : 5000;
    build_market(&s, trades);
    /* Decode first, so that the time is the books' own. */
    struct cpx_record *recs = calloc(s.log.n, sizeof *recs);
    assert_non_null(recs);
    for (size_t i = 0; i < s.log.n; i++) {
        cpx_record_init(&recs[i]);
        assert_int_equal(cpx_record_decode(&recs[i], s.log.rec[i], s.log.len[i]), CPX_RECORD_OK);
    }
    struct cpx_books_config cfg = { 0 };
    struct cpx_books *b = cpx_books_new(&cfg);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < s.log.n; i++)
        assert_int_equal(cpx_books_record(b, &recs[i]), CPX_BOOKS_OK);
    cpx_books_finish(b);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    expect(b, NULL, 0);
    struct cpx_books_counts c;
    cpx_books_counts(b, &c);
    assert_int_equal(c.bills, 2 * (uint64_t)trades);
    printf("books: %zu records (%d trades, %" PRIu64 " bills) in %.3f s: %.0f records/s\n", s.log.n,
           trades, c.bills, secs, (double)s.log.n / secs);
    for (size_t i = 0; i < s.log.n; i++)
        cpx_record_free(&recs[i]);
    free(recs);
    cpx_books_free(b);
    lm_story_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_story),
        cmocka_unit_test(test_minimum_and_cap),
        cmocka_unit_test(test_early_final_report),
        cmocka_unit_test(test_order_hold),
        cmocka_unit_test(test_agreement_amount),
        cmocka_unit_test(test_release_amounts),
        cmocka_unit_test(test_usage_rules),
        cmocka_unit_test(test_bill_amount),
        cmocka_unit_test(test_commission_amount),
        cmocka_unit_test(test_settlement),
        cmocka_unit_test(test_settlement_commission),
        cmocka_unit_test(test_balance_negative),
        cmocka_unit_test(test_undelivered_agreement_fails),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_dispute_pay),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_signed_usage),
        cmocka_unit_test(test_signed_acceptance),
        cmocka_unit_test(test_signed_dispute_and_resolution),
        cmocka_unit_test(test_dispute_window_edges),
        cmocka_unit_test(test_capacity_order),
        cmocka_unit_test(test_commission_rate),
        cmocka_unit_test(test_repeat_is_ignored),
        cmocka_unit_test(test_exchange_books),
        cmocka_unit_test(test_state_at_every_split),
        cmocka_unit_test(test_state_refusals),
        cmocka_unit_test(test_partial_history),
        cmocka_unit_test(test_synthetic_market),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
