# shellcheck shell=sh
# What the benchmark scripts that run a real cpxd share (bench-trading.sh, bench-delivery.sh,
# bench-ledger-db.sh): sourced by them, first thing (`. "$(dirname "$0")/bench-env.sh"`), never
# run. Sourcing it sets strict mode, works from the checkout, sets BIN (default bin), $bench (the
# script's name, for messages) and $var, a temporary folder removed on exit with the private
# PostgreSQL cluster in it, after stopping cpxd (and showing its last log lines when the script
# fails). Then:
#   bench_cluster KEY...       a private cluster in $var (fsync on, as in production), a
#                              self-signed TLS certificate ($var/tls) and $var/KEY.key for each
#                              KEY (cpx keygen); sets url (cpxd's database), admin_url and origin
#   bench_cpxd POOL [FLAG...]  starts cpxd on it (TLS, migrated by the administrator as `make run`
#                              does, --rate-limit 0, the operator and exchange keys) with FLAGs and
#                              $CPX_BENCH_CPXD_ARGS, logging to $var/cpxd.log, and waits for its
#                              port; sets cores, threads (CPX_BENCH_CPXD_THREADS, 2 x cores),
#                              db_pool (CPX_BENCH_CPXD_DB_POOL, 2 x threads + POOL), pid and base
#   bench_route PATH NAME WHY  exits when cpxd has no POST PATH (shown as NAME): WHY, and nothing
#                              to measure
#   bench_cpxd_log             on stderr, how many lines cpxd logged and the commonest five
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
bench=$(basename "$0" .sh)
var=$(mktemp -d "${TMPDIR:-/tmp}/cpx-bench.XXXXXX")
chmod 755 "$var"
pid=
cleanup() {
    rc=$?
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ -s "$var/cpxd.log" ]; then
        echo "$bench: the last lines cpxd logged:" >&2
        tail -n 20 "$var/cpxd.log" >&2
    fi
    CPX_VAR=$var scripts/pg.sh destroy >/dev/null 2>&1 || true
    rm -rf "$var"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_cluster() {
    CPX_VAR=$var scripts/pg.sh start >/dev/null
    CPX_VAR=$var scripts/tls.sh >/dev/null
    url=$(CPX_VAR=$var scripts/pg.sh url)
    admin_url=$(CPX_VAR=$var scripts/pg.sh admin-url cpx)
    origin=bench.cpx/ledger
    for key in "$@"; do
        "$BIN/cpx" keygen --out "$var/$key.key" >/dev/null
    done
}

bench_cpxd() {
    cores=$(getconf _NPROCESSORS_ONLN)
    threads=${CPX_BENCH_CPXD_THREADS:-$((cores * 2))}
    db_pool=${CPX_BENCH_CPXD_DB_POOL:-$((threads * 2 + $1))}
    shift
    # shellcheck disable=SC2086 # CPX_BENCH_CPXD_ARGS is a list of flags
    "$BIN/cpxd" --port 0 --port-file "$var/port" --database-url "$url" \
        --admin-database-url "$admin_url" --log-level warn \
        --tls-cert "$var/tls/cert.pem" --tls-key "$var/tls/key.pem" \
        --operator-key "$var/operator.key" --exchange-key "$var/exchange.key" \
        --ledger-origin $origin --threads "$threads" --db-pool "$db_pool" --rate-limit 0 \
        "$@" ${CPX_BENCH_CPXD_ARGS:-} >"$var/cpxd.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 150); do
        [ -s "$var/port" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "$bench: cpxd exited at start" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$var/port" ] || { echo "$bench: cpxd did not start" >&2; exit 1; }
    base="https://127.0.0.1:$(cat "$var/port")"
}

# Without the endpoints there is nothing to measure: say so instead of printing numbers. (An
# unsigned POST to an existing route is refused with 401 or 415, to a missing one with 404.)
bench_route() {
    code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$var/tls/cert.pem" -X POST \
        -H 'Content-Type: application/json' --data '{}' "$base$1" || true)
    if [ "$code" = 404 ] || [ "$code" = 000 ]; then
        echo "$bench: this cpxd has no POST $2 (answered $code): $3; nothing to measure" >&2
        exit 1
    fi
}

# What cpxd complained about while under load (at --log-level warn), for the reader to judge.
bench_cpxd_log() {
    lines=$(wc -l <"$var/cpxd.log")
    echo "$(echo "$bench" | tr - ' ') cpxd_log warn_or_error_lines=$lines" >&2
    [ "$lines" -eq 0 ] || cut -d' ' -f2- "$var/cpxd.log" | sort | uniq -c | sort -rn | head -n 5 >&2
}
