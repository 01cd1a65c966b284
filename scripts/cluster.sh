#!/usr/bin/env bash
# A Tally fleet on 127.0.0.1, for trying things out and for the fleet test:
# a pg_auto_failover formation (monitor, primary, synchronous standby), three `tally serve`
# nodes sharing it through a multi-host URL, HAProxy in front, and Prometheus scraping it all.
#
#   scripts/cluster.sh up              start everything (creating it the first time); the last
#                                      three lines are LB_URL=…, DATABASE_URL=…, PROMETHEUS_URL=…
#   scripts/cluster.sh kill-node N     kill -9 node N (1-3)
#   scripts/cluster.sh stop-node N     SIGTERM: /readyz 503 for the drain time, then it stops
#   scripts/cluster.sh start-node N    start node N again
#   scripts/cluster.sh kill-db-primary kill -9 the primary's pg_autoctl process group (failover)
#   scripts/cluster.sh start-db        start the PostgreSQL nodes that are not running (a
#                                      killed primary comes back as the standby)
#   scripts/cluster.sh status          every process, what the balancer and the monitor see
#   scripts/cluster.sh env             the three URL lines again
#   scripts/cluster.sh down            stop everything that was started here, by PID
#
# Everything lives under $CLUSTER_DIR (default data/cluster): delete it for a fresh start.
# The nodes run $TALLY_BIN (default .build/release/tally). Ports are picked once and kept in
# $CLUSTER_DIR/cluster.env; CLUSTER_LB_PORT chooses the balancer's port on the first `up`.
# CLUSTER_CHECKPOINT_INTERVAL (default 9s), CLUSTER_DRAIN_TIME (default 3s) and
# CLUSTER_RATE_LIMIT / CLUSTER_RATE_BURST (per client; default off) go to the nodes.
# What happens when you kill things, and what to look at: docs/operations.md, "A local fleet".
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
D=$(realpath -m "${CLUSTER_DIR:-$repo/data/cluster}")
TALLY_BIN=$(realpath -m "${TALLY_BIN:-$repo/.build/release/tally}")
NODES="1 2 3"

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*" >&2; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
# A PID from our pid file, only if that process is still the one we started (its command
# line names our directory): a stale file must never make us signal a stranger.
our_pid() { # pidfile
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 0
	alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$D" && echo "$pid" || true
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

load_env() {
	[ -f "$D/cluster.env" ] || die "no cluster in $D (run: scripts/cluster.sh up)"
	# shellcheck disable=SC1091
	. "$D/cluster.env"
}

# Ports and URLs, chosen on the first `up` and kept.
init_env() {
	[ -f "$D/cluster.env" ] && return 0
	{
		echo "LB_PORT=${CLUSTER_LB_PORT:-$(free_port)}"
		for n in $NODES; do echo "NODE${n}_PORT=$(free_port)"; done
		echo "LB_METRICS_PORT=$(free_port)"
		echo "PROMETHEUS_PORT=$(free_port)"
	} >"$D/cluster.env"
}

node_port() { local v="NODE${1}_PORT"; echo "${!v}"; }
check_node() { case ${1:-} in 1 | 2 | 3) ;; *) die "node must be 1, 2 or 3" ;; esac; }

answers() { [ "$(curl -s -o /dev/null -m 1 -w '%{http_code}' "$1" 2>/dev/null || true)" = 200 ]; }
wait_http() { # url seconds
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		answers "$1" && return 0
		sleep 0.1
	done
	return 1
}

# ------------------------------------------------------------------ Tally nodes

# The node's settings, in the same form as the systemd unit's /etc/tally/tally.env.
write_node_env() {
	local n=$1
	cat >"$D/node$n.env" <<EOF
TALLY_LISTEN=127.0.0.1:$(node_port "$n")
TALLY_DATA_DIR=$D/node$n
TALLY_DATABASE_URL=$DATABASE_URL
TALLY_CHECKPOINT_INTERVAL=${CLUSTER_CHECKPOINT_INTERVAL:-9s}
TALLY_DRAIN_TIME=${CLUSTER_DRAIN_TIME:-3s}
TALLY_LOG_LEVEL=${CLUSTER_LOG_LEVEL:-info}
TALLY_TRUSTED_PROXY=127.0.0.1
EOF
	# Off unless asked for: every loopback client is one client (127.0.0.1) to the nodes.
	[ -z "${CLUSTER_RATE_LIMIT:-}" ] || printf 'TALLY_RATE_LIMIT=%s\nTALLY_RATE_BURST=%s\n' \
		"$CLUSTER_RATE_LIMIT" "${CLUSTER_RATE_BURST:-$CLUSTER_RATE_LIMIT}" >>"$D/node$n.env"
}

