#!/bin/sh
# `make run`: a private PostgreSQL under $CPX_VAR (unless CPX_DATABASE_URL is set), a TLS
# certificate, the operator's key, the exchange's ledger key (and its verifier key for
# cpx-audit, in $CPX_VAR/exchange.vkey), then cpxd in the foreground until Ctrl-C or SIGTERM, after
# which the private cluster is stopped too. Running it again reuses $CPX_VAR: data survives.
# cpxd trusts its own local certificate for providers' job endpoints too (--delivery-ca), so a
# provider's bin/cpx-provider on this machine can serve with it.
set -eu
cd "$(dirname "$0")/.."
export CPX_VAR="${CPX_VAR:-var}"
export CPX_PORT="${CPX_PORT:-8443}"
BIN=${BIN:-bin}
mkdir -p "$CPX_VAR"

. scripts/setup.sh

cat <<MSG
CPX exchange
  URL            https://127.0.0.1:$CPX_PORT  (CA certificate: $CPX_VAR/tls/cert.pem)
  operator key   $CPX_VAR/operator.key  (identity $("$BIN/cpx" --key "$CPX_VAR/operator.key" whoami))
  ledger key     $CPX_VAR/exchange.vkey  ($(cat "$CPX_VAR/exchange.vkey"))
  database       $CPX_DATABASE_URL
Press Ctrl-C to stop.
MSG

pid=
stop() {
    trap - INT TERM
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ "$own_cluster" = 1 ] && scripts/pg.sh stop
    exit 0
}
trap stop INT TERM
rm -f "$CPX_VAR/cpxd.port"
"$BIN/cpxd" --port "$CPX_PORT" --port-file "$CPX_VAR/cpxd.port" \
    --tls-cert "$CPX_VAR/tls/cert.pem" --tls-key "$CPX_VAR/tls/key.pem" \
    --operator-key "$CPX_VAR/operator.key" --exchange-key "$CPX_VAR/exchange.key" \
    --delivery-ca "$CPX_VAR/tls/cert.pem" &
pid=$!
set +e
wait "$pid"
rc=$?
# wait returns early (>128) when a trapped signal arrives; stop() then takes over.
pid=
[ "$own_cluster" = 1 ] && scripts/pg.sh stop
exit $rc
