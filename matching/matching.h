/*
 * matching.h — the CPX matching engine: constraint-aware order books for compute.
 *
 * What it is
 * ----------
 * A pure C17 library (libc only, no I/O, no clock reads, no hidden globals). All state lives in
 * an mx_engine the caller creates and frees, so one process may hold any number of engines.
 * The engine is single-threaded: one caller (the sequencer) drives it; nothing is locked.
 *
 * The market
 * ----------
 * Books are keyed by (precision, region). Precisions are the eight classes below; regions are
 * small integer ids 0..regions-1 that the caller configures at creation (at most 64).
 *
 *  - An *ask* is a provider's listing: a number of identical devices, for each precision it
 *    prices the rated TFLOPS per device and an ask price per PFLOPS-hour, plus memory,
 *    vendor/model, interconnect, green-power share, availability window and min/max hours.
 *    It rests in the book of every precision it prices (in its region); those books share its
 *    remaining devices.
 *  - A *bid* is a buyer's order: one precision, a quantity either as capacity (TFLOPS) or as a
 *    device count, hours, a set of acceptable regions, a limit price per PFLOPS-hour, a time in
 *    force and constraints. It rests in the book of every region it accepts; those books share
 *    its remaining quantity.
 *
 * Matching is continuous, by price-time priority on normalised price: an incoming bid takes the
 * cheapest eligible ask across its regions' books; an incoming ask takes the bid that pays the
 * provider most per device-hour (bid price x the ask's TFLOPS at that precision). The trade
 * price is always the resting (maker) side's price. A pair trades only when both sides'
 * constraints hold. Fills are whole devices for the bid's full hours. docs/matching.md states
 * every rule exactly; the comments here say what each call does and owns.
 *
 * Units
 * -----
 *  price     int64 micro-CNY per PFLOPS-hour at the book's precision (> 0).
 *  capacity  integer TFLOPS (TOPS for integer precisions) per device, or in total for a
 *            capacity bid.
 *  time      int64 unix seconds, passed in by the caller with every command ("now").
 *  ids       uint64 chosen by the caller, non-zero, unique across bids and asks alive together.
 *
 * Events
 * ------
 * Every command reports what it did as a sequence of mx_event values passed to the sink the
 * caller configured. The same command sequence always gives the same events and the same
 * mx_state_hash(). The sink must not call back into the engine.
 *
 * Memory
 * ------
 * The engine allocates its pools with the caller's allocator (or libc realloc/free) at creation,
 * sized by mx_config.expected_orders, and grows them by half when needed. A command that
 * would need memory that cannot be had is rejected (MX_R_NO_MEMORY) before it changes anything.
 */
#ifndef CPX_MATCHING_H
#define CPX_MATCHING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- domain constants ----------------------------------------------------------------------- */

/* Precision classes, in this order; the value is the book index. */
enum mx_precision {
    MX_FP64,
    MX_FP32,
    MX_TF32,
    MX_BF16,
    MX_FP16,
    MX_FP8,
    MX_INT8,
    MX_INT4,
    MX_NPREC /* number of precisions */
};

#define MX_MAX_REGIONS 64 /* region ids are 0..regions-1, regions <= this */
#define MX_MAX_ALLOW   8  /* entries in a bid's vendor/model allow-list */

/* Bounds on single fields. Together with the bid's product check (docs/matching.md,
 * "Overflow") they guarantee that price x TFLOPS x devices x hours of any fill fits in int64.
 * The TFLOPS-per-device bound depends on the precision: see mx_max_tflops(). */
#define MX_MAX_DEVICES  (INT64_C(1) << 32)        /* devices in one ask or device bid */
#define MX_MAX_CAPACITY (INT64_C(1) << 48)        /* TFLOPS in one capacity bid */
#define MX_MAX_HOURS    100000u                   /* hours of a bid (about 11 years) */
#define MX_MAX_TIME     (INT64_C(1) << 40)        /* largest clock value or time field */
#define MX_MAX_GREEN    1000u                     /* green share is in permille */
#define MX_MAX_SEQ      ((UINT64_C(1) << 48) - 1) /* arrival sequences the engine can assign */

