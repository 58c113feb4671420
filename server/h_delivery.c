/*
 * Delivery and billing API (docs/delivery.md): usage reports, bills, disputes and resolutions
 * (through the sequencer, which owns the money), a delivery's attempts, statements, and the
 * public books auditors compare with the ledger.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db_delivery.h"
#include "server/db_trading.h"
#include "server/handlers.h"
#include "server/http.h"
#include "server/market.h"
#include "server/money.h"
#include "server/records.h"
#include "server/sequencer.h"
#include "server/server.h"
#include "server/spec.h"
#include "server/txn.h"
#include "server/util.h"

/* ---- commands the sequencer runs ----------------------------------------------------------- */

struct usage_req {
    int64_t start, end, device_seconds;
    bool final;
};

static const struct spec usage_spec[] = {
    SPEC_TIME("period_start", struct usage_req, start, true),
    SPEC_TIME("period_end", struct usage_req, end, true),
    SPEC_INT("device_seconds", struct usage_req, device_seconds, true, 0, INT64_C(1) << 53),
    SPEC_BOOL("final", struct usage_req, final, false),
    SPEC_END,
};

void h_usage_report(struct request *req)
{
    if (!records_party_fits(req))
        return;
    uint64_t agreement = market_id_parse(req->params[0], "agr_");
    if (agreement == 0) {
        reply_error(req, E_AGREEMENT_NOT_FOUND, NULL, NULL);
        return;
    }
    struct usage_req r = { TIME_ABSENT, TIME_ABSENT, 0, false };
    if (!request_parse(req, usage_spec, &r))
        return;
    struct seq_cmd *cmd = seq_cmd_new(SEQ_USAGE, req);
    if (cmd == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    cmd->usage.agreement = agreement;
    cmd->usage.device_seconds = r.device_seconds;
    cmd->usage.final = r.final;
    if (!market_whole_seconds(req, "period_start", r.start, &cmd->usage.start) ||
        !market_whole_seconds(req, "period_end", r.end, &cmd->usage.end) ||
        !tx_idempotency_key(req, &cmd->idem_key, cmd->idem_hash)) {
        free(cmd);
        return;
    }
    sequencer_submit(req->srv->seq, cmd);
}

struct dispute_req {
    const char *text;
};

static const struct spec dispute_spec[] = {
    SPEC_STR("reason", struct dispute_req, text, true, 1, BILL_TEXT_MAX),
    SPEC_END,
};

struct resolution_req {
    int outcome; /* index into outcomes */
    const char *text;
};

static const char *const outcomes[] = { "pay", "refund", NULL };

static const struct spec resolution_spec[] = {
    SPEC_ENUM("outcome", struct resolution_req, outcome, true, outcomes),
    SPEC_STR("note", struct resolution_req, text, false, 0, BILL_TEXT_MAX),
    SPEC_END,
};

/* Both bill commands: the text within its bytes, the bill id, then the sequencer. SPEC_STR counts
 * characters; the text is kept whole or refused, never cut inside a character. */
static void bill_command(struct request *req, enum seq_op op, const char *field, const char *text,
                         bool refund)
{
    if (text != NULL && strlen(text) > BILL_TEXT_MAX) {
        reply_error(req, E_OUT_OF_RANGE, field, "%s may be at most %d bytes of UTF-8.", field,
                    BILL_TEXT_MAX);
        return;
    }
    struct seq_cmd *cmd = seq_cmd_new(op, req);
    if (cmd == NULL) {
        reply_error(req, E_INTERNAL, NULL, NULL);
        return;
    }
    cmd->bill.bill = market_id_parse(req->params[0], "bil_");
    snprintf(cmd->bill.text, sizeof cmd->bill.text, "%s", text ? text : "");
    cmd->bill.refund = refund;
    if (cmd->bill.bill == 0) {
        free(cmd);
        reply_error(req, E_BILL_NOT_FOUND, NULL, NULL);
        return;
    }
    sequencer_submit(req->srv->seq, cmd);
}

void h_bill_dispute(struct request *req)
{
    struct dispute_req r = { 0 };
    if (records_party_fits(req) && request_parse(req, dispute_spec, &r))
        bill_command(req, SEQ_DISPUTE, "reason", r.text, false);
}

void h_bill_resolve(struct request *req)
{
    struct resolution_req r = { -1, NULL };
    if (records_party_fits(req) && request_parse(req, resolution_spec, &r))
        bill_command(req, SEQ_RESOLVE, "note", r.text, r.outcome == 1);
}

/* ---- reads --------------------------------------------------------------------------------- */

struct bills_ctx {
    const char *party; /* NULL: every bill */
    uint64_t id, agreement, after;
    const char *status;
    int limit;
    json_t *out;
    uint64_t last;
};

static enum db_status bill_fn(struct db_conn *c, void *arg)
{
    struct bills_ctx *k = arg;
    PGresult *r;
    enum db_status st = db_bill_get(c, k->id, &r);
    if (st != DB_OK)
        return st;
    if (k->party == NULL || strcmp(PQgetvalue(r, 0, 2), k->party) == 0 ||
        strcmp(PQgetvalue(r, 0, 3), k->party) == 0)
        k->out = db_bill_json(r, 0);
    PQclear(r);
    return DB_OK;
}

void h_bill_show(struct request *req)
{
    struct bills_ctx k = { .party = market_may_read_all(req) ? NULL : req->caller.id };
    k.id = market_id_parse(req->params[0], "bil_");
    enum db_status st = k.id ? db_run(req->srv->db, bill_fn, &k) : DB_NO_ROWS;
    if (st == DB_OK && k.out != NULL)
        reply_json(req, 200, k.out);
    else if (st == DB_OK || st == DB_NO_ROWS)
        reply_error(req, E_BILL_NOT_FOUND, NULL, NULL);
    else
        reply_db_error(req, st);
}

static enum db_status bills_fn(struct db_conn *c, void *arg)
{
    struct bills_ctx *k = arg;
    PGresult *r;
    enum db_status st = db_bill_list(c, k->party, k->agreement, k->status, k->after, k->limit, &r);
    if (st != DB_OK)
        return st;
    json_array_clear(k->out);
    for (int i = 0; i < PQntuples(r); i++) {
        json_array_append_new(k->out, db_bill_json(r, i));
        k->last = (uint64_t)db_get_i64(r, i, 0);
    }
    PQclear(r);
    return DB_OK;
}

static const char *const bill_statuses[] = { "open", "disputed", "settled", "refunded", NULL };

/* ?status= one of words, or absent (NULL); false after answering 400. */
static bool word_param(struct request *req, const char *key, const char *const *words,
                       const char **out)
{
    *out = request_query(req, key);
    for (int i = 0; *out != NULL && words[i] != NULL; i++)
        if (strcmp(*out, words[i]) == 0)
            return true;
    if (*out == NULL)
        return true;
    reply_error(req, E_INVALID_QUERY, key, "%s is not one this list takes.", key);
    return false;
}

void h_bill_list(struct request *req)
{
    struct bills_ctx k = { .party = market_may_read_all(req) ? NULL : req->caller.id };
    if (!market_list_params(req, "bil_", &k.limit, &k.after, NULL) ||
        !word_param(req, "status", bill_statuses, &k.status))
        return;
    const char *agr = request_query(req, "agreement");
    if (agr != NULL && (k.agreement = market_id_parse(agr, "agr_")) == 0) {
        reply_error(req, E_INVALID_QUERY, "agreement", "agreement must be an agr_ id.");
        return;
    }
    k.out = json_array();
    enum db_status st = db_run(req->srv->db, bills_fn, &k);
    if (st != DB_OK) {
        json_decref(k.out);
        reply_db_error(req, st);
        return;
    }
    market_reply_page(req, k.out, k.limit, "bil_", k.last);
}

struct deliveries_ctx {
    uint64_t id;
    const char *party;
    json_t *out;
};

static enum db_status deliveries_fn(struct db_conn *c, void *arg)
{
    struct deliveries_ctx *k = arg;
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, k->id);
    const char *p[] = { id, k->party };
    PGresult *r;
    enum db_status st = db_query_row(c, "dlv_delivery_get", 2, p, &r);
    if (st != DB_OK)
        return st;
    json_decref(k->out);
    k->out = json_object();
    char dlv[MARKET_ID_MAX];
    market_id_format(dlv, "dlv_", k->id);
    json_object_set_new(k->out, "delivery", json_string(dlv));
    json_object_set_new(k->out, "state", json_string(PQgetvalue(r, 0, 0)));
    json_object_set_new(k->out, "endpoint", json_string(PQgetvalue(r, 0, 1)));
    json_set_time(k->out, "deliver_by", db_get_i64(r, 0, 2));
    json_set_time(k->out, "next_attempt_at", db_get_i64(r, 0, 3));
    PQclear(r);
    if ((st = db_query(c, "dlv_attempts", 1, p, &r)) != DB_OK)
        return st;
    json_t *attempts = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *a = json_object();
        json_object_set_new(a, "attempt", json_integer(db_get_i64(r, i, 0)));
        json_set_time(a, "at", db_get_i64(r, i, 1));
        json_object_set_new(a, "duration_ms", json_integer(db_get_i64(r, i, 2)));
        json_object_set_new(a, "http_status",
                            PQgetisnull(r, i, 3) ? json_null() : json_integer(db_get_i64(r, i, 3)));
        json_object_set_new(a, "outcome", json_string(PQgetvalue(r, i, 4)));
        json_object_set_new(a, "error",
                            PQgetisnull(r, i, 5) ? json_null() : json_string(PQgetvalue(r, i, 5)));
        json_array_append_new(attempts, a);
    }
    PQclear(r);
    json_object_set_new(k->out, "attempts", attempts);
    return DB_OK;
}

