#!/bin/sh
# The cpx command-line client against a real cpxd: key files, output forms, exit statuses and the
# errors a person sees. Runs under `make test` (uses its throwaway cluster and certificate).
set -eu
BIN=${CPX_TEST_BIN:-bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/cpx-cli.XXXXXX")
db=cpx_cli_$$
admin="postgresql:///postgres?host=$CPX_TEST_PG_HOST&user=cpx_admin"
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

# expect STATUS COMMAND...: runs the command, which must exit with STATUS; output in $work/out.
expect() {
    want=$1
    shift
    set +e
    "$@" >"$work/out" 2>&1
    got=$?
    set -e
    [ "$got" -eq "$want" ] || { cat "$work/out"; fail "$* exited $got, want $want"; }
}

psql -X -q "$admin" -c "CREATE DATABASE $db OWNER cpx"
"$BIN/cpx" keygen --out "$work/op.key" >/dev/null
"$BIN/cpx" keygen --out "$work/exchange.key" >/dev/null
"$BIN/cpxd" --exchange-key "$work/exchange.key" --ledger-origin cli.test/ledger \
    --print-verifier-key >"$work/exchange.vkey"
"$BIN/cpxd" --port 0 --port-file "$work/port" --log-level warn \
    --database-url "postgresql:///$db?host=$CPX_TEST_PG_HOST&user=cpx" \
    --tls-cert "$CPX_TEST_VAR/tls/cert.pem" --tls-key "$CPX_TEST_VAR/tls/key.pem" \
    --operator-key "$work/op.key" --exchange-key "$work/exchange.key" --ledger-origin cli.test/ledger >"$work/cpxd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || { cat "$work/cpxd.log"; fail "cpxd did not start"; }
export CPX_URL="https://127.0.0.1:$(cat "$work/port")"
export CPX_CACERT="$CPX_TEST_VAR/tls/cert.pem"
cpx="$BIN/cpx"

# Key files: mode 0600, never overwritten without --force.
expect 0 "$cpx" keygen --out "$work/a.key"
[ "$(stat -c %a "$work/a.key")" = 600 ] || fail "key file mode is $(stat -c %a "$work/a.key")"
first=$(cat "$work/a.key")
expect 1 "$cpx" keygen --out "$work/a.key"
grep -q "not overwriting" "$work/out" || fail "keygen did not say why it refused"
[ "$(cat "$work/a.key")" = "$first" ] || fail "keygen changed an existing key"
expect 0 "$cpx" keygen --out "$work/a.key" --force
[ "$(cat "$work/a.key")" != "$first" ] || fail "keygen --force kept the old key"

# CPX_KEY names the key; whoami prints the id the key signs as, and register prints the same.
export CPX_KEY="$work/a.key"
id=$("$cpx" whoami)
case "$id" in idn_????????????????) ;; *) fail "whoami printed $id" ;; esac
expect 0 "$cpx" register --name "Lab A" --reg-no LAB-A --roles buyer
[ "$(head -n 1 "$work/out")" = "$id" ] || fail "register printed $(cat "$work/out")"
expect 1 "$cpx" register --name "Lab A" --reg-no LAB-A --roles buyer
grep -q "identity_exists" "$work/out" || fail "a second registration: $(cat "$work/out")"

# Text by default, JSON with --json.
expect 0 "$cpx" identity show
grep -q "^status  *pending$" "$work/out" || fail "identity show: $(cat "$work/out")"
expect 0 "$cpx" --json identity show
grep -q '"status": "pending"' "$work/out" || fail "--json identity show: $(cat "$work/out")"

