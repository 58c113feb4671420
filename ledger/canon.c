/*
 * Canonical JSON writer and strict parser: see canon.h for the accepted subset.
 *
 * Both halves share three small pieces, so that what the writer emits and what the parser
 * accepts cannot drift apart:
 *
 *   utf8_decode()   one code point of strict UTF-8 (the only place that knows the byte ranges);
 *   escape rules    the writer's escape_string() and the parser's scan_string() follow the same
 *                   table: short escapes for " \ \b \t \n \f \r, \u00xx for other controls;
 *   key_compare()   compares two keys *as written* (escaped text) in UTF-16 code unit order;
 *                   the writer keeps its previous key in escaped form in its own buffer, so it
 *                   compares exactly what the parser will compare.
 *
 * The parser is recursive descent over (pointer, length) with an explicit depth bound; it keeps
 * indices (not pointers) into the node array while parsing, because the array may move when it
 * grows. A NULL doc turns node building off: that is cpx_canon_validate.
 */
#include "ledger/canon.h"

#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

const char *cpx_canon_error_text(enum cpx_canon_error err)
{
    switch (err) {
    case CPX_CANON_OK: return "ok";
    case CPX_CANON_E_SYNTAX: return "not a single JSON value without whitespace";
    case CPX_CANON_E_NUMBER:
        return "numbers must be integers in shortest form (no fraction, "
               "exponent, leading zero or -0)";
    case CPX_CANON_E_RANGE: return "integer outside +-(2^53-1)";
    case CPX_CANON_E_UTF8: return "string is not valid UTF-8";
    case CPX_CANON_E_ESCAPE:
        return "string escape is not the canonical one (or a raw control character)";
    case CPX_CANON_E_KEY_ORDER: return "object keys are not sorted";
    case CPX_CANON_E_DUP_KEY: return "object has a duplicate key";
    case CPX_CANON_E_DEPTH: return "nesting is too deep";
    case CPX_CANON_E_LIMIT: return "document is too large";
    case CPX_CANON_E_STATE: return "canonical writer used out of order";
    case CPX_CANON_E_NOMEM: return "out of memory";
    }
    return "invalid canonical JSON";
}

/* ---- shared pieces ------------------------------------------------------------------------- */

/*
 * Decodes one code point of strict UTF-8 at s[0..n). Returns its length (1..4) and stores the code
 * point in *cp, or returns 0 when the bytes are not valid UTF-8 (RFC 3629 table 3-7 of Unicode).
 */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    size_t len;
    uint32_t v;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, v = c & 0x0f;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong 3-byte forms */
        else if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, v = c & 0x07;
        if (c == 0xf0)
            lo = 0x90; /* no overlong 4-byte forms */
        else if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    v = (v << 6) | (s[1] & 0x3f);
    for (size_t i = 2; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    *cp = v;
    return len;
}

bool cpx_utf8_valid(const void *s, size_t len)
{
    const uint8_t *p = s;
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_decode(p + i, len - i, &cp);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* The short escape letter for c, or 0 when c has none. */
static char short_escape(uint8_t c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case 0x08: return 'b';
    case 0x09: return 't';
    case 0x0a: return 'n';
    case 0x0c: return 'f';
    case 0x0d: return 'r';
    }
    return 0;
}