void h_deliveries(struct request *req)
{
    struct deliveries_ctx k = { .party = market_may_read_all(req) ? NULL : req->caller.id };
    k.id = market_id_parse(req->params[0], "agr_");
    enum db_status st = k.id ? db_run(req->srv->db, deliveries_fn, &k) : DB_NO_ROWS;
    if (st == DB_OK)
        reply_json(req, 200, k.out);
    else if (st == DB_NO_ROWS)
        reply_error(req, E_AGREEMENT_NOT_FOUND, NULL, NULL);
    else
        reply_db_error(req, st);
}

/* ---- statements ---------------------------------------------------------------------------- */

#define STATEMENT_MAX 100000 /* entries listed; the balances are always whole */

struct statement_ctx {
    const char *owner;
    int64_t from, to; /* unix seconds, [from, to) */
    PGresult *opening, *closing, *entries;
};

static enum db_status statement_fn(struct db_conn *c, void *arg)
{
    struct statement_ctx *k = arg;
    char from[24], to[24];
    snprintf(from, sizeof from, "%" PRId64, k->from);
    snprintf(to, sizeof to, "%" PRId64, k->to);
    const char *p[] = { k->owner, from, to }, *q[] = { k->owner, to };
    PQclear(k->opening);
    PQclear(k->closing);
    PQclear(k->entries);
    k->opening = k->closing = k->entries = NULL;
    enum db_status st = db_query(c, "dlv_statement_balances", 2, p, &k->opening);
    if (st == DB_OK)
        st = db_query(c, "dlv_statement_balances", 2, q, &k->closing);
    if (st == DB_OK)
        st = db_query(c, "dlv_statement_entries", 3, p, &k->entries);
    return st;
}

