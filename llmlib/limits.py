"""Client-wide request limits, shared by every thread, batch and ordinary call.

The limits are per process. A child forked from a process that uses a Client
starts with none of the parent's requests counted (they belong to the parent's
threads, which the child does not have) and keeps the pacing schedule, so the
child's first request is not sent sooner than the parent's next one would be.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from llmlib import forksafe
from llmlib.errors import CancelledError

__all__ = ["Limiter"]

_POLL = 0.05  # seconds between looks at a CancelToken while waiting


class Limiter:
    """At most ``max_in_flight`` requests at once, and at most
    ``requests_per_minute`` request starts per minute (evenly paced, one every
    ``60 / requests_per_minute`` seconds, so no burst trips a provider's limit).
    None means no limit; with both None, acquiring costs nothing.

    The counts are per process: see the module docstring for ``fork``.
    """

    def __init__(self, max_in_flight: Optional[int] = None, requests_per_minute: Optional[float] = None) -> None:
        self.max_in_flight = max_in_flight
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.active = bool(max_in_flight or requests_per_minute)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._next_start = 0.0
        if self.active:
            forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # In a forked child: the in-flight requests are the parent's (with
        # max_in_flight=1 and a parent stream open at fork time, the child would
        # otherwise wait forever), and the Condition may be held by a parent
        # thread that the child does not have. Pacing (_next_start) is kept.
        self._cond = threading.Condition()
        self._in_flight = 0

    def acquire(self, cancel=None) -> None:
        """Wait for a slot (and for the pacing interval, in seconds, since the last
        start). Raises CancelledError if ``cancel`` fires meanwhile. Every acquire
        that returns needs one :meth:`release`."""
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
        """Give back the slot of a finished request, waking one waiter.

        Never counts below zero: in a forked child, a request the forking thread
        had in flight ends after the counts were reset.
        """
        if not self.active:
            return
        with self._cond:
            self._in_flight = max(self._in_flight - 1, 0)
            self._cond.notify()
