/*
 * cpx-audit --url against a stand-in exchange: a small HTTP server on a thread of this test that
 * serves a fixtures ledger through the public endpoints of docs/ledger.md section 10 (latest
 * checkpoint, checkpoints and records paged, consistency proofs) -- honestly, or misbehaving one
 * way at a time: a record that is not a string, a bad leaf hash, a repeated page, a cursor that
 * does not advance, withheld records, errors and non-JSON answers, a rewritten history. The tool
 * must report each by seq and reason, or stop with exit status 3 and say what the exchange sent;
 * never crash. (Plain HTTP: the tool's client is the shared libcurl one, TLS is not under test.)
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

#include "ledger/codec.h"
#include "tests/support/audit_standin.h"
#include "tests/support/audit_tool.h"
#include "tests/support/ledger_fixtures.h"

#define ORDERS   30 /* order + expiry pairs: 64 records */
#define CP_EVERY 10 /* records between two checkpoints */
#define PAGE     7  /* items per page the stand-in serves (it ignores larger limits) */
#define MAX_CPS  32
#define NOTE_MAX 1024

/* How the stand-in misbehaves. */
enum mode {
    HONEST = 0,
    EMPTY_LEDGER,      /* 404 checkpoint_not_found */
    RECORD_NOT_STRING, /* record `bad_seq` is served as a number */
    BAD_LEAF,          /* record `bad_seq` has a leaf_hash that is not base64 */
    REPEAT_PAGE,       /* the page after `bad_seq` starts two records early */
    STUCK_CURSOR,      /* the records' next cursor repeats `after` */
    WITHHOLD,          /* records end (next null) before `bad_seq` */
    SERVER_ERROR,      /* the records endpoint answers 500 */
    NOT_JSON,          /* the records endpoint answers HTML */
    LATEST_NO_NOTE,    /* the latest checkpoint has no note */
    FORGED_PROOF,      /* consistency proofs have a changed hash */
};

/* The stand-in exchange. */
struct fake {
    const struct fx_log *log;      /* records served (may run past the latest checkpoint) */
    uint64_t cps[MAX_CPS];         /* checkpoint sizes, ascending; the last is the latest */
    size_t n_cps;                  /* how many */
    char notes[MAX_CPS][NOTE_MAX]; /* their signed notes */
    enum mode mode;                /* how it misbehaves */
    uint64_t bad_seq;              /* where */
    struct audit_standin http;     /* its server */
};

/* ---- answers ------------------------------------------------------------------------------- */

/* The value of query parameter name in target, or def. */
static uint64_t query(const char *target, const char *name, uint64_t def)
{
    char key[32];
    snprintf(key, sizeof key, "%s=", name);
    const char *q = strchr(target, '?');
    for (const char *p = q; p != NULL; p = strchr(p + 1, '&'))
        if (strncmp(p + 1, key, strlen(key)) == 0)
            return strtoull(p + 1 + strlen(key), NULL, 10);
    return def;
}

static json_t *checkpoint_json(const struct fake *f, size_t i)
{
    return json_pack("{s:s,s:s,s:I}", "created_at", "2025-11-29T12:00:00Z", "note", f->notes[i],
                     "size", (json_int_t)f->cps[i]);
}

/* The next cursor of a page that ended at `last` (null at the end). */
static json_t *cursor(uint64_t last, bool more)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, last);
    return more ? json_string(text) : json_null();
}

static json_t *checkpoints_page(const struct fake *f, const char *target)
{
    uint64_t after = query(target, "after", 0);
    bool from_start = strstr(target, "after=") == NULL;
    json_t *items = json_array();
    size_t i = 0, served = 0;
    while (i < f->n_cps && !from_start && f->cps[i] <= after)
        i++;
    uint64_t last = 0;
    for (; i < f->n_cps && served < PAGE; i++, served++) {
        json_array_append_new(items, checkpoint_json(f, i));
        last = f->cps[i];
    }
    return json_pack("{s:o,s:o}", "items", items, "next", cursor(last, i < f->n_cps));
}