/* Balances by kind from (kind, sum) rows. */
static void balances_of(const PGresult *r, int64_t out[ACC_NKINDS])
{
    for (int i = 0; i < PQntuples(r); i++) {
        int kind = account_kind_index(PQgetvalue(r, i, 0));
        if (kind >= 0)
            out[kind] = db_get_i64(r, i, 1);
    }
}

/* One entry as the statement shows it: from the owner's side. */
static void statement_entry(const PGresult *r, int i, const char *owner, json_t *entries,
                            struct strbuf *csv)
{
    bool out = strcmp(PQgetvalue(r, i, 2), owner) == 0;
    bool in = strcmp(PQgetvalue(r, i, 4), owner) == 0;
    int64_t amount = db_get_i64(r, i, 6);
    for (int side = 0; side < 2; side++) { /* an entry between two of the owner's accounts is two */
        bool outgoing = side == 0;
        if ((outgoing && !out) || (!outgoing && !in))
            continue;
        const char *kind = PQgetvalue(r, i, outgoing ? 3 : 5);
        const char *other = PQgetvalue(r, i, outgoing ? 4 : 2);
        const char *other_kind = PQgetvalue(r, i, outgoing ? 5 : 3);
        char at[RFC3339_MAX], money[MONEY_STR_MAX];
        format_rfc3339(db_get_i64(r, i, 1) * 1000000, at);
        money_format(amount, money);
        json_t *e = json_object();
        json_object_set_new(e, "id", json_integer(db_get_i64(r, i, 0)));
        json_object_set_new(e, "at", json_string(at));
        json_object_set_new(e, "account", json_string(kind));
        json_object_set_new(e, "direction", json_string(outgoing ? "out" : "in"));
        json_object_set_new(e, "counterparty", json_string(other));
        json_object_set_new(e, "counter_kind", json_string(other_kind));
        money_json_set(e, "amount", amount);
        json_object_set_new(e, "reason", json_string(PQgetvalue(r, i, 7)));
        json_object_set_new(e, "ref", json_string(PQgetvalue(r, i, 8)));
        json_array_append_new(entries, e);
        strbuf_addf(csv, "%s,%s,%s,%s,%s,%s,%s%s,%s,%s\n", PQgetvalue(r, i, 0), at, kind,
                    outgoing ? "out" : "in", other, other_kind, outgoing ? "-" : "", money,
                    PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
    }
}

void h_statement(struct request *req)
{
    struct statement_ctx k = { .owner = req->caller.id, .from = 0, .to = INT64_C(1) << 40 };
    const char *names[] = { "from", "to" };
    int64_t *dest[] = { &k.from, &k.to };
    for (int i = 0; i < 2; i++) {
        const char *v = request_query(req, names[i]);
        int64_t us;
        if (v == NULL)
            continue;
        if (!parse_rfc3339(v, &us) || us < 0 || us % 1000000 != 0) {
            reply_error(req, E_INVALID_QUERY, names[i],
                        "%s must be an RFC 3339 time in whole seconds.", names[i]);
            return;
        }
        *dest[i] = us / 1000000;
    }
    bool to_given = request_query(req, "to") != NULL;
    const char *format = request_query(req, "format");
    if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) {
        reply_error(req, E_INVALID_QUERY, "format", "format must be json or csv.");
        return;
    }
    /* One snapshot for the three queries, so that no entry lands between them. */
    enum db_status st = db_transact(req->srv->db, DB_REPEATABLE_READ, statement_fn, &k);
    if (st != DB_OK) {
        PQclear(k.opening);
        PQclear(k.closing);
        PQclear(k.entries);
        reply_db_error(req, st);
        return;
    }
    int64_t opening[ACC_NKINDS] = { 0 }, closing[ACC_NKINDS] = { 0 };
    balances_of(k.opening, opening);
    balances_of(k.closing, closing);
    json_t *entries = json_array();
    struct strbuf csv = { 0 };
    strbuf_addf(&csv, "id,at,account,direction,counterparty,counter_kind,amount,reason,ref\n");
    int n = PQntuples(k.entries);
    bool truncated = n > STATEMENT_MAX;
    for (int i = 0; i < n && i < STATEMENT_MAX; i++)
        statement_entry(k.entries, i, k.owner, entries, &csv);
    PQclear(k.opening);
    PQclear(k.closing);
    PQclear(k.entries);
    if (format != NULL && strcmp(format, "csv") == 0) {
        json_decref(entries);
        if (csv.failed)
            reply_error(req, E_INTERNAL, NULL, NULL);
        else
            reply_raw(req, 200, "text/csv; charset=utf-8", csv.data, csv.len);
        strbuf_free(&csv);
        return;
    }
    strbuf_free(&csv);
    json_t *accounts = json_array();
    for (int i = 0; i < ACC_NKINDS; i++) {
        if (opening[i] == 0 && closing[i] == 0)
            continue;
        json_t *a = json_object();
        json_object_set_new(a, "kind", json_string(account_kind_names[i]));
        money_json_set(a, "opening", opening[i]);
        money_json_set(a, "closing", closing[i]);
        json_array_append_new(accounts, a);
    }
    json_t *body = json_object();
    json_object_set_new(body, "identity", json_string(k.owner));
    json_set_time(body, "from", k.from);
    json_set_time(body, "to", to_given ? k.to : 0);
    json_object_set_new(body, "accounts", accounts);
    json_object_set_new(body, "entries", entries);
    json_object_set_new(body, "truncated", json_boolean(truncated));
    reply_json(req, 200, body);
}

