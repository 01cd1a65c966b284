#!/usr/bin/env bash
# Run a command with a throw-away PostgreSQL: start a cluster in a fresh temp dir, export
# its URL, run the command, and stop and remove the cluster however the command ends.
# Exits with the command's status.
#
# The command sees:
#   TALLY_TEST_DATABASE_URL  postgresql://postgres@127.0.0.1:PORT/postgres
#   TALLY_TEST_PG_BINDIR     the server binaries (for tests that stop/start a server)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

dir=$(mktemp -d /tmp/tally-test-pg.XXXXXX)
cleanup() {
  PG_STOP_MODE=immediate "$here/pg-cluster.sh" stop "$dir" || true
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Durability of the test server is not under test: skip its fsyncs to keep tests quick.
url=$(PG_EXTRA_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  "$here/pg-cluster.sh" start "$dir") || exit 1
export TALLY_TEST_DATABASE_URL=$url
export TALLY_TEST_PG_BINDIR=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
echo "test PostgreSQL: $url (in $dir)" >&2

"$@"
