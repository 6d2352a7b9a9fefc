"""A bad plugin configuration makes `envoy --mode validate` fail, with a log line that names the
offending key. A good one validates. (`envoy --mode validate` loads the module and runs its
on_configure.)"""

import json
import re

import pytest

from harness.envoy import MODULE, module_path, render_config, validate, write_config

PROBLEM_LINE = re.compile(r"\]\[(warning|error|critical)\]")

FULL_CONFIG = {
    "metadata_namespace": "consent_gate",
    "on_missing_consent": "allow",
    "match": "any",
    "deny_status": 451,
    "max_body_bytes": 65536,
    "always_allow_events": ["Consent Change"],
    "routes": [
        {"route_name": "rule_gated_route", "categories": ["Advertising"]},
        {"host": "a.example.com", "path_prefix": "/x", "categories": ["A", "B"], "match": "all"},
    ],
}

BAD = [
    ({"deny_status": 200}, "deny_status"),
    ({"deny_status": 600}, "deny_status"),
    ({"deny_status": "403"}, "deny_status"),
    ({"on_missing_consent": "maybe"}, "on_missing_consent"),
    ({"on_missing_consent": True}, "on_missing_consent"),
    ({"match": "some"}, "match"),
    ({"max_body_bytes": -1}, "max_body_bytes"),
    ({"max_body_bytes": "1MB"}, "max_body_bytes"),
    ({"metadata_namespace": 5}, "metadata_namespace"),
    ({"always_allow_events": "Consent Change"}, "always_allow_events"),
    ({"always_allow_events": [1]}, "always_allow_events"),
    ({"routes": {}}, "routes"),
    ({"routes": [{"path_prefix": "/x", "categories": []}]}, "routes[0].categories"),
    ({"routes": [{"path_prefix": "/x", "categories": [""]}]}, "routes[0].categories"),
    ({"routes": [{"path_prefix": "/x"}]}, "routes[0].categories"),
    ({"routes": [{"path_prefix": "/x", "categories": "Advertising"}]}, "routes[0].categories"),
    ({"routes": [{"path_prefix": "/x", "categories": ["A"], "match": "most"}]}, "routes[0].match"),
    ({"routes": [{"path_prefix": "/x", "categories": ["A"]}, {"route_name": 5, "categories": ["A"]}]},
     "routes[1].route_name"),
    ({"routes": [{"path_prefix": "/x", "categories": ["A"], "colour": "blue"}]}, "colour"),
    # A host no request can have would match nothing and leave its route ungated.
    ({"routes": [{"host": "*.segment.io", "categories": ["A"]}]}, "routes[0].host"),
    ({"routes": [{"host": "api.segment.io:https", "categories": ["A"]}]}, "routes[0].host"),
    # An empty port reads as none: the rule would gate every port, not the one meant.
    ({"routes": [{"host": "api.segment.io:", "categories": ["A"]}]}, "routes[0].host"),
    # So would a pattern for a prefix, or a name or namespace with stray white space.
    ({"routes": [{"path_prefix": "/v1/*", "categories": ["A"]}]}, "routes[0].path_prefix"),
    ({"routes": [{"route_name": "ads ", "categories": ["A"]}]}, "routes[0].route_name"),
    # A list, a route template, another pattern language, a glob in a name, a host suffix.
    ({"routes": [{"path_prefix": "/v1/track,/v1/page", "categories": ["A"]}]}, "routes[0].path_prefix"),
    ({"routes": [{"path_prefix": "/v1/:type", "categories": ["A"]}]}, "routes[0].path_prefix"),
    ({"routes": [{"path_prefix": "/v1/%", "categories": ["A"]}]}, "routes[0].path_prefix"),
    ({"routes": [{"route_name": "ads*", "categories": ["A"]}]}, "routes[0].route_name"),
    ({"routes": [{"host": ".example.com", "categories": ["A"]}]}, "routes[0].host"),
    ({"metadata_namespace": " consent_gate"}, "metadata_namespace"),
    # Category names no client sends: under RudderStack's deny-only format they deny nothing.
    ({"routes": [{"path_prefix": "/x", "categories": ["Advertising "]}]}, "routes[0].categories"),
    ({"routes": [{"path_prefix": "/x", "categories": ["Advertising, Analytics"]}]},
     "routes[0].categories"),
    ({"routes": [{"path_prefix": "/x", "categories": ["C0004\u200b"]}]}, "routes[0].categories"),
    ({"colour": "blue"}, "colour"),
    # The first matching rule gates a request: one an earlier rule covers never applies.
    ({"routes": [{"path_prefix": "/", "categories": ["Analytics"]},
                 {"path_prefix": "/ads", "categories": ["Advertising"]}]}, "routes[1]"),
    ({"routes": [{"path_prefix": "/", "categories": ["Analytics"]},
                 {"route_name": "ads", "categories": ["Advertising"]}]}, "routes[1]"),
]


@pytest.fixture(scope="module")
def check(tmp_path_factory, upstream):
    if not module_path().is_file():
        pytest.fail(f"{module_path()} does not exist: run `make build` first", pytrace=False)
    workdir = tmp_path_factory.mktemp("validate")
    counter = iter(range(1000))

    def run(plugin_config):
        config = render_config(upstream_port=upstream.port, plugin_config=plugin_config,
                               access_log=workdir / "access.log")
        return validate(write_config(config, workdir / f"config-{next(counter)}.yaml"))

    return run


@pytest.mark.parametrize("plugin_config", [{}, FULL_CONFIG], ids=["empty", "every-key"])
def test_good_config_validates(check, plugin_config):
    result = check(plugin_config)
    assert result.returncode == 0, result.output[-3000:]


@pytest.mark.parametrize("plugin_config, key", BAD, ids=[json.dumps(c) for c, _ in BAD])
def test_bad_config_is_refused_naming_the_key(check, plugin_config, key):
    result = check(plugin_config)
    assert result.returncode != 0, f"validate accepted {plugin_config}"
    problems = [line for line in result.output.splitlines() if PROBLEM_LINE.search(line)]
    assert any(key in line for line in problems), (
        f"no warning/error line names {key!r}:\n" + "\n".join(problems)
    )


@pytest.mark.parametrize("raw", ["not json", "[]", '"{}"', '{"deny_status": 403'],
                         ids=["not-json", "array", "string", "truncated"])
def test_config_that_is_not_a_json_object_is_refused(check, raw):
    result = check(raw)
    assert result.returncode != 0, f"validate accepted {raw!r}"


def test_a_configuration_under_vm_config_is_refused(tmp_path, upstream):
    """Some proxy-wasm filters take their configuration from `vm_config.configuration`; this one
    reads the plugin's. One put there would leave the filter on its defaults, so the VM refuses
    to start and says where the configuration belongs."""
    if MODULE != "wasm":
        pytest.skip("the dynamic module has no VM configuration")
    config = render_config(upstream_port=upstream.port, plugin_config={})
    (gate,) = [f for f in config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
               ["typed_config"]["http_filters"] if f["name"] == "consent_gate"]
    gate["typed_config"]["config"]["vm_config"]["configuration"] = {
        "@type": "type.googleapis.com/google.protobuf.StringValue",
        "value": json.dumps({"on_unconfigured_route": "deny"}),
    }
    result = validate(write_config(config, tmp_path / "config.yaml"))
    assert result.returncode != 0, "validate accepted a vm_config.configuration"
    problems = [line for line in result.output.splitlines() if PROBLEM_LINE.search(line)]
    assert any("vm_config.configuration" in line and "config.configuration" in line
               for line in problems), "\n".join(problems)
