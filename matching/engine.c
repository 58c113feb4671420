/*
 * engine.c — the engine's life cycle, its pools, the id table, and the commands.
 *
 * Pools
 * -----
 * Records, extensions, secondary nodes and levels each live in an array the engine grows by
 * half its size when full (realloc through the caller's allocator), carved at a 64-byte
 * boundary inside the allocator's block so that records and levels do not straddle cache
 * lines. Items are named by 32-bit index, so growth never invalidates a reference. Freed items
 * go on a per-pool free list threaded through a field the free item does not need; `live`
 * counts the items handed out, so cap - live is what can still be had without growing.
 *
 * A command never fails half-way for lack of memory: before it changes anything, reserve()
 * grows every pool to hold the worst case of one command (one record, one extension, 63 more
 * nodes and 64 new levels for a bid in 64 regions, one heap entry, one more id in the table),
 * and the cached order hashes of the state hash (hash.c) to one per record of the pool.
 * Expiries, cancels and fills only free. So either the command runs to the end or it is
 * rejected with MX_R_NO_MEMORY having changed nothing.
 *
 * The id table
 * ------------
 * A chained hash table: buckets[] holds the first record index of each chain, records link the
 * chain through id_next. Fibonacci hashing of the 64-bit id picks the bucket, so sequential ids
 * spread perfectly. The table doubles when the resting count exceeds the bucket count (load
 * <= 1), which keeps chains short at 4 bytes per bucket. Removal walks the (short) chain.
 *
 * Commands
 * --------
 * Every public command runs begin() (check and advance the clock, expire what is due), its own
 * work, and finish() (in check builds: every invariant). The work validates everything first
 * and emits REJECTED for a bad command; the rest is in match.c.
 */
#include <stdlib.h>
#include <string.h>

#include "matching/matching_int.h"

/* ---- allocation ----------------------------------------------------------------------------- */

/* The default allocator: libc realloc (ctx unused). */
static void *libc_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

/* The default allocator: libc free (ctx unused). */
static void libc_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

/* Resizes *arr to hold `want` items of `elem` bytes. Returns 1, or 0 (arr untouched) on
 * failure. */
static int resize(mx_engine *e, void **arr, size_t elem, size_t want)
{
    if (want > MX_MAX_INDEX || want > SIZE_MAX / elem)
        return 0;
    void *p = e->alloc.realloc(e->alloc.ctx, *arr, want * elem);
    if (p == NULL)
        return 0;
    *arr = p;
    return 1;
}

/* Pools are aligned to a cache line, so that a 64-byte record never straddles two lines (the
 * allocator only promises 16 bytes: glibc hands out large blocks at page + 16). */
#define POOL_ALIGN 64

/* Resizes a pool from `old` to `want` items of `elem` bytes. *mem is the allocator's block, *arr
 * the array inside it at a POOL_ALIGN boundary; items 0..old-1 are kept. Returns 1, or 0 (both
 * untouched) on failure. */
static int resize_aligned(mx_engine *e, void **mem, void **arr, size_t elem, size_t old,
                          size_t want)
{
    if (want > MX_MAX_INDEX || want > (SIZE_MAX - POOL_ALIGN) / elem)
        return 0;
    size_t old_off = *mem == NULL ? 0 : (size_t)((char *)*arr - (char *)*mem);
    char *p = e->alloc.realloc(e->alloc.ctx, *mem, want * elem + POOL_ALIGN - 1);
    if (p == NULL)
        return 0;
    size_t off = (size_t)(-(uintptr_t)p & (POOL_ALIGN - 1));
    if (off != old_off)
        memmove(p + off, p + old_off, old * elem); /* realloc kept the bytes at old_off */
    *mem = p;
    *arr = p + off;
    return 1;
}

/* Grows a pool (by half, or to what is needed) so that cap - live >= need. Returns 1 on
 * success, 0 when out of memory. */
