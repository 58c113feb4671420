/*
 * cpx-audit re-deriving the money (ledger/books.h) as a regulator runs it: on an export of the
 * README's trade and what follows it (tests/support/ledger_market.h), honest and with one wrong
 * bill; with a saved state split anywhere, and with a state written before the books existed;
 * and against a stand-in exchange on a thread of this test that serves the ledger and its own
 * books -- GET /v1/audit/bills and /v1/audit/balances, paged by opaque cursors -- honestly, with a
 * bill or a balance that differs, not at all (404), while its ledger grows, with a cursor that
 * does not advance, cursors that come round again (pages A, B, A, ...) and new cursors forever.
 * (Plain HTTP, as in test_audit_url.c.)
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
#include <unistd.h>

#include "ledger/books.h"
#include "ledger/codec.h"
#include "tests/support/audit_standin.h"
#include "tests/support/audit_tool.h"
#include "tests/support/ledger_market.h"

#define NOTE_MAX  1024
#define MAX_ITEMS 64

/* ---- the world ----------------------------------------------------------------------------- */

struct world {
    struct lm_story honest, wrong; /* the story, and the one with a wrong first bill */
    struct audit_dir dir;
    char export[AUDIT_PATH_MAX];
};

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    lm_story_build(&w->honest, LM_HONEST, 0, true);
    lm_story_build(&w->wrong, LM_BILL, 0, true);
    /* One exchange key for both, so that one verifier key file serves. */
    w->wrong.log.exchange = w->honest.log.exchange;
    w->wrong.log.verifier = w->honest.log.verifier;
    audit_dir_init(&w->dir, &w->honest.log);
    audit_path(&w->dir, "ledger.ndjson", w->export);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    audit_dir_free(&w->dir);
    lm_story_free(&w->honest);
    lm_story_free(&w->wrong);
    free(w);
    return 0;
}

/* Exports records [0, n) of l with one checkpoint, at n. */
static void export_prefix(struct world *w, struct fx_log *l, size_t n)
{
    size_t all = l->n;
    l->n = n;
    uint64_t size = n;
    fx_export_write(l, &size, 1, w->export);
    l->n = all;
}

static const json_t *books_of(const json_t *report)
{
    const json_t *b = json_object_get(report, "books");
    assert_true(json_is_object(b));
    return b;
}

