#!/bin/sh
# Makes a self-signed TLS certificate for 127.0.0.1 and localhost under $CPX_VAR/tls, once.
#   scripts/tls.sh          -> $CPX_VAR/tls/cert.pem and key.pem (mode 600)
set -eu
CPX_VAR=${CPX_VAR:-var}
dir=$CPX_VAR/tls
[ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] && exit 0
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=CPX exchange (local)" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
    { echo "tls: openssl could not make a certificate" >&2; exit 1; }
chmod 644 "$dir/cert.pem"
