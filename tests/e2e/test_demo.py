"""The shipped demo: envoy/demo.yaml (what the README and deploy/compose/envoy.yaml start from) and
`make run`'s script, envoy/run_demo.py.

- The demo config's `stats_config.stats_tags` turn the filter's per-reason and per-category
  counters into Prometheus labels (`consent_gate_events_dropped{reason="..."}`,
  `consent_gate_events_denied_category{category="..."}`), while /stats keeps the documented names.
  Envoy runs envoy/demo.yaml itself, with only its ports, module path and access-log file changed.
- `make run`'s script runs end to end on ports the test chooses (CONSENT_GATE_PORT,
  CONSENT_GATE_ADMIN_PORT, CONSENT_GATE_DEMO_DESTINATION_PORT) and exits 0 with
  CONSENT_GATE_DEMO_ONCE=1; its output shows the allowed, denied and batch outcomes.
- A port already in use stops it before it starts anything, with one line that names the port
  and the variable that chooses another; so does a port taken between its check and Envoy's bind.
- Its demo destination answers without Nagle / delayed-ACK stalls, and prints compressed bodies
  decoded.

Both builds: with CONSENT_GATE_MODULE=native the script and the config run the dynamic module.
"""

from __future__ import annotations

import gzip
import http.server
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
import yaml

from harness import clients, stats
from harness.deploy import free_port
from harness.envoy import MODULE, REPO, Envoy, dynamic_module_filter, module_path, wasm_path

DEMO_CONFIG = REPO / "envoy" / "demo.yaml"
SCRIPT = REPO / "envoy" / "run_demo.py"
JSON = {"content-type": "application/json"}
PORT_VARS = ("CONSENT_GATE_PORT", "CONSENT_GATE_ADMIN_PORT", "CONSENT_GATE_DEMO_DESTINATION_PORT")
REASONS = stats.REASONS
FILE_ACCESS_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"


def cargo_version() -> str:
    return re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "Cargo.toml").read_text(), re.M)[1]


def require_module() -> None:
    if not module_path().is_file():
        pytest.fail(f"{module_path()} does not exist: run `make build` first", pytrace=False)


# --- envoy/demo.yaml in Envoy ------------------------------------------------------------------------


