"""`make run`: the demo destination, Envoy with consent-gate in front of it, and a tour.

Starts a demo destination that prints every request it receives, starts Envoy with a copy of
envoy/demo.yaml set to the ports below, sends a few example events (the README shows the same curl
commands) and checks that each got the answer it should, prints the filter's counters (in /stats,
and in /stats/prometheus with reasons and categories as labels), then keeps running until Ctrl-C.

Settings, from the environment (all optional):

  CONSENT_GATE_PORT                   Envoy's listener, where apps send events       (default 10000)
  CONSENT_GATE_ADMIN_PORT             Envoy's admin interface: /stats, /stats/prometheus (default 9901)
  CONSENT_GATE_DEMO_DESTINATION_PORT  the demo destination behind Envoy               (default 10001)
  CONSENT_GATE_MODULE                 `wasm` (default): the proxy-wasm module dist/consent_gate.wasm;
                                      `native`: the same filter as an Envoy dynamic module,
                                      dist/libconsent_gate.so (its counters show in /stats as
                                      dynamicmodulescustom.consent_gate.*)
  CONSENT_GATE_DEMO_ONCE              `1`: exit after the tour instead of waiting for Ctrl-C
                                      (the same as the --once flag)
  ENVOY_BIN                           the Envoy binary (default: .venv/bin/envoy)

Every port is on 127.0.0.1. If one is already in use, the script says which (and which variable
chooses another) in one line, and exits before starting anything, e.g.

  CONSENT_GATE_PORT=10100 CONSENT_GATE_ADMIN_PORT=10101 CONSENT_GATE_DEMO_DESTINATION_PORT=10102 make run

The demo destination answers each request in one write, on a socket with TCP_NODELAY: a reply
written in two parts with Nagle's algorithm on waits for the peer's delayed ACK, which added about
44 ms to every forwarded request. Compressed bodies (gzip, deflate) it receives are printed decoded,
with a note that they arrived compressed.

The version printed is the one the module logs when Envoy configures it (`consent-gate <version>
... configured`), or, if it logs none, the one in Cargo.toml.

Exit status: 0 when every example got the answer it should; 1 when one did not, or Envoy failed;
2 when a port is in use or a setting is wrong (nothing was started).
"""

from __future__ import annotations

import codecs
import ctypes
import errno
import gzip
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "envoy" / "demo.yaml"
HOST = "127.0.0.1"
FILTER_NAME = "consent_gate"
DESTINATION_CLUSTER = "demo_destination"
NAME = "consent-gate demo"

# (environment variable, default, what listens there)
PORTS = (
    ("CONSENT_GATE_PORT", 10000, "Envoy's listener"),
    ("CONSENT_GATE_ADMIN_PORT", 9901, "Envoy's admin interface"),
    ("CONSENT_GATE_DEMO_DESTINATION_PORT", 10001, "the demo destination"),
)
MODULES = {
    # name: (file in dist/, what it is, its counters' prefix in /stats, its Envoy log component)
    "wasm": ("consent_gate.wasm", "the proxy-wasm module", "wasmcustom.", "wasm"),
    "native": ("libconsent_gate.so", "the Envoy dynamic module", "dynamicmodulescustom.", "dynamic_modules"),
}
DYNAMIC_MODULE_FILTER = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
# The line the module logs when Envoy configures it: `consent-gate 0.2.0 configured`,
# `consent-gate 0.2.0 (dynamic module) configured`.
VERSION_LINE = re.compile(r"consent-gate (\S+)(?: \([^)]*\))? configured")
SHOW_BYTES = 2000  # longer bodies are shown cut
DECODE_LIMIT = 16 << 20  # the most the destination decompresses for display


class SettingError(Exception):
    """A port in use or a wrong setting: one line for the operator, exit status 2."""


# --- output -----------------------------------------------------------------------------------

_output = threading.Lock()


def say(text: str = "") -> None:
    """Print whole lines: the destination, Envoy's log and the tour print from several threads."""
    with _output:
        print(text, flush=True)


# --- settings and ports -------------------------------------------------------------------------


