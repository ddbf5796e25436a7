"""From a provider's error (an HTTP status and body, or an error object in a
stream) to the matching :mod:`llmlib.errors` class.

One reader serves every provider's error body shape:

- OpenAI and its compatibles (Groq, DeepSeek, OpenRouter...): ``{"error": {"message", "type", "code", "param"}}``
- Anthropic: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
- Gemini: ``{"error": {"code", "message", "status", "details"}}`` (an ``ErrorInfo`` detail with
  reason ``API_KEY_INVALID`` is an AuthenticationError though sent as 400; ``RetryInfo.retryDelay``
  gives a RateLimitError its ``retry_after``)
- Ollama: ``{"error": "message"}``; Cohere: ``{"message": "..."}``
- OpenAI Responses stream: ``{"type": "error", "code", "message"}``

The reader is total: any JSON value in any field (a number where a word was
expected, ``null``, a list) gives an error of some class, never a TypeError.
Every string that reaches the message or an attribute (message, type, code,
request id, and each string and number in ``.body``) goes through the Client's
scrubber, since a server may echo a key in any of them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple, Type, Union

from llmlib.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ContextLengthExceededError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from llmlib.redaction import cut, first_chars
from llmlib.transport import parse_retry_after

__all__ = ["error_from_response", "error_from_payload", "is_error_payload"]

_MAX_MESSAGE = 1000  # characters of a provider message kept in an exception
_MAX_SNIPPET = 300  # characters of a non-JSON error body kept in an exception
_MAX_DEPTH = 32  # levels of a body's nesting kept in .body; deeper becomes "..."

_BY_STATUS: Mapping[int, Type[APIStatusError]] = {
    400: BadRequestError,
    422: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    529: OverloadedError,
}

# Error type words (OpenAI "type", Anthropic error.type, Gemini "status") -> status.
_BY_TYPE: Mapping[str, int] = {
    "invalid_request_error": 400,
    "invalid_argument": 400,
    "failed_precondition": 400,
    "authentication_error": 401,
    "unauthenticated": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "resource_exhausted": 429,
    "insufficient_quota": 429,
    "tokens": 429,
    "api_error": 500,
    "server_error": 500,
    "internal": 500,
    "internal_server_error": 500,
    "unavailable": 503,
    "overloaded_error": 529,
    "timeout_error": 504,
    "deadline_exceeded": 504,
}

_CONTEXT_WORDS = re.compile(
    r"context[_ ]length|maximum context|context window|prompt is too long|too many tokens"
    r"|input is too long|exceeds the (model's )?(maximum|context)",
    re.IGNORECASE,
)
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-goog-request-id", "cf-ray")


class _Details(NamedTuple):
    message: Optional[str]  # the provider's message, as text
    kind: Optional[str]  # a type word: OpenAI/Anthropic "type", Gemini "status"
    code: Union[str, int, None]  # OpenAI "code" (a word) or Gemini "code" (the HTTP status)
    request_id: Optional[str]
    statuses: Tuple[int, ...]  # numbers in "status" / "type" that look like HTTP statuses


def is_error_payload(obj: Any) -> bool:
    """Whether a decoded JSON body or stream event carries an error: a dict whose
    ``"error"`` is present and truthy (an object, a message...), or whose
    ``"type"`` is ``"error"`` (Anthropic, OpenAI Responses). ``"error": null``,
    ``false``, ``""``, ``{}`` or ``[]`` (sent by some OpenAI-compatible servers
    on every chunk) is not an error."""
    return isinstance(obj, dict) and (bool(obj.get("error")) or obj.get("type") == "error")


def _text(value: Any) -> Optional[str]:
    # A JSON value as message text: None and "" are no text; a str is itself;
    # anything else (a number, a list of validation errors) its JSON.
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(value)


def _word(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _code(value: Any) -> Union[str, int, None]:
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int) or (isinstance(value, str) and value) else None


def _as_status(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) == 3:
        value = int(value)
    return value if isinstance(value, int) and 400 <= value <= 599 else None


def _details(payload: Any) -> _Details:
    """What an error body says, from any JSON value (see the module docstring)."""
    if not isinstance(payload, dict):
        return _Details(_text(payload) if isinstance(payload, str) else None, None, None, None, ())
    request_id = _word(payload.get("request_id"))
    error = payload.get("error")
    if isinstance(error, dict) and error:
        message = _text(error.get("message"))
        metadata = error.get("metadata")
        raw = metadata.get("raw") if isinstance(metadata, dict) else None
        if raw and isinstance(raw, str) and raw not in (message or ""):
            message = f"{message}: {raw}" if message else raw  # OpenRouter's upstream reason
        kind = _word(error.get("type")) or _word(error.get("status"))
        statuses = tuple(s for s in (_as_status(error.get("status")), _as_status(error.get("type"))) if s)
        return _Details(message, kind, _code(error.get("code")), request_id, statuses)
    if error:  # Ollama's {"error": "message"}, or any other truthy value
        return _Details(_text(error), None, None, request_id, ())
    # No error object ("error" absent, null, false, empty): a top-level shape.
    kind = payload.get("type")
    statuses = tuple(s for s in (_as_status(payload.get("status")), _as_status(kind)) if s)
    kind = _word(kind) if kind != "error" else None
    return _Details(_text(payload.get("message")), kind, _code(payload.get("code")), request_id, statuses)


def _status_from(kind: Optional[str], code: Any, statuses: Tuple[int, ...] = ()) -> Optional[int]:
    """The HTTP status an error body implies: a numeric ``code`` (Gemini), a
    status-like number in ``status`` or ``type``, or a known type word; None
    when it implies none. Total over any ``kind`` and ``code``."""
    for value in (code, *statuses):
        status = _as_status(value)
        if status is not None:
            return status
    for word in (kind, code):
        if isinstance(word, str) and word.lower() in _BY_TYPE:
            return _BY_TYPE[word.lower()]
    return None


def _gemini_retry_delay(payload: Any) -> Optional[float]:
    try:
        for detail in payload["error"]["details"]:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                seconds = float(delay[:-1])
                return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    return None


#: Google ``ErrorInfo`` reasons that mean the key itself is bad (Gemini answers 400
#: INVALID_ARGUMENT for an invalid key, not 401).
_KEY_REASONS = frozenset({"API_KEY_INVALID"})


def _gemini_reasons(payload: Any) -> Tuple[str, ...]:
    """The ``reason`` of each ``google.rpc.ErrorInfo`` in a Gemini error's
    ``details`` (any JSON value: () when there are none)."""
    error = payload.get("error") if isinstance(payload, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return ()
    return tuple(d["reason"] for d in details if isinstance(d, dict) and isinstance(d.get("reason"), str))


def _class_for(status: Optional[int], kind: Any, code: Any, message: str) -> Type[APIStatusError]:
    """The error class for a status (or None), type word and code (any values)."""
    kind = kind.lower() if isinstance(kind, str) else ""
    if kind == "overloaded_error" or status == 529:
        return OverloadedError
    if status == 503 and "overload" in message.lower():
        return OverloadedError
    if status is not None and status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status is not None and status >= 500:
        cls = ServerError
    else:
        cls = APIStatusError
    if cls in (BadRequestError, APIStatusError) and (
        code == "context_length_exceeded" or _CONTEXT_WORDS.search(message)
    ):
        return ContextLengthExceededError
    return cls


def error_from_payload(
    payload: Any,
    *,
    provider: Optional[str],
    status: Optional[int] = None,
    headers: Optional[Mapping[str, str]] = None,
    scrub: Callable[[str], str] = lambda s: s,
    fallback: str = "",
) -> APIStatusError:
    """The typed error for a decoded error body (``payload``, any JSON value), or
    for an error object that arrived inside a stream (``status`` None: inferred
    from the body). Never raises: a body it does not understand gives an
    APIStatusError with ``fallback`` (or a generic text) as its message.

    Check :func:`is_error_payload` first for a 200 body or a stream event: this
    function assumes ``payload`` is an error. ``scrub`` runs over the message,
    type, code, request id and ``.body``; ``headers`` supply the request id,
    ``x-should-retry`` and ``Retry-After``.
    """
    headers = headers or {}
    message, kind, code, request_id, statuses = _details(payload)
    if status is None or status < 400:
        status = _status_from(kind, code, statuses) or status
    full = scrub(message or fallback or "the provider returned an error")
    message = cut(full, _MAX_MESSAGE, scrub)
    if len(full) > _MAX_MESSAGE:
        message += f" [{len(full) - _MAX_MESSAGE} more characters]"
    for name in _REQUEST_ID_HEADERS:
        if request_id is None and headers.get(name):
            request_id = headers[name]
    if request_id is not None:
        request_id = cut(str(request_id), 200, scrub)
    flag = str(headers.get("x-should-retry", "")).strip().lower()
    should_retry = True if flag == "true" else False if flag == "false" else None
    if code == "insufficient_quota" or kind == "insufficient_quota":
        should_retry = False  # waiting does not refill a quota
    cls = _class_for(status, kind, code, message)
    if cls in (BadRequestError, APIStatusError) and _KEY_REASONS.intersection(_gemini_reasons(payload)):
        cls = AuthenticationError  # keeps the status the server sent (400)
    words = [cut(w, 100, scrub) for w in (kind, code if isinstance(code, str) else None) if w]
    text = f"{message} [{', '.join(dict.fromkeys(words))}]" if words else message
    kwargs = dict(provider=provider, status_code=status, request_id=request_id,
                  body=_scrub_body(payload, scrub), should_retry=should_retry)
    if cls is RateLimitError:
        retry_after = parse_retry_after(headers)
        if retry_after is None:
            retry_after = _gemini_retry_delay(payload)
        return RateLimitError(text, retry_after=retry_after, **kwargs)
    return cls(text, **kwargs)


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: Optional[str],
    scrub: Callable[[str], str] = lambda s: s,
) -> APIStatusError:
    """The typed error for an HTTP error response with this status, headers and
    body (bytes, JSON or not). Never raises; see :func:`error_from_payload`."""
    try:
        payload: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):
        payload = None
    snippet = first_chars(body, _MAX_SNIPPET, scrub).strip() if body else ""
    fallback = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return error_from_payload(payload, provider=provider, status=status, headers=headers,
                              scrub=scrub, fallback=fallback)


def _scrub_body(payload: Any, scrub: Callable[[str], str], depth: int = 0) -> Any:
    """A copy of ``payload`` (a decoded JSON value) with every secret scrubbed:
    in strings (keys too), and a number whose digits are a secret replaced by
    the string ``"***"``. The shape and the other types are kept; nesting past
    ``_MAX_DEPTH`` levels becomes ``"..."``."""
    if payload is None or isinstance(payload, bool):
        return payload
    if isinstance(payload, str):
        return scrub(payload)
    if isinstance(payload, (int, float)):
        text = repr(payload)
        return "***" if scrub(text) != text else payload
    if depth >= _MAX_DEPTH:
        return "..."
    if isinstance(payload, dict):
        return {(scrub(k) if isinstance(k, str) else k): _scrub_body(v, scrub, depth + 1)
                for k, v in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [_scrub_body(v, scrub, depth + 1) for v in payload]
    return scrub(str(payload))  # not JSON: keep only its scrubbed text
