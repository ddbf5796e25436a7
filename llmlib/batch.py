"""Many requests at once on a thread pool: plain, adaptive, and streamed.

The three Client methods ``chat_completion_batch``, ``chat_completion_batch_smart``
and ``chat_completion_stream_batch`` are thin wrappers over the functions here.
Every batch reuses the Client's connection pool, which grows to the batch's
concurrency (no connection opened and then discarded), runs on a ``ThreadPoolExecutor`` whose threads are
joined before the call returns, and stops cleanly on a CancelToken or
``KeyboardInterrupt``.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Sequence, Tuple, Union

from llmlib.cancel import CancelToken, attach
from llmlib.errors import CancelledError, ConfigurationError, LLMError, OverloadedError, RateLimitError
from llmlib.types import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.client import Client

__all__ = ["DEFAULT_CONCURRENCY", "chat_completion_batch", "chat_completion_batch_smart",
           "chat_completion_stream_batch", "AdaptiveLimit"]

#: Requests run at once when no ``concurrency_limit`` is given.
DEFAULT_CONCURRENCY = 8
Result = Union[ChatCompletionResponse, LLMError]
Progress = Union[bool, Callable[[int, int], None], None]


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
                from tqdm.auto import tqdm
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


def _run_all(run: Callable[[int], Result], n: int, workers: int, token: CancelToken,
             detach: Callable[[], None], progress: Progress) -> List[Result]:
    """``run(i)`` for i in range(n) on ``workers`` threads; results in input order."""
    results: List[Any] = [None] * n
    bar = _Progress(progress, n)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmlib-batch") as pool:
            futures = {pool.submit(run, i): i for i in range(n)}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.step()
            except BaseException:  # KeyboardInterrupt in a notebook: stop everything, then re-raise
                token.cancel()
                raise
    finally:
        detach()
        bar.close()
    return results


def chat_completion_batch(client: "Client", requests: Sequence[ChatCompletionRequest],
                          concurrency_limit: Optional[int] = None, *, cancel: Optional[CancelToken] = None,
                          progress: Progress = False) -> List[Result]:
    """Run ``requests`` on up to ``concurrency_limit`` threads (default
    :data:`DEFAULT_CONCURRENCY`); return a list in input order whose items are
    the ``ChatCompletionResponse`` or the ``LLMError`` each request ended with.
    Nothing is raised for a failed request. Cancelling ``cancel`` stops the whole
    batch: queued requests are not sent, running ones are abandoned (their
    connections closed), and their items are ``CancelledError``. Each request
    still gets the Client's own retries.
    """
    reqs = list(requests)
    if not reqs:
        return []
    limit = _limit(concurrency_limit, len(reqs))
    token, detach = _linked(cancel)

    def run(i: int) -> Result:
        if token.cancelled:
            return _cancelled(i)
        try:
            return client._chat(reqs[i], token)
        except LLMError as exc:
            return _cancelled(i) if token.cancelled else exc

    return _run_all(run, len(reqs), limit, token, detach, progress)


class AdaptiveLimit:
    """The concurrency of an adaptive batch: additive increase, multiplicative decrease.

    Starts at ``start``. After ``window`` successes in a row (default: as many
    as the current limit) it grows by one, up to ``ceiling``. A rate limit or an
    overload halves it (at least 1) and holds back every new request until the
    server's ``Retry-After`` (or 1-2 s) has passed. ``acquire`` blocks for a slot;
    ``release`` returns it with the outcome.
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
        """``outcome``: "ok", "throttled" (429/overloaded) or "error"."""
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
                self.resume_at = max(self.resume_at, time.monotonic() + pause)
            self._cond.notify_all()


def chat_completion_batch_smart(client: "Client", requests: Sequence[ChatCompletionRequest], *,
                                max_concurrency: int = 32, start_concurrency: int = 4, max_attempts: int = 6,
                                cancel: Optional[CancelToken] = None, progress: Progress = False) -> List[Result]:
    """Like :func:`chat_completion_batch`, but finds the provider's limit itself.

    Three requests or fewer run one by one. Larger batches start at
    ``start_concurrency`` and adapt (:class:`AdaptiveLimit`): a 429 or overload
    halves the concurrency, waits what ``Retry-After`` says (no request is sent
    before), and retries that request; a run of successes raises the concurrency
    by one, up to ``max_concurrency``. Connection failures and 5xx are retried with
    backoff; permanent errors (other 4xx) are not. A request is tried at most
    ``max_attempts`` times, then its last error is its item.
    """
    reqs = list(requests)
    if not reqs:
        return []
    if len(reqs) <= 3:
        start_concurrency = max_concurrency = 1
    limiter = AdaptiveLimit(start_concurrency, _limit(max_concurrency, len(reqs)))
    token, detach = _linked(cancel)

    def run(i: int) -> Result:
        error: Optional[LLMError] = None
        for attempt in range(max_attempts):
            if not limiter.acquire(token):
                return _cancelled(i)
            try:
                response = client._chat(reqs[i], token, retry=False)
            except (RateLimitError, OverloadedError) as exc:
                error = exc
                limiter.release("throttled", getattr(exc, "retry_after", None))
                continue
            except LLMError as exc:
                limiter.release("error")
                if token.cancelled:
                    return _cancelled(i)
                if not exc.is_retryable():
                    return exc
                error = exc
                time.sleep(min(0.5 * 2 ** attempt, 8.0) * (1 - 0.25 * random.random()))
                continue
            limiter.release("ok")
            return response
        return error if error is not None else _cancelled(i)

    return _run_all(run, len(reqs), limiter.ceiling, token, detach, progress)


_END = object()


def chat_completion_stream_batch(client: "Client", requests: Sequence[ChatCompletionRequest],
                                 concurrency_limit: Optional[int] = None, *,
                                 cancel: Optional[CancelToken] = None,
                                 buffer: int = 256) -> Iterator[Tuple[int, Union[ChatCompletionChunk, LLMError]]]:
    """Stream several requests at once; yield ``(index, chunk)`` pairs as they arrive.

    A request that fails yields ``(index, error)`` once, and the others go on.
    At most ``buffer`` chunks wait for the consumer (back-pressure: a slow
    consumer slows the streams instead of filling memory). Leaving the loop
    early, or cancelling ``cancel``, cancels every stream still running and
    joins the worker threads before the generator ends.
    """
    reqs = list(requests)
    if not reqs:
        return
    limit = _limit(concurrency_limit, len(reqs))
    token, detach = _linked(cancel)
    items: "queue.Queue[Any]" = queue.Queue(maxsize=max(buffer, 1))

    def put(item: Any) -> bool:
        while True:
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                if token.cancelled:
                    return False

    def run(i: int) -> None:
        try:
            if token.cancelled:
                return
            for chunk in client.chat_completion_stream(reqs[i], cancel=token):
                if not put((i, chunk)):
                    return
        except LLMError as exc:
            if not token.cancelled:
                put((i, exc))
        finally:
            put(_END)

    pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="llmlib-stream")
    try:
        for i in range(len(reqs)):
            pool.submit(run, i)
        remaining = len(reqs)
        while remaining:
            item = items.get()
            if item is _END:
                remaining -= 1
                continue
            yield item
    finally:
        # Streams still running end at once (their sockets are shut down); a worker
        # waiting on a full queue gives up within 50 ms. Then every thread is joined.
        token.cancel()
        detach()
        pool.shutdown(wait=True, cancel_futures=True)
