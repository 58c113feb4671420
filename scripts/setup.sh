# Sourced by scripts/run.sh and scripts/demo.sh: what `make run` sets up before cpxd starts.
# Needs CPX_VAR and BIN; sets own_cluster (1 when the private cluster is ours to stop) and exports
# CPX_DATABASE_URL and CPX_ADMIN_DATABASE_URL. Keys and the certificate are made once and kept.
mkdir -p "$CPX_VAR"
own_cluster=0
if [ -z "${CPX_DATABASE_URL:-}" ]; then
    scripts/pg.sh start
    own_cluster=1
    CPX_DATABASE_URL=$(scripts/pg.sh url)
    # The administrator migrates and owns the schema; cpxd's role may only read and append.
    CPX_ADMIN_DATABASE_URL=$(scripts/pg.sh admin-url cpx)
    export CPX_DATABASE_URL CPX_ADMIN_DATABASE_URL
fi
scripts/tls.sh
if [ ! -f "$CPX_VAR/operator.key" ]; then
    "$BIN/cpx" keygen --out "$CPX_VAR/operator.key" >/dev/null
fi
if [ ! -f "$CPX_VAR/exchange.key" ]; then
    "$BIN/cpx" keygen --out "$CPX_VAR/exchange.key" >/dev/null
fi
"$BIN/cpxd" --exchange-key "$CPX_VAR/exchange.key" --print-verifier-key >"$CPX_VAR/exchange.vkey"

