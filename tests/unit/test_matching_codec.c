/*
 * test_matching_codec.c — the binary command format: round trips of every kind, canonical
 * bytes, and refusal of every malformed input (truncation at every length, overlong and
 * non-minimal varints, out-of-range fields, unknown kinds) without reading past the buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tests/support/matching_gen.h"
#include "tests/support/matching_testkit.h"

static mx_command sample_bid(void)
{
    mx_command c;
    memset(&c, 0, sizeof c);
    c.kind = MX_CMD_BID;
    c.now = 1700000000;
    c.bid = mt_bid(UINT64_MAX, 12345678901ull, MX_INT8, 5, 1000, 15000000);
    c.bid.qty_kind = MX_QTY_TFLOPS;
    c.bid.tif = MX_GTD;
    c.bid.expiry = 1700003600;
    c.bid.regions = UINT64_C(0x8000000000000021);
    c.bid.start_earliest = 1700000100;
    c.bid.start_latest = 1700007200;
    c.bid.min_memory_gb = 80;
    c.bid.min_tflops = 100;
    c.bid.max_tflops = 20000;
    c.bid.min_devices_per_provider = 8;
    c.bid.min_green_permille = 500;
    c.bid.n_allow = MX_MAX_ALLOW;
    for (unsigned i = 0; i < MX_MAX_ALLOW; i++)
        c.bid.allow[i] = (mx_model_ref){ i + 1, UINT32_MAX - i };
    c.bid.hours = 72;
    return c;
}

static mx_command sample_ask(void)
{
    mx_command c;
    memset(&c, 0, sizeof c);
    c.kind = MX_CMD_REPLACE_ASK;
    c.now = 5;
    c.ask = mt_ask(42, 7, 3, 64, MX_FP64, 67, 200000000);
    mt_ask_price(&c.ask, MX_INT4, 9000, 1);
    c.ask.available_from = 10;
    c.ask.available_until = 1700000000;
    c.ask.memory_gb = 141;
    c.ask.vendor = 3;
    c.ask.model = 4;
    c.ask.interconnect = 2;
    c.ask.green_permille = 1000;
    c.ask.min_hours = 1;
    c.ask.max_hours = 720;
    c.ask.tif = MX_FOK;
    return c;
}

static void assert_same_command(const mx_command *a, const mx_command *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->now, b->now);
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->quantity, b->quantity);
    assert_memory_equal(&a->bid, &b->bid, sizeof a->bid);
    assert_memory_equal(&a->ask, &b->ask, sizeof a->ask);
}

/* Encodes c, decodes it back, and checks it survives whole; then that every truncation fails. */
static void roundtrip(const mx_command *c)
{
    uint8_t buf[MX_COMMAND_MAX_BYTES];
    size_t n = mx_encode_command(c, buf, sizeof buf);
    assert_true(n > 0);
    mx_command d;
    size_t used = 0;
    assert_true(mx_decode_command(buf, n, &d, &used));
    assert_int_equal(used, n);
    assert_same_command(c, &d);
    for (size_t len = 0; len < n; len++) {
        /* an exactly sized heap copy, so that ASan would see a read past the end */
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        assert_false(mx_decode_command(copy, len, &d, &used));
        free(copy);
    }
    /* too small an output buffer: 0, nothing written past cap */
    for (size_t cap = 0; cap < n; cap++)
        assert_int_equal(mx_encode_command(c, buf, cap), 0);
}

static void test_roundtrip_every_kind(void **state)
{
    (void)state;
    mx_command b = sample_bid(), a = sample_ask();
    roundtrip(&b);
    b.kind = MX_CMD_REPLACE_BID;
    b.now = -3; /* the decoder checks the form, not the values */
    b.bid.limit = -77;
    roundtrip(&b);
    roundtrip(&a);
    a.kind = MX_CMD_ASK;
    roundtrip(&a);
    mx_command c;
    memset(&c, 0, sizeof c);
    c.kind = MX_CMD_CANCEL;
    c.id = 1;
    roundtrip(&c);
    c.kind = MX_CMD_REDUCE;
    c.id = 99;
    c.quantity = INT64_MIN;
    roundtrip(&c);
    c.quantity = INT64_MAX;
    roundtrip(&c);
    memset(&c, 0, sizeof c);
    c.kind = MX_CMD_EXPIRE;
    c.now = INT64_MAX;
    roundtrip(&c);
}

