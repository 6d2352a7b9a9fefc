"""`/v1/batch` bodies through Envoy (README "Batches"): each item decided like a single event, the
upstream receiving either the client's bytes (nothing dropped), a rewritten body with only the
kept items (every other byte the client's, a correct content-length, `x-consent-gate-dropped: N`
on the response), or nothing at all (a local reply saying how many items were dropped and why).

Routes in envoy/e2e.yaml: `/` (so `/v1/batch`) → Analytics; `/multi` → Advertising + Analytics
(match all); `/open` → not gated. Every item is marked with what must become of it (`keep`, or
`drop(REASON, …)`); the filter's drop counters must move by exactly those reasons.
"""

import json
import time

import pytest

from harness import clients
from harness.batches import (
    FILTERED,
    FORWARDED,
    INVALID,
    MISSING,
    UNREADABLE,
    Batch,
    assert_batch_outcome,
    batch,
    compress,
    counter_delta,
    drop,
    drop_counters,
    ev,
    keep,
    refused,
)
from harness.checks import OMIT, SETTLE_SECONDS, assert_allowed, assert_denied, encode
from harness.clients import H2Request, RawHttp1, request_head

HEADERS = {
    "content-type": "application/json",
    "user-agent": "analytics-python/2.4.0",
    "authorization": "Basic d2tfZTJlOg==",
    "x-custom-header": "keep me",
}


def ok(mid, **kw):
    return ev(mid, {"Analytics": True}, **kw)


def no(mid, **kw):
    return ev(mid, {"Analytics": False}, **kw)


def bare(mid, **kw):
    return ev(mid, **kw)


# Items whose bytes a JSON re-encoder would change: pretty-printed raw UTF-8, and \u escapes.
PRETTY = json.dumps(ok("m-pretty", name="Caf\u00e9 \u2615", properties={"note": "a \U0001F36A"}),
                    indent=2, ensure_ascii=False).encode()
ESCAPED = (b'{"type":"track","event":"Esc\\u00e9 \\ud83c\\udf6a","messageId":"m-escaped",'
           b'"context":{"consent":{"categoryPreferences":{"An\\u0061lytics":true}}}}')
DUP_CATEGORY = (b'{"type":"track","event":"Order Completed","messageId":"m-dup","context":{"consent":'
                b'{"categoryPreferences":{"Analytics":false,"Analytics":true}}}}')
DUP_CATEGORY_ESCAPED = (b'{"type":"track","event":"Order Completed","messageId":"m-dup-esc","context":'
                        b'{"consent":{"categoryPreferences":{"Analytics":false,"An\\u0061lytics":true}}}}')
TWO_CONTEXTS = (b'{"type":"track","event":"Order Completed","messageId":"m-two-ctx","context":'
                b'{"consent":{"categoryPreferences":{"Analytics":false}}},"context":'
                b'{"consent":{"categoryPreferences":{"Analytics":true}}}}')
TWO_TYPES = (b'{"type":"identify","type":"track","event":"Consent Change","messageId":"m-two-types"}')

MIXED = batch(
    keep(ok("m1")),
    drop(FILTERED, no("m2")),
    drop(MISSING, bare("m3")),
    keep(PRETTY),
    drop(INVALID, DUP_CATEGORY),
    keep(ESCAPED),
    drop(FILTERED, ev("m7", {"Analytics": "true"})),
    keep(ok("m8", type="identify", traits={"email": "x@example.com"})),
)
ALL_ALLOWED = batch(keep(ok("a1")), keep(PRETTY), keep(ESCAPED), keep(ok("a4", type="page")))
ALL_DENIED = batch(drop(FILTERED, no("d1")), drop(MISSING, bare("d2")), drop(FILTERED, ev("d3", {})))


def row(id, b, expect, path="/v1/batch"):
    return pytest.param(path, b, expect, id=id)


def send(envoy, upstream, path, b: Batch, expect, headers=HEADERS):
    before = drop_counters(envoy)
    resp = clients.http1(envoy.port, "POST", path, b.body, headers)
    assert_batch_outcome(resp, upstream, b, expect, path=path, sent_headers=headers)
    assert_counted(envoy, before, b, expect)


