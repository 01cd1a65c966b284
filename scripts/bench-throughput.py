#!/usr/bin/env python3
"""make bench, part 3: reads, bulk ingest and gRPC stream ingest, each beside a peer in the same run.

On loopback, with one PostgreSQL (durable defaults) that Tally checkpoints into:
  * reads: GET /counts/{key} with wrk (bench/reads.lua, keys at random from 10,000 keys counted
    and checkpointed beforehand) against pgbench's primary-key select on the same table and
    keys (`SELECT total FROM tally_counts WHERE key = md5(:k::text)::uuid`, -M prepared), same
    clients and duration;
  * bulk: POST /increments with 1,000-line NDJSON bodies of fresh random keys (wrk,
    bench/bulk.lua), without and with a fresh Idempotency-Key per body, beside the same wrk
    script against nginx `return 200` (what HTTP and the generator cost without Tally) and
    Redis INCRBY pipelined 16 deep (-P 16) with appendonly yes + appendfsync always;
  * grpc: Increment streams from Benchmarks' GRPCLoad (grpc-swift-2 client), N streams ×
    requests of B increments, at most 64 in flight per stream, beside the same Redis run.
Every case records the CPU time per request (and per increment) of the server — Tally's
process and PostgreSQL's tree separately — and of the load generator; Tally's cases also
record records per fdatasync'd frame and fdatasyncs per second from /metrics, and how long
the checkpoints took to catch up afterwards (the next case starts only once nothing is
pending, so that one case's checkpoint does not run during the next).
Prints a table and writes bench/results/throughput-<stamp>.json.

Usage: scripts/bench-throughput.py <tally binary> <GRPCLoad binary> [--seconds 10] [--parts reads,bulk,grpc]
       [--bulk-connections 16] [--grpc-streams 4,16] [--grpc-batches 100,1000]
"""
import argparse, hashlib, http.client, json, os, re, shutil, signal, subprocess, tempfile, threading, time, uuid
from benchproc import cpu_seconds, free_port, process_tree, stop_all, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
parser = argparse.ArgumentParser()
parser.add_argument("tally")
parser.add_argument("grpc_load")
parser.add_argument("--seconds", type=int, default=10)
parser.add_argument("--parts", default="reads,bulk,grpc")
parser.add_argument("--read-keys", type=int, default=10_000)
parser.add_argument("--read-clients", type=int, default=64)
parser.add_argument("--read-pool", default="4,16", help="Tally's --read-connections for the read cases (4 is its default)")
parser.add_argument("--bulk-lines", type=int, default=1000)
parser.add_argument("--bulk-connections", default="16")
parser.add_argument("--redis-clients", type=int, default=64)
parser.add_argument("--redis-pipeline", type=int, default=16)
parser.add_argument("--grpc-streams", default="4,16")
parser.add_argument("--grpc-batches", default="100,1000")
parser.add_argument("--grpc-window", type=int, default=64)
parser.add_argument("--drain-timeout", type=int, default=300)
ARGS = parser.parse_args()
SECONDS = ARGS.seconds
PARTS = set(ARGS.parts.split(","))
started = []  # processes (or callables) to stop at exit, by PID


def tree_cpu_seconds(pid):
    """User + system CPU of the process tree, with its reaped children (PostgreSQL's exited backends)."""
    return cpu_seconds(process_tree(pid))


def run_child(command, timeout, on_line=None):
    """Runs a load generator; returns (stdout, its own CPU seconds from wait4, exit status)."""
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.time() + timeout
        out = []
        for line in child.stdout:
            out.append(line)
            if on_line:
                on_line(line)
            if time.time() > deadline:
                child.kill()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if child.returncode != 0:
        print(f"  {command[0]} exited {child.returncode}: {stderr.strip()[-500:]}")
    return "".join(out), usage.ru_utime + usage.ru_stime, child.returncode


def json_line(out):
    line = next((l for l in out.splitlines() if l.startswith("JSON ")), None)
    if line is None:
        raise RuntimeError(f"no JSON line in: {out[-500:]}")
    return json.loads(line[5:])


