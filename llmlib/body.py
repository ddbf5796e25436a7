"""The bytes of a streamed response body, read in bulk as the network delivers them.

Streaming is a read loop, and its cost per read matters: a provider sends one
HTTP chunk per token, and urllib3 (through ``http.client``) spends a Python call
chain on each of those chunks. For the common body, chunked and not compressed,
:func:`iter_body` therefore reads the connection's buffered reader directly, up
to :data:`READ_SIZE` bytes at a time (whatever has arrived, never waiting for
more), and undoes the chunked transfer coding (RFC 9112 section 7.1) here, over
all the chunks of one read at once. At the end of the body it closes the
``http.client`` response and hands the connection back to urllib3's pool, as
urllib3's own chunked reader does.

Everything else (a compressed body, a close-delimited or sized body, a response
object of another kind) goes through urllib3's public ``read1``, which returns as
soon as any bytes are there and decodes gzip, deflate, brotli and zstd. Both
paths raise urllib3's exceptions (``ProtocolError``, ``ReadTimeoutError``) or
``OSError``, which the stream layer maps to llmlib's errors.
"""

from __future__ import annotations

import http.client
import socket
from typing import Any, Iterator, List, Optional, Tuple

import requests
from urllib3.exceptions import ProtocolError, ReadTimeoutError

__all__ = ["iter_body", "READ_SIZE"]

#: Bytes asked for per read (a read returns what has arrived, up to this). Small
#: on purpose: a stream holds a few copies of one read at a time (body, frame
#: buffer, decoded text), so this bounds its memory; 4 KiB holds 15-30 events,
#: which already makes the per-read cost small beside the per-event cost.
#: (100 concurrent streams: 10 MiB above baseline at 4 KiB, 50 MiB at 64 KiB.)
READ_SIZE = 4 * 1024
_MAX_LINE = 4096  # bytes of a chunk-size line or trailer section before it is refused as malformed
_HEX = frozenset(b"0123456789abcdefABCDEF")


def iter_body(response: requests.Response) -> Iterator[bytes]:
    """The body of a streamed ``response`` as the network delivers it, decoded
    (chunked transfer coding undone, content coding such as gzip decoded).

    Each read returns as soon as any bytes are there, for chunked, sized and
    close-delimited bodies alike. Raises ``urllib3.exceptions.ProtocolError``
    for a malformed or cut chunked body, ``ReadTimeoutError`` when the read
    timeout (seconds, the socket's) passes with nothing read, ``OSError`` for a
    broken connection.
    """
    fast = _buffered_chunked(response)
    if fast is not None:
        return _dechunked(response.raw, *fast)
    return _read1(response)


def _buffered_chunked(response: requests.Response) -> Optional[Tuple[http.client.HTTPResponse, Any]]:
    """``(http.client response, its buffered reader)`` when the body is chunked,
    not compressed and not yet read, on a urllib3 response over ``http.client``;
    otherwise None (the public path)."""
    raw = response.raw
    original = getattr(raw, "_fp", None)
    if not isinstance(original, http.client.HTTPResponse):
        return None
    if not original.chunked or original.chunk_left is not None or getattr(raw, "_has_decoded_content", True):
        return None
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return None
    fp = original.fp
    if fp is None or not hasattr(fp, "read1") or not callable(getattr(raw, "release_conn", None)):
        return None
    return original, fp


def _read1(response: requests.Response) -> Iterator[bytes]:
    """The public path: urllib3's ``read1`` (``stream`` before urllib3 2.2)."""
    raw = response.raw
    read = getattr(raw, "read1", None)
    if read is None:  # urllib3 < 2.2: chunked bodies stay prompt, close-delimited ones buffer
        yield from raw.stream(READ_SIZE, decode_content=True)
        return
    # requests asks for gzip but leaves decoding to iter_content; read1 decodes
    # only when told. Plain bodies skip the decoder's extra buffer copy.
    decode = response.headers.get("content-encoding", "identity").strip().lower() != "identity"
    while True:
        data = read(READ_SIZE, decode_content=decode)
        if not data:
            return
        yield data


