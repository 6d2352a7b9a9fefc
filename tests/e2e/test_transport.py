"""How requests arrive: headers kept, chunked bodies, HTTP/2 (h2c prior knowledge), trailers,
requests without a body, the upstream never seeing a gated request before its decision, ungated
routes streaming, body size limits, and concurrent requests."""

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import clients
from harness.checks import (
    ALLOW,
    INVALID,
    MISSING,
    SETTLE_SECONDS,
    TOO_LARGE,
    assert_allowed,
    assert_denied,
    assert_local_reply,
    assert_outcome,
    assert_untouched,
    denied,
    encode,
    event,
    sized_event,
)
from harness.clients import RawHttp1, request_head

JSON = {"content-type": "application/json"}
CONSENTED = encode(event({"Advertising": True}))
REFUSED = encode(event({"Advertising": False}))
NO_CONSENT = encode(event())
NOT_JSON = b'{"type":"track", oops'


def split(body: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(body)]
    return [body[a:b] for a, b in zip(bounds, bounds[1:])]


# ---- upgrades -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upgrading(envoys):
    """The default filter on a listener that takes websocket upgrades and HTTP/2's extended
    CONNECT (`upgrade_configs` without a `filters` list: through the listener's chain)."""
    return envoys.get("upgrades", plugin_config="default", upgrades=True)


@pytest.mark.parametrize("method,body", [("POST", CONSENTED), ("GET", None)])
def test_an_upgrade_on_a_gated_route_is_refused(upgrading, upstream, method, body):
    # An upgraded HTTP/1.1 stream never ends: the filter held it for good.
    headers = {**JSON, "connection": "upgrade", "upgrade": "websocket"}
    resp = clients.http1(upgrading.port, method, "/ads/v1/track", body, headers, timeout=5)
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


def test_extended_connect_on_a_gated_route_is_refused(upgrading, upstream):
    # Envoy hands it to an HTTP/1.1 destination as a GET with `upgrade` and the judged body
    # after the headers, unframed: bytes the destination may read as a request of their own.
    headers = {":protocol": "websocket", **JSON}
    resp = clients.http2(upgrading.port, "CONNECT", "/ads/v1/track", CONSENTED, headers,
                         validate_headers=False, timeout=5)
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


def test_an_upgrade_on_an_ungated_route_reaches_the_upstream(upgrading, upstream):
    headers = {"connection": "upgrade", "upgrade": "websocket"}
    try:
        clients.http1(upgrading.port, "GET", "/open/socket", None, headers, timeout=3)
    except OSError:
        pass  # the recording upstream does not speak websocket: only its arrival counts
    assert [r.path for r in upstream.wait_for_requests(1)] == ["/open/socket"], upstream.requests


# ---- headers ------------------------------------------------------------------------------------


def test_allowed_event_keeps_privacy_and_custom_headers(gate, upstream):
    headers = {
        "content-type": "application/json; charset=utf-8",
        "sec-gpc": "1",
        "dnt": "1",
        "x-custom-header": "Value With Spaces",
        "authorization": "Basic d3JpdGVLZXk6",
        "cookie": "ajs_anonymous_id=abc",
        "user-agent": "analytics-python/2.4.0",
    }
    resp = clients.http1(gate.port, "POST", "/ads/v1/track?writeKey=abc", CONSENTED, headers)
    req = assert_allowed(resp, upstream, CONSENTED, path="/ads/v1/track?writeKey=abc",
                         sent_headers=headers)
    assert req.framing == "content-length"
    assert req.header("content-length") == str(len(CONSENTED))


def test_allowed_h2_event_keeps_headers(gate, upstream):
    headers = {"content-type": "application/json", "sec-gpc": "1", "x-custom-header": "h2"}
    resp = clients.http2(gate.port, "POST", "/ads", CONSENTED, headers)
    assert_allowed(resp, upstream, CONSENTED, path="/ads", sent_headers=headers)


