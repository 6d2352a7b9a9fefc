"""Helpers for tests/e2e/test_deploy.py: the release artifacts and the deployment manifests in
deploy/, checked as far as this machine can (no container engine, no Kubernetes).

- OCI image layouts: read index -> manifest -> config and layers, checking digests and sizes.
- A local registry (Debian's docker-registry) and skopeo, for a push and pull round trip.
- Envoy processes for configs built here (the compose config with its service names mapped to
  127.0.0.1; sidecar-like and gateway-like configs with a mesh patch applied), and plain Python
  processes for the compose services' own scripts.
- The patch semantics the tests need: Istio EnvoyFilter (MERGE, INSERT_BEFORE) and RFC 6902 JSON
  Patch `add` (Envoy Gateway's EnvoyPatchPolicy).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.envoy import envoy_bin

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
DIST = REPO / "dist"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
ROUTER = "envoy.filters.http.router"
ROUTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# The Debian packages the deploy tests need, by the command they provide.
DEBIAN_PACKAGES = {
    "umoci": "umoci",
    "skopeo": "skopeo",
    "docker-registry": "docker-registry",
    "docker-compose": "docker-compose",
}


def need_command(command: str) -> str:
    """The command's path, or a failure naming the Debian package to install."""
    path = shutil.which(command)
    if path is None:
        package = DEBIAN_PACKAGES.get(command, command)
        pytest.fail(
            f"`{command}` is not installed: this test needs the Debian package {package} "
            f"(apt-get install -y {package})",
            pytrace=False,
        )
    return path


