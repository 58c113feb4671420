/*
 * Ledger benchmarks: `make bench-ledger` prints one line per measurement,
 *
 *     bench ledger <what> <key=value>... per_s=<x>
 *
 * for in-memory append with tree update, inclusion and consistency proof generation and
 * verification, a full audit of 1,000,000 generated records (structure only, then with every
 * party signature checked on both cores), and the raw Ed25519 verify rate for comparison.
 *
 * The generated ledger looks like the exchange's: an operator bootstrapped by the exchange, 1000
 * parties registered (self-signed) and approved by the operator, then trades of six records each
 * -- order (buyer-signed), agreement, acceptance (provider-signed), usage (provider-signed), bill,
 * commission -- so half the records carry a party signature, as the real mix will. A signed
 * checkpoint every 1000 records. CPX_BENCH_RECORDS overrides the record count.
 *
 * This is a program, not a library: it may print and use threads (the audit core does neither;
 * the signature pipeline shows how a caller such as cpx-audit spreads cpx_audit_sigjob_verify over
 * both cores while the sequential pass is still running).
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/audit.h"
#include "ledger/checkpoint.h"
#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/merkle.h"
#include "ledger/record.h"
#include "ledger/reqsig.h"

#define PARTIES          1000 /* buyers and providers, half each */
#define CHECKPOINT_EVERY 1000 /* records per checkpoint */
#define ORIGIN           "cpx.bench/ledger"
#define THREADS          2

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Exits with a message: the benchmark has no way to go on. */
static void die(const char *what)
{
    fprintf(stderr, "bench_ledger: %s\n", what);
    exit(1);
}

/* ---- the generated ledger ------------------------------------------------------------------ */

/* One party of the generated ledger. */
struct party {
    struct cpx_keypair kp; /* its key */
    char id[CPX_ID_MAX];   /* its identity id */
};

/* The generated ledger: records packed into one arena. */
struct ledger {
    struct cpx_keypair exchange; /* checkpoint key */
    struct party op;             /* the operator */
    struct party *parties;       /* PARTIES parties: even buyers, odd providers */
    uint64_t n;                  /* records */
    uint8_t **rec;               /* record i's bytes (into a thread's arena) */
    size_t *len;                 /* record i's length */
    char **notes;                /* checkpoint notes, one per CHECKPOINT_EVERY records */
    size_t *note_len;            /* their lengths */
    size_t n_notes;              /* how many */
};

/* A growable byte arena owned by one generator thread. */
struct arena {
    uint8_t *buf;    /* the bytes */
    size_t len, cap; /* used, allocated */
};

/* Copies bytes into the arena; returns their offset. */
static size_t arena_put(struct arena *a, const uint8_t *p, size_t n)
{
    if (a->cap - a->len < n) {
        size_t cap = a->cap ? a->cap : (64u << 20);
        while (cap - a->len < n)
            cap *= 2;
        a->buf = realloc(a->buf, cap);
        if (a->buf == NULL)
            die("out of memory");
        a->cap = cap;
    }
    memcpy(a->buf + a->len, p, n);
    a->len += n;
    return a->len - n;
}

/* Work of one generator thread: records [lo, hi). */
struct gen_job {
    struct ledger *l;   /* the ledger being built */
    uint64_t lo, hi;    /* record range */
    struct arena arena; /* where its records go */
    size_t *off;        /* offsets of its records in the arena (index - lo) */
};

/* Encodes record r into w and stores it. */
static void store(struct gen_job *j, struct cpx_canon_writer *w, const struct cpx_record *r)
{
    cpx_canon_writer_reset(w);
    cpx_record_encode(w, r);
    const uint8_t *out;
    size_t len;
    if (cpx_canon_writer_finish(w, &out, &len) != CPX_CANON_OK)
        die("record encoding failed");
    j->off[r->seq - j->lo] = arena_put(&j->arena, out, len);
    j->l->len[r->seq] = len;
}