# ---- chunked HTTP/1.1 bodies --------------------------------------------------------------------

# Cuts inside "Advertising", inside a \u escape and between `true` and `}`.
ESCAPED = (b'{"type":"track","event":"Order Completed","context":{"consent":'
           b'{"categoryPreferences":{"Adv\\u0065rtising":true}}}}')
CHUNKED = [
    pytest.param(split(CONSENTED, 5, 60, 140), ALLOW, id="consented-4-chunks"),
    pytest.param(split(ESCAPED, 80, 95, 99, len(ESCAPED) - 2), ALLOW, id="escaped-key-cut-mid-escape"),
    pytest.param([CONSENTED[i:i + 1] for i in range(len(CONSENTED))], ALLOW, id="one-byte-chunks"),
    pytest.param(split(REFUSED, 10, 100), denied("Advertising"), id="refused-3-chunks"),
    pytest.param(split(NO_CONSENT, 50), MISSING, id="no-consent-2-chunks"),
    pytest.param(split(NOT_JSON, 3, 9), INVALID, id="invalid-3-chunks"),
]


@pytest.mark.parametrize("chunks, expect", CHUNKED)
def test_chunked_body(gate, upstream, chunks, expect):
    delay = 0.02 if len(chunks) < 10 else 0
    resp = clients.http1(gate.port, "POST", "/ads", headers=JSON, chunks=chunks, chunk_delay=delay)
    assert_outcome(resp, upstream, expect, b"".join(chunks), path="/ads", sent_headers=JSON)


# ---- HTTP/2 prior knowledge, with and without trailers ------------------------------------------

H2 = [
    pytest.param(CONSENTED, None, None, ALLOW, id="consented"),
    pytest.param(CONSENTED, split(CONSENTED, 20, 100), None, ALLOW, id="consented-3-frames"),
    pytest.param(REFUSED, split(REFUSED, 20), None, denied("Advertising"), id="refused"),
    pytest.param(NOT_JSON, None, None, INVALID, id="invalid"),
    pytest.param(CONSENTED, split(CONSENTED, 30), {"x-trailer": "t"}, ALLOW, id="consented-trailers"),
    pytest.param(REFUSED, split(REFUSED, 30), {"x-trailer": "t"}, denied("Advertising"),
                 id="refused-trailers"),
    pytest.param(NO_CONSENT, None, {"x-trailer": "t"}, MISSING, id="no-consent-trailers"),
    pytest.param(NOT_JSON, None, {"x-trailer": "t"}, INVALID, id="invalid-trailers"),
    pytest.param(b"", [], {"x-trailer": "t"}, MISSING, id="no-body-only-trailers"),
]


@pytest.mark.parametrize("body, frames, trailers, expect", H2)
def test_http2(gate, upstream, body, frames, trailers, expect):
    resp = clients.http2(gate.port, "POST", "/ads", body, JSON, frames=frames, trailers=trailers)
    assert_outcome(resp, upstream, expect, body, path="/ads", sent_headers=JSON)


# ---- requests without a body --------------------------------------------------------------------

NO_BODY = [
    pytest.param("http1", "GET", "/ads/pixel.gif", MISSING, id="get-gated"),
    # A pixel request carries its event in the query string, where it cannot be judged.
    pytest.param("http1", "GET", "/ads/v1/pixel/track?data=eyJ0eXBlIjoidHJhY2sifQ", INVALID,
                 id="get-gated-pixel-query"),
    pytest.param("http1", "GET", "/ads/pixel.gif?u=1", INVALID, id="get-gated-query"),
    pytest.param("http2", "GET", "/ads?data=e30", INVALID, id="h2-get-gated-query"),
    pytest.param("http1", "GET", "/v1/track", MISSING, id="get-default-route"),
    pytest.param("http1", "POST", "/ads", MISSING, id="empty-post-gated"),
    pytest.param("http1", "GET", "/open/pixel.gif", ALLOW, id="get-ungated"),
    pytest.param("http1", "POST", "/open", ALLOW, id="empty-post-ungated"),
    pytest.param("http2", "GET", "/ads", MISSING, id="h2-get-gated"),
    pytest.param("http2", "POST", "/ads", MISSING, id="h2-empty-post-gated"),
    pytest.param("http2", "GET", "/open", ALLOW, id="h2-get-ungated"),
]


