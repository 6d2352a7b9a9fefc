# Release artifacts: the versioned module, its checksum, and the module as an OCI image.
# Included from the Makefile, whose variables it uses (TARGET, WASM, WASM_OPT_FLAGS) and whose
# `build` and `toolchain` targets it builds on.
#
#   make dist              dist/consent_gate-<version>.wasm and dist/consent_gate-<version>.wasm.sha256;
#                          the dynamic module as dist/libconsent_gate-<version>-envoy<minor>-<arch>.so
#                          and its .sha256 (built for one Envoy minor version: see the README)
#   make oci               dist/oci/: an OCI image layout, tag <version> (the Wasm image spec's
#                          "compat" variant: one tar+gzip layer holding plugin.wasm)
#   make dist-repro-check  two clean builds, at two paths with two CARGO_HOME paths, must give
#                          the same bytes as each other and as dist/consent_gate.wasm
#
# Reproducibility. rustc and wasm-opt write no timestamps into the module, but rustc does write the
# source paths of the crates it compiles into panic locations: the dependencies' paths lie under
# CARGO_HOME (/root/.cargo/registry/src/... on one machine, /home/ci/.cargo/... on another).
# RELEASE_CARGO_FLAGS remaps them (and the source tree, should an absolute path of it ever be
# compiled in) to fixed prefixes. It is added to the target's rustflags with `--config`, which
# cargo merges with .cargo/config.toml's (+simd128), where RUSTFLAGS would replace them.
# The same rustc (1.95.0) and wasm-opt (binaryen 108) are needed for the same bytes.
#
# `make build` must pass $(RELEASE_CARGO_FLAGS) to `cargo build` too: the released module is the
# module `make build` made and the end-to-end tests ran, and dist-repro-check holds it to a clean
# build.

RELEASE_VERSION := $(shell grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
RELEASE_WASM    := dist/consent_gate-$(RELEASE_VERSION).wasm
# The dynamic module is built per Envoy minor version (its ABI) and CPU architecture.
RELEASE_ENVOY   := 1.40
RELEASE_NATIVE  := dist/libconsent_gate-$(RELEASE_VERSION)-envoy$(RELEASE_ENVOY)-$(shell uname -m).so
OCI_LAYOUT      := dist/oci

# The dependencies' source paths start here; cargo's default is ~/.cargo.
RELEASE_CARGO_HOME := $(abspath $(or $(CARGO_HOME),$(HOME)/.cargo))
# rustc applies the last matching remapping: CARGO_HOME last, in case it lies inside the tree.
RELEASE_CARGO_FLAGS = --locked --config 'target.$(TARGET).rustflags=["--remap-path-prefix=$(CURDIR)=/consent-gate","--remap-path-prefix=$(RELEASE_CARGO_HOME)=/cargo"]'

# The image's timestamps (config "created", the layer's file mtime): the last commit's time, so
# that one commit always gives one image. Override with SOURCE_DATE_EPOCH=<seconds>.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

.PHONY: dist oci dist-repro-check release-module

## dist: the versioned module and its checksum (the module `make build` made)
dist: build
	cp $(WASM) $(RELEASE_WASM)
	cd dist && sha256sum $(notdir $(RELEASE_WASM)) > $(notdir $(RELEASE_WASM)).sha256
	@echo "$(RELEASE_WASM): $$(cut -d' ' -f1 $(RELEASE_WASM).sha256)"
	cp --remove-destination $(NATIVE) $(RELEASE_NATIVE)
	cd dist && sha256sum $(notdir $(RELEASE_NATIVE)) > $(notdir $(RELEASE_NATIVE)).sha256
	@echo "$(RELEASE_NATIVE): $$(cut -d' ' -f1 $(RELEASE_NATIVE).sha256)"

## oci: dist/oci, an OCI image layout holding the module, tagged $(RELEASE_VERSION)
oci: dist
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) tools/oci-image.sh $(RELEASE_WASM) $(OCI_LAYOUT) $(RELEASE_VERSION)

## dist-repro-check: two clean builds give the same bytes as each other and as the released module
dist-repro-check: dist
	MAKE="$(MAKE)" TARGET="$(TARGET)" WASM_OPT_FLAGS="$(WASM_OPT_FLAGS)" \
	  tools/repro-check.sh $(RELEASE_WASM)

# One release build of the module: cargo into RELEASE_TARGET_DIR, then wasm-opt into RELEASE_OUT.
# What `make build` does, with RELEASE_CARGO_FLAGS; tools/repro-check.sh runs it in two trees.
release-module:
	@test -n "$(RELEASE_TARGET_DIR)" -a -n "$(RELEASE_OUT)" || { echo "release-module needs RELEASE_TARGET_DIR and RELEASE_OUT"; exit 2; }
	cargo build --release --target $(TARGET) $(RELEASE_CARGO_FLAGS) --target-dir $(RELEASE_TARGET_DIR)
	@mkdir -p $(dir $(RELEASE_OUT))
	wasm-opt $(WASM_OPT_FLAGS) $(RELEASE_TARGET_DIR)/$(TARGET)/release/consent_gate.wasm -o $(RELEASE_OUT)
