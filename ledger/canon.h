/*
 * Canonical JSON: the one byte form of every value the ledger hashes and signs.
 *
 * The encoding is a strict subset of RFC 8785 (JSON Canonicalization Scheme). A document is
 * canonical when, and only when:
 *
 *   - it contains no whitespace outside strings (no space, tab, CR or LF between tokens);
 *   - numbers are integers written in shortest decimal form: -?(0|[1-9][0-9]*), never "-0",
 *     with magnitude at most 2^53-1 (9007199254740991), the integers a JSON reader can hold in
 *     an IEEE double exactly. No fraction, no exponent: there are no floats in the ledger;
 *   - strings are valid UTF-8 (RFC 3629: no overlong forms, no surrogates U+D800..U+DFFF, nothing
 *     above U+10FFFF) and are escaped exactly as RFC 8785 (ECMAScript JSON.stringify) does:
 *     '"' as \", '\' as \\, U+0008 \b, U+0009 \t, U+000A \n, U+000C \f, U+000D \r, every other
 *     code point below U+0020 as \u00XX with lower-case hex, and every other character literally
 *     (so "/" is never escaped, U+007F and all non-ASCII text appear as raw UTF-8);
 *   - object members are sorted by key, comparing keys as sequences of UTF-16 code units
 *     (RFC 8785 section 3.2.3), and no key appears twice (strict order rules this out);
 *   - literals are exactly true, false and null;
 *   - nesting is at most CPX_CANON_MAX_DEPTH containers deep.
 *
 * Two halves:
 *
 *   The writer (struct cpx_canon_writer) builds canonical bytes from calls such as
 *   begin_object / key / int / end_object. It cannot write a float (there is no call for one),
 *   checks every key is greater than the one before it in the same object, escapes strings and
 *   refuses invalid UTF-8 and out-of-range integers. Errors are sticky: the first one is kept,
 *   later calls do nothing, and cpx_canon_writer_finish reports it. So a caller writes a whole
 *   record without checking each call, then checks once.
 *
 *   The parser (cpx_canon_parse) takes untrusted bytes and accepts only canonical ones: the
 *   writer's output and nothing else, so re-encoding a parsed document would give the same bytes
 *   (the ledger never re-encodes: it keeps the bytes that were hashed). It builds a small DOM over
 *   the input: a flat array of nodes in document order, each naming its span of the input. Nothing
 *   is copied; strings are decoded on request. The DOM lives in a struct cpx_canon_doc that is
 *   reused from parse to parse, so a warm auditor parses without allocating. The parser never
 *   reads past len, needs no NUL, bounds depth, size and node count, and returns an error code
 *   for every bad input (it never aborts).
 *
 * Node layout: nodes[0] is the root. A container's children follow it directly (nodes[i + 1] is
 * its first child when count > 0) and are chained by `next`. An object's children alternate key,
 * value, key, value: the value of a key node is always the node right after it.
 */
#ifndef CPX_LEDGER_CANON_H
#define CPX_LEDGER_CANON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPX_CANON_MAX_DEPTH 32                  /* deepest nesting of objects and arrays */
#define CPX_CANON_MAX_LEN   (64u * 1024 * 1024) /* longest document accepted, in bytes */
#define CPX_CANON_MAX_NODES (1u << 20)          /* most values (keys count too) in one document */
#define CPX_CANON_INT_MAX   9007199254740991LL  /* 2^53 - 1: the largest magnitude of an integer */

/* Why a document or a writer call was refused; cpx_canon_error_text names each. */
enum cpx_canon_error {
    CPX_CANON_OK = 0,
    CPX_CANON_E_SYNTAX,    /* not JSON, truncated, whitespace, or bytes after the value */
    CPX_CANON_E_NUMBER,    /* fraction, exponent, leading zero, "-0": not a canonical integer */
    CPX_CANON_E_RANGE,     /* integer beyond +-(2^53-1) */
    CPX_CANON_E_UTF8,      /* invalid UTF-8: bad byte, overlong form, surrogate, > U+10FFFF */
    CPX_CANON_E_ESCAPE,    /* raw control character, or an escape RFC 8785 would not write */
    CPX_CANON_E_KEY_ORDER, /* object keys not in increasing UTF-16 order */
    CPX_CANON_E_DUP_KEY,   /* the same key twice in one object */
    CPX_CANON_E_DEPTH,     /* nesting deeper than CPX_CANON_MAX_DEPTH */
    CPX_CANON_E_LIMIT,     /* document longer than CPX_CANON_MAX_LEN or too many nodes */
    CPX_CANON_E_STATE,     /* writer misuse: a value where a key is due, unbalanced end, ... */
    CPX_CANON_E_NOMEM,     /* allocation failed */
};

