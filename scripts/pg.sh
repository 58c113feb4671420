#!/bin/sh
# A private PostgreSQL cluster for CPX, reachable only through a unix socket (no TCP port).
#
#   scripts/pg.sh start     create the cluster if needed, start it, print nothing
#   scripts/pg.sh stop      stop it (fast shutdown), if running
#   scripts/pg.sh url       print the URL cpxd uses (role cpx, database cpx)
#   scripts/pg.sh admin-url [DB]  print the superuser URL (role cpx_admin, database DB or postgres)
#   scripts/pg.sh destroy   stop it and delete its data
#
# The cluster belongs to the state folder $CPX_VAR (default ./var). initdb and postgres refuse to
# run as root, so as root they run as the `postgres` system user. That user cannot always enter
# the checkout (a clone under /root is mode 700), so the data then lives in a folder it owns,
# /var/lib/cpx/pg-<hash of the state folder>, and $CPX_VAR/pg is a symbolic link to it. Either
# way $CPX_VAR/pg holds data/, run/ (the socket) and log.
set -eu

CPX_VAR=${CPX_VAR:-var}
mkdir -p "$CPX_VAR"
CPX_VAR=$(cd "$CPX_VAR" && pwd -P)
# Every path below is absolute; work from / so that the postgres user, which may not enter the
# checkout, starts in a folder it can.
cd /
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/initdb" ] || { echo "pg: PostgreSQL server binaries not found (run scripts/deps.sh)" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    RUNAS="runuser -u postgres --"
    id postgres >/dev/null 2>&1 || { echo "pg: no 'postgres' system user" >&2; exit 1; }
else
    RUNAS=""
fi

# Where the cluster lives: $CPX_VAR/pg itself, or the folder it links to.
pg_home() {
    if [ -e "$CPX_VAR/pg" ] || [ -L "$CPX_VAR/pg" ]; then
        readlink -f "$CPX_VAR/pg"
        return
    fi
    if [ -z "$RUNAS" ]; then
        mkdir -m 700 "$CPX_VAR/pg"
        echo "$CPX_VAR/pg"
        return
    fi
    mkdir -m 700 "$CPX_VAR/pg"
    chown postgres: "$CPX_VAR/pg"
    if $RUNAS test -w "$CPX_VAR/pg" 2>/dev/null; then
        echo "$CPX_VAR/pg"
        return
    fi
    rmdir "$CPX_VAR/pg"
    ext=/var/lib/cpx/pg-$(printf '%s' "$CPX_VAR" | sha256sum | cut -c1-16)
    mkdir -p /var/lib/cpx
    chmod 755 /var/lib/cpx
    mkdir -p -m 700 "$ext"
    chown postgres: "$ext"
    ln -s "$ext" "$CPX_VAR/pg"
    echo "$ext"
}

PGHOME=$(pg_home)
DATA=$PGHOME/data
SOCK=$PGHOME/run
# A unix socket path must fit in 107 bytes; a deep checkout gets a short folder in /tmp instead.
if [ ${#SOCK} -gt 80 ]; then
    SOCK=/tmp/cpx-pg-$(printf '%s' "$PGHOME" | sha256sum | cut -c1-16)
fi

url() { echo "postgresql:///cpx?host=$SOCK&user=cpx"; }
admin_url() { echo "postgresql:///${1:-postgres}?host=$SOCK&user=cpx_admin"; }

running() {
    [ -f "$DATA/postmaster.pid" ] && $RUNAS "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

init_cluster() {
    [ -f "$DATA/PG_VERSION" ] && return
    $RUNAS "$PGBIN/initdb" -D "$DATA" -U cpx_admin --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$PGHOME/initdb.log" 2>&1 || { cat "$PGHOME/initdb.log" >&2; exit 1; }
    # Only the socket, in a folder only this user (and root) may enter: trust auth is then safe.
    cat >>"$DATA/postgresql.conf" <<EOF

# --- CPX private cluster ---
listen_addresses = ''
unix_socket_directories = '$SOCK'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 256MB
log_min_messages = warning
log_min_error_statement = panic
EOF
    if [ "${CPX_PG_FAST:-0}" = 1 ]; then
        # Throwaway test clusters trade crash safety of the whole machine for speed. Crash tests
        # kill cpxd, not PostgreSQL, so they still test what they claim.
        printf 'fsync = off\nfull_page_writes = off\n' >>"$DATA/postgresql.conf"
    fi
}

start() {
    init_cluster
    mkdir -p "$SOCK"
    [ -z "$RUNAS" ] || chown postgres: "$SOCK"
    chmod 700 "$SOCK"
    if ! running; then
        $RUNAS "$PGBIN/pg_ctl" -D "$DATA" -l "$PGHOME/log" -w -t 60 start >/dev/null ||
            { tail -n 20 "$PGHOME/log" >&2; exit 1; }
    fi
    # The application role and database, created once.
    # The application role: it logs in, and nothing more (databases are made by cpx_admin).
    if ! psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'cpx'" | grep -q 1; then
        psql_admin -c "CREATE ROLE cpx LOGIN" >/dev/null
    fi
    psql_admin -c "ALTER ROLE cpx NOCREATEDB NOCREATEROLE" >/dev/null
    if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'cpx'" | grep -q 1; then
        psql_admin -c "CREATE DATABASE cpx OWNER cpx" >/dev/null
    fi
}

psql_admin() {
    psql -X -q -v ON_ERROR_STOP=1 "$(admin_url)" "$@"
}

stop() {
    if running; then
        $RUNAS "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url) url ;;
admin-url) admin_url "${2:-postgres}" ;;
status) running && echo running || echo stopped ;;
destroy)
    stop
    rm -rf "$DATA" "$PGHOME/run" "$PGHOME/log" "$PGHOME/initdb.log"
    [ "$SOCK" = "$PGHOME/run" ] || rm -rf "$SOCK"
    if [ -L "$CPX_VAR/pg" ]; then rm -rf "$PGHOME" "$CPX_VAR/pg"; else rm -rf "$CPX_VAR/pg"; fi
    ;;
*)
    echo "usage: scripts/pg.sh start|stop|status|url|admin-url|destroy" >&2
    exit 2
    ;;
esac