# Errors a person can act on, with distinct exit statuses.
expect 1 "$cpx" identity show idn_aaaaaaaaaaaaaaaa
grep -q "not_approved" "$work/out" || fail "reading another identity while pending"
expect 1 "$cpx" admin approve "$id"
grep -q "403 not_approved" "$work/out" || fail "a pending identity approving: $(cat "$work/out")"
expect 0 "$cpx" --key "$work/op.key" admin approve "$id"
expect 1 "$cpx" --key "$work/op.key" admin approve "$id"
grep -q "409 invalid_state" "$work/out" || fail "approving twice: $(cat "$work/out")"
expect 1 "$cpx" identity show idn_aaaaaaaaaaaaaaaa
grep -q "404 identity_not_found" "$work/out" || fail "unknown identity: $(cat "$work/out")"
expect 1 "$cpx" --key "$work/op.key" admin reject "$id"
grep -q "missing_field, field reason" "$work/out" || fail "reject without reason: $(cat "$work/out")"
expect 2 "$cpx" frobnicate
expect 2 "$cpx" register --name X
expect 2 "$cpx" identity show not-an-id
expect 2 "$cpx" admin approve
expect 3 "$cpx" --url https://127.0.0.1:1 health
grep -q "cannot reach" "$work/out" || fail "unreachable exchange: $(cat "$work/out")"
expect 0 "$cpx" health

# A damaged key file is refused clearly; a readable-by-all one gets a warning.
printf 'cpx-ed25519-key v1\npublic AAAA\n' >"$work/bad.key"
expect 2 "$cpx" --key "$work/bad.key" identity show
grep -q "public line is not base64 of a 32-byte key" "$work/out" || fail "bad key: $(cat "$work/out")"
chmod 644 "$work/a.key"
expect 0 "$cpx" identity show
grep -q "can be read by others" "$work/out" || fail "no warning for a 0644 key"
chmod 600 "$work/a.key"

# Key rotation: the new key signs, the old one (kept as .retired) does not.
old_pk=$("$cpx" --json whoami)
expect 0 "$cpx" key rotate
grep -q "now holds the new key of $id" "$work/out" || fail "key rotate: $(cat "$work/out")"
[ "$("$cpx" whoami)" = "$id" ] || fail "the rotated key file signs as $("$cpx" whoami)"
[ "$("$cpx" --json whoami)" != "$old_pk" ] || fail "key rotate kept the old key"
[ "$(stat -c %a "$work/a.key")" = 600 ] || fail "rotated key file mode is $(stat -c %a "$work/a.key")"
expect 0 "$cpx" identity show
expect 1 "$cpx" --key "$work/a.key.retired" identity show
grep -q "bad_signature" "$work/out" || fail "the retired key still signs: $(cat "$work/out")"
seq=$("$cpx" --json key rotate | sed -n 's/.*"ledger_seq": *\([0-9]*\).*/\1/p')
[ -n "$seq" ] || fail "key rotate --json printed no ledger_seq"
touch "$work/a.key.next"
expect 2 "$cpx" key rotate
grep -q "an earlier rotation got no answer" "$work/out" || fail "a leftover .next: $(cat "$work/out")"
rm "$work/a.key.next"

# The ledger: the latest checkpoint and a receipt, verified with the exchange's key.
export CPX_EXCHANGE_VKEY="$work/exchange.vkey"
expect 0 "$cpx" ledger checkpoint
grep -q "^verified    signed by cli.test/ledger$" "$work/out" || fail "checkpoint: $(cat "$work/out")"
expect 0 "$cpx" ledger receipt "$seq"
grep -q "^record $seq is in the ledger of" "$work/out" || fail "receipt: $(cat "$work/out")"
grep -q '"kind":"key_rotation"' "$work/out" || fail "receipt record: $(cat "$work/out")"
expect 0 "$cpx" --json ledger receipt 0 --size 2
grep -q '"verified": true' "$work/out" || fail "receipt --json: $(cat "$work/out")"
expect 1 "$cpx" ledger receipt 999999
grep -q "record_not_found" "$work/out" || fail "receipt of nothing: $(cat "$work/out")"
expect 2 "$cpx" ledger receipt x
"$BIN/cpx" keygen --out "$work/other.key" >/dev/null
"$BIN/cpxd" --exchange-key "$work/other.key" --ledger-origin cli.test/ledger \
    --print-verifier-key >"$work/other.vkey"