@pytest.mark.parametrize("protocol, method, path, expect", NO_BODY)
def test_request_without_body(gate, upstream, protocol, method, path, expect):
    headers = {"sec-gpc": "1"}
    if protocol == "http1":
        resp = clients.http1(gate.port, method, path, headers=headers)  # POST: Content-Length: 0
    else:
        resp = clients.http2(gate.port, method, path, headers=headers)  # END_STREAM on HEADERS
    assert_outcome(resp, upstream, expect, b"", path=path, method=method, sent_headers=headers)


PREFLIGHT = {"origin": "https://shop.example", "access-control-request-method": "POST",
             "access-control-request-headers": "authorization, content-type"}

CORS = [
    # A browser's preflight carries no event, and without its answer the page's SDK sends none.
    pytest.param("http1", "OPTIONS", "/ads/v1/track", PREFLIGHT, ALLOW, id="preflight"),
    pytest.param("http2", "OPTIONS", "/ads/v1/batch", PREFLIGHT, ALLOW, id="h2-preflight"),
    # Not a preflight, or one whose query may carry an event.
    pytest.param("http1", "OPTIONS", "/ads/v1/track", {"origin": "https://shop.example"}, MISSING,
                 id="options-without-request-method"),
    pytest.param("http1", "OPTIONS", "/ads/v1/pixel/track?data=e30", PREFLIGHT, INVALID,
                 id="preflight-with-an-event-query"),
]


@pytest.mark.parametrize("protocol, method, path, headers, expect", CORS)
def test_cors_preflight(gate, upstream, protocol, method, path, headers, expect):
    send = clients.http1 if protocol == "http1" else clients.http2
    resp = send(gate.port, method, path, headers=headers)
    assert_outcome(resp, upstream, expect, b"", path=path, method=method, sent_headers=headers)


def test_a_preflight_with_a_body_is_judged(gate, upstream):
    body = encode(event({"Advertising": False}))
    resp = clients.http1(gate.port, "OPTIONS", "/ads/v1/track", body, {**PREFLIGHT, **JSON})
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT")


# A pixel reader takes the event from the query string (`?data=<base64 JSON>`, or field by field)
# and ignores the body: a consented body must not carry an unjudged event past the filter.
QUERY_WITH_BODY = [
    pytest.param("http1", "GET", "/ads/v1/pixel/track?data=eyJ0eXBlIjoidHJhY2sifQ", INVALID,
                 id="get-pixel-data"),
    pytest.param("http2", "GET", "/ads/v1/pixel/track?data=e30", INVALID, id="h2-get-pixel-data"),
    pytest.param("http1", "POST", "/ads/v1/track?data=e30", INVALID, id="post-data"),
    pytest.param("http1", "GET", "/ads/pixel/v1/track?writeKey=k&anonymousId=a&event=Buy",
                 INVALID, id="get-pixel-fields"),
    pytest.param("http1", "POST", "/ads/v1/track?writeKey=k;data=e30", INVALID,
                 id="write-key-then-semicolon"),
    pytest.param("http1", "POST", "/ads/v1/track?writeKey=k%26data%3De30", INVALID,
                 id="write-key-with-escapes"),
    # RudderStack's beacon requests: the write key alone, the event in the body.
    pytest.param("http1", "POST", "/ads/v1/track?writeKey=2Va8vvJ85DejVV7jncdVenC6smB", ALLOW,
                 id="write-key-alone"),
    pytest.param("http2", "POST", "/ads/v1/track?writeKey=k", ALLOW, id="h2-write-key-alone"),
]


