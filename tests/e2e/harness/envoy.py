"""Real Envoy processes for the end-to-end suite.

`render_config` turns the canonical `envoy/e2e.yaml` into a runnable copy: ports swapped (listener
and admin on port 0, so the kernel picks free ones; the upstream on the recording upstream's port),
plugin configuration JSON and wasm path set, access log sent to a file. `passthrough=True` removes
the consent_gate filter, which is how the harness proves itself without the module.

`Envoy` owns the child process: started with --concurrency N, --disable-hot-restart (several
Envoys side by side), --file-flush-interval-msec 100, stderr to a file; ready once admin /ready
answers 200; killed at stop().
"""

from __future__ import annotations

import copy
import ctypes
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
CANONICAL_CONFIG = REPO / "envoy" / "e2e.yaml"
FILTER_NAME = "consent_gate"
UPSTREAM_CLUSTER = "recording_upstream"


def envoy_bin() -> str:
    return os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")


# Which build of the filter the suite runs: "wasm" (the proxy-wasm module, the default) or
# "native" (the Envoy dynamic module). `make e2e` runs the suite once for each.
MODULE = os.environ.get("CONSENT_GATE_MODULE", "wasm")
if MODULE not in ("wasm", "native"):
    raise SystemExit(f"CONSENT_GATE_MODULE must be wasm or native, not {MODULE!r}")

# The Envoy log component the filter's own lines appear under.
LOG_COMPONENT = {"wasm": "wasm", "native": "dynamic_modules"}[MODULE]

STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
DYNAMIC_MODULE_FILTER = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"


def wasm_path() -> Path:
    return Path(os.environ.get("CONSENT_GATE_WASM") or REPO / "dist" / "consent_gate.wasm").resolve()


def native_path() -> Path:
    return Path(os.environ.get("CONSENT_GATE_SO") or REPO / "dist" / "libconsent_gate.so").resolve()


def module_path() -> Path:
    """The built filter the suite runs (see MODULE)."""
    return wasm_path() if MODULE == "wasm" else native_path()


def filter_log_lines(text: str) -> list[str]:
    """The filter's own lines in an Envoy log (`... [info][wasm] ... wasm log consent_gate: ...`,
    `... [info][dynamic_modules] ... consent_gate: ...`)."""
    return [line for line in text.splitlines()
            if f"][{LOG_COMPONENT}]" in line and "consent_gate" in line and ": " in line
            and ("wasm log" in line or MODULE == "native")]


def envoy_env(module: Path | None = None) -> dict[str, str]:
    """The environment Envoy runs in: with the dynamic module, the folder that holds it (or the
    test build `module`) on ENVOY_DYNAMIC_MODULES_SEARCH_PATH."""
    env = dict(os.environ)
    if MODULE == "native":
        env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str((module or native_path()).parent)
    return env


def dynamic_module_filter(plugin_config: str) -> dict:
    """The consent_gate filter block for the dynamic module: the same plugin configuration,
    found as `libconsent_gate.so` on ENVOY_DYNAMIC_MODULES_SEARCH_PATH."""
    return {
        "@type": DYNAMIC_MODULE_FILTER,
        "dynamic_module_config": {"name": "consent_gate", "do_not_close": True},
        "filter_name": "consent_gate",
        "filter_config": {"@type": STRING_VALUE, "value": plugin_config},
    }


