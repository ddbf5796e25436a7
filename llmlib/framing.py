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

import operator
import re
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

import sseclient

from llmlib.errors import ResponseTooLargeError

__all__ = ["SSEFramer", "EventParser", "NDJSONFramer", "Event", "frames", "FRAMINGS", "first_bytes"]

# Two line terminators in a row end an event. Atomic groups stop "\r\n" from being
# read as "\r" then "\n" (one terminator, not two), wherever a read splits them.
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


def _too_large(what: str, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"a stream {what} exceeded max_response_bytes={limit} bytes; "
        f"raise ConnectionOptions.max_response_bytes if such {what}s are expected")


class Event(tuple):
    """One event whose only field is ``data`` (an SSE event block that is exactly
    one ``data:`` line, or an NDJSON line): ``event`` is ``"message"``, ``id``
    and ``retry`` None, the same fields sseclient-py's ``Event`` has.

    A one-item tuple, like a ``namedtuple``, because it is made once per streamed
    token: the framer makes it with ``tuple.__new__`` and reading ``data`` runs
    no Python code."""

    __slots__ = ()
    event = "message"
    id = None
    retry = None
    data = property(operator.itemgetter(0), doc="The event's data (str).")

    def __new__(cls, data: str) -> "Event":
        return _new_tuple(cls, (data,))


_new_tuple = tuple.__new__


class EventParser(sseclient.SSEClient):
    """sseclient-py's field parser fed with complete event blocks.

    ``SSEClient`` frames its source itself (its ``_read``), line by line with a
    growing ``bytes`` concatenation; :class:`SSEFramer` has already done that
    work, in linear time, so this subclass hands the blocks straight to
    ``SSEClient.events()``, which parses ``event``, ``data``, ``id`` and ``retry``,
    skips comments and unknown fields, and joins multi-line ``data``.
    """

    def _read(self):
        return iter(self._event_source)