static int hex_digit_lower(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Reads the next code point of a string's *escaped, already validated* text at s[*i..n) and
 * advances *i. Used only on text that passed scan_string or escape_string, so it cannot fail.
 */
static uint32_t next_escaped_cp(const uint8_t *s, size_t n, size_t *i)
{
    uint32_t cp;
    if (s[*i] != '\\') {
        *i += utf8_decode(s + *i, n - *i, &cp);
        return cp;
    }
    uint8_t e = s[*i + 1];
    *i += 2;
    switch (e) {
    case 'b': return 0x08;
    case 't': return 0x09;
    case 'n': return 0x0a;
    case 'f': return 0x0c;
    case 'r': return 0x0d;
    case 'u':
        cp = (uint32_t)(hex_digit_lower(s[*i + 2]) << 4 | hex_digit_lower(s[*i + 3]));
        *i += 4;
        return cp;
    }
    return e; /* '"' or '\\' */
}

/*
 * The position of a code point in UTF-16 code unit order: U+0000..U+D7FF sort first, then the
 * supplementary planes (whose leading surrogates are D800..DBFF), then U+E000..U+FFFF.
 */
static uint32_t utf16_rank(uint32_t cp)
{
    if (cp < 0xd800)
        return cp;
    if (cp >= 0x10000)
        return 0xd800 + (cp - 0x10000);
    return cp + 0x100000;
}

/* Compares two keys given as escaped text (without quotes). Returns <0, 0 or >0. */
static int key_compare(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t i = 0, j = 0;
    while (i < alen && j < blen) {
        if (a[i] == b[j] && a[i] < 0x80 && a[i] != '\\') {
            i++, j++; /* fast path: identical plain ASCII */
            continue;
        }
        uint32_t ca = utf16_rank(next_escaped_cp(a, alen, &i));
        uint32_t cb = utf16_rank(next_escaped_cp(b, blen, &j));
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return (i < alen) - (j < blen);
}

static enum cpx_canon_error run_parse(struct cpx_canon_doc *doc, const void *text, size_t len,
                                      int depth, size_t *err_off);

/* ---- writer -------------------------------------------------------------------------------- */

void cpx_canon_writer_init(struct cpx_canon_writer *w)
{
    memset(w, 0, sizeof *w);
}

void cpx_canon_writer_reset(struct cpx_canon_writer *w)
{
    w->len = 0;
    w->depth = 0;
    w->complete = false;
    w->err = CPX_CANON_OK;
}

void cpx_canon_writer_free(struct cpx_canon_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

static enum cpx_canon_error fail(struct cpx_canon_writer *w, enum cpx_canon_error err)
{
    if (w->err == CPX_CANON_OK)
        w->err = err;
    return w->err;
}

/* Makes room for n more bytes. Returns false (and records the error) when it cannot. */
static bool reserve(struct cpx_canon_writer *w, size_t n)
{
    if (w->cap - w->len >= n)
        return true;
    if (n > CPX_CANON_MAX_LEN || w->len > CPX_CANON_MAX_LEN - n) {
        fail(w, CPX_CANON_E_LIMIT);
        return false;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < n)
        cap *= 2;
    uint8_t *bigger = realloc(w->buf, cap);
    if (bigger == NULL) {
        fail(w, CPX_CANON_E_NOMEM);
        return false;
    }
    w->buf = bigger;
    w->cap = cap;
    return true;
}

static void put(struct cpx_canon_writer *w, const void *p, size_t n)
{
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

/*
 * Checks that a value may come now and writes the separator before it. Returns false (error
 * recorded) when it may not: after a finished document, or where an object expects a key.
 */
static bool begin_value(struct cpx_canon_writer *w)
{
    if (w->err != CPX_CANON_OK)
        return false;
    if (w->depth == 0) {
        if (w->complete) {
            fail(w, CPX_CANON_E_STATE);
            return false;
        }
        return true;
    }
    struct cpx_canon_frame *f = &w->stack[w->depth - 1];
    if (f->is_object) {
        if (!f->want_value) {
            fail(w, CPX_CANON_E_STATE);
            return false;
        }
        f->want_value = false;
        return true;
    }
    if (!f->empty) {
        if (!reserve(w, 1))
            return false;
        put(w, ",", 1);
    }
    f->empty = false;
    return true;
}

/* Notes that a value finished; a top-level one completes the document. */
static void end_value(struct cpx_canon_writer *w)
{
    if (w->depth == 0)
        w->complete = true;
}

/*
 * Writes s[0..len) as a quoted, escaped string. Returns false (error recorded) on invalid UTF-8.
 * *text_off receives the offset of the first byte after the opening quote.
 */
static bool escape_string(struct cpx_canon_writer *w, const char *s, size_t len, size_t *text_off)
{
    const uint8_t *p = (const uint8_t *)s;
    /* Worst case: every byte a 6-byte \u00xx escape, plus the quotes. */
    if (len > CPX_CANON_MAX_LEN / 6 || !reserve(w, len * 6 + 2)) {
        fail(w, CPX_CANON_E_LIMIT);
        return false;
    }
    size_t start = w->len;
    w->buf[w->len++] = '"';
    *text_off = w->len;
    for (size_t i = 0; i < len;) {
        uint8_t c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            w->buf[w->len++] = c;
            i++;
            continue;
        }
        if (c < 0x80) {
            char e = short_escape(c);
            w->buf[w->len++] = '\\';
            if (e != 0) {
                w->buf[w->len++] = (uint8_t)e;
            } else {
                static const char hex[] = "0123456789abcdef";
                put(w, "u00", 3);
                w->buf[w->len++] = (uint8_t)hex[c >> 4];
                w->buf[w->len++] = (uint8_t)hex[c & 15];
            }
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_decode(p + i, len - i, &cp);
        if (k == 0) {
            w->len = start;
            fail(w, CPX_CANON_E_UTF8);
            return false;
        }
        put(w, p + i, k);
        i += k;
    }
    w->buf[w->len++] = '"';
    return true;
}

enum cpx_canon_error cpx_canon_begin_object(struct cpx_canon_writer *w)
{
    if (w->depth == CPX_CANON_MAX_DEPTH)
        return fail(w, CPX_CANON_E_DEPTH);
    if (!begin_value(w) || !reserve(w, 1))
        return w->err;
    put(w, "{", 1);
    w->stack[w->depth++] = (struct cpx_canon_frame){ .is_object = true, .empty = true };
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_begin_array(struct cpx_canon_writer *w)
{
    if (w->depth == CPX_CANON_MAX_DEPTH)
        return fail(w, CPX_CANON_E_DEPTH);
    if (!begin_value(w) || !reserve(w, 1))
        return w->err;
    put(w, "[", 1);
    w->stack[w->depth++] = (struct cpx_canon_frame){ .is_object = false, .empty = true };
    return CPX_CANON_OK;
}

/* Closes the innermost container if it is of the given kind and not waiting for a value. */
static enum cpx_canon_error end_container(struct cpx_canon_writer *w, bool is_object)
{
    if (w->err != CPX_CANON_OK)
        return w->err;
    if (w->depth == 0 || w->stack[w->depth - 1].is_object != is_object ||
        w->stack[w->depth - 1].want_value)
        return fail(w, CPX_CANON_E_STATE);
    if (!reserve(w, 1))
        return w->err;
    put(w, is_object ? "}" : "]", 1);
    w->depth--;
    end_value(w);
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_end_object(struct cpx_canon_writer *w)
{
    return end_container(w, true);
}

enum cpx_canon_error cpx_canon_end_array(struct cpx_canon_writer *w)
{
    return end_container(w, false);
}

enum cpx_canon_error cpx_canon_key(struct cpx_canon_writer *w, const char *key, size_t len)
{
    if (w->err != CPX_CANON_OK)
        return w->err;
    if (w->depth == 0 || !w->stack[w->depth - 1].is_object || w->stack[w->depth - 1].want_value)
        return fail(w, CPX_CANON_E_STATE);
    struct cpx_canon_frame *f = &w->stack[w->depth - 1];
    size_t mark = w->len;
    if (!f->empty) {
        if (!reserve(w, 1))
            return w->err;
        put(w, ",", 1);
    }
    size_t off;
    if (!escape_string(w, key, len, &off)) {
        w->len = mark;
        return w->err;
    }
    size_t klen = w->len - 1 - off;
    if (!f->empty) {
        int c = key_compare(w->buf + f->key_off, f->key_len, w->buf + off, klen);
        if (c >= 0) {
            w->len = mark;
            return fail(w, c == 0 ? CPX_CANON_E_DUP_KEY : CPX_CANON_E_KEY_ORDER);
        }
    }
    if (!reserve(w, 1))
        return w->err;
    put(w, ":", 1);
    f->key_off = off;
    f->key_len = klen;
    f->empty = false;
    f->want_value = true;
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_string(struct cpx_canon_writer *w, const char *s, size_t len)
{
    size_t mark = w->len, off;
    if (!begin_value(w))
        return w->err;
    if (!escape_string(w, s, len, &off)) {
        w->len = mark;
        return w->err;
    }
    end_value(w);
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_int(struct cpx_canon_writer *w, int64_t v)
{
    if (w->err != CPX_CANON_OK)
        return w->err;
    if (v > CPX_CANON_INT_MAX || v < -CPX_CANON_INT_MAX)
        return fail(w, CPX_CANON_E_RANGE);
    if (!begin_value(w) || !reserve(w, 20))
        return w->err;
    char digits[20];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)(-v) : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        w->buf[w->len++] = '-';
    while (n > 0)
        w->buf[w->len++] = (uint8_t)digits[--n];
    end_value(w);
    return CPX_CANON_OK;
}

/* Writes a literal token. */
static enum cpx_canon_error literal(struct cpx_canon_writer *w, const char *lit)
{
    size_t n = strlen(lit);
    if (!begin_value(w) || !reserve(w, n))
        return w->err;
    put(w, lit, n);
    end_value(w);
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_bool(struct cpx_canon_writer *w, bool v)
{
    return literal(w, v ? "true" : "false");
}

enum cpx_canon_error cpx_canon_null(struct cpx_canon_writer *w)
{
    return literal(w, "null");
}

enum cpx_canon_error cpx_canon_raw(struct cpx_canon_writer *w, const void *json, size_t len)
{
    if (w->err != CPX_CANON_OK)
        return w->err;
    /* Validated at the writer's depth, so the whole document stays within the depth bound. */
    enum cpx_canon_error err = run_parse(NULL, json, len, w->depth, NULL);
    if (err != CPX_CANON_OK)
        return fail(w, err);
    if (!begin_value(w) || !reserve(w, len))
        return w->err;
    put(w, json, len);
    end_value(w);
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_base64(struct cpx_canon_writer *w, const void *data, size_t len)
{
    if (w->err != CPX_CANON_OK)
        return w->err;
    if (len > CPX_CANON_MAX_LEN / 2)
        return fail(w, CPX_CANON_E_LIMIT);
    if (!begin_value(w) || !reserve(w, CPX_B64_LEN(len) + 3))
        return w->err;
    w->buf[w->len++] = '"';
    /* cpx_b64_encode writes a NUL after the text; the reserve above left room for it. */
    w->len += cpx_b64_encode(data, len, (char *)w->buf + w->len);
    w->buf[w->len++] = '"';
    end_value(w);
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_kv_string(struct cpx_canon_writer *w, const char *key, const char *s)
{
    cpx_canon_key(w, key, strlen(key));
    return cpx_canon_string(w, s, strlen(s));
}

enum cpx_canon_error cpx_canon_kv_int(struct cpx_canon_writer *w, const char *key, int64_t v)
{
    cpx_canon_key(w, key, strlen(key));
    return cpx_canon_int(w, v);
}

enum cpx_canon_error cpx_canon_writer_finish(struct cpx_canon_writer *w, const uint8_t **out,
                                             size_t *len)
{
    if (w->err == CPX_CANON_OK && (w->depth != 0 || !w->complete))
        fail(w, CPX_CANON_E_STATE);
    if (w->err != CPX_CANON_OK)
        return w->err;
    *out = w->buf;
    *len = w->len;
    return CPX_CANON_OK;
}

/* ---- parser -------------------------------------------------------------------------------- */

/* The state of one parse. */
struct parser {
    const uint8_t *s;          /* input */
    size_t n;                  /* its length */
    size_t pos;                /* next byte to read */
    struct cpx_canon_doc *doc; /* where nodes go; NULL when only validating */
    uint32_t nodes;            /* nodes produced so far (counted even when validating) */
    enum cpx_canon_error err;  /* the error, once one is found */
};

static bool perr(struct parser *p, enum cpx_canon_error err)
{
    if (p->err == CPX_CANON_OK)
        p->err = err;
    return false;
}

/* Adds a node for a value starting at off. Returns its index, or UINT32_MAX on failure. */
static uint32_t new_node(struct parser *p, enum cpx_canon_type type, size_t off)
{
    if (p->nodes >= CPX_CANON_MAX_NODES) {
        perr(p, CPX_CANON_E_LIMIT);
        return UINT32_MAX;
    }
    uint32_t i = p->nodes++;
    struct cpx_canon_doc *d = p->doc;
    if (d == NULL)
        return i;
    if (i == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 64;
        struct cpx_canon_node *bigger = realloc(d->nodes, (size_t)cap * sizeof *bigger);
        if (bigger == NULL) {
            perr(p, CPX_CANON_E_NOMEM);
            return UINT32_MAX;
        }
        d->nodes = bigger;
        d->cap = cap;
    }
    d->nodes[i] = (struct cpx_canon_node){ .type = (uint8_t)type, .off = (uint32_t)off };
    d->n = i + 1;
    return i;
}

/* Finishes node i: its text ends at the current position. */
static void close_node(struct parser *p, uint32_t i)
{
    if (p->doc != NULL)
        p->doc->nodes[i].len = (uint32_t)(p->pos - p->doc->nodes[i].off);
}

/*
 * Scans a string starting at the opening quote. On success the position is after the closing
 * quote; *text and *text_len name the escaped text between the quotes and *plain says whether it
 * has no escapes.
 */
static bool scan_string(struct parser *p, size_t *text, size_t *text_len, bool *plain)
{
    const uint8_t *s = p->s;
    size_t i = p->pos + 1, n = p->n;
    *plain = true;
    *text = i;
    for (;;) {
        if (i >= n) {
            p->pos = i;
            return perr(p, CPX_CANON_E_SYNTAX);
        }
        uint8_t c = s[i];
        if (c == '"')
            break;
        if (c < 0x20) {
            p->pos = i;
            return perr(p, CPX_CANON_E_ESCAPE);
        }
        if (c == '\\') {
            *plain = false;
            if (i + 1 >= n) {
                p->pos = i;
                return perr(p, CPX_CANON_E_SYNTAX);
            }
            uint8_t e = s[i + 1];
            if (e == 'u') {
                /* Only \u00xx, lower-case, for a control character without a short escape. */
                if (n - i < 6) {
                    p->pos = i;
                    return perr(p, CPX_CANON_E_SYNTAX);
                }
                int h2 = hex_digit_lower(s[i + 4]), h3 = hex_digit_lower(s[i + 5]);
                if (s[i + 2] != '0' || s[i + 3] != '0' || h2 < 0 || h3 < 0 || h2 > 1 ||
                    short_escape((uint8_t)(h2 << 4 | h3)) != 0) {
                    p->pos = i;
                    return perr(p, CPX_CANON_E_ESCAPE);
                }
                i += 6;
            } else if (e == '"' || e == '\\' || e == 'b' || e == 't' || e == 'n' || e == 'f' ||
                       e == 'r') {
                i += 2;
            } else {
                p->pos = i;
                return perr(p, CPX_CANON_E_ESCAPE);
            }
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_decode(s + i, n - i, &cp);
        if (k == 0) {
            p->pos = i;
            return perr(p, CPX_CANON_E_UTF8);
        }
        i += k;
    }
    *text_len = i - *text;
    p->pos = i + 1;
    return true;
}

static bool parse_value(struct parser *p, int depth);

/* Parses an integer at the current position. */
static bool parse_int(struct parser *p)
{
    const uint8_t *s = p->s;
    size_t i = p->pos, n = p->n, start = i;
    bool neg = false;
    if (s[i] == '-') {
        neg = true;
        if (++i >= n)
            return perr(p, CPX_CANON_E_SYNTAX);
    }
    if (s[i] < '0' || s[i] > '9')
        return perr(p, CPX_CANON_E_SYNTAX);
    uint64_t v = 0;
    size_t digits = 0;
    if (s[i] == '0') {
        i++;
        digits = 1;
        if (neg) {
            p->pos = start;
            return perr(p, CPX_CANON_E_NUMBER); /* "-0" */
        }
    } else {
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
            if (digits >= 16) {
                p->pos = start;
                return perr(p, CPX_CANON_E_RANGE);
            }
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
    }
    if (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E' || (s[i] >= '0' && s[i] <= '9'))) {
        p->pos = start;
        return perr(p, CPX_CANON_E_NUMBER);
    }
    if (v > (uint64_t)CPX_CANON_INT_MAX) {
        p->pos = start;
        return perr(p, CPX_CANON_E_RANGE);
    }
    uint32_t node = new_node(p, CPX_CANON_INT, start);
    if (node == UINT32_MAX)
        return false;
    p->pos = i;
    if (p->doc != NULL)
        p->doc->nodes[node].ival = neg ? -(int64_t)v : (int64_t)v;
    close_node(p, node);
    return true;
}

/* Parses a literal word. */
static bool parse_literal(struct parser *p, const char *word, enum cpx_canon_type type)
{
    size_t k = strlen(word);
    if (p->n - p->pos < k || memcmp(p->s + p->pos, word, k) != 0)
        return perr(p, CPX_CANON_E_SYNTAX);
    uint32_t node = new_node(p, type, p->pos);
    if (node == UINT32_MAX)
        return false;
    p->pos += k;
    close_node(p, node);
    return true;
}

/* Parses a string value (not a key) at the current position. */
static bool parse_string(struct parser *p)
{
    uint32_t node = new_node(p, CPX_CANON_STRING, p->pos);
    size_t text, text_len;
    bool plain;
    if (node == UINT32_MAX || !scan_string(p, &text, &text_len, &plain))
        return false;
    if (p->doc != NULL)
        p->doc->nodes[node].plain = plain;
    close_node(p, node);
    return true;
}

/* Links node `child` after `prev` (UINT32_MAX when child is the first). */
static void link_sibling(struct parser *p, uint32_t prev, uint32_t child)
{
    if (p->doc != NULL && prev != UINT32_MAX)
        p->doc->nodes[prev].next = child;
}

static bool parse_array(struct parser *p, int depth)
{
    uint32_t node = new_node(p, CPX_CANON_ARRAY, p->pos);
    if (node == UINT32_MAX)
        return false;
    p->pos++; /* '[' */
    uint32_t count = 0, prev = UINT32_MAX;
    if (p->pos < p->n && p->s[p->pos] == ']') {
        p->pos++;
        close_node(p, node);
        return true;
    }
    for (;;) {
        uint32_t child = p->nodes;
        if (!parse_value(p, depth + 1))
            return false;
        link_sibling(p, prev, child);
        prev = child;
        count++;
        if (p->pos >= p->n)
            return perr(p, CPX_CANON_E_SYNTAX);
        if (p->s[p->pos] == ']')
            break;
        if (p->s[p->pos] != ',')
            return perr(p, CPX_CANON_E_SYNTAX);
        p->pos++;
    }
    p->pos++;
    if (p->doc != NULL)
        p->doc->nodes[node].count = count;
    close_node(p, node);
    return true;
}

static bool parse_object(struct parser *p, int depth)
{
    uint32_t node = new_node(p, CPX_CANON_OBJECT, p->pos);
    if (node == UINT32_MAX)
        return false;
    p->pos++; /* '{' */
    uint32_t count = 0, prev = UINT32_MAX;
    size_t prev_key = 0, prev_key_len = 0;
    if (p->pos < p->n && p->s[p->pos] == '}') {
        p->pos++;
        close_node(p, node);
        return true;
    }
    for (;;) {
        if (p->pos >= p->n || p->s[p->pos] != '"')
            return perr(p, CPX_CANON_E_SYNTAX);
        size_t key_start = p->pos, text, text_len;
        bool plain;
        uint32_t key = new_node(p, CPX_CANON_STRING, key_start);
        if (key == UINT32_MAX || !scan_string(p, &text, &text_len, &plain))
            return false;
        if (count > 0) {
            int c = key_compare(p->s + prev_key, prev_key_len, p->s + text, text_len);
            if (c >= 0) {
                p->pos = key_start;
                return perr(p, c == 0 ? CPX_CANON_E_DUP_KEY : CPX_CANON_E_KEY_ORDER);
            }
        }
        prev_key = text;
        prev_key_len = text_len;
        if (p->doc != NULL)
            p->doc->nodes[key].plain = plain;
        close_node(p, key);
        link_sibling(p, prev, key);
        if (p->pos >= p->n || p->s[p->pos] != ':')
            return perr(p, CPX_CANON_E_SYNTAX);
        p->pos++;
        uint32_t value = p->nodes;
        if (!parse_value(p, depth + 1))
            return false;
        link_sibling(p, key, value);
        prev = value;
        count++;
        if (p->pos >= p->n)
            return perr(p, CPX_CANON_E_SYNTAX);
        if (p->s[p->pos] == '}')
            break;
        if (p->s[p->pos] != ',')
            return perr(p, CPX_CANON_E_SYNTAX);
        p->pos++;
    }
    p->pos++;
    if (p->doc != NULL)
        p->doc->nodes[node].count = count;
    close_node(p, node);
    return true;
}

/* Parses one value at the current position; depth counts the containers around it. */
static bool parse_value(struct parser *p, int depth)
{
    if (p->pos >= p->n)
        return perr(p, CPX_CANON_E_SYNTAX);
    switch (p->s[p->pos]) {
    case '{':
        if (depth >= CPX_CANON_MAX_DEPTH)
            return perr(p, CPX_CANON_E_DEPTH);
        return parse_object(p, depth);
    case '[':
        if (depth >= CPX_CANON_MAX_DEPTH)
            return perr(p, CPX_CANON_E_DEPTH);
        return parse_array(p, depth);
    case '"': return parse_string(p);
    case 't': return parse_literal(p, "true", CPX_CANON_TRUE);
    case 'f': return parse_literal(p, "false", CPX_CANON_FALSE);
    case 'n': return parse_literal(p, "null", CPX_CANON_NULL);
    default:
        if (p->s[p->pos] == '-' || (p->s[p->pos] >= '0' && p->s[p->pos] <= '9'))
            return parse_int(p);
        return perr(p, CPX_CANON_E_SYNTAX);
    }
}

/* Runs a parse into doc (NULL: validate only), the value nested in `depth` containers. */
static enum cpx_canon_error run_parse(struct cpx_canon_doc *doc, const void *text, size_t len,
                                      int depth, size_t *err_off)
{
    struct parser p = { .s = text, .n = len, .doc = doc };
    if (doc != NULL) {
        doc->text = NULL;
        doc->len = 0;
        doc->n = 0;
    }
    if (len > CPX_CANON_MAX_LEN)
        perr(&p, CPX_CANON_E_LIMIT);
    else if (parse_value(&p, depth) && p.pos != len)
        perr(&p, CPX_CANON_E_SYNTAX); /* trailing bytes */
    if (err_off != NULL)
        *err_off = p.pos;
    if (p.err != CPX_CANON_OK) {
        if (doc != NULL)
            doc->n = 0;
        return p.err;
    }
    if (doc != NULL) {
        doc->text = text;
        doc->len = len;
    }
    return CPX_CANON_OK;
}

enum cpx_canon_error cpx_canon_parse(struct cpx_canon_doc *doc, const void *text, size_t len,
                                     size_t *err_off)
{
    return run_parse(doc, text, len, 0, err_off);
}

enum cpx_canon_error cpx_canon_validate(const void *text, size_t len, size_t *err_off)
{
    return run_parse(NULL, text, len, 0, err_off);
}

void cpx_canon_doc_free(struct cpx_canon_doc *doc)
{
    free(doc->nodes);
    memset(doc, 0, sizeof *doc);
}

const struct cpx_canon_node *cpx_canon_root(const struct cpx_canon_doc *doc)
{
    return doc->n > 0 ? &doc->nodes[0] : NULL;
}

const struct cpx_canon_node *cpx_canon_first(const struct cpx_canon_doc *doc,
                                             const struct cpx_canon_node *node)
{
    if (node == NULL || node->count == 0 ||
        (node->type != CPX_CANON_ARRAY && node->type != CPX_CANON_OBJECT))
        return NULL;
    (void)doc; /* children follow their parent directly */
    return node + 1;
}

const struct cpx_canon_node *cpx_canon_next(const struct cpx_canon_doc *doc,
                                            const struct cpx_canon_node *node)
{
    return node != NULL && node->next != 0 ? &doc->nodes[node->next] : NULL;
}

const struct cpx_canon_node *cpx_canon_get(const struct cpx_canon_doc *doc,
                                           const struct cpx_canon_node *obj, const char *key)
{
    if (obj == NULL || obj->type != CPX_CANON_OBJECT)
        return NULL;
    size_t klen = strlen(key);
    for (const struct cpx_canon_node *k = cpx_canon_first(doc, obj); k != NULL;) {
        const struct cpx_canon_node *v = k + 1;
        if (k->len - 2 == klen && memcmp(doc->text + k->off + 1, key, klen) == 0)
            return v;
        k = cpx_canon_next(doc, v);
    }
    return NULL;
}

const uint8_t *cpx_canon_bytes(const struct cpx_canon_doc *doc, const struct cpx_canon_node *node,
                               size_t *len)
{
    *len = node->len;
    return doc->text + node->off;
}

long cpx_canon_string_value(const struct cpx_canon_doc *doc, const struct cpx_canon_node *node,
                            char *out, size_t cap)
{
    if (node == NULL || node->type != CPX_CANON_STRING)
        return -1;
    const uint8_t *s = doc->text + node->off + 1;
    size_t n = node->len - 2;
    if (node->plain) {
        if (n >= cap)
            return -1;
        memcpy(out, s, n);
        out[n] = '\0';
        return (long)n;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (o + 1 >= cap)
            return -1;
        if (s[i] != '\\') {
            out[o++] = (char)s[i++];
            continue;
        }
        out[o++] = (char)next_escaped_cp(s, n, &i); /* escapes only produce ASCII */
    }
    out[o] = '\0';
    return (long)o;
}

bool cpx_canon_string_eq(const struct cpx_canon_doc *doc, const struct cpx_canon_node *node,
                         const char *s)
{
    if (node == NULL || node->type != CPX_CANON_STRING)
        return false;
    size_t n = strlen(s);
    if (node->plain)
        return node->len - 2 == n && memcmp(doc->text + node->off + 1, s, n) == 0;
    const uint8_t *t = doc->text + node->off + 1;
    size_t tn = node->len - 2, j = 0;
    for (size_t i = 0; i < tn;) {
        uint8_t c = t[i] == '\\' ? (uint8_t)next_escaped_cp(t, tn, &i) : t[i++];
        if (j >= n || (uint8_t)s[j++] != c)
            return false;
    }
    return j == n;
}
