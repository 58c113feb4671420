/*
 * matching_int.h — the engine's data structures, shared by the files of matching/.
 *
 * The picture
 * -----------
 * Every resting order (a bid or an ask; the engine calls both "records") is one 64-byte mx_rec
 * in a pool, found by id through a chained hash table whose links live in the records. A record
 * rests in one or more *books*: a bid in the (precision, region) book of every region it
 * accepts, an ask in the (its region, precision) book of every precision it prices. In each book
 * it sits in the FIFO queue of one *price level* of the right side. The membership of a record
 * in one book is a *node*: three links (prev, next, level). The first node is embedded in the
 * record itself, so a plain order (one book, no constraints) costs one record and nothing else;
 * further nodes come from a node pool and hang off the record's extension.
 *
 *      id table                 book side (AVL tree of levels, best cached)
 *      buckets[] -> rec -> rec       level 100 <-> level 101 <-> level 105 ...
 *                                     |  head/tail
 *                                     v
 *                              node <-> node <-> node      (FIFO, oldest first)
 *                                |        |
 *                               rec      rec (via the node's record index)
 *
 * Records that need more than the 64 bytes of the plain case (constraints, several books, an
 * expiry, a multi-precision price list) own an *extension*: a copy of their full spec, the list
 * of their secondary nodes and their position in the expiry heap. The matching loop tests
 * "neither side has an extension" first: such pairs are eligible unless they share an owner,
 * so plain books pay nothing for the compute features.
 *
 * References are 32-bit pool indices, never pointers, so pools can grow with realloc. A *node
 * reference* names either a record's embedded node (the record index) or a pool node (the node
 * index with MX_NODE_TAG set); mx_link_of() turns either into its links. Pools start on a
 * 64-byte boundary, so a record is exactly one cache line.
 *
 * Invariants (checked by check.c after every command in check builds)
 * ---------------------------------------------------------------------
 *  1. A record is resting iff it is in the id table; every resting record has exactly one node
 *     per book it belongs to (popcount of regions for a bid, of priced for an ask), each in a
 *     level of that book's correct side whose price is the record's price in that book.
 *  2. Within a level the FIFO is in increasing arrival sequence; count, devices and tflops of a
 *     level equal the sums over its nodes (the shared remaining quantity, seen from each book).
 *  3. Each book side is an AVL tree ordered by price with correct parent links and heights,
 *     and `best` is its lowest (asks) or highest (bids) level. Empty levels do not exist.
 *  4. The expiry heap holds exactly the resting records with an expiry, in heap order, and each
 *     knows its position.
 *  5. Conservation: for asks' devices, device bids' devices and capacity bids' TFLOPS,
 *     quantity accepted = filled + removed (cancelled, expired, reduced, replaced) + resting.
 *  6. No eligible pair is left crossed: no resting bid and ask of different owners in a common
 *     book cross in price while satisfying every constraint at the engine's clock.
 *  7. State hash: every resting record's hash is either queued in hash_job (once, flag
 *     MX_F_HASHQ) or cached in hashes[] with the value mx_hash_bid/ask give for its spec;
 *     hash_sum is the sum of the cached ones, so that mx_state_hash() (hash_sum + the queued
 *     ones, O(1)) equals mx_state_hash_full() (recomputed from every resting order's spec).
 */
#ifndef CPX_MATCHING_INT_H
#define CPX_MATCHING_INT_H

#include "matching/matching.h"

#define MX_NIL       UINT32_MAX  /* "no index" in every pool */
#define MX_NODE_TAG  0x80000000u /* set in a node reference that names a pool node */
#define MX_MAX_INDEX 0x7ffffffeu /* largest index a pool may hand out */

/* Record flags (mx_rec.flags). */
#define MX_F_LINKED 1u /* resting: in the id table and its books */
#define MX_F_MARKED 2u /* consumed during a FOK dry run (cleared before the command ends) */
#define MX_F_HASHQ  4u /* its hash is queued in hash_job, not yet computed (hash.c) */

