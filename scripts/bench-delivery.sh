#!/bin/sh
# `make bench-delivery`: the delivery and billing path against a real cpxd (docs/delivery.md §7).
# A private PostgreSQL cluster in a temporary folder (fsync on, as in production) and a private
# cpxd on it, set up as for bench-trading.sh (scripts/bench-env.sh: TLS with a self-signed
# certificate, --rate-limit 0) and, for delivery, with --delivery-ca that certificate (the load
# generator's provider endpoint serves with it), --dispute-window 0 (bills settle as they are
# made) and --dispatchers N. Then
# bin/cpx-bench-delivery measures the machine's Ed25519 verification and single-row commit rates,
# registers providers and buyers, runs the providers' HTTPS endpoint, places crossing orders and
# measures how fast agreements are dispatched and accepted, then how fast usage reports become
# settled bills. Everything is removed afterwards. Prints `bench delivery ...` lines, the last of
# which is
#   bench delivery accepted_per_s=<a> accept_p50_ms=<b> accept_p99_ms=<c> usage_per_s=<u>
#     usage_p50_ms=<d> usage_p99_ms=<e> ed25519_verify_per_s=<v> pg_commit_per_s=<c>
#
# Settings (environment; `make bench-delivery CPX_BENCH_DISPATCHERS=8` passes them through):
#   CPX_BENCH_DISPATCHERS (2, cpxd's default): cpxd's --dispatchers.
#   CPX_BENCH_PROVIDERS (4), CPX_BENCH_BUYERS (8), CPX_BENCH_AGREEMENTS (600),
#   CPX_BENCH_PACED_FRACTION (0.5), CPX_BENCH_PACED_RATE (0: the fraction),
#   CPX_BENCH_PACED_SECONDS (5), CPX_BENCH_USAGE_CLIENTS (16),
#   CPX_BENCH_USAGE_SECONDS (5), CPX_BENCH_WARMUP (1), CPX_BENCH_VERIFY_ENVELOPES (1),
#   CPX_BENCH_IDEMPOTENCY (1): see bench/bench_delivery.c; extra arguments go to it as flags.
#   CPX_BENCH_CPXD_THREADS (2 x cores), CPX_BENCH_CPXD_DB_POOL (2 x threads + dispatchers):
#   cpxd's --threads and --db-pool; CPX_BENCH_CPXD_ARGS: further cpxd flags (e.g.
#   "--log-level debug" to see each batch's timings in the log, which is then summarised).
# shellcheck source=scripts/bench-env.sh
. "$(dirname "$0")/bench-env.sh"

dispatchers=${CPX_BENCH_DISPATCHERS:-2}
bench_cluster operator exchange
bench_cpxd "$dispatchers" --delivery-ca "$var/tls/cert.pem" --dispute-window 0 \
    --dispatchers "$dispatchers"
bench_route /v1/agreements/agr_000000000001/usage '/v1/agreements/{id}/usage' \
    "delivery (docs/delivery.md) is not in server/routes.c"

echo "bench delivery cpxd threads=$threads db_pool=$db_pool dispatchers=$dispatchers" \
    "rate_limit=off dispute_window=0 cores=$cores tls=verified(own self-signed certificate," \
    "also the endpoint's) pg=private(fsync on)"
{
    "$BIN/cpx-bench-delivery" --url "$base" --cacert "$var/tls/cert.pem" \
        --tls-key "$var/tls/key.pem" --operator-key "$var/operator.key" \
        --exchange-key "$var/exchange.key" --pg-url "$admin_url" "$@" || echo $? >"$var/rc"
} | tee "$var/bench.out"

# What cpxd logged (at --log-level warn: only complaints), for the reader to judge; with
# --log-level debug in CPX_BENCH_CPXD_ARGS, the sequencer's batches in each phase the benchmark
# printed (its `phase` lines use the log's time format) instead. Both on stderr, so that the last
# line on stdout stays the result.
if grep -q 'sequencer: batch of' "$var/cpxd.log"; then
    awk 'FNR == NR {
            if ($3 == "phase") {
                name[++np] = $4; from[np] = substr($5, 6); to[np] = substr($6, 4)
            }
            next
        }
        /sequencer: batch of/ {
            for (k = 1; k <= np; k++)
                if ($1 >= from[k] && $1 < to[k])
                    break
            if (k > np)
                next
            for (i = 1; i <= NF; i++) {
                if ($i == "of") n[k] += $(i + 1)
                if ($i == "check") c[k] += $(i + 1)
                if ($i == "apply") a[k] += $(i + 1)
                if ($i == "write") w[k] += $(i + 1)
                if ($i == "commit") m[k] += $(i + 1)
            }
            b[k]++
        }
        END {
            for (k = 1; k <= np; k++)
                if (b[k])
                    printf "bench delivery cpxd_batches phase=%s batches=%d " \
                        "commands_per_batch=%.1f check_ms=%.2f apply_ms=%.2f write_ms=%.2f " \
                        "commit_ms=%.2f (means)\n", name[k], b[k], n[k] / b[k], c[k] / b[k],
                        a[k] / b[k], w[k] / b[k], m[k] / b[k]
        }' "$var/bench.out" "$var/cpxd.log" >&2
else
    bench_cpxd_log
fi
[ ! -s "$var/rc" ] || exit "$(cat "$var/rc")"
