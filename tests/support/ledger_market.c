/*
 * Market records for the tests: see ledger_market.h. Payloads are built with the library's
 * canonical writer, so every record is canonical whatever the numbers.
 */
#include "tests/support/ledger_market.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_SECOND 1000

void lm_at(struct lm *m, int64_t t)
{
    m->log->ts_ms = t * MS_PER_SECOND;
}

int64_t lm_now(const struct lm *m)
{
    return m->log->ts_ms / MS_PER_SECOND;
}

/* Finishes w into a NUL-terminated string (static: used at once). */
static const char *payload_of(struct cpx_canon_writer *w)
{
    static char text[4096];
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(w, &out, &len);
    assert(err == CPX_CANON_OK && len < sizeof text);
    (void)err;
    memcpy(text, out, len);
    text[len] = '\0';
    cpx_canon_writer_free(w);
    return text;
}

/* Appends a record whose party (or NULL: the exchange) sent payload as its request body. */
static uint64_t append(struct lm *m, const char *kind, struct cpx_canon_writer *w,
                       const struct fx_party *party, const char *method, const char *target)
{
    const char *payload = payload_of(w);
    if (party == NULL || m->sign)
        return fx_append(m->log, kind, payload, party, method, target, payload);
    struct fx_log *l = m->log;
    struct cpx_record r;
    cpx_record_init(&r);
    r.seq = l->n;
    r.kind = cpx_kind_from_name(kind, strlen(kind));
    snprintf(r.kind_name, sizeof r.kind_name, "%s", kind);
    r.ts = l->ts_ms;
    r.payload = (const uint8_t *)payload;
    r.payload_len = strlen(payload);
    r.has_party = true;
    snprintf(r.party.id, sizeof r.party.id, "%s", party->id);
    snprintf(r.party.method, sizeof r.party.method, "%s", method);
    snprintf(r.party.target, sizeof r.party.target, "%s", target);
    r.party.ts = l->ts_ms / MS_PER_SECOND;
    r.party.body = (const uint8_t *)payload;
    r.party.body_len = strlen(payload);
    struct cpx_canon_writer rw;
    cpx_canon_writer_init(&rw);
    cpx_record_encode(&rw, &r);
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(&rw, &out, &len);
    assert(err == CPX_CANON_OK);
    (void)err;
    /* Stored as fx_append stores, the clock advanced as it advances it. */
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->rec = realloc(l->rec, l->cap * sizeof *l->rec);
        l->len = realloc(l->len, l->cap * sizeof *l->len);
        assert(l->rec != NULL && l->len != NULL);
    }
    l->rec[l->n] = malloc(len);
    assert(l->rec[l->n] != NULL);
    memcpy(l->rec[l->n], out, len);
    l->len[l->n++] = len;
    l->ts_ms++;
    cpx_canon_writer_free(&rw);
    cpx_record_free(&r);
    return l->n - 1;
}

static void begin(struct cpx_canon_writer *w)
{
    cpx_canon_writer_init(w);
    cpx_canon_begin_object(w);
}

static void kv_bool(struct cpx_canon_writer *w, const char *key, bool v)
{
    cpx_canon_key(w, key, strlen(key));
    cpx_canon_bool(w, v);
}

uint64_t lm_fee_schedule(struct lm *m, int64_t maker_bps, int64_t taker_bps, int64_t minimum)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_int(&w, "maker_bps", maker_bps);
    cpx_canon_kv_int(&w, "minimum_micro", minimum);
    cpx_canon_kv_int(&w, "taker_bps", taker_bps);
    cpx_canon_end_object(&w);
    return append(m, "fee_schedule", &w, NULL, NULL, NULL);
}

uint64_t lm_deposit(struct lm *m, const struct fx_party *op, const char *account, int64_t amount)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", account);
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "account", account);
    cpx_canon_kv_int(&w, "amount_micro", amount);
    cpx_canon_end_object(&w);
    return append(m, "deposit", &w, op, "POST", target);
}