class SSEFramer:
    """Turns an iterable of byte pieces into SSE events, each as soon as the empty
    line that ends it has arrived.

    Iterating over it yields events with ``event``, ``data``, ``id`` and
    ``retry``. A block that is exactly one ``data:`` line (what OpenAI and most
    providers send) is read here, straight to an :class:`Event`; every other
    block (more fields, comments, CR line ends) is parsed by sseclient-py
    (:class:`EventParser`). A leading UTF-8 byte order mark is dropped, as the
    spec says. ``max_event_bytes`` bounds one event; a larger one raises
    :class:`~llmlib.ResponseTooLargeError` before it is all buffered; invalid
    UTF-8 raises UnicodeDecodeError. After the source is exhausted,
    ``leftover`` holds the bytes of an unterminated last event (which the SSE
    spec says must be dropped); ``block_offset`` is the byte offset in the body
    where the last event began.

    The common case, LF line ends and valid UTF-8, is read a whole network read
    at a time: the complete events in it are decoded to text at once and split
    on blank lines, which costs far less per event than a search per event.
    """

    __slots__ = ("_source", "max_event_bytes", "leftover", "bytes_read", "_offset", "_blocks", "_at")

    def __init__(self, source: Iterable[bytes], max_event_bytes: int = 32 * 1024 * 1024) -> None:
        self._source = source
        self.max_event_bytes = max_event_bytes
        self.leftover = b""
        self.bytes_read = 0
        self._offset = 0  # body offset of the last event, or of the first of _blocks
        self._blocks: Optional[List[str]] = None  # the decoded event blocks the last event came from
        self._at: Optional[Iterator[str]] = None  # the iterator over _blocks: where the last event is

    @property
    def block_offset(self) -> int:
        """The byte offset in the body where the last event began."""
        if self._at is None:
            return self._offset
        blocks = self._blocks
        index = len(blocks) - operator.length_hint(self._at) - 1
        return self._offset + sum(len(block.encode()) + 2 for block in blocks[:index])

    def __iter__(self) -> Iterator[Any]:
        buf = bytearray()
        base = 0  # body offset of buf[0]
        limit = self.max_event_bytes
        cr = False  # once a CR is seen, only the general path is used
        bom = True  # the start of the body may still be (part of) a byte order mark
        new = _new_tuple  # Event(data) is new(Event, (data,)), without a Python call
        for piece in self._source:
            if not piece:
                continue
            # Resume the search a little before the new bytes: a terminator pair may
            # straddle the boundary (at most 3 bytes of it were already there).
            scan = len(buf) - 3 if len(buf) > 3 else 0
            buf += piece
            self.bytes_read += len(piece)
            cr = cr or b"\r" in piece
            del piece  # buf has it: one copy of the read while its events are handed on
            if bom:
                if len(buf) < 3 and _BOM.startswith(buf):
                    continue
                bom = False
                if buf.startswith(_BOM):
                    del buf[:3]
                    base = 3
            last = -1 if cr else buf.rfind(b"\n\n", scan)
            if last > 0 and buf[last - 1] == 10:  # inside a run of 3+ LFs: pair them from the left,
                run = last - 1                     # as a reader going forward does
                while run > 0 and buf[run - 1] == 10:
                    run -= 1
                if (last + 2 - run) % 2:
                    last -= 1
            text = None
            if 0 <= last <= limit:
                try:
                    text = buf[:last].decode("utf-8")
                except UnicodeDecodeError:
                    pass  # the general path finds the event and raises there
            if text is not None:  # the fast path: every complete event of this read at once
                blocks = text.split("\n\n")
                self._blocks, self._offset, self._at = blocks, base, iter(blocks)
                n = len(blocks) - 1
                uniform = text.startswith("data: ") and text.count("\n") == 2 * n and text.count("\n\ndata: ") == n
                text = None  # the blocks are the only copy kept while their events are handed on
                del buf[:last + 2]
                base += last + 2
                if uniform:
                    for block in self._at:  # each is "data: " and the data, nothing else
                        yield new(Event, (block[6:],))
                else:
                    for block in self._at:
                        if "\n" in block or not block.startswith("data:"):
                            yield from EventParser(((block + "\n\n").encode(),)).events()
                        else:  # exactly one data line; the spec drops one space after the colon
                            yield new(Event, (block[6:] if block.startswith(" ", 5) else block[5:],))
                self._at = None
                start = 0
            elif cr or last >= 0:
                start = yield from self._general(buf, base, scan)
            else:
                start = 0  # no event has ended yet
            if start:
                del buf[:start]
                base += start
            if len(buf) > limit:  # every byte counts, blank ones too
                raise ResponseTooLargeError(
                    f"a stream event exceeded max_response_bytes={limit} bytes before it ended; "
                    "raise ConnectionOptions.max_response_bytes if such events are expected"
                )
        self.leftover = bytes(buf) if buf.strip(_BLANK) else b""

    def _general(self, buf: bytearray, base: int, scan: int) -> Iterator[Any]:
        """Every complete event in ``buf`` from ``scan`` on, one regex search each
        (any line ends), each block parsed by sseclient-py; returns where the
        unfinished rest begins."""
        limit = self.max_event_bytes
        search = _EVENT_END.search
        start = 0
        m = search(buf, scan)
        while m is not None:
            self._offset = base + start
            if m.start() - start > limit:
                raise _too_large("event", limit)
            yield from EventParser((bytes(buf[start:m.start()]) + b"\n\n",)).events()
            start = m.end()
            m = search(buf, start)
        return start


class NDJSONFramer:
    """Cuts a byte stream of newline-delimited JSON (https://github.com/ndjson/ndjson-spec)
    into :class:`Event` objects as soon as each line ends. ``\r\n`` endings and
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

    def __iter__(self) -> Iterator[Event]:
        buf = bytearray()
        base = 0
        limit = self.max_event_bytes
        for piece in self._source:
            if not piece:
                continue
            scan = len(buf)
            buf += piece
            self.bytes_read += len(piece)
            del piece  # buf has it: one copy of the read while its lines are handed on
            start = 0
            end = buf.find(b"\n", scan)
            while end >= 0:
                if end - start > limit:  # a whole line in one read is checked too
                    raise _too_large("line", limit)
                line = bytes(buf[start:end]).strip()
                if line:
                    self.block_offset = base + start
                    yield Event(line.decode("utf-8"))
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
            yield Event(line.decode("utf-8"))


#: Each framing's name -> (framer class, events of a framer, the content types a stream of it may have).
FRAMINGS = {
    "sse": (SSEFramer, iter, ("text/event-stream",)),
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
