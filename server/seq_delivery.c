/*
 * The sequencer's part of delivery and billing (docs/delivery.md): acceptance and failure of a
 * delivery, usage reports and their bills and commission, disputes, settlement and the end of an
 * agreement. Every balance lives in the sequencer's memory (sequencer.c), so every movement of
 * money happens here, in the batch transaction, as double entry next to its ledger record.
 *
 * Agreement and bill state is read with FOR UPDATE inside the batch and written back at once:
 * the sequencer is its only writer, so a later command of the same batch reads what an earlier
 * one wrote.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"
#include "server/db_delivery.h"
#include "server/http.h"
#include "server/market.h"
#include "server/money.h"
#include "server/sequencer_int.h"
#include "server/server.h"

/* ---- state in and out ---------------------------------------------------------------------- */

/* Whether a row was found. A database failure stops cpxd: the batch may already have moved the
 * books. */
static bool found(enum db_status st, const char *what)
{
    if (st != DB_OK && st != DB_NO_ROWS)
        seq_fatal(what, st);
    return st == DB_OK;
}

static bool agreement_load(struct ctx *x, uint64_t id, struct agreement_state *a)
{
    return found(db_agreement_state(x->c, id, a), "reading an agreement");
}

static void agreement_store(struct ctx *x, const struct agreement_state *a)
{
    enum db_status st = db_agreement_state_put(x->c, a);
    if (st != DB_OK)
        seq_fatal("writing an agreement", st);
}

static bool bill_load(struct ctx *x, uint64_t id, struct bill_state *b)
{
    return found(db_bill_state(x->c, id, b), "reading a bill");
}

static void bill_status(struct ctx *x, uint64_t id, const char *status, const char *reason,
                        const char *note)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%" PRIu64, id);
    const char *p[] = { idt, status, reason, note };
    enum db_status st = db_command(x->c, "dlv_bill_status", 4, p, NULL);
    if (st != DB_OK)
        seq_fatal("writing a bill", st);
}

static void delivery_done(struct ctx *x, uint64_t agreement, const char *state)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%" PRIu64, agreement);
    const char *p[] = { idt, state };
    enum db_status st = db_command(x->c, "dlv_delivery_done", 2, p, NULL);
    if (st != DB_OK)
        seq_fatal("writing a delivery", st);
}

/* The bill as the API shows it, read back inside the batch. */
static json_t *bill_answer(struct ctx *x, uint64_t id)
{
    PGresult *r;
    enum db_status st = db_bill_get(x->c, id, &r);
    if (st != DB_OK)
        seq_fatal("reading a bill back", st);
    json_t *o = db_bill_json(r, 0);
    PQclear(r);
    return o;
}

/* The answer to a party's request about a bill: the bill, and the seq of the request's record. */
static json_t *bill_receipt(struct ctx *x, uint64_t id, uint64_t seq)
{
    json_t *body = json_object();
    json_object_set_new(body, "bill", bill_answer(x, id));
    json_object_set_new(body, "ledger_seq", json_integer((json_int_t)seq));
    return body;
}

/* ---- money --------------------------------------------------------------------------------- */

/* A bill's money leaves escrow: the amount to the provider, the commission to the exchange. note:
 * the operator's, when a resolution settles it (NULL otherwise). */
static void settle(struct ctx *x, struct agreement_state *a, const struct bill_state *b,
                   const char *note)
{
    struct sequencer *s = x->s;
    char ref[MARKET_ID_MAX];
    market_id_format(ref, "bil_", b->id);
    struct account *buyer = seq_account(s, a->buyer);
    seq_move(s, buyer, ACC_ESCROW, seq_account(s, a->provider), ACC_AVAILABLE, b->amount, "settle",
             ref);
    seq_move(s, buyer, ACC_ESCROW, seq_account(s, EXCHANGE_ACCOUNT), ACC_COMMISSION, b->commission,
             "commission", ref);
    a->escrow_left -= b->amount + b->commission;
    a->reserved -= b->amount + b->commission;
    bill_status(x, b->id, "settled", NULL, note);
    json_t *p = json_object();
    json_object_set_new(p, "agreement", seq_id_json("agr_", a->id));
    json_object_set_new(p, "bill", json_string(ref));
    json_object_set_new(p, "to_provider_micro", json_integer(b->amount));
    json_object_set_new(p, "commission_micro", json_integer(b->commission));
    seq_record(s, CPX_KIND_SETTLEMENT, p, NULL, x->c);
}

