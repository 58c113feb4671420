/*
 * Market records for the tests: see ledger_market.h. Payloads are built with the library's
 * canonical writer, so every record is canonical whatever the numbers.
 */
#include "tests/support/ledger_market.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_PER_SECOND 1000

void lm_rfc3339(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z");
}

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

/* Takes the override *next when there is one (clearing it), else honest. */
static const char *take(const char **next, const char *honest)
{
    const char *v = *next ? *next : honest;
    *next = NULL;
    return v;
}

/*
 * Appends a record whose party (or NULL: the exchange) sent body as its request body (NULL: the
 * payload), or what the test put in next_body, next_target and next_method instead.
 */
static uint64_t append_signed(struct lm *m, const char *kind, struct cpx_canon_writer *w,
                              const struct fx_party *party, const char *method, const char *target,
                              const char *body)
{
    const char *payload = payload_of(w);
    if (party != NULL) {
        body = take(&m->next_body, body ? body : payload);
        target = take(&m->next_target, target);
        method = take(&m->next_method, method);
    }
    if (m->sign)
        return fx_append(m->log, kind, payload, party, method, target, body);
    return fx_append_unsigned(m->log, kind, payload, party, method, target, body);
}

static uint64_t append(struct lm *m, const char *kind, struct cpx_canon_writer *w,
                       const struct fx_party *party, const char *method, const char *target)
{
    return append_signed(m, kind, w, party, method, target, NULL);
}

static void begin(struct cpx_canon_writer *w)
{
    cpx_canon_writer_init(w);
    cpx_canon_begin_object(w);
}

/*
 * Most payloads are flat: they are written from a list of members (in key order, as canonical
 * JSON has them), so each helper says only what its record holds.
 */
struct member {
    const char *key;
    enum { M_STRING, M_INT, M_BOOL, M_NULL, M_ABSENT } type;
    const char *s; /* M_STRING */
    int64_t i;     /* M_INT, M_BOOL */
};

/* Members by type; INT_IF leaves the member out, INT_OR_NULL writes null, unless `there`. */
#define STRING(k, v)             ((struct member){ (k), M_STRING, (v), 0 })
#define INT(k, v)                ((struct member){ (k), M_INT, NULL, (v) })
#define BOOL(k, v)               ((struct member){ (k), M_BOOL, NULL, (v) })
#define INT_IF(k, v, there)      ((struct member){ (k), (there) ? M_INT : M_ABSENT, NULL, (v) })
#define INT_OR_NULL(k, v, there) ((struct member){ (k), (there) ? M_INT : M_NULL, NULL, (v) })
#define APPEND(m, kind, members, party, method, target)                                            \
    append_members(m, kind, members, sizeof members / sizeof *members, party, method, target, NULL)
/* The same, the party having sent the canonical object of body_members as its body. */
#define APPEND_SENT(m, kind, members, party, method, target, body_members)                         \
    append_members(m, kind, members, sizeof members / sizeof *members, party, method, target,      \
                   object_of(body_members, sizeof body_members / sizeof *body_members))

/* Writes members (in key order) as an object into w. */
static void write_members(struct cpx_canon_writer *w, const struct member *members, size_t n);

/* The canonical object of members (static: used at once). */
static const char *object_of(const struct member *members, size_t n)
{
    static char text[4096];
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    write_members(&w, members, n);
    const uint8_t *out;
    size_t len;
    enum cpx_canon_error err = cpx_canon_writer_finish(&w, &out, &len);
    assert(err == CPX_CANON_OK && len < sizeof text);
    (void)err;
    memcpy(text, out, len);
    text[len] = '\0';
    cpx_canon_writer_free(&w);
    return text;
}

static uint64_t append_members(struct lm *m, const char *kind, const struct member *members,
                               size_t n, const struct fx_party *party, const char *method,
                               const char *target, const char *body)
{
    struct cpx_canon_writer w;
    cpx_canon_writer_init(&w);
    write_members(&w, members, n);
    return append_signed(m, kind, &w, party, method, target, body);
}

