#!/bin/sh
# Installs the Debian packages CPX needs to build, run and test, and nothing else.
#
# Idempotent and fast when everything is present: one dpkg-query, no network.
# Runs apt-get as root, through sudo when not root; refuses clearly otherwise.
# `scripts/deps.sh --list` prints the package list (used by the README and CI).
set -eu

PACKAGES="
pkg-config
openssl
ca-certificates
postgresql
libpq-dev
libmicrohttpd-dev
libjansson-dev
libsodium-dev
libssl-dev
libcurl4-openssl-dev
libcmocka-dev
"

if [ "${1:-}" = "--list" ]; then
    echo $PACKAGES
    exit 0
fi

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
    esac
done

[ -z "$missing" ] && exit 0

echo "deps: installing missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "deps: not root and no sudo; as root run: apt-get install$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh machine has empty package lists: fetch them first. Stale lists make
# the install fail; refresh them once and try again.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' 2>/dev/null | head -n 1)" ]; then
    $SUDO apt-get update -qq
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "deps: done" >&2
