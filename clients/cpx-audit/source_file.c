/*
 * The export file as a source (docs/ledger.md section 10): NDJSON, one canonical object a line,
 *
 *   {"format":"cpx-ledger-export","origin":"...","size":N,"v":1}     the header, line 1
 *   {"checkpoint":"<signed note>","size":S}                           one per checkpoint <= N
 *   {"leaf_hash":"<b64>","record":"<record text>","seq":i}            records 0 .. N-1
 *
 * The file is streamed through a bounded line reader, so an export of millions of records costs
 * one line of memory. Every line is judged on its own: a malformed one is a finding
 * (export_format, naming the line) and the reading goes on, so the auditor still checks what
 * surrounds it. A file with fewer records than its header promises was cut short
 * (export_truncated). With a saved state, the records it has checked are counted, not parsed.
 */
#include "clients/cpx-audit/source.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/record.h"

#define EXPORT_FORMAT  "cpx-ledger-export"
#define EXPORT_VERSION 1
#define READ_CHUNK     (64 * 1024)
/* Longest line accepted: a record of CPX_RECORD_MAX bytes, every byte escaped, and its members. */
#define EXPORT_LINE_MAX (2 * CPX_RECORD_MAX + 4096)
#define JSON_FLAGS      (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)
#define LINE_HEAD_LEN   16 /* bytes kept of an over-long line, to tell what it was */

/* ---- bounded line reader ------------------------------------------------------------------- */

/* Reads lines of at most EXPORT_LINE_MAX bytes from a stream. */
struct line_reader {
    FILE *in;                 /* the file */
    char *buf;                /* read buffer (EXPORT_LINE_MAX + READ_CHUNK bytes at most) */
    size_t cap;               /* its size */
    size_t start;             /* first byte not yet returned */
    size_t scanned;           /* buf[start..scanned) holds no newline */
    size_t end;               /* bytes read into buf */
    bool eof;                 /* the stream is exhausted */
    uint64_t number;          /* lines returned so far */
    char head[LINE_HEAD_LEN]; /* the first bytes of the last over-long line */
};

/* What next_line found. */
enum line_status {
    LINE_OK,    /* a line (without its newline) */
    LINE_LONG,  /* a line longer than EXPORT_LINE_MAX: skipped */
    LINE_END,   /* no more lines */
    LINE_ERROR, /* the stream failed (errno) */
};

/* Reads more bytes after buf[end], moving the unread part to the front first. */
static enum line_status fill(struct line_reader *lr)
{
    if (lr->start > 0) {
        memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
        lr->scanned -= lr->start;
        lr->end -= lr->start;
        lr->start = 0;
    }
    if (lr->cap - lr->end < READ_CHUNK) {
        size_t cap = lr->cap ? lr->cap * 2 : READ_CHUNK;
        if (cap > EXPORT_LINE_MAX + READ_CHUNK)
            cap = EXPORT_LINE_MAX + READ_CHUNK;
        char *bigger = realloc(lr->buf, cap);
        if (bigger == NULL) {
            errno = ENOMEM;
            return LINE_ERROR;
        }
        lr->buf = bigger;
        lr->cap = cap;
    }
    size_t n = fread(lr->buf + lr->end, 1, lr->cap - lr->end, lr->in);
    lr->end += n;
    if (n == 0 && ferror(lr->in))
        return LINE_ERROR;
    if (n == 0)
        lr->eof = true;
    return LINE_OK;
}

/* Skips the rest of an over-long line (up to its newline or the end of the stream). */
static enum line_status skip_long(struct line_reader *lr)
{
    for (;;) {
        char *nl =
            lr->end > lr->start ? memchr(lr->buf + lr->start, '\n', lr->end - lr->start) : NULL;
        if (nl != NULL) {
            lr->start = lr->scanned = (size_t)(nl - lr->buf) + 1;
            return LINE_LONG;
        }
        lr->start = lr->scanned = lr->end;
        if (lr->eof)
            return LINE_LONG;
        if (fill(lr) == LINE_ERROR)
            return LINE_ERROR;
    }
}

