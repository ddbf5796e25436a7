"""HTTP for llmlib: one ``requests.Session`` per Client, retries, timeouts, body reads.

Nothing here knows a provider's wire format. Retries are urllib3's ``Retry``, taught
three things LLM APIs need: ``x-should-retry``, ``retry-after-ms``, and giving up
at once when the server asks for a wait longer than :data:`MAX_RETRY_AFTER`
seconds. Retries happen only before the response headers arrive, so a stream is
never retried after its first byte, let alone its first chunk.
"""

from __future__ import annotations

import email.utils
import errno
import logging
import os
import random
import select
import socket
import sys
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Mapping, Optional, Tuple

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
from urllib3.exceptions import (ConnectTimeoutError, MaxRetryError, NameResolutionError, NewConnectionError,
                                ReadTimeoutError)
from urllib3.util.connection import allowed_gai_family
from urllib3.util.retry import Retry

from llmlib import deadline, forksafe
from llmlib.cancel import CancelToken, attach
from llmlib.errors import (
    APIConnectionError,
    APITimeoutError,
    CancelledError,
    ConfigurationError,
    LLMError,
    ResponseTooLargeError,
)
from llmlib.limits import Limiter
from llmlib.options import ConnectionOptions
from llmlib.redaction import Secrets, check_api_key, cut, looks_secret

__all__ = ["Transport", "MAX_RETRY_AFTER", "parse_retry_after", "socket_of", "raw_socket", "shutdown_socket",
           "SocketLease", "TokenAuth", "SocketInterrupter", "settle_after_end"]

#: The ``llmlib`` logger: each request at DEBUG, each retry (attempt, wait, reason)
#: at INFO; messages are scrubbed of the Client's secrets.
_log = logging.getLogger("llmlib")

#: The longest ``Retry-After`` (seconds) llmlib waits for; a longer one raises at once.
MAX_RETRY_AFTER = 60.0
_RETRY_STATUSES = frozenset([408, 409, 429, 529])
_READ_SIZE = 64 * 1024
_DRAIN_LIMIT = 64 * 1024  # bytes taken after a stream's end marker before giving the connection up
#: Seconds a stream waits after its end marker for the rest of the body (the
#: chunked terminator, usually in the same packet or the next) before it closes
#: the connection instead of returning it to the pool.
SETTLE_WAIT = 0.01


def parse_retry_after(headers: Mapping[str, str]) -> Optional[float]:
    """The wait a response asks for, in seconds: ``retry-after-ms``, then
    ``Retry-After`` (seconds or an HTTP date). None when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if value >= 0 and value == value:  # not NaN
                return value
        except ValueError:
            pass
    text = headers.get("retry-after")
    if text is None:
        return None
    text = text.strip()
    try:
        value = float(text)
        return value if value >= 0 and value == value and value != float("inf") else None
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def should_retry_status(status: int, headers: Mapping[str, str]) -> bool:
    """Whether a response with this status and headers is worth another try."""
    flag = headers.get("x-should-retry")
    if flag is not None and flag.strip().lower() in ("true", "false"):
        return flag.strip().lower() == "true"
    return status in _RETRY_STATUSES or status >= 500


class _Retry(Retry):
    """urllib3 ``Retry`` with LLM-API rules (see module docstring)."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # Every error status reaches increment(), which sees the headers and decides.
        return status_code >= 400 and bool(self.total)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        token = getattr(_current, "token", None)
        if token is not None and token.cancelled:
            raise MaxRetryError(_pool, url or "", error)  # never send again after a cancel
        wait = None
        if response is not None and error is None:
            headers = response.headers
            wait = parse_retry_after(headers)
            if not should_retry_status(response.status, headers) or (wait is not None and wait > MAX_RETRY_AFTER):
                # urllib3 answers MaxRetryError by returning this response to requests.
                raise MaxRetryError(_pool, url or "", None)
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        if isinstance(token, deadline.Deadline) and (wait or new.get_backoff_time()) >= token.remaining():
            # No time left for the wait and another try: give up now, with what we have.
            raise MaxRetryError(_pool, url or "", error)
        return new

    def sleep(self, response=None) -> None:
        """Wait before the next try; a cancel (or the total deadline) ends the wait early."""
        seconds = self.get_retry_after(response) if response is not None else None
        if not seconds:  # absent or 0: backoff, as urllib3 does
            seconds = self.get_backoff_time()
        last = self.history[-1] if self.history else None
        reason = (f"HTTP {last.status}" if last is not None and last.status else
                  type(last.error).__name__ if last is not None and last.error is not None else "?")
        _log.info("retry %d of %s in %.2f s after %s", len(self.history), self.total + len(self.history)
                  if isinstance(self.total, int) else "?", seconds, reason)
        token = getattr(_current, "token", None)
        if token is None:
            time.sleep(seconds)
        else:
            token.wait(seconds)

    def get_retry_after(self, response) -> Optional[float]:
        return parse_retry_after(response.headers)

    def get_backoff_time(self) -> float:
        # min(0.5 * 2**n, 8) s for the n-th retry (n from 0), less up to 25% jitter.
        n = max(len(self.history) - 1, 0)
        return min(0.5 * 2 ** n, 8.0) * (1.0 - 0.25 * random.random())


