/*
 * The market's tables against a real PostgreSQL: the CHECKs that back the sequencer's own
 * checks (no negative balance but the exchange's external one, a closed order holds nothing,
 * remaining within devices), the journal, batches and entries refuse rewrites, and the read
 * queries of the API decode what the sequencer writes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server/db.h"
#include "server/db_trading.h"
#include "server/log.h"
#include "server/migrate.h"
#include "tests/support/testenv.h"

static char url[512];
static struct db_pool *pool;

#define BUYER    "idn_aaaaaaaaaaaaaaaa"
#define PROVIDER "idn_bbbbbbbbbbbbbbbb"

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
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO identities (id, name, reg_no, roles, public_key) VALUES "
             "('" BUYER "', 'b', 'B-1', '{buyer}', decode(repeat('00', 32), 'hex')), "
             "('" PROVIDER "', 'p', 'P-1', '{provider}', decode(repeat('01', 32), 'hex'))");
    test_db_exec(url, sql);
    test_db_exec(
        url,
        "INSERT INTO orders (id, buyer, client_order_id, body_sha256, spec, precision, "
        "remaining, filled_devices, hold, hold_left, hold_bps, status, ledger_seq, created_at) "
        "VALUES (7, '" BUYER "', 'c-1', decode(repeat('ab', 32), 'hex'), "
        "'{\"precision\":\"bf16\",\"devices\":2}', 'bf16', 1, 1, 1000, 400, 20, 'open', 3, "
        "now());"
        "INSERT INTO listings (id, provider, spec, region, devices, remaining, status, "
        "ledger_seq, created_at) VALUES (8, '" PROVIDER "', "
        "'{\"endpoint\":\"https://p.example/jobs\"}', 'yangtze', 4, 3, 'open', 4, now());"
        "INSERT INTO agreements (id, order_id, listing_id, buyer, provider, precision, "
        "region, devices, tflops, hours, price, value, commission, maker, start_at, "
        "endpoint, ledger_seq, created_at) VALUES (1, 7, 8, '" BUYER "', '" PROVIDER
        "', 'bf16', 'yangtze', 1, 1000, 2, 15000000, 30000000, 60000, 'provider', "
        "1764403200, 'https://p.example/jobs', 5, now());"
        "INSERT INTO entries (id, batch, from_owner, from_kind, to_owner, to_kind, "
        "amount, reason, ref, created_at) VALUES (1, 1, 'exchange', 'external', '" BUYER
        "', 'available', 5, 'deposit', 'dep_1', now());"
        "INSERT INTO sequencer_commands (seq, batch, command) VALUES (1, 1, '\\x07');"
        "INSERT INTO sequencer_batches (id, commands, state_hash, engine_now, next_id, "
        "next_agreement, ledger_size) VALUES (1, 1, 0, 0, 9, 2, 0)");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    db_pool_close(pool);
    return 0;
}

/* Expects sql to be refused by the schema. */
static void refused(const char *sql)
{
    PGconn *pg = test_db_connect(url);
    PGresult *r = PQexec(pg, sql);
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        fail_msg("the schema accepted: %s", sql);
    PQclear(r);
    PQfinish(pg);
}

static void money_constraints(void **state)
{
    (void)state;
    refused("INSERT INTO accounts (owner, kind, balance) VALUES ('" BUYER "', 'available', -1)");
    refused("INSERT INTO accounts (owner, kind, balance) VALUES ('" BUYER "', 'escrow', -5)");
    refused("INSERT INTO accounts (owner, kind, balance) VALUES ('" BUYER "', 'savings', 1)");
    test_db_exec(url, "INSERT INTO accounts (owner, kind, balance) VALUES "
                      "('exchange', 'external', -5), ('" BUYER "', 'available', 5)");
    refused("UPDATE accounts SET balance = -1 WHERE owner = '" BUYER "'");
    refused("INSERT INTO entries (id, batch, from_owner, from_kind, to_owner, to_kind, amount, "
            "reason, ref, created_at) VALUES (2, 1, 'a', 'available', 'b', 'held', 0, 'hold', "
            "'x', now())");
    refused("INSERT INTO entries (id, batch, from_owner, from_kind, to_owner, to_kind, amount, "
            "reason, ref, created_at) VALUES (2, 1, 'a', 'available', 'b', 'held', 1, 'gift', "
            "'x', now())");
}

