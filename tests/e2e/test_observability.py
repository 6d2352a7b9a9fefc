"""Observability and safe rollout (issue 4): counters, decision records, log privacy, dry run.

Counters are read from the admin port (`/stats`, `/stats/prometheus`; harness/stats.py), decision
records from the access log file (harness/accesslog.py; envoy/e2e.yaml prints the decision, the
record, %RESPONSE_CODE_DETAILS% and each request's `x-e2e-id`). Every test that asserts exact
counts has an Envoy of its own, started for it, so its counters start at 0.

Routes (envoy/e2e.yaml): /ads → Advertising (route name `ads`); /multi → Advertising + Analytics
(match all, route name `multi`); / (e.g. /v1/track) → Analytics; /open → not gated.
"""

from __future__ import annotations

import gzip
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from harness import accesslog, clients, stats
from harness.envoy import LOG_COMPONENT, MODULE, filter_log_lines
from harness.checks import (ABSENT, UPSTREAM_REPLY, assert_allowed, assert_denied, assert_local_reply, encode, event,
                            sized_event)

JSON = {"content-type": "application/json"}

ALLOWED = event({"Advertising": True})
DENIED = event({"Advertising": False})
MISSING = event()
INVALID_JSON = b'{"type":"track","event":"Order Completed","context":{"consent":'


def batch(*items) -> bytes:
    return encode({"batch": list(items)})


# Five items: 2 consented, 2 refused, 1 without consent → 3 dropped, mostly FILTERED_BY_END_USER_CONSENT.
MIXED_BATCH = batch(
    event({"Advertising": True}, messageId="m1"),
    event({"Advertising": False}, messageId="m2"),
    event({"Advertising": True}, messageId="m3"),
    event(messageId="m4"),
    event({"Advertising": False}, messageId="m5"),
)
ALL_DENIED_BATCH = batch(*(event({"Advertising": False}, messageId=f"d{i}") for i in range(3)))


# ---- sending -------------------------------------------------------------------------------------


@dataclass
class Req:
    """One request. `how`: http1 (Content-Length), h2, chunked (HTTP/1.1, one chunk per element of
    `chunks`), early (HTTP/1.1 that tolerates a reply before the body is sent)."""

    path: str
    body: bytes = b""
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON))
    how: str = "http1"
    chunks: list[bytes] | None = None

    def send(self, envoy, request_id: str | None = None) -> clients.Response:
        headers = accesslog.tag(self.headers, request_id) if request_id else dict(self.headers)
        if self.how == "http1":
            return clients.http1(envoy.port, self.method, self.path, self.body or None, headers)
        if self.how == "h2":
            return clients.http2(envoy.port, self.method, self.path, self.body, headers)
        if self.how == "chunked":
            return clients.http1(envoy.port, self.method, self.path, headers=headers, chunks=self.chunks,
                                 chunk_delay=0.02)
        if self.how == "early":
            return clients.post_early_reply(envoy.port, self.path, self.body, headers, chunks=self.chunks)
        raise ValueError(self.how)

    @property
    def sent_body(self) -> bytes:
        return b"".join(self.chunks) if self.chunks is not None else self.body


def assert_reply(resp: clients.Response, status: int, reason: str | None) -> None:
    """`reason` None: the upstream's reply (forwarded); else the filter's local reply."""
    if reason is None:
        assert resp.status == status == 200 and resp.body == UPSTREAM_REPLY, resp
        assert resp.header("x-consent-gate-reason") is None, resp
    else:
        assert_local_reply(resp, status, reason)


# ---- 1. exact counters ---------------------------------------------------------------------------

C = stats.PREFIX


def delta(outcome: str | None, *, reasons=None, categories=None, seen: int = 0, dropped: int = 0) -> dict:
    """What one request adds to the counters. `outcome`: allow / filter / deny, None when ungated."""
    d: dict[str, int] = {}
    if outcome is None:
        d[C + "requests_ungated"] = 1
    else:
        d[C + "requests_judged"] = 1
        d[C + {"allow": "requests_allowed", "filter": "requests_filtered", "deny": "requests_denied"}[outcome]] = 1
    if seen:
        d[C + "batch_items_seen"] = seen
    if dropped:
        d[C + "batch_items_dropped"] = dropped
    for reason, n in (reasons or {}).items():
        d[f"{C}events_dropped.{reason}"] = n
    for category, n in (categories or {}).items():
        d[stats.CATEGORY_PREFIX + category] = n
    return d


FILTERED, MISSING_C, INVALID = "FILTERED_BY_END_USER_CONSENT", "MISSING_CONSENT", "INVALID_EVENT"
TOO_LARGE, ENCODING = "BODY_TOO_LARGE", "UNSUPPORTED_CONTENT_ENCODING"

