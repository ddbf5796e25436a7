"""Many requests at once on a thread pool: plain, adaptive, and streamed.

The three Client methods ``chat_completion_batch``, ``chat_completion_batch_smart``
and ``chat_completion_stream_batch`` are thin wrappers over the functions here.
Every batch reuses the Client's connection pool, which grows to the batch's
concurrency (no connection opened and then discarded), runs on a ``ThreadPoolExecutor`` whose threads are
joined before the call returns, and stops cleanly on a CancelToken or
``KeyboardInterrupt``.

One item never costs a batch the others: whatever one request raises becomes
that request's item, an ``LLMError`` (an exception that is not one, such as a
TypeError from a response of an unexpected shape, as a ``DecodeError`` whose
``__cause__`` is the original). Only ``KeyboardInterrupt`` and ``SystemExit``
(any ``BaseException`` that is not an ``Exception``) leave a batch: the rest of
it is cancelled, its threads joined, and the exception re-raised.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

from llmlib.cancel import CancelToken, attach
from llmlib.errors import (CancelledError, ConfigurationError, DecodeError, LLMError, OverloadedError,
                           RateLimitError)
from llmlib.transport import MAX_RETRY_AFTER
from llmlib.types import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.checkpoint import Checkpoint
    from llmlib.client import Client

__all__ = ["DEFAULT_CONCURRENCY", "chat_completion_batch", "chat_completion_batch_smart",
           "chat_completion_stream_batch", "AdaptiveLimit"]

#: Requests run at once when no ``concurrency_limit`` is given.
DEFAULT_CONCURRENCY = 8
Result = Union[ChatCompletionResponse, LLMError]
Progress = Union[bool, Callable[[int, int], None], None]
CheckpointPath = Union[str, "os.PathLike[str]"]


def _limit(concurrency_limit: Optional[int], n: int) -> int:
    if concurrency_limit is None:
        concurrency_limit = DEFAULT_CONCURRENCY
    if not isinstance(concurrency_limit, int) or isinstance(concurrency_limit, bool) or concurrency_limit < 1:
        raise ConfigurationError(f"concurrency_limit must be a whole number >= 1, not {concurrency_limit!r}")
    return max(1, min(concurrency_limit, n))


class _Progress:
    """``progress=True``: a tqdm bar (terminal or Jupyter); a callable gets (done, total)."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.total = total
        self.done = 0
        self.callback: Optional[Callable[[int, int], None]] = None
        self.bar = None
        if progress is True:
            try:
                import importlib.util

                if importlib.util.find_spec("ipywidgets") is not None:
                    from tqdm.auto import tqdm  # a widget bar in Jupyter, text in a terminal
                else:
                    from tqdm.std import tqdm  # text everywhere, without tqdm.auto's IProgress warning
            except ImportError:
                raise ConfigurationError("progress=True needs tqdm: pip install tqdm") from None
            self.bar = tqdm(total=total, unit="req")
        elif callable(progress):
            self.callback = progress
        elif progress not in (False, None):
            raise ConfigurationError("progress must be True, False or a callable(done, total)")

    def step(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _linked(cancel: Optional[CancelToken]) -> Tuple[CancelToken, Callable[[], None]]:
    """A token of the batch's own, cancelled with the caller's ``cancel``."""
    token = CancelToken()
    detach = attach(cancel, token.cancel)
    return token, detach


def _cancelled(index: int) -> CancelledError:
    return CancelledError(f"request {index} of the batch was cancelled before it finished")


_DETAIL = 300  # characters of a foreign exception's message kept in the item's DecodeError


def _unexpected(client: "Client", index: int, exc: Exception) -> DecodeError:
    """An exception from request ``index`` that is not an ``LLMError``, as its item:
    a DecodeError naming the exception type and the index, ``__cause__`` the original."""
    try:
        detail = str(exc)
    except Exception:  # a broken __str__ must not break the batch either
        detail = "?"
    if len(detail) > _DETAIL:
        detail = detail[:_DETAIL] + "..."
    transport = getattr(client, "_transport", None)
    scrub: Callable[[str], str] = getattr(transport, "scrub", None) or (lambda text: text)
    error = DecodeError(
        scrub(f"request {index} of the batch failed with {type(exc).__name__}: {detail} "
              "(an unexpected response shape, or a bug: see __cause__)"),
        provider=getattr(client, "provider", None),
    )
    error.__cause__ = exc
    return error


def _run_all(run: Callable[[int], Result], n: int, workers: int, token: CancelToken,
             detach: Callable[[], None], progress: Progress,
             store: Optional["Checkpoint"] = None) -> List[Result]:
    """``run(i)`` for i in range(n) on ``workers`` threads; results in input order.
    With a checkpoint ``store``: only its pending items run, each written to it
    (and fsynced) before it counts as done; the rest come from the file."""
    results: List[Any] = [None] * n
    todo: Sequence[int] = range(n)
    if store is not None:
        for i, done in store.done.items():
            results[i] = done
        todo = store.pending
        run = _recording(run, store)
    if not todo:
        detach()
        if store is not None:
            store.close()
        return results
    try:
        bar = _Progress(progress, len(todo))
    except BaseException:  # a bad ``progress``: nothing started, nothing left attached
        detach()
        if store is not None:
            store.close()
        raise
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))), thread_name_prefix="llmlib-batch")
    try:
        futures = {pool.submit(run, i): i for i in todo}
        for future in as_completed(futures):
            # ``run`` turns every Exception into its item: only a BaseException (a
            # KeyboardInterrupt or SystemExit in a worker) is raised here.
            results[futures[future]] = future.result()
            bar.step()
    except BaseException:  # also KeyboardInterrupt in a notebook: stop everything, then re-raise
        token.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        detach()
        bar.close()
        if store is not None:
            store.close()
    return results


