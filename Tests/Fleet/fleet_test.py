#!/usr/bin/env python3
"""The fleet test: three `tally serve` nodes behind HAProxy over a pg_auto_failover formation,
all started by scripts/cluster.sh in a fresh directory on 127.0.0.1, while things are killed.

    python3 Tests/Fleet/fleet_test.py [--tally-bin PATH] [--keep]     (make fleet-test; part of make test)

Under load through the balancer (scripts/fleet-load.py: a ledger per key):
  1. a flooding client gets 429s while /readyz and /metrics, asked through the balancer as
     the same client, never do, and the balancer keeps every node in rotation;
  2. kill -9 node 1, start it again;
  3. SIGTERM node 2: /readyz turns 503 ("draining") while it still answers, the balancer
     takes it out before its listener closes, it exits 0 with every increment it took in
     PostgreSQL (its checkpoint row equals its log's end); start it again;
  4. freeze node 3 (SIGSTOP) past the balancer's server timeout: a plain POST sent to it is
     answered 504 and never sent elsewhere, a POST with an Idempotency-Key is sent elsewhere
     (a balancer that retried plain POSTs would count them twice when the node wakes up);
  5. kill -9 the PostgreSQL primary: the nodes keep acknowledging, the standby is promoted,
     checkpoints resume; the old primary rejoins as the standby.
Then, without load, increments straight to node 3:
  6. an in-doubt COMMIT: the primary is killed while node 3's checkpoint COMMIT waits for the
     synchronous standby, once with the commit lost (the standby never saw it) and once with
     it kept (the standby has it, the answer never came back); node 3 must end exact;
  7. an LSN regression: the standby made asynchronous and held back, one checkpoint of node 3
     committed on the primary only, the primary killed: node 3 must see the stored LSN go
     back, replay from its kept segments and end exact; Prometheus fires TallyCheckpointRegressed.
Checked at the end: for every key, acknowledged <= PostgreSQL total <= acknowledged + in doubt
(and the daily totals add up); at least 95 % of the requests answered 200 in every phase and
in every 5-second window; Prometheus scraped every node. Reported: the failover's write pause
as the nodes saw it (their checkpoint lag). Everything started is stopped by PID at the end,
and the test fails if any process of its directory is left.

Bounded: every wait has a limit and the whole test a deadline (FLEET_TEST_DEADLINE, 480 s).
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.dont_write_bytecode = True  # no __pycache__ in scripts/
spec = importlib.util.spec_from_file_location("fleet_load", os.path.join(REPO, "scripts", "fleet-load.py"))
fleet_load = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fleet_load)

CHECKPOINT_INTERVAL = 2  # seconds: short, so that the test sees many checkpoints in little time
DRAIN_TIME = 3  # seconds; the balancer needs 2 failed checks 1 s apart
RATE_LIMIT = 20  # per client and node; the load's clients are many addresses, the flood is one
STARTED = time.monotonic()


class Failed(Exception):
    pass


def log(message):
    print("[%6.1f s] %s" % (time.monotonic() - STARTED, message), flush=True)


def run(args, timeout=120, env=None, check=True):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise Failed("%s exited %d:\n%s%s" % (" ".join(args), result.returncode, result.stdout[-2000:], result.stderr[-3000:]))
    return result


def wait_until(what, seconds, predicate, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # a node or server that is restarting: ask again
            value = None
        if value:
            return value
        time.sleep(interval)
    raise Failed("timed out after %d s waiting for %s" % (seconds, what))


def http_get(url, headers=None, timeout=2):
    """(status, body); status 0 when nothing answered."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (OSError, urllib.error.URLError):
        return 0, ""