# (label, request, status, local-reply reason or None, counter delta). Plugin config "metrics":
# the defaults with max_body_bytes 4096.
METRIC_MIX = [
    ("allowed", Req("/ads", encode(ALLOWED)), 200, None, delta("allow")),
    ("allowed-h2", Req("/v1/track", encode(event({"Analytics": True})), how="h2"), 200, None, delta("allow")),
    ("allow-listed-event", Req("/ads", encode(event(name="Segment Consent Preference Updated"))),
     200, None, delta("allow")),
    ("consent-denied", Req("/ads", encode(DENIED)), 403, FILTERED,
     delta("deny", reasons={FILTERED: 1}, categories={"Advertising": 1})),
    ("consent-denied-one-of-two", Req("/multi", encode(event({"Advertising": True, "Analytics": False}))),
     403, FILTERED, delta("deny", reasons={FILTERED: 1}, categories={"Analytics": 1})),
    ("consent-denied-both", Req("/multi", encode(event({}))), 403, FILTERED,
     delta("deny", reasons={FILTERED: 1}, categories={"Advertising": 1, "Analytics": 1})),
    # A missing consent is a denial of every required category (the record says denied=Advertising).
    ("missing-consent", Req("/ads", encode(MISSING)), 403, MISSING_C,
     delta("deny", reasons={MISSING_C: 1}, categories={"Advertising": 1})),
    ("no-body", Req("/ads", method="GET", headers={}), 403, MISSING_C,
     delta("deny", reasons={MISSING_C: 1}, categories={"Advertising": 1})),
    ("invalid-json", Req("/ads", INVALID_JSON), 400, INVALID, delta("deny", reasons={INVALID: 1})),
    ("oversized-content-length", Req("/ads", sized_event(5000, {"Advertising": True}), how="early"),
     413, TOO_LARGE, delta("deny", reasons={TOO_LARGE: 1})),
    ("oversized-chunked", Req("/ads", how="early", chunks=[b'{"pad":"' + b"x" * 2000, b"x" * 2000, b"x" * 2000]),
     413, TOO_LARGE, delta("deny", reasons={TOO_LARGE: 1})),
    ("brotli", Req("/ads", encode(ALLOWED), headers={**JSON, "content-encoding": "br"}), 415, ENCODING,
     delta("deny", reasons={ENCODING: 1})),
    ("mixed-batch", Req("/ads/v1/batch", MIXED_BATCH), 200, None,
     delta("filter", seen=5, dropped=3, reasons={FILTERED: 2, MISSING_C: 1}, categories={"Advertising": 3})),
    ("all-denied-batch", Req("/ads/v1/batch", ALL_DENIED_BATCH), 403, FILTERED,
     delta("deny", seen=3, dropped=3, reasons={FILTERED: 3}, categories={"Advertising": 3})),
    ("batch-with-invalid-item", Req("/ads/v1/batch", batch(ALLOWED, 42)), 200, None,
     delta("filter", seen=2, dropped=1, reasons={INVALID: 1})),
    ("allowed-batch", Req("/ads/v1/batch", batch(ALLOWED, ALLOWED)), 200, None, delta("allow", seen=2)),
    ("ungated-post", Req("/open", encode(DENIED)), 200, None, delta(None)),
    ("ungated-get", Req("/open", method="GET", headers={}), 200, None, delta(None)),
    ("ungated-invalid", Req("/open", b"not json", headers={"content-type": "text/plain"}), 200, None, delta(None)),
]

# The totals of METRIC_MIX, written out by hand (not summed from the table) so each checks the other.
METRIC_MIX_TOTALS = {
    C + "requests_judged": 16,  # every row but the three ungated ones
    C + "requests_allowed": 4,  # allowed, allowed-h2, allow-listed-event, allowed-batch
    C + "requests_filtered": 2,  # mixed-batch, batch-with-invalid-item
    C + "requests_denied": 10,
    C + "batch_items_seen": 12,  # 5 + 3 + 2 + 2
    C + "batch_items_dropped": 7,  # 3 + 3 + 1
    C + "requests_ungated": 3,  # the three ungated rows: counted, not judged
    C + "requests_exempt": 0,
    C + "requests_incomplete": 0,
    C + "events_dropped.FILTERED_BY_END_USER_CONSENT": 8,  # 3 singles + 2 (mixed) + 3 (all denied)
    C + "events_dropped.MISSING_CONSENT": 3,  # missing-consent, no-body, 1 in mixed
    C + "events_dropped.INVALID_EVENT": 2,  # invalid-json, the item 42
    C + "events_dropped.BODY_TOO_LARGE": 2,
    C + "events_dropped.UNSUPPORTED_CONTENT_ENCODING": 1,
    C + "events_dropped.FILTERED_BY_INTEGRATIONS": 0,
    C + "events_dropped.ROUTE_CONFIG_ERROR": 0,
    C + "events_dropped.INTERNAL_ERROR": 0,
    C + "events_denied_category.Advertising": 10,  # 1+1+1+1 singles, 3 (mixed), 3 (all denied)
    C + "events_denied_category.Analytics": 2,  # the two /multi denials
}


