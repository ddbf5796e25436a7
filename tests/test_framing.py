"""Server-Sent Events framing under every split, line ending and encoding the
network can produce: first the frame reader alone (exhaustive and property-based),
then the same streams through a Client and a loopback server."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlib import DecodeError, ResponseTooLargeError, collect
from llmlib.framing import SSEFramer
from tests.conftest import make_client

TEXTS = ["Hé", "llo ", "wörld — ", "日本語 ", "😀", " a\u2028b\u2029c\u0085d", "é"]  # last: split target


def _chunk(i: int, content: str, finish=None) -> bytes:
    obj = {"id": "c1", "object": "chat.completion.chunk", "model": "m",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _blocks():
    """The lines of each event block; a stream exercising every SSE field."""
    payloads = [_chunk(i, t) for i, t in enumerate(TEXTS)] + [_chunk(len(TEXTS), "", "stop")]
    multi = payloads[3]
    cut = multi.index(b',"choices"') + 1
    return [
        [b": keep-alive"],                                        # comment only: no event
        [b"id: 1", b"data: " + payloads[0]],
        [b"event: message", b"retry: 3000", b"data:" + payloads[1]],  # no space after the colon
        [b"foo: bar", b"data: " + payloads[2]],                   # unknown field: ignored
        [b"data: " + multi[:cut], b"data: " + multi[cut:]],       # multi-line data, joined by "\n"
        [b"data: " + payloads[4], b": a comment inside an event"],
        *[[b"data: " + p] for p in payloads[5:]],
        [b"data: [DONE]"],
    ]


ENDINGS = {"LF": [b"\n"], "CR": [b"\r"], "CRLF": [b"\r\n"], "mixed": [b"\n", b"\r", b"\r\n", b"\r\n", b"\r"]}


def stream(ending: str) -> bytes:
    """The test stream with the given line endings (``mixed`` cycles through them)."""
    return _join([line for block in _blocks() for line in block + [b""]], ENDINGS[ending])


def _join(lines, ends) -> bytes:
    """``lines`` each ended by the next of ``ends`` (cycling). A CR followed by
    an LF would be read, rightly, as one CRLF: such an LF becomes a CRLF."""
    out, previous = [], b""
    for n, line in enumerate(lines):
        end = ends[n % len(ends)]
        if previous == b"\r" and end == b"\n" and not line:
            end = b"\r\n"
        out.append(line + end)
        previous = end
    return b"".join(out)


def parse(pieces):
    """(event, data, id, retry) of each event the frame reader gives for ``pieces``."""
    framer = SSEFramer(iter(pieces))
    return [(e.event, e.data, e.id, e.retry) for e in framer]


WANT = parse([stream("LF")])


def test_the_fields_are_read_as_the_spec_says():
    assert [e[0] for e in WANT] == ["message"] * 9  # no event for the comment-only block
    assert WANT[0][2] == "1" and WANT[1][3] == "3000"
    assert WANT[3][1].count("\n") == 1  # two data lines joined by one LF
    texts = [json.loads(e[1])["choices"][0]["delta"]["content"] for e in WANT[:-1]]
    assert texts == TEXTS + [""]
    assert WANT[-1][1] == "[DONE]"


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_line_ending_and_every_split_gives_the_same_events(ending):
    raw = stream(ending)
    assert parse([raw]) == WANT
    for cut in range(1, len(raw)):  # one cut at every byte boundary
        assert parse([raw[:cut], raw[cut:]]) == WANT, cut
    one_by_one = [piece for i in range(len(raw)) for piece in (raw[i:i + 1], b"")]  # with empty reads
    assert parse(one_by_one) == WANT


def test_a_byte_order_mark_is_dropped_once():
    bom = b"\xef\xbb\xbf"
    assert parse([bom + stream("LF")]) == WANT
    assert parse([bom[:1], bom[1:] + stream("CRLF")]) == WANT


def test_no_merged_or_spurious_events_around_crlf_boundaries():
    # "\r\n" split across reads is one line end, not two (which would end an event early).
    raw = b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"
    for cut in range(1, len(raw)):
        assert [e[1] for e in parse([raw[:cut], raw[cut:]])] == ["a\nb", "c"], cut


def test_unicode_line_separators_stay_inside_json():
    raw = "data: {\"t\": \"x\u2028y\u2029z\u0085w\"}\n\n".encode()
    (event,) = parse([raw])
    assert json.loads(event[1])["t"] == "x\u2028y\u2029z\u0085w"


sse_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30)
sse_event = st.fixed_dictionaries({
    "event": st.one_of(st.none(), st.text(st.characters(whitelist_categories=("Ll",)), min_size=1, max_size=8)),
    "data": st.lists(sse_text, min_size=1, max_size=3),
    "id": st.one_of(st.none(), st.text(st.characters(whitelist_categories=("Nd",)), min_size=1, max_size=4)),
    "comment": st.one_of(st.none(), sse_text),
})


def _encode(events, ending_choices) -> bytes:
    out = []
    for ev in events:
        lines = []
        if ev["comment"] is not None:
            lines.append(":" + ev["comment"])
        if ev["event"]:
            lines.append("event: " + ev["event"])
        if ev["id"]:
            lines.append("id: " + ev["id"])
        lines += ["data: " + d for d in ev["data"]]
        out += [line.encode() for line in lines + [""]]
    return _join(out, ending_choices)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(sse_event, min_size=1, max_size=6),
    endings=st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=1, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    empties=st.booleans(),
)
def test_property_any_split_of_any_valid_stream_gives_the_same_events(events, endings, cuts, empties):
    raw = _encode(events, endings)
    whole = parse([raw])
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0] + points, points + [len(raw)])]
    if empties:
        pieces = [p for piece in pieces for p in (piece, b"")]
    assert parse(pieces) == whole
    # And the unsplit reading is the spec's: one event per block, data lines joined by LF.
    assert [e[1] for e in whole] == ["\n".join(ev["data"]) for ev in events]
    assert [e[0] for e in whole] == [ev["event"] or "message" for ev in events]


def _peak_bytes(pieces) -> tuple:
    """(seconds, peak traced bytes, sizes of the events' data) reading ``pieces``,
    keeping no event."""
    tracemalloc.start()
    try:
        start = time.perf_counter()
        sizes = [len(e.data) for e in SSEFramer(iter(pieces))]
        took = time.perf_counter() - start
        return took, tracemalloc.get_traced_memory()[1], sizes
    finally:
        tracemalloc.stop()


def test_a_10_mib_event_in_512_byte_reads_is_linear_in_time_and_memory():
    size = 10 * 1024 * 1024
    body = b"data: " + b"x" * size + b"\n\n"
    took, peak, sizes = _peak_bytes([body[i:i + 512] for i in range(0, len(body), 512)])
    assert sizes == [size]
    assert took < 5.0, f"{took:.2f} s"  # linear: about 0.3 s here; sseclient-py's own reader takes minutes
    # The framer's buffer, the event block, and sseclient-py's line and str copies:
    # a fixed multiple of the one event, however it was split.
    assert peak < 8 * size, f"peak {peak / size:.1f}x the event"


def test_memory_is_bounded_by_the_largest_event_not_the_stream():
    event = b"data: " + b"x" * (100 * 1024) + b"\n\n"
    body = event * 100  # 10 MiB in all
    took, peak, sizes = _peak_bytes([body[i:i + 512] for i in range(0, len(body), 512)])
    assert len(sizes) == 100
    assert peak < 12 * len(event), f"peak {peak / len(event):.1f}x one event"  # the same multiple + slack
    assert peak < len(body) / 8


def test_an_event_over_the_limit_raises_before_it_is_all_read():
    read = []

    def endless():
        yield b"data: "
        while True:
            read.append(4096)
            yield b"y" * 4096

    with pytest.raises(ResponseTooLargeError, match="max_response_bytes=65536"):
        list(SSEFramer(endless(), 65536))
    assert sum(read) < 65536 + 2 * 4096


# ---------------------------------------------------------------- over HTTP


def _send_with_split_framing(reply, pieces):
    """Chunked, with each chunk's size line, data and CRLF in separate writes:
    the client sees network reads that carry no body bytes at all."""
    reply.head(200, [("Content-Type", "text/event-stream")], mode="chunked")
    for piece in pieces:
        for part in (b"%x\r\n" % len(piece), piece, b"\r\n"):
            reply.raw(part)
            time.sleep(0.0002)
    reply.end()


def _texts(chunks):
    return [c.text for c in chunks]


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_line_endings_over_http_with_bodiless_reads(ending, client, server):
    raw = stream(ending)
    want = TEXTS + [""]
    server.handler = lambda req, reply: reply.sse(raw)
    assert _texts(client.chat_completion_stream(model="m", messages="hi")) == want
    pieces = [raw[i:i + 3] for i in range(0, len(raw), 3)]
    server.handler = lambda req, reply: _send_with_split_framing(reply, pieces)
    assert _texts(client.chat_completion_stream(model="m", messages="hi")) == want


def test_utf8_split_at_every_offset_over_http(client, server):
    raw = stream("CRLF")
    want = "".join(TEXTS)
    for cut in range(1, len(raw)):
        server.handler = lambda req, reply: reply.sse([raw[:cut], raw[cut:]])
        assert collect(client.chat_completion_stream(model="m", messages="hi")).text == want, cut
    assert server.connections == 1  # every stream ended cleanly and gave its connection back


def test_invalid_utf8_is_a_decode_error_with_its_offset(client, server):
    good = b"data: " + _chunk(0, "ok") + b"\n\n"
    bad = b"data: {\"x\": \"\xff\xfe\"}\n\n"
    server.handler = lambda req, reply: reply.sse([good, bad])
    got = []
    with pytest.raises(DecodeError, match="UTF-8") as caught:
        for chunk in client.chat_completion_stream(model="m", messages="hi"):
            got.append(chunk)
    assert caught.value.offset == len(good)
    assert _texts(got) == ["ok"] and caught.value.partial.text == "ok"
    assert server.wait_closed()


def test_an_oversized_event_raises_early_and_closes_the_socket(server):
    sent = []

    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(b"data: " + _chunk(0, "ok") + b"\n\ndata: ")
        try:
            for _ in range(2560):  # 10 MiB in all, unless the client hangs up
                reply.piece(b"z" * 4096)
                sent.append(4096)
        except OSError:
            pass

    server.handler = handler
    with make_client(server, max_response_bytes=64 * 1024) as client:
        got = []
        with pytest.raises(ResponseTooLargeError) as caught:
            for chunk in client.chat_completion_stream(model="m", messages="hi"):
                got.append(chunk)
    assert _texts(got) == ["ok"] and caught.value.partial.text == "ok"
    assert server.wait_closed(5)
    assert sum(sent) < 10 * 1024 * 1024  # the server was cut off, not read to the end


def test_an_oversized_body_raises_from_its_content_length(server):
    server.handler = lambda req, reply: (
        reply.head(200, [("Content-Type", "application/json")], mode="length", length=10**9), reply.hang(5))
    with make_client(server, max_response_bytes=1024) as client:
        start = time.monotonic()
        with pytest.raises(ResponseTooLargeError, match="1000000000 bytes"):
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 2
    assert server.wait_closed()


def _gzip_pieces(pieces):
    """Each piece compressed and flushed, so it can be decoded on its own arrival."""
    z = zlib.compressobj(wbits=31)
    out = [z.compress(p) + z.flush(zlib.Z_SYNC_FLUSH) for p in pieces]
    out[-1] += z.flush()
    return out


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("mode", ["chunked", "close", "length"])
def test_each_event_arrives_as_soon_as_its_bytes_do(mode, gzip, client, server):
    raw = stream("LF")
    first_end = raw.index(b"\n\n", raw.index(b"data:")) + 2
    pieces = [raw[:first_end], raw[first_end:]]
    if gzip:
        pieces = _gzip_pieces(pieces)
    released = threading.Event()

    def handler(req, reply):
        headers = [("Content-Type", "text/event-stream")] + ([("Content-Encoding", "gzip")] if gzip else [])
        reply.head(200, headers, mode, length=sum(map(len, pieces)))
        reply.piece(pieces[0])
        released.wait(5)  # the rest is sent only once the client has shown the first chunk
        reply.piece(pieces[1])
        reply.end()

    server.handler = handler
    start = time.monotonic()
    stream_ = client.chat_completion_stream(model="m", messages="hi")
    first = next(stream_)
    waited = time.monotonic() - start
    released.set()
    assert first.text == TEXTS[0] and waited < 2.5, f"the first event waited {waited:.2f} s for later bytes"
    assert [first.text] + _texts(stream_) == TEXTS + [""]
