/*
 * Start-up and shut-down of the server: database, schema, bootstrap operator, metrics, replay
 * cache, the HTTPS listener and the maintenance thread. See server.h.
 */
#include "server/server.h"
#include "server/dispatcher.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ledger/keyfile.h"
#include "server/db.h"
#include "server/db_identities.h"
#include "server/http.h"
#include "server/idcache.h"
#include "server/ratelimit.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/migrate.h"
#include "server/records.h"
#include "server/replay.h"
#include "server/routes.h"
#include "server/sequencer.h"
#include "server/util.h"

#define CONNECT_ATTEMPTS    20 /* at start, one every half second */
#define MAINTENANCE_SECONDS 30 /* between prunes of expired request signatures */

#define IDCACHE_SLOTS   4096 /* identities kept for authentication */
#define IDCACHE_TTL_MS  2000 /* for at most this long */
#define RATELIMIT_SLOTS 8192 /* identities with a bucket of their own at once */
static enum db_status prune(struct db_conn *c, void *arg)
{
    long *rows = arg;
    return db_signature_prune(c, rows);
}

/* The maintenance thread: prunes the durable replay guard every MAINTENANCE_SECONDS. */
static void *maintenance(void *arg)
{
    struct server *srv = arg;
    pthread_mutex_lock(&srv->maint_mu);
    while (!srv->maint_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += MAINTENANCE_SECONDS;
        pthread_cond_timedwait(&srv->maint_wake, &srv->maint_mu, &until);
        if (srv->maint_stop)
            break;
        pthread_mutex_unlock(&srv->maint_mu);
        long rows = 0;
        if (db_run(srv->db, prune, &rows) == DB_OK && rows > 0)
            log_debug("pruned %ld expired request signatures", rows);
        pthread_mutex_lock(&srv->maint_mu);
    }
    pthread_mutex_unlock(&srv->maint_mu);
    return NULL;
}

