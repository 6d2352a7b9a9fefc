#!/usr/bin/env bash
# Reproducible-build check for the wasm module (`make dist-repro-check`).
#
#   tools/repro-check.sh RELEASED_WASM
#
# Builds the module twice from clean target directories with deploy/release.mk's release-module
# target (what `make build` does, with the release flags):
#   A: in this tree, into target/repro-a/
#   B: in a copy of the sources at another path (target/repro-b/tree), with CARGO_HOME at another
#      path (target/repro-b/cargo-home, its registry linked to the real one, so nothing is
#      downloaded), into target/repro-b/
# A and B must be byte-identical (so neither the checkout's path nor CARGO_HOME's reaches the
# module), and equal to RELEASED_WASM (the module `make build` made, which `make dist` released).
#
# Environment (set by the make target): MAKE, TARGET, WASM_OPT_FLAGS; CARGO_HOME if not ~/.cargo.
set -euo pipefail

released=${1:?usage: tools/repro-check.sh RELEASED_WASM}
root=$(pwd)
make_cmd=${MAKE:-make}
: "${TARGET:?TARGET must be set}" "${WASM_OPT_FLAGS:?WASM_OPT_FLAGS must be set}"
cargo_home=$(realpath -m "${CARGO_HOME:-$HOME/.cargo}")

a=$root/target/repro-a
b=$root/target/repro-b
rm -rf "$a" "$b"
mkdir -p "$a" "$b/tree" "$b/cargo-home"

release_module() {  # DIR-TO-RUN-IN OUT-DIR [VAR=VALUE...]
  local dir=$1 out=$2
  shift 2
  "$make_cmd" --no-print-directory -s -C "$dir" -f deploy/release.mk release-module \
    TARGET="$TARGET" WASM_OPT_FLAGS="$WASM_OPT_FLAGS" \
    RELEASE_TARGET_DIR="$out/target" RELEASE_OUT="$out/consent_gate.wasm" "$@"
}

echo "repro-check: build A in $root"
release_module "$root" "$a"

echo "repro-check: build B in $b/tree, CARGO_HOME=$b/cargo-home"
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # Every file git would see (tracked or new, not ignored) as it is in the working tree.
  git -C "$root" ls-files -z --cached --others --exclude-standard \
    | tar -C "$root" --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -C "$b/tree" -xf -
else
  tar -C "$root" -cf - Cargo.toml Cargo.lock .cargo src benches tests deploy | tar -C "$b/tree" -xf -
fi
ln -s "$cargo_home/registry" "$b/cargo-home/registry"
[ -e "$cargo_home/git" ] && ln -s "$cargo_home/git" "$b/cargo-home/git"
for f in config.toml config; do
  [ -e "$cargo_home/$f" ] && ln -s "$cargo_home/$f" "$b/cargo-home/$f"
done
CARGO_HOME="$b/cargo-home" release_module "$b/tree" "$b"

sum() { sha256sum "$1" | cut -d' ' -f1; }
sa=$(sum "$a/consent_gate.wasm")
sb=$(sum "$b/consent_gate.wasm")
echo "repro-check: A $sa"
echo "repro-check: B $sb"
if [ "$sa" != "$sb" ]; then
  echo "repro-check: FAILED: two clean builds differ (target/repro-a vs target/repro-b)" >&2
  cmp "$a/consent_gate.wasm" "$b/consent_gate.wasm" >&2 || true
  exit 1
fi
sr=$(sum "$released")
echo "repro-check: released $sr ($released)"
if [ "$sa" != "$sr" ]; then
  echo "repro-check: FAILED: $released is not what a clean release build makes." >&2
  echo "  Does \`make build\` pass \$(RELEASE_CARGO_FLAGS) to cargo and run the same wasm-opt step" >&2
  echo "  as deploy/release.mk's release-module? (Or the sources changed since \`make dist\`.)" >&2
  exit 1
fi
echo "repro-check: OK, the module is reproducible"