typedef enum mx_side {
    MX_BID = 0, /* buyer's order */
    MX_ASK = 1  /* provider's listing */
} mx_side;

typedef enum mx_tif {
    MX_GTC = 0, /* good till cancelled (asks also end when their window closes) */
    MX_GTD = 1, /* good till the expiry time: expires at the first command with now >= expiry */
    MX_IOC = 2, /* fill what can be filled now, cancel the rest */
    MX_FOK = 3  /* fill completely now or not at all */
} mx_tif;

typedef enum mx_qty_kind {
    MX_QTY_DEVICES = 0, /* bid quantity is a device count */
    MX_QTY_TFLOPS = 1   /* bid quantity is capacity in TFLOPS at the bid's precision */
} mx_qty_kind;

/* Self-trade prevention: what happens when the best otherwise-eligible counter-order has the
 * taker's owner. Under every policy an owner never trades with itself. */
typedef enum mx_stp {
    MX_STP_CANCEL_NEWEST = 0, /* cancel the incoming order's remainder; nothing else happens */
    MX_STP_CANCEL_OLDEST = 1, /* cancel the resting order and keep matching */
    MX_STP_SKIP = 2           /* leave the resting order where it is and keep matching */
} mx_stp;

/* Why a command was refused, or why an order left the book. MX_OK is success. */
typedef enum mx_reason {
    MX_OK = 0,
    /* rejections of a command (MX_EV_REJECTED) */
    MX_R_BAD_COMMAND,  /* unknown command kind */
    MX_R_BAD_TIME,     /* now outside 0..MX_MAX_TIME */
    MX_R_BAD_ID,       /* id 0 */
    MX_R_DUPLICATE_ID, /* an order or listing with this id is resting */
    MX_R_UNKNOWN_ID,   /* no resting order or listing has this id */
    MX_R_BAD_PRECISION,
    MX_R_BAD_REGION,
    MX_R_BAD_QUANTITY,
    MX_R_BAD_PRICE,
    MX_R_BAD_HOURS,
    MX_R_BAD_TIF,
    MX_R_BAD_EXPIRY,     /* GTD without a future expiry */
    MX_R_BAD_WINDOW,     /* availability or start window empty or already over */
    MX_R_BAD_CONSTRAINT, /* a constraint field out of range */
    MX_R_OVERFLOW,       /* price x TFLOPS x devices x hours could overflow int64 */
    MX_R_WRONG_SIDE,     /* replace/reduce names an order of the other side */
    MX_R_OWNER_MISMATCH, /* replace changes the owner */
    MX_R_NOT_REDUCING,   /* reduce to a quantity not below the remaining one */
    MX_R_FULL,           /* the engine holds mx_config.max_orders resting orders */
    MX_R_NO_MEMORY,      /* the allocator failed */
    /* reasons an order or listing left the book (MX_EV_CANCELLED, MX_EV_EXPIRED) */
    MX_R_USER,    /* cancelled by the owner */
    MX_R_IOC,     /* the unfilled rest of an IOC order */
    MX_R_FOK,     /* a FOK order that could not fill completely */
    MX_R_STP,     /* self-trade prevention */
    MX_R_EXPIRED, /* GTD expiry, end of an ask's window, end of a bid's start window */
    MX_NREASONS
} mx_reason;

/* ---- the orders ----------------------------------------------------------------------------- */

/* One (vendor, model) pair of an allow-list; model 0 accepts every model of the vendor. The
 * ids are the caller's (the server maps names to them); vendor 0 means "unknown". */
typedef struct mx_model_ref {
    uint32_t vendor; /* vendor id, non-zero */
    uint32_t model;  /* model id, 0 = any model of that vendor */
} mx_model_ref;

