"""consent-gate's counters, read from an Envoy's admin port.

The filter defines Envoy counters named `consent_gate.<name>` (src/metrics.rs). The proxy-wasm
module's show in `/stats` as `wasmcustom.consent_gate.<name>` and in `/stats/prometheus` as
`consent_gate_<name>` (every character other than a letter, a digit or `_` turned into `_`). The
dynamic module's show as `dynamicmodulescustom.consent_gate.<name>` and
`envoy_dynamicmodulescustom_consent_gate_<name>`, and its denied-category counter carries the
category as a label (`...events_denied_category.category.<C>`, `{category="<C>"}`). Both readers
here return them keyed by the documented name, `consent_gate.<name>`
(`consent_gate.events_denied_category.<C>`), so tests compare one dict with another.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from .envoy import MODULE, Envoy

PREFIX = "consent_gate."
STATS_PREFIX = {"wasm": "wasmcustom.", "native": "dynamicmodulescustom."}[MODULE]
PROM_PREFIX = {"wasm": "", "native": "envoy_dynamicmodulescustom_"}[MODULE]
CATEGORY_LABEL = "events_denied_category.category."

# The request counters and the per-reason counters: defined when the VM is configured, so present
# (at 0) from the start. Category counters (`consent_gate.events_denied_category.<category>`) appear
# with the first denial naming a configured category.
REQUEST_COUNTERS = (
    "requests_judged",
    "requests_allowed",
    "requests_filtered",
    "requests_denied",
    "batch_items_seen",
    "batch_items_dropped",
    "requests_ungated",
    "requests_exempt",
    "requests_incomplete",
)
REASONS = (
    "FILTERED_BY_END_USER_CONSENT",
    "MISSING_CONSENT",
    "FILTERED_BY_INTEGRATIONS",
    "INVALID_EVENT",
    "BODY_TOO_LARGE",
    "UNSUPPORTED_CONTENT_ENCODING",
    "ROUTE_CONFIG_ERROR",
    "INTERNAL_ERROR",
)
CATEGORY_PREFIX = PREFIX + "events_denied_category."

_PROM_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[^}]*\})? (?P<value>\S+)$")
_PROM_TYPE = re.compile(r"^# TYPE (?P<name>\S+) (?P<type>\S+)$")


def zero_counters(categories: tuple[str, ...] = ()) -> dict[str, int]:
    """Every counter a freshly configured filter has, at 0, plus the given category counters."""
    counters = {PREFIX + name: 0 for name in REQUEST_COUNTERS}
    counters.update({f"{PREFIX}events_dropped.{reason}": 0 for reason in REASONS})
    counters.update({CATEGORY_PREFIX + category: 0 for category in categories})
    return counters


def counters(envoy: Envoy) -> dict[str, int]:
    """Every consent_gate counter in `/stats`, by documented name (without `wasmcustom.`)."""
    status, body = envoy.admin_get("/stats?filter=" + quote("^" + re.escape(STATS_PREFIX + PREFIX)))
    assert status == 200, f"/stats answered {status}: {body[:300]}"
    found = {}
    for line in body.splitlines():
        name, sep, value = line.partition(": ")
        if not sep or not name.startswith(STATS_PREFIX + PREFIX):
            continue
        documented = name[len(STATS_PREFIX):].replace(CATEGORY_LABEL, "events_denied_category.")
        found[documented] = int(value)
    return found


def all_stat_names(envoy: Envoy) -> set[str]:
    """The name of every stat in `/stats` (Envoy's own included)."""
    status, body = envoy.admin_get("/stats")
    assert status == 200, f"/stats answered {status}"
    return {line.partition(": ")[0] for line in body.splitlines() if ": " in line}


def prometheus_name(name: str) -> str:
    """The documented name as `/stats/prometheus` shows it (`consent_gate.a.B` → `consent_gate_a_B`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def prometheus(envoy: Envoy) -> dict[str, tuple[str, int]]:
    """Every `consent_gate_*` sample in `/stats/prometheus`: documented name → (TYPE, value).

    A name seen twice is an error; so is a label, but the dynamic module's `category`.
    """
    status, body = envoy.admin_get("/stats/prometheus")
    assert status == 200, f"/stats/prometheus answered {status}: {body[:300]}"
    types: dict[str, str] = {}
    samples: dict[str, tuple[str, int]] = {}
    for line in body.splitlines():
        m = _PROM_TYPE.match(line)
        if m:
            types[m["name"]] = m["type"]
            continue
        if line.startswith("#") or not line.startswith(PROM_PREFIX + prometheus_name(PREFIX)):
            continue
        m = _PROM_SAMPLE.match(line)
        assert m, f"unparsable Prometheus line {line!r}"
        name = m["name"][len(PROM_PREFIX):]
        category = re.fullmatch(r'\{category="([^"]*)"\}', m["labels"] or "")
        if category and MODULE == "native":
            name = f"{name}_{category[1]}"
        else:
            assert m["labels"] in (None, "{}"), f"unexpected labels on {line!r}"
        assert name not in samples, f"{name} appears twice in /stats/prometheus"
        value = float(m["value"])
        assert value == int(value), line
        samples[name] = (types.get(m["name"], "?"), int(value))
    return samples


def worker_connections(envoy: Envoy) -> dict[str, int]:
    """Connections accepted per worker thread (`listener.<address>.worker_<n>.downstream_cx_total`)."""
    status, body = envoy.admin_get("/stats?filter=" + quote(r"^listener\..*\.worker_\d+\.downstream_cx_total$"))
    assert status == 200, f"/stats answered {status}"
    per_worker: dict[str, int] = {}
    for line in body.splitlines():
        name, sep, value = line.partition(": ")
        m = re.search(r"\.(worker_\d+)\.downstream_cx_total$", name)
        if sep and m:
            per_worker[m[1]] = per_worker.get(m[1], 0) + int(value)
    return per_worker


def diff(expected: dict[str, int], actual: dict[str, int]) -> str:
    """The counters that differ, one per line, for assertion messages."""
    lines = []
    for name in sorted(set(expected) | set(actual)):
        e, a = expected.get(name, "absent"), actual.get(name, "absent")
        if e != a:
            lines.append(f"  {name}: expected {e}, got {a}")
    return "\n".join(lines)
