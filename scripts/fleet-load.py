#!/usr/bin/env python3
"""Load for a Tally fleet that keeps a ledger, so that the counts can be checked afterwards.

    scripts/fleet-load.py LB_URL [--seconds 60] [--clients 12] [--keys 500] [--keyed 0.25]
                          [--database-url URL]

Each client is a thread with one keep-alive connection, POSTing /increment with a random
key from a fixed set and a random value. It records, per key, what was acknowledged (200)
and what is in doubt (the connection failed after the request was sent, or the balancer
answered 502/504: the node may have stored it). Refusals (429, 503 from a node) store
nothing by contract. A share of the requests (--keyed) carries an Idempotency-Key and is
sent again, with the same key, until it gets a 200 (at most 5 tries): those count once
wherever they landed.

Every second it prints what was answered. With --database-url it waits for the nodes'
checkpoints and then checks, for every key:
    acknowledged <= PostgreSQL total <= acknowledged + in doubt
Exit status 1 when that fails. The fleet test (Tests/Fleet/fleet_test.py) uses the same
class. Python 3 standard library only; psql for the check.
"""

import argparse
import http.client
import random
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict

# A node's refusals: nothing was stored (README, "API").
REFUSED = {429, 503}


class Ledger:
    def __init__(self):
        self.acknowledged = defaultdict(int)
        self.in_doubt = defaultdict(int)
        self.statuses = defaultdict(int)  # every HTTP exchange: status, or "error"
        self.per_second = defaultdict(lambda: [0, 0])  # int(time) -> [exchanges, 200s]
        self.unexpected = []  # answers that mean the test itself is wrong (400, 409...)

    def merge(self, other):
        for key, value in other.acknowledged.items():
            self.acknowledged[key] += value
        for key, value in other.in_doubt.items():
            self.in_doubt[key] += value
        for status, count in other.statuses.items():
            self.statuses[status] += count
        for second, (sent, ok) in other.per_second.items():
            self.per_second[second][0] += sent
            self.per_second[second][1] += ok
        self.unexpected += other.unexpected


