/*
 * Market queries: see db_trading.h.
 *
 * Statement table (handlers' reads first, then the sequencer's batch statements, which take
 * PostgreSQL arrays built by the sequencer and are run by name).
 */
#include "server/db_trading.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "server/market.h"
#include "server/money.h"

#define AGREEMENT_COLUMNS                                                                          \
    "a.id, a.order_id, a.listing_id, a.buyer, a.provider, a.precision, a.region, a.devices, "      \
    "a.tflops, a.hours, a.price, a.value, a.commission, a.maker, a.start_at, a.endpoint, "         \
    "a.status, a.ledger_seq, extract(epoch FROM a.created_at)::bigint, a.commission_bps, "         \
    "a.deliver_by, coalesce(a.started_at, 0), coalesce(a.ends_at, 0), "                            \
    "coalesce(a.metered_until, 0), a.escrow_left"

/* Status filter: $n NULL = all, 'open', or 'closed' (anything but open). */
#define STATUS_FILTER(col, n) "($" n "::text IS NULL OR (" col " = 'open') = ($" n " = 'open'))"

const struct db_statement db_trading_statements[] = {
    { "order_get", "SELECT " ORDER_COLUMNS " FROM orders o WHERE o.id = $1", 1 },
    { "order_list",
      "SELECT " ORDER_COLUMNS " FROM orders o WHERE o.buyer = $1 AND " STATUS_FILTER(
          "o.status", "2") " AND o.id > $3 ORDER BY o.id LIMIT $4",
      4 },
    { "listing_get", "SELECT " LISTING_COLUMNS " FROM listings l WHERE l.id = $1", 1 },
    { "listing_list",
      "SELECT " LISTING_COLUMNS " FROM listings l WHERE l.provider = $1 AND " STATUS_FILTER(
          "l.status", "2") " AND l.id > $3 ORDER BY l.id LIMIT $4",
      4 },
    { "agreement_get", "SELECT " AGREEMENT_COLUMNS " FROM agreements a WHERE a.id = $1", 1 },
    { "agreement_list",
      "SELECT " AGREEMENT_COLUMNS " FROM agreements a WHERE ($1::text IS NULL OR a.buyer = $1 "
      "OR a.provider = $1) AND a.id > $2 ORDER BY a.id LIMIT $3",
      3 },
    { "trade_list",
      "SELECT " AGREEMENT_COLUMNS " FROM agreements a WHERE ($1::text IS NULL OR a.precision = "
      "$1) AND ($2::text IS NULL OR a.region = $2) AND ($3::bigint = 0 OR a.id < $3) "
      "ORDER BY a.id DESC LIMIT $4",
      4 },
    { "market_stats",
      "SELECT a.precision, a.region, "
      "(SELECT b.price FROM agreements b WHERE b.precision = a.precision AND b.region = a.region "
      "ORDER BY b.id DESC LIMIT 1), "
      "count(*) FILTER (WHERE a.created_at > now() - interval '24 hours'), "
      "coalesce(sum(a.devices) FILTER (WHERE a.created_at > now() - interval '24 hours'), 0), "
      "coalesce(sum(a.tflops::numeric * a.devices * a.hours) FILTER (WHERE a.created_at > now() "
      "- interval '24 hours'), 0) "
      "FROM agreements a GROUP BY a.precision, a.region",
      0 },
    { "price_index",
      "SELECT coalesce(sum(a.price::numeric * a.tflops * a.devices * a.hours), 0), "
      "coalesce(sum(a.tflops::numeric * a.devices * a.hours), 0), count(*) FROM agreements a "
      "WHERE a.precision = $1 AND a.created_at > now() - make_interval(hours => $2)",
      2 },
    { "account_get", "SELECT kind, balance FROM accounts WHERE owner = $1", 1 },
    { "job_put",
      "INSERT INTO jobs (buyer, sha256, description) SELECT $1, $2::bytea, $3 "
      "WHERE (SELECT count(*) FROM jobs WHERE buyer = $1) < $4::int "
      "OR EXISTS (SELECT 1 FROM jobs WHERE buyer = $1 AND sha256 = $2::bytea) "
      "ON CONFLICT DO NOTHING RETURNING 1",
      4 },
    { "job_exists", "SELECT 1 FROM jobs WHERE buyer = $1 AND sha256 = $2::bytea", 2 },
    /* ---- the sequencer ---- */
    { "seq_last_batch",
      "SELECT id, commands, state_hash, engine_now, next_id, next_agreement, ledger_size "
      "FROM sequencer_batches ORDER BY id DESC LIMIT 1",
      0 },
    { "seq_journal",
      "SELECT seq, encode(command, 'hex') FROM sequencer_commands WHERE seq > $1 ORDER BY seq "
      "LIMIT $2",
      2 },
    { "seq_names", "SELECT id, name FROM market_names ORDER BY id", 0 },
    { "seq_name_insert", "INSERT INTO market_names (id, name) VALUES ($1, $2)", 2 },
    { "seq_accounts", "SELECT owner, kind, balance FROM accounts", 0 },
    { "seq_entries_max", "SELECT coalesce(max(id), 0) FROM entries", 0 },
    { "seq_open_orders", "SELECT " ORDER_COLUMNS " FROM orders o WHERE o.status = 'open'", 0 },
    { "seq_open_listings", "SELECT " LISTING_COLUMNS " FROM listings l WHERE l.status = 'open'",
      0 },
    { "seq_signatures",
      "INSERT INTO request_signatures (sig_prefix, expires_at) "
      "SELECT decode(u.s, 'hex'), to_timestamp(u.e) FROM unnest($1::text[], $2::bigint[]) "
      "AS u(s, e) ON CONFLICT DO NOTHING RETURNING encode(sig_prefix, 'hex')",
      2 },
    { "seq_callers", "SELECT id, public_key, status FROM identities WHERE id = ANY($1::text[])",
      1 },
    { "seq_repeats",
      "SELECT " ORDER_COLUMNS " FROM orders o JOIN unnest($1::text[], $2::text[]) AS u(b, c) "
      "ON o.buyer = u.b AND o.client_order_id = u.c",
      2 },
    { "seq_orders_update",
      "UPDATE orders o SET remaining = u.remaining, filled_devices = u.filled, "
      "hold_left = u.hold_left, status = u.status, cancel_reason = nullif(u.reason, ''), "
      "closed_at = CASE WHEN u.closed = 0 THEN NULL ELSE to_timestamp(u.closed) END "
      "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], "
      "$6::text[], $7::bigint[]) AS u(id, remaining, filled, hold_left, status, reason, closed) "
      "WHERE o.id = u.id",
      7 },
    { "seq_listings_update",
      "UPDATE listings l SET remaining = u.remaining, status = u.status, "
      "cancel_reason = nullif(u.reason, ''), "
      "closed_at = CASE WHEN u.closed = 0 THEN NULL ELSE to_timestamp(u.closed) END "
      "FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[]) "
      "AS u(id, remaining, status, reason, closed) WHERE l.id = u.id",
      5 },
    { "seq_accounts_put",
      "INSERT INTO accounts (owner, kind, balance) "
      "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) "
      "ON CONFLICT (owner, kind) DO UPDATE SET balance = excluded.balance",
      3 },
    { "seq_batch_insert",
      "INSERT INTO sequencer_batches (id, commands, state_hash, engine_now, next_id, "
      "next_agreement, ledger_size) VALUES ($1, $2, $3, $4, $5, $6, $7)",
      7 },
    { NULL, NULL, 0 },
};

