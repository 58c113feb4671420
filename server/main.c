/*
 * cpxd: the CPX exchange server. Reads its configuration (cpxd --help), starts, and runs until
 * SIGINT or SIGTERM, then stops cleanly: the listener finishes requests in flight, the database
 * connections close.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>

#include "ledger/crypto.h"
#include "server/config.h"
#include "server/ledger_writer.h"
#include "server/log.h"
#include "server/server.h"

int main(int argc, char **argv)
{
    struct config cfg;
    int rc = config_load(&cfg, argc, argv);
    if (rc != 0) {
        config_free(&cfg);
        return rc > 0 ? 0 : 2;
    }
    json_object_seed(0); /* jansson's hash seed, set before any thread makes objects */
    if (cpx_crypto_init() != 0) {
        fprintf(stderr, "cpxd: cannot initialise libsodium\n");
        return 1;
    }
    if (cfg.print_verifier_key) {
        struct ledger_signer signer;
        const char *bad = ledger_signer_load(&signer, cfg.exchange_key, cfg.ledger_origin);
        if (bad != NULL)
            fprintf(stderr, "cpxd: exchange key %s: %s\n", cfg.exchange_key, bad);
        else
            printf("%s\n", signer.verifier_key);
        ledger_signer_wipe(&signer);
        config_free(&cfg);
        return bad != NULL ? 1 : 0;
    }
    /* Signals are taken synchronously by this thread alone: block them before any thread starts,
     * so that every thread started later inherits the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server srv;
    if (server_start(&srv, &cfg) != 0) {
        config_free(&cfg);
        return 1;
    }
    int sig = 0;
    sigwait(&stop, &sig);
    log_info("signal %d: stopping", sig);
    server_stop(&srv);
    config_free(&cfg);
    log_info("stopped");
    return 0;
}