expect 1 "$cpx" ledger receipt 0 --exchange-key "$work/other.vkey"
grep -q "does not verify" "$work/out" || fail "a receipt checked with another key: $(cat "$work/out")"
expect 1 "$cpx" ledger checkpoint --exchange-key "$work/other.vkey"
expect 2 "$cpx" ledger checkpoint --exchange-key "$work/op.key"
grep -q "this is a key file, not a verifier key" "$work/out" || fail "a key file as verifier key: $(cat "$work/out")"

# The market: a provider lists capacity in two regions, a buyer orders across both with a limit
# that crosses one; then balances, orders, agreements, the public market data, cancel and delist.
"$cpx" keygen --out "$work/prov.key" >/dev/null
"$cpx" keygen --out "$work/buyer.key" >/dev/null
"$cpx" keygen --out "$work/poor.key" >/dev/null
prov_id=$("$cpx" --key "$work/prov.key" register --name "Xihe Compute" --reg-no XIHE-1 --roles provider 2>/dev/null)
buyer_id=$("$cpx" --key "$work/buyer.key" register --name "Lab B" --reg-no LAB-B --roles buyer 2>/dev/null)
poor_id=$("$cpx" --key "$work/poor.key" register --name "Lab C" --reg-no LAB-C --roles buyer 2>/dev/null)
for i in "$prov_id" "$buyer_id" "$poor_id"; do expect 0 "$cpx" --key "$work/op.key" admin approve "$i"; done
operator() { "$cpx" --key "$work/op.key" "$@"; }
provider() { "$cpx" --key "$work/prov.key" "$@"; }
buyer() { "$cpx" --key "$work/buyer.key" "$@"; }
out() { cat "$work/out"; }

# Money: the operator deposits, with an Idempotency-Key made up and printed for a retry.
expect 0 operator deposit "$buyer_id" 100000
grep -q "^idempotency key dep-.* (to retry this deposit safely" "$work/out" || fail "deposit key: $(out)"
grep -q "^available  *100000 CNY$" "$work/out" || fail "deposit: $(out)"
expect 0 operator --json deposit "$poor_id" 0.5 --idempotency-key poor-1
grep -q '"available": "0.5"' "$work/out" || fail "deposit --json: $(out)"
expect 1 buyer deposit "$buyer_id" 5
grep -q "403 forbidden_role" "$work/out" || fail "a buyer depositing: $(out)"
expect 1 operator deposit "$buyer_id" 1.0000001
grep -q "400 invalid_field, field amount" "$work/out" || fail "7 decimals: $(out)"
expect 2 operator deposit not-an-id 5
expect 2 operator deposit "$buyer_id"

# Listings: 4 devices at 12 CNY per PFLOPS-hour in yangtze, 4 at 20 in gansu (and fp8 there).
listing="--vendor nvidia --model H100-SXM --type gpu --devices 4 --memory-gb 80 --endpoint https://xihe.example/jobs"
# shellcheck disable=SC2086
expect 0 provider list-capacity $listing --precision bf16:989:12 --region yangtze --interconnect nvlink
yangtze=$(head -n 1 "$work/out")
case "$yangtze" in lst_*) ;; *) fail "list-capacity printed $(out)" ;; esac
grep -q "^status open, 4 of 4 devices remaining$" "$work/out" || fail "list-capacity: $(out)"
# shellcheck disable=SC2086
expect 0 provider list-capacity $listing --precision bf16:989:20 --precision fp8:1979:11 --region gansu --expires +30d
gansu=$(head -n 1 "$work/out")
expect 0 provider --json listings "$gansu"
grep -q '"time_in_force": "gtd"' "$work/out" || fail "--expires did not make a gtd listing: $(out)"
grep -q '"price": "11"' "$work/out" || fail "the second --precision is missing: $(out)"
expect 0 provider listings
grep -q "^$gansu  *open  *gansu  *nvidia/H100-SXM  *4  *4 " "$work/out" || fail "listings: $(out)"
# shellcheck disable=SC2086
expect 1 provider list-capacity $listing --precision bf16:989:12 --region mars
grep -q "400 invalid_field, field region" "$work/out" || fail "a listing in no region: $(out)"
# shellcheck disable=SC2086
expect 1 buyer list-capacity $listing --precision bf16:989:12 --region yangtze
grep -q "403 forbidden_role" "$work/out" || fail "a buyer listing: $(out)"
# shellcheck disable=SC2086
expect 2 provider list-capacity $listing --precision bf16:989 --region yangtze
grep -q "PRECISION:TFLOPS:PRICE" "$work/out" || fail "a bad --precision: $(out)"
# shellcheck disable=SC2086
expect 2 provider list-capacity $listing --precision bf16:989:12 --region yangtze --from +1week
# shellcheck disable=SC2086
expect 1 provider list-capacity $listing --precision bf16:989:12 --region yangtze --from tomorrow
grep -q "400 invalid_field, field available_from" "$work/out" || fail "--from tomorrow: $(out)"
expect 2 provider list-capacity --vendor nvidia --precision bf16:989:12
expect 0 "$cpx" book bf16 yangtze
grep -q "^ask  *12  *4  *3956  *1$" "$work/out" || fail "book before the order: $(out)"