def test_counters_count_a_known_mix_exactly(envoys, upstream):
    envoy = envoys.get("metrics_mix", plugin_config="metrics")
    before = stats.counters(envoy)
    assert before == stats.zero_counters(), "not a fresh Envoy, or unexpected counters:\n" + stats.diff(
        stats.zero_counters(), before)

    for label, req, status, reason, d in METRIC_MIX:
        resp = req.send(envoy)
        assert_reply(resp, status, reason)
        if label == "mixed-batch":
            assert resp.header("x-consent-gate-dropped") == "3", resp
        after = stats.counters(envoy)
        expected = {n: before.get(n, 0) + d.get(n, 0) for n in set(before) | set(d)}
        # A counter may be created at 0 (none is, today); anything else must match exactly.
        got = {n: after.get(n, 0) for n in set(expected) | set(after)}
        expected = {n: expected.get(n, 0) for n in got}
        assert got == expected, f"after {label!r}:\n" + stats.diff(expected, got)
        before = after

    final = stats.counters(envoy)
    assert final == METRIC_MIX_TOTALS, "counter totals:\n" + stats.diff(METRIC_MIX_TOTALS, final)

    prom = stats.prometheus(envoy)
    expected_prom = {stats.prometheus_name(n): ("counter", v) for n, v in METRIC_MIX_TOTALS.items()}
    assert "consent_gate_requests_judged" in expected_prom  # the documented spelling
    assert prom == expected_prom, f"/stats/prometheus:\n{prom}\nexpected:\n{expected_prom}"


def _evil_prefs(evil: bool, base: dict, n_keys: int = 0, extra: tuple[str, ...] = ()) -> dict:
    prefs = dict(base)
    if evil:
        prefs["EvilCategory123"] = False
        prefs.update({f"EvilKey{i}_{uuid.uuid4().hex[:6]}": False for i in range(n_keys)})
        # A key that spells a required category otherwise says what it says (another answer
        # is a repeat, row 2: that would change the decision, not the metrics).
        letters = lambda t: "".join(c for c in t.lower() if c.isalnum())
        prefs.update({k: next((v for n, v in base.items() if letters(n) == letters(k)), False)
                      for k in extra})
    return prefs


# Keys that would make interesting metric names if anything turned event keys into names.
EVIL_LOOKALIKES = (
    "Evil.Advertising", "events_denied_category.EvilX", "Advertising ", "advertising", "ADVERTISING",
    "Évil", "../../Evil", 'Evil{le="1"}', "Evil Space", "Evil\u0000Nul", "evil:colon", "Analytics2",
)


def _attacker_requests(evil: bool) -> list[tuple[Req, int]]:
    """The same requests with (evil=True) and without attacker-chosen category keys; the keys
    change no decision."""
    def ev(base, n_keys=0, extra=(), **kw):
        return event(_evil_prefs(evil, base, n_keys, extra), **kw)

    many = 5000 if evil else 0
    top = {"category": "EvilTop", "categories": ["EvilTop2"]} if evil else {}
    return [
        (Req("/ads", encode(ev({"Advertising": False}, **top))), 403),
        (Req("/ads", encode(ev({"Advertising": False}, n_keys=many))), 403),
        (Req("/ads", encode(ev({}, n_keys=many))), 403),  # only unknown keys: nothing consented
        (Req("/ads", encode(ev({"Advertising": False}, extra=EVIL_LOOKALIKES))), 403),
        (Req("/ads", encode(ev({"Advertising": True}, n_keys=50, extra=EVIL_LOOKALIKES))), 200),
        (Req("/multi", encode(ev({"Advertising": True}, n_keys=50, extra=EVIL_LOOKALIKES))), 403),
        (Req("/multi/v1/batch", batch(
            ev({"Advertising": True, "Analytics": True}, n_keys=20, extra=EVIL_LOOKALIKES),
            ev({"Advertising": False}, n_keys=20, extra=EVIL_LOOKALIKES),
            ev({"Analytics": False}, n_keys=20),
        )), 200),
        (Req("/ads/v1/batch", encode({
            "batch": [event(), event(), event({"Advertising": True})],
            "context": {"consent": {"categoryPreferences": _evil_prefs(evil, {"Advertising": False}, 200)}},
        })), 200),
    ]


