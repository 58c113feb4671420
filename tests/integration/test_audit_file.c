/*
 * cpx-audit on export files, as a regulator runs it: an honest export made with the ledger
 * fixtures passes; then the export is tampered with one way at a time -- a changed byte, a forged
 * party signature, a dropped record, two swapped records, a checkpoint signed by another key, a
 * cut file, malformed lines -- and the report must name exactly that seq and reason. Also: the
 * saved state across runs (an extended log passes and only the new records are checked, a
 * rewritten one fails), usage and file errors, and that one or two signature threads give the
 * same report.
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
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/audit_tool.h"
#include "tests/support/ledger_fixtures.h"

#define ORDERS      20 /* order + expiry pairs in the honest ledger */
#define CP_EVERY    10 /* records between two checkpoints */
#define MAX_CPS     64
#define MAX_LINES   512
#define HEADER_LINE 1 /* line numbers count from 1 */

/* The honest ledger of every test, and its export. */
struct world {
    struct fx_log log;
    struct fx_party op, buyer;
    uint64_t order_seq; /* a buyer-signed order */
    uint64_t bill_seq;  /* an exchange-only record (the order's expiry) */
    uint64_t cps[MAX_CPS];
    size_t n_cps;
    struct audit_dir dir;
    char export[AUDIT_PATH_MAX];
};

/* Appends `orders` order/expiry pairs (numbered from first). */
static void add_trades(struct world *w, int first, int orders)
{
    audit_trades(&w->log, &w->buyer, first, orders);
    w->bill_seq = w->log.n - 1;
    w->order_seq = w->log.n - 2;
}

/* Checkpoints every CP_EVERY records and at the end. */
static void set_checkpoints(struct world *w)
{
    w->n_cps = 0;
    for (uint64_t s = CP_EVERY; s <= w->log.n; s += CP_EVERY)
        w->cps[w->n_cps++] = s;
    if (w->n_cps == 0 || w->cps[w->n_cps - 1] != w->log.n)
        w->cps[w->n_cps++] = w->log.n;
}

static void build_world(struct world *w)
{
    memset(w, 0, sizeof *w);
    fx_log_init(&w->log);
    audit_build_log(&w->log, &w->op, &w->buyer, 0);
    add_trades(w, 0, ORDERS);
    set_checkpoints(w);
    audit_dir_init(&w->dir, &w->log);
    audit_path(&w->dir, "ledger.ndjson", w->export);
}

static void write_export(struct world *w)
{
    fx_export_write(&w->log, w->cps, w->n_cps, w->export);
}

static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    build_world(w);
    write_export(w);
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

/* Audits the export with extra arguments (NULL-ended after the file). */
static int audit_export(struct world *w, json_t **report, const char *extra)
{
    const char *args[] = { "--file", w->export, extra, NULL };
    return audit_run(&w->dir, args, report);
}

/* ---- editing the export as text ------------------------------------------------------------ */

/* The export's lines (each malloc'd, without its newline). */
struct lines {
    char *at[MAX_LINES];
    size_t n;
};

static void lines_read(const char *path, struct lines *l)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    l->n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        assert_true(l->n < MAX_LINES);
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        l->at[l->n++] = strdup(line);
    }
    free(line);
    fclose(f);
}

/* Writes the lines back (each with a newline) and frees them. */
static void lines_write(const char *path, struct lines *l)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < l->n; i++) {
        fprintf(f, "%s\n", l->at[i]);
        free(l->at[i]);
    }
    assert_int_equal(fclose(f), 0);
    l->n = 0;
}

/* Index of the line holding record seq (after the header and the checkpoints). */
static size_t record_line(const struct world *w, uint64_t seq)
{
    return HEADER_LINE + w->n_cps + (size_t)seq;
}

/* Replaces the first `from` in line i by `to`. */
static void line_replace(struct lines *l, size_t i, const char *from, const char *to)
{
    char *at = strstr(l->at[i], from);
    assert_non_null(at);
    size_t head = (size_t)(at - l->at[i]), tail = strlen(at + strlen(from));
    char *next = malloc(head + strlen(to) + tail + 1);
    assert_non_null(next);
    memcpy(next, l->at[i], head);
    strcpy(next + head, to);
    strcat(next, at + strlen(from));
    free(l->at[i]);
    l->at[i] = next;
}

