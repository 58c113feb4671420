/*
 * Fuzz target: cpx-audit reading an export file (docs/ledger.md §10) -- bytes a regulator got
 * from wherever, so untrusted: the NDJSON lines, the header, checkpoint and record lines, all the
 * way through an audit run with its signature pipeline. Whatever the bytes, the run must end (with
 * findings or a stop), never crash, leak or read out of bounds.
 *
 * The exchange key is the one of seed 0x42 x 32 under origin cpx.test/ledger, so that committed
 * corpus files made with that key (an honest export and its manglings) reach the deep paths:
 * checkpoints that verify, records that match their leaves.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clients/cpx-audit/run.h"
#include "clients/cpx-audit/source.h"
#include "ledger/checkpoint.h"
#include "ledger/crypto.h"

#define ORIGIN    "cpx.test/ledger"
#define SEED_BYTE 0x42

static struct cpx_note_verifier exchange;

static void setup(void)
{
    cpx_crypto_init();
    uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES],
        sk[crypto_sign_SECRETKEYBYTES];
    memset(seed, SEED_BYTE, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    cpx_note_verifier_init(&exchange, ORIGIN, pk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    int fd = memfd_create("export", 0);
    if (fd < 0)
        return 0;
    if (size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct run_options opt = { .file = path, .key_file = "", .threads = 1, .quiet = true };
    struct run r;
    if (run_init(&r, &opt, &exchange)) {
        source_file(&r);
        run_finish(&r);
        (void)run_holds(&r);
    }
    run_free(&r);
    close(fd);
    return 0;
}
