"""A recording HTTP/1.1 upstream: the destination that consent-gate protects.

It is a raw-socket server (no http.server), so it sees exactly what Envoy sends: every accepted
connection is recorded with the number of bytes received on it, and every request with its method,
path, ordered raw header lines, framing (content-length / chunked / none) and exact body bytes.
Each request is answered `200 {"ok":true}`, with any header lines a test sets in
`extra_response_headers`, and chunked with `response_trailers` after the body when a test sets
those (both forgotten at `reset`).

That is what lets a test prove "the destination never saw a byte": after a denied request,
`upstream.requests == []` and `upstream.bytes_received() == 0`.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field

RESPONSE_BODY = b'{"ok":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(RESPONSE_BODY)).encode() + b"\r\n"
    b"\r\n" + RESPONSE_BODY
)
MAX_HEAD_BYTES = 1 << 20


class ProtocolError(Exception):
    pass


@dataclass
class Connection:
    """One accepted TCP connection. `bytes_received` counts every byte read since the last reset."""

    id: int
    peer: tuple
    bytes_received: int = 0
    closed: bool = False


@dataclass
class Request:
    connection_id: int
    method: str
    path: str
    version: str
    header_lines: list[str]  # raw lines as received, in order, without CRLF
    framing: str  # "content-length", "chunked" or "none"
    body: bytes
    chunk_sizes: list[int] = field(default_factory=list)
    trailer_lines: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(lower-cased name, value) pairs in the order received."""
        pairs = []
        for line in self.header_lines:
            name, _, value = line.partition(":")
            pairs.append((name.strip().lower(), value.strip()))
        return pairs

    def header(self, name: str) -> str | None:
        """The value of the first header called `name` (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


class _Reader:
    """Buffered reads from a socket that count every received byte on the Connection record."""

    def __init__(self, sock: socket.socket, conn: Connection, lock: threading.Lock):
        self.sock, self.conn, self.lock = sock, conn, lock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        with self.lock:
            self.conn.bytes_received += len(data)
        self.buf += data
        return True

    def at_eof(self) -> bool:
        return not self.buf and not self._fill()

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD_BYTES:
                raise ProtocolError("header line too long")
            if not self._fill():
                raise ProtocolError("connection closed inside a line")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ProtocolError("connection closed inside a body")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class RecordingUpstream:
    def __init__(self, host: str = "127.0.0.1"):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: list[Connection] = []
        self._requests: list[Request] = []
        self._errors: list[str] = []
        self._next_id = 0
        self._stopping = False
        self.extra_response_headers: list[tuple[str, str]] = []
        self.response_trailers: list[tuple[str, str]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self.host, self.port = self._listener.getsockname()
        self._thread = threading.Thread(target=self._accept_loop, name="upstream-accept", daemon=True)
        self._thread.start()

    # ---- what tests use -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all requests and errors; zero the byte counters; drop closed connections."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()
            self.extra_response_headers = []
            self.response_trailers = []
            self._connections = [c for c in self._connections if not c.closed]
            for c in self._connections:
                c.bytes_received = 0

    def take(self) -> list[Request]:
        """The requests recorded since the last take or reset, forgotten here (for long runs)."""
        with self._lock:
            taken = list(self._requests)
            self._requests.clear()
            self._connections = [c for c in self._connections if not c.closed]
            return taken

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[Connection]:
        """Connections open at the last reset or accepted since (a copy)."""
        with self._lock:
            return [Connection(c.id, c.peer, c.bytes_received, c.closed) for c in self._connections]

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def bytes_received(self) -> int:
        """Bytes received since the last reset, summed over every connection."""
        with self._lock:
            return sum(c.bytes_received for c in self._connections)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Request]:
        """Wait until at least `count` requests were recorded; return them all (may be fewer on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self._requests)

    def wait_for_bytes(self, minimum: int = 1, timeout: float = 5.0) -> int:
        """Wait until at least `minimum` bytes arrived since the last reset; return the total."""
        deadline = time.monotonic() + timeout
        while True:
            total = self.bytes_received()
            if total >= minimum or time.monotonic() >= deadline:
                return total
            time.sleep(0.01)

    def close(self) -> None:
        self._stopping = True
        try:
            self._listener.close()
        except OSError:
            pass

    # ---- server ---------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._next_id += 1
                conn = Connection(self._next_id, peer)
                self._connections.append(conn)
            threading.Thread(
                target=self._serve, args=(sock, conn), name=f"upstream-conn-{conn.id}", daemon=True
            ).start()

    def _serve(self, sock: socket.socket, conn: Connection) -> None:
        reader = _Reader(sock, conn, self._lock)
        try:
            while True:
                if reader.at_eof():
                    return
                request = self._read_request(reader, conn)
                with self._changed:
                    self._requests.append(request)
                    self._changed.notify_all()
                sock.sendall(self._response())
                if (request.header("connection") or "").lower() == "close":
                    return
        except (ProtocolError, OSError) as exc:
            with self._lock:
                self._errors.append(f"connection {conn.id}: {exc!r}")
        finally:
            with self._lock:
                conn.closed = True
            sock.close()

    def _response(self) -> bytes:
        extra = b"".join(f"{k}: {v}\r\n".encode() for k, v in self.extra_response_headers)
        if not self.response_trailers:
            return RESPONSE.replace(b"\r\n\r\n", b"\r\n" + extra + b"\r\n", 1)
        trailers = b"".join(f"{k}: {v}\r\n".encode() for k, v in self.response_trailers)
        return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n"
                + extra + b"\r\n" + f"{len(RESPONSE_BODY):x}\r\n".encode() + RESPONSE_BODY
                + b"\r\n0\r\n" + trailers + b"\r\n")

    @staticmethod
    def _read_request(reader: _Reader, conn: Connection) -> Request:
        request_line = reader.line().decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3:
            raise ProtocolError(f"bad request line {request_line!r}")
        method, path, version = parts
        header_lines = []
        while True:
            line = reader.line()
            if not line:
                break
            header_lines.append(line.decode("latin-1"))
        request = Request(conn.id, method, path, version, header_lines, "none", b"")

        transfer_encoding = (request.header("transfer-encoding") or "").lower()
        content_length = request.header("content-length")
        if transfer_encoding:
            if transfer_encoding != "chunked":
                raise ProtocolError(f"unsupported transfer-encoding {transfer_encoding!r}")
            request.framing = "chunked"
            body = []
            while True:
                size_line = reader.line().decode("latin-1")
                size = int(size_line.split(";")[0].strip(), 16)
                if size == 0:
                    break
                request.chunk_sizes.append(size)
                body.append(reader.exact(size))
                if reader.exact(2) != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
            while True:  # trailer section
                line = reader.line()
                if not line:
                    break
                request.trailer_lines.append(line.decode("latin-1"))
            request.body = b"".join(body)
        elif content_length is not None:
            request.framing = "content-length"
            request.body = reader.exact(int(content_length))
        return request
