/*
 * What the market commands (market.c) and the delivery and billing commands (billing.c) share:
 * checking and escaping what goes into a request target, and printing answers as aligned lines
 * and tables.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/cpx/cpx.h"

/* ---- building requests --------------------------------------------------------------------- */

bool word_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

void add_query_escaped(char *q, size_t cap, const char *name, const char *value)
{
    if (value == NULL)
        return;
    size_t n = strlen(q);
    n += snprintf(q + n, n < cap ? cap - n : 0, "%c%s=", strchr(q, '?') ? '&' : '?', name);
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0' && n + 4 < cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p) != NULL)
            q[n++] = (char)*p;
        else
            n += snprintf(q + n, cap - n, "%%%02X", *p);
    }
    q[n < cap ? n : cap - 1] = '\0';
}

/* ---- printing answers ---------------------------------------------------------------------- */

const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "-";
}

const char *text_of(const json_t *o, const char *key, char *buf, size_t cap)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%g", json_real_value(v));
    else
        snprintf(buf, cap, "-");
    return buf;
}

void line(FILE *out, const char *label, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(out, "%-11s  ", label);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
}

void table_add(struct table *t, ...)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * (size_t)t->ncols * sizeof *t->cells);
        if (t->cells == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    va_list ap;
    va_start(ap, t);
    for (int i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = strdup(s ? s : "-");
    }
    va_end(ap);
    t->nrows++;
}

/* Characters, not bytes, so that UTF-8 text lines up. */
static size_t width_of(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap = 0;
}

void table_print(struct table *t, const char *empty)
{
    size_t width[TABLE_MAX_COLS] = { 0 };
    if (t->nrows <= 1 && empty != NULL) {
        puts(empty);
        table_free(t);
        return;
    }
    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < t->ncols; i++) {
            size_t w = width_of(t->cells[r * (size_t)t->ncols + (size_t)i]);
            if (w > width[i])
                width[i] = w;
        }
    for (size_t r = 0; r < t->nrows; r++)
        for (int i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            if (i + 1 < t->ncols)
                printf("%s%*s", s, (int)(width[i] - width_of(s) + 2), "");
            else
                printf("%s\n", s);
        }
    table_free(t);
}

void print_next(const json_t *page)
{
    const char *next = json_string_value(json_object_get(page, "next"));
    if (next != NULL)
        printf("(more: --after %s)\n", next);
}

bool to_print(struct ctx *c, bool ok, const struct client_reply *r, int *rc)
{
    if (ok && r->status >= 200 && r->status <= 299 && json_is_object(r->json) && !c->json) {
        *rc = 0;
        return true;
    }
    *rc = cli_report(r, ok, c->json);
    return false;
}

int show_query(struct ctx *c, const struct cli_flag *flags, const struct cli_args *a,
               const char *usage, const char *path, bool sign, void (*print)(const json_t *))
{
    if (a->nargs != 0) {
        fprintf(stderr, "usage: %s\n", usage);
        return 2;
    }
    char target[512];
    snprintf(target, sizeof target, "%s", path);
    for (const struct cli_flag *f = flags; f->name != NULL; f++)
        if (f->takes_value)
            add_query_escaped(target, sizeof target, f->name, cli_get(flags, a, f->name));
    return show(c, "GET", target, NULL, sign, NULL, print);
}

int show(struct ctx *c, const char *method, const char *target, json_t *body, bool sign,
         const char *idempotency_key, void (*print)(const json_t *))
{
    struct client_reply r;
    int rc;
    bool ok = send_request(c, method, target, body, sign, idempotency_key, &r);
    if (to_print(c, ok, &r, &rc))
        print(r.json);
    client_reply_free(&r);
    return rc;
}