/* The bid fields in their wire order, each a one-byte varint: max_tflops sits right after
 * min_tflops; it survives a round trip at 0, 1 and UINT32_MAX, and a value above 32 bits in its
 * place is refused. */
static void test_bid_field_order_max_tflops(void **state)
{
    (void)state;
    mx_command c;
    memset(&c, 0, sizeof c);
    c.kind = MX_CMD_BID;
    c.bid.id = 1;
    c.bid.owner = 2;
    c.bid.precision = 4;
    c.bid.quantity = 3;
    c.bid.limit = 5;
    c.bid.hours = 7;
    c.bid.regions = 1;
    c.bid.min_memory_gb = 8;
    c.bid.min_tflops = 9;
    c.bid.max_tflops = 10;
    c.bid.min_devices_per_provider = 11;
    c.bid.min_green_permille = 12;
    const uint8_t want[] = {
        MX_CMD_BID, 0,         /* kind, now */
        1,          2,         /* id, owner */
        4,          0,  0,     /* precision, qty_kind, tif */
        6,          10, 7,  1, /* quantity (zigzag), limit (zigzag), hours, regions */
        0,          0,  0,     /* expiry, start_earliest, start_latest */
        8,          9,  10,    /* min_memory_gb, min_tflops, max_tflops */
        11,         12, 0,     /* gang, green, n_allow */
    };
    uint8_t buf[MX_COMMAND_MAX_BYTES];
    size_t n = mx_encode_command(&c, buf, sizeof buf);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    roundtrip(&c);
    uint32_t values[] = { 0, 1, 16384, UINT32_MAX };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        c.bid.max_tflops = values[i];
        roundtrip(&c);
        mx_command d;
        size_t used;
        n = mx_encode_command(&c, buf, sizeof buf);
        assert_true(mx_decode_command(buf, n, &d, &used));
        assert_int_equal(d.bid.max_tflops, values[i]);
        assert_int_equal(d.bid.min_tflops, 9);
        assert_int_equal(d.bid.min_devices_per_provider, 11);
    }
    /* 2^32 in max_tflops's place (5 bytes: 80 80 80 80 10) is not a u32 */
    uint8_t over[sizeof want + 4];
    memcpy(over, want, 16);
    const uint8_t big[] = { 0x80, 0x80, 0x80, 0x80, 0x10 };
    memcpy(over + 16, big, sizeof big);
    memcpy(over + 21, want + 17, sizeof want - 17);
    mx_command d;
    size_t used;
    assert_false(mx_decode_command(over, sizeof over, &d, &used));
    memset(over + 16, 0xff, 4); /* ff ff ff ff 0f: UINT32_MAX */
    over[20] = 0x0f;
    assert_true(mx_decode_command(over, sizeof over, &d, &used));
    assert_int_equal(d.bid.max_tflops, UINT32_MAX);
    assert_int_equal(used, sizeof over);
}

static void test_stream_of_commands(void **state)
{
    (void)state;
    uint8_t buf[4 * MX_COMMAND_MAX_BYTES];
    mx_command in[3] = { sample_bid(), sample_ask(), sample_bid() };
    in[2].kind = MX_CMD_EXPIRE;
    memset(&in[2].bid, 0, sizeof in[2].bid);
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        n += mx_encode_command(&in[i], buf + n, sizeof buf - n);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        mx_command d;
        size_t used;
        assert_true(mx_decode_command(buf + off, n - off, &d, &used));
        assert_same_command(&in[i], &d);
        off += used;
    }
    assert_int_equal(off, n);
}

