/*
 * The progress bar of cpx-audit: one line on stderr, "records done / total and rate", redrawn at
 * most PROGRESS_HZ times a second and cleared at the end. It draws only when stderr is a terminal
 * and --quiet is absent, so logs and pipes see nothing but errors.
 */
#ifndef CPX_AUDIT_PROGRESS_H
#define CPX_AUDIT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* The state of the bar. */
struct progress {
    bool on;          /* drawing at all */
    bool drawn;       /* a line is on the screen (to clear) */
    uint64_t total;   /* records expected, 0 when unknown */
    uint64_t ticks;   /* calls since the clock was last read */
    double started;   /* monotonic seconds when counting began */
    double last_draw; /* when the line was last drawn */
};

/* Monotonic time in seconds. */
double progress_now(void);

/* Starts the bar; it draws only when enabled and stderr is a terminal. */
void progress_start(struct progress *p, bool enabled);

/* Sets the number of records expected (0: unknown). */
void progress_set_total(struct progress *p, uint64_t total);

/* Reports that done records are through; redraws when it is time. */
void progress_update(struct progress *p, uint64_t done);

/* Clears the line. */
void progress_end(struct progress *p);

#endif
