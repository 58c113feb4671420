/*
 * Small helpers the server files share: clocks, RFC 3339 time, reading a file.
 */
#ifndef CPX_SERVER_UTIL_H
#define CPX_SERVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RFC3339_MAX 32 /* "2026-11-29T08:00:00.123456Z" and its NUL, with room to spare */

/* Wall-clock time in microseconds since the epoch. */
int64_t now_us(void);

/* A monotonic clock in nanoseconds, for durations. */
uint64_t mono_ns(void);

/*
 * Writes t (unix microseconds) as an RFC 3339 UTC time: whole seconds as "...:SSZ", otherwise
 * with six fractional digits. Returns out.
 */
char *format_rfc3339(int64_t t_us, char out[RFC3339_MAX]);

/*
 * Parses an RFC 3339 time with a "Z" or numeric offset and up to 6 fractional digits into unix
 * microseconds. Returns false on anything else (including out-of-range fields).
 */
bool parse_rfc3339(const char *s, int64_t *t_us);

/*
 * Reads a whole file of at most max bytes into a NUL-terminated malloc'd buffer (caller frees).
 * Returns NULL and sets errno on failure; EFBIG when the file is larger than max.
 */
char *read_file(const char *path, size_t max, size_t *len);

/*
 * b[0..n) as UTF-8 text without NUL: unchanged when it is valid UTF-8 without NUL bytes, otherwise
 * with U+FFFD in place of each NUL and each byte that does not start a valid sequence. Returns a
 * malloc'd NUL-terminated copy (*len bytes, without the NUL), or NULL when out of memory.
 */
char *utf8_repaired(const uint8_t *b, size_t n, size_t *len);

/* A growable byte string. Zero-initialise; a failed allocation makes it `failed` and sticky. */
struct strbuf {
    char *data;  /* NUL-terminated while not failed (NULL before the first append) */
    size_t len;  /* bytes, without the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed; data is unusable */
};

/* Appends len bytes of s. */
void strbuf_add(struct strbuf *b, const void *s, size_t len);

/* Appends a printf-formatted string. */
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Empties b, keeping its allocation. */
void strbuf_reset(struct strbuf *b);

/* Frees b's allocation and empties it. */
void strbuf_free(struct strbuf *b);

#endif
