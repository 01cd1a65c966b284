#!/usr/bin/env bash
# A pg_auto_failover formation on 127.0.0.1: a monitor, a primary and a synchronous
# standby, each a PostgreSQL 15 under <dir>, for scripts/cluster.sh and the fleet test.
#
#   pg-formation.sh up <dir>            create (first time) or restart it; wait until healthy; print the URL
#   pg-formation.sh url <dir>           the multi-host libpq URL (target_session_attrs=read-write)
#   pg-formation.sh kill-primary <dir>  kill -9 the process group of the primary's pg_autoctl; prints "<node> <epoch>"
#   pg-formation.sh start <dir>         start every node whose pg_autoctl is gone (a killed primary rejoins as standby)
#   pg-formation.sh wait-healthy <dir> [seconds]   wait for one primary and one secondary
#   pg-formation.sh state <dir>         our processes and the monitor's view
#   pg-formation.sh monitor-sql <dir> <sql>        run SQL on the monitor
#   pg-formation.sh async-standby <dir> take the standby out of the replication quorum: the
#                                      primary then commits without it (asynchronous), so a
#                                      failover can lose commits (the fleet test's LSN regression)
#   pg-formation.sh down <dir>          stop what was started here, by PID, bounded
#
# Layout of <dir> (owned by postgres: pg_autoctl and initdb refuse to run as root):
#   monitor/ a/ b/            PGDATA of the monitor and of the two nodes
#   xdg/{config,data,run}     pg_autoctl's XDG directories (its config, state and pid files)
#   pids/<node>.pid           PID of `pg_autoctl run` (also its process group: started by setsid)
#   log/<node>.log            pg_autoctl's output; PostgreSQL's own log is in <pgdata>/log/
#   ports.env                 PORT_MONITOR, PORT_A, PORT_B
#
# Settings: PG_FORMATION_TIMEOUT (seconds to wait for health, default 180).
set -euo pipefail

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
TIMEOUT=${PG_FORMATION_TIMEOUT:-180}
NODES="a b"

die() { echo "pg-formation: $*" >&2; exit 1; }
say() { echo "pg-formation: $(date +%T) $*" >&2; }

[ $# -ge 2 ] || die "usage: $0 up|url|kill-primary|start|wait-healthy|state|monitor-sql|async-standby|down <dir>"
CMD=$1; D=$(realpath -m "$2"); shift 2
command -v pg_autoctl >/dev/null || die "pg_autoctl not found (apt-get install postgresql-15-auto-failover)"

# A command as postgres, from / (postgres may not enter the caller's directory), bounded.
# A clean environment: with root's PATH pg_autoctl stats directories postgres may not read
# and logs "Permission denied"; its XDG directories hold its state, so they must be ours.
as_pg() {
	local user=()
	[ "$(id -u)" = 0 ] && user=(runuser -u postgres --)
	(cd / && timeout "${AS_PG_TIMEOUT:-60}" "${user[@]}" env -i HOME="$D" LANG=C.UTF-8 \
		PATH="$PGBIN:/usr/bin:/bin" XDG_CONFIG_HOME="$D/xdg/config" XDG_DATA_HOME="$D/xdg/data" \
		XDG_RUNTIME_DIR="$D/xdg/run" PGCONNECT_TIMEOUT=5 "$@")
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "$D/pids/$1.pid" 2>/dev/null || true; }

# pg_autoctl keeps a SysV semaphore id on line 5 of its pid file. A pg_autoctl killed with -9
# leaks it (2.0 does not remove it on restart), so we remove it ourselves after a kill.
semaphore_of() { sed -n 5p "$D/xdg/run/pg_autoctl$D/$1/pg_autoctl.pid" 2>/dev/null || true; }
drop_semaphore() { [ -n "${1:-}" ] && [ "$1" != 0 ] && ipcrm -s "$1" 2>/dev/null || true; }

load_ports() {
	[ -f "$D/ports.env" ] || die "$D/ports.env missing: run up first"
	# shellcheck disable=SC1091
	. "$D/ports.env"
}
monitor_url() { echo "postgres://autoctl_node@127.0.0.1:$PORT_MONITOR/pg_auto_failover?sslmode=disable&connect_timeout=3"; }
msql() { "$PGBIN/psql" -X -q -At -F' ' -d "$(monitor_url)" -c "$1"; }
formation_url() {
	echo "postgresql://postgres@127.0.0.1:$PORT_A,127.0.0.1:$PORT_B/postgres?target_session_attrs=read-write"
}

# Three free TCP ports on 127.0.0.1, outside the ephemeral range (bind-tested).
pick_ports() {
	python3 - <<'EOF'
import random, socket
got = []
for _ in range(1000):
    if len(got) == 3: break
    port = random.randint(20000, 30000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port)); got.append(port) if port not in got else None
    except OSError:
        pass
    finally:
        s.close()
print(*got)
EOF
}

