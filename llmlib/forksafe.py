"""Fork safety: reset llmlib's per-process state in a child made by ``os.fork()``.

A forked child (gunicorn ``--preload`` workers, multiprocessing's ``fork`` start
method, a plain ``os.fork()``) gets a copy of the parent's memory but only the
thread that called ``fork``. Any llmlib state that belongs to another thread or
to the parent process is then wrong in the child: a watchdog that believes its
thread runs, a lock some parent thread held at that instant (and will never
release in the child), in-flight counts of the parent's requests, pooled
sockets the parent still reads, a server process the child does not own.

Each piece of such state resets itself, from one hook that runs in the child
right after the fork (one ``os.register_at_fork`` call for the whole library)::

    from llmlib import forksafe

    class Pool:
        def __init__(self):
            self._lock = threading.Lock()
            forksafe.register(self)          # weakly held: no leak, no close() needed

        def _after_fork_in_child(self):
            self._lock = threading.Lock()    # replace, never acquire: see below

    forksafe.on_fork_in_child(_reset_module_state)   # for module-level state

The contract for ``_after_fork_in_child()`` and the module callbacks:

- It runs in the child only, with the child's single thread, before ``os.fork()``
  returns there. Objects run in registration order, after the module callbacks.
- It must not block: a lock another parent thread held at fork time stays held
  forever in the child, so replace locks, conditions and events instead of
  acquiring them. (Starting a thread is fine.)
- It should not raise; if it does, the error is logged at DEBUG on the
  ``llmlib`` logger and the remaining resets still run.
- It must not touch the parent's resources: sockets and processes inherited
  from the parent are shared with it, so forget them, never shut them down or
  stop them.

On platforms without ``os.register_at_fork`` (Windows, which has no fork) both
functions only record, and nothing ever runs.
"""

from __future__ import annotations

import itertools
# logging and threading register their own fork hooks on import, and after_in_child
# hooks run in registration order: theirs (fresh logging locks, the child's thread
# table) have run by the time ours does.
import logging
import os
import threading  # noqa: F401
import weakref
from typing import Any, Callable, Dict, List

__all__ = ["register", "on_fork_in_child"]

_log = logging.getLogger("llmlib")

_objects: Dict[int, "weakref.ref[Any]"] = {}  # insertion (registration) order
_callbacks: List[Callable[[], None]] = []
_keys = itertools.count()


def register(obj: Any) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives.

    Holds only a weak reference to ``obj``: registering never keeps an object
    alive, and a dead object is forgotten. Safe from any thread.

    Raises TypeError when ``obj`` has no callable ``_after_fork_in_child`` or
    cannot be weakly referenced (a class with ``__slots__`` needs ``__weakref__``).
    """
    if not callable(getattr(obj, "_after_fork_in_child", None)):
        raise TypeError(f"{type(obj).__name__} has no _after_fork_in_child() method to register")
    key = next(_keys)
    # The callback binds what it needs: at interpreter exit module globals may be gone.
    _objects[key] = weakref.ref(obj, lambda _ref, pop=_objects.pop, key=key: pop(key, None))


def on_fork_in_child(fn: Callable[[], None]) -> Callable[[], None]:
    """Call ``fn()`` in every child forked from now on (module-level state).

    Held strongly, for the life of the process; meant for module functions.
    Returns ``fn``, so it can decorate. Never raises.
    """
    _callbacks.append(fn)
    return fn


def _after_fork_in_child() -> None:
    for fn in list(_callbacks):
        try:
            fn()
        except Exception:
            _failed(fn)
    while True:
        try:
            refs = list(_objects.values())
            break
        except RuntimeError:  # a weakref callback dropped an entry meanwhile: look again
            continue
    for ref in refs:
        obj = ref()
        if obj is None:
            continue
        try:
            obj._after_fork_in_child()
        except Exception:
            _failed(obj)


def _failed(what: Any) -> None:
    try:
        _log.debug("llmlib: resetting %r in a forked child failed; continuing", what, exc_info=True)
    except Exception:  # a broken repr or handler must not stop the other resets either
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
