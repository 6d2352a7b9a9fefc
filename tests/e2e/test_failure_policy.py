"""The failure policy never fails open. A test build of the module (`--features abort-trigger`,
made by `make test-modules`) aborts, as a crash would, on a body holding a trigger string. After
such an abort, requests in flight and requests that follow are never forwarded unjudged: they get
Envoy's 503 while the VM is down and the filter's decisions once it is back (FAIL_RELOAD, the
shipped policy), or 503 for good (FAIL_CLOSED)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness import clients
from harness.checks import assert_allowed, encode, event
from harness.clients import RawHttp1, request_head
from harness.envoy import REPO

ABORT_WASM = REPO / "dist" / "test" / "consent_gate_abort.wasm"
TRIGGER = b"consent-gate-test-abort-now"
JSON = {"content-type": "application/json"}
DENIED = encode(event({"Advertising": False}))
ALLOWED = encode(event({"Advertising": True}))
CRASH = encode(event({"Advertising": True}, note=TRIGGER.decode()))


def wasm() -> Path:
    if not ABORT_WASM.is_file():
        pytest.fail(f"{ABORT_WASM} is missing: run `make test-modules`", pytrace=False)
    return ABORT_WASM


def reloads(envoy) -> int:
    return int(envoy.stats().get("wasm.consent_gate.vm_reload_success", "0"))


def test_after_an_abort_nothing_passes_unjudged(envoys, upstream):
    envoy = envoys.get("abort_reload", plugin_config="default", wasm=wasm(), failure_policy="FAIL_RELOAD",
                        expect_crash=True)
    assert clients.http1(envoy.port, "POST", "/ads", ALLOWED, JSON).status == 200
    upstream.reset()

    # A denied request held mid-body when the VM aborts.
    held = RawHttp1(envoy.port)
    held.send(request_head("POST", "/ads", {**JSON, "content-length": str(len(DENIED))}) + DENIED[:20])
    time.sleep(0.1)

    crash = clients.http1(envoy.port, "POST", "/ads", CRASH, JSON)
    assert crash.status == 503, crash
    # Right after the abort, while the VM reloads: denied events, many times.
    statuses = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        resp = clients.http1(envoy.port, "POST", "/ads", DENIED, JSON)
        statuses.append(resp.status)
        if resp.status == 403:
            break
    held.send(DENIED[20:])
    held_resp = held.read_response()
    held.close()
    time.sleep(0.2)
    assert upstream.requests == [] and upstream.bytes_received() == 0, upstream.requests
    assert set(statuses) <= {403, 503} and statuses[-1] == 403, statuses
    assert held_resp.status in (403, 503), held_resp
    assert reloads(envoy) >= 1

    # Back to normal: the filter decides again.
    resp = clients.http1(envoy.port, "POST", "/ads", ALLOWED, JSON)
    assert_allowed(resp, upstream, ALLOWED)
    upstream.reset()
    resp = clients.http1(envoy.port, "POST", "/ads", DENIED, JSON)
    assert resp.status == 403 and upstream.requests == [], resp


def test_fail_closed_stays_closed(envoys, upstream):
    envoy = envoys.get("abort_closed", plugin_config="default", wasm=wasm(), failure_policy="FAIL_CLOSED",
                        expect_crash=True)
    assert clients.http1(envoy.port, "POST", "/ads", CRASH, JSON).status == 503
    for body in (DENIED, ALLOWED):
        assert clients.http1(envoy.port, "POST", "/ads", body, JSON).status == 503
    time.sleep(0.1)
    assert upstream.requests == [] and upstream.bytes_received() == 0
