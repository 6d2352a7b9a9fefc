"""Differential: whatever the filter forwards, every reader reads alike.

Generated bodies, many of them built to be read two ways (keys in another case, `ſ` for `s`,
escaped keys, keys with a NUL, repeated keys, event fields beside `batch`, a path that names
another call, ...), go through the real Envoy. For every body the recording upstream receives,
three readers (tests/e2e/harness/readers.py: Python last-key-wins, Python first-key-wins, and a
real Go program decoding Segment structs, which folds key case and takes the kind of call from
the endpoint) must read the same kind, the same items, and the same consent for the route's
categories, and that consent must be one the route allows. A body the filter refuses proves
nothing here; a forwarded body that the readers disagree on is a leak.

The second test does the same through the `auto` Envoy with bodies in both consent shapes
(Segment's and RudderStack's, which the Go reader decodes into rudder-server's own struct) and
`integrations` objects, on routes with and without a destination.
"""

from __future__ import annotations

import gzip
import json
import random
import time

import pytest

from harness import clients
from harness.checks import SETTLE_SECONDS
from harness.readers import read_first_wins, read_go, read_last_wins

SEED = 20261129
BODIES = 2000
# More for the second run: IDs in other spellings and empty `integrations` options, which it
# generates, are refused, and enough bodies with either must still be forwarded and read.
BOTH_BODIES = 3000

# Routes of envoy/e2e.yaml and the categories they require (the default plugin config: match all,
# on_missing_consent deny, the default always_allow_events).
ROUTES = {"/ads": ["Advertising"], "/multi": ["Advertising", "Analytics"]}
ALWAYS_ALLOW = {"Segment Consent Preference Updated", "Consent Change"}
ENDPOINTS = ["/v1/track", "/v1/t", "/v1/identify", "/v1/page", "/v1/batch", "/v1/b", "/v1/import",
             "/collect", ""]
TYPES = ["track", "identify", "page", "Track", 1, None]
NAMES = ["Order Completed", "Consent Change", "Segment Consent Preference Updated"]
CATEGORIES = ["Advertising", "Analytics", "advertising", "Functional"]
VALUES = [True] * 12 + [False, "true", 1, None]


def spell(rng: random.Random, key: str, hostility: float) -> str:
    """A key as a hostile client may spell it (JSON text of the key, quotes included)."""
    if rng.random() >= hostility:
        return json.dumps(key)
    choice = rng.random()
    if choice < 0.25:
        return json.dumps(key[0].upper() + key[1:])
    if choice < 0.45 and "s" in key:
        return json.dumps(key[0].upper() + key[1:])
    if choice < 0.45 and "s" in key:
        i = key.index("s")
        return json.dumps(key[:i] + "\u017f" + key[i + 1:], ensure_ascii=rng.random() < 0.5)
    if choice < 0.65:
        # Escaped: the same key to every reader.
        i = rng.randrange(len(key))
        return '"' + key[:i] + "\\u%04x" % ord(key[i]) + key[i + 1:] + '"'
    if choice < 0.8:
        return json.dumps(key + "\u0000")
    return json.dumps(key.upper())


