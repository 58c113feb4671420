/*
 * The books checker: see books.h for what is checked and the reason codes.
 *
 * State of the books (struct cpx_books): five tables -- accounts, orders, agreements, usage
 * reports, bills -- each a dense array of fixed-size items in the order they were made, indexed by
 * id through an open-addressing hash table (power-of-two slots holding item index + 1, linear
 * probing, never more than half full, no deletions). Items refer to each other by index (an
 * agreement's buyer is an account index), so a record costs a few hash lookups whatever the size
 * of the ledger.
 *
 * Money is int64 micro-CNY as in the exchange; every product is taken in 128 bits and every sum
 * checked, so untrusted numbers never overflow (a number too large to derive is a failure).
 */
#include "ledger/books.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/codec.h"

#define DEFAULT_MAX_FAILURES 10000
#define NONE                 UINT32_MAX /* no item */
#define BPS_MAX              10000      /* basis points in a whole */
#define SECONDS_PER_HOUR     3600
#define MS_PER_SECOND        1000
#define TFLOPS_PER_PFLOPS    1000            /* value: price per PFLOPS-hour x TFLOPS x hours */
#define BILL_DIVISOR         (1000LL * 3600) /* bill: price x TFLOPS x device-seconds */
#define BOOKS_STATE_VERSION  1

typedef unsigned __int128 u128;

/* ---- items --------------------------------------------------------------------------------- */

struct account {
    char owner[CPX_BOOKS_ID_MAX]; /* identity id or "exchange"; first: the table's key */
    int64_t bal[CPX_BOOKS_KINDS]; /* balances */
    uint64_t seq;                 /* the last record that moved it */
    uint8_t negative;             /* bit k: balance k is below zero and was reported */
    uint8_t moved;                /* bit k: balance k moved at least once */
    uint8_t seen;                 /* comparison: bit k listed by the exchange */
};

struct order {
    char id[CPX_BOOKS_ID_MAX]; /* "ord_..." */
    uint32_t buyer;            /* account */
    bool devices;              /* ordered in devices (else TFLOPS) */
    bool closed;               /* filled, cancelled or expired */
    int64_t limit;             /* limit_price_micro */
    int64_t per;               /* TFLOPS per device the hold assumes (max_tflops or maxT) */
    int64_t hours;             /* hours */
    int64_t hold_bps;          /* the fee rate its hold covers */
    int64_t hold_left;         /* hold - escrowed - released so far */
    int64_t remaining;         /* quantity left, in the ordered unit */
    uint64_t seq;              /* its order record */
    uint64_t closed_seq;       /* the record that closed it */
};

enum agreement_status { AGR_PENDING = 0, AGR_ACTIVE, AGR_COMPLETED, AGR_FAILED };
static const char *const agreement_status_names[] = { "pending_delivery", "active", "completed",
                                                      "failed" };

struct agreement {
    char id[CPX_BOOKS_ID_MAX]; /* "agr_..." */
    uint32_t buyer, provider;  /* accounts */
    int64_t price;             /* price_micro per PFLOPS-hour */
    int64_t tflops;            /* per device */
    int64_t devices, hours;
    int64_t value;             /* value_micro as recorded */
    int64_t commission;        /* commission_micro escrowed, as recorded */
    int64_t bps;               /* commission_bps; without one in the record (before #6) the  */
    int64_t bps_max;           /* rates bps..bps_max fit its escrowed commission, until the  */
                               /* first commission record picks one                         */
    int64_t deliver_by;        /* unix seconds, -1 when not recorded */
    int64_t escrow_left;       /* escrow not yet settled, refunded or released */
    int64_t reserved;          /* amount + commission of its open bills */
    int64_t billed_commission; /* commission of its bills so far */
    int64_t start, end;        /* started_at, ends_at (from its acceptance) */
    int64_t metered_until;     /* end of its latest usage report (start before any) */
    uint64_t seq;              /* its agreement record */
    uint64_t closed_seq;       /* its completion or failure */
    uint8_t status;            /* enum agreement_status */
    bool has_usage;            /* a usage report was made */
    bool final_billed;         /* a usage report reached its end */
    bool escrow_negative;      /* its escrow went below zero (reported) */
};

struct usage {
    char id[CPX_BOOKS_ID_MAX]; /* "use_..." */
    uint32_t agreement;
    int64_t device_seconds, start, end;
    uint64_t seq;
    uint32_t bill; /* the bill made of it, NONE before */
    bool final;    /* the report says the job is done ("final"), or it reaches the end */
};

enum bill_state {
    BILL_OPEN = 0, /* in its window */
    BILL_DISPUTED, /* disputed, unresolved */
    BILL_PAY,      /* resolved "pay": its settlement is due */
    BILL_SETTLED,
    BILL_REFUNDED,
};
static const char *const bill_state_names[] = { "open", "disputed", "pay", "settled", "refunded" };

struct bill {
    char id[CPX_BOOKS_ID_MAX]; /* "bil_..." */
    uint32_t agreement;
    int64_t amount;        /* amount_micro as recorded */
    int64_t commission;    /* commission_micro as recorded (once has_commission) */
    int64_t dispute_until; /* unix seconds */
    uint64_t seq;          /* its bill record */
    uint64_t closed_seq;   /* its settlement or refund */
    uint8_t state;         /* enum bill_state */
    bool has_commission;   /* its commission record was seen */
    bool final;            /* the bill record's "final" */
    bool seen;             /* comparison: listed by the exchange */
};

/* ---- tables -------------------------------------------------------------------------------- */

/* Items of one type, each beginning with its NUL-terminated id, indexed by a hash table. */
struct table {
    char *items;     /* n items of `size` bytes */
    size_t size;     /* bytes per item */
    size_t n, cap;   /* items used and allocated */
    uint32_t *slots; /* item index + 1, 0 = free */
    size_t nslots;   /* 0 or a power of two */
    size_t seq_at;   /* offset of the seq of the record that made an item */
};

static void *tab_at(const struct table *t, size_t i)
{
    return t->items + i * t->size;
}

/* The index of the item with id, or NONE. */
static uint32_t tab_find(const struct table *t, const char *id)
{
    if (t->nslots == 0)
        return NONE;
    size_t mask = t->nslots - 1;
    for (size_t i = cpx_fnv1a64(id) & mask;; i = (i + 1) & mask) {
        uint32_t s = t->slots[i];
        if (s == 0)
            return NONE;
        if (strcmp((const char *)tab_at(t, s - 1), id) == 0)
            return s - 1;
    }
}

static void tab_place(uint32_t *slots, size_t nslots, const char *id, uint32_t index)
{
    size_t mask = nslots - 1, i = cpx_fnv1a64(id) & mask;
    while (slots[i] != 0)
        i = (i + 1) & mask;
    slots[i] = index + 1;
}

/* Adds a zeroed item with id (not present). Returns its index, or NONE when out of memory. */
static uint32_t tab_add(struct table *t, const char *id)
{
    if (t->n >= NONE - 1)
        return NONE;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char *bigger = realloc(t->items, cap * t->size);
        if (bigger == NULL)
            return NONE;
        t->items = bigger;
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->nslots) {
        size_t nslots = t->nslots ? t->nslots * 2 : 128;
        uint32_t *slots = calloc(nslots, sizeof *slots);
        if (slots == NULL)
            return NONE;
        for (size_t i = 0; i < t->n; i++)
            tab_place(slots, nslots, (const char *)tab_at(t, i), (uint32_t)i);
        free(t->slots);
        t->slots = slots;
        t->nslots = nslots;
    }
    uint32_t index = (uint32_t)t->n++;
    char *item = tab_at(t, index);
    memset(item, 0, t->size);
    snprintf(item, CPX_BOOKS_ID_MAX, "%s", id);
    tab_place(t->slots, t->nslots, item, index);
    return index;
}

static void tab_free(struct table *t)
{
    free(t->items);
    free(t->slots);
}

/* ---- the books ----------------------------------------------------------------------------- */

/* A finding of a comparison, kept until cpx_books_compare_end decides on it. */
struct pending {
    struct cpx_books_failure f;
    bool momentary; /* depends on the moment the exchange's books were read */
};

struct cpx_books {
    struct cpx_books_config cfg;
    struct table accounts, orders, agreements, usages, bills;
    bool have_fee;                  /* a fee_schedule record was seen */
    int64_t maker_bps, taker_bps;   /* the fee schedule in force */
    int64_t minimum;                /* its minimum commission per bill */
    uint64_t next_seq;              /* one past the last record taken */
    bool taken;                     /* a record was taken (or a state loaded) */
    struct cpx_books_counts counts; /* what was seen */
    uint64_t moved_accounts;        /* (owner, kind) pairs that ever moved */
    struct cpx_books_failure *failures;
    size_t n_failures, cap_failures;
    uint64_t failure_total;
    bool nomem;
    /* comparison */
    uint64_t cmp_size;
    bool cmp_moving;
    struct pending *pending;
    size_t n_pending, cap_pending;
    uint64_t pending_over[2]; /* findings beyond the kept ones: fixed, momentary */
    /* state loading */
    bool loading_header;   /* the header was read */
    uint64_t load_lines;   /* lines the header promises */
    uint64_t loaded_lines; /* lines read after it */
    int load_stage;        /* the table being read (lines come table by table) */
};

const char *cpx_books_reason_code(enum cpx_books_reason r)
{
    switch (r) {
    case CPX_BOOKS_PAYLOAD: return "books_payload";
    case CPX_BOOKS_REFERENCE: return "books_reference";
    case CPX_BOOKS_DUPLICATE: return "duplicate_id";
    case CPX_BOOKS_LIFECYCLE: return "lifecycle";
    case CPX_BOOKS_ORDER_HOLD: return "order_hold";
    case CPX_BOOKS_AGREEMENT_AMOUNT: return "agreement_amount";
    case CPX_BOOKS_USAGE_WINDOW: return "usage_window";
    case CPX_BOOKS_USAGE_OVERLAP: return "usage_overlap";
    case CPX_BOOKS_USAGE_CAPACITY: return "usage_capacity";
    case CPX_BOOKS_BILL_AMOUNT: return "bill_amount";
    case CPX_BOOKS_COMMISSION_AMOUNT: return "commission_amount";
    case CPX_BOOKS_SETTLEMENT: return "settlement";
    case CPX_BOOKS_RELEASE_AMOUNT: return "release_amount";
    case CPX_BOOKS_BALANCE_NEGATIVE: return "balance_negative";
    case CPX_BOOKS_BALANCE_OVERFLOW: return "balance_overflow";
    case CPX_BOOKS_EXCHANGE_BILL: return "books_bill";
    case CPX_BOOKS_EXCHANGE_BALANCE: return "books_balance";
    case CPX_BOOKS_SIGNED_BODY: return "signed_body";
    }
    return "unknown";
}

static const char *const kind_names[CPX_BOOKS_KINDS] = { "available", "held", "escrow", "external",
                                                         "commission" };

const char *cpx_books_kind_name(enum cpx_books_kind k)
{
    return (unsigned)k < CPX_BOOKS_KINDS ? kind_names[k] : NULL;
}

int cpx_books_kind_from_name(const char *name)
{
    for (int k = 0; k < CPX_BOOKS_KINDS; k++)
        if (strcmp(kind_names[k], name) == 0)
            return k;
    return -1;
}

const char *cpx_books_bill_status_name(enum cpx_books_bill_status s)
{
    static const char *const names[] = { "open", "disputed", "settled", "refunded" };
    return (unsigned)s < 4 ? names[s] : "unknown";
}

/* The public status of a bill's state ("pay" is an open bill again, due to settle). */
static enum cpx_books_bill_status public_status(uint8_t state)
{
    switch (state) {
    case BILL_DISPUTED: return CPX_BOOKS_BILL_DISPUTED;
    case BILL_SETTLED: return CPX_BOOKS_BILL_SETTLED;
    case BILL_REFUNDED: return CPX_BOOKS_BILL_REFUNDED;
    default: return CPX_BOOKS_BILL_OPEN;
    }
}

/* Fills a failure's message. */
static void format_into(struct cpx_books_failure *f, uint64_t seq, enum cpx_books_reason reason,
                        const char *fmt, va_list ap)
{
    f->seq = seq;
    f->reason = reason;
    vsnprintf(f->message, sizeof f->message, fmt, ap);
}

/*
 * Room for one more item after the n in array (room for *cap, items of `size` bytes): the array,
 * moved or not, or NULL when out of memory (the books then are; the old array stays).
 */
static void *room(struct cpx_books *b, void *array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return array;
    size_t bigger = *cap ? *cap * 2 : 16;
    void *moved = realloc(array, bigger * size);
    if (moved == NULL) {
        b->nomem = true;
        return NULL;
    }
    *cap = bigger;
    return moved;
}

/* Records a finding. Only the first cfg.max_failures are kept in detail. */
static void fail(struct cpx_books *b, uint64_t seq, enum cpx_books_reason reason, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void fail(struct cpx_books *b, uint64_t seq, enum cpx_books_reason reason, const char *fmt,
                 ...)
{
    b->failure_total++;
    if (b->n_failures >= b->cfg.max_failures)
        return;
    struct cpx_books_failure *failures =
        room(b, b->failures, &b->cap_failures, b->n_failures, sizeof *failures);
    if (failures == NULL)
        return;
    b->failures = failures;
    va_list ap;
    va_start(ap, fmt);
    format_into(&b->failures[b->n_failures++], seq, reason, fmt, ap);
    va_end(ap);
}

/* The five tables: where the books keep each, its items' size and where an item keeps its seq. */
#define LAYOUT(t, item)                                                                            \
    {                                                                                              \
        offsetof(struct cpx_books, t), sizeof(struct item), offsetof(struct item, seq)             \
    }
static const struct {
    size_t at, size, seq_at;
} layouts[] = { LAYOUT(accounts, account), LAYOUT(orders, order), LAYOUT(agreements, agreement),
                LAYOUT(usages, usage), LAYOUT(bills, bill) };
#define TABLES (sizeof layouts / sizeof layouts[0])

static struct table *table_at(struct cpx_books *b, size_t at)
{
    return (struct table *)((char *)b + at);
}

struct cpx_books *cpx_books_new(const struct cpx_books_config *cfg)
{
    struct cpx_books *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cfg = *cfg;
    if (b->cfg.max_failures == 0)
        b->cfg.max_failures = DEFAULT_MAX_FAILURES;
    if (b->cfg.partial && b->cfg.start_seq > 0) {
        b->next_seq = b->cfg.start_seq; /* earlier records were another run's */
        b->taken = true;
    }
    for (size_t i = 0; i < TABLES; i++) {
        struct table *t = table_at(b, layouts[i].at);
        t->size = layouts[i].size;
        t->seq_at = layouts[i].seq_at;
    }
    return b;
}

void cpx_books_free(struct cpx_books *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < TABLES; i++)
        tab_free(table_at(b, layouts[i].at));
    free(b->failures);
    free(b->pending);
    free(b);
}