def read_ports(env) -> dict[str, int]:
    ports = {}
    for var, default, role in PORTS:
        text = env.get(var, "").strip()
        if not text:
            ports[var] = default
            continue
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise SettingError(f"{var}={text!r} is not a port number (1-65535); it chooses the port of {role}")
        ports[var] = int(text)
    seen: dict[int, str] = {}
    for var, port in ports.items():
        if port in seen:
            raise SettingError(f"{seen[port]} and {var} are both {port}; each needs its own port")
        seen[port] = var
    return ports


def read_module(env) -> str:
    module = env.get("CONSENT_GATE_MODULE", "").strip() or "wasm"
    if module not in MODULES:
        raise SettingError(f"CONSENT_GATE_MODULE must be wasm or native, not {module!r}")
    return module


def bind_error(port: int) -> str | None:
    """Why `port` cannot be listened on at 127.0.0.1, or None if it can. SO_REUSEADDR as servers
    set it (a port left in TIME_WAIT is free), no SO_REUSEPORT: a listener that set it (an Envoy
    still running, say) still makes this fail, where a second Envoy would silently share the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return "already in use"
            return f"not available ({err.strerror or err})"
    return None


def suggestion(ports: dict[str, int], taken: list[str]) -> dict[str, int]:
    """All three ports, the taken ones replaced by free ones near them (none if none is found)."""
    chosen = dict(ports)
    for var in taken:
        for step in range(1, 300):
            candidate = ports[var] + 100 * step
            if candidate > 65535:
                break
            if candidate not in chosen.values() and bind_error(candidate) is None:
                chosen[var] = candidate
                break
    return chosen if all(chosen[var] != ports[var] for var in taken) else {}


def taken_message(ports: dict[str, int], problems: dict[str, str]) -> str:
    """One line: which ports, what needs them, which variable chooses another, and free ones."""
    roles = {var: role for var, _, role in PORTS}
    parts = [f"port {ports[var]} ({roles[var]}, {var}) is {why}" for var, why in problems.items()]
    fix = " ".join(f"{var}={port}" for var, port in suggestion(ports, list(problems)).items())
    return (
        f"{NAME}: on {HOST}, " + "; ".join(parts)
        + f". Stop what holds {'them' if len(parts) > 1 else 'it'}, or choose other ports with"
        + " CONSENT_GATE_PORT, CONSENT_GATE_ADMIN_PORT and CONSENT_GATE_DEMO_DESTINATION_PORT"
        + (f", e.g. `{fix} make run`" if fix else "")
    )


def check_ports(ports: dict[str, int]) -> None:
    problems = {var: why for var, port in ports.items() if (why := bind_error(port))}
    if problems:
        raise SettingError(taken_message(ports, problems))


# --- the demo destination -------------------------------------------------------------------------


def inflate(raw: bytes, wbits: int, members: bool) -> bytes:
    """zlib/gzip/raw deflate, every gzip member, at most DECODE_LIMIT bytes."""
    out = bytearray()
    data = raw
    while True:
        stream = zlib.decompressobj(wbits)
        out += stream.decompress(data, DECODE_LIMIT + 1 - len(out))
        if len(out) > DECODE_LIMIT:
            raise ValueError(f"more than {DECODE_LIMIT} bytes once decoded")
        if not stream.eof:
            raise ValueError("the compressed data is cut short")
        data = stream.unused_data
        if not (members and data):
            return bytes(out)


def decode_body(encoding: str, raw: bytes) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        return inflate(raw, 16 + zlib.MAX_WBITS, members=True)
    try:  # deflate is zlib-wrapped (RFC 9110); some clients send raw deflate
        return inflate(raw, zlib.MAX_WBITS, members=False)
    except (zlib.error, ValueError):
        return inflate(raw, -zlib.MAX_WBITS, members=False)


def show(body: bytes) -> str:
    """A body as readable text: UTF-8 as is, else Python's escapes; cut after SHOW_BYTES."""
    cut = body[:SHOW_BYTES]
    try:  # not final: a character cut in two at SHOW_BYTES is left out
        text = codecs.getincrementaldecoder("utf-8")().decode(cut, final=len(body) <= SHOW_BYTES).rstrip()
    except UnicodeDecodeError:
        text = repr(cut)
    if len(body) > SHOW_BYTES:
        text += f" ... ({len(body) - SHOW_BYTES} more bytes)"
    return text


