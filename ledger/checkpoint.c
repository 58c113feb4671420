/*
 * Signed notes and checkpoints: see checkpoint.h for both formats.
 *
 * Opening a note is a single pass over the signature block, after two checks over the whole
 * note (valid UTF-8, no control characters but newline). The text/signature split is the last
 * "\n\n", as the spec says, so a text may itself contain blank lines. Each signature line is
 * taken apart by position: the em dash and a space, the name up to the next space, the base64
 * up to the newline. Only a line whose (name, key ID) equals the verifier's is verified; all
 * others are counted (to bound the work) and skipped.
 */
#include "ledger/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ledger/canon.h"
#include "ledger/codec.h"

static const char EM_DASH_SPACE[] = "\xe2\x80\x94 "; /* U+2014 then a space */
#define EM_DASH_SPACE_LEN 4
#define ED25519_SIG_TYPE  0x01
#define SIG_B64_LEN       CPX_B64_LEN(4 + CPX_ED25519_SIG_LEN) /* 92 */

const char *cpx_note_status_text(enum cpx_note_status st)
{
    switch (st) {
    case CPX_NOTE_OK: return "ok";
    case CPX_NOTE_E_MALFORMED: return "not a well-formed signed note";
    case CPX_NOTE_E_BAD_SIG: return "a signature by the expected key does not verify";
    case CPX_NOTE_E_UNSIGNED: return "no signature by the expected key";
    case CPX_NOTE_E_BODY: return "the signed text is not a checkpoint";
    }
    return "invalid note";
}

uint32_t cpx_note_key_id(const char *name, const uint8_t pk[CPX_ED25519_PK_LEN])
{
    uint8_t tail[2 + CPX_ED25519_PK_LEN], digest[CPX_SHA256_LEN];
    tail[0] = '\n';
    tail[1] = ED25519_SIG_TYPE;
    memcpy(tail + 2, pk, CPX_ED25519_PK_LEN);
    cpx_sha256_2(name, strlen(name), tail, sizeof tail, digest);
    return (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 | (uint32_t)digest[2] << 8 |
           digest[3];
}

/* True for the code points Go's unicode.IsSpace accepts (what the spec means by "spaces"). */
static bool unicode_space(uint32_t cp)
{
    switch (cp) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xa0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202f:
    case 0x205f:
    case 0x3000: return true;
    }
    return cp >= 0x2000 && cp <= 0x200a;
}

/* Decodes one UTF-8 code point of an already validated string; returns its byte length. */
static size_t utf8_next(const uint8_t *s, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    uint32_t v = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++)
        v = v << 6 | (s[i] & 0x3f);
    *cp = v;
    return n;
}

bool cpx_note_name_valid(const char *name, size_t len)
{
    if (len == 0 || len >= CPX_NOTE_NAME_MAX || !cpx_utf8_valid(name, len))
        return false;
    const uint8_t *s = (const uint8_t *)name;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += utf8_next(s + i, &cp);
        if (cp == '+' || cp < 0x20 || cp == 0x7f || unicode_space(cp))
            return false;
    }
    return true;
}

bool cpx_note_verifier_init(struct cpx_note_verifier *v, const char *name,
                            const uint8_t pk[CPX_ED25519_PK_LEN])
{
    size_t len = strlen(name);
    if (!cpx_note_name_valid(name, len))
        return false;
    memcpy(v->name, name, len + 1);
    memcpy(v->pk, pk, CPX_ED25519_PK_LEN);
    v->key_id = cpx_note_key_id(v->name, pk);
    return true;
}

const char *cpx_note_verifier_parse(const char *s, size_t len, struct cpx_note_verifier *v)
{
    const char *plus1 = memchr(s, '+', len);
    if (plus1 == NULL)
        return "verifier key must be <name>+<key id>+<base64 key>";
    size_t nlen = (size_t)(plus1 - s);
    const char *id = plus1 + 1, *end = s + len;
    const char *plus2 = memchr(id, '+', (size_t)(end - id));
    if (plus2 == NULL || plus2 - id != 8)
        return "verifier key's key id must be 8 hex digits";
    if (!cpx_note_name_valid(s, nlen))
        return "verifier key's name is empty, too long or has spaces";
    uint8_t idb[4], raw[1 + CPX_ED25519_PK_LEN + 2];
    if (!cpx_hex_decode(id, 8, idb, 4))
        return "verifier key's key id must be 8 hex digits";
    const char *b64 = plus2 + 1;
    size_t blen = (size_t)(end - b64);
    if (blen != CPX_B64_LEN(1 + CPX_ED25519_PK_LEN) ||
        cpx_b64_decode(b64, blen, raw, sizeof raw) != 1 + CPX_ED25519_PK_LEN)
        return "verifier key's key is not base64 of 33 bytes";
    if (raw[0] != ED25519_SIG_TYPE)
        return "verifier key is not an Ed25519 key (type byte 0x01)";
    memcpy(v->name, s, nlen);
    v->name[nlen] = '\0';
    memcpy(v->pk, raw + 1, CPX_ED25519_PK_LEN);
    v->key_id = cpx_note_key_id(v->name, v->pk);
    uint32_t given =
        (uint32_t)idb[0] << 24 | (uint32_t)idb[1] << 16 | (uint32_t)idb[2] << 8 | idb[3];
    if (given != v->key_id)
        return "verifier key's key id does not match its name and key";
    return NULL;
}

