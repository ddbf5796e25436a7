"""The OpenAI chat-completions protocol, the whole wire format in one place.

Follows https://platform.openai.com/docs/api-reference/chat/create (request body),
https://platform.openai.com/docs/api-reference/chat/object (response),
https://platform.openai.com/docs/api-reference/chat/streaming (``chat.completion.chunk``
events ended by ``data: [DONE]``) and
https://platform.openai.com/docs/api-reference/models/list. Every OpenAI-compatible
provider (Groq, DeepSeek, OpenRouter, Mistral, llama.cpp...) uses this module with
its own row of :mod:`llmlib.providers`.

Knows nothing about HTTP, threads or retries.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from llmlib.errors import ConfigurationError
from llmlib.error_mapping import error_from_payload, is_error_payload
from llmlib.messages import ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.providers import ProviderSpec, endpoint
from llmlib.providers.base import HTTPRequest, Protocol, Scrub
from llmlib.providers.base import StreamDecoder as BaseStreamDecoder
from llmlib.types import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ModelInfo,
    ToolCallDelta,
    Usage,
)

__all__ = ["OpenAIProtocol", "StreamDecoder", "decode_chunk", "decode_response", "encode_message"]

# Finish reasons outside OpenAI's four words that compatible servers send.
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
    "eos": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}

_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3",
                  "audio/mp3": "mp3"}


def finish_reason(value: Optional[str]) -> Optional[str]:
    """A provider finish reason as one of OpenAI's four words (other values are kept as sent)."""
    if value is None:
        return None
    return _FINISH.get(value, value)


# ---------------------------------------------------------------- requests


def _encode_part(part: ContentPart) -> Dict[str, Any]:
    if part.type == "text":
        return {"type": "text", "text": part.text or ""}
    if part.type == "image":
        return {"type": "image_url", "image_url": {"url": part.url}}
    if part.type == "audio":
        if not part.url or not part.url.startswith("data:"):
            raise ConfigurationError(
                "the OpenAI chat protocol takes audio only inline; use Content.from_audio_file(path) "
                "or a data: URL instead of a remote URL"
            )
        mime = (part.mime or part.url[5:].split(";", 1)[0]).lower()
        fmt = _AUDIO_FORMATS.get(mime)
        if fmt is None:
            raise ConfigurationError(f"the OpenAI chat protocol takes wav or mp3 audio, not {mime!r}")
        return {"type": "input_audio", "input_audio": {"data": part.url.partition(",")[2], "format": fmt}}
    if part.type == "document":
        if not part.url or not part.url.startswith("data:"):
            raise ConfigurationError("the OpenAI chat protocol takes documents only inline; use "
                                     "Content.from_document_file(path) instead of a URL")
        return {"type": "file", "file": {"file_data": part.url, "filename": part.name or "document.pdf"}}
    raise ConfigurationError(f"unknown content part type {part.type!r}")


def encode_message(message: Message) -> Dict[str, Any]:
    """One :class:`Message` as an OpenAI ``messages[]`` item."""
    out: Dict[str, Any] = {"role": message.role.value}
    content = message.content
    if content is None:
        out["content"] = None if message.role is Role.ASSISTANT else ""
    elif content.is_text_only():
        out["content"] = content.as_text()
    else:
        if message.role not in (Role.USER, Role.SYSTEM, Role.DEVELOPER):
            raise ConfigurationError(f"{message.role.value} messages may hold only text, not images or audio")
        out["content"] = [_encode_part(p) for p in content.parts]
    if message.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": c.type, "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    elif message.role is Role.TOOL:
        raise ConfigurationError("a tool message needs tool_call_id: use Message.tool(tool_call_id, content)")
    if message.name is not None:
        out["name"] = message.name
    return out


def _encode_tool(tool: Tool) -> Dict[str, Any]:
    function: Dict[str, Any] = {"name": tool.name, "parameters": dict(tool.parameters)}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


_PASSTHROUGH = ("temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty",
                "parallel_tool_calls", "reasoning_effort", "user")


