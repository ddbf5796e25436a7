"""A cancel reaches a request in every phase (connect, TLS handshake, proxy
tunnel, headers, error body) within 100 ms, sends nothing afterwards, and touches
only its own request (DESIGN.md section 3; issue 8 items 3, 4, 12, 13)."""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
import time

import pytest

from llmlib import (APITimeoutError, CancelledError, CancelToken, Client, ConnectionOptions, ServerError,
                    Timeout, collect)
from tests.conftest import TEST_KEY, make_client, wire
from tests.loopback import LoopbackServer, TunnelProxy

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
FIRST = TEXT.split(b"\n\n")[0] + b"\n\n"


def _cancel_after(token: CancelToken, seconds: float) -> None:
    threading.Timer(seconds, token.cancel).start()


def _assert_cancelled_quickly(call, token: CancelToken, after: float = 0.2, within: float = 0.1) -> None:
    _cancel_after(token, after)
    start = time.monotonic()
    with pytest.raises(CancelledError):
        call()
    took = time.monotonic() - start - after
    assert took < within, f"ended {took * 1000:.0f} ms after the cancel"


class _Backlogged:
    """A listening socket whose accept queue is full: the kernel drops further
    SYNs, so a connect hangs exactly like one to a firewalled host. ``release()``
    then accepts everything and reports whether any request bytes ever arrived."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.fillers = [socket.create_connection(("127.0.0.1", self.port))]

    def received_after_release(self, wait: float = 1.5) -> bytes:
        for f in self.fillers:
            f.close()
        self.listener.settimeout(0.1)
        data = b""
        end = time.monotonic() + wait
        conns = []
        while time.monotonic() < end:
            try:
                conn, _ = self.listener.accept()
                conns.append(conn)
                conn.settimeout(0.1)
            except OSError:
                pass
            for conn in conns:
                try:
                    data += conn.recv(65536)
                except OSError:
                    pass
        for conn in conns:
            conn.close()
        self.listener.close()
        return data


def test_a_cancel_during_an_http_connect_ends_the_call_and_nothing_is_sent():
    target = _Backlogged()
    options = ConnectionOptions(timeout=Timeout(connect=10, read=10), max_retries=0)
    with Client("openai", api_key=TEST_KEY, base_url=f"http://127.0.0.1:{target.port}/v1", options=options) as c:
        token = CancelToken()
        _assert_cancelled_quickly(lambda: c.chat_completion(model="m", messages="hi", cancel=token), token)
        stream_token = CancelToken()
        _assert_cancelled_quickly(
            lambda: c.chat_completion_stream(model="m", messages="hi", cancel=stream_token), stream_token)
    # The kernel would have completed the handshake later (SYN retransmits): nothing
    # may have been queued to be sent then.
    assert b"POST" not in target.received_after_release()


def test_total_timeout_stops_a_hanging_connect():
    target = _Backlogged()
    options = ConnectionOptions(timeout=Timeout(connect=10, read=10, total=0.3), max_retries=0)
    with Client("openai", api_key=TEST_KEY, base_url=f"http://127.0.0.1:{target.port}/v1", options=options) as c:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            c.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 0.6
    assert b"POST" not in target.received_after_release(0.3)


class _SilentTLS:
    """Accepts TCP connections and never says a word: a client's TLS handshake
    waits for the ServerHello forever."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()


def test_a_cancel_during_a_tls_handshake_ends_the_call(ca_file, no_env_proxy):
    silent = _SilentTLS()
    try:
        options = ConnectionOptions(timeout=Timeout(connect=10, read=10), max_retries=0, verify=ca_file)
        with Client("openai", api_key=TEST_KEY, base_url=f"https://127.0.0.1:{silent.port}/v1",
                    options=options) as c:
            token = CancelToken()
            _assert_cancelled_quickly(lambda: c.chat_completion(model="m", messages="hi", cancel=token), token)
    finally:
        silent.close()