static void write_members(struct cpx_canon_writer *w, const struct member *members, size_t n)
{
    cpx_canon_begin_object(w);
    for (size_t i = 0; i < n; i++) {
        const struct member *v = &members[i];
        if (v->type != M_ABSENT)
            cpx_canon_key(w, v->key, strlen(v->key));
        switch (v->type) {
        case M_STRING: cpx_canon_string(w, v->s, strlen(v->s)); break;
        case M_INT: cpx_canon_int(w, v->i); break;
        case M_BOOL: cpx_canon_bool(w, v->i != 0); break;
        case M_NULL: cpx_canon_null(w); break;
        case M_ABSENT: break;
        }
    }
    cpx_canon_end_object(w);
}

uint64_t lm_fee_schedule(struct lm *m, int64_t maker_bps, int64_t taker_bps, int64_t minimum)
{
    const struct member p[] = { INT("maker_bps", maker_bps), INT("minimum_micro", minimum),
                                INT("taker_bps", taker_bps) };
    return APPEND(m, "fee_schedule", p, NULL, NULL, NULL);
}

uint64_t lm_deposit(struct lm *m, const struct fx_party *op, const char *account, int64_t amount)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/accounts/%s/deposits", account);
    const struct member p[] = { STRING("account", account), INT("amount_micro", amount) };
    return APPEND(m, "deposit", p, op, "POST", target);
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
    const struct member p[] = {
        STRING("buyer", a->buyer),
        INT_IF("commission_bps", a->bps, a->bps >= 0),
        INT("commission_micro", a->commission),
        INT_IF("deliver_by", a->deliver_by, a->deliver_by >= 0),
        INT("devices", a->devices),
        INT("escrow_micro", a->escrow),
        INT("hours", a->hours),
        STRING("id", a->id),
        STRING("listing", "lst_000000000001"),
        STRING("maker", a->maker ? a->maker : "provider"),
        STRING("order", a->order),
        STRING("precision", "bf16"),
        INT("price_micro", a->price),
        STRING("provider", a->provider),
        STRING("region", "yangtze"),
        INT("released_micro", a->released),
        INT("start", a->start),
        INT("tflops", a->tflops),
        INT("value_micro", a->value),
    };
    return APPEND(m, "agreement", p, NULL, NULL, NULL);
}

uint64_t lm_cancel(struct lm *m, const struct fx_party *party, const char *id, const char *reason,
                   int64_t remaining, int64_t released)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/orders/%s", id);
    const struct member p[] = { STRING("id", id), STRING("reason", reason),
                                INT_IF("released_micro", released, released >= 0),
                                INT("remaining", remaining) };
    return APPEND(m, "cancel", p, party, "DELETE", target);
}

uint64_t lm_acceptance(struct lm *m, const struct fx_party *provider, const char *agreement,
                       int64_t start, int64_t end)
{
    char target[128], delivery[64];
    snprintf(target, sizeof target, "/v1/deliveries/dlv_%s/acceptance", agreement + 4);
    snprintf(delivery, sizeof delivery, "dlv_%s", agreement + 4);
    const struct member p[] = { STRING("agreement", agreement), STRING("delivery", delivery),
                                INT("end", end), INT("start", start) };
    const struct member sent[] = { STRING("agreement", agreement), STRING("delivery", delivery) };
    return APPEND_SENT(m, "acceptance", p, provider, "POST", target, sent);
}

uint64_t lm_failure(struct lm *m, const char *agreement, int64_t released)
{
    const struct member p[] = { STRING("agreement", agreement), INT("devices_returned", 0),
                                STRING("listing", "lst_000000000001"),
                                STRING("reason", "undeliverable"),
                                INT("released_micro", released) };
    return APPEND(m, "failure", p, NULL, NULL, NULL);
}

