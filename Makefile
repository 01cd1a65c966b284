# Tally — see README.md. `make run` and `make test` are the two commands a new machine needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

SWIFT ?= swift
SWIFT_TEST_FLAGS ?=
DEV_PG_DIR := data/postgres
DEV_PG_PORT ?= 5433
LOCAL_DATABASE_URL := postgresql://postgres@127.0.0.1:$(DEV_PG_PORT)/postgres
DEBIAN_PACKAGES := liblz4-dev libpq-dev pkg-config postgresql python3 python3-venv curl prometheus
# Test tools from PyPI, pinned, in a virtual environment of the repository's own.
VENV := .venv
PYTHON_TEST_TOOLS := schemathesis==4.32.5
BENCH_PACKAGES := wrk nginx-light redis-server
# faultfs (Tests/Tools/faultfs): the FUSE filesystem the disk-failure tests run the daemon on.
FAULTFS := .build/faultfs
FAULTFS_PACKAGES := fuse3 libfuse3-dev gcc
# The fleet: pg_auto_failover, the balancer, and what checks the deploy/ files.
FLEET_PACKAGES := postgresql-15-auto-failover haproxy prometheus systemd
# The local fleet (make cluster): its directory, and the binary its nodes run.
CLUSTER_DIR ?= data/cluster
export CLUSTER_DIR

.PHONY: deps install-packages fleet-packages venv build release test check-deploy fleet-test soak run example bench fuzz openapi proto \
	cluster cluster-down db-up db-down db-clear clean

## deps: install missing Debian packages (needs root; says what is missing otherwise)
deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEBIAN_PACKAGES)"

install-packages:
	@missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages: $$missing (run: sudo apt-get install $$missing)"; exit 1; fi; \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## venv: the Python test tools (schemathesis) in .venv
venv: $(VENV)/.installed
$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check $(PYTHON_TEST_TOOLS)
	touch $@

fleet-packages:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(FLEET_PACKAGES)"

$(FAULTFS): Tests/Tools/faultfs/faultfs.c
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(FAULTFS_PACKAGES)"
	mkdir -p $(dir $@)
	gcc -O2 -Wall $< $$(pkg-config --cflags --libs fuse3) -o $@

## test: every test, against a throw-away PostgreSQL started and stopped here. The suites
## that drive the real binary (TallyCLITests: load, kill -9, a saturated machine) run one at
## a time after the others, so that no timing promise is measured under another test's load.
## Each phase has a time limit, so a hung test fails the run with its name on screen (output is
## line-buffered) instead of running into CI's limit; a cold run takes about 17 minutes here.
test: deps venv fleet-packages $(FAULTFS)
	$(SWIFT) build --build-tests
	TALLY_TEST_FAULTFS=$(abspath $(FAULTFS)) scripts/with-test-postgres.sh bash -c '\
	  timeout -k 30 20m stdbuf -oL $(SWIFT) test --skip-build --skip TallyCLITests $(SWIFT_TEST_FLAGS) && \
	  timeout -k 30 30m stdbuf -oL $(SWIFT) test --skip-build --filter TallyCLITests --no-parallel $(SWIFT_TEST_FLAGS)'
	scripts/check-deploy.sh
	$(MAKE) --no-print-directory fleet-test

## soak: the end-to-end suites, longer: 200 kill -9 rounds instead of 20, 2 M fresh keys against
## the memory bound, 180 s of saturated freshness, schemathesis with a fresh seed
soak: deps venv $(FAULTFS)
	TALLY_TEST_FAULTFS=$(abspath $(FAULTFS)) TALLY_SOAK_ROUNDS=200 TALLY_MEMORY_BOUND_KEYS=2000000 \
	  TALLY_SATURATED_SECONDS=180 TALLY_SCHEMATHESIS_SEED=$$RANDOM \
	  scripts/with-test-postgres.sh $(SWIFT) test --filter 'EndToEnd|OpenAPIConformance' --no-parallel

## check-deploy: promtool (config, rules, rule unit tests, dashboard queries), systemd-analyze, haproxy -c
check-deploy: fleet-packages
	scripts/check-deploy.sh

## fleet-test: three nodes, HAProxy and pg_auto_failover on loopback, killed under load (about 3 minutes)
fleet-test: deps fleet-packages
	$(SWIFT) build --product tally
	python3 Tests/Fleet/fleet_test.py --tally-bin "$$($(SWIFT) build --show-bin-path)/tally"

## openapi: embed openapi.yaml into the server after editing it
openapi:
	scripts/embed-openapi.sh

## proto: regenerate Sources/TallyProtos from Protos/ (builds the protoc plugins: several minutes; never run by CI)
proto: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES=protobuf-compiler
	$(SWIFT) build -c release --product protoc-gen-swift
	$(SWIFT) build -c release --product protoc-gen-grpc-swift-2
	bin=$$($(SWIFT) build -c release --show-bin-path); \
	  scripts/gen-proto.sh $$bin/protoc-gen-swift $$bin/protoc-gen-grpc-swift-2 Protos Sources/TallyProtos

## run: local PostgreSQL under data/postgres, then the daemon (release build): HTTP on 127.0.0.1:8080, gRPC on 127.0.0.1:9090
run: deps db-up release
	.build/release/tally serve --data-dir data --database-url $(LOCAL_DATABASE_URL) --grpc-listen 127.0.0.1:9090

## cluster: a local fleet under $(CLUSTER_DIR): pg_auto_failover, three nodes, HAProxy, Prometheus (docs/operations.md)
cluster: deps fleet-packages
	@if [ -z "$$TALLY_BIN" ]; then $(SWIFT) build -c release --product tally; fi
	scripts/cluster.sh up

## cluster-down: stop everything `make cluster` started (its data stays in $(CLUSTER_DIR))
cluster-down:
	scripts/cluster.sh down

## example: the example app (Examples/request-counter) against `make run`'s daemon ($$TALLY_URL, default
## http://127.0.0.1:8080): it serves, gets a mix of requests, stops (its client flushes) and prints the report
example: deps
	$(SWIFT) build -c release --product tally-example
	TALLY_URL=$${TALLY_URL:-http://127.0.0.1:8080} .build/release/tally-example demo

## bench: benchmarks (never part of `make test`); see BENCHMARKS.md
bench: deps
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(BENCH_PACKAGES)"
	scripts/bench.sh

## fuzz: libFuzzer + AddressSanitizer on the segment reader and the strict JSON parsers, FUZZ_SECONDS
## (default 60) per target; exits 1 on a finding and says where its input is (scripts/fuzz.sh; never
## part of make test). The fuzzer and sanitizer runtimes come with the Swift toolchain.
fuzz: deps
	scripts/fuzz.sh

db-up: deps
	@scripts/pg-cluster.sh start $(DEV_PG_DIR) $(DEV_PG_PORT) >/dev/null
	@echo "local PostgreSQL: $(LOCAL_DATABASE_URL) (data in $(DEV_PG_DIR))"

db-down:
	@scripts/pg-cluster.sh stop $(DEV_PG_DIR)

db-clear: db-down
	rm -rf $(DEV_PG_DIR)

clean:
	rm -rf .build
