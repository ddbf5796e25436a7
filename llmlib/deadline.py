"""The ``total`` timeout: a deadline for a whole call, stream included.

A socket timeout bounds one silence, so a server that drips one byte a second
never trips it. A :class:`Deadline` is a :class:`~llmlib.CancelToken` that one
shared watchdog thread cancels when the call's time is up; cancelling shuts the
call's socket down, exactly like a user's cancel, so every place that already
stops on a cancel stops on the deadline too. ``expired`` tells the two apart:
the caller's cancel ends a stream quietly, an expired deadline raises
:class:`~llmlib.APITimeoutError`.

The watchdog thread runs only while some deadline is pending, and exits when
none is left, so an idle process holds no llmlib thread.

Fork: a child forked while deadlines were pending inherits them but not the
watchdog thread. The child gets a watchdog of its own (a thread again if any
deadline is pending), so a call the forking thread continues in the child, and
every call the child makes, still ends on time. A deadline inherited from the
parent forgets the cancel callbacks registered before the fork: they shut down
sockets the parent shares and may by then use for another request, and a
cancel in one process must never reach the other's requests.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional, Sequence, Set

from llmlib import forksafe
from llmlib.cancel import CancelToken, attach

__all__ = ["Deadline", "start"]


class Deadline(CancelToken):
    """A CancelToken that cancels itself ``seconds`` after it is made, and also
    when ``parent`` (the caller's token, if any) is cancelled.

    Call :meth:`finish` when the call ends, so the watchdog forgets it.
    """

    __slots__ = ("seconds", "at", "expired", "_unlink")

    def __init__(self, seconds: float, parent: Optional[CancelToken] = None) -> None:
        super().__init__()
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._unlink: Callable[[], None] = attach(parent, self.cancel)
        _watchdog.add(self)

    def remaining(self) -> float:
        """Seconds left before the deadline, at least 0."""
        return max(0.0, self.at - time.monotonic())

    def expire(self) -> None:
        """The time is up: mark it, then cancel (the watchdog calls this)."""
        self.expired = True
        self.cancel()

    def finish(self) -> None:
        """The call ended: drop the watchdog's entry and the link to the parent. Idempotent."""
        _watchdog.discard(self)
        self._unlink()

    def _after_fork_in_child(self) -> None:
        # The watchdog calls this for each inherited deadline, in a forked child.
        # A lock or event some parent thread held at fork time is never released
        # here: replace them. The callbacks registered before the fork shut down
        # sockets shared with the parent: drop them (see the module docstring).
        self._lock = threading.Lock()
        self._callbacks = {}
        self._event = threading.Event()
        if self._cancelled:
            self._event.set()

    def __repr__(self) -> str:
        return f"Deadline(seconds={self.seconds}, expired={self.expired}, cancelled={self.cancelled})"


def start(total: Optional[float], cancel: Optional[CancelToken]) -> Optional[CancelToken]:
    """The token a call should use: a :class:`Deadline` when ``total`` (seconds)
    is set, else ``cancel`` itself (possibly None)."""
    if total is None:
        return cancel
    return Deadline(total, cancel)


def finish(token: Optional[CancelToken]) -> None:
    """End ``token``'s deadline, if it is one."""
    if isinstance(token, Deadline):
        token.finish()


def expired(token: Optional[CancelToken]) -> bool:
    """Whether ``token`` is a deadline that ran out (or is within 10 ms of it: a
    socket timeout cut to the deadline may fire just before the watchdog does)."""
    return isinstance(token, Deadline) and (token.expired or token.remaining() <= 0.01)


class _Watchdog:
    """Expires pending deadlines on time, from one thread that lives only while
    some deadline is pending."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: Set[Deadline] = set()
        self._running = False
        self._firing: Sequence[Deadline] = ()  # taken out of _pending, being expired right now
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # Inherited: a Condition another parent thread may hold, and _running=True
        # for a thread the child does not have (so add() would never start one).
        self._cond = threading.Condition()
        self._running = False
        # A parent watchdog forked between taking deadlines out and expiring them:
        # expire them here (again, if they were; that is harmless).
        self._pending.update(self._firing)
        self._firing = ()
        for deadline in list(self._pending):
            deadline._after_fork_in_child()
        if self._pending:  # calls in flight at fork time: their deadlines still fire
            self._start()

    def add(self, deadline: Deadline) -> None:
        with self._cond:
            self._pending.add(deadline)
            if not self._running:
                self._start()
            else:
                self._cond.notify()

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="llmlib-deadlines", daemon=True)
        self._running = True
        try:
            thread.start()
        except BaseException:  # no thread after all (say, "can't start new thread")
            self._running = False
            raise

    def discard(self, deadline: Deadline) -> None:
        with self._cond:
            if deadline in self._pending:
                self._pending.discard(deadline)
                if not self._pending:
                    self._cond.notify()  # let the thread exit now

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._running = False
                    return
                now = time.monotonic()
                due = [d for d in self._pending if d.at <= now]
                if not due:
                    self._cond.wait(min(d.at for d in self._pending) - now)
                    continue
                self._pending.difference_update(due)
                self._firing = due
            for deadline in due:  # outside the lock: expiring shuts sockets down
                deadline.expire()
            self._firing = ()


_watchdog = _Watchdog()