class _Session(requests.Session):
    """requests' Session, dropping every credential header (``Authorization``,
    ``x-api-key``, ``api-key``, ``x-goog-api-key``, and any other name that
    :func:`~llmlib.redaction.looks_secret`) on a redirect to another host;
    requests itself drops only ``Authorization``."""

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        if self.should_strip_auth(response.request.url, prepared_request.url):
            for name in list(prepared_request.headers):
                if looks_secret(name):
                    del prepared_request.headers[name]
        super().rebuild_auth(prepared_request, response)


class _KeyAuth(requests.auth.AuthBase):
    """Adds the API key header to each request; its repr never shows the key."""

    def __init__(self, header: str, value: str) -> None:
        self.header = header
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self._value
        return request

    def __repr__(self) -> str:
        return f"<key auth in {self.header}>"


class _NoAuth(requests.auth.AuthBase):
    """Stops requests from reading ~/.netrc credentials into our requests."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class TokenAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>``, the token asked of ``provider()`` for each
    request (Microsoft Entra ID tokens expire; a credential's provider caches and
    renews them), from whichever thread sends it: share a thread-safe provider
    (azure-identity's are). The token is kept nowhere but the request's header;
    the repr shows neither it nor the provider. A provider that raises, or returns
    anything but a one-line str, is a ConfigurationError before anything is sent."""

    def __init__(self, provider: Callable[[], str], name: str = "azure") -> None:
        self._provider = provider
        self._name = name

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        try:
            token = self._provider()
        except Exception as exc:
            raise ConfigurationError(
                f"the Microsoft Entra ID token provider given as api_key for {self._name} failed: "
                f"{type(exc).__name__}: {cut(str(exc), 300)}", provider=self._name) from exc
        if not isinstance(token, str) or not token:
            raise ConfigurationError(
                f"the token provider given as api_key for {self._name} must return the bearer token as a "
                f"non-empty str, not {type(token).__name__}", provider=self._name)
        check_api_key(token, self._name)  # one header line of visible ASCII, or a message naming no character of it
        request.headers["Authorization"] = "Bearer " + token
        return request

    def __repr__(self) -> str:
        return "<Microsoft Entra ID bearer token auth>"


# The CancelToken of the request the current thread is sending, if any, and the
# detach functions of the cancel hooks it registered while sending.
_current = threading.local()
_POLL = 0.02  # seconds between looks at a CancelToken while a connect is in progress