static int pool_reserve(mx_engine *e, void **mem, void **arr, uint32_t *cap, uint32_t live,
                        size_t elem, uint32_t need)
{
    if ((uint64_t)*cap - live >= need)
        return 1;
    uint64_t want = (uint64_t)*cap + *cap / 2;
    if (want < (uint64_t)live + need)
        want = (uint64_t)live + need;
    if (want < 16)
        want = 16;
    if (want > MX_MAX_INDEX)
        want = MX_MAX_INDEX;
    if (want - live < need || !resize_aligned(e, mem, arr, elem, *cap, (size_t)want))
        return 0;
    *cap = (uint32_t)want;
    return 1;
}

/* pool_reserve for pool `name` of engine e. */
#define POOL_RESERVE(e, name, cap, live, need)                                                     \
    pool_reserve((e), &(e)->name##_mem, (void **)&(e)->name, &(e)->cap, (live), sizeof *(e)->name, \
                 (need))

/* ---- records and extensions ----------------------------------------------------------------- */

/* Hands out a record. The caller reserved room. Returns its index. */
static uint32_t rec_alloc(mx_engine *e)
{
    uint32_t ri;
    if (e->rec_free != MX_NIL) {
        ri = e->rec_free;
        e->rec_free = e->recs[ri].id_next;
    } else {
        ri = e->rec_top++;
    }
    e->rec_live++;
    return ri;
}

/* Returns record ri to the free list (it must be out of every structure). */
static void rec_release(mx_engine *e, uint32_t ri)
{
    e->recs[ri].id = 0;
    e->recs[ri].flags = 0;
    e->recs[ri].id_next = e->rec_free;
    e->rec_free = ri;
    e->rec_live--;
}

/* Hands out an extension (the command reserved room). Returns its index. */
static uint32_t ext_alloc(mx_engine *e)
{
    uint32_t x;
    if (e->ext_free != MX_NIL) {
        x = e->ext_free;
        e->ext_free = e->exts[x].more;
    } else {
        x = e->ext_top++;
    }
    e->ext_live++;
    return x;
}

/* Returns extension x to the free list. */
static void ext_release(mx_engine *e, uint32_t x)
{
    e->exts[x].more = e->ext_free;
    e->ext_free = x;
    e->ext_live--;
}

/* ---- id table ------------------------------------------------------------------------------- */

