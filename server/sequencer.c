/*
 * The sequencer: see sequencer.h and docs/trading.md §5.
 *
 * State the sequencer thread alone touches:
 *   engine     the books (matching/)
 *   orders     live (resting) orders by id, with their hold; listings likewise
 *   accounts   every owner's balances, all of them, loaded at start: this thread is the only
 *              writer of accounts, so memory is the truth and each batch writes back what moved
 *   names      vendor and vendor/model names and the engine's small ids for them
 *
 * A batch, in one transaction:
 *   1. lock the ledger head; record the requests' signatures (durable replay guard); re-read the
 *      callers' keys and status; find repeated client order ids. A failure here answers the
 *      batch 503 and changes nothing.
 *   2. expire what is due, then apply each command: money, engine, and for each engine event the
 *      ledger record, the entries and the rows it implies. Every command's answer is built as
 *      soon as it is applied (sequencer order).
 *   3. write journal, rows, entries, balances, ledger and checkpoint, the batch row; COMMIT.
 *      From step 2 on the engine has moved: a failure stops cpxd (it must not serve books that
 *      differ from the database; a restart rebuilds them from what committed).
 *   4. publish the book snapshot, answer and resume every request.
 */
#include "server/sequencer.h"
#include "server/sequencer_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger/codec.h"
#include "server/db_identities.h"
#include "server/db_trading.h"
#include "server/http.h"
#include "server/log.h"
#include "server/market.h"
#include "server/metrics.h"
#include "server/money.h"
#include "server/ratelimit.h"
#include "server/records.h"
#include "server/server.h"
#include "server/txn.h"
#include "server/u64map.h"
#include "server/util.h"

#define JOURNAL_PAGE  10000 /* journal rows read per query at start */
#define QUEUE_BATCHES 8     /* commands queued beyond this many full batches get 503 busy */

/* ---- small helpers ------------------------------------------------------------------------- */

__attribute__((noreturn)) void seq_fatal(const char *what, enum db_status st)
{
    log_error("sequencer: %s failed (status %d) after the books moved; stopping so that a "
              "restart rebuilds them from what committed",
              what, (int)st);
    _exit(70);
}

static void sink(void *ctx, const mx_event *ev)
{
    struct sequencer *s = ctx;
    if (s->nevents == s->events_cap) {
        size_t cap = s->events_cap ? s->events_cap * 2 : 256;
        mx_event *bigger = realloc(s->events, cap * sizeof *bigger);
        if (bigger == NULL) {
            s->events_failed = true;
            return;
        }
        s->events = bigger;
        s->events_cap = cap;
    }
    s->events[s->nevents++] = *ev;
}

/* Eight bytes (of a hash or a signature) as a u64map key, never 0. */
static uint64_t bytes_key(const uint8_t *b)
{
    uint64_t k = 0;
    for (int i = 0; i < 8; i++)
        k = k << 8 | b[i];
    return k ? k : 1;
}

/* The key of (buyer, client order id) in the batch's maps. SHA-256, not a table hash: the maps
 * keep no copy of the pair to compare, so two pairs must never share a key. */
static uint64_t key_of(const char *buyer, const char *coid)
{
    uint8_t h[32];
    cpx_sha256_2(buyer, strlen(buyer) + 1, coid, strlen(coid), h);
    return bytes_key(h);
}

bool seq_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 64;
    void *bigger = realloc(*arr, c * size);
    if (bigger == NULL)
        return false;
    *arr = bigger;
    *cap = c;
    return true;
}

/* ---- COPY text rows ------------------------------------------------------------------------ */

/* Appends one COPY text field (escaped), preceded by a tab unless first. NULL is SQL NULL. */
void seq_copy_text(struct strbuf *b, bool first, const char *s)
{
    if (!first)
        strbuf_add(b, "\t", 1);
    if (s == NULL) {
        strbuf_add(b, "\\N", 2);
        return;
    }
    for (; *s; s++) {
        switch (*s) {
        case '\\': strbuf_add(b, "\\\\", 2); break;
        case '\t': strbuf_add(b, "\\t", 2); break;
        case '\n': strbuf_add(b, "\\n", 2); break;
        case '\r': strbuf_add(b, "\\r", 2); break;
        default: strbuf_add(b, s, 1);
        }
    }
}

void seq_copy_i64(struct strbuf *b, int64_t v)
{
    strbuf_addf(b, "\t%" PRId64, v);
}

/* A timestamptz field from unix seconds (0: NULL). */
void seq_copy_time(struct strbuf *b, int64_t unix_s)
{
    char t[RFC3339_MAX];
    seq_copy_text(b, false, unix_s ? format_rfc3339(unix_s * 1000000, t) : NULL);
}

/* ---- accounts and entries ------------------------------------------------------------------ */

struct account *seq_account(struct sequencer *s, const char *owner)
{
    uint64_t k = market_owner_number(owner);
    struct account *a = u64map_get(&s->accounts, k);
    if (a != NULL) {
        if (strcmp(a->owner, owner) != 0)
            seq_fatal("an account number collision", DB_HARD);
        return a;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL || !u64map_put(&s->accounts, k, a))
        seq_fatal("allocating an account", DB_HARD);
    snprintf(a->owner, sizeof a->owner, "%s", owner);
    return a;
}

static void touch_account(struct sequencer *s, struct account *a)
{
    if (a->dirty)
        return;
    if (!seq_grow((void **)&s->b.accounts, &s->b.accounts_cap, s->b.naccounts,
                  sizeof *s->b.accounts))
        seq_fatal("allocating", DB_HARD);
    a->dirty = true;
    s->b.accounts[s->b.naccounts++] = a;
}

/* Moves amount (> 0) between two accounts as one entry. The callers have checked the source
 * covers it; a shortfall here is a bug of ours, and stopping beats a negative balance. */
void seq_move(struct sequencer *s, struct account *from, enum account_kind fk, struct account *to,
              enum account_kind tk, int64_t amount, const char *reason, const char *ref)
{
    if (amount == 0)
        return;
    if (amount < 0 || (fk != ACC_EXTERNAL && from->bal[fk] < amount) ||
        !money_add(to->bal[tk], amount, &to->bal[tk]))
        seq_fatal("a money movement check", DB_HARD);
    from->bal[fk] -= amount;
    touch_account(s, from);
    touch_account(s, to);
    from->changed |= 1u << fk;
    to->changed |= 1u << tk;
    struct strbuf *e = &s->b.entries;
    strbuf_addf(e, "%" PRIu64 "\t%" PRIu64, s->next_entry++, s->batch_id);
    seq_copy_text(e, false, from->owner);
    seq_copy_text(e, false, account_kind_names[fk]);
    seq_copy_text(e, false, to->owner);
    seq_copy_text(e, false, account_kind_names[tk]);
    strbuf_addf(e, "\t%" PRId64, amount);
    seq_copy_text(e, false, reason);
    seq_copy_text(e, false, ref);
    seq_copy_time(e, s->now);
    strbuf_add(e, "\n", 1);
    s->b.wrote = true;
}

/* ---- names --------------------------------------------------------------------------------- */

/* A u64map key for a text (names, identity ids): its hash, never 0. Equal keys are checked with
 * strcmp by the callers, since two texts may share one. */
static uint64_t text_key(const char *text)
{
    uint64_t h = cpx_fnv1a64(text);
    return h ? h : 1; /* a map key is never 0 */
}

/* The engine id of a vendor or vendor/model name the market has seen, or 0. */
static uint32_t name_find(const struct sequencer *s, const char *text)
{
    uintptr_t i = (uintptr_t)u64map_get(&s->name_index, text_key(text));
    if (i == 0)
        return 0;
    if (strcmp(s->names[i - 1].text, text) == 0)
        return s->names[i - 1].id;
    for (size_t k = 0; k < s->nnames; k++) /* two names with one hash: look at them all */
        if (strcmp(s->names[k].text, text) == 0)
            return s->names[k].id;
    return 0;
}

/* Remembers a name (ids are 1, 2, ... in order). */
static bool name_add(struct sequencer *s, const char *text)
{
    if (!seq_grow((void **)&s->names, &s->names_cap, s->nnames, sizeof *s->names))
        return false;
    struct name *n = &s->names[s->nnames++];
    n->id = (uint32_t)s->nnames;
    snprintf(n->text, sizeof n->text, "%s", text);
    uint64_t h = text_key(text);
    return u64map_get(&s->name_index, h) != NULL ||
           u64map_put(&s->name_index, h, (void *)(uintptr_t)s->nnames);
}

/* The engine id of a listed vendor or model, assigned on first use (new names are written with
 * the batch). Only listings add names: an order's allow-list may name only what has been
 * listed, so buyers cannot grow the table. */
static uint32_t name_id(struct sequencer *s, const char *text)
{
    uint32_t id = name_find(s, text);
    if (id != 0)
        return id;
    if (!name_add(s, text))
        seq_fatal("allocating a name", DB_HARD);
    s->b.wrote = true;
    return (uint32_t)s->nnames;
}

/* ---- live orders and listings -------------------------------------------------------------- */

static void dirty_order(struct sequencer *s, struct live_order *o)
{
    if (o->dirty)
        return;
    if (!seq_grow((void **)&s->b.orders, &s->b.orders_cap, s->b.norders, sizeof *s->b.orders))
        seq_fatal("allocating", DB_HARD);
    o->dirty = true;
    s->b.orders[s->b.norders++] = o;
    s->b.wrote = true;
}

void seq_dirty_listing(struct sequencer *s, struct live_listing *l)
{
    if (l->dirty)
        return;
    if (!seq_grow((void **)&s->b.listings, &s->b.listings_cap, s->b.nlistings,
                  sizeof *s->b.listings))
        seq_fatal("allocating", DB_HARD);
    l->dirty = true;
    s->b.listings[s->b.nlistings++] = l;
    s->b.wrote = true;
}

