/*
 * The exchange's verifier key, as the clients that check its ledger read it: a file holding one
 * verifier key string (`<origin>+<key ID, 8 hex>+<base64>`, docs/ledger.md §5), which `make run`
 * writes to var/exchange.vkey and the exchange also publishes at GET /v1/ledger/keys. A regulator
 * gets it from the exchange out of band, once, and trusts nothing else.
 */
#ifndef CPX_CLIENTS_VKEY_H
#define CPX_CLIENTS_VKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "ledger/checkpoint.h"

/*
 * Reads the verifier key file at path; NULL means CPX_EXCHANGE_VKEY, else $CPX_VAR/exchange.vkey
 * (CPX_VAR defaulting to ./var). The file holds the key string, a trailing newline allowed.
 * Returns false after saying on stderr what is wrong (prefixed with `who`).
 */
bool exchange_key_read(const char *who, const char *path, struct cpx_note_verifier *v);

#endif
