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
