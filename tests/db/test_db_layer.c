/*
 * The database layer against a real PostgreSQL: migrations, the schema's constraints, every
 * identity query, idempotency and signature records, the transaction runner's retries of real
 * serialization failures, and reconnection after the server drops a connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/keyfile.h"
#include "server/db.h"
#include "server/db_identities.h"
#include "server/log.h"
#include "server/migrate.h"
#include "tests/support/testenv.h"

static char url[512];
static struct db_pool *pool;

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
    pool = db_pool_open(url, 4, 2000, &err);
    assert_non_null(pool);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    db_pool_close(pool);
    return 0;
}

static void migrations_apply_once_and_detect_edits(void **state)
{
    (void)state;
    char fresh[512];
    test_db_create(fresh);
    PGconn *pg = test_db_connect(fresh);
    int applied;
    char *err = NULL;
    assert_int_equal(migrate(pg, cpx_migrations, cpx_migrations_count, &applied, &err), 0);
    assert_int_equal(applied, (int)cpx_migrations_count);
    assert_int_equal(migrate(pg, cpx_migrations, cpx_migrations_count, &applied, &err), 0);
    assert_int_equal(applied, 0); /* again: a no-op */

    /* An edited migration is refused, and nothing is applied. */
    struct migration edited[16];
    assert_true(cpx_migrations_count <= 16);
    memcpy(edited, cpx_migrations, cpx_migrations_count * sizeof edited[0]);
    edited[0].sql = "SELECT 1";
    edited[0].len = 8;
    assert_int_equal(migrate(pg, edited, cpx_migrations_count, &applied, &err), -1);
    assert_non_null(strstr(err, "changed after it was applied"));
    free(err);

    /* A database newer than the binary is refused. */
    test_db_exec(fresh, "INSERT INTO schema_migrations (name, sha256) VALUES ('9999_future.sql', "
                        "'00')");
    assert_int_equal(migrate(pg, cpx_migrations, cpx_migrations_count, &applied, &err), -1);
    assert_non_null(strstr(err, "9999_future.sql"));
    free(err);

    /* A failing migration leaves nothing behind. */
    char other[512];
    test_db_create(other);
    PGconn *pg2 = test_db_connect(other);
    struct migration broken[17];
    memcpy(broken, cpx_migrations, cpx_migrations_count * sizeof broken[0]);
    broken[cpx_migrations_count] =
        (struct migration){ "9000_broken.sql", "CREATE TABLE x (y nosuchtype)", 29 };
    assert_int_equal(migrate(pg2, broken, cpx_migrations_count + 1, &applied, &err), -1);
    free(err);
    assert_int_equal(test_db_scalar(other, "SELECT count(*) FROM pg_tables WHERE tablename = "
                                           "'identities'"),
                     0);
    PQfinish(pg2);
    PQfinish(pg);
}

/* Expects sql to be refused by the schema. */
static void refused(const char *sql)
{
    PGconn *pg = test_db_connect(url);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
        fail_msg("the schema accepted: %s", sql);
    PQclear(r);
    PQfinish(pg);
}

static void schema_constraints(void **state)
{
    (void)state;
    const char *key = "'\\x"
                      "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'";
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO identities (id, name, reg_no, roles, public_key) VALUES "
             "('idn_AAAAAAAAAAAAAAAA', 'n', 'R', '{buyer}', %s)",
             key);
    refused(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO identities (id, name, reg_no, roles, public_key) VALUES "
             "('idn_aaaaaaaaaaaaaaaa', 'n', 'R', '{}', %s)",
             key);
    refused(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO identities (id, name, reg_no, roles, public_key) VALUES "
             "('idn_aaaaaaaaaaaaaaaa', 'n', 'R', '{king}', %s)",
             key);
    refused(sql);
    refused("INSERT INTO identities (id, name, reg_no, roles, public_key) VALUES "
            "('idn_aaaaaaaaaaaaaaaa', 'n', 'R', '{buyer}', '\\x00')");
    snprintf(sql, sizeof sql,
             "INSERT INTO identities (id, name, reg_no, roles, public_key) VALUES "
             "('idn_aaaaaaaaaaaaaaaa', '', 'R', '{buyer}', %s)",
             key);
    refused(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO identities (id, name, reg_no, roles, public_key, status) VALUES "
             "('idn_aaaaaaaaaaaaaaaa', 'n', 'R', '{buyer}', %s, 'approved')",
             key);
    refused(sql); /* approved without a decision time */
}