def demo_config(upstream_port: int, access_log: Path) -> dict:
    """envoy/demo.yaml with free ports (0: the kernel picks), the destination cluster on the
    recording upstream, the local module and the access log in a file. Nothing else changes."""
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = 0
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"]["port_value"] = 0
    for cluster in config["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                endpoint["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (log,) = hcm["access_log"]
    log["typed_config"] = {"@type": FILE_ACCESS_LOG, "path": str(access_log),
                           "log_format": log["typed_config"]["log_format"]}
    (gate,) = [f for f in hcm["http_filters"] if f["name"] == "consent_gate"]
    plugin = gate["typed_config"]["config"]
    plugin["vm_config"]["code"]["local"]["filename"] = str(wasm_path())
    if MODULE == "native":
        gate["typed_config"] = dynamic_module_filter(plugin["configuration"]["value"])
    return config


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def prometheus_samples(envoy: Envoy) -> tuple[dict[tuple[str, str], int], dict[str, list[str]]]:
    """consent_gate samples in /stats/prometheus: (name without the build's prefix, labels) → value;
    and the `# TYPE` lines by name."""
    status, body = envoy.admin_get("/stats/prometheus")
    assert status == 200, body[:300]
    samples: dict[tuple[str, str], int] = {}
    types: dict[str, list[str]] = {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types.setdefault(name, []).append(kind)
            continue
        m = _SAMPLE.match(line)
        if not m or not m["name"].startswith(stats.PROM_PREFIX + "consent_gate_"):
            continue
        key = (m["name"][len(stats.PROM_PREFIX):], m["labels"] or "")
        assert key not in samples, f"{line!r} appears twice"
        samples[key] = int(float(m["value"]))
    return samples, types


def test_demo_config_exports_reasons_and_categories_as_prometheus_labels(upstream, tmp_path):
    require_module()
    envoy = Envoy("demo", tmp_path, demo_config(upstream.port, tmp_path / "access.log"))
    envoy.start()
    try:
        # A denied event, and a batch with one consented item, one denied for Functional, one
        # without consent: the destination gets m1 only.
        denied = clients.http1(envoy.port, "POST", "/ads/v1/track", json.dumps(
            {"type": "track", "event": "Order Completed",
             "context": {"consent": {"categoryPreferences": {"Advertising": False}}}}).encode(), JSON)
        assert denied.status == 403, denied
        batch = clients.http1(envoy.port, "POST", "/analytics/v1/batch", json.dumps({"batch": [
            {"type": "track", "event": "A", "messageId": "m1",
             "context": {"consent": {"categoryPreferences": {"Analytics": True, "Functional": True}}}},
            {"type": "track", "event": "B", "messageId": "m2",
             "context": {"consent": {"categoryPreferences": {"Analytics": True}}}},
            {"type": "track", "event": "C", "messageId": "m3"},
        ]}).encode(), JSON)
        assert batch.status == 200 and batch.header("x-consent-gate-dropped") == "2", batch
        (received,) = upstream.requests
        assert [item["messageId"] for item in json.loads(received.body)["batch"]] == ["m1"]

        samples, types = prometheus_samples(envoy)
        dropped = {reason: samples.get(("consent_gate_events_dropped", f'reason="{reason}"'))
                   for reason in REASONS}
        assert dropped == {reason: 0 for reason in REASONS} | {
            "FILTERED_BY_END_USER_CONSENT": 2, "MISSING_CONSENT": 1}, samples
        categories = {labels: value for (name, labels), value in samples.items()
                      if name == "consent_gate_events_denied_category"}
        assert categories == {'category="Advertising"': 1, 'category="Analytics"': 1,
                              'category="Functional"': 2}, samples
        # Labels, not names: no per-reason or per-category metric names are left, and each
        # family is one metric of type counter.
        assert not [key for key in samples
                    if key[0].startswith(("consent_gate_events_dropped_", "consent_gate_events_denied_category_"))], samples
        for family in ("consent_gate_events_dropped", "consent_gate_events_denied_category"):
            assert types.get(stats.PROM_PREFIX + family) == ["counter"], types
        # The other counters keep their names, without labels.
        assert samples[("consent_gate_requests_denied", "")] == 1, samples
        assert samples[("consent_gate_requests_filtered", "")] == 1, samples

        # /stats keeps the documented names (the tags only change how sinks see them).
        counters = stats.counters(envoy)
        assert counters["consent_gate.events_dropped.FILTERED_BY_END_USER_CONSENT"] == 2, counters
        assert counters["consent_gate.events_dropped.MISSING_CONSENT"] == 1, counters
        assert counters["consent_gate.events_denied_category.Functional"] == 2, counters
    finally:
        envoy.stop()


def readme_header_mutation() -> dict:
    """The README's header_mutation filter (RudderStack's consent shape), parsed from its YAML."""
    text = (REPO / "README.md").read_text()
    (snippet,) = re.findall(r"```yaml\n(http_filters:\n- name: envoy.filters.http.header_mutation.*?)```",
                            text, re.S)
    filters = yaml.safe_load(snippet)["http_filters"]
    return filters[0]


def test_readme_header_mutation_lets_a_form_declared_json_batch_through(upstream, tmp_path):
    """RudderStack's Node client declares its JSON batches a form: with a URL holding `&type=` in
    a property, the form rule refuses it; declared JSON before the filter (the README's
    header_mutation), it is judged as JSON and the destination is told it is JSON."""
    require_module()
    body = json.dumps({"batch": [
        {"type": "track", "event": "Product Viewed", "messageId": "r1",
         "properties": {"url": "https://shop.example.com/search?q=shoes&type=sneaker"},
         "context": {"consent": {"categoryPreferences": {"Analytics": True, "Functional": True}}}},
    ]}).encode()
    form = {"content-type": "application/x-www-form-urlencoded"}
    for mutated in (False, True):
        upstream.reset()
        config = demo_config(upstream.port, tmp_path / f"access-{mutated}.log")
        if mutated:
            hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["http_filters"].insert(0, readme_header_mutation())
        envoy = Envoy(f"demo-{mutated}", tmp_path, config)
        envoy.start()
        try:
            resp = clients.http1(envoy.port, "POST", "/analytics/v1/batch", body, form)
        finally:
            envoy.stop()
        if not mutated:
            assert resp.status == 400 and not upstream.requests, resp
            continue
        assert resp.status == 200, resp
        (received,) = upstream.requests
        assert received.body == body
        assert received.header("content-type") == "application/json", received


# --- envoy/run_demo.py (`make run`) -------------------------------------------------------------


def script_env(**ports: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENT_GATE_") or k == "CONSENT_GATE_MODULE"}
    env.update({var: str(port) for var, port in ports.items()})
    env["CONSENT_GATE_DEMO_ONCE"] = "1"
    return env


def free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(PORT_VARS):
        ports = {var: free_port() for var in PORT_VARS}
    return ports


def run_script(env: dict[str, str], *, argv: list[str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv or [sys.executable, str(SCRIPT)], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_make_run_script_shows_every_outcome_and_exits_cleanly():
    require_module()
    ports = free_ports()
    run = run_script(script_env(**ports))
    out = run.stdout
    assert run.returncode == 0, f"exit {run.returncode}\n{out}\n{run.stderr}"
    lines = out.splitlines()

    # The version, the build and the ports it runs on.
    assert any(line.startswith(f"consent-gate {cargo_version()} ") for line in lines), out
    assert f"Envoy on 127.0.0.1:{ports['CONSENT_GATE_PORT']} (admin 127.0.0.1:{ports['CONSENT_GATE_ADMIN_PORT']})" in out
    assert f"demo destination on 127.0.0.1:{ports['CONSENT_GATE_DEMO_DESTINATION_PORT']}" in out
    assert f"dist/{module_path().name}" in out
    # Allowed, denied (by consent and for missing consent), filtered batches, ungated.
    for outcome in (
        "  -> 200 allowed: the destination received the event untouched",
        "  -> 403 denied by the filter (FILTERED_BY_END_USER_CONSENT); the destination received nothing",
        "  -> 403 denied by the filter (MISSING_CONSENT); the destination received nothing",
        "  -> 200 batch filtered: x-consent-gate-dropped: 2; the destination received 1 of 3 items",
        "  -> 200 batch filtered: x-consent-gate-dropped: 1; the destination received 1 of 2 items",
        "  -> 200 passed through ungated (route without a consent policy)",
    ):
        assert outcome in lines, f"{outcome!r} missing:\n{out}"
    assert not [line for line in lines if line.startswith(("!!", "  !!"))], out
    assert "Every example got the answer it should (6 examples)." in lines, out
    # The curl commands use the chosen port; Envoy's access log lines come through.
    assert f"$ curl -s -i http://127.0.0.1:{ports['CONSENT_GATE_PORT']}/ads/v1/track " in out
    assert "  [access] POST /ads/v1/track 403 decision=deny reason=FILTERED_BY_END_USER_CONSENT" in out
    # The compressed batch, as the destination received it: decoded, with a note.
    (gzipped,) = [line for line in lines if "arrived gzip-compressed" in line]
    assert gzipped.startswith("  [destination] received POST /analytics/v1/batch (arrived gzip-compressed: ")
    decoded = json.loads(gzipped.split("): ", 1)[1])
    assert [item["messageId"] for item in decoded["batch"]] == ["m4"], gzipped
    # Prometheus labels.
    prefix = stats.PROM_PREFIX
    assert f'  {prefix}consent_gate_events_dropped{{reason="FILTERED_BY_END_USER_CONSENT"}} 4' in lines, out
    assert f'  {prefix}consent_gate_events_dropped{{reason="MISSING_CONSENT"}} 1' in lines, out
    assert f'  {prefix}consent_gate_events_denied_category{{category="Advertising"}} 2' in lines, out
    # How to run the other build.
    other = "native" if MODULE == "wasm" else "wasm"
    assert f"CONSENT_GATE_MODULE={other} make run" in out
    # Nothing left behind.
    deadline = time.monotonic() + 5
    while not all(port_is_free(p) for p in ports.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(port_is_free(p) for p in ports.values()), "a process still holds a demo port"


def held_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def assert_port_message(run: subprocess.CompletedProcess, var: str, port: int) -> None:
    assert run.returncode == 2, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    message = run.stderr.strip()
    assert message and "\n" not in message, f"not one line:\n{run.stderr}"
    assert message.startswith("consent-gate demo: ")
    assert f"port {port} (" in message and f", {var}) is already in use" in message, message
    assert "CONSENT_GATE_PORT, CONSENT_GATE_ADMIN_PORT and CONSENT_GATE_DEMO_DESTINATION_PORT" in message
    suggested = re.search(r"e\.g\. `(.*) make run`", message)
    assert suggested, message
    chosen = dict(item.split("=") for item in suggested[1].split())
    assert set(chosen) == set(PORT_VARS) and int(chosen[var]) != port, message


@pytest.mark.parametrize("var", PORT_VARS)
def test_a_port_in_use_stops_make_run_with_one_clear_line(var):
    require_module()
    with held_port() as sock:
        port = sock.getsockname()[1]
        ports = free_ports() | {var: port}
        started = time.monotonic()
        run = run_script(script_env(**ports), timeout=60)
        assert_port_message(run, var, port)
        assert run.stdout == "", f"something was started:\n{run.stdout}"
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("var", PORT_VARS)
def test_a_port_taken_after_the_check_gets_the_same_line(var):
    """The race: the port is free when the script looks and taken when Envoy (or the
    destination) binds it. Envoy's bind error becomes the same one line."""
    require_module()
    wrapper = ("import sys; sys.path.insert(0, 'envoy'); import run_demo;"
               " run_demo.check_ports = lambda ports: None; sys.exit(run_demo.cli(sys.argv))")
    with held_port() as sock:
        port = sock.getsockname()[1]
        run = run_script(script_env(**(free_ports() | {var: port})), argv=[sys.executable, "-c", wrapper])
        assert run.returncode == 2, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
        assert_port_message(run, var, port)


@pytest.mark.parametrize("setting, value, says", [
    ("CONSENT_GATE_PORT", "ten", "CONSENT_GATE_PORT='ten' is not a port number"),
    ("CONSENT_GATE_ADMIN_PORT", "70000", "CONSENT_GATE_ADMIN_PORT='70000' is not a port number"),
    ("CONSENT_GATE_MODULE", "lua", "CONSENT_GATE_MODULE must be wasm or native, not 'lua'"),
])
def test_a_wrong_setting_is_one_line(setting, value, says):
    run = run_script(script_env(**free_ports()) | {setting: value}, timeout=60)
    assert run.returncode == 2 and run.stdout == "", run
    assert run.stderr.strip() == run.stderr.strip().splitlines()[0], run.stderr
    assert run.stderr.startswith("consent-gate demo: ") and says in run.stderr, run.stderr


def test_two_settings_on_one_port_are_refused():
    ports = free_ports()
    ports["CONSENT_GATE_ADMIN_PORT"] = ports["CONSENT_GATE_PORT"]
    run = run_script(script_env(**ports), timeout=60)
    assert run.returncode == 2, run
    assert "CONSENT_GATE_PORT and CONSENT_GATE_ADMIN_PORT are both" in run.stderr, run.stderr


# --- the demo destination -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_demo():
    spec = importlib.util.spec_from_file_location("run_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_demo"] = module  # its dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("run_demo", None)


@pytest.fixture
def destination(run_demo):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), run_demo.Destination)
    server.daemon_threads = True
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def exchange(sock: socket.socket, reader, body: bytes, headers: str = "") -> bytes:
    """One keep-alive request in one segment; the response body."""
    sock.sendall(b"POST /v1/track HTTP/1.1\r\nhost: destination\r\n" + headers.encode()
                 + b"content-length: %d\r\n\r\n" % len(body) + body)
    assert reader.readline().startswith(b"HTTP/1.1 200 ")
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return reader.read(length)


def test_destination_replies_without_a_delayed_ack_stall(destination):
    """Before: headers and body in two writes with Nagle on waited for the peer's delayed ACK,
    44 ms a request (in front of Envoy too). Now one write on a TCP_NODELAY socket."""
    with socket.create_connection(destination.server_address) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        latencies = []
        for _ in range(30):
            started = time.perf_counter()
            assert exchange(sock, reader, b'{"type":"track"}') == b'{"ok": true}'
            latencies.append(time.perf_counter() - started)
    assert statistics.median(latencies) < 0.010, f"median {statistics.median(latencies) * 1000:.1f} ms"


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress),
    ("gzip", lambda b: gzip.compress(b[:7]) + gzip.compress(b[7:])),  # two members
    ("deflate", zlib.compress),
    ("deflate", lambda b: (lambda c: c.compress(b) + c.flush())(zlib.compressobj(wbits=-15))),  # raw
])
def test_destination_prints_compressed_bodies_decoded(destination, capsys, encoding, compress):
    body = b'{"type":"track","event":"Signed Up"}'
    sent = compress(body)
    with socket.create_connection(destination.server_address) as sock:
        exchange(sock, sock.makefile("rb"), sent, f"content-encoding: {encoding}\r\n")
    (received,) = destination.received
    assert received.body == body and received.encoding == encoding
    printed = capsys.readouterr().out
    assert (f"received POST /v1/track (arrived {encoding}-compressed: {len(sent)} bytes;"
            f" shown decoded: {len(body)} bytes): {body.decode()}") in printed, printed
