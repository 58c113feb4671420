/*
 * A regulator's audit of a real cpxd, tampered with one way at a time in its database -- the
 * attacks of someone who controls the exchange's database, or the exchange itself (which holds
 * the checkpoint key and can re-sign a rewritten tree). Each case starts from an honest ledger
 * written through the API, changes one thing, and asserts that `cpx-audit verify --url` names
 * exactly the record (or checkpoint) and the reason:
 *
 *   honest                              nothing
 *   a byte of a record changed          that record: leaf_mismatch (and what the change broke)
 *   a party signature forged, the tree  that record: party_sig, nothing else
 *     and checkpoints re-signed
 *   a record dropped                    seq_gap at it, first (then what its absence breaks)
 *   two records swapped                 seq_gap, seq_order and leaf_mismatch at them only
 *   a checkpoint signed by another key  checkpoint_sig at its size
 *   a forged consistency proof served   consistency (with --state from an earlier audit)
 *   history rewritten after an audit    consistency (with --state)
 *
 * The honest ledger (7 records): 0 operator identity, 1 its approval, 2 alpha's registration,
 * 3 its approval, 4 beta's registration, 5 its approval, 6 alpha's key rotation.
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

#include "ledger/checkpoint.h"
#include "ledger/codec.h"
#include "ledger/keyfile.h"
#include "ledger/merkle.h"
#include "ledger/record.h"
#include "tests/support/audit_tool.h"
#include "tests/support/live_ledger.h"
#include "tests/support/testenv.h"

#define HONEST_RECORDS 7

struct world {
    struct test_server srv;
    struct audit_dir dir;
};

/* A fresh cpxd with the honest ledger described above. */
static int setup(void **state)
{
    struct world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    test_server_start(&w->srv, NULL, NULL);
    struct client a, b;
    char ida[CPX_ID_MAX], idb[CPX_ID_MAX], target[128], body[128], pk[45];
    test_identity(&w->srv, "alpha", "buyer,provider", true, &a, ida);
    test_identity(&w->srv, "beta", "provider", true, &b, idb);
    struct cpx_keypair next;
    cpx_keypair_generate(&next);
    cpx_public_key_encode(next.pk, pk);
    snprintf(body, sizeof body, "{\"new_public_key\":\"%s\"}", pk);
    snprintf(target, sizeof target, "/v1/identities/%s/keys", ida);
    struct client_reply r;
    assert_true(client_call(&a, "POST", target, body, true, NULL, &r));
    assert_int_equal(r.status, 200);
    client_reply_free(&r);
    client_free(&a);
    client_free(&b);
    assert_int_equal(test_db_scalar(w->srv.db_url, "SELECT size FROM ledger_head"), HONEST_RECORDS);
    struct cpx_note_verifier v;
    live_verifier(w->srv.verifier_key, &v);
    audit_dir_init_verifier(&w->dir, &v);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    assert_int_equal(test_server_stop(&w->srv), 0);
    audit_dir_free(&w->dir);
    free(w);
    return 0;
}

/* Runs cpx-audit against the server with extra arguments (NULL-ended); returns its status. */
static int audit(struct world *w, const char *const *extra, json_t **report)
{
    char cacert[512];
    snprintf(cacert, sizeof cacert, "%s/tls/cert.pem", getenv("CPX_TEST_VAR"));
    const char *args[16] = { "--url", w->srv.url, "--cacert", cacert };
    size_t n = 4;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return audit_run(&w->dir, args, report);
}

/* Runs SQL as a superuser that bypasses the append-only triggers, as an attacker would. */
static void tamper(struct world *w, const char *sql)
{
    char full[65536];
    snprintf(full, sizeof full, "SET session_replication_role = replica; %s", sql);
    test_db_exec(w->srv.db_url, full);
}

/* Asserts that every failure in the report names seq, and that one of them is `reason`. */
static void assert_only_record(const json_t *report, uint64_t seq, const char *reason)
{
    assert_false(json_is_true(json_object_get(report, "ok")));
    json_t *failures = json_object_get(report, "failures"), *f;
    size_t i;
    assert_true(json_array_size(failures) > 0);
    json_array_foreach(failures, i, f)
    {
        if ((uint64_t)json_integer_value(json_object_get(f, "seq")) != seq)
            fail_msg("a failure names %" PRId64 " (%s), not only %" PRIu64,
                     (int64_t)json_integer_value(json_object_get(f, "seq")),
                     json_string_value(json_object_get(f, "reason")), seq);
    }
    assert_true(report_has(report, seq, reason));
}

