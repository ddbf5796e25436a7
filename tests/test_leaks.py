"""Many threads, many cancels, and consumers that blow up: nothing crosses,
nothing is left open (DESIGN.md section 3). The suite runs with ResourceWarning
as an error, so an unclosed socket anywhere fails it."""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import threading
import time

import pytest

from llmlib import CancelToken, collect
from tests.conftest import make_client


def _event(text: str, finish=None) -> bytes:
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": finish}]}).encode() + b"\n\n"


def echo_stream(server, pieces: int = 10, gap: float = 0.0, head_delay: float = 0.0):
    """Streams the request's user message back, one word per event."""
    def handler(req, reply):
        word = req.json()["messages"][-1]["content"]
        if head_delay:
            time.sleep(random.random() * head_delay)
        reply.head(200, [("Content-Type", "text/event-stream")])
        try:
            for _ in range(pieces):
                reply.piece(_event(word + " "))
                if gap:
                    time.sleep(random.random() * gap)
            reply.piece(_event("", "stop") + b"data: [DONE]\n\n")
            reply.end()
        except OSError:  # the client hung up: that is the point of these tests
            reply.keep_alive = False

    server.handler = handler


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_32_threads_stream_through_one_client_without_crossing(server, caplog):
    echo_stream(server, pieces=20, gap=0.002)
    errors, texts = [], {}
    barrier = threading.Barrier(32)

    with make_client(server) as client:  # default options: pool_size 16, fewer than the threads
        def run(i: int) -> None:
            try:
                barrier.wait(5)
                for _ in range(2):
                    texts[i] = collect(client.chat_completion_stream(model="m", messages=f"t{i}")).text
            except BaseException as exc:  # reported below
                errors.append(exc)

        with caplog.at_level(logging.WARNING, logger="urllib3"):
            threads = [threading.Thread(target=run, args=(i,)) for i in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
    assert not errors
    assert all(texts[i] == f"t{i} " * 20 for i in range(32))  # each thread got its own stream, whole
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert server.connections <= 32 + 2  # the second round reused the first round's connections


def test_threads_racing_a_new_clients_first_request_share_its_one_pool(server):
    # A Client makes its session at its first request: 16 threads making that first
    # request at once must all use one session, whose pool the second round reuses
    # and which close() then empties.
    echo_stream(server, pieces=5, gap=0.002)
    errors, texts = [], {}
    barrier = threading.Barrier(16)
    for _ in range(3):
        client, opened = make_client(server), server.connections

        def run(i: int) -> None:
            try:
                for _ in range(2):
                    barrier.wait(5)
                    texts[i] = collect(client.chat_completion_stream(model="m", messages=f"r{i}")).text
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert server.connections - opened <= 16 + 2  # the second round took the first round's connections
        client.close()
        assert server.wait_closed(5), server.open_connections
    assert not errors
    assert all(texts[i] == f"r{i} " * 5 for i in range(16))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors via /proc")
def test_1000_streams_cancelled_at_random_moments_leave_nothing_behind(server):
    echo_stream(server, pieces=8, gap=0.001, head_delay=0.002)
    rng = random.Random(1000)
    todo: "queue.Queue" = queue.Queue()

    def canceller() -> None:  # one thread cancels tokens at their random moments
        while True:
            item = todo.get()
            if item is None:
                return
            at, token = item
            time.sleep(max(0.0, at - time.monotonic()))
            token.cancel()

    helper = threading.Thread(target=canceller)
    helper.start()
    with make_client(server) as client:
        list(client.chat_completion_stream(model="m", messages="warm-up"))
        fds, threads = _open_fds(), threading.active_count()
        outcomes = {"cancelled": 0, "completed": 0, "left": 0}

        def one(i: int) -> None:
            token = CancelToken()
            how = rng.random()
            if how < 0.1:
                token.cancel()  # before sending: the call raises CancelledError
                try:
                    client.chat_completion_stream(model="m", messages=f"s{i}", cancel=token)
                except Exception:
                    outcomes["cancelled"] += 1
                return
            if not 0.3 <= how < 0.45:  # those run to their end untouched: "completed" is sure to be taken
                todo.put((time.monotonic() + rng.random() * 0.012, token))  # while waiting or streaming
            try:
                stream = client.chat_completion_stream(model="m", messages=f"s{i}", cancel=token)
            except Exception:
                outcomes["cancelled"] += 1
                return
            if how < 0.3:
                for _ in stream:  # leave the loop early; the token may fire later, harmlessly
                    break
                stream.close()
                outcomes["left"] += 1
                return
            chunks = list(stream)
            assert all(c.text in (f"s{i} ", "") for c in chunks)  # never another stream's bytes
            outcomes["completed" if not token.cancelled else "cancelled"] += 1

        for i in range(1000):
            one(i)
        todo.put(None)
        helper.join(5)
        assert server.wait_closed(5) or server.open_connections <= 1  # at most the pooled one
        time.sleep(0.05)
        assert _open_fds() <= fds + 1, (fds, _open_fds())
        assert threading.active_count() <= threads, threading.enumerate()
    assert server.wait_closed(5)
    assert min(outcomes.values()) > 20, outcomes  # every path was really taken


def test_an_exception_or_keyboard_interrupt_in_the_consumer_closes_the_stream(client, server):
    echo_stream(server, pieces=50, gap=0.01)
    for error in (ValueError, KeyboardInterrupt):
        with pytest.raises(error):
            for chunk in client.chat_completion_stream(model="m", messages="x"):
                raise error()
        assert server.wait_closed(2), error


def test_a_late_cancel_never_reaches_a_connection_another_request_took(server):
    # Request A (with a token) gets a 503 and waits to retry; its first connection
    # goes back to the pool, and stream B takes it. Cancelling A's token then must
    # not touch B's connection.
    seen = []

    def handler(req, reply):
        who = req.json()["messages"][-1]["content"]
        seen.append(who)
        if who == "A":
            reply.json({"error": {"message": "busy"}}, status=503, headers=[("retry-after-ms", "3000")])
            return
        reply.head(200, [("Content-Type", "text/event-stream")])
        for _ in range(6):
            reply.piece(_event("B "))
            time.sleep(0.05)
        reply.piece(_event("", "stop") + b"data: [DONE]\n\n")
        reply.end()

    server.handler = handler
    token = CancelToken()
    with make_client(server, max_retries=1) as client:
        a = threading.Thread(target=lambda: pytest.raises(Exception, client.chat_completion, model="m",
                                                          messages="A", cancel=token))
        a.start()
        deadline = time.monotonic() + 5
        while seen != ["A"] and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # A's connection is back in the pool; A sleeps before its retry
        stream = client.chat_completion_stream(model="m", messages="B")
        first = next(stream)
        assert server.connections == 1  # B really is on A's old connection
        token.cancel()
        assert first.text + "".join(c.text or "" for c in stream) == "B " * 6
        a.join(5)
