/*
 * One audit run: see run.h. Everything that feeds the auditor goes through here, so the sources
 * only read and the rules of what to feed (which checkpoints after a saved state, how a job
 * reaches the pipeline) live in one place.
 */
#include "clients/cpx-audit/run.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cpx-audit/sigpipe.h"

#define RUN_MAX_FAILURES 10000 /* tool findings kept in detail (all are counted) */

bool run_init(struct run *r, const struct run_options *opt,
              const struct cpx_note_verifier *exchange)
{
    memset(r, 0, sizeof *r);
    r->opt = opt;
    r->exchange = *exchange;
    r->started = progress_now();
    struct cpx_audit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.exchange = *exchange;
    cfg.sigs = CPX_AUDIT_SIGS_DEFER;
    r->audit = cpx_audit_new(&cfg);
    struct cpx_books_config books = { 0 };
    r->books = cpx_books_new(&books);
    if (r->audit != NULL && r->books != NULL)
        r->sigs = sig_pipeline_new(opt->threads, r->audit);
    if (r->sigs == NULL) {
        fprintf(stderr, "cpx-audit: out of memory\n");
        return false;
    }
    snprintf(r->books_exchange, sizeof r->books_exchange, "%s",
             opt->file != NULL ? "not compared (an export file holds no books)"
                               : "not compared (the run stopped first)");
    progress_start(&r->progress, !opt->quiet);
    return true;
}

void run_free(struct run *r)
{
    progress_end(&r->progress);
    sig_pipeline_free(r->sigs);
    cpx_audit_free(r->audit);
    cpx_books_free(r->books);
    free(r->failures);
    memset(r, 0, sizeof *r);
}

void run_set_target(struct run *r, uint64_t size)
{
    r->target = size;
    progress_set_total(&r->progress, size > r->from_size ? size - r->from_size : 0);
}

bool run_note_size(const struct run *r, const char *note, size_t len, uint64_t *size)
{
    size_t text_len = 0;
    struct cpx_checkpoint cp;
    if (cpx_note_open(note, len, &r->exchange, &text_len) == CPX_NOTE_E_MALFORMED ||
        cpx_checkpoint_parse_text(note, text_len, &cp) != NULL)
        return false;
    *size = cp.size;
    return true;
}

bool run_wants_checkpoint(const struct run *r, uint64_t size)
{
    if (!r->state_loaded || size >= r->from_size)
        return true;
    /* Passed by an earlier run; the one it verified is fed again to show its root is unchanged. */
    return r->have_verified && size == r->verified_size;
}

/* Counts a fed checkpoint note[0..len) and handles the auditor's answer st to it. */
static bool checkpoint_status(struct run *r, enum cpx_audit_status st, const char *note, size_t len)
{
    r->checkpoints++;
    if (st == CPX_AUDIT_E_NOMEM)
        return run_stop(r, "out of memory");
    if (st == CPX_AUDIT_E_ORDER) {
        /* Only a checkpoint below the records already checked gets here: the state's verified
         * checkpoint (run_wants_checkpoint) with a root that has changed since. */
        uint64_t size = 0;
        run_note_size(r, note, len, &size);
        run_fail(r, size, 0, "consistency",
                 "checkpoint at size %" PRIu64 " differs from the one an earlier run verified: "
                 "history was rewritten",
                 size);
    }
    return true;
}

bool run_checkpoint(struct run *r, const char *note, size_t len)
{
    return checkpoint_status(r, cpx_audit_checkpoint(r->audit, note, len), note, len);
}

bool run_consistency(struct run *r, const char *note, size_t len,
                     const struct cpx_consistency_proof *proof)
{
    return checkpoint_status(r, cpx_audit_consistency(r->audit, note, len, proof), note, len);
}

bool run_record(struct run *r, const void *bytes, size_t len,
                const uint8_t claimed_leaf[CPX_HASH_LEN])
{
    struct cpx_audit_sigjob job;
    enum cpx_audit_status st = cpx_audit_record(r->audit, bytes, len, claimed_leaf, &job);
    if (st == CPX_AUDIT_DEFERRED && !sig_pipeline_push(r->sigs, bytes, len, &job))
        st = CPX_AUDIT_E_NOMEM;
    /* The same decoded record, to the books (which take each seq once). */
    const struct cpx_record *rec = cpx_audit_decoded(r->audit);
    if (st != CPX_AUDIT_E_NOMEM && rec != NULL &&
        cpx_books_record(r->books, rec) == CPX_BOOKS_E_NOMEM)
        st = CPX_AUDIT_E_NOMEM;
    if (st == CPX_AUDIT_E_NOMEM)
        return run_stop(r, "out of memory");
    progress_update(&r->progress, run_records(r) - r->from_size);
    return true;
}

uint64_t run_records(const struct run *r)
{
    return cpx_audit_records(r->audit);
}

bool run_books_partial(struct run *r)
{
    struct cpx_books_config cfg = { .partial = true, .start_seq = cpx_audit_records(r->audit) };
    cpx_books_free(r->books);
    r->books = cpx_books_new(&cfg);
    return r->books != NULL || run_stop(r, "out of memory");
}

uint64_t run_failure_total(const struct run *r)
{
    return cpx_audit_failure_total(r->audit) + cpx_books_failure_total(r->books) + r->failure_total;
}

const char *run_first_failure(const struct run *r)
{
    size_t na, nb;
    const struct cpx_audit_failure *fa = cpx_audit_failures(r->audit, &na);
    const struct cpx_books_failure *fb = cpx_books_failures(r->books, &nb);
    const char *first = NULL;
    uint64_t at = UINT64_MAX;
    if (na > 0) {
        first = fa[0].message;
        at = fa[0].seq;
    }
    if (nb > 0 && fb[0].seq < at) {
        first = fb[0].message;
        at = fb[0].seq;
    }
    for (size_t i = 0; i < r->n_failures; i++)
        if (r->failures[i].seq < at) {
            first = r->failures[i].message;
            at = r->failures[i].seq;
        }
    return first;
}

void run_fail(struct run *r, uint64_t seq, uint64_t line, const char *reason, const char *fmt, ...)
{
    r->failure_total++;
    if (r->n_failures == RUN_MAX_FAILURES)
        return;
    if (r->n_failures == r->cap_failures) {
        size_t cap = r->cap_failures ? r->cap_failures * 2 : 16;
        struct run_failure *bigger = realloc(r->failures, cap * sizeof *bigger);
        if (bigger == NULL)
            return; /* still counted in failure_total */
        r->failures = bigger;
        r->cap_failures = cap;
    }
    struct run_failure *f = &r->failures[r->n_failures++];
    f->seq = seq;
    f->line = line;
    snprintf(f->reason, sizeof f->reason, "%s", reason);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
}

bool run_stop(struct run *r, const char *fmt, ...)
{
    if (r->stopped)
        return false; /* keep the first reason */
    r->stopped = true;
    r->stop_status = EXIT_UNREACHABLE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return false;
}

void run_finish(struct run *r)
{
    if (!sig_pipeline_finish(r->sigs))
        run_stop(r, "out of memory");
    /* A stopped run saw only part of the log: "checkpoint beyond the records served" would
     * blame the exchange for what the network or the file did, so the pending ones are left. */
    if (!r->stopped) {
        cpx_audit_finish(r->audit);
        cpx_books_finish(r->books);
    }
    progress_end(&r->progress);
}

bool run_holds(const struct run *r)
{
    return !r->stopped && run_failure_total(r) == 0;
}
