"""A real HTTP/1.1 server on 127.0.0.1 whose bytes and timing each test scripts.

Tests use it instead of mocks: llmlib talks to it through its real requests /
urllib3 / socket stack. A handler receives the parsed :class:`Request` and a
:class:`Reply` that writes the response exactly as asked: chunked, close-delimited
or with Content-Length, split into given pieces, with pauses, cut short, or
silent. Every connection runs on its own daemon thread and keeps alive until the
client closes it; ``close()`` stops everything (tests get it from a fixture).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

Pieces = Union[bytes, Iterable[bytes]]


class Request:
    def __init__(self, method: str, path: str, headers: dict, body: bytes) -> None:
        self.method = method
        self.path = path
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)


class Reply:
    """Writes one response on the connection."""

    def __init__(self, conn: socket.socket, server: "LoopbackServer") -> None:
        self.conn = conn
        self.server = server
        self.keep_alive = True

    def head(self, status: int = 200, headers: Sequence[Tuple[str, str]] = (), mode: str = "chunked",
             length: Optional[int] = None) -> None:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        lines += [f"{k}: {v}" for k, v in headers]
        if mode == "chunked":
            lines.append("Transfer-Encoding: chunked")
        elif mode == "length":
            lines.append(f"Content-Length: {length}")
        else:  # close-delimited: the body ends when the connection does
            lines.append("Connection: close")
            self.keep_alive = False
        self.conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.mode = mode

    def piece(self, data: bytes) -> None:
        if not data:
            return
        if self.mode == "chunked":
            self.conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.conn.sendall(data)

    def raw(self, data: bytes) -> None:
        """Write ``data`` as is: no chunk framing added (to split the framing itself)."""
        self.conn.sendall(data)

    def end(self) -> None:
        if self.mode == "chunked":
            self.conn.sendall(b"0\r\n\r\n")
        elif self.mode == "close":
            self.keep_alive = False

    def send(self, status: int = 200, body: Pieces = b"", headers: Sequence[Tuple[str, str]] = (),
             mode: str = "chunked", delay: float = 0.0) -> None:
        """A whole response: ``body`` is bytes or an iterable of pieces, each sent
        as its own write (chunk), ``delay`` seconds apart."""
        pieces = [body] if isinstance(body, (bytes, bytearray)) else list(body)
        self.head(status, headers, mode, length=sum(len(p) for p in pieces))
        for i, p in enumerate(pieces):
            if delay and i:
                time.sleep(delay)
            self.piece(p)
        self.end()

    def json(self, obj, status: int = 200, headers: Sequence[Tuple[str, str]] = ()) -> None:
        body = json.dumps(obj).encode()
        self.send(status, body, [("Content-Type", "application/json"), *headers], mode="length")

    def sse(self, body: Pieces, status: int = 200, mode: str = "chunked", delay: float = 0.0,
            headers: Sequence[Tuple[str, str]] = ()) -> None:
        self.send(status, body, [("Content-Type", "text/event-stream"), *headers], mode=mode, delay=delay)

    def hang(self, seconds: float) -> None:
        """Say nothing for ``seconds`` (or until the client goes away)."""
        self.conn.settimeout(seconds)
        try:
            self.conn.recv(1)
        except OSError:
            pass


Handler = Callable[[Request, Reply], None]


class LoopbackServer:
    """``LoopbackServer(handler)``: serves on ``url`` (a free port unless ``port``
    is given; HTTPS with the ``tls`` server context) until ``close()``.

    ``requests`` records every request received; ``open_connections`` counts the
    connections currently open from the client side.
    """

    def __init__(self, handler: Optional[Handler] = None, port: int = 0,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        self.handler = handler or (lambda req, reply: reply.send(404, b"no handler"))
        self.tls = tls
        self.requests: List[Request] = []
        self.connections = 0
        self.open_connections = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._closed = False
        self._conns: List[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            # Each scripted write goes out at once (no Nagle wait for the client's delayed ACK).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self.open_connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # the client refused our certificate
                with self._lock:
                    self.open_connections -= 1
                conn.close()
                return
        reader = conn.makefile("rb")
        try:
            while not self._closed:
                request = _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                reply = Reply(conn, self)
                self.handler(request, reply)
                if not reply.keep_alive:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self.open_connections -= 1
            reader.close()
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def wait_closed(self, timeout: float = 2.0) -> bool:
        """True once every connection the client opened has been closed by it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_connections == 0:
                return True
            time.sleep(0.01)
        return self.open_connections == 0

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class TunnelProxy:
    """An HTTPS proxy on 127.0.0.1: answers ``CONNECT host:port`` by piping bytes
    to the address ``routes`` maps that host to (names need not exist in DNS).
    ``connects`` lists every CONNECT target received."""

    def __init__(self, routes: dict) -> None:
        self.routes = routes
        self.connects: List[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(conn,), daemon=True).start()

    def _tunnel(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            line = reader.readline().decode("latin-1")
            while reader.readline() not in (b"\r\n", b"\n", b""):
                pass
            method, target, _ = line.split(" ", 2)
            self.connects.append(target)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host not in self.routes:
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            with socket.create_connection(self.routes[host]) as upstream:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                pump = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
                pump.start()
                _pipe(conn, upstream)
                pump.join(5)

    def close(self) -> None:
        self._sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _read_request(reader) -> Optional[Request]:
    line = reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        line = reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0) or 0)
    body = reader.read(length)
    if len(body) < length:  # the client went away mid-request (a cancel, say)
        return None
    return Request(method, path, headers, body)


def split_at(data: bytes, cuts: Iterable[int]) -> List[bytes]:
    """``data`` cut at the given offsets (sorted, deduplicated, in range)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    out, start = [], 0
    for p in points:
        out.append(data[start:p])
        start = p
    out.append(data[start:])
    return out


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            408: "Request Timeout", 409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded",
            301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect"}
