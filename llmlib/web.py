"""Streaming answers to browsers: Server-Sent Events bodies for Flask, Django and any WSGI server.

::

    from llmlib.web import sse, SSE_HEADERS

    @app.post("/chat")                                   # Flask
    def chat():
        stream = client.chat_completion_stream(model=..., messages=request.json["messages"])
        return flask.Response(sse(stream, environ=request.environ), headers=SSE_HEADERS)

    def chat(request):                                   # Django
        stream = client.chat_completion_stream(model=..., messages=...)
        return StreamingHttpResponse(sse(stream, environ=request.META), headers=SSE_HEADERS)

:func:`sse` turns a chunk stream into the bytes of a ``text/event-stream``
body. When the browser goes away, the WSGI server closes the body (PEP 3333
``close()``), and closing the body cancels the upstream request at once: its
socket is shut down, its connection freed, no more tokens are generated (or
billed). A server notices a disconnect only when it writes, so while upstream is
silent the body writes a comment heartbeat every ``heartbeat`` seconds; given
the request's ``environ`` it also watches the client's socket itself (gunicorn
and werkzeug put it there) and stops within about 0.1 s of the client leaving,
heartbeat or not.

No web framework is imported here: the body is a plain iterator of bytes.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import threading
import time
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional

from llmlib.errors import LLMError
from llmlib.streaming import close_quietly
from llmlib.types import ChatCompletionChunk

__all__ = ["sse", "SSEBody", "SSE_HEADERS", "sse_headers", "DONE", "KEEP_ALIVE"]

#: The response headers a streamed answer needs behind a proxy (nginx buffers unless told not to).
SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

#: The last frame of an ``openai`` body (what the OpenAI SDKs wait for).
DONE = b"data: [DONE]\n\n"
#: A heartbeat: an SSE comment, ignored by every client.
KEEP_ALIVE = b": keep-alive\n\n"
#: The last frame of a ``text`` body.
TEXT_DONE = b"event: done\ndata: \n\n"

_FORMATS = ("openai", "text")
_WATCH = 0.1  # seconds between looks at the client's socket while upstream is silent
_WATCH_TALKING = 0.02  # ... and while it talks
_JOIN = 5.0  # seconds close() waits for the reader thread (a ChunkStream stops at once)
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


def sse_headers(**extra: str) -> Dict[str, str]:
    """A fresh dict of :data:`SSE_HEADERS`, plus ``extra`` headers."""
    headers = dict(SSE_HEADERS)
    headers.update(extra)
    return headers


def sse(chunks: Iterable[ChatCompletionChunk], *, format: str = "openai", heartbeat: Optional[float] = 5.0,
        environ: Optional[Mapping[str, Any]] = None) -> "SSEBody":
    """The ``text/event-stream`` body of a streamed answer: an iterator of bytes.

    ``format="openai"``: one ``data:`` line of OpenAI ``chat.completion.chunk``
    JSON per chunk (``chunk.to_dict()``), then ``data: [DONE]``, as OpenAI sends
    it, so any OpenAI-compatible front end reads it. ``format="text"``: each
    piece of answer text as a ``data:`` event (a text with newlines as several
    ``data:`` lines, which SSE joins back with ``\\n``), then ``event: done``.

    While upstream sends nothing, a comment (``: keep-alive``) goes out every
    ``heartbeat`` seconds (None: never, and no reader thread). When upstream
    fails mid-stream, an ``event: error`` frame carries ``{"error": {"type":
    class name, "message": ..., "status_code": ...}}`` (llmlib's messages never
    hold a key) and the body ends.

    ``environ``: the WSGI environ of the request (Flask ``request.environ``,
    Django ``request.META``); with it, a client that disconnects is noticed
    within about 0.1 s even while upstream is silent.

    Closing the body (every WSGI server does, also when the client went away)
    closes ``chunks``. A :class:`~llmlib.response_stream.ChunkStream` is
    cancelled at once, even in the middle of a read; another iterable is closed
    after its next item.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, not {format!r}")
    if heartbeat is not None and not heartbeat > 0:
        raise ValueError(f"heartbeat must be a number of seconds > 0, or None, not {heartbeat!r}")
    return SSEBody(chunks, format, heartbeat, environ)


