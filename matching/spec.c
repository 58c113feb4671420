/*
 * spec.c — what a valid bid or ask is, and how a record shows its spec.
 *
 * Validation
 * ----------
 * The engine trusts nothing the caller passes: every field is checked here, in a fixed order
 * (the first failing check names the rejection reason, so that the reason is deterministic and
 * the reference matcher of the tests can agree with it). docs/matching.md lists the order.
 *
 * Overflow
 * --------
 * The money of a fill is price x TFLOPS x devices x hours (then / 1000 for PFLOPS, by the
 * server). The engine guarantees that product fits in int64 by one check at bid entry, where
 * maxT = mx_max_tflops(precision) and T = the bid's max_tflops when non-zero, else maxT:
 *   device bid:   limit x T x quantity x hours                 <= INT64_MAX
 *                 and limit x maxT                             <= INT64_MAX
 *   capacity bid: limit x (quantity + maxT) x hours            <= INT64_MAX
 * A fill's price is at most the bid's limit (the pair crosses), its TFLOPS per device at most
 * maxT (and at most max_tflops when the bid sets one: a larger ask is not eligible), and its
 * devices x TFLOPS at most quantity x TFLOPS (device bid) or below quantity + TFLOPS (a
 * capacity bid is filled with ceil(remaining / TFLOPS) devices at most). The normalised price
 * limit x TFLOPS used to rank bids is computed for every crossing bid, eligible or not, so it
 * needs limit x maxT to fit: implied by the first product when T = maxT, checked on its own
 * when a max_tflops narrows T.
 *
 * Plain and extended records
 * --------------------------
 * A spec is *plain* when a 64-byte record can hold all of it: a bid with one region and no
 * constraint, an ask with one priced precision and no attribute, neither GTD. Anything else
 * gets an extension holding the spec. mx_rec_bid()/mx_rec_ask() rebuild the canonical spec of
 * either kind, so the state hash and mx_get_*() never see the difference.
 */
#include "matching/matching_int.h"

const mx_bid mx_default_bid = { 0 };
const mx_ask mx_default_ask = { 0 };

static const uint32_t max_tflops_table[MX_NPREC] = {
    [MX_FP64] = 4096,  [MX_FP32] = 4096, [MX_TF32] = 16384, [MX_BF16] = 16384,
    [MX_FP16] = 16384, [MX_FP8] = 32768, [MX_INT8] = 32768, [MX_INT4] = 65536,
};

uint32_t mx_max_tflops(unsigned precision)
{
    return precision < MX_NPREC ? max_tflops_table[precision] : 0;
}

/* Returns 1 when a * b * c * d (all >= 0) fits in int64, 0 when it would overflow. */
static int mul4_fits(int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t x;
    return !__builtin_mul_overflow(a, b, &x) && !__builtin_mul_overflow(x, c, &x) &&
           !__builtin_mul_overflow(x, d, &x);
}

/* True when t is a valid time field (0..MX_MAX_TIME). */
static int time_ok(int64_t t)
{
    return t >= 0 && t <= MX_MAX_TIME;
}

/* Number of bits set in x. */
static unsigned popcount64(uint64_t x)
{
    return (unsigned)__builtin_popcountll(x);
}

mx_reason mx_check_bid(const mx_engine *e, const mx_bid *b, int64_t now)
{
    if (b->id == 0)
        return MX_R_BAD_ID;
    if (b->precision >= MX_NPREC)
        return MX_R_BAD_PRECISION;
    uint64_t all = e->nregions >= 64 ? UINT64_MAX : (UINT64_C(1) << e->nregions) - 1;
    if (b->regions == 0 || (b->regions & ~all) != 0)
        return MX_R_BAD_REGION;
    if (b->qty_kind > MX_QTY_TFLOPS || b->quantity <= 0 ||
        b->quantity > (b->qty_kind == MX_QTY_DEVICES ? MX_MAX_DEVICES : MX_MAX_CAPACITY))
        return MX_R_BAD_QUANTITY;
    if (b->limit <= 0)
        return MX_R_BAD_PRICE;
    if (b->hours == 0 || b->hours > MX_MAX_HOURS)
        return MX_R_BAD_HOURS;
    if (b->tif > MX_FOK)
        return MX_R_BAD_TIF;
    if (b->tif == MX_GTD && (b->expiry <= now || b->expiry > MX_MAX_TIME))
        return MX_R_BAD_EXPIRY;
    if (!time_ok(b->start_earliest) || !time_ok(b->start_latest))
        return MX_R_BAD_WINDOW;
    if (b->start_latest != 0 && (b->start_latest < b->start_earliest || b->start_latest < now))
        return MX_R_BAD_WINDOW;
    if (b->n_allow > MX_MAX_ALLOW || b->min_green_permille > MX_MAX_GREEN ||
        b->min_tflops > mx_max_tflops(b->precision))
        return MX_R_BAD_CONSTRAINT;
    /* max_tflops: 0 (no maximum) or min_tflops..maxT (1..maxT when min_tflops is 0) */
    if (b->max_tflops != 0 &&
        (b->max_tflops < b->min_tflops || b->max_tflops > mx_max_tflops(b->precision)))
        return MX_R_BAD_CONSTRAINT;
    for (unsigned i = 0; i < b->n_allow; i++)
        if (b->allow[i].vendor == 0)
            return MX_R_BAD_CONSTRAINT;
    int64_t cap = mx_max_tflops(b->precision);
    int fits;
    if (b->qty_kind == MX_QTY_DEVICES) {
        /* A device bid meets no ask above its max_tflops, so its fills' TFLOPS per device are
         * bounded by it; the normalised price limit x maxT is still computed for ranking. */
        int64_t t = b->max_tflops != 0 ? b->max_tflops : cap;
        fits = mul4_fits(b->limit, t, b->quantity, b->hours) && mul4_fits(b->limit, cap, 1, 1);
    } else {
        fits = mul4_fits(b->limit, b->quantity + cap, b->hours, 1);
    }
    if (!fits)
        return MX_R_OVERFLOW;
    return MX_OK;
}

