#!/bin/sh
# `make demo`: the exchange's whole life cycle in about a minute, on `make run`'s set-up ($CPX_VAR:
# its PostgreSQL cluster, certificate and keys). Two provider centres in different regions and a
# buyer register; the providers list capacity and run bin/cpx-provider endpoints; the buyer's
# order matches across both regions; cpxd dispatches each agreement to its provider, the providers
# run the (simulated) jobs and report usage, cpxd bills it, takes commission and settles; then
# cpx-audit verifies the ledger and the exchange's books, and a summary says what happened.
#
# cpxd runs with short windows (disputes 10 s, job deadline 120 s) so that everything settles
# while you watch, and keeps running afterwards (pid in $CPX_VAR/cpxd.pid) so that you can look
# around with bin/cpx and bin/cpx-audit; `make stop` stops it and the cluster. `make run` must not
# be running meanwhile (one exchange per database).
set -eu
cd "$(dirname "$0")/.."
export CPX_VAR="${CPX_VAR:-var}"
export CPX_PORT="${CPX_PORT:-8443}"
BIN=${BIN:-bin}
demo=$CPX_VAR/demo
P1=${CPX_DEMO_PORT1:-9441}
P2=${CPX_DEMO_PORT2:-9442}

scripts/stop.sh --cpxd-only # a cpxd an earlier demo left running
. scripts/setup.sh
mkdir -p "$demo"

