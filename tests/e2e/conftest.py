"""Fixtures: one recording upstream for the session, and Envoys started on demand (one per plugin
configuration, shared by every test that uses it, all stopped at the end of the session)."""

from __future__ import annotations

import re

import pytest

from harness.envoy import MODULE, Envoy, module_path, render_config
from harness.upstream import RecordingUpstream

CRASH_LINE = re.compile(r"panicked|RuntimeError|Wasm VM failed|wasm trap|Function: proxy_on_\w+ failed"
                        r"|a panic was caught")

# The plugin configurations the suite runs Envoy with, by name.
PLUGIN_CONFIGS = {
    "default": {},
    "missing_allow": {"on_missing_consent": "allow"},
    "custom": {
        "deny_status": 451,
        "match": "any",
        "always_allow_events": ["Opt Out Recorded"],
    },
    "rules": {
        "routes": [
            {"host": "rules.example.com", "path_prefix": "/rule-gated", "categories": ["Functional"]},
            {"path_prefix": "/rule-gated/prefix", "categories": ["Analytics"]},
            {
                "route_name": "rule_gated_route",
                "categories": ["Advertising", "Analytics"],
                "match": "any",
            },
            # Route metadata wins over rules: /ads stays Advertising.
            {"path_prefix": "/ads", "categories": ["Functional"]},
        ]
    },
    "small_body": {"max_body_bytes": 1024},
    "alt_namespace": {"metadata_namespace": "alt_consent"},
    "rules_only": {
        "route_metadata": False,
        "routes": [{"path_prefix": "/rule-gated", "categories": ["Functional"]}],
    },
    "batch_reject": {"batch_mode": "reject"},
    "deny_429": {"deny_status": 429},  # a status the Segment client retries
    "metrics": {"max_body_bytes": 4096},
    "category_names": {
        "route_metadata": False,
        "routes": [{"path_prefix": "/share-a", "categories": ["Data Sharing"]},
                   {"path_prefix": "/share-b", "categories": ["Data_Sharing"]},
                   {"path_prefix": "/share-c", "categories": ["Data.Sharing"]},
                   {"path_prefix": "/jp-a", "categories": ["\u5e83\u544a"]},
                   {"path_prefix": "/jp-b", "categories": ["\u5ba3\u4f1d"]}],
    },
    # Google Consent Mode's names, and a category whose name starts another's.
    "category_words": {
        "route_metadata": False,
        "routes": [{"path_prefix": "/gcm", "categories": ["ad_storage", "ad_user_data"]},
                   {"path_prefix": "/ads-personalization", "categories": ["Ads", "AdsPersonalization"],
                    "match": "any"}],
    },
    "iubenda": {
        "route_metadata": False,
        "consent_format": "rudderstack",
        "routes": [{"path_prefix": "/iub", "categories": ["5"]}],
    },
    "unconfigured_deny": {"on_unconfigured_route": "deny"},
    "gates_nothing": {"route_metadata": False},
    "target_rules": {
        "route_metadata": False,
        "routes": [{"host": "api.example.com", "path_prefix": "/v1/track", "categories": ["Advertising"]},
                   {"host": "10.0.0.5", "categories": ["Advertising"]}],
    },
    "dry_run": {"dry_run": True, "max_body_bytes": 4096},
    "rudderstack": {"consent_format": "rudderstack"},
    "auto": {"consent_format": "auto"},
    "no_record": {"decision_record": False},
    "sources_rules": {
        "route_metadata": False,
        "consent_format": "auto",
        "routes": [{"path_prefix": "/", "categories": ["Advertising"], "destination": "Mixpanel",
                    "gpc_denies": ["Advertising"]}],
    },
}


class EnvoyPool:
    def __init__(self, upstream: RecordingUpstream, tmp_path_factory):
        self.upstream = upstream
        self.tmp_path_factory = tmp_path_factory
        self.envoys: dict[str, Envoy] = {}

    def get(self, name: str, *, plugin_config: str | None = None, concurrency: int = 1,
            passthrough: bool = False, envoy_normalization: bool = True, expect_crash: bool = False,
            **render) -> Envoy:
        """The Envoy called `name`, started on first use. Its plugin configuration is
        PLUGIN_CONFIGS[plugin_config or name]; `passthrough` runs it without the filter;
        `envoy_normalization=False` without Envoy's own path and host normalisation; `render`
        goes to render_config (`module`, `failure_policy`, `allow_on_headers_stop_iteration`). `expect_crash`: the test crashes its
        filter on purpose, so the end-of-session crash check skips it."""
        envoy = self.envoys.get(name)
        if envoy is not None:
            if not envoy.is_running():
                pytest.fail(f"envoy {name} died during the session:\n{envoy.stderr_tail()}", pytrace=False)
            return envoy
        if not passthrough and not module_path().is_file():
            pytest.fail(f"{module_path()} does not exist: run `make build` first", pytrace=False)
        workdir = self.tmp_path_factory.mktemp(f"envoy-{name}")
        config = render_config(
            upstream_port=self.upstream.port,
            plugin_config=None if passthrough else PLUGIN_CONFIGS[plugin_config or name],
            access_log=workdir / "access.log",
            passthrough=passthrough,
            envoy_normalization=envoy_normalization,
            **render,
        )
        envoy = Envoy(name, workdir, config, concurrency=concurrency, module=render.get("module"))
        envoy.expect_crash = expect_crash
        self.envoys[name] = envoy
        return envoy.start()

    def stop_all(self) -> list[str]:
        """Stop every Envoy; return the crash lines (wasm panics, VM failures) their logs hold."""
        crashes = []
        for envoy in self.envoys.values():
            envoy.stop()
            if envoy.expect_crash:
                continue
            for line in envoy.stderr_text().splitlines():
                if CRASH_LINE.search(line):
                    crashes.append(f"{envoy.name}: {line}")
        return crashes


@pytest.fixture(scope="session")
def upstream():
    server = RecordingUpstream()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _fresh_upstream(upstream):
    """Every test starts with an upstream that has recorded nothing."""
    upstream.reset()
    yield


@pytest.fixture(scope="session")
def envoys(upstream, tmp_path_factory):
    pool = EnvoyPool(upstream, tmp_path_factory)
    yield pool
    crashes = pool.stop_all()
    # Reported as an error at teardown: the filter must not panic on any input.
    assert not crashes, "the filter crashed during the session:\n" + "\n".join(crashes[:20])


@pytest.fixture(scope="session")
def passthrough(envoys) -> Envoy:
    """Envoy with the canonical config minus the consent_gate filter: proves the harness."""
    return envoys.get("passthrough", passthrough=True)


@pytest.fixture(scope="session")
def gate(envoys) -> Envoy:
    """Envoy with the filter and the default plugin configuration `{}`."""
    return envoys.get("default")


@pytest.fixture(scope="session")
def small(envoys) -> Envoy:
    """Envoy with max_body_bytes: 1024."""
    return envoys.get("small_body")
