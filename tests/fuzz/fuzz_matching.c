/*
 * fuzz_matching.c — libFuzzer target over the command decoder and the engine.
 *
 * Input: two header bytes, then binary commands (matching/codec.c) back to back.
 *   byte 0: regions - 1 (low 2 bits, so 1..4 regions), STP policy (next 2 bits, mod 3)
 *   byte 1: resting limit = 16 + byte 1 (keeps the per-command invariant checks cheap)
 * A byte sequence that does not decode is skipped one byte at a time, so every input is used.
 *
 * Each decoded command runs on the real engine (the check build: every invariant is verified
 * after every command) and on the naive reference matcher; they must agree on the return value,
 * every event, the state hash and the resting count, and every 16th command also on all depth,
 * every resting order and one explanation. Whatever decodes must re-encode to the same bytes.
 * Any disagreement aborts with a description on stderr, which libFuzzer reports as a crash.
 *
 * The committed corpus (tests/fuzz/corpus/matching/) is replayed by `make test` through the
 * plain replay driver; crashers found and fixed are kept there as regression inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/matching_testkit.h"

#define MAX_COMMANDS 4096 /* per input, to bound the time of one run */

static void on_check_failure(void *ctx, const char *what, const char *file, int line)
{
    (void)ctx;
    fprintf(stderr, "fuzz_matching: invariant failed: %s (%s:%d)\n", what, file, line);
}

/* Aborts when decoded command c does not re-encode to bytes[0..n). */
static void check_canonical(const mx_command *c, const uint8_t *bytes, size_t n)
{
    uint8_t again[MX_COMMAND_MAX_BYTES];
    size_t m = mx_encode_command(c, again, sizeof again);
    if (m != n || memcmp(again, bytes, n) != 0) {
        fprintf(stderr, "fuzz_matching: decoded command does not re-encode to its bytes\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = 1 + (data[0] & 3);
    cfg.stp = (mx_stp)((data[0] >> 2 & 3) % 3);
    cfg.max_orders = 16 + (size_t)data[1];
    cfg.expected_orders = data[0] >> 4;
    cfg.on_check_failure = on_check_failure;
    mt_pair pair;
    if (!mt_pair_init(&pair, &cfg))
        abort();
    size_t off = 2, ncmd = 0;
    while (off < size && ncmd < MAX_COMMANDS) {
        mx_command c;
        size_t used = 0;
        if (!mx_decode_command(data + off, size - off, &c, &used)) {
            off++;
            continue;
        }
        check_canonical(&c, data + off, used);
        off += used;
        char why[512];
        if (!mt_pair_step(&pair, &c, ncmd % 16 == 0, ncmd, why, sizeof why)) {
            fprintf(stderr, "fuzz_matching: command %zu: %s\n  command: ", ncmd, why);
            mt_print_command(stderr, &c);
            mt_pair_dump(&pair, stderr);
            abort();
        }
        ncmd++;
    }
    mt_pair_free(&pair);
    return 0;
}