def test_event_keys_never_create_metrics(envoys, upstream):
    """Warm up with requests that name only the configured categories, then send the same
    requests carrying thousands of attacker-chosen category keys: not one new stat name appears
    (in /stats or /stats/prometheus), and every counter exactly doubles (the keys changed nothing)."""
    envoy = envoys.get("metrics_names", plugin_config="default")

    def send_all(evil):
        for req, status in _attacker_requests(evil):
            resp = req.send(envoy)
            assert resp.status == status, (evil, req.path, resp)

    send_all(evil=False)
    warm = stats.counters(envoy)
    assert set(warm) == set(stats.zero_counters(("Advertising", "Analytics"))), sorted(warm)
    names_before = stats.all_stat_names(envoy)
    prom_before = set(stats.prometheus(envoy))

    send_all(evil=True)
    after = stats.counters(envoy)
    names_after = stats.all_stat_names(envoy)
    prom_after = set(stats.prometheus(envoy))

    assert names_after == names_before, f"new stats: {sorted(names_after - names_before)}"
    assert prom_after == prom_before, f"new Prometheus metrics: {sorted(prom_after - prom_before)}"
    assert not [n for n in names_after if "evil" in n.lower()], sorted(names_after)
    doubled = {n: 2 * v for n, v in warm.items()}
    assert after == doubled, "the attacker's keys changed the counts:\n" + stats.diff(doubled, after)
    assert warm[C + "requests_judged"] == 8 and warm[C + "events_denied_category.Advertising"] > 0


# ---- 2. decision records in the access log ------------------------------------------------------


@dataclass(frozen=True)
class Record:
    status: int
    details: str
    decision: str
    record: dict[str, str] | None  # None: "-" (no record at all)
    route: str


def rec(reason, required, denied, events, dropped) -> dict[str, str]:
    return {"reason": reason, "required": required, "denied": denied, "events": str(events),
            "dropped": str(dropped)}


VIA_UPSTREAM = "via_upstream"

# (label, Envoy, request, expected access-log fields). Envoy "default" is the shared `gate`.
RECORD_CASES = [
    ("forwarded", "default", Req("/ads/v1/track", encode(ALLOWED)),
     Record(200, VIA_UPSTREAM, "allow", rec("-", "Advertising", "-", 1, 0), "ads")),
    ("forwarded-h2", "default", Req("/multi", encode(event({"Advertising": True, "Analytics": True})), how="h2"),
     Record(200, VIA_UPSTREAM, "allow", rec("-", "Advertising,Analytics", "-", 1, 0), "multi")),
    ("denied-consent", "default", Req("/multi", encode(event({"Advertising": True, "Analytics": False}))),
     Record(403, "consent_gate.FILTERED_BY_END_USER_CONSENT", "deny",
            rec(FILTERED, "Advertising,Analytics", "Analytics", 1, 1), "multi")),
    ("denied-consent-h2", "default", Req("/ads", encode(DENIED), how="h2"),
     Record(403, "consent_gate.FILTERED_BY_END_USER_CONSENT", "deny",
            rec(FILTERED, "Advertising", "Advertising", 1, 1), "ads")),
    ("denied-missing", "default", Req("/ads", encode(MISSING)),
     Record(403, "consent_gate.MISSING_CONSENT", "deny", rec(MISSING_C, "Advertising", "Advertising", 1, 1), "ads")),
    ("denied-invalid", "default", Req("/v1/track", INVALID_JSON),
     Record(400, "consent_gate.INVALID_EVENT", "deny", rec(INVALID, "Analytics", "-", 1, 1), "-")),
    ("denied-encoding", "default", Req("/ads", encode(ALLOWED), headers={**JSON, "content-encoding": "br"}),
     Record(415, "consent_gate.UNSUPPORTED_CONTENT_ENCODING", "deny", rec(ENCODING, "Advertising", "-", 1, 1), "ads")),
    ("denied-too-large", "small_body", Req("/ads", sized_event(2000, {"Advertising": True}), how="early"),
     Record(413, "consent_gate.BODY_TOO_LARGE", "deny", rec(TOO_LARGE, "Advertising", "-", 1, 1), "ads")),
    ("filtered-batch", "default", Req("/ads/v1/batch", MIXED_BATCH),
     Record(200, VIA_UPSTREAM, "filter", rec(FILTERED, "Advertising", "Advertising", 5, 3), "ads")),
    ("filtered-batch-invalid-item", "default", Req("/ads/v1/batch", batch(ALLOWED, 42, "x")),
     Record(200, VIA_UPSTREAM, "filter", rec(INVALID, "Advertising", "-", 3, 2), "ads")),
    ("denied-batch", "default", Req("/ads/v1/batch", ALL_DENIED_BATCH),
     Record(403, "consent_gate.FILTERED_BY_END_USER_CONSENT", "deny",
            rec(FILTERED, "Advertising", "Advertising", 3, 3), "ads")),
    ("denied-batch-missing", "default", Req("/ads/v1/batch", batch(MISSING, MISSING)),
     Record(403, "consent_gate.FILTERED_BY_END_USER_CONSENT", "deny",
            rec(FILTERED, "Advertising", "Advertising", 2, 2), "ads")),
    ("forwarded-batch", "default", Req("/ads/v1/batch", batch(ALLOWED, ALLOWED)),
     Record(200, VIA_UPSTREAM, "allow", rec("-", "Advertising", "-", 2, 0), "ads")),
    # Ungated requests are recorded too: a namespace typo shows as `ungated`, not as nothing.
    ("ungated", "default", Req("/open", encode(DENIED)),
     Record(200, VIA_UPSTREAM, "ungated", rec("-", "-", "-", 0, 0), "-")),
    ("ungated-get", "default", Req("/open", method="GET", headers={}),
     Record(200, VIA_UPSTREAM, "ungated", rec("-", "-", "-", 0, 0), "-")),
]


