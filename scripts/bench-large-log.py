#!/usr/bin/env python3
"""make bench, part 4: start-up and `tally recover` on a large log (10^8 records by default).

Writes a node's data directory with Benchmarks' LargeLog (N increments of 1 over K distinct
keys, through the real Log), copies it, then against one throw-away PostgreSQL (the caller's
TALLY_TEST_DATABASE_URL, from scripts/with-test-postgres.sh):
  * recover: `tally recover <copy 1> --database-url …`: wall time, peak RSS, progress lines;
  * start-up: the tables emptied, `tally serve` on copy 2: time until it answers /healthz,
    time until PostgreSQL holds the whole log (tally_checkpoint_lsn = N), peak RSS (VmHWM),
    and the progress lines it logged meanwhile.
Both end with PostgreSQL's sum of totals checked against N, so a fast wrong answer fails.

Usage: scripts/with-test-postgres.sh scripts/bench-large-log.py <tally> <LargeLog> [--records N] [--keys K]
"""
import argparse, os, re, resource, shutil, signal, subprocess, sys, tempfile, time, urllib.request
from benchproc import free_port

parser = argparse.ArgumentParser()
parser.add_argument("tally")
parser.add_argument("large_log")
parser.add_argument("--records", type=int, default=100_000_000)
parser.add_argument("--keys", type=int, default=1_000_000)
parser.add_argument("--timeout", type=int, default=1800, help="seconds each phase may take at most")
ARGS = parser.parse_args()
DATABASE_URL = os.environ["TALLY_TEST_DATABASE_URL"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def psql(sql):
    return subprocess.run(["psql", DATABASE_URL, "-Atc", sql], check=True, capture_output=True, text=True).stdout.strip()


def metric(port, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
    except OSError:
        return None
    return None


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def progress_lines(text):
    return [line for line in text.splitlines() if re.search(r"LSN \d+ of \d+", line)]


def sum_of_totals():
    return int(psql("SELECT coalesce(sum(total), 0) FROM tally_counts"))


work = tempfile.mkdtemp(prefix="tally-large-log-", dir=os.path.join(ROOT, "Benchmarks"))
try:
    source = os.path.join(work, "source")
    print(f"== writing {ARGS.records:,} records over {ARGS.keys:,} keys", flush=True)
    started = time.monotonic()
    subprocess.run([ARGS.large_log, source, str(ARGS.records), str(ARGS.keys)], check=True, timeout=ARGS.timeout)
    written_seconds = time.monotonic() - started
    wal_bytes = sum(os.path.getsize(os.path.join(source, "wal", f)) for f in os.listdir(os.path.join(source, "wal")))
    segments = len(os.listdir(os.path.join(source, "wal")))
    print(f"   {written_seconds:.1f} s, {wal_bytes / 2**30:.2f} GiB in {segments} segments", flush=True)
    for copy in ("recover", "serve"):
        shutil.copytree(source, os.path.join(work, copy))
    shutil.rmtree(source)

    print("== tally recover", flush=True)
    subprocess.run([ARGS.tally, "migrate", "--database-url", DATABASE_URL], check=True, capture_output=True)
    started = time.monotonic()
    recover = subprocess.Popen([ARGS.tally, "recover", os.path.join(work, "recover"), "--database-url", DATABASE_URL],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = recover.communicate(timeout=ARGS.timeout)
    recover_seconds = time.monotonic() - started
    recover_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    recovered = sum_of_totals()
    print(output.rstrip())
    print(f"   exit {recover.returncode}, {recover_seconds:.1f} s, {ARGS.records / recover_seconds / 1e6:.2f} M records/s, "
          f"peak RSS {recover_rss:.0f} MiB (the largest of the children so far), "
          f"{len(progress_lines(output))} progress lines, PostgreSQL sum {recovered:,}", flush=True)
    if recover.returncode != 0 or recovered != ARGS.records:
        sys.exit(f"recover: exit {recover.returncode}, sum {recovered} instead of {ARGS.records}")

    print("== tally serve start-up", flush=True)
    psql("TRUNCATE tally_counts, tally_daily, tally_checkpoints")
    port = free_port()
    log_path = os.path.join(work, "serve.log")
    with open(log_path, "w") as log:
        started = time.monotonic()
        daemon = subprocess.Popen([ARGS.tally, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", os.path.join(work, "serve"),
                                   "--database-url", DATABASE_URL], stdout=log, stderr=subprocess.STDOUT)
    listening = caught_up = None
    peak = 0.0
    deadline = started + ARGS.timeout
    try:
        while time.monotonic() < deadline and daemon.poll() is None:
            peak = max(peak, peak_rss_mib(daemon.pid))
            if listening is None and healthy(port):
                listening = time.monotonic() - started
            if listening is not None and (metric(port, "tally_checkpoint_lsn") or 0) >= ARGS.records:
                caught_up = time.monotonic() - started
                break
            time.sleep(0.2)
        peak = max(peak, peak_rss_mib(daemon.pid)) if daemon.poll() is None else peak
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    text = open(log_path).read()
    served = sum_of_totals()
    for line in progress_lines(text):
        print("   " + line)
    print(f"   answering /healthz after {listening if listening is None else round(listening, 1)} s; "
          f"PostgreSQL holds the whole log after {caught_up if caught_up is None else round(caught_up, 1)} s "
          f"({ARGS.records / caught_up / 1e6 if caught_up else 0:.2f} M records/s); peak RSS {peak:.0f} MiB; "
          f"{len(progress_lines(text))} progress lines; PostgreSQL sum {served:,}; exit {daemon.returncode}", flush=True)
    if caught_up is None or served != ARGS.records:
        print(text[-3000:])
        sys.exit(f"serve: caught up {caught_up}, sum {served} instead of {ARGS.records}")
finally:
    shutil.rmtree(work, ignore_errors=True)