static void free_order(struct live_order *o)
{
    order_row_free(&o->row);
    free(o->terms_text);
    free(o);
}

static void free_listing(struct live_listing *l)
{
    listing_row_free(&l->row);
    free(l->terms_text);
    free(l);
}

/* ---- the engine and the journal ------------------------------------------------------------ */

/* Appends cmd to the journal of the batch in progress. */
static void journal(struct sequencer *s, const mx_command *cmd)
{
    uint8_t buf[MX_COMMAND_MAX_BYTES];
    size_t len = mx_encode_command(cmd, buf, sizeof buf);
    if (len == 0)
        seq_fatal("encoding an engine command", DB_HARD);
    char hex[2 * MX_COMMAND_MAX_BYTES + 1];
    cpx_hex_encode(buf, len, hex);
    strbuf_addf(&s->b.journal, "%" PRIu64 "\t%" PRIu64 "\t\\\\x%s\n", ++s->journal_len, s->batch_id,
                hex);
    s->b.wrote = true;
}

/*
 * Runs one engine command at the sequencer's clock and journals it unless the engine refused it.
 * Events land in s->events. A refused command changed nothing: the batch began with an expiry
 * at this same clock, so there was nothing left for it to expire first. Leaving it out of the
 * journal keeps a replay independent of what only made it fail here (--max-resting, memory).
 */
mx_reason seq_run(struct sequencer *s, mx_command *cmd)
{
    cmd->now = s->now;
    s->nevents = 0;
    mx_reason r = mx_apply(s->engine, cmd);
    if (s->events_failed)
        seq_fatal("recording engine events", DB_HARD);
    if (r == MX_OK)
        journal(s, cmd);
    else
        for (size_t i = 0; i < s->nevents; i++)
            if (s->events[i].kind != MX_EV_REJECTED)
                seq_fatal("a refused command that changed the books", DB_HARD);
    return r;
}

/* The event rejecting the command, if any. */
const mx_event *seq_rejection(const struct sequencer *s)
{
    for (size_t i = 0; i < s->nevents; i++)
        if (s->events[i].kind == MX_EV_REJECTED)
            return &s->events[i];
    return NULL;
}

void seq_refuse_engine(struct tx_reply *out, const mx_event *ev, const char *what)
{
    if (ev->reason == MX_R_FULL)
        tx_fail(out, E_BOOK_FULL, NULL, NULL);
    else if (ev->reason == MX_R_NO_MEMORY)
        tx_fail(out, E_BUSY, NULL, "The exchange is short of memory; retry shortly.");
    else
        tx_fail(out, E_ORDER_REJECTED, NULL, "The matching engine refused the %s: %s.", what,
                mx_reason_name((mx_reason)ev->reason));
}

/* ---- records ------------------------------------------------------------------------------- */

uint64_t seq_record(struct sequencer *s, enum cpx_kind kind, json_t *payload,
                    const struct request *party, struct db_conn *c)
{
    struct cpx_party signed_request;
    if (party != NULL)
        records_party_of(party, &signed_request);
    return seq_record_signed(s, kind, payload, party ? &signed_request : NULL, c);
}

uint64_t seq_record_signed(struct sequencer *s, enum cpx_kind kind, json_t *payload,
                           const struct cpx_party *party, struct db_conn *c)
{
    uint64_t seq = 0;
    enum db_status st = records_market(c, &s->b.ledger, kind, payload, party, &seq);
    json_decref(payload);
    if (st != DB_OK)
        seq_fatal("appending a ledger record", st);
    s->b.wrote = true;
    return seq;
}

json_t *seq_id_json(const char *prefix, uint64_t id)
{
    char text[MARKET_ID_MAX];
    market_id_format(text, prefix, id);
    return json_string(text);
}

/* ---- applying engine events ---------------------------------------------------------------- */

/* The hold the rest of an order needs now (trading_hold on its remaining quantity), from the
 * terms it was placed with. */
static bool order_hold_now(const struct live_order *o, int64_t *need)
{
    const json_t *t = o->row.terms;
    const json_t *max = json_object_get(json_object_get(t, "constraints"), "max_tflops");
    const char *precision = json_string_value(json_object_get(t, "precision"));
    int p = precision ? market_precision_index(precision) : -1;
    if (p < 0)
        return false;
    int64_t per =
        json_is_integer(max) ? json_integer_value(max) : (int64_t)mx_max_tflops((unsigned)p);
    return trading_hold(json_integer_value(json_object_get(t, "limit_price_micro")),
                        json_object_get(t, "devices") != NULL, o->row.v.remaining, per,
                        json_integer_value(json_object_get(t, "hours")), o->row.hold_bps, need);
}

static void on_fill(struct ctx *x, const mx_event *ev)
{
    struct sequencer *s = x->s;
    bool bid_takes = ev->taker_side == MX_BID;
    uint64_t bid_id = bid_takes ? ev->taker_id : ev->maker_id;
    uint64_t ask_id = bid_takes ? ev->maker_id : ev->taker_id;
    struct live_order *o = u64map_get(&s->orders, bid_id);
    struct live_listing *l = u64map_get(&s->listings, ask_id);
    if (o == NULL || l == NULL)
        seq_fatal("finding the two sides of a fill", DB_HARD);
    int64_t value, commission, escrow;
    /* The fee in force, but never more than the order's hold was made for (fees may have been
     * raised by a restart since it was placed). */
    int64_t bps = bid_takes ? s->taker_bps : s->maker_bps;
    if (bps > o->row.hold_bps)
        bps = o->row.hold_bps;
    if (!money_value(ev->price, ev->tflops, ev->devices, ev->hours, &value) ||
        !money_commission(value, bps, &commission) || !money_add(value, commission, &escrow) ||
        escrow > o->row.v.hold_left)
        seq_fatal("pricing a fill within its order's hold", DB_HARD);
    seq_fees_in_force(x);
    uint64_t agr = s->next_agreement++;
    char agr_id[MARKET_ID_MAX];
    market_id_format(agr_id, "agr_", agr);
    struct account *buyer = seq_account(s, o->row.v.buyer);
    seq_move(s, buyer, ACC_HELD, buyer, ACC_ESCROW, escrow, "fill", agr_id);
    o->row.v.hold_left -= escrow;
    o->row.v.filled_devices += ev->devices;
    o->row.v.remaining = bid_takes ? ev->taker_remaining : ev->maker_remaining;
    l->row.v.remaining = bid_takes ? ev->maker_remaining : ev->taker_remaining;
    /* Price improvement comes back now: what the rest of the order could still cost stays held,
     * the rest of its hold returns to available (and all of it when it is done). */
    int64_t need = 0, released = 0;
    if (o->row.v.remaining > 0 && !order_hold_now(o, &need))
        seq_fatal("pricing the rest of an order", DB_HARD);
    if (o->row.v.hold_left > need) {
        released = o->row.v.hold_left - need;
        seq_move(s, buyer, ACC_HELD, buyer, ACC_AVAILABLE, released, "release", agr_id);
        o->row.v.hold_left = need;
    }
    json_array_append_new(o->row.agreements, json_string(agr_id));
    dirty_order(s, o);
    seq_dirty_listing(s, l);

    const char *precision = market_precisions[ev->precision];
    const char *region = market_regions[ev->region].id;
    const char *maker = bid_takes ? "provider" : "buyer";
    json_t *p = json_object();
    json_object_set_new(p, "id", json_string(agr_id));
    json_object_set_new(p, "order", seq_id_json("ord_", bid_id));
    json_object_set_new(p, "listing", seq_id_json("lst_", ask_id));
    json_object_set_new(p, "buyer", json_string(o->row.v.buyer));
    json_object_set_new(p, "provider", json_string(l->row.v.provider));
    json_object_set_new(p, "precision", json_string(precision));
    json_object_set_new(p, "region", json_string(region));
    json_object_set_new(p, "devices", json_integer(ev->devices));
    json_object_set_new(p, "tflops", json_integer(ev->tflops));
    json_object_set_new(p, "hours", json_integer(ev->hours));
    json_object_set_new(p, "price_micro", json_integer(ev->price));
    json_object_set_new(p, "value_micro", json_integer(value));
    json_object_set_new(p, "commission_micro", json_integer(commission));
    json_object_set_new(p, "escrow_micro", json_integer(escrow));
    json_object_set_new(p, "released_micro", json_integer(released));
    json_object_set_new(p, "maker", json_string(maker));
    json_object_set_new(p, "start", json_integer(ev->start));
    json_object_set_new(p, "commission_bps", json_integer(bps));
    int64_t deliver_by = (ev->start > s->now ? ev->start : s->now) + s->srv->cfg->delivery_window;
    json_object_set_new(p, "deliver_by", json_integer(deliver_by));
    uint64_t seq = seq_record(s, CPX_KIND_AGREEMENT, p, NULL, x->c);

    struct strbuf *a = &s->b.agreements;
    strbuf_addf(a, "%" PRIu64 "\t%" PRIu64 "\t%" PRIu64, agr, bid_id, ask_id);
    seq_copy_text(a, false, o->row.v.buyer);
    seq_copy_text(a, false, l->row.v.provider);
    seq_copy_text(a, false, precision);
    seq_copy_text(a, false, region);
    seq_copy_i64(a, ev->devices);
    seq_copy_i64(a, ev->tflops);
    seq_copy_i64(a, ev->hours);
    seq_copy_i64(a, ev->price);
    seq_copy_i64(a, value);
    seq_copy_i64(a, commission);
    seq_copy_text(a, false, maker);
    seq_copy_i64(a, ev->start);
    seq_copy_text(a, false, l->row.endpoint);
    seq_copy_i64(a, (int64_t)seq);
    seq_copy_time(a, s->now);
    seq_copy_i64(a, bps);
    seq_copy_i64(a, deliver_by);
    seq_copy_i64(a, escrow);
    strbuf_add(a, "\n", 1);

    /* The job goes into the outbox in this same transaction (docs/delivery.md §2). */
    const json_t *pin = json_object_get(l->row.terms, "endpoint_pin");
    struct strbuf *d = &s->b.deliveries;
    strbuf_addf(d, "%" PRIu64, agr);
    seq_copy_text(d, false, l->row.v.provider);
    seq_copy_text(d, false, l->row.endpoint);
    seq_copy_text(d, false, json_string_value(pin));
    seq_copy_time(d, ev->start > s->now ? ev->start : s->now); /* not before the agreed start */
    seq_copy_i64(d, deliver_by);
    seq_copy_time(d, s->now);
    strbuf_add(d, "\n", 1);
    s->b.agreed = true;
}

