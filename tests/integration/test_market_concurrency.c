/*
 * Concurrent = sequential (docs/trading.md §5): many clients trading at once against one cpxd
 * (A) end in exactly the state that the same commands give when run one by one, in the order
 * A's sequencer applied them, on a fresh cpxd (B).
 *
 * Eight threads send a few hundred listings, orders (devices and capacity, several precisions,
 * regions, limits, gtc/ioc/fok, constraints) and cancels of their own earlier ones, all at once;
 * one buyer also provides, so self-trade prevention cancels some, and one is short of money, so
 * some of its orders are refused -- all of it decided in sequencer order.
 * The sequencer order is read back from A's ledger: its listing, order and cancel records that a
 * party originated carry the exact signed request, in seq order. B gets the same identities
 * (same keys, so the same ids) and deposits, then each request again, re-signed by the same key,
 * one at a time. Ids come from one counter, so every replayed listing or order must get the id
 * A's ledger gave it (and the cancels, which name ids, then hit the same objects). Finally A and
 * B must agree on every order, listing, agreement (but times), money entry and balance, the
 * engine's state hash, and every book; A's money adds up (available + held + escrow = deposits
 * for each buyer, held = what its open orders hold, escrow = its agreements, all balances sum to
 * zero); both ledgers audit clean.
 *
 * No gtd, no time windows: the engines' clocks differ between A and B, and only expiry and the
 * agreements' start times depend on them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/record.h"
#include "tests/support/live_ledger.h"
#include "tests/support/market_kit.h"
#include "tests/support/testenv.h"

#define NPROV      3
#define NBUY       8
#define THREADS    8
#define PER_THREAD 45

static const char *const regions[] = { "yangtze", "gansu", "ningxia" };
static const char *const precisions[] = { "bf16", "fp16", "int8" };

/* A party: its name (and key file name), roles and deposit. */
struct party {
    char name[16];
    const char *roles;
    const char *deposit; /* CNY, NULL for providers */
    char key_path[CLIENT_PATH_MAX];
    char id[CPX_ID_MAX];
};

static struct party parties[NPROV + NBUY];

static struct party *prov_party(int i)
{
    return &parties[i];
}

static struct party *buy_party(int i)
{
    return &parties[NPROV + i];
}

/* ---- the concurrent phase -------------------------------------------------------------------- */

struct worker {
    int index;
    struct client buyer, provider; /* this thread's own clients (curl handles are per thread) */
    pthread_barrier_t *start;
    uint64_t rng;
    /* ids of its own objects it may cancel */
    char open_ids[PER_THREAD][32];
    bool open_is_listing[PER_THREAD];
    int nopen;
    /* what happened */
    int listings, orders, cancels, insufficient, not_open, failures;
    char first_failure[1024];
};

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
}

static int pick(struct worker *w, int n)
{
    return (int)(next_rand(&w->rng) % (uint64_t)n);
}

static void failure(struct worker *w, const char *what, const struct client_reply *r)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof w->first_failure, "thread %d: %.400s: %ld %.300s",
                 w->index, what, r->status, r->body ? r->body : r->error);
}

static void listing_body(struct worker *w, int k, char *out, size_t cap)
{
    static const char *const vendors[][2] = { { "nvidia", "H100-SXM" },
                                              { "huawei", "Ascend-910B" },
                                              { "hygon", "K100" } };
    static const int tflops[][2] = { { 989, 1979 }, { 989, 1979 }, { 1979, 3958 } };
    int v = pick(w, 3), first = pick(w, 3), n = 1 + pick(w, 2);
    char precs[256] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        int p = (first + i) % 3;
        len += (size_t)snprintf(
            precs + len, sizeof precs - len, "%s\"%s\":{\"tflops\":%d,\"price\":\"%d.%d\"}",
            i ? "," : "", precisions[p], tflops[p][pick(w, 2)], 10 + pick(w, 12), 5 * pick(w, 2));
    }
    char hours[64] = "";
    if (pick(w, 4) == 0)
        snprintf(hours, sizeof hours, ",\"min_hours\":%d,\"max_hours\":%d", 1 + pick(w, 4),
                 12 + pick(w, 24));
    snprintf(out, cap,
             "{\"vendor\":\"%s\",\"model\":\"%s\",\"device_type\":\"%s\",\"devices\":%d,"
             "\"precisions\":{%s},\"memory_gb\":%d,\"interconnect\":\"ic-%d-%d\","
             "\"region\":\"%s\",\"green_permille\":%d,\"endpoint\":\"https://p%d.example/jobs\"%s}",
             vendors[v][0], vendors[v][1], v == 0 ? "gpu" : "npu", 1 + pick(w, 12), precs,
             64 + 16 * pick(w, 3), w->index, k, regions[pick(w, 3)], 100 * pick(w, 11),
             w->index % NPROV, hours);
}