void order_row_free(struct order_row *o)
{
    json_decref(o->terms);
    json_decref(o->agreements);
    o->terms = o->agreements = NULL;
}

void listing_row_free(struct listing_row *l)
{
    json_decref(l->terms);
    l->terms = NULL;
}

static enum trade_status status_of(const char *s)
{
    for (int i = 0; trade_status_names[i] != NULL; i++)
        if (strcmp(trade_status_names[i], s) == 0)
            return (enum trade_status)i;
    return TRADE_CANCELLED;
}

static json_t *terms_of(const PGresult *r, int row, int col)
{
    json_t *t = json_loads(PQgetvalue(r, row, col), 0, NULL);
    if (!json_is_object(t)) {
        json_decref(t);
        return NULL;
    }
    return t;
}

bool db_order_from_row(const PGresult *r, int row, struct order_row *o)
{
    memset(o, 0, sizeof *o);
    struct order_view *v = &o->v;
    v->id = (uint64_t)db_get_i64(r, row, 0);
    db_get_str(r, row, 1, v->buyer, sizeof v->buyer);
    db_get_str(r, row, 2, v->client_order_id, sizeof v->client_order_id);
    const char *hex = PQgetvalue(r, row, 3);
    o->terms = terms_of(r, row, 4);
    v->remaining = db_get_i64(r, row, 5);
    v->filled_devices = db_get_i64(r, row, 6);
    v->hold = db_get_i64(r, row, 7);
    v->hold_left = db_get_i64(r, row, 8);
    v->status = status_of(PQgetvalue(r, row, 9));
    db_get_str(r, row, 10, v->cancel_reason, sizeof v->cancel_reason);
    v->ledger_seq = (uint64_t)db_get_i64(r, row, 11);
    v->created_at = db_get_i64(r, row, 12);
    o->agreements = json_array();
    char *list = PQgetvalue(r, row, 13);
    for (char *p = list; *p != '\0';) {
        char id[MARKET_ID_MAX];
        market_id_format(id, "agr_", strtoull(p, &p, 10));
        json_array_append_new(o->agreements, json_string(id));
        if (*p == ',')
            p++;
        else
            break;
    }
    o->hold_bps = db_get_i64(r, row, 14);
    v->terms = o->terms;
    v->agreements = o->agreements;
    if (o->terms == NULL || !cpx_hex_decode(hex, strlen(hex), o->body_sha256, 32)) {
        order_row_free(o);
        return false;
    }
    return true;
}

