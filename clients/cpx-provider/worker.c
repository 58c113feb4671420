/*
 * One thread per accepted job (docs/delivery.md §3):
 *
 *   1. Wait until the exchange has recorded the acceptance: GET /v1/agreements/{id} until its
 *      status is "active". The agreement's clock is the exchange's (started_at, ends_at), and a
 *      job the exchange never activates (the answer came after deliver_by) must not run.
 *   2. Run the workload: simulated (every device busy), or --command under `sh -c`.
 *   3. Every --report-every seconds, report [last_end, now] with the device-seconds the run
 *      spent in it. When the workload ends, send the final report ("final":true: the exchange
 *      completes the agreement early); at ends_at stop a workload still running and send the
 *      final report, ending exactly at ends_at. Periods never overlap and never leave
 *      [started_at, ends_at].
 *
 * A report that gets no answer is sent again with the same body and Idempotency-Key, with
 * backoff, so a retry after a lost answer is recorded once. A 409 (the exchange has metered
 * further, e.g. that lost answer) makes the worker re-read metered_until and go on from there.
 *
 * On SIGINT/SIGTERM the workload stops, what ran is reported once, and the job stays
 * unfinished in the state file: a restarted provider resumes it from metered_until.
 */
#include "clients/cpx-provider/provider.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MAX_MS 60000 /* an unreachable exchange is retried at least once a minute */
#define STOP_GRACE_MS  10000 /* a command gets this long after SIGTERM before SIGKILL */
#define PENDING_GRACE  300   /* seconds past deliver_by that we still wait for "active" */
#define LAG_MAX        300   /* most seconds reports stay behind our clock (see struct run) */

extern char **environ;

/* A worker's own state: its HTTPS client (not shared: libcurl handles are per thread). */
struct run {
    struct provider *p;
    struct job *j;
    struct client cl;
    struct agreement_view a; /* as last read */
    int64_t last_end;        /* metered up to here, unix seconds */
    int64_t lag;             /* reports end this many seconds before our clock's now: the
                              * exchange refuses an end in its future, so a clock running
                              * ahead of its clock adds a second each time it says so */
    int retries;             /* consecutive failures, for the backoff */
    pthread_t reaper;        /* waits for the command to exit */
    bool has_reaper;
    char job_file[CLIENT_PATH_MAX]; /* CPX_JOB_FILE, "" when none */
};

static const char STOPPING[] = "stopping"; /* a reason that leaves the job unfinished */

enum woke { WOKE_TIME, WOKE_STOP, WOKE_EXIT };

/* Sleeps until the wall-clock time until_ms, or until the provider stops, or (when j is given)
 * until j's running command exits. */
static enum woke sleep_until(struct provider *p, int64_t until_ms, const struct job *j)
{
    struct timespec ts = { .tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000 };
    pthread_mutex_lock(&p->lock);
    while (!p->stopping && now_ms() < until_ms && !(j && j->run_end_ms != INT64_MAX))
        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
    enum woke why = p->stopping ? WOKE_STOP : now_ms() < until_ms ? WOKE_EXIT : WOKE_TIME;
    pthread_mutex_unlock(&p->lock);
    return why;
}

/* Waits before the next retry; false when the provider stops meanwhile. */
static bool retry_wait(struct run *r)
{
    int64_t ms = backoff_ms(++r->retries, BACKOFF_MAX_MS, randombytes_random());
    return sleep_until(r->p, now_ms() + ms, NULL) != WOKE_STOP;
}

/* Why a job is over when the agreement left "active" (or never got there). */
static const char *status_why(const char *status)
{
    if (strcmp(status, "completed") == 0)
        return "the agreement is completed";
    if (strcmp(status, "failed") == 0)
        return "the agreement failed (not delivered by its deadline)";
    return "the agreement is not active";
}

/* The error code of a reply, or "". */
static const char *code_of(const struct client_reply *rep)
{
    const char *code =
        json_string_value(json_object_get(json_object_get(rep->json, "error"), "code"));
    return code ? code : "";
}

