/*
 * The connection pool, query classification and the transaction runner: see db.h.
 *
 * The pool is a fixed array of connections guarded by one mutex and condition variable. A
 * connection is either free or lent to exactly one thread. Connections are made lazily and
 * remade when they break: `ready` is false until the connection is up and every statement table
 * in `statement_tables` has been prepared on it. PQreset would reuse the old socket's settings;
 * a fresh PQconnectdb after PQfinish is simpler and just as fast on a unix socket.
 *
 * Error classes follow the SQLSTATE: class 40 (40001 serialization_failure, 40P01 deadlock) is
 * soft and retried; 23505 is a conflict the caller maps to 409; class 08 (connection exception)
 * and 57P0x (admin/crash shutdown) mean the database went away; everything else is hard and
 * logged once with its SQLSTATE and message.
 */
#include "server/db.h"
#include "server/db_delivery.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/codec.h"
#include "server/log.h"

#define MAX_RETRIES 8

static const struct db_statement *const statement_tables[] = {
    db_core_statements,    db_identity_statements, db_ledger_statements,
    db_trading_statements, db_delivery_statements,
};

const struct db_statement db_core_statements[] = {
    { "ping", "SELECT 1", 0 },
    { NULL, NULL, 0 },
};

struct db_pool {
    char *url;                  /* connection URL */
    size_t size;                /* number of connections */
    int wait_ms;                /* how long db_acquire waits */
    struct db_conn *conns;      /* the connections */
    bool *busy;                 /* busy[i]: conns[i] is lent out */
    size_t in_use;              /* count of busy entries */
    pthread_mutex_t mu;         /* guards busy, in_use and the counters */
    pthread_cond_t freed;       /* signalled when a connection is returned */
    struct db_pool_stats stats; /* counters for /metrics (size and in_use filled on read) */
};

/* Closes c's connection; it will be remade on next use. */
static void conn_drop(struct db_conn *c)
{
    if (c->pg != NULL)
        PQfinish(c->pg);
    c->pg = NULL;
    c->ready = false;
}

/* Connects c and prepares every statement. Returns false (and logs why) when it cannot. */
static bool conn_open(struct db_pool *pool, struct db_conn *c)
{
    conn_drop(c);
    c->pg = PQconnectdb(pool->url);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        log_warn("database: cannot connect: %s", PQerrorMessage(c->pg));
        conn_drop(c);
        return false;
    }
    for (size_t t = 0; t < sizeof statement_tables / sizeof statement_tables[0]; t++)
        for (const struct db_statement *s = statement_tables[t]; s->name != NULL; s++) {
            PGresult *r = PQprepare(c->pg, s->name, s->sql, s->nparams, NULL);
            bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!ok)
                log_error("database: cannot prepare %s: %s", s->name, PQerrorMessage(c->pg));
            PQclear(r);
            if (!ok) {
                conn_drop(c);
                return false;
            }
        }
    c->ready = true;
    c->connected_before = true;
    return true;
}

struct db_pool *db_pool_open(const char *url, size_t size, int wait_ms, char **err)
{
    struct db_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        goto oom;
    pool->url = strdup(url);
    pool->size = size;
    pool->wait_ms = wait_ms;
    pool->conns = calloc(size, sizeof *pool->conns);
    pool->busy = calloc(size, sizeof *pool->busy);
    if (pool->url == NULL || pool->conns == NULL || pool->busy == NULL)
        goto oom;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->freed, &attr);
    pthread_condattr_destroy(&attr);
    if (!conn_open(pool, &pool->conns[0])) {
        *err = strdup("cannot connect to the database (see the log above)");
        db_pool_close(pool);
        return NULL;
    }
    return pool;
oom:
    *err = strdup("out of memory");
    if (pool != NULL) {
        free(pool->url);
        free(pool->conns);
        free(pool->busy);
        free(pool);
    }
    return NULL;
}

void db_pool_close(struct db_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->size; i++)
        conn_drop(&pool->conns[i]);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->freed);
    free(pool->url);
    free(pool->conns);
    free(pool->busy);
    free(pool);
}

void db_pool_stats(struct db_pool *pool, struct db_pool_stats *out)
{
    pthread_mutex_lock(&pool->mu);
    *out = pool->stats;
    out->size = pool->size;
    out->in_use = pool->in_use;
    pthread_mutex_unlock(&pool->mu);
}