@pytest.mark.parametrize("protocol, method, path, expect", QUERY_WITH_BODY)
def test_query_that_may_carry_an_event(gate, upstream, protocol, method, path, expect):
    call = clients.http1 if protocol == "http1" else clients.http2
    resp = call(gate.port, method, path, CONSENTED, JSON)
    assert_outcome(resp, upstream, expect, CONSENTED, path=path, method=method, sent_headers=JSON)


def test_beacon_batch_with_write_key_is_judged_by_its_body(gate, upstream):
    body = b'{"batch":[' + CONSENTED + b"," + REFUSED + b'],"sentAt":"2024-01-01T00:00:00Z"}'
    resp = clients.http1(gate.port, "POST", "/ads/beacon/v1/batch?writeKey=k", body,
                         {"content-type": "text/plain"})
    kept = b'{"batch":[' + CONSENTED + b'],"sentAt":"2024-01-01T00:00:00Z"}'
    req = assert_allowed(resp, upstream, kept, path="/ads/beacon/v1/batch?writeKey=k")
    assert resp.header("x-consent-gate-dropped") == "1"
    assert req.header("content-length") == str(len(kept))


def test_empty_chunked_post_on_gated_route(gate, upstream):
    with RawHttp1(gate.port) as conn:
        conn.send(request_head("POST", "/ads", {"transfer-encoding": "chunked"}) + b"0\r\n\r\n")
        resp = conn.read_response()
    assert_outcome(resp, upstream, MISSING, b"")


# ---- nothing reaches the upstream before the decision; ungated routes stream --------------------


@pytest.mark.parametrize("body, expect", [
    pytest.param(CONSENTED, ALLOW, id="then-allowed"),
    pytest.param(REFUSED, denied("Advertising"), id="then-refused"),
])
def test_gated_request_is_held_until_decided(gate, upstream, body, expect):
    """Headers and the first part of the body sent, the rest held back: the upstream has seen
    nothing (not even the headers). Then the rest arrives and the decision is made."""
    with RawHttp1(gate.port) as conn:
        conn.send(request_head("POST", "/ads", {**JSON, "transfer-encoding": "chunked"}))
        conn.send_chunk(body[:40])
        assert upstream.wait_for_bytes(1, timeout=0.5) == 0, "upstream saw the request before its body"
        conn.send_chunk(body[40:])
        conn.send(b"0\r\n\r\n")
        resp = conn.read_response()
    assert_outcome(resp, upstream, expect, body, path="/ads", sent_headers=JSON)


def test_ungated_route_streams_without_buffering(gate, upstream):
    """On a route with no category the filter does not buffer: the upstream receives the headers
    while the client is still holding the body back."""
    with RawHttp1(gate.port) as conn:
        conn.send(request_head("POST", "/open", {"transfer-encoding": "chunked"}))
        conn.send_chunk(b"not json, first part;")
        assert upstream.wait_for_bytes(1, timeout=3) > 0, "ungated request was held back"
        conn.send_chunk(b" second part")
        conn.send(b"0\r\n\r\n")
        resp = conn.read_response()
    assert_allowed(resp, upstream, b"not json, first part; second part", path="/open")


# ---- body size limits ---------------------------------------------------------------------------


@pytest.mark.parametrize("size, expect", [
    pytest.param(1024, ALLOW, id="at-limit-allowed"),
    pytest.param(1025, TOO_LARGE, id="one-byte-over"),
    pytest.param(5000, TOO_LARGE, id="far-over"),
])
def test_body_limit_by_content_length(small, upstream, size, expect):
    body = sized_event(size, {"Advertising": True})
    resp = clients.post_early_reply(small.port, "/ads", body, JSON)
    assert_outcome(resp, upstream, expect, body, path="/ads", sent_headers=JSON)