/* The agreement is over: what no bill took or holds goes back to the buyer. */
static void complete(struct ctx *x, struct agreement_state *a, const char *reason)
{
    struct sequencer *s = x->s;
    char ref[MARKET_ID_MAX];
    market_id_format(ref, "agr_", a->id);
    int64_t released = a->escrow_left - a->reserved;
    struct account *buyer = seq_account(s, a->buyer);
    seq_move(s, buyer, ACC_ESCROW, buyer, ACC_AVAILABLE, released, "release", ref);
    a->escrow_left = a->reserved;
    snprintf(a->status, sizeof a->status, "completed");
    json_t *p = json_object();
    json_object_set_new(p, "agreement", json_string(ref));
    json_object_set_new(p, "metered_until", json_integer(a->metered_until));
    json_object_set_new(p, "reason", json_string(reason));
    json_object_set_new(p, "released_micro", json_integer(released));
    seq_record(s, CPX_KIND_COMPLETION, p, NULL, x->c);
}

/* The second the next ledger record will carry (its ts: the clock in milliseconds, never before
 * the record before it). The batch's own clock (s->now) was read at its start; a record made
 * later in a long batch would say a later second, and an auditor compares the two. */
static int64_t record_clock(const struct sequencer *s)
{
    int64_t ms = now_us() / 1000;
    if (ms < s->b.ledger.ts_ms)
        ms = s->b.ledger.ts_ms;
    return ms / 1000;
}

/* ---- delivery ------------------------------------------------------------------------------ */

void seq_do_accept(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    const struct seq_delivery *d = &cmd->delivery;
    struct agreement_state a;
    if (!agreement_load(x, d->agreement, &a) || strcmp(a.provider, d->party.id) != 0) {
        tx_fail(out, E_AGREEMENT_NOT_FOUND, NULL, NULL);
        return;
    }
    if (strcmp(a.status, "active") == 0 || strcmp(a.status, "completed") == 0) {
        tx_ok(out, 200, json_object()); /* a retry whose first answer was lost: nothing to do */
        return;
    }
    if (strcmp(a.status, "pending_delivery") != 0) {
        tx_fail(out, E_INVALID_STATE, NULL, "The agreement has %s.", a.status);
        return;
    }
    a.started_at = record_clock(s); /* the second of the acceptance record */
    a.ends_at = a.started_at + a.hours * 3600;
    snprintf(a.status, sizeof a.status, "active");
    agreement_store(x, &a);
    delivery_done(x, a.id, "accepted");
    json_t *p = json_object();
    json_object_set_new(p, "agreement", seq_id_json("agr_", a.id));
    json_object_set_new(p, "delivery", seq_id_json("dlv_", a.id));
    json_object_set_new(p, "start", json_integer(a.started_at));
    json_object_set_new(p, "end", json_integer(a.ends_at));
    seq_record_signed(s, CPX_KIND_ACCEPTANCE, p, &d->party, x->c);
    tx_ok(out, 200, json_object());
}

/* The listing as this batch left it, when the batch changed it (it may have closed a moment
 * ago: the database still says what it was before the batch). */
static struct live_listing *batch_listing(const struct sequencer *s, uint64_t id)
{
    for (size_t i = 0; i < s->b.nlistings; i++)
        if (s->b.listings[i]->row.v.id == id)
            return s->b.listings[i];
    return NULL;
}

/* The ask a listing was placed with, as the engine took it (listings.ask). False when the row
 * has none (listed before delivery existed). */
