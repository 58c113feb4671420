/*
 * codec.c — the binary command format: compact, canonical, bounds-checked.
 *
 * A command log (the server's replay log, a fuzzer's input) is a plain concatenation of
 * encoded commands. Each command is a kind byte followed by its fields in a fixed order:
 *
 *   u8   one byte, any value
 *   u    unsigned LEB128 varint, at most 10 bytes, minimal (no trailing zero byte), < 2^64
 *   u32  a `u` whose value fits in 32 bits
 *   s    signed: zigzag ((n << 1) ^ (n >> 63)) then `u`
 *
 *   command  = kind:u8 now:s body
 *   BID, REPLACE_BID:
 *     id:u owner:u precision:u8 qty_kind:u8 tif:u8 quantity:s limit:s hours:u32 regions:u
 *     expiry:s start_earliest:s start_latest:s min_memory_gb:u32 min_tflops:u32
 *     max_tflops:u32 min_devices_per_provider:u32 min_green_permille:u32 n_allow:u8 (<= 8)
 *     n_allow x (vendor:u32 model:u32)
 *   ASK, REPLACE_ASK:
 *     id:u owner:u devices:s priced:u8 region:u8 tif:u8
 *     for each bit p set in priced, lowest first: tflops:u32 price:s
 *     available_from:s available_until:s expiry:s memory_gb:u32 vendor:u32 model:u32
 *     interconnect:u32 green_permille:u32 min_hours:u32 max_hours:u32
 *   CANCEL:  id:u
 *   REDUCE:  id:u quantity:s
 *   EXPIRE:  (nothing)
 *
 * Canonical: every value has exactly one encoding (varints are minimal; fields the format
 * does not carry, such as prices of unpriced precisions, decode as zero), so that decoding and
 * re-encoding gives back the same bytes. The decoder checks only the form; the engine checks
 * the values and rejects bad ones with a reason, as it does for commands from the API.
 *
 * The reader never reads past its end: every get_* first checks the bytes left, and after the
 * first failure the reader stays failed, so decode functions can read a whole record and test
 * once at the end.
 */
#include <string.h>

#include "matching/matching_int.h"

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    int ok;             /* 0 after the first malformed or missing byte */
} reader;

/* Reads one byte. Returns it, or 0 and fails the reader. */
static uint8_t get_u8(reader *r)
{
    if (!r->ok || r->p >= r->end) {
        r->ok = 0;
        return 0;
    }
    return *r->p++;
}

/* Reads a minimal LEB128 varint of at most 64 bits. Returns it, or 0 and fails the reader. */
static uint64_t get_u(reader *r)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (!r->ok || r->p >= r->end)
            break;
        uint8_t b = *r->p++;
        if (i == 9 && b > 1)
            break; /* more than 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (b == 0 && i > 0)
                break; /* not minimal */
            return v;
        }
    }
    r->ok = 0;
    return 0;
}

/* Reads a varint that must fit in 32 bits. Returns it, or 0 and fails the reader. */
static uint32_t get_u32(reader *r)
{
    uint64_t v = get_u(r);
    if (v > UINT32_MAX) {
        r->ok = 0;
        return 0;
    }
    return (uint32_t)v;
}

/* Reads a zigzag varint. Returns it, or 0 and fails the reader. */
static int64_t get_s(reader *r)
{
    uint64_t z = get_u(r);
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

/* Reads the body of a BID or REPLACE_BID into *b. */
static void get_bid(reader *r, mx_bid *b)
{
    b->id = get_u(r);
    b->owner = get_u(r);
    b->precision = get_u8(r);
    b->qty_kind = get_u8(r);
    b->tif = get_u8(r);
    b->quantity = get_s(r);
    b->limit = get_s(r);
    b->hours = get_u32(r);
    b->regions = get_u(r);
    b->expiry = get_s(r);
    b->start_earliest = get_s(r);
    b->start_latest = get_s(r);
    b->min_memory_gb = get_u32(r);
    b->min_tflops = get_u32(r);
    b->max_tflops = get_u32(r);
    b->min_devices_per_provider = get_u32(r);
    b->min_green_permille = get_u32(r);
    b->n_allow = get_u8(r);
    if (b->n_allow > MX_MAX_ALLOW) {
        r->ok = 0;
        return;
    }
    for (unsigned i = 0; i < b->n_allow; i++) {
        b->allow[i].vendor = get_u32(r);
        b->allow[i].model = get_u32(r);
    }
}

/* Reads the body of an ASK or REPLACE_ASK into *a. */
static void get_ask(reader *r, mx_ask *a)
{
    a->id = get_u(r);
    a->owner = get_u(r);
    a->devices = get_s(r);
    a->priced = get_u8(r);
    a->region = get_u8(r);
    a->tif = get_u8(r);
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (a->priced >> p & 1) {
            a->tflops[p] = get_u32(r);
            a->price[p] = get_s(r);
        }
    }
    a->available_from = get_s(r);
    a->available_until = get_s(r);
    a->expiry = get_s(r);
    a->memory_gb = get_u32(r);
    a->vendor = get_u32(r);
    a->model = get_u32(r);
    a->interconnect = get_u32(r);
    a->green_permille = get_u32(r);
    a->min_hours = get_u32(r);
    a->max_hours = get_u32(r);
}