size_t cpx_note_verifier_format(const struct cpx_note_verifier *v, char out[CPX_VERIFIER_KEY_MAX])
{
    uint8_t raw[1 + CPX_ED25519_PK_LEN];
    char b64[CPX_B64_LEN(sizeof raw) + 1];
    raw[0] = ED25519_SIG_TYPE;
    memcpy(raw + 1, v->pk, CPX_ED25519_PK_LEN);
    cpx_b64_encode(raw, sizeof raw, b64);
    int n = snprintf(out, CPX_VERIFIER_KEY_MAX, "%s+%08" PRIx32 "+%s", v->name, v->key_id, b64);
    return n > 0 ? (size_t)n : 0;
}

/* True when s[0..len) is UTF-8 with no control characters except newline. */
static bool note_chars_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f)
            return false;
    }
    return cpx_utf8_valid(s, len);
}

/* True when text[0..len) may be signed: valid characters and a final newline. */
static bool note_text_valid(const char *text, size_t len)
{
    return len > 0 && text[len - 1] == '\n' && note_chars_valid(text, len);
}

long cpx_note_sign(const char *text, size_t len, const char *name, const struct cpx_keypair *kp,
                   char *out, size_t cap)
{
    size_t nlen = strlen(name);
    if (!note_text_valid(text, len) || !cpx_note_name_valid(name, nlen))
        return -1;
    size_t total = len + 1 + CPX_NOTE_SIGLINE_LEN(nlen);
    if (total >= cap || total > CPX_NOTE_MAX)
        return -1;
    uint8_t blob[4 + CPX_ED25519_SIG_LEN];
    uint32_t id = cpx_note_key_id(name, kp->pk);
    blob[0] = (uint8_t)(id >> 24);
    blob[1] = (uint8_t)(id >> 16);
    blob[2] = (uint8_t)(id >> 8);
    blob[3] = (uint8_t)id;
    cpx_sign(kp, text, len, blob + 4);
    size_t o = 0;
    memmove(out, text, len); /* text may already sit at out */
    o += len;
    out[o++] = '\n';
    memcpy(out + o, EM_DASH_SPACE, EM_DASH_SPACE_LEN);
    o += EM_DASH_SPACE_LEN;
    memcpy(out + o, name, nlen);
    o += nlen;
    out[o++] = ' ';
    o += cpx_b64_encode(blob, sizeof blob, out + o);
    out[o++] = '\n';
    out[o] = '\0';
    return (long)o;
}

enum cpx_note_status cpx_note_open(const char *note, size_t len, const struct cpx_note_verifier *v,
                                   size_t *text_len)
{
    if (len > CPX_NOTE_MAX || len < 2 || note[len - 1] != '\n' || !note_chars_valid(note, len))
        return CPX_NOTE_E_MALFORMED;
    /* The split: the last "\n\n". */
    size_t split = len - 1;
    for (;;) {
        if (split == 0)
            return CPX_NOTE_E_MALFORMED;
        split--;
        if (note[split] == '\n' && note[split + 1] == '\n')
            break;
    }
    size_t tlen = split + 1;
    *text_len = tlen;
    const char *p = note + split + 2, *end = note + len;
    if (p == end)
        return CPX_NOTE_E_MALFORMED; /* no signature lines */
    int sigs = 0;
    bool verified = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)); /* found: the note ends in '\n' */
        if (++sigs > CPX_NOTE_MAX_SIGS)
            return CPX_NOTE_E_MALFORMED;
        if (nl - p < EM_DASH_SPACE_LEN || memcmp(p, EM_DASH_SPACE, EM_DASH_SPACE_LEN) != 0)
            return CPX_NOTE_E_MALFORMED;
        const char *name = p + EM_DASH_SPACE_LEN;
        const char *sp = memchr(name, ' ', (size_t)(nl - name));
        if (sp == NULL || !cpx_note_name_valid(name, (size_t)(sp - name)))
            return CPX_NOTE_E_MALFORMED;
        const char *b64 = sp + 1;
        size_t blen = (size_t)(nl - b64);
        uint8_t blob[4 + CPX_ED25519_SIG_LEN];
        /* Any algorithm's signature is 4 + n bytes, n >= 1; decode only Ed25519-sized ones. */
        if (blen < CPX_B64_LEN(5))
            return CPX_NOTE_E_MALFORMED;
        size_t nlen = (size_t)(sp - name);
        bool same_name = nlen == strlen(v->name) && memcmp(name, v->name, nlen) == 0;
        if (same_name && blen == SIG_B64_LEN &&
            cpx_b64_decode(b64, blen, blob, sizeof blob) == (long)sizeof blob) {
            uint32_t id = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
                          (uint32_t)blob[2] << 8 | blob[3];
            if (id == v->key_id) {
                if (!cpx_verify(v->pk, note, tlen, blob + 4))
                    return CPX_NOTE_E_BAD_SIG;
                verified = true;
            }
        }
        p = nl + 1;
    }
    return verified ? CPX_NOTE_OK : CPX_NOTE_E_UNSIGNED;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