static void test_malformed(void **state)
{
    (void)state;
    mx_command d;
    size_t used;
    /* unknown kinds */
    uint8_t k0[] = { 0, 0 }, k8[] = { 8, 0 }, kff[] = { 0xff, 0 };
    assert_false(mx_decode_command(k0, sizeof k0, &d, &used));
    assert_false(mx_decode_command(k8, sizeof k8, &d, &used));
    assert_false(mx_decode_command(kff, sizeof kff, &d, &used));
    assert_false(mx_decode_command(NULL, 0, &d, &used));
    /* varints: minimal only, at most 64 bits */
    uint8_t ok[] = { MX_CMD_CANCEL, 0, 0x7f };
    assert_true(mx_decode_command(ok, sizeof ok, &d, &used));
    assert_int_equal(d.id, 127);
    uint8_t nonminimal[] = { MX_CMD_CANCEL, 0, 0xff, 0x00 };
    assert_false(mx_decode_command(nonminimal, sizeof nonminimal, &d, &used));
    uint8_t zero_ok[] = { MX_CMD_CANCEL, 0, 0x00 };
    assert_true(mx_decode_command(zero_ok, sizeof zero_ok, &d, &used));
    uint8_t max[] = {
        MX_CMD_CANCEL, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
    };
    assert_true(mx_decode_command(max, sizeof max, &d, &used));
    assert_int_equal(d.id, UINT64_MAX);
    uint8_t over[] = {
        MX_CMD_CANCEL, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02
    };
    assert_false(mx_decode_command(over, sizeof over, &d, &used));
    uint8_t eleven[] = { MX_CMD_CANCEL, 0,    0x80, 0x80, 0x80, 0x80, 0x80,
                         0x80,          0x80, 0x80, 0x80, 0x80, 0x01 };
    assert_false(mx_decode_command(eleven, sizeof eleven, &d, &used));
    /* a u32 field above 2^32 - 1: hours */
    mx_command b = sample_bid();
    uint8_t buf[MX_COMMAND_MAX_BYTES];
    size_t n = mx_encode_command(&b, buf, sizeof buf);
    assert_true(n > 0);
    b.bid.n_allow = MX_MAX_ALLOW + 1;
    assert_int_equal(mx_encode_command(&b, buf, sizeof buf), 0);
    b.kind = 77;
    assert_int_equal(mx_encode_command(&b, buf, sizeof buf), 0);
    /* n_allow above 8 in the bytes: find the n_allow byte of a bid with 0 entries */
    mx_command z = sample_bid();
    z.bid.n_allow = 0;
    n = mx_encode_command(&z, buf, sizeof buf);
    assert_int_equal(buf[n - 1], 0);
    buf[n - 1] = MX_MAX_ALLOW + 1;
    assert_false(mx_decode_command(buf, n, &d, &used));
    /* failed decodes leave a zeroed command */
    assert_int_equal(d.kind, 0);
    assert_int_equal(d.bid.id, 0);
}

/* Random bytes never crash the decoder, and whatever decodes re-encodes to the same bytes. */
static void test_random_bytes(void **state)
{
    (void)state;
    uint64_t s = 99;
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)mt_range(&s, 0, 80);
        uint8_t *buf = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)mt_rand(&s);
        if (len > 0)
            buf[0] = (uint8_t)mt_range(&s, 0, 8);
        mx_command d;
        size_t used;
        if (mx_decode_command(buf, len, &d, &used)) {
            assert_true(used <= len);
            uint8_t again[MX_COMMAND_MAX_BYTES];
            size_t n = mx_encode_command(&d, again, sizeof again);
            assert_int_equal(n, used);
            assert_memory_equal(again, buf, used);
        }
        free(buf);
    }
}

/* Applying a decoded command is the same as calling the function. */
static void test_apply_decoded(void **state)
{
    (void)state;
    mt_log l1 = { 0 }, l2 = { 0 };
    mx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.regions = 8;
    cfg.sink = mt_log_sink;
    cfg.sink_ctx = &l1;
    mx_engine *e1 = mx_engine_create(&cfg);
    cfg.sink_ctx = &l2;
    mx_engine *e2 = mx_engine_create(&cfg);
    mx_command a = sample_ask(), b = sample_bid();
    a.kind = MX_CMD_ASK;
    a.now = 1700000000;
    a.ask.tif = MX_GTC;
    a.ask.available_until = 1800000000;
    b.bid.precision = MX_FP64;
    b.bid.limit = 300000000;
    b.bid.regions = 1u << 3;
    b.bid.n_allow = 0;
    b.bid.min_devices_per_provider = 0;
    b.bid.quantity = 500;
    b.bid.min_tflops = 0;
    b.bid.max_tflops = 67; /* the ask's FP64 TFLOPS: eligible */
    b.bid.start_earliest = 0;
    mx_command in[] = { a, b };
    for (size_t i = 0; i < 2; i++) {
        uint8_t buf[MX_COMMAND_MAX_BYTES];
        size_t n = mx_encode_command(&in[i], buf, sizeof buf), used;
        mx_command d;
        assert_true(mx_decode_command(buf, n, &d, &used));
        assert_int_equal(mx_apply(e1, &d), MX_OK);
    }
    mx_submit_ask(e2, a.now, &a.ask);
    mx_submit_bid(e2, b.now, &b.bid);
    assert_true(mt_log_count(&l1, MX_EV_FILL) > 0);
    assert_int_equal(l1.n, l2.n);
    for (size_t i = 0; i < l1.n; i++)
        assert_true(mt_event_equal(&l1.ev[i], &l2.ev[i]));
    assert_int_equal(mx_state_hash(e1), mx_state_hash(e2));
    mx_engine_free(e1);
    mx_engine_free(e2);
    mt_log_free(&l1);
    mt_log_free(&l2);
}

