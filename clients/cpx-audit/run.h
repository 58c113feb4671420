/*
 * One run of `cpx-audit verify`: the auditor (ledger/audit.h) with everything around it that a
 * program needs -- the signature pipeline, the findings of the tool itself, the saved state, the
 * progress bar and the report.
 *
 * The sources (source_file.c, source_url.c) read the ledger from wherever it is and push it
 * through run_checkpoint / run_consistency / run_record, in the order the auditor wants:
 * checkpoints first, then records from the state's `checked` on. Everything they find wrong with
 * the *container* (an export line that is not JSON, an exchange answer with a member of the wrong
 * type) they report with run_fail, naming the record position and, for files, the line; what is
 * wrong with the *ledger* the auditor finds itself. Whatever stops the run (the exchange cannot
 * be reached, a file cannot be read) goes through run_stop: the run ends with exit status 3.
 *
 * Findings of the tool use these reasons besides the auditor's codes (docs/audit.md):
 *   export_format     an export line is malformed (or out of place)
 *   export_truncated  the export holds fewer records than its header promises
 *   exchange_format   an answer of the exchange has a malformed item
 *   consistency       the exchange's log is smaller than what an earlier run verified
 *
 * Every record the auditor decodes also goes to the books (ledger/books.h), which re-derive the
 * market's money and report with their own codes; reading from the exchange, the source then
 * holds the exchange's own books against them (source_url.c).
 */
#ifndef CPX_AUDIT_RUN_H
#define CPX_AUDIT_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clients/cpx-audit/progress.h"
#include "ledger/audit.h"
#include "ledger/books.h"

/* Exit statuses of cpx-audit. */
enum {
    EXIT_HOLDS = 0,       /* everything checked holds */
    EXIT_FAILURES = 1,    /* the audit found failures */
    EXIT_USAGE = 2,       /* bad flags, unreadable exchange key or state */
    EXIT_UNREACHABLE = 3, /* the exchange or a file could not be read */
};

#define RUN_REASON_MAX 24   /* longest reason code of a tool finding, with its NUL */
#define RUN_ERROR_MAX  512  /* longest message of a stopped run */
#define RUN_SOURCE_MAX 4096 /* longest source name (URL or file) in the report */
#define RUN_NOTE_MAX   256  /* longest note on how the exchange's books were compared */

/* What the user asked for (pointers into argv). */
struct run_options {
    const char *url;         /* --url, or NULL */
    const char *file;        /* --file, or NULL ("-" is standard input) */
    const char *key_file;    /* --exchange-key */
    const char *state_file;  /* --state, or NULL */
    const char *report_file; /* --report, or NULL for standard output */
    const char *cacert;      /* --cacert, or NULL */
    unsigned threads;        /* signature threads, >= 1 */
    bool quiet;              /* no progress bar */
};

/* A finding of the tool itself (the auditor keeps its own). */
struct run_failure {
    uint64_t seq;                        /* record position (or checkpoint size) it concerns */
    uint64_t line;                       /* export line, 0 when not from a file */
    char reason[RUN_REASON_MAX];         /* export_format, export_truncated, ... */
    char message[CPX_AUDIT_MESSAGE_MAX]; /* a sentence for people */
};

struct sig_pipeline;

/* One run. */
struct run {
    const struct run_options *opt;     /* the flags */
    char source[RUN_SOURCE_MAX];       /* the URL or file audited, for the report */
    struct cpx_note_verifier exchange; /* the exchange's key (its name is the origin) */
    struct cpx_audit *audit;           /* the verification core */
    struct cpx_books *books;           /* the money re-derived from the records */
    char books_exchange[RUN_NOTE_MAX]; /* how the exchange's books were compared, for the report */
    struct sig_pipeline *sigs;         /* party signatures on worker threads */
    struct progress progress;          /* the progress bar on stderr */
    bool state_loaded;                 /* --state existed and was loaded */
    uint64_t from_size;                /* records checked by earlier runs (state's `checked`) */
    bool have_verified;                /* the state holds a verified checkpoint */
    uint64_t verified_size;            /* ... its size */
    uint64_t target;                   /* records the run audits: 0 .. target-1 */
    uint64_t checkpoints;              /* checkpoints fed this run */
    struct run_failure *failures;      /* the tool's findings kept in detail */
    size_t n_failures, cap_failures;   /* used and allocated */
    uint64_t failure_total;            /* all of the tool's findings */
    bool stopped;                      /* the run could not go on */
    int stop_status;                   /* then: EXIT_UNREACHABLE, or EXIT_USAGE */
    char error[RUN_ERROR_MAX];         /* why, when stopped */
    bool state_saved;                  /* the state file was written */
    double started;                    /* monotonic seconds at the start */
};