/* An order or listing left the book: filled (DONE), cancelled or expired. */
static void on_close(struct ctx *x, const mx_event *ev)
{
    struct sequencer *s = x->s;
    enum trade_status status = ev->kind == MX_EV_DONE      ? TRADE_FILLED
                               : ev->kind == MX_EV_EXPIRED ? TRADE_EXPIRED
                                                           : TRADE_CANCELLED;
    const char *reason = status == TRADE_FILLED ? "" : trading_cancel_reason(ev->reason);
    if (status == TRADE_EXPIRED)
        reason = "expired";
    int64_t left = status == TRADE_FILLED ? 0 : ev->remaining;
    json_t *p = json_object();
    if (ev->side == MX_BID) {
        struct live_order *o = u64map_del(&s->orders, ev->id);
        if (o == NULL)
            seq_fatal("finding a closing order", DB_HARD);
        int64_t released = o->row.v.hold_left;
        char id[MARKET_ID_MAX];
        market_id_format(id, "ord_", ev->id);
        struct account *buyer = seq_account(s, o->row.v.buyer);
        seq_move(s, buyer, ACC_HELD, buyer, ACC_AVAILABLE, released, "release", id);
        o->row.v.hold_left = 0;
        o->row.v.status = status;
        o->row.v.remaining = left;
        snprintf(o->row.v.cancel_reason, sizeof o->row.v.cancel_reason, "%s", reason);
        o->closed_at = s->now;
        dirty_order(s, o);
        json_object_set_new(p, "id", json_string(id));
        json_object_set_new(p, "released_micro", json_integer(released));
    } else {
        struct live_listing *l = u64map_del(&s->listings, ev->id);
        if (l == NULL)
            seq_fatal("finding a closing listing", DB_HARD);
        l->row.v.status = status;
        l->row.v.remaining = left;
        snprintf(l->row.v.cancel_reason, sizeof l->row.v.cancel_reason, "%s", reason);
        l->closed_at = s->now;
        seq_dirty_listing(s, l);
        json_object_set_new(p, "id", seq_id_json("lst_", ev->id));
    }
    if (status == TRADE_FILLED) {
        json_decref(p); /* a fill's agreement records say it all */
        return;
    }
    json_object_set_new(p, "reason", json_string(reason));
    json_object_set_new(p, "remaining", json_integer(left));
    /* Only the owner's own cancel carries its signed request; IOC/FOK remainders, self-trade
     * prevention and expiry are the exchange's doing. */
    const struct request *party = ev->reason == MX_R_USER ? x->req : NULL;
    seq_record(s, CPX_KIND_CANCEL, p, party, x->c);
}

static void on_accepted(struct ctx *x, const mx_event *ev)
{
    struct sequencer *s = x->s;
    json_t *p = json_object();
    if (ev->side == MX_BID) {
        struct live_order *o = u64map_get(&s->orders, ev->id);
        if (o == NULL)
            seq_fatal("finding an accepted order", DB_HARD);
        json_object_set_new(p, "id", seq_id_json("ord_", ev->id));
        json_object_set_new(p, "buyer", json_string(o->row.v.buyer));
        json_object_set_new(p, "client_order_id", json_string(o->row.v.client_order_id));
        json_object_set_new(p, "hold_micro", json_integer(o->row.v.hold));
        json_object_set_new(p, "hold_bps", json_integer(o->row.hold_bps));
        json_object_set(p, "terms", o->row.terms);
        o->row.v.ledger_seq = seq_record(s, CPX_KIND_ORDER, p, x->req, x->c);
    } else {
        struct live_listing *l = u64map_get(&s->listings, ev->id);
        if (l == NULL)
            seq_fatal("finding an accepted listing", DB_HARD);
        json_object_set_new(p, "id", seq_id_json("lst_", ev->id));
        json_object_set_new(p, "provider", json_string(l->row.v.provider));
        json_object_set(p, "terms", l->row.terms);
        l->row.v.ledger_seq = seq_record(s, CPX_KIND_LISTING, p, x->req, x->c);
    }
}

void seq_apply_events(struct ctx *x)
{
    struct sequencer *s = x->s;
    for (size_t i = 0; i < s->nevents; i++) {
        const mx_event *ev = &s->events[i];
        switch (ev->kind) {
        case MX_EV_ACCEPTED:
            if (!x->relisting)
                on_accepted(x, ev);
            break;
        case MX_EV_FILL: on_fill(x, ev); break;
        case MX_EV_DONE:
        case MX_EV_CANCELLED:
        case MX_EV_EXPIRED: on_close(x, ev); break;
        default: break; /* REJECTED is the caller's answer; REDUCED/REPLACED are not used */
        }
    }
}

/* ---- commands ------------------------------------------------------------------------------ */

static void answer_order(struct tx_reply *out, int status, const struct order_view *v)
{
    tx_ok(out, status, order_json(v));
}

/* --max-resting: a new order or listing is refused while the books hold that many. */
static bool book_full(const struct sequencer *s, struct tx_reply *out)
{
    if (mx_resting(s->engine) < (size_t)s->srv->cfg->max_resting)
        return false;
    tx_fail(out, E_BOOK_FULL, NULL, "The books hold %zu orders and listings, the most they may.",
            mx_resting(s->engine));
    return true;
}

static void do_order(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    struct seq_order *in = &cmd->order;
    const char *buyer = cmd->req->caller.id;
    uint64_t k = key_of(buyer, in->client_order_id);
    const struct order_row *earlier = NULL;
    struct live_order *placed = u64map_get(&s->b.placed, k);
    if (placed != NULL)
        earlier = &placed->row;
    else if ((earlier = u64map_get(&s->b.repeats, k)) != NULL) {
        /* still resting: answer as it is now, which may be after fills earlier in this batch */
        const struct live_order *live = u64map_get(&s->orders, earlier->v.id);
        if (live != NULL)
            earlier = &live->row;
    }
    if (earlier != NULL) {
        if (memcmp(earlier->body_sha256, in->body_sha256, 32) != 0)
            tx_fail(out, E_CLIENT_ORDER_ID_REUSED, "client_order_id",
                    "client_order_id %s was used for a different order; choose a new one.",
                    in->client_order_id);
        else
            answer_order(out, 200, &earlier->v);
        return;
    }
    struct account *a = seq_account(s, buyer);
    if (a->bal[ACC_AVAILABLE] < in->hold) {
        char need[MONEY_STR_MAX], have[MONEY_STR_MAX];
        money_format(in->hold, need);
        money_format(a->bal[ACC_AVAILABLE], have);
        tx_fail(
            out, E_INSUFFICIENT_FUNDS, NULL,
            "The order must hold %s CNY (limit price x the largest capacity it may fill x hours, "
            "plus the largest commission); %s CNY is available.",
            need, have);
        return;
    }
    mx_command c = { .kind = MX_CMD_BID, .bid = in->bid };
    for (unsigned i = 0; i < c.bid.n_allow; i++) {
        char vendor[MARKET_NAME_MAX];
        snprintf(vendor, sizeof vendor, "%s", in->models[i]);
        char *slash = strchr(vendor, '/');
        if (slash != NULL)
            *slash = '\0';
        c.bid.allow[i].vendor = name_find(s, vendor);
        c.bid.allow[i].model = slash ? name_find(s, in->models[i]) : 0;
        if (c.bid.allow[i].vendor == 0 || (slash != NULL && c.bid.allow[i].model == 0)) {
            tx_fail(out, E_ORDER_REJECTED, "constraints.models",
                    "No listing has offered %s: an allow-list names vendors and models the market "
                    "has seen listed.",
                    in->models[i]);
            return;
        }
    }
    if (book_full(s, out))
        return;
    seq_fees_in_force(x); /* the order's hold_bps comes from the schedule */
    c.bid.id = s->next_id++;
    c.bid.owner = market_owner_number(buyer);
    seq_run(s, &c);
    const mx_event *rej = seq_rejection(s);
    if (rej != NULL) {
        seq_refuse_engine(out, rej, "order");
        return;
    }
    struct live_order *o = calloc(1, sizeof *o);
    if (o == NULL || !u64map_put(&s->orders, c.bid.id, o) || !u64map_put(&s->b.placed, k, o))
        seq_fatal("allocating an order", DB_HARD);
    struct order_view *v = &o->row.v;
    v->id = c.bid.id;
    snprintf(v->buyer, sizeof v->buyer, "%s", buyer);
    snprintf(v->client_order_id, sizeof v->client_order_id, "%s", in->client_order_id);
    o->row.terms = in->terms;
    o->terms_text = in->terms_text;
    in->terms = NULL;
    in->terms_text = NULL;
    o->row.agreements = json_array();
    v->terms = o->row.terms;
    v->agreements = o->row.agreements;
    memcpy(o->row.body_sha256, in->body_sha256, 32);
    v->remaining = c.bid.quantity;
    v->hold = v->hold_left = in->hold;
    o->row.hold_bps = in->hold_bps;
    v->status = TRADE_OPEN;
    v->created_at = s->now;
    o->is_new = true;
    dirty_order(s, o);
    char id[MARKET_ID_MAX];
    market_id_format(id, "ord_", v->id);
    seq_move(s, a, ACC_AVAILABLE, a, ACC_HELD, in->hold, "hold", id);
    seq_apply_events(x);
    answer_order(out, 201, v);
}

