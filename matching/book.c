/*
 * book.c — books, their price levels, and the FIFO queues inside levels.
 *
 * A book is keyed by (precision, region) and has two sides. Each side keeps its non-empty price
 * levels in an AVL tree ordered by price, and caches its best level (the lowest ask, the
 * highest bid), so that:
 *
 *   best price                  O(1)       (sides[].best)
 *   find or create a level      O(log L)   (tree descent; L = levels on that side)
 *   remove an emptied level     O(log L)
 *   next level in priority      O(1) amortised (in-order successor through parent links)
 *   depth, top N levels         O(N)
 *
 * Why a tree and not a ladder over ticks: prices are int64 micro-CNY with no tick grid and the
 * compute books are sparse, so a dense array would be either huge or a second structure behind
 * a window. A tree of levels is exact for every price and the levels are few (hundreds or
 * thousands), small (56 bytes) and hot, so the descent stays in cache. The tree is intrusive:
 * left/right/parent are level indices in the level itself, and deleting a level relinks nodes
 * rather than moving keys, because nodes of the FIFO point at their level by index.
 *
 * Inside a level, nodes form a doubly linked FIFO in arrival order (oldest at the head), so
 * appending, and unlinking any node (cancel, fill, expiry), is O(1) with no scan. Each level
 * also keeps the aggregate quantities of its nodes (devices and TFLOPS, see mx_level_info), kept
 * exact on every change, so that depth never walks orders.
 *
 * A record with several nodes (a bid in several regions, an ask in several precisions) is in
 * several levels of several books at once; mx_set_remaining() updates all of them, so every
 * book sees the same shared remaining quantity.
 */
#include "matching/matching_int.h"

/* ---- level pool ----------------------------------------------------------------------------- */

/* Hands out a level (the command reserved room). Returns its index. */
static uint32_t level_alloc(mx_engine *e)
{
    uint32_t lv;
    if (e->level_free != MX_NIL) {
        lv = e->level_free;
        e->level_free = e->levels[lv].left;
    } else {
        lv = e->level_top++;
    }
    e->level_live++;
    return lv;
}

/* Returns level lv (out of its tree) to the free list. */
static void level_release(mx_engine *e, uint32_t lv)
{
    e->levels[lv].left = e->level_free;
    e->level_free = lv;
    e->level_live--;
}

/* Hands out a secondary node of record ri (the command reserved room). Returns its index. */
static uint32_t node_alloc(mx_engine *e, uint32_t ri)
{
    uint32_t n;
    if (e->node_free != MX_NIL) {
        n = e->node_free;
        e->node_free = e->nodes[n].more;
    } else {
        n = e->node_top++;
    }
    e->node_live++;
    e->nodes[n].rec = ri;
    e->nodes[n].more = MX_NIL;
    return n;
}

/* Returns secondary node n (out of its FIFO) to the free list. */
static void node_release(mx_engine *e, uint32_t n)
{
    e->nodes[n].more = e->node_free;
    e->node_free = n;
    e->node_live--;
}

/* ---- AVL tree of levels --------------------------------------------------------------------- */

/* Height of the subtree at lv (0 for none). */
static int height(const mx_engine *e, uint32_t lv)
{
    return lv == MX_NIL ? 0 : e->levels[lv].height;
}

/* Recomputes lv's height from its children's. */
static void fix_height(mx_engine *e, uint32_t lv)
{
    int l = height(e, e->levels[lv].left), r = height(e, e->levels[lv].right);
    e->levels[lv].height = (int8_t)((l > r ? l : r) + 1);
}

/* Makes `child` take `old`'s place under `parent` (the root when parent is MX_NIL). */
static void set_child(mx_engine *e, mx_bookside *s, uint32_t parent, uint32_t old, uint32_t child)
{
    if (parent == MX_NIL)
        s->root = child;
    else if (e->levels[parent].left == old)
        e->levels[parent].left = child;
    else
        e->levels[parent].right = child;
    if (child != MX_NIL)
        e->levels[child].parent = parent;
}

