/*
 * The accepted jobs: kept in memory so that a delivery received twice is answered with the
 * same acceptance and run once, and (with --state FILE) in a file so that a restarted provider
 * still knows them and resumes those that were running.
 *
 * The file is one JSON document, rewritten whole (temporary file, fsync, rename) whenever a job
 * is accepted or finishes, so it is never half-written:
 *
 *     {"jobs":[{"agreement":"agr_…","deliver_by":1796112900,"delivery":"dlv_…",
 *               "description":"…"|null,"devices":8,"finished":false}]}
 *
 * Where metering stands is not kept: the exchange's metered_until says it.
 */
#include "clients/cpx-provider/provider.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A finished job is forgotten this long after its deliver_by: the exchange retries a delivery
 * only until then, so no duplicate can arrive later. */
#define FORGET_AFTER 3600

struct job *jobs_find(struct provider *p, const char *delivery, const char *agreement)
{
    for (size_t i = 0; i < p->njobs; i++)
        if (strcmp(p->jobs[i]->delivery, delivery) == 0 ||
            strcmp(p->jobs[i]->agreement, agreement) == 0)
            return p->jobs[i];
    return NULL;
}

struct job *jobs_add(struct provider *p, const struct envelope *env)
{
    if (p->njobs == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct job **bigger = realloc(p->jobs, cap * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        p->jobs = bigger;
        p->cap = cap;
    }
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->p = p;
    snprintf(j->agreement, sizeof j->agreement, "%s", env->agreement);
    snprintf(j->delivery, sizeof j->delivery, "%s", env->delivery);
    j->devices = env->devices;
    j->deliver_by = env->deliver_by;
    if (env->description != NULL && (j->description = strdup(env->description)) == NULL) {
        free(j);
        return NULL;
    }
    p->jobs[p->njobs++] = j;
    return j;
}

void jobs_remove(struct provider *p, struct job *j)
{
    for (size_t i = 0; i < p->njobs; i++) {
        if (p->jobs[i] != j)
            continue;
        p->jobs[i] = p->jobs[--p->njobs];
        free(j->description);
        free(j);
        return;
    }
}

/* Drops finished jobs no duplicate can ask about any more, so a long-lived provider stays small. */
static void prune(struct provider *p, int64_t now)
{
    if (p->stopping) /* workers_join owns the threads now */
        return;
    for (size_t i = p->njobs; i-- > 0;) {
        struct job *j = p->jobs[i];
        if (!j->finished || j->deliver_by + FORGET_AFTER > now ||
            (j->has_thread && !j->thread_done))
            continue;
        if (j->has_thread)
            pthread_join(j->thread, NULL); /* it has returned: this does not wait */
        jobs_remove(p, j);
    }
}

static json_t *job_json(const struct job *j)
{
    return json_pack("{s:s, s:I, s:s, s:o, s:I, s:b}", "agreement", j->agreement, "deliver_by",
                     (json_int_t)j->deliver_by, "delivery", j->delivery, "description",
                     j->description ? json_string(j->description) : json_null(), "devices",
                     (json_int_t)j->devices, "finished", j->finished);
}

/* Writes text to path through a temporary file, so a crash leaves the old file or the new. */
static bool write_atomically(const char *path, const char *text)
{
    char tmp[CLIENT_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t len = strlen(text);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        plog("error", "cannot write the state file %s: %s", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

bool jobs_save(struct provider *p)
{
    prune(p, now_ms() / 1000);
    if (p->state_path == NULL)
        return true;
    json_t *list = json_array();
    for (size_t i = 0; i < p->njobs; i++)
        json_array_append_new(list, job_json(p->jobs[i]));
    json_t *doc = json_pack("{s:o}", "jobs", list);
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    bool ok = text != NULL && write_atomically(p->state_path, text);
    free(text);
    return ok;
}

/* Adds one job of the state file; false when it is not one. */
static bool load_job(struct provider *p, const json_t *o)
{
    struct envelope env = { 0 };
    const char *agreement = json_string_value(json_object_get(o, "agreement"));
    const char *delivery = json_string_value(json_object_get(o, "delivery"));
    const json_t *description = json_object_get(o, "description");
    if (agreement == NULL || !provider_id_valid(agreement, "agr_") || delivery == NULL ||
        !provider_id_valid(delivery, "dlv_") ||
        (description && !json_is_null(description) && !json_is_string(description)))
        return false;
    snprintf(env.agreement, sizeof env.agreement, "%s", agreement);
    snprintf(env.delivery, sizeof env.delivery, "%s", delivery);
    env.devices = json_integer_value(json_object_get(o, "devices"));
    env.deliver_by = json_integer_value(json_object_get(o, "deliver_by"));
    env.description = (char *)json_string_value(description);
    struct job *j = env.devices > 0 ? jobs_add(p, &env) : NULL;
    if (j != NULL)
        j->finished = json_is_true(json_object_get(o, "finished"));
    return j != NULL;
}

bool jobs_load(struct provider *p)
{
    if (p->state_path == NULL || access(p->state_path, F_OK) != 0)
        return true; /* nothing yet: the first run */
    json_error_t err;
    json_t *doc = json_load_file(p->state_path, JSON_REJECT_DUPLICATES, &err);
    json_t *list = json_object_get(doc, "jobs");
    bool ok = json_is_array(list);
    size_t i;
    json_t *o;
    json_array_foreach(list, i, o)
    {
        if (ok && !load_job(p, o))
            ok = false;
    }
    if (!ok)
        plog("error", "the state file %s is not one this provider wrote%s%s", p->state_path,
             doc ? "" : ": ", doc ? "" : err.text);
    json_decref(doc);
    return ok;
}

void jobs_free(struct provider *p)
{
    while (p->njobs > 0)
        jobs_remove(p, p->jobs[p->njobs - 1]);
    free(p->jobs);
    p->jobs = NULL;
    p->cap = 0;
}