/* A buyer's order. Fields not used by a constraint are 0. The engine copies what it needs. */
typedef struct mx_bid {
    uint64_t id;                       /* order id, non-zero */
    uint64_t owner;                    /* buyer */
    int64_t quantity;                  /* devices or TFLOPS, per qty_kind (> 0) */
    int64_t limit;                     /* limit price per PFLOPS-hour (> 0) */
    uint64_t regions;                  /* bit r set: region r accepted (non-empty) */
    int64_t expiry;                    /* GTD only: expires when now >= expiry */
    int64_t start_earliest;            /* agreement may not start before this (0 = now) */
    int64_t start_latest;              /* agreement must start by this (0 = no limit) */
    uint32_t hours;                    /* hours of every fill, 1..MX_MAX_HOURS */
    uint32_t min_memory_gb;            /* minimum memory per device */
    uint32_t min_tflops;               /* minimum rated TFLOPS per device at the precision */
    uint32_t max_tflops;               /* maximum rated TFLOPS per device at the precision
                                          (0 = no maximum) */
    uint32_t min_devices_per_provider; /* gang: each fill >= min(this, devices still needed) */
    uint32_t min_green_permille;       /* minimum green-power share, 0..1000 */
    uint8_t precision;                 /* enum mx_precision */
    uint8_t qty_kind;                  /* enum mx_qty_kind */
    uint8_t tif;                       /* enum mx_tif */
    uint8_t n_allow;                   /* entries used in allow (0 = any vendor/model) */
    mx_model_ref allow[MX_MAX_ALLOW];  /* acceptable vendor/models */
} mx_bid;

/* A provider's listing. A precision is priced when its bit is set in `priced`; tflops[p] and
 * price[p] of unpriced precisions are ignored. */
typedef struct mx_ask {
    uint64_t id;             /* listing id, non-zero */
    uint64_t owner;          /* provider */
    int64_t devices;         /* identical devices offered (> 0) */
    int64_t price[MX_NPREC]; /* ask price per PFLOPS-hour at each priced precision */
    int64_t available_from;  /* agreements may not start before this (0 = now) */
    int64_t available_until; /* agreements must end by this; the listing expires then (0 = none) */
    int64_t expiry;          /* GTD only: expires when now >= expiry */
    uint32_t tflops[MX_NPREC]; /* rated TFLOPS per device at each priced precision */
    uint32_t memory_gb;        /* memory per device */
    uint32_t vendor;           /* vendor id (0 = unknown) */
    uint32_t model;            /* model id (0 = unknown) */
    uint32_t interconnect;     /* interconnect id: carried, not matched on */
    uint32_t green_permille;   /* green-power share, 0..1000 */
    uint32_t min_hours;        /* shortest bid served (0 = no minimum) */
    uint32_t max_hours;        /* longest bid served (0 = no maximum) */
    uint8_t priced;            /* bit p set: priced at precision p (non-empty) */
    uint8_t region;            /* region id */
    uint8_t tif;               /* enum mx_tif */
} mx_ask;

/* ---- events --------------------------------------------------------------------------------- */

typedef enum mx_event_kind {
    MX_EV_ACCEPTED = 1, /* a bid or ask was accepted (before any of its fills) */
    MX_EV_REJECTED,     /* a command was refused: reason says why; nothing changed */
    MX_EV_FILL,         /* a trade; the fill fields are set */
    MX_EV_DONE,         /* id is completely filled and left the book */
    MX_EV_CANCELLED,    /* id left the book unfilled or partly filled: reason says why */
    MX_EV_EXPIRED,      /* id expired and left the book */
    MX_EV_REDUCED,      /* id's remaining quantity was reduced; it keeps its priority */
    MX_EV_REPLACED      /* id was replaced (stands where ACCEPTED would; new priority) */
} mx_event_kind;