/* Rotates x's right child up into x's place. Returns the new subtree root. */
static uint32_t rotate_left(mx_engine *e, mx_bookside *s, uint32_t x)
{
    mx_level *L = e->levels;
    uint32_t y = L[x].right, b = L[y].left;
    set_child(e, s, L[x].parent, x, y);
    L[x].right = b;
    if (b != MX_NIL)
        L[b].parent = x;
    L[y].left = x;
    L[x].parent = y;
    fix_height(e, x);
    fix_height(e, y);
    return y;
}

/* Rotates x's left child up into x's place. Returns the new subtree root. */
static uint32_t rotate_right(mx_engine *e, mx_bookside *s, uint32_t x)
{
    mx_level *L = e->levels;
    uint32_t y = L[x].left, b = L[y].right;
    set_child(e, s, L[x].parent, x, y);
    L[x].left = b;
    if (b != MX_NIL)
        L[b].parent = x;
    L[y].right = x;
    L[x].parent = y;
    fix_height(e, x);
    fix_height(e, y);
    return y;
}

/* Restores heights and balance from lv up, stopping where a subtree's height is unchanged. */
static void rebalance(mx_engine *e, mx_bookside *s, uint32_t lv)
{
    while (lv != MX_NIL) {
        mx_level *L = e->levels;
        int old = L[lv].height;
        fix_height(e, lv);
        int bf = height(e, L[lv].left) - height(e, L[lv].right);
        if (bf > 1) {
            uint32_t l = L[lv].left;
            if (height(e, L[l].left) < height(e, L[l].right))
                rotate_left(e, s, l);
            lv = rotate_right(e, s, lv);
        } else if (bf < -1) {
            uint32_t r = L[lv].right;
            if (height(e, L[r].right) < height(e, L[r].left))
                rotate_right(e, s, r);
            lv = rotate_left(e, s, lv);
        }
        if (L[lv].height == old)
            return;
        lv = L[lv].parent;
    }
}

/* Lowest-priced level under lv. */
static uint32_t subtree_min(const mx_engine *e, uint32_t lv)
{
    while (e->levels[lv].left != MX_NIL)
        lv = e->levels[lv].left;
    return lv;
}

/* Highest-priced level under lv. */
static uint32_t subtree_max(const mx_engine *e, uint32_t lv)
{
    while (e->levels[lv].right != MX_NIL)
        lv = e->levels[lv].right;
    return lv;
}

/* In-order successor (next higher price), or MX_NIL. */
static uint32_t tree_next(const mx_engine *e, uint32_t lv)
{
    if (e->levels[lv].right != MX_NIL)
        return subtree_min(e, e->levels[lv].right);
    uint32_t p = e->levels[lv].parent;
    while (p != MX_NIL && e->levels[p].right == lv) {
        lv = p;
        p = e->levels[p].parent;
    }
    return p;
}

/* In-order predecessor (next lower price), or MX_NIL. */
static uint32_t tree_prev(const mx_engine *e, uint32_t lv)
{
    if (e->levels[lv].left != MX_NIL)
        return subtree_max(e, e->levels[lv].left);
    uint32_t p = e->levels[lv].parent;
    while (p != MX_NIL && e->levels[p].left == lv) {
        lv = p;
        p = e->levels[p].parent;
    }
    return p;
}

uint32_t mx_level_next(const mx_engine *e, uint32_t lv)
{
    return e->levels[lv].is_ask ? tree_next(e, lv) : tree_prev(e, lv);
}

/* Finds the level at `price` on book side sidx, creating it (empty) when missing. Returns its
 * index. */