static void order_body(struct worker *w, int k, char *out, size_t cap)
{
    static const char *const tifs[] = { "gtc", "gtc", "gtc", "gtc", "gtc",
                                        "ioc", "ioc", "ioc", "fok", "fok" };
    int p = pick(w, 3);
    char qty[48], regs[96] = "", cons[160] = "";
    bool devices = pick(w, 10) < 7;
    if (devices)
        snprintf(qty, sizeof qty, "\"devices\":%d", 1 + pick(w, 8));
    else
        snprintf(qty, sizeof qty, "\"tflops\":%d", 500 + 100 * pick(w, 196));
    unsigned set = 1u + (unsigned)pick(w, 7); /* a non-empty subset of the three regions */
    size_t len = 0;
    for (int i = 0; i < 3; i++)
        if (set & (1u << i))
            len += (size_t)snprintf(regs + len, sizeof regs - len, "%s\"%s\"", len ? "," : "",
                                    regions[i]);
    if (pick(w, 3) == 0) {
        static const char *const options[] = {
            "\"max_tflops\":2000",
            "\"min_memory_gb\":80",
            "\"models\":[\"nvidia\"]",
            "\"models\":[\"huawei/Ascend-910B\",\"hygon\"]",
            "\"min_devices_per_provider\":2",
            "\"min_green_permille\":300",
            "\"min_tflops\":1500",
        };
        int a = pick(w, 7), b = pick(w, 7);
        /* max_tflops narrows the hold (a device order's and a capacity order's last device);
         * min_tflops 1500 with it stays valid */
        if (a == b)
            snprintf(cons, sizeof cons, ",\"constraints\":{%s}", options[a]);
        else
            snprintf(cons, sizeof cons, ",\"constraints\":{%s,%s}", options[a], options[b]);
    }
    snprintf(out, cap,
             "{\"client_order_id\":\"t%d-%d\",\"precision\":\"%s\",%s,\"hours\":%d,"
             "\"regions\":[%s],\"limit_price\":\"%d.%d\",\"time_in_force\":\"%s\"%s}",
             w->index, k, precisions[p], qty, 1 + pick(w, 24), regs, 6 + pick(w, 16),
             5 * pick(w, 2), tifs[pick(w, 10)], cons);
}

static void remember(struct worker *w, const json_t *answer, bool listing)
{
    const char *status = json_string_value(json_object_get(answer, "status"));
    const char *id = json_string_value(json_object_get(answer, "id"));
    if (status == NULL || id == NULL || strcmp(status, "open") != 0 || w->nopen >= PER_THREAD)
        return;
    snprintf(w->open_ids[w->nopen], sizeof w->open_ids[0], "%s", id);
    w->open_is_listing[w->nopen++] = listing;
}

/* Sends PER_THREAD commands; cmocka's assertions are not thread-safe, so failures are counted
 * and checked by the main thread. */
