/*
 * The server as a whole: what every handler can reach through its request.
 * There is no global server: main() owns one, so a test could run two.
 */
#ifndef CPX_SERVER_SERVER_H
#define CPX_SERVER_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/config.h"
#include "server/ledger_writer.h"
#include "server/market.h"

struct server {
    const struct config *cfg;       /* settings, read-only after start */
    struct db_pool *db;             /* PostgreSQL connections */
    struct metrics *metrics;        /* request counters and histograms */
    struct replay_cache *replay;    /* signatures seen recently */
    struct identity_cache *idcache; /* callers looked up recently (idcache.h) */
    struct rate_limiter *ratelimit; /* sequenced commands per identity (NULL: no limit) */
    struct ledger_signer signer;    /* the exchange's checkpoint key and the ledger's origin */
    pthread_mutex_t ledger_mu;      /* one ledger-appending transaction at a time in this process */
    struct sequencer *seq;          /* the market's single writer */
    struct dispatcher *dispatcher;  /* delivers agreements' jobs to providers */
    struct market_snapshot snapshot; /* the books as of the last committed batch */
    struct MHD_Daemon *daemon;       /* the HTTPS listener */
    uint16_t port;                   /* port actually bound */
    char *tls_cert_pem;              /* certificate text, alive while listening */
    char *tls_key_pem;               /* private key text, alive while listening */
    pthread_t maint_thread;          /* maintenance: prunes the durable replay guard */
    pthread_mutex_t maint_mu;        /* guards maint_stop */
    pthread_cond_t maint_wake;       /* wakes the maintenance thread to stop */
    bool maint_running;              /* maint_thread was started */
    bool maint_stop;                 /* asks it to stop */
};

/* Connects, migrates and bootstraps, then starts listening. Returns 0, or -1 after logging why;
 * on failure everything started is stopped again. */
int server_start(struct server *srv, const struct config *cfg);

/* Stops listening (finishing requests in flight) and releases everything. */
void server_stop(struct server *srv);

#endif