/* Links of one node: its neighbours in a level's FIFO and the level itself. */
typedef struct mx_link {
    uint32_t prev;  /* older node reference in the same level, MX_NIL at the head */
    uint32_t next;  /* younger node reference, MX_NIL at the tail */
    uint32_t level; /* index of the level the node is queued in */
} mx_link;

/*
 * A resting order, bid or ask: exactly 64 bytes, one cache line. Fields that a plain order
 * needs are here; everything else is in the extension (ext).
 */
typedef struct mx_rec {
    mx_link link;          /* the embedded node: membership in the primary book */
    uint32_t id_next;      /* next record in the same id bucket; next free record when free */
    uint64_t id;           /* caller's id; 0 while the record is free */
    uint64_t owner;        /* caller's owner id */
    int64_t remaining;     /* devices (asks, device bids) or TFLOPS (capacity bids) */
    int64_t price;         /* bid: limit price; ask: price at the primary precision */
    uint32_t ext;          /* extension index, MX_NIL for a plain order */
    uint32_t size;         /* bid: hours; ask: TFLOPS per device at the primary precision */
    uint64_t seq : 48;     /* arrival sequence: the time priority */
    uint64_t side : 1;     /* MX_BID or MX_ASK */
    uint64_t tif : 2;      /* enum mx_tif */
    uint64_t qty_kind : 1; /* bids: enum mx_qty_kind; asks: MX_QTY_DEVICES */
    uint64_t prec : 3;     /* bid: its precision; ask: its primary (lowest priced) precision */
    uint64_t region : 6;   /* ask: its region; bid: its primary (lowest accepted) region */
    uint64_t flags : 3;    /* MX_F_* */
} mx_rec;

_Static_assert(sizeof(mx_rec) == 64, "a record is one cache line");

/* A secondary node: membership of a record in one more book. */
typedef struct mx_node {
    mx_link link;  /* FIFO links and level */
    uint32_t rec;  /* the record this node belongs to */
    uint32_t more; /* next secondary node of the same record; next free node when free */
} mx_node;

/* Extension of a record that is not plain: its full spec and bookkeeping. */
typedef struct mx_ext {
    union {
        mx_bid bid; /* side == MX_BID: the spec as accepted (quantity = original) */
        mx_ask ask; /* side == MX_ASK */
    } spec;
    int64_t expires;   /* clock value at which the record expires, 0 = never */
    uint32_t more;     /* first secondary node, MX_NIL if none; next free ext when free */
    uint32_t heap_pos; /* index in the expiry heap, MX_NIL when not in it */
} mx_ext;

/* A price level: the FIFO of nodes at one price on one side of one book, and an AVL node. The
 * fields a tree descent reads (price, left, right) come first, in the same cache line. */
typedef struct mx_level {
    int64_t price;    /* price per PFLOPS-hour */
    uint32_t left;    /* AVL: lower prices; next free level when free */
    uint32_t right;   /* AVL: higher prices */
    uint32_t parent;  /* AVL: parent level, MX_NIL at the root */
    int8_t height;    /* AVL: height of the subtree, 1 for a leaf */
    uint8_t prec;     /* the book's precision */
    uint8_t region;   /* the book's region */
    uint8_t is_ask;   /* side of the book this level is on */
    uint32_t head;    /* oldest node reference */
    uint32_t tail;    /* youngest node reference */
    uint32_t count;   /* nodes queued */
    uint32_t side;    /* book side index (mx_side_index) */
    uint64_t devices; /* sum of device quantities of the nodes (see mx_level_info) */
    uint64_t tflops;  /* sum of capacities of the nodes */
} mx_level;

