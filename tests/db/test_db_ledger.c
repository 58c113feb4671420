/*
 * The ledger writer against a real PostgreSQL: batches of every size append gap-free records
 * whose stored full nodes are exactly the in-memory tree's, a rolled-back or retried batch leaves
 * nothing behind, every batch signs a checkpoint of the right root, and record timestamps never
 * go back even when the head's clock is ahead of ours.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/db.h"
#include "server/db_ledger.h"
#include "server/ledger_writer.h"
#include "server/log.h"
#include "server/migrate.h"
#include "tests/support/testenv.h"

#define ORIGIN "db.test/ledger"

static char url[512];
static struct db_pool *pool;
static struct ledger_signer signer;

static int setup(void **state)
{
    (void)state;
    log_set_level(LOG_ERROR);
    test_db_create(url);
    PGconn *pg = test_db_connect(url);
    int applied;
    char *err;
    assert_int_equal(migrate(pg, cpx_migrations, cpx_migrations_count, &applied, &err), 0);
    PQfinish(pg);
    pool = db_pool_open(url, 2, 2000, &err);
    assert_non_null(pool);
    memset(&signer, 0, sizeof signer);
    snprintf(signer.origin, sizeof signer.origin, ORIGIN);
    cpx_keypair_generate(&signer.kp);
    assert_true(cpx_note_verifier_init(&signer.verifier, ORIGIN, signer.kp.pk));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    db_pool_close(pool);
    return 0;
}

/* A batch of n exchange records; fail_first makes the first attempt end in DB_SOFT. */
struct append_job {
    struct ledger_batch b;
    int n;
    int attempts;
    bool fail_first;
    bool roll_back; /* end every attempt with an error after appending */
};

static enum db_status append_tx(struct db_conn *c, void *arg)
{
    struct append_job *j = arg;
    ledger_batch_reset(&j->b);
    j->attempts++;
    for (int i = 0; i < j->n; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        uint64_t seq;
        enum db_status st = ledger_append(c, &j->b, CPX_KIND_BILL, NULL, (const uint8_t *)payload,
                                          (size_t)len, &seq);
        if (st != DB_OK)
            return st;
    }
    if (j->roll_back)
        return DB_NO_ROWS;
    if (j->fail_first && j->attempts == 1)
        return DB_SOFT;
    return ledger_batch_commit(c, &j->b);
}

static enum db_status run_batch(int n, bool fail_first, bool roll_back, int *attempts)
{
    struct append_job j = { .n = n, .fail_first = fail_first, .roll_back = roll_back };
    ledger_batch_init(&j.b, &signer);
    enum db_status st = db_transact(pool, DB_SERIALIZABLE, append_tx, &j);
    ledger_batch_free(&j.b);
    if (attempts != NULL)
        *attempts = j.attempts;
    return st;
}

/* Compares every stored node, record and the latest checkpoint with an in-memory rebuild. */
static void check_against_memory(uint64_t want_size)
{
    PGconn *pg = test_db_connect(url);
    PGresult *r = PQexecParams(pg, "SELECT seq, record FROM ledger_records ORDER BY seq", 0, NULL,
                               NULL, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal((uint64_t)PQntuples(r), want_size);
    struct cpx_merkle_tree t;
    assert_int_equal(cpx_merkle_tree_init(&t), 0);
    int64_t last_ts = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        struct cpx_record rec;
        cpx_record_init(&rec);
        const char *bytes = PQgetvalue(r, i, 1);
        size_t len = (size_t)PQgetlength(r, i, 1);
        assert_int_equal(cpx_record_decode(&rec, bytes, len), CPX_RECORD_OK);
        assert_int_equal(rec.seq, (uint64_t)i);
        assert_true(rec.ts >= last_ts);
        last_ts = rec.ts;
        cpx_record_free(&rec);
        assert_int_equal(cpx_merkle_tree_append(&t, bytes, len), 0);
    }
    PQclear(r);
    r = PQexecParams(pg, "SELECT level, idx, hash FROM ledger_nodes", 0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    uint64_t want_nodes = 0;
    for (unsigned l = 0; l < CPX_MERKLE_MAX_LEVELS; l++)
        want_nodes += want_size >> l;
    assert_int_equal((uint64_t)PQntuples(r), want_nodes);
    for (int i = 0; i < PQntuples(r); i++) {
        char *l = PQgetvalue(r, i, 0), *x = PQgetvalue(r, i, 1);
        unsigned level = ((unsigned)(uint8_t)l[0] << 8) | (uint8_t)l[1];
        uint64_t idx = 0;
        for (int k = 0; k < 8; k++)
            idx = (idx << 8) | (uint8_t)x[k];
        assert_true(level < CPX_MERKLE_MAX_LEVELS && idx < t.size >> level);
        assert_memory_equal(PQgetvalue(r, i, 2), t.levels[level].h[idx], CPX_HASH_LEN);
    }
    PQclear(r);
    if (want_size > 0) {
        r = PQexec(pg, "SELECT note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1");
        assert_int_equal(PQntuples(r), 1);
        struct cpx_checkpoint cp;
        const char *note = PQgetvalue(r, 0, 0);
        assert_int_equal(cpx_checkpoint_open(note, strlen(note), &signer.verifier, &cp),
                         CPX_NOTE_OK);
        uint8_t root[CPX_HASH_LEN];
        assert_int_equal(cp.size, want_size);
        cpx_merkle_tree_root(&t, root);
        assert_memory_equal(cp.root, root, CPX_HASH_LEN);
        PQclear(r);
    }
    cpx_merkle_tree_free(&t);
    PQfinish(pg);
}

static void batches_of_every_size(void **state)
{
    (void)state;
    uint64_t size = 0;
    const int sizes[] = { 1, 1, 2, 3, 7, 1, 16, 33, 64, 1, 255, 1000, 5 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(run_batch(sizes[i], false, false, NULL), DB_OK);
        size += (uint64_t)sizes[i];
        check_against_memory(size);
    }
    assert_int_equal(test_db_scalar(url, "SELECT count(*) FROM ledger_checkpoints"),
                     sizeof sizes / sizeof sizes[0]);
    assert_int_equal(test_db_scalar(url, "SELECT size FROM ledger_head"), size);
}

static void rolled_back_and_retried_batches_leave_nothing(void **state)
{
    (void)state;
    uint64_t size = (uint64_t)test_db_scalar(url, "SELECT size FROM ledger_head");
    assert_int_equal(run_batch(10, false, true, NULL), DB_NO_ROWS);
    check_against_memory(size);
    int attempts = 0;
    assert_int_equal(run_batch(10, true, false, &attempts), DB_OK);
    assert_int_equal(attempts, 2);
    check_against_memory(size + 10);
}

static void timestamps_never_go_back(void **state)
{
    (void)state;
    uint64_t size = (uint64_t)test_db_scalar(url, "SELECT size FROM ledger_head");
    /* a clock an hour ahead of ours wrote the last record */
    int64_t ahead = (int64_t)test_db_scalar(url, "SELECT ts_ms FROM ledger_head") + 3600000;
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE ledger_head SET ts_ms = %" PRId64, ahead);
    test_db_exec(url, sql);
    assert_int_equal(run_batch(3, false, false, NULL), DB_OK);
    check_against_memory(size + 3);
    assert_true(test_db_scalar(url, "SELECT min(ts_ms) FROM ledger_records WHERE seq >= "
                                    "(SELECT size - 3 FROM ledger_head)") >= ahead);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batches_of_every_size),
        cmocka_unit_test(rolled_back_and_retried_batches_leave_nothing),
        cmocka_unit_test(timestamps_never_go_back),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