def _recording(run: Callable[[int], Result], store: "Checkpoint") -> Callable[[int], Result]:
    def recorded(i: int) -> Result:
        result = run(i)
        store.record(i, result)  # on disk before the item counts as done; an OSError stops the batch
        return result
    return recorded


def _checkpoint(checkpoint: Optional[CheckpointPath], reqs: List[ChatCompletionRequest]) -> Optional["Checkpoint"]:
    if checkpoint is None:
        return None
    from llmlib.checkpoint import Checkpoint

    return Checkpoint(checkpoint, reqs)


def chat_completion_batch(client: "Client", requests: Sequence[ChatCompletionRequest],
                          concurrency_limit: Optional[int] = None, *, cancel: Optional[CancelToken] = None,
                          progress: Progress = False,
                          checkpoint: Optional[CheckpointPath] = None) -> List[Result]:
    """Run ``requests`` on up to ``concurrency_limit`` threads (default
    :data:`DEFAULT_CONCURRENCY`); return a list in input order whose items are
    the ``ChatCompletionResponse`` or the ``LLMError`` each request ended with.
    Nothing is raised for a failed request, whatever it raised: an exception that
    is not an ``LLMError`` becomes a ``DecodeError`` item (its ``__cause__`` the
    original). Cancelling ``cancel`` stops the whole batch: queued requests are
    not sent, running ones are abandoned (their connections closed), and their
    items are ``CancelledError``. Each request still gets the Client's own
    retries. ``KeyboardInterrupt`` or ``SystemExit`` (in the caller's thread or a
    worker) cancels the rest and is re-raised once the threads are joined; so is
    an exception raised by a ``progress`` callable.

    ``checkpoint``: a file path; each finished item is appended to it as one
    JSON line, on disk before it counts as done, and calling the same batch
    again with the same path sends only the items not finished yet (retryable
    errors and changed requests included) and returns the whole list in input
    order. See :mod:`llmlib.checkpoint`.
    """
    reqs = list(requests)
    if not reqs:
        return []
    limit = _limit(concurrency_limit, len(reqs))
    store = _checkpoint(checkpoint, reqs)
    token, detach = _linked(cancel)

    def run(i: int) -> Result:
        if token.cancelled:
            return _cancelled(i)
        try:
            return client._chat(reqs[i], token)
        except LLMError as exc:
            return _cancelled(i) if token.cancelled else exc
        except Exception as exc:
            return _cancelled(i) if token.cancelled else _unexpected(client, i, exc)
        except BaseException:  # KeyboardInterrupt / SystemExit: nothing more is sent
            token.cancel()
            raise

    return _run_all(run, len(reqs), limit, token, detach, progress, store)


