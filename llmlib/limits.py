"""Client-wide request limits, shared by every thread, batch and ordinary call."""

from __future__ import annotations

import threading
import time
from typing import Optional

from llmlib.errors import CancelledError

__all__ = ["Limiter"]

_POLL = 0.05  # seconds between looks at a CancelToken while waiting


class Limiter:
    """At most ``max_in_flight`` requests at once, and at most
    ``requests_per_minute`` request starts per minute (evenly paced, one every
    ``60 / requests_per_minute`` seconds, so no burst trips a provider's limit).
    None means no limit; with both None, acquiring costs nothing.
    """

    def __init__(self, max_in_flight: Optional[int] = None, requests_per_minute: Optional[float] = None) -> None:
        self.max_in_flight = max_in_flight
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.active = bool(max_in_flight or requests_per_minute)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._next_start = 0.0

    def acquire(self, cancel=None) -> None:
        """Wait for a slot. Raises CancelledError if ``cancel`` fires meanwhile."""
        if not self.active:
            return
        with self._cond:
            while self.max_in_flight and self._in_flight >= self.max_in_flight:
                if cancel is not None and cancel.cancelled:
                    raise CancelledError("cancelled while waiting for a request slot")
                self._cond.wait(_POLL)
            self._in_flight += 1
            start = max(time.monotonic(), self._next_start)
            self._next_start = start + self.interval
        try:
            while True:
                wait = start - time.monotonic()
                if wait <= 0:
                    return
                if cancel is not None and cancel.cancelled:
                    raise CancelledError("cancelled while waiting for the request rate limit")
                time.sleep(min(wait, _POLL))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if not self.active:
            return
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()