# A buyer without the money for its hold is refused, and nothing is placed.
expect 1 "$cpx" --key "$work/poor.key" order --precision fp16 --tflops 100 --hours 1 --regions ningxia --limit 1
grep -q "422 insufficient_funds" "$work/out" || fail "an order without money: $(out)"
grep -q "^client order id cpx-" "$work/out" || fail "no client order id printed: $(out)"
expect 0 "$cpx" --key "$work/poor.key" orders
grep -q "^(none)$" "$work/out" || fail "a refused order was placed: $(out)"

# 6 devices x 10 h across both regions at a limit of 15: crosses yangtze (4 devices) only.
printf '{"image":"registry.example/train:1.4","command":"torchrun train.py"}\n' >"$work/job.json"
expect 0 buyer order --client-order-id o-1 --precision bf16 --devices 6 --hours 10 \
    --regions yangtze,gansu --limit 15 --max-tflops 989 --job "$work/job.json"
order=$(head -n 1 "$work/out")
case "$order" in ord_*) ;; *) fail "order printed $(out)" ;; esac
grep -q "^status  *open$" "$work/out" || fail "order: $(out)"
grep -q "^filled  *4 devices$" "$work/out" || fail "order filled: $(out)"
grep -q "^remaining  *2 devices$" "$work/out" || fail "order remaining: $(out)"
# hold 15 x 6 x 989 TFLOPS x 10 h = 890.1 + 20 bps; the fill 474.72 + 0.94944 went to escrow,
# and all but what the 2 devices left could cost (296.7 + 20 bps) came back
grep -q "^hold  *891.8802 CNY, 297.2934 CNY of it still held$" "$work/out" || fail "hold: $(out)"
agr=$(sed -n 's/^agreements  *\(agr_[0-9]*\)$/\1/p' "$work/out")
[ -n "$agr" ] || fail "no agreement: $(out)"
expect 0 buyer --json orders "$order"
grep -q "\"job_sha256\": \"$(sha256sum "$work/job.json" | cut -c1-64)\"" "$work/out" ||
    fail "the order does not carry the job's hash: $(out)"
# The same client order id: the order as it is; with another body: refused.
expect 0 buyer order --client-order-id o-1 --precision bf16 --devices 6 --hours 10 \
    --regions yangtze,gansu --limit 15 --max-tflops 989 --job "$work/job.json"
