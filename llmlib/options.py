"""How a :class:`~llmlib.Client` talks to the network: timeouts, retries, proxy, pool."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union
from urllib.parse import urlsplit

import attrs

from llmlib.errors import ConfigurationError

__all__ = ["Timeout", "ConnectionOptions"]


def _seconds(name: str, unit: str = "seconds"):
    def check(_inst: Any, _attr: Any, value: Optional[float]) -> None:
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ConfigurationError(f"{name} must be a positive number of {unit} or None, not {value!r}")
    return check


@attrs.frozen
class Timeout:
    """Timeouts in seconds; None means no limit.

    - ``connect``: to open the TCP (and TLS) connection. Default 10.
    - ``read``: the longest silence allowed on the socket while waiting for the
      response headers or for the next bytes of the body. Default 120. It does
      **not** bound the whole call: a server that sends one byte every minute
      never trips it. That is what ``total`` is for.
    - ``total``: a deadline for the whole call: waiting for a request slot,
      retries and their waits, the headers, and the body or the whole stream.
      When it passes, the call raises APITimeoutError (a stream: from its
      for-loop, with ``.partial``). Default None.
    """

    connect: Optional[float] = attrs.field(default=10.0, validator=_seconds("connect timeout"))
    read: Optional[float] = attrs.field(default=120.0, validator=_seconds("read timeout"))
    total: Optional[float] = attrs.field(default=None, validator=_seconds("total timeout"))

    @classmethod
    def of(cls, value: Union["Timeout", float, int, None]) -> "Timeout":
        """A Timeout from a number (used for connect and read alike), or None for defaults."""
        if value is None:
            return cls()
        if isinstance(value, Timeout):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls(connect=value, read=value)
        raise ConfigurationError(f"timeout must be seconds (a number) or a llmlib.Timeout, not {value!r}")


def _to_timeout(value: Any) -> Timeout:
    return Timeout.of(value)


def _whole(minimum: int, unit: str):
    # A required whole number >= minimum: None, bools, floats and strings are refused
    # here rather than failing later, far from the mistake, with a TypeError.
    def check(_inst: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigurationError(
                f"ConnectionOptions.{attribute.name} must be a whole number >= {minimum} ({unit}), not {value!r}"
            )
    return check


def _headers(value: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    """The extra headers as a dict, each value checked: a str (or bytes) with no
    line break or NUL and no character past U+00FF, which http.client cannot
    send. The error names the header and the character's index, never the value."""
    headers = dict(value or {})
    for name, text in headers.items():
        if isinstance(text, bytes):
            continue
        if not isinstance(text, str):
            raise ConfigurationError(f"ConnectionOptions.headers[{name!r}] must be a str, not {type(text).__name__}")
        for index, char in enumerate(text):
            if char in "\r\n\x00" or ord(char) > 0xFF:
                raise ConfigurationError(
                    f"ConnectionOptions.headers[{name!r}] cannot be sent: the character at index {index} "
                    f"(of {len(text)}) is U+{ord(char):04X}; a header value is one line of Latin-1 text"
                )
    return headers


def _verify(value: Any) -> Union[bool, str]:
    """True, False, or an existing CA bundle path (str or os.PathLike, as a str)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value:
        if not os.path.exists(value):
            raise ConfigurationError(f"ConnectionOptions.verify: no CA bundle file or directory at {value!r}")
        return value
    raise ConfigurationError(
        f"ConnectionOptions.verify must be True, False or a CA bundle path, not {value!r}"
    )


def _proxy(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ConfigurationError(f"ConnectionOptions.proxy must be a proxy URL (a str) or None, not {type(value).__name__}")


def hide_userinfo(url: Optional[str]) -> str:
    """``repr(url)`` with the password in its userinfo shown as ``***``
    (``'http://user:***@proxy:3128'``), or the whole userinfo when it has no
    password (a user name alone is often a token). For reprs of proxy URLs."""
    if not isinstance(url, str) or "@" not in url:
        return repr(url)
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        userinfo, _, host = parts.netloc.rpartition("@")
    except ValueError:
        return "'***'"
    if not userinfo:
        return repr(url)
    user, colon, _password = userinfo.partition(":")
    hidden = f"{user}:***" if colon else "***"
    start = url.find(userinfo)
    if start < 0:
        return "'***'"
    return repr(url[:start] + hidden + url[start + len(userinfo):])


@attrs.frozen
class ConnectionOptions:
    """Network settings of one Client.

    - ``timeout``: a :class:`Timeout`, or seconds for both connect and read.
    - ``max_retries``: retries after the first try (default 2), with backoff
      ``min(0.5 * 2**n, 8)`` s and jitter, honouring ``Retry-After`` up to 60 s.
    - ``pool_size``: idle connections kept open per host to start with
      (default 16). The pool grows to the most threads that share the Client
      at once, so no connection is opened and then discarded.
    - ``proxy``: an ``http://`` or ``https://`` proxy URL for all requests; when
      None, ``HTTPS_PROXY`` / ``NO_PROXY`` from the environment apply. Its
      password (``http://user:password@host:port``) is shown as ``***`` in the
      repr and scrubbed from error messages and log records like an API key.
    - ``headers``: extra headers sent with every request. Values are never logged.
    - ``verify``: TLS verification. ``True`` (default): verify, against the CA
      bundle that ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` names when either
      is set (as requests and curl do), else certifi's. A CA bundle path (a
      file, or a directory of hashed certificates; it must exist), or ``False``
      (no verification, and urllib3 warns), is an explicit choice and always
      wins over those variables.
    - ``max_response_bytes``: the largest non-streamed body, or single stream
      event, accepted, in bytes (default 32 MiB, at least 1); larger raises
      ResponseTooLargeError.
    - ``follow_redirects``: off by default; when on, credentials are dropped on
      a redirect to another host.
    - ``max_in_flight``: the most requests this Client has open at once, across
      all threads, batches and streams (a stream counts until it ends); None: no limit.
    - ``requests_per_minute``: request starts per minute, paced evenly; None: no limit.

    ``max_retries``, ``pool_size`` and ``max_response_bytes`` are whole numbers
    (not None, not bools); a bad value of any field raises ConfigurationError
    naming the field, the value and what is accepted.
    """

    timeout: Timeout = attrs.field(factory=Timeout, converter=_to_timeout)
    max_retries: int = attrs.field(default=2, validator=_whole(0, "retries after the first try"))
    pool_size: int = attrs.field(default=16, validator=_whole(0, "connections"))
    proxy: Optional[str] = attrs.field(default=None, converter=_proxy, repr=hide_userinfo)
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers, repr=False)
    verify: Union[bool, str] = attrs.field(default=True, converter=_verify)
    max_response_bytes: int = attrs.field(default=32 * 1024 * 1024, validator=_whole(1, "bytes"))
    follow_redirects: bool = False
    max_in_flight: Optional[int] = attrs.field(default=None, validator=_seconds("max_in_flight", "requests"))
    requests_per_minute: Optional[float] = attrs.field(default=None, validator=_seconds("requests_per_minute", "requests"))

    def with_changes(self, **changes: Any) -> "ConnectionOptions":
        """A copy with some fields replaced."""
        return attrs.evolve(self, **changes)
