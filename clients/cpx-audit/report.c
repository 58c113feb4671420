/*
 * The report of a run: one JSON object with sorted keys (docs/audit.md), written to --report
 * FILE or standard output.
 *
 *   {"books":{"accounts":A,"bills":B,"commissions":C,"compared_accounts":CA,
 *    "compared_bills":CB,"differences":D,"exchange":"...","history":"complete"|"this run"},
 *    "checkpoints":K,"error":null|"...","failure_total":n,"failures":[{"line"?,"message",
 *    "reason","seq"}...],"ok":bool,"origin":"...","records":N,"records_total":T,
 *    "seconds":x.xxx,"signatures":S,"source":"...","state":{"from_size":S0,"loaded":bool,
 *    "saved":bool},"verified_root":"b64"|null,"verified_size":V}
 *
 * The failures are the auditor's, the books' and the tool's merged by seq (the tool's carry
 * "line" when they come from an export file).
 */
#include "clients/cpx-audit/run.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cpx-audit/sigpipe.h"
#include "ledger/codec.h"

#define MS_PER_SECOND    1000.0
#define SECONDS_DECIMALS 3 /* "seconds" is written with millisecond precision */
#define REPORT_INDENT    2

/* A JSON string of s; bytes that are not valid UTF-8 (a message cut inside a character, a file
 * name in another encoding) become '?'. */
static json_t *text_json(const char *s)
{
    json_t *v = json_string(s);
    if (v != NULL)
        return v;
    char *copy = strdup(s);
    if (copy == NULL)
        return json_null();
    for (char *c = copy; *c != '\0'; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

/* One failure as a JSON object. */
static json_t *failure_json(uint64_t seq, uint64_t line, const char *reason, const char *message)
{
    json_t *f = json_object();
    json_object_set_new(f, "seq", json_integer((json_int_t)seq));
    json_object_set_new(f, "reason", json_string(reason));
    json_object_set_new(f, "message", text_json(message));
    if (line != 0)
        json_object_set_new(f, "line", json_integer((json_int_t)line));
    return f;
}

/* The auditor's, the books' and the tool's failures merged by seq (each list is sorted or
 * nearly so); at one seq the auditor's come first, then the books', then the tool's. */
static json_t *failures_json(const struct run *r)
{
    size_t n_audit, n_books;
    const struct cpx_audit_failure *af = cpx_audit_failures(r->audit, &n_audit);
    const struct cpx_books_failure *bf = cpx_books_failures(r->books, &n_books);
    const struct run_failure *tf = r->failures;
    size_t i = 0, j = 0, k = 0;
    json_t *list = json_array();
    while (i < n_audit || j < n_books || k < r->n_failures) {
        uint64_t a = i < n_audit ? af[i].seq : UINT64_MAX;
        uint64_t b = j < n_books ? bf[j].seq : UINT64_MAX;
        uint64_t t = k < r->n_failures ? tf[k].seq : UINT64_MAX;
        if (i < n_audit && a <= b && a <= t) {
            json_array_append_new(
                list, failure_json(a, 0, cpx_audit_reason_code(af[i].reason), af[i].message));
            i++;
        } else if (j < n_books && b <= t) {
            json_array_append_new(
                list, failure_json(b, 0, cpx_books_reason_code(bf[j].reason), bf[j].message));
            j++;
        } else {
            json_array_append_new(list, failure_json(t, tf[k].line, tf[k].reason, tf[k].message));
            k++;
        }
    }
    return list;
}

/* What the books re-derived and how they compared with the exchange's. */
static json_t *books_json(const struct run *r)
{
    struct cpx_books_counts c;
    cpx_books_counts(r->books, &c);
    json_t *o = json_object();
    json_object_set_new(o, "bills", json_integer((json_int_t)c.bills));
    json_object_set_new(o, "commissions", json_integer((json_int_t)c.commissions));
    json_object_set_new(o, "accounts", json_integer((json_int_t)c.accounts));
    json_object_set_new(o, "compared_bills", json_integer((json_int_t)c.compared_bills));
    json_object_set_new(o, "compared_accounts", json_integer((json_int_t)c.compared_accounts));
    json_object_set_new(o, "differences",
                        json_integer((json_int_t)cpx_books_failure_total(r->books)));
    json_object_set_new(o, "history",
                        json_string(cpx_books_partial(r->books) ? "this run" : "complete"));
    json_object_set_new(o, "exchange", text_json(r->books_exchange));
    return o;
}

/* Seconds since the start, rounded to milliseconds. */
static json_t *seconds_json(const struct run *r)
{
    double secs = round((progress_now() - r->started) * MS_PER_SECOND) / MS_PER_SECOND;
    return json_real(secs);
}

/* Significant digits that print seconds with SECONDS_DECIMALS decimals. */
static int seconds_precision(double secs)
{
    int digits = secs >= 1 ? (int)floor(log10(secs)) + 1 : 1;
    return digits + SECONDS_DECIMALS;
}

static json_t *report_json(const struct run *r)
{
    json_t *o = json_object();
    uint64_t vsize = 0;
    uint8_t vroot[CPX_HASH_LEN];
    char vroot_b64[CPX_B64_LEN(CPX_HASH_LEN) + 1];
    bool verified = cpx_audit_verified(r->audit, &vsize, vroot);
    if (verified)
        cpx_b64_encode(vroot, CPX_HASH_LEN, vroot_b64);
    uint64_t total = run_records(r);
    json_object_set_new(o, "ok", json_boolean(run_holds(r)));
    json_object_set_new(o, "source", text_json(r->source));
    json_object_set_new(o, "origin", text_json(r->exchange.name));
    json_object_set_new(o, "records", json_integer((json_int_t)(total - r->from_size)));
    json_object_set_new(o, "records_total", json_integer((json_int_t)total));
    json_object_set_new(o, "checkpoints", json_integer((json_int_t)r->checkpoints));
    json_object_set_new(o, "verified_size", json_integer((json_int_t)vsize));
    json_object_set_new(o, "verified_root", verified ? json_string(vroot_b64) : json_null());
    json_object_set_new(o, "signatures", json_integer((json_int_t)sig_pipeline_jobs(r->sigs)));
    json_object_set_new(o, "failure_total", json_integer((json_int_t)run_failure_total(r)));
    json_object_set_new(o, "books", books_json(r));
    json_object_set_new(o, "failures", failures_json(r));
    json_object_set_new(o, "state",
                        json_pack("{s:b,s:I,s:b}", "loaded", r->state_loaded, "from_size",
                                  (json_int_t)r->from_size, "saved", r->state_saved));
    json_object_set_new(o, "error", r->stopped ? text_json(r->error) : json_null());
    json_object_set_new(o, "seconds", seconds_json(r));
    return o;
}

bool report_write(const struct run *r)
{
    json_t *o = report_json(r);
    double secs = json_real_value(json_object_get(o, "seconds"));
    size_t flags =
        JSON_SORT_KEYS | JSON_INDENT(REPORT_INDENT) | JSON_REAL_PRECISION(seconds_precision(secs));
    const char *path = r->opt->report_file;
    FILE *out = path ? fopen(path, "w") : stdout;
    bool ok = out != NULL && json_dumpf(o, out, flags) == 0 && fputc('\n', out) != EOF;
    if (out != NULL && (path ? fclose(out) : fflush(out)) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "cpx-audit: cannot write the report to %s: %s\n",
                path ? path : "standard output", strerror(errno));
    json_decref(o);
    return ok;
}
