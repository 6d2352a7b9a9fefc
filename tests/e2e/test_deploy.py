"""Release artifacts and deployment manifests (deploy/), checked as far as this machine can: it has
no container engine and no Kubernetes, but it has Envoy, the module, umoci, skopeo, a registry and
docker-compose.

- `make dist oci` output: the versioned module and its checksum; the OCI layout (index -> manifest
  -> config and layer, digests, sizes, media types, the plugin.wasm inside); the layout rebuilt
  gives the same digests; pushed to a local registry and pulled back, the module is unchanged.
- docker-compose: the file parses, its mounts exist, its ports agree with the Envoy config, and
  the very same Envoy config runs here with the service names mapped to 127.0.0.1, in front of the
  compose's own destination script, while the compose's own e2e script passes (and fails against
  an Envoy without the filter).
- Istio and Envoy Gateway: every manifest parses; each patch, applied to a sidecar-like or
  gateway-like Envoy config as the control plane would apply it, passes `envoy --mode validate`
  (which loads the module and runs its configuration check) and gates requests; a deliberately
  broken plugin configuration is refused.

These tests need `make build` and `make dist oci` to have run, and the Debian packages umoci,
skopeo, docker-registry and docker-compose.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from harness.deploy import (
    DEPLOY,
    DIST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    REPO,
    ROUTER,
    WASM_TYPE,
    EnvoyRun,
    Registry,
    ScriptRun,
    bootstrap,
    cargo_version,
    deep_merge,
    free_port,
    hcm_of,
    http_request,
    json_pointer_add,
    listeners,
    need_command,
    plugin_config,
    read_oci_layout,
    set_local_module,
    set_plugin_config,
    sha256_hex,
    skopeo,
    static_cluster,
    tar_members,
    wasm_filters,
    yaml_documents,
)
from harness.envoy import validate, wasm_path

# The release artifacts and manifests carry the wasm module: checked in the suite's wasm run only.
pytestmark = pytest.mark.skipif(
    os.environ.get("CONSENT_GATE_MODULE", "wasm") != "wasm",
    reason="deploy/ and the release artifacts are the wasm module's: checked in the wasm run",
)

VERSION = cargo_version()
RELEASE_WASM = DIST / f"consent_gate-{VERSION}.wasm"
RELEASE_SHA = DIST / f"consent_gate-{VERSION}.wasm.sha256"
OCI_LAYOUT = DIST / "oci"
COMPOSE_DIR = DEPLOY / "compose"
ISTIO_DIR = DEPLOY / "istio"
EG_DIR = DEPLOY / "envoy-gateway"


def require_release() -> None:
    missing = [p for p in (RELEASE_WASM, RELEASE_SHA, OCI_LAYOUT / "index.json") if not p.exists()]
    if missing:
        pytest.fail(
            "missing " + ", ".join(str(p.relative_to(REPO)) for p in missing)
            + ": run `make dist oci` before the end-to-end tests",
            pytrace=False,
        )


def require_module() -> Path:
    if not wasm_path().is_file():
        pytest.fail(f"{wasm_path()} does not exist: run `make build` first", pytrace=False)
    return wasm_path()


# --- release artifacts ----------------------------------------------------------------------------


def test_release_module_and_checksum():
    require_release()
    module = RELEASE_WASM.read_bytes()
    assert module[:4] == b"\0asm", f"{RELEASE_WASM.name} is not a wasm module"
    line = RELEASE_SHA.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}  " + re.escape(RELEASE_WASM.name) + r"\n", line), (
        f"{RELEASE_SHA.name} is not in sha256sum format: {line!r}"
    )
    assert line.split()[0] == sha256_hex(module), f"{RELEASE_SHA.name} does not match the module"
    # The released module is the one `make build` made and the other end-to-end tests run.
    assert module == require_module().read_bytes(), (
        f"{RELEASE_WASM.name} differs from dist/consent_gate.wasm: the module was rebuilt after "
        "`make dist`; run `make dist oci` again"
    )
    check = subprocess.run(["sha256sum", "-c", RELEASE_SHA.name], cwd=DIST, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_oci_layout_holds_the_module_as_a_compat_wasm_image():
    require_release()
    image = read_oci_layout(OCI_LAYOUT, VERSION)  # every digest and size checked on the way
    manifest = image.manifest
    assert manifest["config"]["mediaType"] == OCI_CONFIG
    # Istio's and Envoy Gateway's fetchers take the last layer, require this media type, and read
    # the tar entry plugin.wasm; the compat spec wants exactly one layer and this annotation.
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_LAYER_GZIP]
    annotations = manifest.get("annotations", {})
    assert annotations.get("module.wasm.image/variant") == "compat"
    assert annotations.get("org.opencontainers.image.version") == VERSION
    assert annotations.get("org.opencontainers.image.licenses") == "Apache-2.0"

    files, raw_tar = tar_members(image.layers[0])
    assert image.config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(raw_tar)]}
    assert (image.config["os"], image.config["architecture"]) == ("wasip1", "wasm")
    assert len(raw_tar) % 512 == 0 and raw_tar[-1024:] == bytes(1024), "the layer's tar has no end blocks"
    assert list(files) == ["plugin.wasm"], f"the layer holds {list(files)}, not only plugin.wasm"
    member, data = files["plugin.wasm"]
    assert member.isfile() and member.mode == 0o644 and (member.uid, member.gid) == (0, 0)
    assert data == RELEASE_WASM.read_bytes(), "plugin.wasm differs from the released module"
    assert data == require_module().read_bytes(), "plugin.wasm differs from dist/consent_gate.wasm"


def test_oci_layout_is_reproducible(tmp_path):
    """The same module and timestamp give the same image, digest for digest."""
    require_release()
    need_command("umoci")
    image = read_oci_layout(OCI_LAYOUT, VERSION)
    created = datetime.strptime(image.config["created"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    epoch = str(int(created.timestamp()))
    rebuilt = tmp_path / "oci"
    run = subprocess.run(
        [str(REPO / "tools" / "oci-image.sh"), str(RELEASE_WASM), str(rebuilt), VERSION],
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    again = read_oci_layout(rebuilt, VERSION)
    assert again.manifest_descriptor["digest"] == image.manifest_descriptor["digest"]
    assert sorted(p.name for p in (rebuilt / "blobs" / "sha256").iterdir()) == sorted(
        p.name for p in (OCI_LAYOUT / "blobs" / "sha256").iterdir()
    )


def test_oci_image_round_trip_through_a_registry(tmp_path):
    """Pushed to a registry (the CNCF distribution registry) with skopeo and pulled back into a new
    layout: same manifest digest (what an Istio `sha256` pins), same module bytes."""
    require_release()
    image = read_oci_layout(OCI_LAYOUT, VERSION)
    registry = Registry(tmp_path / "registry").start()
    try:
        remote = f"docker://{registry.address}/consent-gate:{VERSION}"
        push = skopeo("copy", "--preserve-digests", "--dest-tls-verify=false",
                      f"oci:{OCI_LAYOUT}:{VERSION}", remote, workdir=tmp_path)
        assert push.returncode == 0, push.stdout + push.stderr
        raw = skopeo("inspect", "--raw", "--tls-verify=false", remote, workdir=tmp_path)
        assert raw.returncode == 0, raw.stderr
        assert raw.stdout.encode() == image.manifest_bytes, "the registry holds another manifest"
        digest = skopeo("inspect", "--format", "{{.Digest}}", "--tls-verify=false", remote, workdir=tmp_path)
        assert digest.stdout.strip() == image.manifest_descriptor["digest"]
        pulled_dir = tmp_path / "pulled"
        pull = skopeo("copy", "--src-tls-verify=false", remote, f"oci:{pulled_dir}:{VERSION}", workdir=tmp_path)
        assert pull.returncode == 0, pull.stdout + pull.stderr
    finally:
        registry.stop()
    pulled = read_oci_layout(pulled_dir, VERSION)
    assert pulled.manifest_descriptor["digest"] == image.manifest_descriptor["digest"]
    files, _ = tar_members(pulled.layers[-1])
    assert files["plugin.wasm"][1] == RELEASE_WASM.read_bytes()


# --- docker-compose -------------------------------------------------------------------------------


def compose() -> dict:
    (doc,) = yaml_documents(COMPOSE_DIR / "compose.yaml")
    return doc


def mounts(service: dict) -> dict[str, Path]:
    """container path -> host path, for a service's bind mounts (relative to the compose file)."""
    found = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        found[container] = (COMPOSE_DIR / host).resolve()
    return found


