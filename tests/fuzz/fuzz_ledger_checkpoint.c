/*
 * Fuzz target: signed notes, checkpoints and verifier key strings from untrusted bytes.
 * Properties besides memory safety: a checkpoint text that parses formats back to the same
 * bytes; a verifier key that parses formats back to the same key (up to hex case); a note's text
 * length never exceeds the note. Notes are opened with the key that signed the corpus's seed
 * checkpoints, so mutations of a validly signed note reach the signature check.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ledger/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        cpx_crypto_init();
        ready = true;
    }
    const char *text = (const char *)data;

    struct cpx_checkpoint cp;
    if (cpx_checkpoint_parse_text(text, size, &cp) == NULL) {
        char *back = malloc(size + 1);
        if (back != NULL) {
            long n = cpx_checkpoint_text(&cp, back, size + 1);
            if (n != (long)size || memcmp(back, text, size) != 0)
                abort();
            free(back);
        }
    }

    struct cpx_note_verifier v;
    if (cpx_note_verifier_parse(text, size, &v) == NULL) {
        char back[CPX_VERIFIER_KEY_MAX];
        size_t n = cpx_note_verifier_format(&v, back);
        if (n != size || strncasecmp(back, text, size) != 0)
            abort();
    }

    /* The public key of seed 0x42 x 32, which signed the corpus's seed checkpoints. */
    static const uint8_t pk[CPX_ED25519_PK_LEN] = {
        0x21, 0x52, 0xf8, 0xd1, 0x9b, 0x79, 0x1d, 0x24, 0x45, 0x32, 0x42,
        0xe1, 0x5f, 0x2e, 0xab, 0x6c, 0xb7, 0xcf, 0xfa, 0x7b, 0x6a, 0x5e,
        0xd3, 0x00, 0x97, 0x96, 0x0e, 0x06, 0x98, 0x81, 0xdb, 0x12,
    };
    if (!cpx_note_verifier_init(&v, "cpx.fuzz/ledger", pk))
        abort();
    size_t tlen;
    enum cpx_note_status st = cpx_note_open(text, size, &v, &tlen);
    if (st != CPX_NOTE_E_MALFORMED && tlen > size)
        abort();
    (void)cpx_checkpoint_open(text, size, &v, &cp);
    return 0;
}
