"""Requests that end before the filter could judge them: the client went away, or timed out.

Nothing is forwarded, the request is counted as `requests_incomplete` and recorded as
`incomplete`. When no byte of the body ever reached the filter, the log says what most likely
caused it: a proxy-wasm filter configured without `allow_on_headers_stop_iteration: true`, with
which Envoy holds every request with a body and never hands the body to the filter.
"""

from __future__ import annotations

import time

import pytest

from harness import accesslog, stats
from harness.checks import encode, event
from harness.clients import RawHttp1, request_head
from harness.envoy import MODULE, filter_log_lines

JSON = {"content-type": "application/json"}
DENIED = encode(event({"Advertising": False}))
HINT = "allow_on_headers_stop_iteration: true"


def counters_when(envoy, name: str, value: int, timeout: float = 5.0) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while True:
        found = stats.counters(envoy)
        if found.get(name) == value or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def abandon(envoy, body_part: bytes, wait: float, headers: dict[str, str] = JSON) -> None:
    """POST the head of a request announcing DENIED, then `body_part`, then hang up."""
    with RawHttp1(envoy.port) as conn:
        head = request_head("POST", "/ads", {**headers, "content-length": str(len(DENIED))})
        conn.send(head + body_part)
        time.sleep(wait)


def test_a_client_that_hangs_up_mid_body_is_counted_and_nothing_is_forwarded(envoys, upstream):
    envoy = envoys.get("incomplete", plugin_config="default")
    before = stats.counters(envoy)
    rid = accesslog.new_id("incomplete")
    abandon(envoy, DENIED[:20], wait=0.2, headers=accesslog.tag(JSON, rid))
    after = counters_when(envoy, "consent_gate.requests_incomplete", 1)
    expected = dict(before, **{"consent_gate.requests_incomplete": 1})
    assert after == expected, stats.diff(expected, after)
    assert upstream.requests == [] and upstream.bytes_received() == 0
    # Envoy writes its access log when it flushes its files (every 100 ms here): waited for.
    entry = accesslog.wait_for(envoy, rid)
    # The record names the policy the request was held under.
    assert (entry.decision, entry.fields.get("required")) == ("incomplete", "Advertising"), entry.line
    # The body had started to arrive: the filter was configured right, no warning.
    assert not [line for line in filter_log_lines(envoy.stderr_text()) if HINT in line]


@pytest.mark.skipif(MODULE != "wasm", reason="a setting of the proxy-wasm filter only")
def test_without_allow_on_headers_stop_iteration_requests_hang_closed_and_the_log_says_why(envoys, upstream):
    envoy = envoys.get("no_stop_iteration", plugin_config="default",
                       allow_on_headers_stop_iteration=False)
    # The whole body is sent, but Envoy never hands it to the filter: the request hangs.
    with RawHttp1(envoy.port, timeout=1.0) as conn:
        head = request_head("POST", "/ads", {**JSON, "content-length": str(len(DENIED))})
        conn.send(head + DENIED)
        with pytest.raises(TimeoutError):
            conn.read_response(timeout=1.0)
    after = counters_when(envoy, "consent_gate.requests_incomplete", 1)
    assert after["consent_gate.requests_incomplete"] == 1, after
    assert after["consent_gate.requests_judged"] == 0, after
    assert upstream.requests == [] and upstream.bytes_received() == 0
    warnings = [line for line in filter_log_lines(envoy.stderr_text()) if HINT in line]
    assert len(warnings) == 1 and "[warning]" in warnings[0], warnings
