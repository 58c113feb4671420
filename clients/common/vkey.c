/*
 * Reading the exchange's verifier key file: see vkey.h.
 */
#include "clients/common/vkey.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool exchange_key_read(const char *who, const char *path, struct cpx_note_verifier *v)
{
    char fallback[4096];
    if (path == NULL || *path == '\0')
        path = getenv("CPX_EXCHANGE_VKEY");
    if (path == NULL || *path == '\0') {
        const char *var = getenv("CPX_VAR");
        snprintf(fallback, sizeof fallback, "%s/exchange.vkey", var && *var ? var : "var");
        path = fallback;
    }
    char text[CPX_VERIFIER_KEY_MAX + 2];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: exchange key %s: %s\n", who, path, strerror(errno));
        return false;
    }
    size_t n = fread(text, 1, sizeof text, f);
    bool failed = ferror(f) != 0;
    fclose(f);
    const char *why = failed             ? "cannot be read"
                      : n == sizeof text ? "too long for a verifier key"
                                         : NULL;
    static const char keyfile_magic[] = "cpx-ed25519-key v1\n";
    if (why == NULL && n >= sizeof keyfile_magic - 1 &&
        memcmp(text, keyfile_magic, sizeof keyfile_magic - 1) == 0)
        why = "this is a key file, not a verifier key. An auditor needs only the exchange's "
              "verifier key (`cpxd --print-verifier-key`; make run writes it to "
              "var/exchange.vkey, and the exchange publishes it at GET /v1/ledger/keys)";
    if (why == NULL) {
        if (n > 0 && text[n - 1] == '\n')
            n--;
        why = cpx_note_verifier_parse(text, n, v);
    }
    if (why != NULL) {
        fprintf(stderr, "%s: exchange key %s: %s\n", who, path, why);
        return false;
    }
    return true;
}