/* Lends out a connection slot, waiting up to wait_ms. Returns its index or -1. */
static long take_slot(struct db_pool *pool)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += pool->wait_ms / 1000;
    deadline.tv_nsec += (long)(pool->wait_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    long slot = -1;
    bool waited = false;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        /* Prefer connections that are already up. */
        for (size_t i = 0; i < pool->size && slot < 0; i++)
            if (!pool->busy[i] && pool->conns[i].ready)
                slot = (long)i;
        for (size_t i = 0; i < pool->size && slot < 0; i++)
            if (!pool->busy[i])
                slot = (long)i;
        if (slot >= 0)
            break;
        waited = true;
        if (pthread_cond_timedwait(&pool->freed, &pool->mu, &deadline) == ETIMEDOUT) {
            pool->stats.timeouts++;
            break;
        }
    }
    if (slot >= 0) {
        pool->busy[slot] = true;
        pool->in_use++;
    }
    if (waited)
        pool->stats.waits++;
    pthread_mutex_unlock(&pool->mu);
    return slot;
}

struct db_conn *db_acquire(struct db_pool *pool)
{
    long slot = take_slot(pool);
    if (slot < 0)
        return NULL;
    struct db_conn *c = &pool->conns[slot];
    if (c->ready && PQstatus(c->pg) != CONNECTION_OK)
        conn_drop(c);
    if (!c->ready) {
        bool had = c->connected_before;
        if (!conn_open(pool, c)) {
            db_release(pool, c);
            return NULL;
        }
        if (had) {
            pthread_mutex_lock(&pool->mu);
            pool->stats.reconnects++;
            pthread_mutex_unlock(&pool->mu);
        }
    }
    c->conflict[0] = '\0';
    c->sqlstate[0] = '\0';
    return c;
}

void db_release(struct db_pool *pool, struct db_conn *c)
{
    size_t slot = (size_t)(c - pool->conns);
    /* A connection left inside a transaction (a bug or a broken link) is not handed on. */
    if (c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        conn_drop(c);
    pthread_mutex_lock(&pool->mu);
    pool->busy[slot] = false;
    pool->in_use--;
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->mu);
}

/* Classifies a finished result; logs hard errors. Takes ownership of r when not OK. */
static enum db_status classify(struct db_conn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return DB_OK;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");
    enum db_status out;
    if (state == NULL || PQstatus(c->pg) != CONNECTION_OK || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P0", 4) == 0) {
        out = DB_UNAVAILABLE;
        c->ready = false;
        log_warn("database: connection lost during %s: %s", what, PQerrorMessage(c->pg));
    } else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        out = DB_SOFT;
    } else if (strcmp(state, "23505") == 0) {
        const char *name = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        snprintf(c->conflict, sizeof c->conflict, "%s", name ? name : "");
        out = DB_CONFLICT;
    } else {
        out = DB_HARD;
        log_error("database: %s failed: SQLSTATE %s: %s", what, state,
                  PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
    }
    PQclear(r);
    return out;
}

enum db_status db_query(struct db_conn *c, const char *name, int nparams, const char *const *params,
                        PGresult **res)
{
    *res = NULL;
    PGresult *r = PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0);
    enum db_status st = classify(c, r, name);
    if (st == DB_OK)
        *res = r;
    return st;
}

#define COPY_CHUNK (1024 * 1024) /* bytes handed to libpq per PQputCopyData */

enum db_status db_copy_in(struct db_conn *c, const char *what, const char *sql, const void *data,
                          size_t len)
{
    PGresult *r = PQexec(c->pg, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        enum db_status st = classify(c, r, what);
        if (st == DB_OK) {
            PQclear(r);
            log_error("database: %s did not start a COPY", what);
            st = DB_HARD;
        }
        return st;
    }
    PQclear(r);
    bool sent = true;
    for (size_t off = 0; sent && off < len; off += COPY_CHUNK) {
        size_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;
        sent = PQputCopyData(c->pg, (const char *)data + off, (int)n) == 1;
    }
    /* ending the copy reports the outcome; on a failed send end it with an error ourselves */
    if (PQputCopyEnd(c->pg, sent ? NULL : "cpxd could not send the data") != 1) {
        log_warn("database: %s: cannot end the COPY: %s", what, PQerrorMessage(c->pg));
        c->ready = false; /* still in copy mode: unusable, remade on next use */
        return DB_UNAVAILABLE;
    }
    PGresult *res = PQgetResult(c->pg);
    enum db_status st = classify(c, res, what);
    if (st == DB_OK)
        PQclear(res);
    for (PGresult *rest; (rest = PQgetResult(c->pg)) != NULL;) {
        bool stuck = PQresultStatus(rest) == PGRES_COPY_IN;
        PQclear(rest);
        if (stuck) {
            c->ready = false;
            return DB_UNAVAILABLE;
        }
    }
    return st;
}