[ "$(head -n 1 "$work/out")" = "$order" ] || fail "a repeated order: $(out)"
grep -q "was placed before: nothing new was ordered" "$work/out" || fail "a repeated order: $(out)"
expect 1 buyer order --client-order-id o-1 --precision bf16 --devices 1 --hours 10 --regions yangtze --limit 15
grep -q "409 client_order_id_reused" "$work/out" || fail "a reused client order id: $(out)"
# Without --client-order-id one is made up and printed; an IOC order leaves the book at once.
expect 0 buyer order --precision fp16 --tflops 100 --hours 1 --regions ningxia --limit 1 --tif ioc
grep -q "^client order id cpx-.* (to retry this order safely" "$work/out" || fail "no id made up: $(out)"
grep -q "^status  *cancelled (ioc)$" "$work/out" || fail "ioc order: $(out)"
expect 2 buyer order --precision bf16 --devices 1 --tflops 5 --hours 1 --regions yangtze --limit 1
expect 2 buyer order --precision bf16 --devices six --hours 1 --regions yangtze --limit 1
expect 2 buyer order --precision bf16 --devices 1 --hours 1 --regions yangtze --limit 1 --job "$work/none"
expect 1 buyer order --precision bf16 --devices 1 --hours 1 --regions yangtze,mars --limit 1
grep -q "400 invalid_field, field regions" "$work/out" || fail "an order in no region: $(out)"

# Balances: available + held + escrow = deposits.
expect 0 buyer balance
grep -q "^available  *99227.03716 CNY$" "$work/out" || fail "balance: $(out)"
grep -q "^held  *297.2934 CNY$" "$work/out" || fail "balance held: $(out)"
grep -q "^escrow  *475.66944 CNY$" "$work/out" || fail "balance escrow: $(out)"
expect 0 operator balance "$buyer_id"
grep -q "^account  *$buyer_id$" "$work/out" || fail "operator reading a balance: $(out)"
expect 1 buyer balance "$prov_id"
expect 2 buyer balance nobody

# Orders and agreements, for both parties.
expect 0 buyer orders
grep -q "^$order  *open  *bf16  *6 devices  *10  *15  *4  *yangtze,gansu  *o-1$" "$work/out" || fail "orders: $(out)"
expect 0 buyer orders --status closed
grep -q "cancelled  *fp16  *100 TFLOPS" "$work/out" || fail "orders --status closed: $(out)"
grep -q "^$order" "$work/out" && fail "an open order among the closed: $(out)"
expect 0 buyer orders --limit 1 --status closed
expect 1 buyer orders --status sideways
grep -q "400 invalid_query, field status" "$work/out" || fail "orders --status sideways: $(out)"
expect 0 buyer agreements
grep -q "^$agr  *bf16  *yangtze  *4  *989  *10  *12  *474.72  *0.94944 " "$work/out" || fail "agreements: $(out)"
expect 0 provider agreements "$agr"
grep -q "^order  *$order of buyer $buyer_id$" "$work/out" || fail "agreement for the provider: $(out)"
grep -q "^value  *474.72 CNY$" "$work/out" || fail "agreement value: $(out)"
expect 1 "$cpx" --key "$work/poor.key" agreements "$agr"
grep -q "404 agreement_not_found" "$work/out" || fail "another's agreement: $(out)"

# Public market data, without a key.
expect 0 env CPX_KEY="$work/none" "$cpx" book bf16 yangtze
grep -q "^bid  *15  *2 " "$work/out" || fail "book after the order: $(out)"
grep -q "^ask" "$work/out" && fail "yangtze's ask is still in the book: $(out)"
expect 0 "$cpx" book bf16 gansu --depth 1
grep -q "^ask  *20  *4 " "$work/out" || fail "gansu's book: $(out)"
expect 1 "$cpx" book bf16 mars
grep -q "404 market_not_found" "$work/out" || fail "book of no market: $(out)"
expect 2 "$cpx" book bf16
expect 0 "$cpx" markets
grep -q "^bf16  *yangtze  *15 x 2  *-  *12  *1  *4  *39$" "$work/out" || fail "markets: $(out)"
grep -q "^bf16  *gansu  *15 x 2  *20 x 4  *-  *0 " "$work/out" || fail "markets gansu: $(out)"
grep -q "^fp64" "$work/out" && fail "markets shows markets without activity: $(out)"
expect 0 "$cpx" markets --all
[ "$(grep -c "^fp64 " "$work/out")" = 8 ] || fail "markets --all: $(out)"
expect 0 "$cpx" --json markets
grep -q '"last_price": "12"' "$work/out" || fail "markets --json: $(out)"
expect 0 "$cpx" trades --precision bf16 --region yangtze
grep -q " $agr  *bf16  *yangtze  *4  *989  *10  *12$" "$work/out" || fail "trades: $(out)"
grep -q "$buyer_id" "$work/out" && fail "trades name the buyer: $(out)"
expect 0 "$cpx" trades --region gansu
grep -q "^(none)$" "$work/out" || fail "trades in gansu: $(out)"
expect 0 "$cpx" index bf16
grep -q "^bf16, last 24 hours: 12 CNY per PFLOPS-hour (39 PFLOPS-hours in 1 agreement)$" "$work/out" ||
    fail "index: $(out)"