def assert_counted(envoy, before, b: Batch, expect):
    """Every dropped item counted under its reason; a batch's items counted as seen."""
    if expect is UNREADABLE:
        want = {INVALID: 1}
    else:
        want = dict(b.dropped_by_reason)
        if b.items:
            want["batch_items_seen"] = len(b.items)
    assert counter_delta(before, drop_counters(envoy)) == want


# ---- the matrix ---------------------------------------------------------------------------------

MATRIX = [
    row("mixed/only-allowed-items-in-order-byte-identical", MIXED, FORWARDED),
    row("all-allowed/client-bytes-untouched", ALL_ALLOWED, FORWARDED),
    row("empty-batch/untouched", batch(), FORWARDED),
    row("all-denied/mixed-reasons-is-a-consent-denial", ALL_DENIED,
        refused(403, FILTERED, "Analytics")),
    row("all-denied/refused", batch(drop(FILTERED, no("r1")), drop(FILTERED, no("r2"))),
        refused(403, FILTERED, "Analytics")),
    row("all-denied/no-consent-anywhere-is-a-consent-denial",
        batch(drop(MISSING, bare("n1")), drop(MISSING, bare("n2"))), refused(403, FILTERED, "Analytics")),
    row("all-denied/all-invalid-is-400", batch(drop(INVALID, b"1"), drop(INVALID, b'"x"'),
                                               drop(INVALID, DUP_CATEGORY)), refused(400, INVALID)),
    row("all-denied/invalid-and-refused-is-a-consent-denial",
        batch(drop(INVALID, b"null"), drop(FILTERED, no("r1"))), refused(403, FILTERED, "Analytics")),
    # Top-level context.consent applies to items without a context.consent key.
    row("top-level-consent-only/allowed",
        batch(keep(bare("t1")), keep(bare("t2", context={"ip": "1.2.3.4"})), keep(bare("t3", context={})),
              top_consent={"Analytics": True}), FORWARDED),
    row("top-level-consent-only/refused", batch(drop(FILTERED, bare("t1")), drop(FILTERED, bare("t2")),
                                                top_consent={"Analytics": False}),
        refused(403, FILTERED, "Analytics")),
    row("top-level-consent-only/empty-preferences-consent-to-nothing",
        batch(drop(FILTERED, bare("t1")), top_consent={}), refused(403, FILTERED, "Analytics")),
    row("top-level-consent-without-preferences-is-missing",
        batch(drop(MISSING, bare("t1")), keep(ok("t2")),
              top_context=b'{"consent":{"version":2}}'), FORWARDED),
    # An item with its own context.consent uses it, whatever the top level says.
    row("item-consent-overrides-top-level/item-refuses",
        batch(keep(bare("o1")), drop(FILTERED, no("o2")), keep(bare("o3")),
              top_consent={"Analytics": True}), FORWARDED),
    row("item-consent-overrides-top-level/item-consents",
        batch(drop(FILTERED, bare("o1")), keep(ok("o2")), drop(FILTERED, bare("o3")),
              top_consent={"Analytics": False}), FORWARDED),
    row("item-consent-without-top-level",
        batch(keep(ok("o1")), drop(MISSING, bare("o2"))), FORWARDED),
    row("item-consent-{}-is-its-own-and-has-no-preferences",
        batch(drop(MISSING, bare("c1", consent={})), keep(bare("c2")),
              top_consent={"Analytics": True}), FORWARDED),
    row("item-consent-without-preferences-is-its-own",
        batch(drop(MISSING, bare("c1", consent={"version": 2})), keep(bare("c2")),
              top_consent={"Analytics": True}), FORWARDED),
    row("item-empty-preferences-is-its-own",
        batch(drop(FILTERED, ev("c1", {})), keep(bare("c2")), top_consent={"Analytics": True}), FORWARDED),
    # Invalid items are dropped and counted; the rest of the batch goes on.
    row("invalid-items/not-objects",
        batch(keep(ok("i1")), drop(INVALID, b"42"), drop(INVALID, b'"track"'), drop(INVALID, b"null"),
              drop(INVALID, b"true"), drop(INVALID, b"[]"), drop(INVALID, b"[" + encode(ok("i7")) + b"]"),
              keep(ok("i8"))), FORWARDED),
    row("invalid-items/consent-readable-two-ways",
        batch(keep(ok("i1")), drop(INVALID, DUP_CATEGORY), drop(INVALID, DUP_CATEGORY_ESCAPED),
              drop(INVALID, TWO_CONTEXTS), drop(INVALID, TWO_TYPES), keep(ok("i6"))), FORWARDED),
    row("invalid-items/consent-not-an-object",
        batch(drop(INVALID, bare("i1", consent=None)), drop(INVALID, ev("i2", ["Analytics"])),
              drop(INVALID, bare("i3", context="eu")), drop(INVALID, ev("i4", True)), keep(ok("i5")),
              top_consent={"Analytics": True}), FORWARDED),
    # A batch of its own in an item: a receiver that reads an event or a batch through one model
    # (a recursive pydantic, zod or Go type) delivers the refused event inside.
    row("invalid-items/a-batch-in-an-item",
        batch(keep(ok("n1")), drop(INVALID, b'{"messageId":"n2","batch":[' + encode(no("n3")) + b"]}"),
              drop(INVALID, b'{"messageId":"n4","Batch":[' + encode(no("n5")) + b"]}"),
              top_consent={"Analytics": True}), FORWARDED),
    # track events in always_allow_events pass; the path implies no type for batch items.
    row("always-allow-consent-event-in-batch",
        batch(keep(no("e1", name="Segment Consent Preference Updated")),
              keep(bare("e2", name="Consent Change")),
              drop(MISSING, bare("e3", name="Consent Change", type=OMIT)),
              drop(MISSING, bare("e4", name="Consent Change", type="identify")),
              drop(FILTERED, no("e5")),
              drop(INVALID, ev("e6", "yes", name="Consent Change"))), FORWARDED),
    row("untyped-item-is-not-a-track-event",
        batch(drop(MISSING, bare("p1", name="Consent Change", type=OMIT)), keep(ok("p2"))), FORWARDED),
    # A batch body at a single-event endpoint: a batch to some readers, one event to others.
    row("batch-on-a-track-path-is-ambiguous",
        batch(keep(ok("p1")), keep(ok("p2"))), UNREADABLE, path="/v1/track"),
    row("batch-on-a-short-track-path-is-ambiguous",
        batch(keep(ok("p1"))), UNREADABLE, path="/v1/t"),
    # Event fields beside `batch`: a single event to a reader that ignores `batch`.
    row("top-level-event-fields-make-the-batch-ambiguous",
        batch(drop(FILTERED, no("p1")), drop(MISSING, bare("p2")),
              head=b'{"type":"track","event":"Consent Change","batch":'),
        UNREADABLE),
    row("top-level-user-id-makes-the-batch-ambiguous",
        batch(keep(ok("p1")), head=b'{"userId":"u1","batch":'), UNREADABLE),
    row("batch-key-in-another-case-is-ambiguous",
        batch(keep(ok("p1")), head=b'{"Batch":'), UNREADABLE),
    # Several required categories: denied categories are listed in route order.
    row("multi-route/mixed",
        batch(keep(ev("u1", {"Advertising": True, "Analytics": True})),
              drop(FILTERED, ev("u2", {"Advertising": True})),
              drop(FILTERED, ev("u3", {"Analytics": True, "Advertising": False}))), FORWARDED,
        path="/multi/v1/batch"),
    row("multi-route/all-denied-lists-every-denied-category",
        batch(drop(FILTERED, ev("u1", {"Advertising": True, "Analytics": False})),
              drop(FILTERED, ev("u2", {"Analytics": True}))),
        refused(403, FILTERED, "Advertising", "Analytics"), path="/multi/v1/batch"),
    # Layouts: what changes is only the inside of the array.
    row("layout/compact", Batch(MIXED.items, open=b"", sep=b",", close=b""), FORWARDED),
    row("layout/batch-key-first", Batch(MIXED.items, head=b'{"batch":', tail=b',"sentAt":"x"}'),
        FORWARDED),
    row("layout/batch-key-last", Batch(MIXED.items, head=b'{"sentAt":"x","writeKey":"k","batch":',
                                       tail=b"}"), FORWARDED),
    row("layout/escaped-batch-key-is-the-batch",
        Batch(MIXED.items, head=b'{"b\\u0061tch":', tail=b"}"), FORWARDED),
    row("layout/tabs-and-crlf", Batch(MIXED.items, open=b"\t", sep=b"\r\n\t,\r\n", close=b" \r\n"),
        FORWARDED),
    row("layout/single-kept-item-at-the-end",
        batch(drop(FILTERED, no("s1")), drop(MISSING, bare("s2")), keep(ok("s3"))), FORWARDED),
]


