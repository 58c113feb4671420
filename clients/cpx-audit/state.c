/*
 * The saved state of cpx-audit (--state FILE): what lets a run check only what is new.
 *
 * The file holds lines of canonical JSON: first the auditor's own state (cpx_audit_state_write:
 * records checked, the compact range of the tree, the last verified checkpoint, the key table),
 * then the books' (cpx_books_state_write: a header, then accounts, open orders, agreements,
 * unbilled usage reports and bills). It is written only after a run in which everything held,
 * atomically (FILE.tmp, fsync, rename, then the folder fsync'd), mode 0600, so a crash leaves
 * the old state or the new one, never half.
 *
 * A state of one line (written before the books existed) still loads: the run then re-derives
 * the money from its own records only, and says so (its books are partial, and stay partial in
 * the states it writes, until a run without --state starts again from record 0).
 */
#include "clients/cpx-audit/run.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_PATH_MAX 4096
#define STATE_BUFFER   (64 * 1024) /* bytes gathered before each write */

/* Reads the next line of f into *line (getline's buffer), without its newline. */
static bool next_line(FILE *f, char **line, size_t *cap, size_t *len)
{
    ssize_t n = getline(line, cap, f);
    if (n < 0)
        return false;
    *len = (size_t)n;
    if (*len > 0 && (*line)[*len - 1] == '\n')
        (*len)--;
    return true;
}

/* Loads the books' lines that follow the auditor's. Returns NULL or what is wrong. */
static const char *load_books(struct run *r, FILE *f, char **line, size_t *cap, bool *present)
{
    size_t len;
    *present = false;
    while (next_line(f, line, cap, &len)) {
        if (len == 0 && !*present)
            continue; /* blank lines after the auditor's state (an editor's) */
        *present = true;
        if (len > CPX_CANON_MAX_LEN)
            return "a books line of the state is too long";
        const char *why = cpx_books_state_load_line(r->books, *line, len);
        if (why != NULL)
            return why;
    }
    if (ferror(f))
        return strerror(errno);
    if (!*present)
        return NULL;
    const char *why = cpx_books_state_load_end(r->books);
    if (why == NULL && cpx_books_next_seq(r->books) != cpx_audit_records(r->audit))
        why = "the books part of the state stops at another record than the auditor's";
    return why;
}

int state_load(struct run *r)
{
    const char *path = r->opt->state_file;
    if (path == NULL || access(path, F_OK) != 0)
        return EXIT_HOLDS; /* no state yet: this run starts from record 0 */
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, len = 0;
    const char *why = NULL;
    int status = EXIT_USAGE;
    if (f == NULL) {
        why = strerror(errno);
    } else if (!next_line(f, &line, &cap, &len)) {
        why = ferror(f) ? strerror(errno) : "the state is empty";
    } else if (len > CPX_CANON_MAX_LEN) {
        why = "the state is too long";
    } else {
        why = cpx_audit_state_load(r->audit, line, len);
    }
    bool books = false;
    if (why == NULL)
        why = load_books(r, f, &line, &cap, &books);
    /* A state without books: the money of earlier runs is unknown (unless there was none). */
    if (why == NULL && !books && cpx_audit_records(r->audit) > 0) {
        if (!run_books_partial(r))
            why = "out of memory";
        else if (!r->opt->quiet)
            fprintf(stderr,
                    "cpx-audit: state %s has no books (written before cpx-audit re-derived "
                    "money): bills, commissions and balances are re-derived from this run's "
                    "records only, and balances are not judged; audit once without --state to "
                    "cover the whole ledger\n",
                    path);
    }
    if (why != NULL) {
        fprintf(stderr, "cpx-audit: state %s: %s\n", path, why);
    } else {
        uint8_t root[CPX_HASH_LEN];
        r->state_loaded = true;
        r->from_size = cpx_audit_records(r->audit);
        r->have_verified = cpx_audit_verified(r->audit, &r->verified_size, root);
        status = EXIT_HOLDS;
    }
    free(line);
    if (f != NULL)
        fclose(f);
    return status;
}

/* Writes len bytes to fd. Returns false with errno set. */
static bool write_all(int fd, const uint8_t *bytes, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, bytes, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        bytes += n;
        len -= (size_t)n;
    }
    return true;
}

/* fsyncs the folder holding path, so the rename itself is durable. */
static void sync_folder(const char *path)
{
    char copy[STATE_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Gathers the state's bytes and writes them to fd in large pieces. */
struct out {
    int fd;
    uint8_t buf[STATE_BUFFER];
    size_t len;
    bool ok;
};

static void out_flush(struct out *o)
{
    if (o->ok && o->len > 0)
        o->ok = write_all(o->fd, o->buf, o->len);
    o->len = 0;
}

static void out_add(struct out *o, const uint8_t *bytes, size_t len)
{
    if (len > sizeof o->buf - o->len) {
        out_flush(o);
        if (len > sizeof o->buf) {
            o->ok = o->ok && write_all(o->fd, bytes, len);
            return;
        }
    }
    memcpy(o->buf + o->len, bytes, len);
    o->len += len;
}

/* One line of the books' state (cpx_books_emit_fn). */
static bool out_line(void *ctx, const uint8_t *line, size_t len)
{
    struct out *o = ctx;
    out_add(o, line, len);
    out_add(o, (const uint8_t *)"\n", 1);
    return o->ok;
}

bool state_save(struct run *r)
{
    const char *path = r->opt->state_file;
    char tmp[STATE_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "cpx-audit: state %s: path too long\n", path);
        return false;
    }
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    const uint8_t *bytes = NULL;
    size_t len = 0;
    bool ok = false;
    struct out *o = NULL;
    enum cpx_canon_error err = cpx_audit_state_write(r->audit, &w);
    if (err == CPX_CANON_OK)
        err = cpx_canon_writer_finish(&w, &bytes, &len);
    if (err != CPX_CANON_OK) {
        fprintf(stderr, "cpx-audit: state %s: %s\n", path, cpx_canon_error_text(err));
        goto cleanup;
    }
    o = malloc(sizeof *o);
    if (o == NULL) {
        fprintf(stderr, "cpx-audit: state %s: out of memory\n", path);
        goto cleanup;
    }
    unlink(tmp); /* a leftover of a crashed run; O_EXCL below refuses anything in the way */
    o->fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    o->len = 0;
    o->ok = o->fd >= 0;
    if (o->ok) {
        out_line(o, bytes, len);
        ok = cpx_books_state_write(r->books, out_line, o);
        out_flush(o);
        ok = ok && o->ok && fsync(o->fd) == 0;
    }
    if (o->fd >= 0 && close(o->fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "cpx-audit: cannot write state %s: %s\n", path,
                errno ? strerror(errno) : "out of memory");
        if (o->fd >= 0)
            unlink(tmp);
        ok = false;
        goto cleanup;
    }
    sync_folder(path);
    r->state_saved = true;
cleanup:
    free(o);
    cpx_canon_writer_free(&w);
    return ok;
}