class Body:
    """JSON text built member by member, so that keys can repeat and be misspelled. With
    `both_shapes`, contexts carry Segment's consent, RudderStack's, or both, and events and
    batches sometimes an `integrations` object."""

    def __init__(self, rng: random.Random, both_shapes: bool = False):
        self.rng = rng
        self.both_shapes = both_shapes
        # The share of keys misspelled or repeated in the body being built.
        self.hostility = 0.0

    def obj(self, members: list[tuple[str, str]]) -> str:
        """An object from (key, JSON value text) pairs; some keys repeated, some misspelled."""
        out = []
        for key, value in members:
            out.append(f"{spell(self.rng, key, self.hostility)}:{value}")
            if self.rng.random() < self.hostility / 2:
                out.append(f"{spell(self.rng, key, self.hostility)}:{self.value_for(key)}")
        self.rng.shuffle(out)
        return "{" + ",".join(out) + "}"

    def value_for(self, key: str) -> str:
        return {
            "context": self.context,
            "consent": self.consent,
            "categoryPreferences": self.preferences,
            "type": lambda: json.dumps(self.rng.choice(TYPES)),
            "event": lambda: json.dumps(self.rng.choice(NAMES)),
            "consentManagement": self.consent_management,
            "deniedConsentIds": self.ids,
            # SDKs list the consented IDs: the route's more often than the denied list does.
            "allowedConsentIds": lambda: self.rng.choice([
                self.ids(0.7), self.ids(0.7), '{"Advertising":"Targeting","Analytics":"Performance"}',
                '{"C0001":"Necessary"}']),
            "provider": lambda: json.dumps(self.rng.choice(["custom", "oneTrust", "ketch", "custom", 1])),
            "resolutionStrategy": lambda: json.dumps(self.rng.choice(["or", "and", "any", "or\u0000"])),
            "integrations": self.integrations,
            "Mixpanel": lambda: self.rng.choice(["true", "false", "false", "{}", '"false"', "0", "null"]),
            "All": lambda: self.rng.choice(["true", "false", "false", "{}", '"false"', "0", "null"]),
        }.get(key, lambda: json.dumps("x"))()

    def ids(self, route: float = 0.3) -> str:
        """A list of IDs, the route's categories each listed with chance `route`."""
        if self.rng.random() < 0.05:
            return self.rng.choice(['"Advertising"', "null", '["Advertising",7]', '["Advertising",null]'])
        pool = ["Advertising", "Analytics", "advertising", "C0004", "", "Advertising\u0000"]
        return json.dumps([i for i in pool
                           if self.rng.random() < (route if i in ("Advertising", "Analytics") else 0.3)])

    def consent_management(self) -> str:
        if self.rng.random() < 0.03:
            return '["Advertising"]'
        members = [(k, self.value_for(k)) for k, p in (("deniedConsentIds", 0.9), ("allowedConsentIds", 0.4),
                                                      ("provider", 0.6), ("resolutionStrategy", 0.6))
                   if self.rng.random() < p]
        return self.obj(members)

    def integrations(self) -> str:
        if self.rng.random() < 0.03:
            return '["Mixpanel"]'
        members = [(k, self.value_for(k)) for k, p in (("Mixpanel", 0.5), ("All", 0.4), ("Amplitude", 0.2))
                   if self.rng.random() < p]
        if self.rng.random() < 0.1:
            members.append(("mixpanel", "false"))
        return self.obj(members)

    def preferences(self) -> str:
        chosen = ["Advertising", "Analytics"] + self.rng.sample(CATEGORIES, self.rng.randrange(0, 3))
        if self.rng.random() < 0.2:
            chosen = self.rng.sample(CATEGORIES, self.rng.randrange(0, 4))
        members = [(c, json.dumps(self.rng.choice(VALUES))) for c in dict.fromkeys(chosen)]
        return self.obj(members)

    def consent(self) -> str:
        if self.rng.random() < 0.1:
            return self.obj([("version", "2")])
        return self.obj([("categoryPreferences", self.preferences())])

    def context(self) -> str:
        members = [("library", '{"name":"gen"}')]
        if not self.both_shapes:
            if self.rng.random() < 0.9:
                members.append(("consent", self.consent()))
            return self.obj(members)
        shape = self.rng.random()
        if shape < 0.45 or shape >= 0.9:
            members.append(("consent", self.consent()))
        if shape >= 0.45:
            members.append(("consentManagement", self.consent_management()))
        return self.obj(members)

    def event(self, message_id: str, call: str | None = None) -> str:
        members = [("messageId", json.dumps(message_id)), ("userId", '"u1"')]
        if self.rng.random() < 0.85:
            kind = call if call and self.rng.random() < 0.7 else self.rng.choice(TYPES)
            members.append(("type", json.dumps(kind)))
        members.append(("event", json.dumps(self.rng.choice(NAMES))))
        if self.rng.random() < 0.9:
            members.append(("context", self.context()))
        if self.both_shapes and self.rng.random() < 0.6:
            members.append(("integrations", self.integrations()))
        return self.obj(members)

    def batch(self, message_id: str) -> str:
        items = ",".join(self.event(f"{message_id}.{i}") for i in range(self.rng.randrange(1, 5)))
        members = [("batch", f"[{items}]"), ("sentAt", '"2026-11-29T00:00:00Z"')]
        if self.rng.random() < 0.4:
            members.append(("context", self.context()))
        if self.both_shapes and self.rng.random() < 0.4:
            members.append(("integrations", self.integrations()))
        if self.rng.random() < self.hostility:
            members.append((self.rng.choice(["type", "userId", "event", "properties"]), '"x"'))
        return self.obj(members)