/* One side of one book. */
typedef struct mx_bookside {
    uint32_t root;   /* AVL root level, MX_NIL when empty */
    uint32_t best;   /* best level: lowest price for asks, highest for bids */
    uint32_t levels; /* levels in the tree */
    uint32_t orders; /* nodes queued over all levels */
} mx_bookside;

/* An expiry heap entry: min-heap on (expires, seq). */
typedef struct mx_expiry {
    int64_t expires; /* when */
    uint64_t seq;    /* tie-break: arrival sequence */
    uint32_t rec;    /* record index */
} mx_expiry;

/* Conservation counters (invariant 5); unsigned so that they wrap, never overflow. */
typedef struct mx_totals {
    uint64_t in[3];      /* quantity accepted, per class (MX_Q_*) */
    uint64_t filled[3];  /* quantity traded */
    uint64_t removed[3]; /* quantity cancelled, expired, reduced away or replaced away */
} mx_totals;

enum { MX_Q_ASK_DEVICES, MX_Q_BID_DEVICES, MX_Q_BID_TFLOPS };

/* Words an order's hash absorbs at most: id, owner, sequence, remaining, then an ask priced in
 * all eight precisions (1 + 2 x 8 + 7 words; a bid has at most 9 + 8). */
#define MX_HASH_WORDS (4 + 1 + 2 * MX_NPREC + 7)
/* Order hashes the engine queues before computing them together (hash.c); also the most
 * mx_state_hash() may have to compute. */
#define MX_HASH_QUEUE 8

/* One queued order hash: the words its chain absorbs (premixed), copied from its record. */
typedef struct mx_hash_job {
    uint64_t tag;              /* the side's starting value */
    uint64_t w[MX_HASH_WORDS]; /* premixed words to absorb, in order; w[3] is the remaining */
    uint32_t n;                /* words used */
    uint32_t rec;              /* the record whose hash this is */
} mx_hash_job;

/* A cursor of the matching loop: where it stands in one counter book side. */
typedef struct mx_cursor {
    uint32_t side;  /* book side index */
    uint32_t level; /* current level, MX_NIL when this side has nothing more that crosses */
    uint32_t ref;   /* current node reference in level */
    uint32_t mult;  /* taker is an ask: its TFLOPS per device here (normalises bid prices) */
    int64_t bound;  /* taker is a bid: its limit; an ask: its price in this book */
    uint8_t prec;   /* the book's precision */
    uint8_t region; /* the book's region */
} mx_cursor;

struct mx_engine {
    mx_allocator alloc;                /* memory hooks (libc when the caller gave none) */
    mx_sink_fn sink;                   /* event sink, may be NULL */
    void *sink_ctx;                    /* its context */
    mx_check_fail_fn on_check_failure; /* invariant failure report, may be NULL */
    void *check_ctx;                   /* its context */
    unsigned nregions;                 /* regions configured */
    mx_stp stp;                        /* self-trade prevention policy */
    size_t max_orders;                 /* resting limit, 0 = none */
    int64_t now;                       /* engine clock: largest now seen */
    uint64_t seq;                      /* last arrival sequence handed out */
    uint64_t matches;                  /* fills so far */

    mx_bookside *sides; /* [(prec * nregions + region) * 2 + is_ask] */

    mx_rec *recs;      /* record pool */
    void *recs_mem;    /* allocator block the pool sits in (aligned) */
    uint32_t rec_cap;  /* records allocated */
    uint32_t rec_top;  /* high-water mark: records above it were never handed out */
    uint32_t rec_free; /* free list head */
    uint32_t rec_live; /* records handed out and not freed */
    uint32_t resting;  /* records in the id table */

    mx_ext *exts;      /* extension pool */
    void *exts_mem;    /* allocator block the pool sits in (aligned) */
    uint32_t ext_cap;  /* extensions allocated */
    uint32_t ext_top;  /* high-water mark of the extension pool */
    uint32_t ext_free; /* free list head */
    uint32_t ext_live; /* extensions handed out and not freed */

