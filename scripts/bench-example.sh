#!/usr/bin/env bash
# The example app with TallyRequestCounter against the same app without it, in one run:
# both served at once beside a daemon, wrk loading one at a time in alternating rounds
# (GET /users/<random id>, 32 connections). Target: with ≥ 0.9 × without.
# usage: scripts/bench-example.sh <tally binary> <tally-example binary>   (under with-test-postgres.sh)
set -euo pipefail
tally=$1
example=$2
rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-5}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_for() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

daemon_port=$(free_port); with_port=$(free_port); without_port=$(free_port)
"$tally" serve --listen 127.0.0.1:$daemon_port --data-dir "$work/node" --database-url "$TALLY_TEST_DATABASE_URL" \
  --log-level warning >"$work/daemon.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$daemon_port/healthz"
"$example" serve --listen 127.0.0.1:$with_port --tally-url "http://127.0.0.1:$daemon_port" >"$work/with.log" 2>&1 & pids+=($!)
"$example" serve --listen 127.0.0.1:$without_port --no-counter >"$work/without.log" 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$with_port/"
wait_for "http://127.0.0.1:$without_port/"

cat >"$work/users.lua" <<'LUA'
math.randomseed(os.time())
request = function() return wrk.format("GET", "/users/" .. math.random(1, 1000000)) end
LUA
rate() { wrk -t1 -c32 -d"${seconds}s" -s "$work/users.lua" "http://127.0.0.1:$1" | awk '/Requests\/sec/ {print $2}'; }

echo "round  without (req/s)  with (req/s)  with/without"
sum_with=0; sum_without=0
for round in $(seq "$rounds"); do
  if (( round % 2 )); then a=$(rate $without_port); b=$(rate $with_port); else b=$(rate $with_port); a=$(rate $without_port); fi
  printf "%5d  %15.0f  %12.0f  %12.3f\n" "$round" "$a" "$b" "$(echo "$b / $a" | bc -l)"
  sum_with=$(echo "$sum_with + $b" | bc -l); sum_without=$(echo "$sum_without + $a" | bc -l)
done
printf "all rounds: with/without %.3f (target ≥ 0.9)\n" "$(echo "$sum_with / $sum_without" | bc -l)"
# What the counting app reported to Tally during the run, once checkpointed.
sleep 10
curl -s "http://127.0.0.1:$daemon_port/counts/$("$tally" key 'GET /users/{id}')"; echo "  (GET /users/{id}, all rounds)"