def machine_busy_seconds():
    """CPU time the whole machine spent busy (every process, the kernel, steal), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def thread_seconds(pid):
    """CPU seconds of each thread of one process: {tid: (name, seconds)}."""
    threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return threads
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            threads[tid] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError):
            pass
    return threads


class Servers:
    """CPU of named process trees over an interval, and of the whole machine (the noise:
    the machine is shared, so what neither the server nor the client used was someone else's)."""

    def __init__(self, pids):
        self.pids = pids
        self.before = None
        self.machine = 0.0

    def start(self):
        self.before = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        self.machine_before = machine_busy_seconds()
        self.threads_before = thread_seconds(self.pids["tally"]) if "tally" in self.pids else {}
        self.started_at = time.time()

    def stop(self):
        self.machine = machine_busy_seconds() - self.machine_before
        if "tally" in self.pids:
            # Tally's busiest threads: a serial stage (the log writer) shows as one thread near 1 core.
            elapsed = time.time() - self.started_at
            after = thread_seconds(self.pids["tally"])
            busy = sorted(((seconds - self.threads_before.get(tid, (name, 0))[1], name, tid)
                           for tid, (name, seconds) in after.items()), reverse=True)[:4]
            self.top_threads = [{"thread": f"{name}/{tid}", "cores": round(used / elapsed, 2)} for used, name, tid in busy]
        return {name: tree_cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}


def per_unit(result, cpu, client_cpu, requests, increments=None, servers=None):
    for name, seconds in cpu.items():
        result[f"{name}_cpu_us_per_request"] = round(seconds * 1e6 / requests, 1) if requests else None
        if increments:
            result[f"{name}_cpu_us_per_increment"] = round(seconds * 1e6 / increments, 3)
    result["client_cpu_us_per_request"] = round(client_cpu * 1e6 / requests, 1) if requests else None
    if increments:
        result["client_cpu_us_per_increment"] = round(client_cpu * 1e6 / increments, 3)
    result["server_cpu_cores"] = round(sum(cpu.values()) / result.get("seconds", SECONDS), 2)
    result["client_cpu_cores"] = round(client_cpu / result.get("seconds", SECONDS), 2)
    if servers is not None and getattr(servers, "top_threads", None):
        result["tally_top_threads"] = servers.top_threads
    if servers is not None:
        # Cores busy with anything but this case's server and client (other work on the machine).
        seconds = result.get("seconds", SECONDS)
        result["other_cpu_cores"] = round(max(0.0, servers.machine - sum(cpu.values()) - client_cpu) / seconds, 2)


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def metrics(port):
    """Tally's /metrics as {name: value}, with "_at" (when the answer came) and "_took" (how long it took)."""
    asked = time.time()
    _, text = request(port, "GET", "/metrics")
    values = {"_at": time.time(), "_took": time.time() - asked}
    for name, value in re.findall(r"^(tally_[a-z_]+(?:_sum|_count)?)\s+(\S+)$", text.decode(), re.M):
        values[name] = float(value)
    return values


def log_figures(before, after, seconds=None):
    """Records per frame and fdatasyncs per second between two /metrics readings."""
    def delta(name):
        return after.get(name, 0) - before.get(name, 0)
    seconds = delta("_at")
    frames = delta("tally_log_records_per_frame_count")
    syncs = delta("tally_log_fdatasync_seconds_count")
    return {
        "records_per_frame": round(delta("tally_log_records_per_frame_sum") / frames, 1) if frames else None,
        "fdatasyncs_per_second": round(syncs / seconds, 1),
        "fdatasync_mean_ms": round(delta("tally_log_fdatasync_seconds_sum") * 1000 / syncs, 3) if syncs else None,
        "ack_mean_ms": round(delta("tally_increment_ack_seconds_sum") * 1000 / delta("tally_increment_ack_seconds_count"), 2)
        if delta("tally_increment_ack_seconds_count") else None,
        "checkpoints_completed": int(delta("tally_checkpoints_completed")),
        "metrics_answer_ms": round(max(before["_took"], after["_took"]) * 1000, 1),  # GET /metrics under load
    }


def catch_up(port, after):
    """After an ingest case: the keys still pending, and how long the checkpoints took to take
    everything durable at the end of the case to PostgreSQL (the next case starts only then)."""
    keys = after.get("tally_pending_keys", 0)
    seconds = wait_until_checkpointed(port, ARGS.drain_timeout, after.get("tally_log_durable_lsn", 0))
    return {"pending_keys_at_end": int(keys), "checkpoint_catch_up_seconds": seconds}


def wait_until_checkpointed(port, timeout, lsn=None):
    """Seconds until Tally's checkpoint LSN reaches `lsn` (default: its durable LSN now), or
    None if not within timeout. (tally_pending_records is 0 as soon as a checkpoint has
    taken the pending sums, before it commits, so it does not say that PostgreSQL has them.)"""
    start = time.time()
    if lsn is None:
        lsn = metrics(port).get("tally_log_durable_lsn", 0)
    while time.time() - start < timeout:
        if metrics(port).get("tally_checkpoint_lsn", -1) >= lsn:
            return round(time.time() - start, 1)
        time.sleep(0.5)
    return None


def wrk(url, connections, script, script_args, seconds=None):
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds or SECONDS}s", "--latency", "-s",
               os.path.join(ROOT, script), url]
    if script_args:
        command += ["--"] + script_args
    out, client_cpu, status = run_child(command, timeout=(seconds or SECONDS) + 60)
    if status != 0:
        raise RuntimeError(f"wrk failed: {out[-500:]}")
    result = json_line(out)
    result["seconds"] = seconds or SECONDS
    return result, client_cpu