static bool stored_ask(struct ctx *x, uint64_t id, mx_command *c, char status[16])
{
    char idt[24];
    snprintf(idt, sizeof idt, "%" PRIu64, id);
    const char *p[] = { idt };
    PGresult *r;
    enum db_status st = db_query_row(x->c, "dlv_listing_ask", 1, p, &r);
    if (st == DB_NO_ROWS)
        return false;
    if (st != DB_OK)
        seq_fatal("reading a listing's ask", st);
    db_get_str(r, 0, 1, status, 16);
    uint8_t bin[MX_COMMAND_MAX_BYTES];
    size_t len = ((size_t)PQgetlength(r, 0, 0) - 2) / 2; /* bytea as text: \x and hex */
    bool ok = len <= sizeof bin && cpx_hex_decode(PQgetvalue(r, 0, 0) + 2, 2 * len, bin, len);
    PQclear(r);
    size_t used;
    if (!ok || !mx_decode_command(bin, len, c, &used) || c->kind != MX_CMD_ASK)
        seq_fatal("decoding a listing's ask", DB_HARD);
    return true;
}

/*
 * Puts devices of a listing back on the book: onto the listing while it rests, or the listing
 * again (same id, its own terms) when it was filled and its window is still open. Returns how
 * many went back: 0 when the listing was cancelled or expired, or the engine refused.
 */
static int64_t relist(struct ctx *x, uint64_t id, int64_t devices)
{
    struct sequencer *s = x->s;
    struct live_listing *l = u64map_get(&s->listings, id);
    mx_command c = { 0 };
    if (l != NULL) {
        c.kind = MX_CMD_REPLACE_ASK;
        if (!mx_get_ask(s->engine, id, &c.ask))
            seq_fatal("finding a resting listing", DB_HARD);
        c.ask.devices += devices;
    } else {
        /* Not resting. Closed in this batch: its object says how (and holds its ask when it is
         * new); otherwise its row does. One object per listing, so the batch writes one row. */
        l = batch_listing(s, id);
        char status[16];
        if (l != NULL && l->is_new) {
            c.kind = MX_CMD_ASK;
            c.ask = l->ask;
        } else if (!stored_ask(x, id, &c, status)) {
            return 0;
        }
        bool filled = l != NULL ? l->row.v.status == TRADE_FILLED : strcmp(status, "filled") == 0;
        if (!filled)
            return 0; /* withdrawn by its provider or expired: nothing to return to */
        c.ask.devices = devices;
    }
    bool resting = u64map_get(&s->listings, id) != NULL;
    seq_run(s, &c);
    if (seq_rejection(s) != NULL)
        return 0; /* e.g. its window has closed */
    if (!resting) {
        if (l == NULL &&
            ((l = calloc(1, sizeof *l)) == NULL || db_listing_get(x->c, id, &l->row) != DB_OK))
            seq_fatal("reopening a listing", DB_HARD);
        if (!u64map_put(&s->listings, id, l))
            seq_fatal("reopening a listing", DB_HARD);
        l->row.v.status = TRADE_OPEN;
        l->row.v.cancel_reason[0] = '\0';
        l->closed_at = 0;
    }
    l->row.v.remaining = c.ask.devices;
    seq_dirty_listing(s, l);
    x->relisting = true; /* the listing's own record stands; fills make agreements as usual */
    seq_apply_events(x);
    x->relisting = false;
    return devices;
}

void seq_do_undeliverable(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    struct agreement_state a;
    if (!agreement_load(x, cmd->delivery.agreement, &a)) {
        tx_fail(out, E_AGREEMENT_NOT_FOUND, NULL, NULL);
        return;
    }
    if (strcmp(a.status, "pending_delivery") != 0) {
        tx_fail(out, E_INVALID_STATE, NULL, "The agreement is %s.", a.status);
        return;
    }
    char ref[MARKET_ID_MAX];
    market_id_format(ref, "agr_", a.id);
    int64_t released = a.escrow_left;
    struct account *buyer = seq_account(s, a.buyer);
    seq_move(s, buyer, ACC_ESCROW, buyer, ACC_AVAILABLE, released, "release", ref);
    a.escrow_left = 0;
    snprintf(a.status, sizeof a.status, "failed");
    agreement_store(x, &a);
    delivery_done(x, a.id, "failed");
    int64_t returned = relist(x, a.listing, a.devices);
    json_t *p = json_object();
    json_object_set_new(p, "agreement", json_string(ref));
    json_object_set_new(p, "listing", seq_id_json("lst_", a.listing));
    json_object_set_new(p, "devices_returned", json_integer(returned));
    json_object_set_new(p, "reason", json_string("undeliverable"));
    json_object_set_new(p, "released_micro", json_integer(released));
    seq_record(s, CPX_KIND_FAILURE, p, NULL, x->c);
    tx_ok(out, 200, json_object());
}