mx_reason mx_check_ask(const mx_engine *e, const mx_ask *a, int64_t now)
{
    if (a->id == 0)
        return MX_R_BAD_ID;
    if (a->priced == 0)
        return MX_R_BAD_PRECISION;
    if (a->region >= e->nregions)
        return MX_R_BAD_REGION;
    if (a->devices <= 0 || a->devices > MX_MAX_DEVICES)
        return MX_R_BAD_QUANTITY;
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (!(a->priced >> p & 1))
            continue;
        if (a->tflops[p] == 0 || a->tflops[p] > mx_max_tflops(p))
            return MX_R_BAD_QUANTITY;
        if (a->price[p] <= 0)
            return MX_R_BAD_PRICE;
    }
    if (a->max_hours != 0 && (a->max_hours < a->min_hours || a->max_hours > MX_MAX_HOURS))
        return MX_R_BAD_HOURS;
    if (a->min_hours > MX_MAX_HOURS)
        return MX_R_BAD_HOURS;
    if (a->tif > MX_FOK)
        return MX_R_BAD_TIF;
    if (a->tif == MX_GTD && (a->expiry <= now || a->expiry > MX_MAX_TIME))
        return MX_R_BAD_EXPIRY;
    if (!time_ok(a->available_from) || !time_ok(a->available_until))
        return MX_R_BAD_WINDOW;
    if (a->available_until != 0 &&
        (a->available_until <= a->available_from || a->available_until <= now))
        return MX_R_BAD_WINDOW;
    if (a->green_permille > MX_MAX_GREEN)
        return MX_R_BAD_CONSTRAINT;
    return MX_OK;
}

void mx_canon_bid(mx_bid *b)
{
    if (b->tif != MX_GTD)
        b->expiry = 0;
    if (b->min_devices_per_provider <= 1)
        b->min_devices_per_provider = 0;
    for (unsigned i = b->n_allow; i < MX_MAX_ALLOW; i++)
        b->allow[i] = (mx_model_ref){ 0, 0 };
}

void mx_canon_ask(mx_ask *a)
{
    if (a->tif != MX_GTD)
        a->expiry = 0;
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (!(a->priced >> p & 1)) {
            a->tflops[p] = 0;
            a->price[p] = 0;
        }
    }
}

int mx_bid_is_plain(const mx_bid *b)
{
    return popcount64(b->regions) == 1 && b->tif != MX_GTD && b->start_earliest == 0 &&
           b->start_latest == 0 && b->min_memory_gb == 0 && b->min_tflops == 0 &&
           b->max_tflops == 0 && b->min_devices_per_provider <= 1 && b->min_green_permille == 0 &&
           b->n_allow == 0;
}

int mx_ask_is_plain(const mx_ask *a)
{
    return popcount64(a->priced) == 1 && a->tif != MX_GTD && a->available_from == 0 &&
           a->available_until == 0 && a->memory_gb == 0 && a->vendor == 0 && a->model == 0 &&
           a->interconnect == 0 && a->green_permille == 0 && a->min_hours == 0 && a->max_hours == 0;
}