@pytest.mark.parametrize("path, b, expect", MATRIX)
def test_batch(gate, upstream, path, b, expect):
    send(gate, upstream, path, b, expect)


def test_ungated_route_forwards_a_batch_untouched(gate, upstream):
    resp = clients.http1(gate.port, "POST", "/open/v1/batch", ALL_DENIED.body, HEADERS)
    assert_allowed(resp, upstream, ALL_DENIED.body, path="/open/v1/batch", sent_headers=HEADERS)
    assert resp.header("x-consent-gate-dropped") is None, resp


# ---- a batch whose top level cannot be read is refused whole ------------------------------------

CONSENTED_TOP = b'"context":{"consent":{"categoryPreferences":{"Analytics":true}}}'
ITEM = encode(ok("x1"))
UNREADABLE_BODIES = [
    pytest.param(b'{"batch":{"0":' + ITEM + b"}," + CONSENTED_TOP + b"}", id="batch-is-an-object"),
    pytest.param(b'{"batch":"' + ITEM.replace(b'"', b'\\"') + b'",' + CONSENTED_TOP + b"}",
                 id="batch-is-a-string"),
    pytest.param(b'{"batch":null,' + CONSENTED_TOP + b"}", id="batch-is-null"),
    pytest.param(b'{"batch":1,' + CONSENTED_TOP + b"}", id="batch-is-a-number"),
    pytest.param(b'{"batch":[' + ITEM + b'],"batch":[' + encode(no("x2")) + b"]}", id="two-batch-keys"),
    pytest.param(b'{"batch":[' + ITEM + b'],"b\\u0061tch":[]}', id="two-batch-keys-one-escaped"),
    pytest.param(b'{"batch":[' + ITEM + b'],"batch":null}', id="batch-then-batch-null"),
    pytest.param(MIXED.body[:-10], id="truncated"),
    pytest.param(MIXED.body[:MIXED.body.index(b"m3") + 5], id="truncated-inside-an-item"),
    pytest.param(MIXED.body + b"x", id="trailing-garbage"),
    pytest.param(MIXED.body + ALL_ALLOWED.body, id="two-objects"),
    pytest.param(b'{"batch":[' + ITEM + b", " + ITEM[:-1] + b",}]}", id="item-not-json"),
    pytest.param(b'{"batch":[' + ITEM + b',"\xff\xfe"]}', id="item-invalid-utf8"),
    pytest.param(b'{"batch":[' + ITEM + b"," + ITEM + b",]}", id="trailing-comma-in-array"),
    pytest.param(b"[" + ITEM + b"," + ITEM + b"]", id="array-of-events"),
    pytest.param(b'{"batch":[' + ITEM + b'],"context":null}', id="top-level-context-null"),
    pytest.param(b'{"batch":[' + ITEM + b'],"context":{"consent":"yes"}}', id="top-level-consent-string"),
    pytest.param(b'{"batch":[' + ITEM + b'],"context":{"consent":{"categoryPreferences":'
                 b'{"Analytics":false,"Analytics":true}}}}', id="top-level-category-twice"),
    pytest.param(b'{"batch":[' + encode(bare("x3")) + b'],"context":{"consent":{"categoryPreferences":'
                 b'{"Analytics":true}}},"context":{}}', id="top-level-context-twice"),
]


