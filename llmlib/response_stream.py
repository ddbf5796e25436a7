"""One HTTP response body as a plain generator of chunks.

The bytes flow ``Transport.iter_body`` -> :class:`~llmlib.framing.SSEFramer` ->
sseclient-py (fields) -> the protocol's stream decoder -> the caller's for-loop.
This module owns the life of the connection:

- it ends quietly when the :class:`~llmlib.CancelToken` is cancelled, waking a read
  blocked on a silent socket by shutting that socket down;
- it raises a :class:`~llmlib.StreamError` (or the mid-stream error) with
  ``.partial`` holding what arrived, never a silently short answer;
- it closes the response when the loop is left early, the generator is closed, or
  the generator is dropped, even one that was never started; after the provider's
  end marker it reads the body to its end so the connection goes back to the pool.
"""

from __future__ import annotations

import weakref
from typing import Any, Iterator, List, Optional

import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from llmlib import deadline
from llmlib.cancel import CancelToken, attach
from llmlib.errors import APITimeoutError, DecodeError, IncompleteStreamError, LLMError
from llmlib.framing import EventParser, SSEFramer, first_bytes
from llmlib.streaming import collect
from llmlib.transport import SocketInterrupter, Transport
from llmlib.types import ChatCompletionChunk

__all__ = ["open_stream", "SocketInterrupter"]

_DRAIN_LIMIT = 64 * 1024  # bytes read after the end marker before giving the connection up


def open_stream(transport: Transport, response: requests.Response, decoder: Any,
                token: Optional[CancelToken] = None) -> Iterator[ChatCompletionChunk]:
    """The chunks of a streamed ``response``, as a generator that owns it.

    ``decoder`` is the protocol's stream decoder: ``decode(event)`` returns a chunk
    or None; ``ended`` says the end marker arrived; ``complete`` that the answer is
    whole. ``token`` may be a :class:`~llmlib.deadline.Deadline` (the ``total``
    timeout), which the generator finishes when it ends. Raises from the
    for-loop: IncompleteStreamError, DecodeError, ResponseTooLargeError,
    APITimeoutError (read or total timeout), or the provider's mid-stream
    error; each with ``.partial``.
    """
    release = _Release(transport, response, token)
    gen = _chunks(transport, response, decoder, token, release)
    # Dropping a generator that never started runs no finally block: release here.
    weakref.finalize(gen, release)
    return gen


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


def _chunks(transport: Transport, response: requests.Response, decoder: Any,
            token: Optional[CancelToken], release: _Release) -> Iterator[ChatCompletionChunk]:
    body = transport.iter_body(response)
    framer = SSEFramer(body, transport.options.max_response_bytes)
    received: List[ChatCompletionChunk] = []
    interrupter = SocketInterrupter(response)
    detach = attach(token, interrupter.interrupt)
    try:
        try:
            for event in EventParser(framer).events():
                chunk = decoder.decode(event)
                if chunk is not None:
                    if token is not None and token.cancelled:
                        _stop(transport, token, response, received)
                        return
                    received.append(chunk)
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
                    provider=transport.provider, status_code=response.status_code), received) from None
            raise _with_partial(IncompleteStreamError(
                f"the connection broke mid-stream after {framer.bytes_read} bytes "
                f"({type(exc).__name__}); the answer is incomplete",
                provider=transport.provider, status_code=response.status_code), received) from None
        except UnicodeDecodeError:
            raise _with_partial(DecodeError(
                f"invalid UTF-8 in the stream event at byte offset {framer.block_offset}",
                offset=framer.block_offset, provider=transport.provider,
                status_code=response.status_code), received) from None
        except ValueError as exc:  # json.JSONDecodeError, or a non-object payload
            if isinstance(exc, LLMError):
                raise _with_partial(exc, received)
            raise _with_partial(DecodeError(
                f"invalid JSON in the stream event at byte offset {framer.block_offset}: {exc}",
                offset=framer.block_offset, provider=transport.provider,
                status_code=response.status_code), received) from None
        except LLMError as exc:  # a mid-stream error event, or an event over the size limit
            raise _with_partial(exc, received)

        if token is not None and token.cancelled:
            _stop(transport, token, response, received)
            return
        if decoder.ended:
            # Read the rest (normally just the chunked terminator) so urllib3 puts the
            # connection back in the pool; first make sure no cancel can touch it.
            detach()
            interrupter.disarm()
            _drain(body)
            return
        if not decoder.complete:
            tail = framer.leftover
            raise _with_partial(IncompleteStreamError(
                "the stream ended before the provider's end marker; the answer is incomplete"
                + (f" (an unterminated event was dropped: {first_bytes(tail, 80, transport.scrub)!r})" if tail else ""),
                provider=transport.provider, status_code=response.status_code), received)
    finally:
        detach()
        release()


def _stop(transport: Transport, token: Optional[CancelToken], response: requests.Response,
          received: List[ChatCompletionChunk]) -> None:
    """The stream was stopped by ``token``: a user's cancel ends it quietly (return),
    an expired total deadline raises APITimeoutError with ``.partial``."""
    if deadline.expired(token):
        raise _with_partial(transport.stopped(token, "mid-stream", response.status_code), received) from None


def _drain(body: Iterator[bytes]) -> None:
    drained = 0
    try:
        for piece in body:
            drained += len(piece)
            if drained > _DRAIN_LIMIT:
                return
    except (HTTPError, OSError):
        pass


def _with_partial(exc: LLMError, received: List[ChatCompletionChunk]) -> LLMError:
    exc.partial = collect(received) if received else None
    return exc

