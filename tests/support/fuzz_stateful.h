/*
 * What the stateful fuzz targets (fuzz_ledger_audit.c, fuzz_books.c) share: their input, a list
 * of chunks, each [type:1][length:2, big-endian][data] (the last one's length cut to what is
 * left), and a property of their findings. Header only, so that a target links nothing more.
 */
#ifndef CPX_TESTS_FUZZ_STATEFUL_H
#define CPX_TESTS_FUZZ_STATEFUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct fuzz_chunk {
    uint8_t type;
    const uint8_t *data;
    size_t len;
};

/* Reads the chunk at *at of data[0, size) into c and moves *at past it; false when none is left. */
static inline bool fuzz_chunk_next(const uint8_t *data, size_t size, size_t *at,
                                   struct fuzz_chunk *c)
{
    if (*at + 3 > size)
        return false;
    c->type = data[*at];
    size_t len = (size_t)data[*at + 1] << 8 | data[*at + 2];
    *at += 3;
    c->len = len > size - *at ? size - *at : len;
    c->data = data + *at;
    *at += c->len;
    return true;
}

/*
 * Aborts unless the n findings at f (each `size` bytes, with its uint64_t seq at offset seq_at)
 * come sorted by seq, and the total counted is at least n.
 */
static inline void fuzz_check_findings(const void *f, size_t n, size_t size, size_t seq_at,
                                       uint64_t total)
{
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t seq;
        memcpy(&seq, (const char *)f + i * size + seq_at, sizeof seq);
        if (seq < last)
            abort(); /* sorted by seq */
        last = seq;
    }
    if (total < n)
        abort();
}

#endif