/* ---- usage, bills, commission -------------------------------------------------------------- */

/* The commission on a bill (docs/delivery.md §4). */
static int64_t bill_commission(const struct sequencer *s, const struct agreement_state *a,
                               int64_t amount)
{
    int64_t c = 0;
    if (amount == 0 || !money_commission(amount, a->commission_bps, &c))
        return 0;
    if (c < s->srv->cfg->fee_min_micro)
        c = s->srv->cfg->fee_min_micro;
    int64_t left = a->commission - a->commission_billed;
    return c < left ? c : left;
}

void seq_do_usage(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    const struct seq_usage *u = &cmd->usage;
    struct agreement_state a;
    if (!agreement_load(x, u->agreement, &a) || strcmp(a.provider, cmd->req->caller.id) != 0) {
        tx_fail(out, E_AGREEMENT_NOT_FOUND, NULL, NULL);
        return;
    }
    if (strcmp(a.status, "active") != 0) {
        tx_fail(out, E_AGREEMENT_NOT_ACTIVE, NULL, "The agreement is %s.", a.status);
        return;
    }
    if (u->start < a.started_at || u->end > a.ends_at || u->start >= u->end || u->end > s->now) {
        tx_fail(out, E_USAGE_OUTSIDE_WINDOW,
                u->start < a.started_at ? "period_start" : "period_end",
                "A period must lie inside the agreement's running time, from %" PRId64
                " to %" PRId64 " (unix), end after it starts, and not end in the future.",
                a.started_at, a.ends_at);
        return;
    }
    if (u->start < a.metered_until) {
        tx_fail(out, E_USAGE_OVERLAPS, "period_start",
                "The agreement is metered until %" PRId64 " (unix); a report starts there or "
                "later.",
                a.metered_until);
        return;
    }
    if (u->device_seconds > a.devices * (u->end - u->start)) {
        tx_fail(out, E_USAGE_EXCEEDS_CAPACITY, "device_seconds",
                "%" PRId64 " devices for %" PRId64 " s give at most %" PRId64 " device-seconds.",
                a.devices, u->end - u->start, a.devices * (u->end - u->start));
        return;
    }
    int64_t amount;
    if (!money_usage(a.price, a.tflops, u->device_seconds, &amount) ||
        amount > a.escrow_left - a.reserved)
        seq_fatal("pricing usage within its agreement's escrow", DB_HARD);
    seq_fees_in_force(x);
    int64_t commission = bill_commission(s, &a, amount);
    uint64_t n = s->next_usage++;
    bool final = u->final || u->end == a.ends_at; /* the job finished, or the time is up */
    int64_t dispute_until = s->now + s->srv->cfg->dispute_window;

    json_t *p = json_object();
    json_object_set_new(p, "id", seq_id_json("use_", n));
    json_object_set_new(p, "agreement", seq_id_json("agr_", a.id));
    json_object_set_new(p, "period_start", json_integer(u->start));
    json_object_set_new(p, "period_end", json_integer(u->end));
    json_object_set_new(p, "device_seconds", json_integer(u->device_seconds));
    json_object_set_new(p, "final", json_boolean(final));
    uint64_t usage_seq = seq_record(s, CPX_KIND_USAGE, p, cmd->req, x->c);
    p = json_object();
    json_object_set_new(p, "id", seq_id_json("bil_", n));
    json_object_set_new(p, "usage", seq_id_json("use_", n));
    json_object_set_new(p, "agreement", seq_id_json("agr_", a.id));
    json_object_set_new(p, "amount_micro", json_integer(amount));
    json_object_set_new(p, "final", json_boolean(final));
    json_object_set_new(p, "dispute_until", json_integer(dispute_until));
    uint64_t bill_seq = seq_record(s, CPX_KIND_BILL, p, NULL, x->c);
    p = json_object();
    json_object_set_new(p, "bill", seq_id_json("bil_", n));
    json_object_set_new(p, "agreement", seq_id_json("agr_", a.id));
    json_object_set_new(p, "bps", json_integer(a.commission_bps));
    json_object_set_new(p, "minimum_micro", json_integer(s->srv->cfg->fee_min_micro));
    json_object_set_new(p, "commission_micro", json_integer(commission));
    seq_record(s, CPX_KIND_COMMISSION, p, NULL, x->c);

    enum { N, AGR, START, END, DS, AMOUNT, COMMISSION, UNTIL, USAGE_SEQ, BILL_SEQ, NV };
    int64_t nums[NV] = { [N] = (int64_t)n,
                         [AGR] = (int64_t)a.id,
                         [START] = u->start,
                         [END] = u->end,
                         [DS] = u->device_seconds,
                         [AMOUNT] = amount,
                         [COMMISSION] = commission,
                         [UNTIL] = dispute_until,
                         [USAGE_SEQ] = (int64_t)usage_seq,
                         [BILL_SEQ] = (int64_t)bill_seq };
    char v[NV][24];
    for (int k = 0; k < NV; k++)
        snprintf(v[k], sizeof v[k], "%" PRId64, nums[k]);
    const char *up[] = { v[N], v[AGR], a.provider, v[START], v[END], v[DS], v[USAGE_SEQ] };
    const char *bp[] = { v[N],     v[AGR],     a.buyer,   a.provider,    v[START],
                         v[END],   v[DS],      v[AMOUNT], v[COMMISSION], final ? "true" : "false",
                         v[UNTIL], v[BILL_SEQ] };
    enum db_status st = db_command(x->c, "dlv_usage_insert", 7, up, NULL);
    if (st == DB_OK)
        st = db_command(x->c, "dlv_bill_insert", 12, bp, NULL);
    if (st != DB_OK)
        seq_fatal("writing a usage report and its bill", st);

    a.metered_until = u->end;
    a.reserved += amount + commission;
    a.commission_billed += commission;
    if (s->srv->cfg->dispute_window == 0) {
        struct bill_state b = {
            .id = n, .agreement = a.id, .amount = amount, .commission = commission
        };
        settle(x, &a, &b, NULL);
    }
    if (final)
        complete(x, &a, "final_usage");
    agreement_store(x, &a);

    json_t *body = json_object();
    json_object_set_new(body, "usage", seq_id_json("use_", n));
    json_object_set_new(body, "ledger_seq", json_integer((json_int_t)usage_seq));
    json_object_set_new(body, "bill", bill_answer(x, n));
    tx_ok(out, 201, body);
}