static void do_listing(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    struct seq_listing *in = &cmd->listing;
    const char *provider = cmd->req->caller.id;
    if (book_full(s, out))
        return;
    mx_command c = { .kind = MX_CMD_ASK, .ask = in->ask };
    c.ask.id = s->next_id++;
    c.ask.owner = market_owner_number(provider);
    c.ask.vendor = name_id(s, in->vendor);
    c.ask.model = name_id(s, in->model);
    seq_run(s, &c);
    const mx_event *rej = seq_rejection(s);
    if (rej != NULL) {
        seq_refuse_engine(out, rej, "listing");
        return;
    }
    struct live_listing *l = calloc(1, sizeof *l);
    if (l == NULL || !u64map_put(&s->listings, c.ask.id, l))
        seq_fatal("allocating a listing", DB_HARD);
    struct listing_view *v = &l->row.v;
    l->ask = c.ask;
    v->id = c.ask.id;
    snprintf(v->provider, sizeof v->provider, "%s", provider);
    l->row.terms = in->terms;
    l->terms_text = in->terms_text;
    in->terms = NULL;
    in->terms_text = NULL;
    v->terms = l->row.terms;
    snprintf(l->row.region, sizeof l->row.region, "%s", in->region);
    snprintf(l->row.endpoint, sizeof l->row.endpoint, "%s", in->endpoint);
    v->devices = v->remaining = c.ask.devices;
    v->status = TRADE_OPEN;
    v->created_at = s->now;
    l->is_new = true;
    seq_dirty_listing(s, l);
    seq_apply_events(x);
    tx_ok(out, 201, listing_json(v));
}

static void do_cancel(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    const char *caller = cmd->req->caller.id;
    uint64_t id = cmd->cancel.id;
    struct live_order *o = cmd->cancel.listing ? NULL : u64map_get(&s->orders, id);
    struct live_listing *l = cmd->cancel.listing ? u64map_get(&s->listings, id) : NULL;
    const char *owner = o ? o->row.v.buyer : l ? l->row.v.provider : NULL;
    if (owner == NULL) {
        tx_fail(out, E_NOT_OPEN, NULL, "%s has already left the book.",
                cmd->cancel.listing ? "The listing" : "The order");
        return;
    }
    if (strcmp(owner, caller) != 0) {
        tx_fail(out, cmd->cancel.listing ? E_LISTING_NOT_FOUND : E_ORDER_NOT_FOUND, NULL, NULL);
        return;
    }
    mx_command c = { .kind = MX_CMD_CANCEL, .id = id };
    seq_run(s, &c);
    const mx_event *rej = seq_rejection(s);
    if (rej != NULL) { /* cannot happen: it was resting; answer as the engine says */
        seq_refuse_engine(out, rej, "cancel");
        return;
    }
    seq_apply_events(x); /* o / l stay valid until the batch is done (they are dirty) */
    if (o != NULL)
        answer_order(out, 200, &o->row.v);
    else
        tx_ok(out, 200, listing_json(&l->row.v));
}

/* A listing or deposit repeated under the same Idempotency-Key answers as the first time and
 * changes nothing (a retry after a lost answer must not list or credit twice). True when it
 * answered. */
static bool idem_repeat(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    if (cmd->idem_key == NULL)
        return false;
    uint8_t hash[32];
    int status;
    char *text = NULL;
    enum db_status st =
        db_idempotency_get(x->c, cmd->req->caller.id, cmd->idem_key, hash, &status, &text);
    if (st == DB_NO_ROWS)
        return false;
    if (st != DB_OK)
        seq_fatal("reading an idempotency key", st);
    if (memcmp(hash, cmd->idem_hash, 32) != 0)
        tx_fail(out, E_IDEMPOTENCY_KEY_REUSED, NULL, NULL);
    else
        tx_ok(out, status, json_loads(text, 0, NULL));
    free(text);
    return true;
}

/* Keeps a successful answer under the command's Idempotency-Key, in the batch's transaction. */
static void idem_store(struct ctx *x, struct seq_cmd *cmd, const struct tx_reply *out)
{
    if (cmd->idem_key == NULL || out->failed || out->body == NULL)
        return;
    char *text = json_dumps(out->body, JSON_COMPACT);
    enum db_status st = text ? db_idempotency_put(x->c, cmd->req->caller.id, cmd->idem_key,
                                                  cmd->idem_hash, out->status, text)
                             : DB_HARD;
    free(text);
    if (st != DB_OK)
        seq_fatal("storing an idempotency key", st);
}

static void do_deposit(struct ctx *x, struct seq_cmd *cmd, struct tx_reply *out)
{
    struct sequencer *s = x->s;
    struct account *to = seq_account(s, cmd->deposit.account);
    if (to->bal[ACC_AVAILABLE] > INT64_MAX - cmd->deposit.amount) {
        tx_fail(out, E_INVALID_FIELD, "amount", "The deposit would overflow the account.");
        return;
    }
    struct account *ext = seq_account(s, EXCHANGE_ACCOUNT);
    if (ext->bal[ACC_EXTERNAL] < INT64_MIN + cmd->deposit.amount) {
        tx_fail(out, E_INVALID_FIELD, "amount", "The exchange's deposits would overflow.");
        return;
    }
    json_t *p = json_object();
    json_object_set_new(p, "account", json_string(to->owner));
    json_object_set_new(p, "amount_micro", json_integer(cmd->deposit.amount));
    uint64_t seq = seq_record(s, CPX_KIND_DEPOSIT, p, cmd->req, x->c);
    char ref[32];
    snprintf(ref, sizeof ref, "dep_%" PRIu64, seq);
    seq_move(s, ext, ACC_EXTERNAL, to, ACC_AVAILABLE, cmd->deposit.amount, "deposit", ref);
    json_t *body = json_object();
    json_object_set_new(body, "account", account_json(to->owner, to->bal));
    json_object_set_new(body, "ledger_seq", json_integer((json_int_t)seq));
    tx_ok(out, 201, body);
}

/* ---- the batch: checks before the books move ----------------------------------------------- */

/* Appends s to a PostgreSQL array literal being built in b ("{" first, "}" at the end). */
static void array_add(struct strbuf *b, const char *s)
{
    strbuf_add(b, b->len > 1 ? ",\"" : "\"", b->len > 1 ? 2 : 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            strbuf_add(b, "\\", 1);
        strbuf_add(b, s, 1);
    }
    strbuf_add(b, "\"", 1);
}

static void array_addi(struct strbuf *b, int64_t v)
{
    strbuf_addf(b, b->len > 1 ? ",%" PRId64 : "%" PRId64, v);
}

static void array_open(struct strbuf *b)
{
    strbuf_reset(b);
    strbuf_add(b, "{", 1);
}

static void array_close(struct strbuf *b)
{
    strbuf_add(b, "}", 1);
}

/* Records the batch's request signatures; a command whose signature is already on record is a
 * replay (its first use was in an earlier run: the in-memory guard refuses the rest). */
static enum db_status check_signatures(struct sequencer *s, struct db_conn *c)
{
    struct strbuf sigs = { 0 }, exp = { 0 };
    array_open(&sigs);
    array_open(&exp);
    for (size_t i = 0; i < s->b.n; i++) {
        struct request *req = s->b.cmds[i]->req;
        if (req == NULL)
            continue; /* internal: signed by no one */
        char hex[33];
        cpx_hex_encode(req->auth.sig, 16, hex);
        array_add(&sigs, hex);
        array_addi(&exp, req->auth.ts + s->srv->cfg->clock_skew + 1);
    }
    array_close(&sigs);
    array_close(&exp);
    enum db_status st = DB_HARD;
    PGresult *r = NULL;
    if (!sigs.failed && !exp.failed) {
        const char *p[] = { sigs.data, exp.data };
        st = db_query(c, "seq_signatures", 2, p, &r);
    }
    if (st == DB_OK) {
        /* The rows inserted are the fresh signatures: find each one's command by its first
         * eight bytes (two commands of a batch never share a signature: the in-memory guard
         * refused the second). */
        struct u64map by_sig = { 0 };
        bool *fresh = calloc(s->b.n ? s->b.n : 1, sizeof *fresh);
        for (size_t i = 0; fresh && i < s->b.n; i++) {
            if (s->b.cmds[i]->req == NULL)
                fresh[i] = true;
            else if (!u64map_put(&by_sig, bytes_key(s->b.cmds[i]->req->auth.sig), (void *)(i + 1)))
                st = DB_HARD;
        }
        for (int row = 0; fresh && row < PQntuples(r); row++) {
            uint8_t got[16];
            if (!cpx_hex_decode(PQgetvalue(r, row, 0), 32, got, sizeof got))
                continue;
            uintptr_t i = (uintptr_t)u64map_get(&by_sig, bytes_key(got));
            if (i != 0 && s->b.cmds[i - 1]->req != NULL &&
                memcmp(s->b.cmds[i - 1]->req->auth.sig, got, sizeof got) == 0)
                fresh[i - 1] = true;
        }
        if (fresh == NULL)
            st = DB_HARD;
        for (size_t i = 0; st == DB_OK && i < s->b.n; i++)
            if (!fresh[i])
                tx_fail(&s->b.out[i], E_REPLAYED_REQUEST, NULL, NULL);
        free(fresh);
        u64map_free(&by_sig);
        PQclear(r);
    }
    strbuf_free(&sigs);
    strbuf_free(&exp);
    return st;
}

