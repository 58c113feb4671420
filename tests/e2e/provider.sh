#!/bin/sh
# bin/cpx-provider against a real cpxd (docs/provider.md): a provider lists capacity at its
# cpx-provider endpoint, a buyer's order matches it, cpxd delivers the job and the provider
# accepts it, runs it (simulated, 3 s) and reports its usage until a final report completes the
# agreement early; the bills add up to what ran. Then a restarted provider keeps the finished job
# finished. Runs under `make test` (its throwaway cluster and certificate).
set -eu
BIN=${CPX_TEST_BIN:-bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/cpx-provider-e2e.XXXXXX")
db=cpx_provider_$$
admin="postgresql:///postgres?host=$CPX_TEST_PG_HOST&user=cpx_admin"
cert=$CPX_TEST_VAR/tls/cert.pem
tls_key=$CPX_TEST_VAR/tls/key.pem
pids=
cleanup() {
    set +e # (a wait for a process killed by the signal returns non-zero)
    for p in $pids; do kill -TERM "$p" 2>/dev/null; done
    for p in $pids; do wait "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$work"/*.log; do echo "-- $f"; tail -n 30 "$f"; done
    exit 1
}
# wait_for SECONDS WHAT COMMAND...: until the command succeeds, trying once a second (an
# identical signed request in the same second is refused as a replay).
wait_for() {
    secs=$1 what=$2
    shift 2
    i=0
    until "$@"; do
        i=$((i + 1))
        [ "$i" -le "$secs" ] || fail "$what did not happen within $secs s"
        sleep 1
    done
}

psql -X -q "$admin" -c "CREATE DATABASE $db OWNER cpx"
"$BIN/cpx" keygen --out "$work/op.key" >/dev/null
"$BIN/cpx" keygen --out "$work/exchange.key" >/dev/null
"$BIN/cpxd" --exchange-key "$work/exchange.key" --ledger-origin provider.test/ledger \
    --print-verifier-key >"$work/exchange.vkey"
"$BIN/cpxd" --port 0 --port-file "$work/port" --log-level warn \
    --database-url "postgresql:///$db?host=$CPX_TEST_PG_HOST&user=cpx" \
    --tls-cert "$cert" --tls-key "$tls_key" --delivery-ca "$cert" --dispute-window 0 \
    --operator-key "$work/op.key" --exchange-key "$work/exchange.key" \
    --ledger-origin provider.test/ledger >"$work/cpxd.log" 2>&1 &
pids="$pids $!"
wait_for 20 "cpxd's start" test -s "$work/port"
export CPX_URL="https://127.0.0.1:$(cat "$work/port")" CPX_CACERT="$cert"
cpx() { "$BIN/cpx" "$@"; }

# A provider centre and a buyer, approved; the buyer gets money.
cpx keygen --out "$work/provider.key" >/dev/null
cpx keygen --out "$work/buyer.key" >/dev/null
PROVIDER=$(cpx --key "$work/provider.key" register --name "Provider" --reg-no "PRV-$$" \
    --roles provider 2>/dev/null)
BUYER=$(cpx --key "$work/buyer.key" register --name "Buyer" --reg-no "BUY-$$" --roles buyer \
    2>/dev/null)
cpx --key "$work/op.key" admin approve "$PROVIDER" >/dev/null
cpx --key "$work/op.key" admin approve "$BUYER" >/dev/null
cpx --key "$work/op.key" deposit "$BUYER" 1000 >/dev/null 2>&1

# start_provider LOG: its endpoint, on a port it picks; sets $port and $provider_pid.
start_provider() {
    rm -f "$work/listening"
    "$BIN/cpx-provider" --key "$work/provider.key" --listen 127.0.0.1:0 --cert "$cert" \
        --tls-key "$tls_key" --exchange "$CPX_URL" --cacert "$cert" \
        --exchange-key "$work/exchange.vkey" --report-every 1 --simulate-seconds 3 \
        --state "$work/provider.state" >"$work/listening" 2>>"$work/$1" &
    provider_pid=$!
    pids="$pids $provider_pid"
    wait_for 10 "cpx-provider's start" grep -qs listening "$work/listening"
    port=$(sed -n 's/^listening on https:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$work/listening")
}
stop_provider() {
    kill -TERM "$provider_pid"
    wait "$provider_pid" || fail "cpx-provider exited $? on SIGTERM"
}
start_provider provider.log

cpx --key "$work/provider.key" list-capacity --vendor nvidia --model H100-SXM --type gpu \
    --devices 2 --precision bf16:989:11 --memory-gb 80 --region gansu \
    --endpoint "https://127.0.0.1:$port/cpx/jobs" >/dev/null 2>&1 || fail "list-capacity"
printf 'python train.py\n' >"$work/job.txt"
ORDER=$(cpx --key "$work/buyer.key" order --precision bf16 --devices 2 --hours 1 \
    --regions gansu --limit 12 --job "$work/job.txt" 2>"$work/order.log") || fail "order"
AGR=$(cpx --key "$work/buyer.key" --json orders "$ORDER" | grep -o '"agr_[0-9]*"' | tr -d '"' |
    head -n 1)
[ -n "$AGR" ] || fail "the order made no agreement"

status() { cpx --key "$work/buyer.key" --json agreements "$AGR" | tr -d ' \n' |
    sed -n 's/.*"status":"\([a-z_]*\)".*/\1/p'; }
is() { [ "$(status)" = "$1" ]; }
wait_for 30 "the acceptance" is active
wait_for 30 "the final report" is completed

log=$work/provider.log
grep -q " accepted .*agreement=$AGR" "$log" || fail "no accepted line"
grep -q " finished agreement=$AGR: the job is done" "$log" || fail "not finished as done"
[ "$(grep -c " started agreement=$AGR" "$log")" -eq 1 ] || fail "the job started more than once"

# The bills: one per report, the last one final; together 2 devices × about 3 s.
cpx --key "$work/buyer.key" --json bills --agreement "$AGR" >"$work/bills.json"
reports=$(grep -c " reported agreement=$AGR" "$log")
bills=$(grep -o '"id": *"bil_' "$work/bills.json" | wc -l)
[ "$bills" -eq "$reports" ] || fail "$reports reports but $bills bills"
used=$(sed -n 's/.*device_seconds=\([0-9]*\).*/\1/p' "$log" | awk '{ s += $1 } END { print s }')
[ "$used" -ge 4 ] && [ "$used" -le 6 ] || fail "metered $used device-seconds for 2 devices × 3 s"
grep -q '"final": *true' "$work/bills.json" || fail "no final bill"

# Restarted with its state, the provider knows the job is finished and does not run it again.
stop_provider
start_provider provider-again.log
cpx --key "$work/buyer.key" deliveries "$AGR" >"$work/deliveries.txt" || fail "deliveries"
grep -q accepted "$work/deliveries.txt" || fail "the delivery is not accepted"
grep -q " resumed " "$work/provider-again.log" && fail "a finished job was resumed"
stop_provider
echo "ok: $AGR delivered, run and metered ($used device-seconds in $reports reports)"