def generate(n: int):
    rng = random.Random(SEED)
    body = Body(rng)
    for i in range(n):
        route = rng.choice(list(ROUTES))
        endpoint = rng.choice(ENDPOINTS)
        path = route + endpoint
        body.hostility = rng.choice([0.0, 0.0, 0.05, 0.15, 0.4])
        call = {"/v1/track": "track", "/v1/t": "track", "/v1/identify": "identify",
                "/v1/page": "page"}.get(endpoint)
        batch_endpoint = endpoint in ("/v1/batch", "/v1/b", "/v1/import")
        as_batch = rng.random() < (0.9 if batch_endpoint else 0.2 if call is None else 0.05)
        text = body.batch(f"m{i}") if as_batch else body.event(f"m{i}", call)
        raw = text.encode()
        encoding = "gzip" if rng.random() < 0.2 else None
        if encoding:
            raw = gzip.compress(raw, mtime=0)
        yield i, path, ROUTES[route], raw, encoding


# The second run: the `auto` Envoy (consent_format auto) reads either consent shape; /mixpanel also
# names its destination, so `integrations` decides there.
ROUTES_BOTH = {"/ads": (["Advertising"], None), "/multi": (["Advertising", "Analytics"], None),
               "/mixpanel": (["Advertising"], "Mixpanel")}


def generate_both(n: int):
    rng = random.Random(SEED + 1)
    body = Body(rng, both_shapes=True)
    for i in range(n):
        route = rng.choices(list(ROUTES_BOTH), weights=[1, 1, 2])[0]
        endpoint = rng.choice(ENDPOINTS)
        body.hostility = rng.choice([0.0, 0.0, 0.05, 0.15, 0.4])
        call = {"/v1/track": "track", "/v1/t": "track", "/v1/identify": "identify",
                "/v1/page": "page"}.get(endpoint)
        batch_endpoint = endpoint in ("/v1/batch", "/v1/b", "/v1/import")
        as_batch = rng.random() < (0.9 if batch_endpoint else 0.2 if call is None else 0.05)
        text = body.batch(f"n{i}") if as_batch else body.event(f"n{i}", call)
        raw = text.encode()
        encoding = "gzip" if rng.random() < 0.2 else None
        if encoding:
            raw = gzip.compress(raw, mtime=0)
        categories, destination = ROUTES_BOTH[route]
        yield i, route + endpoint, categories, destination, raw, encoding


def listed(item: dict, path: str) -> bool:
    """An allow-listed track call by body (and endpoint, where it names a call)."""
    last = path.rstrip("/").rsplit("/", 1)[-1].lower()
    track_endpoint = last in ("track", "t") or last not in (
        "identify", "i", "page", "p", "screen", "s", "group", "g", "alias", "a", "batch", "b", "import")
    return item["type"] == "track" and item["event"] in ALWAYS_ALLOW and (
        track_endpoint or last in ("batch", "b", "import"))