/* Asserts that the first failure (the report lists them by seq) is (seq, reason). */
static void assert_first_failure(const json_t *report, uint64_t seq, const char *reason)
{
    json_t *first = json_array_get(json_object_get(report, "failures"), 0);
    assert_non_null(first);
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), seq);
    assert_string_equal(json_string_value(json_object_get(first, "reason")), reason);
}

static void honest_ledger_passes(void **state)
{
    struct world *w = *state;
    json_t *report;
    assert_int_equal(audit(w, NULL, &report), 0);
    assert_true(json_is_true(json_object_get(report, "ok")));
    assert_int_equal(report_int(report, "records"), HONEST_RECORDS);
    assert_int_equal(report_int(report, "verified_size"), HONEST_RECORDS);
    assert_int_equal(report_int(report, "signatures"), 5); /* records 2 to 6 carry one */
    json_decref(report);
}

static void changed_byte_is_named(void **state)
{
    struct world *w = *state;
    /* beta's approval now approves ... a different identity id character */
    tamper(w, "UPDATE ledger_records SET record = overlay(record placing '\\x78'::bytea "
              "from position('\"payload\":{\"id\":\"idn_'::bytea in record) + 20 for 1) "
              "WHERE seq = 5");
    json_t *report;
    assert_int_equal(audit(w, NULL, &report), 1);
    assert_only_record(report, 5, "leaf_mismatch");
    json_decref(report);
}

/* ---- a rewrite by the exchange itself: records changed, tree and checkpoints re-signed ---- */

/* Reads every record (binary) from the database, in seq order. */
static PGresult *all_records(struct world *w, PGconn *db)
{
    PGresult *r = PQexecParams(db, "SELECT record FROM ledger_records ORDER BY seq", 0, NULL, NULL,
                               NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    (void)w;
    return r;
}

/* Appends the SQL hex literal of data to sql. */
static void hex_literal(char *sql, size_t cap, const uint8_t *data, size_t n)
{
    size_t at = strlen(sql);
    assert_true(at + 2 * n + 16 < cap);
    memcpy(sql + at, "'\\x", 3);
    cpx_hex_encode(data, n, sql + at + 3);
    strcat(sql, "'::bytea");
}

/*
 * Replaces record k's bytes with `bytes` and then does what the exchange could do to hide it:
 * rebuilds every tree node and re-signs every checkpoint with its own key.
 */
static void rewrite_history(struct world *w, uint64_t k, const uint8_t *bytes, size_t len)
{
    PGconn *db = test_db_connect(w->srv.db_url);
    PGresult *r = all_records(w, db);
    int n = PQntuples(r);
    struct cpx_merkle_tree t;
    assert_int_equal(cpx_merkle_tree_init(&t), 0);
    static char sql[1 << 20];
    snprintf(sql, sizeof sql, "UPDATE ledger_records SET record = ");
    hex_literal(sql, sizeof sql, bytes, len);
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " WHERE seq = %" PRIu64 "; ", k);
    strcat(sql, "DELETE FROM ledger_nodes; DELETE FROM ledger_checkpoints; ");
    for (int i = 0; i < n; i++) {
        if ((uint64_t)i == k)
            assert_int_equal(cpx_merkle_tree_append(&t, bytes, len), 0);
        else
            assert_int_equal(
                cpx_merkle_tree_append(&t, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0)), 0);
    }
    PQclear(r);
    PQfinish(db);
    for (unsigned level = 0; level < CPX_MERKLE_MAX_LEVELS && (t.size >> level) > 0; level++)
        for (uint64_t i = 0; i < t.size >> level; i++) {
            snprintf(sql + strlen(sql), sizeof sql - strlen(sql),
                     "INSERT INTO ledger_nodes VALUES (%u, %" PRIu64 ", ", level, i);
            hex_literal(sql, sizeof sql, t.levels[level].h[i], CPX_HASH_LEN);
            strcat(sql, "); ");
        }
    /* a checkpoint at every size, signed with the exchange's own key */
    struct cpx_keyfile kf;
    assert_true(keyfile_read(w->srv.exchange_key, &kf));
    struct cpx_sha256_ctx *h = cpx_sha256_ctx_new();
    struct cpx_merkle_range range;
    cpx_merkle_range_init(&range);
    for (uint64_t size = 1; size <= t.size; size++) {
        assert_true(cpx_merkle_range_append(h, &range, t.levels[0].h[size - 1]));
        struct cpx_checkpoint cp = { .size = size };
        snprintf(cp.origin, sizeof cp.origin, TEST_LEDGER_ORIGIN);
        cpx_merkle_range_root(h, &range, cp.root);
        char note[1024];
        assert_true(cpx_checkpoint_sign(&cp, TEST_LEDGER_ORIGIN, &kf.kp, note, sizeof note) > 0);
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql),
                 "INSERT INTO ledger_checkpoints (size, root, note) VALUES (%" PRIu64 ", ", size);
        hex_literal(sql, sizeof sql, cp.root, CPX_HASH_LEN);
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), ", '%s'); ", note);
    }
    cpx_sha256_ctx_free(h);
    cpx_keypair_wipe(&kf.kp);
    cpx_merkle_tree_free(&t);
    tamper(w, sql);
}

