#!/usr/bin/env python3
"""make bench, part 2: Tally beside the HTTP ceiling and the peers a user would otherwise pick.

On loopback, each for the same duration with the same client count:
  * nginx `return 200` for the same POST (the HTTP ceiling), with wrk and bench/increment.lua;
  * Tally's durable POST /increment (release build), same wrk script;
  * PostgreSQL per-request upsert (pgbench, synchronous_commit on), random keys and one hot key;
  * Redis INCRBY with appendonly yes + appendfsync always (redis-benchmark, no pipelining).
PostgreSQL runs with its durable defaults here (unlike the test server), and Tally checkpoints
into the same server. Every case also records the CPU time the server and the load generator
spent per request (the two share the machine's cores, so these bound the rates), and Tally's
records per fdatasync'd frame. Prints a table and writes bench/results/peers-<stamp>.json.
Usage: scripts/bench-peers.py <tally binary> [seconds]
"""
import json, os, re, resource, shutil, subprocess, sys, tempfile, time
from benchproc import cpu_seconds, free_port, process_tree, stop_all, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TALLY = sys.argv[1]
SECONDS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
CONNECTIONS = [64, 256]
started = []  # (process or callable) to stop at exit


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(server_pid, run):
    """Runs one case; adds the server's and the client's CPU µs per request to its result."""
    server_before = cpu_seconds(process_tree(server_pid))
    client_before = children_cpu_seconds()
    result = run()
    client = children_cpu_seconds() - client_before
    server = cpu_seconds(process_tree(server_pid)) - server_before
    requests = result["requests_per_second"] * SECONDS
    result["server_cpu_us_per_request"] = round(server * 1e6 / requests, 1)
    result["client_cpu_us_per_request"] = round(client * 1e6 / requests, 1)
    return result


def tally_frames(port):
    """(sum, count) of Tally's records-per-frame histogram."""
    text = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True).stdout
    values = dict(re.findall(r"^tally_log_records_per_frame_(sum|count) (\S+)$", text, re.M))
    return float(values.get("sum", 0)), float(values.get("count", 0))


def wrk(url, connections):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{SECONDS}s", "--latency",
                          "-s", os.path.join(ROOT, "bench/increment.lua"), url],
                         capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("JSON "))
    return json.loads(line[5:])


def pgbench(url, clients, script):
    out = subprocess.run(["pgbench", "-n", f"-c{clients}", "-j2", f"-T{SECONDS}", "-r", "-f", script, url],
                         capture_output=True, text=True).stdout
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    latency = float(re.search(r"latency average = ([0-9.]+) ms", out).group(1))
    return {"requests_per_second": tps, "latency_average_ms": latency}


def redis_benchmark(port, clients):
    run = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
                          "-n", str(30000 * SECONDS), "-r", "1000000", "--csv", "INCRBY", "counter:__rand_int__", "1"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {run.stdout} {run.stderr}")
    out = run.stdout
    rows = [l for l in out.splitlines() if l.startswith('"INCRBY')]
    fields = [f.strip('"') for f in rows[-1].split(",")]
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    return {"requests_per_second": float(fields[1]), "p50_ms": float(fields[4]), "p99_ms": float(fields[6])}


