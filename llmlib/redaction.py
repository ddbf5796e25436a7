"""Keeping credentials out of messages and log records.

A :class:`Secrets` holds one Client's credentials: its API key, the values of
credential-looking headers in ``ConnectionOptions.headers``, and of
credential-looking query parameters in its ``base_url``. ``scrub(text)`` replaces
each with ``***``; llmlib runs every error message and error body it builds from
a server's answer through it (a server may echo a key back).

While a Client is open its secrets are also scrubbed from the log records of the
libraries under it: urllib3 logs request URLs (query string included) at DEBUG
level, and its retry messages repeat them. A :class:`logging.Filter` on those
loggers rewrites any record that contains a secret before a handler sees it.
"""

from __future__ import annotations

import logging
import threading
from typing import Dict, Iterable, Mapping, Tuple
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Secrets", "looks_secret", "LOGGERS"]

#: The loggers whose records are scrubbed (urllib3 logs per module, and a filter
#: on a parent logger does not see its children's records).
LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "urllib3.response",
           "urllib3.poolmanager", "urllib3.util.ssl_", "requests", "sseclient", "llmlib")

_MIN_LENGTH = 6  # shorter values are not scrubbed: they would mangle ordinary text


def looks_secret(name: str) -> bool:
    """Whether a header or query parameter name suggests its value is a credential."""
    lowered = name.lower()
    if lowered == "proxy-authorization":
        return False  # the proxy's, not the provider's; requests manages it
    return any(word in lowered for word in ("auth", "key", "token", "secret", "signature", "password"))


class Secrets:
    """The credentials of one Client (see the module docstring). ``close()``
    stops scrubbing them from log records."""

    def __init__(self, api_key: object = None, headers: Mapping[str, str] = (), url: str = "") -> None:
        values = [api_key] if isinstance(api_key, str) else []
        values += [v for k, v in dict(headers).items() if looks_secret(k) and isinstance(v, str)]
        values += [v for k, v in parse_qsl(urlsplit(url or "").query) if looks_secret(k)]
        # Bearer tokens etc.: the credential part of "Scheme credential" too.
        values += [v.split(" ", 1)[1] for v in list(values) if " " in v.strip()]
        self.values: Tuple[str, ...] = tuple(sorted({v.strip() for v in values if len(v.strip()) >= _MIN_LENGTH},
                                                   key=len, reverse=True))
        self._closed = False
        _filter.add(self.values)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        return _scrub(text, self.values)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _filter.remove(self.values)

    def __repr__(self) -> str:
        return f"<{len(self.values)} secret(s)>"


class _LogFilter(logging.Filter):
    """Rewrites log records that contain a registered secret."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._counts: Dict[str, int] = {}
        self._values: Tuple[str, ...] = ()
        self._installed = False

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                self._counts[value] = self._counts.get(value, 0) + 1
            self._refresh()
            if not self._installed:
                self._installed = True
                for name in LOGGERS:
                    logging.getLogger(name).addFilter(self)

    def remove(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                left = self._counts.get(value, 0) - 1
                if left > 0:
                    self._counts[value] = left
                else:
                    self._counts.pop(value, None)
            self._refresh()

    def _refresh(self) -> None:
        self._values = tuple(sorted(self._counts, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        values = self._values
        if not values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging system's to report
            return True
        cleaned = _scrub(message, values)
        if cleaned is not message:
            record.msg, record.args = cleaned, None
        return True


def _scrub(text: str, values: Tuple[str, ...]) -> str:
    # Longest first, so a secret containing another is replaced whole. Returns
    # ``text`` itself when nothing matched.
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


_filter = _LogFilter()
