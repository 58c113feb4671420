/*
 * Tests of ledger/audit.c in the manner of a real auditor: build an honest ledger, check that it
 * passes, then tamper with the served data one way at a time -- a changed byte, a forged party
 * signature, a dropped record, two reordered records, a checkpoint signed by another key, a
 * rewritten history with a forged consistency proof -- and assert that the auditor names exactly
 * that record (or checkpoint) and reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/audit.h"
#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "tests/support/ledger_fixtures.h"

/* The honest ledger: an exchange-bootstrapped operator, a buyer and a provider approved by it,
 * orders and bills, one key rotation, and checkpoints every 10 records. */
struct world {
    struct fx_log log;
    struct fx_party op, buyer, provider;
    uint64_t rotation_seq; /* seq of the buyer's key rotation */
    uint64_t order_seq;    /* an order placed after the rotation */
    uint64_t bill_seq;     /* an exchange-only record */
    uint64_t cps[16];      /* checkpoint sizes */
    size_t n_cps;          /* how many */
};

static void build_world(struct world *w, int orders)
{
    memset(w, 0, sizeof *w);
    fx_log_init(&w->log);
    fx_party_new(&w->op);
    fx_party_new(&w->buyer);
    fx_party_new(&w->provider);
    fx_register_exchange(&w->log, &w->op, CPX_ROLE_OPERATOR); /* bootstrap */
    fx_decide(&w->log, &w->op, NULL, 1);
    fx_register(&w->log, &w->buyer, CPX_ROLE_BUYER);
    fx_decide(&w->log, &w->buyer, &w->op, 1);
    fx_register(&w->log, &w->provider, CPX_ROLE_PROVIDER);
    fx_decide(&w->log, &w->provider, &w->op, 1);
    for (int i = 0; i < orders; i++) {
        fx_order(&w->log, &w->buyer, i);
        w->bill_seq = fx_bill(&w->log, i);
    }
    struct cpx_keypair next;
    cpx_keypair_generate(&next);
    w->rotation_seq = fx_rotate(&w->log, &w->buyer, &next);
    w->order_seq = fx_order(&w->log, &w->buyer, 1000);
    fx_bill(&w->log, 1000);
    for (uint64_t s = 10; s <= w->log.n; s += 10)
        w->cps[w->n_cps++] = s;
    if (w->cps[w->n_cps - 1] != w->log.n)
        w->cps[w->n_cps++] = w->log.n;
}

/* What to serve the auditor. */
struct serve {
    const struct fx_log *log;    /* records (possibly tampered) */
    const size_t *order;         /* served order of record indices; NULL: 0..n-1 */
    size_t n;                    /* records served */
    const struct fx_log *leaves; /* leaf hashes to claim (the log as committed); NULL: none */
    const char *const *notes;    /* checkpoints to feed first */
    const size_t *note_lens;     /* their lengths */
    size_t n_notes;              /* how many */
};

/* Runs an audit over what is served and returns it (finished). */
static struct cpx_audit *run_audit(const struct fx_log *keys, const struct serve *s,
                                   enum cpx_audit_sigmode mode)
{
    struct cpx_audit_config cfg = fx_config(keys, mode);
    struct cpx_audit *a = cpx_audit_new(&cfg);
    assert_non_null(a);
    for (size_t i = 0; i < s->n_notes; i++)
        assert_int_equal(cpx_audit_checkpoint(a, s->notes[i], s->note_lens[i]), CPX_AUDIT_OK);
    struct cpx_record scratch;
    cpx_record_init(&scratch);
    for (size_t i = 0; i < s->n; i++) {
        size_t k = s->order ? s->order[i] : i;
        uint8_t leaf[32];
        if (s->leaves != NULL)
            fx_leaf(s->leaves, i, leaf);
        struct cpx_audit_sigjob job;
        enum cpx_audit_status st =
            cpx_audit_record(a, s->log->rec[k], s->log->len[k], s->leaves ? leaf : NULL, &job);
        if (st == CPX_AUDIT_DEFERRED) {
            if (!cpx_audit_sigjob_verify(&scratch, s->log->rec[k], s->log->len[k], &job))
                cpx_audit_sigjob_failed(a, &job);
        } else {
            assert_int_equal(st, CPX_AUDIT_OK);
        }
    }
    cpx_record_free(&scratch);
    cpx_audit_finish(a);
    return a;
}

