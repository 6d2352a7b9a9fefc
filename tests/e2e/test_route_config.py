"""A configuration mistake never switches the gate off, and `routes` rules cannot be bypassed.

- Route metadata with an unknown key or a mistyped value is `500 ROUTE_CONFIG_ERROR`, logged at
  error level naming the route, the key and the type; nothing reaches the upstream.
- Ungated requests are counted and recorded; `on_unconfigured_route: deny` refuses them, and
  `exempt: true` is the explicit opt-out.
- A configuration that can gate nothing is announced at start-up.
- `routes` rules match every spelling of their host and path, with and without Envoy's own
  normalisation in front of the filter.
"""

from __future__ import annotations

import re
import time

import pytest

from harness import accesslog, clients, stats
from harness.envoy import MODULE
from harness.checks import assert_allowed, assert_denied, assert_untouched, encode, event

JSON = {"content-type": "application/json"}
DENIED = encode(event({"Advertising": False, "Analytics": False}))
ALLOWED = encode(event({"Advertising": True, "Analytics": True}))

MISCONFIGURED = [
    # (path, route name, what the log line must name)
    ("/misconfigured/typo", "misconfigured_typo", ['unknown key "categroy"', 'the string "Advertising"']),
    ("/misconfigured/case", "misconfigured_case", ['unknown key "Category"']),
    ("/misconfigured/match-typo", "misconfigured_match_typo", ['unknown key "mtach"']),
    ("/misconfigured/list", "misconfigured_list", ['"category" must be a string, got a list']),
    ("/misconfigured/number", "misconfigured_number", ['"category" must be a string, got the number 5']),
    ("/misconfigured/bool", "misconfigured_bool", ['"category" must be a string, got true']),
    ("/misconfigured/categories-number", "misconfigured_number_in_list",
     ['"categories[1]" must be a string, got the number 5']),
    ("/misconfigured/gpc", "misconfigured_gpc",
     ['"gpc_denies[0]" names "Analytics", which the route does not require']),
    # The namespace is there but says nothing: a mistake, not an unconfigured route.
    ("/misconfigured/not-exempt", "misconfigured_not_exempt", ['has no "category" or "categories"']),
    # The namespace misspelled (a wasm module lists the route's namespaces, a dynamic module looks
    # up the likeliest misspellings): taken for an unconfigured route, it would pass ungated.
    ("/misconfigured/ns-hyphen", "misconfigured_ns_hyphen", ['the route has "consent-gate", a misspelling']),
    ("/misconfigured/ns-envoy", "misconfigured_ns_envoy",
     ['the route has "envoy.filters.http.consent_gate", a misspelling']),
    ("/misconfigured/ns-camel", "misconfigured_ns_camel", ['the route has "ConsentGate", a misspelling']),
    ("/misconfigured/ns-sentence", "misconfigured_ns_sentence", ['the route has "Consent_gate", a misspelling']),
]
if MODULE == "wasm":
    # Only the wasm module, which lists the route's namespaces, sees one with white space.
    MISCONFIGURED.append(("/misconfigured/ns-space", "misconfigured_ns_space",
                          ['the route has "consent_gate ", a misspelling']))
    # The dynamic module's ABI counts a namespace's keys, so it cannot tell `{}` from no
    # namespace (see test_empty_namespace_natively_reads_as_none).
    MISCONFIGURED.append(("/misconfigured/empty", "misconfigured_empty",
                          ['has no "category" or "categories"']))
    # The wasm module reads the whole Metadata message, typed_filter_metadata included.
    MISCONFIGURED.append(("/misconfigured/typed", "misconfigured_typed",
                          ["is in typed_filter_metadata", "put it in filter_metadata"]))