/* ---- the public books ---------------------------------------------------------------------- */

struct audit_ctx {
    bool bills;
    const char *params[3]; /* bills: after id, limit; balances: after owner, after kind, limit */
    char limit[16];
    PGresult *r;
};

static enum db_status audit_fn(struct db_conn *c, void *arg)
{
    struct audit_ctx *k = arg;
    PQclear(k->r);
    k->r = NULL;
    return k->bills ? db_query(c, "dlv_audit_bills", 2, k->params, &k->r)
                    : db_query(c, "dlv_audit_balances", 3, k->params, &k->r);
}

/* The cursor of the page after: the last bill's number, or the last account's "owner/kind". */
static bool audit_cursor(struct request *req, struct audit_ctx *k, const char *after,
                         char owner[CPX_ID_MAX], char kind[16])
{
    size_t n = strlen(after);
    if (k->bills) {
        if (n > 18 || strspn(after, "0123456789") != n) {
            reply_error(req, E_INVALID_QUERY, "after", "after must be a cursor from a page.");
            return false;
        }
        k->params[0] = n ? after : "0";
        k->params[1] = k->limit;
        return true;
    }
    const char *slash = strchr(after, '/');
    if (n > 0 &&
        (slash == NULL || (size_t)(slash - after) >= CPX_ID_MAX || strlen(slash + 1) >= 16 ||
         strspn(after, "abcdefghijklmnopqrstuvwxyz0123456789_/") != n)) {
        reply_error(req, E_INVALID_QUERY, "after", "after must be a cursor from a page.");
        return false;
    }
    snprintf(owner, CPX_ID_MAX, "%.*s", slash ? (int)(slash - after) : 0, after);
    snprintf(kind, 16, "%s", slash ? slash + 1 : "");
    k->params[0] = owner;
    k->params[1] = kind;
    k->params[2] = k->limit;
    return true;
}

