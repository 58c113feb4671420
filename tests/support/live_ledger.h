/*
 * The ledger of a running cpxd, as a test sees it: download every record and checkpoint through
 * the public API (paged), then audit them with the library's own auditor (ledger/audit.h). The
 * end-to-end tests use this to check that what the server wrote is a valid, verifiable ledger
 * independently of the cpx-audit tool.
 */
#ifndef CPX_TESTS_LIVE_LEDGER_H
#define CPX_TESTS_LIVE_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "clients/common/client.h"
#include "ledger/audit.h"
#include "ledger/checkpoint.h"

/* A downloaded ledger. */
struct live_ledger {
    char **rec;          /* record bytes by position (malloc'd) */
    size_t *len;         /* their lengths */
    uint64_t *seq;       /* the seq the API served each under */
    uint8_t (*leaf)[32]; /* stored leaf hashes */
    size_t n, cap;
    char **cp;         /* checkpoint notes, ascending by size */
    uint64_t *cp_size; /* their sizes */
    size_t ncp, cp_cap;
};

/* Downloads everything; fails the test when the API misbehaves. */
void live_download(struct client *cl, struct live_ledger *l);

void live_free(struct live_ledger *l);

/* Reads a verifier key file (one line) into v; fails the test when it is not one. */
void live_verifier(const char *path, struct cpx_note_verifier *v);

/*
 * Audits l with signatures checked inline. Returns the number of failures; the first (up to
 * `max`) are copied to out (may be NULL).
 */
uint64_t live_audit(const struct live_ledger *l, const struct cpx_note_verifier *v,
                    struct cpx_audit_failure *out, size_t max);

/*
 * Downloads the ledger cl's exchange serves, audits it with the verifier key in verifier_path,
 * fails the test on any finding, and returns the number of records.
 */
uint64_t live_audit_clean(struct client *cl, const char *verifier_path);

#endif
