"""Clients the suite drives Envoy with: HTTP/1.1 (http.client, or a raw socket for streaming
cases) and HTTP/2 with prior knowledge (the h2 library over a plain socket)."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass
from typing import Iterable

import h2.config
import h2.connection
import h2.events
import h2.exceptions

TIMEOUT = 10.0


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]  # (lower-cased name, value)
    body: bytes
    trailers: list[tuple[str, str]] | None = None  # HTTP/2: what came after the body

    def header(self, name: str) -> str | None:
        name = name.lower()
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers!r}, {self.body[:300]!r})"


def _from_http_client(resp: http.client.HTTPResponse) -> Response:
    body = resp.read()
    return Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], body)


def http1(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    chunks: Iterable[bytes] | None = None,
    chunk_delay: float = 0.0,
    timeout: float = TIMEOUT,
) -> Response:
    """One HTTP/1.1 request on a fresh connection.

    `body` is sent with Content-Length (http.client sends `Content-Length: 0` for a POST with no
    body); `chunks` are sent with `Transfer-Encoding: chunked`, one chunk each, `chunk_delay`
    seconds apart so that Envoy sees them as separate reads.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if chunks is not None:
            assert body is None

            def paced():
                for i, chunk in enumerate(chunks):
                    if i and chunk_delay:
                        time.sleep(chunk_delay)
                    yield chunk

            conn.request(method, path, body=paced(), headers=headers or {}, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        return _from_http_client(conn.getresponse())
    finally:
        conn.close()


class RawHttp1:
    """An HTTP/1.1 connection driven byte by byte, for requests sent in stages."""

    def __init__(self, port: int, timeout: float = TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_chunk(self, data: bytes) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def read_response(self, timeout: float = TIMEOUT) -> Response:
        self.sock.settimeout(timeout)
        resp = http.client.HTTPResponse(self.sock)
        resp.begin()
        return _from_http_client(resp)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def post_early_reply(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    chunks: list[bytes] | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """POST a large body on a raw connection, tolerating the server replying and closing before
    the body is all sent (as a 413 does). With `chunks`, the body is sent chunked."""
    with RawHttp1(port, timeout) as conn:
        if chunks is None:
            head = request_head("POST", path, {**headers, "content-length": str(len(body))})
            parts = [head, body]
        else:
            head = request_head("POST", path, {**headers, "transfer-encoding": "chunked"})
            parts = [head] + [b"%x\r\n%s\r\n" % (len(c), c) for c in chunks] + [b"0\r\n\r\n"]
        try:
            for part in parts:
                conn.send(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return conn.read_response(timeout)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: localhost"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http2(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    frames: list[bytes] | None = None,
    trailers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
    validate_headers: bool = True,
) -> Response:
    """One request over HTTP/2 prior knowledge (h2c) on a fresh connection.

    The body goes in one DATA frame, or in `frames` (one DATA frame each); `trailers`, if given, end
    the stream after the body. A body-less request without trailers ends the stream with its headers.
    `validate_headers=False` sends header values the h2 library would refuse (white space around
    a value), as a hostile client may.
    """
    frames = list(frames) if frames is not None else ([body] if body else [])
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                         validate_outbound_headers=validate_headers,
                                         normalize_outbound_headers=validate_headers)
    )
    try:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        stream_id = conn.get_next_available_stream_id()
        request_headers = [
            (":method", method),
            (":path", path),
            (":scheme", "http"),
            (":authority", "localhost"),
        ] + [(k.lower(), v) for k, v in (headers or {}).items()]
        conn.send_headers(stream_id, request_headers, end_stream=not frames and not trailers)
        for i, frame in enumerate(frames):
            last = i == len(frames) - 1
            assert len(frame) <= conn.local_flow_control_window(stream_id), "body exceeds h2 window"
            conn.send_data(stream_id, frame, end_stream=last and not trailers)
            sock.sendall(conn.data_to_send())
        if trailers:
            conn.send_headers(stream_id, list(trailers.items()), end_stream=True)
        sock.sendall(conn.data_to_send())

        status, response_headers, body_parts, response_trailers = None, [], [], []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            done = False
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    for name, value in event.headers:
                        if name == ":status":
                            status = int(value)
                        else:
                            response_headers.append((name, value))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    body_parts.append(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == stream_id:
                    response_trailers.extend(event.headers)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    if event.stream_id == stream_id:
                        done = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    done = True
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                pass
            if done:
                break
        if status is None:
            raise ConnectionError("HTTP/2 stream ended without a response")
        return Response(status, response_headers, b"".join(body_parts), response_trailers)
    finally:
        try:
            conn.close_connection()
            sock.sendall(conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        sock.close()


@dataclass
class H2Request:
    method: str
    path: str
    headers: dict[str, str]
    frames: list[bytes]
    trailers: dict[str, str] | None = None


def http2_interleaved(port: int, requests: list[H2Request], timeout: float = TIMEOUT) -> list[Response]:
    """Several requests as concurrent streams on ONE HTTP/2 connection: all HEADERS first, then the
    DATA frames round-robin across streams (frame 1 of each, frame 2 of each, ...), then trailers.
    Returns the responses in request order."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    try:
        conn.initiate_connection()
        ids = []
        for req in requests:
            stream_id = conn.get_next_available_stream_id()
            ids.append(stream_id)
            headers = [(":method", req.method), (":path", req.path), (":scheme", "http"),
                       (":authority", "localhost")] + [(k.lower(), v) for k, v in req.headers.items()]
            conn.send_headers(stream_id, headers, end_stream=not req.frames and not req.trailers)
        sock.sendall(conn.data_to_send())
        for round_ in range(max(len(r.frames) for r in requests)):
            for stream_id, req in zip(ids, requests):
                if round_ < len(req.frames):
                    last = round_ == len(req.frames) - 1
                    conn.send_data(stream_id, req.frames[round_], end_stream=last and not req.trailers)
            sock.sendall(conn.data_to_send())
            time.sleep(0.01)
        for stream_id, req in zip(ids, requests):
            if req.trailers:
                conn.send_headers(stream_id, list(req.trailers.items()), end_stream=True)
        sock.sendall(conn.data_to_send())

        status: dict[int, int] = {}
        headers_by_id: dict[int, list] = {i: [] for i in ids}
        bodies: dict[int, list[bytes]] = {i: [] for i in ids}
        open_ids = set(ids)
        while open_ids:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                sid = getattr(event, "stream_id", None)
                if isinstance(event, h2.events.ResponseReceived):
                    for name, value in event.headers:
                        if name == ":status":
                            status[sid] = int(value)
                        else:
                            headers_by_id[sid].append((name, value))
                elif isinstance(event, h2.events.DataReceived):
                    bodies[sid].append(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    open_ids.discard(sid)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    open_ids.clear()
            sock.sendall(conn.data_to_send())
        return [Response(status.get(i, 0), headers_by_id[i], b"".join(bodies[i])) for i in ids]
    finally:
        sock.close()
