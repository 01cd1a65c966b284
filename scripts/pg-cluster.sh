#!/usr/bin/env bash
# Manage a PostgreSQL 15 cluster in a directory of our choosing.
#
#   scripts/pg-cluster.sh start <dir> [port]   initdb if needed, start, print the URL
#   scripts/pg-cluster.sh stop <dir>           stop it (immediate mode; tests need no clean stop)
#   scripts/pg-cluster.sh status <dir>
#
# initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user,
# which must own <dir>. The cluster listens on 127.0.0.1 only, with its socket in <dir>,
# and trusts local connections: it is a development or test server, never a shared one.
set -euo pipefail

bindir=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bindir/pg_ctl" ] || { echo "pg-cluster: PostgreSQL server binaries not found (run make deps)" >&2; exit 1; }

as_postgres() {
  # From / so that the postgres user is not left in a directory it may not enter.
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The postgres user must be able to reach <dir>: make every parent traversable.
open_path() {
  local path
  path=$(realpath -m "$1")
  while [ "$path" != / ]; do
    path=$(dirname "$path")
    [ "$(id -u)" = 0 ] && chmod o+x "$path" 2>/dev/null || true
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|status <dir> [port]" >&2; exit 2; }
dir=$(realpath -m "$dir")

case "$cmd" in
  start)
    mkdir -p "$dir"
    open_path "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_postgres "$bindir/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if as_postgres "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      port=$(sed -n 4p "$dir/data/postmaster.pid")
    else
      port=${3:-$(free_port)}
      as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_EXTRA_OPTIONS:-}" \
        start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_postgres "$bindir/pg_ctl" -D "$dir/data" -m "${PG_STOP_MODE:-fast}" -w stop >/dev/null || true
    fi
    ;;
  status)
    as_postgres "$bindir/pg_ctl" -D "$dir/data" status
    ;;
  *)
    echo "usage: $0 start|stop|status <dir> [port]" >&2; exit 2 ;;
esac
