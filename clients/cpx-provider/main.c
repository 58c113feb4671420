/*
 * cpx-provider: the reference provider endpoint of the CPX exchange (docs/provider.md). It
 * takes the jobs the exchange delivers, runs them, and reports their usage, which the exchange
 * bills. `cpx-provider --help` lists the options. Exit status: 0 after a clean stop (SIGINT or
 * SIGTERM), 1 when it cannot start, 2 for bad usage.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clients/common/cli.h"
#include "clients/common/client.h"
#include "clients/common/vkey.h"
#include "clients/cpx-provider/provider.h"

/* The flags; metavars[i] names flags[i]'s value in --help. */
static const char *const metavars[] = {
    "ADDRESS:PORT", "FILE", "FILE",    "FILE",    "URL",          "FILE",
    "FILE",         "FILE", "SECONDS", "SECONDS", "'SH COMMAND'", "",
};
static const struct cli_flag flags[] = {
    { "listen", true, "where to serve (default 127.0.0.1:9443; port 0 picks one)" },
    { "cert", true, "TLS certificate (PEM) the endpoint presents (required)" },
    { "tls-key", true, "its private key (PEM) (required)" },
    { "key", true, "the provider's key file (default: CPX_KEY or ./cpx.key)" },
    { "exchange", true, "the exchange's URL (default: CPX_URL or https://127.0.0.1:8443)" },
    { "cacert", true, "CA of the exchange's TLS (default: CPX_CACERT or var/tls/cert.pem)" },
    { "exchange-key", true, "its verifier key (default: CPX_EXCHANGE_VKEY, var/exchange.vkey)" },
    { "state", true, "remember accepted jobs in this file across restarts" },
    { "report-every", true, "seconds between usage reports (default 60)" },
    { "simulate-seconds", true, "a simulated job runs this long at most (default: to the end)" },
    { "command", true, "run each job with `sh -c COMMAND` instead of simulating it" },
    { "help", false, "print this help" },
    { NULL, false, NULL },
};
_Static_assert(sizeof metavars / sizeof metavars[0] + 1 == sizeof flags / sizeof flags[0],
               "one metavar per flag");

static void usage(FILE *out)
{
    fprintf(out, "usage: cpx-provider --cert FILE --tls-key FILE [options]\n\n"
                 "Receives the jobs the exchange delivers (docs/delivery.md), runs them and "
                 "reports their usage.\n\noptions:\n");
    for (size_t i = 0; flags[i].name != NULL; i++) {
        char name[64];
        snprintf(name, sizeof name, "--%s %s", flags[i].name, metavars[i]);
        fprintf(out, "  %-30s %s\n", name, flags[i].help);
    }
    fprintf(out, "\nA --command runs with CPX_AGREEMENT, CPX_DELIVERY, CPX_DEVICES and "
                 "CPX_JOB_FILE (the job's\ndescription) in its environment; it is metered as "
                 "every device busy while it runs.\nEvents are logged one per line on stderr.\n");
}

void plog(const char *event, const char *fmt, ...)
{
    char when[RFC3339_LEN], line[1024];
    rfc3339_format(now_ms() / 1000, when);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", when, event, line); /* one call: lines never interleave */
}

/* The one clock of the provider, in seconds as now_ms() / 1000: time() may be a tick behind
 * clock_gettime(), and a report planned by one clock and cut by the other would be empty. */
int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses a whole number of seconds in [min, max] for --name; false after saying why. */
static bool seconds_flag(const char *name, const char *value, int64_t min, int64_t max,
                         int64_t *out)
{
    if (value == NULL)
        return true;
    char *end;
    long long v = strtoll(value, &end, 10);
    if (*value == '\0' || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "--%s must be a whole number of seconds from %lld to %lld\n", name,
                (long long)min, (long long)max);
        return false;
    }
    *out = v;
    return true;
}

/* Splits "127.0.0.1:9443" or "[::1]:9443" into address and port; false after saying why. */
static bool listen_flag(const char *value, char address[64], unsigned *port)
{
    const char *colon = strrchr(value, ':');
    size_t n = colon ? (size_t)(colon - value) : 0;
    if (n >= 2 && value[0] == '[' && value[n - 1] == ']') {
        value++;
        n -= 2;
    }
    char *end;
    unsigned long v = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (colon == NULL || n == 0 || n >= 64 || colon[1] == '\0' || *end != '\0' || v > 65535) {
        fprintf(stderr, "--listen takes ADDRESS:PORT, e.g. 127.0.0.1:9443 or [::1]:0\n");
        return false;
    }
    memcpy(address, value, n);
    address[n] = '\0';
    *port = (unsigned)v;
    return true;
}

