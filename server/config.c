/*
 * Configuration: one table of settings, read from defaults, the environment and flags in that
 * order. Adding a setting is one line in `settings` and one field in struct config.
 */
#include "server/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/log.h"

enum kind { STR, INT };

struct setting {
    const char *flag; /* long flag without the dashes */
    const char *env;  /* environment variable */
    enum kind kind;   /* STR -> char *, INT -> int64_t */
    size_t offset;    /* field in struct config */
    const char *dflt; /* default value as text; NULL for none */
    int64_t min, max; /* INT bounds */
    const char *help; /* one line for --help */
};

#define S(f) offsetof(struct config, f)
static const struct setting settings[] = {
    { "listen", "CPX_LISTEN", STR, S(listen), "127.0.0.1", 0, 0, "address to listen on" },
    { "port", "CPX_PORT", INT, S(port), "8443", 0, 65535, "HTTPS port (0: any free port)" },
    { "port-file", "CPX_PORT_FILE", STR, S(port_file), NULL, 0, 0,
      "write the bound port to this file once listening" },
    { "database-url", "CPX_DATABASE_URL", STR, S(database_url), NULL, 0, 0,
      "PostgreSQL connection URL (required)" },
    { "admin-database-url", "CPX_ADMIN_DATABASE_URL", STR, S(admin_database_url), NULL, 0, 0,
      "administrator's URL: migrates, owns the schema, grants the app role only what it needs" },
    { "tls-cert", "CPX_TLS_CERT", STR, S(tls_cert), "var/tls/cert.pem", 0, 0,
      "TLS certificate (PEM)" },
    { "tls-key", "CPX_TLS_KEY", STR, S(tls_key), "var/tls/key.pem", 0, 0, "TLS private key (PEM)" },
    { "exchange-key", "CPX_EXCHANGE_KEY", STR, S(exchange_key), "var/exchange.key", 0, 0,
      "key file of the exchange's own key, which signs ledger checkpoints" },
    { "ledger-origin", "CPX_LEDGER_ORIGIN", STR, S(ledger_origin), "cpx.local/ledger", 0, 0,
      "the ledger's name in its checkpoints (and their key name)" },
    { "operator-key", "CPX_OPERATOR_KEY", STR, S(operator_key), NULL, 0, 0,
      "key file of the bootstrap operator, registered and approved at start" },
    { "threads", "CPX_THREADS", INT, S(threads), "4", 1, 256, "HTTP worker threads" },
    { "db-pool", "CPX_DB_POOL", INT, S(db_pool), "8", 1, 512, "PostgreSQL connections" },
    { "max-body", "CPX_MAX_BODY", INT, S(max_body), "1048576", 1024, 67108864,
      "largest request body in bytes (larger: 413)" },
    { "clock-skew", "CPX_CLOCK_SKEW", INT, S(clock_skew), "60", 1, 3600,
      "seconds a signed request's timestamp may be off" },
    { "db-wait-ms", "CPX_DB_WAIT_MS", INT, S(db_wait_ms), "2000", 1, 60000,
      "milliseconds a request waits for a database connection (then 503)" },
    { "fee-maker-bps", "CPX_FEE_MAKER_BPS", INT, S(fee_maker_bps), "10", 0, 1000,
      "commission in basis points on a fill whose order was resting" },
    { "fee-taker-bps", "CPX_FEE_TAKER_BPS", INT, S(fee_taker_bps), "20", 0, 1000,
      "commission in basis points on a fill whose order arrived" },
    { "fee-min-micro", "CPX_FEE_MIN_MICRO", INT, S(fee_min_micro), "0", 0, 1000000000,
      "least commission on a bill with an amount, micro-CNY (never above what the hold escrowed)" },
    { "dispatchers", "CPX_DISPATCHERS", INT, S(dispatchers), "2", 0, 64,
      "threads delivering jobs to providers (0: none; jobs wait in the outbox)" },
    { "delivery-window", "CPX_DELIVERY_WINDOW", INT, S(delivery_window), "900", 1, 604800,
      "seconds after an agreement's start by which its job must be accepted (then it fails)" },
    { "delivery-timeout", "CPX_DELIVERY_TIMEOUT", INT, S(delivery_timeout), "10", 1, 300,
      "seconds one delivery attempt may take" },
    { "delivery-backoff-max", "CPX_DELIVERY_BACKOFF_MAX", INT, S(delivery_backoff_max), "60", 1,
      3600, "longest wait between two delivery attempts, seconds" },
    { "delivery-ca", "CPX_DELIVERY_CA", STR, S(delivery_ca), NULL, 0, 0,
      "extra CA bundle (PEM) that providers' endpoint certificates may chain to" },
    { "dispute-window", "CPX_DISPUTE_WINDOW", INT, S(dispute_window), "86400", 0, 31536000,
      "seconds a buyer may dispute a bill; it settles after (0: at once)" },
    { "usage-grace", "CPX_USAGE_GRACE", INT, S(usage_grace), "3600", 0, 31536000,
      "seconds after an agreement's end that usage may still be reported" },
    { "batch-max", "CPX_BATCH_MAX", INT, S(batch_max), "1000", 1, 100000,
      "most commands the sequencer commits in one transaction" },
    { "rate-limit", "CPX_RATE_LIMIT", INT, S(rate_limit), "100", 0, 1000000,
      "orders, listings, cancels and deposits one identity may send a second, twice that at "
      "once (0: no limit; beyond: 429)" },
    { "max-resting", "CPX_MAX_RESTING", INT, S(max_resting), "1000000", 1, 100000000,
      "most orders and listings resting in the books (then 503 book_full)" },
    { "log-level", "CPX_LOG_LEVEL", STR, S(log_level), "info", 0, 0, "debug, info, warn or error" },
};
#undef S
#define NSETTINGS (sizeof settings / sizeof settings[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: cpxd [--flag value]...\n\n"
                 "The CPX exchange server. Every flag can also be set by its environment "
                 "variable;\nthe flag wins.\n\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  --%-18s %-22s %s", s->flag, s->env, s->help);
        if (s->dflt != NULL)
            fprintf(out, " [%s]", s->dflt);
        fputc('\n', out);
    }
    fprintf(out, "  --%-18s %-22s %s\n", "print-verifier-key", "",
            "print the ledger's verifier key (for cpx-audit) and exit");
    fprintf(out, "  --%-18s %-22s %s\n", "help", "", "print this and exit");
}

