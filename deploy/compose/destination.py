"""A stand-in analytics destination for the compose setup: records every request it receives and
answers 200, and tells what it received. Standard library only (runs in python:3.12-alpine).

    GET  /healthz     200 "ok" (the compose healthcheck)
    GET  /_received   the requests recorded so far, as JSON:
                      [{"method", "path", "headers": [[name, value], ...], "body_b64"}, ...]
    POST /_reset      forget them
    anything else     recorded, answered 200 {"success": true} (what Segment's API answers)

Environment: LISTEN_ADDRESS (default 0.0.0.0), LISTEN_PORT (default 8080).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED: list[dict] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "destination"

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        if self.path == "/healthz":
            self._reply(200, b"ok", "text/plain")
        elif self.path == "/_received" and self.command == "GET":
            with LOCK:
                payload = json.dumps(RECEIVED).encode()
            self._reply(200, payload)
        elif self.path == "/_reset" and self.command == "POST":
            with LOCK:
                RECEIVED.clear()
            self._reply(200, b"{}")
        else:
            record = {
                "method": self.command,
                "path": self.path,
                "headers": [[k.lower(), v] for k, v in self.headers.items()],
                "body_b64": base64.b64encode(body).decode(),
            }
            with LOCK:
                RECEIVED.append(record)
            self._reply(200, b'{"success": true}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, fmt: str, *args) -> None:
        sys.stderr.write("[destination] " + (fmt % args) + "\n")


def main() -> None:
    address = os.environ.get("LISTEN_ADDRESS", "0.0.0.0")
    port = int(os.environ.get("LISTEN_PORT", "8080"))
    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    print(f"destination listening on {address}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
