/*
 * Where the ledger comes from: an export file (docs/ledger.md section 10) or the exchange's
 * public ledger endpoints. Each source feeds the run (run.h) -- checkpoints first, then records
 * from the state's `checked` on -- and returns false when it had to stop (run->error says why);
 * the caller then finishes the run either way.
 */
#ifndef CPX_AUDIT_SOURCE_H
#define CPX_AUDIT_SOURCE_H

#include <stdbool.h>

#include "clients/cpx-audit/run.h"

/* Reads the export file run->opt->file ("-": standard input) line by line. */
bool source_file(struct run *r);

/* Downloads the ledger from run->opt->url (or CPX_URL, like cpx) with unsigned GETs. */
bool source_url(struct run *r);

#endif
