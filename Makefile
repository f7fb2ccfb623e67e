# swift-net: `make test` installs what a fresh Debian 12 machine lacks, builds, and runs every
# test suite under both runtime backends, then the RDMA suites in a soft-RoCE guest.
# `make run` runs the echo cluster (`make run ARGS="--duration 10 --nodes 4"`), `make cluster-rdma`
# runs it over RDMA in the guest.
# Swift 6.3 itself comes from swift.org, not from apt.

SHELL := /bin/bash
SWIFT ?= swift
APT_PACKAGES := pkg-config liburing-dev libibverbs-dev librdmacm-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps build test test-uring test-epoll test-rdma run cluster-smoke cluster-rdma bench clean

deps:
	@$(SWIFT) --version 2>/dev/null | grep -q 'Swift version 6' || { \
	  echo "Swift 6.3 is needed on PATH: get it from https://www.swift.org/install/linux/ (Debian's 'swift' package is an unrelated program)." >&2; exit 1; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build --build-tests

test: build test-uring test-epoll test-rdma

# RUN_TESTS_TRIES=2: a known intermittent hang (the 10,000-pending test under epoll, seen once in
# about ten full parallel runs, never alone, not since 2026-11-25) is still open; a hung run is
# retried once, and a failed test is never retried (see scripts/run-tests). That test now fails
# with the error if a recv fails early, where it used to spin for good.
test-uring:
	NET_RUNTIME_BACKEND=io_uring RUN_TESTS_TRIES=2 scripts/run-tests

test-epoll:
	NET_RUNTIME_BACKEND=epoll RUN_TESTS_TRIES=2 scripts/run-tests

# The RDMA suites run in an emulated guest with a real soft-RoCE device (scripts/rdma-vm).
test-rdma:
	@if [ -d Tests/RDMATests ]; then scripts/rdma-tests; else echo "test-rdma: no RDMA suites yet"; fi

# The echo cluster: 3 node processes on 127.0.0.1 calling each other for 30 s (see README).
run: deps
	$(SWIFT) build --product echo-cluster
	.build/debug/echo-cluster $(ARGS)

# A short cluster run, as CI does it.
cluster-smoke: deps
	$(SWIFT) build --product echo-cluster
	.build/debug/echo-cluster --duration 5

# The echo cluster over RDMA: 3 nodes on rxe0's address in the soft-RoCE guest (scripts/rdma-vm),
# 10 s (about 30 s with the boot). RDMA_ADDR is set in the guest, hence bash -c.
cluster-rdma: deps
	$(SWIFT) build --product echo-cluster
	scripts/rdma-vm -- bash -c '.build/debug/echo-cluster --transport rdma --host "$$RDMA_ADDR" --duration 10'

# The Swift runtime linked into the binary, as we recommend deploying latency-bound services:
# the shared runtime reaches its thread-locals through __tls_get_addr and every runtime call
# through the PLT (docs/BENCHMARKS.md, "eleventh stop": 0.3 µs per side per round trip here).
bench: deps
	$(SWIFT) build -c release --product net-bench --static-swift-stdlib

clean:
	rm -rf .build