/* ---- run.c --------------------------------------------------------------------------------- */

/*
 * Sets up r: a DEFER-mode auditor for the exchange key and opt->threads signature threads.
 * Returns false (with a message on stderr) when out of memory; run_free cleans up either way.
 */
bool run_init(struct run *r, const struct run_options *opt,
              const struct cpx_note_verifier *exchange);

void run_free(struct run *r);

/* Sets the number of records this run audits up to (the latest checkpoint's size). */
void run_set_target(struct run *r, uint64_t size);

/*
 * The tree size a signed note claims, read without trusting it (the auditor checks the
 * signature when the note is fed). False when the note is not a readable checkpoint.
 */
bool run_note_size(const struct run *r, const char *note, size_t len, uint64_t *size);

/*
 * Should a checkpoint of this size be fed? Not when a loaded state has passed it (unless it is
 * the state's verified checkpoint, whose root must not have changed).
 */
bool run_wants_checkpoint(const struct run *r, uint64_t size);

/* Feeds a checkpoint note. Returns false when the run stopped (out of memory). */
bool run_checkpoint(struct run *r, const char *note, size_t len);

/* Feeds the newest checkpoint with a consistency proof from the state's verified size. */
bool run_consistency(struct run *r, const char *note, size_t len,
                     const struct cpx_consistency_proof *proof);

/*
 * Feeds the next record: its exact bytes and the leaf hash the log claims (NULL when not served).
 * Its signature, if any, is verified on the pipeline. Returns false when the run stopped.
 */
bool run_record(struct run *r, const void *bytes, size_t len,
                const uint8_t claimed_leaf[CPX_HASH_LEN]);

/* Records fed so far in this run and by earlier ones (the rebuilt tree's size). */
uint64_t run_records(const struct run *r);

/*
 * Replaces the books by fresh ones lacking the history of earlier runs: they start at the
 * auditor's next record. Returns false (stopping the run) when out of memory.
 */
bool run_books_partial(struct run *r);

/* Every failure of the run: the auditor's, the books' and the tool's own. */
uint64_t run_failure_total(const struct run *r);

/* The first failure by seq (auditor, books or tool), or NULL when none is kept. */
const char *run_first_failure(const struct run *r);

/* Records a finding of the tool (see the reasons above); line 0 when not from a file. */
void run_fail(struct run *r, uint64_t seq, uint64_t line, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/*
 * Stops the run: the source cannot go on (exit status EXIT_UNREACHABLE; a caller may set
 * stop_status to EXIT_USAGE afterwards). Returns false, for `return run_stop(...)`.
 */
bool run_stop(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Ends the input: waits for every signature, then cpx_audit_finish and cpx_books_finish (unless
 * the run stopped).
 */
void run_finish(struct run *r);

/* True when the run was not stopped and nothing failed. */
bool run_holds(const struct run *r);

/* ---- state.c ------------------------------------------------------------------------------- */

/*
 * Loads opt->state_file into the fresh auditor when the file exists. Returns EXIT_HOLDS, or
 * EXIT_USAGE after printing why the file is unusable.
 */
int state_load(struct run *r);

/*
 * Writes the auditor's state and the books' to opt->state_file atomically (FILE.tmp, fsync,
 * rename), mode 0600. Returns false after printing why it could not.
 */
bool state_save(struct run *r);

/* ---- report.c ------------------------------------------------------------------------------ */

/*
 * Writes the JSON report to opt->report_file (or standard output). Returns false after printing
 * why it could not.
 */
bool report_write(const struct run *r);

#endif