/* A fresh identity with a random key. */
static void new_identity(struct identity *idn, const char *name, const char *reg_no, unsigned roles)
{
    memset(idn, 0, sizeof *idn);
    struct cpx_keypair kp;
    cpx_keypair_generate(&kp);
    memcpy(idn->public_key, kp.pk, sizeof idn->public_key);
    cpx_identity_id_for_key(kp.pk, idn->id);
    snprintf(idn->name, sizeof idn->name, "%s", name);
    snprintf(idn->reg_no, sizeof idn->reg_no, "%s", reg_no);
    idn->roles = roles;
}

static void identity_queries(void **state)
{
    (void)state;
    struct db_conn *c = db_acquire(pool);
    assert_non_null(c);
    struct identity a, b, got;
    new_identity(&a, "甲 Compute", "RA-1", ROLE_PROVIDER | ROLE_BUYER);
    assert_int_equal(db_identity_insert(c, &a), DB_OK);
    assert_true(a.created_at > 0);
    assert_int_equal(db_identity_get(c, a.id, &got), DB_OK);
    assert_string_equal(got.name, a.name);
    assert_int_equal(got.roles, ROLE_PROVIDER | ROLE_BUYER);
    assert_memory_equal(got.public_key, a.public_key, 32);
    assert_int_equal(got.status, IDENTITY_PENDING);
    assert_int_equal(db_identity_get(c, "idn_zzzzzzzzzzzzzzzz", &got), DB_NO_ROWS);

    /* Conflicts name their constraint. */
    assert_int_equal(db_identity_insert(c, &a), DB_CONFLICT);
    assert_string_equal(c->conflict, "identities_pkey");
    new_identity(&b, "B", "RA-1", ROLE_BUYER);
    assert_int_equal(db_identity_insert(c, &b), DB_CONFLICT);
    assert_string_equal(c->conflict, "identities_live_reg_no");

    /* Decisions happen once. */
    struct identity op;
    new_identity(&op, "op", "OP-1", ROLE_OPERATOR);
    bool created;
    assert_int_equal(db_identity_bootstrap(c, &op, &created), DB_OK);
    assert_true(created);
    assert_int_equal(db_identity_bootstrap(c, &op, &created), DB_OK);
    assert_false(created);
    assert_int_equal(db_identity_decide(c, a.id, IDENTITY_REJECTED, op.id, "no such company", &got),
                     DB_OK);
    assert_int_equal(got.status, IDENTITY_REJECTED);
    assert_string_equal(got.reason, "no such company");
    assert_string_equal(got.decided_by, op.id);
    assert_int_equal(db_identity_decide(c, a.id, IDENTITY_APPROVED, op.id, NULL, &got), DB_NO_ROWS);
    /* Rejected, its registration number is free again. */
    assert_int_equal(db_identity_insert(c, &b), DB_OK);
    db_release(pool, c);
}

struct collect {
    int n;
    char ids[16][CPX_ID_MAX];
};

static bool collect(const struct identity *idn, void *arg)
{
    struct collect *col = arg;
    if (col->n < 16)
        snprintf(col->ids[col->n++], CPX_ID_MAX, "%s", idn->id);
    return true;
}

static void identity_list_pages(void **state)
{
    (void)state;
    struct db_conn *c = db_acquire(pool);
    for (int i = 0; i < 5; i++) {
        struct identity idn;
        char reg[16];
        snprintf(reg, sizeof reg, "LP-%d", i);
        new_identity(&idn, "lister", reg, ROLE_BUYER);
        assert_int_equal(db_identity_insert(c, &idn), DB_OK);
    }
    struct collect all = { 0 }, page = { 0 };
    assert_int_equal(db_identity_list(c, IDENTITY_PENDING, "", 16, collect, &all), DB_OK);
    assert_true(all.n >= 5);
    for (int i = 1; i < all.n; i++)
        assert_true(strcmp(all.ids[i - 1], all.ids[i]) < 0);
    assert_int_equal(db_identity_list(c, IDENTITY_PENDING, all.ids[1], 2, collect, &page), DB_OK);
    assert_int_equal(page.n, 2);
    assert_string_equal(page.ids[0], all.ids[2]);
    assert_string_equal(page.ids[1], all.ids[3]);
    struct collect rejected = { 0 };
    assert_int_equal(db_identity_list(c, IDENTITY_REJECTED, "", 16, collect, &rejected), DB_OK);
    assert_int_equal(rejected.n, 1);
    db_release(pool, c);
}