def wait_for_log(envoy, pattern: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in envoy.stderr_text().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line matches {pattern!r}:\n{envoy.stderr_tail()}")


@pytest.mark.parametrize("path, route, names", MISCONFIGURED, ids=[m[1] for m in MISCONFIGURED])
def test_misconfigured_route_metadata_is_refused_and_logged(gate, upstream, path, route, names):
    for body in (ALLOWED, DENIED):
        resp = clients.http1(gate.port, "POST", path + "/v1/track", body, JSON)
        assert_denied(resp, upstream, 500, "ROUTE_CONFIG_ERROR")
    line = wait_for_log(gate, rf'route "{route}": consent metadata "consent_gate"')
    assert "[error]" in line, line
    for name in names:
        assert name in line, line


@pytest.mark.skipif(MODULE != "native", reason="the wasm module refuses it (MISCONFIGURED)")
def test_empty_namespace_natively_reads_as_none(gate, upstream):
    """Envoy's dynamic-module ABI gives a namespace's keys, not whether it is there: `{}` is an
    unconfigured route to the dynamic module (ungated unless on_unconfigured_route: deny, counted
    and recorded), where the wasm module refuses it. README, "Route metadata"."""
    before = stats.counters(gate)
    resp = clients.http1(gate.port, "POST", "/misconfigured/empty/v1/track", DENIED, JSON)
    assert_allowed(resp, upstream, DENIED)
    after = stats.counters(gate)
    assert after["consent_gate.requests_ungated"] == before["consent_gate.requests_ungated"] + 1


@pytest.mark.skipif(MODULE != "native", reason="the wasm module refuses it (MISCONFIGURED)")
def test_typed_metadata_is_natively_invisible(gate, upstream):
    """The dynamic-module ABI reads filter_metadata only: a policy in typed_filter_metadata is
    an unconfigured route to the dynamic module (ungated unless on_unconfigured_route: deny,
    counted), where the wasm module refuses it. README, "Route metadata"."""
    before = stats.counters(gate)
    resp = clients.http1(gate.port, "POST", "/misconfigured/typed/v1/track", DENIED, JSON)
    assert_allowed(resp, upstream, DENIED)
    after = stats.counters(gate)
    assert after["consent_gate.requests_ungated"] == before["consent_gate.requests_ungated"] + 1


def test_a_policy_on_the_virtual_host_is_not_read(gate, upstream):
    """A policy on the virtual host, not the route: the wasm module reads the virtual host's
    metadata on unconfigured routes and refuses them (`500 ROUTE_CONFIG_ERROR`); the dynamic
    module's interface cannot read it, so there the route is unconfigured (ungated unless
    on_unconfigured_route: deny, counted). README, "Route metadata"."""
    headers = {**JSON, "host": "vh-policy.example"}
    if MODULE == "wasm":
        resp = clients.http1(gate.port, "POST", "/v1/track", DENIED, headers)
        assert_denied(resp, upstream, 500, "ROUTE_CONFIG_ERROR")
        line = wait_for_log(gate, r'route "vh_policy_route": consent metadata "consent_gate" is on')
        assert "virtual host" in line and "[error]" in line, line
        return
    before = stats.counters(gate)
    resp = clients.http1(gate.port, "POST", "/v1/track", DENIED, headers)
    assert_allowed(resp, upstream, DENIED)
    after = stats.counters(gate)
    assert after["consent_gate.requests_ungated"] == before["consent_gate.requests_ungated"] + 1


def test_exempt_route_passes_counted_and_recorded(gate, upstream):
    before = stats.counters(gate)
    rid = accesslog.new_id("exempt")
    resp = clients.http1(gate.port, "POST", "/exempt/v1/track", DENIED, accesslog.tag(JSON, rid))
    assert_allowed(resp, upstream, DENIED)
    after = stats.counters(gate)
    assert after["consent_gate.requests_exempt"] == before["consent_gate.requests_exempt"] + 1
    assert after["consent_gate.requests_judged"] == before["consent_gate.requests_judged"]
    assert accesslog.wait_for(gate, rid).decision == "exempt"


@pytest.mark.parametrize("path", ["/open/..%2fads/v1/track", "/exempt/..%5Cads/v1/track",
                                  "/open/x/..%2F..%2fads/v1/track", "/zzz/..%2fads/v1/track",
                                  # Decoded by a proxy, then again by the server behind it.
                                  "/zzz/..%252fads/v1/track", "/open/..%252fads/v1/track",
                                  # A single dot: Envoy routes on `/.%2Fads`, nginx serves `/ads`.
                                  "/.%2Fads/v1/track",
                                  # IIS's http.sys decodes `%uNNNN` by default.
                                  "/open/%u002e%u002e/ads/v1/track", "/open/%25u002e%25u002e/ads/v1/track",
                                  # A query a decoding proxy finds in `%3F`.
                                  "/open/v1/track%3Fdata=e30", "/ads/v1/pixel/track%3Fdata=e30",
                                  # No dot segment: Go's router, Flask, Django and Sinatra decode
                                  # `%2F` and run the `/ads/v1/track` handler.
                                  "/ads%2fv1/track", "/ads%5cv1/track", "/open/a%2Fb/v1/track",
                                  # Starlette matches `/v1/identify\n` as `/v1/identify`.
                                  "/v1/identify%0a", "/open/v1/track%0A",
                                  # Case-insensitive routers fold the Kelvin sign, `ſ`, `ı` and
                                  # `İ` onto ASCII letters (Fastify's find-my-way, Go's
                                  # EqualFold, .NET, Java), Envoy's `case_sensitive: false` does
                                  # not: `/ad%C5%BF` falls to the catch-all, and Fastify
                                  # serves `/ads`.
                                  "/ad%C5%BF/v1/track", "/faceboo%E2%84%AA/v1/track",
                                  "/ad%25C5%25BF/v1/track", "/v1/%C4%B1dentify", "/v1/%C4%B0dentify",
                                  # Half escaped again: a byte-wise decoder completes it.
                                  "/faceboo%E2%84%25AA/v1/track",
                                  # Still escaped after four decodings: a fifth is not followed.
                                  "/open/..%252525252fads/v1/track", "/ads%252525252Fv1/track",
                                  # Unicode normalisation (NFKC) or Windows' best-fit makes these
                                  # `.`, `/`, `?`; lenient decoders read overlong UTF-8 forms.
                                  "/open/%EF%BC%8E%EF%BC%8E/ads/v1/track",
                                  "/open/..%EF%BC%8Fads/v1/track", "/open/..%E2%88%95ads/v1/track",
                                  "/open/v1/track%EF%BC%9Fdata=e30",
                                  "/open/%C0%AE%C0%AE/ads/v1/track", "/open/..%C0%AFads/v1/track",
                                  # NFKC: `⁈` is `?!`, `⒈` is `1.`.
                                  "/open/v1/track%E2%81%88&data=e30", "/open/%E2%92%88/v1/track"])
def test_a_path_a_decoding_server_reads_as_another_route_is_refused(gate, upstream, path):
    """Envoy routes these on `/open`, `/exempt` or the catch-all `/` (gated on Analytics only:
    it keeps `%2F` and `%5C` as they are); servers that decode them serve another handler (nginx,
    resolving the dot segments after decoding, serves `/ads/v1/track`)."""
    resp = clients.http1(gate.port, "POST", path, DENIED, JSON)
    assert_denied(resp, upstream, 400, "INVALID_EVENT")
    # The same route, with a path that a decoding server reads as sent, is ungated as before.
    upstream.reset()
    resp = clients.http1(gate.port, "POST", "/open/a%41b/v1/track", DENIED, JSON)
    assert_allowed(resp, upstream, DENIED)


@pytest.mark.parametrize("path", ["/v1/identify/x", "/v1/identify/track", "/v1/batch/x",
                                  "/sdk/identify/track", "/v2/identify/x", "/ads/identify/t"])
def test_a_call_named_before_the_last_segment_counts(gate, upstream, path):
    """Handlers that take the segments after their own (CherryPy's `*args`, Go's `/v1/identify/`
    or `/sdk/identify/` subtree pattern, Express's `app.use('/sdk/identify', …)`) run the
    identify handler for `/v1/identify/x`: an allow-listed track there is no track to them."""
    body = encode(event(name="Segment Consent Preference Updated"))
    resp = clients.http1(gate.port, "POST", path, body, JSON)
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


@pytest.mark.parametrize("path", ["/v1/identify;/x", "/v1/batch;/x", "/v1/pixel/track;data=e30",
                                  "/v1/track;jsessionid=1"])
def test_a_semicolon_on_a_gated_route_is_a_query(gate, upstream, path):
    """Fastify 4's router (find-my-way) ends the path at `;` as at `?`: `/v1/identify;/x` runs
    its `/v1/identify` handler (an allow-listed track read as an identify), and what follows is
    its query (`data=…`, the pixel API's unjudged event)."""
    body = encode(event(name="Segment Consent Preference Updated"))
    resp = clients.http1(gate.port, "POST", path, body, JSON)
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


def test_unconfigured_routes_refused_when_every_route_must_carry_a_policy(envoys, upstream):
    envoy = envoys.get("unconfigured_deny")
    resp = clients.http1(envoy.port, "POST", "/open/v1/track", ALLOWED, JSON)
    assert_denied(resp, upstream, 500, "ROUTE_CONFIG_ERROR")
    line = wait_for_log(envoy, r"has no consent policy")
    assert "[error]" in line and "on_unconfigured_route is deny" in line, line
    upstream.reset()
    # The explicit opt-out and gated routes still work.
    resp = clients.http1(envoy.port, "POST", "/exempt", DENIED, JSON)
    assert_allowed(resp, upstream, DENIED)
    upstream.reset()
    resp = clients.http1(envoy.port, "POST", "/ads", encode(event({"Advertising": True})), JSON)
    assert resp.status == 200, resp


def test_dry_run_is_announced(envoys):
    line = wait_for_log(envoys.get("dry_run"), r"dry_run is on")
    assert "[warning]" in line and "nothing is refused" in line, line


def test_a_configuration_that_gates_nothing_is_announced(envoys, upstream):
    envoy = envoys.get("gates_nothing")
    line = wait_for_log(envoy, r"gates nothing")
    assert "[warning]" in line, line
    # And it does what it says: ungated, counted.
    resp = clients.http1(envoy.port, "POST", "/ads", DENIED, JSON)
    assert_allowed(resp, upstream, DENIED)
    assert stats.counters(envoy)["consent_gate.requests_ungated"] == 1


TARGETS = [
    ("api.example.com", "/v1/track"),
    ("api.example.com.", "/v1/track"),
    ("api.example.com.:10000", "/v1/track"),
    ("API.EXAMPLE.COM", "/v1/track"),
    ("Api.Example.Com.:443", "/v1/track"),
    ("api.example.com", "//v1/track"),
    ("api.example.com", "/v1//track"),
    ("api.example.com", "/x/../v1/track"),
    ("api.example.com", "/./v1/./track"),
    ("api.example.com", "/v1/%74rack"),
    ("api.example.com", "/%76%31/track"),
    ("api.example.com", "/V1/TRACK"),
    # Go's EqualFold folds the Kelvin sign onto `k` (a case-insensitive Go router routes it):
    # refused on every route, before any rule (see FOLDED).
    ("api.example.com", "/v1/trac%E2%84%AA"),
    ("api.example.com", "/v1/TRAC%E2%84%AA.json"),
]


NOT_NORMAL = {"//v1/track", "/v1//track", "/x/../v1/track", "/./v1/./track", "/v1/%74rack",
              "/%76%31/track"}
# Letters that case-insensitive routers fold onto ASCII ones and Envoy does not: refused on every
# route, normalised or not, whatever the rules say.
FOLDED = {"/v1/trac%E2%84%AA", "/v1/TRAC%E2%84%AA.json"}


@pytest.mark.parametrize("normalized", [True, False], ids=["envoy-normalizes", "filter-alone"])
@pytest.mark.parametrize("host, path", TARGETS, ids=[f"{h} {p}" for h, p in TARGETS])
def test_rules_cannot_be_bypassed_by_spelling(envoys, upstream, normalized, host, path):
    name = "target_rules" if normalized else "target_rules_raw"
    envoy = envoys.get(name, plugin_config="target_rules", envoy_normalization=normalized)
    resp = clients.http1(envoy.port, "POST", path, DENIED, {**JSON, "host": host})
    if path in FOLDED:
        assert_denied(resp, upstream, 400, "INVALID_EVENT")
    elif normalized or (path not in NOT_NORMAL and not host.split(":")[0].endswith(".")):
        assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])
    else:
        # Without Envoy's normalisation, a path not in normal form or a host with a trailing
        # dot is refused on every route, before any rule: Envoy routed it as sent, the
        # destination reads its normal form.
        assert_denied(resp, upstream, 400, "INVALID_EVENT")