/* Connects to url, retrying for up to CONNECT_ATTEMPTS / 2 s (PostgreSQL may be starting). */
static PGconn *connect_retrying(const char *url)
{
    PGconn *pg = PQconnectdb(url);
    for (int i = 1; i < CONNECT_ATTEMPTS && PQstatus(pg) != CONNECTION_OK; i++) {
        PQfinish(pg);
        usleep(500000);
        pg = PQconnectdb(url);
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        log_error("database: cannot connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

/* Who a connection is: its role, and which database (name and server port) it reached. */
struct whoami {
    char role[64];
    char database[64];
    char port[16];
};

static bool who(PGconn *pg, struct whoami *out)
{
    PGresult *r = PQexec(pg, "SELECT current_user, current_database(), "
                             "coalesce(inet_server_port()::text, '')");
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) {
        snprintf(out->role, sizeof out->role, "%s", PQgetvalue(r, 0, 0));
        snprintf(out->database, sizeof out->database, "%s", PQgetvalue(r, 0, 1));
        snprintf(out->port, sizeof out->port, "%s", PQgetvalue(r, 0, 2));
    } else {
        log_error("database: cannot tell who a connection is: %s", PQerrorMessage(pg));
    }
    PQclear(r);
    return ok;
}

/*
 * With an administrator's URL: who cpxd's own role and the administrator are, once it is sure
 * that both reach the same database (before anything is migrated there). 1: the same role.
 */
static int same_database(PGconn *admin, const struct config *cfg, struct whoami *a,
                         struct whoami *app)
{
    PGconn *pg = connect_retrying(cfg->database_url);
    bool known = pg != NULL && who(pg, app) && who(admin, a);
    PQfinish(pg);
    if (!known)
        return -1;
    if (strcmp(a->database, app->database) != 0 || strcmp(a->port, app->port) != 0) {
        log_error("schema: --admin-database-url reaches database %s, but --database-url reaches "
                  "%s: they must name the same database",
                  a->database, app->database);
        return -1;
    }
    if (strcmp(a->role, app->role) == 0) {
        log_warn("schema: --admin-database-url logs in as cpxd's own role %s: nothing to grant",
                 app->role);
        return 1;
    }
    return 0;
}

/* Hands the schema to the administrator and grants cpxd's role only what it needs. */
static int restrict_app_role(PGconn *admin, const struct whoami *a, const struct whoami *app)
{
    char *err = NULL;
    if (migrate_grant(admin, app->role, &err) != 0) {
        log_error("schema: the administrator %s (--admin-database-url) cannot take the schema "
                  "and grant %s only what it needs: %s (the administrator must be a superuser, "
                  "or own the database and be a member of %s)",
                  a->role, app->role, err ? err : "failed", app->role);
        free(err);
        return -1;
    }
    log_info("schema: owned by %s; %s may only read and append to the ledger", a->role, app->role);
    return 0;
}

/*
 * Brings the schema up to date. With an administrator's URL, the administrator migrates, owns
 * everything and grants cpxd's own role only what it needs (migrate_grant): the append-only
 * triggers then hold even against cpxd. Without one, cpxd's role migrates and owns the tables.
 */
static int apply_migrations(const struct config *cfg)
{
    const char *admin_url = cfg->admin_database_url;
    PGconn *pg = connect_retrying(admin_url ? admin_url : cfg->database_url);
    if (pg == NULL)
        return -1;
    struct whoami a, app;
    int same_role = admin_url ? same_database(pg, cfg, &a, &app) : 1;
    int rc = -1, applied = 0;
    char *err = NULL;
    if (same_role < 0) {
        /* logged */
    } else if (migrate(pg, cpx_migrations, cpx_migrations_count, &applied, &err) != 0) {
        log_error("schema: %s", err ? err : "migration failed");
        free(err);
    } else {
        log_info("schema: %d migration(s) applied, %zu in all", applied, cpx_migrations_count);
        if (admin_url == NULL)
            log_warn("schema: no --admin-database-url, so cpxd's own role owns the ledger "
                     "tables and could disable their append-only triggers");
        rc = same_role == 0 ? restrict_app_role(pg, &a, &app) : 0;
    }
    PQfinish(pg);
    return rc;
}

struct bootstrap {
    struct ledger_batch ledger; /* the records start-up writes */
    struct identity op;         /* the configured operator */
    bool have_op;               /* an operator key is configured */
    bool op_created;            /* ... and it was registered just now */
    bool op_retired;            /* ... but a key rotation retired its key */
    uint64_t genesis;           /* identities written as genesis records */
    enum db_status st;          /* the first failure inside genesis_one */
    struct db_conn *conn;       /* the transaction's connection, for genesis_one */
};

/* Writes the exchange-originated records of an identity: registration and any decision. */
static enum db_status record_identity(struct db_conn *c, struct ledger_batch *b,
                                      const struct identity *idn)
{
    bool ok;
    uint64_t seq;
    enum db_status st = records_identity(c, b, idn, NULL, &ok, &seq);
    if (st == DB_OK && idn->status != IDENTITY_PENDING)
        st = records_decision(c, b, idn->id, idn->status, idn->reason, NULL, &ok, &seq);
    return st;
}

static bool genesis_one(const struct identity *idn, void *arg)
{
    struct bootstrap *b = arg;
    b->st = record_identity(b->conn, &b->ledger, idn);
    b->genesis++;
    return b->st == DB_OK;
}

/*
 * Start-up's one transaction: identities older than the ledger become its genesis records (their
 * signed requests were not kept, so the exchange vouches for them), then the configured operator
 * is registered and approved once, both as records.
 */
static enum db_status bootstrap_tx(struct db_conn *c, void *arg)
{
    struct bootstrap *b = arg;
    ledger_batch_reset(&b->ledger);
    b->genesis = 0;
    b->op_retired = false;
    b->st = DB_OK;
    b->conn = c;
    enum db_status st = ledger_batch_begin(c, &b->ledger);
    if (st == DB_OK && b->ledger.range.size == 0)
        st = db_identity_all(c, genesis_one, b);
    if (st == DB_OK)
        st = b->st;
    if (st == DB_OK && b->have_op) {
        st = db_retired_key_get(c, b->op.public_key);
        if (st == DB_OK) {
            b->op_retired = true; /* a key rotation replaced it: never accepted again */
            return DB_NO_ROWS;
        }
        if (st == DB_NO_ROWS)
            st = db_identity_bootstrap(c, &b->op, &b->op_created);
    }
    if (st == DB_OK && b->op_created) {
        b->op.status = IDENTITY_APPROVED;
        st = record_identity(c, &b->ledger, &b->op);
    }
    return st == DB_OK ? ledger_batch_commit(c, &b->ledger) : st;
}

/* Reads the operator's key file (only its public half is kept) into b->op. */
static int load_operator(const char *path, struct bootstrap *b)
{
    size_t len;
    char *text = read_file(path, 4096, &len);
    if (text == NULL) {
        log_error("operator key %s: %s", path, strerror(errno));
        return -1;
    }
    struct cpx_keyfile kf;
    const char *bad = cpx_keyfile_parse(text, len, &kf);
    memset(text, 0, len);
    free(text);
    if (bad != NULL) {
        log_error("operator key %s: %s", path, bad);
        return -1;
    }
    cpx_keypair_wipe(&kf.kp); /* only the public half is needed */
    char derived[CPX_ID_MAX];
    cpx_identity_id_for_key(kf.kp.pk, derived);
    if (strcmp(derived, kf.identity) != 0) {
        /* a rotated key acts for the identity of its first key; it cannot register anew */
        log_info("operator key %s acts for %s after a key rotation; not registering it", path,
                 kf.identity);
        return 0;
    }
    b->have_op = true;
    b->op.roles = ROLE_OPERATOR;
    snprintf(b->op.id, sizeof b->op.id, "%s", kf.identity);
    snprintf(b->op.name, sizeof b->op.name, "CPX operator");
    /* Registration numbers are unique among live identities: one per operator key. */
    snprintf(b->op.reg_no, sizeof b->op.reg_no, "CPX-OPERATOR-%.16s", kf.identity + 4);
    memcpy(b->op.public_key, kf.kp.pk, sizeof b->op.public_key);
    return 0;
}

/* Writes the ledger's genesis records and registers the configured operator, once. */
static int bootstrap(struct server *srv)
{
    struct bootstrap b = { 0 };
    const char *path = srv->cfg->operator_key;
    if (path != NULL && load_operator(path, &b) != 0)
        return -1;
    ledger_batch_init(&b.ledger, &srv->signer);
    enum db_status st = db_transact(srv->db, DB_SERIALIZABLE, bootstrap_tx, &b);
    if (st == DB_OK)
        metrics_ledger_committed(srv->metrics, b.ledger.nrows, b.ledger.range.size, now_us());
    ledger_batch_free(&b.ledger);
    if (st != DB_OK) {
        log_error("start-up records: %s",
                  b.op_retired ? "the operator key was retired by a key rotation: configure the "
                                 "operator's current key file"
                  : st == DB_CONFLICT && b.have_op ? "the operator key belongs to another identity"
                                                   : "database error");
        return -1;
    }
    if (b.genesis > 0)
        log_info("ledger: %llu identities older than the ledger recorded",
                 (unsigned long long)b.genesis);
    if (b.have_op)
        log_info("operator %s %s", b.op.id, b.op_created ? "registered and approved" : "present");
    return 0;
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        log_error("cannot write port file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int server_start(struct server *srv, const struct config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    pthread_mutex_init(&srv->maint_mu, NULL);
    pthread_mutex_init(&srv->ledger_mu, NULL);
    pthread_cond_init(&srv->maint_wake, NULL);
    market_snapshot_init(&srv->snapshot);
    log_set_level((enum log_level)log_level_parse(cfg->log_level));

    const char *bad = ledger_signer_load(&srv->signer, cfg->exchange_key, cfg->ledger_origin);
    if (bad != NULL) {
        log_error("exchange key %s: %s", cfg->exchange_key, bad);
        return -1;
    }
    log_info("ledger %s, verifier key %s", srv->signer.origin, srv->signer.verifier_key);

    /* The schema first: the pool prepares its statements against it. */
    if (apply_migrations(cfg) != 0)
        return -1;
    char *err = NULL;
    srv->db = db_pool_open(cfg->database_url, (size_t)cfg->db_pool, (int)cfg->db_wait_ms, &err);
    if (srv->db == NULL) {
        log_error("database: %s", err ? err : "cannot connect");
        free(err);
        return -1;
    }
    srv->metrics = metrics_create(nroutes, routes_init());
    srv->replay = replay_create(2 * cfg->clock_skew);
    srv->idcache = identity_cache_create(IDCACHE_SLOTS, IDCACHE_TTL_MS);
    srv->ratelimit = rate_limiter_create(RATELIMIT_SLOTS, cfg->rate_limit, 2 * cfg->rate_limit);
    if (srv->metrics == NULL || srv->replay == NULL || srv->idcache == NULL) {
        log_error("out of memory");
        goto fail;
    }
    if (bootstrap(srv) != 0)
        goto fail;
    srv->seq = sequencer_start(srv, &err);
    if (srv->seq == NULL) {
        log_error("market: %s", err ? err : "cannot start the sequencer");
        free(err);
        goto fail;
    }
    srv->dispatcher = dispatcher_start(srv);
    if (srv->dispatcher == NULL) {
        log_error("out of memory");
        goto fail;
    }
    if (!http_start(srv))
        goto fail;
    if (cfg->port_file != NULL && write_port_file(cfg->port_file, srv->port) != 0)
        goto fail;
    srv->maint_running = pthread_create(&srv->maint_thread, NULL, maintenance, srv) == 0;
    log_info("cpxd listening on https://%s:%u", cfg->listen, srv->port);
    return 0;
fail:
    server_stop(srv);
    return -1;
}

void server_stop(struct server *srv)
{
    if (srv->maint_running) {
        pthread_mutex_lock(&srv->maint_mu);
        srv->maint_stop = true;
        pthread_cond_signal(&srv->maint_wake);
        pthread_mutex_unlock(&srv->maint_mu);
        pthread_join(srv->maint_thread, NULL);
        srv->maint_running = false;
    }
    dispatcher_stop(srv->dispatcher); /* before the sequencer: it waits on it */
    srv->dispatcher = NULL;
    sequencer_stop(srv->seq); /* answers what is queued; later orders get 503 */
    http_stop(srv);
    sequencer_free(srv->seq);
    srv->seq = NULL;
    replay_free(srv->replay);
    identity_cache_free(srv->idcache);
    rate_limiter_free(srv->ratelimit);
    srv->ratelimit = NULL;
    srv->idcache = NULL;
    metrics_free(srv->metrics);
    db_pool_close(srv->db);
    srv->replay = NULL;
    srv->metrics = NULL;
    srv->db = NULL;
    ledger_signer_wipe(&srv->signer);
    pthread_mutex_destroy(&srv->maint_mu);
    pthread_mutex_destroy(&srv->ledger_mu);
    pthread_cond_destroy(&srv->maint_wake);
    market_snapshot_free(&srv->snapshot);
}