def http_post(url, body, headers=None, timeout=5):
    request = urllib.request.Request(url, data=body.encode(), headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (OSError, urllib.error.URLError):
        return 0, ""


def parse_metrics(text):
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


class Fleet:
    """scripts/cluster.sh in a directory of its own, and what the test asks of the fleet."""

    def __init__(self, directory, tally_bin):
        self.dir = directory
        self.env = dict(os.environ, CLUSTER_DIR=directory, TALLY_BIN=tally_bin,
                        CLUSTER_CHECKPOINT_INTERVAL="%ds" % CHECKPOINT_INTERVAL, CLUSTER_DRAIN_TIME="%ds" % DRAIN_TIME,
                        CLUSTER_RATE_LIMIT=str(RATE_LIMIT), CLUSTER_LOG_LEVEL="info")
        self.tally_bin = tally_bin

    def cluster(self, *args, timeout=240):
        return run([os.path.join(REPO, "scripts", "cluster.sh")] + list(args), timeout=timeout, env=self.env)

    def formation(self, *args, timeout=180):
        return run([os.path.join(REPO, "scripts", "pg-formation.sh"), args[0], os.path.join(self.dir, "pg")] + list(args[1:]),
                   timeout=timeout, env=self.env)

    def up(self):
        out = self.cluster("up", timeout=300).stdout.strip().splitlines()
        urls = dict(line.split("=", 1) for line in out[-3:])
        if list(urls) != ["LB_URL", "DATABASE_URL", "PROMETHEUS_URL"]:
            raise Failed("cluster.sh up did not end with the three URL lines: %s" % out[-3:])
        self.lb, self.database_url, self.prometheus = urls["LB_URL"], urls["DATABASE_URL"], urls["PROMETHEUS_URL"]
        settings = dict(line.strip().split("=", 1) for line in open(os.path.join(self.dir, "cluster.env")) if "=" in line)
        self.node_ports = {n: int(settings["NODE%d_PORT" % n]) for n in (1, 2, 3)}
        self.lb_metrics_port = int(settings["LB_METRICS_PORT"])
        pg = dict(line.strip().split("=", 1) for line in open(os.path.join(self.dir, "pg", "ports.env")) if "=" in line)
        self.monitor_port = int(pg["PORT_MONITOR"])
        log("fleet up: %s, nodes on %s, %s, %s" % (self.lb, self.node_ports, self.prometheus, self.database_url))

    def node_url(self, n):
        return "http://127.0.0.1:%d" % self.node_ports[n]

    def node_pid(self, n):
        return int(open(os.path.join(self.dir, "pids", "node%d.pid" % n)).read())

    def node_id(self, n):
        return open(os.path.join(self.dir, "node%d" % n, "node-id")).read().strip()

    def metrics(self, n):
        status, body = http_get(self.node_url(n) + "/metrics", timeout=2)
        if status != 200:
            raise Failed("node %d /metrics answered %d" % (n, status))
        return parse_metrics(body)

    def balancer_view(self):
        """{(backend, server): status} from HAProxy's stats CSV."""
        status, body = http_get("http://127.0.0.1:%d/stats;csv" % self.lb_metrics_port)
        view = {}
        for line in body.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[1].startswith("node"):
                view[(fields[0], fields[1])] = fields[17]
        return view

    def sql(self, port, query, timeout=10):
        return run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                    "-c", query], timeout=timeout).stdout.strip()

    def monitor_sql(self, query):
        return run(["psql", "-X", "-At", "-F", " ", "-d",
                    "postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover" % self.monitor_port, "-c", query],
                   timeout=10).stdout.strip()

    def primary_and_standby(self):
        rows = self.monitor_sql("select reportedstate, nodeport from pgautofailover.node")
        states = dict(line.split() for line in rows.splitlines())
        return int(states["primary"]), int(states["secondary"])

    def wait_healthy(self, seconds=120):
        self.formation("wait-healthy", str(seconds), timeout=seconds + 10)

    def prometheus_query(self, query):
        status, body = http_get(self.prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": query}), timeout=5)
        if status != 200:
            raise Failed("Prometheus answered %d to %s" % (status, query))
        return json.loads(body)["data"]["result"]


class Sampler(threading.Thread):
    """Every node's /metrics every 200 ms: the checkpoint lag and position as the nodes see them."""

    NAMES = ("tally_checkpoint_lag_seconds", "tally_checkpoint_lsn", "tally_pending_records", "tally_postgres_up",
             "tally_checkpoint_regressions", "tally_checkpoints_completed")

    def __init__(self, fleet):
        super().__init__(daemon=True)
        self.fleet = fleet
        self.samples = []  # (monotonic time, node, {name: value})
        self.ready_in_balancer = []  # (monotonic time, how many nodes HAProxy's `tally` backend has UP)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            for n in (1, 2, 3):
                status, body = http_get(self.fleet.node_url(n) + "/metrics", timeout=0.5)
                if status == 200:
                    values = parse_metrics(body)
                    self.samples.append((time.monotonic(), n, {name: values.get(name) for name in self.NAMES}))
            view = self.fleet.balancer_view()
            if view:
                self.ready_in_balancer.append((time.monotonic(), sum(
                    1 for (backend, _), status in view.items() if backend == "tally" and status.startswith("UP"))))
            self.stopping.wait(0.2)

    def commits(self, node):
        """Times at which the node's stored checkpoint LSN was seen to move (to within a sample)."""
        times, last = [], None
        for t, n, values in self.samples:
            if n == node and values.get("tally_checkpoint_lsn") is not None:
                if last is not None and values["tally_checkpoint_lsn"] != last:
                    times.append(t)
                last = values["tally_checkpoint_lsn"]
        return times

    def peak(self, name, start, end, node=None):
        values = [(v[name], n) for t, n, v in self.samples if start <= t <= end and v.get(name) is not None
                  and (node is None or n == node)]
        return max(values) if values else (None, None)


class Test:
    def __init__(self, fleet):
        self.fleet = fleet
        self.failures = []
        self.report = []
        self.phases = []  # (name, start epoch second, end epoch second)
        self.ledgers = []  # (name, ledger, keys)

    def check(self, condition, message):
        if not condition:
            self.failures.append(message)
            log("FAILED: " + message)
        return condition

    def note(self, message):
        self.report.append(message)
        log(message)

    def phase(self, name, action):
        start = time.time()
        log("phase: " + name)
        action()
        self.phases.append((name, start, time.time()))

    # ---------------------------------------------------------------- scenarios under load

    def rate_limit_is_per_client_and_spares_probes(self):
        fleet = self.fleet
        flood = fleet_load.Load(fleet.lb, clients=4, keys=3, keyed_share=0, seconds=30, client_address="10.66.66.66")
        flood.start()
        probes = {"/readyz": [], "/metrics": []}
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for path in probes:
                status, _ = http_get(fleet.lb + path, headers={"X-Forwarded-For": "10.66.66.66"})
                probes[path].append(status)
            time.sleep(0.05)
        ledger = flood.stop()
        self.ledgers.append(("flood", ledger, flood.keys))
        limited = ledger.statuses.get(429, 0)
        self.check(limited > 0, "the flooding client was never rate limited (%s)" % dict(ledger.statuses))
        for path, statuses in probes.items():
            self.check(statuses and all(s == 200 for s in statuses),
                       "%s through the balancer, as the flooding client, answered %s" % (path, sorted(set(statuses))))
        view = fleet.balancer_view()
        self.check(all(view.get(("tally", "node%d" % n), "").startswith("UP") for n in (1, 2, 3)),
                   "the balancer took a node out during the flood: %s" % view)
        self.note("rate limit: the flooding client got %d x 429 of %d requests; %d probes of /readyz and /metrics "
                  "through the balancer as that client all answered 200" % (
                      limited, sum(ledger.statuses.values()), sum(len(s) for s in probes.values())))

    def kill_and_restart_node_1(self):
        self.fleet.cluster("kill-node", "1")
        time.sleep(3)
        self.fleet.cluster("start-node", "1")
        wait_until("the balancer to take node 1 back", 20,
                   lambda: self.fleet.balancer_view().get(("tally", "node1"), "").startswith("UP"))

    def drain_node_2(self):
        fleet = self.fleet
        seen = []  # (time, readyz status or 0 when refused, balancer's view of node 2)
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                status, body = http_get(fleet.node_url(2) + "/readyz", timeout=0.5)
                seen.append((time.monotonic(), status, body, fleet.balancer_view().get(("tally", "node2"), "?")))
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.3)
        signalled = time.monotonic()
        fleet.cluster("stop-node", "2")
        stop.set()
        watcher.join(5)
        exit_status = open(os.path.join(fleet.dir, "pids", "node2.exit")).read().strip()
        self.check(exit_status == "0", "node 2 exited %s after SIGTERM, not 0" % exit_status)
        draining = [t for t, s, body, _ in seen if s == 503 and "draining" in body]
        refused = [t for t, s, _, _ in seen if s == 0 and t > signalled]
        out_of_rotation = [t for t, _, _, view in seen if not view.startswith("UP")]
        if self.check(draining, "node 2 never answered /readyz 503 draining after SIGTERM"):
            first_refused = refused[0] if refused else float("inf")
            self.check(draining[0] < first_refused, "node 2 stopped listening before /readyz said draining")
            self.check(out_of_rotation and out_of_rotation[0] < first_refused,
                       "the balancer still sent to node 2 when its listener closed")
            self.note("drain: /readyz 503 %.1f s after SIGTERM; balancer took node 2 out after %.1f s; "
                      "listener closed after %.1f s; exit status %s" % (
                          draining[0] - signalled, (out_of_rotation or [signalled])[0] - signalled,
                          first_refused - signalled, exit_status))
        # Every increment node 2 took is in PostgreSQL: its checkpoint row is its log's end.
        verify = run([fleet.tally_bin, "verify", os.path.join(fleet.dir, "node2")], check=False)
        match = re.search(r"next LSN (\d+)", verify.stdout + verify.stderr)
        stored = run(["psql", "-X", "-At", "-d", fleet.database_url, "-c",
                      "select lsn from tally_checkpoints where node = '%s'" % fleet.node_id(2)], timeout=20).stdout.strip()
        self.check(match and stored and int(stored) == int(match.group(1)) - 1,
                   "after SIGTERM node 2's checkpoint is LSN %s but its log ends at %s: the final checkpoint was skipped" % (
                       stored, int(match.group(1)) - 1 if match else verify.stdout[-300:]))
        fleet.cluster("start-node", "2")
        wait_until("the balancer to take node 2 back", 20,
                   lambda: fleet.balancer_view().get(("tally", "node2"), "").startswith("UP"))

    def freeze_node_3(self):
        fleet = self.fleet
        pid = fleet.node_pid(3)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(6.5)  # past the balancer's `timeout server 5s`
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until("the balancer to take node 3 back", 20,
                   lambda: fleet.balancer_view().get(("tally", "node3"), "").startswith("UP"))

    def kill_postgres_primary(self, sampler):
        fleet = self.fleet
        _, standby = fleet.primary_and_standby()
        killed_at = time.monotonic()
        victim = fleet.cluster("kill-db-primary").stdout.split()[0]
        promoted = wait_until("the standby to be promoted", 60, lambda: fleet.monitor_sql(
            "select 1 from pgautofailover.node where nodeport = %d and reportedstate in ('wait_primary', 'primary')" % standby))
        promoted_at = time.monotonic()

        def resumed():
            return all(fleet.metrics(n).get("tally_postgres_up") == 1 and fleet.metrics(n).get("tally_checkpoint_lsn", 0) >
                       before[n] for n in (1, 2, 3))
        before = {n: max([v["tally_checkpoint_lsn"] or 0 for t, m, v in sampler.samples if m == n and t <= killed_at] or [0])
                  for n in (1, 2, 3)}
        wait_until("every node's checkpoints to reach the new primary", 60, resumed, interval=0.2)
        resumed_at = time.monotonic()
        time.sleep(1)
        # The write pause as each node saw it: from its last checkpoint COMMIT before the kill to
        # its first after, and the highest checkpoint lag it reported meanwhile.
        pauses = []
        for n in (1, 2, 3):
            commits = sampler.commits(n)
            before_kill = [t for t in commits if t <= killed_at]
            after_kill = [t for t in commits if t > killed_at]
            if before_kill and after_kill:
                pauses.append((after_kill[0] - before_kill[-1], n))
        pause, pause_node = max(pauses) if pauses else (0, None)
        peak, peak_node = sampler.peak("tally_checkpoint_lag_seconds", killed_at, resumed_at + 1)
        unready = [t for t, up in sampler.ready_in_balancer if killed_at <= t <= resumed_at + 1 and up == 0]
        in_doubt = sum(open(os.path.join(fleet.dir, "log", "node%d.log" % n)).read().count("outcome unknown") for n in (1, 2, 3))
        self.note("PostgreSQL failover (kill -9 of %s under load): standby promoted after %.1f s, every node "
                  "checkpointing again after %.1f s; write pause seen by the nodes (checkpoint to checkpoint) up to "
                  "%.1f s (node %s), checkpoint lag peak %.1f s (node %s, %d s interval); no node ready for the "
                  "balancer during ~%.1f s (it sent to every live node meanwhile); %d in-doubt COMMITs so far" % (
                      victim, promoted_at - killed_at, resumed_at - killed_at, pause, pause_node, peak or 0, peak_node,
                      CHECKPOINT_INTERVAL, 0.2 * len(unready), in_doubt))
        del promoted
        fleet.cluster("start-db")
        fleet.wait_healthy(120)
        log("the old primary is the standby again")

    # ---------------------------------------------------------------- in-doubt COMMIT and regression

    def wait_node_quiet(self, n, seconds=30):
        wait_until("node %d to checkpoint everything" % n, seconds, lambda: (
            lambda m: m.get("tally_pending_records") == 0 and m.get("tally_checkpoint_lag_seconds") == 0
            and m.get("tally_postgres_up") == 1)(self.fleet.metrics(n)), interval=0.2)

    def walsender(self, primary):
        pid = wait_until("a walsender on the primary", 20,
                         lambda: self.fleet.sql(primary, "select pid from pg_stat_replication limit 1"))
        return int(pid)

    def in_doubt_commit(self, keep_commit):
        """The primary dies while node 3's COMMIT waits for the synchronous standby."""
        fleet = self.fleet
        name = "in-doubt COMMIT, %s" % ("kept by the standby" if keep_commit else "lost with the primary")
        log("scenario: " + name)
        fleet.wait_healthy(120)
        for n in (1, 2, 3):  # only node 3 may have a COMMIT waiting below
            self.wait_node_quiet(n, 30)
        node_log = os.path.join(fleet.dir, "log", "node3.log")
        unknown_before = open(node_log).read().count("outcome unknown")
        primary, standby = fleet.primary_and_standby()
        walsender = self.walsender(primary)
        trickle = fleet_load.Load(fleet.node_url(3), clients=2, keys=5, keyed_share=0, seconds=120)
        os.kill(walsender, signal.SIGSTOP)  # the standby hears nothing more: COMMITs wait (synchronous)
        backend = None
        try:
            trickle.start()
            backend = int(wait_until("node 3's COMMIT waiting for the standby", 15, lambda: fleet.sql(
                primary, "select pid from pg_stat_activity where wait_event = 'SyncRep' and application_name = 'tally' limit 1")))
            if keep_commit:
                # Hold the backend so that its answer never leaves, let the standby have the commit.
                os.kill(backend, signal.SIGSTOP)
                os.kill(walsender, signal.SIGCONT)
                target = fleet.sql(primary, "select pg_current_wal_flush_lsn()")
                wait_until("the standby to receive the COMMIT", 15, lambda: fleet.sql(
                    standby, "select pg_last_wal_receive_lsn() >= '%s'::pg_lsn" % target) == "t")
            fleet.cluster("kill-db-primary")
        finally:
            for pid in (backend, walsender):
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        wait_until("the standby to be promoted", 60, lambda: fleet.monitor_sql(
            "select 1 from pgautofailover.node where nodeport = %d and reportedstate in ('wait_primary', 'primary')" % standby))
        time.sleep(2)  # a few more increments through the failover
        ledger = trickle.stop()
        self.ledgers.append((name, ledger, trickle.keys))
        self.wait_node_quiet(3, 60)
        self.check(open(node_log).read().count("outcome unknown") > unknown_before,
                   "%s: node 3 never saw its COMMIT's outcome as unknown" % name)
        totals, problems = fleet_load.postgres_totals(fleet.database_url, trickle.keys)
        exact = all(totals.get(k, 0) == ledger.acknowledged.get(k, 0) for k in trickle.keys if not ledger.in_doubt.get(k))
        problems += fleet_load.check_ledger(ledger, totals, trickle.keys)
        self.check(not problems and exact, "%s: %s" % (name, problems or "not exact"))
        self.note("%s: %d increments acknowledged by node 3 across the failover, PostgreSQL exact" % (
            name, ledger.statuses.get(200, 0)))
        fleet.cluster("start-db")

    def lsn_regression(self):
        fleet = self.fleet
        log("scenario: LSN regression")
        fleet.wait_healthy(120)
        fleet.formation("async-standby")
        primary, standby = fleet.primary_and_standby()
        key = str(uuid.uuid4())
        url = fleet.node_url(3) + "/increments"
        acknowledged = 0

        def bulk(count, value):
            nonlocal acknowledged
            body = "".join('{"key":"%s","value":%d}\n' % (key, value) for _ in range(count))
            status, answer = http_post(url, body, {"Content-Type": "application/x-ndjson"})
            if not self.check(status == 200, "bulk increment to node 3 answered %d %s" % (status, answer)):
                raise Failed("cannot go on")
            acknowledged += count * value

        bulk(10, 1)  # checkpointed on both servers
        self.wait_node_quiet(3)
        wait_until("the standby to catch up", 20, lambda: fleet.sql(
            standby, "select pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % fleet.sql(primary, "select pg_current_wal_lsn()")) == "t")
        walsender = self.walsender(primary)
        before = fleet.metrics(3)["tally_checkpoint_lsn"]
        os.kill(walsender, signal.SIGSTOP)
        try:
            bulk(50, 2)  # one request, one frame, so exactly one checkpoint carries it
            wait_until("node 3's checkpoint on the primary alone", 20, lambda: (
                lambda m: m["tally_checkpoint_lsn"] > before and m["tally_pending_records"] == 0)(fleet.metrics(3)))
            fleet.cluster("kill-db-primary")
        finally:
            try:
                os.kill(walsender, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until("the lagging standby to be promoted", 60, lambda: fleet.monitor_sql(
            "select 1 from pgautofailover.node where nodeport = %d and reportedstate in ('wait_primary', 'primary')" % standby))
        wait_until("node 3 to see its checkpoint go back", 30,
                   lambda: fleet.metrics(3).get("tally_checkpoint_regressions", 0) >= 1, interval=0.2)
        self.wait_node_quiet(3, 30)
        status, _ = http_get(fleet.node_url(3) + "/readyz")
        self.check(status == 200, "node 3 /readyz answered %d after healing the regression" % status)
        node_log = open(os.path.join(fleet.dir, "log", "node3.log")).read()
        self.check("went back" in node_log, "node 3 did not log the regression")
        totals, _ = fleet_load.postgres_totals(fleet.database_url, [key])
        self.check(totals.get(key) == acknowledged, "after the regression PostgreSQL has %s for the key, acknowledged %d" % (
            totals.get(key), acknowledged))
        alert = wait_until("Prometheus to fire TallyCheckpointRegressed for node 3", 30, lambda: fleet.prometheus_query(
            'ALERTS{alertname="TallyCheckpointRegressed", alertstate="firing", instance="127.0.0.1:%d"}' % fleet.node_ports[3]),
            interval=1)
        self.note("LSN regression: node 3 saw its checkpoint go back, replayed its kept segments, PostgreSQL has "
                  "exactly the %d acknowledged; Prometheus fired %s" % (acknowledged, alert[0]["metric"]["alertname"]))

    # ---------------------------------------------------------------- final checks

    def check_answers(self, ledger):
        per_second = ledger.per_second
        for name, start, end in self.phases:
            sent = sum(per_second[s][0] for s in per_second if start <= s + 1 and s <= end)
            ok = sum(per_second[s][1] for s in per_second if start <= s + 1 and s <= end)
            ratio = ok / sent if sent else 0
            self.check(sent > 0 and ratio >= 0.95, "phase %r: %d of %d requests answered 200 (%.1f %%)" % (
                name, ok, sent, 100 * ratio))
            self.note("phase %-34s %6d requests, %6.2f %% answered 200" % (name + ":", sent, 100 * ratio))
        seconds = sorted(per_second)
        worst = (1.0, None)
        for first in seconds[:-4] if len(seconds) > 4 else seconds[:1]:
            window = [per_second[s] for s in range(first, first + 5) if s in per_second]
            sent, ok = sum(w[0] for w in window), sum(w[1] for w in window)
            if sent and ok / sent < worst[0]:
                worst = (ok / sent, first)
        self.check(worst[0] >= 0.95, "a 5-second window had only %.1f %% answered 200" % (100 * worst[0]))
        total = sum(ledger.statuses.values())
        self.note("load: %d requests, %.2f %% answered 200, worst 5-second window %.1f %%; by status %s" % (
            total, 100.0 * ledger.statuses.get(200, 0) / max(1, total), 100 * worst[0],
            dict(sorted(ledger.statuses.items(), key=str))))
        self.check(not ledger.unexpected, "unexpected answers: %s" % ledger.unexpected[:3])

    def check_postgres(self):
        for n in (1, 2, 3):
            self.wait_node_quiet(n, 40)
        for name, ledger, keys in self.ledgers:
            totals, problems = fleet_load.postgres_totals(self.fleet.database_url, keys)
            problems += fleet_load.check_ledger(ledger, totals, keys)
            self.check(not problems, "%s: %d keys wrong:\n    %s" % (name, len(problems), "\n    ".join(problems[:10])))
            self.note("%s: %d keys, acknowledged %d, in doubt %d, PostgreSQL %d: acknowledged <= PostgreSQL <= "
                      "acknowledged + in doubt%s" % (name, len(keys), sum(ledger.acknowledged.values()),
                                                     sum(ledger.in_doubt.values()), sum(totals.values()),
                                                     "" if not problems else " FAILS"))

    def check_prometheus(self):
        fleet = self.fleet
        wanted = {"127.0.0.1:%d" % p for p in fleet.node_ports.values()}

        def all_up():
            up = fleet.prometheus_query('up{job="tally"} == 1')
            return {r["metric"]["instance"] for r in up} == wanted
        wait_until("Prometheus to see every node up", 30, all_up, interval=1)
        scraped = fleet.prometheus_query("count by (instance) (tally_log_durable_lsn)")
        self.check({r["metric"]["instance"] for r in scraped} == wanted, "Prometheus has no Tally series from %s" % (
            wanted - {r["metric"]["instance"] for r in scraped}))
        self.check(fleet.prometheus_query('up{job="haproxy"} == 1'), "Prometheus does not scrape HAProxy")
        # Every metric the alert rules and the dashboard name must exist in a real Prometheus
        # scraping a real fleet (promtool checks only the syntax): a misspelt name would
        # leave an alert silent forever. The metrics of the fleet release may be missing
        # from an older daemon; they are reported, not failed.
        expressions = rule_expressions(os.path.join(REPO, "deploy/prometheus/tally-alerts.yml")) + [
            t.get("expr", "") for t in dashboard_targets(os.path.join(REPO, "deploy/grafana/tally-dashboard.json"))]
        text = re.sub(r'"[^"]*"', "", " ".join(expressions))  # label values such as proxy="tally_alive"
        names = set(re.findall(r"\b((?:tally|haproxy)_[a-z0-9_]+)", text))
        status, body = http_get(fleet.prometheus + "/api/v1/label/__name__/values", timeout=5)
        exported = set(json.loads(body)["data"]) if status == 200 else set()
        pending = {name for name in names if any(name.startswith(p) for p in FLEET_RELEASE_METRICS)}
        self.check(not (names - exported - pending), "alert rules or dashboard name metrics nobody exports: %s" % sorted(
            names - exported - pending))
        missing = sorted(pending - exported)
        self.note("the alert rules and the dashboard name %d metrics, all exported%s" % (
            len(names), "" if not missing else " but these of the fleet release, not yet by this daemon: %s" % ", ".join(missing)))
        peaks = fleet.prometheus_query("max_over_time(tally_checkpoint_lag_seconds[15m])")
        self.note("Prometheus scraped all 3 nodes and HAProxy; its highest checkpoint lag per node: %s" % ", ".join(
            "%s %.1f s" % (r["metric"]["instance"], float(r["value"][1])) for r in sorted(peaks, key=lambda r: r["metric"]["instance"])))


# Metrics of the daemon's fleet release that the rules and the dashboard already use.
FLEET_RELEASE_METRICS = ()


def rule_expressions(path):
    """The `expr` of every rule (one line, or a `|` block), without a YAML parser."""
    expressions, lines = [], open(path).read().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if not match:
            continue
        if match.group(2).strip() != "|":
            expressions.append(match.group(2))
            continue
        block = []
        for following in lines[index + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= len(match.group(1)):
                break
            block.append(following)
        expressions.append("\n".join(block))
    return expressions


def dashboard_targets(path):
    def walk(panels):
        for panel in panels or []:
            yield panel
            yield from walk(panel.get("panels"))
    dashboard = json.load(open(path))
    for panel in walk(dashboard.get("panels")):
        yield from panel.get("targets") or []
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            yield {"expr": query.get("query", "")}


def leftovers(directory):
    """PIDs of processes whose command line or working directory names `directory`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = open("/proc/%s/cmdline" % entry, "rb").read().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink("/proc/%s/cwd" % entry)
        except OSError:
            continue
        if directory in cmdline or cwd.startswith(directory):
            found.append((int(entry), cmdline[:120]))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tally-bin", default=os.environ.get("TALLY_BIN", os.path.join(REPO, ".build", "debug", "tally")))
    parser.add_argument("--keep", action="store_true", help="keep the cluster directory afterwards")
    args = parser.parse_args()
    if not os.access(args.tally_bin, os.X_OK):
        print("fleet test: %s is not built (swift build, or --tally-bin)" % args.tally_bin)
        return 2

    def deadline(signum, frame):
        raise Failed("the fleet test ran past its deadline")
    signal.signal(signal.SIGALRM, deadline)
    signal.alarm(int(os.environ.get("FLEET_TEST_DEADLINE", "480")))

    directory = tempfile.mkdtemp(prefix="tally-fleet.")
    fleet = Fleet(directory, os.path.abspath(args.tally_bin))
    test = Test(fleet)
    sampler = Sampler(fleet)
    load = None
    try:
        fleet.up()
        sampler.start()
        load = fleet_load.Load(fleet.lb, clients=12, keys=500, keyed_share=0.25, seconds=300).start()
        test.phase("warm-up", lambda: time.sleep(3))
        test.phase("flooding client rate limited", test.rate_limit_is_per_client_and_spares_probes)
        test.phase("kill -9 node 1, start it", test.kill_and_restart_node_1)
        test.phase("SIGTERM node 2 (drain), start it", test.drain_node_2)
        test.phase("node 3 frozen past the server timeout", test.freeze_node_3)
        test.phase("kill -9 the PostgreSQL primary", lambda: test.kill_postgres_primary(sampler))
        test.phase("after", lambda: time.sleep(3))
        ledger = load.stop()
        test.ledgers.append(("load through the balancer", ledger, load.keys))
        load = None
        test.check_answers(ledger)
        test.in_doubt_commit(keep_commit=False)
        test.in_doubt_commit(keep_commit=True)
        test.lsn_regression()
        test.check_postgres()
        test.check_prometheus()
    except Failed as failure:
        test.failures.append(str(failure))
        log("FAILED: %s" % failure)
    finally:
        signal.alarm(0)
        sampler.stopping.set()
        if load is not None:
            load.stop()
        try:
            fleet.cluster("down", timeout=120)
        except Exception as error:  # report, then look for leftovers below
            test.failures.append("cluster.sh down failed: %s" % error)
        left = leftovers(directory)
        if left:
            test.failures.append("processes left running: %s" % left)
            for pid, _ in left:  # ours by construction: their command line names our directory
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    print("\nfleet test report:")
    for line in test.report:
        print("  " + line)
    if test.failures:
        print("\nfleet test FAILED (%d):" % len(test.failures))
        for failure in test.failures:
            print("  - " + failure)
        print("cluster directory kept for inspection: %s (logs in log/)" % directory)
        return 1
    if args.keep:
        print("cluster directory kept: %s" % directory)
    else:
        shutil.rmtree(directory, ignore_errors=True)
    print("fleet test passed in %.0f s" % (time.monotonic() - STARTED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
