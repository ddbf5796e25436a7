"""A stream ends at once after its end marker, frees everything it holds, and a
closed Client closes every socket (DESIGN.md section 3; issue 8 items 2, 5, 7,
8, 9, 10, 16, 18)."""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import socket
import threading
import time
import tracemalloc
import weakref

import pytest

from llmlib import ResponseTooLargeError, Timeout, collect
from llmlib.framing import NDJSONFramer, SSEFramer
from tests.conftest import make_client


def _event(text: str, finish=None) -> bytes:
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": finish}]}).encode() + b"\n\n"


def _after_done(tail):
    """A stream that sends [DONE] and then ``tail(reply)``: stays open, or chatters."""
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(_event("hi ") + _event("", "stop") + b"data: [DONE]\n\n")
        try:
            tail(reply)
        except OSError:
            reply.keep_alive = False
    return handler


@pytest.mark.parametrize("tail", ["silent", "comments"])
def test_the_loop_ends_at_once_after_the_end_marker(server, tail):
    def silent(reply):
        reply.hang(10)

    def comments(reply):
        for _ in range(200):
            reply.piece(b": keep-alive\n\n")
            time.sleep(0.005)
        reply.hang(10)

    server.handler = _after_done(silent if tail == "silent" else comments)
    with make_client(server, timeout=Timeout(connect=5, read=30)) as c:
        start = time.monotonic()
        chunks = list(c.chat_completion_stream(model="m", messages="x"))
        assert time.monotonic() - start < 0.3
        assert collect(chunks).text == "hi "
        assert server.wait_closed(2)  # not kept: the rest of the body had not arrived


def test_a_finished_body_still_returns_its_connection_to_the_pool(server):
    server.handler = _after_done(lambda reply: reply.end())
    with make_client(server) as c:
        for _ in range(5):
            assert collect(c.chat_completion_stream(model="m", messages="x")).text == "hi "
    assert server.connections == 1


def _retried_stream(server):
    """Each call's first connection is reset before the headers; the retry succeeds."""
    seen = set()

    def handler(req, reply):
        key = req.json()["messages"][-1]["content"]
        if key not in seen:
            seen.add(key)
            reply.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            reply.keep_alive = False
            return
        reply.sse(_event("ok ") + _event("", "stop") + b"data: [DONE]\n\n")
    server.handler = handler


class _Payload:
    """Stands for the caller's data (5 MB)."""

    def __init__(self) -> None:
        self.data = bytearray(5 * 1024 * 1024)


def test_a_retried_stream_frees_the_callers_frame(server):
    _retried_stream(server)
    refs = []
    with make_client(server, max_retries=2) as c:
        def call(i: int) -> None:
            payload = _Payload()  # a local of the caller's frame, as the stream is
            stream = c.chat_completion_stream(model="m", messages=f"call {i}")
            next(stream)
            refs.append(weakref.ref(payload))

        for i in range(5):
            call(i)
        gc.collect()
        assert len(server.requests) == 10  # every call was retried once
        assert [r() for r in refs] == [None] * 5
        assert server.wait_closed(2) or server.open_connections <= 1


