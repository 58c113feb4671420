#!/bin/sh
# `make test`: every test, on a throwaway PostgreSQL cluster that is removed afterwards.
#
#   1. unit tests of the pure cores and the server's parts (no database)
#   2. fuzz corpus replays (every committed input through every fuzz target)
#   3. database tests against the throwaway cluster
#   4. end-to-end tests against real cpxd processes over HTTPS (C, then shell)
#
# Make passes BIN (binaries under test) and TESTBIN (build folder of the test binaries).
# `--unit-only` stops after step 2. T=PATTERN (a shell pattern such as 'e2e/*' or '*pg*') runs
# only the tests whose names match. Exit status is non-zero when anything failed.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
TESTBIN=${TESTBIN:-build/release}
unit_only=0
[ "${1:-}" = "--unit-only" ] && unit_only=1

# Sanitizer builds: fail on the first report; leaks are reported by LeakSanitizer at exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=""
passed=0
logdir=$(mktemp -d "${TMPDIR:-/tmp}/cpx-test-logs.XXXXXX")

# run NAME COMMAND...: runs one test, prints one line, keeps the log of failures.
# selected NAME: is the test named NAME selected by T?
selected() {
    case "$1" in
    ${T:-*}) return 0 ;;
    *) return 1 ;;
    esac
}

run() {
    name=$1
    shift
    selected "$name" || return 0
    log="$logdir/$(echo "$name" | tr '/ ' '__').log"
    start=$(date +%s.%N)
    : >"$log.start"
    "$@" >"$log" 2>&1
    rc=$?
    secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    if [ $rc -eq 0 ]; then
        printf 'PASS  %-46s %6ss\n' "$name" "$secs"
        passed=$((passed + 1))
    else
        printf 'FAIL  %-46s (exit %d)\n' "$name" "$rc"
        sed 's/^/      | /' "$log" | tail -n 60
        # The servers' own logs say what cpxd saw: the last lines of each the test started.
        if [ -n "${CPX_TEST_VAR:-}" ]; then
            for l in "$CPX_TEST_VAR"/t*/cpxd.log; do
                [ -f "$l" ] && [ "$l" -nt "$log.start" ] || continue
                echo "      | -- $l"
                grep -v ' debug ' "$l" | tail -n 15 | sed 's/^/      | /'
            done
        fi
        failed="$failed $name"
    fi
}

echo "== unit tests"
for t in "$TESTBIN"/tests/unit/test_*; do
    [ -x "$t" ] && run "unit/$(basename "$t")" "$t"
done

echo "== fuzz corpus replays"
for t in "$TESTBIN"/fuzz-replay/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    selected "fuzz/$name" || continue
    corpus=tests/fuzz/corpus/${name#fuzz_}
    if [ -d "$corpus" ]; then
        run "fuzz/$name" "$t" "$corpus"
    else
        printf 'FAIL  fuzz/%s: no corpus at %s\n' "$name" "$corpus"
        failed="$failed fuzz/$name"
    fi
done

if [ $unit_only -eq 0 ]; then
    # The throwaway cluster and TLS certificate, removed on exit whatever happens.
    export CPX_TEST_VAR
    CPX_TEST_VAR=$(mktemp -d "${TMPDIR:-/tmp}/cpx-test.XXXXXX")
    chmod 755 "$CPX_TEST_VAR"
    cleanup() {
        CPX_VAR=$CPX_TEST_VAR scripts/pg.sh destroy >/dev/null 2>&1
        rm -rf "$CPX_TEST_VAR" "$logdir"
    }
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    echo "== starting a throwaway PostgreSQL cluster"
    if ! CPX_VAR=$CPX_TEST_VAR CPX_PG_FAST=1 scripts/pg.sh start ||
        ! CPX_VAR=$CPX_TEST_VAR scripts/tls.sh; then
        echo "FAIL  could not start the test cluster"
        exit 1
    fi
    admin=$(CPX_VAR=$CPX_TEST_VAR scripts/pg.sh admin-url)
    export CPX_TEST_PG_HOST="${admin#*host=}"
    CPX_TEST_PG_HOST="${CPX_TEST_PG_HOST%%&*}"
    export CPX_TEST_BIN="$BIN"

    echo "== database tests"
    for t in "$TESTBIN"/tests/db/test_*; do
        [ -x "$t" ] && run "db/$(basename "$t")" "$t"
    done

    echo "== end-to-end tests (cpxd over HTTPS)"
    for t in "$TESTBIN"/tests/integration/test_*; do
        [ -x "$t" ] && run "e2e/$(basename "$t")" "$t"
    done
    for t in tests/e2e/*.sh; do
        [ -f "$t" ] && run "e2e/$(basename "$t")" sh "$t"
    done
fi

echo
if [ -n "$failed" ]; then
    echo "$passed passed; FAILED:$failed"
    exit 1
fi
echo "all $passed passed"
rm -rf "$logdir"
exit 0
