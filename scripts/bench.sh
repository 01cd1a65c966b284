#!/usr/bin/env bash
# make bench: the in-process benchmarks (ordo-one/benchmark), the 1 M-key checkpoint beside
# psql, HTTP beside nginx/Redis/pgbench, and reads, bulk and gRPC ingest beside pgbench and
# Redis, in one run. Results go to bench/results/ with the date. Never part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)

echo "== in-process: log and compactor (ordo-one/benchmark, release build)"
swift package --package-path Benchmarks --allow-writing-to-package-directory benchmark --no-progress \
  | tee "bench/results/log-$stamp.txt"

echo "== checkpoint: 10 k, 100 k and 1 M distinct keys (duration against pending keys), Tally's sink beside psql COPY + upsert"
swift build --package-path Benchmarks -c release --product CheckpointBench >/dev/null
for keys in 10000 100000 1000000; do
  scripts/with-test-postgres.sh sh -c "Benchmarks/.build/release/CheckpointBench \"\$TALLY_TEST_DATABASE_URL\" $keys"
done | tee "bench/results/checkpoint-$stamp.txt"

echo "== HTTP: wrk POST /increment (fresh UUID per request) vs the same server's no-op route"
swift build -c release --product tally >/dev/null
scripts/with-test-postgres.sh scripts/bench-http.sh .build/release/tally | tee "bench/results/http-$stamp.txt"

echo "== peers: nginx return 200, Redis appendfsync always, pgbench per-request upsert (durable PostgreSQL)"
scripts/bench-peers.py .build/release/tally | tee "bench/results/peers-$stamp.txt"

echo "== throughput: reads vs pgbench select, bulk POST /increments and gRPC streams vs Redis -P 16 (durable PostgreSQL)"
swift build --package-path Benchmarks -c release --product GRPCLoad >/dev/null
scripts/bench-throughput.py .build/release/tally Benchmarks/.build/release/GRPCLoad | tee "bench/results/throughput-$stamp.txt"

echo "== client transports: HTTP bulk vs the gRPC stream, against one daemon (throw-away PostgreSQL)"
swift build --package-path Benchmarks -c release --product ClientTransportBench >/dev/null
scripts/with-test-postgres.sh sh -c 'Benchmarks/.build/release/ClientTransportBench .build/release/tally "$TALLY_TEST_DATABASE_URL" 5 4' \
  | tee "bench/results/client-transports-$stamp.txt"

echo "== the example app with TallyRequestCounter vs without it (wrk, same run)"
swift build -c release --product tally-example >/dev/null
scripts/with-test-postgres.sh scripts/bench-example.sh .build/release/tally .build/release/tally-example \
  | tee "bench/results/example-$stamp.txt"

echo "== large log: start-up and tally recover on LARGE_LOG_RECORDS (default 10^8) records over 1 M keys"
swift build --package-path Benchmarks -c release --product LargeLog >/dev/null
scripts/with-test-postgres.sh scripts/bench-large-log.py .build/release/tally Benchmarks/.build/release/LargeLog \
  --records "${LARGE_LOG_RECORDS:-100000000}" | tee "bench/results/large-log-$stamp.txt"