uint64_t lm_usage(struct lm *m, const struct fx_party *provider, const char *agreement,
                  const char *id, int64_t start, int64_t end, int64_t device_seconds, bool final)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/agreements/%s/usage", agreement);
    const struct member p[] = {
        STRING("agreement", agreement), INT("device_seconds", device_seconds),
        BOOL("final", final),           STRING("id", id),
        INT("period_end", end),         INT("period_start", start)
    };
    /* What the server records as final (the period reaches the end) the provider need not say:
     * `final` here is the report's word, which cpx-provider sends only when true. */
    char from[32], to[32];
    lm_rfc3339(start, from);
    lm_rfc3339(end, to);
    const struct member sent[] = { INT("device_seconds", device_seconds),
                                   { "final", final ? M_BOOL : M_ABSENT, NULL, 1 },
                                   STRING("period_end", to),
                                   STRING("period_start", from) };
    return APPEND_SENT(m, "usage", p, provider, "POST", target, sent);
}

uint64_t lm_bill(struct lm *m, const char *agreement, const char *id, const char *usage,
                 int64_t amount, int64_t dispute_until, bool final)
{
    const struct member p[] = { STRING("agreement", agreement),
                                INT("amount_micro", amount),
                                INT("dispute_until", dispute_until),
                                BOOL("final", final),
                                STRING("id", id),
                                STRING("usage", usage) };
    return APPEND(m, "bill", p, NULL, NULL, NULL);
}

uint64_t lm_commission(struct lm *m, const char *agreement, const char *bill, int64_t bps,
                       int64_t commission, int64_t minimum)
{
    const struct member p[] = { STRING("agreement", agreement), STRING("bill", bill),
                                INT("bps", bps), INT("commission_micro", commission),
                                INT("minimum_micro", minimum) };
    return APPEND(m, "commission", p, NULL, NULL, NULL);
}

uint64_t lm_settlement(struct lm *m, const char *agreement, const char *bill, int64_t to_provider,
                       int64_t commission)
{
    const struct member p[] = { STRING("agreement", agreement), STRING("bill", bill),
                                INT("commission_micro", commission),
                                INT("to_provider_micro", to_provider) };
    return APPEND(m, "settlement", p, NULL, NULL, NULL);
}

uint64_t lm_dispute(struct lm *m, const struct fx_party *buyer, const char *bill)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/dispute", bill);
    const struct member p[] = { STRING("bill", bill), STRING("reason", "the job never ran") };
    const struct member sent[] = { STRING("reason", "the job never ran") };
    return APPEND_SENT(m, "dispute", p, buyer, "POST", target, sent);
}

uint64_t lm_resolution(struct lm *m, const struct fx_party *op, const char *bill,
                       const char *outcome, int64_t refunded)
{
    char target[128];
    snprintf(target, sizeof target, "/v1/bills/%s/resolution", bill);
    const struct member p[] = { STRING("bill", bill), STRING("note", "checked the provider's logs"),
                                STRING("outcome", outcome), INT("refunded_micro", refunded) };
    const struct member sent[] = { STRING("note", "checked the provider's logs"),
                                   STRING("outcome", outcome) };
    return APPEND_SENT(m, "resolution", p, op, "POST", target, sent);
}

uint64_t lm_completion(struct lm *m, const char *agreement, int64_t metered_until,
                       const char *reason, int64_t released)
{
    const struct member p[] = { STRING("agreement", agreement),
                                INT_OR_NULL("metered_until", metered_until, metered_until >= 0),
                                STRING("reason", reason), INT("released_micro", released) };
    return APPEND(m, "completion", p, NULL, NULL, NULL);
}