@pytest.fixture(scope="module")
def recorded(envoys):
    """Sends every RECORD_CASES request once; returns {label: (response, access-log entry)}."""
    sent = {}
    for label, envoy_name, req, _ in RECORD_CASES:
        envoy = envoys.get(envoy_name)
        request_id = accesslog.new_id(label)
        sent[label] = (envoy, request_id, req.send(envoy, request_id))
    return {label: (resp, accesslog.wait_for(envoy, rid)) for label, (envoy, rid, resp) in sent.items()}


@pytest.mark.parametrize("label, expected", [pytest.param(c[0], c[3], id=c[0]) for c in RECORD_CASES])
def test_decision_record_in_access_log(recorded, label, expected):
    resp, entry = recorded[label]
    assert resp.status == expected.status, resp
    assert entry.status == expected.status, entry.line
    assert entry.details == expected.details, entry.line
    assert entry.decision == expected.decision, entry.line
    assert entry.route == expected.route, entry.line
    if expected.record is None:
        assert entry.record == "-", entry.line
    else:
        assert entry.fields == expected.record, entry.line
        # The documented field order: reason required denied events dropped.
        assert list(entry.fields) == ["reason", "required", "denied", "events", "dropped"], entry.line
    # Only forwarded requests have an upstream host.
    assert (entry.upstream != "-") == (expected.details == VIA_UPSTREAM), entry.line
    # Batches that lost items say how many, rewritten or refused; nothing else carries the header.
    is_batch = "batch" in label
    dropped = expected.record["dropped"] if expected.record and is_batch and expected.record["dropped"] != "0" else None
    assert resp.header("x-consent-gate-dropped") == dropped, resp


# ---- 3. privacy: no personal data in Envoy's logs ------------------------------------------------