def published_ports(service: dict) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) for a service's published ports."""
    found = []
    for port in service.get("ports", []):
        parts = str(port).split(":")
        assert len(parts) == 3, f"publish {port!r} on an explicit host address (127.0.0.1)"
        found.append((parts[0], int(parts[1]), int(parts[2])))
    return found


def compose_envoy_config() -> tuple[dict, dict[str, Path]]:
    """The Envoy config the compose's envoy service runs (found through its -c argument and its
    mounts), and the service's mounts."""
    envoy = compose()["services"]["envoy"]
    command = envoy["command"]
    config_in_container = command[command.index("-c") + 1]
    service_mounts = mounts(envoy)
    assert config_in_container in service_mounts, f"{config_in_container} is not mounted"
    (config,) = yaml_documents(service_mounts[config_in_container])
    return config, service_mounts


def service_address(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/?", url)
    assert match, f"{url!r} is not http://<service>:<port>"
    return match[1], int(match[2])


def test_compose_file_parses_with_docker_compose(tmp_path):
    tool = need_command("docker-compose")
    run = subprocess.run([tool, "-f", "compose.yaml", "config"], cwd=COMPOSE_DIR,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    resolved = yaml.safe_load(run.stdout)
    assert set(resolved["services"]) == {"envoy", "destination", "e2e"}
    # The tool does refuse a broken file (so this check can fail): e2e waiting on a missing service.
    broken = compose()
    broken["services"]["e2e"]["depends_on"]["nowhere"] = {"condition": "service_healthy"}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    bad = subprocess.run([tool, "-f", "compose.yaml", "config"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "nowhere" in bad.stdout + bad.stderr


def test_compose_mounts_ports_and_order_agree_with_the_envoy_config():
    require_module()
    services = compose()["services"]
    assert services["envoy"]["image"] == "envoyproxy/envoy:v1.40.0"
    for name, service in services.items():
        for container, host in mounts(service).items():
            assert host.exists(), f"{name} mounts {host} at {container}, and it does not exist"
            assert host.is_file(), f"{name} mounts {host}, which is not a file (Docker would mount a directory)"

    config, envoy_mounts = compose_envoy_config()
    (wasm,) = wasm_filters(config)
    module_in_container = wasm["config"]["vm_config"]["code"]["local"]["filename"]
    assert module_in_container in envoy_mounts, f"the module path {module_in_container} is not mounted"
    assert envoy_mounts[module_in_container] == (REPO / "dist" / "consent_gate.wasm").resolve()

    # Published ports: on the host's loopback only, onto the ports Envoy listens on.
    (listener,) = listeners(config)
    envoy_ports = {
        listener["address"]["socket_address"]["port_value"]: "listener",
        config["admin"]["address"]["socket_address"]["port_value"]: "admin",
    }
    for address, host_port, container_port in published_ports(services["envoy"]):
        assert address == "127.0.0.1", "publish Envoy's ports on 127.0.0.1 only (the admin has no auth)"
        assert container_port in envoy_ports, f"port {container_port} is published, Envoy does not listen on it"
    assert sorted(c for _, _, c in published_ports(services["envoy"])) == sorted(envoy_ports)
    assert listener["address"]["socket_address"]["address"] == "0.0.0.0"
    assert config["admin"]["address"]["socket_address"]["address"] == "0.0.0.0"

    # The destination: the cluster reaches it by service name on the port it listens on.
    (cluster,) = config["static_resources"]["clusters"]
    assert cluster["type"] == "STRICT_DNS"
    (endpoint,) = [e for g in cluster["load_assignment"]["endpoints"] for e in g["lb_endpoints"]]
    socket_address = endpoint["endpoint"]["address"]["socket_address"]
    destination_port = int(services["destination"]["environment"]["LISTEN_PORT"])
    assert (socket_address["address"], socket_address["port_value"]) == ("destination", destination_port)

    # The e2e service's addresses name services and ports that exist.
    listening = {("envoy", p) for p in envoy_ports} | {("destination", destination_port)}
    for key in ("ENVOY_URL", "ENVOY_ADMIN_URL", "DESTINATION_URL"):
        target = service_address(services["e2e"]["environment"][key])
        assert target in listening, f"e2e's {key} points at {target}, where nothing listens"
    assert service_address(services["e2e"]["environment"]["ENVOY_URL"])[1] == (
        listener["address"]["socket_address"]["port_value"]
    )

    # Start order: e2e after both are healthy, Envoy after the destination; both have a healthcheck.
    assert services["e2e"]["depends_on"] == {
        "envoy": {"condition": "service_healthy"},
        "destination": {"condition": "service_healthy"},
    }
    assert services["envoy"]["depends_on"] == {"destination": {"condition": "service_healthy"}}
    for name in ("envoy", "destination"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_compose_envoy_config_keeps_every_setting_of_the_demo_config():
    """deploy/compose/envoy.yaml is envoy/demo.yaml with other addresses and module path."""
    config, _ = compose_envoy_config()
    (demo,) = yaml_documents(REPO / "envoy" / "demo.yaml")

    def normalised(c: dict) -> dict:
        c = copy.deepcopy(c)
        c["admin"]["address"] = None
        (listener,) = listeners(c)
        listener["address"] = None
        (wasm,) = wasm_filters(c)
        wasm["config"]["vm_config"]["code"] = None
        hcm = hcm_of(listener)
        for route in hcm["route_config"]["virtual_hosts"][0]["routes"]:
            route["route"]["cluster"] = None
        c["static_resources"]["clusters"] = None
        return c

    assert normalised(config) == normalised(demo)


def local_compose_run(tmp_path: Path, with_filter: bool) -> subprocess.CompletedProcess:
    """The compose setup as local processes: the compose's destination command, its Envoy config
    with service names mapped to 127.0.0.1 and ports to free ones, and its e2e command with its
    environment rewritten the same way. Returns the e2e run."""
    services = compose()["services"]
    config, envoy_mounts = compose_envoy_config()
    ports: dict[tuple[str, int], int] = {}

    def command(service: dict) -> list[str]:
        argv = list(service["command"])
        assert argv[0] == "python", argv
        service_mounts = mounts(service)
        return [sys.executable] + [str(service_mounts.get(arg, arg)) for arg in argv[1:]]

    # The destination, on a free port instead of its container port.
    destination = services["destination"]
    destination_port = int(destination["environment"]["LISTEN_PORT"])
    ports[("destination", destination_port)] = free_port()
    destination_env = {**destination["environment"], "LISTEN_ADDRESS": "127.0.0.1",
                       "LISTEN_PORT": str(ports[("destination", destination_port)])}
    dest = ScriptRun(command(destination), destination_env, tmp_path / "destination.log")
    envoy = None
    try:
        dest.wait_http(f"127.0.0.1:{ports[('destination', destination_port)]}", "/healthz")

        # Envoy: the same config; addresses and the module path rewritten, nothing else.
        local = copy.deepcopy(config)
        (listener,) = listeners(local)
        listen_port = listener["address"]["socket_address"]["port_value"]
        admin_port = local["admin"]["address"]["socket_address"]["port_value"]
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
        local["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
        for cluster in local["static_resources"]["clusters"]:
            for group in cluster["load_assignment"]["endpoints"]:
                for endpoint in group["lb_endpoints"]:
                    sa = endpoint["endpoint"]["address"]["socket_address"]
                    sa["port_value"] = ports[(sa["address"], sa["port_value"])]
                    sa["address"] = "127.0.0.1"
        hcm = hcm_of(listener)
        for f in hcm["http_filters"]:
            if f.get("typed_config", {}).get("@type") == WASM_TYPE:
                code = f["typed_config"]["config"]["vm_config"]["code"]["local"]
                code["filename"] = str(envoy_mounts[code["filename"]])
        if not with_filter:
            hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] == ROUTER]
        (tmp_path / "envoy.yaml").write_text(json.dumps(local))
        checked = validate(tmp_path / "envoy.yaml")
        assert checked.returncode == 0, checked.output[-3000:]
        envoy = EnvoyRun(local, tmp_path / "envoy").start()
        ports[("envoy", listen_port)] = envoy.port
        ports[("envoy", admin_port)] = envoy.admin_port

        # The e2e script, its addresses rewritten from service:port to 127.0.0.1:free-port.
        e2e = services["e2e"]
        env = {}
        for key, value in e2e["environment"].items():
            if value.startswith("http://"):
                target = service_address(value)
                assert target in ports, f"e2e's {key} points at {target}, where nothing listens"
                value = f"http://127.0.0.1:{ports[target]}"
            env[key] = value
        env["WAIT_SECONDS"] = "20"
        return subprocess.run(command(e2e), env={**env, "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=120)
    finally:
        if envoy is not None:
            envoy.stop()
        dest.stop()


def test_compose_e2e_script_passes_through_the_compose_envoy_config(tmp_path):
    require_module()
    run = local_compose_run(tmp_path, with_filter=True)
    assert run.returncode == 0, f"e2e failed:\n{run.stdout}{run.stderr}"
    assert "e2e: all" in run.stdout and "checks passed" in run.stdout, run.stdout


def test_compose_e2e_script_fails_without_the_filter(tmp_path):
    """The e2e script can fail: against the same Envoy without the filter, denied events arrive."""
    run = local_compose_run(tmp_path, with_filter=False)
    assert run.returncode == 1, f"e2e passed without the filter:\n{run.stdout}{run.stderr}"
    assert "the destination received a denied event" in run.stdout, run.stdout
    assert "a denied batch item reached the destination" in run.stdout, run.stdout


def test_readme_tls_cluster_for_a_real_destination_validates(tmp_path):
    """deploy/README.md's cluster for an HTTPS destination, put into the compose config, is valid."""
    module = require_module()
    text = (DEPLOY / "README.md").read_text()
    (snippet,) = re.findall(r"```yaml\n(  - name: destination\n.*?)```", text, re.S)
    (cluster,) = yaml.safe_load(snippet)
    assert cluster["transport_socket"]["typed_config"]["sni"] == "api.segment.io"
    config, _ = compose_envoy_config()
    config = copy.deepcopy(config)
    config["static_resources"]["clusters"] = [cluster]
    (wasm,) = wasm_filters(config)
    set_local_module(wasm, module)
    for route in hcm_of(listeners(config)[0])["route_config"]["virtual_hosts"][0]["routes"]:
        route["route"]["host_rewrite_literal"] = "api.segment.io"
    checked = validated(config, tmp_path, "tls")
    assert checked.returncode == 0, checked.output[-3000:]


# --- manifests ------------------------------------------------------------------------------------


def kubernetes_documents(directory: Path) -> list[dict]:
    return [doc for path in sorted(directory.glob("*.yaml")) for doc in yaml_documents(path)]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_every_manifest_parses():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 7, files
    for path in files:
        docs = yaml_documents(path)  # PyYAML, every document
        assert docs, f"{path} holds no document"
    for directory in (ISTIO_DIR, EG_DIR):
        for path in sorted(directory.glob("*.yaml")):
            for doc in yaml_documents(path):
                assert {"apiVersion", "kind", "metadata", "spec"} <= set(doc) or doc["kind"] in (
                    "ConfigMap", "Namespace"
                ), f"{path}: {doc.get('kind')} lacks apiVersion/kind/metadata/spec"
                assert doc["metadata"].get("name"), f"{path}: a {doc['kind']} without a name"


@pytest.fixture(scope="module")
def destination(tmp_path_factory):
    """deploy/compose/destination.py on a free port: the recording destination for mesh configs."""
    port = free_port()
    script = ScriptRun(
        [sys.executable, str(COMPOSE_DIR / "destination.py")],
        {"LISTEN_ADDRESS": "127.0.0.1", "LISTEN_PORT": str(port)},
        tmp_path_factory.mktemp("destination") / "destination.log",
    )
    script.address = f"127.0.0.1:{port}"
    script.wait_http(script.address, "/healthz")
    yield script
    script.stop()


def received(destination) -> list[dict]:
    status, _, body = http_request(destination.address, "GET", "/_received")
    assert status == 200
    return json.loads(body)


def reset(destination) -> None:
    assert http_request(destination.address, "POST", "/_reset")[0] == 200


def track(consented: bool) -> bytes:
    return json.dumps({"type": "track", "event": "Order Completed", "messageId": "deploy-test",
                       "context": {"consent": {"categoryPreferences": {"Analytics": consented}}}}).encode()


def assert_gates(envoy: EnvoyRun, destination, host: str, path: str = "/v1/track") -> None:
    """A denied event is answered 403 and not forwarded; a consented one is forwarded."""
    address = f"127.0.0.1:{envoy.port}"
    headers = {"host": host, "content-type": "application/json"}
    reset(destination)
    status, reply_headers, _ = http_request(address, "POST", path, track(False), headers)
    assert status == 403, f"a denied event got {status}\n{envoy.stderr()[-2000:]}"
    assert reply_headers.get("x-consent-gate-reason") == "FILTERED_BY_END_USER_CONSENT"
    assert received(destination) == [], "a denied event reached the destination"
    status, _, _ = http_request(address, "POST", path, track(True), headers)
    assert status == 200, f"a consented event got {status}\n{envoy.stderr()[-2000:]}"
    assert len(received(destination)) == 1


def validated(config: dict, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))
    return validate(path)


# --- Istio ----------------------------------------------------------------------------------------


def envoy_filter(path: Path) -> dict:
    (doc,) = by_kind(yaml_documents(path), "EnvoyFilter")
    return doc


def ecds_configs(envoyfilter: dict) -> dict[str, dict]:
    return {
        p["patch"]["value"]["name"]: p["patch"]["value"]["typed_config"]
        for p in envoyfilter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"
    }


def listener_match(patch: dict, context: str, port: int) -> bool:
    match = patch.get("match", {})
    if match.get("context", context) != context:
        return False
    listener = match.get("listener", {})
    return listener.get("portNumber", port) == port


def apply_envoy_filter(config: dict, envoyfilter: dict, *, context: str, port: int, vhost: str,
                       module: Path) -> dict:
    """Istio's EnvoyFilter patches applied to a one-listener config as istiod would, and ECDS
    resolved as Envoy would run it: the filter's config_discovery replaced by the EXTENSION_CONFIG
    of that name, its remote code by the local file istio-agent would hand over."""
    config = copy.deepcopy(config)
    (listener,) = listeners(config)
    hcm = hcm_of(listener)
    extensions = ecds_configs(envoyfilter)
    for patch in envoyfilter["spec"]["configPatches"]:
        kind, operation = patch["applyTo"], patch["patch"]["operation"]
        value = patch["patch"].get("value")
        if kind == "EXTENSION_CONFIG":
            assert operation == "ADD"
            continue
        if kind == "HTTP_ROUTE":
            match = patch["match"]
            assert match.get("context", context) == context
            route_match = match["routeConfiguration"]
            assert route_match["portNumber"] == port and route_match["vhost"]["name"] == vhost
            assert operation == "MERGE"
            (virtual_host,) = [v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == vhost]
            for route in virtual_host["routes"]:
                deep_merge(route, value)
            continue
        assert listener_match(patch, context, port), f"{kind} patch does not match this listener: {patch}"
        if kind == "LISTENER":
            assert operation == "MERGE"
            deep_merge(listener, value)
        elif kind == "NETWORK_FILTER":
            assert patch["match"]["listener"]["filterChain"]["filter"]["name"] == (
                "envoy.filters.network.http_connection_manager"
            )
            assert operation == "MERGE"
            assert value["typed_config"]["@type"] == hcm["@type"]
            deep_merge(hcm, value["typed_config"])
        elif kind == "HTTP_FILTER":
            chain_filter = patch["match"]["listener"]["filterChain"]["filter"]
            assert chain_filter["name"] == "envoy.filters.network.http_connection_manager"
            assert chain_filter["subFilter"]["name"] == ROUTER
            assert operation == "INSERT_BEFORE"
            discovery = value["config_discovery"]
            assert WASM_TYPE in discovery["type_urls"]
            assert "ads" in discovery["config_source"]
            assert discovery["config_source"].get("initial_fetch_timeout") == "0s"
            assert value["name"] in extensions, f"no EXTENSION_CONFIG named {value['name']}"
            typed_config = copy.deepcopy(extensions[value["name"]])
            remote = typed_config["config"]["vm_config"]["code"]["remote"]
            assert remote["http_uri"]["uri"].startswith("oci://") and remote["sha256"]
            set_local_module(typed_config, module)
            names = [f["name"] for f in hcm["http_filters"]]
            hcm["http_filters"].insert(names.index(ROUTER), {"name": value["name"], "typed_config": typed_config})
        else:
            pytest.fail(f"the test does not know how to apply {kind} patches")
    return config


def sidecar_config(destination_port: int) -> dict:
    """The shape of an Istio sidecar's outbound port-80 HTTP listener and route configuration."""
    return bootstrap(
        listener_name="0.0.0.0_80",
        stat_prefix="outbound_0.0.0.0_80",
        route_config={
            "name": "80",
            "virtual_hosts": [{
                "name": "api.segment.io:80",
                "domains": ["api.segment.io", "api.segment.io:80"],
                "routes": [{"name": "default", "match": {"prefix": "/"},
                            "route": {"cluster": "outbound|80||api.segment.io"}}],
            }],
        },
        cluster=static_cluster("outbound|80||api.segment.io", destination_port),
    )


def gateway_config(destination_port: int) -> dict:
    """The shape of an Istio egress gateway's HTTP listener for api.segment.io."""
    return bootstrap(
        listener_name="0.0.0.0_8080",
        stat_prefix="outbound_0.0.0.0_8080",
        route_config={
            "name": "http.8080",
            "virtual_hosts": [{
                "name": "api.segment.io:80",
                "domains": ["api.segment.io", "api.segment.io:*"],
                "routes": [{"name": "to-segment", "match": {"prefix": "/"},
                            "route": {"cluster": "outbound|443||api.segment.io"}}],
            }],
        },
        cluster=static_cluster("outbound|443||api.segment.io", destination_port),
    )


def assert_filter_settings(config: dict) -> dict:
    """The filter sits right before the router with the required settings; returns its typed_config."""
    (listener,) = listeners(config)
    assert listener["per_connection_buffer_limit_bytes"] == 4194304
    hcm = hcm_of(listener)
    for key in ("normalize_path", "merge_slashes", "strip_trailing_host_dot"):
        assert hcm[key] is True, key
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    assert hcm["common_http_protocol_options"]["headers_with_underscores_action"] == "REJECT_REQUEST"
    names = [f["name"] for f in hcm["http_filters"]]
    assert names[-1] == ROUTER and names[-2] == "consent_gate", names
    (wasm,) = wasm_filters(config)
    assert wasm["config"]["allow_on_headers_stop_iteration"] is True
    assert wasm["config"]["failure_policy"] == "FAIL_RELOAD"
    assert wasm["config"]["vm_config"]["runtime"] == "envoy.wasm.runtime.v8"
    return wasm


def test_istio_sidecar_envoyfilter_validates_and_gates(tmp_path, destination):
    module = require_module()
    port = int(destination.address.rsplit(":", 1)[1])
    config = apply_envoy_filter(sidecar_config(port), envoy_filter(ISTIO_DIR / "consent-gate-sidecar.yaml"),
                                context="SIDECAR_OUTBOUND", port=80, vhost="api.segment.io:80", module=module)
    assert_filter_settings(config)
    checked = validated(config, tmp_path, "sidecar")
    assert checked.returncode == 0, checked.output[-3000:]
    envoy = EnvoyRun(config, tmp_path / "envoy").start()
    try:
        assert_gates(envoy, destination, host="api.segment.io")
    finally:
        envoy.stop()


def test_without_the_stop_iteration_flag_requests_hang_and_nothing_leaks(tmp_path, destination):
    """What a control plane that drops `allow_on_headers_stop_iteration` (one whose Envoy API
    predates it) leaves: Envoy holds every POST for good, so nothing is judged and nothing leaks."""
    module = require_module()
    port = int(destination.address.rsplit(":", 1)[1])
    config = apply_envoy_filter(sidecar_config(port), envoy_filter(ISTIO_DIR / "consent-gate-sidecar.yaml"),
                                context="SIDECAR_OUTBOUND", port=80, vhost="api.segment.io:80", module=module)
    (wasm,) = wasm_filters(config)
    del wasm["config"]["allow_on_headers_stop_iteration"]
    envoy = EnvoyRun(config, tmp_path / "envoy").start()
    try:
        reset(destination)
        for consented in (False, True):
            with pytest.raises(TimeoutError):
                http_request(f"127.0.0.1:{envoy.port}", "POST", "/v1/track", track(consented),
                             {"host": "api.segment.io", "content-type": "application/json"}, timeout=1.5)
        assert received(destination) == []
    finally:
        envoy.stop()


def test_istio_route_metadata_gates_by_itself(tmp_path, destination):
    """With the route-metadata EnvoyFilter and no `routes` rule left, requests are still gated:
    the metadata reaches the route the filter reads."""
    module = require_module()
    port = int(destination.address.rsplit(":", 1)[1])
    config = apply_envoy_filter(sidecar_config(port), envoy_filter(ISTIO_DIR / "consent-gate-sidecar.yaml"),
                                context="SIDECAR_OUTBOUND", port=80, vhost="api.segment.io:80", module=module)
    config = apply_envoy_filter(config, envoy_filter(ISTIO_DIR / "consent-gate-route-metadata.yaml"),
                                context="SIDECAR_OUTBOUND", port=80, vhost="api.segment.io:80", module=module)
    (wasm,) = wasm_filters(config)
    settings = plugin_config(wasm)
    del settings["routes"]
    set_plugin_config(wasm, settings)
    route = hcm_of(listeners(config)[0])["route_config"]["virtual_hosts"][0]["routes"][0]
    assert route["metadata"]["filter_metadata"]["consent_gate"] == {"category": "Analytics"}
    checked = validated(config, tmp_path, "metadata")
    assert checked.returncode == 0, checked.output[-3000:]
    envoy = EnvoyRun(config, tmp_path / "envoy").start()
    try:
        assert_gates(envoy, destination, host="api.segment.io")
    finally:
        envoy.stop()


def test_istio_egress_gateway_envoyfilter_validates_and_gates(tmp_path, destination):
    module = require_module()
    port = int(destination.address.rsplit(":", 1)[1])
    path = ISTIO_DIR / "consent-gate-egress-gateway.yaml"
    envoyfilter = envoy_filter(path)
    assert envoyfilter["metadata"]["namespace"] == "istio-system"
    assert envoyfilter["spec"]["workloadSelector"]["labels"] == {"istio": "egressgateway"}
    config = apply_envoy_filter(gateway_config(port), envoyfilter, context="GATEWAY", port=8080,
                                vhost="api.segment.io:80", module=module)
    assert_filter_settings(config)
    checked = validated(config, tmp_path, "gateway")
    assert checked.returncode == 0, checked.output[-3000:]
    envoy = EnvoyRun(config, tmp_path / "envoy").start()
    try:
        assert_gates(envoy, destination, host="api.segment.io")
    finally:
        envoy.stop()


def test_istio_manifests_agree_with_each_other():
    sidecar = ecds_configs(envoy_filter(ISTIO_DIR / "consent-gate-sidecar.yaml"))
    gateway = ecds_configs(envoy_filter(ISTIO_DIR / "consent-gate-egress-gateway.yaml"))
    assert sidecar == gateway, "the sidecar and egress gateway filter configurations differ"
    (typed_config,) = sidecar.values()
    rule_hosts = {rule["host"] for rule in plugin_config(typed_config)["routes"]}

    for path in (ISTIO_DIR / "consent-gate-destination.yaml", ISTIO_DIR / "consent-gate-egress-gateway.yaml"):
        docs = yaml_documents(path)
        (entry,) = by_kind(docs, "ServiceEntry")
        assert set(entry["spec"]["hosts"]) == rule_hosts
        rules = [d for d in by_kind(docs, "DestinationRule") if d["spec"]["host"] in rule_hosts]
        tls = [s["tls"] for r in rules for s in r["spec"]["trafficPolicy"]["portLevelSettings"]]
        assert tls and all(t["mode"] == "SIMPLE" and t["sni"] in rule_hosts for t in tls)
    # Every pod that has a way to the destination has the filter: the sidecar filters select no
    # workloads (all of the namespace's), and the destination is exported to that namespace alone
    # (Istio exports a ServiceEntry to every namespace by default).
    for path in (ISTIO_DIR / "consent-gate-sidecar.yaml", ISTIO_DIR / "consent-gate-route-metadata.yaml"):
        assert "workloadSelector" not in envoy_filter(path)["spec"], path
    for doc in yaml_documents(ISTIO_DIR / "consent-gate-destination.yaml"):
        assert doc["spec"].get("exportTo") == ["."], doc["kind"]
    # Sidecar TLS origination: the app's port 80 is sent to 443, with TLS on that port's traffic.
    (entry,) = by_kind(yaml_documents(ISTIO_DIR / "consent-gate-destination.yaml"), "ServiceEntry")
    (http_port,) = entry["spec"]["ports"]
    assert (http_port["number"], http_port["protocol"], http_port["targetPort"]) == (80, "HTTP", 443)


# --- Envoy Gateway --------------------------------------------------------------------------------


def eg_docs() -> list[dict]:
    return kubernetes_documents(EG_DIR)


def eg_listener_name(docs: list[dict]) -> str:
    """The Gateway listener's xDS name as Envoy Gateway gives it with the `XDSNameSchemeV2`
    runtime flag (`tcp-<port>`), which the shipped Envoy Gateway configuration must turn on:
    under the older scheme (`<namespace>/<gateway>/<listener>`) the patch names no listener."""
    (config_map,) = by_kind(docs, "ConfigMap")
    eg = yaml.safe_load(config_map["data"]["envoy-gateway.yaml"])
    assert "XDSNameSchemeV2" in eg.get("runtimeFlags", {}).get("enabled", []), eg
    (gateway,) = by_kind(docs, "Gateway")
    (listener,) = gateway["spec"]["listeners"]
    return f"tcp-{listener['port']}"


def eg_config(destination_port: int, listener_name: str) -> dict:
    """The shape of an Envoy Gateway HTTP listener (default filter chain) and an HTTPRoute to a
    Backend with a hostname rewrite."""
    return bootstrap(
        listener_name=listener_name,
        stat_prefix="http-80",
        default_filter_chain=True,
        route_config={
            "name": "http-80",
            "virtual_hosts": [{
                "name": "consent-gate/egress/http/*",
                "domains": ["*"],
                "routes": [{"name": "httproute/consent-gate/segment-api/rule/0/match/0/*",
                            "match": {"prefix": "/"},
                            "route": {"cluster": "httproute/consent-gate/segment-api/rule/0",
                                      "host_rewrite_literal": "api.segment.io"}}],
            }],
        },
        cluster=static_cluster("httproute/consent-gate/segment-api/rule/0", destination_port),
    )


def apply_client_traffic_policy(config: dict, policy: dict, docs: list[dict]) -> None:
    """A ClientTrafficPolicy's path and header settings, as Envoy Gateway translates them into the
    listener's connection manager; it must target the Gateway."""
    (gateway,) = by_kind(docs, "Gateway")
    assert policy["spec"]["targetRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                             "name": gateway["metadata"]["name"]}]
    assert policy["metadata"]["namespace"] == gateway["metadata"]["namespace"]
    actions = {"RejectRequest": "REJECT_REQUEST", "KeepUnchanged": "KEEP_UNCHANGED",
               "UnescapeAndForward": "UNESCAPE_AND_FORWARD", "UnescapeAndRedirect": "UNESCAPE_AND_REDIRECT",
               "Allow": "ALLOW", "DropHeader": "DROP_HEADER"}
    hcm = hcm_of(listeners(config)[0])
    spec = policy["spec"]
    if "escapedSlashesAction" in spec.get("path", {}):
        hcm["path_with_escaped_slashes_action"] = actions[spec["path"]["escapedSlashesAction"]]
    if "withUnderscoresAction" in spec.get("headers", {}):
        hcm.setdefault("common_http_protocol_options", {})["headers_with_underscores_action"] = \
            actions[spec["headers"]["withUnderscoresAction"]]


def apply_patch_policy(config: dict, policy: dict, module_mounts: dict[str, Path]) -> dict:
    """An EnvoyPatchPolicy's JSON patches applied to the listener they name (RFC 6902 `add`), the
    module path mapped from the gateway pod's mount to the local file."""
    config = copy.deepcopy(config)
    (listener,) = listeners(config)
    for patch in policy["spec"]["jsonPatches"]:
        assert patch["type"] == "type.googleapis.com/envoy.config.listener.v3.Listener", patch["type"]
        assert patch["name"] == listener["name"], f"the patch names {patch['name']}, not {listener['name']}"
        assert patch["operation"]["op"] == "add"
        json_pointer_add(listener, patch["operation"]["path"], patch["operation"]["value"])
    for wasm in wasm_filters(config):
        code = wasm["config"]["vm_config"]["code"]["local"]
        directory, _, name = code["filename"].rpartition("/")
        assert directory in module_mounts, f"{code['filename']} is not under a mounted volume"
        code["filename"] = str(module_mounts[directory])
    return config


def eg_module_mounts(docs: list[dict], module: Path) -> dict[str, Path]:
    """mountPath -> the local module, for the EnvoyProxy's mount of the consent-gate-module ConfigMap."""
    (proxy,) = by_kind(docs, "EnvoyProxy")
    deployment = proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"]
    volumes = {v["name"]: v for v in deployment["pod"]["volumes"]}
    found = {}
    for mount in deployment["container"]["volumeMounts"]:
        assert volumes[mount["name"]]["configMap"]["name"] == "consent-gate-module"
        found[mount["mountPath"]] = module
    return found


def test_envoy_gateway_patch_policy_validates_and_gates(tmp_path, destination):
    module = require_module()
    docs = eg_docs()
    (policy,) = by_kind(docs, "EnvoyPatchPolicy")
    (client_policy,) = by_kind(docs, "ClientTrafficPolicy")
    port = int(destination.address.rsplit(":", 1)[1])
    config = apply_patch_policy(eg_config(port, eg_listener_name(docs)), policy, eg_module_mounts(docs, module))
    apply_client_traffic_policy(config, client_policy, docs)
    (listener,) = listeners(config)
    assert "default_filter_chain" in listener
    assert_filter_settings(config)
    checked = validated(config, tmp_path, "eg")
    assert checked.returncode == 0, checked.output[-3000:]
    envoy = EnvoyRun(config, tmp_path / "envoy").start()
    try:
        # Whatever Host the app sends to the gateway, every path on this listener is gated...
        assert_gates(envoy, destination, host="consent-gate-egress.consent-gate.svc")
        # ...and what is forwarded goes on as api.segment.io.
        (record,) = received(destination)
        assert dict(record["headers"])["host"] == "api.segment.io"
    finally:
        envoy.stop()


def test_envoy_gateway_manifests_agree_with_each_other():
    docs = eg_docs()
    (config_map,) = by_kind(docs, "ConfigMap")
    eg = yaml.safe_load(config_map["data"]["envoy-gateway.yaml"])
    assert eg["kind"] == "EnvoyGateway"
    assert eg["extensionApis"] == {"enableEnvoyPatchPolicy": True, "enableBackend": True}

    (gateway,) = by_kind(docs, "Gateway")
    (proxy,) = by_kind(docs, "EnvoyProxy")
    (gateway_class,) = by_kind(docs, "GatewayClass")
    assert gateway["spec"]["gatewayClassName"] == gateway_class["metadata"]["name"]
    assert gateway["spec"]["infrastructure"]["parametersRef"] == {
        "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": proxy["metadata"]["name"]}
    (policy,) = by_kind(docs, "EnvoyPatchPolicy")
    assert policy["spec"]["targetRef"] == {
        "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": gateway["metadata"]["name"]}
    assert policy["spec"]["type"] == "JSONPatch"
    (route,) = by_kind(docs, "HTTPRoute")
    (parent,) = route["spec"]["parentRefs"]
    assert (parent["name"], parent["sectionName"]) == (gateway["metadata"]["name"], gateway["spec"]["listeners"][0]["name"])
    (backend,) = by_kind(docs, "Backend")
    (endpoint,) = backend["spec"]["endpoints"]
    (backend_ref,) = route["spec"]["rules"][0]["backendRefs"]
    assert (backend_ref["kind"], backend_ref["name"], backend_ref["port"]) == (
        "Backend", backend["metadata"]["name"], endpoint["fqdn"]["port"])
    assert endpoint["fqdn"]["port"] == 443
    (tls,) = by_kind(docs, "BackendTLSPolicy")
    assert tls["spec"]["targetRefs"] == [{"group": "gateway.envoyproxy.io", "kind": "Backend",
                                         "name": backend["metadata"]["name"]}]
    assert tls["spec"]["validation"]["hostname"] == endpoint["fqdn"]["hostname"]
    (rewrite,) = [f for f in route["spec"]["rules"][0]["filters"] if f["type"] == "URLRewrite"]
    assert rewrite["urlRewrite"]["hostname"] == endpoint["fqdn"]["hostname"]
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] not in ("Namespace", "GatewayClass", "ConfigMap")}
    assert namespaces == {"consent-gate"}


# --- a broken plugin configuration is refused, in every shipped config ---------------------------


def shipped_configs(module: Path, destination_port: int) -> dict[str, dict]:
    compose_config, mounts_ = compose_envoy_config()
    compose_local = copy.deepcopy(compose_config)
    (wasm,) = wasm_filters(compose_local)
    code = wasm["config"]["vm_config"]["code"]["local"]
    code["filename"] = str(mounts_[code["filename"]])
    docs = eg_docs()
    (policy,) = by_kind(docs, "EnvoyPatchPolicy")
    return {
        "compose": compose_local,
        "istio-sidecar": apply_envoy_filter(
            sidecar_config(destination_port), envoy_filter(ISTIO_DIR / "consent-gate-sidecar.yaml"),
            context="SIDECAR_OUTBOUND", port=80, vhost="api.segment.io:80", module=module),
        "istio-egress-gateway": apply_envoy_filter(
            gateway_config(destination_port), envoy_filter(ISTIO_DIR / "consent-gate-egress-gateway.yaml"),
            context="GATEWAY", port=8080, vhost="api.segment.io:80", module=module),
        "envoy-gateway": apply_patch_policy(
            eg_config(destination_port, eg_listener_name(docs)), policy, eg_module_mounts(docs, module)),
    }


@pytest.mark.parametrize("name", ["compose", "istio-sidecar", "istio-egress-gateway", "envoy-gateway"])
def test_a_broken_plugin_configuration_is_refused(tmp_path, name):
    """The module checks the plugin configuration at load (`envoy --mode validate` runs it): the
    shipped one is accepted, a copy with a misspelt key is refused, naming the key."""
    module = require_module()
    config = shipped_configs(module, free_port())[name]
    good = validated(config, tmp_path, "good")
    assert good.returncode == 0, good.output[-3000:]
    (wasm,) = wasm_filters(config)
    settings = plugin_config(wasm)
    settings["on_missing_consnet"] = settings.pop("on_missing_consent")
    set_plugin_config(wasm, settings)
    bad = validated(config, tmp_path, "bad")
    assert bad.returncode != 0, "a misspelt plugin configuration key was accepted"
    assert "invalid plugin configuration" in bad.output and "on_missing_consnet" in bad.output, bad.output[-3000:]
