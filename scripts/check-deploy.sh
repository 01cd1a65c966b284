#!/usr/bin/env bash
# Checks every file under deploy/, from the repository root:
#
#   scripts/check-deploy.sh
#
#   promtool check config  deploy/prometheus/prometheus.yml      (and the rule files it names)
#   promtool check rules   deploy/prometheus/tally-alerts.yml
#   promtool test rules    deploy/prometheus/tally-alerts.test.yml
#   scripts/check-dashboard.py deploy/grafana/tally-dashboard.json
#   systemd-analyze verify deploy/systemd/tally.service          (in a throw-away root, see below)
#   haproxy -c -f deploy/haproxy/haproxy.cfg                     (with its variables set)
#
# Runs every check even after a failure, then prints what failed and exits 1 (2 when a tool
# is missing). Needs promtool (Debian: prometheus), systemd-analyze (Debian: systemd),
# haproxy and python3; no running Prometheus, Grafana, HAProxy or systemd.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2

PROMTOOL=${PROMTOOL:-promtool}
SYSTEMD_ANALYZE=${SYSTEMD_ANALYZE:-systemd-analyze}
UNIT=deploy/systemd/tally.service

missing=()
command -v "$PROMTOOL" >/dev/null || missing+=("promtool (apt-get install prometheus)")
command -v "$SYSTEMD_ANALYZE" >/dev/null || missing+=("systemd-analyze (apt-get install systemd)")
command -v python3 >/dev/null || missing+=("python3")
command -v haproxy >/dev/null || missing+=("haproxy (apt-get install haproxy)")
if [ ${#missing[@]} -gt 0 ]; then
  printf 'check-deploy: missing: %s\n' "${missing[@]}" >&2
  exit 2
fi

failed=()
run() {
  local name=$1; shift
  echo "==> $name"
  if "$@"; then
    echo
  else
    echo "--> FAILED: $name"
    echo
    failed+=("$name")
  fi
}

# systemd-analyze verify checks ExecStart= against the file system and needs the units the
# service depends on (sysinit.target, ...). The binary is not installed on a build machine,
# so verify in a throw-away root: the system's unit directory copied in, the unit under
# /etc/systemd/system and a stand-in executable at the ExecStart path. Also, verify exits 0
# on a misspelt key or a value it cannot parse ("Unknown key ..., ignoring"): any output
# at all is a failure here.
verify_unit() (
  root=$(mktemp -d) || exit 1
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd"
  cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/" || exit 1
  cp "$UNIT" "$root/etc/systemd/system/" || exit 1
  exec_path=$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$UNIT" | head -n 1)
  if [ -z "$exec_path" ] || [ "${exec_path#/}" = "$exec_path" ]; then
    echo "$UNIT: no absolute ExecStart= path"
    exit 1
  fi
  mkdir -p "$root$(dirname "$exec_path")"
  cp /bin/true "$root$exec_path"
  output=$("$SYSTEMD_ANALYZE" verify --root="$root" "$(basename "$UNIT")" 2>&1)
  status=$?
  output=${output//$root/}
  [ -n "$output" ] && printf '%s\n' "$output"
  if [ $status -ne 0 ] || [ -n "$output" ]; then
    exit 1
  fi
  echo "$UNIT: verified (ExecStart $exec_path stood in by /bin/true)"
)

# The balancer's configuration reads its addresses from the environment (scripts/cluster.sh
# sets them); any values do for a syntax and sanity check.
check_haproxy() {
  TALLY_LB_BIND=127.0.0.1:8080 TALLY_LB_METRICS_BIND=127.0.0.1:8404 TALLY_LB_SOCKET=/tmp/tally-check-haproxy.sock \
    TALLY_NODE1=127.0.0.1:18081 TALLY_NODE2=127.0.0.1:18082 TALLY_NODE3=127.0.0.1:18083 \
    haproxy -c -f deploy/haproxy/haproxy.cfg
}

run "promtool check config" "$PROMTOOL" check config deploy/prometheus/prometheus.yml
run "promtool check rules" "$PROMTOOL" check rules deploy/prometheus/tally-alerts.yml
run "promtool test rules" "$PROMTOOL" test rules deploy/prometheus/tally-alerts.test.yml
run "check-dashboard" python3 scripts/check-dashboard.py deploy/grafana/tally-dashboard.json
run "systemd-analyze verify" verify_unit
run "haproxy -c" check_haproxy

if [ ${#failed[@]} -gt 0 ]; then
  printf -v list '%s, ' "${failed[@]}"
  echo "check-deploy: FAILED: ${list%, }"
  exit 1
fi
echo "check-deploy: all checks passed"
