/*
 * hash.c — the state hash: one 64-bit number that two engines agree on exactly when their
 * resting books agree.
 *
 * Each resting order contributes a 64-bit hash of its canonical spec (every field that can
 * affect matching, with those that cannot zeroed by mx_canon_*), its remaining quantity and its
 * arrival sequence (which fixes its priority: within a level the FIFO is in sequence order).
 * The contributions are summed modulo 2^64, so the result depends on the set of resting orders
 * and not on pool layout, table order or the history of how the books were built; the count of
 * resting orders is mixed in at the end.
 *
 * Maintained, not recomputed
 * --------------------------
 * Because the sum is a plain wrapping sum, the engine keeps it up to date as the books change:
 * an order that starts resting adds its hash, one that leaves subtracts it, and a change of
 * remaining quantity (a fill, a reduce) subtracts the old hash and adds the new one. Then
 * mx_state_hash() is O(1). The server reads it after every batch it commits; it used to walk
 * every resting order (~70 ns each) on the sequencer's thread.
 *
 * The price is paid on the hot path instead: an order hash is 13 (plain bid) to 28 rounds of
 * absorb(), each two dependent 64-bit multiplies, ~180 cycles of latency one after the other.
 * Three things keep it small:
 *  - Cached hashes. hashes[record] keeps the hash each resting record added, so a record that
 *    leaves (cancel, fill, expiry, replace) costs a subtraction, not a hash. Only an order that
 *    starts resting, or one whose remaining changes, is hashed. (8 bytes per record.)
 *  - A queue. A hash to compute is queued as the list of words its chain absorbs (copied, so
 *    the record may change or go), and MX_HASH_QUEUE of them are computed together, LANES
 *    chains side by side, which the CPU overlaps: several hashes for little more than the
 *    latency of one. mx_state_hash() adds the (at most MX_HASH_QUEUE) queued hashes on the fly,
 *    so it stays O(1) and read-only.
 *  - Amending. An order whose hash is still queued and whose remaining changes has the
 *    remaining word of its job rewritten; one that leaves has its job dropped. Nothing is
 *    hashed twice or hashed for nothing within the queue's window.
 * A record contributes while its remaining is positive: a maker used up by a fill is set to 0
 * (its hash leaves the sum then) and retired at once, within the same command.
 *
 * The maintained sum must be the same number as the definition, bit for bit (hashes are stored
 * and compared after a replay), so:
 *  - mx_state_hash_full() still computes it from scratch, through the public per-order
 *    functions on the spec mx_rec_bid/ask rebuild; check builds compare the two after every
 *    command, and every cached hash with its record's (check.c, invariant 7).
 *  - the queue's words (rec_job) are the words mx_hash_bid/ask absorb, read straight from the
 *    record (plain orders) or from the canonical spec in the extension; both sides build them
 *    with the same functions (head_words, bid_words, ask_words).
 *  - tests pin hash values computed before the sum was maintained (test_matching_rules.c).
 *
 * The per-order functions are public so that another implementation (the tests' reference
 * matcher, or a server rebuilding from its database) can compute the same number.
 *
 * Not a cryptographic hash: it detects divergence, it does not resist forgery.
 */
#include "matching/matching_int.h"

/* Murmur3's 64-bit finaliser: a bijection that mixes every input bit into every output bit. */
static uint64_t fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* What absorbing word v adds to the running hash before mixing. */
static uint64_t premix(uint64_t v)
{
    return UINT64_C(0x9E3779B97F4A7C15) + v * UINT64_C(0xbf58476d1ce4e5b9);
}

/* Absorbs v into running hash h. */
static uint64_t absorb(uint64_t h, uint64_t v)
{
    return fmix(h + premix(v));
}

/* Tags that start an order's hash: "bid", "ask". */
#define TAG_BID UINT64_C(0x6269640a)
#define TAG_ASK UINT64_C(0x61736b0a)

/*
 * An order's hash is a chain: start from its side's tag and absorb, in order, its id, owner,
 * arrival sequence and remaining quantity (HEAD_WORDS words), then the words of its canonical
 * spec (bid_words, ask_words). The public functions and the engine's queue both go through
 * these, so there is one definition.
 */
#define HEAD_WORDS 4