/* Reads the callers' keys and status again (as recheck_caller does for the other changes): a
 * command signed with a key rotated away while it was queued is refused rather than recorded.
 * No row lock is needed: a rotation appends its record in its own transaction, so it must take
 * the ledger head, which this batch holds until COMMIT; one that committed earlier is seen here,
 * one that commits later follows this batch's records in the ledger, as it does in time. */
static enum db_status check_callers(struct sequencer *s, struct db_conn *c)
{
    struct strbuf ids = { 0 };
    array_open(&ids);
    for (size_t i = 0; i < s->b.n; i++)
        if (s->b.cmds[i]->req != NULL)
            array_add(&ids, s->b.cmds[i]->req->caller.id);
    array_close(&ids);
    if (ids.failed)
        return DB_HARD;
    const char *p[] = { ids.data };
    PGresult *r;
    enum db_status st = db_query(c, "seq_callers", 1, p, &r);
    strbuf_free(&ids);
    if (st != DB_OK)
        return st;
    struct u64map rows = { 0 }; /* the callers' rows by id, so a batch is not O(commands x rows) */
    for (int row = 0; row < PQntuples(r); row++)
        if (!u64map_put(&rows, text_key(PQgetvalue(r, row, 0)), (void *)(uintptr_t)(row + 1)))
            st = DB_HARD;
    for (size_t i = 0; st == DB_OK && i < s->b.n; i++) {
        if (s->b.cmds[i]->req == NULL)
            continue;
        const struct identity *caller = &s->b.cmds[i]->req->caller;
        int row = (int)(uintptr_t)u64map_get(&rows, text_key(caller->id)) - 1;
        if (row >= 0 && strcmp(PQgetvalue(r, row, 0), caller->id) != 0) /* two ids, one hash */
            for (row = 0; row < PQntuples(r) && strcmp(PQgetvalue(r, row, 0), caller->id); row++)
                ;
        struct identity now = { 0 };
        bool found = row >= 0 && row < PQntuples(r);
        if (found) {
            snprintf(now.id, sizeof now.id, "%s", caller->id);
            if (!db_get_bytea(r, row, 1, now.public_key, sizeof now.public_key))
                st = DB_HARD;
            now.status = identity_status_of(PQgetvalue(r, row, 2));
        }
        if (!s->b.out[i].failed)
            tx_caller_still(caller, found ? &now : NULL, &s->b.out[i]);
    }
    u64map_free(&rows);
    PQclear(r);
    return st;
}

static void free_repeat(void *ctx, uint64_t key, void *value)
{
    (void)ctx;
    (void)key;
    order_row_free(value);
    free(value);
}

/* Finds the orders already placed under the batch's client order ids. */
static enum db_status find_repeats(struct sequencer *s, struct db_conn *c)
{
    struct strbuf buyers = { 0 }, coids = { 0 };
    array_open(&buyers);
    array_open(&coids);
    size_t n = 0;
    for (size_t i = 0; i < s->b.n; i++) {
        if (s->b.cmds[i]->op != SEQ_ORDER || s->b.out[i].failed)
            continue;
        array_add(&buyers, s->b.cmds[i]->req->caller.id);
        array_add(&coids, s->b.cmds[i]->order.client_order_id);
        n++;
    }
    array_close(&buyers);
    array_close(&coids);
    enum db_status st = DB_OK;
    if (n > 0 && (buyers.failed || coids.failed))
        st = DB_HARD;
    PGresult *r = NULL;
    if (n > 0 && st == DB_OK) {
        const char *p[] = { buyers.data, coids.data };
        st = db_query(c, "seq_repeats", 2, p, &r);
    }
    for (int row = 0; st == DB_OK && r != NULL && row < PQntuples(r); row++) {
        struct order_row *o = calloc(1, sizeof *o);
        if (o == NULL || !db_order_from_row(r, row, o)) {
            free(o);
            st = DB_HARD;
            break;
        }
        if (!u64map_put(&s->b.repeats, key_of(o->v.buyer, o->v.client_order_id), o)) {
            free_repeat(NULL, 0, o);
            st = DB_HARD;
        }
    }
    PQclear(r);
    strbuf_free(&buyers);
    strbuf_free(&coids);
    return st;
}

/* ---- the batch: writing it ----------------------------------------------------------------- */

static enum db_status copy_rows(struct db_conn *c, const char *what, const char *sql,
                                const struct strbuf *rows)
{
    if (rows->len == 0)
        return DB_OK;
    if (rows->failed)
        return DB_HARD;
    return db_copy_in(c, what, sql, rows->data, rows->len);
}

static void order_copy_row(struct strbuf *b, const struct live_order *o)
{
    const struct order_view *v = &o->row.v;
    const char *spec = o->terms_text;
    char hash[2 * 32 + 1];
    cpx_hex_encode(o->row.body_sha256, 32, hash);
    const json_t *prec = json_object_get(o->row.terms, "precision");
    strbuf_addf(b, "%" PRIu64, v->id);
    seq_copy_text(b, false, v->buyer);
    seq_copy_text(b, false, v->client_order_id);
    strbuf_addf(b, "\t\\\\x%s", hash);
    seq_copy_text(b, false, spec ? spec : "{}");
    seq_copy_text(b, false, json_is_string(prec) ? json_string_value(prec) : "");
    seq_copy_i64(b, v->remaining);
    seq_copy_i64(b, v->filled_devices);
    seq_copy_i64(b, v->hold);
    seq_copy_i64(b, v->hold_left);
    seq_copy_i64(b, o->row.hold_bps);
    seq_copy_text(b, false, trade_status_names[v->status]);
    seq_copy_text(b, false, v->cancel_reason[0] ? v->cancel_reason : NULL);
    seq_copy_i64(b, (int64_t)v->ledger_seq);
    seq_copy_time(b, v->created_at);
    seq_copy_time(b, o->closed_at);
    strbuf_add(b, "\n", 1);
    if (spec == NULL)
        b->failed = true;
}

static void listing_copy_row(struct strbuf *b, const struct live_listing *l)
{
    const struct listing_view *v = &l->row.v;
    const char *spec = l->terms_text;
    strbuf_addf(b, "%" PRIu64, v->id);
    seq_copy_text(b, false, v->provider);
    seq_copy_text(b, false, spec ? spec : "{}");
    seq_copy_text(b, false, l->row.region);
    seq_copy_i64(b, v->devices);
    seq_copy_i64(b, v->remaining);
    seq_copy_text(b, false, trade_status_names[v->status]);
    seq_copy_text(b, false, v->cancel_reason[0] ? v->cancel_reason : NULL);
    seq_copy_i64(b, (int64_t)v->ledger_seq);
    seq_copy_time(b, v->created_at);
    seq_copy_time(b, l->closed_at);
    mx_command ask = { .kind = MX_CMD_ASK, .ask = l->ask };
    uint8_t bin[MX_COMMAND_MAX_BYTES];
    char hex[2 * MX_COMMAND_MAX_BYTES + 1];
    size_t len = mx_encode_command(&ask, bin, sizeof bin);
    cpx_hex_encode(bin, len, hex);
    strbuf_addf(b, "\t\\\\x%s\n", hex);
    if (spec == NULL || len == 0)
        b->failed = true;
}

/* The changed rows that existed before the batch: one UPDATE each for orders and listings. */
static enum db_status update_rows(struct sequencer *s, struct db_conn *c)
{
    struct strbuf a[7] = { { 0 } };
    enum db_status st = DB_OK;
    size_t n = 0;
    for (int k = 0; k < 7; k++)
        array_open(&a[k]);
    for (size_t i = 0; i < s->b.norders; i++) {
        const struct live_order *o = s->b.orders[i];
        if (o->is_new)
            continue;
        const struct order_view *v = &o->row.v;
        array_addi(&a[0], (int64_t)v->id);
        array_addi(&a[1], v->remaining);
        array_addi(&a[2], v->filled_devices);
        array_addi(&a[3], v->hold_left);
        array_add(&a[4], trade_status_names[v->status]);
        array_add(&a[5], v->cancel_reason);
        array_addi(&a[6], o->closed_at);
        n++;
    }
    for (int k = 0; k < 7; k++)
        array_close(&a[k]);
    if (n > 0) {
        const char *p[7];
        for (int k = 0; k < 7; k++)
            p[k] = a[k].failed ? NULL : a[k].data;
        st = a[0].failed ? DB_HARD : db_command(c, "seq_orders_update", 7, p, NULL);
    }
    n = 0;
    for (int k = 0; k < 5; k++)
        array_open(&a[k]);
    for (size_t i = 0; st == DB_OK && i < s->b.nlistings; i++) {
        const struct live_listing *l = s->b.listings[i];
        if (l->is_new)
            continue;
        array_addi(&a[0], (int64_t)l->row.v.id);
        array_addi(&a[1], l->row.v.remaining);
        array_add(&a[2], trade_status_names[l->row.v.status]);
        array_add(&a[3], l->row.v.cancel_reason);
        array_addi(&a[4], l->closed_at);
        n++;
    }
    for (int k = 0; k < 5; k++)
        array_close(&a[k]);
    if (st == DB_OK && n > 0) {
        const char *p[5];
        for (int k = 0; k < 5; k++)
            p[k] = a[k].failed ? NULL : a[k].data;
        st = a[0].failed ? DB_HARD : db_command(c, "seq_listings_update", 5, p, NULL);
    }
    for (int k = 0; k < 7; k++)
        strbuf_free(&a[k]);
    return st;
}