static void line_delete(struct lines *l, size_t i)
{
    free(l->at[i]);
    memmove(&l->at[i], &l->at[i + 1], (l->n - i - 1) * sizeof l->at[0]);
    l->n--;
}

/* Replaces the first `from` in record seq of the log itself (the exchange wrote it so). */
static void record_replace(struct fx_log *log, uint64_t seq, const char *from, const char *to)
{
    uint8_t *rec = log->rec[seq];
    size_t len = log->len[seq], flen = strlen(from), tlen = strlen(to);
    assert_int_equal(flen, tlen);
    for (size_t i = 0; i + flen <= len; i++)
        if (memcmp(rec + i, from, flen) == 0) {
            memcpy(rec + i, to, tlen);
            return;
        }
    fail_msg("record %" PRIu64 " has no %s", seq, from);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void honest_export_passes(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 0);
    assert_non_null(report);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_int_equal(report_int(report, "records"), w->log.n);
    assert_int_equal(report_int(report, "records_total"), w->log.n);
    assert_int_equal(report_int(report, "verified_size"), w->log.n);
    assert_int_equal(report_int(report, "checkpoints"), w->n_cps);
    assert_int_equal(report_int(report, "failure_total"), 0);
    assert_int_equal(json_array_size(json_object_get(report, "failures")), 0);
    /* Every party-signed record: the buyer's registration, its approval, the orders. */
    assert_int_equal(report_int(report, "signatures"), 2 + ORDERS);
    assert_string_equal(json_string_value(json_object_get(report, "origin")), FX_ORIGIN);
    assert_string_equal(json_string_value(json_object_get(report, "source")), w->export);
    assert_true(json_is_string(json_object_get(report, "verified_root")));
    assert_true(json_is_real(json_object_get(report, "seconds")));
    assert_true(json_is_null(json_object_get(report, "error")));
    json_decref(report);
}

static void changed_byte_is_leaf_mismatch(void **state)
{
    struct world *w = *state;
    struct lines l;
    lines_read(w->export, &l);
    /* The expiry's reason changes; its served leaf hash and every checkpoint stay. */
    line_replace(&l, record_line(w, w->bill_seq), "\\\"reason\\\":\\\"expired",
                 "\\\"reason\\\":\\\"expirex");
    lines_write(w->export, &l);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    assert_only_failure(report, w->bill_seq, "leaf_mismatch");
    json_decref(report);
    write_export(w);
}

/*
 * Writes the export of a log in which the exchange recorded the records seqs[0..n) with a
 * signature their party never made (one base64 character changed) and committed to them.
 */
static void write_forged_export(struct world *w, const uint64_t *seqs, size_t n)
{
    uint8_t *saved[MAX_CPS];
    assert_true(n <= MAX_CPS);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq = seqs[i];
        saved[i] = malloc(w->log.len[seq]);
        memcpy(saved[i], w->log.rec[seq], w->log.len[seq]);
        const char *sig = memmem(w->log.rec[seq], w->log.len[seq], "\"sig\":\"", 7);
        assert_non_null(sig);
        char from[16], to[16];
        snprintf(from, sizeof from, "\"sig\":\"%c", sig[7]);
        snprintf(to, sizeof to, "\"sig\":\"%c", sig[7] == 'A' ? 'B' : 'A');
        record_replace(&w->log, seq, from, to);
    }
    write_export(w);
    for (size_t i = 0; i < n; i++) {
        memcpy(w->log.rec[seqs[i]], saved[i], w->log.len[seqs[i]]);
        free(saved[i]);
    }
}

static void forged_signature_is_party_sig(void **state)
{
    struct world *w = *state;
    write_forged_export(w, &w->order_seq, 1);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    assert_only_failure(report, w->order_seq, "party_sig");
    json_decref(report);
    write_export(w);
}

static void dropped_record_is_seq_gap(void **state)
{
    struct world *w = *state;
    uint64_t dropped = 23;
    struct lines l;
    lines_read(w->export, &l);
    line_delete(&l, record_line(w, dropped));
    lines_write(w->export, &l);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    const json_t *first = json_array_get(json_object_get(report, "failures"), 0);
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), dropped);
    assert_string_equal(json_string_value(json_object_get(first, "reason")), "seq_gap");
    assert_true(report_has(report, w->log.n - 1, "export_truncated"));
    json_decref(report);
    write_export(w);
}