/* Fills w[0..HEAD_WORDS) with an order's id, owner, arrival sequence and remaining. */
static void head_words(uint64_t *w, uint64_t id, uint64_t owner, uint64_t seq, int64_t remaining)
{
    w[0] = id;
    w[1] = owner;
    w[2] = seq;
    w[3] = (uint64_t)remaining;
}

/* The words of a canonical bid after its remaining quantity. Returns how many. */
static unsigned bid_words(const mx_bid *b, uint64_t *w)
{
    unsigned n = 0;
    w[n++] = (uint64_t)b->limit;
    w[n++] = b->regions;
    w[n++] = (uint64_t)b->precision | (uint64_t)b->qty_kind << 8 | (uint64_t)b->tif << 16 |
             (uint64_t)b->n_allow << 24 | (uint64_t)b->hours << 32;
    w[n++] = (uint64_t)b->expiry;
    w[n++] = (uint64_t)b->start_earliest;
    w[n++] = (uint64_t)b->start_latest;
    w[n++] = (uint64_t)b->min_memory_gb | (uint64_t)b->min_tflops << 32;
    w[n++] = (uint64_t)b->max_tflops;
    w[n++] = (uint64_t)b->min_devices_per_provider | (uint64_t)b->min_green_permille << 32;
    for (unsigned i = 0; i < b->n_allow && i < MX_MAX_ALLOW; i++)
        w[n++] = (uint64_t)b->allow[i].vendor | (uint64_t)b->allow[i].model << 32;
    return n;
}

/* The words of a canonical ask after its remaining quantity. Returns how many. */
static unsigned ask_words(const mx_ask *a, uint64_t *w)
{
    unsigned n = 0;
    w[n++] = (uint64_t)a->priced | (uint64_t)a->region << 8 | (uint64_t)a->tif << 16;
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (a->priced >> p & 1) {
            w[n++] = (uint64_t)a->price[p];
            w[n++] = a->tflops[p];
        }
    }
    w[n++] = (uint64_t)a->available_from;
    w[n++] = (uint64_t)a->available_until;
    w[n++] = (uint64_t)a->expiry;
    w[n++] = (uint64_t)a->memory_gb | (uint64_t)a->green_permille << 32;
    w[n++] = (uint64_t)a->vendor | (uint64_t)a->model << 32;
    w[n++] = (uint64_t)a->interconnect;
    w[n++] = (uint64_t)a->min_hours | (uint64_t)a->max_hours << 32;
    return n;
}

_Static_assert(HEAD_WORDS + 9 + MX_MAX_ALLOW <= MX_HASH_WORDS, "a bid's words fit a job");
_Static_assert(HEAD_WORDS + 1 + 2 * MX_NPREC + 7 <= MX_HASH_WORDS, "an ask's words fit a job");

/* The chain: absorbs w[0..n) into tag. */
static uint64_t chain(uint64_t tag, const uint64_t *w, unsigned n)
{
    uint64_t h = tag;
    for (unsigned i = 0; i < n; i++)
        h = absorb(h, w[i]);
    return h;
}

uint64_t mx_hash_bid(const mx_bid *bid, int64_t remaining, uint64_t seq)
{
    mx_bid b = *bid;
    if (b.n_allow > MX_MAX_ALLOW)
        b.n_allow = MX_MAX_ALLOW;
    mx_canon_bid(&b);
    uint64_t w[MX_HASH_WORDS];
    head_words(w, b.id, b.owner, seq, remaining);
    return chain(TAG_BID, w, HEAD_WORDS + bid_words(&b, w + HEAD_WORDS));
}

uint64_t mx_hash_ask(const mx_ask *ask, int64_t remaining, uint64_t seq)
{
    mx_ask a = *ask;
    mx_canon_ask(&a);
    uint64_t w[MX_HASH_WORDS];
    head_words(w, a.id, a.owner, seq, remaining);
    return chain(TAG_ASK, w, HEAD_WORDS + ask_words(&a, w + HEAD_WORDS));
}

uint64_t mx_hash_finish(uint64_t sum, uint64_t count)
{
    return fmix(sum ^ absorb(UINT64_C(0x73746174650a), count)); /* "state" */
}

/* ---- the engine's maintained sum ------------------------------------------------------------ */