say() { printf '\n== %s\n' "$*"; }
fail() {
    echo "demo: $*" >&2
    for f in "$CPX_VAR/demo-cpxd.log" "$demo"/*.log; do
        [ -f "$f" ] && { echo "-- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

providers=
cleanup() { [ -n "$providers" ] && kill $providers 2>/dev/null; true; }
trap cleanup EXIT INT TERM

say "starting cpxd on https://127.0.0.1:$CPX_PORT (log: $CPX_VAR/demo-cpxd.log)"
rm -f "$CPX_VAR/cpxd.port"
"$BIN/cpxd" --port "$CPX_PORT" --port-file "$CPX_VAR/cpxd.port" \
    --tls-cert "$CPX_VAR/tls/cert.pem" --tls-key "$CPX_VAR/tls/key.pem" \
    --operator-key "$CPX_VAR/operator.key" --exchange-key "$CPX_VAR/exchange.key" \
    --delivery-ca "$CPX_VAR/tls/cert.pem" --dispute-window 10 --delivery-window 120 \
    --usage-grace 30 >"$CPX_VAR/demo-cpxd.log" 2>&1 &
echo $! >"$CPX_VAR/cpxd.pid"
for _ in $(seq 1 100); do
    [ -s "$CPX_VAR/cpxd.port" ] && break
    kill -0 "$(cat "$CPX_VAR/cpxd.pid")" 2>/dev/null || fail "cpxd exited at start"
    sleep 0.1
done
[ -s "$CPX_VAR/cpxd.port" ] || fail "cpxd did not start"

export CPX_URL="https://127.0.0.1:$CPX_PORT" CPX_CACERT="$CPX_VAR/tls/cert.pem"
cpx() { "$BIN/cpx" "$@"; }
op="--key $CPX_VAR/operator.key"
run=$(date +%s)

# What an earlier demo left on the book (it may have stopped half-way) must not meet this one's
# order: its parties take their listings and orders off, then their keys go.
withdraw() { # key file
    for id in $(cpx --key "$1" --json listings --status open 2>/dev/null | grep -o '"lst_[0-9]*"' | tr -d '"' | sort -u); do
        cpx --key "$1" delist "$id" >/dev/null 2>&1 || true
    done
    for id in $(cpx --key "$1" --json orders --status open 2>/dev/null | grep -o '"ord_[0-9]*"' | tr -d '"' | sort -u); do
        cpx --key "$1" cancel "$id" >/dev/null 2>&1 || true
    done
}
for key in "$demo"/*.key; do [ -f "$key" ] && withdraw "$key"; done
rm -rf "$demo"
mkdir -p "$demo"

say "two provider centres and a buyer register; the operator approves them"
for who in xihe wulan acme; do cpx keygen --out "$demo/$who.key" >/dev/null; done
XIHE=$(cpx --key "$demo/xihe.key" register --name "Xihe Compute Centre (Gansu)" \
    --reg-no "DEMO-XIHE-$run" --roles provider 2>/dev/null)
WULAN=$(cpx --key "$demo/wulan.key" register --name "Wulanchabu AI Park (Inner Mongolia)" \
    --reg-no "DEMO-WULAN-$run" --roles provider 2>/dev/null)
ACME=$(cpx --key "$demo/acme.key" register --name "Acme AI Lab" --reg-no "DEMO-ACME-$run" \
    --roles buyer 2>/dev/null)
for id in $XIHE $WULAN $ACME; do cpx $op admin approve "$id" >/dev/null; done
echo "Xihe $XIHE, Wulanchabu $WULAN, Acme $ACME"
cpx $op deposit "$ACME" 2000 >/dev/null 2>&1
echo "the operator deposits 2000 CNY for Acme"

say "the providers start their job endpoints (bin/cpx-provider) and list capacity"
start_provider() { # who port
    "$BIN/cpx-provider" --key "$demo/$1.key" --listen "127.0.0.1:$2" \
        --cert "$CPX_VAR/tls/cert.pem" --tls-key "$CPX_VAR/tls/key.pem" \
        --exchange "$CPX_URL" --cacert "$CPX_CACERT" --exchange-key "$CPX_VAR/exchange.vkey" \
        --report-every 4 --simulate-seconds 12 --state "$demo/$1.state" >"$demo/provider-$1.log" 2>&1 &
    providers="$providers $!"
}
start_provider xihe "$P1"
start_provider wulan "$P2"
L1=$(cpx --key "$demo/xihe.key" list-capacity --vendor nvidia --model H100-SXM --type gpu \
    --devices 4 --precision bf16:989:11 --memory-gb 80 --region gansu \
    --endpoint "https://127.0.0.1:$P1/jobs" 2>/dev/null)
L2=$(cpx --key "$demo/wulan.key" list-capacity --vendor huawei --model Ascend-910B --type npu \
    --devices 4 --precision bf16:640:13 --memory-gb 64 --region inner-mongolia \
    --endpoint "https://127.0.0.1:$P2/jobs" 2>/dev/null)
echo "Xihe lists 4 H100 in gansu at 11 CNY per PFLOPS-hour ($L1)"
echo "Wulanchabu lists 4 Ascend 910B in inner-mongolia at 13 ($L2)"

say "Acme orders 6 devices for one hour in either region, at 14 at most"
printf '{"image":"registry.acme.example/finetune:2.1","command":"python finetune.py"}\n' >"$demo/job.json"
ORDER=$(cpx --key "$demo/acme.key" order --client-order-id "demo-$run" --precision bf16 \
    --devices 6 --hours 1 --regions gansu,inner-mongolia --limit 14 --max-tflops 989 \
    --job "$demo/job.json" 2>/dev/null)
AGREEMENTS=$(cpx --key "$demo/acme.key" --json orders "$ORDER" |
    grep -o '"agr_[0-9]*"' | tr -d '"' | sort -u | tr '\n' ' ')
[ -n "$AGREEMENTS" ] || fail "the order made no agreement"
echo "order $ORDER matched: $AGREEMENTS"

status_of() { cpx --key "$demo/acme.key" --json agreements "$1" | grep -o '"status": *"[a-z_]*"' | grep -o '[a-z_]*"$' | tr -d '"'; }
wait_for() { # what seconds command...
    what=$1 secs=$2
    shift 2
    i=0
    while ! "$@"; do
        i=$((i + 1))
        [ "$i" -le "$secs" ] || fail "$what did not happen within $secs s"
        sleep 1 # (an identical signed request in the same second is refused as a replay)
    done
}
all_status() { # status
    for a in $AGREEMENTS; do [ "$(status_of "$a")" = "$1" ] || return 1; done
}

say "cpxd dispatches each agreement to its provider, which accepts it"
wait_for "delivery" 60 all_status active
for a in $AGREEMENTS; do cpx --key "$demo/acme.key" deliveries "$a" | sed 's/^/  /'; done

say "the providers run the jobs and report usage; each report is a bill (about 15 s)"
wait_for "the end of the jobs" 90 all_status completed
cpx --key "$demo/acme.key" bills

say "the bills settle once their 10 s dispute window has passed"
no_open_bills() {
    cpx --key "$demo/acme.key" --json bills >"$demo/bills.json" &&
        ! grep -q '"status": *"open"' "$demo/bills.json"
}
wait_for "settlement" 60 no_open_bills
sleep 1 # the same signed request twice in one second is refused as a replay
cpx --key "$demo/acme.key" bills

say "where the money is now"
for who in acme xihe wulan; do
    printf '%s: ' "$who"
    cpx --key "$demo/$who.key" balance | tr -s ' ' | tr '\n' ' '
    echo
done

say "the providers take what is left of their capacity off the book"
withdraw "$demo/xihe.key"
withdraw "$demo/wulan.key"
echo "done"

say "a regulator audits: the ledger, every bill, commission and balance re-derived from it, and the exchange's books"
set +e
"$BIN/cpx-audit" verify --url "$CPX_URL" --cacert "$CPX_CACERT" --exchange-key "$CPX_VAR/exchange.vkey"
audit=$?
set -e

say "summary"
echo "order $ORDER (6 devices, 1 hour, limit 14) matched in two regions: $AGREEMENTS"
echo "both jobs were delivered, run and metered; $(grep -c '"id": *"bil_' "$demo/bills.json") bills were made and settled"
echo "cpxd keeps running (pid $(cat "$CPX_VAR/cpxd.pid"), log $CPX_VAR/demo-cpxd.log); keys are in $demo/"
echo "look around:  bin/cpx --key $demo/acme.key statement   |   stop it:  make stop"
if [ "$audit" -eq 0 ]; then
    echo "audit: PASSED — the ledger verifies and the exchange's books agree with it"
else
    echo "audit: FAILED (cpx-audit exit status $audit)"
fi
exit "$audit"
