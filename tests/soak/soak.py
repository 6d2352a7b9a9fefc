"""`make soak`: mixed traffic through Envoy (two workers, the built module, envoy/e2e.yaml) into a
recording upstream, for a while, then exact accounting.

Traffic: single events and batches, plain and gzip, consented, refused, without consent,
invalid, and hostile (lookalike keys, ambiguous kinds, bombs, thousands of gzip members, deep
nesting), with random consents, from SOAK_CONCURRENCY clients at once. Every event carries a
unique messageId, and the generator knows, without asking the filter, which ones the route
allows.

It asserts: the set of messageIds the upstream received equals the set the routes allow, each
exactly once and intact (the same JSON as sent); no response is a 5xx; the wasm VMs never abort or
reload; and Envoy's memory at the end is within 10% of its value after warm-up. It prints those
figures. Usage: soak.py [--seconds 300] [--concurrency 16]; CONSENT_GATE_MODULE=native soaks the
dynamic module instead (a panic that escaped would take Envoy down: every request after it fails).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from harness.envoy import MODULE, Envoy, render_config  # noqa: E402
from harness.upstream import RecordingUpstream  # noqa: E402

# Routes of envoy/e2e.yaml: required categories and match mode.
ROUTES = {
    "/ads": (["Advertising"], all),
    "/multi": (["Advertising", "Analytics"], all),
    "/multi-any": (["Advertising", "Analytics"], any),
}
ALWAYS_ALLOW = ("Consent Change", "Segment Consent Preference Updated")
CONSENT_VALUES = [True, True, True, False, None, "true"]  # None: the key is left out


class Traffic:
    """Builds requests and remembers which events the routes allow (`expected`)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counter = 0
        self.expected: dict[str, str] = {}  # messageId -> canonical JSON of the event
        self.events_sent = 0

    def next_id(self) -> str:
        with self.lock:
            self.counter += 1
            return f"soak-{self.counter}"

    def event(self, categories, match) -> tuple[dict, bool]:
        """One event and whether the route allows it."""
        rng = self.rng
        ev = {"type": "track", "event": "Order Completed", "messageId": self.next_id(),
              "userId": f"user-{rng.randrange(10_000)}", "properties": {"revenue": rng.random()}}
        allowlisted = rng.random() < 0.05
        if allowlisted:
            ev["event"] = rng.choice(ALWAYS_ALLOW)
        if rng.random() < 0.9:
            prefs = {}
            for c in categories + ["Functional"]:
                v = rng.choice(CONSENT_VALUES)
                if v is not None:
                    prefs[c] = v
            ev["context"] = {"consent": {"categoryPreferences": prefs}, "ip": "203.0.113.9"}
            consented = match(prefs.get(c) is True for c in categories)
        else:
            consented = False
        return ev, allowlisted or consented

    def expect(self, ev: dict, allowed: bool) -> None:
        with self.lock:
            self.events_sent += 1
            if allowed:
                self.expected[ev["messageId"]] = canonical(ev)

    def request(self) -> tuple[str, bytes, dict[str, str]]:
        """(path, body, headers) of the next request."""
        rng = self.rng
        route = rng.choice(list(ROUTES))
        categories, match = ROUTES[route]
        kind = rng.random()
        if kind < 0.08:
            return self.hostile(route, categories, match)
        if kind < 0.5:
            ev, allowed = self.event(categories, match)
            self.expect(ev, allowed)
            body, path = json.dumps(ev).encode(), route + "/v1/track"
        else:
            items = []
            for _ in range(rng.randrange(1, 60)):
                ev, allowed = self.event(categories, match)
                self.expect(ev, allowed)
                items.append(ev)
            body, path = json.dumps({"batch": items, "sentAt": "2026-11-29T00:00:00Z"}).encode(), route + "/v1/batch"
        headers = {"content-type": "application/json"}
        if rng.random() < 0.3:
            body = gzip.compress(body, mtime=0)
            headers["content-encoding"] = "gzip"
        return path, body, headers

    def hostile(self, route, categories, match) -> tuple[str, bytes, dict[str, str]]:
        """A request the filter must refuse whole; its events are never expected upstream."""
        rng = self.rng
        ev, _ = self.event(categories, match)
        ev["context"] = {"consent": {"categoryPreferences": {c: True for c in categories}}}
        self.expect(ev, False)
        text = json.dumps(ev)
        choice = rng.randrange(8)
        headers = {"content-type": "application/json"}
        path = route + "/v1/track"
        if choice == 0:  # Go reads Context as context
            body = text.replace('"context"', '"Context"').encode()
        elif choice == 1:  # a repeated context
            body = (text[:-1] + ',"context":{}}').encode()
        elif choice == 2:  # ſ in consent
            body = text.replace('"consent"', '"con\\u017fent"').encode()
        elif choice == 3:  # a batch at a single-event endpoint
            body = json.dumps({"batch": [ev]}).encode()
        elif choice == 4:  # not JSON
            body = text[: len(text) // 2].encode()
        elif choice == 5:  # a gzip bomb
            body = gzip.compress(b" " * (8 << 20), mtime=0)
            headers["content-encoding"] = "gzip"
        elif choice == 6:  # thousands of gzip members
            body = gzip.compress(b" ", mtime=0) * 5000
            headers["content-encoding"] = "gzip"
        else:  # deep nesting
            body = (text[:-1] + ',"x":' + "[" * 5000 + "]" * 5000 + "}").encode()
        return path, body, headers


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def received_events(req) -> list[dict]:
    body = req.body
    if (req.header("content-encoding") or "").lower() == "gzip":
        body = gzip.decompress(body)
    doc = json.loads(body)
    return doc["batch"] if "batch" in doc else [doc]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    upstream = RecordingUpstream()
    work = Path(tempfile.mkdtemp(prefix="consent-gate-soak-"))
    config = render_config(upstream_port=upstream.port, plugin_config={}, access_log=Path("/dev/null"))
    envoy = Envoy("soak", work, config, concurrency=2).start()
    port = envoy.port
    traffic = Traffic(args.seed)
    statuses: Counter = Counter()
    status_lock = threading.Lock()
    received: Counter = Counter()
    intact_failures: list[str] = []
    unexpected: list[str] = []
    stop = threading.Event()
    requests_sent = 0

    def drain():
        for req in upstream.take():
            for ev in received_events(req):
                mid = ev.get("messageId")
                received[mid] += 1
                want = traffic.expected.get(mid)
                if want is None:
                    unexpected.append(mid)
                elif canonical(ev) != want:
                    intact_failures.append(mid)

    def client():
        nonlocal requests_sent
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            with status_lock:  # one generator: its random choices stay reproducible per seed
                path, body, headers = traffic.request()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            except (OSError, http.client.HTTPException) as err:
                status = f"error {type(err).__name__}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with status_lock:
                statuses[status] += 1
                requests_sent += 1
        conn.close()

    vm_before = envoy.stats()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    warm_up = min(30.0, args.seconds / 5)
    time.sleep(warm_up)
    drain()
    rss_warm = rss_kib(envoy.proc.pid)
    while time.monotonic() - started < args.seconds:
        time.sleep(2)
        drain()
    stop.set()
    for t in threads:
        t.join()
    duration = time.monotonic() - started
    time.sleep(0.5)
    drain()
    envoy_alive = envoy.is_running()
    rss_end = rss_kib(envoy.proc.pid) if envoy_alive else rss_warm
    vm_after = envoy.stats() if envoy_alive else vm_before
    envoy.stop()
    upstream.close()

    expected = set(traffic.expected)
    got = set(received)
    missing = expected - got
    duplicates = [m for m, n in received.items() if n > 1]
    five_xx = {s: n for s, n in statuses.items() if not isinstance(s, int) or s >= 500}
    vm_keys = ("wasm.consent_gate.vm_reload_success", "wasm.consent_gate.vm_reload_failure",
               "wasm.envoy.wasm.runtime.v8.created")
    vm_changes = {k: (vm_before.get(k), vm_after.get(k)) for k in vm_keys if vm_before.get(k) != vm_after.get(k)}
    growth = (rss_end - rss_warm) / rss_warm

    print(f"duration        {duration:.0f} s, {args.concurrency} clients, Envoy with 2 workers")
    print(f"requests        {requests_sent} ({requests_sent / duration:.0f}/s); statuses {dict(sorted(statuses.items(), key=str))}")
    print(f"events          {traffic.events_sent} sent, {len(expected)} consented (expected upstream)")
    print(f"received        {sum(received.values())} events, {len(got)} distinct; "
          f"missing {len(missing)}, duplicated {len(duplicates)}, unexpected {len(unexpected)}, "
          f"altered {len(intact_failures)}")
    if MODULE == "wasm":
        print(f"wasm VMs        {'no abort or reload' if not vm_changes else vm_changes}")
    else:
        print(f"Envoy process   {'still running' if envoy_alive else 'GONE'} (dynamic module)")
    print(f"Envoy memory    {rss_warm} KiB after warm-up, {rss_end} KiB at the end ({growth:+.1%})")

    failures = []
    if missing:
        failures.append(f"{len(missing)} consented events never arrived, e.g. {sorted(missing)[:5]}")
    if duplicates or unexpected or intact_failures:
        failures.append(f"duplicated {duplicates[:5]}, unexpected {unexpected[:5]}, altered {intact_failures[:5]}")
    if five_xx:
        failures.append(f"5xx or transport errors: {five_xx}")
    if not envoy_alive:
        failures.append("Envoy exited during the soak")
    if vm_changes:
        failures.append(f"the VM aborted or reloaded: {vm_changes}")
    if abs(growth) > 0.10:
        failures.append(f"memory moved {growth:+.1%} after warm-up (limit 10%)")
    for f in failures:
        print("FAIL:", f)
    print("soak: PASS" if not failures else "soak: FAIL")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