expect 0 "$cpx" index fp8 --hours 1
grep -q "no trades" "$work/out" || fail "index without trades: $(out)"
expect 0 "$cpx" regions
grep -q "^gansu  *Gansu" "$work/out" || fail "regions: $(out)"
expect 3 "$cpx" --url https://127.0.0.1:1 markets

# Cancel: the rest of the hold comes back, the escrow stays; delist what is left in gansu.
expect 0 buyer cancel "$order"
grep -q "^status  *cancelled (user)$" "$work/out" || fail "cancel: $(out)"
expect 1 buyer cancel "$order"
grep -q "409 not_open" "$work/out" || fail "cancelling twice: $(out)"
expect 1 buyer cancel ord_999999999999
grep -q "404 order_not_found" "$work/out" || fail "cancelling nothing: $(out)"
expect 2 buyer cancel
expect 0 buyer balance
grep -q "^available  *99524.33056 CNY$" "$work/out" || fail "balance after cancel: $(out)"
grep -q "^held  *0 CNY$" "$work/out" || fail "held after cancel: $(out)"
expect 0 provider delist "$gansu"
grep -q "^status  *cancelled$" "$work/out" || fail "delist: $(out)"
expect 1 provider delist "$gansu"
grep -q "409 not_open" "$work/out" || fail "delisting twice: $(out)"
expect 1 provider delist "$yangtze"
grep -q "409 not_open" "$work/out" || fail "delisting a sold listing: $(out)"
expect 2 provider delist "lst_1/../x"
expect 0 "$cpx" book bf16 gansu
grep -q "^(empty)$" "$work/out" || fail "gansu's book after cancel and delist: $(out)"

# The operator rotates too; cpxd then refuses to start with the retired key as --operator-key.
expect 0 "$cpx" --key "$work/op.key" key rotate
kill -TERM "$pid"
wait "$pid" || fail "cpxd did not stop cleanly"
pid=
expect 1 "$BIN/cpxd" --port 0 --log-level warn \
    --database-url "postgresql:///$db?host=$CPX_TEST_PG_HOST&user=cpx" \
    --tls-cert "$CPX_TEST_VAR/tls/cert.pem" --tls-key "$CPX_TEST_VAR/tls/key.pem" \
    --operator-key "$work/op.key.retired" --exchange-key "$work/exchange.key" \
    --ledger-origin cli.test/ledger
grep -q "the operator key was retired by a key rotation" "$work/out" ||
    fail "cpxd with a retired operator key: $(cat "$work/out")"

# An administrator's URL must reach the same database as cpxd's own.
expect 1 "$BIN/cpxd" --port 0 --log-level warn \
    --database-url "postgresql:///$db?host=$CPX_TEST_PG_HOST&user=cpx" \
    --admin-database-url "$admin" \
    --tls-cert "$CPX_TEST_VAR/tls/cert.pem" --tls-key "$CPX_TEST_VAR/tls/key.pem" \
    --exchange-key "$work/exchange.key" --ledger-origin cli.test/ledger
grep -q "they must name the same database" "$work/out" ||
    fail "cpxd with another database's admin URL: $(cat "$work/out")"
[ "$(psql -X -tA "$admin" -c "SELECT count(*) FROM pg_tables WHERE tablename = 'ledger_head'")" = 0 ] ||
    fail "cpxd migrated the administrator's other database"
echo "cli ok"
