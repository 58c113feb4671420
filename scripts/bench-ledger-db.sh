#!/bin/sh
# `make bench-ledger-db`: the ledger on a real PostgreSQL, end to end. A private cluster in a
# temporary folder (fsync on, as in production); the ledger writer's benchmark appends order-sized
# records in batches of 1 to 1000 records per transaction; then a real cpxd serves what it wrote,
# and the regulator's side is timed over it: cpx-audit against the live API, the export download,
# and cpx-audit on the export file. Everything is removed afterwards (scripts/bench-env.sh sets
# up and removes the cluster). Prints `bench ...` lines.
# shellcheck source=scripts/bench-env.sh
. "$(dirname "$0")/bench-env.sh"

bench_cluster exchange
CPX_BENCH_DB_URL=$url CPX_BENCH_EXCHANGE_KEY=$var/exchange.key "$BIN/cpx-bench-ledger_db"

"$BIN/cpxd" --exchange-key "$var/exchange.key" --ledger-origin $origin --print-verifier-key \
    >"$var/exchange.vkey"
"$BIN/cpxd" --port 0 --port-file "$var/port" --database-url "$url" --log-level warn \
    --tls-cert "$var/tls/cert.pem" --tls-key "$var/tls/key.pem" \
    --exchange-key "$var/exchange.key" --ledger-origin $origin &
pid=$!
for _ in $(seq 1 100); do [ -s "$var/port" ] && break; sleep 0.1; done
[ -s "$var/port" ] || { echo "cpxd did not start"; exit 1; }
base="https://127.0.0.1:$(cat "$var/port")"

now() { date +%s.%N; }
# report FILE: "records=N ok=BOOL" from a cpx-audit report
report() {
    printf 'records=%s ok=%s' "$(sed -n 's/^  "records_total": \([0-9]*\),$/\1/p' "$1")" \
        "$(sed -n 's/^  "ok": \([a-z]*\),$/\1/p' "$1")"
}
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

t0=$(now)
"$BIN/cpx-audit" verify --url "$base" --cacert "$var/tls/cert.pem" \
    --exchange-key "$var/exchange.vkey" --quiet --report "$var/url.json" || true
t1=$(now)
n=$(sed -n 's/^  "records_total": \([0-9]*\),$/\1/p' "$var/url.json")
echo "bench ledger_db audit_url $(report "$var/url.json") seconds=$(secs "$t0" "$t1") per_s=$(rate "$n" "$t0" "$t1")"

t0=$(now)
curl -sf --cacert "$var/tls/cert.pem" "$base/v1/ledger/export" >"$var/export.ndjson"
t1=$(now)
echo "bench ledger_db export records=$n bytes=$(wc -c <"$var/export.ndjson") seconds=$(secs "$t0" "$t1") per_s=$(rate "$n" "$t0" "$t1")"

t0=$(now)
"$BIN/cpx-audit" verify --file "$var/export.ndjson" --exchange-key "$var/exchange.vkey" \
    --quiet --report "$var/file.json" || true
t1=$(now)
echo "bench ledger_db audit_file $(report "$var/file.json") seconds=$(secs "$t0" "$t1") per_s=$(rate "$n" "$t0" "$t1")"