    mx_node *nodes;     /* secondary node pool */
    void *nodes_mem;    /* allocator block the pool sits in (aligned) */
    uint32_t node_cap;  /* nodes allocated */
    uint32_t node_top;  /* high-water mark of the node pool */
    uint32_t node_free; /* free list head */
    uint32_t node_live; /* nodes handed out and not freed */

    mx_level *levels;    /* level pool */
    void *levels_mem;    /* allocator block the pool sits in (aligned) */
    uint32_t level_cap;  /* levels allocated */
    uint32_t level_top;  /* high-water mark of the level pool */
    uint32_t level_free; /* free list head */
    uint32_t level_live; /* levels handed out and not freed */

    uint32_t *buckets;    /* id table: first record of each bucket */
    unsigned bucket_bits; /* log2 of the bucket count */

    mx_expiry *heap;   /* expiry min-heap */
    void *heap_mem;    /* allocator block the pool sits in (aligned) */
    uint32_t heap_len; /* entries used */
    uint32_t heap_cap; /* entries allocated */

    uint32_t *marks;    /* records marked during a FOK dry run */
    void *marks_mem;    /* allocator block the pool sits in (aligned) */
    uint32_t marks_len; /* entries used */
    uint32_t marks_cap; /* entries allocated */

    uint32_t reactivate; /* gang bid to re-match before the command ends, or MX_NIL */
    mx_totals totals;    /* conservation counters */
    uint64_t hash_sum;   /* computed part of the state hash sum (invariant 7) */
    uint64_t *hashes;    /* [record]: its hash as counted in hash_sum (stale while queued) */
    uint32_t hashes_cap; /* entries allocated in hashes (grown with the record pool) */
    uint32_t hash_jobs;  /* jobs queued in hash_job */
    mx_hash_job hash_job[MX_HASH_QUEUE]; /* order hashes queued, not yet in hash_sum */
};

/* A condition that must hold unless the engine has a bug (SQLite's ALWAYS): in check builds a
 * failure is reported through on_check_failure and aborts; otherwise it is just the condition,
 * so that the caller can still take the safe branch. Needs `e` in scope. */
#if MATCHING_CHECK_INVARIANTS
#define MX_ALWAYS(x) ((x) ? 1 : (mx_check_failed(e, #x, __FILE__, __LINE__), 0))
#else
#define MX_ALWAYS(x) (x)
#endif

/* ---- small accessors ------------------------------------------------------------------------ */

/* Index of the side `is_ask` of book (prec, region). */
static inline uint32_t mx_side_index(const mx_engine *e, unsigned prec, unsigned region,
                                     unsigned is_ask)
{
    return ((uint32_t)prec * e->nregions + region) * 2u + is_ask;
}

/* Links of a node reference (embedded or pool node). */
static inline mx_link *mx_link_of(const mx_engine *e, uint32_t ref)
{
    return (ref & MX_NODE_TAG) ? &e->nodes[ref & ~MX_NODE_TAG].link : &e->recs[ref].link;
}

/* Record index a node reference belongs to. */
static inline uint32_t mx_rec_of(const mx_engine *e, uint32_t ref)
{
    return (ref & MX_NODE_TAG) ? e->nodes[ref & ~MX_NODE_TAG].rec : ref;
}

/* The node after `ref` in record ri's list of nodes (embedded first), or MX_NIL. */
static inline uint32_t mx_next_node(const mx_engine *e, uint32_t ri, uint32_t ref)
{
    if (ref == ri) {
        uint32_t x = e->recs[ri].ext;
        return x == MX_NIL || e->exts[x].more == MX_NIL ? MX_NIL : (e->exts[x].more | MX_NODE_TAG);
    }
    uint32_t more = e->nodes[ref & ~MX_NODE_TAG].more;
    return more == MX_NIL ? MX_NIL : (more | MX_NODE_TAG);
}