def _dechunked(raw: Any, original: http.client.HTTPResponse, fp: Any) -> Iterator[bytes]:
    """The data of a chunked body read from ``fp`` in bulk: one bytes object per
    read, holding the data of every chunk (or part of a chunk) in it."""
    read1 = fp.read1
    data = b""
    pos = 0
    left = 0  # > 0: bytes of the current chunk's data still to come
    crlf = False  # the CRLF after a chunk's data is still to come
    while True:
        more = _read(read1, raw)
        if not more:
            raise ProtocolError("the connection closed inside the chunked body (no terminating chunk)")
        data = data + more if data else more
        pos = 0
        end = len(data)
        parts = []
        try:
            while pos < end:
                if left:
                    take = left if left < end - pos else end - pos
                    parts.append(data if take == end else data[pos:pos + take])
                    pos += take
                    left -= take
                    if left:
                        break
                    crlf = True
                if crlf:
                    if end - pos < 2:
                        break
                    if data[pos] != 13 or data[pos + 1] != 10:
                        raise ProtocolError("malformed chunked body: no CRLF after a chunk's data")
                    pos += 2
                    crlf = False
                eol = data.find(b"\r\n", pos, pos + _MAX_LINE + 2)
                if eol < 0:
                    if end - pos > _MAX_LINE:
                        raise ProtocolError("malformed chunked body: a chunk-size line is too long")
                    break
                try:
                    size = int(data[pos:eol], 16)  # as lax as http.client: it also takes "0x", "_" and spaces
                except ValueError:
                    size = _chunk_size(data, pos, eol)  # an extension, or not a size at all
                if size < 0:
                    raise ProtocolError(f"malformed chunked body: negative chunk size {data[pos:eol][:40]!r}")
                pos = eol + 2
                if size == 0:
                    if parts:
                        yield b"".join(parts)
                        parts = []
                    _trailers(read1, raw, data[pos:])
                    original.close()  # the body is complete: what urllib3 does before releasing
                    raw.release_conn()
                    return
                left = size
        except ProtocolError:
            if parts:  # the whole chunks before the bad one are the caller's, as with urllib3
                yield b"".join(parts)
            raise
        # While the caller works on this read, keep only the bytes not yet taken
        # (usually none): one copy of a read per stream in memory, not three.
        data = data[pos:] if pos < end else b""
        if parts:
            yield parts.pop() if len(parts) == 1 else _joined(parts)


def _joined(parts: List[bytes]) -> bytes:
    whole = b"".join(parts)
    parts.clear()
    return whole


def _read(read1: Any, raw: Any) -> bytes:
    try:
        return read1(READ_SIZE)
    except socket.timeout:  # as urllib3 reports it
        raise ReadTimeoutError(getattr(raw, "_pool", None), None, "Read timed out.") from None


def _chunk_size(data: bytes, start: int, eol: int) -> int:
    line = data[start:eol]
    semi = line.find(b";")  # a chunk extension (ignored, as the RFC allows)
    digits = (line if semi < 0 else line[:semi]).strip(b" \t")
    if not digits or not _HEX.issuperset(digits):
        raise ProtocolError(f"malformed chunked body: invalid chunk size {line[:40]!r}")
    return int(digits, 16)


def _trailers(read1: Any, raw: Any, data: bytes) -> None:
    """Reads the trailer section after the last chunk, up to its empty line (a
    body that ends without it is accepted, as by urllib3). At most
    :data:`_MAX_LINE` bytes, however they arrive."""
    while not data.startswith(b"\r\n"):
        end = data.find(b"\r\n\r\n")
        if end > _MAX_LINE or (end < 0 and len(data) > _MAX_LINE):
            raise ProtocolError("malformed chunked body: the trailer section is too long")
        if end >= 0:
            return
        more = _read(read1, raw)
        if not more:
            return
        data += more
