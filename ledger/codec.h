/*
 * Text codecs shared by the server and the clients: base64 (RFC 4648 section 4, with padding),
 * lower-case hex, the lower-case base32 used in identity ids, and the decimal counts (sequence
 * numbers, tree sizes) of the ledger's URLs and cursors.
 *
 * Decoders take untrusted bytes: they never read past `len`, never write past `cap`, and accept
 * exactly one spelling of each value (canonical padding, no whitespace, no trailing bits set), so
 * that two different strings never decode to the same bytes. That matters for signatures: a
 * signature must have one textual form or the replay cache could be dodged by re-spelling it.
 */
#ifndef CPX_LEDGER_CODEC_H
#define CPX_LEDGER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Characters cpx_b64_encode writes for n bytes, not counting the terminating NUL. */
#define CPX_B64_LEN(n) ((((n) + 2) / 3) * 4)

/*
 * Writes the base64 form of data[0..len) and a NUL into out, which must hold
 * CPX_B64_LEN(len) + 1 bytes. Returns the number of characters written (without the NUL).
 */
size_t cpx_b64_encode(const uint8_t *data, size_t len, char *out);

/*
 * Decodes canonical base64 text[0..len) into out (capacity cap). Returns the number of bytes
 * written, or -1 when the text is not canonical base64 or does not fit.
 */
long cpx_b64_decode(const char *text, size_t len, uint8_t *out, size_t cap);

/* Writes 2*len lower-case hex digits and a NUL into out (2*len + 1 bytes). */
void cpx_hex_encode(const uint8_t *data, size_t len, char *out);

/* Decodes exactly 2*n hex digits (either case) from text into out[n]. Returns true on success. */
bool cpx_hex_decode(const char *text, size_t len, uint8_t *out, size_t n);

/* Writes the unpadded lower-case base32 form of data and a NUL; out holds (len*8+4)/5 + 1 bytes. */
size_t cpx_b32_encode(const uint8_t *data, size_t len, char *out);

/*
 * Parses s as a decimal count 0..2^63-1 (a bigint in PostgreSQL) in its one spelling: digits
 * only, no sign, no leading zeros. Returns false (out unchanged) for anything else.
 */
bool cpx_decimal_parse(const char *s, uint64_t *out);

/* FNV-1a (64-bit) of a NUL-terminated string: a fast hash for hash tables, not for security. */
uint64_t cpx_fnv1a64(const char *s);

/*
 * Parses an RFC 3339 time ("2026-11-29T08:00:00Z"; "T"/"t", up to six fractional digits, "Z"/"z"
 * or a numeric offset; years from 1970) into unix microseconds. False when s is anything else.
 * The one reading of a time for cpxd (its requests) and for the auditor (the requests it checks).
 */
bool cpx_rfc3339_parse(const char *s, int64_t *t_us);

#endif
