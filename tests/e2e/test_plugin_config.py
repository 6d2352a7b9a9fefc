"""Plugin configuration keys other than the defaults, each on its own Envoy (see PLUGIN_CONFIGS in
conftest.py): on_missing_consent allow; deny_status 451 with match any and a custom
always_allow_events; `routes` rules; metadata_namespace; route_metadata false."""

import pytest

from harness import clients
from harness.checks import (
    ALLOW,
    INVALID,
    TOO_LARGE,
    assert_outcome,
    denied,
    encode,
    event,
    missing,
    sized_event,
)

JSON = {"content-type": "application/json", "sec-gpc": "1"}


def post(envoy, upstream, path, body, expect, headers=JSON):
    if not isinstance(body, bytes):
        body = encode(body)
    resp = clients.http1(envoy.port, "POST", path, body, headers)
    assert_outcome(resp, upstream, expect, body, path=path, sent_headers=headers)


# ---- on_missing_consent: allow ------------------------------------------------------------------


@pytest.fixture(scope="module")
def lenient(envoys):
    return envoys.get("missing_allow")


@pytest.mark.parametrize("body, expect", [
    pytest.param(event(), ALLOW, id="no-consent"),
    pytest.param(event(consent={}), ALLOW, id="empty-consent"),
    pytest.param(event(context={}), ALLOW, id="empty-context"),
    pytest.param(event({}), denied("Advertising"), id="empty-preferences-still-consent-to-nothing"),
    pytest.param(event({"Advertising": False}), denied("Advertising"), id="refused"),
    pytest.param(event({"Advertising": True}), ALLOW, id="consented"),
    pytest.param(event(None), INVALID, id="preferences-null-still-invalid"),
    pytest.param(b"[]", INVALID, id="not-an-object-still-invalid"),
])
def test_on_missing_consent_allow(lenient, upstream, body, expect):
    post(lenient, upstream, "/ads", body, expect)


@pytest.mark.parametrize("protocol, method", [("http1", "GET"), ("http1", "POST"), ("http2", "GET")])
def test_on_missing_consent_allow_without_body(lenient, upstream, protocol, method):
    request = clients.http1 if protocol == "http1" else clients.http2
    resp = request(lenient.port, method, "/ads", headers={"sec-gpc": "1"})
    assert_outcome(resp, upstream, ALLOW, b"", path="/ads", method=method, sent_headers={"sec-gpc": "1"})


# ---- deny_status 451, match any, always_allow_events ["Opt Out Recorded"] -----------------------


@pytest.fixture(scope="module")
def custom(envoys):
    return envoys.get("custom")


@pytest.mark.parametrize("path, body, expect", [
    pytest.param("/ads", event({"Advertising": False}), denied("Advertising", status=451),
                 id="refused-uses-deny-status"),
    pytest.param("/ads", event(), missing(status=451), id="missing-uses-deny-status"),
    pytest.param("/ads", b"not json", INVALID, id="invalid-stays-400"),
    pytest.param("/multi", event({"Advertising": True}), ALLOW, id="plugin-match-any"),
    pytest.param("/multi", event({"Functional": True}), denied("Advertising", "Analytics", status=451),
                 id="plugin-match-any-none-consented"),
    pytest.param("/ads", event(name="Opt Out Recorded"), ALLOW, id="custom-always-allow-event"),
    pytest.param("/ads", event(name="Consent Change"), missing(status=451),
                 id="default-always-allow-list-replaced"),
])
def test_custom_deny_status_match_and_always_allow(custom, upstream, path, body, expect):
    post(custom, upstream, path, body, expect)


def test_custom_deny_status_leaves_413(custom, upstream):
    body = sized_event(1048577, {"Advertising": True})
    resp = clients.post_early_reply(custom.port, "/ads", body, JSON)
    assert_outcome(resp, upstream, TOO_LARGE, body)


# ---- routes rules -------------------------------------------------------------------------------
# 1. host rules.example.com + path_prefix /rule-gated → Functional
# 2. path_prefix /rule-gated/prefix                   → Analytics
# 3. route_name rule_gated_route                      → Advertising + Analytics, match any
# 4. path_prefix /ads                                 → Functional (loses to /ads route metadata)