class AdaptiveLimit:
    """The concurrency of an adaptive batch: additive increase, multiplicative decrease.

    Starts at ``start``. After ``window`` successes in a row (default: as many
    as the current limit) it grows by one, up to ``ceiling``. A rate limit or an
    overload halves it (at least 1) and holds back every new request until the
    server's ``Retry-After`` (or 1-2 s when it gave none) has passed, at most
    :data:`~llmlib.transport.MAX_RETRY_AFTER` seconds. ``acquire`` blocks for a
    slot (False once the token is cancelled); ``release`` returns it with the outcome.
    """

    def __init__(self, start: int, ceiling: int, window: Optional[int] = None) -> None:
        self.limit = max(1, min(start, ceiling))
        self.ceiling = ceiling
        self.window = window
        self.in_flight = 0
        self.resume_at = 0.0
        self.lowest = self.limit
        self._successes = 0
        self._cond = threading.Condition()

    def acquire(self, token: CancelToken) -> bool:
        with self._cond:
            while True:
                if token.cancelled:
                    return False
                wait = self.resume_at - time.monotonic()
                if wait <= 0 and self.in_flight < self.limit:
                    self.in_flight += 1
                    return True
                self._cond.wait(min(wait, 0.05) if wait > 0 else 0.05)

    def release(self, outcome: str, retry_after: Optional[float] = None) -> None:
        """``outcome``: "ok", "throttled" (429/overloaded) or "error";
        ``retry_after``: the wait the server asked for, in seconds, or None."""
        with self._cond:
            self.in_flight -= 1
            if outcome == "ok":
                self._successes += 1
                if self._successes >= (self.window or self.limit) and self.limit < self.ceiling:
                    self.limit += 1
                    self._successes = 0
            elif outcome == "throttled":
                self._successes = 0
                self.limit = max(1, self.limit // 2)
                self.lowest = min(self.lowest, self.limit)
                pause = retry_after if retry_after is not None else 1.0 + random.random()
                # An hour's Retry-After never stalls the whole batch for an hour.
                pause = min(max(pause, 0.0), MAX_RETRY_AFTER)
                self.resume_at = max(self.resume_at, time.monotonic() + pause)
            self._cond.notify_all()


def chat_completion_batch_smart(client: "Client", requests: Sequence[ChatCompletionRequest], *,
                                max_concurrency: int = 32, start_concurrency: int = 4, max_attempts: int = 6,
                                cancel: Optional[CancelToken] = None, progress: Progress = False,
                                checkpoint: Optional[CheckpointPath] = None) -> List[Result]:
    """Like :func:`chat_completion_batch`, but finds the provider's limit itself.

    Three requests or fewer run one by one. Larger batches start at
    ``start_concurrency`` and adapt (:class:`AdaptiveLimit`): a retryable 429 or
    overload halves the concurrency, waits what ``Retry-After`` says (no request is
    sent before), and retries that request; a run of successes raises the
    concurrency by one, up to ``max_concurrency``. Connection failures and 5xx are
    retried with backoff (``min(0.5 * 2**n, 8)`` s less up to 25% jitter, which a
    cancel cuts short). Nothing ``is_retryable()`` rejects is sent again: permanent
    errors (other 4xx) and a 429 such as ``insufficient_quota`` are the item at
    once. As with the Client's own retries, a 429 asking for a wait over
    :data:`~llmlib.transport.MAX_RETRY_AFTER` seconds is the item at once (its
    ``.retry_after`` says how long), and does not hold the others back. A request
    is tried at most ``max_attempts`` times, then its last error is its item. An
    exception that is not an ``LLMError`` is its item as a ``DecodeError``, never
    retried; cancelling and ``KeyboardInterrupt`` work as in
    :func:`chat_completion_batch`, and so does ``checkpoint`` (only a request's
    final item is written, after its retries).
    """
    reqs = list(requests)
    if not reqs:
        return []
    if len(reqs) <= 3:
        start_concurrency = max_concurrency = 1
    limiter = AdaptiveLimit(start_concurrency, _limit(max_concurrency, len(reqs)))
    store = _checkpoint(checkpoint, reqs)
    token, detach = _linked(cancel)

    def run(i: int) -> Result:
        error: Optional[LLMError] = None
        for attempt in range(max_attempts):
            if not limiter.acquire(token):
                return _cancelled(i)
            outcome, retry_after = "error", None
            try:  # every path out of here releases the slot (finally)
                response = client._chat(reqs[i], token, retry=False)
                outcome = "ok"
                return response
            except LLMError as exc:
                if token.cancelled:
                    return _cancelled(i)
                if not exc.is_retryable():
                    return exc  # a permanent error, or a 429 that says not to retry (quota)
                error = exc
                if isinstance(exc, (RateLimitError, OverloadedError)):
                    retry_after = getattr(exc, "retry_after", None)
                    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                        return exc  # come back in an hour: give up now, as plain retries do
                    outcome = "throttled"
            except Exception as exc:
                return _cancelled(i) if token.cancelled else _unexpected(client, i, exc)
            except BaseException:  # KeyboardInterrupt / SystemExit: cancel before the slot frees
                token.cancel()
                raise
            finally:
                limiter.release(outcome, retry_after)
            if outcome == "error" and attempt + 1 < max_attempts:
                # Backoff; a throttled request waits in acquire() for the limiter instead.
                if token.wait(min(0.5 * 2 ** attempt, 8.0) * (1 - 0.25 * random.random())):
                    return _cancelled(i)
        return error if error is not None else _cancelled(i)

    return _run_all(run, len(reqs), limiter.ceiling, token, detach, progress, store)


_END = object()


class _Channel:
    """The bounded hand-off from the stream workers to the consumer.

    Unlike a plain ``queue.Queue``, a cancel of ``token`` wakes both sides at once:
    ``put`` then returns False (the worker stops) and ``get`` returns ``_END``, so
    the consumer never waits for an end marker a worker could not deliver. The
    consumer learns that the workers are done from a count (``done()``), not from
    markers in the buffer.
    """

    def __init__(self, size: int, producers: int, token: CancelToken) -> None:
        self._items: "deque[Any]" = deque()
        self._size = size
        self._producers = producers
        self._raise: Optional[BaseException] = None
        self._token = token
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        token.on_cancel(self._wake)

    def _wake(self) -> None:
        with self._not_empty:
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def put(self, item: Any) -> bool:
        """Wait for room, then add ``item``; False (nothing added) once cancelled."""
        with self._not_full:
            while len(self._items) >= self._size and not self._token.cancelled:
                self._not_full.wait()
            if self._token.cancelled:
                return False
            self._items.append(item)
            self._not_empty.notify()
            return True

    def done(self) -> None:
        """One worker has finished (called exactly once per submitted worker)."""
        with self._not_empty:
            self._producers -= 1
            self._not_empty.notify()

    def abort(self, exc: BaseException) -> None:
        """A worker met a KeyboardInterrupt / SystemExit: the consumer re-raises it."""
        with self._not_empty:
            if self._raise is None:
                self._raise = exc
        self._token.cancel()  # stops the other streams, wakes the consumer

    def get(self) -> Any:
        """The next item; ``_END`` once cancelled, or once every worker is done and
        the buffer is empty. Raises what a worker passed to :meth:`abort`."""
        with self._not_empty:
            while True:
                if self._raise is not None:
                    raise self._raise
                if self._token.cancelled:
                    return _END
                if self._items:
                    item = self._items.popleft()
                    self._not_full.notify()
                    return item
                if self._producers <= 0:
                    return _END
                self._not_empty.wait()


def chat_completion_stream_batch(client: "Client", requests: Sequence[ChatCompletionRequest],
                                 concurrency_limit: Optional[int] = None, *,
                                 cancel: Optional[CancelToken] = None,
                                 buffer: int = 256) -> Iterator[Tuple[int, Union[ChatCompletionChunk, LLMError]]]:
    """Stream several requests at once; yield ``(index, chunk)`` pairs as they arrive.

    ``index`` is the request's position in ``requests``. A request that fails
    yields ``(index, error)`` once, an ``LLMError`` (an exception that is not one
    arrives as a ``DecodeError`` whose ``__cause__`` is the original), and the
    others go on. At most ``buffer`` chunks wait for the consumer (back-pressure:
    a slow consumer slows the streams instead of filling memory). Leaving the
    loop early (``break``, ``close()``, an exception), or cancelling ``cancel``,
    cancels every stream still running; the loop then ends at its next step
    without yielding what was still buffered, and the worker threads are joined
    before the generator ends. A ``KeyboardInterrupt`` or ``SystemExit`` in a
    worker cancels the rest and is raised from the loop.
    """
    reqs = list(requests)
    if not reqs:
        return
    limit = _limit(concurrency_limit, len(reqs))
    token, detach = _linked(cancel)

    def run(i: int) -> None:
        stream: Any = None
        try:
            if token.cancelled:
                return
            stream = client.chat_completion_stream(reqs[i], cancel=token)
            for chunk in stream:
                if not channel.put((i, chunk)):
                    return
        except LLMError as exc:
            if not token.cancelled:
                channel.put((i, exc))
        except Exception as exc:
            if not token.cancelled:
                channel.put((i, _unexpected(client, i, exc)))
        except BaseException as exc:
            channel.abort(exc)
        finally:
            try:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()  # frees the connection now, not when the generator is collected
            finally:
                channel.done()

    pool: Optional[ThreadPoolExecutor] = None
    try:
        channel = _Channel(max(buffer, 1), len(reqs), token)
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="llmlib-stream")
        for i in range(len(reqs)):
            pool.submit(run, i)
        while True:
            item = channel.get()
            if item is _END:
                return
            yield item
    finally:
        # Streams still running end at once (their sockets are shut down), and a
        # worker waiting for room in the buffer is woken by the cancel; workers not
        # started yet never start. Then every thread is joined.
        token.cancel()
        detach()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