static uint32_t level_get(mx_engine *e, uint32_t sidx, int64_t price, unsigned prec,
                          unsigned region, unsigned is_ask)
{
    mx_bookside *s = &e->sides[sidx];
    uint32_t parent = MX_NIL, *link = &s->root;
    while (*link != MX_NIL) {
        parent = *link;
        mx_level *p = &e->levels[parent];
        if (price == p->price)
            return parent;
        link = price < p->price ? &p->left : &p->right;
    }
    uint32_t lv = level_alloc(e);
    e->levels[lv] = (mx_level){ .price = price,
                                .head = MX_NIL,
                                .tail = MX_NIL,
                                .side = sidx,
                                .left = MX_NIL,
                                .right = MX_NIL,
                                .parent = parent,
                                .height = 1,
                                .prec = (uint8_t)prec,
                                .region = (uint8_t)region,
                                .is_ask = (uint8_t)is_ask };
    *link = lv;
    s->levels++;
    if (s->best == MX_NIL ||
        (is_ask ? price < e->levels[s->best].price : price > e->levels[s->best].price))
        s->best = lv;
    rebalance(e, s, parent);
    return lv;
}

/* Removes the (empty) level z from its tree and frees it. */
static void level_erase(mx_engine *e, uint32_t z)
{
    mx_level *L = e->levels;
    mx_bookside *s = &e->sides[L[z].side];
    if (s->best == z)
        s->best = mx_level_next(e, z);
    uint32_t start;
    if (L[z].left != MX_NIL && L[z].right != MX_NIL) {
        /* Two children: the successor y (leftmost of the right subtree) takes z's place. */
        uint32_t y = subtree_min(e, L[z].right);
        if (L[y].parent == z) {
            start = y;
        } else {
            start = L[y].parent;
            set_child(e, s, start, y, L[y].right);
            L[y].right = L[z].right;
            L[L[y].right].parent = y;
        }
        set_child(e, s, L[z].parent, z, y);
        L[y].left = L[z].left;
        L[L[y].left].parent = y;
        L[y].height = L[z].height;
    } else {
        uint32_t child = L[z].left != MX_NIL ? L[z].left : L[z].right;
        start = L[z].parent;
        set_child(e, s, start, z, child);
    }
    rebalance(e, s, start);
    s->levels--;
    level_release(e, z);
}

/* ---- FIFO of a level ------------------------------------------------------------------------ */

/* Queues node `ref` at the tail of level lv. */
static void fifo_append(mx_engine *e, uint32_t lv, uint32_t ref)
{
    mx_level *L = &e->levels[lv];
    mx_link *k = mx_link_of(e, ref);
    k->prev = L->tail;
    k->next = MX_NIL;
    k->level = lv;
    if (L->tail != MX_NIL)
        mx_link_of(e, L->tail)->next = ref;
    else
        L->head = ref;
    L->tail = ref;
    L->count++;
}

/* Takes node `ref` out of its level's FIFO (the level may become empty). */
static void fifo_unlink(mx_engine *e, uint32_t ref)
{
    mx_link *k = mx_link_of(e, ref);
    mx_level *L = &e->levels[k->level];
    if (k->prev != MX_NIL)
        mx_link_of(e, k->prev)->next = k->next;
    else
        L->head = k->next;
    if (k->next != MX_NIL)
        mx_link_of(e, k->next)->prev = k->prev;
    else
        L->tail = k->prev;
    L->count--;
    *k = (mx_link){ MX_NIL, MX_NIL, MX_NIL };
}

/* ---- aggregates ----------------------------------------------------------------------------- */

void mx_contribution(const mx_engine *e, const mx_rec *r, unsigned p, int64_t rem,
                     uint64_t *devices, uint64_t *tflops)
{
    if (r->side == MX_ASK) {
        *devices = (uint64_t)rem;
        *tflops = (uint64_t)rem * mx_ask_tflops(e, r, p);
    } else if (r->qty_kind == MX_QTY_DEVICES) {
        *devices = (uint64_t)rem;
        *tflops = 0;
    } else {
        *devices = 0;
        *tflops = (uint64_t)rem;
    }
}

/* Adds (sign +1) or subtracts (sign -1) record r's contribution with remaining rem to level lv. */
static void level_account(mx_engine *e, uint32_t lv, const mx_rec *r, int64_t rem, int sign)
{
    mx_level *L = &e->levels[lv];
    uint64_t d, t;
    mx_contribution(e, r, L->prec, rem, &d, &t);
    if (sign > 0) {
        L->devices += d;
        L->tflops += t;
    } else {
        L->devices -= d;
        L->tflops -= t;
    }
}

