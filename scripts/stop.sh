#!/bin/sh
# `make stop`: stops the cpxd that `make demo` left running (its pid is in $CPX_VAR/cpxd.pid) and
# then the private PostgreSQL cluster of $CPX_VAR. With --cpxd-only, only that cpxd.
set -eu
cd "$(dirname "$0")/.."
CPX_VAR="${CPX_VAR:-var}"
pidfile=$CPX_VAR/cpxd.pid
if [ -s "$pidfile" ]; then
    pid=$(cat "$pidfile")
    # Only a cpxd: the pid may have been reused by something else since.
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = cpxd ]; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        echo "stopped cpxd (pid $pid)"
    fi
    rm -f "$pidfile"
fi
[ "${1:-}" = "--cpxd-only" ] && exit 0
[ -d "$CPX_VAR/pg" ] || [ -L "$CPX_VAR/pg" ] && CPX_VAR=$CPX_VAR scripts/pg.sh stop
exit 0