/*
 * One event. id/side/owner/remaining describe the order the event is about (for a FILL: the
 * taker). remaining is in the order's own unit: devices for asks and device bids, TFLOPS for
 * capacity bids; it is the quantity left after the event, except for CANCELLED and EXPIRED,
 * where it is the quantity that left the book unfilled (0 for REJECTED). The fill fields are
 * zero except in MX_EV_FILL. docs/matching.md gives the order of events within a command.
 */
typedef struct mx_event {
    uint8_t kind;      /* enum mx_event_kind */
    uint8_t reason;    /* enum mx_reason: REJECTED, CANCELLED, EXPIRED; MX_OK otherwise */
    uint8_t side;      /* side of id */
    uint8_t pad_;      /* zero */
    uint64_t id;       /* order or listing concerned (the command's id for REJECTED) */
    uint64_t owner;    /* its owner (0 when unknown, e.g. rejecting an unknown id) */
    int64_t remaining; /* its remaining quantity after the event */
    int64_t now;       /* the engine clock the command ran at */
    /* MX_EV_FILL only: */
    uint64_t match;          /* fill number, 1, 2, ... for the life of the engine */
    uint64_t maker_id;       /* the resting side */
    uint64_t taker_id;       /* the side that came in (or a re-matched gang bid) */
    uint64_t maker_owner;    /* owner of maker_id */
    uint64_t taker_owner;    /* owner of taker_id */
    int64_t maker_remaining; /* maker's remaining after the fill, in its unit */
    int64_t taker_remaining; /* taker's remaining after the fill, in its unit */
    int64_t devices;         /* whole devices traded */
    int64_t price;           /* maker's price per PFLOPS-hour at this precision */
    int64_t start;           /* agreement start time (unix seconds) */
    uint32_t tflops;         /* the ask's rated TFLOPS per device at this precision */
    uint32_t hours;          /* the bid's hours */
    uint8_t taker_side;      /* MX_BID or MX_ASK: side of taker_id (the maker is the other) */
    uint8_t precision;       /* book precision */
    uint8_t region;          /* book region */
} mx_event;

/* The sink receives every event, in order; ev is valid only during the call. */
typedef void (*mx_sink_fn)(void *ctx, const mx_event *ev);

/* ---- engine --------------------------------------------------------------------------------- */

/* Allocator hooks: realloc(ctx, NULL, n) allocates, realloc(ctx, p, n) resizes; free releases. */
typedef struct mx_allocator {
    void *(*realloc)(void *ctx, void *ptr, size_t size); /* NULL on failure, ptr untouched */
    void (*free)(void *ctx, void *ptr);                  /* ptr may be NULL */
    void *ctx;                                           /* passed to both */
} mx_allocator;

/* Called in check builds (MATCHING_CHECK_INVARIANTS) when an invariant fails, just before the
 * engine aborts: what is the failed condition as text. A bug of ours, never caller input. */
typedef void (*mx_check_fail_fn)(void *ctx, const char *what, const char *file, int line);

typedef struct mx_config {
    unsigned regions;          /* regions 0..regions-1 exist; 1..MX_MAX_REGIONS */
    mx_stp stp;                /* self-trade prevention policy */
    mx_sink_fn sink;           /* receives every event; may be NULL */
    void *sink_ctx;            /* passed to sink */
    size_t expected_orders;    /* resting orders to size the pools for (0 = a small default) */
    size_t max_orders;         /* refuse new orders when this many rest (0 = no limit but memory) */
    const mx_allocator *alloc; /* NULL = libc realloc/free; copied, need not outlive create */
    mx_check_fail_fn on_check_failure; /* may be NULL */
    void *check_ctx;                   /* passed to on_check_failure */
} mx_config;

typedef struct mx_engine mx_engine;

/* Creates an engine. Returns NULL when cfg is invalid or memory is short. Free with
 * mx_engine_free. */
mx_engine *mx_engine_create(const mx_config *cfg);

