# goavail — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := nftables serf s6 fping iproute2 chromium knot systemd podman runc mmdebstrap socat

.PHONY: run test venv test-deps demo-down demo-up clean bench image wheelhouse image-test-inputs

$(BIN)/goavail: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(BIN)/goavail

## make run: start goavail on the local example (zone file provider, loopback targets)
run: venv
	@mkdir -p .run
	@test -f .run/example.test.zone || cp examples/example.test.zone .run/example.test.zone
	$(BIN)/goavail monitor --config-file examples/local.toml --dns-provider zonefile --no-dry-run

## make test: install what the tests need (Debian packages too) and run the whole suite
## (systemd only for `systemd-analyze`, which checks contrib/goavail.service)
test: venv test-deps image-test-inputs
	$(BIN)/ruff check goavail tests bench
	$(BIN)/ruff format --check goavail tests bench
	$(BIN)/mypy
	GOAVAIL_TEST_CACHE=$(TEST_CACHE) $(BIN)/pytest

## make image: the container image (see README.md, "Deploy"). First `make wheelhouse`: goavail
## and its dependencies as wheels, built here with pip into build/wheelhouse, for the venv's
## Python (3.11, the image's); then the image, with podman or docker, whichever is on PATH
## (podman first; CONTAINER_ENGINE=docker to choose). The build installs from the wheelhouse
## only, never from a package index. BASE_IMAGE: another base than the Dockerfile's
## python:3.11-slim-bookworm (any Debian bookworm with python3 and python3-venv).
IMAGE ?= goavail
BASE_IMAGE ?=
CONTAINER_ENGINE ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
WHEELHOUSE := build/wheelhouse
image: wheelhouse
	$(CONTAINER_ENGINE) build $(if $(filter podman,$(notdir $(CONTAINER_ENGINE))),--format docker) \
	  $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE) )--tag $(IMAGE) .

wheelhouse: venv
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
	  || (echo "make wheelhouse: the wheels are for the venv's Python, which must be the image's, 3.11"; exit 1)
	rm -rf $(WHEELHOUSE)
	$(BIN)/pip wheel --quiet --disable-pip-version-check --wheel-dir $(WHEELHOUSE) .

## make image-test-inputs: what tests/e2e/test_image.py builds the image from and cannot fetch
## itself (pytest runs in a network namespace of its own): the wheelhouse, and a Debian base
## with python3, python3-venv, s6 and serf (mmdebstrap, from this machine's apt sources),
## cached in $(TEST_CACHE).
TEST_CACHE ?= /var/cache/goavail-test
image-test-inputs: wheelhouse $(TEST_CACHE)/base-bookworm.tar

$(TEST_CACHE)/base-bookworm.tar:
	mkdir -p $(TEST_CACHE)
	mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,s6,serf bookworm $(basename $@).part.tar \
	  $(wildcard /etc/apt/sources.list.d/debian.sources)
	mv $(basename $@).part.tar $@