static void *work(void *arg)
{
    struct worker *w = arg;
    char body[1024], target[128];
    pthread_barrier_wait(w->start);
    for (int k = 0; k < PER_THREAD; k++) {
        int r = pick(w, 100);
        struct client_reply rep;
        if (r < 15 && w->nopen > 0) { /* cancel one of its own */
            int i = pick(w, w->nopen);
            bool listing = w->open_is_listing[i];
            snprintf(target, sizeof target, "/v1/%s/%s", listing ? "listings" : "orders",
                     w->open_ids[i]);
            w->nopen--;
            memmove(&w->open_ids[i], &w->open_ids[i + 1], (size_t)(w->nopen - i) * 32);
            memmove(&w->open_is_listing[i], &w->open_is_listing[i + 1],
                    (size_t)(w->nopen - i) * sizeof(bool));
            struct client *cl = listing ? &w->provider : &w->buyer;
            if (!client_call(cl, "DELETE", target, NULL, true, NULL, &rep))
                failure(w, target, &rep);
            else if (rep.status == 200)
                w->cancels++;
            else if (rep.status == 409 && strcmp(reply_code(rep.json), "not_open") == 0)
                w->not_open++; /* filled (or cancelled) meanwhile */
            else
                failure(w, target, &rep);
        } else if (r < 45) {
            listing_body(w, k, body, sizeof body);
            if (!client_call(&w->provider, "POST", "/v1/listings", body, true, NULL, &rep) ||
                rep.status != 201) {
                failure(w, body, &rep);
            } else {
                w->listings++;
                remember(w, rep.json, true);
            }
        } else {
            order_body(w, k, body, sizeof body);
            if (!client_call(&w->buyer, "POST", "/v1/orders", body, true, NULL, &rep)) {
                failure(w, body, &rep);
            } else if (rep.status == 201) {
                w->orders++;
                remember(w, rep.json, false);
            } else if (rep.status == 422 &&
                       strcmp(reply_code(rep.json), "insufficient_funds") == 0) {
                w->insufficient++;
            } else {
                failure(w, body, &rep);
            }
        }
        client_reply_free(&rep);
    }
    return NULL;
}

/* ---- the two exchanges ----------------------------------------------------------------------- */

static struct test_server a, b;

static void set_up_parties(struct test_server *ts, bool fresh, struct client *op)
{
    for (int i = 0; i < NPROV + NBUY; i++) {
        struct party *p = &parties[i];
        struct client cl;
        char id[CPX_ID_MAX];
        if (fresh) {
            test_identity(ts, p->name, p->roles, true, &cl, p->id);
            snprintf(p->key_path, sizeof p->key_path, "%s", cl.key_path);
        } else {
            test_identity_with_key(ts, p->key_path, p->name, p->roles, true, &cl, id);
            assert_string_equal(id, p->id); /* the id is the key's */
        }
        client_free(&cl);
    }
    for (int i = 0; i < NPROV + NBUY; i++)
        if (parties[i].deposit != NULL)
            mk_deposit(op, parties[i].id, parties[i].deposit);
}

static int64_t deposit_micro(const struct party *p)
{
    return strtoll(p->deposit, NULL, 10) * 1000000;
}

/* One request of the sequencer order, as A's ledger recorded it. */
struct replay_cmd {
    enum cpx_kind kind;
    uint64_t seq;
    int party; /* index into parties */
    char method[CPX_REQSIG_METHOD_MAX + 1];
    char target[CPX_REQSIG_TARGET_MAX + 1];
    char *body;  /* NUL-terminated copy, NULL when empty */
    char id[32]; /* the id A gave (listing, order) or cancelled */
};

static int party_of(const char *id)
{
    for (int i = 0; i < NPROV + NBUY; i++)
        if (strcmp(parties[i].id, id) == 0)
            return i;
    return -1;
}

/* The party-originated listing, order and cancel records of cl's exchange, in seq order. */
static struct replay_cmd *sequencer_order(struct client *cl, size_t *n)
{
    struct live_ledger l;
    live_download(cl, &l);
    struct replay_cmd *cmds = calloc(l.n, sizeof *cmds);
    assert_non_null(cmds);
    struct cpx_record rec;
    cpx_record_init(&rec);
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(cpx_record_decode(&rec, l.rec[i], l.len[i]), CPX_RECORD_OK);
        assert_int_equal(rec.seq, l.seq[i]);
        if (i > 0)
            assert_true(l.seq[i] > l.seq[i - 1]);
        if (!rec.has_party || (rec.kind != CPX_KIND_LISTING && rec.kind != CPX_KIND_ORDER &&
                               rec.kind != CPX_KIND_CANCEL))
            continue;
        struct replay_cmd *c = &cmds[k++];
        c->kind = rec.kind;
        c->seq = rec.seq;
        c->party = party_of(rec.party.id);
        if (c->party < 0)
            fail_msg("record %" PRIu64 " was sent by %s, not a party of the test", rec.seq,
                     rec.party.id);
        snprintf(c->method, sizeof c->method, "%s", rec.party.method);
        snprintf(c->target, sizeof c->target, "%s", rec.party.target);
        if (rec.party.body_len > 0) {
            c->body = malloc(rec.party.body_len + 1);
            assert_non_null(c->body);
            memcpy(c->body, rec.party.body, rec.party.body_len);
            c->body[rec.party.body_len] = '\0';
            assert_int_equal(strlen(c->body), rec.party.body_len);
        }
        json_error_t jerr;
        json_t *payload = json_loadb((const char *)rec.payload, rec.payload_len, 0, &jerr);
        if (payload == NULL)
            fail_msg("record %" PRIu64 ": payload: %s", rec.seq, jerr.text);
        snprintf(c->id, sizeof c->id, "%s", mk_str(payload, "id"));
        json_decref(payload);
        /* the request is what it says: a POST of a listing or order, a DELETE of that id */
        if (rec.kind == CPX_KIND_CANCEL) {
            assert_string_equal(c->method, "DELETE");
            assert_non_null(strstr(c->target, c->id));
        } else {
            assert_string_equal(c->method, "POST");
            assert_string_equal(c->target,
                                rec.kind == CPX_KIND_LISTING ? "/v1/listings" : "/v1/orders");
        }
    }
    cpx_record_free(&rec);
    live_free(&l);
    *n = k;
    return cmds;
}