/* A restart: the books rebuilt by replaying the binary command log are the same books (same
 * state hash, same events), as the server does after a crash. */
static void test_rebuild_from_log(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        mx_config cfg = mt_gen_config(seed * 104729);
        mt_pair live;
        assert_true(mt_pair_init(&live, &cfg));
        mt_gen gen;
        mt_gen_init(&gen, seed * 104729, cfg.regions);
        size_t cap = 1 << 20, len = 0;
        uint8_t *log = malloc(cap);
        mt_log all = { 0 };
        for (int i = 0; i < 1500; i++) {
            mx_command c;
            mt_gen_next(&gen, live.ref, &c);
            size_t n = mx_encode_command(&c, log + len, cap - len);
            if (n == 0)
                continue; /* not encodable: an unknown kind, which changes nothing */
            len += n;
            char why[256];
            assert_true(mt_pair_step(&live, &c, false, 0, why, sizeof why));
            for (size_t k = 0; k < live.got.n; k++)
                mt_log_sink(&all, &live.got.ev[k]);
        }
        mt_log replayed = { 0 };
        cfg.sink = mt_log_sink;
        cfg.sink_ctx = &replayed;
        mx_engine *again = mx_engine_create(&cfg);
        for (size_t off = 0; off < len;) {
            mx_command c;
            size_t used;
            assert_true(mx_decode_command(log + off, len - off, &c, &used));
            mx_apply(again, &c);
            off += used;
        }
        assert_int_equal(mx_state_hash(again), mx_state_hash(live.engine));
        assert_int_equal(mx_resting(again), mx_resting(live.engine));
        assert_int_equal(replayed.n, all.n);
        for (size_t k = 0; k < all.n; k++)
            assert_true(mt_event_equal(&replayed.ev[k], &all.ev[k]));
        assert_true(mx_engine_check(again));
        mx_engine_free(again);
        mt_log_free(&replayed);
        mt_log_free(&all);
        free(log);
        mt_pair_free(&live);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(mx_reason_name(MX_R_OVERFLOW), "OVERFLOW");
    assert_string_equal(mx_reason_name((mx_reason)1000), "?");
    assert_string_equal(mx_event_name(MX_EV_FILL), "FILL");
    assert_string_equal(mx_event_name((mx_event_kind)0), "?");
    assert_string_equal(mx_precision_name(MX_INT4), "INT4");
    assert_string_equal(mx_precision_name(8), "?");
    assert_string_equal(mx_constraint_name(MX_C_GANG), "gang");
    assert_string_equal(mx_constraint_name(MX_C_TFLOPS), "tflops");
    assert_string_equal(mx_constraint_name(MX_C_MAX_TFLOPS), "max_tflops");
    assert_string_equal(mx_constraint_name(MX_NCONSTRAINTS), "?");
    for (int c = 0; c < MX_NCONSTRAINTS; c++)
        assert_string_not_equal(mx_constraint_name((mx_constraint)c), "?");
    for (int r = 0; r < MX_NREASONS; r++)
        assert_string_not_equal(mx_reason_name((mx_reason)r), "?");
    assert_int_equal(mx_max_tflops(MX_FP64), 4096);
    assert_int_equal(mx_max_tflops(MX_NPREC), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_kind),
        cmocka_unit_test(test_bid_field_order_max_tflops),
        cmocka_unit_test(test_stream_of_commands),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_apply_decoded),
        cmocka_unit_test(test_rebuild_from_log),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
