#!/bin/sh
# `make bench-trading`: signed orders over HTTPS against a real cpxd, next to the two physical
# limits of an order. A private PostgreSQL cluster in a temporary folder (fsync on, as in
# production) and a private cpxd on it (the administrator migrates, as `make run` does; TLS with a
# self-signed certificate the load generator verifies); then bin/cpx-bench-trading measures the
# machine's Ed25519 verification rate and a single-row commit rate on that cluster, registers one
# provider and N buyers, funds them, lists capacity and drives signed POST /v1/orders from N
# kept-alive clients for D seconds. Everything is removed afterwards. Prints `bench trading ...`
# lines, the last of which is
#   bench trading orders_per_s=<x> p50_ms=<a> p99_ms=<b> ed25519_verify_per_s=<v> pg_commit_per_s=<c>
#
# Settings (environment; `make bench-trading CPX_BENCH_CLIENTS=128` passes them through):
#   CPX_BENCH_CLIENTS (64), CPX_BENCH_SECONDS (10), CPX_BENCH_WARMUP (1),
#   CPX_BENCH_LOADGEN_THREADS (1): see bench/bench_trading.c; extra arguments go to it as flags.
#   CPX_BENCH_CPXD_THREADS (2 x cores), CPX_BENCH_CPXD_DB_POOL (2 x threads): cpxd's --threads
#   and --db-pool; CPX_BENCH_CPXD_ARGS: further cpxd flags.
set -eu
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
var=$(mktemp -d "${TMPDIR:-/tmp}/cpx-bench.XXXXXX")
chmod 755 "$var"
pid=
cleanup() {
    rc=$?
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    if [ "$rc" -ne 0 ] && [ -s "$var/cpxd.log" ]; then
        echo "bench-trading: the last lines cpxd logged:" >&2
        tail -n 20 "$var/cpxd.log" >&2
    fi
    CPX_VAR=$var scripts/pg.sh destroy >/dev/null 2>&1 || true
    rm -rf "$var"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cores=$(getconf _NPROCESSORS_ONLN)
threads=${CPX_BENCH_CPXD_THREADS:-$((cores * 2))}
db_pool=${CPX_BENCH_CPXD_DB_POOL:-$((threads * 2))}

CPX_VAR=$var scripts/pg.sh start >/dev/null
CPX_VAR=$var scripts/tls.sh >/dev/null
url=$(CPX_VAR=$var scripts/pg.sh url)
admin_url=$(CPX_VAR=$var scripts/pg.sh admin-url cpx)
origin=bench.cpx/ledger
"$BIN/cpx" keygen --out "$var/operator.key" >/dev/null
"$BIN/cpx" keygen --out "$var/exchange.key" >/dev/null

# shellcheck disable=SC2086 # CPX_BENCH_CPXD_ARGS is a list of flags
"$BIN/cpxd" --port 0 --port-file "$var/port" --database-url "$url" \
    --admin-database-url "$admin_url" --log-level warn \
    --tls-cert "$var/tls/cert.pem" --tls-key "$var/tls/key.pem" \
    --operator-key "$var/operator.key" --exchange-key "$var/exchange.key" \
    --ledger-origin $origin --threads "$threads" --db-pool "$db_pool" --rate-limit 0 \
    ${CPX_BENCH_CPXD_ARGS:-} >"$var/cpxd.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
    [ -s "$var/port" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "bench-trading: cpxd exited at start" >&2; exit 1; }
    sleep 0.1
done
[ -s "$var/port" ] || { echo "bench-trading: cpxd did not start" >&2; exit 1; }
base="https://127.0.0.1:$(cat "$var/port")"

# Without the trading endpoints there is nothing to measure: say so instead of printing numbers.
# (An unsigned POST to an existing route is refused with 401 or 415, to a missing one with 404.)
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$var/tls/cert.pem" -X POST \
    -H 'Content-Type: application/json' --data '{}' "$base/v1/orders" || true)
if [ "$code" = 404 ] || [ "$code" = 000 ]; then
    echo "bench-trading: this cpxd has no POST /v1/orders (answered $code): the trading" \
        "endpoints of docs/trading.md are not in server/routes.c yet; nothing to measure" >&2
    exit 1
fi

echo "bench trading cpxd threads=$threads db_pool=$db_pool rate_limit=off cores=$cores" \
    "tls=verified(own self-signed certificate) pg=private(fsync on)"
"$BIN/cpx-bench-trading" --url "$base" --cacert "$var/tls/cert.pem" \
    --operator-key "$var/operator.key" --pg-url "$admin_url" "$@"

# What cpxd complained about while under load (at --log-level warn), for the reader to judge.
lines=$(wc -l <"$var/cpxd.log")
echo "bench trading cpxd_log warn_or_error_lines=$lines" >&2
[ "$lines" -eq 0 ] || cut -d' ' -f2- "$var/cpxd.log" | sort | uniq -c | sort -rn | head -n 5 >&2
