"""The harness proves itself: through an Envoy WITHOUT the filter (same config otherwise), every
request reaches the recording upstream as sent, and the "nothing reached the upstream" check does
catch a request that got through. These tests need no wasm module."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import clients
from harness.checks import assert_allowed, assert_untouched, encode, event
from harness.clients import RawHttp1, request_head
from harness.envoy import MODULE, render_config

BODY = encode(event({"Advertising": True}))
HEADERS = {"content-type": "application/json", "sec-gpc": "1", "x-custom-header": "kept as is"}


def test_passthrough_http1_content_length(passthrough, upstream):
    resp = clients.http1(passthrough.port, "POST", "/ads/v1/track", BODY, HEADERS)
    req = assert_allowed(resp, upstream, BODY, path="/ads/v1/track", sent_headers=HEADERS)
    assert req.framing == "content-length"
    assert req.header("content-length") == str(len(BODY))


def test_passthrough_http1_chunked(passthrough, upstream):
    chunks = [BODY[:10], BODY[10:50], BODY[50:]]
    resp = clients.http1(passthrough.port, "POST", "/v1/track", headers=HEADERS, chunks=chunks,
                         chunk_delay=0.02)
    req = assert_allowed(resp, upstream, BODY, path="/v1/track", sent_headers=HEADERS)
    assert req.framing == "chunked"


def test_passthrough_h2_with_trailers(passthrough, upstream):
    frames = [BODY[:30], BODY[30:]]
    resp = clients.http2(passthrough.port, "POST", "/v1/track", headers=HEADERS, frames=frames,
                      trailers={"x-checksum": "abc"})
    assert_allowed(resp, upstream, BODY, path="/v1/track", sent_headers=HEADERS)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_passthrough_without_body(passthrough, upstream, method):
    resp = clients.http1(passthrough.port, method, "/ads/pixel?x=1", headers={"sec-gpc": "1"})
    req = assert_allowed(resp, upstream, b"", path="/ads/pixel?x=1", method=method,
                         sent_headers={"sec-gpc": "1"})
    assert req.framing == "none"


def test_untouched_check_catches_a_forwarded_request(passthrough, upstream):
    clients.http1(passthrough.port, "POST", "/ads", BODY, HEADERS)
    with pytest.raises(AssertionError):
        assert_untouched(upstream)


def test_byte_counter_sees_headers_before_the_body_is_complete(passthrough, upstream):
    """Without a filter, Envoy forwards the headers at once: the upstream's per-connection byte
    counter sees them while the client still holds the rest of the body back."""
    with RawHttp1(passthrough.port) as conn:
        conn.send(request_head("POST", "/ads", {"transfer-encoding": "chunked"}))
        conn.send_chunk(BODY[:20])
        assert upstream.wait_for_bytes(1, timeout=3) > 0
        assert upstream.requests == []
        conn.send_chunk(BODY[20:])
        conn.send(b"0\r\n\r\n")
        resp = conn.read_response()
    assert_allowed(resp, upstream, BODY, path="/ads")


def test_upstream_parses_chunked_framing_and_trailers(upstream):
    """The recording upstream itself, driven directly."""
    with RawHttp1(upstream.port) as conn:
        conn.send(b"POST /direct HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                  b"3\r\nabc\r\n5;ext=1\r\nde\r\nf\r\n0\r\nX-Trailer: t\r\n\r\n")
        resp = conn.read_response()
    assert resp.status == 200
    (req,) = upstream.requests
    assert (req.method, req.path, req.framing) == ("POST", "/direct", "chunked")
    assert req.body == b"abcde\r\nf"
    assert req.chunk_sizes == [3, 5]
    assert req.header_lines == ["Host: x", "Transfer-Encoding: chunked", "X-A: 1"]
    assert req.trailer_lines == ["X-Trailer: t"]


def test_rendered_config_swaps_ports_and_plugin_config(upstream):
    config = render_config(upstream_port=upstream.port, plugin_config={"deny_status": 451})
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["port_value"] == 0
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    typed = hcm["http_filters"][0]["typed_config"]
    if MODULE == "native":
        assert typed["@type"].endswith("DynamicModuleFilter")
        assert typed["filter_config"]["value"] == '{"deny_status": 451}'
        assert typed["dynamic_module_config"] == {"name": "consent_gate", "do_not_close": True}
        return
    plugin = typed["config"]
    assert plugin["configuration"]["value"] == '{"deny_status": 451}'
    assert plugin["allow_on_headers_stop_iteration"] is True
    assert plugin["failure_policy"] == "FAIL_RELOAD"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_passthrough_large_body(passthrough, upstream, chunked):
    body = b"y" * 1200000
    chunks = [body[:500000], body[500000:]] if chunked else None
    resp = clients.post_early_reply(passthrough.port, "/ads", body, {}, chunks=chunks)
    req = assert_allowed(resp, upstream, body, path="/ads")
    assert req.framing == ("chunked" if chunked else "content-length")


def test_passthrough_concurrent(passthrough, upstream):
    bodies = [b'{"n":%d}' % i for i in range(20)]
    with ThreadPoolExecutor(20) as pool:
        resps = list(pool.map(lambda b: clients.http2(passthrough.port, "POST", "/x", b), bodies))
    assert all(r.status == 200 for r in resps)
    assert sorted(r.body for r in upstream.wait_for_requests(20)) == sorted(bodies)
