"""Cutting a byte stream into complete Server-Sent Events, as soon as they arrive.

The SSE specification (https://html.spec.whatwg.org/multipage/server-sent-events.html)
ends a line with CRLF, LF or CR, and an event with an empty line. :class:`SSEFramer`
finds those ends in whatever pieces the network delivers (an event split at any
byte, many events in one read, a CRLF split in two) and hands each complete event
block on at once. sseclient-py then parses the fields (``event``, ``data``, ``id``,
``retry``) of each block; it never sees a partial event, so it never waits for more
bytes, and a block's own line breaks are the only ones it splits on (so U+2028,
U+2029 and U+0085 inside JSON stay text).

The work is linear in the size of the stream: each byte is scanned a bounded number
of times, even for one 10 MiB event arriving in 512-byte reads.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator, Optional, Tuple

import sseclient

from llmlib.errors import ResponseTooLargeError

__all__ = ["SSEFramer", "EventParser", "NDJSONFramer", "Line", "frames", "FRAMINGS", "first_bytes"]

# Two line terminators in a row end an event. Atomic groups stop "\r\n" from being
# read as "\r" then "\n" (one terminator, not two), wherever a read splits them.
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def _too_large(what: str, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"a stream {what} exceeded max_response_bytes={limit} bytes; "
        f"raise ConnectionOptions.max_response_bytes if such {what}s are expected")


class SSEFramer:
    """Turns an iterable of byte pieces into complete SSE event blocks.

    Iterating over it yields each event block (its lines, then ``b"\\n\\n"``) as
    soon as the empty line that ends it has arrived. ``max_event_bytes`` bounds one
    event; a larger one raises :class:`~llmlib.ResponseTooLargeError` before it is
    all buffered. After the source is exhausted, ``leftover`` holds the bytes of an
    unterminated last event (which the SSE spec says must be dropped), and
    ``block_offset`` the byte offset in the body where the last block began.
    """

    __slots__ = ("_source", "max_event_bytes", "leftover", "block_offset", "bytes_read")

    def __init__(self, source: Iterable[bytes], max_event_bytes: int = 32 * 1024 * 1024) -> None:
        self._source = source
        self.max_event_bytes = max_event_bytes
        self.leftover = b""
        self.block_offset = 0
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        buf = bytearray()
        base = 0  # body offset of buf[0]
        search = _EVENT_END.search
        limit = self.max_event_bytes
        cr = False  # once a CR is seen, use the general (regex) path for the rest
        for piece in self._source:
            if not piece:
                continue
            # Resume the search a little before the new bytes: a terminator pair may
            # straddle the boundary (at most 3 bytes of it were already there).
            scan = len(buf) - 3 if len(buf) > 3 else 0
            buf += piece
            self.bytes_read += len(piece)
            cr = cr or b"\r" in piece
            start = 0
            view = memoryview(buf)  # one copy per block: bytes(view[a:b])
            try:
                if cr:
                    m = search(buf, scan)
                    while m is not None:
                        self.block_offset = base + start
                        if m.start() - start > limit:
                            raise _too_large("event", limit)
                        yield bytes(view[start:m.start()]) + b"\n\n"
                        start = m.end()
                        m = search(buf, start)
                else:  # LF only (OpenAI and most providers): a plain substring search
                    end = buf.find(b"\n\n", scan)
                    while end >= 0:
                        self.block_offset = base + start
                        if end - start > limit:  # a whole event in one read is checked too
                            raise _too_large("event", limit)
                        yield bytes(view[start:end + 2])
                        start = end + 2
                        end = buf.find(b"\n\n", start)
            finally:
                view.release()
            if start:
                del buf[:start]
                base += start
            if len(buf) > limit:  # every byte counts, blank ones too
                raise ResponseTooLargeError(
                    f"a stream event exceeded max_response_bytes={limit} bytes before it ended; "
                    "raise ConnectionOptions.max_response_bytes if such events are expected"
                )
        self.leftover = bytes(buf) if buf.strip(_BLANK) else b""


class EventParser(sseclient.SSEClient):
    """sseclient-py's field parser fed with complete event blocks.

    ``SSEClient`` frames its source itself (its ``_read``), line by line with a
    growing ``bytes`` concatenation; :class:`SSEFramer` has already done that
    work, in linear time, so this subclass hands the blocks straight to
    ``SSEClient.events()``, which parses ``event``, ``data``, ``id`` and ``retry``,
    skips comments and unknown fields, and joins multi-line ``data``. A leading
    UTF-8 byte order mark is dropped, as the spec says.
    """

    def _read(self):
        blocks = iter(self._event_source)
        for first in blocks:  # the spec: one leading U+FEFF byte order mark is ignored
            yield first[3:] if first.startswith(_BOM) else first
            break
        yield from blocks


class Line:
    """One NDJSON line as an event: ``event`` is ``"message"``, ``data`` the line's
    text, ``id`` None (the same fields a stream decoder reads from an SSE event)."""

    __slots__ = ("data",)
    event = "message"
    id = None

    def __init__(self, data: str) -> None:
        self.data = data


class NDJSONFramer:
    """Cuts a byte stream of newline-delimited JSON (https://github.com/ndjson/ndjson-spec)
    into :class:`Line` events as soon as each line ends. ``\r\n`` endings and
    blank lines are accepted; a last line without a newline is yielded at the end
    of the body (with ``final`` set, so a decoder error there reads as a cut
    stream). ``max_event_bytes`` bounds one line, every byte counted. The same
    ``bytes_read``, ``block_offset`` and ``leftover`` attributes as
    :class:`SSEFramer`. Linear in the size of the stream."""

    __slots__ = ("_source", "max_event_bytes", "leftover", "block_offset", "bytes_read", "final")

    def __init__(self, source: Iterable[bytes], max_event_bytes: int = 32 * 1024 * 1024) -> None:
        self._source = source
        self.max_event_bytes = max_event_bytes
        self.leftover = b""
        self.block_offset = 0
        self.bytes_read = 0
        self.final = False

    def __iter__(self) -> Iterator[Line]:
        buf = bytearray()
        base = 0
        limit = self.max_event_bytes
        for piece in self._source:
            if not piece:
                continue
            scan = len(buf)
            buf += piece
            self.bytes_read += len(piece)
            start = 0
            end = buf.find(b"\n", scan)
            while end >= 0:
                if end - start > limit:  # a whole line in one read is checked too
                    raise _too_large("line", limit)
                line = bytes(buf[start:end]).strip()
                if line:
                    self.block_offset = base + start
                    yield Line(line.decode("utf-8"))
                start = end + 1
                end = buf.find(b"\n", start)
            if start:
                del buf[:start]
                base += start
            if len(buf) > limit:
                raise ResponseTooLargeError(
                    f"a stream line exceeded max_response_bytes={limit} bytes before it ended; "
                    "raise ConnectionOptions.max_response_bytes if such lines are expected"
                )
        line = bytes(buf).strip()
        if line:
            self.block_offset = base
            self.final = True
            yield Line(line.decode("utf-8"))


def _sse_events(framer: SSEFramer) -> Iterator[Any]:
    return EventParser(framer).events()


#: Each framing's name -> (framer class, events of a framer, the content types a stream of it may have).
FRAMINGS = {
    "sse": (SSEFramer, _sse_events, ("text/event-stream",)),
    "ndjson": (NDJSONFramer, iter, ("application/x-ndjson", "application/jsonl", "application/json")),
}


def frames(framing: str, source: Iterable[bytes], max_event_bytes: int) -> Tuple[Any, Iterator[Any]]:
    """``(framer, events)`` for a body in ``framing`` (a key of :data:`FRAMINGS`).

    ``events`` yields objects with ``event``, ``data`` and ``id``; ``framer``
    reports ``bytes_read``, ``block_offset`` and ``leftover`` for error messages.
    Raises ResponseTooLargeError (from ``events``) for an event over
    ``max_event_bytes``, UnicodeDecodeError for invalid UTF-8.
    """
    framer_class, events_of, _ = FRAMINGS[framing]
    framer = framer_class(source, max_event_bytes)
    return framer, events_of(framer)


def first_bytes(data: Optional[bytes], n: int = 200, scrub: Optional[Callable[[str], str]] = None) -> str:
    """A short printable snippet of a body (``n`` characters), for error messages.

    ``scrub`` (a Client's secret scrubber) runs before the cut, over enough of
    the body that no secret can straddle it, and a trailing piece of a secret
    (a body that ended mid-secret) is replaced too: see
    :func:`llmlib.redaction.first_chars`.
    """
    from llmlib.redaction import first_chars

    return first_chars(data, n, scrub) if data else ""