def test_refused_event_at_limit_is_a_consent_denial(small, upstream):
    body = sized_event(1024, {"Advertising": False})
    resp = clients.http1(small.port, "POST", "/ads", body, JSON)
    assert_outcome(resp, upstream, denied("Advertising"), body)


def test_oversized_content_length_is_refused_before_the_body_is_sent(small, upstream):
    with RawHttp1(small.port) as conn:
        conn.send(request_head("POST", "/ads", {**JSON, "content-length": "2000"}))
        resp = conn.read_response(timeout=3)
    assert_local_reply(resp, 413, "BODY_TOO_LARGE")
    assert_untouched(upstream)


def test_oversized_chunked_stream_is_refused_before_it_ends(small, upstream):
    with RawHttp1(small.port) as conn:
        conn.send(request_head("POST", "/ads", {**JSON, "transfer-encoding": "chunked"}))
        conn.send_chunk(b'{"type":"track","pad":"' + b"x" * 700)
        conn.send_chunk(b"x" * 700)  # 1,423 bytes so far; the stream is not ended
        resp = conn.read_response(timeout=3)
    assert_local_reply(resp, 413, "BODY_TOO_LARGE")
    assert_untouched(upstream)


@pytest.mark.parametrize("with_length", [False, True], ids=["h2-no-length", "h2-content-length"])
def test_oversized_http2(small, upstream, with_length):
    body = sized_event(2000, {"Advertising": True})
    headers = {**JSON, "content-length": str(len(body))} if with_length else JSON
    resp = clients.http2(small.port, "POST", "/ads", headers=headers, frames=split(body, 1000))
    assert_outcome(resp, upstream, TOO_LARGE, body)


def test_ungated_route_has_no_body_limit(small, upstream):
    body = b"x" * 5000
    resp = clients.http1(small.port, "POST", "/open", body, {"content-type": "text/plain"})
    assert_allowed(resp, upstream, body, path="/open")


@pytest.mark.parametrize("size, expect", [
    pytest.param(1048576, ALLOW, id="1MiB-allowed"),
    pytest.param(1048577, TOO_LARGE, id="1MiB-plus-1"),
])
def test_default_body_limit(gate, upstream, size, expect):
    """The default max_body_bytes (1 MiB) is the filter's own limit, below the listener's 4 MiB
    buffer limit: the 413 carries the filter's reason header, not Envoy's."""
    body = sized_event(size, {"Advertising": True})
    resp = clients.post_early_reply(gate.port, "/ads", body, JSON)
    assert_outcome(resp, upstream, expect, body, path="/ads", sent_headers=JSON)


def test_default_body_limit_chunked(gate, upstream):
    body = sized_event(1200000, {"Advertising": True})
    resp = clients.post_early_reply(gate.port, "/ads", body, JSON, chunks=split(body, 400000, 800000))
    assert_outcome(resp, upstream, TOO_LARGE, body)


# ---- concurrency --------------------------------------------------------------------------------


def _concurrent_cases():
    """20 requests: (id, protocol, path, body, expected)."""
    kinds = [
        ("http1", "/ads", lambda i: event({"Advertising": True}, messageId=f"m{i}"), ALLOW),
        ("http1", "/ads", lambda i: event({"Advertising": False}, messageId=f"m{i}"),
         denied("Advertising")),
        ("http2", "/multi-any", lambda i: event({"Analytics": True}, messageId=f"m{i}"), ALLOW),
        ("http2", "/multi", lambda i: event({"Analytics": True}, messageId=f"m{i}"),
         denied("Advertising")),
        ("chunked", "/v1/track", lambda i: event({"Analytics": True}, messageId=f"m{i}"), ALLOW),
        ("chunked", "/v1/track", lambda i: event(messageId=f"m{i}"), MISSING),
        ("http1", "/ads", lambda i: b'{"messageId":"m%d",' % i, INVALID),
        ("http1", "/open", lambda i: event({"Advertising": False}, messageId=f"m{i}"), ALLOW),
        ("http2", "/ads", lambda i: event(name="Consent Change", messageId=f"m{i}"), ALLOW),
        ("http1", "/multi", lambda i: event({"Advertising": True, "Analytics": True},
                                            messageId=f"m{i}"), ALLOW),
    ]
    cases = []
    for i in range(20):
        protocol, path, make, expect = kinds[i % len(kinds)]
        body = make(i)
        cases.append((f"m{i}", protocol, path, body if isinstance(body, bytes) else encode(body), expect))
    return cases


