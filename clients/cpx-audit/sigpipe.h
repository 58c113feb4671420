/*
 * Party signatures on several cores while the auditor's sequential pass runs.
 *
 * The auditor runs in CPX_AUDIT_SIGS_DEFER mode: for each record with a party signature
 * cpx_audit_record resolves the key in force and returns a job (seq, key). The producer -- the
 * thread that feeds the auditor -- pushes the job with a copy of the record's bytes into a bounded
 * ring; threads-1 workers take jobs from the ring and verify them with cpx_audit_sigjob_verify.
 * The producer never waits: when the ring is full it verifies the oldest job itself, and at the
 * end it drains the ring with the workers. So every core verifies from the first record to the
 * last, and memory stays O(threads x ring) however long the ledger is.
 *
 * Buffers change hands instead of being copied: taking a job swaps the taker's buffer with the
 * slot's, so a slot is free again as soon as its job is taken. Failed jobs are collected under
 * the lock and handed to the auditor (cpx_audit_sigjob_failed) by the producer only, in
 * sig_pipeline_push and sig_pipeline_finish, since the auditor is not thread-safe.
 */
#ifndef CPX_AUDIT_SIGPIPE_H
#define CPX_AUDIT_SIGPIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger/audit.h"

struct sig_pipeline;

/*
 * A pipeline verifying on `threads` threads (the caller's included, so threads - 1 are started)
 * for auditor a. Returns NULL when out of memory. Fewer threads start when the system refuses.
 */
struct sig_pipeline *sig_pipeline_new(unsigned threads, struct cpx_audit *a);

/*
 * Queues a job with a copy of the record's bytes (verifying the oldest job on this thread when
 * the ring is full) and reports failed jobs to the auditor. Producer only. Returns false when
 * out of memory.
 */
bool sig_pipeline_push(struct sig_pipeline *p, const void *bytes, size_t len,
                       const struct cpx_audit_sigjob *job);

/*
 * Verifies what is left (with the workers), stops them and reports every failed job to the
 * auditor. Producer only; call before cpx_audit_finish. Returns false when out of memory.
 */
bool sig_pipeline_finish(struct sig_pipeline *p);

/* Jobs pushed so far: the signatures checked once the pipeline is finished. */
uint64_t sig_pipeline_jobs(const struct sig_pipeline *p);

/* Stops the workers (if still running) and frees p (NULL is fine). */
void sig_pipeline_free(struct sig_pipeline *p);

#endif
