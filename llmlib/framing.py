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
from typing import Callable, Iterable, Iterator, Optional

import sseclient

from llmlib.errors import ResponseTooLargeError

__all__ = ["SSEFramer", "EventParser", "first_bytes"]

# Two line terminators in a row end an event. Atomic groups stop "\r\n" from being
# read as "\r" then "\n" (one terminator, not two), wherever a read splits them.
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_BLANK = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"


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
                        yield bytes(view[start:m.start()]) + b"\n\n"
                        start = m.end()
                        m = search(buf, start)
                else:  # LF only (OpenAI and most providers): a plain substring search
                    end = buf.find(b"\n\n", scan)
                    while end >= 0:
                        self.block_offset = base + start
                        yield bytes(view[start:end + 2])
                        start = end + 2
                        end = buf.find(b"\n\n", start)
            finally:
                view.release()
            if start:
                del buf[:start]
                base += start
            if len(buf) > limit and buf.strip(_BLANK):
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


def first_bytes(data: Optional[bytes], n: int = 200, scrub: Optional[Callable[[str], str]] = None) -> str:
    """A short printable snippet of a body (``n`` characters), for error messages.

    ``scrub`` (a Client's secret scrubber) runs before the cut, so that a
    secret straddling the cut cannot leave its first characters behind.
    """
    if not data:
        return ""
    text = data[:n + 512].decode("utf-8", "replace")
    if scrub is not None:
        text = scrub(text)
    return text[:n] + ("..." if len(data) > n else "")