class SSEBody:
    """What :func:`sse` returns: iterate it for bytes, ``close()`` it to cancel upstream.

    The upstream stream is consumed in one place: a reader thread (started by the
    first ``next()``) when there are heartbeats, else the iterating thread itself.
    ``close()`` is idempotent, safe from any thread, cancels upstream and joins
    the reader thread.
    """

    def __init__(self, chunks: Iterable[ChatCompletionChunk], format: str = "openai",
                 heartbeat: Optional[float] = 5.0, environ: Optional[Mapping[str, Any]] = None) -> None:
        self._upstream = chunks
        self._iter: Optional[Iterator[ChatCompletionChunk]] = None
        self._format = format
        self._heartbeat = heartbeat
        self._client = _client_socket(environ)
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=64)
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._finished = False  # no more frames
        self._closed = False
        self._watched = 0.0
        self._lock = threading.Lock()
        #: Why the body ended: "done", "error", "client-gone" or "closed".
        self.ended: Optional[str] = None

    # -- the WSGI side ---------------------------------------------------

    def __iter__(self) -> "SSEBody":
        return self

    def __next__(self) -> bytes:
        if self._finished:
            raise StopIteration
        if self._heartbeat is None:
            return self._next_direct()
        return self._next_queued()

    def close(self) -> None:
        """Stop: cancel the upstream request at once, free its connection, join the reader."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._finished = True
        if self.ended is None:
            self.ended = "closed"
        self._stopping.set()
        thread = self._thread
        if thread is None:  # never started, or no reader thread: close it here
            close_quietly(self._upstream)
            return
        cancel_now(self._upstream)  # wakes the reader blocked on a silent socket
        thread.join(_JOIN)

    def __enter__(self) -> "SSEBody":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:  # a body dropped without close() still frees upstream
        try:
            self.close()
        except Exception:
            pass

    # -- without a thread ------------------------------------------------

    def _next_direct(self) -> bytes:
        if self._iter is None:
            self._iter = iter(self._upstream)
        while True:
            try:
                chunk = next(self._iter)
            except StopIteration:
                return self._end()
            except Exception as exc:
                return self._error(exc)
            frame = self._frame(chunk)
            if frame:
                return frame

    # -- with a reader thread --------------------------------------------

    def _next_queued(self) -> bytes:
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="llmlib-sse", daemon=True)
            self._thread.start()
        assert self._heartbeat is not None
        quiet_since = time.monotonic()
        while True:
            wait = self._heartbeat - (time.monotonic() - quiet_since)
            if self._client is not None:
                wait = min(wait, _WATCH)
            try:
                kind, value = self._queue.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if self._stopping.is_set():  # closed from another thread
                    raise StopIteration from None
                if self._client is not None and _gone(self._client):
                    self.ended = "client-gone"
                    self.close()
                    raise StopIteration from None
                if time.monotonic() - quiet_since >= self._heartbeat:
                    return KEEP_ALIVE
                continue
            if kind == "chunk":
                if self._client is not None and self._watch_due() and _gone(self._client):
                    self.ended = "client-gone"
                    self.close()
                    raise StopIteration
                frame = self._frame(value)
                if frame:
                    return frame
                continue
            if kind == "end":
                return self._end()
            return self._error(value)

    def _watch_due(self) -> bool:
        now = time.monotonic()
        if now - self._watched < _WATCH_TALKING:
            return False
        self._watched = now
        return True

    def _read(self) -> None:
        """The reader thread: the only place upstream is iterated, and closed."""
        upstream = self._upstream
        stopping = self._stopping
        try:
            for chunk in upstream:
                if not self._put(("chunk", chunk)):
                    return
            self._put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the iterating thread
            if not stopping.is_set():
                self._put(("error", exc))
        finally:
            close_quietly(upstream)

    def _put(self, item: Any) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # -- frames ----------------------------------------------------------

    def _frame(self, chunk: ChatCompletionChunk) -> bytes:
        if self._format == "openai":
            return b"data: " + json.dumps(chunk.to_dict(), ensure_ascii=False,
                                          separators=(",", ":")).encode() + b"\n\n"
        return text_frame(chunk.text or "")

    def _end(self) -> bytes:
        self._finished = True
        self.ended = "done"
        return DONE if self._format == "openai" else TEXT_DONE

    def _error(self, exc: BaseException) -> bytes:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours to swallow
            self._finished = True
            raise exc
        self._finished = True
        self.ended = "error"
        return error_frame(exc)


def text_frame(text: str) -> bytes:
    """``text`` as one SSE event of ``data:`` lines (b"" for no text). SSE joins the
    lines with ``\\n``; ``\\r\\n`` and a lone ``\\r`` arrive as ``\\n``."""
    if not text:
        return b""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join(f"data: {line}\n" for line in lines).encode() + b"\n"


def error_frame(exc: BaseException) -> bytes:
    """``event: error`` with the error's class name, message and HTTP status (if any).
    llmlib's errors never hold a key; another exception's message is cut short."""
    message = str(exc)
    if not isinstance(exc, LLMError) and len(message) > 300:
        message = message[:300] + "..."
    body: Dict[str, Any] = {"type": type(exc).__name__, "message": message}
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        body["status_code"] = status
    return b"event: error\ndata: " + json.dumps({"error": body}, ensure_ascii=False).encode() + b"\n\n"


def cancel_now(chunks: Any) -> None:
    """Wake a thread blocked reading ``chunks`` (a ChunkStream) by cancelling its request:
    its token if it has one, else a shutdown of its socket. Anything else: nothing."""
    release = getattr(chunks, "_release", None)
    if release is None or getattr(release, "done", True):
        return
    token = getattr(release, "token", None)
    try:
        if token is not None:
            token.cancel()
            return
        from llmlib.transport import SocketInterrupter
        SocketInterrupter(release.response).interrupt()
    except Exception:  # already closed
        pass


def _client_socket(environ: Optional[Mapping[str, Any]]) -> Optional[socket.socket]:
    if not environ:
        return None
    for key in _SOCKET_KEYS:
        sock = environ.get(key)
        if sock is not None and hasattr(sock, "fileno"):
            return sock
    return None


_HANGUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


def _gone(sock: socket.socket) -> bool:
    """True when the client has closed its end (or the socket broke). Reads nothing."""
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        poller = select.poll()
        poller.register(fd, select.POLLIN | _HANGUP)
        events: List = poller.poll(0)
    except (OSError, ValueError):
        return True
    for _, mask in events:
        if mask & _HANGUP:
            return True
        if mask & select.POLLIN:  # readable: EOF, or bytes of a pipelined request
            try:
                return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except (BlockingIOError, ValueError):  # no bytes yet; or a TLS socket (no MSG_PEEK)
                return False
            except OSError:
                return True
    return False
