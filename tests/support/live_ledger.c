/*
 * Downloading and auditing a live ledger: see live_ledger.h.
 */
#include "tests/support/live_ledger.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

#define PAGE "1000"

/* GETs target and returns the parsed reply; fails the test on anything but 200. */
static json_t *get_json(struct client *cl, const char *target)
{
    struct client_reply r;
    if (!client_call(cl, "GET", target, NULL, false, NULL, &r) || r.status != 200 || !r.json)
        fail_msg("GET %s: %ld %s", target, r.status, r.body ? r.body : r.error);
    json_t *j = json_incref(r.json);
    client_reply_free(&r);
    return j;
}

static void add_record(struct live_ledger *l, json_t *item)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->rec = realloc(l->rec, l->cap * sizeof *l->rec);
        l->len = realloc(l->len, l->cap * sizeof *l->len);
        l->seq = realloc(l->seq, l->cap * sizeof *l->seq);
        l->leaf = realloc(l->leaf, l->cap * sizeof *l->leaf);
        assert_non_null(l->rec && l->len && l->seq && l->leaf);
    }
    json_t *rec = json_object_get(item, "record");
    assert_true(json_is_string(rec));
    size_t n = json_string_length(rec);
    l->rec[l->n] = malloc(n + 1);
    assert_non_null(l->rec[l->n]);
    memcpy(l->rec[l->n], json_string_value(rec), n + 1);
    l->len[l->n] = n;
    l->seq[l->n] = (uint64_t)json_integer_value(json_object_get(item, "seq"));
    const char *leaf = json_string_value(json_object_get(item, "leaf_hash"));
    memset(l->leaf[l->n], 0, 32);
    if (leaf != NULL)
        assert_int_equal(cpx_b64_decode(leaf, strlen(leaf), l->leaf[l->n], 32), 32);
    l->n++;
}

static void add_checkpoint(struct live_ledger *l, json_t *item)
{
    if (l->ncp == l->cp_cap) {
        l->cp_cap = l->cp_cap ? 2 * l->cp_cap : 16;
        l->cp = realloc(l->cp, l->cp_cap * sizeof *l->cp);
        l->cp_size = realloc(l->cp_size, l->cp_cap * sizeof *l->cp_size);
        assert_non_null(l->cp && l->cp_size);
    }
    const char *note = json_string_value(json_object_get(item, "note"));
    assert_non_null(note);
    l->cp[l->ncp] = strdup(note);
    l->cp_size[l->ncp] = (uint64_t)json_integer_value(json_object_get(item, "size"));
    l->ncp++;
}

/* Pages through a list endpoint, calling add for each item. */
static void page_all(struct client *cl, const char *path, struct live_ledger *l,
                     void (*add)(struct live_ledger *, json_t *))
{
    char target[256], cursor[32] = "";
    for (;;) {
        snprintf(target, sizeof target, "%s?limit=" PAGE "%s%s", path, *cursor ? "&after=" : "",
                 cursor);
        json_t *page = get_json(cl, target);
        json_t *items = json_object_get(page, "items"), *item;
        size_t i;
        json_array_foreach(items, i, item) add(l, item);
        json_t *next = json_object_get(page, "next");
        bool more = json_is_string(next);
        if (more)
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(page);
        if (!more)
            break;
    }
}

void live_download(struct client *cl, struct live_ledger *l)
{
    memset(l, 0, sizeof *l);
    page_all(cl, "/v1/ledger/checkpoints", l, add_checkpoint);
    page_all(cl, "/v1/ledger/records", l, add_record);
}

void live_free(struct live_ledger *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->rec[i]);
    for (size_t i = 0; i < l->ncp; i++)
        free(l->cp[i]);
    free(l->rec);
    free(l->len);
    free(l->seq);
    free(l->leaf);
    free(l->cp);
    free(l->cp_size);
    memset(l, 0, sizeof *l);
}

void live_verifier(const char *path, struct cpx_note_verifier *v)
{
    FILE *f = fopen(path, "r");
    char line[CPX_VERIFIER_KEY_MAX + 2] = "";
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    const char *bad = cpx_note_verifier_parse(line, strlen(line), v);
    if (bad != NULL)
        fail_msg("verifier key %s: %s", path, bad);
}

uint64_t live_audit(const struct live_ledger *l, const struct cpx_note_verifier *v,
                    struct cpx_audit_failure *out, size_t max)
{
    struct cpx_audit_config cfg = { .exchange = *v, .sigs = CPX_AUDIT_SIGS_INLINE };
    struct cpx_audit *a = cpx_audit_new(&cfg);
    assert_non_null(a);
    for (size_t i = 0; i < l->ncp; i++)
        assert_int_equal(cpx_audit_checkpoint(a, l->cp[i], strlen(l->cp[i])), CPX_AUDIT_OK);
    for (size_t i = 0; i < l->n; i++)
        assert_int_equal(cpx_audit_record(a, l->rec[i], l->len[i], l->leaf[i], NULL), CPX_AUDIT_OK);
    cpx_audit_finish(a);
    size_t n;
    const struct cpx_audit_failure *f = cpx_audit_failures(a, &n);
    for (size_t i = 0; out != NULL && i < n && i < max; i++)
        out[i] = f[i];
    uint64_t total = cpx_audit_failure_total(a);
    for (size_t i = 0; i < n && i < 5; i++)
        print_message("audit: seq %" PRIu64 " %s: %s\n", f[i].seq,
                      cpx_audit_reason_code(f[i].reason), f[i].message);
    cpx_audit_free(a);
    return total;
}

uint64_t live_audit_clean(struct client *cl, const char *verifier_path)
{
    struct cpx_note_verifier v;
    live_verifier(verifier_path, &v);
    struct live_ledger l;
    live_download(cl, &l);
    assert_int_equal(live_audit(&l, &v, NULL, 0), 0);
    uint64_t n = l.n;
    live_free(&l);
    return n;
}