/* Fills r's party part: p signs POST target with body at ts. */
static void sign_party(struct cpx_record *r, const struct party *p, const char *target,
                       const char *body, size_t body_len)
{
    struct cpx_auth auth;
    r->has_party = true;
    snprintf(r->party.id, sizeof r->party.id, "%s", p->id);
    snprintf(r->party.method, sizeof r->party.method, "POST");
    snprintf(r->party.target, sizeof r->party.target, "%s", target);
    r->party.ts = r->ts / 1000;
    r->party.body = (const uint8_t *)body;
    r->party.body_len = body_len;
    if (!cpx_reqsig_sign(&p->kp, "POST", target, r->party.ts, body, body_len, &auth))
        die("signing failed");
    memcpy(r->party.sig, auth.sig, sizeof r->party.sig);
}

/* Generates record i. The first records set up identities; then six-record trades. */
static void gen_record(struct gen_job *j, struct cpx_canon_writer *w, struct cpx_canon_writer *pw,
                       uint64_t i)
{
    const struct ledger *l = j->l;
    struct cpx_record r;
    memset(&r, 0, sizeof r);
    r.seq = i;
    r.ts = 1764403200000 + (int64_t)i;
    char payload[512], body[512], target[128];
    const uint8_t *pbytes;
    size_t plen;
    uint64_t setup = 2 + 2 * PARTIES;
    if (i < setup) {
        /* 0: operator identity (exchange), 1: its approval, then identity/approval pairs. */
        const struct party *p = i < 2 ? &l->op : &l->parties[(i - 2) / 2];
        bool is_identity = i % 2 == 0;
        cpx_canon_writer_reset(pw);
        if (is_identity) {
            struct cpx_identity_payload ip;
            memset(&ip, 0, sizeof ip);
            snprintf(ip.id, sizeof ip.id, "%s", p->id);
            snprintf(ip.name, sizeof ip.name, "Compute Org %" PRIu64, i);
            snprintf(ip.reg_no, sizeof ip.reg_no, "9111%012" PRIu64, i);
            ip.roles = i < 2 ? CPX_ROLE_OPERATOR
                             : (((i - 2) / 2) % 2 ? CPX_ROLE_PROVIDER : CPX_ROLE_BUYER);
            memcpy(ip.public_key, p->kp.pk, 32);
            cpx_identity_payload_write(pw, &ip);
            r.kind = CPX_KIND_IDENTITY;
        } else {
            struct cpx_decision_payload dp;
            memset(&dp, 0, sizeof dp);
            snprintf(dp.id, sizeof dp.id, "%s", p->id);
            cpx_decision_payload_write(pw, CPX_KIND_APPROVAL, &dp);
            r.kind = CPX_KIND_APPROVAL;
        }
        if (cpx_canon_writer_finish(pw, &pbytes, &plen) != CPX_CANON_OK)
            die("payload encoding failed");
        memcpy(payload, pbytes, plen);
        r.payload = (const uint8_t *)payload;
        r.payload_len = plen;
        if (i >= 2) {
            /* Registration signed by the party with the payload as body; approval by the
             * operator with {"id":...} as body (both bodies are part of their payloads). */
            if (is_identity)
                sign_party(&r, p, "/v1/identities", payload, plen);
            else {
                snprintf(target, sizeof target, "/v1/identities/%s/approve", p->id);
                sign_party(&r, &l->op, target, payload, plen);
            }
        }
        store(j, w, &r);
        return;
    }
    uint64_t t = (i - setup) / 6, step = (i - setup) % 6;
    const struct party *buyer = &l->parties[(t * 2) % PARTIES];
    const struct party *provider = &l->parties[(t * 2 + 1) % PARTIES];
    int n = 0, bn = 0;
    switch (step) {
    case 0:
        r.kind = CPX_KIND_ORDER;
        n = snprintf(payload, sizeof payload,
                     "{\"buyer\":\"%s\",\"hours\":4,\"id\":\"ord_%010" PRIu64
                     "\",\"limit_price\":15200000,\"precision\":\"bf16\",\"regions\":[\"gansu\","
                     "\"ningxia\"],\"tflops\":900,\"tif\":\"gtc\"}",
                     buyer->id, t);
        bn = snprintf(body, sizeof body,
                      "{\"client_order_id\":\"c-%" PRIu64 "\",\"hours\":4,\"limit_price\":\"15.2\","
                      "\"precision\":\"bf16\",\"regions\":[\"gansu\",\"ningxia\"],\"tflops\":900,"
                      "\"tif\":\"gtc\"}",
                      t);
        snprintf(target, sizeof target, "/v1/orders");
        break;
    case 1:
        r.kind = CPX_KIND_AGREEMENT;
        n = snprintf(payload, sizeof payload,
                     "{\"buyer\":\"%s\",\"devices\":8,\"hours\":4,\"id\":\"agr_%010" PRIu64
                     "\",\"order\":\"ord_%010" PRIu64 "\",\"precision\":\"bf16\",\"price\":"
                     "15000000,\"provider\":\"%s\",\"region\":\"gansu\"}",
                     buyer->id, t, t, provider->id);
        break;
    case 2:
        r.kind = CPX_KIND_ACCEPTANCE;
        n = snprintf(payload, sizeof payload, "{\"agreement\":\"agr_%010" PRIu64 "\"}", t);
        bn = snprintf(body, sizeof body, "{\"accepted\":true}");
        snprintf(target, sizeof target, "/v1/agreements/agr_%010" PRIu64 "/accept", t);
        break;
    case 3:
        r.kind = CPX_KIND_USAGE;
        n = snprintf(payload, sizeof payload,
                     "{\"agreement\":\"agr_%010" PRIu64 "\",\"device_seconds\":115200,\"id\":"
                     "\"use_%010" PRIu64 "\"}",
                     t, t);
        bn = snprintf(body, sizeof body,
                      "{\"agreement\":\"agr_%010" PRIu64 "\",\"device_seconds\":115200}", t);
        snprintf(target, sizeof target, "/v1/usage");
        break;
    case 4:
        r.kind = CPX_KIND_BILL;
        n = snprintf(payload, sizeof payload,
                     "{\"agreement\":\"agr_%010" PRIu64
                     "\",\"amount\":432000000,\"id\":\"bil_%010" PRIu64 "\"}",
                     t, t);
        break;
    default:
        r.kind = CPX_KIND_COMMISSION;
        n = snprintf(payload, sizeof payload,
                     "{\"amount\":864000,\"bill\":\"bil_%010" PRIu64 "\",\"id\":\"com_%010" PRIu64
                     "\"}",
                     t, t);
        break;
    }
    r.payload = (const uint8_t *)payload;
    r.payload_len = (size_t)n;
    if (bn > 0)
        sign_party(&r, step == 0 ? buyer : provider, target, body, (size_t)bn);
    store(j, w, &r);
}