/* A sentence naming err. Never NULL; the string is static. */
const char *cpx_canon_error_text(enum cpx_canon_error err);

/* ---- writer -------------------------------------------------------------------------------- */

/* One open container of a writer. */
struct cpx_canon_frame {
    bool is_object;  /* object (true) or array (false) */
    bool empty;      /* no member written yet: the next one needs no comma */
    bool want_value; /* object only: a key was written and its value is due */
    size_t key_off;  /* object only: offset in buf of the last key's escaped text */
    size_t key_len;  /* object only: its length; meaningful once !empty */
};

/*
 * A canonical JSON writer. Initialise with cpx_canon_writer_init (no allocation), write one
 * top-level value, call cpx_canon_writer_finish, and release with cpx_canon_writer_free.
 * cpx_canon_writer_reset starts a new document and keeps the buffer, for reuse in a loop.
 */
struct cpx_canon_writer {
    uint8_t *buf;             /* output bytes, owned by the writer (NULL until first write) */
    size_t len;               /* bytes written */
    size_t cap;               /* bytes allocated at buf */
    int depth;                /* open containers */
    bool complete;            /* a whole top-level value has been written */
    enum cpx_canon_error err; /* the first error, or CPX_CANON_OK */
    struct cpx_canon_frame stack[CPX_CANON_MAX_DEPTH]; /* open containers, outermost first */
};

/* Makes w an empty writer. Allocates nothing. */
void cpx_canon_writer_init(struct cpx_canon_writer *w);

/* Forgets the document being written (and any error) but keeps the buffer. */
void cpx_canon_writer_reset(struct cpx_canon_writer *w);

/* Frees the buffer; w may be initialised again. */
void cpx_canon_writer_free(struct cpx_canon_writer *w);

/*
 * Value and structure calls. Each writes one token, or records an error and writes nothing;
 * each returns the writer's error so far (CPX_CANON_OK while all is well). Strings and keys are
 * len bytes of UTF-8 (need not be NUL-terminated). A key must compare greater than the previous
 * key of the same object. Integers must lie within +-CPX_CANON_INT_MAX.
 */
enum cpx_canon_error cpx_canon_begin_object(struct cpx_canon_writer *w);
enum cpx_canon_error cpx_canon_end_object(struct cpx_canon_writer *w);
enum cpx_canon_error cpx_canon_begin_array(struct cpx_canon_writer *w);
enum cpx_canon_error cpx_canon_end_array(struct cpx_canon_writer *w);
enum cpx_canon_error cpx_canon_key(struct cpx_canon_writer *w, const char *key, size_t len);
enum cpx_canon_error cpx_canon_string(struct cpx_canon_writer *w, const char *s, size_t len);
enum cpx_canon_error cpx_canon_int(struct cpx_canon_writer *w, int64_t v);
enum cpx_canon_error cpx_canon_bool(struct cpx_canon_writer *w, bool v);
enum cpx_canon_error cpx_canon_null(struct cpx_canon_writer *w);

/* Writes a value given as canonical JSON text (checked with cpx_canon_validate first). */
enum cpx_canon_error cpx_canon_raw(struct cpx_canon_writer *w, const void *json, size_t len);

/* Writes the base64 form of data[0..len) as a string value. */
enum cpx_canon_error cpx_canon_base64(struct cpx_canon_writer *w, const void *data, size_t len);

/* Shorthands for a member with a NUL-terminated key: key then value. */
enum cpx_canon_error cpx_canon_kv_string(struct cpx_canon_writer *w, const char *key,
                                         const char *s);
enum cpx_canon_error cpx_canon_kv_int(struct cpx_canon_writer *w, const char *key, int64_t v);

/*
 * Ends the document. Returns CPX_CANON_OK and points *out and *len at the bytes (owned by w, valid
 * until the next call on w), or the first error (also when the value is unfinished).
 */
enum cpx_canon_error cpx_canon_writer_finish(struct cpx_canon_writer *w, const uint8_t **out,
                                             size_t *len);

/* ---- parser -------------------------------------------------------------------------------- */