/* ---- disputes ------------------------------------------------------------------------------ */

void seq_do_dispute(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    struct bill_state b;
    if (!bill_load(x, cmd->bill.bill, &b) || strcmp(b.buyer, cmd->req->caller.id) != 0) {
        tx_fail(out, E_BILL_NOT_FOUND, NULL, NULL);
        return;
    }
    if (strcmp(b.status, "open") != 0) {
        tx_fail(out, E_BILL_NOT_OPEN, NULL, "The bill is %s.", b.status);
        return;
    }
    if (record_clock(s) >= b.dispute_until) { /* the dispute record's second decides */
        tx_fail(out, E_DISPUTE_WINDOW_CLOSED, NULL, NULL);
        return;
    }
    bill_status(x, b.id, "disputed", cmd->bill.text, NULL);
    json_t *p = json_object();
    json_object_set_new(p, "bill", seq_id_json("bil_", b.id));
    json_object_set_new(p, "reason", json_string(cmd->bill.text));
    uint64_t seq = seq_record(s, CPX_KIND_DISPUTE, p, cmd->req, x->c);
    tx_ok(out, 200, bill_receipt(x, b.id, seq));
}

void seq_do_resolve(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    struct bill_state b;
    struct agreement_state a;
    if (!bill_load(x, cmd->bill.bill, &b)) {
        tx_fail(out, E_BILL_NOT_FOUND, NULL, NULL);
        return;
    }
    if (strcmp(b.status, "disputed") != 0) {
        tx_fail(out, E_BILL_NOT_OPEN, NULL, "Only a disputed bill is resolved; this one is %s.",
                b.status);
        return;
    }
    if (!agreement_load(x, b.agreement, &a))
        seq_fatal("finding a bill's agreement", DB_HARD);
    int64_t refunded = cmd->bill.refund ? b.amount + b.commission : 0;
    json_t *p = json_object();
    json_object_set_new(p, "bill", seq_id_json("bil_", b.id));
    json_object_set_new(p, "outcome", json_string(cmd->bill.refund ? "refund" : "pay"));
    json_object_set_new(p, "note", json_string(cmd->bill.text));
    json_object_set_new(p, "refunded_micro", json_integer(refunded));
    uint64_t seq = seq_record(s, CPX_KIND_RESOLUTION, p, cmd->req, x->c);
    if (cmd->bill.refund) {
        char ref[MARKET_ID_MAX];
        market_id_format(ref, "bil_", b.id);
        struct account *buyer = seq_account(s, a.buyer);
        seq_move(s, buyer, ACC_ESCROW, buyer, ACC_AVAILABLE, refunded, "refund", ref);
        a.escrow_left -= refunded;
        a.reserved -= refunded;
        bill_status(x, b.id, "refunded", NULL, cmd->bill.text);
    } else {
        settle(x, &a, &b, cmd->bill.text);
    }
    agreement_store(x, &a);
    tx_ok(out, 200, bill_receipt(x, b.id, seq));
}