## make bench: goavail vs fping on 1,000 / 10,000 / 50,000 loopback targets, 60 s windows
## (root: raw sockets, a private network namespace; about 8 minutes on 2 cores). Writes
## bench/results/latest.json. Smaller run: make bench BENCH_SIZES=1000,10000 BENCH_DURATION=30;
## add failover latency (about 5 s per trial): make bench BENCH_LATENCY=20.
## Opt-in cluster measurements (bench/cluster.py, bench/results/cluster.json): 3-agent
## failover latency (about 8 s per trial) and the loss-resilience study (cases a,b,c of
## BENCH_LOSS seconds each, about 25 minutes at 300); BENCH_SIZES=0 skips the scale part:
##   make bench BENCH_SIZES=0 BENCH_CLUSTER_LATENCY=20 BENCH_LOSS=300
## Opt-in soak (bench/soak.py, bench/results/soak.json + soak.log): the real goavail for
## BENCH_SOAK seconds under random outages and random Cloudflare faults; fails if a name ever
## had no record, goavail died or DNS did not converge at the end (BENCH_SOAK_SEED: replay):
##   make bench BENCH_SIZES=0 BENCH_SOAK=1800
## Cluster scale (bench/cluster_scale.py): 10,000 targets (5,000 names) x 3 and x 5 agents, no
## loss, warm-up (agents started together, then staggered as in a rolling deploy) and a 60 s
## steady-state window each (about 2.5 minutes per agent count and start):
##   make bench BENCH_SIZES=0 BENCH_CLUSTER_SCALE=3,5
## Status page at fleet size (bench/page.py, bench/results/page.json): 10,000 targets in
## 5,000 names across 5 zones with pools and backups, the page and /api/status timed through
## the real aiohttp handlers, p50/p99 over BENCH_PAGE_RENDERS requests per URL (about 2 min):
##   make bench BENCH_SIZES=0 BENCH_PAGE=1
## Propagation (bench/propagation.py, bench/results/propagation.json): decision -> the last
## authoritative server serving it, p50/p99, for RFC 2136 + Knot primary/secondary and the
## zone file + Knot; BENCH_PROPAGATION withdraw+restore trials per set-up (about 3 min at 20):
##   make bench BENCH_SIZES=0 BENCH_PROPAGATION=20
## Failover proxy (bench/proxy.py, bench/results/proxy.json): throughput and connections/s
## on loopback, direct vs goavail proxy (splice, stream) vs socat, BENCH_PROXY_MIB MiB per
## transfer and BENCH_PROXY_CONNS connections per case, and the failover time over
## BENCH_PROXY trials (about 1 minute at 5):
##   make bench BENCH_SIZES=0 BENCH_PROXY=5
## The path users run (bench/cfpath.py, bench/results/cloudflare.json; issue 14): the
## Cloudflare provider through its SDK against the stand-in over HTTP, --no-dry-run, the
## server on, 10,000 and 50,000 targets in 5 zones (2 per name), a 130 s window with
## resyncs every 20 s, then 60 s of page GETs, fping on the same targets (about 15 minutes):
##   make bench BENCH_PATH=cloudflare   (sizes: BENCH_CF_SIZES=10000,50000)
## Where the per-target bytes go (bench/memory.py, bench/results/memory.json; issue 14):
## tracemalloc of the composed agent (the Cloudflare path's config, nothing probed) at
## BENCH_MEMORY_SIZES, bytes per target per module (about 10 minutes at 2,000,10,000):
##   make bench BENCH_SIZES=0 BENCH_MEMORY=1
BENCH_MEMORY ?= 0
BENCH_MEMORY_SIZES ?= 2000,10000
BENCH_MEMORY_ARGS ?= --targets $(BENCH_MEMORY_SIZES) --json bench/results/memory.json
BENCH_PATH ?= zonefile
BENCH_CF_SIZES ?= 10000,50000
BENCH_CF_DURATION ?= 130
BENCH_CF_ARGS ?= --targets $(BENCH_CF_SIZES) --duration $(BENCH_CF_DURATION) \
	--json bench/results/cloudflare.json
BENCH_SIZES ?= 1000,10000,50000
BENCH_DURATION ?= 60
BENCH_LATENCY ?= 0
BENCH_ARGS ?= --targets $(BENCH_SIZES) --duration $(BENCH_DURATION) \
	--latency-trials $(BENCH_LATENCY) --json bench/results/latest.json
BENCH_CLUSTER_LATENCY ?= 0
BENCH_LOSS ?= 0
BENCH_LOSS_CASES ?= a,b,c
BENCH_CLUSTER_SCALE ?= 0
BENCH_CLUSTER_ARGS ?= --cluster-latency $(BENCH_CLUSTER_LATENCY) --loss $(BENCH_LOSS) \
	--loss-cases $(BENCH_LOSS_CASES) --cluster-scale $(BENCH_CLUSTER_SCALE) \
	--json bench/results/cluster.json
BENCH_SOAK ?= 0
BENCH_SOAK_SEED ?=
BENCH_SOAK_ARGS ?= --duration $(BENCH_SOAK) $(if $(BENCH_SOAK_SEED),--seed $(BENCH_SOAK_SEED)) \
	--json bench/results/soak.json --log-file bench/results/soak.log