/* Reads the flags and keys into p; returns 0, or the exit status after saying why. */
static int configure(struct provider *p, const struct cli_args *a, char address[64], unsigned *port)
{
    if (cli_get(flags, a, "cert") == NULL || cli_get(flags, a, "tls-key") == NULL ||
        a->nargs != 0) {
        usage(stderr);
        return 2;
    }
    const char *listen = cli_get(flags, a, "listen");
    p->report_every = 60;
    if (!listen_flag(listen ? listen : "127.0.0.1:9443", address, port) ||
        !seconds_flag("report-every", cli_get(flags, a, "report-every"), 1, 86400,
                      &p->report_every) ||
        !seconds_flag("simulate-seconds", cli_get(flags, a, "simulate-seconds"), 1, 100000LL * 3600,
                      &p->simulate_seconds))
        return 2;
    p->command = cli_get(flags, a, "command");
    p->state_path = cli_get(flags, a, "state");
    struct client cl; /* resolves the flags, environment and defaults as bin/cpx does */
    struct cpx_note_verifier exchange;
    bool ok = client_init(&cl, cli_get(flags, a, "exchange"), cli_get(flags, a, "cacert"),
                          cli_get(flags, a, "key")) &&
              client_load_key(&cl) &&
              exchange_key_read("cpx-provider", cli_get(flags, a, "exchange-key"), &exchange);
    if (ok) {
        p->key = cl.key;
        memcpy(p->exchange_pk, exchange.pk, sizeof p->exchange_pk);
        snprintf(p->exchange_url, sizeof p->exchange_url, "%s", cl.url);
        snprintf(p->cacert, sizeof p->cacert, "%s", cl.cacert);
        snprintf(p->key_path, sizeof p->key_path, "%s", cl.key_path);
    }
    client_free(&cl);
    return ok ? 0 : 1;
}

/* The signals that stop the provider. */
static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

/* Tells every worker to stop, and waits for them. */
static void stop_workers(struct provider *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    workers_join(p);
}

/* Resumes the jobs the state file lists as unfinished. */
static bool resume(struct provider *p)
{
    pthread_mutex_lock(&p->lock); /* the workers it starts change the list when they finish */
    bool ok = jobs_load(p);
    for (size_t i = 0; ok && i < p->njobs; i++) {
        struct job *j = p->jobs[i];
        if (j->finished)
            continue;
        plog("resumed", "delivery=%s agreement=%s", j->delivery, j->agreement);
        ok = worker_start(p, j);
    }
    pthread_mutex_unlock(&p->lock);
    return ok;
}

/* Serves until SIGINT or SIGTERM, then stops cleanly. */
static int serve(struct provider *p, const char *address, unsigned port, const struct cli_args *a)
{
    unsigned bound = 0;
    if (!resume(p) || !endpoint_start(p, address, port, cli_get(flags, a, "cert"),
                                      cli_get(flags, a, "tls-key"), &bound)) {
        endpoint_stop(p);
        return 1;
    }
    /* stdout carries this one line, so a script can learn the port it got with --listen :0 */
    printf("listening on https://%s%s%s:%u\n", strchr(address, ':') ? "[" : "", address,
           strchr(address, ':') ? "]" : "", bound);
    fflush(stdout);
    plog("listening", "port=%u provider=%s exchange=%s", bound, p->key.identity, p->exchange_url);
    sigset_t stop;
    stop_signals(&stop);
    int sig = 0;
    sigwait(&stop, &sig);
    plog("stopping", "on %s: no new jobs; running ones stop and report what they used",
         sig == SIGINT ? "SIGINT" : "SIGTERM");
    endpoint_stop(p);
    stop_workers(p);
    pthread_mutex_lock(&p->lock);
    bool saved = jobs_save(p);
    pthread_mutex_unlock(&p->lock);
    return saved ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct cli_args a;
    if (!cli_parse(argc - 1, argv + 1, flags, &a)) {
        fprintf(stderr, "cpx-provider --help lists the options\n");
        return 2;
    }
    if (cli_get(flags, &a, "help") != NULL) {
        usage(stdout);
        return 0;
    }
    /* Signals are taken by sigwait in serve(): block them before any thread exists, so every
     * thread inherits the mask (commands get them back: see worker.c). */
    sigset_t stop;
    stop_signals(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (cpx_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cannot initialise the crypto or HTTP libraries\n");
        return 1;
    }
    struct provider p = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER };
    char address[64];
    unsigned port = 0;
    int rc = configure(&p, &a, address, &port);
    if (rc == 0)
        rc = serve(&p, address, port, &a);
    if (rc == 1 && !p.stopping) /* failed to start: stop the workers resume() began */
        stop_workers(&p);
    jobs_free(&p);
    cpx_keypair_wipe(&p.key.kp);
    curl_global_cleanup();
    return rc;
}
