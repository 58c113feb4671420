/*
 * test_matching_diff.c — randomized differential test: the engine against the naive reference.
 *
 * Thousands of seeded random streams (constraints, multi-region bids, multi-precision asks,
 * every time in force, cancels, reduces, replaces, expiries, self-trade policies, malformed
 * commands) are replayed through both matchers. After every command the return values, the full
 * event sequences, the state hashes and the resting counts must be identical; every seventh
 * command also the depth of every book, every resting order's remaining quantity and priority,
 * and one explanation. Every command also goes through the binary codec first (encode, decode,
 * re-encode must give the same bytes), and the engine is the check build, so its invariants are
 * verified after every command too.
 *
 * On a mismatch the test prints the seed and the command index, the command, and both event
 * sequences. Replay one stream with CPX_DIFF_SEED=<seed>; change the number of streams with
 * CPX_DIFF_STREAMS=<n> and their length with CPX_DIFF_LEN=<n>.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/matching_gen.h"
#include "tests/support/matching_testkit.h"

/* What the streams exercised: events by kind, and rejection/cancel reasons. */
static uint64_t kinds[16], reasons[MX_NREASONS];

static void count_events(const mt_log *log)
{
    for (size_t i = 0; i < log->n; i++) {
        kinds[log->ev[i].kind & 15]++;
        if (log->ev[i].reason < MX_NREASONS)
            reasons[log->ev[i].reason]++;
    }
}

static void print_coverage(void)
{
    printf("events:");
    for (unsigned k = MX_EV_ACCEPTED; k <= MX_EV_REPLACED; k++)
        printf(" %s=%" PRIu64, mx_event_name((mx_event_kind)k), kinds[k]);
    printf("\nreasons:");
    for (unsigned r = 1; r < MX_NREASONS; r++)
        printf(" %s=%" PRIu64, mx_reason_name((mx_reason)r), reasons[r]);
    printf("\n");
}

/* Where we are, for the invariant failure hook. */
typedef struct where {
    uint64_t seed; /* stream seed */
    size_t index;  /* command index */
} where;

static void on_check_failure(void *ctx, const char *what, const char *file, int line)
{
    const where *w = ctx;
    fprintf(stderr, "invariant failed: %s (%s:%d) at seed=%" PRIu64 " command=%zu\n", what, file,
            line, w->seed, w->index);
}

static unsigned long env_or(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? strtoul(v, NULL, 0) : dflt;
}

/* Round-trips cmd through the codec. Returns false when the bytes do not survive. */
static bool codec_roundtrip(const mx_command *cmd, mx_command *out)
{
    uint8_t a[MX_COMMAND_MAX_BYTES], b[MX_COMMAND_MAX_BYTES];
    size_t na = mx_encode_command(cmd, a, sizeof a), used = 0;
    if (na == 0) {
        *out = *cmd; /* not encodable (e.g. n_allow > 8): apply as is */
        return true;
    }
    if (!mx_decode_command(a, na, out, &used) || used != na)
        return false;
    size_t nb = mx_encode_command(out, b, sizeof b);
    return nb == na && memcmp(a, b, na) == 0;
}

/* Replays one stream. Returns true when engine and reference agreed on every command. */
static bool run_stream(uint64_t seed, size_t len, uint64_t *commands, uint64_t *fills)
{
    where w = { seed, 0 };
    mx_config cfg = mt_gen_config(seed);
    cfg.on_check_failure = on_check_failure;
    cfg.check_ctx = &w;
    mt_pair pair;
    if (!mt_pair_init(&pair, &cfg)) {
        fprintf(stderr, "seed=%" PRIu64 ": cannot create engines\n", seed);
        return false;
    }
    mt_gen gen;
    mt_gen_init(&gen, seed, cfg.regions);
    bool ok = true;
    for (w.index = 0; w.index < len && ok; w.index++) {
        mx_command cmd, decoded;
        mt_gen_next(&gen, pair.ref, &cmd);
        char why[512];
        if (!codec_roundtrip(&cmd, &decoded)) {
            snprintf(why, sizeof why, "codec round trip failed");
            ok = false;
        } else {
            ok = mt_pair_step(&pair, &decoded, w.index % 7 == 0, seed + w.index, why, sizeof why);
        }
        if (!ok) {
            fprintf(stderr, "MISMATCH seed=%" PRIu64 " command=%zu: %s\n  command: ", seed, w.index,
                    why);
            mt_print_command(stderr, &cmd);
            mt_pair_dump(&pair, stderr);
            fprintf(stderr, "replay with CPX_DIFF_SEED=%" PRIu64 "\n", seed);
        }
        (*commands)++;
        *fills += mt_log_count(&pair.got, MX_EV_FILL);
        count_events(&pair.got);
    }
    mt_pair_free(&pair);
    return ok;
}

static void test_streams(void **state)
{
    (void)state;
    const char *one = getenv("CPX_DIFF_SEED");
    unsigned long streams = env_or("CPX_DIFF_STREAMS", 4000);
    size_t len = env_or("CPX_DIFF_LEN", 300);
    uint64_t first = 1;
    if (one != NULL && *one != '\0') {
        first = strtoull(one, NULL, 0);
        streams = 1;
    }
    uint64_t commands = 0, fills = 0;
    unsigned long failed = 0;
    for (unsigned long s = 0; s < streams && failed < 3; s++)
        if (!run_stream(first + s, len, &commands, &fills))
            failed++;
    printf("differential: %lu streams, %" PRIu64 " commands, %" PRIu64 " fills, %lu failed\n",
           streams, commands, fills, failed);
    print_coverage();
    assert_int_equal(failed, 0);
    assert_true(fills > 0);
}

/* A long single stream: deep books, many levels, long-lived orders. */
static void test_long_stream(void **state)
{
    (void)state;
    uint64_t commands = 0, fills = 0;
    assert_true(run_stream(UINT64_C(0xC0FFEE), env_or("CPX_DIFF_LONG", 20000), &commands, &fills));
    assert_true(fills > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_long_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