BENCH_PAGE ?= 0
BENCH_PAGE_RENDERS ?= 50
BENCH_PAGE_ARGS ?= --renders $(BENCH_PAGE_RENDERS) --json bench/results/page.json
BENCH_PROPAGATION ?= 0
BENCH_PROPAGATION_ARGS ?= --trials $(BENCH_PROPAGATION) --json bench/results/propagation.json
BENCH_PROXY ?= 0
BENCH_PROXY_MIB ?= 2048
BENCH_PROXY_CONNS ?= 2000
BENCH_PROXY_ARGS ?= --failover-trials $(BENCH_PROXY) --mib $(BENCH_PROXY_MIB) \
	--connections $(BENCH_PROXY_CONNS) --json bench/results/proxy.json
bench: venv test-deps
	@test "$$(id -u)" = 0 || (echo "make bench needs root (raw ICMP sockets, unshare -n)"; exit 1)
	@if [ "$(BENCH_PATH)" = cloudflare ]; then \
	  echo "$(BIN)/python -m bench.cfpath $(BENCH_CF_ARGS)"; \
	  $(BIN)/python -m bench.cfpath $(BENCH_CF_ARGS); \
	elif [ "$(BENCH_PATH)" != zonefile ]; then \
	  echo "make bench: BENCH_PATH is zonefile (default) or cloudflare"; exit 2; \
	elif [ "$(BENCH_SIZES)" != 0 ] || [ "$(BENCH_LATENCY)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.run $(BENCH_ARGS)"; \
	  $(BIN)/python -m bench.run $(BENCH_ARGS); \
	fi
	@if [ "$(BENCH_CLUSTER_LATENCY)" != 0 ] || [ "$(BENCH_LOSS)" != 0 ] \
	    || [ "$(BENCH_CLUSTER_SCALE)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.cluster $(BENCH_CLUSTER_ARGS)"; \
	  $(BIN)/python -m bench.cluster $(BENCH_CLUSTER_ARGS); \
	fi
	@if [ "$(BENCH_SOAK)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.soak $(BENCH_SOAK_ARGS)"; \
	  $(BIN)/python -m bench.soak $(BENCH_SOAK_ARGS); \
	fi
	@if [ "$(BENCH_MEMORY)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.memory $(BENCH_MEMORY_ARGS)"; \
	  $(BIN)/python -m bench.memory $(BENCH_MEMORY_ARGS); \
	fi
	@if [ "$(BENCH_PAGE)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.page $(BENCH_PAGE_ARGS)"; \
	  $(BIN)/python -m bench.page $(BENCH_PAGE_ARGS); \
	fi
	@if [ "$(BENCH_PROPAGATION)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.propagation $(BENCH_PROPAGATION_ARGS)"; \
	  $(BIN)/python -m bench.propagation $(BENCH_PROPAGATION_ARGS); \
	fi
	@if [ "$(BENCH_PROXY)" != 0 ]; then \
	  echo "$(BIN)/python -m bench.proxy $(BENCH_PROXY_ARGS)"; \
	  $(BIN)/python -m bench.proxy $(BENCH_PROXY_ARGS); \
	fi

test-deps:
	@missing=""; \
	for cmd in nft:nftables serf:serf s6-svscan:s6 fping:fping ip:iproute2 chromium:chromium knotd:knot \
	           systemd-analyze:systemd podman:podman runc:runc mmdebstrap:mmdebstrap \
	           socat:socat; do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $${cmd%%:*} >/dev/null 2>&1 \
	    || missing="$$missing $${cmd##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  case " $$missing " in *" knot "*) \
	    echo "knot: the tests run their own knotd; disabling the system service the package enabled"; \
	    systemctl disable --now knot.service >/dev/null 2>&1 || true;; \
	  esac; \
	fi

## demo helpers for `make run`: make a loopback target stop answering ping, and undo it
DEMO_IP ?= 127.0.0.3
demo-down:
	@command -v nft >/dev/null || (apt-get update -qq && apt-get install -y -qq nftables)
	nft add table inet goavail_demo
	nft 'add chain inet goavail_demo in { type filter hook input priority 0; }'
	nft add rule inet goavail_demo in ip daddr $(DEMO_IP) icmp type echo-request drop
	@echo "pings to $(DEMO_IP) are now dropped; watch the goavail log and .run/example.test.zone"

demo-up:
	-nft delete table inet goavail_demo
	@echo "pings to $(DEMO_IP) answer again"

clean:
	rm -rf $(VENV) .run build *.egg-info .pytest_cache .mypy_cache .ruff_cache