@dataclass
class Received:
    method: str
    path: str
    body: bytes  # decoded, when it arrived compressed
    encoding: str


class Destination(http.server.BaseHTTPRequestHandler):
    """The demo destination: prints what actually arrived, so you can see what the filter let out."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY on every accepted socket (socketserver.StreamRequestHandler.setup). Together with
    # one write per reply (below) nothing waits for the peer's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_POST(self):
        try:
            raw = self.read_body()
        except ValueError:  # broken chunked framing
            self.close_connection = True
            self.reply(400, b'{"ok": false}')
            return
        encoding = (self.headers.get("content-encoding") or "").strip().lower()
        body, note = raw, f"{len(raw)} bytes"
        if encoding in ("gzip", "x-gzip", "deflate"):
            try:
                body = decode_body(encoding, raw)
                note = f"arrived {encoding}-compressed: {len(raw)} bytes; shown decoded: {len(body)} bytes"
            except (zlib.error, ValueError) as err:
                note = f"{len(raw)} bytes, content-encoding {encoding} but it does not decode ({err}); shown as received"
        elif encoding and encoding != "identity":
            note = f"{len(raw)} bytes, content-encoding {encoding}; shown as received"
        self.server.received.append(Received(self.command, self.path, body, encoding))
        say(f"  [destination] received {self.command} {self.path} ({note}): {show(body)}")
        self.reply(200, b'{"ok": true}')

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def reply(self, status: int, body: bytes) -> None:
        """Status line, headers and body in one write (one segment)."""
        head = (
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        )
        if self.close_connection:
            head += "connection: close\r\n"
        self.wfile.write(head.encode() + b"\r\n" + body)

    def log_message(self, *args):
        pass


def start_destination(port: int, ports: dict[str, int]) -> http.server.ThreadingHTTPServer:
    try:
        server = http.server.ThreadingHTTPServer((HOST, port), Destination)
    except OSError as err:  # taken since check_ports looked
        why = "already in use" if err.errno == errno.EADDRINUSE else f"not available ({err.strerror or err})"
        raise SettingError(taken_message(ports, {"CONSENT_GATE_DEMO_DESTINATION_PORT": why})) from None
    server.daemon_threads = True
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- Envoy ------------------------------------------------------------------------------------------


def render_config(ports: dict[str, int], module: str) -> str:
    """envoy/demo.yaml with this run's ports and the module's absolute path; for the dynamic module,
    the wasm filter block replaced by the dynamic module's (same plugin configuration)."""
    try:
        import yaml
    except ImportError:
        raise SettingError("PyYAML is missing: run the demo with `make run` (it uses .venv)") from None
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = ports["CONSENT_GATE_ADMIN_PORT"]
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = ports["CONSENT_GATE_PORT"]
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == DESTINATION_CLUSTER]
    for group in cluster["load_assignment"]["endpoints"]:
        for endpoint in group["lb_endpoints"]:
            endpoint["endpoint"]["address"]["socket_address"]["port_value"] = ports["CONSENT_GATE_DEMO_DESTINATION_PORT"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (gate,) = [f for f in hcm["http_filters"] if f["name"] == FILTER_NAME]
    plugin = gate["typed_config"]["config"]
    plugin["vm_config"]["code"]["local"]["filename"] = str(ROOT / "dist" / MODULES["wasm"][0])
    if module == "native":
        gate["typed_config"] = {
            "@type": DYNAMIC_MODULE_FILTER,
            # found as libconsent_gate.so on ENVOY_DYNAMIC_MODULES_SEARCH_PATH (dist/)
            "dynamic_module_config": {"name": "consent_gate", "do_not_close": True},
            "filter_name": "consent_gate",
            "filter_config": {"@type": STRING_VALUE, "value": plugin["configuration"]["value"]},
        }
    return yaml.safe_dump(config, sort_keys=False)


def _die_with_parent() -> None:
    """In Envoy before exec: SIGTERM when this script dies, however it dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EnvoyRun:
    """The Envoy child process; its log and access log relayed, indented, as whole lines."""

    def __init__(self, envoy_bin: str, config_path: Path, module: str):
        env = dict(os.environ)
        if module == "native":
            env["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] = str(ROOT / "dist")
        self.log: list[str] = []
        self.version: str | None = None
        self.proc = subprocess.Popen(
            [envoy_bin, "-c", str(config_path), "--concurrency", "1", "--disable-hot-restart",
             "--log-level", "warn", "--component-log-level", f"{MODULES[module][3]}:info",
             "--log-format", "[envoy %l][%n] %v", "--file-flush-interval-msec", "100"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
        )
        self.relays = [threading.Thread(target=self._relay, args=(stream, keep), daemon=True)
                       for stream, keep in ((self.proc.stdout, False), (self.proc.stderr, True))]
        for relay in self.relays:
            relay.start()

    def _relay(self, stream, keep: bool) -> None:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip("\n")
            if keep:
                self.log.append(line)
                m = VERSION_LINE.search(line)
                if m and self.version is None:
                    self.version = m[1]
            if not re.search(r"caught (?:ENVOY_)?SIG(?:TERM|INT)\b", line):  # our own stop, or Ctrl-C
                say("  " + line)

    def wait_ready(self, admin: str, ports: dict[str, int], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                for relay in self.relays:
                    relay.join(timeout=2)
                self.explain_exit(ports)
            try:
                with urllib.request.urlopen(admin + "/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Envoy was not ready after {timeout:.0f} s; its log is above")

    def explain_exit(self, ports: dict[str, int]) -> None:
        text = "\n".join(self.log)
        if "Address already in use" in text or "cannot bind" in text:
            by_port = {port: var for var, port in ports.items()}
            taken = {by_port[int(p)]: "already in use"
                     for p in re.findall(r"(?:bind|address)[^\n]*?127\.0\.0\.1:(\d+)", text)
                     if int(p) in by_port}
            if taken:
                raise SettingError(taken_message(ports, taken))
        raise RuntimeError(f"Envoy exited with status {self.proc.returncode} before it was ready; its log is above")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for relay in self.relays:
            relay.join(timeout=2)


def cargo_version() -> str | None:
    text = (ROOT / "Cargo.toml").read_text()
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        return m[1] if m else None
    return tomllib.loads(text).get("package", {}).get("version")


# --- the tour -----------------------------------------------------------------------------------------


def event(categories, event_name="Order Completed"):
    return {
        "type": "track",
        "event": event_name,
        "userId": "u123",
        "context": {"consent": {"categoryPreferences": categories}},
    }


@dataclass
class Example:
    title: str
    path: str
    payload: dict
    status: int
    outcome: str  # allowed | denied | filtered | ungated
    reason: str | None = None  # denied: x-consent-gate-reason
    dropped: int | None = None  # x-consent-gate-dropped
    kept: tuple[str, ...] = ()  # filtered: the messageIds the destination gets
    gzip: bool = False


EXAMPLES = [
    Example("allowed: the user consented to Advertising", "/ads/v1/track",
            event({"Advertising": True, "Analytics": False}), 200, "allowed"),
    Example("blocked: no consent to Advertising", "/ads/v1/track",
            event({"Advertising": False, "Analytics": True}), 403, "denied",
            reason="FILTERED_BY_END_USER_CONSENT"),
    Example("blocked: no consent at all (on_missing_consent: deny)", "/ads/v1/track",
            {"type": "track", "event": "Order Completed", "userId": "u123"}, 403, "denied",
            reason="MISSING_CONSENT"),
    Example("a batch: one item consented, two not; the destination gets one", "/analytics/v1/batch", {
        "batch": [
            dict(event({"Analytics": True, "Functional": True}), messageId="m1"),
            dict(event({"Analytics": True, "Functional": False}), messageId="m2"),
            dict(event({"Analytics": False}), messageId="m3"),
        ],
    }, 200, "filtered", dropped=2, kept=("m1",)),
    Example("a gzip-compressed batch: decompressed, judged, filtered and compressed again",
            "/analytics/v1/batch", {
        "batch": [
            dict(event({"Analytics": True, "Functional": True}, "Signed Up"), messageId="m4"),
            dict(event({"Analytics": True}, "Signed Up"), messageId="m5"),
        ],
    }, 200, "filtered", dropped=1, kept=("m4",), gzip=True),
    Example("ungated route: passes untouched", "/open/v1/track",
            {"type": "track", "event": "Page Viewed"}, 200, "ungated"),
]


def post(listener: str, path: str, data: bytes, headers: dict[str, str]):
    req = urllib.request.Request(listener + path, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode(errors="replace")


def curl(listener: str, example: Example) -> str:
    body = json.dumps(example.payload)
    if example.gzip:
        return (f"$ echo '{body}' | gzip | curl -s -i {listener}{example.path} -H 'content-type: application/json'"
                " -H 'content-encoding: gzip' --data-binary @-")
    return f"$ curl -s -i {listener}{example.path} -H 'content-type: application/json' -d '{body}'"


def run_example(listener: str, example: Example, destination) -> list[str]:
    """Send one example, print its outcome; return what was not as it should be."""
    say(f"== {example.title}")
    say(curl(listener, example))
    data = json.dumps(example.payload).encode()
    headers = {"content-type": "application/json"}
    if example.gzip:
        data = gzip.compress(data)
        headers["content-encoding"] = "gzip"
    before = len(destination.received)
    status, resp_headers, body = post(listener, example.path, data, headers)
    time.sleep(0.25)  # let Envoy's log and access log lines print first
    arrived = destination.received[before:]
    dropped = resp_headers.get("x-consent-gate-dropped")
    reason = resp_headers.get("x-consent-gate-reason")

    wrong = []
    if status != example.status:
        wrong.append(f"status {status}, expected {example.status}")
    if example.dropped is not None and dropped != str(example.dropped):
        wrong.append(f"x-consent-gate-dropped {dropped}, expected {example.dropped}")
    if example.outcome == "denied":
        if reason != example.reason:
            wrong.append(f"x-consent-gate-reason {reason}, expected {example.reason}")
        if arrived:
            wrong.append(f"the destination received {len(arrived)} request(s), expected none")
        summary = f"denied by the filter ({reason}); the destination received nothing"
    else:
        if len(arrived) != 1:
            wrong.append(f"the destination received {len(arrived)} request(s), expected 1")
        if example.outcome == "filtered":
            kept = ()
            if len(arrived) == 1:
                try:
                    kept = tuple(item.get("messageId") for item in json.loads(arrived[0].body)["batch"])
                except (ValueError, KeyError, TypeError, AttributeError):
                    wrong.append("the destination received a body that is not a batch")
            if kept != example.kept:
                wrong.append(f"the destination received items {list(kept)}, expected {list(example.kept)}")
            summary = (f"batch filtered: x-consent-gate-dropped: {dropped}; the destination received"
                       f" {len(kept)} of {len(example.payload['batch'])} items")
        else:
            sent = gzip.decompress(data) if example.gzip else data
            if len(arrived) == 1 and arrived[0].body != sent:
                wrong.append("the destination received other bytes than the ones sent")
            summary = ("allowed: the destination received the event untouched" if example.outcome == "allowed"
                       else "passed through ungated (route without a consent policy)")
    say(f"  -> {status} {summary}")
    say(f"     {body}")
    for problem in wrong:
        say(f"  !! unexpected: {problem}")
    say()
    return [f"{example.title}: {problem}" for problem in wrong]


def admin_text(admin: str, path: str) -> str:
    with urllib.request.urlopen(admin + path, timeout=5) as resp:
        return resp.read().decode()


def show_counters(admin: str, module: str) -> None:
    prefix = MODULES[module][2]
    say(f"== the filter's counters (curl -s '{admin}/stats?filter=consent_gate')")
    for line in admin_text(admin, "/stats?filter=consent_gate").splitlines():
        if line.startswith(prefix):
            say("  " + line)
    say()
    say(f"== in /stats/prometheus, reasons and categories are labels (stats_tags in envoy/demo.yaml);"
        f" the non-zero ones (curl -s {admin}/stats/prometheus | grep consent_gate)")
    sample = re.compile(r"^(?:envoy_dynamicmodulescustom_)?consent_gate_\w+\{(?:reason|category)=\"[^\"]*\"\} (\S+)$")
    for line in admin_text(admin, "/stats/prometheus").splitlines():
        m = sample.match(line)
        if m and float(m[1]) != 0:
            say("  " + line)
    say()


def main(argv: list[str]) -> int:
    once = "--once" in argv[1:] or os.environ.get("CONSENT_GATE_DEMO_ONCE", "").strip() not in ("", "0")
    ports = read_ports(os.environ)
    module = read_module(os.environ)
    filename, what = MODULES[module][:2]
    module_file = ROOT / "dist" / filename
    if not module_file.is_file():
        raise SettingError(f"{module_file.relative_to(ROOT)} does not exist: `make run` builds it (or `make build`)")
    envoy_bin = os.environ.get("ENVOY_BIN") or str(ROOT / ".venv" / "bin" / "envoy")
    if not os.access(envoy_bin, os.X_OK):
        raise SettingError(f"no Envoy at {envoy_bin}: `make run` installs it into .venv, or set ENVOY_BIN")
    check_ports(ports)

    listener = f"http://{HOST}:{ports['CONSENT_GATE_PORT']}"
    admin = f"http://{HOST}:{ports['CONSENT_GATE_ADMIN_PORT']}"
    config_text = render_config(ports, module)
    destination = start_destination(ports["CONSENT_GATE_DEMO_DESTINATION_PORT"], ports)
    workdir = tempfile.TemporaryDirectory(prefix="consent-gate-demo-")
    config_path = Path(workdir.name) / "demo.yaml"
    config_path.write_text(config_text)
    envoy = None
    problems: list[str] = []
    try:
        envoy = EnvoyRun(envoy_bin, config_path, module)
        envoy.wait_ready(admin, ports)
        deadline = time.monotonic() + 0.5  # the configured line is logged before /ready; let it relay
        while envoy.version is None and time.monotonic() < deadline:
            time.sleep(0.02)
        cargo = cargo_version()
        if envoy.version:
            version = f"{envoy.version} (as the module logged it when Envoy configured it)"
            if cargo and cargo != envoy.version:
                version += f"; Cargo.toml says {cargo}: `make build` rebuilds the module"
        else:
            version = f"{cargo} (from Cargo.toml; the module logged no version)"
        say()
        say(f"consent-gate {version}")
        say(f"running as {what}, {module_file.relative_to(ROOT)}: Envoy on {HOST}:{ports['CONSENT_GATE_PORT']}"
            f" (admin {HOST}:{ports['CONSENT_GATE_ADMIN_PORT']}), demo destination on"
            f" {HOST}:{ports['CONSENT_GATE_DEMO_DESTINATION_PORT']}")
        say()
        for example in EXAMPLES:
            problems += run_example(listener, example, destination)
        show_counters(admin, module)
        if problems:
            say(f"!! {len(problems)} thing(s) were not as they should be:")
            for problem in problems:
                say(f"!!   {problem}")
        else:
            say(f"Every example got the answer it should ({len(EXAMPLES)} examples).")
        say()
        other = "native" if module == "wasm" else "wasm"
        say(f"The same demo with {MODULES[other][1]}, dist/{MODULES[other][0]}, instead:"
            f" CONSENT_GATE_MODULE={other} make run"
            + (" (its counters show in /stats as dynamicmodulescustom.consent_gate.*)." if other == "native" else "."))
        say("Other ports: CONSENT_GATE_PORT, CONSENT_GATE_ADMIN_PORT, CONSENT_GATE_DEMO_DESTINATION_PORT"
            " (see envoy/run_demo.py).")
        if once:
            return 1 if problems else 0
        say("Try your own requests with the curl commands above (see README.md). Ctrl-C stops everything.")
        envoy.proc.wait()
        say(f"Envoy exited with status {envoy.proc.returncode}")
        return 1
    except KeyboardInterrupt:
        return 1 if problems else 0
    except (RuntimeError, OSError) as err:
        print(f"{NAME}: {err}", file=sys.stderr, flush=True)
        return 1
    finally:
        if envoy is not None:
            envoy.stop()
        destination.shutdown()
        destination.server_close()
        workdir.cleanup()


def _interrupt(*_):
    raise KeyboardInterrupt


def cli(argv: list[str]) -> int:
    """`make run`: main() with SIGTERM taken as Ctrl-C, and a setting error as one line, status 2."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return main(argv)
    except SettingError as err:
        message = str(err)
        print(message if message.startswith(NAME) else f"{NAME}: {message}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(cli(sys.argv))
