"""The dynamic module's per-route configuration: a route's policy given as a
`DynamicModuleFilterPerRoute` in `typed_per_filter_config` instead of route metadata. The same
keys as route metadata, as JSON; it wins over the route's metadata; a mistake in it makes Envoy
refuse the route configuration (so the gate is never silently off).
"""

from __future__ import annotations

import json
import time

import pytest

from harness import clients
from harness.checks import ALLOW, assert_denied, assert_outcome, denied, encode, event, Expect
from harness.envoy import (
    Envoy,
    MODULE,
    REPO,
    STRING_VALUE,
    _hcm,
    native_path,
    render_config,
    validate,
    write_config,
)

pytestmark = pytest.mark.skipif(MODULE != "native", reason="per-route configuration of the dynamic module")

PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute"
JSON = {"content-type": "application/json"}


def per_route(setting: dict | str) -> dict:
    value = setting if isinstance(setting, str) else json.dumps(setting)
    return {"consent_gate": {
        "@type": PER_ROUTE,
        "dynamic_module_config": {"name": "consent_gate", "do_not_close": True},
        "filter_name": "consent_gate",
        "filter_config": {"@type": STRING_VALUE, "value": value},
    }}


def config_with(upstream_port: int, routes: dict[str, dict | str]) -> dict:
    """The e2e config with a per-route configuration on new routes (prefix → setting), placed
    first; /ads keeps its metadata (Advertising) and gets a per-route configuration too."""
    config = render_config(upstream_port=upstream_port, plugin_config={})
    vhost = _hcm(config)["route_config"]["virtual_hosts"][0]
    added = [{"name": prefix.strip("/"), "match": {"prefix": prefix},
              "route": {"cluster": "recording_upstream"}, "typed_per_filter_config": per_route(setting)}
             for prefix, setting in routes.items()]
    vhost["routes"] = added + vhost["routes"]
    return config


@pytest.fixture(scope="module")
def envoy(upstream, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("per-route")
    config = config_with(upstream.port, {
        "/per-route-ads": {"category": "Advertising", "destination": "Mixpanel"},
        "/per-route-exempt": {"exempt": True},
        # Route metadata says Advertising; the per-route configuration wins.
        "/ads-overridden": {"categories": ["Analytics", "Functional"], "match": "any"},
    })
    # The overridden route keeps /ads's metadata.
    vhost = _hcm(config)["route_config"]["virtual_hosts"][0]
    ads = next(r for r in vhost["routes"] if r.get("name") == "ads")
    next(r for r in vhost["routes"] if r.get("name") == "ads-overridden")["metadata"] = ads["metadata"]
    e = Envoy("per-route", workdir, config).start()
    yield e
    e.stop()


@pytest.mark.parametrize("path, body, expect", [
    ("/per-route-ads", encode(event({"Advertising": True})), ALLOW),
    ("/per-route-ads", encode(event({"Advertising": False})), denied("Advertising")),
    ("/per-route-ads", encode(event({"Advertising": True}, integrations={"Mixpanel": False})),
     Expect(403, "FILTERED_BY_INTEGRATIONS")),
    ("/per-route-exempt", encode(event({"Advertising": False})), ALLOW),
    ("/ads-overridden", encode(event({"Advertising": True, "Functional": True})), ALLOW),
    ("/ads-overridden", encode(event({"Advertising": True})), denied("Analytics", "Functional")),
], ids=["consented", "refused", "integrations-off", "exempt", "overrides-metadata", "overrides-metadata-refused"])
def test_per_route_configuration_decides(envoy, upstream, path, body, expect):
    resp = clients.http1(envoy.port, "POST", path, body, JSON)
    assert_outcome(resp, upstream, expect, body, path=path)


@pytest.mark.parametrize("setting, names", [
    ({"categroy": "Advertising"}, 'unknown key "categroy"'),
    ({"category": 5}, '"category" must be a string, got the number 5'),
    ({"category": "A", "gpc_denies": ["B"]}, '"gpc_denies[0]" names "B"'),
    ("{not json", "is not valid JSON"),
], ids=["typo", "number", "gpc-not-required", "not-json"])
def test_a_mistake_in_a_per_route_configuration_is_refused(upstream, tmp_path, setting, names):
    path = write_config(config_with(upstream.port, {"/bad": setting}), tmp_path / "bad.yaml")
    result = validate(path)
    assert result.returncode != 0, result.output[-2000:]
    assert "invalid per-route configuration" in result.output and names in result.output, result.output[-2000:]


def test_another_modules_per_route_configuration_is_refused_not_read(upstream, tmp_path):
    """Envoy hands the filter the most specific per-route configuration under its name,
    whichever dynamic module made it: a `DynamicModuleFilterPerRoute` that names another module
    under the `consent_gate` key. Read as the filter's own, another module's object crashed
    Envoy or read as `exempt: true` (this one is two `1`s: refused events were forwarded). The
    filter refuses the route's requests instead, and says why."""
    mods = tmp_path / "modules"
    mods.mkdir()
    (mods / "libconsent_gate.so").symlink_to(native_path())
    (mods / "libnative_floor.so").symlink_to(REPO / "dist" / "test" / "libnative_floor.so")
    config = config_with(upstream.port, {})
    vhost = _hcm(config)["route_config"]["virtual_hosts"][0]
    other = {"consent_gate": {
        "@type": PER_ROUTE,
        "dynamic_module_config": {"name": "native_floor", "do_not_close": True},
        "filter_name": "floor",
        "filter_config": {"@type": STRING_VALUE, "value": "{}"},
    }}
    vhost["routes"].insert(0, {"name": "other-module", "match": {"prefix": "/other-module"},
                               "route": {"cluster": "recording_upstream"},
                               "typed_per_filter_config": other})
    (tmp_path / "envoy").mkdir()
    envoy = Envoy("other-module", tmp_path / "envoy", config, module=mods / "libconsent_gate.so").start()
    try:
        for consented in (True, False):
            resp = clients.http1(envoy.port, "POST", "/other-module",
                                 encode(event({"Advertising": consented})), JSON)
            assert_denied(resp, upstream, 500, "ROUTE_CONFIG_ERROR")
        deadline = time.monotonic() + 5
        while "another dynamic module made" not in envoy.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(l for l in envoy.stderr_text().splitlines() if "another dynamic module made" in l)
        assert "[error]" in line and "other-module" in line, line
        # Envoy is still up, and the filter's own routes still decide.
        resp = clients.http1(envoy.port, "POST", "/ads", encode(event({"Advertising": True})), JSON)
        assert resp.status == 200, resp
    finally:
        envoy.stop()
