"""llmlib: one blocking Python client for every major LLM provider.

::

    from llmlib import Client, Message
    client = Client("openai")                      # key from OPENAI_API_KEY
    for chunk in client.chat_completion_stream(model="gpt-4o", messages=[Message.user("Hi")]):
        print(chunk.text or "", end="", flush=True)

``import llmlib`` and ``Client(...)`` are light: a Client checks its provider,
key, URL and options when it is made, and imports the HTTP stack (requests,
urllib3) and its provider's protocol module at its first request; the message and
response types are imported when first named or when that module needs them; no
model runtime is imported until a Client needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmlib.cancel import CancelToken
from llmlib.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CancelledError,
    ConfigurationError,
    ContextLengthExceededError,
    DecodeError,
    IncompleteStreamError,
    LLMError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    ServerError,
    StreamError,
)
from llmlib.options import ConnectionOptions, Timeout
from llmlib.providers import Provider

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.client import Client
    from llmlib.messages import Content, ContentPart, FunctionCall, Message, Role, Tool, ToolCall
    from llmlib.streaming import collect, events
    from llmlib.types import (ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, Choice, ChunkChoice,
                              Delta, FunctionCallDelta, HTTPInfo, ModelInfo, RateLimits, ToolCallDelta, Usage)

__version__ = "0.1.0"

__all__ = [
    "Client", "Provider", "ConnectionOptions", "Timeout", "CancelToken",
    "ChatCompletionRequest", "ChatCompletionResponse", "ChatCompletionChunk", "Choice", "ChunkChoice",
    "Delta", "ToolCallDelta", "FunctionCallDelta", "Usage", "ModelInfo", "HTTPInfo", "RateLimits",
    "Message", "Role", "Content", "ContentPart", "Tool", "ToolCall", "FunctionCall",
    "collect", "events",
    "LLMError", "ConfigurationError", "APIConnectionError", "APITimeoutError", "APIStatusError",
    "BadRequestError", "ContextLengthExceededError", "AuthenticationError", "PermissionDeniedError",
    "NotFoundError", "RateLimitError", "ServerError", "OverloadedError", "StreamError",
    "IncompleteStreamError", "ResponseTooLargeError", "DecodeError", "CancelledError",
]


# Imported on first use, not with llmlib (PEP 562): Client, whose first request
# imports requests and urllib3; the messages, the response types and the helpers
# are ~30 attrs classes, which a process pays for when it first names one or
# sends its first request.
_LAZY = {
    "Client": "llmlib.client", "collect": "llmlib.streaming", "events": "llmlib.streaming",
    **dict.fromkeys(["Content", "ContentPart", "FunctionCall", "Message", "Role", "Tool", "ToolCall"],
                    "llmlib.messages"),
    **dict.fromkeys(["ChatCompletionChunk", "ChatCompletionRequest", "ChatCompletionResponse", "Choice",
                     "ChunkChoice", "Delta", "FunctionCallDelta", "HTTPInfo", "ModelInfo", "RateLimits",
                     "ToolCallDelta", "Usage"], "llmlib.types"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmlib' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(set(globals()) | set(_LAZY))
