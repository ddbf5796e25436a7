"""llmlib.body.iter_body end to end: the fast path that undoes the chunked transfer
coding itself (RFC 9112 section 7.1) from http.client's buffered reader, and the
public urllib3 ``read1`` path for everything else, through real HTTP on 127.0.0.1
(tests/loopback.py writes the chunk framing byte for byte with ``Reply.raw``).

Three groups: framing variants that must give the same answer as a plain stream
(and leave the connection reusable), malformed or cut framing that must raise
IncompleteStreamError with ``.partial`` at once (never hang), and the public path.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zlib

import pytest
import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from llmlib import APITimeoutError, IncompleteStreamError, Timeout, collect
from llmlib.body import _buffered_chunked, iter_body
from tests.conftest import make_client, wire
from tests.loopback import split_at

# Every test here is bounded: a framing bug that makes a read wait forever fails
# the test within seconds instead of stalling the suite (pytest-timeout is on).
pytestmark = pytest.mark.timeout(15)

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
EVENTS = [e + b"\n\n" for e in TEXT.split(b"\n\n")[:-1]]  # the transcript's events, [DONE] last
assert b"".join(EVENTS) == TEXT and EVENTS[-1] == b"data: [DONE]\n\n"
# Without [DONE] the stream ends at the end of the body, so the fast path itself
# reads the terminating chunk (and trailers) before the loop ends, whatever the
# timing (with [DONE], llmlib waits only briefly for the terminator; see
# llmlib.transport.settle_after_end).
NO_DONE = EVENTS[:-1]
SSE = [("Content-Type", "text/event-stream")]
END = b"0\r\n\r\n"


def _text(events) -> str:
    return "".join(json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events)


FIRST3 = _text(EVENTS[:3])  # what arrives before the bad chunk in the malformed-body tests
assert FIRST3 == "I'm unable"


def _chunk(data: bytes, size: bytes = b"%x") -> bytes:
    """``data`` as one chunk; ``size`` formats its size line (before the CRLF)."""
    return size % len(data) + b"\r\n" + data + b"\r\n"


def _chunked(pieces, size: bytes = b"%x") -> bytes:
    return b"".join(_chunk(p, size) for p in pieces)


@pytest.fixture
def client(server):
    """The conftest client with a 2 s read timeout: a read that hangs fails fast."""
    with make_client(server, timeout=Timeout(connect=2, read=2)) as c:
        yield c


def _writing(writes, pause: float = 0.0, headers=SSE):
    """A handler sending a chunked head, then each of ``writes`` verbatim."""
    def handler(req, reply):
        reply.head(200, headers, mode="chunked")
        for i, data in enumerate(writes):
            if pause and i:
                time.sleep(pause)
            reply.raw(data)
    return handler


def _chunks(client):
    return list(client.chat_completion_stream(model="m", messages="hi"))


def _assert_same_answer_and_reuse(client, server, writes, pause: float = 0.0):
    """The stream written as ``writes`` gives the very chunks of a plain stream
    (twice), and every stream hands its connection back to the pool."""
    server.handler = lambda req, reply: reply.sse(TEXT)
    plain = _chunks(client)
    assert collect(plain).text and collect(plain).usage is not None
    server.handler = _writing(writes, pause)
    for _ in range(2):
        assert _chunks(client) == plain
    assert server.connections == 1  # each stream ended cleanly and its connection was reused


# ------------------------------------------------------------ the fast path is taken


def test_a_plain_chunked_body_takes_the_fast_path_and_others_do_not(server):
    """White-box: the loopback server's chunked, uncompressed body is read by the
    fast path; gzip, Content-Length and close-delimited bodies are not."""
    gz = zlib.compressobj(wbits=31)
    gzipped = gz.compress(TEXT) + gz.flush()

    def handler(req, reply):
        kind = req.path.rsplit("/", 1)[-1]
        if kind == "chunked":
            reply.sse(TEXT)
        elif kind == "identity":
            reply.sse(TEXT, headers=[("Content-Encoding", "identity")])
        elif kind == "gzip":
            reply.sse(gzipped, headers=[("Content-Encoding", "gzip")])
        elif kind == "length":
            reply.sse(TEXT, mode="length")
        else:
            reply.sse(TEXT, mode="close")

    server.handler = handler
    with requests.Session() as session:
        for kind, fast in [("chunked", True), ("identity", True), ("gzip", False),
                           ("length", False), ("close", False)]:
            with session.get(f"{server.url}/{kind}", stream=True, timeout=2) as response:
                assert (_buffered_chunked(response) is not None) == fast, kind
                assert b"".join(iter_body(response)) == TEXT, kind


# ------------------------------------------------ framing variants: the same answer


def test_chunk_extensions_with_and_without_values_are_ignored(client, server):
    sizes = [b"%x;name=value", b'%x;name="quoted; value"', b"%x;flag", b"%x ; spaced = 1 ;more"]
    body = b"".join(_chunk(e, sizes[i % len(sizes)]) for i, e in enumerate(EVENTS))
    _assert_same_answer_and_reuse(client, server, [body + b"0;last=1\r\n\r\n"])


def test_upper_case_hex_sizes(client, server):
    pieces = split_at(TEXT, range(0xAB, len(TEXT), 0xAB))  # "AB": a size with letters
    body = _chunked(pieces, b"%X")
    assert b"\r\nAB\r\n" in body
    _assert_same_answer_and_reuse(client, server, [body + END])


def test_zero_padded_hex_sizes(client, server):
    pieces = split_at(TEXT, range(0xAB, len(TEXT), 0xAB))
    body = _chunked(pieces, b"%08x")
    assert b"\r\n000000ab\r\n" in body
    _assert_same_answer_and_reuse(client, server, [body + b"0000\r\n\r\n"])


def test_one_http_chunk_per_event_each_in_its_own_write(client, server):
    writes = [_chunk(e) for e in EVENTS]
    writes[-1] += END  # the terminator with [DONE]: reuse does not hang on a 10 ms settle wait
    _assert_same_answer_and_reuse(client, server, writes, pause=0.0002)


def test_many_events_in_one_chunk(client, server):
    groups = [b"".join(EVENTS[i:i + 5]) for i in range(0, len(EVENTS), 5)]
    _assert_same_answer_and_reuse(client, server, [_chunked(groups) + END])


def test_one_event_split_over_several_chunks(client, server):
    pieces = [p for e in EVENTS for p in split_at(e, [7, len(e) // 2, len(e) - 1])]  # "\n\n" split too
    writes = [_chunk(p) for p in pieces]
    writes[-1] += END
    _assert_same_answer_and_reuse(client, server, writes, pause=0.0002)


def test_hundreds_of_tiny_chunks_in_one_read(client, server):
    pieces = split_at(TEXT, range(3, len(TEXT), 3))
    _assert_same_answer_and_reuse(client, server, [_chunked(pieces) + END])


def test_read_boundaries_inside_size_lines_and_crlfs(client, server):
    """Each framing byte (every size digit, every CR, every LF) is its own write,
    so reads end inside size lines and between the CR and LF of each CRLF."""
    writes = []
    for e in NO_DONE:
        framed = _chunk(e)
        head = framed.index(b"\r\n")
        writes += [framed[i:i + 1] for i in range(head + 2)]  # "1", "2", "4", "\r", "\n"
        writes += [e, b"\r", b"\n"]
    writes += [END[i:i + 1] for i in range(len(END))]
    _assert_same_answer_and_reuse(client, server, writes, pause=0.0002)


def test_a_read_boundary_at_each_framing_offset_of_a_chunk(client, server):
    """The second event's chunk cut (two writes 2 ms apart) inside its size line,
    around the CRLF after it, and around the CRLF after its data."""
    framed = _chunk(EVENTS[1])
    server.handler = lambda req, reply: reply.sse(TEXT)
    plain = _chunks(client)
    before, after = _chunk(EVENTS[0]), _chunked(EVENTS[2:]) + END
    offsets = list(range(1, 6)) + list(range(len(framed) - 4, len(framed)))
    for cut in offsets:
        server.handler = _writing([before + framed[:cut], framed[cut:] + after], pause=0.002)
        assert _chunks(client) == plain, cut
    assert server.connections == 1


def test_a_trailer_section_after_the_last_chunk(client, server):
    body = _chunked(EVENTS) + b"0\r\nX-Trailer: v\r\nX-Other: w\r\n\r\n"
    _assert_same_answer_and_reuse(client, server, [body])


def test_a_trailer_section_split_byte_by_byte(client, server):
    trailer = b"0\r\nX-Trailer: v\r\n\r\n"
    writes = [_chunked(NO_DONE)] + [trailer[i:i + 1] for i in range(len(trailer))]
    _assert_same_answer_and_reuse(client, server, writes, pause=0.0002)


def test_a_stream_without_done_ends_at_the_terminating_chunk_and_is_reused(client, server):
    # No [DONE]: the loop ends when the fast path sees the terminating chunk, so
    # the connection goes back to the pool whatever the timing of the "0" chunk.
    writes = [_chunked(NO_DONE), b"0\r\n", b"\r\n"]
    _assert_same_answer_and_reuse(client, server, writes, pause=0.02)


# -------------------------------------------- malformed or cut framing: raise at once


def _broken_after_three(client, server, bad: bytes, close: bool = False):
    """Sends the first three events as chunks, waits until the client has shown
    all three, then ``bad``, then either closes the connection or goes silent.
    Returns (chunks received, the IncompleteStreamError, seconds it took after ``bad``)."""
    shown = threading.Event()
    sent = []

    def handler(req, reply):
        reply.head(200, SSE, mode="chunked")
        reply.raw(_chunked(EVENTS[:3]))
        shown.wait(5)
        sent.append(time.monotonic())
        reply.raw(bad)
        if close:
            reply.keep_alive = False  # the server closes the connection when the handler returns
        else:
            reply.hang(5)  # silent: only the bad framing can end the stream in time

    server.handler = handler
    got = []
    with pytest.raises(IncompleteStreamError) as caught:
        for chunk in client.chat_completion_stream(model="m", messages="hi"):
            got.append(chunk)
            if len(got) == 3:
                shown.set()
    took = time.monotonic() - sent[0]
    assert collect(got).text == FIRST3
    assert caught.value.partial is not None and caught.value.partial.text == FIRST3
    assert took < 1.0, f"the bad framing was noticed after {took:.2f} s"
    assert server.wait_closed()
    return got, caught.value, took


# The data of the bad chunk is part of an event (never a whole one), so the
# answer is the first three events however the reads fall.
HALF = EVENTS[3][:30]


def test_an_invalid_hex_size_raises_with_partial(client, server):
    _, error, _ = _broken_after_three(client, server, b"zz\r\n" + HALF + b"\r\n")
    assert "ProtocolError" in str(error)


def test_a_size_with_garbage_after_the_digits_raises(client, server):
    _broken_after_three(client, server, b"1e garbage\r\n" + HALF + b"\r\n")


def test_an_empty_size_line_raises(client, server):
    _broken_after_three(client, server, b"\r\n" + HALF + b"\r\n")


def test_a_negative_size_raises_with_partial(client, server):
    _broken_after_three(client, server, b"-1e\r\n" + HALF + b"\r\n")


def test_missing_crlf_after_chunk_data_raises_with_partial(client, server):
    # http.client (the public path) skips those two bytes unchecked: this raises
    # only because the fast path reads the body.
    _broken_after_three(client, server, _chunk(HALF)[:-2] + b"XX" + _chunk(HALF))


def test_a_lone_lf_after_chunk_data_raises(client, server):
    _broken_after_three(client, server, _chunk(HALF)[:-2] + b"\n" + _chunk(HALF))


def test_a_size_line_over_4096_bytes_raises_without_waiting_for_its_end(client, server):
    # The line never ends: the client refuses it once it has read 4096 bytes of it.
    # (http.client would read up to 64 KiB of it: this raises only on the fast path.)
    _broken_after_three(client, server, b"1e;" + b"x" * 5000)


def test_a_size_line_over_4096_bytes_raises_even_when_it_arrives_in_one_read(client, server):
    rest = b"".join(NO_DONE[3:])
    _broken_after_three(client, server, b"%x;%s\r\n" % (len(rest), b"x" * 5000) + rest + b"\r\n" + END)


@pytest.mark.parametrize("cut", [
    b"",                              # after a whole chunk
    b"1",                             # inside a size line
    b"%x\r" % len(EVENTS[3]),         # between a size line's CR and LF
    _chunk(HALF)[:-2],                # before a chunk's CRLF
    _chunk(HALF)[:-1],                # between a chunk's CR and LF
    b"%x\r\n" % len(EVENTS[3]) + HALF,  # inside a chunk's data
], ids=["between-chunks", "in-size-line", "in-size-crlf", "before-data-crlf", "in-data-crlf", "in-data"])
def test_the_connection_closing_before_the_terminating_chunk_raises_with_partial(cut, client, server):
    _, error, _ = _broken_after_three(client, server, cut, close=True)
    assert "ProtocolError" in str(error)


def test_events_in_the_same_read_as_a_bad_chunk_are_kept_in_partial(client, server):
    # The three events and the bad size line in one write: one read on loopback.
    server.handler = _writing([_chunked(EVENTS[:3]) + b"zz\r\n" + HALF], headers=SSE)
    got = []
    with pytest.raises(IncompleteStreamError) as caught:
        for chunk in client.chat_completion_stream(model="m", messages="hi"):
            got.append(chunk)
    assert caught.value.partial is not None and caught.value.partial.text == FIRST3


def test_an_endless_trailer_section_is_refused(server):
    # After the last chunk: trailer bytes that never end (no empty line) are
    # refused after 4096 bytes rather than read until the timeout.
    server.handler = _writing([_chunk(b"hello") + b"0\r\nX-Trailer: " + b"y" * 5000], headers=())
    with requests.Session() as session, session.get(server.url, stream=True, timeout=2) as response:
        assert _buffered_chunked(response) is not None
        got = []
        start = time.monotonic()
        with pytest.raises(urllib3.exceptions.ProtocolError, match="trailer section is too long"):
            for data in iter_body(response):
                got.append(data)
        assert b"".join(got) == b"hello" and time.monotonic() - start < 1.0


# ------------------------------------------------- read timeout and cancel mid-body


@pytest.mark.parametrize("silent_after", [
    b"",                               # after a whole chunk
    b"1",                              # inside a size line
    b"%x\r\n" % len(EVENTS[3]) + HALF,  # inside a chunk's data
    _chunk(HALF)[:-1],                 # inside a chunk's CRLF
], ids=["between-chunks", "in-size-line", "in-data", "in-crlf"])
def test_a_read_timeout_mid_body_raises_api_timeout_with_partial(silent_after, server):
    def handler(req, reply):
        reply.head(200, SSE, mode="chunked")
        reply.raw(_chunked(EVENTS[:3]) + silent_after)
        reply.hang(5)

    server.handler = handler
    with make_client(server, timeout=Timeout(connect=2, read=0.2)) as client:
        got = []
        start = time.monotonic()
        with pytest.raises(APITimeoutError, match="read timeout") as caught:
            for chunk in client.chat_completion_stream(model="m", messages="hi"):
                got.append(chunk)
        took = time.monotonic() - start
    assert collect(got).text == FIRST3 and caught.value.partial.text == FIRST3
    assert 0.15 < took < 1.0, took
    assert server.wait_closed()


def test_cancel_from_another_thread_ends_a_silent_fast_path_stream_quietly(client, server):
    def handler(req, reply):
        reply.head(200, SSE, mode="chunked")
        reply.raw(_chunked(EVENTS[:2]))
        reply.hang(5)

    server.handler = handler
    stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
    got, errors, two = [], [], threading.Event()

    def consume():
        try:
            for chunk in stream:
                got.append(chunk)
                if len(got) == 2:
                    two.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert two.wait(2)
    time.sleep(0.05)  # the reader is now blocked reading the silent socket
    start = time.monotonic()
    token.cancel()
    reader.join(1.0)
    assert not reader.is_alive(), "the stream did not end within a second of cancel()"
    assert time.monotonic() - start < 1.0
    assert errors == [] and collect(got).text == _text(EVENTS[:2])
    assert server.wait_closed()


# ------------------------------------------------------------------ the public path
# Whole gzip, Content-Length and close-delimited streams arriving event by event:
# tests/test_framing.py::test_each_event_arrives_as_soon_as_its_bytes_do. A
# close-delimited stream cut short: tests/test_client.py::test_incomplete_stream_raises_with_partial.
# Added here: compressed bodies in odd chunkings, cut compressed and sized bodies.


def _compressed(pieces, wbits: int):
    """Each piece compressed and flushed, so it decodes on its own arrival."""
    z = zlib.compressobj(wbits=wbits)
    out = [z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
    out[-1] += z.flush()
    return out


@pytest.mark.parametrize("encoding, wbits", [("gzip", 31), ("deflate", 15)])
def test_a_compressed_stream_in_tiny_chunks_gives_the_same_answer(encoding, wbits, client, server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    plain = _chunks(client)
    data = b"".join(_compressed(EVENTS, wbits))
    pieces = split_at(data, range(5, len(data), 5))
    writes = [_chunked(pieces[i:i + 40]) for i in range(0, len(pieces), 40)]
    writes[-1] += END
    server.handler = _writing(writes, pause=0.0002, headers=SSE + [("Content-Encoding", encoding)])
    assert _chunks(client) == plain


def test_a_gzip_stream_cut_mid_body_raises_with_partial(client, server):
    first, rest = _compressed([b"".join(EVENTS[:3]), b"".join(EVENTS[3:])], 31)
    shown = threading.Event()

    def handler(req, reply):
        reply.head(200, SSE + [("Content-Encoding", "gzip")], mode="chunked")
        reply.raw(_chunk(first))
        shown.wait(5)
        reply.raw(b"%x\r\n" % len(rest) + rest[:1])  # one byte of a block: no output yet
        reply.keep_alive = False

    server.handler = handler
    got = []
    with pytest.raises(IncompleteStreamError) as caught:
        for chunk in client.chat_completion_stream(model="m", messages="hi"):
            got.append(chunk)
            if len(got) == 3:
                shown.set()
    assert collect(got).text == FIRST3 and caught.value.partial.text == FIRST3
    assert server.wait_closed()


def test_a_content_length_stream_cut_short_raises_with_partial(client, server):
    shown = threading.Event()

    def handler(req, reply):
        reply.head(200, SSE, mode="length", length=len(TEXT))
        reply.raw(b"".join(EVENTS[:3]))
        shown.wait(5)
        reply.raw(HALF)
        reply.keep_alive = False

    server.handler = handler
    got = []
    with pytest.raises(IncompleteStreamError) as caught:
        for chunk in client.chat_completion_stream(model="m", messages="hi"):
            got.append(chunk)
            if len(got) == 3:
                shown.set()
    assert collect(got).text == FIRST3 and caught.value.partial.text == FIRST3
    assert server.wait_closed()


# --------------------------------------- a urllib3 response not over http.client


def _response(body: bytes, headers: dict) -> requests.Response:
    raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=200, preload_content=False)
    response = requests.Response()
    response.raw = raw
    response.headers = CaseInsensitiveDict(headers)
    response.status_code = 200
    return response


@pytest.mark.parametrize("headers", [
    {"Transfer-Encoding": "chunked"},
    {"Content-Length": str(len(TEXT))},
    {},
    {"Transfer-Encoding": "chunked", "Content-Encoding": "gzip"},
], ids=["chunked", "length", "close", "gzip"])
def test_a_urllib3_response_not_over_http_client_takes_the_public_path(headers):
    body = TEXT
    if headers.get("Content-Encoding") == "gzip":
        z = zlib.compressobj(wbits=31)
        body = z.compress(TEXT) + z.flush()
    response = _response(body, headers)
    assert _buffered_chunked(response) is None
    assert b"".join(iter_body(response)) == TEXT
    response.close()
