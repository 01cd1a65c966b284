"""What the benchmark drivers (bench-peers.py, bench-throughput.py, bench-large-log.py) share:
loopback ports, and the CPU time of a server's whole process tree."""
import os
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def process_tree(pid):
    """pid and all its descendants (nginx workers, PostgreSQL backends)."""
    pids, frontier = [pid], [pid]
    while frontier:
        children = []
        for parent in frontier:
            try:
                with open(f"/proc/{parent}/task/{parent}/children") as f:
                    children += [int(c) for c in f.read().split()]
            except OSError:
                pass
        pids += children
        frontier = children
    return pids


def cpu_seconds(pids):
    """User + system CPU time of the processes, plus that of their children that exited and
    were reaped (PostgreSQL's backends for pgbench's connections end with the run)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def stop_all(started, timeout=20):
    """Stops what a driver started, last first: an object with `stop()` (a daemon wrapper), a
    callable (a cleanup), or a process (SIGTERM, then SIGKILL past `timeout`)."""
    for item in reversed(started):
        if hasattr(item, "stop"):
            item.stop()
        elif callable(item):
            item()
        else:
            item.send_signal(signal.SIGTERM)
            try:
                item.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                item.kill()
                item.wait()
