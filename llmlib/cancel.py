"""Cancelling requests and streams from any thread."""

from __future__ import annotations

import threading
from typing import Callable, Dict, Optional

__all__ = ["CancelToken", "attach"]


class CancelToken:
    """Stops the requests and streams it was handed to, from any thread.

    ``cancel()`` is idempotent and thread-safe. A stream that is cancelled ends
    quietly (no exception) within about 100 ms even when its server is silent:
    the token shuts the stream's socket down instead of waiting for the next
    read. ``cancelled`` tells afterwards why a stream ended. One token may serve
    many requests; a request that has already finished is not affected.
    """

    __slots__ = ("_lock", "_cancelled", "_callbacks", "_next", "_event")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._event = threading.Event()
        self._callbacks: Dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` has been called."""
        return self._cancelled

    def cancel(self) -> None:
        """Cancel everything attached to this token. Safe to call twice, or after the end."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        self._event.set()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # a callback closes a socket; failing to is harmless here
                pass

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once on :meth:`cancel`; return ``cancelled``."""
        return self._event.wait(seconds)

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when the token is cancelled (at once if it already is).

        Returns a function that detaches the callback; call it when the work ends
        so that a later cancel does not touch a connection that is back in the pool.
        """
        with self._lock:
            if not self._cancelled:
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def detach() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return detach
        callback()
        return _noop

    def __repr__(self) -> str:
        return f"CancelToken(cancelled={self._cancelled})"


def attach(token: Optional[CancelToken], callback: Callable[[], None]) -> Callable[[], None]:
    """``token.on_cancel(callback)``, or a do-nothing detach when ``token`` is None."""
    return token.on_cancel(callback) if token is not None else _noop


def _noop() -> None:
    pass