/*
 * Fills job j for record ri with remaining quantity `remaining`: tag and words as mx_hash_bid/ask
 * build them for the spec mx_rec_bid/ask rebuild, premixed (the queue absorbs a word as
 * fmix(h + premix(word)), which is absorb(h, word)). A record with an extension holds its
 * canonical spec there (its id and owner are the record's); a plain record's spec is the
 * default one (every constraint and attribute 0) with the fields the record keeps, which is
 * already canonical (not GTD: expiry 0; no gang, no allow entries; one priced precision), so
 * its zero words premix to a constant.
 */
static void rec_job(const mx_engine *e, uint32_t ri, int64_t remaining, mx_hash_job *j)
{
    const mx_rec *r = &e->recs[ri];
    uint64_t *w = j->w;
    j->rec = ri;
    if (r->ext != MX_NIL) {
        head_words(w, r->id, r->owner, r->seq, remaining);
        j->tag = r->side == MX_BID ? TAG_BID : TAG_ASK;
        unsigned n =
            HEAD_WORDS + (r->side == MX_BID ? bid_words(&e->exts[r->ext].spec.bid, w + HEAD_WORDS)
                                            : ask_words(&e->exts[r->ext].spec.ask, w + HEAD_WORDS));
        for (unsigned i = 0; i < n; i++)
            w[i] = premix(w[i]);
        j->n = n;
        return;
    }
    w[0] = premix(r->id);
    w[1] = premix(r->owner);
    w[2] = premix(r->seq);
    w[3] = premix((uint64_t)remaining);
    /* then zeros: a bid's expiry, start window, memory/TFLOPS, max TFLOPS, gang/green (6); an
     * ask's window, expiry, memory/green, vendor/model, interconnect, hours (7) */
    if (r->side == MX_BID) {
        j->tag = TAG_BID;
        w[4] = premix((uint64_t)r->price);
        w[5] = premix(UINT64_C(1) << r->region);
        w[6] = premix((uint64_t)r->prec | (uint64_t)r->qty_kind << 8 | (uint64_t)r->tif << 16 |
                      (uint64_t)r->size << 32);
        j->n = HEAD_WORDS + 3 + 6;
    } else {
        j->tag = TAG_ASK;
        w[4] = premix((uint64_t)1 << r->prec | (uint64_t)r->region << 8 | (uint64_t)r->tif << 16);
        w[5] = premix((uint64_t)r->price);
        w[6] = premix(r->size);
        j->n = HEAD_WORDS + 3 + 7;
    }
#pragma GCC unroll 7
    for (unsigned i = HEAD_WORDS + 3; i < HEAD_WORDS + 3 + 7; i++)
        w[i] = premix(0); /* (one more than a bid uses: harmless, and no bound to test) */
}

/* Lanes computed side by side: enough to keep the multiplier busy while each lane waits for
 * its previous round, few enough to stay in registers. */
#define LANES 4

/*
 * Computes the hashes of jobs j[0..k) (k <= LANES) into out[]. Their chains are independent, so
 * they run in lockstep, one word of every lane per round, unrolled over the lanes: the CPU
 * overlaps the lanes' multiply chains, so LANES hashes cost little more than one. Up to the
 * shortest job every lane runs every round; after that a lane past its job's length (or past
 * k) computes on stale words and its result is discarded by a select, not a branch (plain
 * bids and asks differ by one word, so a branch would mispredict).
 */
static void lanes_hash(const mx_hash_job *j, unsigned k, uint64_t *out)
{
    uint64_t h[LANES];
    uint32_t n[LANES], shortest = MX_HASH_WORDS, longest = 0;
    for (unsigned l = 0; l < LANES; l++) {
        h[l] = j[l].tag;
        n[l] = l < k ? j[l].n : 0;
        shortest = n[l] < shortest ? n[l] : shortest;
        longest = n[l] > longest ? n[l] : longest;
    }
    uint32_t i = 0;
    for (; i < shortest; i++) {
#pragma GCC unroll 4
        for (unsigned l = 0; l < LANES; l++)
            h[l] = fmix(h[l] + j[l].w[i]);
    }
    for (; i < longest; i++) {
#pragma GCC unroll 4
        for (unsigned l = 0; l < LANES; l++) {
            uint64_t x = fmix(h[l] + j[l].w[i]);
            h[l] = i < n[l] ? x : h[l];
        }
    }
#pragma GCC unroll 4
    for (unsigned l = 0; l < LANES; l++)
        out[l] = h[l];
}

