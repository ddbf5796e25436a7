"""connect, read and total timeouts, and cancel latency, against loopback servers
that stall, drip or never accept (DESIGN.md section 3)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from llmlib import APITimeoutError, CancelledError, CancelToken, ServerError, Timeout
from llmlib import deadline
from tests.conftest import make_client, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
FIRST, REST = TEXT.split(b"\n\n", 1)[0] + b"\n\n", TEXT.split(b"\n\n", 1)[1]


def test_connect_timeout_when_the_server_never_accepts():
    # A listening socket with a full accept queue: the kernel drops further SYNs,
    # so connect() hangs exactly like a firewalled host.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = socket.create_connection(("127.0.0.1", port))
        try:
            from llmlib import Client, ConnectionOptions

            options = ConnectionOptions(timeout=Timeout(connect=0.3, read=10), max_retries=0)
            with Client("openai", api_key="k", base_url=f"http://127.0.0.1:{port}/v1", options=options) as client:
                start = time.monotonic()
                with pytest.raises(APITimeoutError, match="connect timeout after 0.3 s"):
                    client.chat_completion(model="m", messages="hi")
                assert time.monotonic() - start < 3
        finally:
            filler.close()


def test_read_timeout_while_waiting_for_headers(server):
    server.handler = lambda req, reply: reply.hang(5)
    with make_client(server, timeout=Timeout(connect=5, read=0.3)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match="read timeout after 0.3 s"):
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 3


def _drip(body_head: bytes, every: float):
    """A stream that sends ``body_head`` at once, then one byte every ``every`` s."""
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(body_head)
        try:
            for byte in REST:
                time.sleep(every)
                reply.piece(bytes([byte]))
        except OSError:
            return
        reply.end()
    return handler


def test_total_stops_a_stream_that_drips_a_byte_at_a_time(server):
    # Each byte comes well within the read timeout: only the total deadline can end this.
    server.handler = _drip(FIRST, 0.1)
    with make_client(server, timeout=Timeout(connect=5, read=5, total=1.0)) as client:
        start = time.monotonic()
        stream = client.chat_completion_stream(model="m", messages="hi")
        got = []
        with pytest.raises(APITimeoutError, match="total timeout") as caught:
            for chunk in stream:
                got.append(chunk)
        took = time.monotonic() - start
    assert 0.9 < took < 3, took
    assert len(got) == 1 and caught.value.partial is not None  # the first event arrived and is kept
    assert caught.value.partial.choices[0].message.role == "assistant"
    assert server.wait_closed()


def test_total_stops_a_dripping_non_streamed_body(server):
    body = wire("openai_chat", "nonstream_plain_text.json").read_bytes()

    def handler(req, reply):
        reply.head(200, [("Content-Type", "application/json")], mode="length", length=len(body))
        try:
            for byte in body:
                reply.piece(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass

    server.handler = handler
    with make_client(server, timeout=Timeout(connect=5, read=5, total=0.8)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match="total timeout"):
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 3
    assert server.wait_closed()


def test_total_bounds_the_wait_for_headers_below_the_read_timeout(server):
    server.handler = lambda req, reply: reply.hang(5)
    with make_client(server, timeout=Timeout(connect=5, read=30, total=0.5)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match="total timeout"):
            client.chat_completion(model="m", messages="hi")
        with pytest.raises(APITimeoutError, match="total timeout"):
            client.chat_completion_stream(model="m", messages="hi")
        assert time.monotonic() - start < 4


def test_total_gives_up_retrying_when_the_wait_would_pass_it(server):
    server.handler = lambda req, reply: reply.json({"error": {"message": "busy"}}, status=503,
                                                   headers=[("Retry-After", "5")])
    with make_client(server, max_retries=2, timeout=Timeout(connect=5, read=5, total=1.0)) as client:
        start = time.monotonic()
        with pytest.raises(ServerError):  # the last real answer, not a wait past the deadline
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 0.9
    assert len(server.requests) == 1


def test_cancel_wakes_a_retry_wait(server):
    server.handler = lambda req, reply: reply.json({"error": {"message": "busy"}}, status=503,
                                                   headers=[("Retry-After", "30")])
    token = CancelToken()
    with make_client(server, max_retries=2) as client:
        threading.Timer(0.3, token.cancel).start()
        start = time.monotonic()
        with pytest.raises(CancelledError):
            client.chat_completion(model="m", messages="hi", cancel=token)
        assert time.monotonic() - start < 2
    assert len(server.requests) == 1  # never sent again after the cancel


def test_a_user_cancel_under_a_total_deadline_still_ends_quietly(server):
    server.handler = _drip(FIRST, 0.05)
    token = CancelToken()
    with make_client(server, timeout=Timeout(connect=5, read=5, total=30)) as client:
        stream = client.chat_completion_stream(model="m", messages="hi", cancel=token)
        next(stream)
        token.cancel()
        assert list(stream) == []


def test_the_watchdog_thread_exists_only_while_a_deadline_is_pending(server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    with make_client(server, timeout=Timeout(connect=5, read=5, total=30)) as client:
        for _ in range(3):
            list(client.chat_completion_stream(model="m", messages="hi"))
    deadline_ = time.monotonic() + 2
    while time.monotonic() < deadline_ and any(t.name == "llmlib-deadlines" for t in threading.enumerate()):
        time.sleep(0.01)
    assert not any(t.name == "llmlib-deadlines" for t in threading.enumerate())
    assert not deadline._watchdog._pending


def test_cancel_latency_on_a_silent_stream(server):
    # DESIGN.md 3: the generator ends within 100 ms of cancel(), the server silent.
    server.handler = lambda req, reply: (reply.head(200, [("Content-Type", "text/event-stream")]),
                                         reply.piece(FIRST), reply.hang(10))
    with make_client(server) as client:
        latencies = []
        for _ in range(5):
            stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
            next(stream)
            done = threading.Event()

            def consume():
                for _ in stream:
                    pass
                done.set()

            reader = threading.Thread(target=consume)
            reader.start()
            time.sleep(0.05)  # the reader is now blocked in recv()
            start = time.monotonic()
            token.cancel()
            assert done.wait(2)
            latencies.append(time.monotonic() - start)
            reader.join()
        assert sorted(latencies)[2] < 0.1, latencies  # median; the benchmark reports p99
    assert server.wait_closed()