start_node() {
	local n=$1 pid
	pid=$(our_pid "$D/pids/node$n.pid")
	if [ -n "$pid" ]; then say "node $n is already running (pid $pid)"; return 0; fi
	write_node_env "$n"
	mkdir -p "$D/node$n"
	rm -f "$D/pids/node$n.pid" "$D/pids/node$n.exit"
	# A small shell waits for the node and writes its exit status; the node itself is its
	# child, so signals go to the PID in node$n.pid, never to the shell. setsid: a Ctrl-C in
	# the terminal that ran `up` does not reach the fleet. --data-dir repeats the env file's
	# setting on the command line, where our_pid looks for it.
	setsid bash -c 'set -a; . "$1"; set +a; "$2" serve --data-dir "$5" & echo $! >"$3"; wait $!; echo $? >"$4"' \
		node "$D/node$n.env" "$TALLY_BIN" "$D/pids/node$n.pid" "$D/pids/node$n.exit" "$D/node$n" \
		</dev/null >>"$D/log/node$n.log" 2>&1 &
	# Serving, or gone (a bad setting, a refused log): whichever comes first, within 60 s.
	local i
	for ((i = 0; i < 600; i++)); do
		[ -s "$D/pids/node$n.pid" ] && answers "http://127.0.0.1:$(node_port "$n")/healthz" && break
		if [ -s "$D/pids/node$n.exit" ] || ((i == 599)); then
			tail -n 20 "$D/log/node$n.log" >&2
			die "node $n is not serving (exit status $(cat "$D/pids/node$n.exit" 2>/dev/null || echo none); log: $D/log/node$n.log)"
		fi
		sleep 0.1
	done
	say "node $n: pid $(cat "$D/pids/node$n.pid"), http://127.0.0.1:$(node_port "$n")"
}

stop_node() { # n signal seconds
	local n=$1 pid i
	pid=$(our_pid "$D/pids/node$n.pid")
	[ -n "$pid" ] || { say "node $n is not running"; return 0; }
	kill "-$2" "$pid"
	for ((i = 0; i < $3 * 10; i++)); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then
		say "node $n (pid $pid) still running after $3 s: SIGKILL"
		kill -9 "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
	fi
	for ((i = 0; i < 20; i++)); do [ -s "$D/pids/node$n.exit" ] && break; sleep 0.1; done
	say "node $n (pid $pid) exited with status $(cat "$D/pids/node$n.exit" 2>/dev/null || echo '?')"
}

# ------------------------------------------------------------------ HAProxy and Prometheus

start_haproxy() {
	local pid
	pid=$(our_pid "$D/pids/haproxy.pid")
	[ -n "$pid" ] && return 0
	export TALLY_LB_BIND=127.0.0.1:$LB_PORT TALLY_LB_METRICS_BIND=127.0.0.1:$LB_METRICS_PORT
	export TALLY_LB_SOCKET=$D/haproxy.sock
	export TALLY_NODE1=127.0.0.1:$NODE1_PORT TALLY_NODE2=127.0.0.1:$NODE2_PORT TALLY_NODE3=127.0.0.1:$NODE3_PORT
	haproxy -c -q -f "$repo/deploy/haproxy/haproxy.cfg" || die "haproxy rejects deploy/haproxy/haproxy.cfg"
	# -W -db: master-worker in the foreground, so $! is the master (SIGUSR1 stops it softly).
	# The config path goes on the command line with $D in it, so our_pid recognises it.
	cp "$repo/deploy/haproxy/haproxy.cfg" "$D/haproxy.cfg"
	setsid haproxy -W -db -f "$D/haproxy.cfg" </dev/null >>"$D/log/haproxy.log" 2>&1 &
	echo $! >"$D/pids/haproxy.pid"
	wait_http "http://127.0.0.1:$LB_METRICS_PORT/stats" 10 || die "haproxy did not start (log: $D/log/haproxy.log)"
	say "haproxy: pid $(cat "$D/pids/haproxy.pid"), http://127.0.0.1:$LB_PORT (stats: http://127.0.0.1:$LB_METRICS_PORT/stats)"
}

start_prometheus() {
	local pid
	pid=$(our_pid "$D/pids/prometheus.pid")
	[ -n "$pid" ] && return 0
	mkdir -p "$D/prometheus"
	# The committed configuration and rules, with this cluster's targets beside them.
	cp "$repo/deploy/prometheus/prometheus.yml" "$repo/deploy/prometheus/tally-alerts.yml" "$D/prometheus/"
	printf '[{"targets": ["127.0.0.1:%s", "127.0.0.1:%s", "127.0.0.1:%s"], "labels": {}}]\n' \
		"$NODE1_PORT" "$NODE2_PORT" "$NODE3_PORT" >"$D/prometheus/tally-targets.json"
	printf '[{"targets": ["127.0.0.1:%s"], "labels": {}}]\n' "$LB_METRICS_PORT" >"$D/prometheus/haproxy-targets.json"
	setsid prometheus --config.file="$D/prometheus/prometheus.yml" --storage.tsdb.path="$D/prometheus/data" \
		--storage.tsdb.retention.time=2d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
		</dev/null >>"$D/log/prometheus.log" 2>&1 &
	echo $! >"$D/pids/prometheus.pid"
	wait_http "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" 60 || die "prometheus did not start (log: $D/log/prometheus.log)"
	say "prometheus: pid $(cat "$D/pids/prometheus.pid"), http://127.0.0.1:$PROMETHEUS_PORT"
}