/* Checkpoint notes of w at its checkpoint sizes. */
struct notes {
    char text[16][512];
    const char *ptr[16];
    size_t len[16];
    size_t n;
};

static void make_notes(const struct world *w, struct notes *n)
{
    n->n = w->n_cps;
    for (size_t i = 0; i < w->n_cps; i++) {
        n->len[i] = fx_checkpoint(&w->log, w->cps[i], NULL, NULL, n->text[i], 512);
        n->ptr[i] = n->text[i];
    }
}

/* Asserts the audit's failures are exactly want[0..n) as (seq, reason) pairs. */
static void expect_failures(const struct cpx_audit *a, const uint64_t (*want)[2], size_t n)
{
    size_t got_n;
    const struct cpx_audit_failure *got = cpx_audit_failures(a, &got_n);
    for (size_t i = 0; i < got_n; i++)
        print_message("  failure: seq %llu %s: %s\n", (unsigned long long)got[i].seq,
                      cpx_audit_reason_code(got[i].reason), got[i].message);
    assert_int_equal(got_n, n);
    assert_int_equal(cpx_audit_failure_total(a), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].seq, want[i][0]);
        assert_int_equal(got[i].reason, want[i][1]);
    }
}

/* Copies record i of l, changing byte `at` to c. */
static void set_byte(struct fx_log *l, size_t i, size_t at, char c)
{
    assert_true(at < l->len[i]);
    l->rec[i][at] = (uint8_t)c;
}

/* The offset of needle in record i (must be there). */
static size_t find_in(const struct fx_log *l, size_t i, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t k = 0; k + n <= l->len[i]; k++)
        if (memcmp(l->rec[i] + k, needle, n) == 0)
            return k;
    fail_msg("\"%s\" not in record %zu", needle, i);
    return 0;
}

static void test_honest_ledger_passes(void **state)
{
    (void)state;
    struct world w;
    struct notes n;
    build_world(&w, 20);
    make_notes(&w, &n);
    struct serve s = { &w.log, NULL, w.log.n, &w.log, n.ptr, n.len, n.n };
    enum cpx_audit_sigmode modes[] = { CPX_AUDIT_SIGS_SKIP, CPX_AUDIT_SIGS_INLINE,
                                       CPX_AUDIT_SIGS_DEFER };
    for (int m = 0; m < 3; m++) {
        struct cpx_audit *a = run_audit(&w.log, &s, modes[m]);
        expect_failures(a, NULL, 0);
        uint64_t size;
        uint8_t root[32];
        assert_true(cpx_audit_verified(a, &size, root));
        assert_int_equal(size, w.log.n);
        assert_int_equal(cpx_audit_records(a), w.log.n);
        cpx_audit_free(a);
    }
    /* Checkpoints fed between the records, in order, work the same. */
    struct cpx_audit_config cfg = fx_config(&w.log, CPX_AUDIT_SIGS_INLINE);
    struct cpx_audit *a = cpx_audit_new(&cfg);
    size_t next_cp = 0;
    for (size_t i = 0; i < w.log.n; i++) {
        while (next_cp < n.n && w.cps[next_cp] == i)
            cpx_audit_checkpoint(a, n.ptr[next_cp], n.len[next_cp]), next_cp++;
        assert_int_equal(cpx_audit_record(a, w.log.rec[i], w.log.len[i], NULL, NULL), CPX_AUDIT_OK);
    }
    for (; next_cp < n.n; next_cp++)
        assert_int_equal(cpx_audit_checkpoint(a, n.ptr[next_cp], n.len[next_cp]), CPX_AUDIT_OK);
    /* A checkpoint older than the records fed cannot be checked any more: a caller error. */
    assert_int_equal(cpx_audit_checkpoint(a, n.ptr[0], n.len[0]), CPX_AUDIT_E_ORDER);
    cpx_audit_finish(a);
    expect_failures(a, NULL, 0);
    cpx_audit_free(a);
    fx_log_free(&w.log);
}

