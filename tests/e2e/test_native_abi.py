"""What happens when the dynamic module and Envoy disagree on the ABI. A dynamic module is built
for one Envoy minor version (dist/libconsent_gate.so: Envoy 1.40, ABI "v0.2.0"); these tests patch
a copy of it the way a module built for another Envoy would differ.

- Another ABI version string: Envoy logs a deprecation warning and loads it anyway. Nothing
  checks the signatures behind the names, so this is only safe where Envoy's policy promises it
  (a module built for X.Y runs on X.Y and X.Y+1): build the module per Envoy minor version.
- A hook Envoy requires is missing (as with a module from before Envoy added it): Envoy refuses
  the configuration, at start-up and in `--mode validate`; it never runs without the filter.
"""

from __future__ import annotations

import pytest

from harness import clients
from harness.checks import assert_denied, encode, event
from harness.envoy import MODULE, native_path, render_config, validate, write_config

pytestmark = pytest.mark.skipif(MODULE != "native", reason="the dynamic module's ABI")

JSON = {"content-type": "application/json"}


def patched_copy(tmp_path, old: bytes, new: bytes):
    data = native_path().read_bytes()
    assert len(old) == len(new) and data.count(old) >= 1, old
    folder = tmp_path / "module"
    folder.mkdir()
    (folder / "libconsent_gate.so").write_bytes(data.replace(old, new))
    return folder / "libconsent_gate.so"


def test_another_abi_version_loads_with_a_warning(envoys, upstream, tmp_path):
    module = patched_copy(tmp_path, b"v0.2.0\0", b"v0.1.0\0")
    envoy = envoys.get("abi_v010", plugin_config="default", module=module)
    log = envoy.stderr_text()
    assert "Dynamic module ABI version v0.1.0 is deprecated" in log, envoy.stderr_tail()
    resp = clients.http1(envoy.port, "POST", "/ads", encode(event({"Advertising": False})), JSON)
    assert_denied(resp, upstream, 403, "FILTERED_BY_END_USER_CONSENT", ["Advertising"])


def test_a_missing_required_hook_is_refused(upstream, tmp_path):
    hook = b"envoy_dynamic_module_on_http_filter_scheduled\0"
    module = patched_copy(tmp_path, hook, hook[:-2] + b"X\0")
    config = write_config(render_config(upstream_port=upstream.port, plugin_config={}, module=module),
                          tmp_path / "envoy.yaml")
    result = validate(config, module=module)
    assert result.returncode != 0, result.output
    assert "Failed to resolve symbol envoy_dynamic_module_on_http_filter_scheduled" in result.output
