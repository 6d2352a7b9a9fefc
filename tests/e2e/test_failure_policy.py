"""A failing filter never fails open. Test builds of both modules (`--features panic-trigger`,
made by `make test-modules`) panic, as a bug would, on a body holding a trigger string.

- The proxy-wasm module's VM then aborts. Requests in flight and requests that follow are never
  forwarded unjudged: they get Envoy's 503 while the VM is down and the filter's decisions once it
  is back (FAIL_RELOAD, the shipped policy), or 503 for good (FAIL_CLOSED).
- The dynamic module runs in Envoy's own process: every hook catches the panic, refuses that
  request with `500 INTERNAL_ERROR`, and Envoy and every other request go on untouched.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from harness import accesslog, clients, stats
from harness.checks import assert_allowed, assert_local_reply, encode, event
from harness.clients import RawHttp1, request_head
from harness.envoy import MODULE, REPO, filter_log_lines

TEST_BUILD = {
    "wasm": REPO / "dist" / "test" / "consent_gate_abort.wasm",
    "native": REPO / "dist" / "test" / "native" / "libconsent_gate.so",
}[MODULE]
TRIGGER = b"consent-gate-test-abort-now"
JSON = {"content-type": "application/json"}
DENIED = encode(event({"Advertising": False}))
ALLOWED = encode(event({"Advertising": True}))
CRASH = encode(event({"Advertising": True}, note=TRIGGER.decode()))


def built_for_test() -> Path:
    if not TEST_BUILD.is_file():
        pytest.fail(f"{TEST_BUILD} is missing: run `make test-modules`", pytrace=False)
    return TEST_BUILD


def reloads(envoy) -> int:
    return int(envoy.stats().get("wasm.consent_gate.vm_reload_success", "0"))


def hold_denied(envoy) -> RawHttp1:
    """A denied request, held mid-body."""
    held = RawHttp1(envoy.port)
    held.send(request_head("POST", "/ads", {**JSON, "content-length": str(len(DENIED))}) + DENIED[:20])
    time.sleep(0.1)
    return held


@pytest.mark.skipif(MODULE != "wasm", reason="the proxy-wasm VM's failure policy")
def test_after_an_abort_nothing_passes_unjudged(envoys, upstream):
    envoy = envoys.get("abort_reload", plugin_config="default", module=built_for_test(),
                       failure_policy="FAIL_RELOAD", expect_crash=True)
    assert clients.http1(envoy.port, "POST", "/ads", ALLOWED, JSON).status == 200
    upstream.reset()

    held = hold_denied(envoy)
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


@pytest.mark.skipif(MODULE != "wasm", reason="the proxy-wasm VM's failure policy")
def test_fail_closed_stays_closed(envoys, upstream):
    envoy = envoys.get("abort_closed", plugin_config="default", module=built_for_test(),
                       failure_policy="FAIL_CLOSED", expect_crash=True)
    assert clients.http1(envoy.port, "POST", "/ads", CRASH, JSON).status == 503
    for body in (DENIED, ALLOWED):
        assert clients.http1(envoy.port, "POST", "/ads", body, JSON).status == 503
    time.sleep(0.1)
    assert upstream.requests == [] and upstream.bytes_received() == 0


@pytest.mark.skipif(MODULE != "native", reason="the dynamic module's own panic guard")
def test_a_panic_is_caught_and_the_request_refused(envoys, upstream):
    envoy = envoys.get("panic_native", plugin_config="default", module=built_for_test(), expect_crash=True)
    held = hold_denied(envoy)
    rid = accesslog.new_id("panic")
    resp = clients.http1(envoy.port, "POST", "/ads", CRASH, accesslog.tag(JSON, rid))
    assert_local_reply(resp, 500, "INTERNAL_ERROR")
    assert envoy.is_running(), "the panic took Envoy down"
    # Counted and recorded as the refusal it is.
    counters = stats.counters(envoy)
    assert (counters["consent_gate.events_dropped.INTERNAL_ERROR"], counters["consent_gate.requests_judged"],
            counters["consent_gate.requests_denied"], counters["consent_gate.requests_incomplete"]) == (1, 1, 1, 0), \
        counters
    entry = accesslog.wait_for(envoy, rid)
    assert (entry.status, entry.details, entry.decision, entry.fields.get("reason")) == (
        500, "consent_gate.INTERNAL_ERROR", "deny", "INTERNAL_ERROR"), entry.line
    # The request held at the time, and the ones after, are judged as usual.
    held.send(DENIED[20:])
    assert held.read_response().status == 403
    held.close()
    assert clients.http1(envoy.port, "POST", "/ads", DENIED, JSON).status == 403
    time.sleep(0.1)
    assert upstream.requests == [] and upstream.bytes_received() == 0, upstream.requests
    resp = clients.http1(envoy.port, "POST", "/ads", ALLOWED, JSON)
    assert_allowed(resp, upstream, ALLOWED)
    assert any(re.search(r"\[error\].*a panic was caught", line) for line in filter_log_lines(envoy.stderr_text()))