IP_SPELLINGS = ["10.5", "10.0.5:8080", "012.0.0.5", "0xa.0.0.5", "167772165", "0xa000005",
                "[::ffff:10.0.0.5]", "[::ffff:a00:5]", "[0:0:0:0:0:FFFF:A00:5]:443"]


@pytest.mark.parametrize("normalized", [True, False], ids=["envoy-normalizes", "filter-alone"])
@pytest.mark.parametrize("host", ["10.0.0.5", "10.0.0.5:8080"])
def test_a_rule_for_an_ip_address_gates_it(envoys, upstream, normalized, host):
    name = "target_rules" if normalized else "target_rules_raw"
    envoy = envoys.get(name, plugin_config="target_rules", envoy_normalization=normalized)
    resp = clients.http1(envoy.port, "POST", "/v1/track", DENIED, {**JSON, "host": host})
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])


@pytest.mark.parametrize("normalized", [True, False], ids=["envoy-normalizes", "filter-alone"])
@pytest.mark.parametrize("host", IP_SPELLINGS)
def test_an_ip_address_in_another_spelling_is_refused(envoys, upstream, normalized, host):
    """`inet_aton` (glibc's getaddrinfo: curl, Python, Node, a forward proxy's resolver) and URL
    parsers read each of these as 10.0.0.5, and a dual-stack socket reaches it through the mapped
    IPv6 address; a virtual host for `10.0.0.5` does not match them, so
    on every route they are refused (and a `host` rule for the address matches them too)."""
    name = "target_rules" if normalized else "target_rules_raw"
    envoy = envoys.get(name, plugin_config="target_rules", envoy_normalization=normalized)
    resp = clients.http1(envoy.port, "POST", "/open/v1/track", ALLOWED, {**JSON, "host": host})
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