static enum db_status put_accounts(struct sequencer *s, struct db_conn *c)
{
    if (s->b.naccounts == 0)
        return DB_OK;
    struct strbuf owners = { 0 }, kinds = { 0 }, balances = { 0 };
    array_open(&owners);
    array_open(&kinds);
    array_open(&balances);
    for (size_t i = 0; i < s->b.naccounts; i++)
        for (int k = 0; k < ACC_NKINDS; k++) {
            const struct account *a = s->b.accounts[i];
            if (!(a->changed & (1u << k)))
                continue;
            array_add(&owners, a->owner);
            array_add(&kinds, account_kind_names[k]);
            array_addi(&balances, a->bal[k]);
        }
    array_close(&owners);
    array_close(&kinds);
    array_close(&balances);
    enum db_status st = DB_HARD;
    if (!owners.failed && !kinds.failed && !balances.failed) {
        const char *p[] = { owners.data, kinds.data, balances.data };
        st = db_command(c, "seq_accounts_put", 3, p, NULL);
    }
    strbuf_free(&owners);
    strbuf_free(&kinds);
    strbuf_free(&balances);
    return st;
}

static enum db_status write_batch(struct sequencer *s, struct db_conn *c)
{
    struct batch *b = &s->b;
    enum db_status st = DB_OK;
    for (size_t i = b->names_before; st == DB_OK && i < s->nnames; i++) {
        char id[16];
        snprintf(id, sizeof id, "%" PRIu32, s->names[i].id);
        const char *p[] = { id, s->names[i].text };
        st = db_command(c, "seq_name_insert", 2, p, NULL);
    }
    for (size_t i = 0; i < b->nlistings; i++)
        if (b->listings[i]->is_new)
            listing_copy_row(&b->new_listings, b->listings[i]);
    for (size_t i = 0; i < b->norders; i++)
        if (b->orders[i]->is_new)
            order_copy_row(&b->new_orders, b->orders[i]);
    if (st == DB_OK)
        st = copy_rows(c, "listings_copy",
                       "COPY listings (id, provider, spec, region, devices, remaining, status, "
                       "cancel_reason, ledger_seq, created_at, closed_at, ask) FROM STDIN",
                       &b->new_listings);
    if (st == DB_OK)
        st = copy_rows(
            c, "orders_copy",
            "COPY orders (id, buyer, client_order_id, body_sha256, spec, precision, "
            "remaining, filled_devices, hold, hold_left, hold_bps, status, cancel_reason, "
            "ledger_seq, created_at, closed_at) FROM STDIN",
            &b->new_orders);
    if (st == DB_OK)
        st = update_rows(s, c);
    if (st == DB_OK)
        st = copy_rows(c, "agreements_copy",
                       "COPY agreements (id, order_id, listing_id, buyer, provider, precision, "
                       "region, devices, tflops, hours, price, value, commission, maker, start_at, "
                       "endpoint, ledger_seq, created_at, commission_bps, deliver_by, "
                       "escrow_left) FROM STDIN",
                       &b->agreements);
    if (st == DB_OK)
        st = copy_rows(c, "deliveries_copy",
                       "COPY deliveries (agreement_id, provider, endpoint, endpoint_pin, "
                       "next_attempt_at, deliver_by, created_at) FROM STDIN",
                       &b->deliveries);
    if (st == DB_OK)
        st = copy_rows(c, "entries_copy",
                       "COPY entries (id, batch, from_owner, from_kind, to_owner, to_kind, amount, "
                       "reason, ref, created_at) FROM STDIN",
                       &b->entries);
    if (st == DB_OK)
        st = put_accounts(s, c);
    if (st == DB_OK)
        st = copy_rows(c, "journal_copy",
                       "COPY sequencer_commands (seq, batch, command) FROM STDIN", &b->journal);
    if (st == DB_OK)
        st = ledger_batch_commit(c, &b->ledger);
    if (st == DB_OK) {
        char v[7][24];
        snprintf(v[0], sizeof v[0], "%" PRIu64, s->batch_id);
        snprintf(v[1], sizeof v[1], "%" PRIu64, s->journal_len);
        snprintf(v[2], sizeof v[2], "%" PRId64, (int64_t)mx_state_hash(s->engine));
        snprintf(v[3], sizeof v[3], "%" PRId64, s->now);
        snprintf(v[4], sizeof v[4], "%" PRIu64, s->next_id);
        snprintf(v[5], sizeof v[5], "%" PRIu64, s->next_agreement);
        snprintf(v[6], sizeof v[6], "%" PRIu64, b->ledger.range.size);
        const char *p[] = { v[0], v[1], v[2], v[3], v[4], v[5], v[6] };
        st = db_command(c, "seq_batch_insert", 7, p, NULL);
    }
    return st;
}

/* ---- the batch: from start to answers ------------------------------------------------------ */

static void batch_reset(struct sequencer *s)
{
    struct batch *b = &s->b;
    for (size_t i = 0; i < b->norders; i++) {
        struct live_order *o = b->orders[i];
        o->dirty = o->is_new = false;
        free(o->terms_text); /* written */
        o->terms_text = NULL;
        if (o->row.v.status != TRADE_OPEN)
            free_order(o);
    }
    for (size_t i = 0; i < b->nlistings; i++) {
        struct live_listing *l = b->listings[i];
        l->dirty = l->is_new = false;
        free(l->terms_text);
        l->terms_text = NULL;
        if (l->row.v.status != TRADE_OPEN)
            free_listing(l);
    }
    for (size_t i = 0; i < b->naccounts; i++) {
        b->accounts[i]->dirty = false;
        b->accounts[i]->changed = 0;
    }
    b->norders = b->nlistings = b->naccounts = 0;
    strbuf_reset(&b->journal);
    strbuf_reset(&b->agreements);
    strbuf_reset(&b->entries);
    strbuf_reset(&b->new_orders);
    strbuf_reset(&b->new_listings);
    strbuf_reset(&b->deliveries);
    b->agreed = false;
    u64map_free(&b->placed);
    u64map_each(&b->repeats, free_repeat, NULL);
    u64map_free(&b->repeats);
    ledger_batch_reset(&b->ledger);
    b->names_before = s->nnames;
    b->wrote = false;
}

static void cmd_free(struct seq_cmd *cmd)
{
    json_decref(cmd->order.terms);
    json_decref(cmd->listing.terms);
    free(cmd->order.terms_text);
    free(cmd->listing.terms_text);
    free(cmd);
}

/* Answers every command of the batch and resumes its connection. */
static void answer_all(struct sequencer *s)
{
    for (size_t i = 0; i < s->b.n; i++) {
        struct seq_cmd *cmd = s->b.cmds[i];
        struct tx_reply *out = &s->b.out[i];
        if (cmd->req == NULL) { /* internal: its caller waits, and owns cmd */
            struct seq_waiter *w = cmd->waiter;
            pthread_mutex_lock(&w->mu);
            w->status = out->failed ? err_info(out->error)->status : out->status;
            snprintf(w->message, sizeof w->message, "%s", out->message);
            w->done = true;
            pthread_cond_signal(&w->done_cv);
            pthread_mutex_unlock(&w->mu);
            json_decref(out->body);
            out->body = NULL;
            continue;
        }
        if (out->failed)
            reply_error(cmd->req, out->error, out->field, out->message[0] ? "%s" : NULL,
                        out->message);
        else if (out->body != NULL)
            reply_json_deferred(cmd->req, out->status, out->body);
        else
            reply_error(cmd->req, E_INTERNAL, NULL, NULL);
        out->body = NULL;
        request_resume(cmd->req);
        cmd_free(cmd);
    }
    s->b.n = 0;
}

static void fail_all(struct sequencer *s, enum err e)
{
    for (size_t i = 0; i < s->b.n; i++) {
        json_decref(s->b.out[i].body);
        memset(&s->b.out[i], 0, sizeof s->b.out[i]);
        tx_fail(&s->b.out[i], e, NULL, NULL);
    }
    answer_all(s);
}

/* Advances the clock: the wall clock in seconds, never going back. */
static void tick_clock(struct sequencer *s)
{
    int64_t t = (int64_t)time(NULL);
    if (t > s->now)
        s->now = t;
}