def test_memory_does_not_grow_with_the_number_of_chunks(server):
    piece = _event("x")
    count = 40000

    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        for _ in range(count // 500):
            reply.piece(piece * 500)
        reply.piece(_event("", "stop") + b"data: [DONE]\n\n")
        reply.end()

    server.handler = handler
    with make_client(server) as c:
        stream = c.chat_completion_stream(model="m", messages="x")
        tracemalloc.start()
        try:
            for n, _ in enumerate(stream):
                if n == 4000:
                    early = tracemalloc.get_traced_memory()[0]
                if n == count - 1000:
                    late = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    # 35,000 chunks later: the text (35 kB) and bookkeeping, not ~600 B per chunk (21 MB).
    assert late - early < 400_000, late - early


@pytest.mark.parametrize("field", ["content", "arguments"])
def test_the_kept_text_costs_about_a_byte_per_character_whatever_the_chunk_count(field):
    # What a stream keeps for .partial and collect(): one-character tokens (the worst case:
    # ~50 bytes of str header each) must cost about a byte each once kept, not a str each.
    from llmlib.streaming import Accumulator
    from llmlib.types import ChatCompletionChunk, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta

    def chunk(text, first=False):
        if field == "content":
            return ChatCompletionChunk("c", "m", [ChunkChoice(0, Delta(content=text))])
        call = ToolCallDelta(0, "call_1" if first else None, "function" if first else None,
                             FunctionCallDelta("f" if first else None, text))
        return ChatCompletionChunk("c", "m", [ChunkChoice(0, Delta(tool_calls=[call]))])

    acc = Accumulator()
    acc.add(chunk("", first=True))
    token = chunk("x")
    tracemalloc.start()
    try:
        for _ in range(5_000):
            acc.add(token)
        early = tracemalloc.get_traced_memory()[0]
        for _ in range(200_000):
            acc.add(token)
        late = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert (late - early) / 200_000 < 1.1, late - early  # ~1.9 bytes per character with 64-piece blocks alone
    message = acc.response().choices[0].message
    kept = message.text if field == "content" else message.tool_calls[0].function.arguments
    assert kept == "x" * 205_000


def test_close_closes_idle_sockets_while_a_stream_is_still_referenced(server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(_event("a "))
        if "hold" in req.body.decode():
            reply.hang(5)
            return
        reply.piece(_event("", "stop") + b"data: [DONE]\n\n")
        reply.end()

    server.handler = handler
    c = make_client(server)
    threads = [threading.Thread(target=lambda: collect(c.chat_completion_stream(model="m", messages="go")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    idle = server.open_connections
    assert idle >= 1
    held = c.chat_completion_stream(model="m", messages="hold")
    next(held)
    c.close()
    deadline = time.monotonic() + 2
    while server.open_connections > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.open_connections == 1  # only the stream still in use
    held.close()
    assert server.wait_closed(2)


def test_with_closes_a_named_stream_left_by_break(server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        try:
            for _ in range(100):
                reply.piece(_event("a "))
                time.sleep(0.01)
            reply.piece(_event("", "stop") + b"data: [DONE]\n\n")
            reply.end()
        except OSError:
            reply.keep_alive = False

    server.handler = handler
    with make_client(server, max_in_flight=1) as c:
        with c.chat_completion_stream(model="m", messages="x") as stream:
            for _ in stream:
                break
        assert server.wait_closed(2)  # closed although `stream` is still referenced
        # The one in-flight slot is free again: this would wait forever otherwise.
        done = []
        t = threading.Thread(target=lambda: done.append(collect(c.chat_completion_stream(model="m", messages="y"))))
        t.start()
        t.join(5)
        assert done and done[0].text.startswith("a ")
        stream2, token = c.chat_completion_stream_with_cancel(model="m", messages="z")
        with stream2:
            next(stream2)
        assert list(stream2) == []  # closed: it yields nothing more
        assert not token.cancelled


def test_every_byte_counts_toward_the_event_limit_in_linear_time():
    blanks = [b" \n" * 32768] * 512  # 32 MiB of lines holding one blank each, no event end
    start = time.monotonic()
    with pytest.raises(ResponseTooLargeError):
        list(SSEFramer(iter(blanks), 1024 * 1024))
    with pytest.raises(ResponseTooLargeError):
        list(NDJSONFramer(iter([b" " * 65536] * 512), 1024 * 1024))
    assert time.monotonic() - start < 1.0


def test_blank_lines_over_the_limit_are_refused_over_http(server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        try:
            reply.piece(_event("a "))
            for _ in range(64):
                reply.piece(b" \r\n" * 20000)
            reply.end()
        except OSError:
            reply.keep_alive = False

    server.handler = handler
    with make_client(server, max_response_bytes=256 * 1024) as c:
        with pytest.raises(ResponseTooLargeError) as info:
            collect(c.chat_completion_stream(model="m", messages="x"))
        assert info.value.partial.text == "a "


def test_no_pool_full_warnings_when_requests_fail_under_load(server, caplog):
    rng = random.Random(18)

    def handler(req, reply):
        if rng.random() < 0.3:
            reply.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            reply.keep_alive = False
            return
        time.sleep(0.002)
        reply.sse(_event("ok ") + _event("", "stop") + b"data: [DONE]\n\n")

    server.handler = handler
    with make_client(server, pool_size=2, max_retries=0) as c, caplog.at_level(logging.WARNING, logger="urllib3"):
        def run() -> None:
            for _ in range(15):
                try:
                    collect(c.chat_completion_stream(model="m", messages="x"))
                except Exception:  # noqa: BLE001 - the resets are the point
                    pass

        threads = [threading.Thread(target=run) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_reuses_the_parents_pooled_connection(server):
    server.handler = lambda req, reply: reply.sse(_event("ok ") + _event("", "stop") + b"data: [DONE]\n\n")
    with make_client(server) as c:
        collect(c.chat_completion_stream(model="m", messages="parent"))
        assert server.connections == 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                text = collect(c.chat_completion_stream(model="m", messages="child")).text
                code = 0 if text == "ok " else 2
            finally:
                os.write(write, bytes([code]))
                os._exit(code)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        assert os.read(read, 1) == b"\x00" and os.waitstatus_to_exitcode(status) == 0
        os.close(read)
        assert server.connections == 2  # the child opened its own
        # The parent's pooled connection still works (the child only closed its copy).
        assert collect(c.chat_completion_stream(model="m", messages="parent again")).text == "ok "
        assert server.connections == 2


def test_an_unterminated_last_ndjson_line_is_yielded_and_marked_final():
    # The stream layer turns a bad final line into IncompleteStreamError
    # (tests/test_wire_ollama.py::test_a_stream_cut_inside_its_last_line_is_incomplete).
    from llmlib.framing import frames

    framer, events = frames("ndjson", iter([b'{"a": 1}\n{"b": ', b"2"]), 1024)
    lines = [e.data for e in events]
    assert lines == ['{"a": 1}', '{"b": 2'] and framer.final


@pytest.mark.parametrize("framing", ["sse", "ndjson"])
def test_an_event_over_the_limit_is_refused_even_when_it_arrives_in_one_read(framing):
    from llmlib.framing import frames

    big = b"data: " + b"x" * 5000 + b"\n\n" if framing == "sse" else b'{"a": "' + b"x" * 5000 + b'"}\n'
    _, events = frames(framing, iter([big]), 1000)
    with pytest.raises(ResponseTooLargeError):
        list(events)


def test_an_open_stream_holds_one_copy_of_its_current_read(server):
    """What an open stream holds besides its text: the socket's buffer and one
    copy of the current read, not one per layer (body, framer, decoded text,
    event blocks). 16 streams opened together, each read halfway, interleaved."""
    text = " word"
    piece = _event(text) * 400  # ~40 KiB per write: each read is full
    streams_n, per_stream = 16, 4000

    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        try:
            for _ in range(per_stream // 400):
                reply.piece(piece)
            reply.piece(_event("", "stop") + b"data: [DONE]\n\n")
            reply.end()
        except OSError:
            reply.keep_alive = False

    server.handler = handler
    with make_client(server, pool_size=streams_n) as c:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            streams = [c.chat_completion_stream(model="m", messages="x") for _ in range(streams_n)]
            opened = tracemalloc.get_traced_memory()[0]
            for _ in range(per_stream // 2 // 100):
                for s in streams:
                    for _ in range(100):
                        next(s)
            held = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
            for s in streams:
                s.close()
    reading = (held - opened) / streams_n - len(text) * per_stream // 2  # above each stream's own text
    # A read is 4 KiB, http.client's buffer 8 KiB: 16.5 kB here; with a copy of
    # the read in each layer it was 34 kB.
    assert reading < 24_000, (reading, (opened - before) / streams_n)