#define ACCOUNT(b, i)   ((struct account *)tab_at(&(b)->accounts, (i)))
#define AGREEMENT(b, i) ((struct agreement *)tab_at(&(b)->agreements, (i)))
#define BILL(b, i)      ((struct bill *)tab_at(&(b)->bills, (i)))

/* The account of owner, made when new. NONE when out of memory. */
static uint32_t account_of(struct cpx_books *b, const char *owner)
{
    uint32_t i = tab_find(&b->accounts, owner);
    if (i == NONE) {
        i = tab_add(&b->accounts, owner);
        if (i == NONE)
            b->nomem = true;
    }
    return i;
}

/* A new item with id (not present) in t, or NULL when out of memory (the books then are). */
static void *add_item(struct cpx_books *b, struct table *t, const char *id)
{
    uint32_t i = tab_add(t, id);
    if (i != NONE)
        return tab_at(t, i);
    b->nomem = true;
    return NULL;
}

/* ---- arithmetic ---------------------------------------------------------------------------- */

/* floor(a x b x c x d / div) for non-negative factors; false when it does not fit in int64. */
static bool mul_div(int64_t a, int64_t b, int64_t c, int64_t d, int64_t div, int64_t *out)
{
    if (a < 0 || b < 0 || c < 0 || d < 0 || div <= 0)
        return false;
    u128 p = (u128)a;
    if (__builtin_mul_overflow(p, (u128)b, &p) || __builtin_mul_overflow(p, (u128)c, &p) ||
        __builtin_mul_overflow(p, (u128)d, &p))
        return false;
    p /= (u128)div;
    if (p > (u128)INT64_MAX)
        return false;
    *out = (int64_t)p;
    return true;
}

/* The commission on value at bps: floor(value x bps / 10000). */
static int64_t commission_of(int64_t value, int64_t bps)
{
    return (int64_t)((u128)value * (u128)bps / BPS_MAX);
}

/* The largest TFLOPS per device of a precision (docs/trading.md section 2), 0 when unknown. */
static int64_t max_tflops(const char *precision)
{
    static const struct {
        const char *name;
        int64_t tflops;
    } table[] = { { "fp64", 4096 },  { "fp32", 4096 }, { "tf32", 16384 }, { "bf16", 16384 },
                  { "fp16", 16384 }, { "fp8", 32768 }, { "int8", 32768 }, { "int4", 65536 } };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, precision) == 0)
            return table[i].tflops;
    return 0;
}

/*
 * The hold an order needs for quantity qty of its unit (docs/trading.md section 2): the value of
 * its worst-case capacity at its limit for its hours, plus the commission at its hold_bps.
 */
static bool hold_for(const struct order *o, int64_t qty, int64_t *out)
{
    if (qty <= 0) {
        *out = 0;
        return true;
    }
    int64_t capacity;
    if (o->devices ? __builtin_mul_overflow(qty, o->per, &capacity)
                   : __builtin_add_overflow(qty, o->per - 1, &capacity))
        return false;
    int64_t value;
    if (!mul_div(o->limit, capacity, 1, o->hours, TFLOPS_PER_PFLOPS, &value))
        return false;
    return !__builtin_add_overflow(value, commission_of(value, o->hold_bps), out);
}

/* ---- balances ------------------------------------------------------------------------------ */

/* Checks balance k of account i after it went down. */
static void check_balance(struct cpx_books *b, uint64_t seq, uint32_t i, int k)
{
    struct account *a = ACCOUNT(b, i);
    uint8_t bit = (uint8_t)(1u << k);
    if (a->bal[k] >= 0) {
        a->negative &= (uint8_t)~bit;
        return;
    }
    if (b->cfg.partial || (a->negative & bit) ||
        (k == CPX_BOOKS_EXTERNAL && strcmp(a->owner, CPX_BOOKS_EXCHANGE) == 0))
        return;
    a->negative |= bit;
    fail(b, seq, CPX_BOOKS_BALANCE_NEGATIVE,
         "record %" PRIu64 ": account %s %s goes negative (%" PRId64 ")", seq, a->owner,
         kind_names[k], a->bal[k]);
}

/* Adds delta to balance k of account i. */
static void adjust(struct cpx_books *b, uint64_t seq, uint32_t i, int k, int64_t delta)
{
    struct account *a = ACCOUNT(b, i);
    int64_t next;
    if (__builtin_add_overflow(a->bal[k], delta, &next)) {
        fail(b, seq, CPX_BOOKS_BALANCE_OVERFLOW,
             "record %" PRIu64 ": account %s %s would leave the 64-bit range", seq, a->owner,
             kind_names[k]);
        return;
    }
    a->bal[k] = next;
    a->seq = seq;
    if (!(a->moved & (1u << k))) {
        a->moved |= (uint8_t)(1u << k);
        b->moved_accounts++;
    }
    if (delta < 0)
        check_balance(b, seq, i, k);
}

/* Moves amount from (from, fk) to (to, tk), as one double entry. */
static void move(struct cpx_books *b, uint64_t seq, uint32_t from, int fk, uint32_t to, int tk,
                 int64_t amount)
{
    if (from == NONE || to == NONE)
        return;
    adjust(b, seq, from, fk, -amount);
    adjust(b, seq, to, tk, amount);
}

/* Takes amount out of an agreement's escrow (the buyer's escrow account moves with it). */
static void escrow_take(struct cpx_books *b, uint64_t seq, struct agreement *g, int64_t amount)
{
    g->escrow_left -= amount;
    if (g->escrow_left < 0 && !g->escrow_negative && !b->cfg.partial) {
        g->escrow_negative = true;
        fail(b, seq, CPX_BOOKS_BALANCE_NEGATIVE,
             "record %" PRIu64 ": the escrow of agreement %s goes negative (%" PRId64 ")", seq,
             g->id, g->escrow_left);
    }
}

/* Returns amount of an agreement's escrow to its buyer's available balance. */
static void escrow_return(struct cpx_books *b, uint64_t seq, struct agreement *g, int64_t amount)
{
    escrow_take(b, seq, g, amount);
    move(b, seq, g->buyer, CPX_BOOKS_ESCROW, g->buyer, CPX_BOOKS_AVAILABLE, amount);
}

/* ---- reading payloads ---------------------------------------------------------------------- */

/* One record being taken. */
struct ctx {
    struct cpx_books *b;
    const struct cpx_record *r;
    const struct cpx_canon_doc *d;
    const struct cpx_canon_node *p; /* the payload object */
    uint64_t seq;
    int64_t now;     /* the record's time, unix seconds */
    const char *bad; /* the first member that could not be read */
};

/* Notes that member key could not be read (the first one is reported). */
static void bad(struct ctx *x, const char *key)
{
    if (x->bad == NULL)
        x->bad = key;
}

/* An integer member in [min, max]. */
static int64_t get_int(struct ctx *x, const struct cpx_canon_node *obj, const char *key,
                       int64_t min, int64_t max)
{
    const struct cpx_canon_node *v = cpx_canon_get(x->d, obj, key);
    if (v == NULL || v->type != CPX_CANON_INT || v->ival < min || v->ival > max) {
        bad(x, key);
        return min;
    }
    return v->ival;
}

/* An optional integer member in [min, max]: false when absent or null. */
static bool get_opt_int(struct ctx *x, const struct cpx_canon_node *obj, const char *key,
                        int64_t min, int64_t max, int64_t *out)
{
    const struct cpx_canon_node *v = cpx_canon_get(x->d, obj, key);
    if (v == NULL || v->type == CPX_CANON_NULL)
        return false;
    if (v->type != CPX_CANON_INT || v->ival < min || v->ival > max) {
        bad(x, key);
        return false;
    }
    *out = v->ival;
    return true;
}

/* True for the characters an id may hold: [A-Za-z0-9_.:-]. */
static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

/* A string member of at most cap - 1 bytes into out. */
static void get_string(struct ctx *x, const struct cpx_canon_node *obj, const char *key, char *out,
                       size_t cap)
{
    out[0] = '\0';
    long n = cpx_canon_string_value(x->d, cpx_canon_get(x->d, obj, key), out, cap);
    if (n < 0 || (size_t)n != strlen(out))
        bad(x, key);
}

/* An id member: 1..CPX_BOOKS_ID_MAX-1 of [A-Za-z0-9_.:-]. */
static void get_id(struct ctx *x, const struct cpx_canon_node *obj, const char *key,
                   char out[CPX_BOOKS_ID_MAX])
{
    get_string(x, obj, key, out, CPX_BOOKS_ID_MAX);
    bool ok = out[0] != '\0';
    for (const char *c = out; ok && *c; c++)
        ok = id_char(*c);
    if (!ok) {
        bad(x, key);
        out[0] = '\0';
    }
}

/* A member that is word `yes` or word `no`: whether it is `yes` (neither is bad). */
static bool get_word(struct ctx *x, const char *key, const char *yes, const char *no)
{
    char word[16];
    get_string(x, x->p, key, word, sizeof word);
    bool is_yes = strcmp(word, yes) == 0;
    if (!is_yes && strcmp(word, no) != 0)
        bad(x, key);
    return is_yes;
}

/* A boolean member. */
static bool get_bool(struct ctx *x, const struct cpx_canon_node *obj, const char *key)
{
    const struct cpx_canon_node *v = cpx_canon_get(x->d, obj, key);
    if (v == NULL || (v->type != CPX_CANON_TRUE && v->type != CPX_CANON_FALSE)) {
        bad(x, key);
        return false;
    }
    return v->type == CPX_CANON_TRUE;
}

/* After reading: false (and a books_payload failure) when a member could not be read. */
static bool readable(struct ctx *x)
{
    if (x->bad == NULL)
        return true;
    fail(x->b, x->seq, CPX_BOOKS_PAYLOAD,
         "record %" PRIu64 ": the %s payload has no valid \"%s\", so its money cannot be derived",
         x->seq, x->r->kind_name, x->bad);
    return false;
}

#define AMOUNT_MAX CPX_CANON_INT_MAX

/* The party's id, or "" when the record has none. */
static const char *party_of(const struct ctx *x)
{
    return x->r->has_party ? x->r->party.id : "";
}

/* Reports an unknown id (not in partial books, where it may predate them). */
static void unknown(struct ctx *x, const char *what, const char *id)
{
    if (!x->b->cfg.partial)
        fail(x->b, x->seq, CPX_BOOKS_REFERENCE,
             "record %" PRIu64 ": %s names %s %s, which no earlier record made", x->seq,
             x->r->kind_name, what, id);
}

/* The item of t with the id a record names (`what` it is: "order"), or NULL (reported). */
static void *named(struct ctx *x, const struct table *t, const char *what, const char *id)
{
    uint32_t i = tab_find(t, id);
    if (i == NONE) {
        unknown(x, what, id);
        return NULL;
    }
    return tab_at(t, i);
}

static struct agreement *agreement_named(struct ctx *x, const char *id)
{
    return named(x, &x->b->agreements, "agreement", id);
}

/* Fails when an item of t has the id a record makes (`what` was `made`): ids are made once. */
static bool made_before(struct ctx *x, const struct table *t, const char *what, const char *made,
                        const char *id)
{
    uint32_t i = tab_find(t, id);
    if (i == NONE)
        return false;
    uint64_t seq;
    memcpy(&seq, (const char *)tab_at(t, i) + t->seq_at, sizeof seq);
    fail(x->b, x->seq, CPX_BOOKS_DUPLICATE,
         "record %" PRIu64 ": %s %s was %s before, at seq %" PRIu64, x->seq, what, id, made, seq);
    return true;
}

/* After reading: the agreement the record names, or NULL (the payload or the id reported). */
static struct agreement *agreement_of_record(struct ctx *x, const char *id)
{
    return readable(x) ? agreement_named(x, id) : NULL;
}

/* Checks that the record's party is the one the books expect (`role` of `what`). */
static void check_party(struct ctx *x, const char *expected, const char *role, const char *what)
{
    if (x->r->has_party && strcmp(x->r->party.id, expected) != 0)
        fail(x->b, x->seq, CPX_BOOKS_REFERENCE,
             "record %" PRIu64 ": %s of %s is signed by %s, not by its %s %s", x->seq,
             x->r->kind_name, what, party_of(x), role, expected);
}

/* A bill's agreement must be the one the record names. */
static bool same_agreement(struct ctx *x, const struct bill *l, const char *agreement)
{
    const struct agreement *g = AGREEMENT(x->b, l->agreement);
    if (strcmp(g->id, agreement) == 0)
        return true;
    fail(x->b, x->seq, CPX_BOOKS_REFERENCE,
         "record %" PRIu64 ": %s of bill %s names agreement %s, but the bill is agreement %s's",
         x->seq, x->r->kind_name, l->id, agreement, g->id);
    return false;
}

/*
 * After reading: the bill the record names -- of `agreement` when the record names one too --
 * or NULL (the payload, the id or the agreement reported).
 */
static struct bill *bill_of_record(struct ctx *x, const char *id, const char *agreement)
{
    if (!readable(x))
        return NULL;
    struct bill *l = named(x, &x->b->bills, "bill", id);
    if (l == NULL || (agreement != NULL && !same_agreement(x, l, agreement)))
        return NULL;
    return l;
}

/* ---- market records (docs/ledger.md section 11) -------------------------------------------- */

static void on_fee_schedule(struct ctx *x)
{
    int64_t maker = get_int(x, x->p, "maker_bps", 0, BPS_MAX);
    int64_t minimum = get_int(x, x->p, "minimum_micro", 0, AMOUNT_MAX);
    int64_t taker = get_int(x, x->p, "taker_bps", 0, BPS_MAX);
    if (!readable(x))
        return;
    x->b->have_fee = true;
    x->b->maker_bps = maker;
    x->b->taker_bps = taker;
    x->b->minimum = minimum;
}

static void on_deposit(struct ctx *x)
{
    char account[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "account", account);
    int64_t amount = get_int(x, x->p, "amount_micro", 1, AMOUNT_MAX);
    if (!readable(x))
        return;
    uint32_t to = account_of(x->b, account);
    uint32_t from = account_of(x->b, CPX_BOOKS_EXCHANGE);
    move(x->b, x->seq, from, CPX_BOOKS_EXTERNAL, to, CPX_BOOKS_AVAILABLE, amount);
}