uint64_t lm_order(struct lm *m, const struct fx_party *buyer, const struct lm_order *o)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "buyer", buyer->id);
    cpx_canon_kv_string(&w, "client_order_id", o->id);
    cpx_canon_kv_int(&w, "hold_bps", o->hold_bps);
    cpx_canon_kv_int(&w, "hold_micro", o->hold);
    cpx_canon_kv_string(&w, "id", o->id);
    cpx_canon_key(&w, "terms", 5);
    cpx_canon_begin_object(&w);
    cpx_canon_key(&w, "constraints", 11);
    cpx_canon_begin_object(&w);
    cpx_canon_key(&w, "max_tflops", 10);
    if (o->max_tflops > 0)
        cpx_canon_int(&w, o->max_tflops);
    else
        cpx_canon_null(&w);
    cpx_canon_end_object(&w);
    if (o->devices > 0)
        cpx_canon_kv_int(&w, "devices", o->devices);
    cpx_canon_kv_int(&w, "hours", o->hours);
    cpx_canon_kv_int(&w, "limit_price_micro", o->limit);
    cpx_canon_kv_string(&w, "precision", o->precision);
    if (o->devices <= 0)
        cpx_canon_kv_int(&w, "tflops", o->tflops);
    cpx_canon_end_object(&w);
    cpx_canon_end_object(&w);
    return append(m, "order", &w, buyer, "POST", "/v1/orders");
}

uint64_t lm_agreement(struct lm *m, const struct lm_agreement *a)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "buyer", a->buyer);
    if (a->bps >= 0)
        cpx_canon_kv_int(&w, "commission_bps", a->bps);
    cpx_canon_kv_int(&w, "commission_micro", a->commission);
    if (a->deliver_by >= 0)
        cpx_canon_kv_int(&w, "deliver_by", a->deliver_by);
    cpx_canon_kv_int(&w, "devices", a->devices);
    cpx_canon_kv_int(&w, "escrow_micro", a->escrow);
    cpx_canon_kv_int(&w, "hours", a->hours);
    cpx_canon_kv_string(&w, "id", a->id);
    cpx_canon_kv_string(&w, "listing", "lst_000000000001");
    cpx_canon_kv_string(&w, "maker", a->maker ? a->maker : "provider");
    cpx_canon_kv_string(&w, "order", a->order);
    cpx_canon_kv_string(&w, "precision", "bf16");
    cpx_canon_kv_int(&w, "price_micro", a->price);
    cpx_canon_kv_string(&w, "provider", a->provider);
    cpx_canon_kv_string(&w, "region", "yangtze");
    cpx_canon_kv_int(&w, "released_micro", a->released);
    cpx_canon_kv_int(&w, "start", a->start);
    cpx_canon_kv_int(&w, "tflops", a->tflops);
    cpx_canon_kv_int(&w, "value_micro", a->value);
    cpx_canon_end_object(&w);
    return append(m, "agreement", &w, NULL, NULL, NULL);
}

uint64_t lm_cancel(struct lm *m, const struct fx_party *party, const char *id, const char *reason,
                   int64_t remaining, int64_t released)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/orders/%s", id);
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "id", id);
    cpx_canon_kv_string(&w, "reason", reason);
    if (released >= 0)
        cpx_canon_kv_int(&w, "released_micro", released);
    cpx_canon_kv_int(&w, "remaining", remaining);
    cpx_canon_end_object(&w);
    return append(m, "cancel", &w, party, "DELETE", target);
}

uint64_t lm_acceptance(struct lm *m, const struct fx_party *provider, const char *agreement,
                       int64_t start, int64_t end)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/deliveries/dlv_%s/acceptance", agreement + 4);
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    char delivery[64];
    snprintf(delivery, sizeof delivery, "dlv_%s", agreement + 4);
    cpx_canon_kv_string(&w, "delivery", delivery);
    cpx_canon_kv_int(&w, "end", end);
    cpx_canon_kv_int(&w, "start", start);
    cpx_canon_end_object(&w);
    return append(m, "acceptance", &w, provider, "POST", target);
}