def test_concurrent_mixed_requests(envoys, upstream):
    envoy = envoys.get("concurrent", plugin_config="default", concurrency=2)
    cases = _concurrent_cases()
    start = threading.Barrier(len(cases))

    def send(case):
        _, protocol, path, body, _ = case
        start.wait()
        if protocol == "http1":
            return clients.http1(envoy.port, "POST", path, body, JSON)
        if protocol == "chunked":
            return clients.http1(envoy.port, "POST", path, headers=JSON, chunks=split(body, 30, 90),
                                 chunk_delay=0.01)
        return clients.http2(envoy.port, "POST", path, headers=JSON, frames=split(body, 40))

    with ThreadPoolExecutor(len(cases)) as pool:
        responses = list(pool.map(send, cases))

    failures = []
    for (case_id, protocol, path, body, expect), resp in zip(cases, responses):
        got = (resp.status, resp.header("x-consent-gate-reason"))
        want = (expect.status, expect.reason)
        if got != want:
            failures.append(f"{case_id} {protocol} {path}: expected {expect!r}, got {resp!r}")
        elif expect.categories is not None and resp.json().get("categories") != list(expect.categories):
            failures.append(f"{case_id}: expected categories {expect.categories}, got {resp.body!r}")
    assert not failures, "\n".join(failures)

    # Every body is unique (messageId): the upstream got exactly the allowed ones, each once, intact.
    allowed = sorted(body for _, _, _, body, expect in cases if expect.status == 200)
    upstream.wait_for_requests(len(allowed))
    time.sleep(SETTLE_SECONDS)  # a denied request that leaked would show up by now
    assert sorted(req.body for req in upstream.requests) == allowed


# ---- several requests on one connection ---------------------------------------------------------


def test_interleaved_http2_streams_on_one_connection(gate, upstream):
    """Allowed and refused events as concurrent streams on one connection, their DATA frames
    interleaved: each stream is decided on its own body."""
    cases = [
        ("/ads", encode(event({"Advertising": True}, messageId="a")), ALLOW),
        ("/ads", encode(event({"Advertising": False}, messageId="b")), denied("Advertising")),
        ("/multi-any", encode(event({"Analytics": True}, messageId="c")), ALLOW),
        ("/v1/track", encode(event(messageId="d")), MISSING),
        ("/ads", b'{"messageId":"e", "context":', INVALID),
        ("/open", b"opaque payload f", ALLOW),
    ]
    requests = [clients.H2Request("POST", path, JSON, split(body, 10, 40),
                                  trailers={"x-t": "1"} if i % 2 else None)
                for i, (path, body, _) in enumerate(cases)]
    responses = clients.http2_interleaved(gate.port, requests)
    for (path, body, expect), resp in zip(cases, responses):
        assert (resp.status, resp.header("x-consent-gate-reason")) == (expect.status, expect.reason), (
            f"{path} {body[:40]!r}: expected {expect!r}, got {resp!r}")
    allowed = sorted(body for _, body, expect in cases if expect.status == 200)
    upstream.wait_for_requests(len(allowed))
    time.sleep(SETTLE_SECONDS)
    assert sorted(req.body for req in upstream.requests) == allowed


