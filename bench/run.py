#!/usr/bin/env python3
"""consent-gate benchmark harness (`make bench`).

Eight kinds of front Envoy, one worker each (`--concurrency 1`), in front of the same fast upstream
(an Envoy answering every request with a `direct_response` 200), all on loopback:

  passthrough          no filter: the limit
  wasm-floor           bench/floor: a proxy-wasm module that only holds each request until its body
                       is complete (the least any body-inspecting wasm filter costs)
  consent-gate         dist/consent_gate.wasm, configured exactly like envoy/demo.yaml's filter
                       block; the route carries consent_gate metadata
  consent-gate-rules   the same module with "route_metadata": false and a `routes` rule
  lua                  a Lua filter: request_handle:body() plus one plain string search for
                       `"Advertising":true` (no JSON parsing), 403 when it is not found
  native-floor         bench/floor-native: a dynamic module that only holds each request until its
                       body is complete (the least any body-inspecting dynamic module costs)
  consent-gate-native  dist/libconsent_gate.so (the dynamic module), the same plugin configuration
                       as consent-gate, route metadata
  consent-gate-native-lean
                       the same with "decision_record": false: what an Envoy whose access log
                       does not read the decision record (as these fronts' do not) should run

Each front runs in several Envoy processes (BENCH_PROCESSES), since one process differs from the
next by a few µs per request; round r measures every front on its process (r - 1) mod processes.

Workloads (Segment track events generated here, with context.consent.categoryPreferences): a 1 KB
allowed event, a 1 KB denied event, a 32 KB allowed event, and a ~60 KB 100-item batch in which a
third of the items are denied (consent-gate forwards a rewritten batch). Each at 1 and 32
connections, driven by wrk (installed with apt-get when missing).

Runs alternate between the fronts (A B C ... A B C ...) and are repeated over several rounds; the
tables report medians over all runs and the spread of the per-process medians. Writes
bench/results.md, bench/results.json and bench/ratios.svg; rendered configs, bodies and Envoy logs
go to bench/out/. Builds bench/floor-native (`cargo build --release`) first.

Environment: QUICK=1 (about two minutes), BENCH_ROUNDS, BENCH_PROCESSES, BENCH_DURATION (seconds
per wrk run), ENVOY_BIN, WRK_BIN, CONSENT_GATE_WASM, CONSENT_GATE_NATIVE; for --instructions:
BENCH_INSTR_WARMUP, BENCH_INSTR_REQUESTS (requests per workload, uncounted and counted), VALGRIND_BIN.
Options: --validate (render and validate the configs, then stop), --instructions (each front in one
Envoy process under callgrind: instructions per request, which do not move with the machine's
load, into bench/instructions.md and bench/instructions.json; `make bench-instructions`),
--chart (redraw ratios.svg and
results.md from bench/results.json), --scan (time the decision core natively and inside V8 again,
into bench/results.json, and redraw: the full run does it first, before any Envoy starts).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
ENVOY_DIR = BENCH / "envoy"
RESULTS_MD = BENCH / "results.md"
RESULTS_JSON = BENCH / "results.json"
CHART = BENCH / "ratios.svg"

QUICK = os.environ.get("QUICK", "") not in ("", "0")
# Envoy processes per front: round r measures each front on its process (r - 1) % PROCESSES, so
# ROUNDS should be a multiple of PROCESSES (each process then gets ROUNDS / PROCESSES runs).
PROCESSES = int(os.environ.get("BENCH_PROCESSES") or (2 if QUICK else 3))
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (2 if QUICK else 6))
DURATION = int(os.environ.get("BENCH_DURATION") or (1 if QUICK else 2))
# Warm-up (not measured): every process of every front, at 32 connections, for this long on every
# workload (QUICK: the batch only), so V8 has tiered up the modules and every buffer has grown.
WARMUP = 1
CONCURRENCIES = (1, 32)
DENIED_BATCH_ITEMS = 33  # of 100: every item i with i % 3 == 1


def log(message: str = "") -> None:
    print(message, flush=True)


class BenchError(Exception):
    """A set-up or sanity failure: the run stops, loudly."""


# --------------------------------------------------------------------------------------------
# Processes: every child gets its own process group (and dies with us, even on SIGKILL of us).

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Children:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        else:
            # The leader is gone; make sure nothing it started lingers in its group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def run(self, argv: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
        """Runs a child to completion (killed with its group on timeout or interruption)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        proc = self.start(argv, text=True, **kw)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            self.stop(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)


CHILDREN = Children()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def _install_signal_handlers() -> None:
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background job);
    # SIGTERM and SIGHUP exit through the same clean-up. Every child is killed in main's finally.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


# --------------------------------------------------------------------------------------------
# Tools


def envoy_bin() -> str:
    return os.environ.get("ENVOY_BIN") or str(REPO / ".venv" / "bin" / "envoy")


def floor_wasm_path() -> Path:
    """bench/floor's module (built by `make bench`)."""
    return BENCH / "floor" / "target" / "wasm32-wasip1" / "release" / "wasm_floor.wasm"


def wasm_path() -> Path:
    return Path(os.environ.get("CONSENT_GATE_WASM") or REPO / "dist" / "consent_gate.wasm").resolve()


def native_path() -> Path:
    """consent-gate's dynamic module (built by `make build`). Envoy finds it by name
    (`libconsent_gate.so`) in the folder ENVOY_DYNAMIC_MODULES_SEARCH_PATH names."""
    return Path(os.environ.get("CONSENT_GATE_NATIVE") or REPO / "dist" / "libconsent_gate.so").resolve()


NATIVE_FLOOR_CRATE = BENCH / "floor-native"


def native_floor_path() -> Path:
    """bench/floor-native's dynamic module (built here, by `build_native_floor`)."""
    return NATIVE_FLOOR_CRATE / "target" / "release" / "libnative_floor.so"


def build_native_floor() -> None:
    """`cargo build --release` in bench/floor-native (its own workspace, no dependencies: offline,
    and a no-op when it is up to date)."""
    done = CHILDREN.run(["cargo", "build", "--release", "--quiet"], timeout=900, cwd=NATIVE_FLOOR_CRATE)
    if done.returncode != 0 or not native_floor_path().is_file():
        raise BenchError(f"building bench/floor-native failed ({done.returncode}):\n{(done.stdout or '')[-3000:]}")


def check_modules() -> None:
    for module, how in ((wasm_path(), "run `make build`"), (native_path(), "run `make build`"),
                        (floor_wasm_path(), "run `cd bench/floor && cargo build --release --target wasm32-wasip1`"),
                        (native_floor_path(), "build bench/floor-native")):
        if not module.is_file():
            raise BenchError(f"{module} does not exist: {how} first")
    if native_path().name != "libconsent_gate.so":
        raise BenchError(f"CONSENT_GATE_NATIVE must name a file called libconsent_gate.so (Envoy loads the "
                         f"module by that name), not {native_path().name}")


# The module files the fronts load: the built ones (`--validate`), or copies under out/modules/
# taken when the benchmark starts (see `use_modules`).
MODULES: dict[str, Path] = {}