/* ---- records in books ----------------------------------------------------------------------- */

/* Queues node `ref` of record ri at `price` in book (prec, region). */
static void insert_node(mx_engine *e, uint32_t ri, uint32_t ref, unsigned prec, unsigned region,
                        int64_t price)
{
    const mx_rec *r = &e->recs[ri];
    uint32_t sidx = mx_side_index(e, prec, region, r->side);
    uint32_t lv = level_get(e, sidx, price, prec, region, r->side);
    fifo_append(e, lv, ref);
    level_account(e, lv, r, r->remaining, +1);
    e->sides[sidx].orders++;
}

void mx_book_insert(mx_engine *e, uint32_t ri)
{
    mx_rec *r = &e->recs[ri];
    if (r->ext == MX_NIL) {
        insert_node(e, ri, ri, r->prec, r->region, r->price);
        return;
    }
    const mx_ext *x = &e->exts[r->ext];
    uint64_t mask = r->side == MX_BID ? x->spec.bid.regions : x->spec.ask.priced;
    uint32_t last = MX_NIL; /* last secondary node linked so far */
    for (; mask != 0; mask &= mask - 1) {
        unsigned bit = (unsigned)__builtin_ctzll(mask);
        uint32_t ref = ri;
        if (bit != (r->side == MX_BID ? r->region : r->prec)) {
            uint32_t n = node_alloc(e, ri);
            if (last == MX_NIL)
                e->exts[r->ext].more = n;
            else
                e->nodes[last].more = n;
            last = n;
            ref = n | MX_NODE_TAG;
        }
        if (r->side == MX_BID)
            insert_node(e, ri, ref, r->prec, bit, r->price);
        else
            insert_node(e, ri, ref, bit, r->region, x->spec.ask.price[bit]);
    }
}

void mx_book_remove(mx_engine *e, uint32_t ri)
{
    const mx_rec *r = &e->recs[ri];
    uint32_t ref = ri;
    while (ref != MX_NIL) {
        uint32_t next = mx_next_node(e, ri, ref);
        uint32_t lv = mx_link_of(e, ref)->level;
        level_account(e, lv, r, r->remaining, -1);
        e->sides[e->levels[lv].side].orders--;
        fifo_unlink(e, ref);
        if (e->levels[lv].count == 0)
            level_erase(e, lv);
        if (ref & MX_NODE_TAG)
            node_release(e, ref & ~MX_NODE_TAG);
        ref = next;
    }
    if (r->ext != MX_NIL)
        e->exts[r->ext].more = MX_NIL;
}

void mx_set_remaining(mx_engine *e, uint32_t ri, int64_t remaining)
{
    mx_rec *r = &e->recs[ri];
    if (r->flags & MX_F_LINKED) {
        mx_hash_set_remaining(e, ri, remaining);
        for (uint32_t ref = ri; ref != MX_NIL; ref = mx_next_node(e, ri, ref)) {
            uint32_t lv = mx_link_of(e, ref)->level;
            level_account(e, lv, r, r->remaining, -1);
            level_account(e, lv, r, remaining, +1);
        }
    }
    r->remaining = remaining;
}

/* ---- market data ---------------------------------------------------------------------------- */

size_t mx_depth(const mx_engine *e, unsigned precision, unsigned region, mx_side side,
                mx_level_info *out, size_t max)
{
    if (precision >= MX_NPREC || region >= e->nregions || (unsigned)side > MX_ASK)
        return 0;
    size_t n = 0;
    uint32_t lv = e->sides[mx_side_index(e, precision, region, side)].best;
    for (; lv != MX_NIL && n < max; lv = mx_level_next(e, lv), n++) {
        const mx_level *L = &e->levels[lv];
        out[n] = (mx_level_info){
            .price = L->price, .devices = L->devices, .tflops = L->tflops, .orders = L->count
        };
    }
    return n;
}

bool mx_best(const mx_engine *e, unsigned precision, unsigned region, mx_side side,
             mx_level_info *out)
{
    return mx_depth(e, precision, region, side, out, 1) == 1;
}
