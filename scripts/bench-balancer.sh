#!/usr/bin/env bash
# HAProxy and Caddy in front of the same three nodes of a running `make cluster`, measured
# with the same wrk script (bench/increment.lua: a fresh key per request): requests per
# second, latency, and the balancer's CPU time per request. One node alone is the reference.
#
#   scripts/bench-balancer.sh          (CLUSTER_DIR as for scripts/cluster.sh; needs wrk, caddy)
#
# Caddy gets the closest configuration: least_conn, active health checks on /readyz every
# second. Rounds alternate (node, HAProxy, Caddy) because the machine is shared and noisy.
# Results: docs/operations.md, "The load balancer".
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
D=$(realpath -m "${CLUSTER_DIR:-$repo/data/cluster}")
[ -f "$D/cluster.env" ] || { echo "no cluster in $D: run make cluster first" >&2; exit 1; }
# shellcheck disable=SC1091
. "$D/cluster.env"
for tool in wrk caddy; do command -v $tool >/dev/null || { echo "$tool not found" >&2; exit 1; }; done
seconds=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-2}

work=$(mktemp -d /tmp/tally-bench-balancer.XXXXXX)
caddy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/Caddyfile" <<EOF
{
	admin off
	auto_https off
}
http://127.0.0.1:$caddy_port {
	reverse_proxy 127.0.0.1:$NODE1_PORT 127.0.0.1:$NODE2_PORT 127.0.0.1:$NODE3_PORT {
		lb_policy least_conn
		lb_try_duration 2s
		health_uri /readyz
		health_interval 1s
		health_timeout 1s
	}
}
EOF
XDG_DATA_HOME=$work XDG_CONFIG_HOME=$work caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
trap 'kill $caddy_pid 2>/dev/null || true; wait $caddy_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$caddy_port/healthz" && break; sleep 0.2; done
curl -sf -o /dev/null "http://127.0.0.1:$caddy_port/healthz" || { cat "$work/caddy.log" >&2; echo "caddy did not start" >&2; exit 1; }
sleep 2 # first health checks

# CPU seconds (user + system) of a process and its children, from /proc.
cpu_of() {
	local total=0 pid
	for pid in "$@" $(for p in "$@"; do pgrep -P "$p"; done); do
		[ -r "/proc/$pid/stat" ] || continue
		total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
	done
	echo "$total"
}
ticks=$(getconf CLK_TCK)
haproxy_pid=$(cat "$D/pids/haproxy.pid")

run() { # name url balancer-pid(or "")
	local before after line requests
	before=$([ -n "$3" ] && cpu_of "$3" || echo 0)
	line=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$repo/bench/increment.lua" "$2/increment" | grep '^JSON' | sed 's/^JSON //')
	after=$([ -n "$3" ] && cpu_of "$3" || echo 0)
	requests=$(python3 -c "import json,sys; print(int(json.loads(sys.argv[1])['requests_per_second'] * $seconds))" "$line")
	printf '%-8s %s  balancer CPU: %s us/request\n' "$1" "$line" \
		"$([ -n "$3" ] && python3 -c "print(round(($after - $before) / $ticks / max(1, $requests) * 1e6, 1))" || echo -)"
}

echo "wrk -c$connections, ${seconds}s per case, $rounds rounds; nodes ${NODE1_PORT}, ${NODE2_PORT}, ${NODE3_PORT}"
for round in $(seq 1 "$rounds"); do
	echo "round $round"
	run node1 "http://127.0.0.1:$NODE1_PORT" ""
	run haproxy "http://127.0.0.1:$LB_PORT" "$haproxy_pid"
	run caddy "http://127.0.0.1:$caddy_port" "$caddy_pid"
done