@pytest.fixture(scope="module")
def rules(envoys):
    return envoys.get("rules")


OTHER_HOST = JSON
RULES_HOST = {**JSON, "host": "rules.example.com"}


@pytest.mark.parametrize("path, headers, body, expect", [
    pytest.param("/rule-gated/x", OTHER_HOST, event({"Advertising": True}), ALLOW,
                 id="route-name/advertising"),
    pytest.param("/rule-gated/x", OTHER_HOST, event({"Analytics": True}), ALLOW,
                 id="route-name/analytics-match-any"),
    pytest.param("/rule-gated/x", OTHER_HOST, event({"Functional": True}),
                 denied("Advertising", "Analytics"), id="route-name/neither"),
    pytest.param("/rule-gated/x", OTHER_HOST, event(), missing(), id="route-name/missing"),
    pytest.param("/rule-gated/x", OTHER_HOST, b"[1]", INVALID, id="route-name/invalid"),
    pytest.param("/rule-gated/prefix/x", OTHER_HOST, event({"Analytics": True}), ALLOW,
                 id="path-prefix/consented"),
    pytest.param("/rule-gated/prefix/x", OTHER_HOST, event({"Advertising": True}),
                 denied("Analytics"), id="path-prefix/first-matching-rule-wins"),
    pytest.param("/rule-gated/prefix/x", RULES_HOST, event({"Analytics": True}), denied("Functional"),
                 id="host-and-prefix/first-rule"),
    pytest.param("/rule-gated/prefix/x", RULES_HOST, event({"Functional": True}), ALLOW,
                 id="host-and-prefix/consented"),
    pytest.param("/ads", OTHER_HOST, event({"Advertising": True}), ALLOW,
                 id="route-metadata-wins/consented"),
    pytest.param("/ads", OTHER_HOST, event({"Functional": True}), denied("Advertising"),
                 id="route-metadata-wins/rule-category-ignored"),
    pytest.param("/open", OTHER_HOST, event({"Advertising": False}), ALLOW, id="no-rule-matches-open"),
    pytest.param("/v1/track", OTHER_HOST, event({"Analytics": True}), ALLOW, id="default-route"),
])
def test_routes_rules(rules, upstream, path, headers, body, expect):
    post(rules, upstream, path, body, expect, headers)


# ---- metadata_namespace -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alt_namespace(envoys):
    """Reads filter_metadata.alt_consent: only /ads has it (category Functional)."""
    return envoys.get("alt_namespace")


@pytest.mark.parametrize("path, body, expect", [
    pytest.param("/ads", event({"Functional": True}), ALLOW, id="ads-functional"),
    pytest.param("/ads", event({"Advertising": True}), denied("Functional"), id="ads-advertising"),
    pytest.param("/v1/track", event(), ALLOW, id="consent_gate-namespace-ignored"),
    pytest.param("/multi", event({"Advertising": False}), ALLOW, id="multi-ungated"),
])
def test_metadata_namespace(alt_namespace, upstream, path, body, expect):
    post(alt_namespace, upstream, path, body, expect)


# ---- route_metadata: false (rules only) ----------------------------------------------------------


@pytest.fixture(scope="module")
def rules_only(envoys):
    return envoys.get("rules_only")


@pytest.mark.parametrize("path, body, expect", [
    # Route metadata is not read: /ads (Advertising in its metadata) and / (Analytics) are ungated.
    pytest.param("/ads", event({"Advertising": False}), ALLOW, id="ads-metadata-ignored"),
    pytest.param("/v1/track", event(), ALLOW, id="default-route-metadata-ignored"),
    # The rule still gates.
    pytest.param("/rule-gated/x", event({"Functional": True}), ALLOW, id="rule-consented"),
    pytest.param("/rule-gated/x", event({"Functional": False}), denied("Functional"), id="rule-refused"),
    pytest.param("/rule-gated/x", event(), missing(), id="rule-missing"),
])
def test_route_metadata_off_uses_rules_only(rules_only, upstream, path, body, expect):
    post(rules_only, upstream, path, body, expect)
