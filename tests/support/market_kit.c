/*
 * Helpers of the market's end-to-end tests: see market_kit.h.
 */
#include "tests/support/market_kit.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/keyfile.h"

json_t *mk_call(struct client *cl, const char *method, const char *target, const char *body,
                long want)
{
    struct client_reply r;
    if (!client_call(cl, method, target, body, cl->have_key, NULL, &r))
        fail_msg("%s %s: no reply: %s", method, target, r.error);
    if (r.status != want)
        fail_msg("%s %s %s: got %ld %s, want %ld", method, target, body ? body : "", r.status,
                 r.body ? r.body : "", want);
    json_t *j = json_incref(r.json);
    client_reply_free(&r);
    return j;
}

int64_t mk_micro(const json_t *o, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "%s_micro", key);
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v)) {
        char *text = json_dumps(o, JSON_COMPACT);
        fail_msg("%s missing in %s", k, text ? text : "(null)");
    }
    return json_integer_value(v);
}

const char *mk_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL)
        fail_msg("%s is not a string in the answer", key);
    return s;
}

int64_t mk_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer in the answer", key);
    return json_integer_value(v);
}

uint64_t mk_deposit(struct client *op, const char *id, const char *amount)
{
    char target[160], body[96];
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", id);
    snprintf(body, sizeof body, "{\"amount\":\"%s\"}", amount);
    json_t *j = mk_call(op, "POST", target, body, 201);
    uint64_t seq = (uint64_t)mk_int(j, "ledger_seq");
    json_decref(j);
    return seq;
}

void mk_balances(struct client *reader, const char *id, int64_t out[3])
{
    char target[160];
    snprintf(target, sizeof target, "/v1/accounts/%s", id);
    json_t *j = mk_call(reader, "GET", target, NULL, 200);
    out[0] = mk_micro(j, "available");
    out[1] = mk_micro(j, "held");
    out[2] = mk_micro(j, "escrow");
    json_decref(j);
}

char *mk_db_text(const char *url, const char *sql)
{
    /* The superuser's URL: the same database with user=cpx_admin (testenv's convention). */
    char admin[600];
    const char *user = strstr(url, "user=cpx");
    assert_non_null(user);
    snprintf(admin, sizeof admin, "%.*suser=cpx_admin%s", (int)(user - url), url,
             user + strlen("user=cpx"));
    PGconn *pg = test_db_connect(admin);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
    for (int i = 0; i < PQntuples(r); i++)
        for (int f = 0; f < PQnfields(r); f++) {
            const char *v = PQgetisnull(r, i, f) ? "\\N" : PQgetvalue(r, i, f);
            size_t n = strlen(v);
            while (len + n + 2 > cap) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            memcpy(out + len, v, n);
            len += n;
            out[len++] = f + 1 < PQnfields(r) ? '\t' : '\n';
            out[len] = '\0';
        }
    PQclear(r);
    PQfinish(pg);
    return out;
}

size_t mk_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}