def main():
    work = tempfile.mkdtemp(prefix="tally-peers-", dir=os.path.join(ROOT, "Benchmarks"))
    results = {"seconds_per_case": SECONDS, "cases": {}}
    try:
        # PostgreSQL with durable defaults, for pgbench and as Tally's sink.
        os.environ["PG_EXTRA_OPTIONS"] = "-c max_connections=300"
        url = subprocess.run([os.path.join(ROOT, "scripts/pg-cluster.sh"), "start", os.path.join(work, "pg")],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        started.append(lambda: subprocess.run(["env", "PG_STOP_MODE=immediate", os.path.join(ROOT, "scripts/pg-cluster.sh"),
                                               "stop", os.path.join(work, "pg")]))

        # nginx: return 200 with a body of the same shape as Tally's.
        nginx_port = free_port()
        os.makedirs(os.path.join(work, "nginx/logs"))
        with open(os.path.join(work, "nginx/nginx.conf"), "w") as f:
            f.write(f"""worker_processes auto; daemon off; user root; error_log stderr error; pid {work}/nginx/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{nginx_port}; location / {{ return 200 '{{"lsn":0}}'; }} }} }}
""")
        nginx = subprocess.Popen(["nginx", "-p", os.path.join(work, "nginx"), "-c", os.path.join(work, "nginx/nginx.conf")])
        started.append(nginx)

        # Tally (release), checkpointing into the durable PostgreSQL.
        tally_port = free_port()
        tally = subprocess.Popen([TALLY, "serve", "--listen", f"127.0.0.1:{tally_port}", "--data-dir", os.path.join(work, "tally"),
                                  "--database-url", url, "--log-level", "warning"])
        started.append(tally)

        # Redis with every write fsynced before the reply.
        redis_port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--appendonly", "yes",
                                  "--appendfsync", "always", "--save", "", "--dir", work, "--maxclients", "1000"],
                                 stdout=open(os.path.join(work, "redis.log"), "w"))
        started.append(redis)
        for port in (nginx_port, tally_port, redis_port):
            wait_for_port(port)

        with open(os.path.join(work, "random.sql"), "w") as f:
            f.write("\\set k random(1, 1000000000)\n"
                    "INSERT INTO peer_counts (key, total) VALUES (md5(:k::text)::uuid, 1) "
                    "ON CONFLICT (key) DO UPDATE SET total = peer_counts.total + 1;\n")
        with open(os.path.join(work, "hot.sql"), "w") as f:
            f.write("INSERT INTO peer_counts (key, total) VALUES ('0b5e55ed-0000-4000-8000-00000000c0de', 1) "
                    "ON CONFLICT (key) DO UPDATE SET total = peer_counts.total + 1;\n")
        subprocess.run(["psql", "-q", url, "-c", "CREATE TABLE IF NOT EXISTS peer_counts (key uuid PRIMARY KEY, total numeric NOT NULL)"],
                       check=True)

        with open(os.path.join(work, "pg/data/postmaster.pid")) as f:
            postgres_pid = int(f.readline())
        cases = results["cases"]
        for c in CONNECTIONS:
            cases[f"nginx_return_200_c{c}"] = measured(nginx.pid, lambda: wrk(f"http://127.0.0.1:{nginx_port}/increment", c))
            frames_before = tally_frames(tally_port)
            cases[f"tally_increment_c{c}"] = measured(tally.pid, lambda: wrk(f"http://127.0.0.1:{tally_port}/increment", c))
            frames_after = tally_frames(tally_port)
            frames = frames_after[1] - frames_before[1]
            cases[f"tally_increment_c{c}"]["records_per_frame"] = \
                round((frames_after[0] - frames_before[0]) / frames, 1) if frames else None
            cases[f"redis_incrby_appendfsync_always_c{c}"] = measured(redis.pid, lambda: redis_benchmark(redis_port, c))
            cases[f"pgbench_upsert_random_c{c}"] = measured(postgres_pid, lambda: pgbench(url, c, os.path.join(work, "random.sql")))
            cases[f"pgbench_upsert_hot_c{c}"] = measured(postgres_pid, lambda: pgbench(url, c, os.path.join(work, "hot.sql")))

        def ratio(a, b):
            return round(cases[a]["requests_per_second"] / cases[b]["requests_per_second"], 2)
        results["ratios"] = {}
        for c in CONNECTIONS:
            results["ratios"][f"tally_over_nginx_c{c}"] = ratio(f"tally_increment_c{c}", f"nginx_return_200_c{c}")
            results["ratios"][f"tally_over_redis_c{c}"] = ratio(f"tally_increment_c{c}", f"redis_incrby_appendfsync_always_c{c}")
            results["ratios"][f"tally_over_pgbench_random_c{c}"] = ratio(f"tally_increment_c{c}", f"pgbench_upsert_random_c{c}")
            results["ratios"][f"tally_over_pgbench_hot_c{c}"] = ratio(f"tally_increment_c{c}", f"pgbench_upsert_hot_c{c}")

        print(f"{'case':42} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8} {'server µs':>9} {'client µs':>9}")
        for name, r in cases.items():
            print(f"{name:42} {r['requests_per_second']:>10.0f} {r.get('p50_ms', r.get('latency_average_ms', 0)):>8.2f} "
                  f"{r.get('p99_ms', float('nan')):>8.2f} {r.get('p999_ms', float('nan')):>8.2f} "
                  f"{r['server_cpu_us_per_request']:>9.1f} {r['client_cpu_us_per_request']:>9.1f}"
                  + (f"  {r['records_per_frame']} records/frame" if r.get("records_per_frame") else ""))
        for name, value in results["ratios"].items():
            print(f"{name:42} {value:>10.2f}")
        os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
        path = os.path.join(ROOT, "bench/results", time.strftime("peers-%Y%m%dT%H%M%SZ.json", time.gmtime()))
        with open(path, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        print(f"written: {os.path.relpath(path, ROOT)}")
    finally:
        stop_all(started, timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