/* Frees the engine and everything it holds. e may be NULL. */
void mx_engine_free(mx_engine *e);

/*
 * Commands. Each takes the caller's clock `now` (a value earlier than the engine's clock is
 * taken as the engine's clock: the engine's time never goes back), first expires every order
 * due at that time, then does its work, reporting everything through the sink. Each returns
 * MX_OK when the command was accepted, or the reason it was rejected (also sent as an
 * MX_EV_REJECTED event). A rejected command changes nothing but the expiries it ran first.
 */

/* Adds a bid: matches it against the asks of its regions, then rests the remainder (GTC/GTD),
 * or cancels it (IOC, FOK). */
mx_reason mx_submit_bid(mx_engine *e, int64_t now, const mx_bid *bid);

/* Adds an ask: matches it against the bids of its priced precisions, then rests the rest. */
mx_reason mx_submit_ask(mx_engine *e, int64_t now, const mx_ask *ask);

/* Cancels the resting bid or ask with this id. */
mx_reason mx_cancel(mx_engine *e, int64_t now, uint64_t id);

/* Reduces a resting order's remaining quantity to `remaining` (0 < remaining < current), in
 * its own unit. It keeps its time priority. */
mx_reason mx_reduce(mx_engine *e, int64_t now, uint64_t id, int64_t remaining);

/* Replaces the resting bid bid->id with *bid (same owner): the old one leaves the book, the
 * new one enters with a new arrival sequence, exactly as if cancelled and added again;
 * bid->quantity is the new remaining quantity. */
mx_reason mx_replace_bid(mx_engine *e, int64_t now, const mx_bid *bid);

/* Replaces the resting ask ask->id with *ask, as mx_replace_bid does for bids. */
mx_reason mx_replace_ask(mx_engine *e, int64_t now, const mx_ask *ask);

/* Only advances the clock to now and expires what is due. */
mx_reason mx_expire(mx_engine *e, int64_t now);

/* ---- queries (read-only; never produce events) ---------------------------------------------- */

/* Hash of the resting state: every resting order's id, owner, side, remaining quantity,
 * arrival sequence (its priority), price(s) and constraints; independent of memory layout and
 * of the order orders were stored in. O(1): the engine maintains the sum of the orders' hashes
 * (mx_hash_bid/ask) on every change of the books (an order rests or leaves, its remaining
 * changes); this adds the few order hashes still queued (at most 8) and finalises the sum with
 * the count (mx_hash_finish): well under a microsecond whatever the book size. Always equal to
 * mx_state_hash_full(). */
uint64_t mx_state_hash(const mx_engine *e);

/* The same value as mx_state_hash(), recomputed from scratch in O(resting orders): the sum of
 * mx_hash_bid/ask over every resting order's spec (as mx_get_bid/ask return it), finalised.
 * The definition the maintained value is checked against (check builds do so after every
 * command); for tests and audits, not for the hot path. */
uint64_t mx_state_hash_full(const mx_engine *e);

/* Number of resting bids and asks. */
size_t mx_resting(const mx_engine *e);

/* Bytes of memory the engine holds (every pool at its capacity, tables, the engine itself). */
size_t mx_memory_bytes(const mx_engine *e);

/* The engine's clock: the largest `now` it has run a command at. */
int64_t mx_now(const mx_engine *e);

/* What the engine knows of a resting order. */
typedef struct mx_order_info {
    uint8_t side;      /* MX_BID or MX_ASK */
    uint64_t owner;    /* owner */
    int64_t remaining; /* devices or TFLOPS, per the order's unit */
    uint64_t seq;      /* arrival sequence: lower trades first at equal price */
} mx_order_info;

/* Looks up a resting order. Returns false when no resting order has this id. */
bool mx_lookup(const mx_engine *e, uint64_t id, mx_order_info *out);

/* Copies the spec of a resting bid (with quantity = remaining). Returns false when id is not a
 * resting bid. */