class SocketLease:
    """The right of one request to shut one connection's socket down.

    ``interrupt()`` (a cancel, from any thread) shuts the socket down, which wakes
    whatever the request's thread is blocked in: a TLS handshake, a proxy
    tunnel, the wait for headers, a body read. ``disarm()`` ends the right; the
    connection disarms every lease just before it goes back to the pool, under
    the lease's lock, so a late cancel can never reach a connection that another
    request has taken (the cancel and the release cannot interleave).
    """

    __slots__ = ("_lock", "_sock")

    def __init__(self, sock: Optional[socket.socket]) -> None:
        self._lock = threading.Lock()
        self._sock = sock

    def interrupt(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            shutdown_socket(sock)

    def disarm(self) -> None:
        with self._lock:
            self._sock = None


class _CancellableConnection:
    """Mixed into urllib3's connection classes so that a request's CancelToken
    reaches it in every phase: a connect in progress stops at the next look at
    the token (every :data:`_POLL` s); from the moment the socket exists, a cancel
    shuts it down (proxy tunnel, TLS handshake, sending, waiting for headers);
    and nothing is sent once the token is cancelled.

    While ``connect()`` runs (tunnel and handshake), the lease holds a duplicate
    of the TCP socket's descriptor, because ``ssl.wrap_socket`` takes the
    original socket object's descriptor away; the duplicate is closed when
    ``connect()`` returns, and the lease moves to the finished socket."""

    _on_release: Optional[list] = None
    _armed_for: Optional[CancelToken] = None
    _connect_lease: Optional["_DupLease"] = None

    def _new_conn(self) -> socket.socket:
        token: Optional[CancelToken] = getattr(_current, "token", None)
        if token is None:
            return super()._new_conn()  # type: ignore[misc]
        sock = self._connect(token)
        self._connect_lease = _DupLease(sock, token)
        return sock

    def connect(self) -> None:
        token: Optional[CancelToken] = getattr(_current, "token", None)
        try:
            super().connect()  # type: ignore[misc]
        finally:
            lease, self._connect_lease = self._connect_lease, None
            if lease is not None:
                lease.close()
        if token is not None:
            if token.cancelled:
                self.close()  # type: ignore[attr-defined]
                raise ConnectionAbortedError("cancelled while connecting")
            self._arm(token, raw_socket(self))

    def _connect(self, token: CancelToken) -> socket.socket:
        """urllib3's ``_new_conn``, with a connect that a cancel stops."""
        timeout = self.timeout  # type: ignore[attr-defined]
        if not isinstance(timeout, (int, float)):  # urllib3's "default" sentinel
            timeout = socket.getdefaulttimeout()
        try:
            sock = _connect_cancellable((self._dns_host, self.port), timeout,  # type: ignore[attr-defined]
                                        self.source_address, self.socket_options, token)  # type: ignore[attr-defined]
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e  # type: ignore[attr-defined]
        except socket.timeout as e:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. "  # type: ignore[attr-defined]
                                            f"(connect timeout={timeout})") from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e
        sys.audit("http.client.connect", self, self.host, self.port)  # type: ignore[attr-defined]
        return sock

    def _arm(self, token: CancelToken, sock: Optional[socket.socket]) -> None:
        lease = SocketLease(sock)
        detach = token.on_cancel(lease.interrupt)
        _current.detach.append(detach)
        self._armed_for = token
        self.when_released(lease.disarm)
        self.when_released(detach)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        token: Optional[CancelToken] = getattr(_current, "token", None)
        if token is not None:
            if token.cancelled:
                raise ConnectionAbortedError("request cancelled")  # urllib3 -> Retry.increment -> give up
            if self._armed_for is not token and getattr(self, "sock", None) is not None:
                self._arm(token, raw_socket(self))  # a pooled connection, reused (a new one arms on connect)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def when_released(self, callback: Any) -> None:
        """Run ``callback`` just before this connection goes back to the pool,
        where another request may take it: a cancel meant for the request that
        used it must not reach it there (after a retry, or a stream whose body
        ended before the reader let go)."""
        if self._on_release is None:
            self._on_release = []
        self._on_release.append(callback)

    def released(self) -> None:
        callbacks, self._on_release, self._armed_for = self._on_release, None, None
        for callback in callbacks or ():
            callback()