def use_modules(snapshot: bool) -> None:
    """Chooses the module files the configs name. With `snapshot`, copies of the built modules,
    taken once under out/modules/: rebuilding dist/ while the benchmark runs changes nothing it
    measures (and `cp` over a dynamic module an Envoy has loaded would crash that Envoy)."""
    built = {"wasm": wasm_path(), "floor_wasm": floor_wasm_path(), "native": native_path(),
             "native_floor": native_floor_path()}
    if not snapshot:
        MODULES.update(built)
        return
    copies = {"wasm": OUT / "modules" / "consent_gate.wasm", "floor_wasm": OUT / "modules" / "wasm_floor.wasm",
              "native": OUT / "modules" / "native" / "libconsent_gate.so",
              "native_floor": OUT / "modules" / "native-floor" / "libnative_floor.so"}
    for key, copy in copies.items():
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[key], copy)
    MODULES.update(copies)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_tool(command: str, package: str, env_var: str) -> str:
    """A command from $<env_var> or PATH; else installed from Debian with apt-get (as root)."""
    found = os.environ.get(env_var) or shutil.which(command)
    if found:
        return found
    log(f"{command} is not installed: installing it with apt-get (Debian package `{package}`) ...")
    if os.geteuid() != 0:
        raise BenchError(f"{command} is missing and this is not root: run `apt-get install -y {package}` as "
                         f"root, or set {env_var}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        done = CHILDREN.run(argv, timeout=600, env=env)
        if done.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed ({done.returncode}):\n{done.stdout[-2000:]}")
    found = shutil.which(command)
    if not found:
        raise BenchError(f"apt-get installed {package} but {command} is not on PATH")
    log(f"installed {found}")
    return found


def scan_speeds() -> list[dict]:
    """The decision core on the benchmark bodies natively, in Node's V8 and in Envoy's own V8:
    examples/scan_speed.rs, built natively and for wasm32-wasip1 by `make bench` (the latter run by
    bench/v8_scan.mjs), and examples/scan_in_envoy.rs, the same measurement as a proxy-wasm module
    that Envoy starts as a bootstrap service. One JSON line per case and host."""
    native = REPO / "target" / "release" / "examples" / "scan_speed"
    wasm = REPO / "target" / "wasm32-wasip1" / "release" / "examples" / "scan_speed.wasm"
    if not native.exists() or not wasm.exists():
        log("scan_speed is not built (make bench builds it): no native/V8 scan table")
        return []
    node = ensure_tool("node", "nodejs", "NODE_BIN")
    out = []
    for argv in ([str(native)], [node, "--no-warnings", str(REPO / "bench" / "v8_scan.mjs"), str(wasm)]):
        done = CHILDREN.run(argv, timeout=600)
        if done.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed ({done.returncode}):\n{done.stdout[-2000:]}")
        out += [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return out + scan_in_envoy(len(out) // 2)


SCAN_IN_ENVOY = REPO / "target" / "scan-bench" / "wasm32-wasip1" / "release" / "examples" / "scan_in_envoy.wasm"


def scan_in_envoy(cases: int) -> list[dict]:
    """examples/scan_in_envoy.rs in Envoy's V8: started as a singleton bootstrap service, it logs
    one `scan {json}` line per case from its VM-start hook; Envoy is stopped once all are in."""
    if not SCAN_IN_ENVOY.exists():
        log("scan_in_envoy is not built (make bench builds it): no in-Envoy scan figures")
        return []
    config = {"bootstrap_extensions": [{
        "name": "envoy.bootstrap.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.wasm.v3.WasmService",
            "singleton": True,
            "config": {"name": "scan_in_envoy", "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": str(SCAN_IN_ENVOY)}}}}}}]}
    found: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scan_in_envoy.json"
        path.write_text(json.dumps(config))
        proc = CHILDREN.start([envoy_bin(), "-c", str(path), "--concurrency", "1", "--disable-hot-restart",
                               "--log-level", "warn"], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if "wasm log" in line and " scan {" in line:
                    found.append(json.loads(line.split(" scan ", 1)[1]))
                    if len(found) == cases:
                        break
        finally:
            CHILDREN.stop(proc)
    if len(found) < cases:
        raise BenchError(f"scan_in_envoy logged {len(found)} of {cases} cases; Envoy's output ends:\n"
                         + "".join(lines[-20:]))
    return found


def tool_version(argv: list[str]) -> str:
    try:
        done = CHILDREN.run(argv, timeout=30)
    except OSError:
        return "?"
    lines = (done.stdout or "").strip().splitlines()
    return lines[0].strip() if lines else "?"


# --------------------------------------------------------------------------------------------
# Workloads: realistic Segment track events (analytics.js field order: context after properties).

CONSENT_ALLOW = {"Advertising": True, "Analytics": True, "Functional": True, "DataSharing": False}
CONSENT_DENY = {"Advertising": False, "Analytics": True, "Functional": True, "DataSharing": False}


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _uuid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _product(rng: random.Random, i: int) -> dict:
    sku = f"{rng.choice(['TS', 'HD', 'SN', 'BG', 'CP'])}-{rng.randint(1000, 9999)}"
    return {
        "product_id": _hex(rng, 24),
        "sku": sku,
        "category": rng.choice(["Apparel", "Footwear", "Accessories", "Outdoor"]),
        "name": rng.choice(["Trail Running Shoe", "Merino Hoodie", "Canvas Tote", "Rain Shell"]),
        "brand": "Northwind",
        "variant": rng.choice(["Blue / M", "Black / L", "Olive / S"]),
        "price": round(rng.uniform(9, 240), 2),
        "quantity": rng.randint(1, 3),
        "position": i + 1,
        "url": f"https://shop.example.com/p/{sku.lower()}",
        "image_url": f"https://cdn.example.com/img/{sku.lower()}.jpg",
    }


def track_event(rng: random.Random, consent: dict, size: int, *, user: int = 1) -> bytes:
    """One compact browser (analytics.js) track event of exactly `size` bytes: "Product Added" with
    one product when small, else "Order Completed" with as many products as fit; a padding id
    fills the rest."""

    def build(n_products: int, pad: str | None) -> bytes:
        if n_products <= 1:
            event = "Product Added"
            product = _product(random.Random(f"{user}-0"), 0)
            for key in ("position", "image_url"):
                product.pop(key)
            properties = product
            page = {"path": "/cart", "title": "Cart", "url": "https://shop.example.com/cart"}
        else:
            event = "Order Completed"
            products = [_product(random.Random(f"{user}-{i}"), i) for i in range(n_products)]
            total = round(sum(p["price"] * p["quantity"] for p in products), 2)
            properties = {"order_id": f"ord_{user:06d}", "affiliation": "Online Store", "total": total,
                          "revenue": round(total * 0.9, 2), "shipping": 4.95, "tax": round(total * 0.1, 2),
                          "currency": "EUR", "products": products}
            page = {"path": "/checkout/complete", "referrer": "https://shop.example.com/cart", "search": "",
                    "title": "Order complete", "url": "https://shop.example.com/checkout/complete"}
        if pad is not None:
            properties["checkout_id"] = pad
        body = {
            "timestamp": "2024-05-14T09:21:07.123Z",
            "integrations": {},
            "type": "track",
            "properties": properties,
            "event": event,
            "context": {
                "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
                "page": page,
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                             "Chrome/124.0.0.0 Safari/537.36",
                "locale": "en-GB",
                "ip": "203.0.113.42",
                "consent": {"categoryPreferences": dict(consent)},
            },
            "messageId": f"ajs-next-{_hex(rng, 32)}",
            "anonymousId": _uuid(rng),
            "userId": f"user_{user:06d}",
            "writeKey": "wk_3Jr8Xq0bench",
            "sentAt": "2024-05-14T09:21:07.140Z",
        }
        return _dumps(body)

    state = rng.getstate()
    n = 1
    while True:
        rng.setstate(state)
        if len(build(n + 1, "")) > size:
            break
        n += 1
    rng.setstate(state)
    need = size - len(build(n, ""))
    if need < 0:
        raise ValueError(f"an event cannot be as small as {size} bytes")
    rng.setstate(state)
    out = build(n, _hex(random.Random(f"pad-{user}-{size}"), need))
    assert len(out) == size, (len(out), size)
    return out


def batch_item(rng: random.Random, consent: dict, user: int) -> dict:
    """A server-side (analytics-python) "Product Viewed" track event, about 600 bytes."""
    product = _product(random.Random(f"item-{user}"), 0)
    for key in ("position", "image_url", "brand"):
        product.pop(key)
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"user_{user:06d}",
        "anonymousId": _uuid(rng),
        "messageId": _uuid(rng),
        "timestamp": f"2024-05-14T09:{user % 60:02d}:07.{user % 1000:03d}Z",
        "properties": product,
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}, "ip": "198.51.100.7",
                    "consent": {"categoryPreferences": dict(consent)}},
        "integrations": {},
    }


def batch_body(rng: random.Random, items: int = 100) -> bytes:
    """A /v1/batch body; item i is denied (Advertising false) when i % 3 == 1."""
    events = [batch_item(rng, CONSENT_DENY if i % 3 == 1 else CONSENT_ALLOW, 1000 + i) for i in range(items)]
    return _dumps({"batch": events, "sentAt": "2024-05-14T09:21:08.000Z", "writeKey": "wk_3Jr8Xq0bench"})


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    path: str
    body: bytes
    denied: bool  # every request is answered 403 by the gating fronts

    @property
    def body_file(self) -> Path:
        return OUT / "bodies" / f"{self.key}.json"


def make_workloads() -> list[Workload]:
    rng = random.Random(20240514)
    return [
        Workload("1k_allowed", "1 KB allowed", "/v1/track", track_event(rng, CONSENT_ALLOW, 1024), False),
        Workload("1k_denied", "1 KB denied", "/v1/track", track_event(rng, CONSENT_DENY, 1024), True),
        Workload("32k_allowed", "32 KB allowed", "/v1/track", track_event(rng, CONSENT_ALLOW, 32 * 1024), False),
        Workload("batch", "batch 100 (1/3 denied)", "/v1/batch", batch_body(rng), False),
    ]


# --------------------------------------------------------------------------------------------
# Envoy configs and processes

FRONTS = ("passthrough", "wasm-floor", "consent-gate", "consent-gate-rules", "lua", "native-floor",
          "consent-gate-native", "consent-gate-native-lean")
# The fronts that answer a denied event themselves (the others forward everything).
GATING = ("consent-gate", "consent-gate-rules", "lua", "consent-gate-native", "consent-gate-native-lean")
CONSENT_GATE = ("consent-gate", "consent-gate-rules", "consent-gate-native", "consent-gate-native-lean")
NATIVE = ("consent-gate-native", "consent-gate-native-lean")
UPSTREAM_TX = "cluster.upstream.upstream_cx_tx_bytes_total"  # bytes a front sent to the upstream
FILTER_FRAGMENTS = {"passthrough": None, "wasm-floor": "filter_wasm_floor.yaml",
                    "consent-gate": "filter_consent_gate.yaml",
                    "consent-gate-rules": "filter_consent_gate_rules.yaml", "lua": "filter_lua.yaml",
                    "native-floor": "filter_native_floor.yaml",
                    "consent-gate-native": "filter_consent_gate_native.yaml",
                    "consent-gate-native-lean": "filter_consent_gate_native_lean.yaml"}
# The report's names for the fronts.
LABELS = {"passthrough": "passthrough", "wasm-floor": "wasm floor",
          "consent-gate": "consent-gate wasm (route metadata)",
          "consent-gate-rules": "consent-gate wasm (rules only)", "lua": "Lua",
          "native-floor": "native floor", "consent-gate-native": "consent-gate native",
          "consent-gate-native-lean": "consent-gate native, no decision record"}


def search_path(front: str) -> Path | None:
    """The folder a dynamic-module front's Envoy finds its module in (None: not a native front)."""
    return {"native-floor": MODULES["native_floor"].parent, "consent-gate-native": MODULES["native"].parent,
            "consent-gate-native-lean": MODULES["native"].parent}.get(front)


def front_env(front: str) -> dict[str, str]:
    """The environment of a front's Envoy: for a dynamic-module front, ENVOY_DYNAMIC_MODULES_SEARCH_PATH
    names the folder with its module (and only that one); the other fronts get none."""
    env = dict(os.environ)
    env.pop("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", None)
    folder = search_path(front)
    if folder is not None:
        env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(folder)
    return env