def _hcm(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def render_config(
    *,
    upstream_port: int,
    plugin_config: dict | str | None = None,
    access_log: Path | None = None,
    passthrough: bool = False,
    envoy_normalization: bool = True,
    module: Path | None = None,
    failure_policy: str | None = None,
    allow_on_headers_stop_iteration: bool = True,
    upstream_trailers: bool = False,
    upgrades: bool = False,
) -> dict:
    """The canonical config with this run's ports, plugin configuration and paths.

    `envoy_normalization=False` turns off Envoy's own path and host normalisation, so that tests
    see what the filter does with raw paths and hosts by itself. `module` replaces the built filter
    (a test build, of the kind MODULE names), `failure_policy` the wasm failure policy. With
    MODULE "native" the wasm filter block becomes the dynamic module's (Envoy must then be
    started with ENVOY_DYNAMIC_MODULES_SEARCH_PATH: `Envoy` does it).
`allow_on_headers_stop_iteration=False` leaves out the wasm setting the filter requires (the
mistake tests/e2e/test_incomplete.py makes on purpose). `upstream_trailers` lets Envoy read the
upstream's HTTP/1.1 trailers (and pass them on). `upgrades` lets the listener take websocket
upgrades and HTTP/2's extended CONNECT (through the listener's filter chain).

    `plugin_config` is a dict (dumped as JSON) or a raw string (sent as is, for bad-config cases).
    """
    config = copy.deepcopy(yaml.safe_load(CANONICAL_CONFIG.read_text()))
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = 0
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == UPSTREAM_CLUSTER]
    for group in cluster["load_assignment"]["endpoints"]:
        for endpoint in group["lb_endpoints"]:
            endpoint["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port

    if upstream_trailers:
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}}}}
    hcm = _hcm(config)
    if upgrades:
        hcm["upgrade_configs"] = [{"upgrade_type": "websocket"}]
        hcm.setdefault("http2_protocol_options", {})["allow_connect"] = True
    if not envoy_normalization:
        for key in ("normalize_path", "merge_slashes", "strip_trailing_host_dot"):
            hcm[key] = False
    if access_log is not None:
        hcm["access_log"][0]["typed_config"]["path"] = str(access_log)
    (gate,) = [f for f in hcm["http_filters"] if f["name"] == FILTER_NAME]
    if passthrough:
        hcm["http_filters"].remove(gate)
    else:
        plugin = gate["typed_config"]["config"]
        if plugin_config is not None:
            value = plugin_config if isinstance(plugin_config, str) else json.dumps(plugin_config)
            plugin["configuration"]["value"] = value
        plugin["vm_config"]["code"]["local"]["filename"] = str(module or wasm_path())
        if failure_policy is not None:
            plugin["failure_policy"] = failure_policy
        if not allow_on_headers_stop_iteration:
            del plugin["allow_on_headers_stop_iteration"]
        if MODULE == "native":
            gate["typed_config"] = dynamic_module_filter(plugin["configuration"]["value"])
    return config


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class ValidateResult:
    returncode: int
    output: str  # stdout + stderr


def validate(config_path: Path, timeout: float = 60, module: Path | None = None) -> ValidateResult:
    """`envoy --mode validate -c FILE`: loads the module and runs its configuration hook."""
    proc = subprocess.run(
        [envoy_bin(), "--mode", "validate", "-c", str(config_path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=envoy_env(module),
    )
    return ValidateResult(proc.returncode, proc.stdout + proc.stderr)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the test process dies (PR_SET_PDEATHSIG), so no
    Envoy outlives a killed test run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class EnvoyStartError(RuntimeError):
    pass


class Envoy:
    """One Envoy child process. Use `port` for requests, `stderr_text()` / `access_log_text()` to read logs."""

    def __init__(self, name: str, workdir: Path, config: dict, concurrency: int = 1,
                 module: Path | None = None):
        self.name = name
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = write_config(config, workdir / f"{name}.yaml")
        self.stderr_path = workdir / f"{name}.stderr.log"
        self.access_log_path = Path(_hcm(config)["access_log"][0]["typed_config"]["path"])
        self.admin_address_path = workdir / f"{name}.admin-address"
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.admin_port: int | None = None
        self.expect_crash = False  # a test that crashes the VM on purpose sets it
        self.env = envoy_env(module)

    def start(self, timeout: float = 30.0) -> "Envoy":
        self.admin_address_path.unlink(missing_ok=True)
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [
                    envoy_bin(),
                    "-c", str(self.config_path),
                    "--concurrency", str(self.concurrency),
                    "--disable-hot-restart",
                    "--file-flush-interval-msec", "100",
                    "--admin-address-path", str(self.admin_address_path),
                    "--log-level", "info",
                    "--component-log-level", "wasm:debug,dynamic_modules:debug",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvoyStartError(
                    f"envoy {self.name} exited with {self.proc.returncode}:\n{self.stderr_tail()}"
                )
            if self._try_ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise EnvoyStartError(f"envoy {self.name} not ready after {timeout}s:\n{self.stderr_tail()}")

    def _try_ready(self) -> bool:
        try:
            if self.admin_port is None:
                address = self.admin_address_path.read_text().strip()
                if not address:
                    return False
                self.admin_port = int(address.rsplit(":", 1)[1])
            status, _ = self.admin_get("/ready")
            if status != 200:
                return False
            _, body = self.admin_get("/listeners?format=json")
            (listener,) = json.loads(body)["listener_statuses"]
            self.port = int(listener["local_address"]["socket_address"]["port_value"])
            return self.port != 0
        except (OSError, ValueError, KeyError):
            return False

    def admin_get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def stats(self) -> dict[str, str]:
        _, body = self.admin_get("/stats")
        stats = {}
        for line in body.splitlines():
            name, _, value = line.partition(": ")
            stats[name] = value
        return stats

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stderr_tail(self, lines: int = 40) -> str:
        return "\n".join(self.stderr_text().splitlines()[-lines:])

    def access_log_text(self) -> str:
        path = self.access_log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
