/*
 * Clocks, RFC 3339 times and file reading: see util.h.
 */
#include "server/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/canon.h"
#include "ledger/codec.h"

int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

char *format_rfc3339(int64_t t_us, char out[RFC3339_MAX])
{
    int64_t secs = t_us / 1000000, frac = t_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    time_t tt = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL) {
        snprintf(out, RFC3339_MAX, "1970-01-01T00:00:00Z");
        return out;
    }
    size_t n = strftime(out, RFC3339_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    if (frac != 0)
        snprintf(out + n, RFC3339_MAX - n, ".%06dZ", (int)frac);
    else
        snprintf(out + n, RFC3339_MAX - n, "Z");
    return out;
}

bool parse_rfc3339(const char *s, int64_t *t_us)
{
    return cpx_rfc3339_parse(s, t_us);
}

char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(max + 2);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int failed = buf == NULL || ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = failed && buf ? EIO : ENOMEM;
        return NULL;
    }
    if (n > max) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

/* Makes room for `more` bytes and a NUL; false (and b failed) when that cannot be had. */
static bool strbuf_reserve(struct strbuf *b, size_t more)
{
    if (b->failed)
        return false;
    if (more > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + more + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void strbuf_add(struct strbuf *b, const void *s, size_t len)
{
    if (!strbuf_reserve(b, len))
        return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void strbuf_addf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !strbuf_reserve(b, (size_t)n)) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void strbuf_reset(struct strbuf *b)
{
    b->len = 0;
    b->failed = false;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void strbuf_free(struct strbuf *b)
{
    free(b->data);
    *b = (struct strbuf){ 0 };
}

char *utf8_repaired(const uint8_t *b, size_t n, size_t *len)
{
    static const char replacement[] = "\xef\xbf\xbd";
    struct strbuf out = { 0 };
    strbuf_add(&out, "", 0);
    if (cpx_utf8_valid(b, n) && memchr(b, 0, n) == NULL) {
        strbuf_add(&out, b, n);
    } else {
        for (size_t i = 0; i < n;) {
            size_t k = b[i] < 0x80 ? 1 : b[i] >= 0xf0 ? 4 : b[i] >= 0xe0 ? 3 : 2;
            if (b[i] != 0 && k <= n - i && cpx_utf8_valid(b + i, k)) {
                strbuf_add(&out, b + i, k);
                i += k;
            } else {
                strbuf_add(&out, replacement, sizeof replacement - 1);
                i++;
            }
        }
    }
    if (out.failed) {
        strbuf_free(&out);
        return NULL;
    }
    *len = out.len;
    return out.data;
}