/* The earlier of two expiry times where 0 means never. */
static int64_t earlier(int64_t a, int64_t b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

int64_t mx_bid_expires(const mx_bid *b)
{
    /* A bid whose start window has closed can never trade again: it expires one second after
     * start_latest. */
    int64_t window = b->start_latest != 0 ? b->start_latest + 1 : 0;
    return earlier(b->tif == MX_GTD ? b->expiry : 0, window);
}

int64_t mx_ask_expires(const mx_ask *a)
{
    return earlier(a->tif == MX_GTD ? a->expiry : 0, a->available_until);
}

void mx_rec_bid(const mx_engine *e, uint32_t ri, mx_bid *out)
{
    const mx_rec *r = &e->recs[ri];
    if (r->ext != MX_NIL) {
        *out = e->exts[r->ext].spec.bid;
    } else {
        *out = mx_default_bid;
        out->id = r->id;
        out->owner = r->owner;
        out->precision = (uint8_t)r->prec;
        out->qty_kind = (uint8_t)r->qty_kind;
        out->tif = (uint8_t)r->tif;
        out->limit = r->price;
        out->hours = r->size;
        out->regions = UINT64_C(1) << r->region;
    }
    out->quantity = r->remaining;
}

void mx_rec_ask(const mx_engine *e, uint32_t ri, mx_ask *out)
{
    const mx_rec *r = &e->recs[ri];
    if (r->ext != MX_NIL) {
        *out = e->exts[r->ext].spec.ask;
    } else {
        *out = mx_default_ask;
        out->id = r->id;
        out->owner = r->owner;
        out->priced = (uint8_t)(1u << r->prec);
        out->tflops[r->prec] = r->size;
        out->price[r->prec] = r->price;
        out->region = (uint8_t)r->region;
        out->tif = (uint8_t)r->tif;
    }
    out->devices = r->remaining;
}

/* ---- names ---------------------------------------------------------------------------------- */

static const char *const reason_names[MX_NREASONS] = {
    [MX_OK] = "OK",
    [MX_R_BAD_COMMAND] = "BAD_COMMAND",
    [MX_R_BAD_TIME] = "BAD_TIME",
    [MX_R_BAD_ID] = "BAD_ID",
    [MX_R_DUPLICATE_ID] = "DUPLICATE_ID",
    [MX_R_UNKNOWN_ID] = "UNKNOWN_ID",
    [MX_R_BAD_PRECISION] = "BAD_PRECISION",
    [MX_R_BAD_REGION] = "BAD_REGION",
    [MX_R_BAD_QUANTITY] = "BAD_QUANTITY",
    [MX_R_BAD_PRICE] = "BAD_PRICE",
    [MX_R_BAD_HOURS] = "BAD_HOURS",
    [MX_R_BAD_TIF] = "BAD_TIF",
    [MX_R_BAD_EXPIRY] = "BAD_EXPIRY",
    [MX_R_BAD_WINDOW] = "BAD_WINDOW",
    [MX_R_BAD_CONSTRAINT] = "BAD_CONSTRAINT",
    [MX_R_OVERFLOW] = "OVERFLOW",
    [MX_R_WRONG_SIDE] = "WRONG_SIDE",
    [MX_R_OWNER_MISMATCH] = "OWNER_MISMATCH",
    [MX_R_NOT_REDUCING] = "NOT_REDUCING",
    [MX_R_FULL] = "FULL",
    [MX_R_NO_MEMORY] = "NO_MEMORY",
    [MX_R_USER] = "USER",
    [MX_R_IOC] = "IOC",
    [MX_R_FOK] = "FOK",
    [MX_R_STP] = "STP",
    [MX_R_EXPIRED] = "EXPIRED",
};

const char *mx_reason_name(mx_reason r)
{
    return (unsigned)r < MX_NREASONS && reason_names[r] ? reason_names[r] : "?";
}

const char *mx_event_name(mx_event_kind k)
{
    static const char *const names[] = {
        [MX_EV_ACCEPTED] = "ACCEPTED", [MX_EV_REJECTED] = "REJECTED",   [MX_EV_FILL] = "FILL",
        [MX_EV_DONE] = "DONE",         [MX_EV_CANCELLED] = "CANCELLED", [MX_EV_EXPIRED] = "EXPIRED",
        [MX_EV_REDUCED] = "REDUCED",   [MX_EV_REPLACED] = "REPLACED",
    };
    return (unsigned)k < sizeof names / sizeof names[0] && names[k] ? names[k] : "?";
}

const char *mx_precision_name(unsigned precision)
{
    static const char *const names[MX_NPREC] = { "FP64", "FP32", "TF32", "BF16",
                                                 "FP16", "FP8",  "INT8", "INT4" };
    return precision < MX_NPREC ? names[precision] : "?";
}

const char *mx_constraint_name(mx_constraint c)
{
    static const char *const names[MX_NCONSTRAINTS] = {
        [MX_C_MEMORY] = "memory",
        [MX_C_TFLOPS] = "tflops",
        [MX_C_MAX_TFLOPS] = "max_tflops",
        [MX_C_MODEL] = "model",
        [MX_C_GREEN] = "green",
        [MX_C_HOURS] = "hours",
        [MX_C_START] = "start",
        [MX_C_AVAILABILITY] = "availability",
        [MX_C_GANG] = "gang",
        [MX_C_SELF] = "self",
    };
    return (unsigned)c < MX_NCONSTRAINTS ? names[c] : "?";
}
