/*
 * Running cpx-audit from the tests: see audit_tool.h.
 */
#include "tests/support/audit_tool.h"
#include "tests/support/ledger_market.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS    32 /* arguments of one cpx-audit run */
#define OUTPUT_MAX  (64 * 1024)
#define ASAN_EXIT   86 /* exit code of the tool when AddressSanitizer reports */
#define UBSAN_EXIT  87 /* ... when UndefinedBehaviorSanitizer reports */
#define FTW_MAX_FDS 16

uint64_t audit_build_log(struct fx_log *l, struct fx_party *op, struct fx_party *buyer, int orders)
{
    fx_party_new(op);
    fx_party_new(buyer);
    fx_register_exchange(l, op, CPX_ROLE_OPERATOR);
    fx_decide(l, op, NULL, 1);
    fx_register(l, buyer, CPX_ROLE_BUYER);
    fx_decide(l, buyer, op, 1);
    return audit_trades(l, buyer, 0, orders);
}

uint64_t audit_trades(struct fx_log *l, const struct fx_party *buyer, int first, int orders)
{
    /* Shaped as the exchange writes them, so that cpx-audit's books find nothing wrong: an
     * order that holds nothing, and its expiry. */
    struct lm m = { .log = l, .sign = true };
    for (int i = first; i < first + orders; i++)
        lm_order_expired(&m, buyer, i);
    return l->n - 1;
}

void audit_path(const struct audit_dir *d, const char *name, char out[AUDIT_PATH_MAX])
{
    int n = snprintf(out, AUDIT_PATH_MAX, "%s/%s", d->path, name);
    assert_true(n > 0 && n < AUDIT_PATH_MAX);
}

void audit_dir_init(struct audit_dir *d, const struct fx_log *l)
{
    audit_dir_init_verifier(d, &l->verifier);
}

void audit_dir_init_verifier(struct audit_dir *d, const struct cpx_note_verifier *v)
{
    const char *base = getenv("CPX_TEST_VAR");
    snprintf(d->path, sizeof d->path, "%s/audit.XXXXXX", base ? base : "/tmp");
    assert_non_null(mkdtemp(d->path));
    audit_path(d, "exchange.key", d->key);
    audit_path(d, "report.json", d->report);
    audit_path(d, "output.txt", d->output);
    char key[CPX_VERIFIER_KEY_MAX];
    cpx_note_verifier_format(v, key);
    FILE *f = fopen(d->key, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", key);
    assert_int_equal(fclose(f), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void audit_dir_free(struct audit_dir *d)
{
    nftw(d->path, remove_entry, FTW_MAX_FDS, FTW_DEPTH | FTW_PHYS);
}

/* The cpx-audit binary under test. */
static void binary(char out[AUDIT_PATH_MAX])
{
    const char *bin = getenv("CPX_TEST_BIN");
    if (bin == NULL)
        fail_msg("CPX_TEST_BIN is not set: run the tests with `make test`");
    snprintf(out, AUDIT_PATH_MAX, "%s/cpx-audit", bin);
}

/* Appends ":name=value" to the sanitizer options variable var. */
static void add_sanitizer_option(const char *var, const char *option)
{
    const char *old = getenv(var);
    char value[1024];
    snprintf(value, sizeof value, "%s%s%s", old ? old : "", old && *old ? ":" : "", option);
    setenv(var, value, 1);
}

int audit_run_raw(const struct audit_dir *d, const char *const *args)
{
    char bin[AUDIT_PATH_MAX];
    binary(bin);
    const char *argv[MAX_ARGS + 2] = { bin };
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(n < MAX_ARGS);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(d->output, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(127);
        char asan[32], ubsan[32];
        snprintf(asan, sizeof asan, "exitcode=%d", ASAN_EXIT);
        snprintf(ubsan, sizeof ubsan, "exitcode=%d", UBSAN_EXIT);
        add_sanitizer_option("ASAN_OPTIONS", asan);
        add_sanitizer_option("UBSAN_OPTIONS", ubsan);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("cpx-audit died of signal %d", WTERMSIG(status));
    int code = WEXITSTATUS(status);
    if (code == ASAN_EXIT || code == UBSAN_EXIT || audit_output_has(d, "Sanitizer") ||
        audit_output_has(d, "runtime error:")) {
        char cmd[AUDIT_PATH_MAX + 8];
        snprintf(cmd, sizeof cmd, "cat '%s'", d->output);
        (void)!system(cmd);
        fail_msg("cpx-audit: sanitizer report (exit %d)", code);
    }
    return code;
}

int audit_run(const struct audit_dir *d, const char *const *args, json_t **report)
{
    const char *all[MAX_ARGS + 1] = { "verify",   "--exchange-key", d->key,
                                      "--report", d->report,        "--quiet" };
    size_t n = 6;
    for (size_t i = 0; args[i] != NULL; i++) {
        assert_true(n < MAX_ARGS);
        all[n++] = args[i];
    }
    all[n] = NULL;
    unlink(d->report);
    int code = audit_run_raw(d, all);
    *report = json_load_file(d->report, 0, NULL);
    return code;
}

bool audit_output_has(const struct audit_dir *d, const char *text)
{
    char buf[OUTPUT_MAX + 1];
    FILE *f = fopen(d->output, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, OUTPUT_MAX, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

bool report_has(const json_t *report, uint64_t seq, const char *reason)
{
    size_t i;
    const json_t *f;
    json_array_foreach(json_object_get(report, "failures"), i, f)
    {
        const char *r = json_string_value(json_object_get(f, "reason"));
        if ((uint64_t)json_integer_value(json_object_get(f, "seq")) == seq && r != NULL &&
            strcmp(r, reason) == 0)
            return true;
    }
    return false;
}

void assert_only_failure(const json_t *report, uint64_t seq, const char *reason)
{
    assert_non_null(report);
    assert_true(json_is_false(json_object_get(report, "ok")));
    const json_t *failures = json_object_get(report, "failures");
    if (json_array_size(failures) != 1 || !report_has(report, seq, reason)) {
        char *text = json_dumps(failures, JSON_INDENT(2));
        fail_msg("want only (%llu, %s); failures are %s", (unsigned long long)seq, reason, text);
    }
    assert_int_equal(report_int(report, "failure_total"), 1);
}

int64_t report_int(const json_t *report, const char *key)
{
    const json_t *v = json_object_get(report, key);
    if (!json_is_integer(v))
        fail_msg("report member %s is not an integer", key);
    return json_integer_value(v);
}