static void idempotency_and_signatures(void **state)
{
    (void)state;
    struct db_conn *c = db_acquire(pool);
    uint8_t h[32], got_h[32], sig[64];
    memset(h, 7, sizeof h);
    int status;
    char *resp;
    assert_int_equal(db_idempotency_get(c, "idn_aaaaaaaaaaaaaaaa", "k1", got_h, &status, &resp),
                     DB_NO_ROWS);
    assert_int_equal(db_idempotency_put(c, "idn_aaaaaaaaaaaaaaaa", "k1", h, 201, "{\"a\":1}"),
                     DB_OK);
    assert_int_equal(db_idempotency_get(c, "idn_aaaaaaaaaaaaaaaa", "k1", got_h, &status, &resp),
                     DB_OK);
    assert_int_equal(status, 201);
    assert_string_equal(resp, "{\"a\":1}");
    assert_memory_equal(got_h, h, 32);
    free(resp);
    assert_int_equal(db_idempotency_put(c, "idn_aaaaaaaaaaaaaaaa", "k1", h, 200, "{}"),
                     DB_CONFLICT);

    memset(sig, 9, sizeof sig);
    assert_int_equal(db_signature_record(c, sig, 4000000000LL), DB_OK);
    assert_int_equal(db_signature_record(c, sig, 4000000000LL), DB_CONFLICT);
    sig[0] = 1;
    assert_int_equal(db_signature_record(c, sig, 1000), DB_OK); /* long expired */
    long rows = 0;
    assert_int_equal(db_signature_prune(c, &rows), DB_OK);
    assert_int_equal(rows, 1);
    db_release(pool, c);
}

/* Two transactions that each read a counter and write it back under SERIALIZABLE, started
 * together: one of them must fail with 40001, and the runner must retry it to success. */
struct racer {
    pthread_barrier_t *barrier;
    int attempts;
};

static enum db_status bump(struct db_conn *c, void *arg)
{
    struct racer *r = arg;
    r->attempts++;
    PGresult *res = PQexec(c->pg, "SELECT n FROM race_counter");
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    if (r->attempts == 1)
        pthread_barrier_wait(r->barrier); /* both have read before either writes */
    if (ok) {
        res = PQexec(c->pg, "UPDATE race_counter SET n = n + 1");
        ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool soft = state != NULL && strcmp(state, "40001") == 0;
        PQclear(res);
        if (!ok)
            return soft ? DB_SOFT : DB_HARD;
    }
    return ok ? DB_OK : DB_HARD;
}

static void *race(void *arg)
{
    return (void *)(intptr_t)db_transact(pool, DB_SERIALIZABLE, bump, arg);
}

static void serialization_failures_are_retried(void **state)
{
    (void)state;
    test_db_exec(url, "CREATE TABLE race_counter (n int); INSERT INTO race_counter VALUES (0); "
                      "GRANT ALL ON race_counter TO cpx");
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    struct racer a = { &barrier, 0 }, b = { &barrier, 0 };
    struct db_pool_stats before, after;
    db_pool_stats(pool, &before);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race, &a);
    pthread_create(&tb, NULL, race, &b);
    void *ra, *rb;
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    pthread_barrier_destroy(&barrier);
    assert_int_equal((intptr_t)ra, DB_OK);
    assert_int_equal((intptr_t)rb, DB_OK);
    assert_int_equal(test_db_scalar(url, "SELECT n FROM race_counter"), 2);
    assert_true(a.attempts + b.attempts >= 3); /* somebody was retried */
    db_pool_stats(pool, &after);
    assert_true(after.retries > before.retries);
}

static enum db_status ping(struct db_conn *c, void *arg)
{
    int *pid = arg;
    *pid = PQbackendPID(c->pg);
    return db_command(c, "ping", 0, NULL, NULL);
}

static void reconnects_after_the_server_drops_it(void **state)
{
    (void)state;
    char *err = NULL;
    struct db_pool *one = db_pool_open(url, 1, 2000, &err);
    assert_non_null(one);
    int pid = 0, now = 0;
    assert_int_equal(db_run(one, ping, &pid), DB_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    test_db_exec(url, sql);
    /* The next use finds the connection dead, makes a new one and succeeds. */
    assert_int_equal(db_run(one, ping, &now), DB_OK);
    assert_int_not_equal(now, pid);
    struct db_pool_stats st;
    db_pool_stats(one, &st);
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.in_use, 0);
    /* A transaction too: BEGIN on a dead connection is retried on a fresh one. */
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", now);
    test_db_exec(url, sql);
    assert_int_equal(db_transact(one, DB_SERIALIZABLE, ping, &pid), DB_OK);
    assert_int_not_equal(now, pid);
    db_pool_close(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrations_apply_once_and_detect_edits),
        cmocka_unit_test(schema_constraints),
        cmocka_unit_test(identity_queries),
        cmocka_unit_test(identity_list_pages),
        cmocka_unit_test(idempotency_and_signatures),
        cmocka_unit_test(serialization_failures_are_retried),
        cmocka_unit_test(reconnects_after_the_server_drops_it),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