def render_front(front: str, upstream_port: int) -> str:
    subst = {"wasm": str(MODULES["wasm"]), "floor_wasm": str(MODULES["floor_wasm"]),
             "lua": str(ENVOY_DIR / "lua_baseline.lua"),
             "upstream_port": str(upstream_port)}
    fragment = FILTER_FRAGMENTS[front]
    filters = ""
    if fragment:
        text = string.Template((ENVOY_DIR / fragment).read_text()).substitute(subst)
        filters = textwrap.indent(text.rstrip("\n"), " " * 10)
    template = string.Template((ENVOY_DIR / "front.yaml.in").read_text())
    rendered = template.substitute(subst, http_filters=filters)
    header = f"# GENERATED by bench/run.py from bench/envoy/front.yaml.in for the {front} front.\n"
    folder = search_path(front)
    if folder is not None:
        header += f"# Run with ENVOY_DYNAMIC_MODULES_SEARCH_PATH={folder}\n"
    return header + rendered


def plugin_config(fragment: str) -> dict:
    """The plugin configuration (the StringValue's JSON) in a consent-gate filter fragment."""
    lines = (ENVOY_DIR / fragment).read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "value: |":
            indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
            block = []
            for more in lines[i + 1:]:
                if more.strip() and len(more) - len(more.lstrip()) < indent:
                    break
                block.append(more)
            return json.loads("\n".join(block))
    raise BenchError(f"no `value: |` block in bench/envoy/{fragment}")


def check_same_plugin_config() -> None:
    """The native front is configured exactly as the wasm consent-gate front, and the lean one
    differs only in leaving the decision record out."""
    wasm, native = plugin_config(FILTER_FRAGMENTS["consent-gate"]), plugin_config(FILTER_FRAGMENTS["consent-gate-native"])
    if wasm != native:
        raise BenchError(f"the consent-gate-native front's plugin configuration {native} differs from the "
                         f"consent-gate front's {wasm}")
    lean = plugin_config(FILTER_FRAGMENTS["consent-gate-native-lean"])
    if lean != {**native, "decision_record": False}:
        raise BenchError(f"the consent-gate-native-lean front's plugin configuration {lean} is not the "
                         f"consent-gate-native front's {native} with \"decision_record\": false")