/* Reads an order's terms into o (limit, unit, quantity, per, hours). */
static void read_terms(struct ctx *x, struct order *o)
{
    const struct cpx_canon_node *t = cpx_canon_get(x->d, x->p, "terms");
    if (t == NULL || t->type != CPX_CANON_OBJECT) {
        bad(x, "terms");
        return;
    }
    char precision[16];
    get_string(x, t, "precision", precision, sizeof precision);
    int64_t per = max_tflops(precision);
    if (per == 0)
        bad(x, "terms.precision");
    o->hours = get_int(x, t, "hours", 1, AMOUNT_MAX);
    o->limit = get_int(x, t, "limit_price_micro", 0, AMOUNT_MAX);
    const struct cpx_canon_node *devices = cpx_canon_get(x->d, t, "devices");
    o->devices = devices != NULL;
    o->remaining = get_int(x, t, o->devices ? "devices" : "tflops", 1, AMOUNT_MAX);
    const struct cpx_canon_node *c = cpx_canon_get(x->d, t, "constraints");
    int64_t max = 0;
    if (c != NULL && c->type == CPX_CANON_OBJECT &&
        get_opt_int(x, c, "max_tflops", 1, AMOUNT_MAX, &max))
        per = max;
    o->per = per;
}

static void on_order(struct ctx *x)
{
    struct cpx_books *b = x->b;
    struct order o;
    memset(&o, 0, sizeof o);
    char buyer[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "buyer", buyer);
    o.hold_bps = get_int(x, x->p, "hold_bps", 0, BPS_MAX);
    int64_t hold = get_int(x, x->p, "hold_micro", 0, AMOUNT_MAX);
    get_id(x, x->p, "id", o.id);
    read_terms(x, &o);
    if (!readable(x))
        return;
    check_party(x, buyer, "buyer", o.id);
    if (made_before(x, &b->orders, "order", "placed", o.id))
        return;
    b->counts.orders++;
    int64_t derived;
    if (!hold_for(&o, o.remaining, &derived))
        fail(b, x->seq, CPX_BOOKS_ORDER_HOLD,
             "record %" PRIu64 ": order %s: its terms give a hold beyond 64 bits", x->seq, o.id);
    else if (derived != hold)
        fail(b, x->seq, CPX_BOOKS_ORDER_HOLD,
             "record %" PRIu64 ": order %s: hold %" PRId64 " differs from %" PRId64
             " derived from its terms at %" PRId64 " bps",
             x->seq, o.id, hold, derived, o.hold_bps);
    /* hold_bps is not judged against the recorded schedule: a cpxd records its schedule before
     * its first fill, so an order placed after a restart may precede the record of its rate.
     * The fill's rate, checked against the schedule then in force, is capped by it. */
    uint32_t acc = account_of(b, buyer);
    struct order *placed = add_item(b, &b->orders, o.id);
    if (acc == NONE || placed == NULL)
        return;
    o.buyer = acc;
    o.hold_left = hold;
    o.seq = x->seq;
    *placed = o;
    move(b, x->seq, acc, CPX_BOOKS_AVAILABLE, acc, CPX_BOOKS_HELD, hold);
}

/* An agreement record as read. */
struct fill {
    char id[CPX_BOOKS_ID_MAX], buyer[CPX_BOOKS_ID_MAX], provider[CPX_BOOKS_ID_MAX];
    char order[CPX_BOOKS_ID_MAX];
    int64_t commission, devices, escrow, hours, price, released, tflops, value, bps, deliver_by;
    bool has_bps;
    bool buyer_made; /* the buyer was the maker (else the provider) */
};

/* The rates lo..hi at which value gives the commission of a fill without a recorded rate, at
 * most its order's hold_bps (lo > hi: none). */
static void legacy_rates(const struct fill *f, const struct order *o, int64_t *lo, int64_t *hi)
{
    int64_t cap = o != NULL ? o->hold_bps : BPS_MAX;
    if (f->value == 0) {
        *lo = f->commission == 0 ? 0 : 1;
        *hi = f->commission == 0 ? cap : 0;
        return;
    }
    /* floor(v r / 10000) = c  <=>  c x 10000 <= v r < (c + 1) x 10000 */
    u128 v = (u128)f->value, c = (u128)f->commission;
    u128 low = (c * BPS_MAX + v - 1) / v, high = ((c + 1) * BPS_MAX - 1) / v;
    *lo = low > (u128)BPS_MAX ? BPS_MAX + 1 : (int64_t)low;
    *hi = high > (u128)cap ? cap : (int64_t)high;
}

/* Checks a fill's value, commission, escrow and rate (docs/trading.md section 2). */
static void check_fill_amounts(struct ctx *x, const struct fill *f, const struct order *o)
{
    struct cpx_books *b = x->b;
    int64_t value;
    if (!mul_div(f->price, f->tflops, f->devices, f->hours, TFLOPS_PER_PFLOPS, &value))
        fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
             "record %" PRIu64 ": agreement %s: its value is beyond 64 bits", x->seq, f->id);
    else if (value != f->value)
        fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
             "record %" PRIu64 ": agreement %s: value %" PRId64 " differs from %" PRId64
             " derived from price, tflops, devices and hours",
             x->seq, f->id, f->value, value);
    if (f->has_bps) {
        int64_t commission = commission_of(f->value, f->bps);
        if (commission != f->commission)
            fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
                 "record %" PRIu64 ": agreement %s: commission %" PRId64 " differs from %" PRId64
                 " derived from its value at %" PRId64 " bps",
                 x->seq, f->id, f->commission, commission, f->bps);
    }
    if (!f->has_bps) {
        /* Written before issue #6: the rate is not recorded. It is what the escrowed commission
         * was taken at: the rates r with floor(value x r / 10000) = commission, at most the
         * order's hold_bps. */
        int64_t lo, hi;
        legacy_rates(f, o, &lo, &hi);
        if (lo > hi)
            fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
                 "record %" PRIu64 ": agreement %s: commission %" PRId64
                 " is not its value at any rate up to %" PRId64 " bps",
                 x->seq, f->id, f->commission, o != NULL ? o->hold_bps : BPS_MAX);
    }
    if (o != NULL) {
        int64_t rate = f->bps;
        if (b->have_fee) {
            rate = f->buyer_made ? b->maker_bps : b->taker_bps;
            if (rate > o->hold_bps)
                rate = o->hold_bps;
        }
        if (f->has_bps && f->bps > o->hold_bps)
            fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
                 "record %" PRIu64 ": agreement %s: commission_bps %" PRId64
                 " exceeds order %s's hold_bps %" PRId64,
                 x->seq, f->id, f->bps, o->id, o->hold_bps);
        else if (f->has_bps && b->have_fee && f->bps != rate)
            fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
                 "record %" PRIu64 ": agreement %s: commission_bps %" PRId64
                 " is not the %s rate in force (%" PRId64 ")",
                 x->seq, f->id, f->bps, f->buyer_made ? "maker" : "taker", rate);
    }
    if (f->escrow != f->value + f->commission)
        fail(b, x->seq, CPX_BOOKS_AGREEMENT_AMOUNT,
             "record %" PRIu64 ": agreement %s: escrow %" PRId64 " is not value %" PRId64
             " + commission %" PRId64,
             x->seq, f->id, f->escrow, f->value, f->commission);
}

/*
 * Takes a fill out of its order: the escrow, then what the rest of the order no longer needs
 * (docs/trading.md section 2), checking the recorded release against that derivation.
 */
static void fill_order(struct ctx *x, const struct fill *f, struct order *o)
{
    struct cpx_books *b = x->b;
    if (o->closed) {
        fail(b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": agreement %s fills order %s, which closed at seq %" PRIu64,
             x->seq, f->id, o->id, o->closed_seq);
        return;
    }
    if (strcmp(ACCOUNT(b, o->buyer)->owner, f->buyer) != 0)
        fail(b, x->seq, CPX_BOOKS_REFERENCE,
             "record %" PRIu64 ": agreement %s is for buyer %s, but order %s is %s's", x->seq,
             f->id, f->buyer, o->id, ACCOUNT(b, o->buyer)->owner);
    /* The quantity it takes: devices, or TFLOPS (a capacity order's last fill may overshoot by
     * less than one device). */
    int64_t used = f->devices;
    if (!o->devices) {
        int64_t need = (o->remaining + f->tflops - 1) / f->tflops;
        if (f->devices > need)
            used = INT64_MAX;
        else
            used = f->devices * f->tflops < o->remaining ? f->devices * f->tflops : o->remaining;
    }
    if (used > o->remaining) {
        fail(b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": agreement %s fills %" PRId64 " devices, more than order %s has "
             "left (%" PRId64 " %s)",
             x->seq, f->id, f->devices, o->id, o->remaining, o->devices ? "devices" : "TFLOPS");
        used = o->remaining;
    }
    o->remaining -= used;
    if (f->escrow > o->hold_left) {
        fail(b, x->seq, CPX_BOOKS_RELEASE_AMOUNT,
             "record %" PRIu64 ": agreement %s escrows %" PRId64 " of order %s, which holds only "
             "%" PRId64,
             x->seq, f->id, f->escrow, o->id, o->hold_left);
    } else {
        int64_t need = 0, left = o->hold_left - f->escrow;
        if (!hold_for(o, o->remaining, &need))
            need = INT64_MAX;
        int64_t release = left > need ? left - need : 0;
        if (release != f->released)
            fail(b, x->seq, CPX_BOOKS_RELEASE_AMOUNT,
                 "record %" PRIu64 ": agreement %s releases %" PRId64 " of order %s's hold; "
                 "derivation says %" PRId64 " (%" PRId64 " left, the rest needs %" PRId64 ")",
                 x->seq, f->id, f->released, o->id, release, left, need);
    }
    o->hold_left -= f->escrow + f->released;
    if (o->remaining == 0) {
        o->closed = true;
        o->closed_seq = x->seq;
    }
}

static void on_agreement(struct ctx *x)
{
    struct cpx_books *b = x->b;
    struct fill f;
    memset(&f, 0, sizeof f);
    get_id(x, x->p, "buyer", f.buyer);
    f.commission = get_int(x, x->p, "commission_micro", 0, AMOUNT_MAX);
    f.devices = get_int(x, x->p, "devices", 1, AMOUNT_MAX);
    f.escrow = get_int(x, x->p, "escrow_micro", 0, AMOUNT_MAX);
    f.hours = get_int(x, x->p, "hours", 1, AMOUNT_MAX);
    get_id(x, x->p, "id", f.id);
    f.buyer_made = get_word(x, "maker", "buyer", "provider");
    get_id(x, x->p, "order", f.order);
    f.price = get_int(x, x->p, "price_micro", 0, AMOUNT_MAX);
    get_id(x, x->p, "provider", f.provider);
    f.released = get_int(x, x->p, "released_micro", 0, AMOUNT_MAX);
    f.tflops = get_int(x, x->p, "tflops", 1, AMOUNT_MAX);
    f.value = get_int(x, x->p, "value_micro", 0, AMOUNT_MAX);
    f.has_bps = get_opt_int(x, x->p, "commission_bps", 0, BPS_MAX, &f.bps);
    f.deliver_by = -1;
    get_opt_int(x, x->p, "deliver_by", 0, AMOUNT_MAX, &f.deliver_by);
    if (!readable(x) || made_before(x, &b->agreements, "agreement", "made", f.id))
        return;
    b->counts.agreements++;
    struct order *o = named(x, &b->orders, "order", f.order);
    check_fill_amounts(x, &f, o);
    if (o != NULL)
        fill_order(x, &f, o);
    uint32_t buyer = account_of(b, f.buyer), provider = account_of(b, f.provider);
    struct agreement *g = add_item(b, &b->agreements, f.id);
    if (buyer == NONE || provider == NONE || g == NULL)
        return;
    g->buyer = buyer;
    g->provider = provider;
    g->price = f.price;
    g->tflops = f.tflops;
    g->devices = f.devices;
    g->hours = f.hours;
    g->value = f.value;
    g->commission = f.commission;
    g->bps = g->bps_max = f.bps;
    if (!f.has_bps) {
        legacy_rates(&f, o, &g->bps, &g->bps_max);
        if (g->bps > g->bps_max)
            g->bps = g->bps_max; /* none fits (reported): the largest allowed */
    }
    g->deliver_by = f.deliver_by;
    g->escrow_left = f.escrow;
    g->seq = x->seq;
    g->status = AGR_PENDING;
    move(b, x->seq, buyer, CPX_BOOKS_HELD, buyer, CPX_BOOKS_ESCROW, f.escrow);
    move(b, x->seq, buyer, CPX_BOOKS_HELD, buyer, CPX_BOOKS_AVAILABLE, f.released);
}

static void on_cancel(struct ctx *x)
{
    struct cpx_books *b = x->b;
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "id", id);
    if (x->bad == NULL && strncmp(id, "ord_", 4) != 0)
        return; /* a listing's: no money */
    int64_t released = get_int(x, x->p, "released_micro", 0, AMOUNT_MAX);
    struct order *o = readable(x) ? named(x, &b->orders, "order", id) : NULL;
    if (o == NULL)
        return;
    check_party(x, ACCOUNT(b, o->buyer)->owner, "buyer", id);
    if (o->closed) {
        fail(b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": cancel of order %s, which closed at seq %" PRIu64, x->seq, id,
             o->closed_seq);
        return;
    }
    if (released != o->hold_left)
        fail(b, x->seq, CPX_BOOKS_RELEASE_AMOUNT,
             "record %" PRIu64 ": cancel of order %s releases %" PRId64 ", but %" PRId64
             " is held for it",
             x->seq, id, released, o->hold_left);
    o->hold_left -= released;
    o->closed = true;
    o->closed_seq = x->seq;
    move(b, x->seq, o->buyer, CPX_BOOKS_HELD, o->buyer, CPX_BOOKS_AVAILABLE, released);
}

/* ---- delivery and billing records (docs/delivery.md section 5) ----------------------------- */

/* Fails unless agreement g is in status want (the step is named by the record's kind). */
static bool agreement_is(struct ctx *x, const struct agreement *g, uint8_t want)
{
    if (g->status == want)
        return true;
    fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
         "record %" PRIu64 ": %s of agreement %s, which is %s, not %s", x->seq, x->r->kind_name,
         g->id, agreement_status_names[g->status], agreement_status_names[want]);
    return false;
}