/* Stores text as setting s's value. Returns false after printing why it is invalid. */
static bool assign(struct config *cfg, const struct setting *s, const char *text,
                   const char *source)
{
    char *field = (char *)cfg + s->offset;
    if (s->kind == STR) {
        char **dst = (char **)field;
        free(*dst);
        *dst = strdup(text);
        return *dst != NULL;
    }
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < s->min || v > s->max) {
        fprintf(stderr, "cpxd: %s: %s must be an integer from %lld to %lld, not \"%s\"\n", source,
                s->flag, (long long)s->min, (long long)s->max, text);
        return false;
    }
    *(int64_t *)field = v;
    return true;
}

int config_load(struct config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->dflt != NULL && !assign(cfg, s, s->dflt, "default"))
            return -1;
        const char *env = getenv(s->env);
        if (env != NULL && *env != '\0' && !assign(cfg, s, env, s->env))
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "--print-verifier-key") == 0) {
            cfg->print_verifier_key = true;
            continue;
        }
        const struct setting *s = NULL;
        const char *value = NULL;
        if (strncmp(arg, "--", 2) == 0) {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t n = eq ? (size_t)(eq - name) : strlen(name);
            for (size_t i = 0; i < NSETTINGS && s == NULL; i++)
                if (strlen(settings[i].flag) == n && strncmp(settings[i].flag, name, n) == 0)
                    s = &settings[i];
            value = eq ? eq + 1 : (a + 1 < argc ? argv[++a] : NULL);
        }
        if (s == NULL) {
            fprintf(stderr, "cpxd: unknown option \"%s\" (see cpxd --help)\n", arg);
            return -1;
        }
        if (value == NULL) {
            fprintf(stderr, "cpxd: --%s needs a value\n", s->flag);
            return -1;
        }
        if (!assign(cfg, s, value, "flag"))
            return -1;
    }
    if (cfg->database_url == NULL && !cfg->print_verifier_key) {
        fprintf(stderr, "cpxd: no database: set --database-url or CPX_DATABASE_URL\n");
        return -1;
    }
    if (log_level_parse(cfg->log_level) < 0) {
        fprintf(stderr, "cpxd: --log-level must be debug, info, warn or error\n");
        return -1;
    }
    return 0;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].kind == STR) {
            char **p = (char **)((char *)cfg + settings[i].offset);
            free(*p);
            *p = NULL;
        }
}