/* Bucket of id in a table of 2^bits buckets (Fibonacci hashing). */
static uint32_t bucket_of(uint64_t id, unsigned bits)
{
    return (uint32_t)((id * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

uint32_t mx_find(const mx_engine *e, uint64_t id)
{
    uint32_t ri = e->buckets[bucket_of(id, e->bucket_bits)];
    while (ri != MX_NIL && e->recs[ri].id != id)
        ri = e->recs[ri].id_next;
    return ri;
}

/* Adds record ri to the id table (its id is not there yet). */
static void table_insert(mx_engine *e, uint32_t ri)
{
    uint32_t *head = &e->buckets[bucket_of(e->recs[ri].id, e->bucket_bits)];
    e->recs[ri].id_next = *head;
    *head = ri;
}

/* Removes record ri, which is in it, from the id table. */
static void table_remove(mx_engine *e, uint32_t ri)
{
    uint32_t *link = &e->buckets[bucket_of(e->recs[ri].id, e->bucket_bits)];
    while (*link != ri)
        link = &e->recs[*link].id_next;
    *link = e->recs[ri].id_next;
    e->recs[ri].id_next = MX_NIL;
}

/* Allocates a bucket array of 2^bits empty buckets. Returns NULL when out of memory. */
static uint32_t *buckets_new(mx_engine *e, unsigned bits)
{
    uint32_t *b = NULL;
    if (!resize(e, (void **)&b, sizeof *b, (size_t)1 << bits))
        return NULL;
    memset(b, 0xff, ((size_t)1 << bits) * sizeof *b);
    return b;
}

/* Doubles the id table when it would exceed load 1. Returns 1, or 0 when out of memory (the
 * table is then unchanged, still correct, just fuller). */
static int table_reserve(mx_engine *e)
{
    if ((uint64_t)e->resting + 1 <= (UINT64_C(1) << e->bucket_bits))
        return 1;
    if (e->bucket_bits >= 31)
        return 1; /* as large as indices allow: chains just get longer */
    unsigned bits = e->bucket_bits + 1;
    uint32_t *nb = buckets_new(e, bits);
    if (nb == NULL)
        return 0;
    for (uint32_t b = 0; b < (UINT32_C(1) << e->bucket_bits); b++) {
        uint32_t ri = e->buckets[b];
        while (ri != MX_NIL) {
            uint32_t next = e->recs[ri].id_next;
            uint32_t *head = &nb[bucket_of(e->recs[ri].id, bits)];
            e->recs[ri].id_next = *head;
            *head = ri;
            ri = next;
        }
    }
    e->alloc.free(e->alloc.ctx, e->buckets);
    e->buckets = nb;
    e->bucket_bits = bits;
    return 1;
}

/* ---- reservation ---------------------------------------------------------------------------- */

/* Worst case of one command (see the essay). */
#define RESERVE_NODES  (MX_MAX_REGIONS - 1)
#define RESERVE_LEVELS MX_MAX_REGIONS

/* Keeps the cached order hashes (one per record) as many as the records. Returns 1, or 0 when
 * memory is short. */
static int hashes_reserve(mx_engine *e)
{
    if (e->hashes_cap >= e->rec_cap)
        return 1;
    if (!resize(e, (void **)&e->hashes, sizeof *e->hashes, e->rec_cap))
        return 0;
    e->hashes_cap = e->rec_cap;
    return 1;
}

/* Grows every pool for one command. Returns 1, or 0 when memory is short. */
static int reserve(mx_engine *e)
{
    return POOL_RESERVE(e, recs, rec_cap, e->rec_live, 1) && hashes_reserve(e) &&
           POOL_RESERVE(e, exts, ext_cap, e->ext_live, 1) &&
           POOL_RESERVE(e, nodes, node_cap, e->node_live, RESERVE_NODES) &&
           POOL_RESERVE(e, levels, level_cap, e->level_live, RESERVE_LEVELS) &&
           POOL_RESERVE(e, heap, heap_cap, e->heap_len, 1) && table_reserve(e);
}

/* Room for a FOK dry run to mark every resting record. Returns 1, or 0 when memory is short. */
static int reserve_marks(mx_engine *e)
{
    return POOL_RESERVE(e, marks, marks_cap, 0, e->resting);
}

/* ---- life cycle ----------------------------------------------------------------------------- */

mx_engine *mx_engine_create(const mx_config *cfg)
{
    if (cfg == NULL || cfg->regions == 0 || cfg->regions > MX_MAX_REGIONS ||
        (unsigned)cfg->stp > MX_STP_SKIP)
        return NULL;
    mx_allocator alloc = { libc_realloc, libc_free, NULL };
    if (cfg->alloc != NULL) {
        if (cfg->alloc->realloc == NULL || cfg->alloc->free == NULL)
            return NULL;
        alloc = *cfg->alloc;
    }
    mx_engine *e = alloc.realloc(alloc.ctx, NULL, sizeof *e);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    e->alloc = alloc;
    e->sink = cfg->sink;
    e->sink_ctx = cfg->sink_ctx;
    e->on_check_failure = cfg->on_check_failure;
    e->check_ctx = cfg->check_ctx;
    e->nregions = cfg->regions;
    e->stp = cfg->stp;
    e->max_orders = cfg->max_orders;
    e->rec_free = e->ext_free = e->node_free = e->level_free = MX_NIL;
    e->reactivate = MX_NIL;

    size_t expected = cfg->expected_orders ? cfg->expected_orders : 64;
    if (expected > MX_MAX_INDEX / 2)
        expected = MX_MAX_INDEX / 2;
    unsigned bits = 4;
    while (((size_t)1 << bits) < expected && bits < 31)
        bits++;
    size_t nsides = (size_t)MX_NPREC * cfg->regions * 2;
    uint32_t want_recs = (uint32_t)expected + 2; /* + the incoming order */
    e->bucket_bits = bits;
    int ok = resize(e, (void **)&e->sides, sizeof *e->sides, nsides) &&
             (e->buckets = buckets_new(e, bits)) != NULL &&
             POOL_RESERVE(e, recs, rec_cap, 0, want_recs) && reserve(e);
    if (!ok) {
        mx_engine_free(e);
        return NULL;
    }
    for (size_t i = 0; i < nsides; i++)
        e->sides[i] = (mx_bookside){ MX_NIL, MX_NIL, 0, 0 };
    return e;
}

void mx_engine_free(mx_engine *e)
{
    if (e == NULL)
        return;
    void *arrays[] = { e->sides,      e->buckets,  e->recs_mem,  e->exts_mem, e->nodes_mem,
                       e->levels_mem, e->heap_mem, e->marks_mem, e->hashes };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        e->alloc.free(e->alloc.ctx, arrays[i]);
    mx_allocator alloc = e->alloc;
    alloc.free(alloc.ctx, e);
}

/* ---- events --------------------------------------------------------------------------------- */

void mx_emit(mx_engine *e, const mx_event *ev)
{
    if (e->sink != NULL)
        e->sink(e->sink_ctx, ev);
}

void mx_emit_rec(mx_engine *e, uint32_t ri, mx_event_kind kind, mx_reason reason)
{
    const mx_rec *r = &e->recs[ri];
    mx_event ev = { .kind = (uint8_t)kind,
                    .reason = (uint8_t)reason,
                    .side = (uint8_t)r->side,
                    .id = r->id,
                    .owner = r->owner,
                    .remaining = r->remaining,
                    .now = e->now };
    mx_emit(e, &ev);
}

/* Emits REJECTED for a command about (id, side, owner) and returns the reason. */
static mx_reason reject(mx_engine *e, mx_reason reason, uint64_t id, unsigned side, uint64_t owner)
{
    mx_event ev = { .kind = MX_EV_REJECTED,
                    .reason = (uint8_t)reason,
                    .side = (uint8_t)side,
                    .id = id,
                    .owner = owner,
                    .now = e->now };
    mx_emit(e, &ev);
    return reason;
}

/* ---- resting and retiring ------------------------------------------------------------------- */

void mx_rest(mx_engine *e, uint32_t ri)
{
    mx_rec *r = &e->recs[ri];
    r->flags |= MX_F_LINKED;
    table_insert(e, ri);
    mx_book_insert(e, ri);
    if (r->ext != MX_NIL && e->exts[r->ext].expires != 0)
        mx_heap_push(e, ri);
    e->resting++;
    mx_hash_add(e, ri);
}

void mx_retire(mx_engine *e, uint32_t ri)
{
    mx_rec *r = &e->recs[ri];
    e->totals.removed[mx_qclass(r)] += (uint64_t)r->remaining;
    if (r->flags & MX_F_LINKED) {
        mx_hash_remove(e, ri);
        mx_book_remove(e, ri);
        table_remove(e, ri);
        mx_heap_remove(e, ri);
        e->resting--;
    }
    if (r->ext != MX_NIL)
        ext_release(e, r->ext);
    rec_release(e, ri);
}

/* ---- creating records from specs ------------------------------------------------------------ */

/* Fills the fields every record has. */
static void rec_init(mx_engine *e, mx_rec *r, uint64_t id, uint64_t owner, unsigned side,
                     unsigned tif, int64_t remaining)
{
    r->link = (mx_link){ MX_NIL, MX_NIL, MX_NIL };
    r->id_next = MX_NIL;
    r->id = id;
    r->owner = owner;
    r->remaining = remaining;
    r->ext = MX_NIL;
    r->seq = ++e->seq;
    r->side = side;
    r->tif = tif;
    r->flags = 0;
}

/* Gives record r an extension with expiry `expires`. Returns the extension. */
static mx_ext *attach_ext(mx_engine *e, mx_rec *r, int64_t expires)
{
    uint32_t x = ext_alloc(e);
    mx_ext *xe = &e->exts[x];
    xe->expires = expires;
    xe->more = MX_NIL;
    xe->heap_pos = MX_NIL;
    r->ext = x;
    return xe;
}

/* Creates the (not yet resting) record of a valid bid. Returns its index. */
static uint32_t create_bid(mx_engine *e, const mx_bid *b)
{
    uint32_t ri = rec_alloc(e);
    mx_rec *r = &e->recs[ri];
    rec_init(e, r, b->id, b->owner, MX_BID, b->tif, b->quantity);
    r->price = b->limit;
    r->size = b->hours;
    r->qty_kind = b->qty_kind;
    r->prec = b->precision;
    r->region = (unsigned)__builtin_ctzll(b->regions);
    if (!mx_bid_is_plain(b)) {
        mx_ext *xe = attach_ext(e, r, mx_bid_expires(b));
        xe->spec.bid = *b;
        mx_canon_bid(&xe->spec.bid);
    }
    e->totals.in[mx_qclass(r)] += (uint64_t)b->quantity;
    return ri;
}

/* Creates the (not yet resting) record of a valid ask. Returns its index. */
static uint32_t create_ask(mx_engine *e, const mx_ask *a)
{
    uint32_t ri = rec_alloc(e);
    mx_rec *r = &e->recs[ri];
    unsigned p = (unsigned)__builtin_ctz(a->priced);
    rec_init(e, r, a->id, a->owner, MX_ASK, a->tif, a->devices);
    r->price = a->price[p];
    r->size = a->tflops[p];
    r->qty_kind = MX_QTY_DEVICES;
    r->prec = p;
    r->region = a->region;
    if (!mx_ask_is_plain(a)) {
        mx_ext *xe = attach_ext(e, r, mx_ask_expires(a));
        xe->spec.ask = *a;
        mx_canon_ask(&xe->spec.ask);
    }
    e->totals.in[MX_Q_ASK_DEVICES] += (uint64_t)a->devices;
    return ri;
}

/* ---- command frame -------------------------------------------------------------------------- */

/* Starts a command at the caller's clock: checks it, advances the engine clock, expires what
 * is due. Returns MX_OK or MX_R_BAD_TIME (nothing done). */
static mx_reason begin(mx_engine *e, int64_t now)
{
    if (now < 0 || now > MX_MAX_TIME)
        return MX_R_BAD_TIME;
    if (now > e->now)
        e->now = now;
    mx_expire_due(e);
    return MX_OK;
}

/* Ends a command: in check builds, verifies every invariant. Returns r. */
static mx_reason finish(mx_engine *e, mx_reason r)
{
#if MATCHING_CHECK_INVARIANTS
    mx_check_after_command(e);
#else
    (void)e;
#endif
    return r;
}

/* Admission common to adds and replaces, after the spec was validated: reserves memory and
 * sequence room. Returns MX_OK or the reason to reject. */
static mx_reason admit(mx_engine *e, unsigned tif)
{
    if (e->seq >= MX_MAX_SEQ)
        return MX_R_FULL;
    if (!reserve(e) || (tif == MX_FOK && !reserve_marks(e)))
        return MX_R_NO_MEMORY;
    return MX_OK;
}

/* Rejects an add when the id is taken or the engine is full. Returns MX_OK or the reason. */
static mx_reason check_new_id(const mx_engine *e, uint64_t id)
{
    if (mx_find(e, id) != MX_NIL)
        return MX_R_DUPLICATE_ID;
    if (e->max_orders != 0 && e->resting >= e->max_orders)
        return MX_R_FULL;
    return MX_OK;
}

/* Finds the target of a replace and checks it is compatible. Returns MX_OK and its index in
 * *ri, or the reason to reject. */
static mx_reason find_replaced(const mx_engine *e, uint64_t id, unsigned side, uint64_t owner,
                               uint32_t *ri)
{
    *ri = mx_find(e, id);
    if (*ri == MX_NIL)
        return MX_R_UNKNOWN_ID;
    if (e->recs[*ri].side != side)
        return MX_R_WRONG_SIDE;
    if (e->recs[*ri].owner != owner)
        return MX_R_OWNER_MISMATCH;
    return MX_OK;
}

/* Adds (or, with replacing, replaces) a bid. Returns MX_OK or the rejection reason. */
static mx_reason do_bid(mx_engine *e, const mx_bid *b, int replacing)
{
    uint32_t old = MX_NIL;
    mx_reason r = replacing ? find_replaced(e, b->id, MX_BID, b->owner, &old) : MX_OK;
    if (r == MX_OK)
        r = mx_check_bid(e, b, e->now);
    if (r == MX_OK && !replacing)
        r = check_new_id(e, b->id);
    if (r == MX_OK)
        r = admit(e, b->tif);
    if (r != MX_OK)
        return reject(e, r, b->id, MX_BID, b->owner);
    if (replacing)
        mx_retire(e, old);
    uint32_t ri = create_bid(e, b);
    mx_emit_rec(e, ri, replacing ? MX_EV_REPLACED : MX_EV_ACCEPTED, MX_OK);
    mx_match_incoming(e, ri);
    return MX_OK;
}

/* Adds (or replaces) an ask. Returns MX_OK or the rejection reason. */
static mx_reason do_ask(mx_engine *e, const mx_ask *a, int replacing)
{
    uint32_t old = MX_NIL;
    mx_reason r = replacing ? find_replaced(e, a->id, MX_ASK, a->owner, &old) : MX_OK;
    if (r == MX_OK)
        r = mx_check_ask(e, a, e->now);
    if (r == MX_OK && !replacing)
        r = check_new_id(e, a->id);
    if (r == MX_OK)
        r = admit(e, a->tif);
    if (r != MX_OK)
        return reject(e, r, a->id, MX_ASK, a->owner);
    if (replacing)
        mx_retire(e, old);
    uint32_t ri = create_ask(e, a);
    mx_emit_rec(e, ri, replacing ? MX_EV_REPLACED : MX_EV_ACCEPTED, MX_OK);
    mx_match_incoming(e, ri);
    return MX_OK;
}

/* ---- public commands ------------------------------------------------------------------------ */

mx_reason mx_submit_bid(mx_engine *e, int64_t now, const mx_bid *bid)
{
    mx_reason r = begin(e, now);
    r = r != MX_OK ? reject(e, r, bid->id, MX_BID, bid->owner) : do_bid(e, bid, 0);
    return finish(e, r);
}

mx_reason mx_submit_ask(mx_engine *e, int64_t now, const mx_ask *ask)
{
    mx_reason r = begin(e, now);
    r = r != MX_OK ? reject(e, r, ask->id, MX_ASK, ask->owner) : do_ask(e, ask, 0);
    return finish(e, r);
}

mx_reason mx_replace_bid(mx_engine *e, int64_t now, const mx_bid *bid)
{
    mx_reason r = begin(e, now);
    r = r != MX_OK ? reject(e, r, bid->id, MX_BID, bid->owner) : do_bid(e, bid, 1);
    return finish(e, r);
}

mx_reason mx_replace_ask(mx_engine *e, int64_t now, const mx_ask *ask)
{
    mx_reason r = begin(e, now);
    r = r != MX_OK ? reject(e, r, ask->id, MX_ASK, ask->owner) : do_ask(e, ask, 1);
    return finish(e, r);
}

mx_reason mx_cancel(mx_engine *e, int64_t now, uint64_t id)
{
    mx_reason r = begin(e, now);
    uint32_t ri = r == MX_OK ? mx_find(e, id) : MX_NIL;
    if (r == MX_OK && ri == MX_NIL)
        r = MX_R_UNKNOWN_ID;
    if (r != MX_OK)
        return finish(e, reject(e, r, id, MX_BID, 0));
    mx_emit_rec(e, ri, MX_EV_CANCELLED, MX_R_USER);
    mx_retire(e, ri);
    return finish(e, MX_OK);
}

/* True when record ri is a bid with a gang constraint (min devices per provider > 1). */
static int is_gang_bid(const mx_engine *e, uint32_t ri)
{
    const mx_rec *r = &e->recs[ri];
    return r->side == MX_BID && r->ext != MX_NIL &&
           e->exts[r->ext].spec.bid.min_devices_per_provider > 1;
}

mx_reason mx_reduce(mx_engine *e, int64_t now, uint64_t id, int64_t remaining)
{
    mx_reason r = begin(e, now);
    uint32_t ri = r == MX_OK ? mx_find(e, id) : MX_NIL;
    if (r == MX_OK && ri == MX_NIL)
        r = MX_R_UNKNOWN_ID;
    else if (r == MX_OK && remaining <= 0)
        r = MX_R_BAD_QUANTITY;
    else if (r == MX_OK && remaining >= e->recs[ri].remaining)
        r = MX_R_NOT_REDUCING;
    if (r != MX_OK) {
        unsigned side = ri == MX_NIL ? MX_BID : e->recs[ri].side;
        uint64_t owner = ri == MX_NIL ? 0 : e->recs[ri].owner;
        return finish(e, reject(e, r, id, side, owner));
    }
    mx_rec *rec = &e->recs[ri];
    e->totals.removed[mx_qclass(rec)] += (uint64_t)(rec->remaining - remaining);
    mx_set_remaining(e, ri, remaining);
    mx_emit_rec(e, ri, MX_EV_REDUCED, MX_OK);
    /* A gang bid that needs fewer devices may now accept smaller asks it skipped before. */
    if (is_gang_bid(e, ri)) {
        e->reactivate = ri;
        mx_run_reactivation(e);
    }
    return finish(e, MX_OK);
}

mx_reason mx_expire(mx_engine *e, int64_t now)
{
    mx_reason r = begin(e, now);
    if (r != MX_OK)
        reject(e, r, 0, MX_BID, 0);
    return finish(e, r);
}

mx_reason mx_apply(mx_engine *e, const mx_command *c)
{
    switch (c->kind) {
    case MX_CMD_BID: return mx_submit_bid(e, c->now, &c->bid);
    case MX_CMD_ASK: return mx_submit_ask(e, c->now, &c->ask);
    case MX_CMD_CANCEL: return mx_cancel(e, c->now, c->id);
    case MX_CMD_REDUCE: return mx_reduce(e, c->now, c->id, c->quantity);
    case MX_CMD_REPLACE_BID: return mx_replace_bid(e, c->now, &c->bid);
    case MX_CMD_REPLACE_ASK: return mx_replace_ask(e, c->now, &c->ask);
    case MX_CMD_EXPIRE: return mx_expire(e, c->now);
    default: return finish(e, reject(e, MX_R_BAD_COMMAND, 0, MX_BID, 0));
    }
}

/* ---- queries -------------------------------------------------------------------------------- */

size_t mx_resting(const mx_engine *e)
{
    return e->resting;
}

int64_t mx_now(const mx_engine *e)
{
    return e->now;
}

size_t mx_memory_bytes(const mx_engine *e)
{
    size_t align = 6 * (POOL_ALIGN - 1); /* six aligned pools */
    return align + sizeof *e + (size_t)MX_NPREC * e->nregions * 2 * sizeof *e->sides +
           (size_t)e->rec_cap * sizeof *e->recs + (size_t)e->ext_cap * sizeof *e->exts +
           (size_t)e->node_cap * sizeof *e->nodes + (size_t)e->level_cap * sizeof *e->levels +
           ((size_t)1 << e->bucket_bits) * sizeof *e->buckets +
           (size_t)e->heap_cap * sizeof *e->heap + (size_t)e->marks_cap * sizeof *e->marks +
           (size_t)e->hashes_cap * sizeof *e->hashes;
}

bool mx_lookup(const mx_engine *e, uint64_t id, mx_order_info *out)
{
    uint32_t ri = id != 0 ? mx_find(e, id) : MX_NIL;
    if (ri == MX_NIL)
        return false;
    const mx_rec *r = &e->recs[ri];
    *out = (mx_order_info){
        .side = (uint8_t)r->side, .owner = r->owner, .remaining = r->remaining, .seq = r->seq
    };
    return true;
}

bool mx_get_bid(const mx_engine *e, uint64_t id, mx_bid *out)
{
    uint32_t ri = id != 0 ? mx_find(e, id) : MX_NIL;
    if (ri == MX_NIL || e->recs[ri].side != MX_BID)
        return false;
    mx_rec_bid(e, ri, out);
    return true;
}

bool mx_get_ask(const mx_engine *e, uint64_t id, mx_ask *out)
{
    uint32_t ri = id != 0 ? mx_find(e, id) : MX_NIL;
    if (ri == MX_NIL || e->recs[ri].side != MX_ASK)
        return false;
    mx_rec_ask(e, ri, out);
    return true;
}