static void on_acceptance(struct ctx *x)
{
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", id);
    int64_t end = get_int(x, x->p, "end", 0, AMOUNT_MAX);
    int64_t start = get_int(x, x->p, "start", 0, AMOUNT_MAX);
    struct agreement *g = agreement_of_record(x, id);
    /* The exchange's clock (unix seconds) starts it in the batch that appends the record (unix
     * milliseconds): at the record's second, or the one before when the second turned since. */
    if (x->bad == NULL && (start > x->now || start < x->now - 1))
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": acceptance of agreement %s starts at %" PRId64
             ", not at its record's time %" PRId64 " (or the second before)",
             x->seq, id, start, x->now);
    if (g == NULL)
        return;
    check_party(x, ACCOUNT(x->b, g->provider)->owner, "provider", id);
    if (!agreement_is(x, g, AGR_PENDING))
        return;
    if (end - start != g->hours * SECONDS_PER_HOUR)
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": acceptance of agreement %s: end %" PRId64 " is not start %" PRId64
             " + %" PRId64 " hours",
             x->seq, id, end, start, g->hours);
    g->status = AGR_ACTIVE;
    g->start = start;
    g->end = end;
    g->metered_until = start;
}

static void on_failure(struct ctx *x)
{
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", id);
    int64_t released = get_int(x, x->p, "released_micro", 0, AMOUNT_MAX);
    struct agreement *g = agreement_of_record(x, id);
    if (g == NULL || !agreement_is(x, g, AGR_PENDING))
        return;
    if (g->deliver_by >= 0 && x->now < g->deliver_by)
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": agreement %s fails at %" PRId64
             ", before its deliver_by %" PRId64,
             x->seq, id, x->now, g->deliver_by);
    if (released != g->escrow_left)
        fail(x->b, x->seq, CPX_BOOKS_RELEASE_AMOUNT,
             "record %" PRIu64 ": failure of agreement %s releases %" PRId64
             ", but its escrow holds %" PRId64,
             x->seq, id, released, g->escrow_left);
    escrow_return(x->b, x->seq, g, released);
    g->status = AGR_FAILED;
    g->closed_seq = x->seq;
}

static void on_usage(struct ctx *x)
{
    struct cpx_books *b = x->b;
    char agreement[CPX_BOOKS_ID_MAX], id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", agreement);
    int64_t ds = get_int(x, x->p, "device_seconds", 0, AMOUNT_MAX);
    get_id(x, x->p, "id", id);
    int64_t end = get_int(x, x->p, "period_end", 0, AMOUNT_MAX);
    int64_t start = get_int(x, x->p, "period_start", 0, AMOUNT_MAX);
    /* "final": the job finished early (absent in reports written before it existed). */
    bool said_final = cpx_canon_get(x->d, x->p, "final") != NULL && get_bool(x, x->p, "final");
    if (!readable(x) || made_before(x, &b->usages, "usage report", "made", id))
        return;
    struct agreement *g = agreement_named(x, agreement);
    if (g == NULL)
        return;
    b->counts.usages++;
    check_party(x, ACCOUNT(b, g->provider)->owner, "provider", agreement);
    if (!agreement_is(x, g, AGR_ACTIVE))
        return;
    if (start >= end || start < g->start || end > g->end || end > x->now)
        fail(b, x->seq, CPX_BOOKS_USAGE_WINDOW,
             "record %" PRIu64 ": usage %s of agreement %s: period %" PRId64 "..%" PRId64
             " is not inside %" PRId64 "..%" PRId64 " and before %" PRId64,
             x->seq, id, agreement, start, end, g->start, g->end, x->now);
    else if (start < g->metered_until)
        fail(b, x->seq, CPX_BOOKS_USAGE_OVERLAP,
             "record %" PRIu64 ": usage %s of agreement %s starts at %" PRId64
             ", before the previous report's end %" PRId64,
             x->seq, id, agreement, start, g->metered_until);
    int64_t capacity;
    if (end > start && mul_div(g->devices, end - start, 1, 1, 1, &capacity) && ds > capacity)
        fail(b, x->seq, CPX_BOOKS_USAGE_CAPACITY,
             "record %" PRIu64 ": usage %s of agreement %s: %" PRId64
             " device-seconds, more than %" PRId64 " devices x %" PRId64 " s",
             x->seq, id, agreement, ds, g->devices, end - start);
    struct usage *u = add_item(b, &b->usages, id);
    if (u == NULL)
        return;
    u->agreement = (uint32_t)(g - AGREEMENT(b, 0));
    u->device_seconds = ds;
    u->start = start;
    u->end = end;
    u->seq = x->seq;
    u->bill = NONE;
    u->final = said_final || end == g->end;
    if (end > g->metered_until)
        g->metered_until = end;
    g->has_usage = true;
}

static void on_bill(struct ctx *x)
{
    struct cpx_books *b = x->b;
    char agreement[CPX_BOOKS_ID_MAX], id[CPX_BOOKS_ID_MAX], usage[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", agreement);
    int64_t amount = get_int(x, x->p, "amount_micro", 0, AMOUNT_MAX);
    int64_t until = get_int(x, x->p, "dispute_until", 0, AMOUNT_MAX);
    bool final = get_bool(x, x->p, "final");
    get_id(x, x->p, "id", id);
    get_id(x, x->p, "usage", usage);
    if (!readable(x) || made_before(x, &b->bills, "bill", "made", id))
        return;
    struct agreement *g = agreement_named(x, agreement);
    if (g == NULL)
        return;
    b->counts.bills++;
    agreement_is(x, g, AGR_ACTIVE); /* a bill follows its usage report, in the same batch */
    struct usage *u = named(x, &b->usages, "usage report", usage);
    if (u != NULL && AGREEMENT(b, u->agreement) != g) {
        fail(b, x->seq, CPX_BOOKS_REFERENCE,
             "record %" PRIu64 ": bill %s is for agreement %s, but usage %s is agreement %s's",
             x->seq, id, agreement, usage, AGREEMENT(b, u->agreement)->id);
        u = NULL;
    } else if (u != NULL && u->bill != NONE) {
        fail(b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": bill %s bills usage %s again (bill %s, seq %" PRIu64 ")", x->seq,
             id, usage, BILL(b, u->bill)->id, BILL(b, u->bill)->seq);
        u = NULL;
    }
    if (u != NULL) {
        int64_t derived;
        if (!mul_div(g->price, g->tflops, u->device_seconds, 1, BILL_DIVISOR, &derived))
            fail(b, x->seq, CPX_BOOKS_BILL_AMOUNT,
                 "record %" PRIu64 ": bill %s: the amount of usage %s is beyond 64 bits", x->seq,
                 id, usage);
        else if (derived != amount)
            fail(b, x->seq, CPX_BOOKS_BILL_AMOUNT,
                 "record %" PRIu64 ": bill %s: amount %" PRId64 " differs from %" PRId64
                 " derived from usage %s and agreement %s",
                 x->seq, id, amount, derived, usage, agreement);
        if (final != u->final)
            fail(b, x->seq, CPX_BOOKS_LIFECYCLE,
                 "record %" PRIu64 ": bill %s says final %s, but usage %s %s", x->seq, id,
                 final ? "true" : "false", usage,
                 u->final ? "is the final report" : "neither says final nor reaches the end");
        if (final && u->final)
            g->final_billed = true;
    }
    struct bill *l = add_item(b, &b->bills, id);
    if (l == NULL)
        return;
    l->agreement = (uint32_t)(g - AGREEMENT(b, 0));
    l->amount = amount;
    l->dispute_until = until;
    l->seq = x->seq;
    l->state = BILL_OPEN;
    l->final = final;
    if (u != NULL)
        u->bill = (uint32_t)(l - BILL(b, 0));
    g->reserved += amount;
}

static void on_commission(struct ctx *x)
{
    struct cpx_books *b = x->b;
    char agreement[CPX_BOOKS_ID_MAX], id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", agreement);
    get_id(x, x->p, "bill", id);
    int64_t bps = get_int(x, x->p, "bps", 0, BPS_MAX);
    int64_t commission = get_int(x, x->p, "commission_micro", 0, AMOUNT_MAX);
    int64_t minimum = get_int(x, x->p, "minimum_micro", 0, AMOUNT_MAX);
    struct bill *l = bill_of_record(x, id, agreement);
    if (l == NULL)
        return;
    struct agreement *g = AGREEMENT(b, l->agreement);
    if (l->has_commission) {
        fail(b, x->seq, CPX_BOOKS_LIFECYCLE, "record %" PRIu64 ": a second commission on bill %s",
             x->seq, id);
        return;
    }
    b->counts.commissions++;
    if (g->bps < g->bps_max) {
        /* The first commission of an agreement without a recorded rate settles it. */
        if (bps >= g->bps && bps <= g->bps_max)
            g->bps = bps;
        else
            fail(b, x->seq, CPX_BOOKS_COMMISSION_AMOUNT,
                 "record %" PRIu64 ": commission on bill %s: bps %" PRId64
                 " is not the rate agreement %s's commission was escrowed at (%" PRId64 "..%" PRId64
                 ")",
                 x->seq, id, bps, agreement, g->bps, g->bps_max);
        g->bps_max = g->bps;
    } else if (bps != g->bps) {
        fail(b, x->seq, CPX_BOOKS_COMMISSION_AMOUNT,
             "record %" PRIu64 ": commission on bill %s: bps %" PRId64
             " is not agreement %s's rate %" PRId64,
             x->seq, id, bps, agreement, g->bps);
    }
    if (minimum != b->minimum)
        fail(b, x->seq, CPX_BOOKS_COMMISSION_AMOUNT,
             "record %" PRIu64 ": commission on bill %s: minimum %" PRId64
             " is not the fee schedule's %" PRId64,
             x->seq, id, minimum, b->minimum);
    int64_t left = g->commission - g->billed_commission;
    if (left < 0)
        left = 0;
    int64_t derived = 0;
    if (l->amount > 0) {
        derived = commission_of(l->amount, g->bps);
        if (derived < b->minimum)
            derived = b->minimum;
        if (derived > left)
            derived = left;
    }
    if (derived != commission)
        fail(b, x->seq, CPX_BOOKS_COMMISSION_AMOUNT,
             "record %" PRIu64 ": commission on bill %s: %" PRId64 " differs from %" PRId64
             " derived from amount %" PRId64 " at %" PRId64 " bps (minimum %" PRId64 ", %" PRId64
             " left of agreement %s's)",
             x->seq, id, commission, derived, l->amount, g->bps, b->minimum, left, agreement);
    l->commission = commission;
    l->has_commission = true;
    g->billed_commission += commission;
    if (l->state == BILL_OPEN || l->state == BILL_DISPUTED || l->state == BILL_PAY)
        g->reserved += commission;
}

/* Closes bill l (settled or refunded) in its agreement's reservations. */
static void close_bill(struct cpx_books *b, struct bill *l, uint8_t state, uint64_t seq)
{
    struct agreement *g = AGREEMENT(b, l->agreement);
    g->reserved -= l->amount + (l->has_commission ? l->commission : 0);
    l->state = state;
    l->closed_seq = seq;
}

/* Fails unless bill l may still settle or be refunded. */
static bool bill_open(struct ctx *x, const struct bill *l)
{
    if (l->state != BILL_SETTLED && l->state != BILL_REFUNDED)
        return true;
    fail(x->b, x->seq, CPX_BOOKS_SETTLEMENT,
         "record %" PRIu64 ": %s of bill %s, which was %s at seq %" PRIu64 " already", x->seq,
         x->r->kind_name, l->id, bill_state_names[l->state], l->closed_seq);
    return false;
}

static void on_settlement(struct ctx *x)
{
    struct cpx_books *b = x->b;
    char agreement[CPX_BOOKS_ID_MAX], id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", agreement);
    get_id(x, x->p, "bill", id);
    int64_t commission = get_int(x, x->p, "commission_micro", 0, AMOUNT_MAX);
    int64_t paid = get_int(x, x->p, "to_provider_micro", 0, AMOUNT_MAX);
    struct bill *l = bill_of_record(x, id, agreement);
    if (l == NULL)
        return;
    struct agreement *g = AGREEMENT(b, l->agreement);
    b->counts.settlements++;
    bool open = bill_open(x, l);
    if (open && l->state == BILL_DISPUTED)
        fail(b, x->seq, CPX_BOOKS_SETTLEMENT,
             "record %" PRIu64 ": bill %s is settled while its dispute is unresolved", x->seq, id);
    else if (open && l->state == BILL_OPEN && x->now < l->dispute_until)
        fail(b, x->seq, CPX_BOOKS_SETTLEMENT,
             "record %" PRIu64 ": bill %s is settled at %" PRId64
             ", before its dispute window closes at %" PRId64,
             x->seq, id, x->now, l->dispute_until);
    if (open && !l->has_commission)
        fail(b, x->seq, CPX_BOOKS_SETTLEMENT,
             "record %" PRIu64 ": bill %s is settled before its commission is recorded", x->seq,
             id);
    if (open && paid != l->amount)
        fail(b, x->seq, CPX_BOOKS_SETTLEMENT,
             "record %" PRIu64 ": settlement of bill %s pays the provider %" PRId64
             ", the bill's amount is %" PRId64,
             x->seq, id, paid, l->amount);
    if (open && l->has_commission && commission != l->commission)
        fail(b, x->seq, CPX_BOOKS_SETTLEMENT,
             "record %" PRIu64 ": settlement of bill %s takes commission %" PRId64
             ", the bill's commission is %" PRId64,
             x->seq, id, commission, l->commission);
    if (open)
        close_bill(b, l, BILL_SETTLED, x->seq);
    /* What the record moved, moved: a second payment comes out of escrow too. */
    escrow_take(b, x->seq, g, paid);
    escrow_take(b, x->seq, g, commission);
    move(b, x->seq, g->buyer, CPX_BOOKS_ESCROW, g->provider, CPX_BOOKS_AVAILABLE, paid);
    uint32_t exchange = account_of(b, CPX_BOOKS_EXCHANGE);
    move(b, x->seq, g->buyer, CPX_BOOKS_ESCROW, exchange, CPX_BOOKS_COMMISSION, commission);
}

static void on_dispute(struct ctx *x)
{
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "bill", id);
    struct bill *l = bill_of_record(x, id, NULL);
    if (l == NULL)
        return;
    const struct agreement *g = AGREEMENT(x->b, l->agreement);
    check_party(x, ACCOUNT(x->b, g->buyer)->owner, "buyer", id);
    if (l->state != BILL_OPEN) {
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": dispute of bill %s, which is %s", x->seq, id,
             bill_state_names[l->state]);
        return;
    }
    /* Open until dispute_until: at that second the bill settles (docs/delivery.md section 4). */
    if (x->now >= l->dispute_until)
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": dispute of bill %s at %" PRId64
             ", not before its window closed at %" PRId64,
             x->seq, id, x->now, l->dispute_until);
    l->state = BILL_DISPUTED;
}