def test_logs_carry_decisions_but_no_personal_data(envoys, upstream):
    envoy = envoys.get("privacy", plugin_config="default")
    m = uuid.uuid4().hex
    user_id, anon_id, email = f"user-{m}", f"anon-{m}", f"jane.{m}@example.org"
    trait_name, trait_phone, ip = f"Jane Trait{m}", f"+1555{int(m[:8], 16) % 10**7:07d}", "203.0.113.219"
    secrets = [user_id, anon_id, email, trait_name, trait_phone, ip, m]

    def personal(prefs=ABSENT, **extra):
        ev = event(prefs, userId=user_id, anonymousId=anon_id,
                   traits={"email": email, "name": trait_name, "phone": trait_phone},
                   properties={"email": email, "revenue": 1}, **extra)
        if "context" in ev:
            ev["context"].update({"ip": ip, "traits": {"email": email}})
        return ev

    # Allowed batch item: different identifiers (it legitimately reaches the destination).
    kept = event({"Advertising": True}, userId="someone-else", messageId="k1")
    cases = [
        ("deny", Req("/ads", encode(personal({"Advertising": False, email: False, ip: True}))), 403, FILTERED),
        ("deny", Req("/ads", encode(personal())), 403, MISSING_C),
        ("deny", Req("/ads", encode(personal({"Advertising": False}))[:-20]), 400, INVALID),
        ("filter", Req("/ads/v1/batch", batch(kept, personal({"Advertising": False}), personal({}))), 200, None),
    ]
    ids = []
    for kind, req, status, reason in cases:
        upstream.reset()
        request_id = accesslog.new_id(f"privacy-{kind}")
        ids.append(request_id)
        resp = req.send(envoy, request_id)
        assert_reply(resp, status, reason)
        assert not any(s in resp.body.decode() for s in secrets), f"the reply echoes personal data: {resp!r}"
        if kind == "filter":
            (forwarded,) = upstream.wait_for_requests(1)
            assert not any(s.encode() in forwarded.body for s in secrets), forwarded.body
    entries = accesslog.wait_for_all(envoy, ids)

    # The one info line per denial: route, required categories, reason, counts.
    expected_lines = [
        "route=ads decision=deny reason=FILTERED_BY_END_USER_CONSENT required=Advertising "
        "denied=Advertising events=1 dropped=1",
        "route=ads decision=deny reason=MISSING_CONSENT required=Advertising denied=Advertising "
        "events=1 dropped=1",
        "route=ads decision=deny reason=INVALID_EVENT required=Advertising denied=- events=1 dropped=1",
        "route=ads decision=filter reason=FILTERED_BY_END_USER_CONSENT required=Advertising "
        "denied=Advertising events=3 dropped=2",
    ]
    deadline = time.monotonic() + 5
    while True:
        log = envoy.stderr_text()
        gate_lines = [line for line in filter_log_lines(log) if "route=" in line]
        if len(gate_lines) >= len(expected_lines) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(gate_lines) == len(expected_lines), "\n".join(gate_lines)
    for line, expected in zip(gate_lines, expected_lines):
        assert f"[info][{LOG_COMPONENT}]" in line and line.endswith(expected), f"{line!r}\nexpected …{expected!r}"
    assert [e.decision for e in entries.values()] == ["deny", "deny", "deny", "filter"]

    time.sleep(0.2)  # anything logged late would be in the files by now (100 ms flush)
    log, access = envoy.stderr_text(), envoy.access_log_text()
    assert f"[debug][{LOG_COMPONENT}]" in log or MODULE == "native", (
        "wasm is not logging at debug: this check would prove less")
    for secret in secrets:
        assert secret not in log, f"{secret!r} in Envoy's log"
        assert secret not in access, f"{secret!r} in the access log"


# ---- 4. dry run ----------------------------------------------------------------------------------

GZIP_MIXED_BATCH = gzip.compress(MIXED_BATCH, mtime=0)

# (label, request, decision, record). Plugin config "dry_run": dry_run true, max_body_bytes 4096.
DRY_RUN_CASES = [
    ("allowed", Req("/ads", encode(ALLOWED)), "allow", rec("-", "Advertising", "-", 1, 0)),
    ("consent-denied", Req("/ads", encode(DENIED)), "would_deny", rec(FILTERED, "Advertising", "Advertising", 1, 1)),
    ("missing-consent", Req("/ads", encode(MISSING)), "would_deny",
     rec(MISSING_C, "Advertising", "Advertising", 1, 1)),
    ("no-body", Req("/ads", method="GET", headers={}), "would_deny",
     rec(MISSING_C, "Advertising", "Advertising", 1, 1)),
    ("invalid", Req("/ads", INVALID_JSON), "would_deny", rec(INVALID, "Advertising", "-", 1, 1)),
    ("mixed-batch", Req("/ads/v1/batch", MIXED_BATCH), "would_filter",
     rec(FILTERED, "Advertising", "Advertising", 5, 3)),
    ("mixed-batch-gzip", Req("/ads/v1/batch", GZIP_MIXED_BATCH, headers={**JSON, "content-encoding": "gzip"}),
     "would_filter", rec(FILTERED, "Advertising", "Advertising", 5, 3)),
    ("all-denied-batch", Req("/ads/v1/batch", ALL_DENIED_BATCH), "would_deny",
     rec(FILTERED, "Advertising", "Advertising", 3, 3)),
    ("brotli", Req("/ads", b"\x1b\x00\x00not really brotli", headers={**JSON, "content-encoding": "br"}),
     "would_deny", rec(ENCODING, "Advertising", "-", 1, 1)),
    ("oversized-content-length", Req("/ads", sized_event(5000, {"Advertising": True})), "would_deny",
     rec(TOO_LARGE, "Advertising", "-", 1, 1)),
    ("oversized-chunked",
     Req("/ads", how="chunked", chunks=[b'{"pad":"' + b"x" * 2000, b"x" * 2000, b"x" * 2000 + b'"}']),
     "would_deny", rec(TOO_LARGE, "Advertising", "-", 1, 1)),
]