class _DupLease(SocketLease):
    """A :class:`SocketLease` on a duplicate descriptor of ``sock``, registered
    with ``token`` at once; ``close()`` detaches it and closes the duplicate."""

    __slots__ = ("_detach",)

    def __init__(self, sock: socket.socket, token: CancelToken) -> None:
        super().__init__(sock.dup())
        self._detach = token.on_cancel(self.interrupt)

    def close(self) -> None:
        self._detach()
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def interrupt(self) -> None:
        with self._lock:
            if self._sock is not None:
                shutdown_socket(self._sock)  # kept until close(): the duplicate is ours to close


def _connect_cancellable(address: Tuple[str, int], timeout: Optional[float], source_address: Any,
                         socket_options: Any, token: CancelToken) -> socket.socket:
    """``urllib3.util.connection.create_connection``, but the connect is made
    non-blocking and watched, so that ``token`` stops it within :data:`_POLL` s."""
    host, port = address
    err: Optional[BaseException] = None
    for af, socktype, proto, _, sa in socket.getaddrinfo(host.strip("[]"), port, allowed_gai_family(),
                                                         socket.SOCK_STREAM):
        sock = socket.socket(af, socktype, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if source_address:
                sock.bind(source_address)
            _watch_connect(sock, sa, timeout, token)
            sock.settimeout(timeout)
            return sock
        except BaseException as exc:
            sock.close()
            if not isinstance(exc, OSError):
                raise
            err = exc
    raise err if err is not None else OSError("getaddrinfo returns an empty list")


def _watch_connect(sock: socket.socket, address: Any, timeout: Optional[float], token: CancelToken) -> None:
    if token.cancelled:
        raise ConnectionAbortedError("cancelled before connecting")
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        end = None if timeout is None else time.monotonic() + timeout
        while not poller.poll(_POLL * 1000):
            if token.cancelled:
                raise ConnectionAbortedError("cancelled while connecting")
            if end is not None and time.monotonic() >= end:
                raise socket.timeout("timed out")
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))
    if token.cancelled:
        raise ConnectionAbortedError("cancelled while connecting")


class _HTTPConnection(_CancellableConnection, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_CancellableConnection, urllib3.connection.HTTPSConnection):
    pass