static void test_changed_byte(void **state)
{
    (void)state;
    struct world w;
    struct notes n;
    build_world(&w, 20);
    make_notes(&w, &n);
    struct fx_log *l = &w.log;

    /* 1. A digit of a bill's amount: still canonical, only the leaf changes. With the leaf
     * hashes the log committed to, the auditor names the record. */
    size_t at = find_in(l, w.bill_seq, "\"amount\":10000") + 14;
    char orig = (char)l->rec[w.bill_seq][at];
    set_byte(l, w.bill_seq, at, orig == '9' ? '8' : orig + 1);
    struct serve s = { l, NULL, l->n, NULL, n.ptr, n.len, n.n };
    /* Without leaf hashes: the checkpoint covering it fails, and all after it. */
    struct cpx_audit *a = run_audit(l, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t cp_after = 0;
    for (size_t i = n.n; i-- > 0;)
        if (w.cps[i] > w.bill_seq)
            cp_after = w.cps[i];
    size_t nf;
    const struct cpx_audit_failure *f = cpx_audit_failures(a, &nf);
    assert_true(nf >= 1);
    assert_int_equal(f[0].seq, cp_after);
    assert_int_equal(f[0].reason, CPX_AUDIT_ROOT_MISMATCH);
    for (size_t i = 0; i < nf; i++)
        assert_int_equal(f[i].reason, CPX_AUDIT_ROOT_MISMATCH);
    cpx_audit_free(a);
    set_byte(l, w.bill_seq, at, orig);

    /* With the committed leaf hashes served alongside, exactly that record is named. */
    struct fx_log tampered = *l; /* shares the record arrays; one record is swapped below */
    uint8_t *copy = malloc(l->len[w.bill_seq]);
    memcpy(copy, l->rec[w.bill_seq], l->len[w.bill_seq]);
    copy[at] = (uint8_t)(orig == '9' ? '8' : orig + 1);
    uint8_t **recs = malloc(l->n * sizeof *recs);
    memcpy(recs, l->rec, l->n * sizeof *recs);
    recs[w.bill_seq] = copy;
    tampered.rec = recs;
    s.log = &tampered;
    s.leaves = l;
    a = run_audit(l, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want1[][2] = { { w.bill_seq, CPX_AUDIT_LEAF_MISMATCH } };
    expect_failures(a, want1, 1);
    cpx_audit_free(a);

    /* 2. A byte of an order's signed body (inside its base64): the party signature fails. */
    at = find_in(l, w.order_seq, "\"body\":\"") + 20;
    free(copy);
    copy = malloc(l->len[w.order_seq]);
    memcpy(copy, l->rec[w.order_seq], l->len[w.order_seq]);
    copy[at] = copy[at] == 'A' ? 'B' : 'A';
    recs[w.bill_seq] = l->rec[w.bill_seq];
    recs[w.order_seq] = copy;
    a = run_audit(l, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want2[][2] = { { w.order_seq, CPX_AUDIT_PARTY_SIG },
                            { w.order_seq, CPX_AUDIT_LEAF_MISMATCH } };
    expect_failures(a, want2, 2);
    cpx_audit_free(a);
    /* The same with signatures deferred to the caller. */
    a = run_audit(l, &s, CPX_AUDIT_SIGS_DEFER);
    expect_failures(a, want2, 2);
    cpx_audit_free(a);

    /* 3. A byte that breaks the canonical form (a space for a colon). */
    at = find_in(l, w.order_seq, "\"kind\":") + 6;
    memcpy(copy, l->rec[w.order_seq], l->len[w.order_seq]);
    copy[at] = ' ';
    a = run_audit(l, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want3[][2] = { { w.order_seq, CPX_AUDIT_CANONICAL },
                            { w.order_seq, CPX_AUDIT_LEAF_MISMATCH } };
    expect_failures(a, want3, 2);
    cpx_audit_free(a);
    free(copy);
    free(recs);
    fx_log_free(&w.log);
}

static void test_forged_party_signature(void **state)
{
    (void)state;
    /* The exchange itself logs an order the buyer never signed: signed by another key. The
     * tree and checkpoints are honest about it, so only the signature can tell. */
    struct world w;
    build_world(&w, 5);
    struct fx_party forger = w.buyer;
    cpx_keypair_generate(&forger.kp); /* same id, wrong key */
    uint64_t forged = fx_order(&w.log, &forger, 77);
    fx_order(&w.log, &w.buyer, 78);
    w.cps[w.n_cps++] = w.log.n;
    struct notes n;
    make_notes(&w, &n);
    struct serve s = { &w.log, NULL, w.log.n, &w.log, n.ptr, n.len, n.n };
    struct cpx_audit *a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want[][2] = { { forged, CPX_AUDIT_PARTY_SIG } };
    expect_failures(a, want, 1);
    cpx_audit_free(a);
    a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_DEFER);
    expect_failures(a, want, 1);
    cpx_audit_free(a);
    /* Structure only: not checked, not reported. */
    a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_SKIP);
    expect_failures(a, NULL, 0);
    cpx_audit_free(a);
    fx_log_free(&w.log);
}

static void test_dropped_record(void **state)
{
    (void)state;
    struct world w;
    struct notes n;
    build_world(&w, 20);
    make_notes(&w, &n);
    size_t order[128], k = 0;
    uint64_t dropped = 23;
    for (size_t i = 0; i < w.log.n; i++)
        if (i != dropped)
            order[k++] = i;
    struct serve s = { &w.log, order, k, NULL, n.ptr, n.len, n.n };
    struct cpx_audit *a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    size_t nf;
    const struct cpx_audit_failure *f = cpx_audit_failures(a, &nf);
    assert_true(nf >= 2);
    assert_int_equal(f[0].seq, dropped);
    assert_int_equal(f[0].reason, CPX_AUDIT_SEQ_GAP);
    /* Every checkpoint past the gap fails; the one before it holds. */
    for (size_t i = 1; i < nf; i++) {
        assert_true(f[i].seq > dropped);
        assert_true(f[i].reason == CPX_AUDIT_ROOT_MISMATCH ||
                    f[i].reason == CPX_AUDIT_CHECKPOINT_BEYOND);
    }
    uint64_t size;
    uint8_t root[32];
    assert_true(cpx_audit_verified(a, &size, root));
    assert_int_equal(size, 20);
    cpx_audit_free(a);
    fx_log_free(&w.log);
}

static void test_reordered_records(void **state)
{
    (void)state;
    struct world w;
    struct notes n;
    build_world(&w, 20);
    make_notes(&w, &n);
    size_t order[128];
    for (size_t i = 0; i < w.log.n; i++)
        order[i] = i;
    order[31] = 32;
    order[32] = 31;
    struct serve s = { &w.log, order, w.log.n, NULL, n.ptr, n.len, n.n };
    struct cpx_audit *a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    size_t nf;
    const struct cpx_audit_failure *f = cpx_audit_failures(a, &nf);
    assert_true(nf >= 4);
    assert_int_equal(f[0].seq, 31);
    assert_int_equal(f[0].reason, CPX_AUDIT_SEQ_GAP); /* 32 came where 31 belongs */
    assert_int_equal(f[1].seq, 31);
    assert_int_equal(f[1].reason, CPX_AUDIT_SEQ_ORDER); /* then 31, late */
    assert_int_equal(f[2].seq, 31);
    assert_int_equal(f[2].reason, CPX_AUDIT_TS_ORDER); /* and earlier than 32 */
    assert_int_equal(f[3].seq, 40);
    assert_int_equal(f[3].reason, CPX_AUDIT_ROOT_MISMATCH);
    cpx_audit_free(a);
    fx_log_free(&w.log);
}

static void test_checkpoint_by_another_key(void **state)
{
    (void)state;
    struct world w;
    struct notes n;
    build_world(&w, 20);
    make_notes(&w, &n);
    struct cpx_keypair impostor;
    cpx_keypair_generate(&impostor);
    /* The checkpoint at 30 is swapped for one of the same tree signed by another key. */
    n.len[2] = fx_checkpoint(&w.log, 30, &impostor, NULL, n.text[2], 512);
    struct serve s = { &w.log, NULL, w.log.n, NULL, n.ptr, n.len, n.n };
    struct cpx_audit *a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want[][2] = { { 30, CPX_AUDIT_CHECKPOINT_SIG } };
    expect_failures(a, want, 1);
    cpx_audit_free(a);
    /* One by the right key for another log's origin. */
    make_notes(&w, &n);
    n.len[1] = fx_checkpoint(&w.log, 20, NULL, "other.example/log", n.text[1], 512);
    a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want2[][2] = { { 20, CPX_AUDIT_CHECKPOINT_SIG } }; /* other name: unknown key */
    expect_failures(a, want2, 1);
    cpx_audit_free(a);
    /* The right key, but the auditor expects another log's origin. */
    make_notes(&w, &n);
    struct cpx_audit_config cfg = fx_config(&w.log, CPX_AUDIT_SIGS_INLINE);
    snprintf(cfg.origin, sizeof cfg.origin, "cpx.test/other-ledger");
    a = cpx_audit_new(&cfg);
    assert_int_equal(cpx_audit_checkpoint(a, n.ptr[0], n.len[0]), CPX_AUDIT_OK);
    cpx_audit_finish(a);
    uint64_t want_origin[][2] = { { 10, CPX_AUDIT_CHECKPOINT_ORIGIN } };
    expect_failures(a, want_origin, 1);
    cpx_audit_free(a);
    /* A checkpoint with the right key but a root for a different history. */
    make_notes(&w, &n);
    struct fx_log other = w.log;
    uint8_t *copy = malloc(w.log.len[5]);
    memcpy(copy, w.log.rec[5], w.log.len[5]);
    copy[w.log.len[5] - 2] = '2'; /* "v":1 -> "v":2 */
    uint8_t **recs = malloc(w.log.n * sizeof *recs);
    memcpy(recs, w.log.rec, w.log.n * sizeof *recs);
    recs[5] = copy;
    other.rec = recs;
    n.len[0] = fx_checkpoint(&other, 10, NULL, NULL, n.text[0], 512);
    a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want3[][2] = { { 10, CPX_AUDIT_ROOT_MISMATCH } };
    expect_failures(a, want3, 1);
    cpx_audit_free(a);
    free(copy);
    free(recs);
    /* A checkpoint claiming more records than served. */
    make_notes(&w, &n);
    s.n = w.log.n - 3;
    a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want4[][2] = { { w.log.n, CPX_AUDIT_CHECKPOINT_BEYOND } };
    expect_failures(a, want4, 1);
    cpx_audit_free(a);
    /* Garbage instead of a checkpoint. */
    s.n = w.log.n;
    const char *junk = "not a note";
    const char *one[1] = { junk };
    size_t one_len[1] = { strlen(junk) };
    s.notes = one;
    s.note_lens = one_len;
    s.n_notes = 1;
    a = run_audit(&w.log, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want5[][2] = { { 0, CPX_AUDIT_CHECKPOINT_SIG } };
    expect_failures(a, want5, 1);
    cpx_audit_free(a);
    fx_log_free(&w.log);
}

/* Runs the first part of an audit over records [0, upto) with a checkpoint at upto and returns
 * the saved state (heap, NUL-terminated). */
static char *first_run(const struct world *w, uint64_t upto)
{
    struct cpx_audit_config cfg = fx_config(&w->log, CPX_AUDIT_SIGS_INLINE);
    struct cpx_audit *a = cpx_audit_new(&cfg);
    char note[512];
    size_t len = fx_checkpoint(&w->log, upto, NULL, NULL, note, sizeof note);
    assert_int_equal(cpx_audit_checkpoint(a, note, len), CPX_AUDIT_OK);
    for (uint64_t i = 0; i < upto; i++)
        cpx_audit_record(a, w->log.rec[i], w->log.len[i], NULL, NULL);
    cpx_audit_finish(a);
    expect_failures(a, NULL, 0);
    struct cpx_canon_writer wr;
    cpx_canon_writer_init(&wr);
    assert_int_equal(cpx_audit_state_write(a, &wr), CPX_CANON_OK);
    const uint8_t *out;
    size_t n;
    assert_int_equal(cpx_canon_writer_finish(&wr, &out, &n), CPX_CANON_OK);
    char *state = malloc(n + 1);
    memcpy(state, out, n);
    state[n] = '\0';
    cpx_canon_writer_free(&wr);
    cpx_audit_free(a);
    return state;
}

/* The second run: load state, check a consistency proof to the checkpoint at the end of `serve`,
 * feed the records from `from` on. */
static struct cpx_audit *second_run(const struct world *w, const char *state,
                                    const struct fx_log *serve, const char *note, size_t note_len,
                                    const struct cpx_consistency_proof *proof, uint64_t from)
{
    struct cpx_audit_config cfg = fx_config(&w->log, CPX_AUDIT_SIGS_INLINE);
    struct cpx_audit *a = cpx_audit_new(&cfg);
    assert_null(cpx_audit_state_load(a, state, strlen(state)));
    assert_int_equal(cpx_audit_records(a), from);
    assert_int_equal(cpx_audit_consistency(a, note, note_len, proof), CPX_AUDIT_OK);
    for (uint64_t i = from; i < serve->n; i++)
        cpx_audit_record(a, serve->rec[i], serve->len[i], NULL, NULL);
    cpx_audit_finish(a);
    return a;
}

static void test_state_and_consistency(void **state_)
{
    (void)state_;
    struct world w;
    build_world(&w, 30);
    uint64_t mid = 50, end = w.log.n;
    char *state = first_run(&w, mid);

    /* Honest continuation: the proof holds and the new records rebuild the new root. */
    struct cpx_merkle_tree t;
    fx_tree(&w.log, end, &t);
    struct cpx_merkle_store store = cpx_merkle_tree_store(&t);
    struct cpx_consistency_proof proof;
    assert_int_equal(cpx_merkle_consistency_proof(&store, NULL, mid, end, &proof), CPX_MERKLE_OK);
    char note[512];
    size_t nlen = fx_checkpoint(&w.log, end, NULL, NULL, note, sizeof note);
    struct cpx_audit *a = second_run(&w, state, &w.log, note, nlen, &proof, mid);
    expect_failures(a, NULL, 0);
    uint64_t size;
    uint8_t root[32];
    assert_true(cpx_audit_verified(a, &size, root));
    assert_int_equal(size, end);
    cpx_audit_free(a);

    /* A forged proof (one bit) for the honest checkpoint. */
    proof.hashes[0][0] ^= 1;
    a = second_run(&w, state, &w.log, note, nlen, &proof, mid);
    uint64_t want[][2] = { { end, CPX_AUDIT_CONSISTENCY } };
    expect_failures(a, want, 1);
    cpx_audit_free(a);
    cpx_merkle_tree_free(&t);

    /* A rewritten history: record 10 changed after the first run, the exchange signs the new
     * tree and serves a proof computed from it. The proof cannot connect to the saved root. */
    struct fx_log rewritten = w.log;
    uint8_t **recs = malloc(w.log.n * sizeof *recs);
    memcpy(recs, w.log.rec, w.log.n * sizeof *recs);
    size_t at = find_in(&w.log, 11, "\"amount\":") + 10;
    uint8_t *copy = malloc(w.log.len[11]);
    memcpy(copy, w.log.rec[11], w.log.len[11]);
    copy[at] = copy[at] == '9' ? '8' : copy[at] + 1;
    recs[11] = copy;
    rewritten.rec = recs;
    fx_tree(&rewritten, end, &t);
    store = cpx_merkle_tree_store(&t);
    assert_int_equal(cpx_merkle_consistency_proof(&store, NULL, mid, end, &proof), CPX_MERKLE_OK);
    nlen = fx_checkpoint(&rewritten, end, NULL, NULL, note, sizeof note);
    a = second_run(&w, state, &rewritten, note, nlen, &proof, mid);
    uint64_t want2[][2] = { { end, CPX_AUDIT_CONSISTENCY } };
    expect_failures(a, want2, 1);
    cpx_audit_free(a);
    cpx_merkle_tree_free(&t);
    free(copy);
    free(recs);

    /* The saved state round-trips and refuses tampering. */
    struct cpx_audit_config cfg = fx_config(&w.log, CPX_AUDIT_SIGS_INLINE);
    a = cpx_audit_new(&cfg);
    assert_null(cpx_audit_state_load(a, state, strlen(state)));
    struct cpx_canon_writer wr;
    cpx_canon_writer_init(&wr);
    cpx_audit_state_write(a, &wr);
    const uint8_t *out;
    size_t n;
    assert_int_equal(cpx_canon_writer_finish(&wr, &out, &n), CPX_CANON_OK);
    assert_int_equal(n, strlen(state));
    assert_memory_equal(out, state, n);
    cpx_canon_writer_free(&wr);
    assert_non_null(cpx_audit_state_load(a, state, strlen(state))); /* not fresh any more */
    cpx_audit_free(a);
    a = cpx_audit_new(&cfg);
    assert_non_null(cpx_audit_state_load(a, "{}", 2));
    cpx_audit_free(a);
    a = cpx_audit_new(&cfg);
    char *bad = strdup(state);
    bad[strlen(bad) - 1] = ' ';
    assert_non_null(cpx_audit_state_load(a, bad, strlen(bad)));
    free(bad);
    cpx_audit_free(a);
    /* A state belongs to one ledger: an auditor of another origin refuses it. */
    struct cpx_audit_config other = cfg;
    snprintf(other.origin, sizeof other.origin, "other.example/ledger");
    a = cpx_audit_new(&other);
    const char *why = cpx_audit_state_load(a, state, strlen(state));
    assert_non_null(why);
    assert_non_null(strstr(why, "another ledger"));
    cpx_audit_free(a);
    free(state);
    fx_log_free(&w.log);
}

/* A ledger that breaks one identity or party rule, and the finding it must produce. */
static void test_identity_rules(void **state)
{
    (void)state;
    struct fx_log l;
    struct fx_party op, buyer, provider, pending, stranger;
    fx_log_init(&l);
    fx_party_new(&op);
    fx_party_new(&buyer);
    fx_party_new(&provider);
    fx_party_new(&pending);
    fx_party_new(&stranger);
    fx_register_exchange(&l, &op, CPX_ROLE_OPERATOR);
    fx_decide(&l, &op, NULL, 1);
    fx_register(&l, &buyer, CPX_ROLE_BUYER);
    fx_decide(&l, &buyer, &op, 1);
    fx_register(&l, &provider, CPX_ROLE_PROVIDER);
    fx_decide(&l, &provider, &op, 1);
    fx_register(&l, &pending, CPX_ROLE_BUYER);
    uint64_t s_unknown = fx_order(&l, &stranger, 1);
    uint64_t s_pending = fx_order(&l, &pending, 2);
    uint64_t s_role = fx_order(&l, &provider, 3);
    uint64_t s_dup = fx_register(&l, &buyer, CPX_ROLE_BUYER);
    uint64_t s_by_buyer = fx_decide(&l, &pending, &buyer, 1); /* not an operator */
    uint64_t s_again = fx_decide(&l, &buyer, &op, 0);         /* already approved */
    uint64_t s_bill_party = fx_append(&l, "bill", "{\"amount\":1}", &buyer, "POST", "/v1/x", "");
    uint64_t s_no_party = fx_append(&l, "order", "{\"id\":\"ord_1\"}", NULL, NULL, NULL, NULL);
    uint64_t s_kind = fx_append(&l, "teleport", "{}", NULL, NULL, NULL, NULL);
    /* A rotation whose body does not carry the new key. */
    char newk[45], oldk[45], payload[256], target[128];
    struct cpx_keypair next;
    cpx_keypair_generate(&next);
    cpx_public_key_encode(next.pk, newk);
    cpx_public_key_encode(buyer.kp.pk, oldk);
    snprintf(payload, sizeof payload,
             "{\"id\":\"%s\",\"new_public_key\":\"%s\",\"old_public_key\":\"%s\"}", buyer.id, newk,
             oldk);
    snprintf(target, sizeof target, "/v1/identities/%s/keys", buyer.id);
    uint64_t s_body = fx_append(&l, "key_rotation", payload, &buyer, "POST", target, "{}");
    /* The rotation took effect: an order signed with the old key fails. */
    uint64_t s_old_key = fx_order(&l, &buyer, 4);
    /* An identity whose id is not derived from its key. */
    char bad_identity[512], pk64[45];
    cpx_public_key_encode(stranger.kp.pk, pk64);
    snprintf(bad_identity, sizeof bad_identity,
             "{\"id\":\"%s\",\"name\":\"X\",\"public_key\":\"%s\",\"reg_no\":\"1\","
             "\"roles\":[\"buyer\"]}",
             op.id, pk64);
    uint64_t s_payload = fx_append(&l, "identity", bad_identity, NULL, NULL, NULL, NULL);
    l.ts_ms -= 10; /* the exchange's clock went back */
    uint64_t s_ts = fx_bill(&l, 5);
    l.ts_ms += 20;
    uint64_t s_envelope = l.n;
    fx_append(&l, "bill", "{\"amount\":2}", NULL, NULL, NULL, NULL);
    l.rec[s_envelope][l.len[s_envelope] - 2] = '2'; /* "v":2 */

    char note[512];
    size_t nlen = fx_checkpoint(&l, l.n, NULL, NULL, note, sizeof note);
    const char *notes[1] = { note };
    size_t lens[1] = { nlen };
    struct serve s = { &l, NULL, l.n, NULL, notes, lens, 1 };
    struct cpx_audit *a = run_audit(&l, &s, CPX_AUDIT_SIGS_INLINE);
    uint64_t want[][2] = {
        { s_unknown, CPX_AUDIT_PARTY_UNKNOWN },
        { s_pending, CPX_AUDIT_PARTY_STATUS },
        { s_role, CPX_AUDIT_PARTY_STATUS },
        { s_dup, CPX_AUDIT_IDENTITY },
        { s_by_buyer, CPX_AUDIT_PARTY_STATUS },
        { s_again, CPX_AUDIT_IDENTITY },
        { s_bill_party, CPX_AUDIT_PARTY_UNEXPECTED },
        { s_no_party, CPX_AUDIT_PARTY_MISSING },
        { s_kind, CPX_AUDIT_UNKNOWN_KIND },
        { s_body, CPX_AUDIT_BODY_MISMATCH },
        { s_old_key, CPX_AUDIT_PARTY_SIG },
        { s_payload, CPX_AUDIT_PAYLOAD },
        { s_ts, CPX_AUDIT_TS_ORDER },
        { s_envelope, CPX_AUDIT_ENVELOPE },
    };
    expect_failures(a, want, sizeof want / sizeof want[0]);
    /* Every reason has a distinct code. */
    for (int r = CPX_AUDIT_CANONICAL; r <= CPX_AUDIT_TS_ORDER; r++)
        for (int q = CPX_AUDIT_CANONICAL; q < r; q++)
            assert_string_not_equal(cpx_audit_reason_code((enum cpx_audit_reason)r),
                                    cpx_audit_reason_code((enum cpx_audit_reason)q));
    cpx_audit_free(a);
    fx_log_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_ledger_passes),
        cmocka_unit_test(test_changed_byte),
        cmocka_unit_test(test_forged_party_signature),
        cmocka_unit_test(test_dropped_record),
        cmocka_unit_test(test_reordered_records),
        cmocka_unit_test(test_checkpoint_by_another_key),
        cmocka_unit_test(test_state_and_consistency),
        cmocka_unit_test(test_identity_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