uint64_t lm_failure(struct lm *m, const char *agreement, int64_t released)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_kv_int(&w, "devices_returned", 0);
    cpx_canon_kv_string(&w, "listing", "lst_000000000001");
    cpx_canon_kv_string(&w, "reason", "undeliverable");
    cpx_canon_kv_int(&w, "released_micro", released);
    cpx_canon_end_object(&w);
    return append(m, "failure", &w, NULL, NULL, NULL);
}

uint64_t lm_usage(struct lm *m, const struct fx_party *provider, const char *agreement,
                  const char *id, int64_t start, int64_t end, int64_t device_seconds, bool final)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/agreements/%s/usage", agreement);
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_kv_int(&w, "device_seconds", device_seconds);
    kv_bool(&w, "final", final);
    cpx_canon_kv_string(&w, "id", id);
    cpx_canon_kv_int(&w, "period_end", end);
    cpx_canon_kv_int(&w, "period_start", start);
    cpx_canon_end_object(&w);
    return append(m, "usage", &w, provider, "POST", target);
}

uint64_t lm_bill(struct lm *m, const char *agreement, const char *id, const char *usage,
                 int64_t amount, int64_t dispute_until, bool final)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_kv_int(&w, "amount_micro", amount);
    cpx_canon_kv_int(&w, "dispute_until", dispute_until);
    kv_bool(&w, "final", final);
    cpx_canon_kv_string(&w, "id", id);
    cpx_canon_kv_string(&w, "usage", usage);
    cpx_canon_end_object(&w);
    return append(m, "bill", &w, NULL, NULL, NULL);
}

uint64_t lm_commission(struct lm *m, const char *agreement, const char *bill, int64_t bps,
                       int64_t commission, int64_t minimum)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_kv_string(&w, "bill", bill);
    cpx_canon_kv_int(&w, "bps", bps);
    cpx_canon_kv_int(&w, "commission_micro", commission);
    cpx_canon_kv_int(&w, "minimum_micro", minimum);
    cpx_canon_end_object(&w);
    return append(m, "commission", &w, NULL, NULL, NULL);
}

uint64_t lm_settlement(struct lm *m, const char *agreement, const char *bill, int64_t to_provider,
                       int64_t commission)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_kv_string(&w, "bill", bill);
    cpx_canon_kv_int(&w, "commission_micro", commission);
    cpx_canon_kv_int(&w, "to_provider_micro", to_provider);
    cpx_canon_end_object(&w);
    return append(m, "settlement", &w, NULL, NULL, NULL);
}

uint64_t lm_dispute(struct lm *m, const struct fx_party *buyer, const char *bill)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/dispute", bill);
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "bill", bill);
    cpx_canon_kv_string(&w, "reason", "the job never ran");
    cpx_canon_end_object(&w);
    return append(m, "dispute", &w, buyer, "POST", target);
}

uint64_t lm_resolution(struct lm *m, const struct fx_party *op, const char *bill,
                       const char *outcome, int64_t refunded)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/resolution", bill);
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "bill", bill);
    cpx_canon_kv_string(&w, "note", "checked the provider's logs");
    cpx_canon_kv_string(&w, "outcome", outcome);
    cpx_canon_kv_int(&w, "refunded_micro", refunded);
    cpx_canon_end_object(&w);
    return append(m, "resolution", &w, op, "POST", target);
}

uint64_t lm_completion(struct lm *m, const char *agreement, int64_t metered_until,
                       const char *reason, int64_t released)
{
    struct cpx_canon_writer w;
    begin(&w);
    cpx_canon_kv_string(&w, "agreement", agreement);
    cpx_canon_key(&w, "metered_until", 13);
    if (metered_until >= 0)
        cpx_canon_int(&w, metered_until);
    else
        cpx_canon_null(&w);
    cpx_canon_kv_string(&w, "reason", reason);
    cpx_canon_kv_int(&w, "released_micro", released);
    cpx_canon_end_object(&w);
    return append(m, "completion", &w, NULL, NULL, NULL);
}

uint64_t lm_order_expired(struct lm *m, const struct fx_party *buyer, int n)
{
    char id[32];
    snprintf(id, sizeof id, "ord_%012d", n);
    struct lm_order o = { .id = id,
                          .precision = "bf16",
                          .devices = 1,
                          .hours = 1,
                          .limit = 1,
                          .max_tflops = 1,
                          .hold_bps = 20,
                          .hold = 0 };
    lm_order(m, buyer, &o);
    return lm_cancel(m, NULL, id, "expired", 1, 0);
}

