/*
 * Fuzz target: the canonical JSON parser on arbitrary bytes. Besides memory safety it checks the
 * parser's central promise -- it accepts only canonical bytes -- by writing every accepted
 * document back through the canonical writer from its DOM and requiring the very same bytes;
 * and that cpx_canon_validate (no DOM) agrees with cpx_canon_parse.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/canon.h"

/* Writes node (and its subtree) through w, from the DOM only. */
static void rewrite(const struct cpx_canon_doc *d, const struct cpx_canon_node *n,
                    struct cpx_canon_writer *w, char *scratch, size_t cap)
{
    long len;
    switch (n->type) {
    case CPX_CANON_NULL: cpx_canon_null(w); break;
    case CPX_CANON_TRUE: cpx_canon_bool(w, true); break;
    case CPX_CANON_FALSE: cpx_canon_bool(w, false); break;
    case CPX_CANON_INT: cpx_canon_int(w, n->ival); break;
    case CPX_CANON_STRING:
        len = cpx_canon_string_value(d, n, scratch, cap);
        if (len < 0)
            abort(); /* scratch holds any string of the input */
        cpx_canon_string(w, scratch, (size_t)len);
        break;
    case CPX_CANON_ARRAY:
        cpx_canon_begin_array(w);
        for (const struct cpx_canon_node *e = cpx_canon_first(d, n); e; e = cpx_canon_next(d, e))
            rewrite(d, e, w, scratch, cap);
        cpx_canon_end_array(w);
        break;
    case CPX_CANON_OBJECT:
        cpx_canon_begin_object(w);
        for (const struct cpx_canon_node *k = cpx_canon_first(d, n); k;
             k = cpx_canon_next(d, k + 1)) {
            len = cpx_canon_string_value(d, k, scratch, cap);
            if (len < 0)
                abort();
            cpx_canon_key(w, scratch, (size_t)len);
            rewrite(d, k + 1, w, scratch, cap);
        }
        cpx_canon_end_object(w);
        break;
    default: abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    enum cpx_canon_error err = cpx_canon_parse(&doc, data, size, NULL);
    if (cpx_canon_validate(data, size, NULL) != err)
        abort();
    if (err == CPX_CANON_OK) {
        struct cpx_canon_writer w;
        cpx_canon_writer_init(&w);
        char *scratch = malloc(size + 1);
        if (scratch != NULL) {
            rewrite(&doc, cpx_canon_root(&doc), &w, scratch, size + 1);
            const uint8_t *out;
            size_t len;
            if (cpx_canon_writer_finish(&w, &out, &len) != CPX_CANON_OK || len != size ||
                memcmp(out, data, size) != 0)
                abort();
            free(scratch);
        }
        cpx_canon_writer_free(&w);
    }
    cpx_canon_doc_free(&doc);
    return 0;
}