def main():
    work = tempfile.mkdtemp(prefix="tally-throughput-", dir=os.path.join(ROOT, "Benchmarks"))
    os.chmod(work, 0o755)
    results = {"seconds_per_case": SECONDS, "cases": {}, "ratios": {}}
    cases, ratios = results["cases"], results["ratios"]
    try:
        os.environ["PG_EXTRA_OPTIONS"] = "-c max_connections=300"
        url = subprocess.run([os.path.join(ROOT, "scripts/pg-cluster.sh"), "start", os.path.join(work, "pg")],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        started.append(lambda: subprocess.run(["env", "PG_STOP_MODE=immediate", os.path.join(ROOT, "scripts/pg-cluster.sh"),
                                               "stop", os.path.join(work, "pg")]))
        with open(os.path.join(work, "pg/data/postmaster.pid")) as f:
            postgres_pid = int(f.readline())

        tally_port, grpc_port = free_port(), free_port()
        tally = Tally(work, url, tally_port, grpc_port)
        tally.start()
        started.append(tally)
        ports = []

        if PARTS & {"bulk", "grpc"}:
            # Redis with every write fsynced before the reply; no AOF rewrite in the background.
            redis_port = free_port()
            redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--appendonly", "yes",
                                      "--appendfsync", "always", "--auto-aof-rewrite-percentage", "0", "--save", "",
                                      "--dir", work, "--maxclients", "1000"],
                                     stdout=open(os.path.join(work, "redis.log"), "w"))
            started.append(redis)
            ports.append(redis_port)
        if "bulk" in PARTS:
            nginx_port = free_port()
            os.makedirs(os.path.join(work, "nginx/logs"))
            with open(os.path.join(work, "nginx/nginx.conf"), "w") as f:
                f.write(f"""worker_processes auto; daemon off; user root; error_log stderr error; pid {work}/nginx/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; client_max_body_size 4m; client_body_buffer_size 128k;
  server {{ listen 127.0.0.1:{nginx_port}; location / {{ return 200 '{{"lsn":0}}'; }} }} }}
""")
            nginx = subprocess.Popen(["nginx", "-p", os.path.join(work, "nginx"), "-c", os.path.join(work, "nginx/nginx.conf")])
            started.append(nginx)
            ports.append(nginx_port)
        for port in ports:
            wait_for_port(port)
        if "reads" in PARTS:
            run_reads(cases, ratios, work, url, tally, postgres_pid)
        if PARTS & {"bulk", "grpc"}:
            run_redis(cases, redis_port, redis.pid)
        if "bulk" in PARTS:
            run_bulk(cases, ratios, tally, postgres_pid, nginx_port, nginx.pid)
        if "grpc" in PARTS:
            run_grpc(cases, ratios, tally, postgres_pid)

        results["tally_stops"] = tally.stops
        print_table(results)
        os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
        path = os.path.join(ROOT, "bench/results", time.strftime("throughput-%Y%m%dT%H%M%SZ.json", time.gmtime()))
        with open(path, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        print(f"written: {os.path.relpath(path, ROOT)}")
    finally:
        stop_all(started)
        shutil.rmtree(work, ignore_errors=True)


class Tally:
    """The daemon under test; restartable on the same data directory with other options."""

    def __init__(self, work, url, port, grpc_port):
        self.command = [ARGS.tally, "serve", "--listen", f"127.0.0.1:{port}", "--grpc-listen", f"127.0.0.1:{grpc_port}",
                        "--data-dir", os.path.join(work, "tally"), "--database-url", url, "--log-level", "warning"]
        self.port, self.grpc_port = port, grpc_port
        self.process = None
        self.stops = []

    def start(self, extra=()):
        self.process = subprocess.Popen(self.command + list(extra))
        wait_for_port(self.port)
        wait_for_port(self.grpc_port)

    def stop(self):
        """SIGTERM, then SIGKILL after 30 s; returns the seconds the daemon took to exit."""
        took = None
        if self.process and self.process.poll() is None:
            t0 = time.time()
            self.process.send_signal(signal.SIGTERM)
            try:
                status = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                status = self.process.wait()
            took = round(time.time() - t0, 2)
            self.stops.append({"seconds": took, "exit": status})
            if status != 0:
                print(f"  tally serve exited {status} {took} s after SIGTERM")
        self.process = None
        return took

    def restart(self):
        """A fresh process on the same data directory: every ingest case starts from the same
        state (an empty delta table, as after a restart), not from one sized by the case before."""
        self.stop()
        self.start()

    def servers(self, postgres_pid):
        return Servers({"tally": self.process.pid, "postgres": postgres_pid})


def read_key(i):
    """The i-th read key: md5 of the decimal text of i as a UUID, as PostgreSQL's md5(i::text)::uuid."""
    return str(uuid.UUID(hashlib.md5(str(i).encode()).hexdigest()))


def pgbench_case(url, clients, sql, postgres_pid, protocol):
    pg = Servers({"postgres": postgres_pid})
    pg.start()
    out, client_cpu, status = run_child(["pgbench", "-n", "-M", protocol, f"-c{clients}", "-j2", f"-T{SECONDS}", "-f", sql, url],
                                        timeout=SECONDS + 60)
    cpu = pg.stop()
    if status != 0:
        raise RuntimeError(f"pgbench failed: {out[-500:]}")
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    latency = float(re.search(r"latency average = ([0-9.]+) ms", out).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", out)
    result = {"requests_per_second": tps, "latency_average_ms": latency, "seconds": SECONDS,
              "failed": int(failed.group(1)) if failed else 0}
    per_unit(result, cpu, client_cpu, tps * SECONDS, servers=pg)
    return result


def run_reads(cases, ratios, work, url, tally, postgres_pid):
    n = ARGS.read_keys
    keys = [read_key(i) for i in range(1, n + 1)]
    print(f"== reads: counting {n} keys, waiting for their checkpoint", flush=True)
    for chunk in range(0, n, 1000):
        body = "".join(f'{{"key":"{k}","value":{(chunk + j) % 1000 + 1}}}\n' for j, k in enumerate(keys[chunk:chunk + 1000]))
        status, answer = request(tally.port, "POST", "/increments", body.encode(), {"Content-Type": "application/x-ndjson"})
        if status != 200:
            raise RuntimeError(f"seeding the read keys: {status} {answer[:200]}")
    if wait_until_checkpointed(tally.port, 60) is None:
        raise RuntimeError("the read keys were not checkpointed within 60 s")
    found = subprocess.run(["psql", "-Atq", url, "-c",
                            f"SELECT count(*) FROM tally_counts WHERE key IN (SELECT md5(i::text)::uuid FROM generate_series(1, {n}) i)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    if int(found) != n:
        raise RuntimeError(f"only {found} of {n} read keys are in tally_counts")
    keys_file = os.path.join(work, "read-keys.txt")
    with open(keys_file, "w") as f:
        f.write("\n".join(keys) + "\n")
    sql = os.path.join(work, "read.sql")
    with open(sql, "w") as f:
        f.write(f"\\set k random(1, {n})\nSELECT total FROM tally_counts WHERE key = md5(:k::text)::uuid;\n")
    # Tally's own read statement (PostgresCountStore.total), as it sends it: PQexecParams, an
    # unnamed statement parsed and planned for every read (pgbench -M extended does the same).
    node = open(os.path.join(work, "tally/node-id")).read().strip()
    tally_sql = os.path.join(work, "tally-read.sql")
    with open(tally_sql, "w") as f:
        f.write(f"\\set k random(1, {n})\nSELECT (SELECT total::text FROM tally_counts WHERE key = md5(:k::text)::uuid), "
                f"(SELECT lsn FROM tally_checkpoints WHERE node = '{node}');\n")

    c = ARGS.read_clients
    pools = [int(x) for x in ARGS.read_pool.split(",")]
    print(f"== reads: pgbench primary-key select, {c} clients (-M prepared; and Tally's statement, -M extended)", flush=True)
    cases[f"pgbench_select_pk_c{c}"] = pgbench_case(url, c, sql, postgres_pid, "prepared")
    cases[f"pgbench_tally_statement_extended_c{c}"] = pgbench_case(url, c, tally_sql, postgres_pid, "extended")
    current = 4  # Tally's default
    for pool in pools:
        if pool != current:
            tally.stop()
            tally.start(["--read-connections", str(pool)])
            current = pool
        print(f"== reads: GET /counts/{{key}}, wrk {c} connections, Tally --read-connections {pool}", flush=True)
        servers = Servers({"tally": tally.process.pid, "postgres": postgres_pid})
        servers.start()
        result, client_cpu = wrk(f"http://127.0.0.1:{tally.port}", c, "bench/reads.lua", [keys_file])
        cpu = servers.stop()
        requests = result["requests_per_second"] * result["seconds"]
        per_unit(result, cpu, client_cpu, requests, servers=servers)
        cases[f"tally_get_counts_c{c}_pool{pool}"] = result
        ratios[f"tally_reads_pool{pool}_over_pgbench_select_c{c}"] = round(
            result["requests_per_second"] / cases[f"pgbench_select_pk_c{c}"]["requests_per_second"], 2)
    if current != 4:
        tally.stop()
        tally.start()


def redis_case_name():
    return f"redis_incrby_P{ARGS.redis_pipeline}_c{ARGS.redis_clients}"


def run_redis(cases, port, pid):
    def run(n):
        command = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(ARGS.redis_clients),
                   "-P", str(ARGS.redis_pipeline), "-n", str(n), "-r", "100000000", "--csv",
                   "INCRBY", "counter:__rand_int__", "1"]
        out, client_cpu, status = run_child(command, timeout=SECONDS * 4 + 60)
        if status != 0:
            raise RuntimeError(f"redis-benchmark failed: {out[-500:]}")
        rows = [l for l in out.splitlines() if l.startswith('"INCRBY')]
        fields = [f.strip('"') for f in rows[-1].split(",")]
        return {"requests_per_second": float(fields[1]), "p50_ms": float(fields[4]), "p99_ms": float(fields[6]),
                "max_ms": float(fields[7])}, client_cpu

    print(f"== Redis INCRBY -P {ARGS.redis_pipeline}, {ARGS.redis_clients} clients, appendfsync always", flush=True)
    # redis-benchmark runs a number of requests, not a duration: size it from a short run.
    probe, _ = run(200_000)
    n = int(probe["requests_per_second"] * SECONDS)
    servers = Servers({"redis": pid})
    servers.start()
    t0 = time.time()
    result, client_cpu = run(n)
    result["seconds"] = round(time.time() - t0, 2)
    cpu = servers.stop()
    result["increments_per_second"] = result["requests_per_second"]
    requests = result["requests_per_second"] * result["seconds"]
    per_unit(result, cpu, client_cpu, requests, requests, servers=servers)
    cases[redis_case_name()] = result


def run_bulk(cases, ratios, tally, postgres_pid, nginx_port, nginx_pid):
    lines = ARGS.bulk_lines
    for c in [int(x) for x in ARGS.bulk_connections.split(",")]:
        print(f"== bulk: POST /increments, {lines}-line bodies, {c} connections: nginx, Tally, Tally with Idempotency-Key",
              flush=True)
        servers = Servers({"nginx": nginx_pid})
        servers.start()
        result, client_cpu = wrk(f"http://127.0.0.1:{nginx_port}/increments", c, "bench/bulk.lua", [str(lines)])
        cpu = servers.stop()
        requests = result["requests_per_second"] * result["seconds"]
        result["increments_per_second"] = round(result["requests_per_second"] * lines)
        per_unit(result, cpu, client_cpu, requests, requests * lines, servers=servers)
        cases[f"nginx_bulk_{lines}_c{c}"] = result

        for name, extra in ((f"tally_bulk_{lines}_c{c}", []), (f"tally_bulk_{lines}_idempotency_c{c}", ["idempotency"])):
            tally.restart()
            tally_servers = tally.servers(postgres_pid)
            before = metrics(tally.port)
            tally_servers.start()
            result, client_cpu = wrk(f"http://127.0.0.1:{tally.port}/increments", c, "bench/bulk.lua", [str(lines)] + extra)
            cpu = tally_servers.stop()
            after = metrics(tally.port)
            requests = result["requests_per_second"] * result["seconds"]
            ok = requests - result["non_200"]
            result["increments_per_second"] = round(ok * lines / result["seconds"])
            per_unit(result, cpu, client_cpu, requests, ok * lines, servers=tally_servers)
            result.update(log_figures(before, after, result["seconds"]))
            result.update(catch_up(tally.port, after))
            cases[name] = result
            ratios[f"{name}_over_redis"] = round(result["increments_per_second"] / cases[redis_case_name()]["increments_per_second"], 2)
        ratios[f"tally_bulk_{lines}_c{c}_over_nginx_bulk"] = round(
            cases[f"tally_bulk_{lines}_c{c}"]["requests_per_second"] / cases[f"nginx_bulk_{lines}_c{c}"]["requests_per_second"], 2)
        ratios[f"tally_bulk_{lines}_idempotency_over_plain_c{c}"] = round(
            cases[f"tally_bulk_{lines}_idempotency_c{c}"]["increments_per_second"]
            / cases[f"tally_bulk_{lines}_c{c}"]["increments_per_second"], 2)


def run_grpc(cases, ratios, tally, postgres_pid):
    for batch in [int(x) for x in ARGS.grpc_batches.split(",")]:
        for streams in [int(x) for x in ARGS.grpc_streams.split(",")]:
            name = f"tally_grpc_{streams}_streams_{batch}_per_request"
            print(f"== gRPC: {streams} streams, requests of {batch}, {ARGS.grpc_window} in flight per stream", flush=True)
            tally.restart()
            tally_servers = tally.servers(postgres_pid)
            marks = {}

            def on_line(line):
                # Server CPU and /metrics over the generator's measured window exactly.
                # The CPU readings first (they are quick): a GET /metrics can take seconds
                # under this load, and must not shift the window. The first one runs aside.
                if line.startswith("MEASURE start"):
                    tally_servers.start()
                    marks["reader"] = threading.Thread(target=lambda: marks.update(before=metrics(tally.port)))
                    marks["reader"].start()
                elif line.startswith("MEASURE end"):
                    marks["cpu"] = tally_servers.stop()
                    marks["reader"].join()
                    marks["after"] = metrics(tally.port)

            out, _, status = run_child([ARGS.grpc_load, str(tally.grpc_port), "--streams", str(streams), "--batch", str(batch),
                                        "--window", str(ARGS.grpc_window), "--seconds", str(SECONDS), "--warmup", "1"],
                                       timeout=SECONDS + 60, on_line=on_line)
            result = json_line(out)
            requests = result["requests_per_second"] * result["seconds"]
            increments = result["increments_per_second"] * result["seconds"]
            per_unit(result, marks["cpu"], result["client_cpu_seconds"], requests, increments, servers=tally_servers)
            result.update(log_figures(marks["before"], marks["after"], result["seconds"]))
            result.update(catch_up(tally.port, metrics(tally.port)))  # after the streams drained
            cases[name] = result
            ratios[f"{name}_over_redis"] = round(result["increments_per_second"] / cases[redis_case_name()]["increments_per_second"], 2)


def print_table(results):
    print(f"\n{'case':44} {'req/s':>9} {'incr/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'server µs/req':>22} {'client µs/req':>13} {'rec/frame':>9} {'syncs/s':>8} {'catch-up s':>10} {'errors':>6} {'others':>6}")
    for name, r in results["cases"].items():
        server = " + ".join(f"{k[:-len('_cpu_us_per_request')]} {v}" for k, v in r.items()
                            if k.endswith("_cpu_us_per_request") and not k.startswith("client"))
        errors = r.get("non_200", r.get("errors", r.get("failed", 0)))
        print(f"{name:44} {r['requests_per_second']:>9.0f} {r.get('increments_per_second', 0):>10.0f} "
              f"{r.get('p50_ms', r.get('latency_average_ms', 0)) or 0:>8.2f} {r.get('p99_ms') or float('nan'):>8.2f} "
              f"{r.get('max_ms') or float('nan'):>8.1f} {server:>22} {r.get('client_cpu_us_per_request') or 0:>13.1f} "
              f"{r.get('records_per_frame') or '':>9} {r.get('fdatasyncs_per_second', ''):>8} "
              f"{r.get('checkpoint_catch_up_seconds', '') if r.get('checkpoint_catch_up_seconds', '') is not None else 'timeout':>10} "
              f"{errors:>6} {r.get('other_cpu_cores', ''):>6}")
    for name, value in results["ratios"].items():
        print(f"{name:60} {value:>8.2f}")


if __name__ == "__main__":
    main()