/* GETs the agreement into r->a. Returns the HTTP status, 0 when no usable answer came. */
static long get_agreement(struct run *r)
{
    char target[CPX_ID_MAX + 16];
    snprintf(target, sizeof target, "/v1/agreements/%s", r->j->agreement);
    struct client_reply rep;
    bool ok = client_call(&r->cl, "GET", target, NULL, true, NULL, &rep);
    long status = ok ? rep.status : 0;
    if (status == 200 && !agreement_view_parse(rep.json, &r->a))
        status = 0;
    if (status != 200 && status != 404)
        plog("retrying", "agreement=%s: GET %s: %s %s", r->j->agreement, target,
             ok ? code_of(&rep) : rep.error, ok && status == 200 ? "unreadable answer" : "");
    client_reply_free(&rep);
    return status;
}

/* Step 1: polls until the agreement is active. Returns NULL then, else why the job will not
 * run (STOPPING when the provider stops first). */
static const char *wait_active(struct run *r)
{
    for (;;) {
        long status = get_agreement(r);
        if (status == 404)
            return "the exchange does not show us this agreement";
        if (status == 200 && strcmp(r->a.status, "active") == 0) {
            r->retries = 0;
            r->last_end =
                r->a.started_at > r->a.metered_until ? r->a.started_at : r->a.metered_until;
            return NULL;
        }
        if (status == 200 && strcmp(r->a.status, "pending_delivery") != 0)
            return status_why(r->a.status);
        if (status == 200 && now_ms() / 1000 > r->j->deliver_by + PENDING_GRACE)
            return "the exchange never started the agreement";
        if (!retry_wait(r))
            return STOPPING;
    }
}

/* Waits for the command without reaping it, so its pid (and process group) cannot be reused
 * while workload_stop may still signal it; then marks the run ended and reaps it. */
static void *reap(void *arg)
{
    struct run *r = arg;
    struct job *j = r->j;
    siginfo_t info;
    while (waitid(P_PID, j->pid, &info, WEXITED | WNOWAIT) != 0 && errno == EINTR)
        continue;
    pthread_mutex_lock(&r->p->lock);
    pid_t pid = j->pid;
    j->run_end_ms = now_ms();
    j->pid = 0;
    pthread_cond_broadcast(&r->p->wake);
    pthread_mutex_unlock(&r->p->lock);
    int status = 0;
    waitpid(pid, &status, 0);
    plog("exited", "agreement=%s command %s %d", j->agreement,
         WIFSIGNALED(status) ? "killed by signal" : "exit status",
         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    return NULL;
}

/* Writes the job description to a private temporary file for the command (CPX_JOB_FILE). */
static bool write_job_file(struct run *r)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(r->job_file, sizeof r->job_file, "%s/cpx-job-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp",
             r->j->delivery);
    int fd = mkstemp(r->job_file);
    const char *text = r->j->description ? r->j->description : "";
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        plog("error", "agreement=%s: cannot write %s: %s", r->j->agreement, r->job_file,
             strerror(errno));
        if (fd >= 0)
            unlink(r->job_file);
        r->job_file[0] = '\0';
    }
    return ok;
}

/* The command's environment: ours without CPX_* (such as the provider's CPX_KEY), plus the
 * job's four variables, written into vars. NULL when out of memory; free the array only. */
static char **job_environ(const struct run *r, char vars[4][CLIENT_PATH_MAX + 32])
{
    const struct job *j = r->j;
    size_t n = 0, k = 0;
    while (environ[n] != NULL)
        n++;
    char **envp = calloc(n + 5, sizeof *envp);
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "CPX_", 4) != 0)
            envp[k++] = environ[i];
    snprintf(vars[0], CLIENT_PATH_MAX + 32, "CPX_AGREEMENT=%s", j->agreement);
    snprintf(vars[1], CLIENT_PATH_MAX + 32, "CPX_DELIVERY=%s", j->delivery);
    snprintf(vars[2], CLIENT_PATH_MAX + 32, "CPX_DEVICES=%lld", (long long)j->devices);
    snprintf(vars[3], CLIENT_PATH_MAX + 32, "CPX_JOB_FILE=%s", r->job_file);
    for (int i = 0; i < 4; i++)
        envp[k++] = vars[i];
    return envp;
}

/* posix_spawn of `sh -c command` in a new process group (so the whole job can be stopped),
 * with the signals we block or ignore back to normal, standard input from /dev/null and its
 * output on our stderr (our stdout carries only the "listening" line). Returns 0 or an errno. */
