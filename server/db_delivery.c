/*
 * Delivery and billing queries: see db_delivery.h.
 */
#include "server/db_delivery.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server/market.h"
#include "server/money.h"
#include "server/trading.h"

#define AGREEMENT_STATE_COLUMNS                                                                    \
    "id, listing_id, buyer, provider, devices, tflops, hours, price, value, commission, "          \
    "commission_bps, deliver_by, coalesce(started_at, 0), coalesce(ends_at, 0), "                  \
    "coalesce(metered_until, 0), escrow_left, reserved, commission_billed, status"

const struct db_statement db_delivery_statements[] = {
    /* the sequencer's */
    { "dlv_agreement_state",
      "SELECT " AGREEMENT_STATE_COLUMNS " FROM agreements WHERE id = $1 FOR UPDATE", 1 },
    { "dlv_agreement_put",
      "UPDATE agreements SET status = $2, started_at = nullif($3::bigint, 0), "
      "ends_at = nullif($4::bigint, 0), metered_until = nullif($5::bigint, 0), escrow_left = $6, "
      "reserved = $7, commission_billed = $8, closed_at = nullif($9::bigint, 0) WHERE id = $1",
      9 },
    { "dlv_bill_state",
      "SELECT id, agreement_id, buyer, provider, amount, commission, dispute_until, status "
      "FROM bills WHERE id = $1 FOR UPDATE",
      1 },
    { "dlv_bill_status",
      "UPDATE bills SET status = $2, settled_at = CASE WHEN $2 IN ('settled', 'refunded') "
      "THEN now() END, dispute_reason = coalesce($3, dispute_reason), "
      "resolution_note = coalesce($4, resolution_note) WHERE id = $1",
      4 },
    { "dlv_bills_due",
      "SELECT id FROM bills WHERE status = 'open' AND dispute_until <= $1 ORDER BY id LIMIT 1000",
      1 },
    { "dlv_agreements_due",
      "SELECT id FROM agreements WHERE status = 'active' AND ends_at <= $1 ORDER BY id LIMIT 1000",
      1 },
    { "dlv_usage_insert",
      "INSERT INTO usage_reports (id, agreement_id, provider, period_start, period_end, "
      "device_seconds, ledger_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now())",
      7 },
    { "dlv_bill_insert",
      "INSERT INTO bills (id, agreement_id, buyer, provider, period_start, period_end, "
      "device_seconds, amount, commission, final, status, dispute_until, ledger_seq, created_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12, now())",
      12 },
    { "dlv_usage_max", "SELECT coalesce(max(id), 0) FROM usage_reports", 0 },
    { "dlv_delivery_done",
      "UPDATE deliveries SET state = $2, lease_until = NULL WHERE agreement_id = $1", 2 },
    { "dlv_listing_ask", "SELECT ask, status FROM listings WHERE id = $1 AND ask IS NOT NULL", 1 },
    { "dlv_fees_last",
      "SELECT (convert_from(r.record, 'UTF8')::json -> 'payload')::text FROM ledger_records r "
      "WHERE r.kind = 'fee_schedule' "
      "ORDER BY r.seq DESC LIMIT 1",
      0 },
    /* the dispatcher's */
    { "dlv_claim",
      "UPDATE deliveries d SET lease_until = now() + make_interval(secs => $1::int), "
      "attempts = d.attempts + 1 WHERE d.agreement_id IN (SELECT agreement_id FROM deliveries "
      "WHERE state = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR "
      "lease_until < now()) ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
      "RETURNING d.agreement_id, d.provider, d.endpoint, coalesce(d.endpoint_pin, ''), "
      "d.attempts, d.deliver_by",
      1 },
    { "dlv_attempt_insert",
      "INSERT INTO delivery_attempts (agreement_id, attempt, started_at, duration_ms, "
      "http_status, outcome, error) VALUES ($1, $2, to_timestamp($3), $4, $5, $6, left($7, 500)) "
      "ON CONFLICT DO NOTHING",
      7 },
    { "dlv_reschedule",
      "UPDATE deliveries SET next_attempt_at = to_timestamp($2), lease_until = NULL, "
      "last_error = left($3, 500) WHERE agreement_id = $1 AND state = 'pending'",
      3 },
    { "dlv_leases_clear", "UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL",
      0 },
    { "dlv_envelope_job",
      "SELECT encode(j.sha256, 'hex'), j.description, i.public_key FROM agreements a "
      "JOIN identities i ON i.id = a.provider LEFT JOIN orders o ON o.id = a.order_id "
      "LEFT JOIN jobs j ON j.buyer = a.buyer AND encode(j.sha256, 'hex') = o.spec->>'job_sha256' "
      "WHERE a.id = $1",
      1 },
    /* the handlers' */
    { "dlv_bill_get", "SELECT " BILL_COLUMNS " FROM bills b WHERE b.id = $1", 1 },
    { "dlv_bill_list",
      "SELECT " BILL_COLUMNS " FROM bills b WHERE ($1::text IS NULL OR b.buyer = $1 OR "
      "b.provider = $1) AND ($2::bigint = 0 OR b.agreement_id = $2) AND ($3::text IS NULL OR "
      "b.status = $3) AND b.id > $4 ORDER BY b.id LIMIT $5",
      5 },
    { "dlv_delivery_get",
      "SELECT d.state, d.endpoint, d.deliver_by, extract(epoch FROM d.next_attempt_at)::bigint "
      "FROM deliveries d WHERE d.agreement_id = $1 AND ($2::text IS NULL OR d.provider = $2 OR "
      "EXISTS (SELECT 1 FROM agreements a WHERE a.id = d.agreement_id AND a.buyer = $2))",
      2 },
    { "dlv_attempts",
      "SELECT attempt, extract(epoch FROM started_at)::bigint, duration_ms, http_status, "
      "outcome, error FROM delivery_attempts WHERE agreement_id = $1 ORDER BY attempt",
      1 },
    /* a statement: balances at a time (the sum of earlier entries); the entries of a period */
    { "dlv_statement_balances",
      "SELECT kind, sum(amount)::bigint FROM (SELECT to_kind AS kind, amount FROM entries "
      "WHERE to_owner = $1 AND created_at < to_timestamp($2) UNION ALL SELECT from_kind, "
      "-amount FROM entries WHERE from_owner = $1 AND created_at < to_timestamp($2)) m "
      "GROUP BY kind",
      2 },
    { "dlv_statement_entries",
      "SELECT id, extract(epoch FROM created_at)::bigint, from_owner, from_kind, to_owner, "
      "to_kind, amount, reason, ref FROM entries WHERE (from_owner = $1 OR to_owner = $1) AND "
      "created_at >= to_timestamp($2) AND created_at < to_timestamp($3) ORDER BY id LIMIT 100001",
      3 },
    /* the public books, paged by a text cursor */
    { "dlv_audit_bills",
      "SELECT id, agreement_id, amount, commission, status, ledger_seq FROM bills "
      "WHERE id > $1::bigint ORDER BY id LIMIT $2",
      2 },
    { "dlv_audit_balances",
      "SELECT owner, kind, balance FROM accounts WHERE (owner, kind) > ($1, $2) "
      "ORDER BY owner, kind LIMIT $3",
      3 },
    { NULL, NULL, 0 },
};