/* One record item, misbehaving at bad_seq as the mode says. */
static json_t *record_item(const struct fake *f, uint64_t seq)
{
    uint8_t leaf[CPX_HASH_LEN];
    char b64[CPX_B64_LEN(CPX_HASH_LEN) + 1];
    fx_leaf(f->log, seq, leaf);
    cpx_b64_encode(leaf, sizeof leaf, b64);
    if (seq == f->bad_seq && f->mode == BAD_LEAF)
        b64[0] = '!';
    json_t *record = seq == f->bad_seq && f->mode == RECORD_NOT_STRING
                         ? json_integer(42)
                         : json_stringn((const char *)f->log->rec[seq], f->log->len[seq]);
    return json_pack("{s:s,s:o,s:I}", "leaf_hash", b64, "record", record, "seq", (json_int_t)seq);
}

static json_t *records_page(const struct fake *f, const char *target)
{
    bool from_start = strstr(target, "after=") == NULL;
    uint64_t after = query(target, "after", 0), first = from_start ? 0 : after + 1;
    if (f->mode == REPEAT_PAGE && first > f->bad_seq && first < f->bad_seq + PAGE + 1)
        first -= 2; /* serves two records again */
    uint64_t end = f->log->n;
    if (f->mode == WITHHOLD && end > f->bad_seq)
        end = f->bad_seq;
    json_t *items = json_array();
    uint64_t seq = first;
    for (; seq < end && seq < first + PAGE; seq++)
        json_array_append_new(items, record_item(f, seq));
    bool stuck = f->mode == STUCK_CURSOR && !from_start;
    json_t *next = stuck ? cursor(after, true) : cursor(seq - 1, seq < end);
    return json_pack("{s:o,s:o}", "items", items, "next", next);
}

static json_t *consistency_proof(const struct fake *f, const char *target)
{
    uint64_t first = query(target, "first", 0), second = query(target, "second", 0);
    struct cpx_merkle_tree t;
    fx_tree(f->log, second, &t);
    struct cpx_merkle_store store = cpx_merkle_tree_store(&t);
    struct cpx_consistency_proof *p = malloc(sizeof *p);
    assert_int_equal(cpx_merkle_consistency_proof(&store, t.hash, first, second, p), CPX_MERKLE_OK);
    if (f->mode == FORGED_PROOF && p->n > 0)
        p->hashes[0][0] ^= 1;
    json_t *hashes = json_array();
    for (size_t i = 0; i < p->n; i++) {
        char b64[CPX_B64_LEN(CPX_HASH_LEN) + 1];
        cpx_b64_encode(p->hashes[i], CPX_HASH_LEN, b64);
        json_array_append_new(hashes, json_string(b64));
    }
    free(p);
    cpx_merkle_tree_free(&t);
    return json_pack("{s:I,s:o,s:I}", "first", (json_int_t)first, "hashes", hashes, "second",
                     (json_int_t)second);
}

/* The answer to GET target: status and body (malloc'd). */
static char *answer(void *ctx, const char *target, int *status)
{
    struct fake *f = ctx;
    *status = 200;
    json_t *body = NULL;
    bool records = strncmp(target, "/v1/ledger/records", 18) == 0;
    if (records && f->mode == SERVER_ERROR) {
        *status = 500;
        body = json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message", "it broke");
    } else if (records && f->mode == NOT_JSON) {
        return strdup("<html>maintenance</html>");
    } else if (strcmp(target, "/v1/ledger/checkpoint") == 0 && f->mode == EMPTY_LEDGER) {
        *status = 404;
        body = json_pack("{s:{s:s,s:s}}", "error", "code", "checkpoint_not_found", "message",
                         "the ledger is empty");
    } else if (strcmp(target, "/v1/ledger/checkpoint") == 0) {
        body = checkpoint_json(f, f->n_cps - 1);
        if (f->mode == LATEST_NO_NOTE)
            json_object_set_new(body, "note", json_integer(7));
    } else if (strncmp(target, "/v1/ledger/checkpoints?", 23) == 0) {
        body = checkpoints_page(f, target);
    } else if (records) {
        body = records_page(f, target);
    } else if (strncmp(target, "/v1/ledger/consistency?", 23) == 0) {
        body = consistency_proof(f, target);
    } else {
        *status = 404;
        body = json_pack("{s:{s:s}}", "error", "code", "not_found");
    }
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    return text;
}