static void swapped_records_are_seq_order(void **state)
{
    struct world *w = *state;
    struct lines l;
    lines_read(w->export, &l);
    size_t a = record_line(w, 31), b = record_line(w, 32);
    char *t = l.at[a];
    l.at[a] = l.at[b];
    l.at[b] = t;
    lines_write(w->export, &l);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    assert_true(report_has(report, 31, "seq_gap"));   /* 32 came where 31 belongs */
    assert_true(report_has(report, 31, "seq_order")); /* then 31, late */
    const json_t *first = json_array_get(json_object_get(report, "failures"), 0);
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), 31);
    json_decref(report);
    write_export(w);
}

static void checkpoint_by_another_key_is_checkpoint_sig(void **state)
{
    struct world *w = *state;
    struct cpx_keypair impostor;
    cpx_keypair_generate(&impostor);
    char note[1024], line[2048];
    size_t len = fx_checkpoint(&w->log, 30, &impostor, NULL, note, sizeof note);
    struct cpx_canon_writer cw;
    cpx_canon_writer_init(&cw);
    cpx_canon_begin_object(&cw);
    cpx_canon_key(&cw, "checkpoint", 10);
    cpx_canon_string(&cw, note, len);
    cpx_canon_kv_int(&cw, "size", 30);
    cpx_canon_end_object(&cw);
    const uint8_t *out;
    size_t out_len;
    assert_int_equal(cpx_canon_writer_finish(&cw, &out, &out_len), CPX_CANON_OK);
    snprintf(line, sizeof line, "%.*s", (int)out_len, (const char *)out);
    cpx_canon_writer_free(&cw);
    struct lines l;
    lines_read(w->export, &l);
    size_t at = HEADER_LINE + 2; /* the third checkpoint: size 30 */
    free(l.at[at]);
    l.at[at] = strdup(line);
    lines_write(w->export, &l);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    assert_only_failure(report, 30, "checkpoint_sig");
    json_decref(report);
    write_export(w);
}

static void truncated_file_fails_clearly(void **state)
{
    struct world *w = *state;
    struct lines l;
    lines_read(w->export, &l);
    uint64_t kept = 35;
    while (l.n > record_line(w, kept))
        line_delete(&l, l.n - 1);
    lines_write(w->export, &l);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    assert_true(report_has(report, kept, "export_truncated"));
    assert_true(report_has(report, w->log.n, "checkpoint_beyond_log"));
    /* The checkpoints the records reach still hold. */
    assert_int_equal(report_int(report, "verified_size"), 30);
    json_decref(report);
    /* Cut inside a line: that line is named. */
    FILE *f = fopen(w->export, "a");
    fputs("{\"leaf_hash\":\"AAAA", f);
    fclose(f);
    assert_int_equal(audit_export(w, &report, NULL), 1);
    const json_t *failures = json_object_get(report, "failures");
    bool named = false;
    for (size_t i = 0; i < json_array_size(failures); i++) {
        const json_t *fl = json_array_get(failures, i);
        named |= json_integer_value(json_object_get(fl, "line")) ==
                     (json_int_t)record_line(w, kept) + 1 &&
                 strstr(json_string_value(json_object_get(fl, "message")), "cut short") != NULL;
    }
    assert_true(named);
    json_decref(report);
    write_export(w);
}

