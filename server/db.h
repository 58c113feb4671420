/*
 * The database layer: a small pool of libpq connections, statements prepared at connect, a query
 * call that tells soft errors from hard ones, and a transaction runner that retries soft ones.
 *
 * Every query is a prepared statement with parameters (never SQL built with printf). Each family
 * of queries lives in its own file (db_identities.c, ...) as a table of statements plus one C
 * function per statement; db.c prepares every table on each new connection. A connection that
 * breaks (PostgreSQL restarted, network cut) is reconnected and re-prepared the next time it is
 * used; in between, requests fail with DB_UNAVAILABLE and the API answers 503.
 */
#ifndef CPX_SERVER_DB_H
#define CPX_SERVER_DB_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a query or a transaction came to. */
enum db_status {
    DB_OK = 0,      /* done */
    DB_NO_ROWS,     /* a query that must find a row found none */
    DB_CONFLICT,    /* a unique constraint refused the write (db_conn.conflict names it) */
    DB_SOFT,        /* serialization failure or deadlock: retrying may succeed */
    DB_HARD,        /* any other database error; logged with its SQLSTATE */
    DB_UNAVAILABLE, /* no connection to the database, or none free in time */
};

/* A prepared statement: its name, SQL text and parameter count. */
struct db_statement {
    const char *name;
    const char *sql;
    int nparams;
};

/* One connection; used by one thread at a time between db_acquire and db_release. */
struct db_conn {
    PGconn *pg;            /* libpq connection, NULL until first connected */
    bool ready;            /* connected with every statement prepared */
    bool connected_before; /* it was up once: the next connect is a reconnect */
    char conflict[64];     /* constraint named by the last DB_CONFLICT */
    char sqlstate[6];      /* SQLSTATE of the last error */
};

/* Figures for /metrics. */
struct db_pool_stats {
    size_t size;         /* connections in the pool */
    size_t in_use;       /* currently acquired */
    uint64_t waits;      /* acquisitions that had to wait */
    uint64_t timeouts;   /* acquisitions that gave up */
    uint64_t reconnects; /* successful reconnections */
    uint64_t retries;    /* transactions retried after DB_SOFT */
};

struct db_pool;

/*
 * Opens a pool of size connections to url, waiting up to wait_ms for a free one on each acquire.
 * Connects the first connection at once and returns NULL (with *err set to a malloc'd message)
 * when that fails; the others connect on first use. Free with db_pool_close.
 */
struct db_pool *db_pool_open(const char *url, size_t size, int wait_ms, char **err);

void db_pool_close(struct db_pool *pool);

void db_pool_stats(struct db_pool *pool, struct db_pool_stats *out);

/* Borrows a connected, prepared connection, or returns NULL (timeout or database down). */
struct db_conn *db_acquire(struct db_pool *pool);

/* Returns a connection to the pool. */
void db_release(struct db_pool *pool, struct db_conn *c);

/*
 * Runs prepared statement `name` with text parameters (NULL entries are SQL NULL). On DB_OK,
 * *res holds the result (caller PQclears it); on any other status *res is NULL.
 */
enum db_status db_query(struct db_conn *c, const char *name, int nparams, const char *const *params,
                        PGresult **res);

/* db_query for a statement that must find a row: DB_NO_ROWS (and *res NULL) when it finds none. */
enum db_status db_query_row(struct db_conn *c, const char *name, int nparams,
                            const char *const *params, PGresult **res);

/* Runs a statement whose rows are not needed; returns its status and, in *rows, rows affected. */
enum db_status db_command(struct db_conn *c, const char *name, int nparams,
                          const char *const *params, long *rows);

/*
 * Runs `COPY ... FROM STDIN` (sql, a fixed statement of ours) and sends data as its input, in the
 * format the statement names. The one kind of statement that cannot be prepared: it is used where
 * a batch writes thousands of rows at once. `what` names it in logs.
 */
enum db_status db_copy_in(struct db_conn *c, const char *what, const char *sql, const void *data,
                          size_t len);

/* Runs a fixed SQL text of ours without parameters (BEGIN, COMMIT, ROLLBACK). */
enum db_status db_exec(struct db_conn *c, const char *sql);

enum db_isolation { DB_READ_COMMITTED, DB_REPEATABLE_READ, DB_SERIALIZABLE };

/* The body of a transaction. It may run several times (after DB_SOFT), so it must reset any
 * output in arg at its start. Any status other than DB_OK rolls the transaction back. */
typedef enum db_status (*db_tx_fn)(struct db_conn *c, void *arg);

/*
 * Runs fn inside BEGIN ... COMMIT on a pooled connection, retrying DB_SOFT (a bounded number of
 * times, with growing jittered pauses) and a broken connection once (after reconnecting). Returns
 * DB_OK when committed, or the status that ended it.
 */
enum db_status db_transact(struct db_pool *pool, enum db_isolation iso, db_tx_fn fn, void *arg);

/* Runs fn on a pooled connection without a transaction (for single-statement reads), with the
 * same reconnect-once rule. */
enum db_status db_run(struct db_pool *pool, db_tx_fn fn, void *arg);

/* Reads column col of row r as int64 (0 when NULL). */
int64_t db_get_i64(const PGresult *r, int row, int col);

/* Copies column col of row r into out (cap bytes, truncated, NUL-terminated); "" when NULL. */
void db_get_str(const PGresult *r, int row, int col, char *out, size_t cap);

/* Decodes a bytea column (text form "\x...") of exactly n bytes; returns false otherwise. */
bool db_get_bytea(const PGresult *r, int row, int col, uint8_t *out, size_t n);

/* Writes the text form of a bytea parameter ("\x" + hex) into out (2*n + 3 bytes). */
char *db_bytea_param(const uint8_t *data, size_t n, char *out);

/* The statement tables of every query family, prepared on each connection. */
extern const struct db_statement db_core_statements[];
extern const struct db_statement db_identity_statements[];
extern const struct db_statement db_ledger_statements[];
extern const struct db_statement db_trading_statements[];

#endif