static int spawn_sh(const char *command, char **envp, pid_t *pid)
{
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    char *argv[] = { "sh", "-c", (char *)command, NULL };
    int rc = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

/* Starts the --command for the job, and a thread that notes when it exits. */
static bool command_start(struct run *r)
{
    struct job *j = r->j;
    if (!write_job_file(r))
        return false;
    char vars[4][CLIENT_PATH_MAX + 32];
    char **envp = job_environ(r, vars);
    pid_t pid = 0;
    int rc = envp ? spawn_sh(r->p->command, envp, &pid) : ENOMEM;
    free(envp);
    if (rc != 0) {
        plog("error", "agreement=%s: cannot start the command: %s", j->agreement, strerror(rc));
        unlink(r->job_file);
        r->job_file[0] = '\0';
        return false;
    }
    pthread_mutex_lock(&r->p->lock);
    j->pid = pid;
    j->run_start_ms = now_ms();
    j->run_end_ms = INT64_MAX;
    pthread_mutex_unlock(&r->p->lock);
    r->has_reaper = pthread_create(&r->reaper, NULL, reap, r) == 0;
    if (!r->has_reaper) { /* nothing would notice its end: do not let it run unmetered */
        plog("error", "agreement=%s: cannot start a thread to wait for the command", j->agreement);
        kill(-pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pthread_mutex_lock(&r->p->lock);
        j->pid = 0;
        j->run_end_ms = j->run_start_ms;
        pthread_mutex_unlock(&r->p->lock);
    }
    return r->has_reaper;
}

/* Step 2: starts the workload. A simulated one keeps every device busy for --simulate-seconds
 * (or to the agreement's end), so its run is known in advance. */
static bool workload_start(struct run *r)
{
    struct provider *p = r->p;
    struct job *j = r->j;
    if (p->command != NULL && !command_start(r)) {
        pthread_mutex_lock(&p->lock);
        j->run_start_ms = j->run_end_ms = now_ms(); /* an empty run: the final report says 0 */
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    if (p->command == NULL) {
        int64_t now = now_ms(), end = r->a.ends_at * 1000;
        if (p->simulate_seconds > 0 && now + p->simulate_seconds * 1000 < end)
            end = now + p->simulate_seconds * 1000;
        pthread_mutex_lock(&p->lock);
        j->run_start_ms = now;
        j->run_end_ms = end;
        pthread_mutex_unlock(&p->lock);
    }
    char until[RFC3339_LEN];
    rfc3339_format(r->a.ends_at, until);
    plog("started", "agreement=%s devices=%lld %s until %s at the latest", j->agreement,
         (long long)j->devices, p->command ? "command" : "simulated", until);
    return true;
}

/* Stops the workload now (a no-op when it has ended): SIGTERM to the command's process group,
 * SIGKILL after STOP_GRACE_MS. */
static void workload_stop(struct run *r)
{
    struct provider *p = r->p;
    struct job *j = r->j;
    pthread_mutex_lock(&p->lock);
    int64_t now = now_ms();
    if (p->command == NULL && j->run_end_ms > now)
        j->run_end_ms = now;
    if (j->pid > 0) {
        kill(-j->pid, SIGTERM);
        int64_t deadline = now + STOP_GRACE_MS;
        struct timespec ts = { .tv_sec = deadline / 1000, .tv_nsec = deadline % 1000 * 1000000 };
        while (j->pid > 0 && now_ms() < deadline)
            pthread_cond_timedwait(&p->wake, &p->lock, &ts);
        if (j->pid > 0)
            kill(-j->pid, SIGKILL);
    }
    pthread_mutex_unlock(&p->lock);
    if (r->has_reaper)
        pthread_join(r->reaper, NULL);
    r->has_reaper = false;
    if (r->job_file[0] != '\0')
        unlink(r->job_file);
    r->job_file[0] = '\0';
}

/* After a refusal saying the exchange sees the agreement differently (it has metered further,
 * or it is no longer active): read it again and go on from its metered_until. */
static const char *resync(struct run *r)
{
    int64_t before = r->last_end;
    long status;
    while ((status = get_agreement(r)) != 200) {
        if (status == 404)
            return "the exchange does not show us this agreement";
        if (!retry_wait(r))
            return STOPPING;
    }
    if (strcmp(r->a.status, "active") != 0)
        return status_why(r->a.status);
    if (r->a.metered_until > r->last_end) {
        char until[RFC3339_LEN];
        rfc3339_format(r->a.metered_until, until);
        plog("resynced", "agreement=%s: the exchange has metered until %s; going on from there",
             r->j->agreement, until);
        r->last_end = r->a.metered_until;
    }
    if (r->last_end >= r->a.ends_at)
        return "metered to its end";
    if (r->last_end == before && !retry_wait(r)) /* e.g. our clock runs ahead of the exchange's */
        return STOPPING;
    return NULL;
}

/* What an answer to a usage report means (docs/delivery.md §3's table). */
enum usage_next {
    USAGE_DONE,   /* recorded */
    USAGE_RETRY,  /* no answer, 5xx, 429, 401: the same body again later */
    USAGE_RESYNC, /* the exchange sees the agreement differently: read it again */
    USAGE_SKIP,   /* refused for good (e.g. usage_exceeds_capacity) */
};

static enum usage_next usage_next(long status, const char *code)
{
    if (status >= 200 && status <= 299)
        return USAGE_DONE;
    if (status == 0 || status >= 500 || status == 429 || status == 401)
        return USAGE_RETRY;
    if (status == 409 || status == 404 || strcmp(code, "usage_outside_window") == 0)
        return USAGE_RESYNC;
    return USAGE_SKIP;
}

/* POSTs a usage body; returns the HTTP status (0: no answer) and the error code in code. */
static long post_usage(struct run *r, const char *body, int64_t start, const char *period,
                       char code[64])
{
    char target[CPX_ID_MAX + 24], key[CPX_ID_MAX + 64];
    snprintf(target, sizeof target, "/v1/agreements/%s/usage", r->j->agreement);
    snprintf(key, sizeof key, "Idempotency-Key: use-%s-%lld", r->j->agreement, (long long)start);
    const char *headers[] = { key, NULL };
    struct client_reply rep = { 0 };
    bool ok = body != NULL && client_call(&r->cl, "POST", target, body, true, headers, &rep);
    long status = ok ? rep.status : 0;
    snprintf(code, 64, "%s", ok ? code_of(&rep) : "");
    if (usage_next(status, code) == USAGE_RETRY)
        plog("retrying", "agreement=%s: usage %s: %s", r->j->agreement, period,
             ok     ? code
             : body ? rep.error
                    : "out of memory");
    else if (status < 200 || status > 299)
        plog("refused", "agreement=%s: usage %s: %ld %s", r->j->agreement, period, status, code);
    client_reply_free(&rep);
    return status;
}

/*
 * Reports [r->last_end, end], as the final report when final (or when end is ends_at). Returns
 * NULL to carry on, or why the job is over. Without an answer the same body is sent again after
 * a backoff, so its Idempotency-Key makes a retry after a lost answer harmless; `once` gives up
 * after one attempt (the report on the way out).
 */
static const char *report(struct run *r, int64_t end, bool final, bool once)
{
    struct job *j = r->j;
    int64_t start = r->last_end;
    if (end <= start)
        return NULL;
    pthread_mutex_lock(&r->p->lock);
    int64_t used = meter_device_seconds(j->devices, j->run_start_ms, j->run_end_ms, start, end);
    pthread_mutex_unlock(&r->p->lock);
    final = final || end == r->a.ends_at;
    char *body = usage_body(start, end, used, final);
    char from[RFC3339_LEN], to[RFC3339_LEN], period[2 * RFC3339_LEN + 2], code[64];
    rfc3339_format(start, from);
    rfc3339_format(end, to);
    snprintf(period, sizeof period, "%s..%s", from, to);
    enum usage_next next;
    while ((next = usage_next(post_usage(r, body, start, period, code), code)) == USAGE_RETRY)
        if (once || !retry_wait(r))
            break;
    free(body);
    if (next == USAGE_DONE) {
        plog("reported", "agreement=%s %s device_seconds=%lld%s", j->agreement, period,
             (long long)used, final ? " (final)" : "");
        r->last_end = end;
        r->retries = 0;
        return !final                ? NULL
               : end == r->a.ends_at ? "reported to its end"
                                     : "the job is done: reported it final";
    }
    if (next == USAGE_SKIP) { /* a gap, so that the next report can pass */
        plog("warning", "agreement=%s: %s stays unbilled", j->agreement, period);
        r->last_end = end;
        return NULL;
    }
    if (strcmp(code, "usage_outside_window") == 0 && r->lag < LAG_MAX)
        r->lag++;
    if (once)
        return NULL;
    return next == USAGE_RESYNC ? resync(r) : STOPPING;
}

/* Where a report made now ends: now (less the lag), at most the agreement's end. */
static int64_t period_end(const struct run *r)
{
    int64_t end = now_ms() / 1000 - r->lag;
    return end < r->a.ends_at ? end : r->a.ends_at;
}

/* The workload's end rounded up to a second, INT64_MAX while a command runs. */
static int64_t run_end(struct run *r)
{
    pthread_mutex_lock(&r->p->lock);
    int64_t ms = r->j->run_end_ms;
    pthread_mutex_unlock(&r->p->lock);
    return ms == INT64_MAX ? INT64_MAX : (ms + 999) / 1000;
}

/* Steps 2 and 3: runs the workload and reports until the job is done or its time is up. */
static const char *run_and_report(struct run *r)
{
    struct provider *p = r->p;
    if (r->last_end >= r->a.ends_at)
        return "metered to its end";
    if (now_ms() / 1000 < r->a.ends_at) /* (resumed after the end: only the final report is due) */
        workload_start(r);
    const char *why = NULL;
    while (why == NULL) {
        bool final;
        int64_t ran = run_end(r);
        int64_t end = next_report(r->last_end, r->a.ends_at, p->report_every, ran, &final);
        /* A command's end is not known in advance: its exit wakes us to plan again. */
        enum woke woke = sleep_until(p, (end + r->lag) * 1000, ran == INT64_MAX ? r->j : NULL);
        if (woke == WOKE_STOP)
            why = STOPPING;
        if (woke != WOKE_TIME)
            continue;
        if (end == r->a.ends_at)
            workload_stop(r); /* the agreement's time is up */
        /* late (after retries or a stop of the command)? a periodic report goes up to now */
        why = report(r, final ? end : period_end(r), final, false);
    }
    workload_stop(r);
    if (why == STOPPING) { /* bill what ran so far, up to now; a restart goes on from there */
        if (r->lag <= 5)
            sleep((unsigned)r->lag);
        report(r, period_end(r), false, true);
    }
    return why;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    struct provider *p = j->p;
    struct run r = { .p = p, .j = j, .lag = 1 }; /* a second: clocks differ by a little */
    const char *why = "cannot set up an HTTPS client";
    if (client_init(&r.cl, p->exchange_url, p->cacert, p->key_path)) {
        r.cl.key = p->key;
        r.cl.have_key = true;
        why = wait_active(&r);
        if (why == NULL)
            why = run_and_report(&r);
    }
    client_free(&r.cl);
    pthread_mutex_lock(&p->lock);
    if (why == STOPPING) {
        plog("stopped", "agreement=%s: %s", j->agreement,
             p->state_path ? "resumes when the provider restarts" : "forgotten (no --state)");
    } else {
        j->finished = true;
        plog("finished", "agreement=%s: %s", j->agreement, why);
        jobs_save(p);
    }
    j->thread_done = true; /* after jobs_save, whose pruning must not join this thread */
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

bool worker_start(struct provider *p, struct job *j)
{
    (void)p;
    j->has_thread = pthread_create(&j->thread, NULL, job_main, j) == 0;
    if (!j->has_thread)
        plog("error", "agreement=%s: cannot start a thread", j->agreement);
    return j->has_thread;
}

void workers_join(struct provider *p)
{
    for (;;) {
        pthread_t t;
        bool found = false;
        pthread_mutex_lock(&p->lock);
        for (size_t i = 0; i < p->njobs && !found; i++) {
            if (p->jobs[i]->has_thread) {
                t = p->jobs[i]->thread;
                p->jobs[i]->has_thread = false; /* ours to join now, not prune's */
                found = true;
            }
        }
        pthread_mutex_unlock(&p->lock);
        if (!found)
            return;
        pthread_join(t, NULL);
    }
}