static void malformed_lines_are_named(void **state)
{
    struct world *w = *state;
    struct lines l;
    lines_read(w->export, &l);
    size_t garbage = record_line(w, 12), bad_leaf = record_line(w, 14);
    free(l.at[garbage]);
    l.at[garbage] = strdup("{\"record\":42,\"seq\":12}"); /* a record that is not a string */
    line_replace(&l, bad_leaf, "\"leaf_hash\":\"", "\"leaf_hash\":\"!");
    lines_write(w->export, &l);
    json_t *report;
    assert_int_equal(audit_export(w, &report, NULL), 1);
    const json_t *failures = json_object_get(report, "failures");
    bool saw_garbage = false, saw_leaf = false;
    for (size_t i = 0; i < json_array_size(failures); i++) {
        const json_t *f = json_array_get(failures, i);
        const char *reason = json_string_value(json_object_get(f, "reason"));
        json_int_t line = json_integer_value(json_object_get(f, "line"));
        if (strcmp(reason, "export_format") == 0 && line == (json_int_t)garbage + 1)
            saw_garbage = json_integer_value(json_object_get(f, "seq")) == 12;
        if (strcmp(reason, "export_format") == 0 && line == (json_int_t)bad_leaf + 1)
            saw_leaf = true;
    }
    assert_true(saw_garbage);
    assert_true(saw_leaf);
    assert_true(report_has(report, 12, "seq_gap")); /* the auditor saw 13 where 12 belongs */
    json_decref(report);
    /* Lines that are not JSON at all, anywhere, do not stop the audit. */
    FILE *f = fopen(w->export, "w");
    fputs("not json\n\n{}\n[1,2]\n{\"format\":\"cpx-ledger-export\"}\n", f);
    fclose(f);
    assert_int_equal(audit_export(w, &report, NULL), 1);
    assert_true(report_has(report, 0, "export_format"));
    json_decref(report);
    write_export(w);
}

