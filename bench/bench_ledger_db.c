/*
 * The ledger writer against a real PostgreSQL (make bench-ledger-db, which starts a private
 * cluster with fsync on): how many records a second the server can append when each transaction
 * carries a batch of B records and signs one checkpoint, for B = 1 (one identity change per
 * transaction, as today) up to 1000 (a group commit, as the trading sequencer will do). Records
 * are order-sized, with a party part. Prints one line per batch size:
 *
 *   bench ledger_db append batch=B records=N seconds=S per_s=X commits_per_s=C
 *
 * The buyer is registered and approved first (exchange records) and its request is really
 * signed, so the ledger left in the database audits clean: the script then serves it with a real
 * cpxd and times cpx-audit over it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/crypto.h"
#include "ledger/keyfile.h"
#include "server/db.h"
#include "server/identity.h"
#include "server/ledger_writer.h"
#include "server/records.h"
#include "server/log.h"
#include "server/migrate.h"
#include "server/util.h"

#define SECONDS_PER_SIZE 3.0 /* how long each batch size runs */
#define BODY_BYTES       200 /* the party's request body, like an order's */

struct job {
    struct ledger_batch b;
    struct identity buyer;  /* registered and approved by the first transaction */
    int n;                  /* records per batch */
    struct cpx_party party; /* a signed request (its signature is not checked here) */
    uint64_t appended;      /* records committed so far */
};

/* The buyer's registration and approval, as exchange-originated records. */
static enum db_status register_tx(struct db_conn *c, void *arg)
{
    struct job *j = arg;
    ledger_batch_reset(&j->b);
    bool ok;
    uint64_t seq;
    enum db_status st = records_identity(c, &j->b, &j->buyer, NULL, &ok, &seq);
    if (st == DB_OK)
        st = records_decision(c, &j->b, j->buyer.id, IDENTITY_APPROVED, NULL, NULL, &ok, &seq);
    return st == DB_OK ? ledger_batch_commit(c, &j->b) : st;
}

static enum db_status append_tx(struct db_conn *c, void *arg)
{
    struct job *j = arg;
    ledger_batch_reset(&j->b);
    for (int i = 0; i < j->n; i++) {
        /* Shaped as the exchange writes an order (docs/ledger.md section 11), so that the
         * auditor's books agree: one device of 1 TFLOPS for an hour at a limit of 1 micro-CNY per
         * PFLOPS-hour holds floor(1 / 1000) = 0. */
        char payload[320];
        uint64_t n = j->appended + (uint64_t)i;
        int len = snprintf(payload, sizeof payload,
                           "{\"buyer\":\"%s\",\"client_order_id\":\"bench-%" PRIu64
                           "\",\"hold_bps\":0,\"hold_micro\":0,\"id\":\"ord_%012" PRIu64
                           "\",\"terms\":{\"constraints\":{\"max_tflops\":1},\"devices\":1,"
                           "\"hours\":1,\"limit_price_micro\":1,\"precision\":\"bf16\"}}",
                           j->party.id, n, n);
        uint64_t seq;
        enum db_status st = ledger_append(c, &j->b, CPX_KIND_ORDER, &j->party,
                                          (const uint8_t *)payload, (size_t)len, &seq);
        if (st != DB_OK)
            return st;
    }
    return ledger_batch_commit(c, &j->b);
}

static double seconds_since(uint64_t start_ns)
{
    return (double)(mono_ns() - start_ns) / 1e9;
}

int main(void)
{
    const char *url = getenv("CPX_BENCH_DB_URL");
    if (url == NULL) {
        fprintf(stderr,
                "bench_ledger_db: CPX_BENCH_DB_URL is not set (run make bench-ledger-db)\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    if (cpx_crypto_init() != 0)
        return 1;
    PGconn *pg = PQconnectdb(url);
    int applied;
    char *err = NULL;
    if (PQstatus(pg) != CONNECTION_OK ||
        migrate(pg, cpx_migrations, cpx_migrations_count, &applied, &err) != 0) {
        fprintf(stderr, "bench_ledger_db: cannot prepare the database: %s\n",
                err ? err : PQerrorMessage(pg));
        return 1;
    }
    PQfinish(pg);
    struct db_pool *pool = db_pool_open(url, 1, 5000, &err);
    if (pool == NULL) {
        fprintf(stderr, "bench_ledger_db: %s\n", err);
        return 1;
    }
    struct ledger_signer signer;
    const char *key = getenv("CPX_BENCH_EXCHANGE_KEY");
    const char *bad = ledger_signer_load(&signer, key ? key : "", "bench.cpx/ledger");
    if (bad != NULL) {
        fprintf(stderr, "bench_ledger_db: exchange key: %s\n", bad);
        return 1;
    }

    static struct job j;
    struct cpx_keypair party_key;
    cpx_keypair_generate(&party_key);
    cpx_identity_id_for_key(party_key.pk, j.party.id);
    snprintf(j.buyer.id, sizeof j.buyer.id, "%s", j.party.id);
    snprintf(j.buyer.name, sizeof j.buyer.name, "Bench Buyer");
    snprintf(j.buyer.reg_no, sizeof j.buyer.reg_no, "BENCH-1");
    j.buyer.roles = ROLE_BUYER;
    j.buyer.status = IDENTITY_APPROVED;
    memcpy(j.buyer.public_key, party_key.pk, sizeof j.buyer.public_key);
    snprintf(j.party.method, sizeof j.party.method, "POST");
    snprintf(j.party.target, sizeof j.party.target, "/v1/orders");
    static char body[BODY_BYTES + 1];
    memset(body, 'x', BODY_BYTES);
    memcpy(body, "{\"x\":\"", 6);
    memcpy(body + BODY_BYTES - 2, "\"}", 2);
    j.party.body = (const uint8_t *)body;
    j.party.body_len = BODY_BYTES;
    struct cpx_auth auth;
    if (!cpx_reqsig_sign(&party_key, "POST", "/v1/orders", now_us() / 1000000, body, BODY_BYTES,
                         &auth))
        return 1;
    j.party.ts = auth.ts;
    memcpy(j.party.sig, auth.sig, sizeof j.party.sig);
    ledger_batch_init(&j.b, &signer);
    if (db_transact(pool, DB_SERIALIZABLE, register_tx, &j) != DB_OK) {
        fprintf(stderr, "bench_ledger_db: cannot register the buyer\n");
        return 1;
    }

    const int sizes[] = { 1, 10, 100, 1000 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        j.n = sizes[s];
        uint64_t start = mono_ns(), records = 0, commits = 0;
        while (seconds_since(start) < SECONDS_PER_SIZE) {
            enum db_status st = db_transact(pool, DB_SERIALIZABLE, append_tx, &j);
            if (st != DB_OK) {
                fprintf(stderr, "bench_ledger_db: append failed (%d)\n", (int)st);
                return 1;
            }
            j.appended += (uint64_t)j.n;
            records += (uint64_t)j.n;
            commits++;
        }
        double secs = seconds_since(start);
        printf("bench ledger_db append batch=%d records=%" PRIu64 " seconds=%.2f per_s=%.0f "
               "commits_per_s=%.0f\n",
               j.n, records, secs, (double)records / secs, (double)commits / secs);
        fflush(stdout);
    }
    printf("bench ledger_db total records=%" PRIu64 "\n", j.appended + 2);
    ledger_batch_free(&j.b);
    ledger_signer_wipe(&signer);
    db_pool_close(pool);
    return 0;
}
