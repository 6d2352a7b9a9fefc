"""Events to send and the assertions every test makes about what the client got and what the
recording upstream received."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from .clients import Response
from .upstream import RecordingUpstream, Request

UPSTREAM_REPLY = b'{"ok":true}'
ABSENT = object()  # "build the usual value"
OMIT = object()  # "leave this key out"

# Headers the client sends that Envoy legitimately rewrites or drops on the way upstream.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}

# How long to wait before concluding that nothing reached the upstream. A filter that wrongly lets
# the request through does so before the client sees its reply, so this only covers the upstream
# thread's own latency.
SETTLE_SECONDS = 0.1


def event(
    prefs=ABSENT,
    *,
    type="track",
    name="Order Completed",
    context=ABSENT,
    consent=ABSENT,
    **fields,
) -> dict:
    """A Segment-spec track event with a usual body.

    `prefs` becomes context.consent.categoryPreferences (ABSENT: no categoryPreferences key, and no
    consent key unless `consent` is given). `consent` / `context` replace those whole values;
    None means JSON null; OMIT leaves `context` (or `type`, `name`) out. `fields` are added at the
    top level.
    """
    ev: dict = {}
    if type is not OMIT:
        ev["type"] = type
    if name is not OMIT:
        ev["event"] = name
    ev["userId"] = "user-123"
    ev["properties"] = {"revenue": 42.5, "currency": "EUR"}
    ev.update(fields)
    if context is ABSENT:
        context = {"library": {"name": "e2e", "version": "1"}}
        if consent is ABSENT and prefs is not ABSENT:
            consent = {"categoryPreferences": prefs}
        if consent is not ABSENT:
            context["consent"] = consent
    if context is not OMIT:
        ev["context"] = context
    return ev


def sized_event(size: int, prefs=ABSENT, **kwargs) -> bytes:
    """An encoded event padded (in a top-level "pad" string) to exactly `size` bytes."""
    base = encode(event(prefs, pad="", **kwargs))
    assert len(base) <= size, f"{size} bytes is too small for an event"
    body = encode(event(prefs, pad="x" * (size - len(base)), **kwargs))
    assert len(body) == size
    return body


def encode(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_allowed(
    resp: Response,
    upstream: RecordingUpstream,
    sent_body: bytes,
    *,
    path: str | None = None,
    method: str = "POST",
    sent_headers: dict[str, str] | None = None,
) -> Request:
    """The request reached the upstream exactly once, body byte-identical, headers intact, and
    the client got the upstream's reply."""
    assert resp.status == 200 and resp.body == UPSTREAM_REPLY, f"expected the upstream's reply, got {resp!r}"
    requests = upstream.wait_for_requests(1)
    assert len(requests) == 1, f"expected one upstream request, got {len(requests)}: {requests!r}"
    (req,) = requests
    assert req.method == method
    if path is not None:
        assert req.path == path
    assert len(req.body) == len(sent_body) and req.body_sha256 == sha256(sent_body), (
        f"upstream body differs: sent {len(sent_body)} bytes {sent_body[:200]!r}, "
        f"received {len(req.body)} bytes {req.body[:200]!r}"
    )
    assert_headers_intact(req, sent_headers or {})
    return req


def assert_headers_intact(req: Request, sent_headers: dict[str, str]) -> None:
    for name, value in sent_headers.items():
        if name.lower() in HOP_BY_HOP:
            continue
        assert value in req.header_values(name), (
            f"header {name}: {value!r} missing upstream; upstream got {req.header_lines!r}"
        )


def assert_local_reply(
    resp: Response, status: int, reason: str, categories: list[str] | None = None
) -> dict:
    """A consent-gate local reply: status, JSON content type, reason header and JSON body."""
    assert resp.status == status, f"expected {status} {reason}, got {resp!r}"
    assert (resp.header("content-type") or "").split(";")[0].strip() == "application/json", resp
    assert resp.header("x-consent-gate-reason") == reason, resp
    body = resp.json()
    assert isinstance(body, dict) and body.get("reason") == reason and body.get("code") == reason, resp
    if categories is not None:
        assert body.get("categories") == categories, f"expected categories {categories}, got {body}"
    return body


def assert_untouched(upstream: RecordingUpstream, settle: float = SETTLE_SECONDS) -> None:
    """The destination never saw a byte: no request recorded, no byte on any connection."""
    time.sleep(settle)
    assert upstream.requests == [], f"upstream received requests: {upstream.requests!r}"
    received = upstream.bytes_received()
    assert received == 0, f"upstream received {received} bytes: {upstream.connections!r}"


def assert_denied(
    resp: Response,
    upstream: RecordingUpstream,
    status: int,
    reason: str,
    categories: list[str] | None = None,
) -> dict:
    body = assert_local_reply(resp, status, reason, categories)
    assert_untouched(upstream)
    return body


# ---- expected outcomes, so that test tables read like the spec ---------------------------------


@dataclass(frozen=True)
class Expect:
    status: int = 200  # 200: forwarded to the upstream
    reason: str | None = None
    categories: tuple[str, ...] | None = None  # checked only when given

    def __repr__(self) -> str:
        if self.status == 200:
            return "ALLOW"
        cats = f" {list(self.categories)}" if self.categories is not None else ""
        return f"{self.status} {self.reason}{cats}"


ALLOW = Expect()
INVALID = Expect(400, "INVALID_EVENT")
TOO_LARGE = Expect(413, "BODY_TOO_LARGE")


def denied(*categories: str, status: int = 403) -> Expect:
    """A consent denial naming the required categories not consented, in route config order."""
    return Expect(status, "FILTERED_BY_END_USER_CONSENT", tuple(categories))


def missing(status: int = 403) -> Expect:
    return Expect(status, "MISSING_CONSENT")


MISSING = missing()


def assert_outcome(
    resp: Response,
    upstream: RecordingUpstream,
    expect: Expect,
    sent_body: bytes,
    *,
    path: str | None = None,
    method: str = "POST",
    sent_headers: dict[str, str] | None = None,
) -> None:
    if expect.status == 200:
        assert_allowed(resp, upstream, sent_body, path=path, method=method, sent_headers=sent_headers)
    else:
        cats = list(expect.categories) if expect.categories is not None else None
        assert_denied(resp, upstream, expect.status, expect.reason, cats)
