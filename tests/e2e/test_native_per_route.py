"""The dynamic module's per-route configuration: a route's policy given as a
`DynamicModuleFilterPerRoute` in `typed_per_filter_config` instead of route metadata. The same
keys as route metadata, as JSON; it wins over the route's metadata; a mistake in it makes Envoy
refuse the route configuration (so the gate is never silently off).
"""

from __future__ import annotations

import json

import pytest

from harness import clients
from harness.checks import ALLOW, assert_outcome, denied, encode, event, Expect
from harness.envoy import (
    Envoy,
    MODULE,
    STRING_VALUE,
    _hcm,
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