/* ---- comparing A and B ----------------------------------------------------------------------- */

static const struct {
    const char *what, *sql;
} tables[] = {
    { "orders",
      "SELECT id, buyer, client_order_id, encode(body_sha256, 'hex'), spec::text, precision, "
      "status, remaining, filled_devices, hold, hold_left, cancel_reason, closed_at IS NULL "
      "FROM orders ORDER BY id" },
    { "order agreements", /* which agreements each order has, in order */
      "SELECT order_id, string_agg(id::text, ',' ORDER BY id) FROM agreements GROUP BY order_id "
      "ORDER BY order_id" },
    { "listings",
      "SELECT id, provider, spec::text, region, devices, remaining, status, cancel_reason, "
      "closed_at IS NULL FROM listings ORDER BY id" },
    { "agreements", /* everything but the times (start_at, created_at) and the ledger seq */
      "SELECT id, order_id, listing_id, buyer, provider, precision, region, devices, tflops, "
      "hours, price, value, commission, maker, endpoint, status FROM agreements ORDER BY id" },
    { "accounts", "SELECT owner, kind, balance FROM accounts ORDER BY owner, kind" },
    { "entries", /* a deposit's ref names its ledger seq, which differs */
      "SELECT id, from_owner, from_kind, to_owner, to_kind, amount, reason, "
      "CASE reason WHEN 'deposit' THEN '' ELSE ref END FROM entries ORDER BY id" },
    { "names", "SELECT id, name FROM market_names ORDER BY id" },
    { "engine", /* the books' state hash after the last batch, and the counters */
      "SELECT state_hash, next_id, next_agreement FROM sequencer_batches ORDER BY id DESC "
      "LIMIT 1" },
};

/* Prints the first line where two texts differ. */
static void first_difference(const char *what, const char *x, const char *y)
{
    size_t line = 1;
    const char *px = x, *py = y;
    while (*px && *py && *px == *py) {
        if (*px == '\n')
            line++;
        px++;
        py++;
    }
    const char *lx = px, *ly = py;
    while (lx > x && lx[-1] != '\n')
        lx--;
    while (ly > y && ly[-1] != '\n')
        ly--;
    print_message("%s differ at row %zu:\nA: %.*s\nB: %.*s\n", what, line, (int)strcspn(lx, "\n"),
                  lx, (int)strcspn(ly, "\n"), ly);
    fail_msg("A and B differ in %s", what);
}

static void compare_tables(void)
{
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        char *x = mk_db_text(a.db_url, tables[t].sql), *y = mk_db_text(b.db_url, tables[t].sql);
        print_message("%-16s %zu rows\n", tables[t].what, mk_lines(x));
        if (strcmp(x, y) != 0)
            first_difference(tables[t].what, x, y);
        free(x);
        free(y);
    }
}