static void state_checks_only_new_records(void **state)
{
    struct world *w = *state;
    char saved[AUDIT_PATH_MAX];
    audit_path(&w->dir, "audit.state", saved);
    const char *args[] = { "--file", w->export, "--state", saved, NULL };
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    assert_true(json_is_true(json_object_get(json_object_get(report, "state"), "saved")));
    assert_true(json_is_false(json_object_get(json_object_get(report, "state"), "loaded")));
    json_decref(report);
    struct stat st;
    assert_int_equal(stat(saved, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* The log grows; the second run checks only what is new. */
    uint64_t before = w->log.n;
    add_trades(w, ORDERS, 7);
    set_checkpoints(w);
    write_export(w);
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_int_equal(report_int(report, "records"), w->log.n - before);
    assert_int_equal(report_int(report, "records_total"), w->log.n);
    assert_int_equal(report_int(report, "verified_size"), w->log.n);
    assert_int_equal(report_int(report, "signatures"), 7);
    const json_t *st_json = json_object_get(report, "state");
    assert_true(json_is_true(json_object_get(st_json, "loaded")));
    assert_int_equal(json_integer_value(json_object_get(st_json, "from_size")), before);
    json_decref(report);

    /* A third run on the same export has nothing new and still holds. */
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    assert_int_equal(report_int(report, "records"), 0);
    json_decref(report);
    unlink(saved);
}

static void state_catches_rewritten_history(void **state)
{
    struct world *w = *state;
    char saved[AUDIT_PATH_MAX];
    audit_path(&w->dir, "rewrite.state", saved);
    const char *args[] = { "--file", w->export, "--state", saved, NULL };
    json_t *report;
    assert_int_equal(audit_run(&w->dir, args, &report), 0);
    json_decref(report);
    struct stat before;
    assert_int_equal(stat(saved, &before), 0);

    /* The same exchange key signs another history of the same length and more. */
    struct fx_log honest = w->log;
    struct fx_log other;
    fx_log_init(&other);
    other.exchange = honest.exchange;
    other.verifier = honest.verifier;
    other.ts_ms = honest.ts_ms;
    struct fx_party op;
    fx_party_new(&op);
    fx_register_exchange(&other, &op, CPX_ROLE_OPERATOR);
    while (other.n < honest.n + 5)
        fx_bill(&other, (int)other.n);
    w->log = other;
    set_checkpoints(w);
    uint64_t cps[] = { honest.n, honest.n + 5 }; /* the size the state verified, and a newer one */
    fx_export_write(&other, cps, 2, w->export);
    assert_int_equal(audit_run(&w->dir, args, &report), 1);
    assert_true(report_has(report, honest.n, "root_mismatch"));
    assert_true(report_has(report, honest.n + 5, "root_mismatch"));
    assert_true(json_is_false(json_object_get(json_object_get(report, "state"), "saved")));
    json_decref(report);
    struct stat after;
    assert_int_equal(stat(saved, &after), 0);
    /* not written again */
    assert_true(after.st_ino == before.st_ino && after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);

    fx_log_free(&other);
    w->log = honest;
    set_checkpoints(w);
    write_export(w);
    unlink(saved);
}

static void usage_and_file_errors(void **state)
{
    struct world *w = *state;
    char bad_key[AUDIT_PATH_MAX], missing[AUDIT_PATH_MAX];
    audit_path(&w->dir, "bad.key", bad_key);
    audit_path(&w->dir, "missing.ndjson", missing);
    FILE *f = fopen(bad_key, "w");
    fputs("cpx.test/ledger+00000000+AAAA\n", f);
    fclose(f);
    const char *bad_key_args[] = { "verify", "--file", w->export, "--exchange-key", bad_key, NULL };
    assert_int_equal(audit_run_raw(&w->dir, bad_key_args), 2);
    assert_true(audit_output_has(&w->dir, "exchange key"));
    const char *no_key_file[] = { "verify", "--file", w->export, "--exchange-key", missing, NULL };
    assert_int_equal(audit_run_raw(&w->dir, no_key_file), 2);
    const char *no_key[] = { "verify", "--file", w->export, NULL };
    unsetenv("CPX_EXCHANGE_VKEY");
    assert_int_equal(audit_run_raw(&w->dir, no_key), 2);
    setenv("CPX_EXCHANGE_VKEY", w->dir.key, 1); /* the flag's stand-in */
    assert_int_equal(audit_run_raw(&w->dir, no_key), 0);
    unsetenv("CPX_EXCHANGE_VKEY");
    const char *both[] = { "verify",         "--file",   w->export, "--url", "https://127.0.0.1:1",
                           "--exchange-key", w->dir.key, NULL };
    assert_int_equal(audit_run_raw(&w->dir, both), 2);
    const char *bad_threads[] = { "verify",   "--file",    w->export, "--exchange-key",
                                  w->dir.key, "--threads", "0",       NULL };
    assert_int_equal(audit_run_raw(&w->dir, bad_threads), 2);
    const char *unknown[] = { "verify", "--frobnicate", NULL };
    assert_int_equal(audit_run_raw(&w->dir, unknown), 2);
    const char *help[] = { "verify", "--help", NULL };
    assert_int_equal(audit_run_raw(&w->dir, help), 0);
    assert_true(audit_output_has(&w->dir, "--exchange-key"));
    const char *top_help[] = { "--help", NULL };
    assert_int_equal(audit_run_raw(&w->dir, top_help), 0);
    assert_true(audit_output_has(&w->dir, "verify"));

    json_t *report;
    const char *args[] = { "--file", missing, NULL };
    assert_int_equal(audit_run(&w->dir, args, &report), 3);
    assert_true(json_is_string(json_object_get(report, "error")));
    assert_true(audit_output_has(&w->dir, "missing.ndjson"));
    json_decref(report);
}

/* Drops the member that differs from run to run. */
static char *stable_report(json_t *report)
{
    json_object_del(report, "seconds");
    char *text = json_dumps(report, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(report);
    return text;
}

static void threads_give_identical_reports(void **state)
{
    struct world *w = *state;
    /* Two forged signatures, so the failure lists are compared too. */
    uint64_t seqs[] = { 8, w->order_seq };
    write_forged_export(w, seqs, 2);
    json_t *one, *two;
    const char *args1[] = { "--file", w->export, "--threads", "1", NULL };
    const char *args2[] = { "--file", w->export, "--threads", "2", NULL };
    assert_int_equal(audit_run(&w->dir, args1, &one), 1);
    assert_int_equal(audit_run(&w->dir, args2, &two), 1);
    assert_int_equal(json_array_size(json_object_get(one, "failures")), 2);
    char *a = stable_report(one), *b = stable_report(two);
    assert_string_equal(a, b);
    free(a);
    free(b);
    write_export(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(honest_export_passes),
        cmocka_unit_test(changed_byte_is_leaf_mismatch),
        cmocka_unit_test(forged_signature_is_party_sig),
        cmocka_unit_test(dropped_record_is_seq_gap),
        cmocka_unit_test(swapped_records_are_seq_order),
        cmocka_unit_test(checkpoint_by_another_key_is_checkpoint_sig),
        cmocka_unit_test(truncated_file_fails_clearly),
        cmocka_unit_test(malformed_lines_are_named),
        cmocka_unit_test(state_checks_only_new_records),
        cmocka_unit_test(state_catches_rewritten_history),
        cmocka_unit_test(usage_and_file_errors),
        cmocka_unit_test(threads_give_identical_reports),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