static void *gen_thread(void *arg)
{
    struct gen_job *j = arg;
    struct cpx_canon_writer w, pw;
    cpx_canon_writer_init(&w);
    cpx_canon_writer_init(&pw);
    j->off = malloc((j->hi - j->lo) * sizeof *j->off);
    if (j->off == NULL)
        die("out of memory");
    for (uint64_t i = j->lo; i < j->hi; i++)
        gen_record(j, &w, &pw, i);
    cpx_canon_writer_free(&w);
    cpx_canon_writer_free(&pw);
    return NULL;
}

static void build_ledger(struct ledger *l, uint64_t n)
{
    memset(l, 0, sizeof *l);
    l->n = n;
    cpx_keypair_generate(&l->exchange);
    cpx_keypair_generate(&l->op.kp);
    cpx_identity_id_for_key(l->op.kp.pk, l->op.id);
    l->parties = calloc(PARTIES, sizeof *l->parties);
    l->rec = malloc(n * sizeof *l->rec);
    l->len = malloc(n * sizeof *l->len);
    if (l->parties == NULL || l->rec == NULL || l->len == NULL)
        die("out of memory");
    for (uint32_t k = 0; k < PARTIES; k++) {
        cpx_keypair_generate(&l->parties[k].kp);
        cpx_identity_id_for_key(l->parties[k].kp.pk, l->parties[k].id);
    }
    struct gen_job jobs[THREADS];
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct gen_job){ .l = l,
                                    .lo = n * (uint64_t)t / THREADS,
                                    .hi = n * (uint64_t)(t + 1) / THREADS };
        if (pthread_create(&tid[t], NULL, gen_thread, &jobs[t]) != 0)
            die("pthread_create failed");
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(tid[t], NULL);
        for (uint64_t i = jobs[t].lo; i < jobs[t].hi; i++)
            l->rec[i] = jobs[t].arena.buf + jobs[t].off[i - jobs[t].lo];
        free(jobs[t].off);
    }
    /* Checkpoints every CHECKPOINT_EVERY records and at the end, from an in-memory tree. */
    struct cpx_merkle_tree tree;
    if (cpx_merkle_tree_init(&tree) != 0)
        die("out of memory");
    size_t max_notes = (size_t)(n / CHECKPOINT_EVERY) + 1;
    l->notes = malloc(max_notes * sizeof *l->notes);
    l->note_len = malloc(max_notes * sizeof *l->note_len);
    for (uint64_t i = 0; i < n; i++) {
        if (cpx_merkle_tree_append(&tree, l->rec[i], l->len[i]) != 0)
            die("out of memory");
        if ((i + 1) % CHECKPOINT_EVERY == 0 || i + 1 == n) {
            struct cpx_checkpoint cp;
            memset(&cp, 0, sizeof cp);
            snprintf(cp.origin, sizeof cp.origin, ORIGIN);
            cp.size = i + 1;
            cpx_merkle_tree_root(&tree, cp.root);
            char note[512];
            long len = cpx_checkpoint_sign(&cp, ORIGIN, &l->exchange, note, sizeof note);
            if (len < 0)
                die("checkpoint signing failed");
            l->notes[l->n_notes] = strdup(note);
            l->note_len[l->n_notes++] = (size_t)len;
        }
    }
    cpx_merkle_tree_free(&tree);
}