def cargo_version() -> str:
    for line in (REPO / "Cargo.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split('"')[1]
    raise AssertionError("no version in Cargo.toml")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def yaml_documents(path: Path) -> list[dict]:
    """Every document of a YAML file (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# --- OCI image layouts ------------------------------------------------------------------------


@dataclass
class OciImage:
    manifest_descriptor: dict
    manifest: dict
    manifest_bytes: bytes
    config: dict
    layers: list[bytes]


def read_blob(layout: Path, descriptor: dict) -> bytes:
    """The blob a descriptor points at, after checking its digest and size."""
    algorithm, _, hexdigest = descriptor["digest"].partition(":")
    assert algorithm == "sha256", f"digest algorithm {algorithm!r} in {descriptor}"
    path = layout / "blobs" / "sha256" / hexdigest
    assert path.is_file(), f"blob {descriptor['digest']} is missing from {layout}"
    data = path.read_bytes()
    assert sha256_hex(data) == hexdigest, f"blob {path.name} does not hash to its name"
    assert len(data) == descriptor["size"], (
        f"blob {descriptor['digest']} is {len(data)} bytes, its descriptor says {descriptor['size']}"
    )
    return data


def read_oci_layout(layout: Path, tag: str) -> OciImage:
    """The image tagged `tag` in an OCI image layout, every digest and size checked."""
    marker = json.loads((layout / "oci-layout").read_text())
    assert marker == {"imageLayoutVersion": "1.0.0"}, f"oci-layout says {marker}"
    index = json.loads((layout / "index.json").read_text())
    assert index["schemaVersion"] == 2
    assert index.get("mediaType", OCI_INDEX) == OCI_INDEX
    tagged = [
        m for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    assert len(tagged) == 1, f"index.json has {len(tagged)} manifests tagged {tag!r}: {index}"
    descriptor = tagged[0]
    assert descriptor["mediaType"] == OCI_MANIFEST, descriptor
    manifest_bytes = read_blob(layout, descriptor)
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST
    config = json.loads(read_blob(layout, manifest["config"]))
    layers = [read_blob(layout, layer) for layer in manifest["layers"]]
    return OciImage(descriptor, manifest, manifest_bytes, config, layers)


def tar_members(layer_tar_gz: bytes) -> tuple[dict[str, tuple[tarfile.TarInfo, bytes]], bytes]:
    """The members of a tar+gzip layer by name (with their bytes), and the uncompressed tar; the
    whole archive must be well formed, end blocks included."""
    raw = gzip.decompress(layer_tar_gz)
    files = {}
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        for member in archive.getmembers():  # reads to the end: a truncated tar raises here
            data = archive.extractfile(member).read() if member.isfile() else b""
            files[member.name] = (member, data)
    return files, raw


# --- a local registry -------------------------------------------------------------------------


class Registry:
    """Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, storage in a temp dir."""

    def __init__(self, workdir: Path):
        self.binary = need_command("docker-registry")
        self.port = free_port()
        self.workdir = workdir
        (workdir / "storage").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "registry.yml"
        self.config.write_text(yaml.safe_dump({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": "consent-gate-test"},
        }))
        self.log = workdir / "registry.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> "Registry":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, "serve", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log.read_text()}")
            try:
                status, _, _ = http_request(self.address, "GET", "/v2/")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry not ready after {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def skopeo(*args: str, workdir: Path) -> subprocess.CompletedProcess:
    """skopeo with its own permissive signature policy (no /etc/containers needed)."""
    policy = workdir / "policy.json"
    if not policy.exists():
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return subprocess.run(
        [need_command("skopeo"), "--policy", str(policy), *args],
        capture_output=True, text=True, timeout=120,
    )


# --- processes --------------------------------------------------------------------------------


def http_request(address: str, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                 timeout: float = 10):
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class EnvoyRun:
    """One Envoy child process for a config dict: admin and listener ports learnt at start."""

    def __init__(self, config: dict, workdir: Path, name: str = "envoy"):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.stderr_path = workdir / f"{name}.stderr.log"
        self.stdout_path = workdir / f"{name}.stdout.log"
        self.admin_address_path = workdir / f"{name}.admin-address"
        self.proc: subprocess.Popen | None = None
        self.admin_port: int | None = None
        self.listener_ports: dict[str, int] = {}

    def start(self, timeout: float = 30) -> "EnvoyRun":
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [envoy_bin(), "-c", str(self.config_path), "--concurrency", "1",
                 "--disable-hot-restart", "--admin-address-path", str(self.admin_address_path),
                 "--log-level", "warn"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.stderr()}")
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.stderr()}")

    def _ready(self) -> bool:
        try:
            if self.admin_port is None:
                text = self.admin_address_path.read_text().strip()
                if not text:
                    return False
                self.admin_port = int(text.rsplit(":", 1)[1])
            status, _, _ = http_request(f"127.0.0.1:{self.admin_port}", "GET", "/ready", timeout=2)
            if status != 200:
                return False
            _, _, body = http_request(f"127.0.0.1:{self.admin_port}", "GET", "/listeners?format=json")
            for listener in json.loads(body)["listener_statuses"]:
                port = int(listener["local_address"]["socket_address"]["port_value"])
                if port == 0:
                    return False
                self.listener_ports[listener["name"]] = port
            return bool(self.listener_ports)
        except (OSError, ValueError, KeyError):
            return False

    @property
    def port(self) -> int:
        (port,) = self.listener_ports.values()
        return port

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class ScriptRun:
    """A long-running Python script (a compose service's command), output to a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path):
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_http(self, address: str, path: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.proc.args} exited:\n{self.log.read_text()}")
            try:
                if http_request(address, "GET", path, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.proc.args} not answering {path} after {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


# --- config surgery ---------------------------------------------------------------------------


def listeners(config: dict) -> list[dict]:
    return config["static_resources"]["listeners"]


def hcm_of(listener: dict) -> dict:
    chain = listener.get("default_filter_chain") or listener["filter_chains"][0]
    (hcm,) = [f for f in chain["filters"] if f["name"] == "envoy.filters.network.http_connection_manager"]
    return hcm["typed_config"]


def wasm_filters(config: dict) -> list[dict]:
    """Every wasm HTTP filter's typed_config in a config."""
    found = []
    for listener in listeners(config):
        for f in hcm_of(listener)["http_filters"]:
            if f.get("typed_config", {}).get("@type") == WASM_TYPE:
                found.append(f["typed_config"])
    return found


def set_local_module(wasm_typed_config: dict, path: Path) -> None:
    """What istio-agent does to a remote module once fetched, and what a volume mount gives: code
    from a local file."""
    wasm_typed_config["config"]["vm_config"]["code"] = {"local": {"filename": str(path)}}


def plugin_config(wasm_typed_config: dict) -> dict:
    return json.loads(wasm_typed_config["config"]["configuration"]["value"])


def set_plugin_config(wasm_typed_config: dict, value: dict | str) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    wasm_typed_config["config"]["configuration"]["value"] = text


def deep_merge(target: dict, patch: dict) -> dict:
    """Protobuf merge as Istio's MERGE applies it, for the maps and scalars used here: maps merge
    key by key, lists append, scalars replace."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        elif isinstance(value, list) and isinstance(target.get(key), list):
            target[key].extend(copy.deepcopy(value))
        else:
            target[key] = copy.deepcopy(value)
    return target


def json_pointer_add(document, pointer: str, value) -> None:
    """RFC 6902 `add`: into an object member (set) or an array index (insert; `-` appends)."""
    assert pointer.startswith("/"), pointer
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    parent = document
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        assert 0 <= index <= len(parent), f"{pointer}: index out of range"
        parent.insert(index, copy.deepcopy(value))
    else:
        parent[last] = copy.deepcopy(value)


def bootstrap(*, listener_name: str, stat_prefix: str, route_config: dict, cluster: dict,
              hcm_extra: dict | None = None, default_filter_chain: bool = False) -> dict:
    """A minimal Envoy bootstrap: one listener on 127.0.0.1 (a free port) whose HTTP connection
    manager has only the router, the given routes, and one cluster."""
    hcm = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "route_config": route_config,
        "http_filters": [{"name": ROUTER, "typed_config": {"@type": ROUTER_TYPE}}],
        **(hcm_extra or {}),
    }
    chain = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
    listener = {
        "name": listener_name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
    }
    if default_filter_chain:
        listener["default_filter_chain"] = chain
    else:
        listener["filter_chains"] = [chain]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
    }


def static_cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}],
        },
    }