def validate_config(path: Path, env: dict[str, str] | None = None) -> None:
    done = CHILDREN.run([envoy_bin(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
                        timeout=120, env=env)
    if done.returncode != 0 or "OK" not in (done.stdout or ""):
        raise BenchError(f"envoy --mode validate rejected {path}:\n{(done.stdout or '')[-3000:]}")


class Envoy:
    def __init__(self, name: str, config: Path, env: dict[str, str] | None = None,
                 prefix: list[str] | None = None) -> None:
        self.name = name
        self.config = config
        self.env = env
        self.prefix = prefix or []  # a tool Envoy runs under (callgrind, for `--instructions`)
        self.log_path = OUT / "logs" / f"{name}.log"
        self.admin_path = OUT / "logs" / f"{name}.admin"
        self.proc: subprocess.Popen | None = None
        self.admin = ""
        self.port = 0

    def start(self) -> "Envoy":
        return self.launch().wait_ready()

    def launch(self) -> "Envoy":
        self.admin_path.unlink(missing_ok=True)
        argv = [*self.prefix, envoy_bin(), "-c", str(self.config), "--concurrency", "1", "--disable-hot-restart",
                "--admin-address-path", str(self.admin_path), "--log-level", "warn",
                "--log-path", str(self.log_path)]
        with open(OUT / "logs" / f"{self.name}.stdout", "wb") as out:
            self.proc = CHILDREN.start(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self, timeout: float = 60) -> "Envoy":
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} Envoy exited ({self.proc.returncode}) at start:\n{self.log_tail()}")
            if self.admin_path.exists() and self.admin_path.read_text().strip():
                self.admin = self.admin_path.read_text().strip()
                try:
                    if self.admin_get("/ready").strip() == "LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            raise BenchError(f"{self.name} Envoy not ready within {timeout:.0f} s:\n{self.log_tail()}")
        listeners = json.loads(self.admin_get("/listeners?format=json"))
        self.port = int(listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"])
        return self

    def admin_get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as r:
            return r.read().decode()

    def stat(self, name: str) -> int | None:
        try:
            for line in self.admin_get(f"/stats?filter=^{name}$").splitlines():
                key, _, value = line.partition(": ")
                if key == name:
                    return int(value)
        except (OSError, ValueError):
            pass
        return None

    def stats(self, part: str) -> dict[str, int]:
        """Counters whose name contains `part`."""
        out = {}
        try:
            for line in self.admin_get(f"/stats?filter={part}").splitlines():
                key, _, value = line.partition(": ")
                if part in key and value.strip().isdigit():
                    out[key] = int(value)
        except OSError:
            pass
        return out

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM in KiB, from /proc/<pid>/status."""
        out = {}
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def cpu_seconds(self) -> float:
        """CPU time used so far by all of this Envoy's threads (schedstat: nanoseconds on CPU)."""
        assert self.proc is not None
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return total / 1e9

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


# --------------------------------------------------------------------------------------------
# Sanity checks: the benchmark must measure what it claims to.


def post(port: int, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def sanity_checks(fronts: dict[str, list[Envoy]], workloads: list[Workload]) -> list[str]:
    """Every process of every front answers each workload as it should; consent-gate (both builds)
    drops the batch's denied items and forwards the rest."""
    w = {wl.key: wl for wl in workloads}
    forwards_all = {"1k_allowed": 200, "1k_denied": 200, "32k_allowed": 200, "batch": 200}
    gates = {"1k_allowed": 200, "1k_denied": 403, "32k_allowed": 200, "batch": 200}
    expected = {front: gates if front in GATING else forwards_all for front in FRONTS}
    lines, failures = [], []
    for front, cases in expected.items():
        for proc_index, envoy in enumerate(fronts[front]):
            for key, want in cases.items():
                sent_before = envoy.stat(UPSTREAM_TX)
                status, headers, _ = post(envoy.port, w[key].path, w[key].body)
                note = ""
                if front in CONSENT_GATE and key == "batch":
                    dropped = headers.get("x-consent-gate-dropped")
                    forwarded = (envoy.stat(UPSTREAM_TX) or 0) - (sent_before or 0)
                    note = (f" (x-consent-gate-dropped: {dropped}; {forwarded:,} bytes forwarded upstream, "
                            f"headers included, for a {len(w[key].body):,} B body)")
                    if dropped != str(DENIED_BATCH_ITEMS):
                        failures.append(f"{envoy.name} dropped {dropped} batch items, expected {DENIED_BATCH_ITEMS}")
                    if sent_before is not None and not 0 < forwarded < len(w[key].body) * 0.8:
                        failures.append(f"{envoy.name} forwarded {forwarded:,} bytes for the batch: not a rewritten "
                                        f"batch without its {DENIED_BATCH_ITEMS} denied items")
                ok = status == want
                lines.append(f"  {'ok  ' if ok else 'FAIL'} {front:<19} #{proc_index + 1} {w[key].label:<24} "
                             f"-> {status} (want {want}){note}")
                if not ok:
                    failures.append(f"{envoy.name} answered {status} to the {w[key].label} event, expected {want}")
    for line in lines:
        log(line)
    if failures:
        raise BenchError("sanity checks failed:\n  " + "\n  ".join(failures))
    return lines


# --------------------------------------------------------------------------------------------
# Load


def run_wrk(wrk: str, front: Envoy, workload: Workload, conns: int, seconds: int) -> dict:
    """One wrk run against `front`; also the front Envoy's CPU time per request."""
    argv = [wrk, "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(BENCH / "wrk_post.lua"), f"http://127.0.0.1:{front.port}{workload.path}"]
    env = dict(os.environ, BENCH_BODY=str(workload.body_file))
    cpu0 = front.cpu_seconds()
    done = CHILDREN.run(argv, timeout=seconds + 60, env=env)
    cpu = front.cpu_seconds() - cpu0
    for line in (done.stdout or "").splitlines():
        if line.startswith("BENCH_RESULT "):
            result = json.loads(line[len("BENCH_RESULT "):])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            result["cpu_us_per_req"] = cpu * 1e6 / max(result["requests"], 1)
            result["front_cpu_share"] = cpu / (result["duration_us"] / 1e6)
            result["socket_errors"] = sum(result[k] for k in
                                          ("connect_errors", "read_errors", "write_errors", "timeouts"))
            return result
    if not front.alive():
        raise BenchError(f"the {front.name} Envoy died ({front.proc.returncode if front.proc else '?'}) during a "
                         f"run; its log ends:\n{front.log_tail()}")
    raise BenchError(f"wrk gave no result ({done.returncode}):\n{done.stdout}")


# --------------------------------------------------------------------------------------------
# Report


def median(values):
    return statistics.median(values) if values else float("nan")


# The table the issue asks for: these workloads and fronts, in this order.
MAIN_WORKLOADS = ("1k_allowed", "32k_allowed", "batch")
MAIN_FRONTS = ("wasm-floor", "consent-gate", "consent-gate-rules", "lua", "native-floor", "consent-gate-native",
               "consent-gate-native-lean")
WORKLOAD_NAMES = {"1k_allowed": "1 KB event", "1k_denied": "1 KB event, denied", "32k_allowed": "32 KB event",
                  "batch": "100-item batch, ⅓ denied"}


def summarize(data: dict) -> list[dict]:
    """One row per workload x concurrency x front: medians over every run, the spread of the
    per-process medians, and each figure relative to passthrough's median."""
    rows = []
    labels = {w["key"]: w for w in data["workloads"]}
    fronts = [f for f in FRONTS if any(r["front"] == f for r in data["runs"])]
    for wkey in labels:
        for conns in data["concurrencies"]:
            base = None
            for front in fronts:
                runs = [r for r in data["runs"] if (r["front"], r["workload"], r["conns"]) == (front, wkey, conns)]
                if not runs:
                    continue
                procs = sorted({r.get("proc", 0) for r in runs})
                per_proc = {p: [r for r in runs if r.get("proc", 0) == p] for p in procs}
                row = {
                    "workload": wkey, "label": labels[wkey]["label"], "conns": conns, "front": front,
                    "rps": median([r["rps"] for r in runs]),
                    "p50_us": median([r["p50_us"] for r in runs]),
                    "p99_us": median([r["p99_us"] for r in runs]),
                    "cpu_us": median([r["cpu_us_per_req"] for r in runs]),
                    "cpu_share": median([r["front_cpu_share"] for r in runs]),
                    "requests": sum(r["requests"] for r in runs),
                    "non2xx": sum(r["non2xx"] for r in runs),
                    "socket_errors": sum(r["socket_errors"] for r in runs),
                    "rounds": len(runs),
                    "processes": len(procs),
                    # Per process: the median of its runs.
                    "proc_rps": [median([r["rps"] for r in rs]) for rs in per_proc.values()],
                    "proc_cpu_us": [median([r["cpu_us_per_req"] for r in rs]) for rs in per_proc.values()],
                }
                if front == "passthrough":
                    base = row
                if base:
                    row["ratio"] = row["rps"] / base["rps"]
                    row["ratio_spread"] = (min(row["proc_rps"]) / base["rps"], max(row["proc_rps"]) / base["rps"])
                    row["p50_delta_us"] = row["p50_us"] - base["p50_us"]
                    row["cpu_delta_us"] = row["cpu_us"] - base["cpu_us"]
                    row["cpu_delta_spread"] = (min(row["proc_cpu_us"]) - base["cpu_us"],
                                               max(row["proc_cpu_us"]) - base["cpu_us"])
                denied = labels[wkey]["denied"] and front in GATING
                if denied:
                    row["non2xx_note"] = "all 403 (expected)" if row["non2xx"] == row["requests"] else \
                        f"UNEXPECTED: {row['non2xx']} of {row['requests']}"
                else:
                    row["non2xx_note"] = "0" if row["non2xx"] == 0 else f"UNEXPECTED: {row['non2xx']}"
                if row["socket_errors"]:
                    row["non2xx_note"] += f"; UNEXPECTED socket errors: {row['socket_errors']}"
                rows.append(row)
    return rows


def row_of(rows, front, wkey, conns) -> dict | None:
    for r in rows:
        if (r["front"], r["workload"], r["conns"]) == (front, wkey, conns):
            return r
    return None


def ratio_of(rows, front, wkey, conns, field="ratio"):
    r = row_of(rows, front, wkey, conns)
    return None if r is None else r.get(field)


def spread_text(spread, fmt: str) -> str:
    lo, hi = spread
    sep = " to " if lo < 0 or hi < 0 else "–"
    return f"{format(lo, fmt)}{sep}{format(hi, fmt)}"


def cpu_cell(row: dict | None) -> str:
    if row is None or "cpu_delta_us" not in row:
        return "–"
    text = f"{row['cpu_delta_us']:.1f}"
    if row["processes"] > 1:
        text += f" ({spread_text(row['cpu_delta_spread'], '.1f')})"
    return text


def ratio_cell(row: dict | None) -> str:
    if row is None or "ratio" not in row:
        return "–"
    text = f"{row['ratio']:.2f}"
    if row["processes"] > 1:
        text += f" ({spread_text(row['ratio_spread'], '.2f')})"
    return text


def measured_rounds(data: dict, proc: int) -> list[int]:
    """The rounds (1-based) in which process `proc` (0-based) of every front was measured."""
    procs = data["meta"].get("processes", 1)
    return [rnd for rnd in range(1, data["meta"]["rounds"] + 1) if (rnd - 1) % procs == proc]


def rss_growth(data: dict, front: str) -> list[tuple[int, int, int, int]]:
    """Per process of `front` measured in two rounds or more: (process number, first and last
    round it was measured in, RSS growth in KiB from after the first to after the last)."""
    out = []
    for p, values in enumerate(data["rss_per_round"].get(front, [])):
        rounds = [rnd for rnd in measured_rounds(data, p) if rnd <= len(values)]
        if len(rounds) >= 2:
            out.append((p + 1, rounds[0], rounds[-1], values[rounds[-1] - 1] - values[rounds[0] - 1]))
    return out


# KiB a process's RSS may move between round 1 and the last round and still count as "no growth"
# (allocator noise; a leak of one small allocation per request would be megabytes).
RSS_SLACK_KIB = 1024


def target_lines(data: dict, rows: list[dict]) -> list[str]:
    """The targets, each met or missed (on the medians; the spread across processes beside it)."""
    out = []

    def check(name: str, ok: bool | None, detail: str, straddles: bool = False) -> None:
        if ok is None:
            out.append(f"| {name} | n/a | – |")
            return
        verdict = "met" if ok else "**missed**"
        if straddles:
            verdict += " (the spread straddles the target)"
        out.append(f"| {name} | {detail} | {verdict} |")

    def cpu_target(front: str, wkey: str, c: int, limit: float, floor: str | None = None) -> None:
        row, floor_row = row_of(rows, front, wkey, c), row_of(rows, floor, wkey, c) if floor else None
        name = f"{LABELS[front]}, {WORKLOAD_NAMES[wkey]}, c={c}: CPU above passthrough ≤ " + (
            f"{LABELS[floor]} + {limit:g} µs" if floor else f"{limit:g} µs")
        if row is None or "cpu_delta_us" not in row or (floor and (floor_row is None or "cpu_delta_us" not in floor_row)):
            check(name, None, "")
            return
        bound = limit + (floor_row["cpu_delta_us"] if floor_row else 0)
        lo, hi = row["cpu_delta_spread"]
        detail = f"{row['cpu_delta_us']:.1f} µs ({spread_text((lo, hi), '.1f')})"
        if floor_row:
            detail += f" vs {bound:.1f} µs (floor {floor_row['cpu_delta_us']:.1f} µs + {limit:g})"
        check(name, row["cpu_delta_us"] <= bound, detail, straddles=lo <= bound < hi)

    def native_targets(front: str, concurrencies: list[int]) -> None:
        for c in concurrencies:
            cpu_target(front, "1k_allowed", c, 5)
            native, lua = row_of(rows, front, "1k_allowed", c), row_of(rows, "lua", "1k_allowed", c)
            name = f"{LABELS[front]}, 1 KB event, c={c}: CPU above passthrough below Lua's"
            if native and lua and "cpu_delta_us" in native and "cpu_delta_us" in lua:
                check(name, native["cpu_delta_us"] < lua["cpu_delta_us"],
                      f"{native['cpu_delta_us']:.1f} µs ({spread_text(native['cpu_delta_spread'], '.1f')}) vs Lua "
                      f"{lua['cpu_delta_us']:.1f} µs ({spread_text(lua['cpu_delta_spread'], '.1f')})",
                      straddles=native["cpu_delta_spread"][1] >= lua["cpu_delta_spread"][0]
                      and native["cpu_delta_us"] < lua["cpu_delta_us"])
            else:
                check(name, None, "")
        for c in concurrencies:
            cpu_target(front, "32k_allowed", c, 15)
        for c in concurrencies:
            cpu_target(front, "batch", c, 40)
        r = row_of(rows, front, "1k_allowed", 32)
        name = f"{LABELS[front]}, 1 KB event, c=32: req/s ≥ 0.95 × passthrough"
        if r and "ratio" in r:
            lo, hi = r["ratio_spread"]
            check(name, r["ratio"] >= 0.95, f"{r['ratio']:.3f} ({spread_text((lo, hi), '.3f')})",
                  straddles=lo < 0.95 <= hi)
        else:
            check(name, None, "")

    # The dynamic module, as configured by default and without the decision record.
    for native_front in NATIVE:
        native_targets(native_front, data["concurrencies"])
    # The proxy-wasm build, above the wasm floor.
    for front in ("consent-gate", "consent-gate-rules"):
        for wkey, limit in (("1k_allowed", 12), ("32k_allowed", 30), ("batch", 70)):
            for c in data["concurrencies"]:
                cpu_target(front, wkey, c, limit, floor="wasm-floor")
    # Memory.
    for front, build in (("consent-gate", "proxy-wasm"), ("consent-gate-rules", "proxy-wasm"),
                         ("consent-gate-native", "dynamic module"),
                         ("consent-gate-native-lean", "dynamic module")):
        growth = rss_growth(data, front)
        name = (f"{LABELS[front]} ({build}): RSS does not grow across rounds (≤ {RSS_SLACK_KIB:,} KiB from "
                f"the first round a process is measured in to its last, every process)")
        if not growth:
            out.append(f"| {name} | n/a: no process was measured in two rounds (BENCH_ROUNDS < 2 × BENCH_PROCESSES; "
                       f"per-round RSS below) | – |")
            continue
        check(name, all(g <= RSS_SLACK_KIB for *_, g in growth),
              "; ".join(f"#{p} {g:+,} KiB (round {r0} → {r1})" for p, r0, r1, g in growth))
    return out


def earlier_target_lines(data: dict, rows: list[dict]) -> list[str]:
    """Issue 5's targets (throughput ratios and module size), for each consent-gate front."""
    out = []

    def check(name, value, ok, detail):
        if value is None:
            out.append(f"| {name} | n/a | – |")
        else:
            out.append(f"| {name} | {detail} | {'met' if ok else 'missed'} |")

    for front in CONSENT_GATE:
        cg = lambda w, c, f="ratio": ratio_of(rows, front, w, c, f)  # noqa: E731
        r = cg("1k_allowed", 32)
        rl = ratio_of(rows, "lua", "1k_allowed", 32)
        if r is not None and rl is not None:
            check(f"{front}: 1 KB allowed, c=32: more req/s than Lua", r, r > rl, f"{r:.3f} vs Lua {rl:.3f}")
        d = cg("1k_allowed", 1, "p50_delta_us")
        check(f"{front}: 1 KB allowed, c=1: p50 ≤ passthrough + 20 µs", d, d is not None and d <= 20,
              f"{d:+.0f} µs" if d is not None else "")
        r = cg("32k_allowed", 32)
        check(f"{front}: 32 KB allowed, c=32: ≥ 0.90 × passthrough", r, r is not None and r >= 0.90,
              f"{r:.3f}" if r is not None else "")
        for c in data["concurrencies"]:
            r = cg("batch", c)
            check(f"{front}: batch with rewrite, c={c}: ≥ 0.80 × passthrough", r, r is not None and r >= 0.80,
                  f"{r:.3f}" if r is not None else "")
    size = data["meta"]["module_bytes"]
    check("proxy-wasm module < 300 KB (307,200 B)", size, size < 300 * 1024, f"{size:,} bytes ({size / 1024:.0f} KiB)")
    return out


def native_results() -> list[dict]:
    """The decision core's criterion results (`cargo bench --bench decision`, run by `make bench`
    just before this script), from criterion's own JSON under target/criterion/judge/, each with
    serde_json reading the same body into a `Value` (target/criterion/serde_json_value/) beside it."""
    criterion = REPO / "target" / "criterion"

    def median_ns(bench_dir: Path) -> float | None:
        try:
            return json.loads((bench_dir / "estimates.json").read_text())["median"]["point_estimate"]
        except (OSError, ValueError, KeyError):
            return None

    out = []
    for bench_dir in sorted((criterion / "judge").glob("*/new")):
        ns = median_ns(bench_dir)
        try:
            meta = json.loads((bench_dir / "benchmark.json").read_text())
        except (OSError, ValueError):
            continue
        if ns is None:
            continue
        size = (meta.get("throughput") or {}).get("Bytes")
        name = bench_dir.parent.name
        out.append({"name": name, "ns": ns, "bytes": size,
                    "mb_s": size / ns * 1e3 if size else None,
                    "serde_json_ns": median_ns(criterion / "serde_json_value" / name / "new")})
    return out


def fmt_int(v: float) -> str:
    return f"{v:,.0f}"


def render_markdown(data: dict) -> str:
    meta = data["meta"]
    rows = summarize(data)
    fronts = [f for f in FRONTS if any(r["front"] == f for r in rows)]
    procs = meta.get("processes", 1)
    L = []
    L.append("# consent-gate benchmark results")
    L.append("")
    kind = "QUICK run (QUICK=1): indicative only" if meta["quick"] else "full run"
    L.append(f"Generated by `make bench` (bench/run.py), {kind}, on {meta['date']}.")
    L.append("")
    L.append(f"- Machine: {meta['nproc']} CPUs ({meta['cpu_model']}), kernel {meta['kernel']}, "
             f"{meta['mem_total_mib']:,} MiB RAM; load average at start {meta['loadavg']}"
             + (f", at the end {meta['loadavg_end']}" if "loadavg_end" in meta else "")
             + (f"; the measurement took {meta['minutes']} min" if "minutes" in meta else ""))
    L.append(f"- Envoy: `{meta['envoy_version']}`; load tool: `{meta['wrk_version']}` (one thread)")
    sha = meta.get("module_sha256") or {}
    short = lambda key: f", sha256 {sha[key][:12]}…" if key in sha else ""  # noqa: E731
    L.append(f"- Modules (copied when the run started): `dist/consent_gate.wasm` {meta['module_bytes']:,} bytes"
             f"{short('wasm')}; `dist/libconsent_gate.so` {meta.get('native_module_bytes', 0):,} bytes"
             f"{short('native')}; native floor {meta.get('native_floor_bytes', 0):,} bytes{short('native_floor')}")
    L.append(f"- Method: {meta['rounds']} rounds × {meta['duration_s']} s per run; each front runs in {procs} "
             f"Envoy processes, round r measuring every front on its process (r − 1) mod {procs}, so each "
             f"process has {meta['rounds'] // max(procs, 1)} run(s) per cell; within a round the fronts alternate "
             f"({', '.join(fronts)}) on each workload × concurrency. "
             f"Warm-up: {meta['warmup']}. Each front Envoy has one worker (`--concurrency 1`); "
             f"the upstream is one Envoy `direct_response` listener; loopback only.")
    L.append("- Bodies: " + "; ".join(f"{w['label']} {w['bytes']:,} B to `{w['path']}`"
                                     for w in data["workloads"]))
    L.append("")
    head = "| workload | c | " + " | ".join(LABELS[f] for f in MAIN_FRONTS) + " |"
    rule = "|---|---:|" + "---:|" * len(MAIN_FRONTS)
    main_rows = [(w, c) for w in MAIN_WORKLOADS for c in data["concurrencies"]
                 if any(r["workload"] == w for r in rows)]
    L.append("## CPU µs per request above passthrough")
    L.append("")
    L.append(f"Median over all runs, and in brackets the spread (lowest–highest) of the {procs} per-process "
             "medians. One Envoy worker per front.")
    L.append("")
    L.append(head)
    L.append(rule)
    for wkey, c in main_rows:
        L.append(f"| {WORKLOAD_NAMES[wkey]} | {c} | "
                 + " | ".join(cpu_cell(row_of(rows, f, wkey, c)) for f in MAIN_FRONTS) + " |")
    L.append("")
    L.append("## req/s ÷ passthrough")
    L.append("")
    L.append(head)
    L.append(rule)
    for wkey, c in main_rows:
        L.append(f"| {WORKLOAD_NAMES[wkey]} | {c} | "
                 + " | ".join(ratio_cell(row_of(rows, f, wkey, c)) for f in MAIN_FRONTS) + " |")
    L.append("")
    L.append("CPU above passthrough: the front Envoy's CPU time per request (all its threads, from "
             "/proc/<pid>/task/*/schedstat, over each wrk run) minus passthrough's median; the spread is each "
             "process's median minus passthrough's median, so it shows how much one Envoy process differs from "
             "the next. It is less sensitive than req/s to CPU contention on a small machine. "
             "The wasm floor (bench/floor) and the native floor (bench/floor-native) only hold each request "
             "until its body is complete: the least any body-inspecting filter of that kind costs in this Envoy, "
             "so consent-gate's own work is its cost above the floor of its build. "
             "req/s ÷ passthrough: the front's median throughput over passthrough's median (the spread: each "
             "process's median over passthrough's median); on a 2-core machine the load tool, the upstream and "
             "the front share the cores, so ratios move more than CPU per request.")
    L.append("")
    L.append("![throughput relative to passthrough, and CPU per request above it](ratios.svg)")
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| target | this run: median (per-process spread) | |")
    L.append("|---|---|---|")
    L.extend(target_lines(data, rows))
    L.append("")
    L.append("## All figures (medians over all runs)")
    L.append("")
    L.append("| workload | c | front | req/s | p50 µs | p99 µs | × passthrough | p50 Δ µs "
             "| CPU µs/req (per-process spread) | front CPU | non-2xx |")
    L.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ratio = f"{r['ratio']:.3f}" if "ratio" in r else "–"
        delta = f"{r['p50_delta_us']:+,.0f}" if "p50_delta_us" in r else "–"
        cpu = f"{r['cpu_us']:.1f}"
        if r["processes"] > 1:
            cpu += f" ({min(r['proc_cpu_us']):.1f}–{max(r['proc_cpu_us']):.1f})"
        L.append(f"| {r['label']} | {r['conns']} | {r['front']} | {fmt_int(r['rps'])} | {fmt_int(r['p50_us'])} "
                 f"| {fmt_int(r['p99_us'])} | {ratio} | {delta} | {cpu} | {r['cpu_share']:.2f} "
                 f"| {r['non2xx_note']} |")
    L.append("")
    L.append("front CPU: the share of one core the front Envoy used during the run; well below 1.0 at c=32 "
             "means the front was not the bottleneck (the load tool or the upstream shared its cores). "
             "The 1 KB denied workload is answered 403 by the gating fronts (consent-gate, Lua) with a local "
             "reply, while the others forward it, so its figures compare different work.")
    L.append("")
    L.append("## Earlier targets (issue 5)")
    L.append("")
    L.append("| target | this run | |")
    L.append("|---|---|---|")
    L.extend(earlier_target_lines(data, rows))
    L.append("")
    native = data.get("native") or []
    if native:
        L.append("## Decision core, native (criterion, `cargo bench --bench decision`)")
        L.append("")
        L.append("| case | body | median time | throughput | serde_json into a `Value` (reference) |")
        L.append("|---|---:|---:|---:|---:|")
        for n in native:
            ref = n.get("serde_json_ns")
            ref_cell = (f"{ref / 1000:,.2f} µs ({ref / n['ns']:.1f}× the scanner's time)" if ref else "–")
            L.append(f"| {n['name']} | {n['bytes'] or 0:,} B | {n['ns'] / 1000:,.2f} µs "
                     f"| {n['mb_s']:,.0f} MB/s | {ref_cell} |" if n["mb_s"]
                     else f"| {n['name']} | – | {n['ns']:,.0f} ns | – | – |")
        L.append("")
        for case, floor in (("event_32k", 4000), ("batch_500k_rewrite", 3000)):
            n = next((n for n in native if n["name"] == case and n["mb_s"]), None)
            if n:
                L.append(f"- Target: {case} ≥ {floor:,} MB/s natively: {n['mb_s']:,.0f} MB/s, "
                         f"{'met' if n['mb_s'] >= floor else '**missed**'}.")
        L.append("- The serde_json column builds a tree and checks nothing the decision needs (duplicate and "
                 "look-alike keys); the scanner validates every byte and builds no tree.")
        L.append("")
    scan = data.get("scan") or []
    if scan:
        L.append("## Decision core, native and inside V8 (`examples/scan_speed.rs`, `examples/scan_in_envoy.rs`)")
        L.append("")
        L.append("The same measurement on the same bodies, built natively and for wasm32-wasip1: in Envoy's own "
                 "V8 (a proxy-wasm module that Envoy starts as a bootstrap service, with the flags Envoy sets) and "
                 "in Node's V8 (`bench/v8_scan.mjs`): median of 15 rounds. Natively, objects and arrays are "
                 "skipped 64 bytes at a time with AVX-512 or AVX2 where the CPU has them; the wasm module reads "
                 "token by token (the block-wise reading was slower in both V8s).")
        if data.get("scan_date"):
            L.append("")
            L.append(f"Timed again on {data['scan_date']} (`bench/run.py --scan`), after the full run "
                     "whose figures the rest of this report gives.")
        L.append("")
        L.append("| case | body | native | in Envoy's V8 | in Node's V8 | Envoy's V8 ÷ native |")
        L.append("|---|---:|---:|---:|---:|---:|")
        # Runs before the Envoy measurement existed named Node's V8 "v8".
        by = {({"v8": "node-v8"}.get(r["host"], r["host"]), r["name"]): r for r in scan}
        cell = lambda r: f"{r['ns'] / 1000:,.2f} µs, {r['mb_s']:,.0f} MB/s" if r else "–"
        for name in dict.fromkeys(r["name"] for r in scan):
            n, e, v = (by.get((host, name)) for host in ("native", "envoy-v8", "node-v8"))
            if not n:
                continue
            ratio = f"{e['mb_s'] / n['mb_s']:.2f}" if e else "–"
            L.append(f"| {name} | {n['bytes']:,} B | {cell(n)} | {cell(e)} | {cell(v)} | {ratio} |")
        L.append("")
        v = by.get(("envoy-v8", "event_32k")) or by.get(("node-v8", "event_32k"))
        if v:
            where = "Envoy's" if v["host"] == "envoy-v8" else "Node's"
            L.append(f"- Target: event_32k ≥ 2,000 MB/s inside V8 ({where}): {v['mb_s']:,.0f} MB/s, "
                     f"{'met' if v['mb_s'] >= 2000 else '**missed**'}.")
            L.append("")
    L.append("## Memory (front Envoys, KiB, from /proc/<pid>/status)")
    L.append("")
    rounds = meta["rounds"]
    L.append("| front | process | at start | after warm-up | "
             + " | ".join(f"after round {i}" for i in range(1, rounds + 1))
             + " | growth, first → last measured round | peak (VmHWM) |")
    L.append("|---|---:|" + "---:|" * (rounds + 4))
    for front in fronts:
        starts = data["rss_start"].get(front, [])
        warm = data.get("rss_warm", {}).get(front, [])
        ends = data["rss_end"].get(front, [])
        for p, values in enumerate(data["rss_per_round"].get(front, [])):
            start = starts[p].get("VmRSS", 0) if p < len(starts) else 0
            after_warm = f"{warm[p]:,}" if p < len(warm) else "–"
            measured = [rnd for rnd in measured_rounds(data, p) if rnd <= len(values)]
            cells = [f"**{v:,}**" if i + 1 in measured else f"{v:,}" for i, v in enumerate(values)]
            growth = f"{values[measured[-1] - 1] - values[measured[0] - 1]:+,}" if len(measured) >= 2 else "–"
            peak = ends[p].get("VmHWM", 0) if p < len(ends) else 0
            L.append(f"| {front} | #{p + 1} | {start:,} | {after_warm} | " + " | ".join(cells)
                     + f" | {growth} | {peak:,} |")
    L.append("")
    L.append("RSS after each round; **bold**: the rounds in which that process was measured (every process "
             "is idle in the other rounds).")
    L.append("")
    cx = data.get("upstream_cx") or {}
    if cx:
        L.append("Upstream connections opened (whole run, all processes of a front): "
                 + ", ".join(f"{front} {cx.get(front, '?')}" for front in fronts) + ".")
        L.append("")
    fs = data.get("filter_stats") or {}
    for front in CONSENT_GATE:
        stats = fs.get(front) or {}
        if stats:
            L.append(f"{front}'s counters at the end, all its processes (warm-up and sanity requests included; "
                     f"wrk counted {data['requests_sent'].get(front, 0):,} completed requests in the measured runs): "
                     + ", ".join(f"`{k}` {v:,}" for k, v in sorted(stats.items()) if v or "vm_reload" in k))
            L.append("")
    L.append("## Sanity checks (before measuring)")
    L.append("")
    L.append("```")
    L.extend(line.strip() for line in data["sanity"])
    L.append("```")
    L.append("")
    return "\n".join(L)


# The chart: the fronts drawn, with their colours.
SERIES = (("wasm-floor", "#b5b5b5"), ("consent-gate", "#2f6db3"), ("consent-gate-rules", "#7fb2e5"),
          ("lua", "#e08a3c"), ("native-floor", "#6b6b6b"), ("consent-gate-native", "#2e8b57"),
          ("consent-gate-native-lean", "#8fcf9f"))
SHORT_LABELS = {"1k_allowed": "1 KB event", "32k_allowed": "32 KB event", "batch": "100-item batch"}
# Targets drawn on the chart: (front, workload, concurrency or None for both) -> value; for the
# CPU panel, the proxy-wasm targets are relative to the wasm floor.
RATIO_TARGETS = {(f, "1k_allowed", 32): 0.95 for f in NATIVE}
CPU_TARGETS = {(f, key): limit for f in NATIVE
               for key, limit in (("1k_allowed", 5), ("32k_allowed", 15), ("batch", 40))}
CPU_FLOOR_TARGETS = {"1k_allowed": 12, "32k_allowed": 30, "batch": 70}


def render_svg(data: dict) -> str:
    """Two grouped bar charts over the main workloads x concurrency: req/s as a ratio of
    passthrough, and CPU µs per request above passthrough; whiskers span the per-process medians,
    red marks are the targets."""
    rows = summarize(data)
    meta = data["meta"]
    groups = [(SHORT_LABELS[w], c, w) for w in MAIN_WORKLOADS for c in data["concurrencies"]
              if any(r["workload"] == w for r in rows)]
    series = [(f, colour) for f, colour in SERIES if any(r["front"] == f for r in rows)]
    W = 1080
    left, right = 64, 20
    pw = W - left - right
    gw = pw / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    out_top = [
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
        f'consent-gate (proxy-wasm and dynamic module) next to the floors and Lua, relative to passthrough</text>',
        f'<text x="{W / 2}" y="40" text-anchor="middle" fill="#555">'
        f'{esc(meta["date"])} · {meta["nproc"]} CPUs · {meta["rounds"]} rounds of {meta["duration_s"]} s over '
        f'{meta.get("processes", 1)} Envoy processes per front · one worker each · '
        f'{"QUICK run" if meta["quick"] else "full run"} · whiskers: per-process medians</text>']
    body = []

    def panel(y0: float, height: float, title: str, value, spread, fmt: str, ref: float | None,
              targets) -> None:
        vals = []
        for _, c, key in groups:
            for f, _ in series:
                r = row_of(rows, f, key, c)
                if r is not None and value(r) is not None:
                    vals.extend([value(r), *spread(r)])
        hi = max([0.0] + vals) * 1.1 or 1.0
        lo = min([0.0] + vals) * 1.1
        if ref is not None:
            hi = max(hi, ref * 1.15)
        step = nice_step((hi - lo) / 6)
        hi = step * -(-hi // step)
        lo = step * (lo // step)
        y = lambda v: y0 + height * (1 - (v - lo) / (hi - lo))  # noqa: E731
        body.append(f'<text x="{left}" y="{y0 - 10:.1f}" font-weight="bold">{esc(title)}</text>')
        tick = lo
        while tick <= hi + 1e-9:
            yy = y(tick)
            body.append(f'<line x1="{left}" x2="{W - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e6e6e6"/>')
            body.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#444">'
                        f'{format(tick, fmt)}</text>')
            tick += step
        if ref is not None:
            body.append(f'<line x1="{left}" x2="{W - right}" y1="{y(ref):.1f}" y2="{y(ref):.1f}" stroke="#333" '
                        f'stroke-dasharray="5,4"/>')
        for gi, (label, c, key) in enumerate(groups):
            gx = left + gw * gi + gw * 0.1
            for si, (front, colour) in enumerate(series):
                r = row_of(rows, front, key, c)
                if r is None or value(r) is None:
                    continue
                v = value(r)
                x = gx + si * bw
                top, bottom = (y(v), y(0)) if v >= 0 else (y(0), y(v))
                s_lo, s_hi = spread(r) if r["processes"] > 1 else (v, v)
                body.append(f'<rect x="{x + 1:.1f}" y="{top:.1f}" width="{bw - 2:.1f}" height="{bottom - top:.1f}" '
                            f'fill="{colour}"><title>{esc(LABELS[front])}, {esc(label)}, c={c}: '
                            f'{format(v, fmt)}</title></rect>')
                if r["processes"] > 1:
                    cx = x + bw / 2
                    body.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(s_lo):.1f}" y2="{y(s_hi):.1f}" '
                                f'stroke="#222" stroke-width="1"/>')
                    for sv in (s_lo, s_hi):
                        body.append(f'<line x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{y(sv):.1f}" y2="{y(sv):.1f}" '
                                    f'stroke="#222" stroke-width="1"/>')
                t = targets(front, key, c)
                if t is not None:
                    body.append(f'<line x1="{x - 1:.1f}" x2="{x + bw + 1:.1f}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                                f'stroke="#c0392b" stroke-width="2.5"><title>target {format(t, fmt)}</title></line>')
                label_y = y(max(v, s_hi)) - 4 if v >= 0 else y(min(v, s_lo)) + 11
                body.append(f'<text x="{x + bw / 2:.1f}" y="{label_y:.1f}" '
                            f'text-anchor="middle" font-size="9">{format(v, fmt)}</text>')
            body.append(f'<text x="{left + gw * gi + gw / 2:.1f}" y="{y(lo) + 16:.1f}" text-anchor="middle">'
                        f'{esc(label)}, c={c}</text>')
        for gi in range(1, len(groups)):
            xx = left + gw * gi
            body.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{y(hi):.1f}" y2="{y(lo) + 20:.1f}" stroke="#ddd"/>')
        body.append(f'<line x1="{left}" x2="{W - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#333"/>')

    def ratio_target(front, key, c):
        return RATIO_TARGETS.get((front, key, c))

    def cpu_target(front, key, c):
        if (front, key) in CPU_TARGETS:
            return CPU_TARGETS[(front, key)]
        if front in ("consent-gate", "consent-gate-rules"):
            floor = row_of(rows, "wasm-floor", key, c)
            if floor is not None and "cpu_delta_us" in floor:
                return floor["cpu_delta_us"] + CPU_FLOOR_TARGETS[key]
        return None

    panel(80, 230, "req/s ÷ passthrough (1.0 = no filter)", lambda r: r.get("ratio"),
          lambda r: r.get("ratio_spread", (r.get("ratio", 0), r.get("ratio", 0))), ".2f", 1.0, ratio_target)
    panel(380, 260, "CPU µs per request above passthrough", lambda r: r.get("cpu_delta_us"),
          lambda r: r.get("cpu_delta_spread", (0, 0)), ".0f", None, cpu_target)
    H = 380 + 260 + 70
    ly = H - 18
    lx = left
    legend = []
    for name, colour in series:
        legend.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        legend.append(f'<text x="{lx + 17}" y="{ly}">{esc(LABELS[name])}</text>')
        lx += 30 + 6.6 * len(LABELS[name])
    legend.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{ly - 4}" y2="{ly - 4}" stroke="#c0392b" stroke-width="2.5"/>')
    legend.append(f'<text x="{lx + 23}" y="{ly}">target</text>')
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
            f'<rect width="{W}" height="{H}" fill="white"/>']
    return "\n".join(head + out_top + body + legend + ["</svg>"]) + "\n"


def nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def write_reports(data: dict) -> str:
    RESULTS_JSON.write_text(json.dumps(data, indent=1) + "\n")
    md = render_markdown(data)
    RESULTS_MD.write_text(md)
    CHART.write_text(render_svg(data))
    return md


# --------------------------------------------------------------------------------------------
# Main


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "kernel": f"{platform.system()} {platform.release()}",
        "mem_total_mib": mem,
        "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_all(upstream_port: int) -> dict[str, Path]:
    (OUT / "configs").mkdir(parents=True, exist_ok=True)
    paths = {}
    for front in FRONTS:
        path = OUT / "configs" / f"front-{front}.yaml"
        path.write_text(render_front(front, upstream_port))
        paths[front] = path
    return paths


def validate_all(paths: dict[str, Path]) -> None:
    """`envoy --mode validate` on every front's config, with the environment it runs in (the
    dynamic-module fronts need their search path), all at once."""
    started = []
    for front, path in paths.items():
        argv = [envoy_bin(), "--mode", "validate", "-c", str(path), "--log-level", "error"]
        started.append((path, CHILDREN.start(argv, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             env=front_env(front))))
    failures = []
    for path, proc in started:
        try:
            out, _ = proc.communicate(timeout=120)
        finally:
            CHILDREN.stop(proc)
        if proc.returncode != 0 or "OK" not in (out or ""):
            failures.append(f"envoy --mode validate rejected {path}:\n{(out or '')[-3000:]}")
    if failures:
        raise BenchError("\n".join(failures))


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def validate_only() -> None:
    build_native_floor()
    check_modules()
    check_same_plugin_config()
    use_modules(snapshot=False)
    validate_config(ENVOY_DIR / "upstream.yaml")
    log(f"valid: {(ENVOY_DIR / 'upstream.yaml').relative_to(REPO)}")
    paths = render_all(upstream_port=10001)
    validate_all(paths)
    for front, path in paths.items():
        folder = search_path(front)
        log(f"valid: {path.relative_to(REPO)}"
            + (f" (ENVOY_DYNAMIC_MODULES_SEARCH_PATH={shown(folder)})" if folder else ""))


def estimate_seconds(cells: int, warm_cells: int) -> float:
    per_run = 0.05  # wrk start-up and /proc reads
    return (cells * len(FRONTS) * ROUNDS * (DURATION + per_run)
            + warm_cells * len(FRONTS) * PROCESSES * (WARMUP + per_run) + 15)


def sum_stats(dicts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def prepare_inputs(folders: tuple[str, ...]) -> list[Workload]:
    """A run's inputs under out/: its folders, the modules' copies (see `use_modules`) and the
    workloads' bodies."""
    for sub in folders:
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    use_modules(snapshot=True)
    workloads = make_workloads()
    for w in workloads:
        w.body_file.write_bytes(w.body)
    return workloads


def bench() -> None:
    started = time.monotonic()
    if PROCESSES < 1 or ROUNDS < PROCESSES:
        raise BenchError(f"BENCH_ROUNDS ({ROUNDS}) must be at least BENCH_PROCESSES ({PROCESSES}) so that every "
                         f"process is measured (a multiple of it gives each process as many runs)")
    build_native_floor()
    check_modules()
    check_same_plugin_config()
    wrk = ensure_tool("wrk", "wrk", "WRK_BIN")
    # On a quiet machine: before any Envoy starts.
    scan = scan_speeds()
    shutil.rmtree(OUT, ignore_errors=True)  # all generated: configs, bodies, logs of the last run
    workloads = prepare_inputs(("bodies", "logs", "configs"))
    meta = machine()
    meta.update(quick=QUICK, rounds=ROUNDS, processes=PROCESSES, duration_s=DURATION,
                module_bytes=MODULES["wasm"].stat().st_size, native_module_bytes=MODULES["native"].stat().st_size,
                native_floor_bytes=MODULES["native_floor"].stat().st_size,
                module_sha256={key: sha256_of(path) for key, path in MODULES.items()},
                envoy_version=tool_version([envoy_bin(), "--version"]).split("version: ")[-1],
                wrk_version=" ".join(tool_version([wrk, "-v"]).split()[:2]))
    cells = [(w, c) for w in workloads for c in CONCURRENCIES]
    warm_cells = [(w, 32) for w in workloads if not QUICK or w.key == "batch"]
    meta["warmup"] = (f"{WARMUP} s per process of every front at c=32 on " + ", ".join(w.label for w, _ in warm_cells))
    log(f"consent-gate benchmark: {'QUICK, ' if QUICK else ''}{ROUNDS} rounds x {len(cells) * len(FRONTS)} runs "
        f"of {DURATION} s, {PROCESSES} Envoy processes per front, about "
        f"{estimate_seconds(len(cells), len(warm_cells)) / 60:.1f} min")
    log(f"machine: {meta['nproc']} CPUs, {meta['cpu_model']}, {meta['kernel']}, load {meta['loadavg']}")
    log(f"modules (copied to {shown(OUT / 'modules')}): {wasm_path()} ({meta['module_bytes']:,} bytes), {native_path()} "
        f"({meta['native_module_bytes']:,} bytes), native floor {native_floor_path()} "
        f"({meta['native_floor_bytes']:,} bytes)")

    # The upstream, then the fronts (configs rendered with its port and validated first).
    validate_config(ENVOY_DIR / "upstream.yaml")
    upstream = Envoy("upstream", ENVOY_DIR / "upstream.yaml").start()
    configs = render_all(upstream.port)
    validate_all(configs)
    log("configs valid (envoy --mode validate): upstream, " + ", ".join(FRONTS))
    fronts = {front: [Envoy(f"{front}-{p + 1}", configs[front], front_env(front)).launch() for p in range(PROCESSES)]
              for front in FRONTS}
    for envoys in fronts.values():
        for e in envoys:
            e.wait_ready()
    log("ports: upstream " + str(upstream.port) + "; "
        + "; ".join(f"{f} " + ", ".join(str(e.port) for e in es) for f, es in fronts.items()))
    every = [(front, p, e) for front, es in fronts.items() for p, e in enumerate(es)]
    rss_start = {front: [e.memory() for e in es] for front, es in fronts.items()}

    log("sanity checks:")
    sanity = sanity_checks(fronts, workloads)

    log("warm-up ...")
    for w, c in warm_cells:
        for p in range(PROCESSES):
            for front in FRONTS:
                run_wrk(wrk, fronts[front][p], w, c, WARMUP)
    rss_warm = {front: [e.memory()["VmRSS"] for e in es] for front, es in fronts.items()}

    runs, rss_per_round = [], {front: [[] for _ in range(PROCESSES)] for front in FRONTS}
    for rnd in range(1, ROUNDS + 1):
        p = (rnd - 1) % PROCESSES
        log(f"round {rnd}/{ROUNDS} (process #{p + 1} of each front)")
        for w, c in cells:
            parts = []
            for front in FRONTS:
                r = run_wrk(wrk, fronts[front][p], w, c, DURATION)
                r.update(round=rnd, proc=p, front=front, workload=w.key, conns=c)
                runs.append(r)
                flag = ""
                expect_all = w.denied and front in GATING
                if (r["non2xx"] != (r["requests"] if expect_all else 0)) or r["socket_errors"]:
                    flag = f" [non-2xx {r['non2xx']}/{r['requests']}, socket errors {r['socket_errors']}]"
                parts.append(f"{front} {r['rps']:,.0f}/s cpu {r['cpu_us_per_req']:.0f}µs{flag}")
            log(f"  {w.label:<24} c={c:<3} " + " | ".join(parts))
        for front, q, e in every:
            if not e.alive():
                raise BenchError(f"the {e.name} Envoy died during round {rnd}:\n{e.log_tail()}")
            rss_per_round[front][q].append(e.memory()["VmRSS"])
        log("  RSS KiB: " + ", ".join(f"{f} " + "/".join(f"{v[-1]:,}" for v in per)
                                      for f, per in rss_per_round.items()))

    meta["loadavg_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    meta["minutes"] = round((time.monotonic() - started) / 60, 1)
    data = {
        "meta": meta,
        "concurrencies": list(CONCURRENCIES),
        "workloads": [{"key": w.key, "label": w.label, "path": w.path, "bytes": len(w.body), "denied": w.denied}
                      for w in workloads],
        "runs": runs,
        # Per front, one entry per process (in process order).
        "rss_start": rss_start,
        "rss_warm": rss_warm,
        "rss_end": {front: [e.memory() for e in es] for front, es in fronts.items()},
        "rss_per_round": rss_per_round,
        "upstream_cx": {front: sum(e.stat("cluster.upstream.upstream_cx_total") or 0 for e in es)
                        for front, es in fronts.items()},
        "native": native_results(),
        "scan": scan,
        # The plugin's own counters (wasmcustom.consent_gate.* / dynamicmodulescustom.consent_gate.*)
        # and the wasm VM's (wasm.consent_gate.*), summed over each front's processes.
        "filter_stats": {front: sum_stats([e.stats("consent_gate.") for e in fronts[front]]) for front in CONSENT_GATE},
        "requests_sent": {front: sum(r["requests"] for r in runs if r["front"] == front) for front in FRONTS},
        "sanity": sanity,
    }
    md = write_reports(data)
    log("")
    log(md)
    for r in summarize(data):
        if "UNEXPECTED" in r["non2xx_note"]:
            log(f"WARNING: {r['front']} {r['label']} c={r['conns']}: {r['non2xx_note']}")
    for front in ("consent-gate", "consent-gate-rules"):
        reloads = data["filter_stats"][front].get("wasm.consent_gate.vm_reload", 0)
        if reloads:
            log(f"WARNING: the {front} VM was reloaded {reloads} times (a panic): see its logs in {OUT / 'logs'}")
    for e in [e for front in NATIVE for e in fronts[front]]:
        try:
            if "panic was caught" in e.log_path.read_text(errors="replace"):
                log(f"WARNING: {e.name} caught a panic: see {e.log_path}")
        except OSError:
            pass
    log(f"wrote {RESULTS_MD.relative_to(REPO)}, {CHART.relative_to(REPO)}, {RESULTS_JSON.relative_to(REPO)} "
        f"in {(time.monotonic() - started) / 60:.1f} min")


# --------------------------------------------------------------------------------------------
# Instructions per request (`--instructions`)

INSTRUCTIONS_MD = BENCH / "instructions.md"
INSTRUCTIONS_JSON = BENCH / "instructions.json"
# Requests per workload and front: sent first uncounted (V8 tiers the wasm modules up, buffers
# grow), then counted.
INSTR_WARMUP = int(os.environ.get("BENCH_INSTR_WARMUP") or 200)
INSTR_REQUESTS = int(os.environ.get("BENCH_INSTR_REQUESTS") or 300)


def counted_totals(dump: Path) -> int:
    """The instruction total of one callgrind dump (its `totals:` line)."""
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise BenchError(f"no totals line in {dump}")


def instructions() -> None:
    """Every front in one Envoy process under callgrind: the instructions its whole process
    executes per request, one connection at a time, over INSTR_REQUESTS requests of each
    workload after INSTR_WARMUP uncounted ones. Unlike CPU time, the count does not move with
    the machine's load or speed: it tells a change in the filter's own work on a noisy machine.
    It does not weigh cache misses or the load tool's share of the cores, which the timed run
    does; valgrind's CPU has no AVX-512, so the native scan runs its AVX2 code."""
    started = time.monotonic()
    build_native_floor()
    check_modules()
    check_same_plugin_config()
    valgrind = ensure_tool("valgrind", "valgrind", "VALGRIND_BIN")
    control = shutil.which("callgrind_control") or str(Path(valgrind).with_name("callgrind_control"))
    workloads = prepare_inputs(("bodies", "logs", "configs", "callgrind"))
    meta = machine()
    meta.update(requests=INSTR_REQUESTS, warmup=INSTR_WARMUP,
                module_bytes=MODULES["wasm"].stat().st_size, native_module_bytes=MODULES["native"].stat().st_size,
                module_sha256={key: sha256_of(path) for key, path in MODULES.items()},
                envoy_version=tool_version([envoy_bin(), "--version"]).split("version: ")[-1],
                valgrind_version=tool_version([valgrind, "--version"]))
    log(f"instructions per request under callgrind: {len(FRONTS)} fronts x {len(workloads)} workloads, "
        f"{INSTR_WARMUP} + {INSTR_REQUESTS} requests each (a few minutes)")
    validate_config(ENVOY_DIR / "upstream.yaml")
    upstream = Envoy("upstream", ENVOY_DIR / "upstream.yaml").start()
    configs = render_all(upstream.port)
    validate_all(configs)
    expected = {"1k_allowed": 200, "1k_denied": 403, "32k_allowed": 200, "batch": 200}
    counts: dict[str, dict[str, float]] = {}
    for front in FRONTS:
        out = OUT / "callgrind" / f"{front}.out"
        for old in out.parent.glob(f"{out.name}*"):
            old.unlink()
        envoy = Envoy(f"{front}-callgrind", configs[front], front_env(front),
                      # (`envoy` may be a script that execs the binary: followed, in the same process.)
                      prefix=[valgrind, "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
                              f"--callgrind-out-file={out}"])
        envoy.launch().wait_ready(timeout=600)
        pid = str(envoy.proc.pid if envoy.proc else 0)

        def tell(*command: str) -> None:
            done = CHILDREN.run([control, *command, pid], timeout=120)
            if done.returncode != 0:
                raise BenchError(f"callgrind_control {' '.join(command)} failed for {front}:\n{done.stdout}")

        counts[front] = {}
        try:
            for n, w in enumerate(workloads, start=1):
                want = expected[w.key] if front in GATING else 200
                conn = http.client.HTTPConnection("127.0.0.1", envoy.port, timeout=60)
                try:
                    def send(times: int) -> None:
                        for _ in range(times):
                            conn.request("POST", w.path, body=w.body, headers={"Content-Type": "application/json"})
                            r = conn.getresponse()
                            r.read()
                            if r.status != want:
                                raise BenchError(f"{front}: {w.label} answered {r.status}, not {want}")
                    send(INSTR_WARMUP)
                    tell("-i", "on")
                    send(INSTR_REQUESTS)
                    tell("-d")
                    tell("-i", "off")
                finally:
                    conn.close()
                dump = Path(f"{out}.{n}")
                deadline = time.monotonic() + 60
                while not dump.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
                counts[front][w.key] = counted_totals(dump) / INSTR_REQUESTS
                log(f"  {front:26s} {w.label:24s} {counts[front][w.key] / 1000:8.1f}k instructions per request")
        finally:
            if envoy.proc:
                CHILDREN.stop(envoy.proc)
    if upstream.proc:
        CHILDREN.stop(upstream.proc)
    meta["seconds"] = round(time.monotonic() - started)
    INSTRUCTIONS_JSON.write_text(json.dumps({"meta": meta, "workloads": [
        {"key": w.key, "label": w.label, "bytes": len(w.body)} for w in workloads], "counts": counts}, indent=1) + "\n")
    base = counts["passthrough"]
    rows = [f"| {WORKLOAD_NAMES.get(w.key, w.label)} | {base[w.key] / 1000:,.1f}k | "
            + " | ".join(f"{(counts[f][w.key] - base[w.key]) / 1000:,.1f}k" for f in FRONTS if f != "passthrough")
            + " |" for w in workloads]
    INSTRUCTIONS_MD.write_text("\n".join([
        "# consent-gate: instructions per request",
        "",
        f"Generated by `make bench-instructions` (bench/run.py --instructions) on {meta['date']}, in "
        f"{meta['seconds'] // 60} min.",
        "",
        f"- Envoy `{meta['envoy_version']}`, {meta['valgrind_version']}; `dist/consent_gate.wasm` "
        f"{meta['module_bytes']:,} bytes (sha256 {meta['module_sha256']['wasm'][:12]}…), "
        f"`dist/libconsent_gate.so` {meta['native_module_bytes']:,} bytes (sha256 "
        f"{meta['module_sha256']['native'][:12]}…)",
        f"- Method: each front in one Envoy process (one worker) under callgrind, one connection; per "
        f"workload {INSTR_WARMUP} requests uncounted, then {INSTR_REQUESTS} counted: every instruction "
        f"the process ran meanwhile (all its threads), divided by the requests. The upstream is "
        f"not counted. Counts do not move with the machine's load or speed, so they tell a change in "
        f"the filter's own work when timings cannot; they do not weigh cache misses, which the timed "
        f"run (`make bench`, results.md) does. valgrind's CPU has no AVX-512: the native scan runs "
        f"its AVX2 code here. The same modules counted twice differ by about 1k instructions per "
        f"request (Envoy's own timers).",
        "",
        "Instructions per request: passthrough's, and every other front's above it.",
        "",
        "| workload | passthrough | " + " | ".join(LABELS[f] for f in FRONTS if f != "passthrough") + " |",
        "|---|" + "---:|" * len(FRONTS),
        *rows,
        "",
    ]))
    log(f"wrote {shown(INSTRUCTIONS_MD)} and {shown(INSTRUCTIONS_JSON)}")


def main(argv: list[str]) -> int:
    _install_signal_handlers()
    try:
        if "--validate" in argv:
            validate_only()
        elif "--instructions" in argv:
            instructions()
        elif "--scan" in argv:
            data = json.loads(RESULTS_JSON.read_text())
            data["scan"] = scan_speeds()
            data["scan_date"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            write_reports(data)
            log(f"timed the decision core again into {RESULTS_JSON.name}; redrew {RESULTS_MD.relative_to(REPO)}")
        elif "--chart" in argv:
            data = json.loads(RESULTS_JSON.read_text())
            write_reports(data)
            log(f"redrew {RESULTS_MD.relative_to(REPO)} and {CHART.relative_to(REPO)} from {RESULTS_JSON.name}")
        else:
            bench()
        return 0
    except BenchError as e:
        log(f"\nBENCHMARK FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        log("\ninterrupted: stopping every process the benchmark started")
        return 130
    except SystemExit as e:
        log("\nstopped by a signal: stopping every process the benchmark started")
        return int(e.code or 1)
    finally:
        CHILDREN.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