bool mx_get_bid(const mx_engine *e, uint64_t id, mx_bid *out);

/* Copies the spec of a resting ask (with devices = remaining). Returns false when id is not a
 * resting ask. */
bool mx_get_ask(const mx_engine *e, uint64_t id, mx_ask *out);

/*
 * One price level of a book side. Quantities: `devices` sums device quantities (asks' remaining
 * devices and device bids' remaining counts); `tflops` sums capacities (asks' remaining devices
 * x their TFLOPS at the book's precision, and capacity bids' remaining TFLOPS).
 */
typedef struct mx_level_info {
    int64_t price;    /* price per PFLOPS-hour */
    uint64_t devices; /* device quantity at this price */
    uint64_t tflops;  /* capacity at this price */
    uint32_t orders;  /* resting orders at this price */
} mx_level_info;

/* Fills out[0..max) with the best levels of one side of book (precision, region), best first.
 * Returns the number of levels written. O(levels written), no walk over orders. */
size_t mx_depth(const mx_engine *e, unsigned precision, unsigned region, mx_side side,
                mx_level_info *out, size_t max);

/* The best level of one side of a book. Returns false when that side is empty. O(1). */
bool mx_best(const mx_engine *e, unsigned precision, unsigned region, mx_side side,
             mx_level_info *out);

/* The constraints explain() counts, in the order the engine evaluates them. */
typedef enum mx_constraint {
    MX_C_MEMORY,       /* ask memory per device < bid min_memory_gb */
    MX_C_TFLOPS,       /* ask TFLOPS per device < bid min_tflops */
    MX_C_MAX_TFLOPS,   /* ask TFLOPS per device > bid max_tflops (when non-zero) */
    MX_C_MODEL,        /* ask vendor/model not in the bid's allow-list */
    MX_C_GREEN,        /* ask green share < bid min_green_permille */
    MX_C_HOURS,        /* bid hours outside the ask's min_hours..max_hours */
    MX_C_START,        /* earliest common start is after the bid's start_latest */
    MX_C_AVAILABILITY, /* start + hours is after the ask's available_until */
    MX_C_GANG,         /* ask has fewer devices than min(gang, devices still needed) */
    MX_C_SELF,         /* same owner */
    MX_NCONSTRAINTS
} mx_constraint;

/*
 * Why a resting order does not trade. examined counts the counter-orders in the books the order
 * rests in; excluded[c] how many of them constraint c excludes (a counter-order failing two
 * constraints counts in both); eligible those that pass every constraint. Among the eligible,
 * the nearest in price is reported with price_gap = ask price - bid price at that book's
 * precision (> 0 when they do not cross).
 */
typedef struct mx_explanation {
    uint8_t side;                       /* side of the explained order */
    uint32_t examined;                  /* counter-orders in the relevant books */
    uint32_t excluded[MX_NCONSTRAINTS]; /* counter-orders each constraint excluded */
    uint32_t eligible;                  /* counter-orders passing every constraint */
    bool has_nearest;                   /* an eligible counter-order exists */
    int64_t price_gap;                  /* ask price - bid price at the nearest eligible one */
    uint64_t nearest_id;                /* that counter-order */
    uint8_t nearest_precision;          /* its book's precision */
    uint8_t nearest_region;             /* its book's region */
} mx_explanation;

/* Explains a resting order at the engine's clock. Returns MX_OK, or MX_R_UNKNOWN_ID.
 * O(counter-orders in its books). */
mx_reason mx_explain(const mx_engine *e, uint64_t id, mx_explanation *out);

/* Checks every invariant of the engine (docs/matching.md, "Invariants"). Returns true when they
 * all hold; in check builds the engine also runs this after every command and aborts on
 * failure. O(resting orders + crossed pairs). */
bool mx_engine_check(const mx_engine *e);

/* ---- hashing of one order, as mx_state_hash() combines them --------------------------------- */

