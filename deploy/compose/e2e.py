"""One-shot end-to-end check of consent-gate through Envoy (the compose `e2e` service).

Sends allowed, denied and batch events (plain and gzip) through Envoy, checks each answer, and
asks the destination what it received: consented events must arrive byte for byte, denied events
and denied batch items must never arrive. Exits 0 when every check passes, 1 otherwise (so that
`docker compose up --exit-code-from e2e` proves the filter). Standard library only.

Environment:
    ENVOY_URL          the filter's listener       (compose: http://envoy:10000)
    ENVOY_ADMIN_URL    Envoy's admin interface     (compose: http://envoy:9901)
    DESTINATION_URL    the recording destination   (compose: http://destination:8080)
    WAIT_SECONDS       how long to wait for both to be ready (default 60)
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import sys
import time
import uuid
from urllib.parse import urlsplit

ENVOY_URL = os.environ.get("ENVOY_URL", "http://envoy:10000")
ENVOY_ADMIN_URL = os.environ.get("ENVOY_ADMIN_URL", "http://envoy:9901")
DESTINATION_URL = os.environ.get("DESTINATION_URL", "http://destination:8080")
WAIT_SECONDS = float(os.environ.get("WAIT_SECONDS", "60"))


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def request(base: str, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    """One request on a fresh connection: (status, headers (lower-case), body)."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_ready() -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    pending = {"envoy": (ENVOY_ADMIN_URL, "/ready"), "destination": (DESTINATION_URL, "/healthz")}
    while pending:
        for name, (base, path) in list(pending.items()):
            try:
                status, _, _ = request(base, "GET", path)
                if status == 200:
                    del pending[name]
            except OSError:
                pass
        if pending and time.monotonic() > deadline:
            raise CheckFailed(f"not ready after {WAIT_SECONDS:.0f}s: {', '.join(pending)}")
        if pending:
            time.sleep(0.5)


def reset_destination() -> None:
    status, _, _ = request(DESTINATION_URL, "POST", "/_reset")
    expect(status == 200, f"destination /_reset answered {status}")


def received() -> list[dict]:
    status, _, body = request(DESTINATION_URL, "GET", "/_received")
    expect(status == 200, f"destination /_received answered {status}")
    records = json.loads(body)
    for record in records:
        record["body"] = base64.b64decode(record.pop("body_b64"))
        record["headers"] = {k: v for k, v in record["headers"]}
    return records


def send(path: str, body: bytes, extra_headers: dict | None = None):
    headers = {"content-type": "application/json"}
    headers.update(extra_headers or {})
    return request(ENVOY_URL, "POST", path, body, headers)


def event(event_type: str = "track", consent: dict | None = None, **fields) -> dict:
    message = {"type": event_type, "messageId": f"e2e-{uuid.uuid4()}", **fields}
    if event_type == "track":
        message.setdefault("event", "Order Completed")
    if consent is not None:
        message["context"] = {"consent": {"categoryPreferences": consent}}
    return message


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


# --- the checks -----------------------------------------------------------------------------------


def check_allowed_event() -> None:
    message = event(consent={"Advertising": True})
    body = encode(message)
    status, _, _ = send("/ads/v1/track", body)
    expect(status == 200, f"a consented event got {status}, not 200")
    got = received()
    expect(len(got) == 1, f"the destination received {len(got)} requests, not 1")
    expect(got[0]["path"] == "/ads/v1/track", f"the destination received path {got[0]['path']}")
    expect(got[0]["body"] == body, "the destination did not receive the client's bytes unchanged")


def check_denied_event() -> None:
    message = event(consent={"Advertising": False, "Analytics": True})
    status, headers, reply = send("/ads/v1/track", encode(message))
    got = received()
    expect(not got, f"the destination received a denied event (answered {status})")
    expect(status == 403, f"an event without consent to Advertising got {status}, not 403")
    reason = headers.get("x-consent-gate-reason")
    expect(reason == "FILTERED_BY_END_USER_CONSENT", f"x-consent-gate-reason was {reason!r}")
    expect(message["messageId"].encode() not in reply, "the local reply echoed the event")


def check_missing_consent() -> None:
    message = event()  # no context.consent at all
    status, headers, _ = send("/ads/v1/track", encode(message))
    got = received()
    expect(not got, f"the destination received an event without consent (answered {status})")
    expect(status == 403, f"an event without consent got {status}, not 403")
    reason = headers.get("x-consent-gate-reason")
    expect(reason == "MISSING_CONSENT", f"x-consent-gate-reason was {reason!r}")


