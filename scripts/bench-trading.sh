#!/bin/sh
# `make bench-trading`: signed orders over HTTPS against a real cpxd, next to the two physical
# limits of an order. A private PostgreSQL cluster in a temporary folder (fsync on, as in
# production) and a private cpxd on it (the administrator migrates, as `make run` does; TLS with a
# self-signed certificate the load generator verifies: scripts/bench-env.sh sets both up); then
# bin/cpx-bench-trading measures the machine's Ed25519 verification rate and a single-row commit
# rate on that cluster, registers one provider and N buyers, funds them, lists capacity and drives
# signed POST /v1/orders from N kept-alive clients for D seconds. Everything is removed afterwards. Prints `bench trading ...`
# lines, the last of which is
#   bench trading orders_per_s=<x> p50_ms=<a> p99_ms=<b> ed25519_verify_per_s=<v> pg_commit_per_s=<c>
#
# Settings (environment; `make bench-trading CPX_BENCH_CLIENTS=128` passes them through):
#   CPX_BENCH_CLIENTS (64), CPX_BENCH_SECONDS (10), CPX_BENCH_WARMUP (1),
#   CPX_BENCH_LOADGEN_THREADS (1): see bench/bench_trading.c; extra arguments go to it as flags.
#   CPX_BENCH_CPXD_THREADS (2 x cores), CPX_BENCH_CPXD_DB_POOL (2 x threads): cpxd's --threads
#   and --db-pool; CPX_BENCH_CPXD_ARGS: further cpxd flags.
# cpxd runs with --dispatchers 0: the listings' endpoints are made up, and delivering to them
# (make bench-delivery measures delivery) would compete with the trading path for the two cores
# and PostgreSQL. CPX_BENCH_CPXD_ARGS="--dispatchers 2" measures both together.
# shellcheck source=scripts/bench-env.sh
. "$(dirname "$0")/bench-env.sh"

bench_cluster operator exchange
bench_cpxd 0 --dispatchers 0
bench_route /v1/orders /v1/orders \
    "the trading endpoints of docs/trading.md are not in server/routes.c yet"

echo "bench trading cpxd threads=$threads db_pool=$db_pool rate_limit=off cores=$cores" \
    "tls=verified(own self-signed certificate) pg=private(fsync on)"
"$BIN/cpx-bench-trading" --url "$base" --cacert "$var/tls/cert.pem" \
    --operator-key "$var/operator.key" --pg-url "$admin_url" "$@"
bench_cpxd_log
