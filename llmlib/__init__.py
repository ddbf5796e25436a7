"""llmlib: one blocking Python client for every major LLM provider.

::

    from llmlib import Client, Message
    client = Client("openai")                      # key from OPENAI_API_KEY
    for chunk in client.chat_completion_stream(model="gpt-4o", messages=[Message.user("Hi")]):
        print(chunk.text or "", end="", flush=True)

``import llmlib`` is light: the HTTP stack (requests, urllib3, sseclient-py) is
imported when ``Client`` is first used, and no provider module or model runtime is
imported until a Client needs it.
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
from llmlib.messages import Content, ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.options import ConnectionOptions, Timeout
from llmlib.providers import Provider
from llmlib.streaming import collect, events
from llmlib.types import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    HTTPInfo,
    ModelInfo,
    RateLimits,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.client import Client

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


def __getattr__(name: str) -> Any:
    # Client pulls in requests and urllib3: import it on first use, not with llmlib.
    if name == "Client":
        from llmlib.client import Client

        globals()["Client"] = Client
        return Client
    raise AttributeError(f"module 'llmlib' has no attribute {name!r}")


def __dir__() -> list:
    return sorted(set(globals()) | {"Client"})
