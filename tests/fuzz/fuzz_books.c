/*
 * Fuzz target: the books checker (ledger/books.h) driven through whole sequences, so that its
 * stateful paths -- orders, agreements, usage, bills, settlements, balances, the comparison with
 * the exchange's books, the saved state -- meet arbitrary input. The input is a list of chunks,
 * each [type:1][length:2, big-endian][data]:
 *
 *   'p'  partial books (only as the first chunk)
 *   'l'  a line of a saved books state (only before the first record)
 *   'r'  a record (decoded; fed when it decodes)
 *   'b'  a bill of the exchange's books: id, agreement, status, amount, commission, seq, each
 *        ended by '\n' (a missing seq: none)
 *   'a'  an account of the exchange's books: owner, kind, balance, each ended by '\n'
 *   'c'  [flags:1] a comparison: begins at the first, ends at the next (bit 0 moving, bit 1
 *        bills served, bit 2 balances served, bit 3 moved)
 *
 * Properties besides memory safety: no call aborts, the failures come back sorted and counted,
 * and the state written at the end loads into fresh books and writes back to the same bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/books.h"
#include "tests/support/fuzz_stateful.h"

#define FIELDS_MAX 6
#define FIELD_MAX  64

/* Collected state lines. */
struct text {
    uint8_t *buf;
    size_t len, cap;
    bool ok;
};

static bool collect(void *ctx, const uint8_t *line, size_t len)
{
    struct text *t = ctx;
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->len + len + 1) * 2;
        uint8_t *bigger = realloc(t->buf, cap);
        if (bigger == NULL)
            return t->ok = false;
        t->buf = bigger;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, len);
    t->len += len;
    t->buf[t->len++] = '\n';
    return true;
}

/* Loads newline-ended lines into b; NULL when they load. */
static const char *load(struct cpx_books *b, const struct text *t)
{
    for (size_t at = 0; at < t->len;) {
        const uint8_t *nl = memchr(t->buf + at, '\n', t->len - at);
        size_t len = (size_t)(nl - (t->buf + at));
        const char *why = cpx_books_state_load_line(b, t->buf + at, len);
        if (why != NULL)
            return why;
        at += len + 1;
    }
    return cpx_books_state_load_end(b);
}

/* Splits chunk into '\n'-ended fields (NUL-terminated copies). Returns how many. */
static int fields(const uint8_t *chunk, size_t len, char out[FIELDS_MAX][FIELD_MAX])
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i < len && n < FIELDS_MAX; i++) {
        if (chunk[i] != '\n')
            continue;
        size_t flen = i - start < FIELD_MAX - 1 ? i - start : FIELD_MAX - 1;
        memcpy(out[n], chunk + start, flen);
        out[n][flen] = '\0';
        n++;
        start = i + 1;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cpx_books_config cfg = { .max_failures = 64 };
    if (size >= 3 && data[0] == 'p')
        cfg.partial = true;
    struct cpx_books *b = cpx_books_new(&cfg);
    if (b == NULL)
        return 0;
    struct cpx_record rec;
    cpx_record_init(&rec);
    bool fed = false, comparing = false, loading = false, loaded = true;
    uint64_t records = 0;
    struct fuzz_chunk ch;
    for (size_t at = 0; fuzz_chunk_next(data, size, &at, &ch);) {
        uint8_t type = ch.type;
        const uint8_t *chunk = ch.data;
        size_t len = ch.len;
        if (loading && type != 'l') {
            loaded = cpx_books_state_load_end(b) == NULL;
            loading = false;
        }
        if (!loaded)
            break; /* a state that did not load: the books are not to be used */
        char f[FIELDS_MAX][FIELD_MAX];
        switch (type) {
        case 'l':
            if (fed)
                break;
            loading = true;
            loaded = cpx_books_state_load_line(b, chunk, len) == NULL;
            break;
        case 'r':
            fed = true;
            if (cpx_record_decode(&rec, chunk, len) == CPX_RECORD_OK) {
                if (cpx_books_record(b, &rec) != CPX_BOOKS_OK)
                    abort(); /* out of memory is not expected here */
                records++;
            }
            break;
        case 'b':
            if (fields(chunk, len, f) >= 5) {
                struct cpx_books_claimed_bill c = { .id = f[0],
                                                    .agreement = f[1],
                                                    .status = f[2],
                                                    .amount = strtoll(f[3], NULL, 10),
                                                    .commission = strtoll(f[4], NULL, 10) };
                if (fields(chunk, len, f) >= 6) {
                    c.has_seq = true;
                    c.ledger_seq = strtoull(f[5], NULL, 10);
                }
                cpx_books_compare_bill(b, &c);
            }
            break;
        case 'a':
            if (fields(chunk, len, f) >= 3) {
                int k = cpx_books_kind_from_name(f[1]);
                if (k >= 0)
                    cpx_books_compare_balance(b, f[0], (enum cpx_books_kind)k,
                                              strtoll(f[2], NULL, 10));
            }
            break;
        case 'c':
            if (len < 1)
                break;
            if (!comparing)
                cpx_books_compare_begin(b, records, chunk[0] & 1);
            else
                cpx_books_compare_end(b, chunk[0] & 2, chunk[0] & 4, chunk[0] & 8);
            comparing = !comparing;
            break;
        default: break;
        }
    }
    if (loading)
        loaded = cpx_books_state_load_end(b) == NULL;
    cpx_record_free(&rec);
    if (!loaded) {
        cpx_books_free(b);
        return 0;
    }
    if (comparing)
        cpx_books_compare_end(b, true, true, false);
    cpx_books_finish(b);
    size_t n;
    const struct cpx_books_failure *fl = cpx_books_failures(b, &n);
    fuzz_check_findings(fl, n, sizeof *fl, offsetof(struct cpx_books_failure, seq),
                        cpx_books_failure_total(b));

    /* The saved state loads into fresh books and writes back to the same bytes. */
    struct text t1 = { .ok = true }, t2 = { .ok = true };
    if (cpx_books_state_write(b, collect, &t1) && t1.ok) {
        struct cpx_books_config plain = { 0 };
        struct cpx_books *c = cpx_books_new(&plain);
        if (c != NULL) {
            const char *why = load(c, &t1);
            if (why != NULL) {
                fprintf(stderr, "state does not load back: %s\n", why);
                abort();
            }
            if (cpx_books_next_seq(c) != cpx_books_next_seq(b) ||
                cpx_books_partial(c) != cpx_books_partial(b))
                abort();
            if (cpx_books_state_write(c, collect, &t2) && t2.ok &&
                (t2.len != t1.len || memcmp(t1.buf, t2.buf, t1.len) != 0))
                abort();
            cpx_books_free(c);
        }
    }
    free(t1.buf);
    free(t2.buf);
    cpx_books_free(b);
    return 0;
}