/* Record k with one bit of its party signature flipped, re-encoded canonically. */
static uint8_t *forged_signature(struct world *w, uint64_t k, size_t *len)
{
    PGconn *db = test_db_connect(w->srv.db_url);
    PGresult *r = all_records(w, db);
    struct cpx_record rec;
    cpx_record_init(&rec);
    assert_int_equal(
        cpx_record_decode(&rec, PQgetvalue(r, (int)k, 0), (size_t)PQgetlength(r, (int)k, 0)),
        CPX_RECORD_OK);
    assert_true(rec.has_party);
    rec.party.sig[10] ^= 0x01;
    struct cpx_canon_writer cw;
    cpx_canon_writer_init(&cw);
    assert_int_equal(cpx_record_encode(&cw, &rec), CPX_CANON_OK);
    const uint8_t *out;
    assert_int_equal(cpx_canon_writer_finish(&cw, &out, len), CPX_CANON_OK);
    uint8_t *copy = malloc(*len);
    assert_non_null(copy);
    memcpy(copy, out, *len);
    cpx_canon_writer_free(&cw);
    cpx_record_free(&rec);
    PQclear(r);
    PQfinish(db);
    return copy;
}

static void forged_signature_is_party_sig(void **state)
{
    struct world *w = *state;
    size_t len;
    uint8_t *bytes = forged_signature(w, 4, &len); /* beta's registration */
    rewrite_history(w, 4, bytes, len);
    free(bytes);
    json_t *report;
    assert_int_equal(audit(w, NULL, &report), 1);
    assert_only_failure(report, 4, "party_sig");
    json_decref(report);
}

static void dropped_record_is_seq_gap(void **state)
{
    struct world *w = *state;
    tamper(w, "DELETE FROM ledger_records WHERE seq = 3");
    json_t *report;
    assert_int_equal(audit(w, NULL, &report), 1);
    /* named first; what follows are its consequences (roots, beta's approval, the log's end) */
    assert_first_failure(report, 3, "seq_gap");
    assert_true(report_has(report, HONEST_RECORDS, "checkpoint_beyond_log"));
    json_decref(report);
}

static void swapped_records_are_named(void **state)
{
    struct world *w = *state;
    tamper(w, "UPDATE ledger_records SET record = CASE seq WHEN 3 THEN "
              "(SELECT record FROM ledger_records WHERE seq = 4) ELSE "
              "(SELECT record FROM ledger_records WHERE seq = 3) END WHERE seq IN (3, 4)");
    json_t *report;
    assert_int_equal(audit(w, NULL, &report), 1);
    /* record 4 served where 3 belongs, then 3: both named, nothing else */
    assert_first_failure(report, 3, "seq_gap");
    assert_true(report_has(report, 3, "seq_order"));
    assert_true(report_has(report, 3, "leaf_mismatch") && report_has(report, 4, "leaf_mismatch"));
    json_t *f;
    size_t i;
    json_array_foreach(json_object_get(report, "failures"), i, f)
    {
        json_int_t seq = json_integer_value(json_object_get(f, "seq"));
        assert_true(seq == 3 || seq == 4);
    }
    json_decref(report);
}