/* Computes the hashes of jobs j[0..k) into h[] (room for MX_HASH_QUEUE), LANES at a time. */
static void jobs_hash(const mx_hash_job *j, unsigned k, uint64_t *h)
{
    for (unsigned l = 0; l < k; l += LANES)
        lanes_hash(j + l, k - l < LANES ? k - l : LANES, h + l);
}

_Static_assert(MX_HASH_QUEUE % LANES == 0, "the queue is whole groups of lanes");

/* Computes every queued hash into hash_sum and the records' cached hashes. */
static void flush(mx_engine *e)
{
    uint64_t h[MX_HASH_QUEUE];
    jobs_hash(e->hash_job, e->hash_jobs, h);
    for (unsigned l = 0; l < e->hash_jobs; l++) {
        uint32_t ri = e->hash_job[l].rec;
        e->hashes[ri] = h[l];
        e->recs[ri].flags &= ~MX_F_HASHQ;
        e->hash_sum += h[l];
    }
    e->hash_jobs = 0;
}

/* Queues the hash of record ri with remaining `remaining` (> 0). */
static void enqueue(mx_engine *e, uint32_t ri, int64_t remaining)
{
    if (e->hash_jobs == MX_HASH_QUEUE)
        flush(e);
    rec_job(e, ri, remaining, &e->hash_job[e->hash_jobs++]);
    e->recs[ri].flags |= MX_F_HASHQ;
}

/* The queued job of record ri (it has one). */
static mx_hash_job *job_of(mx_engine *e, uint32_t ri)
{
    unsigned l = 0;
    while (e->hash_job[l].rec != ri)
        l++;
    return &e->hash_job[l];
}

/* Drops the contribution of record ri: its queued job (never computed), or its cached hash.
 * Its cached hash is then 0, which is what it contributes (a record set to 0 remaining stays
 * linked until it is retired, later in the same command). */
static void drop(mx_engine *e, uint32_t ri)
{
    mx_rec *r = &e->recs[ri];
    if (r->flags & MX_F_HASHQ) {
        *job_of(e, ri) = e->hash_job[--e->hash_jobs];
        r->flags &= ~MX_F_HASHQ;
    } else {
        e->hash_sum -= e->hashes[ri];
    }
    e->hashes[ri] = 0;
}

void mx_hash_add(mx_engine *e, uint32_t ri)
{
    enqueue(e, ri, e->recs[ri].remaining);
}

void mx_hash_remove(mx_engine *e, uint32_t ri)
{
    drop(e, ri);
}

void mx_hash_set_remaining(mx_engine *e, uint32_t ri, int64_t remaining)
{
    if (e->recs[ri].flags & MX_F_HASHQ && remaining != 0) {
        job_of(e, ri)->w[3] = premix((uint64_t)remaining); /* not computed yet: just amend */
        return;
    }
    drop(e, ri);
    if (remaining != 0)
        enqueue(e, ri, remaining);
}

uint64_t mx_state_hash(const mx_engine *e)
{
    uint64_t h[MX_HASH_QUEUE], sum = e->hash_sum;
    jobs_hash(e->hash_job, e->hash_jobs, h);
    for (unsigned l = 0; l < e->hash_jobs; l++)
        sum += h[l];
    return mx_hash_finish(sum, e->resting);
}

uint64_t mx_hash_of(const mx_engine *e, uint32_t ri)
{
    const mx_rec *r = &e->recs[ri];
    if (r->side == MX_BID) {
        mx_bid b;
        mx_rec_bid(e, ri, &b);
        return mx_hash_bid(&b, r->remaining, r->seq);
    }
    mx_ask a;
    mx_rec_ask(e, ri, &a);
    return mx_hash_ask(&a, r->remaining, r->seq);
}

uint64_t mx_state_hash_full(const mx_engine *e)
{
    uint64_t sum = 0;
    for (uint32_t ri = 0; ri < e->rec_top; ri++)
        if (e->recs[ri].flags & MX_F_LINKED)
            sum += mx_hash_of(e, ri);
    return mx_hash_finish(sum, e->resting);
}
