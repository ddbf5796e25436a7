"""From a provider's error (an HTTP status and body, or an error object in a
stream) to the matching :mod:`llmlib.errors` class.

One reader serves every provider's error body shape:

- OpenAI and its compatibles (Groq, DeepSeek, OpenRouter...): ``{"error": {"message", "type", "code", "param"}}``
- Anthropic: ``{"type": "error", "error": {"type", "message"}, "request_id"}``
- Gemini: ``{"error": {"code", "message", "status", "details"}}``
- Ollama: ``{"error": "message"}``; Cohere: ``{"message": "..."}``
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping, Optional, Tuple, Type

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
from llmlib.framing import first_bytes
from llmlib.transport import parse_retry_after

__all__ = ["error_from_response", "error_from_payload"]

_MAX_MESSAGE = 1000  # characters of a provider message kept in an exception

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


def _details(payload: Any) -> Tuple[Optional[str], Optional[str], Any, Optional[str]]:
    """(message, type word, code, request id) from any known error body shape."""
    if not isinstance(payload, dict):
        return None, None, None, None
    request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
    error = payload.get("error")
    if isinstance(error, str):
        return error, None, None, request_id
    if isinstance(error, dict):
        message = error.get("message")
        raw = error.get("metadata", {}).get("raw") if isinstance(error.get("metadata"), dict) else None
        if raw and isinstance(raw, str) and message and raw not in message:
            message = f"{message}: {raw}"  # OpenRouter's upstream reason
        kind = error.get("type") or error.get("status")
        return (str(message) if message is not None else None), kind, error.get("code"), request_id
    message = payload.get("message")
    kind = payload.get("type") if payload.get("type") != "error" else None
    return (str(message) if message is not None else None), kind, payload.get("code"), request_id


def _status_from(kind: Optional[str], code: Any) -> Optional[int]:
    if isinstance(code, int) and 400 <= code <= 599:
        return code
    if isinstance(code, str) and code.isdigit() and 400 <= int(code) <= 599:
        return int(code)
    for word in (kind, code):
        if isinstance(word, str) and word.lower() in _BY_TYPE:
            return _BY_TYPE[word.lower()]
    return None


def _gemini_retry_delay(payload: Any) -> Optional[float]:
    try:
        for detail in payload["error"]["details"]:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return float(delay[:-1])
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    return None


def _class_for(status: Optional[int], kind: Optional[str], code: Any, message: str) -> Type[APIStatusError]:
    if (kind or "").lower() == "overloaded_error" or status == 529:
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
    """The typed error for a decoded error body (``payload``), or for an error
    object that arrived inside a stream (``status`` None: inferred from the body)."""
    headers = headers or {}
    message, kind, code, request_id = _details(payload)
    if status is None or status < 400:
        status = _status_from(kind, code) or status
    message = scrub(message or fallback or "the provider returned an error")
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + f"... [{len(message) - _MAX_MESSAGE} more characters]"
    for name in _REQUEST_ID_HEADERS:
        if request_id is None and headers.get(name):
            request_id = headers[name]
    flag = headers.get("x-should-retry", "").strip().lower()
    should_retry = True if flag == "true" else False if flag == "false" else None
    if code == "insufficient_quota" or kind == "insufficient_quota":
        should_retry = False  # waiting does not refill a quota
    cls = _class_for(status, kind, code, message)
    words = [w for w in (kind, code if isinstance(code, str) else None) if w]
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
    """The typed error for an HTTP error response with this status, headers and body."""
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = None
    snippet = first_bytes(body, 300, scrub).strip()
    fallback = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    return error_from_payload(payload, provider=provider, status=status, headers=headers,
                              scrub=scrub, fallback=fallback)


def _scrub_body(payload: Any, scrub: Callable[[str], str]) -> Any:
    if payload is None:
        return None
    try:
        text = json.dumps(payload)
    except (TypeError, ValueError):
        return None
    cleaned = scrub(text)
    return payload if cleaned == text else json.loads(cleaned)
