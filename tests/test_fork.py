"""Fork safety (DESIGN.md section 3, issue 8): a process forked while llmlib was
in use (gunicorn ``--preload``, multiprocessing's ``fork``) gets working
deadlines, request limits and local-server handling of its own, and never
disturbs the parent's.

Real forked processes, no mocks. A child made with ``os.fork()`` inside pytest
reports through a pipe and ends with ``os._exit`` (so pytest's own teardown and
the parent's atexit handlers do not run twice); the parent kills a child that
does not report within :data:`HANG` seconds and fails the test. The one test of
``atexit`` behaviour forks inside a fresh interpreter instead, where a normal
exit runs only that script's handlers.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Callable, Optional

import pytest

from llmlib import APITimeoutError, CancelToken, Timeout, deadline, forksafe, local
from llmlib.limits import Limiter
from tests.conftest import make_client, wire

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

#: Seconds a forked child may take before the parent kills it and fails the test.
HANG = 8.0
ROOT = Path(__file__).resolve().parents[1]
TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
FIRST, REST = TEXT.split(b"\n\n", 1)[0] + b"\n\n", TEXT.split(b"\n\n", 1)[1]
JSON = wire("openai_chat", "nonstream_plain_text.json").read_bytes()


def _fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a multi-threaded process may deadlock the
        # child: exactly the situation these tests put llmlib in.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def in_child(body: Callable[[], None], timeout: float = HANG) -> None:
    """Run ``body()`` in a forked child; fail here with its error, or if it hangs."""
    r, w = os.pipe()
    pid = _fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(r)
            try:
                body()
                report, code = "ok", 0
            except BaseException:  # pytest.fail and friends are BaseExceptions
                report = traceback.format_exc()[-30000:]  # well inside a pipe's buffer
            os.write(w, report.encode("utf-8", "replace"))
        finally:
            os._exit(code)
    os.close(w)
    try:
        report = _read_until_eof(r, timeout)
    finally:
        os.close(r)
    if report is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"the forked child did not finish within {timeout} s: it hangs")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        pytest.fail(f"in the forked child:\n{report}")


def _read_until_eof(fd: int, timeout: float) -> Optional[str]:
    end = time.monotonic() + timeout
    parts = []
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                return b"".join(parts).decode("utf-8", "replace")
            parts.append(data)


def _drip(req, reply) -> None:
    """A stream that sends its first event, then one byte every 0.1 s: each read
    returns well within the read timeout, so only the total deadline ends it."""
    reply.head(200, [("Content-Type", "text/event-stream")])
    reply.piece(FIRST)
    try:
        for byte in REST:
            time.sleep(0.1)
            reply.piece(bytes([byte]))
        reply.end()
    except OSError:
        pass


# ------------------------------------------------------------------ deadlines


def test_total_timeout_fires_in_a_child_forked_while_a_deadline_is_pending(server):
    # The parent is inside a call with a total timeout: its watchdog thread runs.
    # The child inherits the watchdog's state but not its thread.
    server.handler = _drip
    pending = deadline.Deadline(30)

    def child():
        with make_client(server, timeout=Timeout(connect=5, read=30, total=0.5)) as client:
            start = time.monotonic()
            with pytest.raises(APITimeoutError, match="total timeout"):
                for _ in client.chat_completion_stream(model="m", messages="hi"):
                    pass
            took = time.monotonic() - start
            assert took < 1.5, took

    try:
        in_child(child)
    finally:
        pending.finish()


def test_deadlines_pending_at_fork_still_fire_in_the_child():
    mine = deadline.Deadline(0.4)  # the forking thread's call, which the child continues
    made = []
    other = threading.Thread(target=lambda: made.append(deadline.Deadline(0.4)))  # another thread's
    other.start()
    other.join()

    def child():
        for d in (mine, made[0]):
            assert d.wait(3), d
            assert d.expired and deadline.expired(d)
        assert not deadline._watchdog._pending

    try:
        in_child(child)
    finally:
        mine.finish()
        made[0].finish()


def test_an_inherited_deadline_never_shuts_down_the_parents_sockets():
    # A call registered "shut my socket down" with its deadline, as a request
    # does; the parent's call then ends, and the parent uses the connection for
    # something else. The child's copy of the deadline expires later: it must
    # not reach a socket the two processes share.
    a, b = socket.socketpair()
    with a, b:
        token = deadline.Deadline(0.3)
        detach = token.on_cancel(lambda: a.shutdown(socket.SHUT_RDWR))
        pid = _fork()
        if pid == 0:
            code = 1
            try:
                ran = []
                token.on_cancel(lambda: ran.append("after fork"))  # the child's own: runs
                if token.wait(3) and token.expired:
                    end = time.monotonic() + 1  # the event is set just before callbacks run
                    while not ran and time.monotonic() < end:
                        time.sleep(0.01)
                    code = 0 if ran == ["after fork"] else 2
            finally:
                os._exit(code)
        detach()  # the parent's call is over
        token.finish()
        start = time.monotonic()
        while time.monotonic() - start < HANG:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.02)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hangs")
        assert os.waitstatus_to_exitcode(status) != 1, "the child's deadline did not expire"
        assert os.waitstatus_to_exitcode(status) == 0, "a callback registered in the child did not run"
        a.sendall(b"x")
        b.settimeout(2)
        assert b.recv(1) == b"x"  # the child's expiry left the parent's socket alone
        b.sendall(b"y")
        a.settimeout(2)
        assert a.recv(1) == b"y"


# ------------------------------------------------------------------ limits


def test_a_child_is_not_blocked_by_the_parents_in_flight_requests(server):
    # max_in_flight=1 and a parent stream open at fork time: the one slot is the
    # parent's, so the child must start with none in use. multiprocessing's fork
    # start method, as a pool of workers would use it.
    import multiprocessing

    def handler(req, reply):
        if req.json().get("stream"):
            reply.head(200, [("Content-Type", "text/event-stream")])
            reply.piece(FIRST)
            reply.hang(HANG + 2)
        else:
            reply.send(200, JSON, [("Content-Type", "application/json")], mode="length")

    server.handler = handler
    ctx = multiprocessing.get_context("fork")
    with make_client(server, max_in_flight=1) as client:
        stream = client.chat_completion_stream(model="m", messages="hi")
        next(stream)
        receiver, sender = ctx.Pipe(duplex=False)

        def child():
            cancel = CancelToken()
            timer = threading.Timer(4, cancel.cancel)  # fail fast rather than hang
            timer.start()
            try:
                text = client.chat_completion(model="m", messages="hi", cancel=cancel).text
                sender.send(("ok", text))
            except BaseException as exc:
                sender.send(("error", f"{type(exc).__name__}: {exc}"))
            finally:
                timer.cancel()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            process = ctx.Process(target=child, daemon=True)
            process.start()
        try:
            assert receiver.poll(HANG), "the child sent nothing: it hangs"
            outcome, detail = receiver.recv()
            assert outcome == "ok" and detail, detail
        finally:
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join()
            receiver.close()
            sender.close()
            stream.close()


def test_a_limiter_in_a_child_starts_empty_and_keeps_the_pacing():
    limiter = Limiter(max_in_flight=1, requests_per_minute=120)  # one start every 0.5 s
    limiter.acquire()  # the parent's request, in flight at fork time
    parents_start = time.monotonic()

    def child():
        cancel = CancelToken()
        timer = threading.Timer(3, cancel.cancel)  # fail fast rather than hang
        timer.start()
        limiter.acquire(cancel)  # CancelledError here if the parent's slot still counted
        waited = time.monotonic() - parents_start
        assert waited >= 0.4, waited  # the pacing schedule is the parent's
        limiter.release()
        limiter.release()  # the forking thread's inherited slot ending: never below zero
        assert limiter._in_flight == 0
        timer.cancel()

    try:
        in_child(child)
    finally:
        limiter.release()


# ------------------------------------------------------------------ local server


@pytest.fixture
def parents_local_server():
    """A stand-in for the local model server, started by this process: a
    sleeping interpreter, installed as ``local``'s state (which is restored after)."""
    saved = local._process, local._owner, local._url, local._log
    dummy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    log = tempfile.NamedTemporaryFile(prefix="llmlib-local-test-", suffix=".log", delete=False)
    local._process, local._owner, local._url, local._log = dummy, os.getpid(), "http://127.0.0.1:9/v1", log
    try:
        yield dummy
    finally:
        local._process, local._owner, local._url, local._log = saved
        dummy.kill()
        dummy.wait()
        log.close()
        os.unlink(log.name)