long cpx_checkpoint_text(const struct cpx_checkpoint *cp, char *out, size_t cap)
{
    char root[CPX_B64_LEN(CPX_SHA256_LEN) + 1];
    size_t olen = strnlen(cp->origin, CPX_ORIGIN_MAX);
    if (olen == 0 || olen == CPX_ORIGIN_MAX || !note_chars_valid(cp->origin, olen) ||
        memchr(cp->origin, '\n', olen) != NULL || cp->ext_len > CPX_CHECKPOINT_EXT_MAX)
        return -1;
    cpx_b64_encode(cp->root, CPX_SHA256_LEN, root);
    int n = snprintf(out, cap, "%s\n%" PRIu64 "\n%s\n", cp->origin, cp->size, root);
    if (n < 0 || (size_t)n + cp->ext_len >= cap)
        return -1;
    memcpy(out + n, cp->ext, cp->ext_len);
    out[(size_t)n + cp->ext_len] = '\0';
    return (long)((size_t)n + cp->ext_len);
}

const char *cpx_checkpoint_parse_text(const char *text, size_t len, struct cpx_checkpoint *cp)
{
    memset(cp, 0, sizeof *cp);
    if (len == 0 || text[len - 1] != '\n' || !note_chars_valid(text, len))
        return "checkpoint text must be UTF-8 lines ending in a newline";
    const char *p = text, *end = text + len;
    const char *lines[3];
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        if (p == end)
            return "checkpoint needs origin, size and root lines";
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lines[i] = p;
        lens[i] = (size_t)(nl - p);
        if (lens[i] == 0)
            return "checkpoint lines must not be empty";
        p = nl + 1;
    }
    if (lens[0] >= CPX_ORIGIN_MAX)
        return "checkpoint origin is too long";
    memcpy(cp->origin, lines[0], lens[0]);
    cp->origin[lens[0]] = '\0';
    /* Size: decimal, no leading zeros, fits in 64 bits. */
    if (lens[1] > 20 || (lens[1] > 1 && lines[1][0] == '0'))
        return "checkpoint size is not a canonical decimal";
    uint64_t size = 0;
    for (size_t i = 0; i < lens[1]; i++) {
        char c = lines[1][i];
        if (c < '0' || c > '9')
            return "checkpoint size is not a canonical decimal";
        uint64_t d = (uint64_t)(c - '0');
        if (size > (UINT64_MAX - d) / 10)
            return "checkpoint size is out of range";
        size = size * 10 + d;
    }
    cp->size = size;
    if (lens[2] != CPX_B64_LEN(CPX_SHA256_LEN) ||
        cpx_b64_decode(lines[2], lens[2], cp->root, CPX_SHA256_LEN) != CPX_SHA256_LEN)
        return "checkpoint root is not base64 of 32 bytes";
    /* Extension lines: each non-empty. */
    size_t ext = (size_t)(end - p);
    if (ext > CPX_CHECKPOINT_EXT_MAX)
        return "checkpoint extension lines are too long";
    for (const char *q = p; q < end;) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        if (nl == q)
            return "checkpoint extension lines must not be empty";
        q = nl + 1;
    }
    memcpy(cp->ext, p, ext);
    cp->ext_len = ext;
    return NULL;
}

long cpx_checkpoint_sign(const struct cpx_checkpoint *cp, const char *name,
                         const struct cpx_keypair *kp, char *out, size_t cap)
{
    long n = cpx_checkpoint_text(cp, out, cap);
    if (n < 0)
        return -1;
    return cpx_note_sign(out, (size_t)n, name, kp, out, cap);
}

enum cpx_note_status cpx_checkpoint_open(const char *note, size_t len,
                                         const struct cpx_note_verifier *v,
                                         struct cpx_checkpoint *cp)
{
    size_t tlen;
    enum cpx_note_status st = cpx_note_open(note, len, v, &tlen);
    if (st != CPX_NOTE_OK)
        return st;
    return cpx_checkpoint_parse_text(note, tlen, cp) == NULL ? CPX_NOTE_OK : CPX_NOTE_E_BODY;
}