extern const mx_bid mx_default_bid; /* a bid with every constraint off (read-only) */
extern const mx_ask mx_default_ask; /* an ask with no attributes (read-only) */

/* Spec of a record for constraint checks: its extension's, or the defaults (no constraint,
 * no attribute). */
static inline const mx_bid *mx_bid_spec(const mx_engine *e, const mx_rec *r)
{
    return r->ext == MX_NIL ? &mx_default_bid : &e->exts[r->ext].spec.bid;
}

static inline const mx_ask *mx_ask_spec(const mx_engine *e, const mx_rec *r)
{
    return r->ext == MX_NIL ? &mx_default_ask : &e->exts[r->ext].spec.ask;
}

/* TFLOPS per device of ask record r at precision p. */
static inline uint32_t mx_ask_tflops(const mx_engine *e, const mx_rec *r, unsigned p)
{
    return r->ext == MX_NIL ? r->size : e->exts[r->ext].spec.ask.tflops[p];
}

/* Price of ask record r at precision p. */
static inline int64_t mx_ask_price(const mx_engine *e, const mx_rec *r, unsigned p)
{
    return r->ext == MX_NIL ? r->price : e->exts[r->ext].spec.ask.price[p];
}

/* Conservation class of a record (MX_Q_*). */
static inline unsigned mx_qclass(const mx_rec *r)
{
    if (r->side == MX_ASK)
        return MX_Q_ASK_DEVICES;
    return r->qty_kind == MX_QTY_DEVICES ? MX_Q_BID_DEVICES : MX_Q_BID_TFLOPS;
}

/* ---- engine.c ------------------------------------------------------------------------------- */

/* Sends ev to the sink. */
void mx_emit(mx_engine *e, const mx_event *ev);
/* Emits a simple event about record ri (ACCEPTED, DONE, CANCELLED, ...). */
void mx_emit_rec(mx_engine *e, uint32_t ri, mx_event_kind kind, mx_reason reason);
/* Finds the resting record with this id. Returns its index or MX_NIL. */
uint32_t mx_find(const mx_engine *e, uint64_t id);
/* Puts record ri (incoming, matched) to rest: id table, books, expiry heap, state hash sum.
 * Room was reserved. */
void mx_rest(mx_engine *e, uint32_t ri);
/* Retires record ri, resting or not: takes it out of its books, the id table, the expiry heap
 * and the state hash sum, counts its remaining quantity as removed, and frees it. Emits
 * nothing. */
void mx_retire(mx_engine *e, uint32_t ri);

/* ---- spec.c --------------------------------------------------------------------------------- */

/* Validation of a spec at clock now. Returns MX_OK or the rejection reason. */
mx_reason mx_check_bid(const mx_engine *e, const mx_bid *b, int64_t now);
mx_reason mx_check_ask(const mx_engine *e, const mx_ask *a, int64_t now);
/* Canonical form of a valid spec: fields that cannot matter are zeroed (expiry of a non-GTD
 * order, unused allow entries, gang 1 (= none), prices and TFLOPS of unpriced precisions). */
void mx_canon_bid(mx_bid *b);
void mx_canon_ask(mx_ask *a);
/* True when the spec can be stored without an extension. */
int mx_bid_is_plain(const mx_bid *b);
int mx_ask_is_plain(const mx_ask *a);
/* The expiry time of a spec (0 = never). */
int64_t mx_bid_expires(const mx_bid *b);
int64_t mx_ask_expires(const mx_ask *a);
/* Copies the canonical spec of record ri into *out (quantity/devices = remaining). */
void mx_rec_bid(const mx_engine *e, uint32_t ri, mx_bid *out);
void mx_rec_ask(const mx_engine *e, uint32_t ri, mx_ask *out);

/* ---- book.c --------------------------------------------------------------------------------- */

/* Puts record ri into every book it belongs to (at the tail of its levels). Pools must have
 * room (the command reserved it). */