/* Both audit lists, paged by a text cursor (the last row's key). */
static void audit_list(struct request *req, bool bills)
{
    struct audit_ctx k = { .bills = bills };
    const char *after;
    int limit;
    char owner[CPX_ID_MAX], kind[16];
    if (!request_page(req, &limit, &after))
        return;
    snprintf(k.limit, sizeof k.limit, "%d", limit);
    if (!audit_cursor(req, &k, after, owner, kind))
        return;
    enum db_status st = db_run(req->srv->db, audit_fn, &k);
    if (st != DB_OK) {
        reply_db_error(req, st);
        return;
    }
    json_t *items = json_array();
    int n = PQntuples(k.r);
    for (int i = 0; i < n; i++) {
        json_t *o = json_object();
        if (bills) {
            char id[MARKET_ID_MAX];
            market_id_format(id, "bil_", (uint64_t)db_get_i64(k.r, i, 0));
            json_object_set_new(o, "id", json_string(id));
            market_id_format(id, "agr_", (uint64_t)db_get_i64(k.r, i, 1));
            json_object_set_new(o, "agreement", json_string(id));
            json_object_set_new(o, "amount_micro", json_integer(db_get_i64(k.r, i, 2)));
            json_object_set_new(o, "commission_micro", json_integer(db_get_i64(k.r, i, 3)));
            json_object_set_new(o, "status", json_string(PQgetvalue(k.r, i, 4)));
            json_object_set_new(o, "ledger_seq", json_integer(db_get_i64(k.r, i, 5)));
        } else {
            json_object_set_new(o, "owner", json_string(PQgetvalue(k.r, i, 0)));
            json_object_set_new(o, "kind", json_string(PQgetvalue(k.r, i, 1)));
            json_object_set_new(o, "balance_micro", json_integer(db_get_i64(k.r, i, 2)));
        }
        json_array_append_new(items, o);
    }
    json_t *next = json_null();
    if (n == limit && n > 0) {
        char cursor[CPX_ID_MAX + 20];
        if (bills)
            snprintf(cursor, sizeof cursor, "%s", PQgetvalue(k.r, n - 1, 0));
        else
            snprintf(cursor, sizeof cursor, "%s/%s", PQgetvalue(k.r, n - 1, 0),
                     PQgetvalue(k.r, n - 1, 1));
        next = json_string(cursor);
    }
    PQclear(k.r);
    reply_json(req, 200, json_pack("{s:o, s:o}", "items", items, "next", next));
}

void h_audit_bills(struct request *req)
{
    audit_list(req, true);
}

void h_audit_balances(struct request *req)
{
    audit_list(req, false);
}