/* Starts serving log with checkpoints at sizes[0..n) (the last is the latest). */
static void fake_start(struct fake *f, const struct fx_log *log, const uint64_t *sizes, size_t n)
{
    memset(f, 0, sizeof *f);
    f->log = log;
    f->n_cps = n;
    for (size_t i = 0; i < n; i++) {
        f->cps[i] = sizes[i];
        fx_checkpoint(log, sizes[i], NULL, NULL, f->notes[i], NOTE_MAX);
    }
    audit_standin_start(&f->http, answer, f);
}

static void fake_stop(struct fake *f)
{
    audit_standin_stop(&f->http);
}

/* ---- the world ----------------------------------------------------------------------------- */

struct world {
    struct fx_log log;
    struct fx_party op, buyer;
    uint64_t cps[MAX_CPS]; /* checkpoints every CP_EVERY records (the latest below log.n) */
    size_t n_cps;
    struct audit_dir dir;
    struct fake fake;
};

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    fx_log_init(&w->log);
    audit_build_log(&w->log, &w->op, &w->buyer, ORDERS);
    /* The latest checkpoint is at 60; records 60..63 are newer than it. */
    for (uint64_t s = CP_EVERY; s < w->log.n; s += CP_EVERY)
        w->cps[w->n_cps++] = s;
    audit_dir_init(&w->dir, &w->log);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    audit_dir_free(&w->dir);
    fx_log_free(&w->log);
    free(w);
    return 0;
}

/* The latest checkpoint's size. */
static uint64_t latest(const struct world *w)
{
    return w->cps[w->n_cps - 1];
}

/* Serves the world's log in mode (misbehaving at bad_seq) and audits it; returns the status. */
static int audit_mode(struct world *w, enum mode mode, uint64_t bad_seq, json_t **report)
{
    fake_start(&w->fake, &w->log, w->cps, w->n_cps);
    w->fake.mode = mode;
    w->fake.bad_seq = bad_seq;
    const char *args[] = { "--url", w->fake.http.url, NULL };
    int status = audit_run(&w->dir, args, report);
    fake_stop(&w->fake);
    return status;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void honest_exchange_passes(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit_mode(w, HONEST, 0, &report), 0);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_int_equal(report_int(report, "records"), latest(w)); /* newer records are left */
    assert_int_equal(report_int(report, "verified_size"), latest(w));
    assert_int_equal(report_int(report, "checkpoints"), w->n_cps);
    assert_int_equal(report_int(report, "signatures"), 2 + latest(w) / 2 - 2);
    assert_string_equal(json_string_value(json_object_get(report, "source")), w->fake.http.url);
    /* Paged: the second records page continues after the first. */
    char want[64];
    snprintf(want, sizeof want, "/v1/ledger/records?after=%d&limit=1000\n", PAGE - 1);
    assert_non_null(strstr(w->fake.http.targets, want));
    json_decref(report);
}

static void empty_ledger_passes(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit_mode(w, EMPTY_LEDGER, 0, &report), 0);
    assert_int_equal(report_int(report, "records"), 0);
    assert_int_equal(report_int(report, "records_total"), 0);
    json_decref(report);
}

static void malformed_items_are_findings(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit_mode(w, RECORD_NOT_STRING, 20, &report), 1);
    assert_true(report_has(report, 20, "exchange_format"));
    assert_true(report_has(report, 20, "seq_gap"));
    json_decref(report);
    assert_int_equal(audit_mode(w, BAD_LEAF, 21, &report), 1);
    assert_only_failure(report, 21, "exchange_format");
    json_decref(report);
}

static void repeated_records_are_seq_order(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit_mode(w, REPEAT_PAGE, 20, &report), 1);
    const json_t *first = json_array_get(json_object_get(report, "failures"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "reason")), "seq_order");
    json_decref(report);
}

static void withheld_records_are_beyond_log(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit_mode(w, WITHHOLD, 45, &report), 1);
    assert_true(report_has(report, 50, "checkpoint_beyond_log"));
    assert_true(report_has(report, latest(w), "checkpoint_beyond_log"));
    assert_int_equal(report_int(report, "verified_size"), 40);
    json_decref(report);
}