def on(entries) -> bool:
    """Segment's rule on [the destination's entry, All's]: on unless the destination is off, or
    All is off and the destination unnamed; only true, false and objects are read alike."""
    dest, everything = entries or (None, None)
    if dest is not None:
        return dest in ("true", "object")
    return everything in (None, "true", "object")


def allowed_both(item: dict, categories: list[str], path: str, destination: str | None) -> bool:
    """The `auto` route's policy on one reader's item (match all; on_missing_consent deny)."""
    if not listed(item, path):
        segment, rudder = item["consent"], item["rudder"]
        if segment is not None and rudder is not None:
            return False  # both shapes: refused as ambiguous
        if rudder is not None:
            if rudder == "unusable":
                return False
            any_ = rudder["provider"] != "custom" and rudder["strategy"] == "or"
            # Both of rudder-server's readings: the denied IDs, the allowed ones where listed.
            allowed = rudder["allowed"]
            kept = [not rudder["denied"][c] and (allowed is None or allowed[c]) for c in categories]
            if not (any(kept) if any_ else all(kept)):
                return False
        elif not (isinstance(segment, dict) and all(segment.get(c) is True for c in categories)):
            return False
    if destination:
        got = item["integrations"]
        mine, batch = got["item"], got["batch"]
        whole = mine if mine is not None else batch
        merged = [(mine or [None, None])[k] or (batch or [None, None])[k] for k in (0, 1)]
        return on(whole) and on(merged)
    return True


def allowed(item: dict, categories: list[str], path: str) -> bool:
    """The route's policy applied to one reader's item: all categories consented, or an
    allow-listed track call by body (and endpoint, where it names a call)."""
    last = path.rstrip("/").rsplit("/", 1)[-1].lower()
    track_endpoint = last in ("track", "t") or last not in (
        "identify", "i", "page", "p", "screen", "s", "group", "g", "alias", "a", "batch", "b", "import")
    if item["type"] == "track" and item["event"] in ALWAYS_ALLOW and (track_endpoint or last in ("batch", "b", "import")):
        return True
    consent = item["consent"]
    return isinstance(consent, dict) and all(consent.get(c) is True for c in categories)


def readable(reading: dict) -> bool:
    return reading["error"] is None


def test_every_forwarded_body_reads_alike(gate, upstream):
    sent = {}
    statuses = {}
    for i, path, categories, raw, encoding in generate(BODIES):
        headers = {"content-type": "application/json", "x-e2e-id": f"diff-{i}"}
        if encoding:
            headers["content-encoding"] = encoding
        resp = clients.http1(gate.port, "POST", path, raw, headers)
        assert resp.status == 200 or resp.header("x-consent-gate-reason"), resp
        sent[i] = (path, categories, raw, encoding)
        statuses[i] = resp.status
    time.sleep(SETTLE_SECONDS)
    forwarded = {}
    for req in upstream.requests:
        i = int(req.header("x-e2e-id").removeprefix("diff-"))
        assert i not in forwarded, f"body {i} received twice"
        forwarded[i] = (req.path, req.body)
    assert sorted(forwarded) == sorted(i for i, s in statuses.items() if s == 200), (
        "forwarded exactly the requests answered by the upstream")
    # The generator must produce both outcomes in quantity, or the test proves little.
    assert 0.1 * BODIES < len(forwarded) < 0.9 * BODIES, len(forwarded)

    ids = sorted(forwarded)
    go = read_go([(forwarded[i][0], forwarded[i][1], sent[i][1], sent[i][3]) for i in ids])
    for i, go_reading in zip(ids, go):
        path, body = forwarded[i]
        categories, encoding = sent[i][1], sent[i][3]
        readings = {
            "last_wins": read_last_wins(path, body, categories, encoding),
            "first_wins": read_first_wins(path, body, categories, encoding),
            "go": go_reading,
        }
        clean = {name: r for name, r in readings.items() if readable(r)}
        # A reader that cannot decode the body delivers nothing; the others must agree on the
        # kind, and item by item on what decides (`messageId` is not a decision field: a reader
        # that folds `MessageId` may see one where another does not).
        views = {name: (r["kind"], [{k: v for k, v in item.items() if k != "messageId"}
                                    for item in r["items"]])
                 for name, r in clean.items()}
        assert len(set(json.dumps(v, sort_keys=True) for v in views.values())) <= 1, (
            f"body {i} at {path} read differently:\n{sent[i][2]!r}\n{json.dumps(readings, indent=1)}")
        for name, r in clean.items():
            for item in r["items"]:
                assert allowed(item, categories, path), (
                    f"body {i}: {name} reads an item the route does not allow: {item}\n{sent[i][2]!r}")


