"""`make run`: the demo destination, Envoy with consent-gate in front of it, and a tour.

Starts a destination on 127.0.0.1:10001 that prints every request it receives, starts Envoy with
envoy/demo.yaml on 127.0.0.1:10000, sends a few example events (the README shows the same curl
commands), prints the filter's counters, then keeps running until Ctrl-C.
"""

import gzip
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY_BIN = os.environ.get("ENVOY_BIN") or os.path.join(ROOT, ".venv", "bin", "envoy")
LISTENER = "http://127.0.0.1:10000"
ADMIN = "http://127.0.0.1:9901"


class Destination(http.server.BaseHTTPRequestHandler):
    """The demo destination: prints what actually arrived, so you can see what the filter let out."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        print(f"  [destination] received {self.command} {self.path} ({length} bytes): {body.decode(errors='replace')}", flush=True)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "12")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    do_GET = do_POST

    def log_message(self, *args):
        pass


def event(categories, event_name="Order Completed"):
    return {
        "type": "track",
        "event": event_name,
        "userId": "u123",
        "context": {"consent": {"categoryPreferences": categories}},
    }


EXAMPLES = [
    ("allowed: the user consented to Advertising", "/ads/v1/track",
     event({"Advertising": True, "Analytics": False})),
    ("blocked: no consent to Advertising", "/ads/v1/track",
     event({"Advertising": False, "Analytics": True})),
    ("blocked: no consent at all (on_missing_consent: deny)", "/ads/v1/track",
     {"type": "track", "event": "Order Completed", "userId": "u123"}),
    ("a batch: one item consented, two not; the destination gets one", "/analytics/v1/batch", {
        "batch": [
            dict(event({"Analytics": True, "Functional": True}), messageId="m1"),
            dict(event({"Analytics": True, "Functional": False}), messageId="m2"),
            dict(event({"Analytics": False}), messageId="m3"),
        ],
    }),
    ("ungated route: passes untouched", "/open/v1/track", {"type": "track", "event": "Page Viewed"}),
]


def post(path, payload):
    data = json.dumps(payload).encode()
    req = urllib.request.Request(LISTENER + path, data=data, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def wait_ready(envoy):
    for _ in range(100):
        if envoy.poll() is not None:
            sys.exit(f"Envoy exited with {envoy.returncode}; see its log above")
        try:
            with urllib.request.urlopen(ADMIN + "/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("Envoy did not become ready")


def counters():
    with urllib.request.urlopen(ADMIN + "/stats?filter=consent_gate", timeout=5) as resp:
        return [line for line in resp.read().decode().splitlines() if line.startswith("wasmcustom.")]


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 10001), Destination)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    envoy = subprocess.Popen(
        [ENVOY_BIN, "-c", os.path.join("envoy", "demo.yaml"), "--concurrency", "1",
         "--log-level", "warn", "--component-log-level", "wasm:info",
         "--file-flush-interval-msec", "100"],
        cwd=ROOT,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        wait_ready(envoy)
        print("\nconsent-gate is running: Envoy on 127.0.0.1:10000, demo destination on 127.0.0.1:10001\n")
        for title, path, payload in EXAMPLES:
            print(f"== {title}")
            print(f"$ curl -s -i {LISTENER}{path} -H 'content-type: application/json' -d '{json.dumps(payload)}'")
            status, headers, body = post(path, payload)
            time.sleep(0.2)  # let the access log line and the destination print first
            dropped = headers.get("x-consent-gate-dropped")
            print(f"  -> {status}" + (f"  x-consent-gate-dropped: {dropped}" if dropped else "") + f"  {body}\n")
        print("== the filter's counters (curl -s 127.0.0.1:9901/stats?filter=consent_gate)")
        for line in counters():
            print("  " + line)
        print("\nTry your own requests with the curl commands above (see README.md). Ctrl-C stops everything.")
        envoy.wait()
    except KeyboardInterrupt:
        pass
    finally:
        envoy.terminate()
        try:
            envoy.wait(timeout=5)
        except subprocess.TimeoutExpired:
            envoy.kill()
        server.shutdown()


if __name__ == "__main__":
    main()
