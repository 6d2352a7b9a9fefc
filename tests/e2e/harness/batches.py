"""Segment `/v1/batch` bodies built byte by byte, what each item should become, and the assertions
about what the client got and what the recording upstream received.

A batch body is assembled from raw item bytes, so a test knows every byte the client sent and can
spell out the body the filter must forward (README, "What a rewritten body changes"): every byte
before the array's `[` and after its `]`, and every byte of every kept item, is the client's, in
the client's order; the kept items are joined by a bare `,`.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass

from .checks import (
    ABSENT,
    UPSTREAM_REPLY,
    assert_allowed,
    assert_denied,
    assert_headers_intact,
    encode,
    event,
)
from .clients import Response
from . import stats
from .envoy import Envoy
from .upstream import RecordingUpstream, Request

DROPPED_HEADER = "x-consent-gate-dropped"

# What becomes of one item.
KEEP = "KEEP"
FILTERED = "FILTERED_BY_END_USER_CONSENT"
MISSING = "MISSING_CONSENT"
INVALID = "INVALID_EVENT"


@dataclass(frozen=True)
class Item:
    raw: bytes
    fate: str  # KEEP or the reason it is dropped for


def keep(item) -> Item:
    return Item(_raw(item), KEEP)


def drop(reason: str, item) -> Item:
    assert reason in (FILTERED, MISSING, INVALID), reason
    return Item(_raw(item), reason)


def _raw(item) -> bytes:
    return item if isinstance(item, bytes) else encode(item)


def ev(message_id: str, prefs=ABSENT, **kwargs) -> dict:
    """A Segment track event (checks.event) with a messageId."""
    return event(prefs, messageId=message_id, **kwargs)


HEAD = b'{"sentAt": "2026-11-29T08:00:00.000Z",\n "batch": '
TAIL = (b',\n "context": {"library": {"name": "e2e", "version": "1"}, "ip": "0.0.0.0"},\n'
        b' "integrations": {"All": true}, "writeKey": "wk_e2e"}\n')


@dataclass(frozen=True)
class Batch:
    """`head` + `[` + `open` + items joined by `sep` + `close` + `]` + `tail`.

    The default layout puts white space around and between the items, so a forwarded-untouched
    body and a rewritten one can never be confused."""

    items: tuple[Item, ...]
    head: bytes = HEAD
    tail: bytes = TAIL
    open: bytes = b"\n  "
    sep: bytes = b" ,\n  "
    close: bytes = b"\n "

    @property
    def body(self) -> bytes:
        return self.head + b"[" + self.open + self.sep.join(i.raw for i in self.items) + self.close + b"]" + self.tail

    @property
    def kept(self) -> list[Item]:
        return [i for i in self.items if i.fate == KEEP]

    @property
    def dropped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self.items:
            if i.fate != KEEP:
                counts[i.fate] = counts.get(i.fate, 0) + 1
        return counts

    @property
    def dropped(self) -> int:
        return len(self.items) - len(self.kept)

    def rewritten(self) -> bytes:
        """The body the upstream must receive when some items are dropped."""
        return self.head + b"[" + b",".join(i.raw for i in self.kept) + b"]" + self.tail


def batch(*items: Item, top_consent=ABSENT, top_context: bytes | None = None, **layout) -> Batch:
    """A batch of `items` in the default layout (or the `layout` fields given).

    `top_consent` (a dict) becomes the top-level context.consent.categoryPreferences;
    `top_context` is the raw JSON of the top-level `context` value, for anything else."""
    if top_context is None and top_consent is not ABSENT:
        top_context = encode({"library": {"name": "e2e", "version": "1"},
                              "consent": {"categoryPreferences": top_consent}})
    if top_context is not None:
        layout.setdefault("tail", b',\n "context": ' + top_context + b',\n "writeKey": "wk_e2e"}')
    return Batch(tuple(items), **layout)


# ---- expected outcomes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Forwarded:
    """Forwarded: untouched when every item is kept, else rewritten with only the kept items."""

    def __repr__(self) -> str:
        return "FORWARDED"


@dataclass(frozen=True)
class Refused:
    """A local reply for the whole batch."""

    status: int
    reason: str
    categories: tuple[str, ...] = ()  # the reply's "categories" (absent when empty)
    batch_fields: bool = True  # the reply has events / dropped / dropped_by_reason

    def __repr__(self) -> str:
        return f"{self.status} {self.reason}"


FORWARDED = Forwarded()


def refused(status: int, reason: str, *categories: str) -> Refused:
    return Refused(status, reason, tuple(categories))


# A top level that cannot be read: a 400 that is not a batch reply.
UNREADABLE = Refused(400, INVALID, batch_fields=False)


# ---- compression --------------------------------------------------------------------------------


def compress(encoding: str | None, data: bytes) -> bytes:
    if encoding in (None, "identity"):
        return data
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)  # HTTP deflate is the zlib format
    raise ValueError(encoding)


def decompress(encoding: str | None, data: bytes) -> bytes:
    """Strict: the whole of `data` must be one complete stream (gzip: members)."""
    if encoding in (None, "identity"):
        return data
    if encoding.lower() in ("gzip", "x-gzip"):
        return gzip.decompress(data)
    if encoding.lower() == "deflate":
        d = zlib.decompressobj()
        out = d.decompress(data)
        assert d.eof and not d.unused_data, "deflate body is truncated or has trailing bytes"
        return out
    raise ValueError(encoding)


# ---- counters -----------------------------------------------------------------------------------


def drop_counters(envoy: Envoy) -> dict[str, int]:
    """The filter's per-reason drop counters and batch item counters, by short name."""
    found = {}
    for name, value in stats.counters(envoy).items():
        short = name.removeprefix("consent_gate.").removeprefix("events_dropped.")
        if short in (FILTERED, MISSING, INVALID, "BODY_TOO_LARGE", "UNSUPPORTED_CONTENT_ENCODING",
                     "batch_items_seen"):
            found[short] = value
    return found


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