static void order_constraints(void **state)
{
    (void)state;
    /* closed with money still held; held beyond the hold; closed without a time */
    refused("UPDATE orders SET status = 'filled', closed_at = now() WHERE id = 7");
    refused("UPDATE orders SET hold_left = 1001 WHERE id = 7");
    refused("UPDATE orders SET status = 'cancelled', hold_left = 0 WHERE id = 7");
    refused("UPDATE listings SET remaining = 5 WHERE id = 8");
    /* a client order id places one order per buyer */
    refused("INSERT INTO orders (id, buyer, client_order_id, body_sha256, spec, precision, "
            "remaining, filled_devices, hold, hold_left, hold_bps, status, ledger_seq, created_at) "
            "VALUES "
            "(9, '" BUYER "', 'c-1', decode(repeat('ab', 32), 'hex'), '{}', 'bf16', 1, 0, 0, 0, 0, "
            "'open', 6, now())");
}

static void history_append_only(void **state)
{
    (void)state;
    refused("UPDATE entries SET amount = 6");
    refused("DELETE FROM entries");
    refused("TRUNCATE entries");
    refused("UPDATE sequencer_commands SET command = '\\x08'");
    refused("DELETE FROM sequencer_commands");
    refused("UPDATE sequencer_batches SET state_hash = 1");
    refused("DELETE FROM sequencer_batches");
}

struct read_ctx {
    struct order_row o;
    struct listing_row l;
    json_t *agreement;
};

static enum db_status read_fn(struct db_conn *c, void *arg)
{
    struct read_ctx *k = arg;
    enum db_status st = db_order_get(c, 7, &k->o);
    if (st == DB_OK)
        st = db_listing_get(c, 8, &k->l);
    PGresult *r;
    if (st == DB_OK)
        st = db_agreement_get(c, 1, &r);
    if (st == DB_OK) {
        k->agreement = db_agreement_json(r, 0, true);
        PQclear(r);
    }
    return st;
}

static void reads_decode(void **state)
{
    (void)state;
    struct read_ctx k = { 0 };
    assert_int_equal(db_run(pool, read_fn, &k), DB_OK);
    assert_string_equal(k.o.v.buyer, BUYER);
    assert_string_equal(k.o.v.client_order_id, "c-1");
    assert_int_equal(k.o.v.hold_left, 400);
    assert_int_equal(json_array_size(k.o.agreements), 1);
    assert_string_equal(json_string_value(json_array_get(k.o.agreements, 0)), "agr_000000000001");
    assert_int_equal(k.o.body_sha256[0], 0xab);
    assert_string_equal(k.l.endpoint, "https://p.example/jobs");
    assert_string_equal(k.l.region, "yangtze");
    json_t *o = order_json(&k.o.v);
    assert_string_equal(json_string_value(json_object_get(o, "id")), "ord_000000000007");
    assert_string_equal(json_string_value(json_object_get(o, "hold")), "0.001");
    assert_string_equal(json_string_value(json_object_get(o, "precision")), "bf16");
    json_decref(o);
    assert_string_equal(json_string_value(json_object_get(k.agreement, "value")), "30");
    assert_string_equal(json_string_value(json_object_get(k.agreement, "end")),
                        "2025-11-29T10:00:00Z");
    json_decref(k.agreement);
    order_row_free(&k.o);
    listing_row_free(&k.l);
    int64_t bal[ACC_NKINDS];
    struct db_conn *c = db_acquire(pool);
    assert_non_null(c);
    assert_int_equal(db_account_get(c, "idn_cccccccccccccccc", bal), DB_OK);
    assert_int_equal(bal[ACC_AVAILABLE] + bal[ACC_HELD] + bal[ACC_ESCROW], 0);
    db_release(pool, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(money_constraints),
        cmocka_unit_test(order_constraints),
        cmocka_unit_test(history_append_only),
        cmocka_unit_test(reads_decode),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], setup, teardown);
}
