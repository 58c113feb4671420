/*
 * cpxd's configuration: every setting has a flag and an environment variable (the flag wins),
 * both listed by `cpxd --help` from the one table in config.c.
 */
#ifndef CPX_SERVER_CONFIG_H
#define CPX_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config {
    char *listen;             /* address to bind, e.g. 127.0.0.1 */
    int64_t port;             /* TCP port; 0 picks a free one (see port_file) */
    char *port_file;          /* when set, the bound port is written there once listening */
    char *database_url;       /* libpq connection URL */
    char *admin_database_url; /* administrator's URL for migrations and grants; may be NULL */
    char *tls_cert;           /* PEM certificate chain file */
    char *tls_key;            /* PEM private key file */
    char *exchange_key;       /* key file of the exchange's checkpoint-signing key */
    char *ledger_origin;      /* the ledger's origin line and checkpoint key name */
    char *operator_key; /* key file (or public key file) of the bootstrap operator; may be NULL */
    int64_t threads;    /* HTTP worker threads */
    int64_t db_pool;    /* PostgreSQL connections */
    int64_t max_body;   /* largest request body accepted, bytes */
    int64_t clock_skew; /* seconds a signed request's timestamp may differ from ours */
    int64_t db_wait_ms; /* how long a request waits for a free database connection */
    int64_t fee_maker_bps;        /* commission on a fill whose order was resting, basis points */
    int64_t fee_taker_bps;        /* commission on a fill whose order arrived, basis points */
    int64_t fee_min_micro;        /* least commission on a bill with an amount */
    int64_t dispatchers;          /* delivery threads */
    int64_t delivery_window;      /* seconds after an agreement's start to have it accepted */
    int64_t delivery_timeout;     /* seconds per delivery attempt */
    int64_t delivery_backoff_max; /* longest wait between attempts, seconds */
    char *delivery_ca;            /* extra CA bundle for providers' endpoints */
    int64_t dispute_window;       /* seconds a bill may be disputed */
    int64_t usage_grace;          /* seconds after an agreement's end to report usage */
    int64_t batch_max;            /* most commands per sequencer batch */
    int64_t max_resting;          /* most orders and listings resting at once */
    int64_t rate_limit;           /* sequenced commands a second per identity (0: none) */
    char *log_level;              /* debug, info, warn or error */
    bool print_verifier_key;      /* --print-verifier-key: print it and exit */
};

/*
 * Fills cfg from defaults, then the environment, then argv. Returns 0 to run, 1 when --help was
 * printed (exit 0), -1 after printing an error about a bad setting (exit 2). Strings in cfg are
 * malloc'd; config_free releases them.
 */
int config_load(struct config *cfg, int argc, char **argv);

void config_free(struct config *cfg);

#endif