def encode_request(request: ChatCompletionRequest, spec: ProviderSpec, *, stream: bool) -> Dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` for ``request``."""
    if not request.model:
        raise ConfigurationError("ChatCompletionRequest.model is empty; name the model to use")
    if not request.messages:
        raise ConfigurationError("ChatCompletionRequest.messages is empty; add at least one Message")
    body: Dict[str, Any] = {
        "model": request.model,
        "messages": [encode_message(m) for m in request.messages],
    }
    if request.max_tokens is not None:
        body[spec.max_tokens_field] = request.max_tokens
    for name in _PASSTHROUGH:
        value = getattr(request, name)
        if value is not None:
            body[name] = list(value) if name == "stop" and not isinstance(value, str) else value
    if request.response_format is not None:
        body["response_format"] = dict(request.response_format)
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = (
            choice if choice in ("auto", "none", "required") else {"type": "function", "function": {"name": choice}}
        )
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.extra_body:
        body.update(request.extra_body)
    return body


# ---------------------------------------------------------------- responses


def decode_usage(obj: Dict[str, Any]) -> Usage:
    """An OpenAI ``usage`` object (with its ``*_details``) as :class:`Usage`."""
    prompt = obj.get("prompt_tokens") or 0
    completion = obj.get("completion_tokens") or 0
    details = obj.get("completion_tokens_details") or {}
    prompt_details = obj.get("prompt_tokens_details") or {}
    return Usage(
        prompt,
        completion,
        obj.get("total_tokens") or prompt + completion,
        details.get("reasoning_tokens"),
        prompt_details.get("cached_tokens"),
    )


def _decode_tool_call(obj: Dict[str, Any]) -> ToolCall:
    fn = obj.get("function") or {}
    return ToolCall(obj.get("id") or "", FunctionCall(fn.get("name") or "", fn.get("arguments") or ""),
                    obj.get("type") or "function")


def decode_response(obj: Dict[str, Any]) -> ChatCompletionResponse:
    """A ``chat.completion`` object as :class:`ChatCompletionResponse`."""
    choices = []
    for position, c in enumerate(obj.get("choices") or ()):
        m = c.get("message") or {}
        calls = m.get("tool_calls")
        content, reasoning = m.get("content"), m.get("reasoning_content") or m.get("reasoning")
        if content is not None and not isinstance(content, str):
            content, reasoning = content_parts(content, reasoning)
        choices.append(Choice(
            c.get("index", position),
            Message(
                m.get("role") or "assistant",
                content,
                tuple(_decode_tool_call(t) for t in calls) if calls else None,
                reasoning_content=reasoning,
                refusal=m.get("refusal"),
            ),
            finish_reason(c.get("finish_reason")),
            c.get("logprobs"),
        ))
    usage = obj.get("usage")
    return ChatCompletionResponse(
        obj.get("id"), obj.get("model"), choices, decode_usage(usage) if usage else None,
        obj.get("created"), obj.get("object") or "chat.completion", obj.get("system_fingerprint"),
    )


def _decode_call_deltas(calls: List[Dict[str, Any]]) -> List[ToolCallDelta]:
    out = []
    for position, t in enumerate(calls):
        fn = t.get("function") or _EMPTY
        # Mistral sends whole calls without "index": their position is their index.
        out.append(ToolCallDelta(t.get("index", position), t.get("id"), t.get("type"),
                                 FunctionCallDelta(fn.get("name"), fn.get("arguments"))))
    return out


_EMPTY: Dict[str, Any] = {}


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        inner = part.get("text", part.get("thinking"))
        if isinstance(inner, list):  # Magistral: {"type": "thinking", "thinking": [{"type": "text", ...}]}
            return "".join(_part_text(p) for p in inner)
        if isinstance(inner, str):
            return inner
        if inner is None:
            return ""
    raise ValueError(f"unexpected content part {part!r:.80}")


def content_parts(content: Any, reasoning: Optional[str] = None) -> Tuple[Optional[str], Optional[str]]:
    """``(content, reasoning)`` from a ``content`` that is a list of typed parts
    (Mistral's Magistral models send ``[{"type": "thinking", "thinking": [...]},
    {"type": "text", "text": "..."}]``): text parts are content, thinking parts
    reasoning. Raises ValueError for any other shape (an object, a number...)."""
    if not isinstance(content, list):
        raise ValueError(f"content must be a string or a list of parts, not {type(content).__name__}")
    text, thinking = [], [reasoning] if isinstance(reasoning, str) else []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else "text"
        (thinking if kind in ("thinking", "reasoning") else text).append(_part_text(part))
    return ("".join(text) if text else None), ("".join(thinking) if thinking else None)


def decode_chunk(obj: Dict[str, Any]) -> ChatCompletionChunk:
    """A ``chat.completion.chunk`` object as :class:`ChatCompletionChunk`.

    The hot path of streaming (once per token): plain dict lookups, no helpers
    but for the rare tool-call and usage parts.
    """
    get = obj.get
    choices = []
    for c in get("choices") or ():
        d = c.get("delta") or _EMPTY
        calls = d.get("tool_calls")
        reason = c.get("finish_reason")
        content = d.get("content")
        reasoning = d.get("reasoning_content") or d.get("reasoning")
        if content.__class__ is not str and content is not None:
            content, reasoning = content_parts(content, reasoning)
        elif reasoning.__class__ is not str and reasoning is not None:
            raise ValueError(f"reasoning must be a string, not {type(reasoning).__name__}")
        choices.append(ChunkChoice(
            c.get("index", 0),
            Delta(d.get("role"), content, reasoning,
                  _decode_call_deltas(calls) if calls else None, d.get("refusal")),
            None if reason is None else _FINISH.get(reason, reason),
            c.get("logprobs"),
        ))
    usage = get("usage")
    return ChatCompletionChunk(
        get("id"), get("model"), choices, decode_usage(usage) if usage else None,
        get("created"), get("object") or "chat.completion.chunk", get("system_fingerprint"),
    )


class StreamDecoder(BaseStreamDecoder):
    """Turns the SSE events of one stream into chunks.

    ``decode(event)`` returns a chunk, or None for events that carry none
    (``[DONE]``); it raises the typed error of an error event, and ValueError for
    a payload that is not a JSON object. ``ended`` becomes True at ``[DONE]`` (read
    no further); ``complete`` also once every choice has sent its ``finish_reason``
    (a server that closes without ``[DONE]`` has still answered in full).
    """

    __slots__ = ("provider", "ended", "_finished", "_choices", "_scrub")

    def __init__(self, provider: str, choices: int = 1, scrub=lambda s: s) -> None:
        self.provider = provider
        self.ended = False
        self._finished: set = set()
        self._choices = max(choices, 1)
        self._scrub = scrub

    @property
    def complete(self) -> bool:
        return self.ended or len(self._finished) >= self._choices

    def decode(self, event) -> Optional[ChatCompletionChunk]:
        data = event.data
        if data == "[DONE]":
            self.ended = True
            return None
        obj = json.loads(data)
        if not isinstance(obj, dict):
            raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
        if is_error_payload(obj) or event.event == "error":
            raise error_from_payload(obj, provider=self.provider, scrub=self._scrub)
        chunk = decode_chunk(obj)
        for c in chunk.choices:
            if c.finish_reason is not None:
                self._finished.add(c.index)
        return chunk


def decode_models(obj: Any, provider: str) -> List[ModelInfo]:
    """A ``GET /models`` list (``{"data": [...]}``) as ModelInfo values."""
    items = obj.get("data") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        raise ValueError("expected a models list with a 'data' array")
    return [decode_model(m, provider) for m in items if isinstance(m, dict) and m.get("id")]


def decode_model(obj: Dict[str, Any], provider: str) -> ModelInfo:
    """One OpenAI ``model`` object as ModelInfo (capabilities unknown: None)."""
    context = obj.get("context_length") or obj.get("context_window") or obj.get("max_model_len")
    return ModelInfo(obj["id"], provider, obj.get("owned_by"), obj.get("created"),
                     context if isinstance(context, int) else None, raw=obj)


class OpenAIProtocol(Protocol):
    """The OpenAI chat-completions protocol, for OpenAI and every compatible
    provider (its ``spec`` row gives the base URL and the ``max_tokens`` field)."""

    framing = "sse"

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {base_url}/chat/completions`` with the encoded request."""
        return HTTPRequest("POST", endpoint(base_url, "/chat/completions"),
                           encode_request(request, self.spec, stream=stream),
                           {"Accept": "text/event-stream"} if stream else {})

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        return StreamDecoder(self.spec.name, request.n or 1, scrub)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        return decode_response(obj)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET {base_url}/models`` (one page: OpenAI does not paginate it)."""
        return HTTPRequest("GET", endpoint(base_url, "/models"))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        return decode_models(obj, self.spec.name), None


PROTOCOL = OpenAIProtocol