/*
 * The next line: *line points into the reader's buffer (valid until the next call), *len is its
 * length without the newline, *complete tells whether it ended in one.
 */
static enum line_status next_line(struct line_reader *lr, char **line, size_t *len, bool *complete)
{
    for (;;) {
        char *nl = lr->end > lr->scanned
                       ? memchr(lr->buf + lr->scanned, '\n', lr->end - lr->scanned)
                       : NULL;
        if (nl != NULL || (lr->eof && lr->start < lr->end)) {
            size_t stop = nl ? (size_t)(nl - lr->buf) : lr->end;
            *line = lr->buf + lr->start;
            *len = stop - lr->start;
            *complete = nl != NULL;
            lr->start = lr->scanned = nl ? stop + 1 : stop;
            lr->number++;
            return LINE_OK;
        }
        if (lr->eof)
            return LINE_END;
        lr->scanned = lr->end;
        if (lr->end - lr->start > EXPORT_LINE_MAX) {
            lr->number++;
            memcpy(lr->head, lr->buf + lr->start, LINE_HEAD_LEN);
            return skip_long(lr);
        }
        if (fill(lr) == LINE_ERROR)
            return LINE_ERROR;
    }
}

/* ---- the export ---------------------------------------------------------------------------- */

/* Reading one export. */
struct export
{
    struct run *r;            /* the run being fed */
    struct line_reader lines; /* the file */
    bool have_header;         /* line 1 was a valid header */
    uint64_t size;            /* the header's size N */
    uint64_t records;         /* record lines seen */
    bool past_size;           /* a record beyond N was reported */
};

/* Reports a malformed line. */
static void line_fail(struct export *e, const char *what)
{
    run_fail(e->r, e->records, e->lines.number, "export_format", "line %" PRIu64 ": %s",
             e->lines.number, what);
}

/* Line 1: {"format","origin","size","v"}. */
static void on_header(struct export *e, const json_t *obj)
{
    struct run *r = e->r;
    size_t len;
    const char *format = member_string(obj, "format", &len);
    const char *origin = member_string(obj, "origin", &len);
    json_int_t v = json_integer_value(json_object_get(obj, "v"));
    if (format == NULL || strcmp(format, EXPORT_FORMAT) != 0 || v != EXPORT_VERSION ||
        origin == NULL || !member_uint(obj, "size", &e->size)) {
        line_fail(e, "not a cpx-ledger-export v1 header with origin and size");
        return;
    }
    e->have_header = true;
    if (strcmp(origin, r->exchange.name) != 0)
        run_fail(r, 0, 1, "checkpoint_origin", "the export is of log \"%.60s\", not \"%.60s\"",
                 origin, r->exchange.name);
    if (r->state_loaded && e->size < r->from_size) {
        run_stop(r,
                 "the export holds %" PRIu64 " records, fewer than the %" PRIu64
                 " the state has checked: audit it without --state",
                 e->size, r->from_size);
        r->stop_status = EXIT_USAGE;
        return;
    }
    run_set_target(r, e->size);
}

/* {"checkpoint":"<note>","size":S}: fed when it is new to the state. */
static bool on_checkpoint(struct export *e, const json_t *obj)
{
    size_t len;
    const char *note = member_string(obj, "checkpoint", &len);
    uint64_t size;
    if (note == NULL) {
        line_fail(e, "checkpoint is not a string");
        return true;
    }
    if (e->records > 0) {
        line_fail(e, "checkpoint after the records (checkpoints come first)");
        return true;
    }
    if (!run_note_size(e->r, note, len, &size) && !member_uint(obj, "size", &size))
        return run_checkpoint(e->r, note, len); /* unreadable: the auditor says how */
    if (e->have_header && size > e->size) {
        line_fail(e, "checkpoint beyond the size in the header");
        return true;
    }
    return !run_wants_checkpoint(e->r, size) || run_checkpoint(e->r, note, len);
}