OTHER_TARGETS = [
    {"host": "api.example.com:080"},
    {"host": "api.example.com:"},
    {"host": "api.example.com:0"},
    {"host": "api.example.com:80:80"},
    {"host": "api.example.com:x"},
    {"x-forwarded-host": "ads.example.com"},
    {"x-forwarded-host": "api.example.com, ads.example.com"},
    {"forwarded": "for=192.0.2.1;host=ads.example.com;proto=https"},
    {"x-original-host": "ads.example.com"},
    {"forwarded": "for=192.0.2.1;xhost=ads.example.com"},
    {"x-forwarded-server": "ads.example.com"},
    {"forwarded": "host=" * 2000},
    {"host": "[::ffff:127.0.0.1]"},
    {"x-original-url": "/ads/v1/identify"},
    {"x-rewrite-url": "/ads/v1/identify"},
]


@pytest.mark.parametrize("path", ["/open/v1/track", "/ads/v1/track"])
@pytest.mark.parametrize("headers", OTHER_TARGETS, ids=[str(h)[:60] for h in OTHER_TARGETS])
def test_a_target_receivers_read_otherwise_is_refused_on_every_route(gate, upstream, path, headers):
    """Envoy chose the route by the authority as sent and by `:path`. `api.example.com:080` (or
    `:80:80`, an empty port) reaches a catch-all virtual host while Express (which cuts at the
    first `:`) or a forward proxy (which reads `080` as 80) takes it for `api.example.com`;
    Express with `trust proxy` and Werkzeug's ProxyFix route by `x-forwarded-host`, IIS and
    Symfony by `x-original-url`. Refused on every route, gated or not."""
    resp = clients.http1(gate.port, "POST", path, ALLOWED, {**JSON, "host": "api.example.com", **headers})
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