/* ---- measurements -------------------------------------------------------------------------- */

static void bench_append(const struct ledger *l)
{
    struct cpx_merkle_tree t;
    uint8_t root[32];
    size_t bytes = 0;
    for (uint64_t i = 0; i < l->n; i++)
        bytes += l->len[i];
    if (cpx_merkle_tree_init(&t) != 0)
        die("out of memory");
    double t0 = now();
    for (uint64_t i = 0; i < l->n; i++)
        if (cpx_merkle_tree_append(&t, l->rec[i], l->len[i]) != 0)
            die("out of memory");
    cpx_merkle_tree_root(&t, root);
    double dt = now() - t0;
    printf("bench ledger append records=%" PRIu64 " avg_record_bytes=%zu seconds=%.3f per_s=%.0f\n",
           l->n, bytes / l->n, dt, (double)l->n / dt);
    cpx_merkle_tree_free(&t);

    /* The same with the root recomputed after every append (popcount(n) - 1 extra hashes). */
    if (cpx_merkle_tree_init(&t) != 0)
        die("out of memory");
    t0 = now();
    for (uint64_t i = 0; i < l->n; i++) {
        if (cpx_merkle_tree_append(&t, l->rec[i], l->len[i]) != 0)
            die("out of memory");
        cpx_merkle_tree_root(&t, root);
    }
    dt = now() - t0;
    printf("bench ledger append_root_each records=%" PRIu64 " seconds=%.3f per_s=%.0f\n", l->n, dt,
           (double)l->n / dt);
    cpx_merkle_tree_free(&t);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void bench_proofs(const struct ledger *l)
{
    struct cpx_merkle_tree t;
    if (cpx_merkle_tree_init(&t) != 0)
        die("out of memory");
    for (uint64_t i = 0; i < l->n; i++)
        cpx_merkle_tree_append(&t, l->rec[i], l->len[i]);
    uint8_t root[32];
    cpx_merkle_tree_root(&t, root);
    struct cpx_merkle_store s = cpx_merkle_tree_store(&t);
    struct cpx_sha256_ctx *h = cpx_sha256_ctx_new();
    const int count = 100000;
    struct cpx_inclusion_proof *ip = malloc((size_t)count * sizeof *ip);
    uint64_t *idx = malloc((size_t)count * sizeof *idx);
    if (h == NULL || ip == NULL || idx == NULL)
        die("out of memory");
    uint64_t rng = 88172645463325252ULL;
    for (int k = 0; k < count; k++)
        idx[k] = rng_next(&rng) % l->n;

    double t0 = now();
    for (int k = 0; k < count; k++)
        if (cpx_merkle_inclusion_proof(&s, h, idx[k], l->n, &ip[k]) != CPX_MERKLE_OK)
            die("inclusion proof failed");
    double dt = now() - t0;
    printf("bench ledger inclusion_proof_gen tree=%" PRIu64 " proofs=%d us_each=%.2f per_s=%.0f\n",
           l->n, count, dt * 1e6 / count, count / dt);

    t0 = now();
    int ok = 0;
    for (int k = 0; k < count; k++)
        ok += cpx_merkle_verify_inclusion(h, idx[k], l->n, t.levels[0].h[idx[k]],
                                          (const uint8_t(*)[32])ip[k].hashes, ip[k].n, root);
    dt = now() - t0;
    if (ok != count)
        die("inclusion proof did not verify");
    printf("bench ledger inclusion_proof_verify tree=%" PRIu64 " proofs=%d us_each=%.2f "
           "per_s=%.0f\n",
           l->n, count, dt * 1e6 / count, count / dt);

    /* Consistency: from a random earlier size to the full tree. */
    struct cpx_consistency_proof *cp = (struct cpx_consistency_proof *)ip;
    uint8_t(*old_roots)[32] = malloc((size_t)count * 32);
    if (old_roots == NULL)
        die("out of memory");
    for (int k = 0; k < count; k++) {
        idx[k] = 1 + rng_next(&rng) % (l->n - 1);
        cpx_merkle_root_from_store(&s, h, idx[k], old_roots[k]);
    }
    t0 = now();
    for (int k = 0; k < count; k++)
        if (cpx_merkle_consistency_proof(&s, h, idx[k], l->n, &cp[k]) != CPX_MERKLE_OK)
            die("consistency proof failed");
    dt = now() - t0;
    printf("bench ledger consistency_proof_gen tree=%" PRIu64 " proofs=%d us_each=%.2f "
           "per_s=%.0f\n",
           l->n, count, dt * 1e6 / count, count / dt);
    t0 = now();
    ok = 0;
    for (int k = 0; k < count; k++)
        ok += cpx_merkle_verify_consistency(h, idx[k], l->n, old_roots[k], root,
                                            (const uint8_t(*)[32])cp[k].hashes, cp[k].n);
    dt = now() - t0;
    if (ok != count)
        die("consistency proof did not verify");
    printf("bench ledger consistency_proof_verify tree=%" PRIu64 " proofs=%d us_each=%.2f "
           "per_s=%.0f\n",
           l->n, count, dt * 1e6 / count, count / dt);
    free(old_roots);
    free(ip);
    free(idx);
    cpx_sha256_ctx_free(h);
    cpx_merkle_tree_free(&t);
}

/*
 * The signature pipeline: the sequential pass (the producer) appends deferred jobs in order and
 * publishes their count; workers claim chunks and wait only when they have caught up with it.
 * The producer becomes a worker when it is done, so both cores verify from start to end.
 */
#define SIG_CHUNK 256

struct sig_queue {
    const struct ledger *l;        /* the records */
    struct cpx_audit_sigjob *jobs; /* jobs, filled in order by the producer */
    _Atomic size_t produced;       /* jobs published so far */
    _Atomic bool done;             /* the producer has published every job */
    _Atomic size_t next;           /* first job not yet claimed */
    pthread_mutex_t lock;          /* guards bad and n_bad */
    size_t *bad;                   /* indices of jobs whose signature failed */
    size_t n_bad;                  /* how many */
};

static void *sig_worker(void *arg)
{
    struct sig_queue *q = arg;
    struct cpx_record scratch;
    cpx_record_init(&scratch);
    for (;;) {
        size_t k = atomic_fetch_add(&q->next, SIG_CHUNK), end = k + SIG_CHUNK;
        while (atomic_load_explicit(&q->produced, memory_order_acquire) < end) {
            if (atomic_load(&q->done)) {
                size_t all = atomic_load(&q->produced);
                end = end < all ? end : all;
                break;
            }
            sched_yield();
        }
        if (k >= end)
            break;
        for (size_t i = k; i < end; i++) {
            const struct cpx_audit_sigjob *j = &q->jobs[i];
            if (!cpx_audit_sigjob_verify(&scratch, q->l->rec[j->seq], q->l->len[j->seq], j)) {
                pthread_mutex_lock(&q->lock);
                q->bad[q->n_bad++] = i;
                pthread_mutex_unlock(&q->lock);
            }
        }
    }
    cpx_record_free(&scratch);
    return NULL;
}

/* Feeds the whole ledger to a new auditor; deferred signature jobs go to *jobs. */
static struct cpx_audit *run_structure(const struct ledger *l, enum cpx_audit_sigmode mode,
                                       struct cpx_audit_sigjob **jobs, size_t *n_jobs,
                                       struct sig_queue *q)
{
    struct cpx_audit_config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (!cpx_note_verifier_init(&cfg.exchange, ORIGIN, l->exchange.pk))
        die("bad verifier");
    cfg.sigs = mode;
    struct cpx_audit *a = cpx_audit_new(&cfg);
    if (a == NULL)
        die("out of memory");
    for (size_t k = 0; k < l->n_notes; k++)
        if (cpx_audit_checkpoint(a, l->notes[k], l->note_len[k]) != CPX_AUDIT_OK)
            die("checkpoint refused");
    *n_jobs = 0;
    for (uint64_t i = 0; i < l->n; i++) {
        struct cpx_audit_sigjob job;
        enum cpx_audit_status st = cpx_audit_record(a, l->rec[i], l->len[i], NULL, &job);
        if (st == CPX_AUDIT_DEFERRED) {
            (*jobs)[(*n_jobs)++] = job;
            if (q != NULL)
                atomic_store_explicit(&q->produced, *n_jobs, memory_order_release);
        } else if (st != CPX_AUDIT_OK)
            die("audit failed");
    }
    return a;
}

static void report_audit(const char *what, struct cpx_audit *a, const struct ledger *l, double dt,
                         const char *extra)
{
    cpx_audit_finish(a);
    uint64_t size;
    uint8_t root[32];
    if (cpx_audit_failure_total(a) != 0 || !cpx_audit_verified(a, &size, root) || size != l->n)
        die("the generated ledger did not audit clean");
    printf("bench ledger %s records=%" PRIu64 " checkpoints=%zu%s seconds=%.2f per_s=%.0f\n", what,
           l->n, l->n_notes, extra, dt, (double)l->n / dt);
}

static void bench_audit(const struct ledger *l)
{
    struct cpx_audit_sigjob *jobs = malloc(l->n * sizeof *jobs);
    size_t n_jobs;
    if (jobs == NULL)
        die("out of memory");

    double t0 = now();
    struct cpx_audit *a = run_structure(l, CPX_AUDIT_SIGS_SKIP, &jobs, &n_jobs, NULL);
    double dt = now() - t0;
    report_audit("audit_structure", a, l, dt, "");
    cpx_audit_free(a);

    /* Every party signature: the sequential pass hands out jobs as it goes; THREADS - 1 workers
     * verify meanwhile, and the producer joins them when it is done. */
    struct sig_queue q = { .l = l, .jobs = jobs, .bad = malloc(l->n * sizeof(size_t)) };
    pthread_t tid[THREADS];
    if (q.bad == NULL || pthread_mutex_init(&q.lock, NULL) != 0)
        die("out of memory");
    t0 = now();
    for (int t = 1; t < THREADS; t++)
        if (pthread_create(&tid[t], NULL, sig_worker, &q) != 0)
            die("cannot start signature threads");
    a = run_structure(l, CPX_AUDIT_SIGS_DEFER, &jobs, &n_jobs, &q);
    double t_struct = now() - t0;
    atomic_store(&q.done, true);
    sig_worker(&q);
    for (int t = 1; t < THREADS; t++)
        pthread_join(tid[t], NULL);
    for (size_t k = 0; k < q.n_bad; k++)
        cpx_audit_sigjob_failed(a, &jobs[q.bad[k]]);
    dt = now() - t0;
    char extra[160];
    snprintf(extra, sizeof extra,
             " signatures=%zu threads=%d structure_seconds=%.2f sig_per_s=%.0f", n_jobs, THREADS,
             t_struct, (double)n_jobs / dt);
    report_audit("audit_signatures", a, l, dt, extra);
    pthread_mutex_destroy(&q.lock);
    free(q.bad);
    cpx_audit_free(a);
    free(jobs);
}

/* Raw Ed25519 verification of request-sized messages, for comparison. */
struct ed_work {
    const uint8_t (*msgs)[112]; /* messages */
    const uint8_t (*sigs)[64];  /* their signatures */
    const uint8_t *pk;          /* the key */
    size_t lo, hi;              /* share */
    size_t ok;                  /* verified */
};

static void *ed_thread(void *arg)
{
    struct ed_work *w = arg;
    for (size_t k = w->lo; k < w->hi; k++)
        w->ok += cpx_verify(w->pk, w->msgs[k], sizeof w->msgs[k], w->sigs[k]);
    return NULL;
}

static void bench_ed25519(void)
{
    const size_t count = 40000;
    uint8_t(*msgs)[112] = malloc(count * 112);
    uint8_t(*sigs)[64] = malloc(count * 64);
    if (msgs == NULL || sigs == NULL)
        die("out of memory");
    struct cpx_keypair kp;
    cpx_keypair_generate(&kp);
    for (size_t k = 0; k < count; k++) {
        memset(msgs[k], (int)(k & 0xff), 112);
        memcpy(msgs[k], &k, sizeof k);
        cpx_sign(&kp, msgs[k], 112, sigs[k]);
    }
    for (int threads = 1; threads <= THREADS; threads++) {
        struct ed_work w[THREADS];
        pthread_t tid[THREADS];
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            w[t] = (struct ed_work){ .msgs = (const uint8_t(*)[112])msgs,
                                     .sigs = (const uint8_t(*)[64])sigs,
                                     .pk = kp.pk,
                                     .lo = count * (size_t)t / (size_t)threads,
                                     .hi = count * (size_t)(t + 1) / (size_t)threads };
            if (pthread_create(&tid[t], NULL, ed_thread, &w[t]) != 0)
                die("pthread_create failed");
        }
        size_t ok = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            ok += w[t].ok;
        }
        double dt = now() - t0;
        if (ok != count)
            die("ed25519 verify failed");
        printf("bench ledger ed25519_verify signatures=%zu threads=%d us_each=%.1f per_s=%.0f\n",
               count, threads, dt * 1e6 / (double)count * threads, (double)count / dt);
    }
    free(msgs);
    free(sigs);
}

int main(void)
{
    if (cpx_crypto_init() != 0)
        die("cannot initialise libsodium");
    uint64_t n = 1000000;
    const char *env = getenv("CPX_BENCH_RECORDS");
    if (env != NULL && atoll(env) > 2 + 2 * PARTIES)
        n = (uint64_t)atoll(env);
    struct ledger l;
    double t0 = now();
    build_ledger(&l, n);
    fprintf(stderr, "bench_ledger: generated %" PRIu64 " records in %.1f s\n", n, now() - t0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_append(&l);
    bench_proofs(&l);
    bench_audit(&l);
    bench_ed25519();
    return 0;
}
