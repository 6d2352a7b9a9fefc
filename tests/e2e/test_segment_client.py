"""A real, unmodified Segment client (`segment-analytics-python`, from PyPI via tests/requirements.txt)
pointed at Envoy: it posts `/v1/batch` bodies (gzip on or off) to the listener, where `/` is gated
by Analytics. Over several flushes it sends consented, refused and consent-less events of every
type; the upstream must receive exactly the consented ones (by messageId), each as the client sent
it, once, in order, and nothing else.

How the client treats the filter's replies (segment/analytics/consumer.py, request.py): a 2xx is
success (a rewritten batch answers 200); 403 (and 400, 413, 415) are non-retryable, so a refused
batch is handed to `on_error` once and dropped; 408, 410, 429, 460 and most 5xx are retried with
the same batch (`X-Retry-Count: n`). The last test sets deny_status 429 so that the client does
retry refused batches, and checks that no attempt reaches the upstream.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field

import pytest
from segment.analytics import Client
from segment.analytics.request import APIError, DatetimeSerializer
from segment.analytics.version import VERSION

from harness import stats
from harness.batches import assert_framing, decompress
from harness.checks import SETTLE_SECONDS

WRITE_KEY = "wk_consent_gate_e2e"
UPLOAD_SIZE = 4  # every group below is a multiple of it, so each batch is sent as soon as it is full


def consent(prefs) -> dict:
    return {"consent": {"categoryPreferences": prefs}}


@dataclass
class Call:
    method: str
    kwargs: dict
    consented: bool  # must reach the upstream


def calls(prefix: str) -> list[list[Call]]:
    """Groups of calls, one flush after each group."""
    n = iter(range(1000))

    def call(method, consented, context=None, **kwargs):
        kwargs.setdefault("user_id" if method != "alias" else "previous_id", f"{prefix}-user")
        if method == "alias":
            kwargs.setdefault("user_id", f"{prefix}-user-2")
        if method == "group":
            kwargs.setdefault("group_id", "g-1")
        if context is not None:
            kwargs["context"] = context
        return Call(method, {**kwargs, "message_id": f"{prefix}-{next(n):02d}"}, consented)

    order = {"event": "Order Completed", "properties": {"revenue": 42.5, "currency": "EUR", "sku": ["a", "b"]}}
    return [
        [  # a mixed batch: the upstream gets a rewritten body
            call("track", True, consent({"Analytics": True, "Advertising": False}), **order),
            call("track", False, consent({"Analytics": False, "Advertising": True}), **order),
            call("track", False, None, **order),
            call("identify", True, consent({"Analytics": True}), traits={"plan": "pro", "email": "a@example.com"}),
        ],
        [  # nothing consented: the client gets a 403
            call("track", False, consent({"Analytics": False}), **order),
            call("page", False, None, name="Home"),
            call("screen", False, {"consent": {}}, name="Settings"),
            call("track", False, consent({"Analytics": "true"}), **order),
        ],
        [  # everything consented: forwarded untouched
            call("track", True, consent({"Analytics": True}), event="Caf\u00e9 \u2615 visited",
                 properties={"note": "caf\u00e9 \U0001F36A", "nested": {"a": [1, 2, {"b": None}]}}),
            call("page", True, consent({"Analytics": True, "Functional": False}), name="Pricing",
                 properties={"url": "https://example.com/pricing?x=1&y=\u00e9"}),
            call("group", True, consent({"Analytics": True}), traits={"name": "ACME"}),
            call("alias", True, consent({"Analytics": True})),
        ],
        [  # two more batches of everything at once
            call("track", True, consent({"Analytics": False}), event="Segment Consent Preference Updated"),
            call("track", True, consent({"Analytics": True}), **order),
            call("identify", False, None, traits={"plan": "free"}),
            call("track", False, consent({}), **order),
            call("screen", True, consent({"Analytics": True}), name="Cart"),
            call("track", False, {"consent": {"categoryPreferences": "Analytics"}}, **order),  # unreadable
            call("track", True, {"consent": {"categoryPreferences": {"Analytics": True}}, "ip": "0.0.0.0",
                                 "locale": "fr-FR"}, event="Signed Up", anonymous_id=f"{prefix}-anon"),
            call("alias", False, consent({"Analytics": False})),
        ],
    ]


@dataclass
class Run:
    sent: dict[str, dict] = field(default_factory=dict)  # messageId → the message as the client built it
    order: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)
    errors: list[tuple[int, list[str]]] = field(default_factory=list)  # (status, messageIds) per on_error
    flushes: int = 0


def drive(port: int, prefix: str, *, gzip: bool, retries: int = 10) -> Run:
    run = Run()

    def on_error(exc, batch):
        status = exc.status if isinstance(exc, APIError) else 0
        run.errors.append((status, [m["messageId"] for m in batch]))

    client = Client(WRITE_KEY, host=f"http://127.0.0.1:{port}", gzip=gzip, upload_size=UPLOAD_SIZE,
                    upload_interval=0.2, max_retries=retries, timeout=5, on_error=on_error)
    try:
        for group in calls(prefix):
            assert len(group) % UPLOAD_SIZE == 0
            for c in group:
                queued, msg = getattr(client, c.method)(**c.kwargs)
                assert queued, msg
                run.sent[msg["messageId"]] = json.loads(json.dumps(msg, cls=DatetimeSerializer))
                run.order.append(msg["messageId"])
                if c.consented:
                    run.expected.append(msg["messageId"])
            client.flush()
            run.flushes += 1
    finally:
        client.shutdown()
    return run


@dataclass
class Received:
    ids: list[str]
    batches: int
    retried: int  # upstream requests carrying X-Retry-Count


def check_upstream(upstream, run: Run, *, gzip: bool) -> Received:
    """Every upstream request is a well-formed batch from this client, every item exactly what the
    client sent."""
    time.sleep(SETTLE_SECONDS)
    ids, retried = [], 0
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for req in upstream.requests:
        assert (req.method, req.path) == ("POST", "/v1/batch"), req
        assert req.header("user-agent") == f"analytics-python/{VERSION}", req.header_lines
        assert req.header("authorization") == auth, req.header_lines
        assert req.header_values("content-encoding") == (["gzip"] if gzip else []), req.header_lines
        assert_framing(req)
        retried += req.header("x-retry-count") is not None
        doc = json.loads(decompress("gzip" if gzip else None, req.body))
        assert sorted(doc) == ["batch", "sentAt", "writeKey"] and doc["writeKey"] == WRITE_KEY, doc
        assert doc["batch"], "an empty batch reached the upstream"
        for item in doc["batch"]:
            mid = item.get("messageId")
            assert mid in run.sent, f"upstream received an event the client never sent: {item}"
            assert item == run.sent[mid], f"{mid} changed on the way:\n sent {run.sent[mid]}\n got  {item}"
            ids.append(mid)
    return Received(ids, len(upstream.requests), retried)


def assert_exactly_the_consented(run: Run, got: Received) -> None:
    denied = set(run.order) - set(run.expected)
    leaked = [m for m in got.ids if m in denied]
    assert not leaked, f"denied events reached the upstream: {leaked}"
    dupes = sorted({m for m in got.ids if got.ids.count(m) > 1})
    assert not dupes, f"events received more than once: {dupes}"
    assert got.ids == run.expected, f"expected {run.expected}, received {got.ids}"
    for status, mids in run.errors:
        wrongly_refused = [m for m in mids if m not in denied]
        assert not wrongly_refused, f"the client was refused consented events: {wrongly_refused}"


def summary(capsys, label: str, run: Run, got: Received) -> None:
    statuses = sorted({s for s, _ in run.errors})
    line = (f"segment-analytics-python {VERSION} {label}: sent {len(run.order)} events in "
            f"{run.flushes} flushes; expected {len(run.expected)} consented; upstream received "
            f"{len(got.ids)} ({len(set(got.ids))} distinct, in {got.batches} batches, {got.retried} retried); "
            f"client refusals: {len(run.errors)} batches {statuses}")
    with capsys.disabled():
        print("\n" + line)


@pytest.mark.parametrize("gzip", [False, True], ids=["gzip-off", "gzip-on"])
def test_real_segment_client_upstream_gets_exactly_the_consented_events(gate, upstream, capsys, gzip):
    run = drive(gate.port, f"py-{'gz' if gzip else 'plain'}", gzip=gzip)
    got = check_upstream(upstream, run, gzip=gzip)
    summary(capsys, f"gzip={'on' if gzip else 'off'}", run, got)
    assert_exactly_the_consented(run, got)
    # 403 (and 400) are not retried: each refused batch reached on_error once.
    assert run.errors and all(status in (400, 403) for status, _ in run.errors), run.errors
    assert got.retried == 0, "the client retried a request"
    assert len(run.order) == 20 and len(run.expected) == 10


def test_refused_batches_retried_by_the_client_never_reach_the_upstream(envoys, upstream, capsys):
    """With deny_status 429 the client retries a refused batch (max_retries=1: two attempts, no
    Retry-After so no wait). Every attempt is judged again and refused."""
    envoy = envoys.get("deny_429")
    denied_before = stats.counters(envoy)["consent_gate.requests_denied"]
    run = drive(envoy.port, "py-429", gzip=True, retries=1)
    got = check_upstream(upstream, run, gzip=True)
    summary(capsys, "gzip=on deny_status=429", run, got)
    assert_exactly_the_consented(run, got)
    # A batch of nothing but unreadable items would be a (non-retryable) 400.
    assert any(status == 429 for status, _ in run.errors), run.errors
    assert all(status in (400, 429) for status, _ in run.errors), run.errors
    attempts = sum(2 if status == 429 else 1 for status, _ in run.errors)
    denials = stats.counters(envoy)["consent_gate.requests_denied"] - denied_before
    assert denials == attempts, (
        f"refused batches {run.errors}: expected {attempts} refused requests (each 429 batch sent "
        f"twice), the filter refused {denials}")