@pytest.mark.parametrize("headers", [{"x-forwarded-host": "API.example.com:443"},
                                     {"forwarded": "for=192.0.2.1;proto=https"},
                                     {"x-original-url": "/ads/v1/track"}])
def test_the_same_target_named_again_passes(gate, upstream, headers):
    resp = clients.http1(gate.port, "POST", "/ads/v1/track", ALLOWED,
                         {**JSON, "host": "api.example.com", **headers})
    assert_allowed(resp, upstream, ALLOWED)


@pytest.mark.parametrize("host", ["api.example.com:80:80", "api.example.com:x"])
def test_a_host_readers_split_differently_is_refused_under_host_rules(envoys, upstream, host):
    """Envoy forwards these Host values as they are; Express reads `api.example.com` in each
    (it cuts at the first `:`), so they may not pass as another host, ungated."""
    envoy = envoys.get("target_rules_raw", plugin_config="target_rules", envoy_normalization=False)
    resp = clients.http1(envoy.port, "POST", "/v1/track", DENIED, {**JSON, "host": host})
    assert_denied(resp, upstream, 400, "INVALID_EVENT")


def test_two_host_lines_are_refused_under_host_rules(envoys, upstream):
    """Envoy joins two Host lines into `api.example.com,other.example`."""
    envoy = envoys.get("target_rules_raw", plugin_config="target_rules", envoy_normalization=False)
    head = (b"POST /v1/track HTTP/1.1\r\nhost: api.example.com\r\nhost: other.example\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(DENIED))
    with clients.RawHttp1(envoy.port) as conn:
        conn.send(head + DENIED)
        resp = conn.read_response()
    assert resp.status in (400, 403), resp
    assert_untouched(upstream)


def test_rules_gate_only_their_target(envoys, upstream):
    envoy = envoys.get("target_rules_raw", plugin_config="target_rules", envoy_normalization=False)
    for host, path in [("api.example.org", "/v1/track"), ("api.example.com", "/v1/identify")]:
        upstream.reset()
        resp = clients.http1(envoy.port, "POST", path, DENIED, {**JSON, "host": host})
        assert_allowed(resp, upstream, DENIED)
