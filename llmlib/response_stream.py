"""A streamed HTTP response as a stream of chunks.

The bytes flow :func:`llmlib.body.iter_body` -> the protocol's framing
(:func:`llmlib.framing.frames`: SSE events or NDJSON lines) -> the protocol's
stream decoder -> the caller's for-loop. This module owns the life of the
connection, the same way for every protocol and framing:

- it ends quietly when the :class:`~llmlib.CancelToken` is cancelled, waking a read
  blocked on a silent socket by shutting that socket down;
- it raises a :class:`~llmlib.StreamError` (or the mid-stream error) with
  ``.partial`` holding what arrived, never a silently short answer; what arrived
  is kept folded in an :class:`~llmlib.streaming.Accumulator`, not as chunks, so
  memory does not grow with the number of chunks;
- it closes the response when the loop is left early, the stream is closed (or
  its ``with`` block exits), or it is dropped, even one that was never started;
- after the provider's end marker it never waits: it takes the rest of the body
  (normally the chunked terminator) only if it has already arrived, so the
  connection can go back to the pool, and otherwise closes the connection.
"""

from __future__ import annotations

import collections.abc
import operator
import weakref
from typing import Any, Iterator, Optional

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from llmlib import deadline
from llmlib.body import iter_body
from llmlib.cancel import CancelToken, attach
from llmlib.errors import APITimeoutError, DecodeError, IncompleteStreamError, LLMError
from llmlib.framing import first_bytes, frames
from llmlib.redaction import cut
from llmlib.accumulator import Accumulator
from llmlib.transport import SocketInterrupter, Transport, settle_after_end
from llmlib.types import ChatCompletionChunk, HTTPInfo

__all__ = ["open_stream", "ChunkStream"]


class ChunkStream(collections.abc.Generator):
    """The chunks of one streamed answer: a generator, and a context manager.

    Iterate it (``for chunk in stream``); ``close()`` it, or use
    ``with client.chat_completion_stream(...) as stream:``, to close the
    connection at once even while ``stream`` is still referenced (``break`` alone
    leaves a named generator open until it is garbage-collected, as for any
    Python generator). Dropping it closes the connection too. Raises from the
    for-loop what :func:`open_stream` documents.
    """

    __slots__ = ("_gen", "_release", "http", "_received", "_mode", "__weakref__")

    def __init__(self, gen: Iterator[ChatCompletionChunk], release: "_Release",
                 http: Optional[HTTPInfo] = None, received: Optional[Accumulator] = None,
                 mode: Optional[list] = None) -> None:
        self._gen = gen
        self._release = release
        #: The response's status, headers, request id and rate limits (:class:`~llmlib.types.HTTPInfo`).
        self.http = http
        self._received = received  # what the stream has folded in so far, when it is chat chunks
        self._mode = mode  # [] until the stream starts; _as_events puts its Flattener there

    def _as_events(self, flatten: Any) -> bool:
        """For :func:`llmlib.streaming.events`: make this stream, not yet
        started, yield the events of ``flatten`` (a
        :class:`~llmlib.streaming.Flattener`) instead of its chunks; False when
        it cannot (it has started, or is not a stream of chat chunks)."""
        mode = self._mode
        if mode is None or mode or self._received is None or self._received.count:
            return False
        flatten.received = self._received
        mode.append(flatten)
        return True

    def _collect(self) -> Optional[Any]:
        """For :func:`llmlib.collect`: the whole response of a stream not yet
        started, from the stream's own accumulator (every chunk is folded in
        once, not twice); None when that is not possible."""
        if self._received is None or self._received.count:
            return None
        for _ in self:
            pass
        return self._received.response()

    def __iter__(self) -> "ChunkStream":
        return self

    # The generator's own __next__, reached without a Python frame of ours: the
    # for-loop's lookup of __next__ goes through this property (all C), which
    # costs a fifth of a Python method that calls on.
    __next__ = property(operator.attrgetter("_gen.__next__"))  # type: ignore[assignment]

    def send(self, value: Any) -> ChatCompletionChunk:
        return self._gen.send(value)

    def throw(self, *args: Any) -> ChatCompletionChunk:  # type: ignore[override]
        return self._gen.throw(*args)

    def close(self) -> None:
        """Stop the stream and close its connection (idempotent)."""
        try:
            self._gen.close()
        finally:
            self._release()

    def wrapped(self, gen: Iterator[ChatCompletionChunk]) -> "ChunkStream":
        """A stream of ``gen``, a generator that reads this stream, owning this
        stream's connection the same way (closing or dropping it releases it)."""
        outer = ChunkStream(gen, self._release, self.http)
        weakref.finalize(outer, self._release)
        return outer

    def __enter__(self) -> "ChunkStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ChunkStream {'closed' if self._release.done else 'open'}>"