DRY_RUN_TOTALS = {
    C + "requests_judged": 11,
    C + "requests_allowed": 1,
    C + "requests_filtered": 2,  # the two mixed batches
    C + "requests_denied": 8,
    C + "batch_items_seen": 13,  # 5 + 5 + 3
    C + "batch_items_dropped": 9,  # 3 + 3 + 3
    C + "requests_ungated": 0,
    C + "requests_exempt": 0,
    C + "requests_incomplete": 0,
    C + "events_dropped.FILTERED_BY_END_USER_CONSENT": 8,  # 1 + 2 + 2 + 3
    C + "events_dropped.MISSING_CONSENT": 4,  # missing-consent, no-body, 1 in each mixed batch
    C + "events_dropped.INVALID_EVENT": 1,
    C + "events_dropped.BODY_TOO_LARGE": 2,
    C + "events_dropped.UNSUPPORTED_CONTENT_ENCODING": 1,
    C + "events_dropped.FILTERED_BY_INTEGRATIONS": 0,
    C + "events_dropped.ROUTE_CONFIG_ERROR": 0,
    C + "events_dropped.INTERNAL_ERROR": 0,
    C + "events_denied_category.Advertising": 12,  # 1 + 1 + 1 + 3 + 3 + 3
}


def test_dry_run_forwards_everything_untouched_and_records_what_would_have_happened(envoys, upstream):
    envoy = envoys.get("dry_run")
    assert stats.counters(envoy) == stats.zero_counters(), "not a fresh Envoy"
    ids = {}
    for label, req, _, _ in DRY_RUN_CASES:
        upstream.reset()
        ids[label] = accesslog.new_id(f"dry-{label}")
        resp = req.send(envoy, ids[label])
        try:
            assert_allowed(resp, upstream, req.sent_body, path=req.path, method=req.method,
                           sent_headers=req.headers)
            assert not [h for h, _ in resp.headers if h.startswith("x-consent-gate")], resp
        except AssertionError as err:
            raise AssertionError(f"dry run, {label}: {err}") from None

    entries = accesslog.wait_for_all(envoy, list(ids.values()))
    for label, _, decision, record in DRY_RUN_CASES:
        entry = entries[ids[label]]
        assert (entry.status, entry.details, entry.decision, entry.fields) == (
            200, VIA_UPSTREAM, decision, record), f"dry run, {label}: {entry.line}"

    final = stats.counters(envoy)
    assert final == DRY_RUN_TOTALS, "dry-run counters:\n" + stats.diff(DRY_RUN_TOTALS, final)
    would = [line for line in envoy.stderr_text().splitlines() if " decision=would_" in line]
    assert len(would) == 10 and all(f"[info][{LOG_COMPONENT}]" in line for line in would), "\n".join(would)


# ---- 5. counters are summed over worker VMs ------------------------------------------------------


def test_counters_are_summed_over_workers(envoys, upstream):
    """Envoy with --concurrency 2 (one wasm VM per worker): 60 requests on 60 connections, 8 at a
    time, spread over both workers; the counters are the exact totals."""
    envoy = envoys.get("metrics_concurrency2", plugin_config="default", concurrency=2)
    assert stats.counters(envoy) == stats.zero_counters()
    kinds = [
        (Req("/ads", encode(ALLOWED)), 200),
        (Req("/ads", encode(DENIED), how="h2"), 403),
        (Req("/ads/v1/batch", batch(ALLOWED, DENIED, MISSING)), 200),
    ]
    n = 60

    def send(i):
        req, status = kinds[i % len(kinds)]
        resp = req.send(envoy)
        assert resp.status == status, (i, resp)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(n)))

    per_worker = stats.worker_connections(envoy)
    assert sum(per_worker.values()) == n and len(per_worker) == 2, per_worker
    assert all(v > 0 for v in per_worker.values()), f"one worker took every connection: {per_worker}"

    third = n // 3
    expected = stats.zero_counters(("Advertising",))
    expected.update({
        C + "requests_judged": n,
        C + "requests_allowed": third,
        C + "requests_denied": third,
        C + "requests_filtered": third,
        C + "batch_items_seen": 3 * third,
        C + "batch_items_dropped": 2 * third,
        C + "events_dropped.FILTERED_BY_END_USER_CONSENT": 2 * third,  # the denials + 1 per batch
        C + "events_dropped.MISSING_CONSENT": third,
        C + "events_denied_category.Advertising": 3 * third,
    })
    got = stats.counters(envoy)
    assert got == expected, "summed over workers:\n" + stats.diff(expected, got)
    prom = stats.prometheus(envoy)
    assert prom == {stats.prometheus_name(k): ("counter", v) for k, v in expected.items()}, prom