static void compare_books(struct client *ca, struct client *cb)
{
    static const char *const all_precisions[] = { "fp64", "fp32", "tf32", "bf16",
                                                  "fp16", "fp8",  "int8", "int4" };
    json_t *rs = mk_call(ca, "GET", "/v1/regions", NULL, 200);
    size_t levels = 0, i;
    json_t *r;
    json_array_foreach(json_object_get(rs, "items"), i, r)
    {
        for (size_t p = 0; p < 8; p++) {
            char target[128];
            snprintf(target, sizeof target, "/v1/markets/%s/%s/book?depth=100", all_precisions[p],
                     mk_str(r, "id"));
            json_t *x = mk_call(ca, "GET", target, NULL, 200),
                   *y = mk_call(cb, "GET", target, NULL, 200);
            char *tx = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS),
                 *ty = json_dumps(y, JSON_COMPACT | JSON_SORT_KEYS);
            if (strcmp(tx, ty) != 0)
                fail_msg("%s:\nA: %s\nB: %s", target, tx, ty);
            levels += json_array_size(json_object_get(x, "bids")) +
                      json_array_size(json_object_get(x, "asks"));
            free(tx);
            free(ty);
            json_decref(x);
            json_decref(y);
        }
    }
    json_decref(rs);
    print_message("books            %zu levels, equal\n", levels);
    assert_true(levels > 0);
}

/* A's money adds up. */
static void check_money(struct test_server *ts, struct client *op)
{
    int64_t total = 0;
    for (int i = 0; i < NBUY; i++) {
        const struct party *p = buy_party(i);
        int64_t bal[3];
        mk_balances(op, p->id, bal);
        assert_int_equal(bal[0] + bal[1] + bal[2], deposit_micro(p));
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(sum(hold_left), 0) FROM orders WHERE buyer = '%s' AND "
                 "status = 'open'",
                 p->id);
        assert_int_equal(bal[1], test_db_scalar(ts->db_url, sql));
        snprintf(sql, sizeof sql,
                 "SELECT coalesce(sum(value + commission), 0) FROM agreements WHERE buyer = '%s'",
                 p->id);
        assert_int_equal(bal[2], test_db_scalar(ts->db_url, sql));
        total += deposit_micro(p);
    }
    for (int i = 0; i < NPROV; i++) { /* providers get nothing until #6 settles */
        int64_t bal[3];
        mk_balances(op, prov_party(i)->id, bal);
        assert_int_equal(bal[0] + bal[1] + bal[2], 0);
    }
    assert_int_equal(test_db_scalar(ts->db_url, "SELECT coalesce(sum(balance), 0) FROM accounts"),
                     0);
    assert_int_equal(test_db_scalar(ts->db_url, "SELECT balance FROM accounts WHERE owner = "
                                                "'exchange' AND kind = 'external'"),
                     -total);
    /* Each order's hold covers what it filled: hold = hold_left + escrowed + released. */
    assert_int_equal(test_db_scalar(ts->db_url,
                                    "SELECT count(*) FROM orders o WHERE o.hold < o.hold_left + "
                                    "(SELECT coalesce(sum(value + commission), 0) FROM "
                                    "agreements g WHERE g.order_id = o.id)"),
                     0);
}

/* ---- the test -------------------------------------------------------------------------------- */

