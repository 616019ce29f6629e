#!/usr/bin/env bash
# Throwaway PostgreSQL server for tests (see shared/testing.md).
#
#   url=$(scripts/pg.sh start DIR)   # initdb + pg_ctl in DIR on a free port; prints the URL
#   scripts/pg.sh stop DIR           # stops it (DIR can then be removed)
#
# Installs Debian's postgresql package when no server binaries are found (needs root).
# As root the server runs as the `postgres` user, because initdb refuses to run as root.
set -euo pipefail

find_bin() {
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" ]]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
    echo "usage: $0 start|stop DIR" >&2
    exit 2
fi

case "$cmd" in
start)
    if ! bin=$(find_bin); then
        if [[ $(id -u) -ne 0 ]]; then
            echo "pg.sh: PostgreSQL server binaries not found; install the postgresql package" >&2
            exit 1
        fi
        echo "pg.sh: installing postgresql from Debian packages" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(find_bin)
    fi
    mkdir -p "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/db" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    for _ in 1 2 3 4 5 6 7 8; do
        port=$(( 20000 + RANDOM % 40000 ))
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
        if as_owner "$bin/pg_ctl" -D "$dir/db" -w -t 60 -l "$dir/log" \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
            start >/dev/null; then
            echo "$port" >"$dir/port"
            echo "postgres://postgres@127.0.0.1:$port/postgres"
            exit 0
        fi
    done
    echo "pg.sh: could not start PostgreSQL; server log:" >&2
    cat "$dir/log" >&2 || true
    exit 1
    ;;
stop)
    bin=$(find_bin) || exit 0
    if [[ -d "$dir/db" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/db" -m immediate stop >/dev/null 2>&1 || true
    fi
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