def test_keep_alive_http1_connection(gate, upstream):
    """Refusals and allowed events one after another on one kept-alive HTTP/1.1 connection.
    (No 400 here: Envoy closes an HTTP/1 connection after any local 400 reply.)"""
    cases = [
        (encode(event({"Advertising": True}, messageId="a")), ALLOW),
        (encode(event({"Advertising": False}, messageId="b")), denied("Advertising")),
        (encode(event(messageId="c")), MISSING),
        (encode(event({"Advertising": True}, messageId="d")), ALLOW),
        (encode(event({}, messageId="e")), denied("Advertising")),
        (encode(event({"Advertising": True}, messageId="f")), ALLOW),
    ]
    with RawHttp1(gate.port) as conn:
        for body, expect in cases:
            conn.send(request_head("POST", "/ads", {**JSON, "content-length": str(len(body))}) + body)
            resp = conn.read_response()
            assert (resp.status, resp.header("x-consent-gate-reason")) == (expect.status, expect.reason), (
                f"{body[:40]!r}: expected {expect!r}, got {resp!r}")
            assert resp.header("connection") != "close", "Envoy closed the kept-alive connection"
    allowed = [body for body, expect in cases if expect.status == 200]
    upstream.wait_for_requests(len(allowed))
    time.sleep(SETTLE_SECONDS)
    assert [req.body for req in upstream.requests] == allowed


@pytest.mark.parametrize("body, expect", [
    pytest.param(sized_event(2000, {"Advertising": True}), ALLOW, id="allowed"),
    pytest.param(sized_event(2000, {"Advertising": False}), denied("Advertising"), id="refused"),
])
def test_expect_100_continue(gate, upstream, body, expect):
    """curl sends `Expect: 100-continue` for bodies over 1 KiB and waits for `100 Continue`
    before sending the body: the paused request must still get it."""
    with RawHttp1(gate.port, timeout=3) as conn:
        conn.send(request_head("POST", "/ads", {**JSON, "content-length": str(len(body)),
                                                "expect": "100-continue"}))
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += conn.sock.recv(1)  # byte by byte: leave the final response unread
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        conn.send(body)
        resp = conn.read_response()
    assert_outcome(resp, upstream, expect, body, path="/ads", sent_headers=JSON)


def _connection_kept(conn: RawHttp1) -> bool:
    """Whether the server kept the connection open after its response."""
    conn.sock.settimeout(0.5)
    try:
        return conn.sock.recv(1, socket.MSG_PEEK) != b""
    except (socket.timeout, BlockingIOError):
        return True
    except OSError:
        return False


@pytest.mark.parametrize("path, body, headers, status, kept", [
    pytest.param("/ads", encode(event({"Advertising": False})), JSON, 403, True, id="403-consent"),
    pytest.param("/ads", encode(event()), JSON, 403, True, id="403-missing"),
    pytest.param("/ads", b"not json", JSON, 400, False, id="400-invalid"),
    pytest.param("/ads", encode(event({"Advertising": True})), {**JSON, "content-encoding": "br"}, 415,
                 False, id="415-encoding"),
    pytest.param("/ads", sized_event(1100, {"Advertising": True}), JSON, 413, False, id="413-too-large"),
    pytest.param("/misconfigured/typo", encode(event({"Advertising": True})), JSON, 500, False,
                 id="500-route-config"),
])
def test_which_local_replies_close_an_http1_connection(envoys, upstream, path, body, headers, status, kept):
    """Envoy keeps an HTTP/1.1 connection after a consent refusal, and closes it after a local
    400 (it treats the status as a protocol error) and after a reply sent before the body was read
    (413 by content-length, 415, 500 for the route), whose unread body it cannot skip. The README
    says so."""
    envoy = envoys.get("small_body")
    with RawHttp1(envoy.port) as conn:
        conn.send(request_head("POST", path, {**headers, "content-length": str(len(body))}) + body)
        resp = conn.read_response()
        assert resp.status == status, resp
        closing = resp.header("connection") == "close"
        assert (not closing and _connection_kept(conn)) == kept, resp
    assert upstream.requests == []