/* ---- the story ----------------------------------------------------------------------------- */

/* value(price, tflops, devices, hours) of docs/trading.md section 2. */
int64_t lm_value(int64_t price, int64_t tflops, int64_t devices, int64_t hours)
{
    return (int64_t)((__int128)price * tflops * devices * hours / 1000);
}

int64_t lm_bps(int64_t v, int64_t bps)
{
    return (int64_t)((__int128)v * bps / 10000);
}

/* A device order's hold: value at the limit of devices x max_tflops, plus the fee. */
int64_t lm_hold(int64_t limit, int64_t devices, int64_t per, int64_t hours, int64_t bps)
{
    int64_t v = lm_value(limit, devices * per, 1, hours);
    return v + lm_bps(v, bps);
}

int64_t lm_bill_amount(int64_t price, int64_t tflops, int64_t device_seconds)
{
    return (int64_t)((__int128)price * tflops * device_seconds / 3600000);
}

/* docs/delivery.md section 4. */
int64_t lm_commission_on(int64_t amount, int64_t bps, int64_t minimum, int64_t left)
{
    if (amount == 0)
        return 0;
    int64_t c = lm_bps(amount, bps);
    if (c < minimum)
        c = minimum;
    return c < left ? c : left;
}

/* The identities: an exchange-bootstrapped operator, a buyer and a provider it approved. */
void lm_story_parties(struct lm_story *s, bool sign)
{
    memset(s, 0, sizeof *s);
    fx_log_init(&s->log);
    s->lm.log = &s->log;
    s->lm.sign = sign;
    fx_party_new(&s->op);
    fx_party_new(&s->buyer);
    fx_party_new(&s->provider);
    fx_register_exchange(&s->log, &s->op, CPX_ROLE_OPERATOR);
    fx_decide(&s->log, &s->op, NULL, 1);
    fx_register(&s->log, &s->buyer, CPX_ROLE_BUYER);
    fx_decide(&s->log, &s->buyer, &s->op, 1);
    fx_register(&s->log, &s->provider, CPX_ROLE_PROVIDER);
    fx_decide(&s->log, &s->provider, &s->op, 1);
}

/*
 * The README's trade and what follows it, told by an exchange that gets `t` wrong; `minimum` is
 * the fee schedule's minimum commission per bill.
 */
