#!/usr/bin/env bash
# The module as an OCI image, in an OCI image layout directory (`make oci`).
#
#   tools/oci-image.sh MODULE.wasm LAYOUT_DIR TAG
#
# The image is the Wasm image specification's "compat" variant, the one Istio's and Envoy
# Gateway's image fetchers (and any registry, and ordinary container tools) accept:
#   - an OCI image manifest (application/vnd.oci.image.manifest.v1+json) with the annotation
#     module.wasm.image/variant=compat;
#   - a standard OCI image config (application/vnd.oci.image.config.v1+json), os wasip1,
#     architecture wasm;
#   - exactly one layer, application/vnd.oci.image.layer.v1.tar+gzip, a tar holding one file,
#     plugin.wasm (mode 0644, owner 0:0), byte for byte the module.
# The fetchers take the last layer, require that media type, and read the tar entry named
# plugin.wasm. (The other variant, with application/vnd.module.wasm.* media types, must have
# exactly two layers for them; one variant that every fetcher and registry takes is enough.)
#
# Reproducible: every timestamp (the config's "created", its history entry, the file's mtime) is
# SOURCE_DATE_EPOCH (default 0), the tar is written with fixed owner, mode and format, and umoci
# compresses it deterministically; the same module and epoch give the same digests.
#
# Built with umoci (Debian package `umoci`). umoci's own `insert` writes a tar without its end
# blocks (umoci 0.4.7), so the layer's tar is made here with GNU tar and added verbatim with
# `umoci raw add-layer`.
set -euo pipefail

module=${1:?usage: tools/oci-image.sh MODULE.wasm LAYOUT_DIR TAG}
layout=${2:?usage: tools/oci-image.sh MODULE.wasm LAYOUT_DIR TAG}
tag=${3:?usage: tools/oci-image.sh MODULE.wasm LAYOUT_DIR TAG}
epoch=${SOURCE_DATE_EPOCH:-0}

command -v umoci >/dev/null || {
  echo "oci-image: umoci not found: install the Debian package umoci (apt-get install -y umoci)" >&2
  exit 1
}
[ -f "$module" ] || { echo "oci-image: $module does not exist (run make dist)" >&2; exit 1; }

created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

install -m 0644 "$module" "$work/plugin.wasm"
tar --format=ustar --numeric-owner --owner=0 --group=0 --mode=0644 --mtime="@$epoch" \
    -C "$work" -cf "$work/layer.tar" plugin.wasm

rm -rf "$layout"
image="$layout:$tag"
umoci init --layout "$layout"
umoci new --image "$image"
umoci config --image "$image" --no-history \
  --created "$created" --os wasip1 --architecture wasm \
  --manifest.annotation "module.wasm.image/variant=compat" \
  --manifest.annotation "org.opencontainers.image.title=consent-gate" \
  --manifest.annotation "org.opencontainers.image.description=Envoy proxy-wasm filter enforcing end-user consent on Segment events (plugin.wasm)" \
  --manifest.annotation "org.opencontainers.image.version=$tag" \
  --manifest.annotation "org.opencontainers.image.licenses=Apache-2.0" \
  --manifest.annotation "org.opencontainers.image.created=$created"
umoci raw add-layer --image "$image" \
  --history.created "$created" --history.created_by "plugin.wasm ($(basename "$module"))" \
  "$work/layer.tar"
umoci gc --layout "$layout"
chmod -R a+rX "$layout"  # umoci writes index.json 0600

digest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$layout/index.json" | head -n1 | cut -d'"' -f4)
echo "$image: manifest $digest"