/* Hash of one resting bid with the given remaining quantity and arrival sequence. Fields that
 * do not affect matching (quantity, expiry of a non-GTD bid, unused allow entries) are ignored.
 * The state hash is the sum of these over resting orders, finalised. */
uint64_t mx_hash_bid(const mx_bid *bid, int64_t remaining, uint64_t seq);

/* Hash of one resting ask, as mx_hash_bid. */
uint64_t mx_hash_ask(const mx_ask *ask, int64_t remaining, uint64_t seq);

/* Finalises a sum of order hashes over `count` resting orders into the state hash. */
uint64_t mx_hash_finish(uint64_t sum, uint64_t count);

/* ---- commands as values, and their binary form ---------------------------------------------- */

typedef enum mx_cmd_kind {
    MX_CMD_BID = 1,         /* mx_submit_bid(bid) */
    MX_CMD_ASK = 2,         /* mx_submit_ask(ask) */
    MX_CMD_CANCEL = 3,      /* mx_cancel(id) */
    MX_CMD_REDUCE = 4,      /* mx_reduce(id, quantity) */
    MX_CMD_REPLACE_BID = 5, /* mx_replace_bid(bid) */
    MX_CMD_REPLACE_ASK = 6, /* mx_replace_ask(ask) */
    MX_CMD_EXPIRE = 7       /* mx_expire() */
} mx_cmd_kind;

/* One command. Only the fields of its kind are meaningful. */
typedef struct mx_command {
    uint8_t kind;     /* enum mx_cmd_kind */
    int64_t now;      /* caller's clock */
    uint64_t id;      /* CANCEL, REDUCE */
    int64_t quantity; /* REDUCE: the new remaining quantity */
    mx_bid bid;       /* BID, REPLACE_BID */
    mx_ask ask;       /* ASK, REPLACE_ASK */
} mx_command;

/* Runs one command. Returns what the command's function returns (MX_R_BAD_COMMAND, with an
 * MX_EV_REJECTED event, for an unknown kind). */
mx_reason mx_apply(mx_engine *e, const mx_command *cmd);

/* Largest encoded size of one command, in bytes. */
#define MX_COMMAND_MAX_BYTES 512

/* Encodes cmd into buf[0..cap) in the binary command format (docs/matching.md). Returns the
 * bytes written, or 0 when cap is too small or cmd cannot be encoded (unknown kind, n_allow
 * above MX_MAX_ALLOW, a field out of its encodable range). */
size_t mx_encode_command(const mx_command *cmd, uint8_t *buf, size_t cap);

/*
 * Decodes one command from buf[0..len). On success fills *out (zeroing unused fields), stores
 * the bytes consumed in *used and returns true. Returns false on any malformed input: truncated
 * or overlong varints, an unknown kind, a field out of its range; never reads past buf + len.
 * The decoder checks the form only; the engine validates the values (and rejects bad ones).
 */
bool mx_decode_command(const uint8_t *buf, size_t len, mx_command *out, size_t *used);

/* Largest rated TFLOPS per device the engine accepts at a precision (0 for an unknown one):
 * FP64/FP32 4096, TF32/BF16/FP16 16384, FP8/INT8 32768, INT4 65536 (several times today's
 * largest accelerators). A bid's product check uses it for the ask it will meet (a device bid
 * with a max_tflops uses that instead; docs/matching.md, "Overflow"). */
uint32_t mx_max_tflops(unsigned precision);

/* ---- names (static strings, for logs and tests) --------------------------------------------- */

const char *mx_reason_name(mx_reason r);           /* "OK", "BAD_PRICE", ...; "?" if unknown */
const char *mx_event_name(mx_event_kind k);        /* "ACCEPTED", ...; "?" if unknown */
const char *mx_precision_name(unsigned precision); /* "FP64", ...; "?" if unknown */
const char *mx_constraint_name(mx_constraint c);   /* "memory", ...; "?" if unknown */

#endif /* CPX_MATCHING_H */
