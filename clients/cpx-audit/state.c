/*
 * The saved state of cpx-audit (--state FILE): what lets a run check only what is new.
 *
 * The file holds the auditor's own state (cpx_audit_state_write: records checked, the compact
 * range of the tree, the last verified checkpoint, the key table) as canonical JSON. It is
 * written only after a run in which everything held, atomically (FILE.tmp, fsync, rename, then
 * the folder fsync'd), mode 0600, so a crash leaves the old state or the new one, never half.
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

/*
 * Reads a whole file of at most max bytes into a malloc'd buffer. Returns it (and *len), or NULL
 * with errno set (EFBIG when larger than max).
 */
static char *read_file(const char *path, size_t max, size_t *len)
{
    char *buf = NULL;
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        goto fail;
    if ((uint64_t)st.st_size > max) {
        errno = EFBIG;
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        goto fail;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
fail:;
    int saved = errno;
    free(buf);
    if (fd >= 0)
        close(fd);
    errno = saved;
    return NULL;
}

int state_load(struct run *r)
{
    const char *path = r->opt->state_file;
    if (path == NULL || access(path, F_OK) != 0)
        return EXIT_HOLDS; /* no state yet: this run starts from record 0 */
    size_t len = 0;
    char *json = read_file(path, CPX_CANON_MAX_LEN, &len);
    if (json == NULL) {
        fprintf(stderr, "cpx-audit: state %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    /* A trailing newline is tolerated (an editor may add one); the state itself is canonical. */
    if (len > 0 && json[len - 1] == '\n')
        len--;
    const char *why = cpx_audit_state_load(r->audit, json, len);
    free(json);
    if (why != NULL) {
        fprintf(stderr, "cpx-audit: state %s: %s\n", path, why);
        return EXIT_USAGE;
    }
    uint8_t root[CPX_HASH_LEN];
    r->state_loaded = true;
    r->from_size = cpx_audit_records(r->audit);
    r->have_verified = cpx_audit_verified(r->audit, &r->verified_size, root);
    return EXIT_HOLDS;
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
    int fd = -1;
    enum cpx_canon_error err = cpx_audit_state_write(r->audit, &w);
    if (err == CPX_CANON_OK)
        err = cpx_canon_writer_finish(&w, &bytes, &len);
    if (err != CPX_CANON_OK) {
        fprintf(stderr, "cpx-audit: state %s: %s\n", path, cpx_canon_error_text(err));
        goto cleanup;
    }
    unlink(tmp); /* a leftover of a crashed run; O_EXCL below refuses anything in the way */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ok = fd >= 0 && write_all(fd, bytes, len) && write_all(fd, (const uint8_t *)"\n", 1) &&
         fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "cpx-audit: cannot write state %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            unlink(tmp);
        ok = false;
        goto cleanup;
    }
    sync_folder(path);
    r->state_saved = true;
cleanup:
    cpx_canon_writer_free(&w);
    return ok;
}