static void on_resolution(struct ctx *x)
{
    struct cpx_books *b = x->b;
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "bill", id);
    bool refund = get_word(x, "outcome", "refund", "pay");
    int64_t refunded = get_int(x, x->p, "refunded_micro", 0, AMOUNT_MAX);
    struct bill *l = bill_of_record(x, id, NULL);
    if (l == NULL || !bill_open(x, l))
        return;
    struct agreement *g = AGREEMENT(b, l->agreement);
    if (l->state != BILL_DISPUTED) {
        fail(b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": resolution of bill %s, which is %s, not disputed", x->seq, id,
             bill_state_names[l->state]);
        if (!refund)
            return; /* nothing moves; a refund below still does */
    }
    int64_t owed = refund ? l->amount + l->commission : 0;
    if (refunded != owed)
        fail(b, x->seq, CPX_BOOKS_SETTLEMENT,
             "record %" PRIu64 ": %s of bill %s returns %" PRId64
             " to the buyer; its %s is %" PRId64,
             x->seq, refund ? "refund" : "pay", id, refunded,
             refund ? "amount and commission" : "due refund", owed);
    if (!refund) {
        l->state = BILL_PAY;
        return;
    }
    b->counts.settlements++;
    close_bill(b, l, BILL_REFUNDED, x->seq);
    escrow_return(b, x->seq, g, refunded);
}

static void on_completion(struct ctx *x)
{
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", id);
    bool final = get_word(x, "reason", "final_usage", "usage_grace");
    int64_t metered = -1;
    bool has_metered = get_opt_int(x, x->p, "metered_until", 0, AMOUNT_MAX, &metered);
    int64_t released = get_int(x, x->p, "released_micro", 0, AMOUNT_MAX);
    struct agreement *g = agreement_of_record(x, id);
    if (g == NULL || !agreement_is(x, g, AGR_ACTIVE))
        return;
    if (final && !g->final_billed)
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": agreement %s completes for its final usage, but no bill "
             "reached its end %" PRId64,
             x->seq, id, g->end);
    if (!final && x->now < g->end)
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": agreement %s completes at %" PRId64 " for usage_grace, "
             "before its end %" PRId64,
             x->seq, id, x->now, g->end);
    /* Without a report metered_until is still the start (a server may write null or 0). */
    bool metered_ok = g->has_usage ? has_metered && metered == g->metered_until
                                   : !has_metered || metered == 0 || metered == g->start;
    if (!metered_ok)
        fail(x->b, x->seq, CPX_BOOKS_LIFECYCLE,
             "record %" PRIu64 ": agreement %s completes metered until %" PRId64
             ", but its usage reports end at %" PRId64,
             x->seq, id, metered, g->metered_until);
    int64_t due = g->escrow_left - g->reserved;
    if (released != due)
        fail(x->b, x->seq, CPX_BOOKS_RELEASE_AMOUNT,
             "record %" PRIu64 ": completion of agreement %s releases %" PRId64
             "; derivation says %" PRId64 " (escrow left %" PRId64 " minus open bills %" PRId64 ")",
             x->seq, id, released, due, g->escrow_left, g->reserved);
    escrow_return(x->b, x->seq, g, released);
    g->status = AGR_COMPLETED;
    g->closed_seq = x->seq;
}

/* ---- what the parties signed (docs/delivery.md sections 2-4) ------------------------------- */

/*
 * A usage report, an acceptance, a dispute and a resolution keep their party's signed request (the
 * party part), and the record must be what was signed: the request's method and target name what
 * the payload names, and its body -- read as the exchange reads request bodies (jansson with
 * duplicate members refused, then the request's fields: a member it does not know refused, null
 * taken as absent where its request parser does so) -- holds the payload's numbers and words. Each
 * kind is a row of signed_requests below; a record gets one finding, for the first difference.
 */

#define BODY_TEXT_MAX    500                /* longest text the exchange takes: reason, note */
#define BODY_KEY_MAX     32                 /* room for the name of a member of a request */
#define BODY_MEMBERS_MAX 4                  /* most members a signed request has */
#define BODY_COUNT_MAX   (INT64_C(1) << 53) /* device_seconds: the exchange takes 0..2^53 */
#define WHY_MAX          150                /* what differs, in a finding */

/* How a member of a request body is written, as the exchange's request parser takes it. */
enum body_type {
    B_TIME,  /* an RFC 3339 time in whole seconds, from 1970 on: unix seconds in num */
    B_COUNT, /* an integer in 0..2^53 */
    B_FLAG,  /* true or false (num 1 or 0) */
    B_TEXT,  /* a string of min..BODY_TEXT_MAX bytes without control characters */
    B_WORD,  /* any string: an id, an outcome */
};

/* A member of a signed request's body. */
struct body_member {
    const char *key; /* its name, in the body and in the payload */
    uint8_t type;    /* enum body_type */
    bool required;   /* the exchange refuses a body without it */
    bool compared;   /* the payload's member of that name holds the same (else a rule judges) */
    int64_t min;     /* B_TEXT: fewest characters */
};

/* A member as read from a body. Texts the body leaves out are "" (a resolution's note). */
struct body_value {
    bool present;                 /* given (and not null, where null is absent) */
    int64_t num;                  /* B_TIME, B_COUNT, B_FLAG */
    char text[BODY_TEXT_MAX + 1]; /* B_TEXT, B_WORD: the string */
};

struct body {
    struct body_value v[BODY_MEMBERS_MAX]; /* by the index of its member in the request's row */
};

/* What a kind of record's party signed. */
struct signed_request {
    const char *prefix, *suffix;       /* the request target's path: prefix, an id, suffix */
    const char *id_member;             /* the payload member holding that id */
    const char *name_member;           /* the payload member that names the record in findings */
    bool query;                        /* a query may follow the path (the router ignores it) */
    bool null_absent;                  /* a null member counts as absent (the request parser) */
    const struct body_member *members; /* the body's members */
    size_t n_members;
    /* What the members alone do not say: writes what differs into why and returns false. */
    bool (*rule)(struct ctx *x, const struct signed_request *q, const struct body *body, char *why);
};

/* Writes what differs (a clause of a finding) into why (WHY_MAX bytes). */
static void say(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, WHY_MAX, fmt, ap);
    va_end(ap);
}

/* The unix second of an RFC 3339 time as the exchange reads a request's (cpx_rfc3339_parse), in
 * whole seconds, not before 1970. */
static bool rfc3339_seconds(const char *s, int64_t *out)
{
    int64_t us;
    if (!cpx_rfc3339_parse(s, &us) || us < 0 || us % 1000000 != 0)
        return false;
    *out = us / 1000000;
    return true;
}

/* -- request bodies, read as the exchange's JSON reader (jansson) reads them ----------------- */

/* A body being read. */
struct reader {
    const uint8_t *s;
    size_t len, at;
};

/* What a member's value is. */
enum json_kind { J_STRING, J_INT, J_REAL, J_TRUE, J_FALSE, J_NULL, J_CONTAINER };

static const char not_json[] = "not JSON";
static const char too_long[] = "too long";

static void skip_ws(struct reader *rd)
{
    while (rd->at < rd->len && (rd->s[rd->at] == ' ' || rd->s[rd->at] == '\t' ||
                                rd->s[rd->at] == '\n' || rd->s[rd->at] == '\r'))
        rd->at++;
}

/* After white space: whether c comes next (then it is taken). */
static bool next_is(struct reader *rd, char c)
{
    skip_ws(rd);
    if (rd->at >= rd->len || rd->s[rd->at] != (uint8_t)c)
        return false;
    rd->at++;
    return true;
}

/* Four hex digits of a \u escape. */
static bool hex4(struct reader *rd, uint32_t *out)
{
    if (rd->len - rd->at < 4)
        return false;
    *out = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = rd->s[rd->at++];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return false;
        *out = *out << 4 | (uint32_t)v;
    }
    return true;
}

/* Appends code point cp as UTF-8 to out[0..cap) at *n (counting past cap, writing within). */
static void put_utf8(char *out, size_t cap, size_t *n, uint32_t cp)
{
    uint8_t u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        k = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6);
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12);
        u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18);
        u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        k = 4;
    }
    for (size_t i = 0; i < k; i++, (*n)++)
        if (*n + 1 < cap)
            out[*n] = (char)u[i];
}

/*
 * Decodes the string at rd into out (cap bytes with its NUL). NULL, not_json (a raw control
 * character, an unknown escape, a lone surrogate, \u0000, invalid UTF-8, no end) or too_long.
 */
static const char *read_string(struct reader *rd, char *out, size_t cap)
{
    if (rd->at >= rd->len || rd->s[rd->at] != '"')
        return not_json;
    rd->at++;
    size_t n = 0;
    for (;;) {
        if (rd->at >= rd->len)
            return not_json;
        uint8_t c = rd->s[rd->at++];
        if (c == '"')
            break;
        if (c < 0x20)
            return not_json;
        uint32_t cp = c;
        if (c == '\\') {
            if (rd->at >= rd->len)
                return not_json;
            switch (rd->s[rd->at++]) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u': {
                uint32_t low;
                if (!hex4(rd, &cp) || cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff))
                    return not_json;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (rd->len - rd->at < 2 || rd->s[rd->at] != '\\' || rd->s[rd->at + 1] != 'u')
                        return not_json;
                    rd->at += 2;
                    if (!hex4(rd, &low) || low < 0xdc00 || low > 0xdfff)
                        return not_json;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                }
                break;
            }
            default: return not_json;
            }
            put_utf8(out, cap, &n, cp);
            continue;
        }
        if (n + 1 < cap)
            out[n] = (char)c;
        n++;
    }
    if (n + 1 > cap) {
        out[cap - 1] = '\0';
        return too_long;
    }
    out[n] = '\0';
    return cpx_utf8_valid(out, n) ? NULL : not_json;
}

/* The word at rd, if it is `word` (true, false, null). */
static bool read_word(struct reader *rd, const char *word)
{
    size_t n = strlen(word);
    if (rd->len - rd->at < n || memcmp(rd->s + rd->at, word, n) != 0)
        return false;
    rd->at += n;
    return true;
}

static bool is_digit(const struct reader *rd)
{
    return rd->at < rd->len && rd->s[rd->at] >= '0' && rd->s[rd->at] <= '9';
}

/* The number at rd: an integer of 64 bits into *num, or a real (jansson's grammar). */
static const char *read_number(struct reader *rd, enum json_kind *kind, int64_t *num)
{
    bool negative = rd->at < rd->len && rd->s[rd->at] == '-';
    rd->at += negative;
    uint64_t v = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool fits = true;
    if (!is_digit(rd))
        return not_json;
    if (rd->s[rd->at] == '0') {
        rd->at++;
        if (is_digit(rd))
            return not_json;
    }
    for (; is_digit(rd); rd->at++) {
        unsigned d = (unsigned)(rd->s[rd->at] - '0');
        fits = fits && v <= (limit - d) / 10;
        v = v * 10 + d;
    }
    *kind = J_INT;
    if (rd->at < rd->len && rd->s[rd->at] == '.') {
        rd->at++;
        if (!is_digit(rd))
            return not_json;
        while (is_digit(rd))
            rd->at++;
        *kind = J_REAL;
    }
    if (rd->at < rd->len && (rd->s[rd->at] == 'e' || rd->s[rd->at] == 'E')) {
        rd->at++;
        if (rd->at < rd->len && (rd->s[rd->at] == '+' || rd->s[rd->at] == '-'))
            rd->at++;
        if (!is_digit(rd))
            return not_json;
        while (is_digit(rd))
            rd->at++;
        *kind = J_REAL;
    }
    if (*kind == J_INT && !fits)
        return not_json; /* jansson: too big an integer */
    *num = negative ? (int64_t)(0 - v) : (int64_t)v;
    return NULL;
}

/* The value at rd (after white space): its kind, an integer into *num, a string into text. */
static const char *read_value(struct reader *rd, enum json_kind *kind, int64_t *num, char *text,
                              size_t cap)
{
    skip_ws(rd);
    if (rd->at >= rd->len)
        return not_json;
    switch (rd->s[rd->at]) {
    case '"': *kind = J_STRING; return read_string(rd, text, cap);
    case '{':
    case '[': *kind = J_CONTAINER; return NULL; /* no request of these takes one */
    case 't': *kind = J_TRUE; return read_word(rd, "true") ? NULL : not_json;
    case 'f': *kind = J_FALSE; return read_word(rd, "false") ? NULL : not_json;
    case 'n': *kind = J_NULL; return read_word(rd, "null") ? NULL : not_json;
    default: return read_number(rd, kind, num);
    }
}