class _GrowingPool:
    """Mixed into urllib3's pools: a connection coming back to a full pool makes
    the pool one larger instead of being closed with a "Connection pool is full,
    discarding connection" warning. The pool thus keeps as many idle connections
    as the most threads that ever used it at once, and no thread count needs
    configuring up front. A failed request's empty slot (``None``) coming back to
    a pool that grew meanwhile is simply not kept: nothing is discarded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._grow_lock = threading.Lock()

    def _put_conn(self, conn: Any) -> None:
        if conn is not None and hasattr(conn, "released"):
            conn.released()  # cut every cancel hook before another request can take it
        with self._grow_lock:  # every put goes through here, so full() stays true until ours
            queue = getattr(self, "pool", None)
            if queue is not None and queue.full():
                if conn is None:
                    return
                queue.maxsize += 1
            super()._put_conn(conn)  # type: ignore[misc]

    def _idle_connections(self) -> list:
        """The connections waiting in this pool (read without its lock: safe in
        a forked child, where another thread may have held it)."""
        queue = getattr(self, "pool", None)
        return [c for c in list(getattr(queue, "queue", ())) if c is not None]


class _HTTPPool(_GrowingPool, urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_GrowingPool, urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with cancellable connections in its pools."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def pools(self) -> list:
        """Every connection pool of this adapter, direct and through proxies."""
        managers = [self.poolmanager, *self.proxy_manager.values()]
        return [pool for m in managers for pool in list(getattr(m.pools, "_container", {}).values())]


def shutdown_socket(sock: Any) -> None:
    """Wake any thread blocked on ``sock`` (reading, writing, or in a TLS
    handshake): it sees the connection end.

    Uses the plain socket method on the raw TCP socket, unwrapping urllib3's
    ``SSLTransport`` (TLS through an HTTPS proxy), so the TLS objects are left to
    the blocked thread.
    """
    sock = _unwrap(sock)
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _unwrap(sock: Any) -> Optional[socket.socket]:
    for _ in range(4):  # SSLTransport -> SSLTransport -> SSLSocket (a socket.socket)
        if sock is None or isinstance(sock, socket.socket):
            return sock
        sock = getattr(sock, "socket", None)
    return None


def raw_socket(connection: Any) -> Optional[socket.socket]:
    """The socket of an urllib3 connection (unwrapping urllib3's ``SSLTransport``);
    None when it is closed."""
    return _unwrap(getattr(connection, "sock", None))


def socket_of(response: requests.Response) -> Optional[socket.socket]:
    """The socket under a streamed response, or None once it is released.

    urllib3 2 exposes it publicly (``HTTPResponse.connection.sock``); other
    versions keep it only behind http.client's private attributes, tried second
    (:func:`_socket_via_http_client`, tested on its own).
    """
    sock = raw_socket(getattr(response.raw, "connection", None))
    return sock if sock is not None else _socket_via_http_client(response.raw)


def _socket_via_http_client(raw: Any) -> Optional[socket.socket]:
    fp = getattr(getattr(raw, "_fp", None), "fp", None)  # http.client.HTTPResponse -> its SocketIO
    return getattr(getattr(fp, "raw", None), "_sock", None)


class SocketInterrupter(SocketLease):
    """The :class:`SocketLease` of a streamed ``response``: wakes a thread blocked
    reading it. The connection disarms it itself just before it goes back to the
    pool, so a late cancel can never shut down a connection another request has
    taken."""

    __slots__ = ()

    def __init__(self, response: requests.Response) -> None:
        super().__init__(socket_of(response))
        connection = getattr(response.raw, "connection", None)
        if hasattr(connection, "when_released"):
            connection.when_released(self.disarm)  # urllib3 may pool it the moment the body ends


def settle_after_end(response: requests.Response, body: Iterator[bytes]) -> None:
    """After a stream's end marker: read the rest of the body (normally just the
    chunked terminator) if it arrives within :data:`SETTLE_WAIT` seconds, so that
    urllib3 can put the connection back in the pool. Whatever is not here by
    then (a server that keeps the body open, or sends keep-alive comments after
    the end) is left, and the caller closes the connection instead: the loop
    ends at once, whatever the server does. Never raises.
    """
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None or not isinstance(sock, socket.socket):
        return  # the body already ended and the connection went back to the pool
    try:
        timeout = sock.gettimeout()
    except OSError:
        return
    restored = [False]

    def restore() -> None:  # before the connection can be taken from the pool
        if not restored[0]:
            restored[0] = True
            try:
                sock.settimeout(timeout)
            except OSError:
                pass

    if hasattr(connection, "when_released"):
        connection.when_released(restore)
    read = 0
    until = time.monotonic() + SETTLE_WAIT
    try:
        sock.settimeout(SETTLE_WAIT)  # a read that would wait longer fails instead
        for piece in body:
            read += len(piece)
            if read > _DRAIN_LIMIT or time.monotonic() > until:
                break
    except Exception:  # not all here yet: urllib3 / http.client see a short read
        pass
    finally:
        restore()


class Transport:
    """Sends requests for one Client over one ``requests.Session``.

    Thread-safe: the session's pool hands each thread its own connection. The
    pool starts with room for ``options.pool_size`` idle connections per host
    and grows to the most threads that use it at once.
    """

    def __init__(self, options: ConnectionOptions, provider: str, *, auth_header: Optional[str] = None,
                 auth_value: Optional[str] = None, secrets: Optional[Secrets] = None,
                 headers: Optional[Mapping[str, str]] = None,
                 auth: Optional[requests.auth.AuthBase] = None) -> None:
        self.options = options
        self.provider = provider
        self._headers = dict(headers or {})  # the protocol's own (anthropic-version...); options.headers win
        self.secrets = secrets if secrets is not None else Secrets(headers=options.headers)
        weakref.finalize(self, self.secrets.close)  # an unclosed Client's secrets leave the log filter too
        # ``auth``: a protocol's own AuthBase, run on each request (Azure's Entra ID tokens), instead of a header.
        self._auth = auth if auth is not None else (
            _KeyAuth(auth_header, auth_value) if auth_header and auth_value else _NoAuth())
        self._lock = threading.Lock()
        self.session = self._session(options.max_retries)
        self._no_retry_session: Optional[requests.Session] = None
        self.limiter = Limiter(options.max_in_flight, options.requests_per_minute)
        forksafe.register(self)

    def _session(self, max_retries: int) -> requests.Session:
        session = _Session()
        self._mount(session, max_retries)
        session.headers["User-Agent"] = _user_agent()
        session.headers.update(self._headers)
        session.headers.update(self.options.headers)
        session.verify = self.options.verify
        if self.options.proxy:
            session.proxies = {"http": self.options.proxy, "https": self.options.proxy}
        session.auth = self._auth
        return session

    def _mount(self, session: requests.Session, max_retries: int) -> None:
        retry = _Retry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            redirect=0,
            other=0,
            allowed_methods=None,  # POST too: LLM calls are retried like the official SDKs do
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        # The pools start at pool_size and grow (see _GrowingPool).
        adapter = _Adapter(pool_connections=4, pool_maxsize=max(self.options.pool_size, 1), max_retries=retry)
        session.mount("https://", adapter)
        session.mount("http://", adapter)

    def _session_for(self, retry: bool) -> requests.Session:
        if retry:
            return self.session
        with self._lock:
            if self._no_retry_session is None:
                self._no_retry_session = self._session(0)
            return self._no_retry_session

    def request(self, method: str, url: str, *, json: Any = None, headers: Optional[Mapping[str, str]] = None,
                stream: bool = False, cancel: Optional[CancelToken] = None, retry: bool = True) -> requests.Response:
        """Send one request (with retries, unless ``retry`` is False) and return the
        response, whatever its status, once its headers have arrived.

        The caller must call :meth:`finished` when done with the response (it
        frees the client-wide in-flight slot). Raises CancelledError when
        ``cancel`` fires first (waking a wait for headers), APITimeoutError when
        connect or read (waiting for headers) times out, APIConnectionError for
        DNS, refused, reset, TLS and proxy failures.
        """
        if cancel is not None and cancel.cancelled:
            raise self.stopped(cancel, "before sending")
        try:
            self.limiter.acquire(cancel)
        except CancelledError:
            raise self.stopped(cancel, "while waiting for a request slot") from None
        timeout = self.options.timeout
        connect, read = timeout.connect, timeout.read
        if isinstance(cancel, deadline.Deadline):  # never wait on a socket past the total deadline
            left = cancel.remaining()
            connect, read = _at_most(connect, left), _at_most(read, left)
        _current.token, _current.detach = cancel, []
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("%s %s (%s)", method, self.scrub(url), self.provider)
        try:
            response = self._session_for(retry).request(
                method,
                url,
                json=json,
                headers=headers,
                stream=stream,
                timeout=(connect, read),
                allow_redirects=self.options.follow_redirects,
                # Per request, so an explicit False or CA path beats REQUESTS_CA_BUNDLE /
                # CURL_CA_BUNDLE (requests lets those override session.verify); True lets them apply.
                verify=self.options.verify,
            )
        except BaseException as exc:
            self.limiter.release()
            if cancel is not None and cancel.cancelled:
                raise self.stopped(cancel, "while waiting for the response") from None
            kind = _timeout_kind(exc)
            if kind:
                if deadline.expired(cancel):
                    raise self.stopped(cancel, "while waiting for the response") from None
                limit = timeout.connect if kind == "connect" else timeout.read
                raise APITimeoutError(
                    f"{kind} timeout after {limit} s talking to {self._where(url)}",
                    provider=self.provider,
                ) from None
            if isinstance(exc, requests.exceptions.ProxyError):
                raise APIConnectionError(
                    f"cannot reach {self._where(url)} through the proxy {self._proxy_for(url)} "
                    f"(ConnectionOptions.proxy, or HTTPS_PROXY / HTTP_PROXY): {self.scrub(_reason(exc))}",
                    provider=self.provider,
                ) from None
            if isinstance(exc, requests.exceptions.RequestException):
                raise APIConnectionError(
                    f"cannot reach {self._where(url)}: {self.scrub(_reason(exc))}", provider=self.provider
                ) from None
            if isinstance(exc, OSError):  # requests' own checks: a CA bundle path that does not exist
                raise ConfigurationError(f"cannot send to {self._where(url)}: {self.scrub(str(exc))} "
                                         "(check ConnectionOptions.verify and REQUESTS_CA_BUNDLE / "
                                         "CURL_CA_BUNDLE)", provider=self.provider) from None
            raise
        finally:
            # The headers are in: from here on the response's reader owns cancellation.
            for detach in _current.detach:
                detach()
            _current.token, _current.detach = None, []
        # urllib3 keeps each retried error, traceback and all, in the response's
        # retry history; the traceback's frames reach the caller's, and so the
        # stream generator: a cycle that weakref.finalize would keep alive forever.
        response.raw.retries = None
        if cancel is not None and cancel.cancelled:
            # A cancel during a retried 503 lets urllib3 return that 503: the call
            # was cancelled all the same.
            response.close()
            self.limiter.release()
            raise self.stopped(cancel, "while waiting for the response")
        return response

    def stopped(self, token: Optional[CancelToken], when: str, status_code: Optional[int] = None) -> LLMError:
        """The error for a call stopped by ``token``: APITimeoutError when it is an
        expired total deadline, else CancelledError."""
        if deadline.expired(token):
            return APITimeoutError(f"total timeout: the call took more than {token.seconds} s ({when})",
                                   provider=self.provider, status_code=status_code)
        return CancelledError(f"cancelled {when}", provider=self.provider, status_code=status_code)

    def finished(self) -> None:
        """The caller is done with a response from :meth:`request`."""
        self.limiter.release()

    def read_body(self, response: requests.Response, limit: Optional[int] = None, truncate: bool = False,
                  cancel: Optional[CancelToken] = None) -> bytes:
        """The whole body of a non-streamed response, up to ``limit`` bytes
        (default ``max_response_bytes``).

        Past the limit: with ``truncate`` the first ``limit`` bytes are returned
        (error bodies), else ResponseTooLargeError; either way the connection is
        closed. Raises APITimeoutError on silence (or when ``cancel`` is an
        expired total deadline), CancelledError when ``cancel`` fires (waking the
        read), APIConnectionError when the connection breaks.
        """
        limit = self.options.max_response_bytes if limit is None else limit
        declared = response.headers.get("content-length", "")
        if not truncate and declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
            response.close()  # no need to read what the server says will not fit
            raise ResponseTooLargeError(
                f"response body of {declared} bytes exceeds max_response_bytes={limit} bytes",
                provider=self.provider, status_code=response.status_code,
            )
        parts = []
        size = 0
        detach = attach(cancel, SocketInterrupter(response).interrupt)
        try:
            for part in response.iter_content(_READ_SIZE):
                parts.append(part)
                size += len(part)
                if size > limit:
                    response.close()
                    if truncate:
                        return b"".join(parts)[:limit]
                    raise ResponseTooLargeError(
                        f"response body exceeded max_response_bytes={limit} bytes",
                        provider=self.provider, status_code=response.status_code,
                    )
        except requests.exceptions.RequestException as exc:
            response.close()
            if cancel is not None and cancel.cancelled:
                raise self.stopped(cancel, "while reading the response", response.status_code) from None
            if isinstance(exc, requests.exceptions.Timeout):
                raise APITimeoutError(
                    f"read timeout: the server sent nothing for {self.options.timeout.read} s in the response body",
                    provider=self.provider, status_code=response.status_code,
                ) from None
            raise APIConnectionError(
                f"connection broke while reading the response: {self.scrub(_reason(exc))}",
                provider=self.provider, status_code=response.status_code,
            ) from None
        finally:
            detach()
        if cancel is not None and cancel.cancelled:  # a close-delimited body ends quietly on shutdown
            response.close()
            raise self.stopped(cancel, "while reading the response", response.status_code)
        return b"".join(parts)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this transport replaced by ``***``."""
        return self.secrets.scrub(text)

    def _proxy_for(self, url: str) -> str:
        proxies = self.session.proxies or requests.utils.get_environ_proxies(url)
        proxy = requests.utils.select_proxy(url, proxies)
        return self._where(proxy) if proxy else "?"

    def _where(self, url: str) -> str:
        # scheme://host:port only: paths and query strings may carry secrets.
        parts = requests.utils.urlparse(url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def _sessions(self) -> list:
        return [s for s in (self.session, self._no_retry_session) if s is not None]

    def close(self) -> None:
        """Close every pooled connection now, and stop scrubbing this Client's secrets
        from log records. Streams still open keep their own connection until they end."""
        for session in self._sessions():
            for pool in _pools_of(session):
                pool.close()  # urllib3 2's PoolManager.clear() leaves a pool's idle sockets to the GC
            session.close()
        self.secrets.close()

    def _after_fork_in_child(self) -> None:
        """In a forked child: never touch the parent's connections. Fresh sessions;
        the inherited sockets' descriptors are closed in this process only (close,
        never shutdown, which would end the parent's connections too), without
        taking any lock a parent thread may have held at the fork."""
        old = self._sessions()
        self._lock = threading.Lock()
        self.session = self._session(self.options.max_retries)
        self._no_retry_session = None
        for session in old:
            for pool in _pools_of(session):
                for conn in pool._idle_connections():
                    sock = getattr(conn, "sock", None)
                    if sock is not None:
                        try:
                            sock.close()
                        except OSError:
                            pass


def _pools_of(session: requests.Session) -> list:
    adapters = {id(a): a for a in session.adapters.values() if isinstance(a, _Adapter)}
    return [pool for adapter in adapters.values() for pool in adapter.pools()]


def _timeout_kind(exc: BaseException) -> Optional[str]:
    """"connect" or "read" when ``exc`` (requests', urllib3's, or requests'
    ConnectionError around urllib3's MaxRetryError, which is how a read timeout
    before the headers arrives) is a timeout; else None."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect"
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
        return "connect"  # (urllib3 makes "refused" a subclass of ConnectTimeoutError)
    if isinstance(exc, (requests.exceptions.Timeout, ReadTimeoutError)) or isinstance(reason, ReadTimeoutError):
        return "read"
    return None


def _at_most(limit: Optional[float], left: float) -> float:
    # A zero socket timeout would mean non-blocking: keep a sliver.
    return max(min(limit, left) if limit is not None else left, 0.001)


def _reason(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error, without the URL:
    e.g. "NewConnectionError: Failed to establish a new connection: [Errno 111]
    Connection refused"."""
    inner: Any = exc
    for _ in range(8):  # requests error -> MaxRetryError -> ProxyError -> NewConnectionError ...
        nested = getattr(inner, "reason", None)
        if not isinstance(nested, BaseException):
            nested = next((a for a in getattr(inner, "args", ()) if isinstance(a, BaseException)), None)
        if nested is None:
            break
        inner = nested
    text = str(inner)
    # urllib3 says "HTTPConnection(host='h', port=1): Failed to establish ..." or "<conn object>: ..."
    if ": " in text and (text.startswith("<") or text.startswith("_HTTP") or text.startswith("HTTP")):
        text = text.split(": ", 1)[1]
    return f"{type(inner).__name__}: {text}"


def _user_agent() -> str:
    from llmlib import __version__

    return f"llmlib/{__version__} python-requests/{requests.__version__}"