static void checkpoint_by_another_key_is_checkpoint_sig(void **state)
{
    struct world *w = *state;
    /* the checkpoint of size 5, honestly computed, but signed by a key that is not the exchange's
     */
    PGconn *db = test_db_connect(w->srv.db_url);
    PGresult *r = PQexec(db, "SELECT note FROM ledger_checkpoints WHERE size = 5");
    assert_int_equal(PQntuples(r), 1);
    struct cpx_checkpoint cp;
    const char *note = PQgetvalue(r, 0, 0);
    struct cpx_note_verifier v;
    live_verifier(w->srv.verifier_key, &v);
    assert_int_equal(cpx_checkpoint_open(note, strlen(note), &v, &cp), CPX_NOTE_OK);
    PQclear(r);
    PQfinish(db);
    struct cpx_keypair other;
    cpx_keypair_generate(&other);
    char forged[1024], sql[2048];
    assert_true(cpx_checkpoint_sign(&cp, TEST_LEDGER_ORIGIN, &other, forged, sizeof forged) > 0);
    snprintf(sql, sizeof sql, "UPDATE ledger_checkpoints SET note = '%s' WHERE size = 5", forged);
    tamper(w, sql);
    json_t *report;
    assert_int_equal(audit(w, NULL, &report), 1);
    assert_only_failure(report, 5, "checkpoint_sig");
    json_decref(report);
}

/* Audits once with --state (clean), then appends two records through the API. */
static void audit_then_grow(struct world *w, char state_file[AUDIT_PATH_MAX])
{
    audit_path(&w->dir, "audit.state", state_file);
    const char *args[] = { "--state", state_file, NULL };
    json_t *report;
    assert_int_equal(audit(w, args, &report), 0);
    json_decref(report);
    struct client g;
    char idg[CPX_ID_MAX];
    test_identity(&w->srv, "gamma", "buyer", true, &g, idg);
    client_free(&g);
}

static void forged_consistency_proof_is_caught(void **state)
{
    struct world *w = *state;
    char state_file[AUDIT_PATH_MAX];
    audit_then_grow(w, state_file);
    /* records, leaves and checkpoints stay honest; the inner nodes proofs are made of do not */
    tamper(w, "UPDATE ledger_nodes SET hash = sha256(hash) WHERE level > 0");
    const char *args[] = { "--state", state_file, NULL };
    json_t *report;
    assert_int_equal(audit(w, args, &report), 1);
    assert_only_failure(report, HONEST_RECORDS + 2, "consistency");
    json_decref(report);
}

static void history_rewritten_after_an_audit_is_caught(void **state)
{
    struct world *w = *state;
    char state_file[AUDIT_PATH_MAX];
    audit_then_grow(w, state_file);
    size_t len;
    uint8_t *bytes = forged_signature(w, 2, &len); /* alpha's registration */
    rewrite_history(w, 2, bytes, len);
    free(bytes);
    const char *args[] = { "--state", state_file, NULL };
    json_t *report;
    assert_int_equal(audit(w, args, &report), 1);
    assert_true(report_has(report, HONEST_RECORDS + 2, "consistency"));
    json_decref(report);
    /* without the state, a fresh audit still finds the forged signature itself */
    assert_int_equal(audit(w, NULL, &report), 1);
    assert_only_failure(report, 2, "party_sig");
    json_decref(report);
}

static void state_of_another_ledger_is_refused(void **state)
{
    struct world *w = *state;
    char state_file[AUDIT_PATH_MAX];
    audit_then_grow(w, state_file);
    /* the same key under another origin: an auditor of another ledger */
    char cmd[1600];
    snprintf(cmd, sizeof cmd,
             "%s/cpxd --exchange-key '%s' --ledger-origin other.example/ledger "
             "--print-verifier-key >'%s'",
             getenv("CPX_TEST_BIN"), w->srv.exchange_key, w->dir.key);
    assert_int_equal(system(cmd), 0);
    const char *args[] = { "--state", state_file, NULL };
    json_t *report = NULL;
    assert_int_equal(audit(w, args, &report), 2);
    assert_true(audit_output_has(&w->dir, "another ledger"));
    json_decref(report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(honest_ledger_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(changed_byte_is_named, setup, teardown),
        cmocka_unit_test_setup_teardown(forged_signature_is_party_sig, setup, teardown),
        cmocka_unit_test_setup_teardown(dropped_record_is_seq_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(swapped_records_are_named, setup, teardown),
        cmocka_unit_test_setup_teardown(checkpoint_by_another_key_is_checkpoint_sig, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(forged_consistency_proof_is_caught, setup, teardown),
        cmocka_unit_test_setup_teardown(history_rewritten_after_an_audit_is_caught, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(state_of_another_ledger_is_refused, setup, teardown),
    };
    return test_main(tests, sizeof tests / sizeof tests[0], NULL, NULL);
}