/* {"leaf_hash":"<b64>","record":"<text>","seq":i}: the next record. */
static bool on_record(struct export *e, const json_t *obj)
{
    size_t len;
    const char *record = member_string(obj, "record", &len);
    uint8_t leaf[CPX_HASH_LEN];
    bool have_leaf;
    if (record == NULL) {
        line_fail(e, "record is not a string");
        return true;
    }
    if (!member_leaf(obj, leaf, &have_leaf))
        line_fail(e, "leaf_hash is not base64 of 32 bytes");
    return run_record(e->r, record, len, have_leaf ? leaf : NULL);
}

/* Is this line surely a record line, judged by its first member (canonical order)? */
static bool looks_like_record(const char *line, size_t len)
{
    static const char *const starts[] = { "{\"leaf_hash\":", "{\"record\":" };
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++)
        if (len >= strlen(starts[i]) && memcmp(line, starts[i], strlen(starts[i])) == 0)
            return true;
    return false;
}

/* Handles a record line: skipped when the state has checked it or beyond the header's size. */
static bool record_line(struct export *e, const json_t *obj)
{
    bool ok = true;
    if (e->records < e->r->from_size) {
        /* checked by an earlier run */
    } else if (e->have_header && e->records >= e->size) {
        if (!e->past_size)
            line_fail(e, "more records than the size in the header (the rest are ignored)");
        e->past_size = true;
    } else {
        ok = on_record(e, obj);
    }
    e->records++;
    return ok;
}

/* Parses and dispatches one line. Returns false when the run stopped. */
static bool on_line(struct export *e, const char *line, size_t len, bool complete)
{
    if (e->lines.number > 1 && e->records < e->r->from_size && looks_like_record(line, len)) {
        e->records++; /* checked by an earlier run */
        return true;
    }
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_FLAGS, &jerr);
    bool go_on = true;
    if (!json_is_object(obj)) {
        char what[CPX_AUDIT_MESSAGE_MAX];
        snprintf(what, sizeof what, "%s (%.80s)",
                 complete ? "not a JSON object" : "cut short: the file ends inside it",
                 obj == NULL ? jerr.text : "not an object");
        line_fail(e, what);
    } else if (json_object_get(obj, "format") != NULL) {
        if (e->lines.number == 1)
            on_header(e, obj);
        else
            line_fail(e, "a second header");
    } else if (e->lines.number == 1) {
        line_fail(e, "the first line is not the export header");
    } else if (json_object_get(obj, "checkpoint") != NULL) {
        go_on = on_checkpoint(e, obj);
    } else if (json_object_get(obj, "record") != NULL) {
        go_on = record_line(e, obj);
    } else {
        line_fail(e, "neither a checkpoint nor a record");
    }
    json_decref(obj);
    return go_on && !e->r->stopped;
}

/* At the end of the file: was every record the header promises there? */
static void check_complete(struct export *e)
{
    if (e->lines.number == 0) {
        run_fail(e->r, 0, 1, "export_format", "the file is empty (no export header)");
    } else if (e->have_header && e->records < e->size) {
        run_fail(e->r, e->records, e->lines.number, "export_truncated",
                 "export truncated: the header promises %" PRIu64
                 " records, the file holds %" PRIu64,
                 e->size, e->records);
    }
}

bool source_file(struct run *r)
{
    const char *path = r->opt->file;
    bool from_stdin = strcmp(path, "-") == 0;
    struct export e = { .r = r };
    snprintf(r->source, sizeof r->source, "%s", path);
    e.lines.in = from_stdin ? stdin : fopen(path, "rb");
    if (e.lines.in == NULL)
        return run_stop(r, "cannot read %s: %s", path, strerror(errno));
    bool ok = true;
    for (;;) {
        char *line;
        size_t len;
        bool complete;
        enum line_status st = next_line(&e.lines, &line, &len, &complete);
        if (st == LINE_END)
            break;
        if (st == LINE_ERROR) {
            ok = run_stop(r, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (st == LINE_LONG) {
            line_fail(&e, "longer than any export line may be");
            e.records += looks_like_record(e.lines.head, LINE_HEAD_LEN); /* it held a place */
        } else if (!on_line(&e, line, len, complete)) {
            ok = false;
            break;
        }
    }
    if (ok)
        check_complete(&e);
    if (!from_stdin)
        fclose(e.lines.in);
    free(e.lines.buf);
    return ok;
}