static void run_batch(struct sequencer *s)
{
    struct batch *b = &s->b;
    struct server *srv = s->srv;
    for (size_t i = 0; i < b->n; i++)
        memset(&b->out[i], 0, sizeof b->out[i]);
    struct db_conn *c = db_acquire(srv->db);
    if (c == NULL) {
        fail_all(s, E_DATABASE_UNAVAILABLE);
        return;
    }
    pthread_mutex_lock(&srv->ledger_mu);
    uint64_t t0 = mono_ns();
    /* 1. Checks; nothing has moved yet, so a failure only answers 503. */
    /* Its statements are planned for the table sizes of the moment: a generic plan cached while
     * the tables were empty (and not yet analysed) scanned ledger_nodes and orders whole on every
     * batch. Planning them costs well under a millisecond per batch. */
    enum db_status st = db_exec(c, "BEGIN ISOLATION LEVEL READ COMMITTED; "
                                   "SET LOCAL plan_cache_mode = force_custom_plan");
    if (st == DB_OK)
        st = ledger_batch_begin(c, &b->ledger);
    /* The dispatcher's commands carry no request: a batch of only those has nothing to check. */
    size_t requests = 0;
    for (size_t i = 0; i < b->n; i++)
        requests += b->cmds[i]->req != NULL;
    if (st == DB_OK && requests > 0)
        st = check_signatures(s, c);
    if (st == DB_OK && requests > 0)
        st = check_callers(s, c);
    if (st == DB_OK && requests > 0)
        st = find_repeats(s, c);
    if (st != DB_OK) {
        db_exec(c, "ROLLBACK");
        pthread_mutex_unlock(&srv->ledger_mu);
        db_release(srv->db, c);
        batch_reset(s);
        fail_all(s, st == DB_UNAVAILABLE ? E_DATABASE_UNAVAILABLE : E_BUSY);
        return;
    }
    /* 2. Apply: expiries due now, then every command in order. */
    uint64_t t1 = mono_ns();
    tick_clock(s);
    struct ctx x = { .s = s, .c = c };
    /* Expiry runs unjournalled: when it expires nothing, only the engine's clock moved, and
     * every later command runs at a clock at least as late, so a replay ends the same. */
    mx_command expire = { .kind = MX_CMD_EXPIRE, .now = s->now };
    s->nevents = 0;
    mx_apply(s->engine, &expire);
    if (s->events_failed)
        seq_fatal("recording engine events", DB_HARD);
    if (s->nevents > 0) {
        journal(s, &expire);
        seq_apply_events(&x);
    }
    if (s->now > s->books_checked_at) { /* bills due, agreements ended: once a second */
        s->books_checked_at = s->now;
        seq_books_tick(&x);
    }
    for (size_t i = 0; i < b->n; i++) {
        struct seq_cmd *cmd = b->cmds[i];
        if (b->out[i].failed)
            continue;
        x.req = cmd->req;
        if (idem_repeat(&x, cmd, &b->out[i]))
            continue;
        switch (cmd->op) {
        case SEQ_ORDER: do_order(&x, cmd, &b->out[i]); break;
        case SEQ_LISTING: do_listing(&x, cmd, &b->out[i]); break;
        case SEQ_CANCEL: do_cancel(&x, cmd, &b->out[i]); break;
        case SEQ_DEPOSIT: do_deposit(&x, cmd, &b->out[i]); break;
        case SEQ_USAGE: seq_do_usage(&x, cmd, &b->out[i]); break;
        case SEQ_DISPUTE: seq_do_dispute(&x, cmd, &b->out[i]); break;
        case SEQ_RESOLVE: seq_do_resolve(&x, cmd, &b->out[i]); break;
        case SEQ_ACCEPT: seq_do_accept(&x, cmd, &b->out[i]); break;
        case SEQ_UNDELIVERABLE: seq_do_undeliverable(&x, cmd, &b->out[i]); break;
        }
        idem_store(&x, cmd, &b->out[i]);
    }
    /* 3. Write and commit; the books have moved, so a failure stops cpxd. */
    uint64_t t2 = mono_ns(), t3 = t2;
    bool changed = b->wrote;
    if (changed || b->n > 0) {
        st = write_batch(s, c);
        if (st != DB_OK)
            seq_fatal("writing the batch", st);
        t3 = mono_ns();
        st = db_exec(c, "COMMIT");
        if (st != DB_OK)
            seq_fatal("COMMIT", st);
        metrics_ledger_committed(srv->metrics, b->ledger.nrows, b->ledger.range.size, now_us());
        s->batch_id++;
    } else {
        db_exec(c, "ROLLBACK");
    }
    uint64_t t4 = mono_ns();
    pthread_mutex_unlock(&srv->ledger_mu);
    db_release(srv->db, c);
    if (b->n > 0)
        log_debug("sequencer: batch of %zu: check %.2f ms, apply %.2f ms, write %.2f ms, "
                  "commit %.2f ms",
                  b->n, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, (double)(t3 - t2) / 1e6,
                  (double)(t4 - t3) / 1e6);
    /* 4. Publish (when anything changed: an idle second's tick usually changes nothing) and
     * answer. */
    if (changed)
        market_snapshot_publish(&srv->snapshot, s->engine);
    if (b->agreed) { /* under the lock: dispatcher_stop clears it before freeing its argument */
        pthread_mutex_lock(&s->mu);
        if (s->on_agreements != NULL)
            s->on_agreements(s->on_agreements_arg);
        pthread_mutex_unlock(&s->mu);
    }
    batch_reset(s);
    answer_all(s);
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct sequencer *s = arg;
    size_t max = (size_t)s->srv->cfg->batch_max;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->head == NULL && !s->stop) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1; /* an idle second: expire what is due */
            pthread_cond_timedwait(&s->wake, &s->mu, &until);
        }
        bool stopping = s->stop;
        s->b.n = 0;
        while (s->head != NULL && (s->b.n < max || stopping)) {
            if (s->b.n == s->b.cap) {
                size_t cap = s->b.cap ? s->b.cap * 2 : 256;
                struct seq_cmd **cmds = realloc(s->b.cmds, cap * sizeof *cmds);
                struct tx_reply *out = realloc(s->b.out, cap * sizeof *out);
                if (cmds != NULL)
                    s->b.cmds = cmds;
                if (out != NULL)
                    s->b.out = out;
                if (cmds == NULL || out == NULL)
                    break; /* take fewer this time */
                s->b.cap = cap;
            }
            struct seq_cmd *cmd = s->head;
            s->queued--;
            s->head = cmd->next;
            if (s->head == NULL)
                s->tail = NULL;
            s->b.cmds[s->b.n++] = cmd;
        }
        pthread_mutex_unlock(&s->mu);
        if (stopping) {
            for (size_t i = 0; i < s->b.n; i++)
                memset(&s->b.out[i], 0, sizeof s->b.out[i]);
            fail_all(s, E_SEQUENCER_UNAVAILABLE);
            return NULL;
        }
        run_batch(s);
    }
}

struct seq_cmd *seq_cmd_new(enum seq_op op, struct request *req)
{
    struct seq_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd != NULL) {
        cmd->op = op;
        cmd->req = req;
    }
    return cmd;
}

/* Appends cmd to the queue and wakes the sequencer; the caller holds s->mu. */
static void enqueue(struct sequencer *s, struct seq_cmd *cmd)
{
    s->queued++;
    cmd->next = NULL;
    if (s->tail != NULL)
        s->tail->next = cmd;
    else
        s->head = cmd;
    s->tail = cmd;
    pthread_cond_signal(&s->wake);
}

void sequencer_submit(struct sequencer *s, struct seq_cmd *cmd)
{
    int64_t retry;
    if (!rate_limit_take(cmd->req->srv->ratelimit, cmd->req->caller.id, now_us() / 1000, &retry)) {
        reply_error(cmd->req, E_RATE_LIMITED, NULL,
                    "%s sent more than %lld commands a second; retry in %lld s.",
                    cmd->req->caller.id, (long long)cmd->req->srv->cfg->rate_limit,
                    (long long)retry);
        char after[24];
        snprintf(after, sizeof after, "%lld", (long long)retry);
        reply_header(cmd->req, "Retry-After", after);
        cmd_free(cmd);
        return;
    }
    if (s != NULL)
        pthread_mutex_lock(&s->mu);
    if (s == NULL || !s->running || s->stop) {
        if (s != NULL)
            pthread_mutex_unlock(&s->mu);
        reply_error(cmd->req, E_SEQUENCER_UNAVAILABLE, NULL, NULL);
        cmd_free(cmd);
        return;
    }
    if (s->queued >= QUEUE_BATCHES * (size_t)s->srv->cfg->batch_max) {
        /* Backpressure: more is waiting than the next few batches will take. */
        pthread_mutex_unlock(&s->mu);
        reply_error(cmd->req, E_BUSY, NULL, "The market is busy; retry shortly.");
        cmd_free(cmd);
        return;
    }
    request_suspend(cmd->req);
    enqueue(s, cmd);
    pthread_mutex_unlock(&s->mu);
}

int sequencer_call(struct sequencer *s, struct seq_cmd *cmd, char *msg, size_t msg_cap)
{
    struct seq_waiter w = { .status = 503 };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.done_cv, NULL);
    cmd->req = NULL;
    cmd->waiter = &w;
    pthread_mutex_lock(&s->mu);
    bool queued = s->running && !s->stop;
    if (queued)
        enqueue(s, cmd);
    pthread_mutex_unlock(&s->mu);
    if (queued) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.done_cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
    } else {
        snprintf(w.message, sizeof w.message, "the sequencer is not running");
    }
    snprintf(msg, msg_cap, "%s", w.message);
    pthread_cond_destroy(&w.done_cv);
    pthread_mutex_destroy(&w.mu);
    return w.status;
}

