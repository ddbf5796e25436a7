"""How a :class:`~llmlib.Client` talks to the network: timeouts, retries, proxy, pool."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

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


def _non_negative_int(name: str):
    def check(_inst: Any, _attr: Any, value: Optional[int]) -> None:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ConfigurationError(f"{name} must be a whole number >= 0, not {value!r}")
    return check


def _headers(value: Optional[Mapping[str, str]]) -> Mapping[str, str]:
    return dict(value or {})


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
      None, ``HTTPS_PROXY`` / ``NO_PROXY`` from the environment apply.
    - ``headers``: extra headers sent with every request. Values are never logged.
    - ``verify``: TLS verification: True, False, or a CA bundle path.
    - ``max_response_bytes``: the largest non-streamed body, or single stream
      event, accepted (default 32 MiB); larger raises ResponseTooLargeError.
    - ``follow_redirects``: off by default; when on, credentials are dropped on
      a redirect to another host.
    - ``max_in_flight``: the most requests this Client has open at once, across
      all threads, batches and streams (a stream counts until it ends); None: no limit.
    - ``requests_per_minute``: request starts per minute, paced evenly; None: no limit.
    """

    timeout: Timeout = attrs.field(factory=Timeout, converter=_to_timeout)
    max_retries: int = attrs.field(default=2, validator=_non_negative_int("max_retries"))
    pool_size: int = attrs.field(default=16, validator=_non_negative_int("pool_size"))
    proxy: Optional[str] = None
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_headers, repr=False)
    verify: Union[bool, str] = True
    max_response_bytes: int = attrs.field(default=32 * 1024 * 1024, validator=_non_negative_int("max_response_bytes"))
    follow_redirects: bool = False
    max_in_flight: Optional[int] = attrs.field(default=None, validator=_seconds("max_in_flight", "requests"))
    requests_per_minute: Optional[float] = attrs.field(default=None, validator=_seconds("requests_per_minute", "requests"))

    def with_changes(self, **changes: Any) -> "ConnectionOptions":
        """A copy with some fields replaced."""
        return attrs.evolve(self, **changes)