/* A name for findings: key as sent when it is plain, else "a member". */
static const char *plain_key(const char *key)
{
    bool plain = *key != '\0';
    for (const char *c = key; plain && *c; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
    return plain ? key : "?";
}

/* Whether a text holds a control character (the request parser refuses them). */
static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Code points in UTF-8 text. */
static int64_t utf8_chars(const char *s)
{
    int64_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Takes a value (of kind) as member m of the request into v; false (why written) when the
 * exchange refuses it. */
static bool take_member(const struct body_member *m, enum json_kind kind, int64_t num,
                        struct body_value *v, char *why)
{
    bool ok;
    const char *what;
    switch (m->type) {
    case B_TIME:
        ok = kind == J_STRING && rfc3339_seconds(v->text, &v->num);
        what = "an RFC 3339 time in whole seconds";
        break;
    case B_COUNT:
        ok = kind == J_INT && num >= 0 && num <= BODY_COUNT_MAX;
        v->num = num;
        what = "a whole number from 0 to 2^53";
        break;
    case B_FLAG:
        ok = kind == J_TRUE || kind == J_FALSE;
        v->num = kind == J_TRUE;
        what = "true or false";
        break;
    case B_TEXT:
        ok = kind == J_STRING && !has_control(v->text) && utf8_chars(v->text) >= m->min;
        what = "text the exchange takes";
        break;
    default:
        ok = kind == J_STRING;
        what = "a string";
        break;
    }
    if (!ok)
        say(why, "the signed body's \"%s\" is not %s", m->key, what);
    v->present = ok;
    return ok;
}

/*
 * Reads the party's body as the exchange reads q's request: a JSON object of q's members and no
 * other, each of its type, the required ones there. False (why written) when it would refuse it.
 */
static bool read_body(const struct cpx_party *party, const struct signed_request *q,
                      struct body *out, char *why)
{
    memset(out, 0, sizeof *out);
    struct reader rd = { party->body, party->body_len, 0 };
    bool seen[BODY_MEMBERS_MAX] = { false };
    const char *err = NULL;
    if (!next_is(&rd, '{')) {
        say(why, "the signed body is not a JSON object");
        return false;
    }
    if (!next_is(&rd, '}')) {
        for (;;) { /* a member, then ',' and another, or the end */
            char key[BODY_KEY_MAX];
            skip_ws(&rd);
            err = read_string(&rd, key, sizeof key);
            if (err == not_json || !next_is(&rd, ':')) {
                err = not_json;
                break;
            }
            size_t i = 0;
            while (i < q->n_members && (err != NULL || strcmp(q->members[i].key, key) != 0))
                i++;
            if (i == q->n_members) {
                say(why, "the signed body holds \"%s\", not a member of the request",
                    err == NULL ? plain_key(key) : "?");
                return false;
            }
            if (seen[i]) {
                say(why, "the signed body holds \"%s\" twice", key);
                return false;
            }
            seen[i] = true;
            enum json_kind kind = J_NULL;
            int64_t num = 0;
            struct body_value *v = &out->v[i];
            err = read_value(&rd, &kind, &num, v->text, sizeof v->text);
            if (err == not_json)
                break;
            if (err == too_long || kind == J_CONTAINER) {
                say(why, "the signed body's \"%s\" is not one the exchange takes", key);
                return false;
            }
            if (!(kind == J_NULL && q->null_absent) &&
                !take_member(&q->members[i], kind, num, v, why))
                return false;
            if (next_is(&rd, ','))
                continue;
            if (!next_is(&rd, '}'))
                err = not_json;
            break;
        }
    }
    skip_ws(&rd);
    if (err == not_json || rd.at != rd.len) {
        say(why, "the signed body is not JSON the exchange reads");
        return false;
    }
    for (size_t i = 0; i < q->n_members; i++)
        if (q->members[i].required && !out->v[i].present) {
            say(why, "the signed body has no \"%s\"", q->members[i].key);
            return false;
        }
    return true;
}

/* -- the requests ---------------------------------------------------------------------------- */

/* The value of body member `key` of q (which has it). */
static const struct body_value *body_member_named(const struct signed_request *q,
                                                  const struct body *body, const char *key)
{
    size_t i = 0;
    while (strcmp(q->members[i].key, key) != 0)
        i++;
    return &body->v[i];
}

/*
 * A usage report is final when the provider says so or its period reaches the agreement's end
 * (docs/delivery.md section 3): the payload's "final" is that (absent in reports written before it
 * existed, when no body could say it either). The end is known once the agreement was accepted.
 */
static bool usage_final(struct ctx *x, const struct signed_request *q, const struct body *body,
                        char *why)
{
    const struct body_value *f = body_member_named(q, body, "final");
    bool said = f->present && f->num != 0;
    const struct cpx_canon_node *recorded = cpx_canon_get(x->d, x->p, "final");
    bool is_final = recorded != NULL && recorded->type == CPX_CANON_TRUE;
    if (said && !is_final) {
        say(why, "the signed body says final, the payload does not");
        return false;
    }
    char agreement[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, "agreement", agreement);
    int64_t end = get_int(x, x->p, "period_end", 0, AMOUNT_MAX);
    uint32_t i = tab_find(&x->b->agreements, agreement);
    const struct agreement *g = i == NONE ? NULL : AGREEMENT(x->b, i);
    if (recorded == NULL || said || g == NULL ||
        (g->status != AGR_ACTIVE && g->status != AGR_COMPLETED) || is_final == (end == g->end))
        return true;
    if (is_final)
        snprintf(why, WHY_MAX,
                 "the payload says final, but the signed body does not and period_end %" PRId64
                 " is not the agreement's end %" PRId64,
                 end, g->end);
    else
        snprintf(why, WHY_MAX,
                 "period_end %" PRId64
                 " is the agreement's end, but the payload does not say final",
                 end);
    return false;
}

static const struct body_member usage_members[] = {
    { "device_seconds", B_COUNT, true, true, 0 },
    { "final", B_FLAG, false, false, 0 },
    { "period_end", B_TIME, true, true, 0 },
    { "period_start", B_TIME, true, true, 0 },
};
static const struct body_member acceptance_members[] = {
    { "agreement", B_WORD, true, true, 0 },
    { "delivery", B_WORD, true, true, 0 },
};
static const struct body_member dispute_members[] = {
    { "reason", B_TEXT, true, true, 1 },
};
static const struct body_member resolution_members[] = {
    { "note", B_TEXT, false, true, 0 },
    { "outcome", B_WORD, true, true, 0 },
};

#define MEMBERS(m) m, sizeof m / sizeof m[0]

/* By kind: the requests behind party records (docs/delivery.md sections 2-4). */
static const struct signed_request signed_requests[CPX_KIND_COUNT] = {
    [CPX_KIND_USAGE] = { "/v1/agreements/", "/usage", "agreement", "id", true, true,
                         MEMBERS(usage_members), usage_final },
    /* The provider's answer to a delivery, signed as a request would be (never routed). */
    [CPX_KIND_ACCEPTANCE] = { "/v1/deliveries/", "/acceptance", "delivery", "agreement", false,
                              false, MEMBERS(acceptance_members), NULL },
    [CPX_KIND_DISPUTE] = { "/v1/bills/", "/dispute", "bill", "bill", true, true,
                           MEMBERS(dispute_members), NULL },
    [CPX_KIND_RESOLUTION] = { "/v1/bills/", "/resolution", "bill", "bill", true, true,
                              MEMBERS(resolution_members), NULL },
};

/* Whether the party signed POST prefix<id>suffix (and, where the route allows one, a query). */
static bool target_is(const struct cpx_party *party, const struct signed_request *q, const char *id)
{
    const char *t = party->target;
    size_t path = q->query ? strcspn(t, "?") : strlen(t);
    size_t np = strlen(q->prefix), ni = strlen(id), ns = strlen(q->suffix);
    return strcmp(party->method, "POST") == 0 && path == np + ni + ns &&
           memcmp(t, q->prefix, np) == 0 && memcmp(t + np, id, ni) == 0 &&
           memcmp(t + np + ni, q->suffix, ns) == 0;
}

/* Whether member m of the body holds what the payload's member of its name does. */
static bool member_matches(struct ctx *x, const struct body_member *m, const struct body_value *v,
                           char *why)
{
    const struct cpx_canon_node *p = cpx_canon_get(x->d, x->p, m->key);
    if (m->type == B_TIME || m->type == B_COUNT) {
        if (p != NULL && p->type == CPX_CANON_INT && p->ival == v->num)
            return true;
        say(why, "the signed body says %s %" PRId64 ", the payload %s%" PRId64, m->key, v->num,
            p != NULL && p->type == CPX_CANON_INT ? "" : "nothing valid ",
            p != NULL && p->type == CPX_CANON_INT ? p->ival : 0);
        return false;
    }
    char text[BODY_TEXT_MAX + 1];
    long n = cpx_canon_string_value(x->d, p, text, sizeof text);
    if (n >= 0 && (size_t)n == strlen(v->text) && strcmp(text, v->text) == 0)
        return true;
    say(why, "the signed body says %s \"%.40s\", the payload %s%.40s%s", m->key, v->text,
        n >= 0 ? "\"" : "nothing valid", n >= 0 ? text : "", n >= 0 ? "\"" : "");
    return false;
}

/* Holds a party record against the request its party signed (see above). */
static void check_signed(struct ctx *x, const struct signed_request *q)
{
    const struct cpx_party *party = &x->r->party;
    char name[CPX_BOOKS_ID_MAX], id[CPX_BOOKS_ID_MAX], why[WHY_MAX];
    get_id(x, x->p, q->name_member, name);
    get_id(x, x->p, q->id_member, id);
    if (x->bad != NULL) {
        say(why, "the payload has no valid \"%s\" to hold the request against", x->bad);
    } else if (!target_is(party, q, id)) {
        say(why, "the signed request is %s %.64s, not POST %s%s%s", party->method, party->target,
            q->prefix, id, q->suffix);
    } else {
        struct body body;
        bool same = read_body(party, q, &body, why);
        for (size_t i = 0; same && i < q->n_members; i++)
            same = !q->members[i].compared || member_matches(x, &q->members[i], &body.v[i], why);
        if (same && (q->rule == NULL || q->rule(x, q, &body, why)))
            return;
    }
    fail(x->b, x->seq, CPX_BOOKS_SIGNED_BODY, "record %" PRIu64 ": %s %s: %s", x->seq,
         x->r->kind_name, name[0] ? name : "?", why);
}

/* ---- feeding ------------------------------------------------------------------------------- */

/* What each kind of record does to the money; identities, listings and dispatch do nothing. */
static void (*const on_kind[CPX_KIND_COUNT])(struct ctx *x) = {
    [CPX_KIND_FEE_SCHEDULE] = on_fee_schedule,
    [CPX_KIND_DEPOSIT] = on_deposit,
    [CPX_KIND_ORDER] = on_order,
    [CPX_KIND_AGREEMENT] = on_agreement,
    [CPX_KIND_CANCEL] = on_cancel,
    [CPX_KIND_ACCEPTANCE] = on_acceptance,
    [CPX_KIND_FAILURE] = on_failure,
    [CPX_KIND_USAGE] = on_usage,
    [CPX_KIND_BILL] = on_bill,
    [CPX_KIND_COMMISSION] = on_commission,
    [CPX_KIND_SETTLEMENT] = on_settlement,
    [CPX_KIND_DISPUTE] = on_dispute,
    [CPX_KIND_RESOLUTION] = on_resolution,
    [CPX_KIND_COMPLETION] = on_completion,
};

enum cpx_books_status cpx_books_record(struct cpx_books *b, const struct cpx_record *r)
{
    if (b->taken && r->seq < b->next_seq)
        return b->nomem ? CPX_BOOKS_E_NOMEM : CPX_BOOKS_OK; /* a repeat: taken already */
    b->taken = true;
    b->next_seq = r->seq + 1;
    b->counts.records++;
    if (r->payload_node == NULL || r->payload_node->type != CPX_CANON_OBJECT)
        return CPX_BOOKS_OK;
    struct ctx x = { .b = b,
                     .r = r,
                     .d = &r->doc,
                     .p = r->payload_node,
                     .seq = r->seq,
                     .now = r->ts >= 0 ? r->ts / MS_PER_SECOND : 0 };
    if ((unsigned)r->kind < CPX_KIND_COUNT && on_kind[r->kind] != NULL)
        on_kind[r->kind](&x);
    /* What the party signed, once the payload could be read (the auditor checks that the party
     * part is there and that its signature holds). */
    if ((unsigned)r->kind < CPX_KIND_COUNT && signed_requests[r->kind].prefix != NULL &&
        r->has_party && x.bad == NULL)
        check_signed(&x, &signed_requests[r->kind]);
    return b->nomem ? CPX_BOOKS_E_NOMEM : CPX_BOOKS_OK;
}

static int failure_order(const void *x, const void *y)
{
    const struct cpx_books_failure *a = x, *b = y;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    if (a->reason != b->reason)
        return (int)a->reason - (int)b->reason;
    return strcmp(a->message, b->message);
}

static void sort_failures(struct cpx_books *b)
{
    if (b->n_failures > 1)
        qsort(b->failures, b->n_failures, sizeof *b->failures, failure_order);
}

void cpx_books_finish(struct cpx_books *b)
{
    /* What a batch writes together: a bill with its commission, a final bill with the
     * completion. A ledger ends with a batch, so neither may be missing at its end. */
    for (size_t i = 0; i < b->bills.n; i++) {
        const struct bill *l = BILL(b, i);
        if (!l->has_commission)
            fail(b, l->seq, CPX_BOOKS_LIFECYCLE,
                 "record %" PRIu64 ": bill %s has no commission record by the end of the ledger",
                 l->seq, l->id);
    }
    for (size_t i = 0; i < b->agreements.n; i++) {
        const struct agreement *g = AGREEMENT(b, i);
        if (g->final_billed && g->status == AGR_ACTIVE)
            fail(b, g->seq, CPX_BOOKS_LIFECYCLE,
                 "record %" PRIu64 ": agreement %s had its final bill but no completion by the "
                 "end of the ledger",
                 g->seq, g->id);
    }
    sort_failures(b);
}

const struct cpx_books_failure *cpx_books_failures(const struct cpx_books *b, size_t *n)
{
    *n = b->n_failures;
    return b->failures;
}

uint64_t cpx_books_failure_total(const struct cpx_books *b)
{
    return b->failure_total;
}

void cpx_books_counts(const struct cpx_books *b, struct cpx_books_counts *out)
{
    *out = b->counts;
    out->accounts = b->moved_accounts;
}

bool cpx_books_partial(const struct cpx_books *b)
{
    return b->cfg.partial;
}

uint64_t cpx_books_next_seq(const struct cpx_books *b)
{
    return b->next_seq;
}

static void account_view(const struct account *a, struct cpx_books_account *out)
{
    out->owner = a->owner;
    memcpy(out->balance, a->bal, sizeof out->balance);
    out->seq = a->seq;
}

bool cpx_books_account_next(const struct cpx_books *b, size_t *cursor,
                            struct cpx_books_account *out)
{
    if (*cursor >= b->accounts.n)
        return false;
    account_view(ACCOUNT(b, (*cursor)++), out);
    return true;
}

bool cpx_books_account_find(const struct cpx_books *b, const char *owner,
                            struct cpx_books_account *out)
{
    uint32_t i = tab_find(&b->accounts, owner);
    if (i == NONE)
        return false;
    account_view(ACCOUNT(b, i), out);
    return true;
}

static void bill_view(const struct cpx_books *b, const struct bill *l, struct cpx_books_bill *out)
{
    out->id = l->id;
    out->agreement = AGREEMENT(b, l->agreement)->id;
    out->amount = l->amount;
    out->commission = l->has_commission ? l->commission : 0;
    out->status = public_status(l->state);
    out->seq = l->seq;
}

bool cpx_books_bill_next(const struct cpx_books *b, size_t *cursor, struct cpx_books_bill *out)
{
    if (*cursor >= b->bills.n)
        return false;
    bill_view(b, BILL(b, (*cursor)++), out);
    return true;
}

bool cpx_books_bill_find(const struct cpx_books *b, const char *id, struct cpx_books_bill *out)
{
    uint32_t i = tab_find(&b->bills, id);
    if (i == NONE)
        return false;
    bill_view(b, BILL(b, i), out);
    return true;
}

/* ---- the exchange's books ------------------------------------------------------------------ */

/* Records a comparison finding, kept until cpx_books_compare_end. */
static void differ(struct cpx_books *b, bool momentary, uint64_t seq, enum cpx_books_reason reason,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void differ(struct cpx_books *b, bool momentary, uint64_t seq, enum cpx_books_reason reason,
                   const char *fmt, ...)
{
    if (b->n_pending >= b->cfg.max_failures) {
        b->pending_over[momentary]++; /* counted, not kept */
        return;
    }
    struct pending *pending = room(b, b->pending, &b->cap_pending, b->n_pending, sizeof *pending);
    if (pending == NULL)
        return;
    b->pending = pending;
    struct pending *p = &b->pending[b->n_pending++];
    p->momentary = momentary;
    va_list ap;
    va_start(ap, fmt);
    format_into(&p->f, seq, reason, fmt, ap);
    va_end(ap);
}

void cpx_books_compare_begin(struct cpx_books *b, uint64_t size, bool moving)
{
    b->cmp_size = size;
    b->cmp_moving = moving;
    b->n_pending = 0;
    b->pending_over[0] = b->pending_over[1] = 0;
    for (size_t i = 0; i < b->bills.n; i++)
        BILL(b, i)->seen = false;
    for (size_t i = 0; i < b->accounts.n; i++)
        ACCOUNT(b, i)->seen = 0;
}

/* The seq a finding about an item of the exchange's books names. */
static uint64_t claim_seq(const struct cpx_books *b, bool has_seq, uint64_t seq)
{
    if (has_seq)
        return seq;
    return b->cmp_size > 0 ? b->cmp_size - 1 : 0;
}

void cpx_books_compare_bill(struct cpx_books *b, const struct cpx_books_claimed_bill *c)
{
    uint32_t i = tab_find(&b->bills, c->id);
    if (i == NONE) {
        /* A bill beyond the ledger audited (the exchange moved on), or before partial books. */
        if ((c->has_seq && c->ledger_seq >= b->cmp_size) || b->cfg.partial)
            return;
        differ(b, !c->has_seq && b->cmp_moving, claim_seq(b, c->has_seq, c->ledger_seq),
               CPX_BOOKS_EXCHANGE_BILL,
               "bill %.47s: the exchange's books list it, but no ledger record makes it", c->id);
        return;
    }
    struct bill *l = BILL(b, i);
    const char *agreement = AGREEMENT(b, l->agreement)->id;
    b->counts.compared_bills++;
    if (l->seen) {
        differ(b, false, l->seq, CPX_BOOKS_EXCHANGE_BILL,
               "bill %s: the exchange's books list it twice", l->id);
        return;
    }
    l->seen = true;
    if (strcmp(c->agreement, agreement) != 0)
        differ(b, false, l->seq, CPX_BOOKS_EXCHANGE_BILL,
               "bill %s: the exchange's books say agreement %.47s, its ledger record (seq %" PRIu64
               ") says %s",
               l->id, c->agreement, l->seq, agreement);
    if (c->amount != l->amount)
        differ(b, false, l->seq, CPX_BOOKS_EXCHANGE_BILL,
               "bill %s: the exchange's books say amount %" PRId64
               ", its ledger record (seq %" PRIu64 ") says %" PRId64,
               l->id, c->amount, l->seq, l->amount);
    if (l->has_commission && c->commission != l->commission)
        differ(b, false, l->seq, CPX_BOOKS_EXCHANGE_BILL,
               "bill %s: the exchange's books say commission %" PRId64
               ", its commission record says %" PRId64,
               l->id, c->commission, l->commission);
    if (c->has_seq && c->ledger_seq != l->seq)
        differ(b, false, l->seq, CPX_BOOKS_EXCHANGE_BILL,
               "bill %s: the exchange's books say ledger_seq %" PRIu64
               ", its record is seq %" PRIu64,
               l->id, c->ledger_seq, l->seq);
    const char *status = cpx_books_bill_status_name(public_status(l->state));
    if (!b->cmp_moving && strcmp(c->status, status) != 0)
        differ(b, true, l->seq, CPX_BOOKS_EXCHANGE_BILL,
               "bill %s: the exchange's books say %.16s, the ledger's records leave it %s", l->id,
               c->status, status);
}

void cpx_books_compare_balance(struct cpx_books *b, const char *owner, enum cpx_books_kind kind,
                               int64_t balance)
{
    if (b->cmp_moving || b->cfg.partial || (unsigned)kind >= CPX_BOOKS_KINDS)
        return;
    uint32_t i = tab_find(&b->accounts, owner);
    uint64_t seq = b->cmp_size > 0 ? b->cmp_size - 1 : 0;
    b->counts.compared_accounts++;
    if (i == NONE) {
        if (balance != 0)
            differ(b, true, seq, CPX_BOOKS_EXCHANGE_BALANCE,
                   "account %.47s %s: the exchange's books say %" PRId64
                   ", no ledger record ever moved it",
                   owner, kind_names[kind], balance);
        return;
    }
    struct account *a = ACCOUNT(b, i);
    uint8_t bit = (uint8_t)(1u << kind);
    if (a->seen & bit) {
        differ(b, false, a->seq, CPX_BOOKS_EXCHANGE_BALANCE,
               "account %s %s: the exchange's books list it twice", a->owner, kind_names[kind]);
        return;
    }
    a->seen |= bit;
    if (a->bal[kind] != balance)
        differ(b, true, a->moved & bit ? a->seq : seq, CPX_BOOKS_EXCHANGE_BALANCE,
               "account %s %s: the exchange's books say %" PRId64 ", the ledger gives %" PRId64,
               a->owner, kind_names[kind], balance, a->bal[kind]);
}

void cpx_books_compare_end(struct cpx_books *b, bool bills, bool balances, bool moved)
{
    for (size_t i = 0; bills && i < b->bills.n; i++) {
        const struct bill *l = BILL(b, i);
        if (!l->seen)
            differ(b, false, l->seq, CPX_BOOKS_EXCHANGE_BILL,
                   "bill %s (seq %" PRIu64 ") is in the ledger but not in the exchange's books",
                   l->id, l->seq);
    }
    for (size_t i = 0; balances && !b->cmp_moving && !b->cfg.partial && i < b->accounts.n; i++) {
        const struct account *a = ACCOUNT(b, i);
        for (int k = 0; k < CPX_BOOKS_KINDS; k++)
            if (a->bal[k] != 0 && !(a->seen & (1u << k)))
                differ(
                    b, true, a->seq, CPX_BOOKS_EXCHANGE_BALANCE,
                    "account %s %s: the exchange's books do not list it, the ledger gives %" PRId64,
                    a->owner, kind_names[k], a->bal[k]);
    }
    for (size_t i = 0; i < b->n_pending; i++) {
        const struct pending *p = &b->pending[i];
        if (moved && p->momentary)
            continue;
        fail(b, p->f.seq, p->f.reason, "%s", p->f.message);
    }
    b->failure_total += b->pending_over[0] + (moved ? 0 : b->pending_over[1]);
    b->n_pending = 0;
    sort_failures(b);
}

/* ---- state --------------------------------------------------------------------------------- */

/*
 * Lines, each a canonical JSON object:
 *
 *   {"books":1,"fee":null|{"maker_bps","minimum_micro","taker_bps"},"lines":L,"next_seq":S,
 *    "partial":bool}                                                           the header
 *   {"account":owner,"available":"<decimal>","commission":"..","escrow":"..","external":"..",
 *    "held":"..","moved":bits,"seq":S}                                         accounts
 *   {"buyer","devices":bool,"hold_bps","hold_left","hours","limit","order":id,"per",
 *    "remaining","seq"}                                                        open orders
 *   {"agreement":id,"billed_commission","bps","bps_max","buyer","closed_seq","commission",
 *    "deliver_by","devices","end","escrow_left","final_billed","has_usage","hours",
 *    "metered_until","price","provider","reserved","seq","start","status","tflops",
 *    "value"}                                                                  agreements
 *   {"agreement","device_seconds","final","period_end","period_start","seq","usage":id}
 *                                                                              unbilled usage
 *   {"agreement","amount","bill":id,"closed_seq","commission":n|null,"dispute_until","final",
 *    "seq","status"}                                                           bills
 *
 * Tables come in that order (an agreement before the usage and bills naming it). Balances are
 * decimal strings: they may exceed 2^53, the largest integer canonical JSON holds.
 */
enum stage { STAGE_ACCOUNTS = 0, STAGE_ORDERS, STAGE_AGREEMENTS, STAGE_USAGES, STAGE_BILLS };

/*
 * The item lines are described, not written out: one table of fields per kind of line, read by
 * the writer and the loader alike, so that what is written is what loads (and a field added to
 * an item is added in one place).
 */
enum field_type {
    F_ID,        /* the item's own id, its table's key (at the start of every item) */
    F_INT,       /* int64_t in [min, max] */
    F_SEQ,       /* uint64_t, a seq */
    F_BITS,      /* uint8_t in [min, max] */
    F_BOOL,      /* bool */
    F_DECIMAL,   /* int64_t as a decimal string: a balance may exceed 2^53 */
    F_ACCOUNT,   /* uint32_t account index, written as the owner */
    F_AGREEMENT, /* uint32_t agreement index, written as its id */
    F_STATUS,    /* uint8_t index of names[0..max] */
    F_OPT_INT,   /* int64_t in [min, max], null when the bool at `flag` is false */
};

/* One member of a line: its key, and where and how the item keeps it. */
struct field {
    const char *key;
    enum field_type type;
    size_t at;                /* offset of the field in the item */
    int64_t min, max;         /* F_INT, F_BITS, F_OPT_INT: the range; F_STATUS: the last name */
    const char *const *names; /* F_STATUS */
    size_t flag;              /* F_OPT_INT: offset of the bool saying it is there */
};

#define FIELD(k, type, s, m, lo, hi)                                                               \
    {                                                                                              \
        k, type, offsetof(struct s, m), lo, hi, NULL, 0                                            \
    }
#define ID(k, s)           FIELD(k, F_ID, s, id, 0, 0)
#define INT(k, s, m, lo)   FIELD(k, F_INT, s, m, lo, AMOUNT_MAX)
#define BPS(k, s, m)       FIELD(k, F_INT, s, m, 0, BPS_MAX)
#define SEQ(k, s, m)       FIELD(k, F_SEQ, s, m, 0, AMOUNT_MAX)
#define FLAG(k, s, m)      FIELD(k, F_BOOL, s, m, 0, 1)
#define REF(k, type, s, m) FIELD(k, type, s, m, 0, 0)
#define STATUS(s, m, names)                                                                        \
    {                                                                                              \
        "status", F_STATUS, offsetof(struct s, m), 0, sizeof names / sizeof names[0] - 1, names, 0 \
    }
#define BALANCE(k, kind) FIELD(k, F_DECIMAL, account, bal[kind], 0, 0)

/* Keys in canonical (sorted) order, as the lines are written. */
static const struct field account_fields[] = {
    FIELD("account", F_ID, account, owner, 0, 0),
    BALANCE("available", CPX_BOOKS_AVAILABLE),
    BALANCE("commission", CPX_BOOKS_COMMISSION),
    BALANCE("escrow", CPX_BOOKS_ESCROW),
    BALANCE("external", CPX_BOOKS_EXTERNAL),
    BALANCE("held", CPX_BOOKS_HELD),
    FIELD("moved", F_BITS, account, moved, 0, (1 << CPX_BOOKS_KINDS) - 1),
    SEQ("seq", account, seq),
};

static const struct field order_fields[] = {
    REF("buyer", F_ACCOUNT, order, buyer),
    FLAG("devices", order, devices),
    BPS("hold_bps", order, hold_bps),
    INT("hold_left", order, hold_left, -AMOUNT_MAX),
    INT("hours", order, hours, 1),
    INT("limit", order, limit, 0),
    ID("order", order),
    INT("per", order, per, 1),
    INT("remaining", order, remaining, 0),
    SEQ("seq", order, seq),
};

/* bps_max is at least bps (checked once both are read: agreement_check). */
static const struct field agreement_fields[] = {
    ID("agreement", agreement),
    INT("billed_commission", agreement, billed_commission, 0),
    BPS("bps", agreement, bps),
    BPS("bps_max", agreement, bps_max),
    REF("buyer", F_ACCOUNT, agreement, buyer),
    SEQ("closed_seq", agreement, closed_seq),
    INT("commission", agreement, commission, 0),
    INT("deliver_by", agreement, deliver_by, -1),
    INT("devices", agreement, devices, 1),
    INT("end", agreement, end, 0),
    INT("escrow_left", agreement, escrow_left, -AMOUNT_MAX),
    FLAG("final_billed", agreement, final_billed),
    FLAG("has_usage", agreement, has_usage),
    INT("hours", agreement, hours, 1),
    INT("metered_until", agreement, metered_until, 0),
    INT("price", agreement, price, 0),
    REF("provider", F_ACCOUNT, agreement, provider),
    INT("reserved", agreement, reserved, -AMOUNT_MAX),
    SEQ("seq", agreement, seq),
    INT("start", agreement, start, 0),
    STATUS(agreement, status, agreement_status_names),
    INT("tflops", agreement, tflops, 1),
    INT("value", agreement, value, 0),
};

static const struct field usage_fields[] = {
    REF("agreement", F_AGREEMENT, usage, agreement),
    INT("device_seconds", usage, device_seconds, 0),
    FLAG("final", usage, final),
    INT("period_end", usage, end, 0),
    INT("period_start", usage, start, 0),
    SEQ("seq", usage, seq),
    ID("usage", usage),
};

static const struct field bill_fields[] = {
    REF("agreement", F_AGREEMENT, bill, agreement),
    INT("amount", bill, amount, 0),
    ID("bill", bill),
    SEQ("closed_seq", bill, closed_seq),
    { "commission", F_OPT_INT, offsetof(struct bill, commission), 0, AMOUNT_MAX, NULL,
      offsetof(struct bill, has_commission) },
    INT("dispute_until", bill, dispute_until, 0),
    FLAG("final", bill, final),
    SEQ("seq", bill, seq),
    STATUS(bill, state, bill_state_names),
};

/* Any item, to read a line into before it has a place in its table. */
union any_item {
    struct account account;
    struct order order;
    struct agreement agreement;
    struct usage usage;
    struct bill bill;
};

/* One kind of line: its table and fields, and what the fields alone do not say. */
struct line_kind {
    size_t table;               /* offset of its table in struct cpx_books */
    const struct field *fields; /* in key order */
    size_t n_fields;
    const char *id_key;                              /* the member that holds the id */
    bool (*kept)(const void *item);                  /* written to the state (NULL: all) */
    void (*check)(struct ctx *x, const void *item);  /* after reading (NULL: nothing) */
    void (*placed)(struct cpx_books *b, void *item); /* once in its table (NULL: nothing) */
};

/* A closed order and a billed usage report: no record may name them again. */
static bool order_kept(const void *item)
{
    return !((const struct order *)item)->closed;
}

static bool usage_kept(const void *item)
{
    return ((const struct usage *)item)->bill == NONE;
}

static void agreement_check(struct ctx *x, const void *item)
{
    const struct agreement *g = item;
    if (g->bps_max < g->bps)
        bad(x, "bps_max");
}

/* What a line does not repeat because the item's fields give it. */
static void account_placed(struct cpx_books *b, void *item)
{
    struct account *a = item;
    for (int k = 0; k < CPX_BOOKS_KINDS; k++) {
        b->moved_accounts += (a->moved >> k) & 1;
        if (a->bal[k] < 0)
            a->negative |= (uint8_t)(1u << k);
    }
}

static void agreement_placed(struct cpx_books *b, void *item)
{
    (void)b;
    struct agreement *g = item;
    g->escrow_negative = g->escrow_left < 0;
}

static void usage_placed(struct cpx_books *b, void *item)
{
    (void)b;
    ((struct usage *)item)->bill = NONE; /* billed reports are not kept */
}

#define LINE(t, fields, key)                                                                       \
    offsetof(struct cpx_books, t), fields, sizeof fields / sizeof *fields, key

/* By stage: the order the tables are written and loaded in. */
static const struct line_kind line_kinds[] = {
    [STAGE_ACCOUNTS] = { LINE(accounts, account_fields, "account"), NULL, NULL, account_placed },
    [STAGE_ORDERS] = { LINE(orders, order_fields, "order"), order_kept, NULL, NULL },
    [STAGE_AGREEMENTS] = { LINE(agreements, agreement_fields, "agreement"), NULL, agreement_check,
                           agreement_placed },
    [STAGE_USAGES] = { LINE(usages, usage_fields, "usage"), usage_kept, NULL, usage_placed },
    [STAGE_BILLS] = { LINE(bills, bill_fields, "bill"), NULL, NULL, NULL },
};

static const struct table *kind_table(const struct cpx_books *b, const struct line_kind *k)
{
    return (const struct table *)((const char *)b + k->table);
}

/* Writing: one line at a time through a reused writer. */
struct emitter {
    struct cpx_canon_writer w;
    cpx_books_emit_fn emit;
    void *ctx;
    bool ok;
};

static void emit_line(struct emitter *e)
{
    const uint8_t *out;
    size_t len;
    if (e->ok && cpx_canon_writer_finish(&e->w, &out, &len) == CPX_CANON_OK)
        e->ok = e->emit(e->ctx, out, len);
    else
        e->ok = false;
    cpx_canon_writer_reset(&e->w);
}

static void kv_decimal(struct cpx_canon_writer *w, const char *key, int64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, v);
    cpx_canon_kv_string(w, key, text);
}

static void kv_bool(struct cpx_canon_writer *w, const char *key, bool v)
{
    cpx_canon_key(w, key, strlen(key));
    cpx_canon_bool(w, v);
}

static void write_field(struct cpx_canon_writer *w, const struct cpx_books *b,
                        const struct field *f, const char *item)
{
    const void *v = item + f->at;
    switch (f->type) {
    case F_ID: cpx_canon_kv_string(w, f->key, item); break;
    case F_INT: cpx_canon_kv_int(w, f->key, *(const int64_t *)v); break;
    case F_SEQ: cpx_canon_kv_int(w, f->key, (int64_t)(*(const uint64_t *)v)); break;
    case F_BITS: cpx_canon_kv_int(w, f->key, *(const uint8_t *)v); break;
    case F_BOOL: kv_bool(w, f->key, *(const bool *)v); break;
    case F_DECIMAL: kv_decimal(w, f->key, *(const int64_t *)v); break;
    case F_ACCOUNT: cpx_canon_kv_string(w, f->key, ACCOUNT(b, *(const uint32_t *)v)->owner); break;
    case F_AGREEMENT: cpx_canon_kv_string(w, f->key, AGREEMENT(b, *(const uint32_t *)v)->id); break;
    case F_STATUS: cpx_canon_kv_string(w, f->key, f->names[*(const uint8_t *)v]); break;
    case F_OPT_INT:
        cpx_canon_key(w, f->key, strlen(f->key));
        if (*(const bool *)(item + f->flag))
            cpx_canon_int(w, *(const int64_t *)v);
        else
            cpx_canon_null(w);
        break;
    }
}

static void write_header(struct emitter *e, const struct cpx_books *b, uint64_t lines)
{
    struct cpx_canon_writer *w = &e->w;
    cpx_canon_begin_object(w);
    cpx_canon_kv_int(w, "books", BOOKS_STATE_VERSION);
    cpx_canon_key(w, "fee", 3);
    if (b->have_fee) {
        cpx_canon_begin_object(w);
        cpx_canon_kv_int(w, "maker_bps", b->maker_bps);
        cpx_canon_kv_int(w, "minimum_micro", b->minimum);
        cpx_canon_kv_int(w, "taker_bps", b->taker_bps);
        cpx_canon_end_object(w);
    } else {
        cpx_canon_null(w);
    }
    cpx_canon_kv_int(w, "lines", (int64_t)lines);
    cpx_canon_kv_int(w, "next_seq", (int64_t)b->next_seq);
    kv_bool(w, "partial", b->cfg.partial);
    cpx_canon_end_object(w);
    emit_line(e);
}

bool cpx_books_state_write(const struct cpx_books *b, cpx_books_emit_fn emit, void *ctx)
{
    struct emitter e = { .emit = emit, .ctx = ctx, .ok = true };
    cpx_canon_writer_init(&e.w);
    const size_t kinds = sizeof line_kinds / sizeof line_kinds[0];
    uint64_t lines = 0;
    for (size_t s = 0; s < kinds; s++) {
        const struct line_kind *k = &line_kinds[s];
        const struct table *t = kind_table(b, k);
        for (size_t i = 0; i < t->n; i++)
            lines += k->kept == NULL || k->kept(tab_at(t, i));
    }
    write_header(&e, b, lines);
    for (size_t s = 0; s < kinds; s++) {
        const struct line_kind *k = &line_kinds[s];
        const struct table *t = kind_table(b, k);
        for (size_t i = 0; e.ok && i < t->n; i++) {
            const char *item = tab_at(t, i);
            if (k->kept != NULL && !k->kept(item))
                continue;
            cpx_canon_begin_object(&e.w);
            for (size_t f = 0; f < k->n_fields; f++)
                write_field(&e.w, b, &k->fields[f], item);
            cpx_canon_end_object(&e.w);
            emit_line(&e);
        }
    }
    cpx_canon_writer_free(&e.w);
    return e.ok;
}

/* Loading: a line's members through the same readers as payloads. */
static const char *load_header(struct cpx_books *b, struct ctx *x)
{
    const struct cpx_canon_node *fee = cpx_canon_get(x->d, x->p, "fee");
    if (get_int(x, x->p, "books", 0, AMOUNT_MAX) != BOOKS_STATE_VERSION || x->bad)
        return "the books state is of another version";
    if (fee == NULL || (fee->type != CPX_CANON_NULL && fee->type != CPX_CANON_OBJECT))
        return "the books state header has no fee";
    if (fee->type == CPX_CANON_OBJECT) {
        b->have_fee = true;
        b->maker_bps = get_int(x, fee, "maker_bps", 0, BPS_MAX);
        b->minimum = get_int(x, fee, "minimum_micro", 0, AMOUNT_MAX);
        b->taker_bps = get_int(x, fee, "taker_bps", 0, BPS_MAX);
    }
    b->load_lines = (uint64_t)get_int(x, x->p, "lines", 0, AMOUNT_MAX);
    b->next_seq = (uint64_t)get_int(x, x->p, "next_seq", 0, AMOUNT_MAX);
    b->cfg.partial = get_bool(x, x->p, "partial") || b->cfg.partial;
    if (x->bad != NULL || x->p->count != 5)
        return "the books state header must have books, fee, lines, next_seq and partial";
    b->taken = b->next_seq > 0;
    b->loading_header = true;
    return NULL;
}

/* A decimal string member (a balance). */
static int64_t get_decimal(struct ctx *x, const char *key)
{
    char text[24];
    get_string(x, x->p, key, text, sizeof text);
    bool negative = text[0] == '-';
    uint64_t v;
    if (!cpx_decimal_parse(negative ? text + 1 : text, &v) || (negative && v == 0) ||
        v > (uint64_t)INT64_MAX + negative) {
        bad(x, key);
        return 0;
    }
    return negative ? (int64_t)(0 - v) : (int64_t)v;
}

/* The item of t whose id is in member key: it must have been loaded. */
static uint32_t get_ref(struct ctx *x, const struct table *t, const char *key)
{
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, key, id);
    uint32_t i = x->bad ? NONE : tab_find(t, id);
    if (i == NONE)
        bad(x, key);
    return i;
}

/* The index of the name in member key among names[0..last]. */
static uint8_t get_status(struct ctx *x, const char *key, const char *const *names, int64_t last)
{
    char name[24];
    get_string(x, x->p, key, name, sizeof name);
    for (uint8_t s = 0; s <= last; s++)
        if (strcmp(name, names[s]) == 0)
            return s;
    bad(x, key);
    return 0;
}

/* Reads member f of the line into item (F_ID is left to load_item). */
static void read_field(struct ctx *x, const struct field *f, char *item)
{
    void *v = item + f->at;
    switch (f->type) {
    case F_ID: break;
    case F_INT: *(int64_t *)v = get_int(x, x->p, f->key, f->min, f->max); break;
    case F_SEQ: *(uint64_t *)v = (uint64_t)get_int(x, x->p, f->key, f->min, f->max); break;
    case F_BITS: *(uint8_t *)v = (uint8_t)get_int(x, x->p, f->key, f->min, f->max); break;
    case F_BOOL: *(bool *)v = get_bool(x, x->p, f->key); break;
    case F_DECIMAL: *(int64_t *)v = get_decimal(x, f->key); break;
    case F_ACCOUNT: *(uint32_t *)v = get_ref(x, &x->b->accounts, f->key); break;
    case F_AGREEMENT: *(uint32_t *)v = get_ref(x, &x->b->agreements, f->key); break;
    case F_STATUS: *(uint8_t *)v = get_status(x, f->key, f->names, f->max); break;
    case F_OPT_INT:
        *(bool *)(item + f->flag) = get_opt_int(x, x->p, f->key, f->min, f->max, v);
        if (cpx_canon_get(x->d, x->p, f->key) == NULL)
            bad(x, f->key); /* null, not absent */
        break;
    }
}

/* Adds an item with the id in member key to t. NONE (with x->bad set) when it cannot. */
static uint32_t load_item(struct ctx *x, struct table *t, const char *key)
{
    char id[CPX_BOOKS_ID_MAX];
    get_id(x, x->p, key, id);
    if (x->bad)
        return NONE;
    if (tab_find(t, id) != NONE) {
        bad(x, key);
        return NONE;
    }
    uint32_t i = tab_add(t, id);
    if (i == NONE) {
        x->b->nomem = true;
        bad(x, key);
    }
    return i;
}

/* Reads a line of kind k into a new item of its table (x->bad set when it cannot). */
static void load_line(struct ctx *x, const struct line_kind *k)
{
    union any_item any;
    memset(&any, 0, sizeof any);
    char *item = (char *)&any;
    for (size_t f = 0; f < k->n_fields; f++)
        read_field(x, &k->fields[f], item);
    if (k->check != NULL)
        k->check(x, item);
    struct table *t = table_at(x->b, k->table);
    uint32_t i = x->bad || x->p->count != k->n_fields ? NONE : load_item(x, t, k->id_key);
    if (i == NONE) {
        bad(x, k->id_key);
        return;
    }
    memcpy(item, tab_at(t, i), CPX_BOOKS_ID_MAX); /* the id load_item read */
    memcpy(tab_at(t, i), item, t->size);
    if (k->placed != NULL)
        k->placed(x->b, tab_at(t, i));
}

const char *cpx_books_state_load_line(struct cpx_books *b, const void *line, size_t len)
{
    if (b->nomem)
        return "out of memory";
    if (!b->loading_header && (b->taken || b->accounts.n > 0))
        return "a books state can only be loaded into fresh books";
    struct cpx_canon_doc doc = CPX_CANON_DOC_INIT;
    const char *err = NULL;
    if (cpx_canon_parse(&doc, line, len, NULL) != CPX_CANON_OK ||
        cpx_canon_root(&doc)->type != CPX_CANON_OBJECT) {
        err = "a books state line is not a canonical JSON object";
        goto cleanup;
    }
    struct cpx_record none;
    memset(&none, 0, sizeof none);
    snprintf(none.kind_name, sizeof none.kind_name, "state");
    struct ctx x = { .b = b, .r = &none, .d = &doc, .p = cpx_canon_root(&doc) };
    if (!b->loading_header) {
        err = load_header(b, &x);
        goto cleanup;
    }
    if (b->loaded_lines >= b->load_lines) {
        err = "the books state has more lines than its header says";
        goto cleanup;
    }
    /* Each kind of line has its own key (usage and bill lines name an agreement too). */
    int stage = cpx_canon_get(&doc, x.p, "usage")       ? STAGE_USAGES
                : cpx_canon_get(&doc, x.p, "bill")      ? STAGE_BILLS
                : cpx_canon_get(&doc, x.p, "account")   ? STAGE_ACCOUNTS
                : cpx_canon_get(&doc, x.p, "order")     ? STAGE_ORDERS
                : cpx_canon_get(&doc, x.p, "agreement") ? STAGE_AGREEMENTS
                                                        : -1;
    if (stage < 0 || stage < b->load_stage) {
        err = "a books state line is of no known kind, or out of order";
        goto cleanup;
    }
    b->load_stage = stage;
    load_line(&x, &line_kinds[stage]);
    if (x.bad != NULL)
        err = b->nomem ? "out of memory" : "a books state line is malformed";
    b->loaded_lines++;
cleanup:
    cpx_canon_doc_free(&doc);
    return err;
}

const char *cpx_books_state_load_end(struct cpx_books *b)
{
    if (!b->loading_header)
        return "the books state has no header";
    if (b->loaded_lines != b->load_lines)
        return "the books state has fewer lines than its header says";
    b->loading_header = false;
    return NULL;
}