def test_decision_record_off_leaves_no_record_and_counts_the_same(envoys, upstream):
    """`decision_record: false` saves the host call that stores the record: the access log then
    has none, and everything else is unchanged."""
    envoy = envoys.get("no_record")
    before = stats.counters(envoy)
    rid = accesslog.new_id("no-record")
    resp = clients.http1(envoy.port, "POST", "/ads", encode(event({"Advertising": False})),
                         accesslog.tag(JSON, rid))
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])
    entry = accesslog.wait_for(envoy, rid)
    assert entry.record == "-" and entry.details == "consent_gate.FILTERED_BY_END_USER_CONSENT", entry.line
    after = stats.counters(envoy)
    assert after["consent_gate.requests_denied"] == before["consent_gate.requests_denied"] + 1


# ---- 7. only the filter speaks under its header names --------------------------------------------


def test_an_upstreams_consent_gate_headers_never_reach_the_client(envoys, upstream):
    """A destination that answers with `x-consent-gate-reason` / `x-consent-gate-dropped` would
    tell the client (and an auditor reading responses) that an event it received was refused, or
    hide how many batch items were: the filter removes them from every upstream response, and
    sets `x-consent-gate-dropped` itself when it dropped items."""
    envoy = envoys.get("privacy", plugin_config="default")
    spoofed = [("x-consent-gate-reason", "FILTERED_BY_END_USER_CONSENT"), ("x-consent-gate-dropped", "0"),
               ("x-consent-gate-reason", "MISSING_CONSENT"), ("x-upstream", "kept")]
    allowed = encode(event({"Advertising": True}))
    mixed = batch(event({"Advertising": True}), event({"Advertising": False}), event({"Advertising": False}))
    for label, path, body, dropped in [("event", "/ads", allowed, None), ("batch", "/ads/v1/batch", mixed, "2"),
                                       ("ungated route", "/open", allowed, None)]:
        upstream.reset()
        upstream.extra_response_headers = spoofed
        resp = clients.http1(envoy.port, "POST", path, body, JSON)
        assert resp.status == 200 and upstream.wait_for_requests(1), (label, resp)
        assert resp.header("x-upstream") == "kept", (label, resp.headers)
        assert resp.header("x-consent-gate-reason") is None, (label, resp.headers)
        assert [v for k, v in resp.headers if k == "x-consent-gate-dropped"] == ([dropped] if dropped else []), \
            (label, resp.headers)
    # The filter's own replies keep theirs.
    upstream.reset()
    resp = clients.http1(envoy.port, "POST", "/ads", encode(event({"Advertising": False})), JSON)
    assert_local_reply(resp, 403, "FILTERED_BY_END_USER_CONSENT")


def test_an_upstreams_consent_gate_trailers_never_reach_the_client(envoys, upstream):
    """The same names as response trailers (HTTP/2 to the client, chunked HTTP/1.1 from
    upstream) are removed too; other trailers pass."""
    envoy = envoys.get("trailers", plugin_config="default", upstream_trailers=True)
    mixed = batch(event({"Advertising": True}), event({"Advertising": False}))
    for path, body, dropped in [("/ads", encode(event({"Advertising": True})), None),
                                ("/ads/v1/batch", mixed, "1")]:
        upstream.reset()
        upstream.response_trailers = [("x-consent-gate-reason", "FILTERED_BY_END_USER_CONSENT"),
                                      ("x-consent-gate-dropped", "7"), ("x-upstream-trailer", "kept")]
        resp = clients.http2(envoy.port, "POST", path, body, JSON)
        assert resp.status == 200 and upstream.wait_for_requests(1), resp
        assert resp.trailers == [("x-upstream-trailer", "kept")], resp.trailers
        assert [v for k, v in resp.headers if k == "x-consent-gate-dropped"] == ([dropped] if dropped else []), resp


def test_each_category_has_a_counter_of_its_own(envoys, upstream):
    """Categories that differ only in characters other than letters and digits, or in letters of
    other scripts, are counted apart, under their own names, in both builds."""
    envoy = envoys.get("category_names")
    categories = {"/share-a": "Data Sharing", "/share-b": "Data_Sharing", "/share-c": "Data.Sharing",
                  "/jp-a": "\u5e83\u544a", "/jp-b": "\u5ba3\u4f1d"}
    for n, (prefix, category) in enumerate(categories.items(), start=1):
        for _ in range(n):
            resp = clients.http1(envoy.port, "POST", prefix + "/v1/track", encode(event({category: False})), JSON)
            assert_local_reply(resp, 403, "FILTERED_BY_END_USER_CONSENT")
    counted = {name: value for name, value in stats.counters(envoy).items() if name.startswith(stats.CATEGORY_PREFIX)}
    # In the wasm module's names `.` is written `%2E` (it separates a name's parts in Envoy).
    shown = (lambda c: c) if MODULE == "native" else (lambda c: c.replace(".", "%2E"))
    assert counted == {stats.CATEGORY_PREFIX + shown(c): n for n, c in enumerate(categories.values(), start=1)}, counted
    assert upstream.requests == []
