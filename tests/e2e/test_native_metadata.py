"""The dynamic module's decision record as dynamic metadata: an access log in JSON reads every
field with `%DYNAMIC_METADATA(consent_gate:<field>)%`, equal to the filter-state record's, and
`"decision_metadata": false` leaves only the filter-state record.
"""

from __future__ import annotations

import json
import time

import pytest

from harness import clients
from harness.checks import encode, event
from harness.envoy import MODULE, Envoy, _hcm, render_config

pytestmark = pytest.mark.skipif(MODULE != "native", reason="dynamic metadata is set by the dynamic module")

FIELDS = ("decision", "reason", "required", "denied", "events", "dropped", "destination")
JSON = {"content-type": "application/json"}


def start(upstream, tmp_path_factory, name: str, plugin_config: dict) -> Envoy:
    workdir = tmp_path_factory.mktemp(name)
    log = workdir / "metadata.log"
    config = render_config(upstream_port=upstream.port, plugin_config=plugin_config)
    hcm = _hcm(config)
    fmt = {"id": "%REQ(X-E2E-ID)%", "record": "%FILTER_STATE(wasm.consent_gate:PLAIN)%",
           "namespace": "%DYNAMIC_METADATA(consent_gate)%"}
    fmt.update({f: f"%DYNAMIC_METADATA(consent_gate:{f})%" for f in FIELDS})
    hcm["access_log"].append({
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(log),
            "log_format": {"json_format": fmt},
        },
    })
    envoy = Envoy(name, workdir, config).start()
    envoy.metadata_log = log
    return envoy


def entry(envoy: Envoy, rid: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if envoy.metadata_log.exists():
            for line in envoy.metadata_log.read_text().splitlines():
                doc = json.loads(line)
                if doc["id"] == rid:
                    return doc
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {rid}")


def record_pairs(record: str) -> dict:
    return dict(part.split("=", 1) for part in record.split(" "))


@pytest.fixture(scope="module")
def envoys_by_option(upstream, tmp_path_factory):
    on = start(upstream, tmp_path_factory, "metadata-on", {})
    off = start(upstream, tmp_path_factory, "metadata-off", {"decision_metadata": False})
    yield on, off
    on.stop()
    off.stop()


@pytest.mark.parametrize("path, body", [
    ("/ads", encode(event({"Advertising": False}))),
    ("/ads", encode(event({"Advertising": True}))),
    ("/mixpanel", encode(event({"Advertising": True}, integrations={"Mixpanel": False}))),
    ("/open", encode(event())),
], ids=["deny", "allow", "integrations", "ungated"])
def test_dynamic_metadata_carries_the_record_field_by_field(envoys_by_option, upstream, path, body):
    on, off = envoys_by_option
    for envoy in (on, off):
        rid = f"{envoy.name}-{path.strip('/')}-{len(body)}"
        clients.http1(envoy.port, "POST", path, body, {**JSON, "x-e2e-id": rid})
        doc = entry(envoy, rid)
        record = record_pairs(doc["record"])
        if envoy is on:
            for field in FIELDS:
                # A field the record does not carry (destination on a route without one) is unset.
                assert doc[field] == record.get(field), (field, doc)
            assert set(doc["namespace"]) == set(record), doc
        else:
            assert all(doc[f] is None for f in FIELDS) and doc["namespace"] is None, doc
            assert record["decision"] in ("deny", "allow", "ungated")