# `pg_autoctl run` for one node in a session of its own: setsid, setpriv and env exec in turn,
# so $! is pg_autoctl's PID and also its process group, which kill-primary kills whole.
start_node() {
	local name=$1 pid
	pid=$(pid_of "$name")
	if alive "$pid"; then return 0; fi
	(cd / && exec setsid setpriv --reuid=postgres --regid=postgres --init-groups \
		env -i HOME="$D" LANG=C.UTF-8 PATH="$PGBIN:/usr/bin:/bin" \
		XDG_CONFIG_HOME="$D/xdg/config" XDG_DATA_HOME="$D/xdg/data" XDG_RUNTIME_DIR="$D/xdg/run" \
		pg_autoctl run --pgdata "$D/$name" </dev/null >>"$D/log/$name.log" 2>&1) &
	pid=$!
	echo "$pid" >"$D/pids/$name.pid"
	sleep 0.2
	alive "$pid" || die "$name: pg_autoctl run exited at once, see $D/log/$name.log"
	say "started $name (pg_autoctl pid $pid)"
}

# Sized for a test box. pg_autoctl's own include (line 1 of postgresql.conf) sets
# shared_buffers to a quarter of the RAM; later lines win, so these go at the end.
append_conf() {
	local pgdata=$1 extra=${2:-}
	grep -q '^# pg-formation.sh' "$pgdata/postgresql.conf" && return 0
	cat >>"$pgdata/postgresql.conf" <<EOF
# pg-formation.sh: sized for a test box
shared_buffers = '32MB'
max_connections = 100
work_mem = '4MB'
maintenance_work_mem = '32MB'
effective_cache_size = '256MB'
max_wal_size = '256MB'
min_wal_size = '64MB'
$extra
EOF
}

# The monitor's defaults take about 50 s to fail over (20 s before a node is unhealthy,
# 30 s before a primary that cannot be reached is demoted). These bring it to 7-11 s
# on loopback: health checks every second, a node unhealthy after 3 s, demoted after 3 s.
MONITOR_SETTINGS="pgautofailover.health_check_period = 1000
pgautofailover.health_check_timeout = 1000
pgautofailover.health_check_max_retries = 1
pgautofailover.health_check_retry_delay = 500
pgautofailover.node_considered_unhealthy_timeout = 3000
pgautofailover.primary_demote_timeout = 3000
pgautofailover.startup_grace_period = 2000"

wait_accepting() { # port seconds
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$1" -t 1 && return 0
		sleep 0.2
	done
	return 1
}

