/*
 * The progress bar: see progress.h.
 */
#include "clients/cpx-audit/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_HZ          10 /* most redraws a second */
#define PROGRESS_CLOCK_EVERY 64 /* updates between two reads of the clock */
#define PROGRESS_BAR_WIDTH   30 /* characters of the bar itself */

double progress_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void progress_start(struct progress *p, bool enabled)
{
    *p = (struct progress){ .on = enabled && isatty(STDERR_FILENO) };
    p->started = p->last_draw = progress_now();
}

void progress_set_total(struct progress *p, uint64_t total)
{
    p->total = total;
}

/* Draws "[#####.....] done/total records  rate/s" over the current line. */
static void draw(struct progress *p, uint64_t done, double now)
{
    double secs = now - p->started;
    double rate = secs > 0 ? (double)done / secs : 0;
    fputs("\r\033[K", stderr);
    if (p->total > 0) {
        uint64_t shown = done < p->total ? done : p->total;
        int filled = (int)(shown * PROGRESS_BAR_WIDTH / p->total);
        fputc('[', stderr);
        for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
            fputc(i < filled ? '#' : '.', stderr);
        fprintf(stderr, "] %llu/%llu records", (unsigned long long)done,
                (unsigned long long)p->total);
    } else {
        fprintf(stderr, "%llu records", (unsigned long long)done);
    }
    fprintf(stderr, "  %.0f/s", rate);
    fflush(stderr);
    p->drawn = true;
    p->last_draw = now;
}

void progress_update(struct progress *p, uint64_t done)
{
    if (!p->on || ++p->ticks < PROGRESS_CLOCK_EVERY)
        return;
    p->ticks = 0;
    double now = progress_now();
    if (now - p->last_draw >= 1.0 / PROGRESS_HZ)
        draw(p, done, now);
}

void progress_end(struct progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = false;
}
