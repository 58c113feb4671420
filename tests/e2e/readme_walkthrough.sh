#!/bin/sh
# The README's walkthrough, word for word, against a real `make run` set-up (scripts/run.sh with
# its own private PostgreSQL cluster, certificate and operator key), then a restart that must keep
# the data. Every ```sh walkthrough block of README.md runs in order, in a fresh folder that has
# the checkout's bin/ and its own var/, as a newcomer's terminal would.
set -eu
repo=$(pwd)
BIN=${CPX_TEST_BIN:-bin}
case "$BIN" in /*) ;; *) BIN=$repo/$BIN ;; esac

work=$(mktemp -d "${TMPDIR:-/tmp}/cpx-walk.XXXXXX")
chmod 755 "$work"
run_pid=
cleanup() {
    [ -n "$run_pid" ] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
    CPX_VAR=$work/var "$repo/scripts/pg.sh" destroy >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
ln -s "$BIN" "$work/bin"
export CPX_VAR="$work/var"

# `make run` in "the first terminal", on a free port.
start_exchange() {
    rm -f "$CPX_VAR/cpxd.port"
    CPX_PORT=0 BIN="$BIN" "$repo/scripts/run.sh" >>"$work/run.log" 2>&1 &
    run_pid=$!
    for _ in $(seq 1 300); do
        [ -s "$CPX_VAR/cpxd.port" ] && break
        kill -0 "$run_pid" 2>/dev/null || { cat "$work/run.log"; echo "make run exited"; exit 1; }
        sleep 0.1
    done
    [ -s "$CPX_VAR/cpxd.port" ] || { cat "$work/run.log"; echo "cpxd did not start"; exit 1; }
    CPX_PORT=$(cat "$CPX_VAR/cpxd.port")
    export CPX_PORT
}

stop_exchange() {
    kill -TERM "$run_pid"
    wait "$run_pid" || { echo "make run did not stop cleanly"; exit 1; }
    run_pid=
    if CPX_VAR=$work/var "$repo/scripts/pg.sh" status | grep -q running; then
        echo "the private cluster is still running after make run stopped"
        exit 1
    fi
}

start_exchange

# The walkthrough blocks, with the documented port replaced by the one this test got.
awk '/^```sh walkthrough$/ { on = 1; next } /^```$/ { on = 0 } on' "$repo/README.md" |
    sed "s/8443/$CPX_PORT/g" >"$work/walkthrough.sh"
[ -s "$work/walkthrough.sh" ] || { echo "no walkthrough blocks in README.md"; exit 1; }
# CPX_WALK_OUT=FILE keeps the walkthrough's output (to refresh the README's examples).
(cd "$work" && sh -eux walkthrough.sh) >"$work/out.txt" 2>&1 &&
    cp "$work/out.txt" "${CPX_WALK_OUT:-/dev/null}" || {
    cat "$work/out.txt"
    echo "the README walkthrough failed"
    exit 1
}
cat "$work/out.txt"
grep -q '{"status":"ok","database":"ok"}' "$work/out.txt"
grep -q '^status  *approved$' "$work/out.txt" || { echo "Acme was not approved"; exit 1; }
grep -q '^name  *Acme AI Lab$' "$work/out.txt"
grep -q '^verified    signed by cpx.local/ledger$' "$work/out.txt" ||
    { echo "the checkpoint was not verified"; exit 1; }
grep -q '^record 3 is in the ledger of 4 records' "$work/out.txt" ||
    { echo "the receipt was not verified"; exit 1; }
[ "$(grep -c '"ok": true' "$work/out.txt")" -ge 2 ] ||
    { echo "cpx-audit did not pass the honest ledger, before and after trading"; exit 1; }
grep -q '^cpx-audit exit status 1$' "$work/out.txt" ||
    { echo "cpx-audit did not fail the tampered ledger"; exit 1; }
grep -q '"reason": "leaf_mismatch"' "$work/out.txt" ||
    { echo "cpx-audit did not name the changed record"; exit 1; }
# The trading story: an order across two regions fills in one, a refused order exits 1 with the
# exchange's error, and cancel returns the hold while the escrow stays.
grep -q '^filled  *4 devices$' "$work/out.txt" || { echo "the order did not fill in yangtze"; exit 1; }
grep -q '^hold  *891.8802 CNY, 297.2934 CNY of it still held$' "$work/out.txt" ||
    { echo "the order's hold is not what the README says"; exit 1; }
grep -q '(422 insufficient_funds)$' "$work/out.txt" && grep -q '^cpx exit status 1$' "$work/out.txt" ||
    { echo "the order without the money was not refused"; exit 1; }
grep -q '^bf16  *yangtze  *15 x 2  *-  *12 ' "$work/out.txt" || { echo "markets does not show the trade"; exit 1; }
grep -q '^status  *cancelled (user)$' "$work/out.txt" || { echo "the order was not cancelled"; exit 1; }
grep -q '^available  *99524.33056 CNY$' "$work/out.txt" || { echo "the hold did not come back"; exit 1; }
# The delivery story: the job is delivered and accepted at once, run, metered into bills, and the
# disputed bill is refunded.
grep -q '^1  .*  200  *accepted  *-$' "$work/out.txt" || { echo "the job was not accepted"; exit 1; }
grep -q '^bil_000000000001  agr_000000000002 .* open ' "$work/out.txt" ||
    { echo "the usage was not billed"; exit 1; }
grep -q '^status  *disputed$' "$work/out.txt" && grep -q '^status  *refunded$' "$work/out.txt" ||
    { echo "the disputed bill was not refunded"; exit 1; }
grep -q "books: .* 0 differences" "$work/out.txt" ||
    { echo "cpx-audit did not re-derive the books"; exit 1; }

# Running it a second time reuses var/: the data survives.
cd "$work"
bin/cpx --key acme.key balance >balance-before.txt
stop_exchange
start_exchange
bin/cpx --key acme.key identity show | grep -q '^status  *approved$' ||
    { echo "data did not survive a restart of make run"; exit 1; }
bin/cpx --key acme.key balance | cmp -s - balance-before.txt ||
    { echo "the balances did not survive a restart of make run"; exit 1; }
bin/cpx trades | grep -q ' agr_000000000001 ' || { echo "the trades did not survive a restart"; exit 1; }
stop_exchange
echo "walkthrough ok"