@pytest.mark.parametrize("body", UNREADABLE_BODIES)
def test_unreadable_top_level_is_400(gate, upstream, body):
    before = drop_counters(gate)
    resp = clients.http1(gate.port, "POST", "/v1/batch", body, HEADERS)
    assert_batch_outcome(resp, upstream, batch(), UNREADABLE, sent=body)
    assert counter_delta(before, drop_counters(gate)) == {INVALID: 1}


# ---- batch_mode: reject -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rejecting(envoys):
    """Envoy with {"batch_mode": "reject"}."""
    return envoys.get("batch_reject")


REJECT = [
    # The reply is a consent denial unless every denied item was unreadable (then 400);
    # `dropped` counts the denied items.
    row("mixed-is-refused-whole", MIXED, refused(403, FILTERED, "Analytics")),
    row("one-refused-item", batch(keep(ok("j1")), drop(FILTERED, no("j2")), keep(ok("j3"))),
        refused(403, FILTERED, "Analytics")),
    row("one-item-without-consent", batch(keep(ok("j1")), drop(MISSING, bare("j2"))),
        refused(403, FILTERED, "Analytics")),
    row("one-invalid-item", batch(keep(ok("j1")), drop(INVALID, b"[]")), refused(400, INVALID)),
    row("item-overriding-top-level-consent", batch(keep(bare("j1")), drop(FILTERED, no("j2")),
                                                   top_consent={"Analytics": True}),
        refused(403, FILTERED, "Analytics")),
    row("all-denied", ALL_DENIED, refused(403, FILTERED, "Analytics")),
    row("all-allowed-is-forwarded-untouched", ALL_ALLOWED, FORWARDED),
    row("always-allow-event-is-not-a-denial",
        batch(keep(no("j1", name="Segment Consent Preference Updated")), keep(ok("j2"))), FORWARDED),
    row("empty-batch-is-forwarded", batch(), FORWARDED),
]