/* ---- time ---------------------------------------------------------------------------------- */

/* Ids from a one-column query with one integer parameter. */
static PGresult *due(struct ctx *x, const char *statement, int64_t until)
{
    char t[24];
    snprintf(t, sizeof t, "%" PRId64, until);
    const char *p[] = { t };
    PGresult *r;
    enum db_status st = db_query(x->c, statement, 1, p, &r);
    if (st != DB_OK)
        seq_fatal("finding what is due", st);
    return r;
}

void seq_books_tick(struct ctx *x)
{
    struct sequencer *s = x->s;
    PGresult *r = due(x, "dlv_bills_due", s->now);
    for (int i = 0; i < PQntuples(r); i++) {
        struct bill_state b;
        struct agreement_state a;
        if (!bill_load(x, (uint64_t)db_get_i64(r, i, 0), &b) || !agreement_load(x, b.agreement, &a))
            seq_fatal("finding a bill due", DB_HARD);
        settle(x, &a, &b, NULL);
        agreement_store(x, &a);
    }
    PQclear(r);
    r = due(x, "dlv_agreements_due", s->now - s->srv->cfg->usage_grace);
    for (int i = 0; i < PQntuples(r); i++) {
        struct agreement_state a;
        if (!agreement_load(x, (uint64_t)db_get_i64(r, i, 0), &a))
            seq_fatal("finding an agreement due", DB_HARD);
        complete(x, &a, "usage_grace");
        agreement_store(x, &a);
    }
    PQclear(r);
}

/* ---- the fee schedule ---------------------------------------------------------------------- */

void seq_fees_in_force(struct ctx *x)
{
    struct sequencer *s = x->s;
    if (s->fees_recorded)
        return;
    const struct config *cfg = s->srv->cfg;
    PGresult *r;
    enum db_status st = db_query(x->c, "dlv_fees_last", 0, NULL, &r);
    if (st != DB_OK)
        seq_fatal("reading the fee schedule in force", st);
    bool same = false;
    if (PQntuples(r) == 1) {
        json_t *last = json_loads(PQgetvalue(r, 0, 0), 0, NULL);
        same = last != NULL &&
               json_integer_value(json_object_get(last, "maker_bps")) == s->maker_bps &&
               json_integer_value(json_object_get(last, "taker_bps")) == s->taker_bps &&
               json_integer_value(json_object_get(last, "minimum_micro")) == cfg->fee_min_micro;
        json_decref(last);
    }
    PQclear(r);
    s->fees_recorded = true;
    if (same)
        return;
    json_t *p = json_object();
    json_object_set_new(p, "maker_bps", json_integer(s->maker_bps));
    json_object_set_new(p, "taker_bps", json_integer(s->taker_bps));
    json_object_set_new(p, "minimum_micro", json_integer(cfg->fee_min_micro));
    seq_record(s, CPX_KIND_FEE_SCHEDULE, p, NULL, x->c);
}