void lm_story_build(struct lm_story *s, enum lm_tamper t, int64_t minimum, bool sign)
{
    lm_story_parties(s, sign);
    struct lm *m = &s->lm;
    struct lm_seqs *at = &s->at;
    const char *agr = "agr_000000000001", *ord = "ord_000000000003";
    lm_at(m, LM_T0 + 10);
    at->fee = lm_fee_schedule(m, LM_MAKER_BPS, LM_TAKER_BPS, minimum);
    at->deposit = lm_deposit(m, &s->op, s->buyer.id, (t == LM_POOR ? 800 : 100000) * LM_CNY);

    /* 6 bf16 devices of at most 989 TFLOPS for 10 hours at 15 LM_CNY: 891.8802 LM_CNY held. */
    int64_t hold_bps = t == LM_ORDER_FEE ? LM_MAKER_BPS : LM_TAKER_BPS;
    int64_t hold = lm_hold(15 * LM_CNY, 6, 989, 10, hold_bps) + (t == LM_HOLD);
    struct lm_order o = { .id = ord,
                          .precision = "bf16",
                          .devices = 6,
                          .hours = 10,
                          .limit = 15 * LM_CNY,
                          .max_tflops = 989,
                          .hold_bps = hold_bps,
                          .hold = hold };
    at->order = lm_order(m, &s->buyer, &o);

    /* 4 of them filled at the provider's 12 LM_CNY, the buyer taking: 20 bps (never more than
     * the order's hold covers). */
    int64_t bps = LM_TAKER_BPS < hold_bps ? LM_TAKER_BPS : hold_bps;
    int64_t value = lm_value(12 * LM_CNY, 989, 4, 10) + (t == LM_VALUE);
    int64_t commission = lm_bps(value, bps);
    int64_t escrow = value + commission;
    int64_t rest = lm_hold(15 * LM_CNY, 2, 989, 10, hold_bps);
    int64_t released = hold - escrow - rest - (t == LM_FILL_RELEASE);
    struct lm_agreement a = { .id = agr,
                              .order = ord,
                              .buyer = s->buyer.id,
                              .provider = s->provider.id,
                              .maker = "provider",
                              .price = 12 * LM_CNY,
                              .tflops = 989,
                              .devices = 4,
                              .hours = 10,
                              .value = value,
                              .commission = commission,
                              .escrow = escrow,
                              .released = released,
                              .bps = bps,
                              .start = lm_now(m),
                              .deliver_by = lm_now(m) + 900 };
    at->agreement = lm_agreement(m, &a);
    int64_t held = hold - escrow - released;
    at->cancel = lm_cancel(m, &s->buyer, ord, "user", 2, held - (t == LM_CANCEL_RELEASE));

    /* The provider accepts a minute later: the clock runs 10 hours from then. */
    lm_at(m, LM_T0 + 60);
    s->start = lm_now(m);
    s->end = s->start + 10 * LM_HOUR;
    at->acceptance = lm_acceptance(m, &s->provider, agr, s->start, s->end);

    /* Ten minutes on 4 devices, then the rest of the time (not all of it used). */
    int64_t left = commission;
    lm_at(m, s->start + 605);
    int64_t ds1 = 2400 + (t == LM_CAPACITY);
    at->usage1 = lm_usage(m, &s->provider, agr, "use_000000000001",
                          s->start - (t == LM_USAGE_START), s->start + 600, ds1, false);
    int64_t amount1 = lm_bill_amount(12 * LM_CNY, 989, ds1) + (t == LM_BILL);
    int64_t until1 = lm_now(m) + LM_WINDOW;
    at->bill1 = lm_bill(m, agr, "bil_000000000001", "use_000000000001", amount1, until1, false);
    int64_t c1 = lm_commission_on(amount1, bps, minimum, left) + (t == LM_COMMISSION);
    left -= c1;
    at->commission1 = lm_commission(m, agr, "bil_000000000001", bps, c1, minimum);

    /* The rest of the time; or, done early, 10 more minutes with "final". */
    bool early = t == LM_EARLY_FINAL;
    int64_t end2 = early ? s->start + 1200 : s->end, ds2 = early ? 2400 : 100000;
    lm_at(m, end2 + 5);
    at->usage2 = lm_usage(m, &s->provider, agr, "use_000000000002",
                          s->start + 600 - (t == LM_OVERLAP), end2, ds2, early);
    int64_t amount2 = lm_bill_amount(12 * LM_CNY, 989, ds2);
    at->bill2 = lm_bill(m, agr, "bil_000000000002", "use_000000000002", amount2,
                        lm_now(m) + LM_WINDOW, true);
    int64_t c2 = lm_commission_on(amount2, bps, minimum, t == LM_CAP ? INT64_MAX : left);
    at->commission2 = lm_commission(m, agr, "bil_000000000002", bps, c2, minimum);
    int64_t open = amount1 + c1 + amount2 + c2;
    at->completion =
        lm_completion(m, agr, end2, "final_usage", escrow - open - (t == LM_COMPLETION_RELEASE));

    /* The buyer disputes the second bill; the first settles when its window closes; the
     * operator refunds the second. */
    lm_at(m, s->end + 100);
    at->dispute = lm_dispute(m, &s->buyer, "bil_000000000002");
    lm_at(m, until1);
    at->settlement = lm_settlement(m, agr, "bil_000000000001", amount1 + (t == LM_SETTLE),
                                   c1 + (t == LM_SETTLE_COMMISSION));
    lm_at(m, until1 + 100);
    at->resolution =
        lm_resolution(m, &s->op, "bil_000000000002", "refund", amount2 + c2 - (t == LM_REFUND));
}

void lm_story_free(struct lm_story *s)
{
    fx_log_free(&s->log);
}