class _TLSTunnelProxy(TunnelProxy):
    """An ``https://`` proxy: TLS to the proxy itself, then CONNECT, then the
    client's own TLS inside it (urllib3's ``SSLTransport``, TLS in TLS)."""

    def __init__(self, routes: dict, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(routes)
        self.url = self.url.replace("http://", "https://").replace("127.0.0.1", "localhost")

    def _tunnel(self, conn: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(conn, server_side=True)
        except OSError:
            conn.close()
            return
        super()._tunnel(conn)


@pytest.fixture
def tls_upstream(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "api.llmlib.test").configure_cert(context)
    srv = LoopbackServer(tls=context)
    yield srv
    srv.close()


def test_a_cancel_through_an_https_proxy_ends_the_stream(ca, ca_file, tls_upstream, no_env_proxy):
    proxy_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(proxy_context)
    proxy = _TLSTunnelProxy({"api.llmlib.test": ("127.0.0.1", tls_upstream.port)}, proxy_context)
    tls_upstream.handler = lambda req, reply: (reply.head(200, [("Content-Type", "text/event-stream")]),
                                               reply.piece(FIRST), reply.hang(10))
    try:
        options = ConnectionOptions(timeout=Timeout(connect=5, read=10), max_retries=0, verify=ca_file,
                                    proxy=proxy.url)
        with Client("openai", api_key=TEST_KEY, base_url=f"https://api.llmlib.test:{tls_upstream.port}/v1",
                    options=options) as c:
            stream, token = c.chat_completion_stream_with_cancel(model="m", messages="hi")
            assert next(stream).choices is not None  # through both TLS layers
            _cancel_after(token, 0.2)
            start = time.monotonic()
            assert list(stream) == []
            assert time.monotonic() - start - 0.2 < 0.1
            # And while waiting for the headers through the proxy:
            tls_upstream.handler = lambda req, reply: reply.hang(10)
            token = CancelToken()
            _assert_cancelled_quickly(lambda: c.chat_completion(model="m", messages="hi", cancel=token), token)
        assert proxy.connects
    finally:
        proxy.close()


def _drip_error(status: int, content_type: str, every: float):
    def handler(req, reply):
        body = json.dumps({"error": {"message": "x" * 200, "type": "server_error"}}).encode()
        reply.head(status, [("Content-Type", content_type)], mode="length", length=len(body))
        try:
            for byte in body:
                reply.raw(bytes([byte]))
                time.sleep(every)
        except OSError:
            reply.keep_alive = False
    return handler


@pytest.mark.parametrize("stream", [False, True])
def test_total_and_cancel_bound_the_read_of_an_error_body(server, stream):
    server.handler = _drip_error(500, "application/json", 0.05)
    with make_client(server, timeout=Timeout(connect=5, read=10, total=0.5)) as c:
        call = c.chat_completion_stream if stream else c.chat_completion
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            call(model="m", messages="hi")
        assert time.monotonic() - start < 0.8
    with make_client(server) as c:
        token = CancelToken()
        call = c.chat_completion_stream if stream else c.chat_completion
        _assert_cancelled_quickly(lambda: call(model="m", messages="hi", cancel=token), token)


def test_total_bounds_a_non_sse_body_answering_a_stream_request(server):
    server.handler = _drip_error(200, "text/html", 0.05)
    with make_client(server, timeout=Timeout(connect=5, read=10, total=0.5)) as c:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            c.chat_completion_stream(model="m", messages="hi")
        assert time.monotonic() - start < 0.8


def test_a_cancel_near_a_retried_503_is_always_a_cancel(server):
    def handler(req, reply):
        reply.send(503, b"", [("Retry-After-Ms", "1")], mode="length")

    server.handler = handler
    rng = random.Random(13)
    misreported = []
    with make_client(server, max_retries=3) as c:
        for _ in range(150):
            token = CancelToken()
            fired = []

            def fire() -> None:
                fired.append(time.monotonic())
                token.cancel()

            threading.Timer(rng.random() * 0.006, fire).start()
            try:
                c.chat_completion(model="m", messages="hi", cancel=token)
            except CancelledError:
                pass
            except ServerError:
                raised = time.monotonic()
                time.sleep(0.01)
                # A ServerError is right only when the cancel came after the call had its answer.
                if fired and fired[0] < raised - 0.002:
                    misreported.append(raised - fired[0])
            time.sleep(0.008)
    assert not misreported, f"{len(misreported)} cancels reported as ServerError"


def test_late_cancels_never_reach_a_request_that_reused_the_connection(server):
    ok = json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes())
    server.handler = lambda req, reply: reply.sse(TEXT) if req.json().get("stream") else reply.json(ok)
    broken = []
    with make_client(server) as c:
        for _ in range(100):
            token = CancelToken()
            c.chat_completion(model="m", messages="a", cancel=token)  # done; its connection is pooled
            racer = threading.Thread(target=token.cancel)
            racer.start()  # cancels A while B takes the same connection
            try:
                text = collect(c.chat_completion_stream(model="m", messages="b")).text
                assert text
            except Exception as exc:  # noqa: BLE001 - any failure of B is the bug
                broken.append(exc)
            racer.join()
    assert not broken, broken[:3]
    assert server.connections <= 3
