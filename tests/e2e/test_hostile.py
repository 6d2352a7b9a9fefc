"""Hostile bodies cost what their size costs, and no more: they are answered quickly, a normal
client sharing the worker is slowed by no more than the attacker's own requests, and the wasm VM
never aborts (Envoy's `vm_reload_success` stays 0 and no VM is created after start).

One Envoy worker, so the attacker and the normal client share one VM: the worst case."""

from __future__ import annotations

import gzip
import threading
import time

import pytest

from harness import clients
from harness.checks import encode, event

JSON = {"content-type": "application/json"}
GZIP = {**JSON, "content-encoding": "gzip"}
MIB = 1 << 20


def many_members(n: int = 40_000) -> bytes:
    """A gzip body of n one-byte members (each a full header and trailer): about 800 KB."""
    member = gzip.compress(b" ", mtime=0)
    return member * n


def tiny_items() -> bytes:
    """A small gzip body that inflates to a 1 MiB batch of `{}` items (about 350,000)."""
    n = (MIB - 32) // 3
    return gzip.compress(b'{"batch":[' + b"{}," * (n - 1) + b"{}]}", mtime=0)


def bomb() -> bytes:
    """A small gzip body that inflates to 200 MB of white space."""
    return gzip.compress(b" " * (200 * MIB), mtime=0)


def deep_nesting() -> bytes:
    return b'{"x":' + b"[" * (MIB // 2 - 16) + b"]" * 8 + b"}"


def escapes() -> bytes:
    return b'{"x":"' + b"\\u0041" * (MIB // 6 - 4) + b'"}'


ATTACKS = [
    ("many-gzip-members", many_members, GZIP, 400),
    ("tiny-batch-items", tiny_items, GZIP, 413),
    ("gzip-bomb", bomb, GZIP, 413),
    ("deep-nesting", deep_nesting, JSON, 400),
    ("a-megabyte-of-escapes", escapes, JSON, 400),
]


def vm_health(envoy) -> tuple[str, str]:
    stats = envoy.stats()
    return (stats.get("wasm.consent_gate.vm_reload_success", "?"),
            stats.get("wasm.envoy.wasm.runtime.v8.created", "?"))


@pytest.fixture(scope="module")
def hostile(envoys):
    return envoys.get("hostile", plugin_config="default", concurrency=1)


@pytest.mark.parametrize("label, make, headers, status", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_hostile_body_is_answered_quickly(hostile, upstream, label, make, headers, status):
    """Each hostile body is refused; judging it costs no more than judging a normal body of the
    same size would (a consented batch of as many bytes, once decompressed: compressed hostile
    bodies are compared with a compressed batch at the size cap), measured in the same Envoy."""
    body = make()
    if headers is GZIP:
        normal = gzip.compress(normal_batch(MIB - 4096), mtime=0)
    else:
        normal = normal_batch(len(body))
    before = vm_health(hostile)
    t = time.monotonic()
    ok = clients.http1(hostile.port, "POST", "/v1/batch", normal, headers, timeout=30)
    normal_seconds = time.monotonic() - t
    assert ok.status == 200, ok
    t = time.monotonic()
    resp = clients.http1(hostile.port, "POST", "/v1/batch", body, headers, timeout=30)
    attack_seconds = time.monotonic() - t
    assert resp.status == status and resp.header("x-consent-gate-reason"), (label, resp)
    # Generous: the point is "not quadratic" (seconds), not a latency target.
    assert attack_seconds <= 4 * normal_seconds + 0.25, (label, attack_seconds, normal_seconds)
    assert vm_health(hostile) == before, f"{label}: the VM aborted or was reloaded"


def normal_batch(size: int) -> bytes:
    """A batch of ordinary consented events, about `size` bytes."""
    one = encode(event({"Analytics": True}))
    n = max(1, min(2400, size // (len(one) + 1)))
    pad = max(0, size // n - len(one) - 10)
    item = encode(event({"Analytics": True}, pad="x" * pad))
    return b'{"batch":[' + b",".join([item] * n) + b"]}"


def test_normal_client_is_not_held_up_by_an_attacker(hostile, upstream):
    """A normal client keeps sending small consented events while an attacker sends every
    hostile body above, several times. Every normal request succeeds, and the slowest one waits
    no longer than the slowest attacker request plus the normal client's own worst time."""
    body = encode(event({"Analytics": True}))
    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def normal_client():
        while not stop.is_set():
            t = time.monotonic()
            resp = clients.http1(hostile.port, "POST", "/v1/track", body, JSON)
            latencies.append(time.monotonic() - t)
            if resp.status != 200:
                failures.append(repr(resp))

    # The normal client's own worst time, alone.
    for _ in range(50):
        t = time.monotonic()
        assert clients.http1(hostile.port, "POST", "/v1/track", body, JSON).status == 200
        latencies.append(time.monotonic() - t)
    alone = max(latencies)
    latencies.clear()

    before = vm_health(hostile)
    bodies = [(label, make(), headers, status) for label, make, headers, status in ATTACKS]
    worker = threading.Thread(target=normal_client)
    worker.start()
    attack_times = []
    started, rounds = time.monotonic(), 0
    try:
        while rounds < 3 or time.monotonic() - started < 2:
            rounds += 1
            for label, attack, headers, status in bodies:
                t = time.monotonic()
                resp = clients.http1(hostile.port, "POST", "/v1/batch", attack, headers, timeout=30)
                attack_times.append(time.monotonic() - t)
                assert resp.status == status, (label, resp)
    finally:
        stop.set()
        worker.join()
    assert not failures, failures[:3]
    assert len(latencies) >= 10, "the normal client hardly ran"
    slowest_attack = max(attack_times)
    assert max(latencies) <= slowest_attack + alone + 0.1, (max(latencies), slowest_attack, alone)
    assert vm_health(hostile) == before, "the VM aborted or was reloaded"
    assert upstream.requests and all(r.path == "/v1/track" for r in upstream.requests)