def open_stream(transport: Transport, response: requests.Response, decoder: Any, framing: str = "sse",
                token: Optional[CancelToken] = None, accumulator: Any = None) -> ChunkStream:
    """The chunks of a streamed ``response``, as a :class:`ChunkStream` that owns it.

    ``decoder`` is the protocol's :class:`~llmlib.providers.base.StreamDecoder`;
    ``framing`` names how the body is cut into events (``"sse"`` or ``"ndjson"``).
    ``token`` may be a :class:`~llmlib.deadline.Deadline` (the ``total``
    timeout), which the stream finishes when it ends. Raises from the for-loop:
    IncompleteStreamError, DecodeError (invalid UTF-8 or JSON, or a payload of a
    shape the decoder cannot read), ResponseTooLargeError, APITimeoutError (read
    or total timeout), or the provider's mid-stream error; each with ``.partial``.
    ``accumulator`` keeps what arrived for ``.partial`` (``add(item)``, ``count``,
    ``response()``); by default an :class:`~llmlib.streaming.Accumulator` of
    chunks. A decoder that yields other items (Responses API events) passes its own.
    """
    release = _Release(transport, response, token)
    received = Accumulator() if accumulator is None else accumulator
    mode: list = []
    chunks = _chunks(transport, response, decoder, framing, token, release, received, mode)
    stream = ChunkStream(chunks, release, HTTPInfo.of(response.status_code, response.headers),
                         received if accumulator is None else None, mode if accumulator is None else None)
    # Dropping a stream (even one never started) releases its connection.
    weakref.finalize(stream, release)
    return stream


class _Release:
    """Closes the response and frees its in-flight slot, once."""

    __slots__ = ("transport", "response", "token", "done")

    def __init__(self, transport: Transport, response: requests.Response, token: Optional[CancelToken]) -> None:
        self.transport, self.response, self.token, self.done = transport, response, token, False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        self.response.close()
        self.transport.finished()
        deadline.finish(self.token)


def _chunks(transport: Transport, response: requests.Response, decoder: Any, framing: str,
            token: Optional[CancelToken], release: _Release, accumulator: Any,
            mode: list) -> Iterator[ChatCompletionChunk]:
    # mode: [] for chunks, [a Flattener] for the events of one choice (see ChunkStream._as_events)
    flatten = mode[0] if mode else None
    if flatten is not None:
        of, fold = flatten.of, flatten.fold
        decoder.events_choice = flatten.choice
    body = iter_body(response)
    framer, events = frames(framing, body, transport.options.max_response_bytes)
    received = accumulator
    add = received.add
    decode = decoder.decode
    interrupter = SocketInterrupter(response)
    detach = attach(token, interrupter.interrupt)
    provider, status = transport.provider, response.status_code
    try:
        try:
            for event in events:
                try:
                    chunk = decode(event)
                except LLMError as exc:  # an error event from the provider
                    raise _with_partial(exc, received) from None
                except Exception as exc:  # invalid JSON, or valid JSON of a shape the decoder cannot read
                    if getattr(framer, "final", False):  # an NDJSON body cut inside its last line
                        raise _with_partial(IncompleteStreamError(
                            f"the stream ended inside a line ({first_bytes(event.data.encode(), 80, transport.scrub)!r}); "
                            "the answer is incomplete", provider=provider, status_code=status), received) from None
                    raise _with_partial(DecodeError(
                        f"cannot decode the stream event at byte offset {framer.block_offset} "
                        f"({type(exc).__name__}: {cut(str(exc), 200, transport.scrub)})",
                        offset=framer.block_offset, provider=provider, status_code=status), received) from None
                if chunk is not None:
                    if token is not None and token.cancelled:
                        _stop(transport, token, response, received)
                        return
                    if flatten is None:
                        add(chunk)
                        yield chunk
                    elif chunk.__class__ is ChatCompletionChunk:
                        add(chunk)
                        yield from of(chunk)
                    else:  # an event the decoder made without a chunk (StreamDecoder.events_choice)
                        fold(chunk)
                        yield chunk
                if decoder.ended:
                    break
        except (HTTPError, OSError) as exc:  # urllib3's errors (ReadTimeoutError too) and socket errors
            if token is not None and token.cancelled:
                _stop(transport, token, response, received)
                return
            if isinstance(exc, ReadTimeoutError):
                _stop(transport, token, response, received)  # a socket timeout cut to the deadline
                raise _with_partial(APITimeoutError(
                    f"read timeout: the server sent nothing for {transport.options.timeout.read} s mid-stream",
                    provider=provider, status_code=status), received) from None
            raise _with_partial(IncompleteStreamError(
                f"the connection broke mid-stream after {framer.bytes_read} bytes "
                f"({type(exc).__name__}); the answer is incomplete",
                provider=provider, status_code=status), received) from None
        except UnicodeDecodeError:
            raise _with_partial(DecodeError(
                f"invalid UTF-8 in the stream event at byte offset {framer.block_offset}",
                offset=framer.block_offset, provider=provider, status_code=status), received) from None
        except LLMError as exc:  # an event over the size limit
            if exc.partial is None:
                _with_partial(exc, received)
            raise

        if token is not None and token.cancelled:
            _stop(transport, token, response, received)
            return
        if decoder.ended:
            # No cancel may reach the connection from here: it may go back to the pool.
            detach()
            interrupter.disarm()
            settle_after_end(response, body)
            return
        if not decoder.complete:
            tail = framer.leftover
            raise _with_partial(IncompleteStreamError(
                "the stream ended before the provider's end marker; the answer is incomplete"
                + (f" (an unterminated event was dropped: {first_bytes(tail, 80, transport.scrub)!r})" if tail else ""),
                provider=provider, status_code=status), received)
    finally:
        detach()
        release()


def _stop(transport: Transport, token: Optional[CancelToken], response: requests.Response,
          received: Accumulator) -> None:
    """The stream was stopped by ``token``: a user's cancel ends it quietly (return),
    an expired total deadline raises APITimeoutError with ``.partial``."""
    if deadline.expired(token):
        raise _with_partial(transport.stopped(token, "mid-stream", response.status_code), received) from None


def _with_partial(exc: LLMError, received: Accumulator) -> LLMError:
    exc.partial = received.response() if received.count else None
    return exc