enum db_status db_query_row(struct db_conn *c, const char *name, int nparams,
                            const char *const *params, PGresult **res)
{
    enum db_status st = db_query(c, name, nparams, params, res);
    if (st == DB_OK && PQntuples(*res) == 0) {
        PQclear(*res);
        *res = NULL;
        st = DB_NO_ROWS;
    }
    return st;
}

enum db_status db_command(struct db_conn *c, const char *name, int nparams,
                          const char *const *params, long *rows)
{
    PGresult *r;
    enum db_status st = db_query(c, name, nparams, params, &r);
    if (st != DB_OK)
        return st;
    if (rows != NULL)
        *rows = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return DB_OK;
}

/* Runs a fixed command (BEGIN, COMMIT, ROLLBACK) that takes no parameters. */
static enum db_status simple(struct db_conn *c, const char *sql)
{
    PGresult *r = PQexec(c->pg, sql);
    enum db_status st = classify(c, r, sql);
    if (st == DB_OK)
        PQclear(r);
    return st;
}

enum db_status db_exec(struct db_conn *c, const char *sql)
{
    return simple(c, sql);
}

/* Sleeps before retry `attempt` (1-based): 1, 2, 4 ... ms, with up to 100% jitter. */
static void backoff(int attempt)
{
    long ms = 1L << (attempt < 8 ? attempt - 1 : 7);
    ms += rand() % (ms + 1);
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static void count_retry(struct db_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    pool->stats.retries++;
    pthread_mutex_unlock(&pool->mu);
}

/* One attempt of a transaction on c. *began tells whether BEGIN went through. */
static enum db_status attempt_tx(struct db_conn *c, enum db_isolation iso, db_tx_fn fn, void *arg,
                                 bool *began)
{
    static const char *const begin[] = {
        [DB_READ_COMMITTED] = "BEGIN ISOLATION LEVEL READ COMMITTED",
        [DB_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
        [DB_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
    };
    enum db_status st = simple(c, begin[iso]);
    *began = st == DB_OK;
    if (st != DB_OK)
        return st;
    st = fn(c, arg);
    if (st == DB_OK)
        return simple(c, "COMMIT");
    if (c->ready)
        simple(c, "ROLLBACK");
    return st;
}

enum db_status db_transact(struct db_pool *pool, enum db_isolation iso, db_tx_fn fn, void *arg)
{
    enum db_status st = DB_UNAVAILABLE;
    bool reconnected = false;
    for (int attempt = 1; attempt <= MAX_RETRIES; attempt++) {
        struct db_conn *c = db_acquire(pool);
        if (c == NULL)
            return DB_UNAVAILABLE;
        bool began = false;
        st = attempt_tx(c, iso, fn, arg, &began);
        db_release(pool, c);
        if (st == DB_SOFT) {
            count_retry(pool);
            backoff(attempt);
            continue;
        }
        /* A connection found broken at BEGIN (the database restarted since it was last used)
         * gets one fresh try. One that broke later is not retried: a COMMIT whose answer was
         * lost may have taken effect, and only the caller can tell. */
        if (st == DB_UNAVAILABLE && !began && !reconnected) {
            reconnected = true;
            continue;
        }
        break;
    }
    return st;
}

enum db_status db_run(struct db_pool *pool, db_tx_fn fn, void *arg)
{
    enum db_status st = DB_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct db_conn *c = db_acquire(pool);
        if (c == NULL)
            return DB_UNAVAILABLE;
        st = fn(c, arg);
        db_release(pool, c);
        if (st != DB_UNAVAILABLE)
            break;
    }
    return st;
}

int64_t db_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

void db_get_str(const PGresult *r, int row, int col, char *out, size_t cap)
{
    const char *v = PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
    snprintf(out, cap, "%s", v);
}

bool db_get_bytea(const PGresult *r, int row, int col, uint8_t *out, size_t n)
{
    if (PQgetisnull(r, row, col))
        return false;
    const char *v = PQgetvalue(r, row, col);
    size_t len = (size_t)PQgetlength(r, row, col);
    return len >= 2 && v[0] == '\\' && v[1] == 'x' && cpx_hex_decode(v + 2, len - 2, out, n);
}

char *db_bytea_param(const uint8_t *data, size_t n, char *out)
{
    out[0] = '\\';
    out[1] = 'x';
    cpx_hex_encode(data, n, out + 2);
    return out;
}