static void test_concurrent_equals_sequential(void **state)
{
    (void)state;
    for (int i = 0; i < NPROV; i++) {
        snprintf(prov_party(i)->name, sizeof parties[0].name, "prov%d", i);
        prov_party(i)->roles = "provider";
    }
    for (int i = 0; i < NBUY; i++) {
        snprintf(buy_party(i)->name, sizeof parties[0].name, "buy%d", i);
        /* the first buyer also provides: its own orders and listings meet (self-trade
         * prevention, docs/matching.md) */
        buy_party(i)->roles = i == 0 ? "buyer,provider" : "buyer";
        /* the last buyer is short of money: some of its orders are refused, in sequencer order */
        buy_party(i)->deposit = i == NBUY - 1 ? "30000" : "2000000";
    }

    /* A: parties, money, then everyone at once. */
    test_server_start(&a, NULL, NULL);
    struct client op_a, anon_a;
    test_client(&a, &op_a, a.operator_key);
    test_client(&a, &anon_a, "/nonexistent");
    set_up_parties(&a, true, &op_a);

    static struct worker w[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS);
    for (int t = 0; t < THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].index = t;
        w[t].rng = 0x5eed0000u + (uint64_t)t;
        w[t].start = &start;
        test_client(&a, &w[t].buyer, buy_party(t % NBUY)->key_path);
        test_client(&a, &w[t].provider, (t == 0 ? buy_party(0) : prov_party(t % NPROV))->key_path);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
    int listings = 0, orders = 0, cancels = 0, insufficient = 0, not_open = 0, failures = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        listings += w[t].listings;
        orders += w[t].orders;
        cancels += w[t].cancels;
        insufficient += w[t].insufficient;
        not_open += w[t].not_open;
        failures += w[t].failures;
        if (w[t].failures)
            print_message("%s\n", w[t].first_failure);
        client_free(&w[t].buyer);
        client_free(&w[t].provider);
    }
    pthread_barrier_destroy(&start);
    print_message("A: %d listings, %d orders, %d cancels placed; %d orders short of money, %d "
                  "cancels too late\n",
                  listings, orders, cancels, insufficient, not_open);
    assert_int_equal(failures, 0);
    assert_true(listings > 0 && orders > 0 && cancels > 0);
    assert_int_equal(test_db_scalar(a.db_url, "SELECT count(*) FROM agreements") > 0, 1);
    /* The commands really were concurrent: the sequencer took several in one batch. */
    int64_t batches = test_db_scalar(a.db_url, "SELECT count(*) FROM sequencer_batches");
    int64_t widest = test_db_scalar(
        a.db_url, "SELECT max(commands - prev) FROM (SELECT commands, coalesce(lag(commands) "
                  "OVER (ORDER BY id), 0) AS prev FROM sequencer_batches) b");
    print_message("A: %" PRId64 " sequencer batches (up to %" PRId64 " commands), %" PRId64
                  " agreements\n",
                  batches, widest, test_db_scalar(a.db_url, "SELECT count(*) FROM agreements"));
    assert_true(widest > 1);
    char *outcomes = mk_db_text(
        a.db_url, "SELECT 'order', status, coalesce(cancel_reason, ''), count(*) FROM orders "
                  "GROUP BY 2, 3 UNION ALL SELECT 'listing', status, coalesce(cancel_reason, ''), "
                  "count(*) FROM listings GROUP BY 2, 3 UNION ALL SELECT 'maker', maker, '', "
                  "count(*) FROM agreements GROUP BY 2 ORDER BY 1, 2, 3");
    print_message("A's outcomes:\n%s", outcomes);
    free(outcomes);

    /* The sequencer order, from A's ledger. */
    size_t n;
    struct replay_cmd *cmds = sequencer_order(&anon_a, &n);
    assert_int_equal(n, (size_t)(listings + orders + cancels));

    /* B: the same parties and money, then the commands one by one. */
    test_server_start(&b, NULL, NULL);
    struct client op_b, anon_b, cl[NPROV + NBUY];
    test_client(&b, &op_b, b.operator_key);
    test_client(&b, &anon_b, "/nonexistent");
    set_up_parties(&b, false, &op_b);
    for (int i = 0; i < NPROV + NBUY; i++)
        test_client(&b, &cl[i], parties[i].key_path);
    for (size_t i = 0; i < n; i++) {
        struct replay_cmd *c = &cmds[i];
        long want = c->kind == CPX_KIND_CANCEL ? 200 : 201;
        struct client_reply r;
        assert_true(client_call(&cl[c->party], c->method, c->target, c->body, true, NULL, &r));
        const char *id = json_string_value(json_object_get(r.json, "id"));
        if (r.status != want || id == NULL || strcmp(id, c->id) != 0)
            fail_msg("replaying A's record %" PRIu64 " (%s %s %s): B answered %ld %.300s; A's id "
                     "was %s",
                     c->seq, c->method, c->target, c->body ? c->body : "", r.status,
                     r.body ? r.body : "", c->id);
        client_reply_free(&r);
    }
    print_message("B: %zu commands replayed one by one, every id as in A\n", n);

    /* The same state. */
    compare_tables();
    compare_books(&anon_a, &anon_b);
    check_money(&a, &op_a);
    check_money(&b, &op_b);
    live_audit_clean(&anon_a, a.verifier_key);
    live_audit_clean(&anon_b, b.verifier_key);

    for (size_t i = 0; i < n; i++)
        free(cmds[i].body);
    free(cmds);
    for (int i = 0; i < NPROV + NBUY; i++)
        client_free(&cl[i]);
    client_free(&op_a);
    client_free(&anon_a);
    client_free(&op_b);
    client_free(&anon_b);
    assert_int_equal(test_server_stop(&b), 0);
    assert_int_equal(test_server_stop(&a), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_equals_sequential),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], NULL, NULL);
}