@pytest.mark.parametrize("path, b, expect", REJECT)
def test_batch_mode_reject(rejecting, upstream, path, b, expect):
    send(rejecting, upstream, path, b, expect)


# ---- how the batch arrives: chunked HTTP/1.1, HTTP/2 --------------------------------------------


def split(body: bytes, parts: int) -> list[bytes]:
    step = -(-len(body) // parts)
    return [body[i:i + step] for i in range(0, len(body), step)]


def via_h1_chunked(port, path, body, headers):
    return clients.http1(port, "POST", path, headers=headers, chunks=split(body, 5), chunk_delay=0.005)


def via_h1_small_chunks(port, path, body, headers):
    return clients.http1(port, "POST", path, headers=headers, chunks=split(body, 60))


def via_h2(port, path, body, headers):
    return clients.http2(port, "POST", path, body, headers)


def via_h2_frames_with_length(port, path, body, headers):
    return clients.http2(port, "POST", path, headers={**headers, "content-length": str(len(body))},
                         frames=split(body, 4))


def via_h2_trailers(port, path, body, headers):
    return clients.http2(port, "POST", path, headers=headers, frames=split(body, 3),
                         trailers={"x-batch-checksum": "abc"})


TRANSPORTS = [
    pytest.param(via_h1_chunked, id="h1-chunked"),
    pytest.param(via_h1_small_chunks, id="h1-60-chunks"),
    pytest.param(via_h2, id="h2"),
    pytest.param(via_h2_frames_with_length, id="h2-frames-content-length"),
    pytest.param(via_h2_trailers, id="h2-frames-trailers"),
]
CASES = [
    pytest.param(MIXED, FORWARDED, id="mixed"),
    pytest.param(ALL_ALLOWED, FORWARDED, id="all-allowed"),
    pytest.param(ALL_DENIED, refused(403, FILTERED, "Analytics"), id="all-denied"),
]


@pytest.mark.parametrize("b, expect", CASES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_batch_transport(gate, upstream, transport, b, expect):
    """The rewritten body is whole and correctly framed however the client's body arrived."""
    headers = {"content-type": "application/json", "x-custom-header": "keep me"}
    before = drop_counters(gate)
    resp = transport(gate.port, "/v1/batch", b.body, headers)
    assert_batch_outcome(resp, upstream, b, expect, path="/v1/batch", sent_headers=headers)
    assert_counted(gate, before, b, expect)


def test_rewritten_batches_on_one_kept_alive_connection(gate, upstream):
    """Batches one after another on one HTTP/1.1 connection: each rewrite's content-length is
    right, or the next request on the connection (client side or upstream side) would break."""
    cases = [MIXED, ALL_ALLOWED, batch(drop(MISSING, bare("k1")), keep(ok("k2"))),
             ALL_DENIED, Batch(MIXED.items, open=b"", sep=b",", close=b"")]
    with RawHttp1(gate.port) as conn:
        for b in cases:
            conn.send(request_head("POST", "/v1/batch", {**HEADERS, "content-length": str(len(b.body))})
                      + b.body)
            resp = conn.read_response()
            want = 403 if not b.kept else 200
            assert resp.status == want, resp
            dropped = resp.header("x-consent-gate-dropped")
            assert dropped == (str(b.dropped) if b.dropped else None), resp
    forwarded = [b for b in cases if b.kept]
    requests = upstream.wait_for_requests(len(forwarded))
    assert [r.body for r in requests] == [b.rewritten() if b.dropped else b.body for b in forwarded]
    for r in requests:
        assert r.header_values("content-length") == [str(len(r.body))], r.header_lines


def test_interleaved_h2_batches_on_one_connection(gate, upstream):
    """Three batches as concurrent streams, DATA frames interleaved: each judged on its own body."""
    cases = [(MIXED, 200), (ALL_DENIED, 403), (ALL_ALLOWED, 200)]
    json_headers = {"content-type": "application/json"}
    responses = clients.http2_interleaved(
        gate.port, [H2Request("POST", "/v1/batch", json_headers, split(b.body, 4)) for b, _ in cases])
    for (b, status), resp in zip(cases, responses):
        assert resp.status == status, resp
        assert resp.header("x-consent-gate-dropped") == (str(b.dropped) if b.dropped else None), resp
    upstream.wait_for_requests(2)
    time.sleep(SETTLE_SECONDS)
    assert sorted(r.body for r in upstream.requests) == sorted([MIXED.rewritten(), ALL_ALLOWED.body])


# ---- a large batch --------------------------------------------------------------------------------

LARGE = batch(*[
    keep(ok(f"L{i}")) if i % 3 == 0 else
    drop(FILTERED, no(f"L{i}")) if i % 3 == 1 else
    drop(MISSING, bare(f"L{i}"))
    for i in range(2499)
])


@pytest.mark.parametrize("items", [2501, 200_000], ids=["one-too-many", "tiny-items"])
def test_too_many_items_is_refused_whole(gate, upstream, items):
    """More than max_batch_items (2,500 by default, Segment's own limit) is 413 BODY_TOO_LARGE,
    however small the items: a gzip body of 200,000 `{}` inflates to 600 KB, under the size cap."""
    plain = b'{"batch":[' + b",".join([b"{}"] * items) + b"]}"
    body = compress("gzip", plain)
    headers = {**HEADERS, "content-encoding": "gzip"}
    resp = clients.http1(gate.port, "POST", "/v1/batch", body, headers)
    assert_denied(resp, upstream, 413, "BODY_TOO_LARGE")


@pytest.mark.parametrize("encoding", [None, "gzip"], ids=["plain", "gzip"])
def test_large_batch(gate, upstream, encoding):
    """2,499 items (~580 KB; under the 1 MiB and 2,500-item default limits): 833 kept, in order,
    byte-identical."""
    assert 500_000 < len(LARGE.body) < 1_048_576
    body = compress(encoding, LARGE.body)
    headers = {**HEADERS, "content-encoding": encoding} if encoding else HEADERS
    before = drop_counters(gate)
    resp = clients.http1(gate.port, "POST", "/v1/batch", body, headers)
    assert_batch_outcome(resp, upstream, LARGE, FORWARDED, sent=body, encoding=encoding, path="/v1/batch",
                         sent_headers=headers)
    assert_counted(gate, before, LARGE, FORWARDED)