void mx_book_insert(mx_engine *e, uint32_t ri);
/* Takes record ri out of every book; frees emptied levels and its secondary nodes. */
void mx_book_remove(mx_engine *e, uint32_t ri);
/* Changes record ri's remaining quantity, updating the levels of every book it rests in and,
 * when it rests, the state hash sum. */
void mx_set_remaining(mx_engine *e, uint32_t ri, int64_t remaining);
/* The level after lv in priority order (higher price for asks, lower for bids), or MX_NIL. */
uint32_t mx_level_next(const mx_engine *e, uint32_t lv);
/* Device and capacity contribution of record r (with remaining rem) to a level of precision p. */
void mx_contribution(const mx_engine *e, const mx_rec *r, unsigned p, int64_t rem,
                     uint64_t *devices, uint64_t *tflops);

/* ---- match.c -------------------------------------------------------------------------------- */

/* Matches the incoming (not yet resting) record ri, then rests, completes or cancels it per its
 * time in force, then re-matches a gang bid whose need dropped. The ACCEPTED/REPLACED event has
 * been sent. */
void mx_match_incoming(mx_engine *e, uint32_t ri);
/* Re-matches e->reactivate, if set (gang bids whose remaining need fell). */
void mx_run_reactivation(mx_engine *e);
/*
 * Constraint check of a (bid, ask) pair in a book of precision p at clock now, with the given
 * remaining quantities. Returns a bit mask of the failing constraints (1 << MX_C_*; MX_C_SELF
 * is not tested here), 0 when eligible; stores the agreement start in *start and the devices
 * the fill would take in *devices.
 */
unsigned mx_pair_fails(const mx_engine *e, const mx_rec *bid, const mx_rec *ask, unsigned p,
                       int64_t now, int64_t bid_rem, int64_t ask_rem, int64_t *start,
                       int64_t *devices);

/* ---- expiry.c ------------------------------------------------------------------------------- */

/* Adds record ri (which has an extension with expires != 0) to the heap. Room was reserved. */
void mx_heap_push(mx_engine *e, uint32_t ri);
/* Removes record ri from the heap, if it is in it. */
void mx_heap_remove(mx_engine *e, uint32_t ri);
/* Expires, in (expiry, sequence) order, every resting record due at e->now. */
void mx_expire_due(mx_engine *e);

/* ---- hash.c --------------------------------------------------------------------------------- */

/*
 * The state hash sum, kept up to date at every change of the resting state (invariant 7):
 * hash_sum + the queued jobs' hashes = the sum of the resting orders' hashes. A resting
 * record's hash is either queued (MX_F_HASHQ) or computed, added to hash_sum and cached in
 * hashes[], so that taking it out again costs a subtraction, not a hash. The engine calls:
 */
/* Record ri has started resting: its hash enters the sum. */
void mx_hash_add(mx_engine *e, uint32_t ri);
/* Record ri, resting, is leaving the book: its hash leaves the sum. */
void mx_hash_remove(mx_engine *e, uint32_t ri);
/* Record ri, resting, is about to change its remaining quantity to `remaining`: the old hash
 * leaves the sum and the new one enters it (none at 0: a used-up maker, retired at once). */
void mx_hash_set_remaining(mx_engine *e, uint32_t ri, int64_t remaining);
/* Hash of resting record ri as the definition computes it (mx_hash_bid/ask of its spec). */
uint64_t mx_hash_of(const mx_engine *e, uint32_t ri);

/* ---- check.c -------------------------------------------------------------------------------- */

/* Runs mx_engine_check and, when it fails in a check build, reports and aborts. */
void mx_check_after_command(mx_engine *e);
/* Reports a failed invariant through on_check_failure, then aborts. Never returns. */
_Noreturn void mx_check_failed(const mx_engine *e, const char *what, const char *file, int line);

#endif /* CPX_MATCHING_INT_H */