# Healthy: one node primary/primary and one secondary/secondary, both passing the monitor's
# health check and both reported after $since (a restart must not pass on a stale view).
is_healthy() {
	local since=${1:--infinity} s
	s=$(msql "select string_agg(reportedstate||'/'||goalstate, ',' order by reportedstate) from pgautofailover.node
	          where formationid = 'default' and health = 1 and reportedpgisrunning and reporttime > '$since'" 2>/dev/null) || return 1
	[ "$s" = "primary/primary,secondary/secondary" ]
}
wait_healthy() { # seconds [since]
	local start=$SECONDS
	while ((SECONDS - start < $1)); do
		is_healthy "${2:--infinity}" && return 0
		sleep 0.5
	done
	say "not healthy after $1 s:"
	msql "select nodename, reportedstate, goalstate, health from pgautofailover.node" >&2 || true
	return 1
}

create_node() { # name port
	say "creating node $1 on port $2"
	# Without --run: initdb (or base backup), register with the monitor, stop; started below.
	AS_PG_TIMEOUT=$TIMEOUT as_pg pg_autoctl create postgres \
		--pgdata "$D/$1" --pgport "$2" --pgctl "$PGBIN/pg_ctl" \
		--hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl \
		--name "$1" --monitor "$(monitor_url)" --candidate-priority 50 --replication-quorum true \
		>>"$D/log/$1.create.log" 2>&1 || die "creating $1 failed, see $D/log/$1.create.log"
	append_conf "$D/$1"
}

cmd_up() {
	local started=$SECONDS since
	mkdir -p "$D"/{xdg/config,xdg/data,xdg/run,pids,log}
	chmod 700 "$D/xdg/run"
	# postgres must be able to reach <dir>: every parent traversable.
	local p=$D
	while [ "$p" != / ]; do p=$(dirname "$p"); chmod o+x "$p" 2>/dev/null || true; done
	[ "$(id -u)" = 0 ] && chown -R postgres:postgres "$D"
	if [ ! -f "$D/ports.env" ]; then
		read -r pm pa pb < <(pick_ports)
		printf 'PORT_MONITOR=%s\nPORT_A=%s\nPORT_B=%s\n' "$pm" "$pa" "$pb" >"$D/ports.env"
	fi
	load_ports

	if [ ! -f "$D/monitor/PG_VERSION" ]; then
		say "creating the monitor on port $PORT_MONITOR"
		AS_PG_TIMEOUT=120 as_pg pg_autoctl create monitor \
			--pgdata "$D/monitor" --pgport "$PORT_MONITOR" --pgctl "$PGBIN/pg_ctl" \
			--hostname 127.0.0.1 --listen 127.0.0.1 --auth trust --no-ssl \
			>>"$D/log/monitor.create.log" 2>&1 || die "creating the monitor failed, see $D/log/monitor.create.log"
		append_conf "$D/monitor" "$MONITOR_SETTINGS"
	fi
	start_node monitor
	wait_accepting "$PORT_MONITOR" 60 || die "the monitor does not accept connections"
	for _ in $(seq 1 50); do msql "select 1" >/dev/null 2>&1 && break; sleep 0.2; done
	since=$(msql "select now()")

	[ -f "$D/a/PG_VERSION" ] || create_node a "$PORT_A"
	start_node a
	# b's creation takes a base backup from a, so a must be running first.
	[ -f "$D/b/PG_VERSION" ] || create_node b "$PORT_B"
	start_node b
	wait_healthy "$TIMEOUT" "$since" || die "the formation is not healthy"
	say "healthy after $((SECONDS - started)) s"
	formation_url
}

cmd_kill_primary() {
	load_ports
	local name pid postmaster children semaphore left
	name=$(msql "select nodename from pgautofailover.node where reportedstate in ('primary','wait_primary','single')
	             and goalstate in ('primary','wait_primary','single') limit 1") || die "the monitor cannot be reached"
	[ -n "$name" ] || die "no primary"
	pid=$(pid_of "$name")
	alive "$pid" || die "the primary $name has no running pg_autoctl"
	# Backends may leave pg_autoctl's process group: remember the postmaster's children.
	postmaster=$(head -1 "$D/$name/postmaster.pid" 2>/dev/null || true)
	children=$([ -n "$postmaster" ] && pgrep -P "$postmaster" | tr '\n' ' ' || true)
	semaphore=$(semaphore_of "$name")
	kill -9 -- "-$pid"
	echo "$name $(date +%s.%3N)"
	say "killed -9 the process group $pid (node $name, postmaster $postmaster)"
	drop_semaphore "$semaphore"
	# Backends exit when the postmaster dies; SIGKILL whoever is left after 5 s.
	for _ in $(seq 1 50); do
		left=""
		for c in $children; do alive "$c" && left="$left $c"; done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	say "killing leftover backends:$left"
	# shellcheck disable=SC2086
	kill -9 $left 2>/dev/null || true
}

cmd_start() {
	load_ports
	for n in monitor $NODES; do start_node "$n"; done
}

cmd_state() {
	load_ports
	local n pid
	for n in monitor $NODES; do
		pid=$(pid_of "$n")
		if alive "$pid"; then echo "$n: pg_autoctl pid $pid, running"; else echo "$n: stopped"; fi
	done
	msql "select format('%s: port %s, %s (goal %s)%s', nodename, nodeport, reportedstate, goalstate,
	             case when health = 1 then '' else ', unhealthy' end)
	      from pgautofailover.node order by nodename" 2>/dev/null || echo "the monitor cannot be reached"
}

stop_one() {
	local n=$1 pid postmaster semaphore shmid i
	pid=$(pid_of "$n")
	semaphore=$(semaphore_of "$n")
	postmaster=$(head -1 "$D/$n/postmaster.pid" 2>/dev/null || true)
	if alive "$pid"; then
		kill -TERM "$pid" # pg_autoctl stops PostgreSQL (fast mode), then exits
		for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
		if alive "$pid"; then
			say "$n: pg_autoctl $pid still running after 30 s, SIGKILL to its group"
			kill -9 -- "-$pid" 2>/dev/null || true
			sleep 0.2
			drop_semaphore "$semaphore"
		fi
	fi
	# The postmaster (its pid file may be stale after a kill -9: only if it is this PGDATA's).
	if alive "$postmaster" && ps -o cmd= -p "$postmaster" | grep -qF -- "-D $D/$n"; then
		for ((i = 0; i < 100; i++)); do alive "$postmaster" || break; sleep 0.1; done
		if alive "$postmaster"; then
			# Under pg_autoctl, pg_ctl stop needs -W (pg_autoctl holds the pid file's wait).
			as_pg "$PGBIN/pg_ctl" stop -D "$D/$n" -m immediate -W >/dev/null 2>&1 || true
		fi
	fi
	# A postmaster killed with -9 and never restarted leaves its shared memory segment
	# (line 7 of postmaster.pid: key and id): drop it when it is that postmaster's and unused.
	shmid=$(sed -n 7p "$D/$n/postmaster.pid" 2>/dev/null | awk '{print $2}' || true)
	if [ -n "$shmid" ] && ! alive "$postmaster" && ipcs -m -i "$shmid" 2>/dev/null | grep -q "cpid=$postmaster[[:space:]]*nattch=0"; then
		ipcrm -m "$shmid" 2>/dev/null || true
	fi
	rm -f "$D/pids/$n.pid"
}

cmd_async_standby() {
	load_ports
	local standby primary i
	standby=$(msql "select nodename from pgautofailover.node where reportedstate = 'secondary' limit 1")
	primary=$(msql "select nodeport from pgautofailover.node where reportedstate = 'primary' limit 1")
	[ -n "$standby" ] && [ -n "$primary" ] || die "no primary and secondary to work with"
	as_pg pg_autoctl set node replication-quorum false --pgdata "$D/$standby" >>"$D/log/$standby.log" 2>&1 \
		|| die "pg_autoctl set node replication-quorum false failed (see $D/log/$standby.log)"
	for ((i = 0; i < 150; i++)); do
		[ -z "$("$PGBIN/psql" -X -At -h 127.0.0.1 -p "$primary" -U postgres -d postgres -c 'show synchronous_standby_names')" ] \
			&& { say "$standby is asynchronous now"; return 0; }
		sleep 0.2
	done
	die "the primary still waits for $standby after 30 s"
}

cmd_down() {
	[ -f "$D/ports.env" ] || return 0
	load_ports
	local jobs=()
	for n in $NODES; do stop_one "$n" & jobs+=($!); done
	wait "${jobs[@]}" || true
	stop_one monitor
	say "stopped"
}

case $CMD in
up) cmd_up ;;
url) load_ports; formation_url ;;
kill-primary) cmd_kill_primary ;;
start) cmd_start ;;
wait-healthy) load_ports; wait_healthy "${1:-$TIMEOUT}" ;;
state) cmd_state ;;
monitor-sql) load_ports; msql "$1" ;;
async-standby) cmd_async_standby ;;
down) cmd_down ;;
*) die "unknown command $CMD" ;;
esac
