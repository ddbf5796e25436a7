"""Keeping credentials out of messages and log records.

A :class:`Secrets` holds one Client's credentials: its API key, the values of
credential-looking headers in ``ConnectionOptions.headers``, and of
credential-looking query parameters in its ``base_url``. ``scrub(text)`` replaces
each with ``***``; llmlib runs every error message and error body it builds from
a server's answer through it (a server may echo a key back).

While a Client is open its secrets are also scrubbed from the log records of the
libraries under it: urllib3 logs request URLs (query string included) at DEBUG
level, and its retry messages repeat them; sseclient-py logs stray SSE field
names and event ids, which a server may fill with an echoed key. A
:class:`logging.Filter` on those loggers rewrites any record that contains a
secret before a handler sees it.

Cutting text is where secrets slip through: a cut that falls inside a secret
leaves its first characters, which no longer match it. :func:`cut` and
:func:`first_chars` scrub before they cut, over enough text that no secret can
straddle the cut, and replace a trailing prefix of a secret (a body that ended
mid-secret) with ``***`` as well.

:func:`check_api_key` rejects a key that cannot be sent in an HTTP header
before it reaches http.client, whose UnicodeEncodeError would quote the whole key.
"""

from __future__ import annotations

import base64
import logging
import threading
import unicodedata
from typing import Callable, Dict, Iterable, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

from llmlib.errors import ConfigurationError

__all__ = ["Secrets", "looks_secret", "LOGGERS", "check_api_key", "cut", "first_chars", "proxy_credentials"]

#: The loggers whose records are scrubbed (urllib3 logs per module, and a filter
#: on a parent logger does not see its children's records). sseclient-py logs to
#: ``logging.getLogger(self.__class__.__module__)``: "sseclient" for its own
#: class, and the module of any subclass, such as llmlib's ``EventParser`` in
#: "llmlib.framing"; subclasses defined elsewhere are found at install time
#: (see :func:`_sse_loggers`).
LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "urllib3.response",
           "urllib3.poolmanager", "urllib3.util.ssl_", "requests", "sseclient", "llmlib", "llmlib.framing")

_MIN_LENGTH = 6  # shorter values are not scrubbed: they would mangle ordinary text


def looks_secret(name: str) -> bool:
    """Whether a header or query parameter name suggests its value is a credential."""
    lowered = name.lower()
    if lowered == "proxy-authorization":
        return False  # the proxy's, not the provider's; requests manages it
    return any(word in lowered for word in ("auth", "key", "token", "secret", "signature", "password"))


def proxy_credentials(proxy: Optional[str]) -> Tuple[str, ...]:
    """The secret parts of a proxy URL such as ``http://user:pass@proxy:3128``:
    the password, ``user:pass``, both as written and percent-decoded (requests
    decodes them), and the base64 of ``user:pass`` that goes into the
    ``Proxy-Authorization: Basic`` header. A URL with a user name but no
    password gives the user name (often a token). Empty when the URL has no
    credentials or cannot be parsed."""
    if not proxy or not isinstance(proxy, str):
        return ()
    try:
        parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        user, password = parts.username, parts.password
    except ValueError:
        return ()
    if user is None:
        return ()
    if password is None:
        return (user, unquote(user))
    plain = f"{unquote(user)}:{unquote(password)}"
    basic = base64.b64encode(plain.encode("latin-1", "replace")).decode("ascii")
    return (password, unquote(password), f"{user}:{password}", plain, basic)


class Secrets:
    """The credentials of one Client (see the module docstring). ``close()``
    stops scrubbing them from log records.

    ``api_key``: the key (a str; anything else is ignored). ``headers``: the
    Client's extra headers; values of credential-looking names are secrets.
    ``url``: the base URL; values of credential-looking query parameters are
    secrets. ``proxy``: the proxy URL; its password and ``user:password``
    (see :func:`proxy_credentials`) are secrets. Values shorter than 6
    characters are not scrubbed (they would mangle ordinary text).
    """

    def __init__(self, api_key: object = None, headers: Mapping[str, str] = (), url: str = "", *,
                 proxy: Optional[str] = None) -> None:
        values = [api_key] if isinstance(api_key, str) else []
        values += [v for k, v in dict(headers).items() if looks_secret(k) and isinstance(v, str)]
        values += [v for k, v in parse_qsl(urlsplit(url or "").query) if looks_secret(k)]
        values += proxy_credentials(proxy)
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
        """Stop scrubbing these secrets from log records (idempotent)."""
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
        self._installed: Set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                self._counts[value] = self._counts.get(value, 0) + 1
            self._refresh()
            # Every time: a subclass of sseclient's parser may have been imported since.
            for name in (*LOGGERS, *_sse_loggers()):
                if name not in self._installed:
                    self._installed.add(name)
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
        # urllib3's "Retrying ... after connection broken by %r" passes the error
        # itself: a record kept by a handler (pytest's capture, a memory handler)
        # would keep its traceback, the frames of the caller and the stream it
        # holds. Such a record keeps its text, not the exception.
        holds_error = isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args)
        if not values and not holds_error:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging system's to report
            return True
        cleaned = _scrub(message, values)
        if cleaned is not message or holds_error:
            record.msg, record.args = cleaned, None
        return True