def test_every_forwarded_body_reads_alike_with_both_consent_shapes_and_integrations(envoys, upstream):
    """The same, through the `auto` Envoy: Segment's and RudderStack's consent shapes (the Go
    reader decodes consentManagement into rudder-server's own struct), and on /mixpanel the
    route's destination in `integrations`, batch-level objects included."""
    envoy = envoys.get("auto")
    sent, statuses = {}, {}
    for i, path, categories, destination, raw, encoding in generate_both(BOTH_BODIES):
        headers = {"content-type": "application/json", "x-e2e-id": f"both-{i}"}
        if encoding:
            headers["content-encoding"] = encoding
        resp = clients.http1(envoy.port, "POST", path, raw, headers)
        assert resp.status == 200 or resp.header("x-consent-gate-reason"), resp
        sent[i] = (path, categories, destination, raw, encoding)
        statuses[i] = resp.status
    time.sleep(SETTLE_SECONDS)
    forwarded = {}
    for req in upstream.requests:
        i = int(req.header("x-e2e-id").removeprefix("both-"))
        assert i not in forwarded, f"body {i} received twice"
        forwarded[i] = (req.path, req.body)
    assert sorted(forwarded) == sorted(i for i, s in statuses.items() if s == 200)
    assert 0.1 * BOTH_BODIES < len(forwarded) < 0.9 * BOTH_BODIES, len(forwarded)

    ids = sorted(forwarded)
    go = read_go([(forwarded[i][0], forwarded[i][1], sent[i][1], sent[i][4], sent[i][2]) for i in ids])
    checked = {"rudder": 0, "integrations": 0}
    for i, go_reading in zip(ids, go):
        path, body = forwarded[i]
        _, categories, destination, _, encoding = sent[i]
        readings = {
            "last_wins": read_last_wins(path, body, categories, encoding, destination),
            "first_wins": read_first_wins(path, body, categories, encoding, destination),
            "go": go_reading,
        }
        clean = {name: r for name, r in readings.items() if readable(r)}
        views = {name: (r["kind"], [{k: v for k, v in item.items() if k != "messageId"}
                                    for item in r["items"]])
                 for name, r in clean.items()}
        assert len(set(json.dumps(v, sort_keys=True) for v in views.values())) <= 1, (
            f"body {i} at {path} read differently:\n{sent[i][3]!r}\n{json.dumps(readings, indent=1)}")
        for name, r in clean.items():
            for item in r["items"]:
                assert allowed_both(item, categories, path, destination), (
                    f"body {i}: {name} reads an item the route does not allow: {item}\n{sent[i][3]!r}")
        for item in go_reading["items"]:
            checked["rudder"] += item["rudder"] is not None
            checked["integrations"] += bool(item["integrations"] and (
                item["integrations"]["item"] or item["integrations"]["batch"]))
    # The new shapes must be forwarded in quantity, or this proves little about them.
    assert checked["rudder"] > 100 and checked["integrations"] > 60, checked