def test_a_child_uses_but_never_stops_the_parents_local_server(parents_local_server):
    url, log = local._url, local._log.name

    def child():
        assert local.base_url() == url  # shared while alive: no second server
        local.stop()
        assert local._process is None and local._url is None

    in_child(child)
    assert parents_local_server.poll() is None, "the child stopped the parent's server"
    assert os.path.exists(log), "the child deleted the parent's server log"
    assert local.base_url() == url


def test_a_child_that_exits_normally_leaves_the_parents_local_server_running():
    # A gunicorn worker ends with a normal interpreter exit, which runs the
    # atexit handlers it inherited, local.stop among them. Inside pytest a
    # normal exit would run pytest's own; so fork inside a fresh interpreter.
    script = textwrap.dedent("""
        import atexit, os, subprocess, sys, tempfile
        from llmlib import local

        dummy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        atexit.register(dummy.kill)  # whatever happens below
        log = tempfile.NamedTemporaryFile(prefix="llmlib-local-test-", suffix=".log", delete=False)
        local._process, local._owner, local._url, local._log = dummy, os.getpid(), "http://127.0.0.1:9/v1", log
        atexit.register(local.stop)  # as base_url() does when it starts the server

        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: the inherited atexit handlers run
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert dummy.poll() is None, "the child stopped the parent's server"
        assert os.path.exists(log.name), "the child deleted the parent's server log"
        local.stop()  # the owner still stops it, and deletes its log
        assert dummy.poll() is not None and not os.path.exists(log.name)
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=HANG + 10)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


# ------------------------------------------------------------------ forksafe itself


class _Resettable:
    def __init__(self, name: str, log: list, fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail
        forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("reset failed")


def test_forksafe_resets_every_live_object_in_the_child_even_when_one_fails():
    seen: list = []
    first, failing, last = _Resettable("first", seen), _Resettable("failing", seen, fail=True), _Resettable("last", seen)
    gone = _Resettable("gone", seen)
    del gone  # weakly held: a dead object is forgotten, never kept alive
    records: list = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("llmlib")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)

    def child():
        assert seen == ["first", "failing", "last"], seen  # registration order, all of them
        assert any("failed" in r.getMessage() and r.exc_info for r in records), records

    try:
        in_child(child)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert seen == []  # the parent runs none of it
    assert first and failing and last


def test_forksafe_register_refuses_what_it_cannot_reset():
    with pytest.raises(TypeError, match="_after_fork_in_child"):
        forksafe.register(object())