def _sse_loggers() -> Set[str]:
    """The logger names sseclient-py's classes log to: the module of
    ``sseclient.SSEClient`` and of each of its (imported) subclasses."""
    try:
        import sseclient
    except ImportError:  # pragma: no cover - a declared dependency
        return set()
    names, todo = set(), [sseclient.SSEClient]
    while todo:
        cls = todo.pop()
        names.add(cls.__module__)
        todo.extend(cls.__subclasses__())
    return names


_CONTROL_NAMES = {"\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\x00": "NUL", "\x0b": "LINE TABULATION",
                  "\x0c": "FORM FEED", "\x7f": "DELETE"}


def check_api_key(key: object, provider: str) -> None:
    """Raise ConfigurationError unless ``key`` can be sent in an HTTP header.

    ``key`` is a provider API key (None passes: no key). It must be a str of
    visible ASCII characters (``!`` to ``~``): whitespace or a line break
    anywhere in it (a header injection risk, or a pasted newline), a control
    character, or any non-ASCII character (a pasted zero-width space U+200B, a
    typographic dash) is rejected. The message names ``provider``, the
    character's 0-based index and the key's length, and the character's code
    point and Unicode name, but never the key or any of its characters.
    """
    if key is None:
        return
    if not isinstance(key, str):
        raise ConfigurationError(f"the API key for {provider} must be a str, not {type(key).__name__}",
                                 provider=provider)
    for index, char in enumerate(key):
        if "!" <= char <= "~":
            continue
        if char.isspace():
            why = "whitespace or a line break (strip it: a header must be one line)"
        elif unicodedata.category(char) in ("Cc", "Cf"):
            why = "an invisible control or format character (a copy-paste leftover?)"
        else:
            why = "not ASCII (a copy-paste leftover?)"
        name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "")
        raise ConfigurationError(
            f"the API key for {provider} cannot be sent in an HTTP header: the character at index "
            f"{index} (of {len(key)}) is U+{ord(char):04X}{' ' + name if name else ''}, {why}",
            provider=provider,
        )


Scrub = Callable[[str], str]


def _known(scrub: Optional[Scrub]) -> Tuple[str, ...]:
    # The secrets behind a scrub callable (a Secrets' bound ``scrub``, or that of
    # an object with a ``.secrets``, such as a Transport), with every open Client's.
    owner = getattr(scrub, "__self__", None)
    found = owner if isinstance(owner, Secrets) else getattr(owner, "secrets", None)
    values = set(_filter._values)
    if isinstance(found, Secrets):
        values.update(found.values)
    return tuple(sorted(values, key=len, reverse=True))


def _trim_partial(text: str, values: Tuple[str, ...]) -> str:
    # ``text`` with its longest trailing prefix (6 characters or more) of any
    # value replaced by ``***``.
    best = 0
    for value in values:
        for k in range(min(len(value), len(text)), max(_MIN_LENGTH, best + 1) - 1, -1):
            if text.endswith(value[:k]):
                best = k
                break
    return text[:-best] + "***" if best else text


def cut(text: str, n: int, scrub: Optional[Scrub] = None) -> str:
    """``text`` scrubbed, then cut to at most ``n`` characters (plus ``"..."``
    when something was cut), for an error message.

    ``scrub`` (a Client's scrubber, or None) runs over the whole text first, so
    no secret can straddle the cut. A trailing prefix (6 or more characters) of
    a known secret is then replaced by ``***``: that of a secret the text
    itself ended in the middle of, which no scrubber matches. Known secrets are
    those behind ``scrub`` (a ``Secrets.scrub`` or ``Transport.scrub``) and
    those of every open Client.
    """
    if scrub is not None:
        text = scrub(text)
    more = len(text) > n
    return _trim_partial(text[:n] if more else text, _known(scrub)) + ("..." if more else "")


def first_chars(data: bytes, n: int, scrub: Optional[Scrub] = None) -> str:
    """The first ``n`` characters of ``data`` decoded as UTF-8 (bad bytes become
    U+FFFD), scrubbed, with ``"..."`` when there is more: :func:`cut` for bytes.

    Decodes and scrubs at least ``4 * n`` bytes (``n`` characters of any UTF-8)
    plus the longest known secret, and more until ``n`` characters plus the
    longest secret remain after scrubbing, so a secret starting inside the
    snippet is always seen whole by ``scrub``, whatever the text before it.
    """
    if not data:
        return ""
    values = _known(scrub)
    longest = max((len(v) for v in values), default=0)
    size = 4 * n + max((len(v.encode("utf-8")) for v in values), default=0)
    while True:
        window = data[:size]
        text = window.decode("utf-8", "replace")
        if scrub is not None:
            text = scrub(text)
        if size >= len(data) or len(text) >= n + longest:
            break
        size *= 2
    more = len(text) > n or size < len(data)
    return _trim_partial(text[:n], values) + ("..." if more else "")


def _scrub(text: str, values: Tuple[str, ...]) -> str:
    # Longest first, so a secret containing another is replaced whole. Returns
    # ``text`` itself when nothing matched.
    for value in values:
        if value in text:
            text = text.replace(value, "***")
    return text


_filter = _LogFilter()