bool mx_decode_command(const uint8_t *buf, size_t len, mx_command *out, size_t *used)
{
    memset(out, 0, sizeof *out);
    if (buf == NULL)
        return false;
    reader r = { buf, buf + len, 1 };
    out->kind = get_u8(&r);
    out->now = get_s(&r);
    switch (out->kind) {
    case MX_CMD_BID:
    case MX_CMD_REPLACE_BID: get_bid(&r, &out->bid); break;
    case MX_CMD_ASK:
    case MX_CMD_REPLACE_ASK: get_ask(&r, &out->ask); break;
    case MX_CMD_CANCEL: out->id = get_u(&r); break;
    case MX_CMD_REDUCE:
        out->id = get_u(&r);
        out->quantity = get_s(&r);
        break;
    case MX_CMD_EXPIRE: break;
    default: r.ok = 0; break;
    }
    if (!r.ok) {
        memset(out, 0, sizeof *out);
        return false;
    }
    *used = (size_t)(r.p - buf);
    return true;
}

/* ---- writing -------------------------------------------------------------------------------- */

typedef struct writer {
    uint8_t *p;   /* next byte */
    uint8_t *end; /* one past the last byte */
    int ok;       /* 0 once the buffer was too small */
} writer;

/* Writes one byte, or fails the writer when full. */
static void put_u8(writer *w, uint8_t b)
{
    if (w->p >= w->end) {
        w->ok = 0;
        return;
    }
    *w->p++ = b;
}

/* Writes v as a minimal LEB128 varint. */
static void put_u(writer *w, uint64_t v)
{
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        put_u8(w, (uint8_t)(b | (v ? 0x80 : 0)));
    } while (v);
}

/* Writes v zigzag-encoded. */
static void put_s(writer *w, int64_t v)
{
    put_u(w, ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0));
}

/* Writes the body of a bid command (fails the writer if n_allow > 8). */
static void put_bid(writer *w, const mx_bid *b)
{
    put_u(w, b->id);
    put_u(w, b->owner);
    put_u8(w, b->precision);
    put_u8(w, b->qty_kind);
    put_u8(w, b->tif);
    put_s(w, b->quantity);
    put_s(w, b->limit);
    put_u(w, b->hours);
    put_u(w, b->regions);
    put_s(w, b->expiry);
    put_s(w, b->start_earliest);
    put_s(w, b->start_latest);
    put_u(w, b->min_memory_gb);
    put_u(w, b->min_tflops);
    put_u(w, b->max_tflops);
    put_u(w, b->min_devices_per_provider);
    put_u(w, b->min_green_permille);
    put_u8(w, b->n_allow);
    if (b->n_allow > MX_MAX_ALLOW) {
        w->ok = 0;
        return;
    }
    for (unsigned i = 0; i < b->n_allow; i++) {
        put_u(w, b->allow[i].vendor);
        put_u(w, b->allow[i].model);
    }
}

/* Writes the body of an ask command. */
static void put_ask(writer *w, const mx_ask *a)
{
    put_u(w, a->id);
    put_u(w, a->owner);
    put_s(w, a->devices);
    put_u8(w, a->priced);
    put_u8(w, a->region);
    put_u8(w, a->tif);
    for (unsigned p = 0; p < MX_NPREC; p++) {
        if (a->priced >> p & 1) {
            put_u(w, a->tflops[p]);
            put_s(w, a->price[p]);
        }
    }
    put_s(w, a->available_from);
    put_s(w, a->available_until);
    put_s(w, a->expiry);
    put_u(w, a->memory_gb);
    put_u(w, a->vendor);
    put_u(w, a->model);
    put_u(w, a->interconnect);
    put_u(w, a->green_permille);
    put_u(w, a->min_hours);
    put_u(w, a->max_hours);
}

size_t mx_encode_command(const mx_command *c, uint8_t *buf, size_t cap)
{
    if (buf == NULL)
        return 0;
    writer w = { buf, buf + cap, 1 };
    put_u8(&w, c->kind);
    put_s(&w, c->now);
    switch (c->kind) {
    case MX_CMD_BID:
    case MX_CMD_REPLACE_BID: put_bid(&w, &c->bid); break;
    case MX_CMD_ASK:
    case MX_CMD_REPLACE_ASK: put_ask(&w, &c->ask); break;
    case MX_CMD_CANCEL: put_u(&w, c->id); break;
    case MX_CMD_REDUCE:
        put_u(&w, c->id);
        put_s(&w, c->quantity);
        break;
    case MX_CMD_EXPIRE: break;
    default: w.ok = 0; break;
    }
    return w.ok ? (size_t)(w.p - buf) : 0;
}