void sequencer_on_agreements(struct sequencer *s, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->on_agreements = fn;
    s->on_agreements_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

void sequencer_fees(const struct sequencer *s, int64_t *maker_bps, int64_t *taker_bps)
{
    *maker_bps = s->maker_bps;
    *taker_bps = s->taker_bps;
}

/* ---- start: rebuild from the database ------------------------------------------------------ */

__attribute__((format(printf, 2, 3))) static bool refuse(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
    return false;
}

static bool load_tables(struct sequencer *s, struct db_conn *c, char **err)
{
    PGresult *r;
    if (db_query(c, "seq_names", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read market_names");
    for (int i = 0; i < PQntuples(r); i++) {
        char text[MARKET_NAME_MAX];
        db_get_str(r, i, 1, text, sizeof text);
        if (db_get_i64(r, i, 0) != (int64_t)s->nnames + 1 || !name_add(s, text)) {
            PQclear(r);
            return refuse(err, "market_names ids are not 1..n");
        }
    }
    PQclear(r);
    s->b.names_before = s->nnames;
    if (db_query(c, "seq_accounts", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read accounts");
    for (int i = 0; i < PQntuples(r); i++) {
        struct account *a = seq_account(s, PQgetvalue(r, i, 0));
        for (int k = 0; k < ACC_NKINDS; k++)
            if (strcmp(PQgetvalue(r, i, 1), account_kind_names[k]) == 0)
                a->bal[k] = db_get_i64(r, i, 2);
    }
    PQclear(r);
    if (db_query(c, "dlv_usage_max", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read usage_reports");
    s->next_usage = (uint64_t)db_get_i64(r, 0, 0) + 1;
    PQclear(r);
    if (db_query(c, "seq_entries_max", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read entries");
    s->next_entry = (uint64_t)db_get_i64(r, 0, 0) + 1;
    PQclear(r);
    if (db_query(c, "seq_open_orders", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read the open orders");
    for (int i = 0; i < PQntuples(r); i++) {
        struct live_order *o = calloc(1, sizeof *o);
        if (o == NULL || !db_order_from_row(r, i, &o->row) ||
            !u64map_put(&s->orders, o->row.v.id, o)) {
            free(o);
            PQclear(r);
            return refuse(err, "cannot load open order row %d", i);
        }
    }
    PQclear(r);
    if (db_query(c, "seq_open_listings", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read the open listings");
    for (int i = 0; i < PQntuples(r); i++) {
        struct live_listing *l = calloc(1, sizeof *l);
        if (l == NULL || !db_listing_from_row(r, i, &l->row) ||
            !u64map_put(&s->listings, l->row.v.id, l)) {
            free(l);
            PQclear(r);
            return refuse(err, "cannot load open listing row %d", i);
        }
    }
    PQclear(r);
    return true;
}

struct check_ctx {
    const mx_engine *e;
    bool listing;
    uint64_t bad;
};

static void check_resting(void *ctx, uint64_t id, void *value)
{
    struct check_ctx *k = ctx;
    mx_order_info info;
    int64_t remaining = k->listing ? ((struct live_listing *)value)->row.v.remaining
                                   : ((struct live_order *)value)->row.v.remaining;
    if (!mx_lookup(k->e, id, &info) || info.remaining != remaining ||
        info.side != (k->listing ? MX_ASK : MX_BID))
        k->bad = id;
}

/* Replays the journal into the fresh engine and checks it against the last batch and the rows. */
static bool replay(struct sequencer *s, struct db_conn *c, char **err)
{
    PGresult *r;
    if (db_query(c, "seq_last_batch", 0, NULL, &r) != DB_OK)
        return refuse(err, "cannot read sequencer_batches");
    bool have = PQntuples(r) == 1;
    uint64_t commands = 0;
    int64_t hash = 0;
    if (have) {
        s->batch_id = (uint64_t)db_get_i64(r, 0, 0) + 1;
        commands = (uint64_t)db_get_i64(r, 0, 1);
        hash = db_get_i64(r, 0, 2);
        s->now = db_get_i64(r, 0, 3);
        s->next_id = (uint64_t)db_get_i64(r, 0, 4);
        s->next_agreement = (uint64_t)db_get_i64(r, 0, 5);
    }
    PQclear(r);
    uint64_t last = 0;
    for (;;) {
        char after[24], limit[16];
        snprintf(after, sizeof after, "%" PRIu64, last);
        snprintf(limit, sizeof limit, "%d", JOURNAL_PAGE);
        const char *p[] = { after, limit };
        if (db_query(c, "seq_journal", 2, p, &r) != DB_OK)
            return refuse(err, "cannot read the journal after command %" PRIu64, last);
        int n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            uint64_t seq = (uint64_t)db_get_i64(r, i, 0);
            const char *hex = PQgetvalue(r, i, 1);
            uint8_t buf[MX_COMMAND_MAX_BYTES];
            size_t len = strlen(hex) / 2, used = 0;
            mx_command cmd;
            if (seq != last + 1 || len > sizeof buf || !cpx_hex_decode(hex, 2 * len, buf, len) ||
                !mx_decode_command(buf, len, &cmd, &used) || used != len) {
                PQclear(r);
                return refuse(err, "journal command %" PRIu64 " is missing or malformed", last + 1);
            }
            s->nevents = 0;
            mx_apply(s->engine, &cmd);
            last = seq;
        }
        PQclear(r);
        if (n < JOURNAL_PAGE)
            break;
    }
    s->nevents = 0;
    s->journal_len = last;
    if (last != commands)
        return refuse(err, "the journal has %" PRIu64 " commands, the last batch says %" PRIu64,
                      last, commands);
    uint64_t got = mx_state_hash(s->engine);
    if (have && (int64_t)got != hash)
        return refuse(err,
                      "the books rebuilt from the journal (state hash %016" PRIx64
                      ") differ from those the last batch committed (%016" PRIx64 ")",
                      got, (uint64_t)hash);
    struct check_ctx k = { .e = s->engine };
    u64map_each(&s->orders, check_resting, &k);
    k.listing = true;
    u64map_each(&s->listings, check_resting, &k);
    if (k.bad != 0)
        return refuse(err,
                      "order or listing %" PRIu64 " is open in the database but not "
                      "resting in the rebuilt books with that quantity",
                      k.bad);
    if (mx_resting(s->engine) != s->orders.count + s->listings.count)
        return refuse(err, "the rebuilt books hold %zu resting orders, the database %zu open ones",
                      mx_resting(s->engine), s->orders.count + s->listings.count);
    if (mx_now(s->engine) > s->now)
        s->now = mx_now(s->engine);
    return true;
}

static void free_order_v(void *ctx, uint64_t key, void *value)
{
    (void)ctx;
    (void)key;
    free_order(value);
}

static void free_listing_v(void *ctx, uint64_t key, void *value)
{
    (void)ctx;
    (void)key;
    free_listing(value);
}

static void free_account_v(void *ctx, uint64_t key, void *value)
{
    (void)ctx;
    (void)key;
    free(value);
}

void sequencer_free(struct sequencer *s)
{
    if (s == NULL)
        return;
    if (s->lock_conn != NULL)
        PQfinish(s->lock_conn);
    u64map_each(&s->orders, free_order_v, NULL);
    u64map_each(&s->listings, free_listing_v, NULL);
    u64map_each(&s->accounts, free_account_v, NULL);
    u64map_free(&s->orders);
    u64map_free(&s->listings);
    u64map_free(&s->accounts);
    u64map_free(&s->b.placed);
    u64map_each(&s->b.repeats, free_repeat, NULL);
    u64map_free(&s->b.repeats);
    strbuf_free(&s->b.journal);
    strbuf_free(&s->b.agreements);
    strbuf_free(&s->b.entries);
    strbuf_free(&s->b.new_orders);
    strbuf_free(&s->b.new_listings);
    strbuf_free(&s->b.deliveries);
    free(s->b.orders);
    free(s->b.listings);
    free(s->b.accounts);
    free(s->b.cmds);
    free(s->b.out);
    ledger_batch_free(&s->b.ledger);
    mx_engine_free(s->engine);
    free(s->events);
    free(s->names);
    u64map_free(&s->name_index);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    free(s);
}

/* Takes the session advisory lock that one sequencer per database holds for its life, on a
 * connection of its own (a pooled one may be reset and would drop it). */
static bool take_market(struct sequencer *s, char **err)
{
    s->lock_conn = PQconnectdb(s->srv->cfg->database_url);
    if (PQstatus(s->lock_conn) != CONNECTION_OK)
        return refuse(err, "cannot connect for the sequencer's lock: %s",
                      PQerrorMessage(s->lock_conn));
    PGresult *r = PQexec(s->lock_conn, "SELECT pg_try_advisory_lock(5392847106)");
    bool got = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
               strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got)
        return refuse(err, "another cpxd's sequencer already writes this market (advisory lock "
                           "5392847106 is held); one sequencer per database");
    return true;
}

struct sequencer *sequencer_start(struct server *srv, char **err)
{
    *err = NULL;
    struct sequencer *s = calloc(1, sizeof *s);
    if (s == NULL) {
        *err = strdup("out of memory");
        return NULL;
    }
    s->srv = srv;
    s->maker_bps = srv->cfg->fee_maker_bps;
    s->taker_bps = srv->cfg->fee_taker_bps;
    s->next_id = s->next_agreement = s->batch_id = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    ledger_batch_init(&s->b.ledger, &srv->signer);
    mx_config cfg = {
        .regions = (unsigned)market_nregions,
        .stp = MX_STP_CANCEL_NEWEST,
        .sink = sink,
        .sink_ctx = s,
        .expected_orders = 4096,
        /* No limit inside the engine: the replay of a journal must not depend on the setting
         * (the sequencer enforces --max-resting itself, before a new order reaches the books). */
        .max_orders = 0,
    };
    s->engine = mx_engine_create(&cfg);
    struct db_conn *c = s->engine ? db_acquire(srv->db) : NULL;
    bool ok = c != NULL && take_market(s, err) && load_tables(s, c, err) && replay(s, c, err);
    if (c != NULL)
        db_release(srv->db, c);
    if (!ok) {
        if (*err == NULL)
            *err = strdup(s->engine ? "cannot reach the database" : "cannot create the engine");
        sequencer_free(s);
        return NULL;
    }
    market_snapshot_publish(&srv->snapshot, s->engine);
    /* One empty batch before serving: whatever fell due while cpxd was down (bills, ends of
     * agreements) comes before any request's records. */
    run_batch(s);
    s->running = true;
    if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
        *err = strdup("cannot start the sequencer thread");
        sequencer_free(s);
        return NULL;
    }
    log_info("sequencer: %zu orders and %zu listings resting, journal of %" PRIu64
             " commands replayed, next batch %" PRIu64,
             s->orders.count, s->listings.count, s->journal_len, s->batch_id);
    return s;
}

void sequencer_stop(struct sequencer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->running = false;
}
