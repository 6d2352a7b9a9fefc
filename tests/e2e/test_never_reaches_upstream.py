"""What is refused leaves no trace: not a byte on any upstream connection, and no personal data
from the refused body in Envoy's log or access log."""

import time
import uuid

from harness import clients
from harness.checks import assert_local_reply, encode, event, sized_event
from harness.clients import RawHttp1, request_head

JSON = {"content-type": "application/json"}


def test_no_refused_request_put_a_byte_on_any_upstream_connection(gate, envoys, upstream):
    """Every kind of refusal, back to back, then one look at the upstream: every connection it has
    (kept-alive ones from earlier tests included) received zero bytes, and no request arrived."""
    small = envoys.get("small_body")
    refused = encode(event({"Advertising": False}))
    sent = [
        clients.http1(gate.port, "POST", "/ads", refused, JSON),
        clients.http1(gate.port, "POST", "/multi", encode(event({"Advertising": True})), JSON),
        clients.http1(gate.port, "POST", "/ads", encode(event()), JSON),
        clients.http1(gate.port, "POST", "/ads", b"[]", JSON),
        clients.http1(gate.port, "GET", "/ads"),
        clients.http1(gate.port, "POST", "/ads"),
        clients.http1(gate.port, "POST", "/ads", headers=JSON, chunks=[refused[:50], refused[50:]],
                      chunk_delay=0.02),
        clients.http2(gate.port, "POST", "/ads", refused, JSON),
        clients.http2(gate.port, "POST", "/ads", headers=JSON, frames=[refused[:50], refused[50:]],
                      trailers={"x-trailer": "1"}),
        clients.http2(gate.port, "GET", "/v1/track"),
        clients.post_early_reply(small.port, "/ads", sized_event(4096, {"Advertising": True}), JSON),
        clients.post_early_reply(small.port, "/ads", b"", JSON,
                                 chunks=[b"x" * 800, b"x" * 800, b"x" * 800]),
    ]
    with RawHttp1(small.port) as conn:
        conn.send(request_head("POST", "/ads", {**JSON, "content-length": "100000"}))
        sent.append(conn.read_response())

    assert all(400 <= resp.status < 500 and resp.header("x-consent-gate-reason") for resp in sent), sent
    time.sleep(0.5)
    assert upstream.requests == []
    assert upstream.bytes_received() == 0, upstream.connections


def test_personal_data_in_refused_events_stays_out_of_logs(gate, upstream):
    marker = uuid.uuid4().hex
    user_id, email = f"user-{marker}", f"{marker}@example.com"
    personal = {"userId": user_id, "anonymousId": f"anon-{marker}", "traits": {"email": email}}
    cases = [
        ("/ads", encode(event({"Advertising": False}, **personal)), 403, "FILTERED_BY_END_USER_CONSENT"),
        ("/ads", encode(event(**personal)), 403, "MISSING_CONSENT"),
        ("/ads", encode(event(None, **personal)), 400, "INVALID_EVENT"),
        ("/ads", b'{"userId":"%s","traits":{"email":"%s"}' % (user_id.encode(), email.encode()),
         400, "INVALID_EVENT"),
        ("/ads", b'{"userId":"%s","userId":"%s","context":{"consent":{"categoryPreferences":'
         b'{"Advertising":true,"Advertising":true}}}}' % (user_id.encode(), email.encode()),
         400, "INVALID_EVENT"),
    ]
    for path, body, status, reason in cases:
        assert_local_reply(clients.http1(gate.port, "POST", path, body, JSON), status, reason)
    trailer_body = encode(event({"Advertising": False}, **personal))
    resp = clients.http2(gate.port, "POST", "/ads", headers=JSON, frames=[trailer_body],
                         trailers={"x-trailer": "1"})
    assert_local_reply(resp, 403, "FILTERED_BY_END_USER_CONSENT")

    time.sleep(0.5)  # Envoy flushes its files every 100 ms in this suite
    access_log = gate.access_log_text()
    assert "/ads" in access_log, "the access log was not written: this check would prove nothing"
    assert marker not in gate.stderr_text(), "personal data from a refused event in Envoy's log"
    assert marker not in access_log, "personal data from a refused event in the access log"
    assert upstream.requests == []