stop_pidfile() { # name pidfile signal seconds
	local pid i
	pid=$(our_pid "$2")
	[ -n "$pid" ] || return 0
	kill "-$3" "$pid" 2>/dev/null || true
	for ((i = 0; i < $4 * 10; i++)); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then say "$1 (pid $pid) still running: SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
	rm -f "$2"
	say "$1 stopped"
}

print_env() {
	echo "LB_URL=http://127.0.0.1:$LB_PORT"
	echo "DATABASE_URL=$DATABASE_URL"
	echo "PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT"
}

# ------------------------------------------------------------------ commands

cmd_up() {
	[ -x "$TALLY_BIN" ] || die "$TALLY_BIN not found: run 'make release' or set TALLY_BIN"
	for tool in pg_autoctl haproxy prometheus curl python3; do
		command -v "$tool" >/dev/null || die "$tool not found (make cluster installs it)"
	done
	mkdir -p "$D/pids" "$D/log"
	init_env
	load_env
	DATABASE_URL=$("$repo/scripts/pg-formation.sh" up "$D/pg" 2>>"$D/log/pg-formation.log") \
		|| { tail -n 20 "$D/log/pg-formation.log" >&2; die "the PostgreSQL formation did not come up"; }
	# One migration before the nodes start, rather than three at once.
	"$TALLY_BIN" migrate --database-url "$DATABASE_URL" >>"$D/log/migrate.log" 2>&1 \
		|| die "tally migrate failed (log: $D/log/migrate.log)"
	for n in $NODES; do start_node "$n"; done
	start_haproxy
	start_prometheus
	wait_http "http://127.0.0.1:$LB_PORT/readyz" 30 || say "warning: no node is ready behind the balancer yet"
	print_env
}

cmd_status() {
	load_env
	local n pid ready
	for n in $NODES; do
		pid=$(our_pid "$D/pids/node$n.pid")
		if [ -n "$pid" ]; then
			ready=$(curl -s -m 2 "http://127.0.0.1:$(node_port "$n")/readyz" || echo "no answer")
			echo "node $n: pid $pid, 127.0.0.1:$(node_port "$n"), node id $(cat "$D/node$n/node-id" 2>/dev/null), readyz: $ready"
		else
			echo "node $n: stopped (last exit status $(cat "$D/pids/node$n.exit" 2>/dev/null || echo '?'))"
		fi
	done
	pid=$(our_pid "$D/pids/haproxy.pid")
	if [ -n "$pid" ]; then
		echo "haproxy: pid $pid, http://127.0.0.1:$LB_PORT; its view of the nodes:"
		curl -s -m 2 "http://127.0.0.1:$LB_METRICS_PORT/stats;csv" |
			awk -F, '$1 ~ /^tally/ && $2 ~ /^node/ { printf "  %-12s %-6s %s\n", $1, $2, $18 }'
	else
		echo "haproxy: stopped"
	fi
	pid=$(our_pid "$D/pids/prometheus.pid")
	if [ -n "$pid" ]; then
		echo "prometheus: pid $pid, http://127.0.0.1:$PROMETHEUS_PORT; targets up:"
		curl -s -m 2 "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query?query=up" |
			python3 -c 'import json,sys; [print("  %s %s %s" % (r["metric"]["job"], r["metric"]["instance"], r["value"][1])) for r in json.load(sys.stdin)["data"]["result"]]' 2>/dev/null || true
	else
		echo "prometheus: stopped"
	fi
	echo "PostgreSQL (pg_auto_failover):"
	"$repo/scripts/pg-formation.sh" state "$D/pg" 2>&1 | sed 's/^/  /'
}

cmd_down() {
	[ -f "$D/cluster.env" ] || { say "nothing to stop in $D"; return 0; }
	load_env
	stop_pidfile prometheus "$D/pids/prometheus.pid" TERM 20
	# SIGUSR1 to the master: stop accepting, finish the connections in flight, exit.
	stop_pidfile haproxy "$D/pids/haproxy.pid" USR1 10
	local jobs=()
	for n in $NODES; do stop_node "$n" TERM 20 & jobs+=($!); done
	wait "${jobs[@]}" || true
	"$repo/scripts/pg-formation.sh" down "$D/pg" 2>>"$D/log/pg-formation.log" || true
	say "down"
}

cmd=${1:-}
case $cmd in
up) cmd_up ;;
kill-node) check_node "${2:-}"; load_env; stop_node "$2" KILL 10 ;;
stop-node) check_node "${2:-}"; load_env; stop_node "$2" TERM 30 ;;
start-node)
	check_node "${2:-}"; load_env
	DATABASE_URL=$("$repo/scripts/pg-formation.sh" url "$D/pg")
	start_node "$2" ;;
kill-db-primary) load_env; "$repo/scripts/pg-formation.sh" kill-primary "$D/pg" ;;
start-db) load_env; "$repo/scripts/pg-formation.sh" start "$D/pg" ;;
status) cmd_status ;;
env) load_env; DATABASE_URL=$("$repo/scripts/pg-formation.sh" url "$D/pg"); print_env ;;
down) cmd_down ;;
*) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