class Load:
    """Clients POSTing increments through `url` until stop() or `seconds`."""

    def __init__(self, url, clients=12, keys=500, keyed_share=0.25, timeout=15.0, seconds=600,
                 client_address=None):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.keys = [str(uuid.uuid4()) for _ in range(keys)]
        self.clients = clients
        self.keyed_share = keyed_share
        # Longer than the balancer's server timeout, so that the balancer, not this client,
        # decides what happens to a request a node never answers.
        self.timeout = timeout
        self.deadline = time.monotonic() + seconds
        # Each request claims to come from one of many addresses (X-Forwarded-For, believed
        # from the balancer only), so the nodes' per-client rate limit does not apply to this
        # load; or, with client_address, all of it comes from that one client.
        self.client_address = client_address
        self.stopping = threading.Event()
        self.ledgers = [Ledger() for _ in range(clients)]
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout + 10)
        total = Ledger()
        for ledger in self.ledgers:
            total.merge(ledger)
        return total

    def snapshot(self):
        """Exchanges and 200s so far, per second (racy reads of counters: for display)."""
        merged = defaultdict(lambda: [0, 0])
        for ledger in self.ledgers:
            for second, (sent, ok) in list(ledger.per_second.items()):
                merged[second][0] += sent
                merged[second][1] += ok
        return merged

    def _exchange(self, connection, body, headers):
        """One POST: (status or None when no answer came, connection to use next)."""
        try:
            if connection is None:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                connection.connect()
        except OSError:
            return "unsent", None
        try:
            connection.request("POST", "/increment", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
            return response.status, connection
        except (OSError, http.client.HTTPException):
            connection.close()
            return None, None

    def _run(self, index):
        ledger = self.ledgers[index]
        rng = random.Random()
        connection = None
        while not self.stopping.is_set() and time.monotonic() < self.deadline:
            key = rng.choice(self.keys)
            value = rng.randint(1, 1000)
            body = '{"key":"%s","value":%d}' % (key, value)
            headers = {"Content-Type": "application/json"}
            headers["X-Forwarded-For"] = self.client_address or "10.1.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254))
            keyed = rng.random() < self.keyed_share
            if keyed:
                headers["Idempotency-Key"] = "fleet-" + uuid.uuid4().hex
            sent = acknowledged = refused = False
            for attempt in range(5 if keyed else 1):
                status, connection = self._exchange(connection, body, headers)
                if status == "unsent":
                    time.sleep(0.05)  # never reached the balancer: nothing to count
                    continue
                sent = True
                second = int(time.time())
                ledger.per_second[second][0] += 1
                ledger.statuses[status if status is not None else "no answer"] += 1
                if status == 200:
                    ledger.per_second[second][1] += 1
                    acknowledged = True
                    break
                if status is not None and 400 <= status < 500 and status != 429:
                    ledger.unexpected.append((status, body))
                    refused = not keyed
                    break
                if status in REFUSED and not keyed:
                    # A plain POST is never retried by the balancer once it reached a node
                    # (deploy/haproxy/haproxy.cfg), so a 503 or 429 is one node's refusal.
                    refused = True
                    break
                # No answer, 502/504, or any failure of a keyed request (the balancer may
                # have reached a node before it answered 503): in doubt until a 200.
                time.sleep(0.1 * (attempt + 1))
            if acknowledged:
                ledger.acknowledged[key] += value
            elif sent and not refused:
                ledger.in_doubt[key] += value
        if connection is not None:
            connection.close()


def postgres_totals(database_url, keys):
    """{key: total} from PostgreSQL for `keys`; also checks that each key's daily totals add up."""
    listed = ",".join("'%s'" % key for key in keys)  # our own UUIDs: safe to inline
    query = (
        "SELECT c.key, c.total, c.undated + coalesce((SELECT sum(d.total) FROM tally_daily d WHERE d.key = c.key), 0) "
        "FROM tally_counts c WHERE c.key IN (%s)" % listed
    )
    output = subprocess.run(["psql", "-X", "-At", "-F", " ", "-d", database_url, "-c", query],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    totals, problems = {}, []
    for line in output.splitlines():
        key, total, days = line.split()
        totals[key] = int(total)
        if int(total) != int(days):
            problems.append("%s: total %s but its days add up to %s" % (key, total, days))
    return totals, problems


def check_ledger(ledger, totals, keys):
    """Problems with acknowledged <= total <= acknowledged + in doubt, one line per key."""
    problems = []
    for key in keys:
        low = ledger.acknowledged.get(key, 0)
        high = low + ledger.in_doubt.get(key, 0)
        got = totals.get(key, 0)
        if not low <= got <= high:
            problems.append("%s: PostgreSQL has %d, acknowledged %d, in doubt %d (%s)" % (
                key, got, low, high - low, "lost" if got < low else "counted twice"))
    return problems


def main():
    parser = argparse.ArgumentParser(description="Load with a ledger for a Tally fleet.")
    parser.add_argument("url", help="the balancer, e.g. http://127.0.0.1:8080")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--keyed", type=float, default=0.25, help="share of requests with an Idempotency-Key")
    parser.add_argument("--database-url", help="check the ledger against PostgreSQL at the end")
    args = parser.parse_args()

    load = Load(args.url, clients=args.clients, keys=args.keys, keyed_share=args.keyed,
                seconds=args.seconds).start()
    started = int(time.time())
    try:
        while any(thread.is_alive() for thread in load.threads):
            time.sleep(1)
            now = int(time.time()) - 1
            sent, ok = load.snapshot().get(now, [0, 0])
            print("t=%4ds  %6d requests  %6d answered 200  %5.1f%%" % (
                now - started, sent, ok, 100.0 * ok / sent if sent else 0), flush=True)
    except KeyboardInterrupt:
        pass
    ledger = load.stop()
    exchanges = sum(ledger.statuses.values())
    ok = ledger.statuses.get(200, 0)
    print("total: %d requests, %d answered 200 (%.2f%%); by status: %s" % (
        exchanges, ok, 100.0 * ok / max(1, exchanges), dict(sorted(ledger.statuses.items(), key=str))))
    if ledger.unexpected:
        print("unexpected answers: %s" % ledger.unexpected[:5])
    if not args.database_url:
        return 0
    print("waiting 12 s for the nodes' checkpoints (interval + the 10 s bound)...", flush=True)
    time.sleep(12)
    totals, problems = postgres_totals(args.database_url, load.keys)
    problems += check_ledger(ledger, totals, load.keys)
    if problems:
        print("FAILED: %d problems:\n  %s" % (len(problems), "\n  ".join(problems[:20])))
        return 1
    print("every key: acknowledged <= PostgreSQL <= acknowledged + in doubt (%d keys, %d acknowledged, %d in doubt)" % (
        len(load.keys), sum(ledger.acknowledged.values()), sum(ledger.in_doubt.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