static void agreement_from_row(const PGresult *r, struct agreement_state *a)
{
    a->id = (uint64_t)db_get_i64(r, 0, 0);
    a->listing = (uint64_t)db_get_i64(r, 0, 1);
    db_get_str(r, 0, 2, a->buyer, sizeof a->buyer);
    db_get_str(r, 0, 3, a->provider, sizeof a->provider);
    int64_t *fields[] = { &a->devices,    &a->tflops,           &a->hours,          &a->price,
                          &a->value,      &a->commission,       &a->commission_bps, &a->deliver_by,
                          &a->started_at, &a->ends_at,          &a->metered_until,  &a->escrow_left,
                          &a->reserved,   &a->commission_billed };
    for (int k = 0; k < (int)(sizeof fields / sizeof fields[0]); k++)
        *fields[k] = db_get_i64(r, 0, 4 + k);
    db_get_str(r, 0, 18, a->status, sizeof a->status);
}

enum db_status db_agreement_state(struct db_conn *c, uint64_t id, struct agreement_state *out)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%" PRIu64, id);
    const char *p[] = { idt };
    PGresult *r;
    enum db_status st = db_query_row(c, "dlv_agreement_state", 1, p, &r);
    if (st == DB_OK)
        agreement_from_row(r, out);
    PQclear(r);
    return st;
}

