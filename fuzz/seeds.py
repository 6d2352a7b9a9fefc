"""Seed corpora for the fuzz targets, written from the test suites' own cases: every request body
of the end-to-end tables (tests/e2e/test_*.py), the differential test's generated bodies, the
route metadata of envoy/e2e.yaml as Envoy serialises it, the plugin configurations and request
targets the suites use, and every input a fuzz run once found (fuzz/regressions/<target>/).
Usage: seeds.py OUT_DIR (one folder per target; existing seeds are kept).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import yaml  # noqa: E402

# The fuzz targets' first byte chooses the endpoint (fuzz/src/lib.rs PATHS).
PATHS = ["/v1/track", "/v1/t", "/v1/identify", "/v1/batch", "/v1/b", "/collect"]
TABLE_MODULES = ["test_decision", "test_batches", "test_encoding", "test_transport", "test_plugin_config",
                 "test_consent_sources"]


def table_bodies() -> list[bytes]:
    """Every bytes value in the parameter tables of the end-to-end modules."""
    bodies = []
    for name in TABLE_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if not isinstance(value, list):
                continue
            for row in value:
                for v in getattr(row, "values", ()):
                    if isinstance(v, bytes):
                        bodies.append(v)
                    elif hasattr(v, "body") and isinstance(getattr(v, "body"), bytes):
                        bodies.append(v.body)
    return bodies


def differential_bodies() -> list[tuple[str, bytes, str | None]]:
    from test_differential import generate

    return [(path, raw, encoding) for _, path, _, raw, encoding in generate(400)]


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def pb_value(v) -> bytes:
    """google.protobuf.Value, as Envoy serialises YAML metadata."""
    if v is None:
        return varint(1 << 3) + varint(0)
    if isinstance(v, bool):
        return varint(4 << 3) + varint(int(v))
    if isinstance(v, (int, float)):
        return varint(2 << 3 | 1) + struct.pack("<d", float(v))
    if isinstance(v, str):
        return field(3, v.encode())
    if isinstance(v, list):
        return field(6, b"".join(field(1, pb_value(x)) for x in v))
    return field(5, pb_struct(v))


def pb_struct(d: dict) -> bytes:
    return b"".join(field(1, field(1, k.encode()) + field(2, pb_value(v))) for k, v in d.items())


def metadata_seeds() -> list[bytes]:
    config = yaml.safe_load((ROOT / "envoy" / "e2e.yaml").read_text())
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    seeds = []
    for vhost in hcm["route_config"]["virtual_hosts"]:
        for route in vhost["routes"]:
            namespaces = route.get("metadata", {}).get("filter_metadata", {})
            seeds.append(b"".join(field(1, field(1, ns.encode()) + field(2, pb_struct(d)))
                                  for ns, d in namespaces.items()))
    return seeds


def config_seeds() -> list[bytes]:
    from conftest import PLUGIN_CONFIGS
    from test_route_config import TARGETS

    configs = [json.dumps(c) for c in PLUGIN_CONFIGS.values()]
    targets = TARGETS + [("api.example.com", "/v1/%2e%2e/track"), ("[::1]:80", "/a;b/../c")]
    return [f"{c}\0{host}\0{path}".encode() for c in configs for host, path in targets[::3]]


def write(out: Path, target: str, seeds: list[bytes]) -> int:
    folder = out / target
    folder.mkdir(parents=True, exist_ok=True)
    regressions = Path(__file__).resolve().parent / "regressions" / target
    seeds = seeds + [f.read_bytes() for f in sorted(regressions.glob("*"))]
    for seed in seeds:
        (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return len(seeds)


def main(out: Path) -> None:
    bodies = table_bodies()
    generated = differential_bodies()
    # The second byte's bits choose the configuration and route (fuzz/src/lib.rs Setup).
    event_seeds = [bytes([i % len(PATHS), i % 64]) + b for i, b in enumerate(bodies)]
    event_seeds += [bytes([PATHS.index(p.split("/ads", 1)[-1]) if p.split("/ads", 1)[-1] in PATHS else 5,
                           0]) + raw for p, raw, enc in generated if enc is None]
    batch_seeds = []
    for b in bodies + [raw for _, raw, enc in generated if enc is None]:
        try:
            doc = json.loads(b)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("batch"), list):
            items = ",".join(json.dumps(i, separators=(",", ":")) for i in doc["batch"]).encode()
            batch_seeds += [bytes([mode]) + items for mode in (0, 1, 0x28, 0x31, 0x44, 0x7f)]
    compressed = []
    for i, b in enumerate(bodies[:200]):
        compressed += [bytes([i % 6 * 2]) + gzip.compress(b, mtime=0),
                       bytes([i % 6 * 2 + 1]) + zlib.compress(b)]
    compressed.append(b"\x00" + gzip.compress(b"{}", mtime=0) * 3)
    # A member with a header CRC (FHCRC), right and wrong (byte 10 is its first): zlib and Go check it.
    from test_encoding import flip, gzip_member
    with_crc = gzip_member(b'{"a":1}', hcrc=True)
    compressed += [b"\x00" + with_crc, b"\x00" + flip(with_crc, 10)]
    counts = {
        "event_decision": write(out, "event_decision", event_seeds),
        "batch_rewrite": write(out, "batch_rewrite", batch_seeds),
        "decompression": write(out, "decompression", compressed),
        "route_metadata": write(out, "route_metadata", metadata_seeds()),
        "plugin_config": write(out, "plugin_config", config_seeds()),
        # Every body at a few shifts against the 64-byte blocks (the first byte), handed over
        # block-wise after a few distances (the second).
        "json_skip": write(out, "json_skip", [bytes([shift, after]) + b for i, b in enumerate(bodies)
                                              for shift, after in ((0, 255), (1 + i % 63, i % 97))]),
    }
    print("seeds: " + ", ".join(f"{t} {n}" for t, n in counts.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