static int64_t books_int(const json_t *report, const char *key)
{
    const json_t *v = json_object_get(books_of(report), key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static const char *books_text(const json_t *report, const char *key)
{
    const char *v = json_string_value(json_object_get(books_of(report), key));
    assert_non_null(v);
    return v;
}

/* ---- from a file --------------------------------------------------------------------------- */

static void honest_export_rederives(void **state)
{
    struct world *w = *state;
    export_prefix(w, &w->honest.log, w->honest.log.n);
    json_t *report;
    const char *args[] = { "--file", w->export, NULL };
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_int_equal(books_int(report, "bills"), 2);
    assert_int_equal(books_int(report, "commissions"), 2);
    assert_int_equal(books_int(report, "accounts"), 6);
    assert_int_equal(books_int(report, "differences"), 0);
    assert_string_equal(books_text(report, "history"), "complete");
    assert_non_null(strstr(books_text(report, "exchange"), "export file"));
    json_decref(report);

    /* Without --quiet, the summary line counts what was re-derived. */
    char path[AUDIT_PATH_MAX];
    audit_path(&w->dir, "summary.json", path);
    const char *raw[] = { "verify",  "--exchange-key", w->dir.key, "--file",
                          w->export, "--report",       path,       NULL };
    assert_int_equal(audit_run_raw(&w->dir, raw), 0);
    assert_true(audit_output_has(&w->dir, "books: 2 bills, 2 commissions, 6 accounts "
                                          "re-derived; 0 differences"));
}

static void wrong_bill_is_named(void **state)
{
    struct world *w = *state;
    export_prefix(w, &w->wrong.log, w->wrong.log.n);
    json_t *report;
    const char *args[] = { "--file", w->export, NULL };
    assert_int_equal(audit_run(&w->dir, args, &report), 1);
    assert_only_failure(report, w->wrong.at.bill1, "bill_amount");
    const json_t *f = json_array_get(json_object_get(report, "failures"), 0);
    assert_non_null(strstr(json_string_value(json_object_get(f, "message")),
                           "bill bil_000000000001: amount 7912001 differs from 7912000"));
    assert_int_equal(books_int(report, "differences"), 1);
    json_decref(report);
}

/* A state saved after any record carries the books on: the second run holds, complete. */
static void state_carries_the_books(void **state)
{
    struct world *w = *state;
    struct fx_log *l = &w->honest.log;
    char saved[AUDIT_PATH_MAX];
    audit_path(&w->dir, "books.state", saved);
    const char *args[] = { "--file", w->export, "--state", saved, NULL };
    for (size_t k = 1; k < l->n; k += 3) {
        unlink(saved);
        export_prefix(w, l, k);
        json_t *report;
        assert_int_equal(audit_run(&w->dir, args, &report), 0);
        json_decref(report);
        export_prefix(w, l, l->n);
        assert_int_equal(audit_run(&w->dir, args, &report), 0);
        assert_true(json_is_true(json_object_get(json_object_get(report, "state"), "loaded")));
        assert_string_equal(books_text(report, "history"), "complete");
        json_decref(report);
    }
    /* The state after the wrong bill's story split before the bill: the second run names it. */
    unlink(saved);
    export_prefix(w, &w->wrong.log, w->wrong.at.usage1);
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    json_decref(report);
    export_prefix(w, &w->wrong.log, w->wrong.log.n);
    assert_int_equal(audit_run(&w->dir, args, &report), 1);
    assert_only_failure(report, w->wrong.at.bill1, "bill_amount");
    json_decref(report);
    unlink(saved);
}

/* Audits records [0, n) of l with --state saved, then keeps only the state's first line. */
static void one_line_state(struct world *w, struct fx_log *l, size_t n, const char *saved)
{
    unlink(saved);
    export_prefix(w, l, n);
    const char *args[] = { "--file", w->export, "--state", saved, NULL };
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    json_decref(report);
    FILE *f = fopen(saved, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    assert_true(getline(&line, &cap, f) > 0);
    fclose(f);
    f = fopen(saved, "w");
    assert_non_null(f);
    fputs(line, f);
    assert_int_equal(fclose(f), 0);
    free(line);
}

/* A state of one line (before the books) still loads; the money then covers this run only. */
static void old_state_is_partial(void **state)
{
    struct world *w = *state;
    struct fx_log *l = &w->honest.log;
    char saved[AUDIT_PATH_MAX], path[AUDIT_PATH_MAX];
    audit_path(&w->dir, "old.state", saved);
    audit_path(&w->dir, "partial.json", path);
    const char *args[] = { "--file", w->export, "--state", saved, NULL };
    json_t *report;

    /* The rest of the story: the run says so, on stderr and in its summary. */
    one_line_state(w, l, w->honest.at.agreement + 1, saved);
    export_prefix(w, l, l->n);
    const char *raw[] = { "verify", "--exchange-key", w->dir.key, "--file", w->export, "--state",
                          saved,    "--report",       path,       NULL };
    assert_int_equal(audit_run_raw(&w->dir, raw), 0);
    assert_true(audit_output_has(&w->dir, "has no books"));
    assert_true(audit_output_has(&w->dir, "from this run's records only"));
    /* ... and the state it wrote says so again. */
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    assert_string_equal(books_text(report, "history"), "this run");
    json_decref(report);

    /* Nothing new after such a state: the state that run writes loads too. */
    one_line_state(w, l, w->honest.at.agreement + 1, saved);
    for (int run = 0; run < 2; run++) {
        assert_int_equal(audit_run(&w->dir, args, &report), 0);
        assert_int_equal(report_int(report, "records"), 0);
        assert_string_equal(books_text(report, "history"), "this run");
        json_decref(report);
    }
    unlink(saved);
}

/* ---- the stand-in exchange ----------------------------------------------------------------- */

enum books_mode {
    BOOKS_HONEST = 0,
    BOOKS_NONE,          /* the /v1/audit/ endpoints answer 404 */
    BOOKS_WRONG_AMOUNT,  /* the first bill's amount + 1 */
    BOOKS_WRONG_STATUS,  /* the first bill "open" */
    BOOKS_WRONG_BALANCE, /* the provider's available + 1 */
    BOOKS_GROWING,       /* wrong balance, but the latest checkpoint grows after the first read */
    BOOKS_STUCK,         /* the bills' next cursor repeats */
    BOOKS_LOOP,          /* the bills' last page points back to the first: A, B, A, ... */
    BOOKS_ENDLESS,       /* bills beyond the ledger, a page of them after another, forever */
};

/* Bill pages the stand-in serves before it answers 500 (so that a walk that never ends, as the
 * tool's did before it bounded them, fails the test instead of hanging it). */
#define BILLS_READS_MAX 200
#define ENDLESS_PAGE    100 /* bills per page of BOOKS_ENDLESS */

struct fake {
    const struct fx_log *log;
    struct cpx_books *books; /* the exchange's books: the honest derivation of log */
    char note[NOTE_MAX];     /* the latest (only) checkpoint, at log->n */
    char later[NOTE_MAX];    /* a checkpoint one record further, for BOOKS_GROWING */
    enum books_mode mode;
    int checkpoint_reads;
    int bills_reads;           /* pages of /v1/audit/bills served */
    struct audit_standin http; /* its server */
};

/* Query parameter `after` as "c/N" (percent-encoded by the tool): N, or -1 when absent. */
static long cursor_of(const char *target)
{
    const char *a = strstr(target, "after=c%2F");
    return a ? strtol(a + 10, NULL, 10) : -1;
}

/* A page of one item, items[from], with the cursor "c/N" of the next one (stuck: its own; loop:
 * after the last, the first's). */
static json_t *page_of(json_t *items, long from, bool stuck, bool loop)
{
    json_t *page = json_array();
    size_t n = json_array_size(items), at = (size_t)(from < 0 ? 0 : from);
    if (at < n)
        json_array_append(page, json_array_get(items, at));
    char next[32];
    snprintf(next, sizeof next, "c/%zu", stuck ? at : at + 1 < n || !loop ? at + 1 : 0);
    json_t *o = json_pack("{s:o,s:o}", "items", page, "next",
                          at + 1 < n || stuck || loop ? json_string(next) : json_null());
    json_decref(items);
    return o;
}

/* Page N of bills the ledger never made (each at a seq beyond it), and a cursor to page N + 1. */
static json_t *endless_page(const struct fake *f, long from)
{
    size_t at = (size_t)(from < 0 ? 0 : from);
    json_t *items = json_array();
    for (size_t i = 0; i < ENDLESS_PAGE; i++) {
        char id[32];
        snprintf(id, sizeof id, "bil_9%05zu%06zu", at, i);
        json_array_append_new(items, json_pack("{s:s,s:s,s:I,s:I,s:s,s:I}", "id", id, "agreement",
                                               "agr_000000000001", "amount_micro", (json_int_t)1,
                                               "commission_micro", (json_int_t)0, "status", "open",
                                               "ledger_seq", (json_int_t)(f->log->n + at)));
    }
    char next[32];
    snprintf(next, sizeof next, "c/%zu", at + 1);
    return json_pack("{s:o,s:s}", "items", items, "next", next);
}

static json_t *bills_of(struct fake *f)
{
    json_t *items = json_array();
    size_t cursor = 0;
    struct cpx_books_bill l;
    while (cpx_books_bill_next(f->books, &cursor, &l)) {
        bool first = cursor == 1;
        int64_t amount = l.amount + (first && f->mode == BOOKS_WRONG_AMOUNT);
        const char *status =
            first && f->mode == BOOKS_WRONG_STATUS ? "open" : cpx_books_bill_status_name(l.status);
        json_array_append_new(items, json_pack("{s:s,s:s,s:I,s:I,s:s,s:I}", "id", l.id, "agreement",
                                               l.agreement, "amount_micro", (json_int_t)amount,
                                               "commission_micro", (json_int_t)l.commission,
                                               "status", status, "ledger_seq", (json_int_t)l.seq));
    }
    return items;
}

static json_t *balances_of(struct fake *f, const char *provider)
{
    json_t *items = json_array();
    size_t cursor = 0;
    struct cpx_books_account a;
    while (cpx_books_account_next(f->books, &cursor, &a))
        for (int k = 0; k < CPX_BOOKS_KINDS; k++) {
            int64_t v = a.balance[k];
            if (v == 0)
                continue;
            if (k == CPX_BOOKS_AVAILABLE && strcmp(a.owner, provider) == 0 &&
                (f->mode == BOOKS_WRONG_BALANCE || f->mode == BOOKS_GROWING))
                v++;
            json_array_append_new(items, json_pack("{s:s,s:s,s:I}", "owner", a.owner, "kind",
                                                   cpx_books_kind_name((enum cpx_books_kind)k),
                                                   "balance_micro", (json_int_t)v));
        }
    return items;
}

static const char *g_provider;

static char *answer(void *ctx, const char *target, int *status)
{
    struct fake *f = ctx;
    json_t *body = NULL;
    *status = 200;
    if (strcmp(target, "/v1/ledger/checkpoint") == 0) {
        bool later = f->mode == BOOKS_GROWING && f->checkpoint_reads++ > 0;
        body = json_pack("{s:s,s:I}", "note", later ? f->later : f->note, "size",
                         (json_int_t)(f->log->n - 1 + later));
    } else if (strncmp(target, "/v1/ledger/checkpoints?", 23) == 0) {
        body = json_pack("{s:[],s:n}", "items", "next");
    } else if (strncmp(target, "/v1/ledger/records?", 19) == 0) {
        json_t *items = json_array();
        for (size_t i = 0; i + 1 < f->log->n; i++) {
            char leaf_b64[64];
            uint8_t leaf[32];
            fx_leaf(f->log, i, leaf);
            cpx_b64_encode(leaf, sizeof leaf, leaf_b64);
            json_array_append_new(items, json_pack("{s:s,s:s%,s:I}", "leaf_hash", leaf_b64,
                                                   "record", (const char *)f->log->rec[i],
                                                   f->log->len[i], "seq", (json_int_t)i));
        }
        body = json_pack("{s:o,s:n}", "items", items, "next");
    } else if (f->mode == BOOKS_NONE && strncmp(target, "/v1/audit/", 10) == 0) {
        *status = 404;
        body = json_pack("{s:{s:s}}", "error", "code", "not_found");
    } else if (strncmp(target, "/v1/audit/bills?", 16) == 0 && ++f->bills_reads > BILLS_READS_MAX) {
        *status = 500;
        body = json_pack("{s:{s:s}}", "error", "code", "internal");
    } else if (strncmp(target, "/v1/audit/bills?", 16) == 0 && f->mode == BOOKS_ENDLESS) {
        body = endless_page(f, cursor_of(target));
    } else if (strncmp(target, "/v1/audit/bills?", 16) == 0) {
        body =
            page_of(bills_of(f), cursor_of(target), f->mode == BOOKS_STUCK, f->mode == BOOKS_LOOP);
    } else if (strncmp(target, "/v1/audit/balances?", 19) == 0) {
        body = page_of(balances_of(f, g_provider), cursor_of(target), false, false);
    } else {
        *status = 404;
        body = json_pack("{s:{s:s}}", "error", "code", "not_found");
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/*
 * Serves the first log->n - 1 records of log (the last is the growth of BOOKS_GROWING) with a
 * checkpoint at that size, and the honest books of those records.
 */
static void fake_start(struct fake *f, const struct fx_log *log, enum books_mode mode)
{
    memset(f, 0, sizeof *f);
    f->log = log;
    f->mode = mode;
    fx_checkpoint(log, log->n - 1, NULL, NULL, f->note, NOTE_MAX);
    fx_checkpoint(log, log->n, NULL, NULL, f->later, NOTE_MAX);
    struct cpx_books_config cfg = { 0 };
    f->books = cpx_books_new(&cfg);
    struct cpx_record r;
    cpx_record_init(&r);
    for (size_t i = 0; i + 1 < log->n; i++) {
        assert_int_equal(cpx_record_decode(&r, log->rec[i], log->len[i]), CPX_RECORD_OK);
        cpx_books_record(f->books, &r);
    }
    cpx_record_free(&r);
    audit_standin_start(&f->http, answer, f);
}

static void fake_stop(struct fake *f)
{
    audit_standin_stop(&f->http);
    cpx_books_free(f->books);
}

/* The story with one more record after it (the growth the stand-in may show). */
static int audit_url(struct world *w, enum books_mode mode, json_t **report, struct fake *f)
{
    uint64_t extra = lm_deposit(&w->honest.lm, &w->honest.op, w->honest.buyer.id, LM_CNY);
    g_provider = w->honest.provider.id;
    fake_start(f, &w->honest.log, mode);
    const char *args[] = { "--url", f->http.url, NULL };
    int status = audit_run(&w->dir, args, report);
    fake_stop(f);
    free(w->honest.log.rec[extra]);
    w->honest.log.n--;
    return status;
}

static void exchange_books_compared(void **state)
{
    struct world *w = *state;
    struct fake f;
    json_t *report;
    assert_int_equal(audit_url(w, BOOKS_HONEST, &report, &f), 0);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_string_equal(books_text(report, "exchange"), "compared");
    /* The stand-in lists the accounts that hold money: the buyer's available, the provider's,
     * the exchange's external and commission. */
    assert_int_equal(books_int(report, "compared_bills"), 2);
    assert_int_equal(books_int(report, "compared_accounts"), 4);
    /* Pages of one, their cursors percent-encoded. */
    assert_non_null(strstr(f.http.targets, "/v1/audit/bills?limit=1000\n"));
    assert_non_null(strstr(f.http.targets, "/v1/audit/bills?after=c%2F1&limit=1000\n"));
    assert_non_null(strstr(f.http.targets, "/v1/audit/balances?after=c%2F3&limit=1000\n"));
    json_decref(report);
}

static void exchange_books_differ(void **state)
{
    struct world *w = *state;
    struct fake f;
    json_t *report;
    assert_int_equal(audit_url(w, BOOKS_WRONG_AMOUNT, &report, &f), 1);
    assert_only_failure(report, w->honest.at.bill1, "books_bill");
    const json_t *fl = json_array_get(json_object_get(report, "failures"), 0);
    char sentence[160];
    snprintf(sentence, sizeof sentence,
             "bill bil_000000000001: the exchange's books say amount 7912001, its ledger record "
             "(seq %" PRIu64 ") says 7912000",
             w->honest.at.bill1);
    assert_string_equal(json_string_value(json_object_get(fl, "message")), sentence);
    json_decref(report);

    assert_int_equal(audit_url(w, BOOKS_WRONG_STATUS, &report, &f), 1);
    assert_only_failure(report, w->honest.at.bill1, "books_bill");
    json_decref(report);

    assert_int_equal(audit_url(w, BOOKS_WRONG_BALANCE, &report, &f), 1);
    assert_only_failure(report, w->honest.at.settlement, "books_balance");
    fl = json_array_get(json_object_get(report, "failures"), 0);
    assert_non_null(
        strstr(json_string_value(json_object_get(fl, "message")), w->honest.provider.id));
    json_decref(report);
}

static void exchange_without_books(void **state)
{
    struct world *w = *state;
    struct fake f;
    json_t *report;
    assert_int_equal(audit_url(w, BOOKS_NONE, &report, &f), 0);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_non_null(strstr(books_text(report, "exchange"), "not served"));
    assert_int_equal(books_int(report, "bills"), 2);
    json_decref(report);
}

static void growing_exchange_compares_what_stays(void **state)
{
    struct world *w = *state;
    struct fake f;
    json_t *report;
    /* The balance differs, but the ledger grew meanwhile: not judged, and said so. */
    assert_int_equal(audit_url(w, BOOKS_GROWING, &report, &f), 0);
    assert_non_null(strstr(books_text(report, "exchange"), "grew"));
    json_decref(report);
}

static void stuck_cursor_stops(void **state)
{
    struct world *w = *state;
    struct fake f;
    json_t *report;
    assert_int_equal(audit_url(w, BOOKS_STUCK, &report, &f), 3);
    assert_non_null(strstr(json_string_value(json_object_get(report, "error")), "cursor"));
    json_decref(report);
}

/* A hostile exchange whose pages never end: cursors coming round again, or new ones forever. */
static void endless_pages_stop(void **state)
{
    struct world *w = *state;
    struct fake f;
    json_t *report;
    assert_int_equal(audit_url(w, BOOKS_LOOP, &report, &f), 3);
    assert_non_null(
        strstr(json_string_value(json_object_get(report, "error")), "came round again"));
    assert_true(f.bills_reads <= 4); /* A, B, A: found at once */
    json_decref(report);

    /* The story's ledger (some 30 records) can hold 5 x (30 + 1) items and a page more: the
     * walk stops after 12 pages of 100, having read the size again to see it did not grow. */
    assert_int_equal(audit_url(w, BOOKS_ENDLESS, &report, &f), 3);
    const char *error = json_string_value(json_object_get(report, "error"));
    assert_non_null(strstr(error, "more than its ledger"));
    assert_non_null(strstr(error, "1200 items"));
    assert_int_equal(f.bills_reads, 12);
    json_decref(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(honest_export_rederives),
        cmocka_unit_test(wrong_bill_is_named),
        cmocka_unit_test(state_carries_the_books),
        cmocka_unit_test(old_state_is_partial),
        cmocka_unit_test(exchange_books_compared),
        cmocka_unit_test(exchange_books_differ),
        cmocka_unit_test(exchange_without_books),
        cmocka_unit_test(growing_exchange_compares_what_stays),
        cmocka_unit_test(stuck_cursor_stops),
        cmocka_unit_test(endless_pages_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