def batch_body(tag: str) -> tuple[bytes, str, list[str]]:
    kept = event(consent={"Analytics": True, "Functional": True}, event="A")
    partial = event(consent={"Analytics": True}, event="B")  # Functional missing
    bare = event(event="C")  # no consent at all
    for item, suffix in ((kept, "kept"), (partial, "partial"), (bare, "bare")):
        item["messageId"] = f"e2e-{tag}-{suffix}-{uuid.uuid4()}"
    body = encode({"batch": [kept, partial, bare], "sentAt": "2026-11-29T12:00:00Z"})
    return body, kept["messageId"], [partial["messageId"], bare["messageId"]]


def check_batch(compressed: bool) -> None:
    body, kept_id, dropped_ids = batch_body("gzip" if compressed else "plain")
    extra = {}
    if compressed:
        body = gzip.compress(body, mtime=0)
        extra["content-encoding"] = "gzip"
    status, headers, _ = send("/analytics/v1/batch", body, extra)
    kind = "gzip batch" if compressed else "batch"
    got = received()
    expect(len(got) == 1, f"the destination received {len(got)} requests for the {kind}, not 1")
    forwarded = got[0]["body"]
    if compressed:
        encoding = got[0]["headers"].get("content-encoding")
        expect(encoding == "gzip", f"the {kind} arrived with content-encoding {encoding!r}")
        forwarded = gzip.decompress(forwarded)
    for dropped_id in dropped_ids:
        expect(dropped_id.encode() not in forwarded, f"a denied {kind} item reached the destination")
    items = json.loads(forwarded)["batch"]
    ids = [item.get("messageId") for item in items]
    expect(ids == [kept_id], f"the destination received the {kind} items {ids}, not only {kept_id}")
    expect(status == 200, f"a {kind} with one consented item got {status}, not 200")
    dropped = headers.get("x-consent-gate-dropped")
    expect(dropped == "2", f"x-consent-gate-dropped was {dropped!r} for the {kind}, not '2'")


def check_ungated_route() -> None:
    body = encode(event(consent={"Advertising": False}))
    status, _, _ = send("/open/v1/track", body)
    expect(status == 200, f"a request on the ungated /open/ route got {status}, not 200")
    got = received()
    expect(len(got) == 1 and got[0]["body"] == body, "the /open/ request did not arrive unchanged")


def check_counters() -> None:
    status, _, body = request(ENVOY_ADMIN_URL, "GET", "/stats?filter=consent_gate")
    expect(status == 200, f"admin /stats answered {status}")
    stats = {}
    for line in body.decode().splitlines():
        name, _, value = line.partition(": ")
        stats[name.strip()] = value.strip()
    denied = [v for k, v in stats.items() if k.endswith("consent_gate.requests_denied")]
    expect(denied and int(denied[0]) >= 2, f"consent_gate.requests_denied is {denied or 'missing'}")


CHECKS = [
    ("a consented event reaches the destination unchanged", check_allowed_event),
    ("a denied event is answered 403 and never reaches the destination", check_denied_event),
    ("an event without consent is answered 403 and never reaches the destination", check_missing_consent),
    ("a batch reaches the destination with only its consented item", lambda: check_batch(False)),
    ("a gzip batch reaches the destination with only its consented item", lambda: check_batch(True)),
    ("a request on an ungated route passes unchanged", check_ungated_route),
    ("the filter's counters count the denials", check_counters),
]


def main() -> int:
    print(f"e2e: envoy {ENVOY_URL} (admin {ENVOY_ADMIN_URL}), destination {DESTINATION_URL}", flush=True)
    try:
        wait_ready()
    except CheckFailed as err:
        print(f"e2e: FAIL: {err}", flush=True)
        return 1
    failures = 0
    for name, check in CHECKS:
        try:
            reset_destination()
            check()
        except (CheckFailed, OSError, ValueError, KeyError) as err:
            failures += 1
            print(f"e2e: FAIL: {name}: {err}", flush=True)
        else:
            print(f"e2e: ok: {name}", flush=True)
    if failures:
        print(f"e2e: {failures} of {len(CHECKS)} checks failed", flush=True)
        return 1
    print(f"e2e: all {len(CHECKS)} checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
