#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster on loopback for the tests; `start` prints its base URL.
#
#   url="$(bash scripts/ci/postgres.sh start)"   # postgresql+psycopg://fedbench:fedbench@127.0.0.1:PORT
#   bash scripts/ci/postgres.sh stop
#
# Installs PostgreSQL from Debian's packages when it is missing. The cluster lives in $FEDBENCH_PG_DIR
# (default /tmp/fedbench-ci-postgres), listens on 127.0.0.1 only, and has a role `fedbench` (password
# `fedbench`) that may create databases: fedbench creates one database per node on first use.
set -euo pipefail

action="${1:-start}"
dir="${FEDBENCH_PG_DIR:-/tmp/fedbench-ci-postgres}"
role="fedbench"
password="fedbench"

log() { echo "postgres.sh: $*" >&2; }

newest_bin() {
    if compgen -G "/usr/lib/postgresql/*/bin" >/dev/null; then
        printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1
    fi
}

pg_bin() {
    local found
    found="$(newest_bin)"
    if [ -z "$found" ] && [ "$(id -u)" = 0 ]; then
        log "installing PostgreSQL from Debian's packages"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        found="$(newest_bin)"
    fi
    if [ -z "$found" ]; then
        log "PostgreSQL is not installed and I am not root: apt-get install postgresql"
        exit 1
    fi
    echo "$found"
}

# Run a PostgreSQL program as the cluster's owner: the `postgres` user when we are root (initdb refuses root).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local bin port
    bin="$(pg_bin)"
    if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        port="$(cat "$dir/port")"
        log "already running on 127.0.0.1:$port"
    else
        rm -rf "$dir"
        mkdir -p "$dir"
        if [ "$(id -u)" = 0 ]; then
            chown postgres:postgres "$dir"
        fi
        port="${FEDBENCH_PG_PORT:-$(free_port)}"
        echo "$port" >"$dir/port"
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >&2
        as_owner "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
            -c "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password'" >&2
        log "started on 127.0.0.1:$port (data in $dir/data, log in $dir/server.log)"
    fi
    echo "postgresql+psycopg://$role:$password@127.0.0.1:$port"
}

stop() {
    local bin
    bin="$(pg_bin)"
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    fi
    rm -rf "$dir"
}

case "$action" in
start) start ;;
stop) stop ;;
*)
    log "usage: postgres.sh start|stop"
    exit 2
    ;;
esac
