/*
 * Running bin/cpx-audit from a test, the way a regulator runs it: a scratch folder, the
 * exchange's verifier key in a file, the tool started as a process with its output captured,
 * and its JSON report parsed. The binary is $CPX_TEST_BIN/cpx-audit (set by scripts/test.sh).
 *
 * A sanitizer report in the tool fails the test: the child gets exit codes for ASan and UBSan
 * that no cpx-audit status uses, and its output is searched for their reports.
 */
#ifndef CPX_TESTS_AUDIT_TOOL_H
#define CPX_TESTS_AUDIT_TOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tests/support/ledger_fixtures.h"

#define AUDIT_PATH_MAX 512

/*
 * The honest ledger of the audit tests: an operator bootstrapped by the exchange, a buyer it
 * registers (self-signed) and approves, then audit_trades. Returns the seq of the last record.
 */
uint64_t audit_build_log(struct fx_log *l, struct fx_party *op, struct fx_party *buyer, int orders);

/*
 * Appends `orders` pairs of a buyer-signed order (numbered from `first`) that holds nothing and
 * its expiry by the exchange (an exchange-only cancel): market records as docs/ledger.md section
 * 11 shapes them, which cpx-audit's books check.
 */
uint64_t audit_trades(struct fx_log *l, const struct fx_party *buyer, int first, int orders);

/* A scratch folder for one test. */
struct audit_dir {
    char path[AUDIT_PATH_MAX];   /* the folder (removed by audit_dir_free) */
    char key[AUDIT_PATH_MAX];    /* the exchange's verifier key file */
    char report[AUDIT_PATH_MAX]; /* where the tool writes its report */
    char output[AUDIT_PATH_MAX]; /* its stdout and stderr */
};

/* Makes a fresh folder and writes l's verifier key into d->key. */
void audit_dir_init(struct audit_dir *d, const struct fx_log *l);

/* The same for the exchange whose verifier key is v. */
void audit_dir_init_verifier(struct audit_dir *d, const struct cpx_note_verifier *v);

/* Removes the folder and everything in it. */
void audit_dir_free(struct audit_dir *d);

/* Writes d->path/name into out. */
void audit_path(const struct audit_dir *d, const char *name, char out[AUDIT_PATH_MAX]);

/*
 * Runs `cpx-audit verify --exchange-key KEY --report REPORT --quiet ARGS...` (args NULL-ended)
 * and returns its exit status; *report gets the parsed report (NULL when none was written;
 * json_decref it). Fails the test on a crash or a sanitizer report.
 */
int audit_run(const struct audit_dir *d, const char *const *args, json_t **report);

/* Runs cpx-audit with exactly these arguments (after the program name); returns its status. */
int audit_run_raw(const struct audit_dir *d, const char *const *args);

/* True when the tool's captured output (stdout and stderr) contains text. */
bool audit_output_has(const struct audit_dir *d, const char *text);

/* True when the report lists a failure (seq, reason). */
bool report_has(const json_t *report, uint64_t seq, const char *reason);

/* Asserts that the report's failures are exactly (seq, reason), and that ok is false. */
void assert_only_failure(const json_t *report, uint64_t seq, const char *reason);

/* The integer member key of the report (fails the test when it is not one). */
int64_t report_int(const json_t *report, const char *key);

#endif