bool db_listing_from_row(const PGresult *r, int row, struct listing_row *l)
{
    memset(l, 0, sizeof *l);
    struct listing_view *v = &l->v;
    v->id = (uint64_t)db_get_i64(r, row, 0);
    db_get_str(r, row, 1, v->provider, sizeof v->provider);
    l->terms = terms_of(r, row, 2);
    db_get_str(r, row, 3, l->region, sizeof l->region);
    v->devices = db_get_i64(r, row, 4);
    v->remaining = db_get_i64(r, row, 5);
    v->status = status_of(PQgetvalue(r, row, 6));
    db_get_str(r, row, 7, v->cancel_reason, sizeof v->cancel_reason);
    v->ledger_seq = (uint64_t)db_get_i64(r, row, 8);
    v->created_at = db_get_i64(r, row, 9);
    db_get_str(r, row, 10, l->endpoint, sizeof l->endpoint);
    v->terms = l->terms;
    return l->terms != NULL;
}

static enum db_status get_one(struct db_conn *c, const char *stmt, uint64_t id, PGresult **res)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRIu64, id);
    const char *p[] = { ids };
    return db_query_row(c, stmt, 1, p, res);
}

enum db_status db_order_get(struct db_conn *c, uint64_t id, struct order_row *out)
{
    PGresult *r;
    enum db_status st = get_one(c, "order_get", id, &r);
    if (st != DB_OK)
        return st;
    st = db_order_from_row(r, 0, out) ? DB_OK : DB_HARD;
    PQclear(r);
    return st;
}

enum db_status db_listing_get(struct db_conn *c, uint64_t id, struct listing_row *out)
{
    PGresult *r;
    enum db_status st = get_one(c, "listing_get", id, &r);
    if (st != DB_OK)
        return st;
    st = db_listing_from_row(r, 0, out) ? DB_OK : DB_HARD;
    PQclear(r);
    return st;
}

static enum db_status owner_list(struct db_conn *c, const char *stmt, const char *owner,
                                 const char *status, uint64_t after, int limit, PGresult **res)
{
    char a[24], l[16];
    snprintf(a, sizeof a, "%" PRIu64, after);
    snprintf(l, sizeof l, "%d", limit);
    const char *p[] = { owner, status, a, l };
    return db_query(c, stmt, 4, p, res);
}

enum db_status db_order_list(struct db_conn *c, const char *buyer, const char *status,
                             uint64_t after, int limit, PGresult **res)
{
    return owner_list(c, "order_list", buyer, status, after, limit, res);
}

enum db_status db_listing_list(struct db_conn *c, const char *provider, const char *status,
                               uint64_t after, int limit, PGresult **res)
{
    return owner_list(c, "listing_list", provider, status, after, limit, res);
}

