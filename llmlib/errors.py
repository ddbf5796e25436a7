"""The exceptions llmlib raises, one tree for every provider.

::

    LLMError                        .provider .status_code .request_id .is_retryable()
    ├── ConfigurationError          (also ValueError) missing key, unknown provider, bad request built locally
    ├── CancelledError              a CancelToken stopped a call before its answer arrived
    ├── APIConnectionError          DNS, refused, reset, TLS, proxy
    │   └── APITimeoutError         connect, read or total timeout
    ├── APIStatusError              an HTTP error status, or an error object in a 200 body or mid-stream
    │   ├── BadRequestError         400, 422
    │   │   └── ContextLengthExceededError
    │   ├── AuthenticationError     401
    │   ├── PermissionDeniedError   403
    │   ├── NotFoundError           404
    │   ├── RateLimitError          429; .retry_after in seconds or None
    │   └── ServerError             5xx
    │       └── OverloadedError     529, Anthropic overloaded_error, 503 "overloaded"
    └── StreamError                 the stream broke; .partial holds what arrived
        ├── IncompleteStreamError   EOF before the provider's end marker
        ├── ResponseTooLargeError   an event or body over the configured limit
        └── DecodeError             invalid UTF-8 / JSON in the stream (also ValueError)

Retryable: connection errors, timeouts, 408, 409, 429, 5xx and 529, or whatever the
server marks with ``x-should-retry``. No message or attribute ever holds an API key:
messages are built from the provider's error body, never from request headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.types import ChatCompletionResponse

__all__ = [
    "LLMError",
    "ConfigurationError",
    "APIConnectionError",
    "APITimeoutError",
    "APIStatusError",
    "BadRequestError",
    "ContextLengthExceededError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "OverloadedError",
    "StreamError",
    "IncompleteStreamError",
    "ResponseTooLargeError",
    "DecodeError",
    "CancelledError",
]


class LLMError(Exception):
    """Base of every llmlib error.

    Attributes: ``provider`` (name such as ``"openai"``, or None), ``status_code``
    (HTTP status, or None when no response arrived), ``request_id`` (the provider's
    request id header, for support tickets, or None), ``body`` (the decoded error
    body, a dict or str, or None), ``partial`` (for an error raised from a stream's
    for-loop: a ChatCompletionResponse of what arrived before it, else None).
    """

    partial: Optional["ChatCompletionResponse"] = None

    def __init__(
        self,
        message: str,
        *,
        provider: Optional[str] = None,
        status_code: Optional[int] = None,
        request_id: Optional[str] = None,
        body: Any = None,
        should_retry: Optional[bool] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self._should_retry = should_retry

    def is_retryable(self) -> bool:
        """True when sending the same request again may succeed.

        The server's ``x-should-retry`` header wins; otherwise the class decides.
        """
        if self._should_retry is not None:
            return self._should_retry
        return self._retryable_by_default()

    def _retryable_by_default(self) -> bool:
        return False

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.provider:
            details.append(f"provider={self.provider}")
        if self.status_code is not None:
            details.append(f"status={self.status_code}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)

    def __reduce__(self):  # keep errors picklable across process pools
        state = dict(self.__dict__)
        return (_rebuild, (type(self), self.message), state)


def _rebuild(cls, message):
    obj = cls.__new__(cls)
    Exception.__init__(obj, message)
    return obj


class ConfigurationError(LLMError, ValueError):
    """Something is wrong before anything was sent: a missing key, an unknown
    provider, a request that cannot be expressed in the provider's protocol."""


class CancelledError(LLMError):
    """The request was cancelled through its :class:`~llmlib.CancelToken` before a
    response arrived: raised by ``chat_completion(cancel=...)`` and held by batch
    items. A cancelled stream does not raise it; it just ends."""


class APIConnectionError(LLMError):
    """No usable HTTP response: DNS failure, connection refused or reset, TLS or
    proxy failure."""

    def _retryable_by_default(self) -> bool:
        return True


class APITimeoutError(APIConnectionError):
    """The connect, read (silence) or total timeout ran out."""


class APIStatusError(LLMError):
    """The provider answered with an error: an HTTP error status, or an error
    object inside a 200 body or mid-stream. ``.partial`` holds what had arrived
    when the error came mid-stream (a ChatCompletionResponse), else None."""

    def _retryable_by_default(self) -> bool:
        return self.status_code in (408, 409, 429) or (
            self.status_code is not None and self.status_code >= 500
        )


class BadRequestError(APIStatusError):
    """400 or 422: the provider rejected the request; change it before retrying."""


class ContextLengthExceededError(BadRequestError):
    """The prompt plus ``max_tokens`` exceed the model's context window."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, invalid or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not use this model or resource."""


class NotFoundError(APIStatusError):
    """404: unknown model, deployment or endpoint."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens, or quota exhausted.

    ``retry_after`` is the wait the server asked for, in seconds, or None.
    """

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after

    def _retryable_by_default(self) -> bool:
        return True


class ServerError(APIStatusError):
    """5xx: the provider failed; usually worth a retry."""

    def _retryable_by_default(self) -> bool:
        return True


class OverloadedError(ServerError):
    """The provider is overloaded (Anthropic 529 ``overloaded_error``, 503 overloaded)."""


class StreamError(LLMError):
    """The response started but broke before it was complete.

    ``partial`` is a :class:`~llmlib.ChatCompletionResponse` of everything that
    arrived before the break (or None when the failure came before any chunk).
    """

    def __init__(self, message: str, *, partial: Optional["ChatCompletionResponse"] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial = partial


class IncompleteStreamError(StreamError):
    """The connection ended before the provider's end marker (``[DONE]``, a
    ``finish_reason``, ``message_stop``): the answer is truncated."""

    def _retryable_by_default(self) -> bool:
        return True


class ResponseTooLargeError(StreamError):
    """One event, or a whole non-streamed body, exceeded the configured size limit."""


class DecodeError(StreamError, ValueError):
    """The body was not valid UTF-8 or JSON. ``offset`` is the byte offset in the
    body where the bad event started, when known."""

    def __init__(self, message: str, *, offset: Optional[int] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.offset = offset