enum db_status db_agreement_state_put(struct db_conn *c, const struct agreement_state *a)
{
    char v[9][24];
    bool closed = strcmp(a->status, "completed") == 0 || strcmp(a->status, "failed") == 0;
    int64_t nums[] = { (int64_t)a->id,
                       0,
                       a->started_at,
                       a->ends_at,
                       a->metered_until,
                       a->escrow_left,
                       a->reserved,
                       a->commission_billed,
                       closed ? (int64_t)1 : 0 };
    for (int k = 0; k < 9; k++)
        snprintf(v[k], sizeof v[k], "%" PRId64, nums[k]);
    if (closed) /* closed_at: the time it closed, from its end or deadline */
        snprintf(v[8], sizeof v[8], "%" PRId64, a->ends_at > 0 ? a->ends_at : a->deliver_by);
    const char *p[] = { v[0], a->status, v[2], v[3], v[4], v[5], v[6], v[7], v[8] };
    return db_command(c, "dlv_agreement_put", 9, p, NULL);
}

enum db_status db_bill_state(struct db_conn *c, uint64_t id, struct bill_state *out)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%" PRIu64, id);
    const char *p[] = { idt };
    PGresult *r;
    enum db_status st = db_query_row(c, "dlv_bill_state", 1, p, &r);
    if (st == DB_OK) {
        out->id = (uint64_t)db_get_i64(r, 0, 0);
        out->agreement = (uint64_t)db_get_i64(r, 0, 1);
        db_get_str(r, 0, 2, out->buyer, sizeof out->buyer);
        db_get_str(r, 0, 3, out->provider, sizeof out->provider);
        out->amount = db_get_i64(r, 0, 4);
        out->commission = db_get_i64(r, 0, 5);
        out->dispute_until = db_get_i64(r, 0, 6);
        db_get_str(r, 0, 7, out->status, sizeof out->status);
    }
    PQclear(r);
    return st;
}

json_t *db_bill_json(const PGresult *r, int row)
{
    json_t *o = json_object();
    char id[MARKET_ID_MAX];
    uint64_t n = (uint64_t)db_get_i64(r, row, 0);
    market_id_format(id, "bil_", n);
    json_object_set_new(o, "id", json_string(id));
    market_id_format(id, "agr_", (uint64_t)db_get_i64(r, row, 1));
    json_object_set_new(o, "agreement", json_string(id));
    market_id_format(id, "use_", n);
    json_object_set_new(o, "usage", json_string(id));
    json_object_set_new(o, "buyer", json_string(PQgetvalue(r, row, 2)));
    json_object_set_new(o, "provider", json_string(PQgetvalue(r, row, 3)));
    json_set_time(o, "period_start", db_get_i64(r, row, 4));
    json_set_time(o, "period_end", db_get_i64(r, row, 5));
    json_object_set_new(o, "device_seconds", json_integer(db_get_i64(r, row, 6)));
    money_json_set(o, "amount", db_get_i64(r, row, 7));
    money_json_set(o, "commission", db_get_i64(r, row, 8));
    json_object_set_new(o, "final", json_boolean(PQgetvalue(r, row, 9)[0] == 't'));
    json_object_set_new(o, "status", json_string(PQgetvalue(r, row, 10)));
    json_set_time(o, "dispute_until", db_get_i64(r, row, 11));
    json_object_set_new(o, "ledger_seq", json_integer(db_get_i64(r, row, 12)));
    json_set_time(o, "created_at", db_get_i64(r, row, 13));
    json_set_time(o, "settled_at", db_get_i64(r, row, 14));
    const char *reason = PQgetvalue(r, row, 15), *note = PQgetvalue(r, row, 16);
    json_object_set_new(o, "dispute_reason", reason[0] ? json_string(reason) : json_null());
    json_object_set_new(o, "resolution_note", note[0] ? json_string(note) : json_null());
    return o;
}

enum db_status db_bill_get(struct db_conn *c, uint64_t id, PGresult **res)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%" PRIu64, id);
    const char *p[] = { idt };
    return db_query_row(c, "dlv_bill_get", 1, p, res);
}

enum db_status db_bill_list(struct db_conn *c, const char *party, uint64_t agreement,
                            const char *status, uint64_t after, int limit, PGresult **res)
{
    char a[24], af[24], l[16];
    snprintf(a, sizeof a, "%" PRIu64, agreement);
    snprintf(af, sizeof af, "%" PRIu64, after);
    snprintf(l, sizeof l, "%d", limit);
    const char *p[] = { party, a, status, af, l };
    return db_query(c, "dlv_bill_list", 5, p, res);
}