/* The type of a parsed value. */
enum cpx_canon_type {
    CPX_CANON_NULL = 0,
    CPX_CANON_FALSE,
    CPX_CANON_TRUE,
    CPX_CANON_INT,
    CPX_CANON_STRING,
    CPX_CANON_ARRAY,
    CPX_CANON_OBJECT,
};

/* One parsed value: a span of the input plus what is needed to walk the tree. */
struct cpx_canon_node {
    uint8_t type;   /* enum cpx_canon_type */
    uint8_t plain;  /* strings: 1 when the text has no escapes (its bytes are its value) */
    uint32_t off;   /* offset in the input of the value's first byte ('"' for a string) */
    uint32_t len;   /* length in bytes of the value's text, quotes and brackets included */
    uint32_t next;  /* index of the next sibling in the same container; 0 when last */
    uint32_t count; /* arrays: elements; objects: members (key/value pairs); else 0 */
    int64_t ival;   /* integers: the value; else 0 */
};

/*
 * A parsed document. Zero-initialise it (or use CPX_CANON_DOC_INIT), parse into it as often as
 * needed (the node array is kept and grown), and free it with cpx_canon_doc_free. Nodes point into
 * the input, which the caller must keep unchanged while it reads the document.
 */
struct cpx_canon_doc {
    const uint8_t *text;          /* the input of the last successful parse */
    size_t len;                   /* its length */
    struct cpx_canon_node *nodes; /* nodes in document order; nodes[0] is the root */
    uint32_t n;                   /* nodes in use */
    uint32_t cap;                 /* nodes allocated */
};
#define CPX_CANON_DOC_INIT                                                                         \
    {                                                                                              \
        NULL, 0, NULL, 0, 0                                                                        \
    }

/* Frees the node array; doc may be parsed into again afterwards. */
void cpx_canon_doc_free(struct cpx_canon_doc *doc);

/*
 * Parses text[0..len) (untrusted) into doc. Returns CPX_CANON_OK when the bytes are exactly one
 * canonical JSON value; otherwise an error, and doc holds no document. *err_off (if not NULL)
 * receives the offset where the problem was found.
 */
enum cpx_canon_error cpx_canon_parse(struct cpx_canon_doc *doc, const void *text, size_t len,
                                     size_t *err_off);

/* Checks that text[0..len) is one canonical JSON value without building a DOM. */
enum cpx_canon_error cpx_canon_validate(const void *text, size_t len, size_t *err_off);

/* The root value of the last parse. */
const struct cpx_canon_node *cpx_canon_root(const struct cpx_canon_doc *doc);

/* The first child of an array or object (an object's first key), or NULL when it is empty. */
const struct cpx_canon_node *cpx_canon_first(const struct cpx_canon_doc *doc,
                                             const struct cpx_canon_node *node);

/* The next sibling of node in its container, or NULL after the last. */
const struct cpx_canon_node *cpx_canon_next(const struct cpx_canon_doc *doc,
                                            const struct cpx_canon_node *node);

/*
 * The value of member `key` (NUL-terminated) of object obj, or NULL when obj is not an object or
 * has no such member. The key is compared with the member names as written, so it must not
 * contain characters that canonical JSON escapes ('"', '\' or control characters).
 */
const struct cpx_canon_node *cpx_canon_get(const struct cpx_canon_doc *doc,
                                           const struct cpx_canon_node *obj, const char *key);

/* The exact bytes of node's text in the input (for an object: "{...}"); *len gets the length. */
const uint8_t *cpx_canon_bytes(const struct cpx_canon_doc *doc, const struct cpx_canon_node *node,
                               size_t *len);

/*
 * Decodes string node into out (capacity cap) and adds a NUL. Returns the decoded length, or -1
 * when node is not a string or the value and its NUL do not fit. A decoded string may contain NUL
 * bytes (from \u0000); callers that need C strings should check the length with strlen.
 */
long cpx_canon_string_value(const struct cpx_canon_doc *doc, const struct cpx_canon_node *node,
                            char *out, size_t cap);

/* True when node is a string whose value equals the NUL-terminated s. */
bool cpx_canon_string_eq(const struct cpx_canon_doc *doc, const struct cpx_canon_node *node,
                         const char *s);

/* True when s[0..len) is valid UTF-8 in the sense above (no overlongs, no surrogates). */
bool cpx_utf8_valid(const void *s, size_t len);

#endif