uint64_t lm_order_expired(struct lm *m, const struct fx_party *buyer, int n)
{
    char id[32];
    snprintf(id, sizeof id, "ord_%012d", n);
    struct lm_order o = lm_bf16_order(id, 1, 1, 1, 1, 20);
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

struct lm_order lm_bf16_order(const char *id, int64_t devices, int64_t max_tflops, int64_t hours,
                              int64_t limit, int64_t hold_bps)
{
    struct lm_order o = { .id = id, .precision = "bf16", .devices = devices, .hours = hours };
    o.limit = limit;
    o.max_tflops = max_tflops;
    o.hold_bps = hold_bps;
    o.hold = lm_hold(limit, devices, max_tflops, hours, hold_bps);
    return o;
}

struct lm_agreement lm_fill(const char *id, const char *order, const char *buyer,
                            const char *provider, int64_t price, int64_t tflops, int64_t devices,
                            int64_t hours, int64_t bps)
{
    struct lm_agreement a = { .id = id, .order = order, .buyer = buyer, .provider = provider };
    a.maker = "provider";
    a.price = price;
    a.tflops = tflops;
    a.devices = devices;
    a.hours = hours;
    a.bps = bps;
    a.deliver_by = -1;
    lm_fill_value(&a, lm_value(price, tflops, devices, hours));
    return a;
}

void lm_fill_value(struct lm_agreement *a, int64_t value)
{
    a->value = value;
    a->commission = lm_bps(value, a->bps);
    a->escrow = value + a->commission;
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
    struct lm_order o = lm_bf16_order(ord, 6, 989, 10, 15 * LM_CNY, hold_bps);
    o.hold += (t == LM_HOLD);
    at->order = lm_order(m, &s->buyer, &o);

    /* 4 of them filled at the provider's 12 LM_CNY, the buyer taking: 20 bps (never more than
     * the order's hold covers). */
    int64_t bps = LM_TAKER_BPS < hold_bps ? LM_TAKER_BPS : hold_bps;
    struct lm_agreement a =
        lm_fill(agr, ord, s->buyer.id, s->provider.id, 12 * LM_CNY, 989, 4, 10, bps);
    if (t == LM_VALUE)
        lm_fill_value(&a, a.value + 1);
    int64_t rest = lm_hold(15 * LM_CNY, 2, 989, 10, hold_bps);
    a.released = o.hold - a.escrow - rest - (t == LM_FILL_RELEASE);
    a.start = lm_now(m);
    a.deliver_by = lm_now(m) + 900;
    at->agreement = lm_agreement(m, &a);
    int64_t held = o.hold - a.escrow - a.released;
    at->cancel = lm_cancel(m, &s->buyer, ord, "user", 2, held - (t == LM_CANCEL_RELEASE));

    /* The provider accepts a minute later: the clock runs 10 hours from then. */
    lm_at(m, LM_T0 + 60);
    s->start = lm_now(m);
    s->end = s->start + 10 * LM_HOUR;
    at->acceptance = lm_acceptance(m, &s->provider, agr, s->start, s->end);

    /* Ten minutes on 4 devices, then the rest of the time (not all of it used). */
    int64_t left = a.commission;
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

    /* The rest of the time; or, done early, 10 more minutes. Either is final: the provider says
     * so (which it need not when the period reaches the end: the exchange records final then). */
    bool early = t == LM_EARLY_FINAL;
    int64_t end2 = early ? s->start + 1200 : s->end, ds2 = early ? 2400 : 100000;
    lm_at(m, end2 + 5);
    at->usage2 = lm_usage(m, &s->provider, agr, "use_000000000002",
                          s->start + 600 - (t == LM_OVERLAP), end2, ds2, true);
    int64_t amount2 = lm_bill_amount(12 * LM_CNY, 989, ds2);
    at->bill2 = lm_bill(m, agr, "bil_000000000002", "use_000000000002", amount2,
                        lm_now(m) + LM_WINDOW, true);
    int64_t c2 = lm_commission_on(amount2, bps, minimum, t == LM_CAP ? INT64_MAX : left);
    at->commission2 = lm_commission(m, agr, "bil_000000000002", bps, c2, minimum);
    int64_t open = amount1 + c1 + amount2 + c2;
    at->completion =
        lm_completion(m, agr, end2, "final_usage", a.escrow - open - (t == LM_COMPLETION_RELEASE));

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