json_t *db_agreement_json(const PGresult *r, int row, bool with_parties)
{
    json_t *o = json_object();
    char id[MARKET_ID_MAX];
    market_id_format(id, "agr_", (uint64_t)db_get_i64(r, row, 0));
    json_object_set_new(o, "id", json_string(id));
    if (with_parties) {
        market_id_format(id, "ord_", (uint64_t)db_get_i64(r, row, 1));
        json_object_set_new(o, "order", json_string(id));
        market_id_format(id, "lst_", (uint64_t)db_get_i64(r, row, 2));
        json_object_set_new(o, "listing", json_string(id));
        json_object_set_new(o, "buyer", json_string(PQgetvalue(r, row, 3)));
        json_object_set_new(o, "provider", json_string(PQgetvalue(r, row, 4)));
    }
    json_object_set_new(o, "precision", json_string(PQgetvalue(r, row, 5)));
    json_object_set_new(o, "region", json_string(PQgetvalue(r, row, 6)));
    int64_t devices = db_get_i64(r, row, 7), tflops = db_get_i64(r, row, 8),
            hours = db_get_i64(r, row, 9), start = db_get_i64(r, row, 14);
    json_object_set_new(o, "devices", json_integer(devices));
    json_object_set_new(o, "tflops_per_device", json_integer(tflops));
    json_object_set_new(o, "hours", json_integer(hours));
    money_json_set(o, "price", db_get_i64(r, row, 10));
    if (with_parties) {
        money_json_set(o, "value", db_get_i64(r, row, 11));
        money_json_set(o, "commission", db_get_i64(r, row, 12));
        json_object_set_new(o, "maker", json_string(PQgetvalue(r, row, 13)));
        json_set_time(o, "start", start);
        json_set_time(o, "end", start + hours * 3600);
        json_object_set_new(o, "endpoint", json_string(PQgetvalue(r, row, 15)));
        json_object_set_new(o, "status", json_string(PQgetvalue(r, row, 16)));
        json_object_set_new(o, "ledger_seq", json_integer(db_get_i64(r, row, 17)));
        json_set_time(o, "created_at", db_get_i64(r, row, 18));
        json_object_set_new(o, "commission_bps", json_integer(db_get_i64(r, row, 19)));
        json_set_time(o, "deliver_by", db_get_i64(r, row, 20));
        json_set_time(o, "started_at", db_get_i64(r, row, 21)); /* null until accepted */
        json_set_time(o, "ends_at", db_get_i64(r, row, 22));
        json_set_time(o, "metered_until", db_get_i64(r, row, 23));
        money_json_set(o, "escrow", db_get_i64(r, row, 24));
    } else {
        json_set_time(o, "time", db_get_i64(r, row, 18));
    }
    return o;
}

enum db_status db_agreement_get(struct db_conn *c, uint64_t id, PGresult **res)
{
    return get_one(c, "agreement_get", id, res);
}

enum db_status db_agreement_list(struct db_conn *c, const char *party, uint64_t after, int limit,
                                 PGresult **res)
{
    char a[24], l[16];
    snprintf(a, sizeof a, "%" PRIu64, after);
    snprintf(l, sizeof l, "%d", limit);
    const char *p[] = { party, a, l };
    return db_query(c, "agreement_list", 3, p, res);
}

enum db_status db_trade_list(struct db_conn *c, const char *precision, const char *region,
                             uint64_t before, int limit, PGresult **res)
{
    char b[24], l[16];
    snprintf(b, sizeof b, "%" PRIu64, before);
    snprintf(l, sizeof l, "%d", limit);
    const char *p[] = { precision, region, b, l };
    return db_query(c, "trade_list", 4, p, res);
}

enum db_status db_market_stats(struct db_conn *c, PGresult **res)
{
    return db_query(c, "market_stats", 0, NULL, res);
}

enum db_status db_price_index(struct db_conn *c, const char *precision, int hours, PGresult **res)
{
    char h[16];
    snprintf(h, sizeof h, "%d", hours);
    const char *p[] = { precision, h };
    return db_query(c, "price_index", 2, p, res);
}

enum db_status db_account_get(struct db_conn *c, const char *owner, int64_t balance[ACC_NKINDS])
{
    memset(balance, 0, ACC_NKINDS * sizeof *balance);
    const char *p[] = { owner };
    PGresult *r;
    enum db_status st = db_query(c, "account_get", 1, p, &r);
    if (st != DB_OK)
        return st;
    for (int i = 0; i < PQntuples(r); i++)
        for (int k = 0; k < ACC_NKINDS; k++)
            if (strcmp(PQgetvalue(r, i, 0), account_kind_names[k]) == 0)
                balance[k] = db_get_i64(r, i, 1);
    PQclear(r);
    return DB_OK;
}

enum db_status db_job_put(struct db_conn *c, const char *buyer, const uint8_t sha256[32],
                          const char *description, int quota)
{
    char hash[2 * 32 + 3], q[16];
    snprintf(q, sizeof q, "%d", quota);
    const char *p[] = { buyer, db_bytea_param(sha256, 32, hash), description, q };
    PGresult *r;
    enum db_status st = db_query_row(c, "job_put", 4, p, &r);
    PQclear(r);
    if (st == DB_NO_ROWS && db_job_exists(c, buyer, sha256) == DB_OK)
        st = DB_OK; /* stored before: storing it again is harmless */
    return st;
}

enum db_status db_job_exists(struct db_conn *c, const char *buyer, const uint8_t sha256[32])
{
    char hash[2 * 32 + 3];
    const char *p[] = { buyer, db_bytea_param(sha256, 32, hash) };
    PGresult *r;
    enum db_status st = db_query_row(c, "job_exists", 2, p, &r);
    PQclear(r);
    return st;
}
