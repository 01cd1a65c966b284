#!/usr/bin/env bash
# wrk against a release `tally serve`: the HTTP ceiling (a no-op route in the same binary,
# enabled by --bench-routes) and durable POST /increment, at 64 and 256 connections, the same
# script and duration for both. Needs TALLY_TEST_DATABASE_URL (run under with-test-postgres.sh).
set -euo pipefail
tally=${1:?usage: bench-http.sh <tally binary>}
seconds=${BENCH_SECONDS:-10}
data=$(mktemp -d "$PWD/Benchmarks/.scratch-http.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$tally" serve --listen "127.0.0.1:$port" --data-dir "$data" --database-url "$TALLY_TEST_DATABASE_URL" \
  --bench-routes --log-level warning &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

for connections in 64 256; do
  for route in bench/ceiling increment; do
    printf '%-16s %3d connections: ' "/$route" "$connections"
    wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/increment.lua "http://127.0.0.1:$port/$route" \
      | grep '^JSON' | sed 's/^JSON //'
  done
done
frames=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^tally_log_records_per_frame_(sum|count)/ {v[$1]=$2} END {if (v["tally_log_records_per_frame_count"] > 0) printf "%.1f", v["tally_log_records_per_frame_sum"]/v["tally_log_records_per_frame_count"]}')
echo "records per frame (whole run): $frames"