/* An answer the tool cannot walk stops it with exit status 3 and a sentence naming it. */
static void unusable_answers_stop(void **state)
{
    struct world *w = *state;
    static const struct {
        enum mode mode;
        const char *says;
    } cases[] = {
        { STUCK_CURSOR, "does not advance" },
        { SERVER_ERROR, "HTTP 500" },
        { NOT_JSON, "not a JSON object" },
        { LATEST_NO_NOTE, "without a note" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *report;
        assert_int_equal(audit_mode(w, cases[i].mode, 0, &report), 3);
        const char *error = json_string_value(json_object_get(report, "error"));
        assert_non_null(error);
        assert_non_null(strstr(error, cases[i].says));
        assert_true(audit_output_has(&w->dir, cases[i].says));
        assert_true(json_is_false(json_object_get(report, "ok")));
        json_decref(report);
    }
    /* Nobody listening. */
    const char *args[] = { "--url", "http://127.0.0.1:1", NULL };
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 3);
    json_decref(report);
}

static void state_uses_consistency_proofs(void **state)
{
    struct world *w = *state;
    char saved[AUDIT_PATH_MAX];
    audit_path(&w->dir, "url.state", saved);
    size_t all = w->n_cps;

    /* First run: the exchange's latest checkpoint is at 30. */
    w->n_cps = 3;
    fake_start(&w->fake, &w->log, w->cps, w->n_cps);
    const char *args[] = { "--url", w->fake.http.url, "--state", saved, NULL };
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    fake_stop(&w->fake);
    assert_int_equal(report_int(report, "verified_size"), 30);
    json_decref(report);

    /* Second run: the log has grown to 60; only records 30.. are fetched. */
    w->n_cps = all;
    fake_start(&w->fake, &w->log, w->cps, w->n_cps);
    args[1] = w->fake.http.url;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    fake_stop(&w->fake);
    assert_int_equal(report_int(report, "records"), latest(w) - 30);
    assert_int_equal(report_int(report, "verified_size"), latest(w));
    char want[96];
    snprintf(want, sizeof want, "/v1/ledger/consistency?first=30&second=%" PRIu64 "\n", latest(w));
    assert_non_null(strstr(w->fake.http.targets, want));
    assert_non_null(strstr(w->fake.http.targets, "/v1/ledger/records?after=29&limit=1000\n"));
    assert_null(strstr(w->fake.http.targets, "/v1/ledger/records?limit"));
    json_decref(report);

    unlink(saved);
}

static void state_catches_rewritten_history(void **state)
{
    struct world *w = *state;
    char saved[AUDIT_PATH_MAX];
    audit_path(&w->dir, "rewrite.state", saved);
    size_t all = w->n_cps;
    fake_start(&w->fake, &w->log, w->cps, 3); /* the first run verifies up to 30 */
    const char *args[] = { "--url", w->fake.http.url, "--state", saved, NULL };
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    fake_stop(&w->fake);
    json_decref(report);

    /* Another history under the same key: no valid proof from the saved root exists. */
    struct fx_log other;
    fx_log_init(&other);
    other.exchange = w->log.exchange;
    other.verifier = w->log.verifier;
    struct fx_party op, buyer;
    audit_build_log(&other, &op, &buyer, ORDERS);
    uint64_t sizes[] = { 10, 20, 30, 40, 50, 60 };
    fake_start(&w->fake, &other, sizes, 6);
    args[1] = w->fake.http.url;
    assert_int_equal(audit_run(&w->dir, args, &report), 1);
    assert_true(report_has(report, 60, "consistency"));
    json_decref(report);
    /* A forged proof for the honest log's growth fails the same way. */
    fake_stop(&w->fake);
    fake_start(&w->fake, &w->log, w->cps, all);
    w->fake.mode = FORGED_PROOF;
    args[1] = w->fake.http.url;
    assert_int_equal(audit_run(&w->dir, args, &report), 1);
    assert_true(report_has(report, 60, "consistency"));
    json_decref(report);
    fake_stop(&w->fake);
    fx_log_free(&other);
    unlink(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(honest_exchange_passes),
        cmocka_unit_test(empty_ledger_passes),
        cmocka_unit_test(malformed_items_are_findings),
        cmocka_unit_test(repeated_records_are_seq_order),
        cmocka_unit_test(withheld_records_are_beyond_log),
        cmocka_unit_test(unusable_answers_stop),
        cmocka_unit_test(state_uses_consistency_proofs),
        cmocka_unit_test(state_catches_rewritten_history),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