# ---- assertions ---------------------------------------------------------------------------------


def assert_framing(req: Request) -> None:
    """One unambiguous framing: a content-length equal to the body's length and no
    transfer-encoding, or chunked and no content-length."""
    lengths = req.header_values("content-length")
    if req.framing == "content-length":
        assert req.header_values("transfer-encoding") == [], req.header_lines
        assert lengths == [str(len(req.body))], (
            f"content-length {lengths} for a {len(req.body)}-byte body: {req.header_lines}")
    else:
        assert req.framing == "chunked" and lengths == [], (
            f"framing {req.framing} with content-length {lengths}: {req.header_lines}")


def message_ids(plain_body: bytes) -> list:
    """The messageId of every item of a batch body (None for items without one)."""
    items = json.loads(plain_body)["batch"]
    return [i.get("messageId") if isinstance(i, dict) else None for i in items]


def assert_batch_outcome(
    resp: Response,
    upstream: RecordingUpstream,
    b: Batch,
    expect: Forwarded | Refused,
    *,
    sent: bytes | None = None,
    encoding: str | None = None,
    path: str | None = None,
    sent_headers: dict[str, str] | None = None,
) -> Request | None:
    """What the client got and what the upstream received for batch `b`, sent as `sent` (its
    body, compressed with `encoding` if given)."""
    sent = b.body if sent is None else sent
    sent_headers = sent_headers or {}
    if isinstance(expect, Refused):
        body = assert_denied(resp, upstream, expect.status, expect.reason)
        if not expect.batch_fields:
            return None
        expected_fields = {
            "events": len(b.items),
            "dropped": b.dropped,
            "dropped_by_reason": b.dropped_by_reason,
        }
        assert {k: body.get(k) for k in expected_fields} == expected_fields, body
        assert body.get("categories", []) == list(expect.categories), body
        assert resp.header(DROPPED_HEADER) == str(b.dropped), resp
        assert b"user-" not in resp.body and b"Order" not in resp.body, f"reply echoes the event: {resp}"
        return None

    if b.items and not b.kept:
        raise AssertionError("a forwarded batch must keep an item (fix the test row)")
    if b.dropped == 0:
        req = assert_allowed(resp, upstream, sent, path=path, sent_headers=sent_headers)
        assert resp.header(DROPPED_HEADER) is None, f"nothing dropped, yet {resp}"
        assert_framing(req)
        return req

    assert resp.status == 200 and resp.body == UPSTREAM_REPLY, f"expected the upstream's reply, got {resp!r}"
    assert resp.header(DROPPED_HEADER) == str(b.dropped), f"expected {DROPPED_HEADER}: {b.dropped}, got {resp!r}"
    requests = upstream.wait_for_requests(1)
    assert len(requests) == 1, f"expected one upstream request, got {len(requests)}: {requests!r}"
    (req,) = requests
    assert req.method == "POST"
    if path is not None:
        assert req.path == path
    assert_framing(req)
    assert req.header_values("content-encoding") == ([encoding] if encoding else []), req.header_lines
    plain = decompress(encoding, req.body)
    expected = b.rewritten()
    assert message_ids(plain) == message_ids(expected), "wrong items forwarded"
    assert plain == expected, (
        f"rewritten body differs:\n expected {expected!r}\n received {plain!r}")
    assert_headers_intact(req, {k: v for k, v in sent_headers.items() if k.lower() != "content-length"})
    return req
