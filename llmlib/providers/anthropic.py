"""The Anthropic Messages protocol, the whole wire format in one place.

Follows Anthropic's API reference and guides:

- https://docs.anthropic.com/en/api/messages (request body, the ``message`` object,
  ``stop_reason``, ``usage``), with ``anthropic-version: 2023-06-01``
  (https://docs.anthropic.com/en/api/versioning) and the key in ``x-api-key``
  (both sent by the Client from this provider's row in :data:`llmlib.providers.SPECS`);
- https://docs.anthropic.com/en/docs/build-with-claude/streaming (the SSE events
  ``message_start``, ``content_block_start``/``_delta``/``_stop``,
  ``message_delta``, ``message_stop``, ``ping``, ``error``; ``message_delta``
  usage is cumulative);
- https://docs.anthropic.com/en/docs/build-with-claude/tool-use (``tools``,
  ``tool_choice``, ``disable_parallel_tool_use``, ``tool_use`` / ``tool_result``
  blocks);
- https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking
  (``thinking: {type: enabled, budget_tokens}``, ``budget_tokens`` < ``max_tokens``,
  thinking blocks sent back unchanged with their ``signature`` when a thinking
  turn uses tools; ``redacted_thinking``);
- https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching
  (``cache_control`` on blocks and on ``system`` text blocks; usage
  ``cache_creation_input_tokens`` / ``cache_read_input_tokens``);
- https://docs.anthropic.com/en/docs/build-with-claude/vision and
  https://docs.anthropic.com/en/docs/build-with-claude/pdf-support (``image`` and
  ``document`` blocks with a ``base64`` or ``url`` source);
- https://docs.anthropic.com/en/docs/build-with-claude/structured-outputs
  (``output_config.format`` with a JSON schema);
- https://docs.anthropic.com/en/api/models-list (``GET /v1/models``, paged by
  ``after_id`` with ``has_more`` / ``last_id``);
- https://docs.anthropic.com/en/api/errors (the ``{"type": "error", "error":
  {"type", "message"}}`` shape, also sent as an ``event: error`` mid-stream).

How llmlib's OpenAI-shaped values map onto it:

- ``system`` and ``developer`` messages, wherever they are, become the top-level
  ``system`` (a string, joined with blank lines; a list of text blocks when any of
  them carries ``cache_control``);
- consecutive messages of one role become one message of several blocks; a
  ``tool`` message becomes a ``tool_result`` block in a user turn (a turn's
  ``tool_result`` blocks go first, as Anthropic requires); an assistant's
  ``tool_calls`` become ``tool_use`` blocks; a message of one plain text block is
  sent as a string;
- an assistant message whose ``provider_fields["anthropic"]["content"]`` holds
  the blocks Anthropic sent (what :func:`decode_response` and the stream decoder
  put there) is sent back with exactly those blocks (thinking with signature,
  redacted thinking, server tool blocks), not rebuilt from its text and calls;
  ``reasoning_content`` alone (unsigned) is never sent;
- ``max_tokens`` is required by Anthropic: :data:`DEFAULT_MAX_TOKENS` when the
  request has none (plus the thinking budget when thinking is on);
- ``reasoning_budget`` or ``reasoning_effort`` (:data:`EFFORT_BUDGETS`) turn on
  extended thinking;
- ``response_format`` ``json_schema`` becomes ``output_config.format``
  (structured outputs); ``json_object`` has no Anthropic equivalent and raises;
- ``seed``, ``presence_penalty``, ``frequency_penalty``, audio input and ``n`` > 1
  do not exist in this protocol and raise ConfigurationError before sending.

Knows nothing about HTTP, threads or retries.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Tuple

from llmlib.errors import ConfigurationError
from llmlib.error_mapping import error_from_payload, is_error_payload
from llmlib.messages import ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.providers import ANTHROPIC_VERSION, ProviderSpec, endpoint  # the version header: sent by the Client from the row
from llmlib.providers.base import HTTPRequest, Protocol, Scrub, json_object
from llmlib.providers.base import fail as _fail
from llmlib.providers.base import where as _where
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

__all__ = [
    "AnthropicProtocol",
    "StreamDecoder",
    "encode_request",
    "decode_response",
    "decode_usage",
    "decode_models",
    "finish_reason",
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "EFFORT_BUDGETS",
    "PROTOCOL",
]


#: ``max_tokens`` (tokens of output) sent when the request sets none: Anthropic
#: requires the field. With extended thinking on, the default is this plus the
#: thinking budget, so the answer keeps this much room after the thinking.
DEFAULT_MAX_TOKENS = 4096

#: Thinking budgets (``budget_tokens``, in tokens) for ``reasoning_effort``.
#: 1024 is Anthropic's minimum budget.
EFFORT_BUDGETS: Mapping[str, int] = {"low": 1024, "medium": 4096, "high": 16384}

#: Models asked for per page of ``GET /models`` (Anthropic's maximum).
MODELS_PAGE_SIZE = 1000

_PROVIDER_KEY = "anthropic"  # the key of Message.provider_fields this module reads and writes

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_UNSUPPORTED = ("seed", "presence_penalty", "frequency_penalty")


def finish_reason(stop_reason: Optional[str]) -> Optional[str]:
    """An Anthropic ``stop_reason`` as one of OpenAI's four words: ``end_turn``,
    ``stop_sequence`` and ``pause_turn`` -> ``"stop"``; ``max_tokens`` (and
    ``model_context_window_exceeded``) -> ``"length"``; ``tool_use`` ->
    ``"tool_calls"``; ``refusal`` -> ``"content_filter"``. Other values are kept
    as sent; None stays None. The raw value is kept in
    ``provider_fields["anthropic"]["stop_reason"]``."""
    if stop_reason is None:
        return None
    return _STOP_REASONS.get(stop_reason, stop_reason)


# ---------------------------------------------------------------- requests


def _media_source(part: ContentPart, kind: str, provider: str, where: str) -> Dict[str, Any]:
    """The ``source`` of an image or document block: ``base64`` for a ``data:`` URL,
    ``url`` for an ``http(s):`` URL."""
    url = part.url or ""
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        mime = (part.mime or header.split(";", 1)[0] or "").lower()
        if not mime:
            raise _fail(provider, f"{where}: the {kind} has no media type; pass mime=")
        if ";base64" not in header:
            raise _fail(provider, f"{where}: {kind} data: URLs must be base64-encoded")
        if kind == "document" and mime == "text/plain":
            # Plain-text documents go as text, not base64.
            raw = part.data() or b""
            return {"type": "text", "media_type": "text/plain", "data": raw.decode("utf-8", "replace")}
        return {"type": "base64", "media_type": mime, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise _fail(provider, f"{where}: a {kind} needs an https: or data: URL")


def _encode_part(part: ContentPart, provider: str, where: str) -> Dict[str, Any]:
    """One :class:`ContentPart` as an Anthropic content block (with its ``cache_control``)."""
    if part.type == "text":
        block: Dict[str, Any] = {"type": "text", "text": part.text or ""}
    elif part.type == "image":
        block = {"type": "image", "source": _media_source(part, "image", provider, where)}
    elif part.type == "document":
        block = {"type": "document", "source": _media_source(part, "document", provider, where)}
        if part.name:
            block["title"] = part.name
    elif part.type == "audio":  # checked before encoding starts; kept for direct callers
        raise _audio_error(provider, where, part)
    else:
        raise _fail(provider, f"{where}: unknown content part type {part.type!r}")
    if part.cache_control is not None:
        block["cache_control"] = dict(part.cache_control)
    return block


def _audio_error(provider: str, where: str, part: ContentPart) -> ConfigurationError:
    return ConfigurationError(
        f"{provider} does not accept audio input; {where} is an audio part ({part.mime or 'audio'}). "
        "Transcribe it to text first, or use a provider that takes audio (openai, gemini)"
    )


def _tool_input(call: ToolCall, provider: str, where: str) -> Dict[str, Any]:
    try:
        value = json.loads(call.function.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _fail(provider, f"{where}: the arguments of tool call {call.id!r} ({call.function.name}) "
                              "are not a JSON object; Anthropic's tool_use input must be one")
    return value


def _blocks_of(message: Message, position: int, provider: str) -> List[Dict[str, Any]]:
    """The content blocks of one user, assistant or tool message."""
    if message.role is Role.TOOL:
        if message.tool_call_id is None:
            raise _fail(provider, f"{_where(position, message)}: a tool message needs tool_call_id: "
                                  "use Message.tool(tool_call_id, content)")
        result: Dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        parts = message.content.parts if message.content is not None else ()
        if all(p.type == "text" and p.cache_control is None for p in parts):
            result["content"] = "".join(p.text or "" for p in parts)
        else:
            result["content"] = [_encode_part(p, provider, _where(position, message, i))
                                 for i, p in enumerate(parts)]
        blocks = [result]
    else:
        fields = (message.provider_fields or {}).get(_PROVIDER_KEY) if message.role is Role.ASSISTANT else None
        original = fields.get("content") if isinstance(fields, Mapping) else None
        if isinstance(original, list) and original:
            blocks = [dict(b) for b in original]  # sent back exactly as Anthropic sent them
            for b in blocks:
                if b.get("type") == "tool_use" and not isinstance(b.get("input"), dict):
                    raise _fail(provider, f"{_where(position, message)}: the input of tool call "
                                          f"{b.get('id')!r} ({b.get('name')}) is not a JSON object "
                                          "(its arguments were cut short)")
        else:
            parts = message.content.parts if message.content is not None else ()
            blocks = [_encode_part(p, provider, _where(position, message, i)) for i, p in enumerate(parts)]
            calls = message.tool_calls or ()
            if calls:
                # Anthropic refuses empty text blocks; a call's turn often has no text.
                blocks = [b for b in blocks if not (b["type"] == "text" and not b["text"])]
            for call in calls:
                blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                               "input": _tool_input(call, provider, _where(position, message))})
            if not blocks:
                blocks = [{"type": "text", "text": ""}]
    if message.cache_control is not None:
        blocks[-1] = dict(blocks[-1], cache_control=dict(message.cache_control))
    return blocks


def _system(messages: List[Tuple[int, Message]], provider: str) -> Any:
    """The top-level ``system`` value: a string, or text blocks when caching is asked."""
    blocks: List[Dict[str, Any]] = []
    for position, message in messages:
        parts = message.content.parts if message.content is not None else ()
        mine = []
        for i, p in enumerate(parts):
            if p.type != "text":
                raise _fail(provider, f"{_where(position, message, i)}: system messages may hold only text")
            mine.append(_encode_part(p, provider, _where(position, message, i)))
        if not mine:
            mine = [{"type": "text", "text": ""}]
        if message.cache_control is not None:
            mine[-1]["cache_control"] = dict(message.cache_control)
        blocks.extend(mine)
    if any("cache_control" in b for b in blocks):
        return blocks
    return "\n\n".join(message.text for _, message in messages)


def _encode_messages(request: ChatCompletionRequest, provider: str) -> Tuple[Any, List[Dict[str, Any]]]:
    """``(system or None, messages)`` for the request body."""
    system: List[Tuple[int, Message]] = []
    turns: List[Dict[str, Any]] = []
    for position, message in enumerate(request.messages):
        if message.role in (Role.SYSTEM, Role.DEVELOPER):
            system.append((position, message))
            continue
        role = "assistant" if message.role is Role.ASSISTANT else "user"
        blocks = _blocks_of(message, position, provider)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)  # consecutive turns of one role become one
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if turn["role"] == "user":
            # Anthropic wants a turn's tool_result blocks before any other block.
            content.sort(key=lambda b: b.get("type") != "tool_result")
        if len(content) == 1 and content[0].keys() == {"type", "text"} and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return (_system(system, provider) if system else None), turns


def _encode_tool(tool: Tool) -> Dict[str, Any]:
    out: Dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = dict(tool.parameters)
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice(request: ChatCompletionRequest) -> Optional[Dict[str, Any]]:
    choice = request.tool_choice
    if choice is None:
        out = {"type": "auto"} if request.parallel_tool_calls is False and request.tools else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    else:
        out = {"type": "tool", "name": choice}
    if out is not None and request.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


def _thinking_budget(request: ChatCompletionRequest, provider: str) -> Optional[int]:
    if request.reasoning_budget is not None:
        return request.reasoning_budget
    effort = request.reasoning_effort
    if effort is None:
        return None
    budget = EFFORT_BUDGETS.get(str(effort).lower())
    if budget is None:
        raise _fail(provider, f"reasoning_effort {effort!r} is not one of {', '.join(EFFORT_BUDGETS)}; "
                              "or pass reasoning_budget=<tokens>")
    return budget


def _output_config(response_format: Mapping[str, Any], provider: str) -> Optional[Dict[str, Any]]:
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _fail(provider, "response_format json_schema needs json_schema.schema (a JSON Schema object)")
        return {"format": {"type": "json_schema", "schema": dict(schema)}}
    raise _fail(provider, f"response_format type {kind!r} has no Anthropic equivalent; use "
                          "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': {...}}} "
                          "(Anthropic structured outputs) or describe the JSON in the prompt")


def encode_request(request: ChatCompletionRequest, spec: ProviderSpec, *, stream: bool) -> Dict[str, Any]:
    """The JSON body of ``POST /v1/messages`` for ``request`` (a dict).

    Raises ConfigurationError, naming the provider and the field or message, for
    input Anthropic cannot take (audio, ``n`` > 1, ``seed``, penalties,
    ``response_format`` ``json_object``, tool-call arguments that are not a JSON
    object, ``max_tokens`` not above the thinking budget); nothing is sent then.
    """
    provider = spec.name
    if not request.model:
        raise _fail(provider, "ChatCompletionRequest.model is empty; name the model to use")
    if not request.messages:
        raise _fail(provider, "ChatCompletionRequest.messages is empty; add at least one Message")
    for position, message in enumerate(request.messages):  # audio first: refuse before any other work
        for i, part in enumerate(message.content.parts if message.content is not None else ()):
            if part.type == "audio":
                raise _audio_error(provider, _where(position, message, i), part)
    if request.n is not None and request.n > 1:
        raise _fail(provider, f"n={request.n}: Anthropic returns one choice per request; send "
                              "several requests (client.chat_completion_batch) instead")
    for name in _UNSUPPORTED:
        if getattr(request, name) is not None:
            raise _fail(provider, f"{name} is not supported by the Anthropic Messages API; leave it unset")

    system, messages = _encode_messages(request, provider)
    budget = _thinking_budget(request, provider)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS + (budget or 0)
    elif budget is not None and max_tokens <= budget:
        raise _fail(provider, f"max_tokens ({max_tokens}) must be greater than the thinking budget "
                              f"({budget} tokens); raise max_tokens or lower the budget")

    body: Dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
    if system is not None:
        body["system"] = system
    body["messages"] = messages
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
    choice = _tool_choice(request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.response_format is not None:
        config = _output_config(request.response_format, provider)
        if config is not None:
            body["output_config"] = config
    if stream:
        body["stream"] = True
    if request.extra_body:
        body.update(request.extra_body)
    return body


# ---------------------------------------------------------------- responses


def decode_usage(usage: Mapping[str, Any]) -> Usage:
    """An Anthropic ``usage`` object as :class:`Usage` (token counts).

    ``prompt_tokens`` = ``input_tokens`` + ``cache_creation_input_tokens`` +
    ``cache_read_input_tokens`` (Anthropic counts them apart; OpenAI's prompt
    count includes cached tokens); ``completion_tokens`` = ``output_tokens``;
    ``cached_tokens`` = ``cache_read_input_tokens`` (None when absent);
    ``reasoning_tokens`` None (Anthropic counts thinking in ``output_tokens``
    without a separate figure).
    """
    cached = usage.get("cache_read_input_tokens")
    prompt = (usage.get("input_tokens") or 0) + (usage.get("cache_creation_input_tokens") or 0) + (cached or 0)
    completion = usage.get("output_tokens") or 0
    return Usage(prompt, completion, prompt + completion, None, cached)


def _fields(content: List[Dict[str, Any]], stop_reason: Optional[str], stop_sequence: Any,
            stop_details: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {"content": content, "stop_reason": stop_reason}
    if stop_sequence is not None:
        out["stop_sequence"] = stop_sequence
    if stop_details is not None:
        out["stop_details"] = stop_details
    return {_PROVIDER_KEY: out}


def decode_response(obj: Mapping[str, Any]) -> ChatCompletionResponse:
    """A ``message`` object (a non-streamed answer) as :class:`ChatCompletionResponse`.

    Text blocks are joined into the content; thinking blocks into
    ``reasoning_content``; ``tool_use`` blocks become tool calls whose
    ``arguments`` are ``json.dumps(input)``; server tool blocks stay only in
    ``provider_fields["anthropic"]["content"]``, which holds every block as sent.
    """
    content = list(obj.get("content") or ())
    text: List[str] = []
    thinking: List[str] = []
    calls: List[ToolCall] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
        elif kind == "tool_use":
            calls.append(ToolCall(block.get("id") or "",
                                  FunctionCall(block.get("name") or "", json.dumps(block.get("input") or {}))))
    stop = obj.get("stop_reason")
    message = Message(
        obj.get("role") or "assistant",
        "".join(text) if text or not calls else None,
        tuple(calls) or None,
        reasoning_content="".join(thinking) if thinking else None,
        provider_fields=_fields(content, stop, obj.get("stop_sequence"), obj.get("stop_details")),
    )
    usage = obj.get("usage")
    return ChatCompletionResponse(obj.get("id"), obj.get("model"), [Choice(0, message, finish_reason(stop))],
                                  decode_usage(usage) if isinstance(usage, Mapping) else None)


class _Block:
    """What arrived of one content block: the block as it started (``raw``) and
    the pieces of its text, thinking, signature or JSON input."""

    __slots__ = ("raw", "kind", "pieces", "signature", "tool", "has_args")

    def __init__(self, raw: Dict[str, Any], tool: Optional[int] = None) -> None:
        self.raw = raw
        self.kind = raw.get("type")
        self.pieces: List[str] = []  # text, thinking text, or input JSON
        self.signature: List[str] = []
        self.tool = tool  # position among the client tool calls, for a tool_use block
        self.has_args = False  # a non-empty input_json_delta was passed on as arguments

    def assembled(self) -> Dict[str, Any]:
        """The block as Anthropic would have sent it whole."""
        out = dict(self.raw)
        kind = self.kind
        if kind == "text":
            out["text"] = (out.get("text") or "") + "".join(self.pieces)
            if not out.get("citations"):
                out.pop("citations", None)
        elif kind == "thinking":
            out["thinking"] = (out.get("thinking") or "") + "".join(self.pieces)
            out["signature"] = (out.get("signature") or "") + "".join(self.signature)
        elif self.pieces or kind in ("tool_use", "server_tool_use"):
            text = "".join(self.pieces)
            if text:
                try:
                    out["input"] = json.loads(text)
                except ValueError:
                    out["input"] = text  # cut short (max_tokens): kept as it arrived
            else:
                out.setdefault("input", {})
        return out


_COMPACT = 256  # pieces of a block kept before they are joined (memory ~ a byte per character)


def _add(pieces: List[str], text: str) -> None:
    pieces.append(text)
    if len(pieces) >= _COMPACT:
        pieces[:] = ["".join(pieces)]


_DELTA_KIND = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "thinking"}


class StreamDecoder(BaseStreamDecoder):
    """Turns the SSE events of one Anthropic stream into chunks.

    - ``message_start``: a chunk with ``id``, ``model`` and role ``assistant``
      (its usage is kept for the end);
    - ``text_delta`` -> ``delta.content``; ``thinking_delta`` ->
      ``delta.reasoning_content``; a ``tool_use`` block's start -> a
      :class:`ToolCallDelta` (``index`` = the call's position among the answer's
      tool calls, not the block index; ``id``, ``type`` ``"function"``, name,
      arguments ``""``) and its ``input_json_delta`` pieces -> argument pieces
      (a call whose input arrived empty gets ``"{}"`` at its block's end);
    - signatures, redacted thinking, citations, server tool blocks
      (``server_tool_use``, ``web_search_tool_result``...) and unknown blocks are
      kept, never shown as text or client tool calls;
    - ``message_delta``: stop reason and cumulative usage, kept;
    - ``message_stop`` (the end marker, ``ended``): the last chunk, with the
      finish reason, usage, and ``provider_fields={"anthropic": {"content":
      [every block assembled], "stop_reason": ...}}`` so the collected message
      can be sent back verbatim;
    - ``ping`` and unknown events: None; ``event: error`` (or a ``"type":
      "error"`` payload): the typed error is raised.

    ``complete`` is True only after ``message_stop``. Raises ValueError for a
    payload that is not a JSON object.
    """

    def __init__(self, provider: str = "anthropic", scrub: Scrub = lambda s: s) -> None:
        self.provider = provider
        self.ended = False
        self._scrub = scrub
        self._id: Optional[str] = None
        self._model: Optional[str] = None
        self._usage: Dict[str, Any] = {}
        self._blocks: Dict[int, _Block] = {}
        self._tools = 0
        self._stop: Optional[str] = None
        self._stop_sequence: Any = None
        self._stop_details: Any = None

    def _chunk(self, delta: Delta, finish: Optional[str] = None,
               usage: Optional[Usage] = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(self._id, self._model, [ChunkChoice(0, delta, finish)], usage)

    def _arguments(self, tool: int, text: str) -> ChatCompletionChunk:
        return self._chunk(Delta(tool_calls=[ToolCallDelta(tool, function=FunctionCallDelta(None, text))]))

    def _block(self, index: int, delta_kind: Optional[str]) -> _Block:
        block = self._blocks.get(index)
        if block is None:  # a delta without its block's start (an excerpt): infer the kind
            block = self._blocks[index] = _Block({"type": _DELTA_KIND.get(delta_kind or "", "unknown")})
        return block

    def decode(self, event: Any) -> Optional[ChatCompletionChunk]:
        """One SSE event (``event``, ``data``) -> a chunk, or None (see the class
        docstring). Raises the typed error of an error event; ValueError (or
        KeyError...) for a payload of another shape, which the caller reports
        as DecodeError."""
        obj = json_object(event.data)
        kind = obj.get("type") or event.event
        if kind == "content_block_delta":  # the hot path: once per token
            delta = obj["delta"]
            dkind = delta.get("type")
            block = self._block(obj.get("index", 0), dkind)
            if dkind == "text_delta":
                text = delta.get("text")
                if not text:
                    return None
                _add(block.pieces, text)
                return self._chunk(Delta(None, text))
            if dkind == "thinking_delta":
                text = delta.get("thinking")
                if not text:
                    return None
                _add(block.pieces, text)
                return self._chunk(Delta(None, None, text))
            if dkind == "input_json_delta":
                text = delta.get("partial_json")
                if not text:
                    return None
                _add(block.pieces, text)
                if block.tool is None:
                    return None  # a server tool's input: kept, not a client call
                block.has_args = True
                return self._arguments(block.tool, text)
            if dkind == "signature_delta":
                _add(block.signature, delta.get("signature") or "")
            elif dkind == "citations_delta":
                citation = delta.get("citation")
                if citation is not None:
                    citations = block.raw.get("citations")
                    block.raw["citations"] = (list(citations) if isinstance(citations, list) else []) + [citation]
            else:
                _merge(block.raw, delta)
            return None
        if is_error_payload(obj) or event.event == "error" or kind == "error":
            raise error_from_payload(obj, provider=self.provider, scrub=self._scrub)
        if kind == "message_start":
            message = obj.get("message") or {}
            self._id = message.get("id")
            self._model = message.get("model")
            usage = message.get("usage")
            if isinstance(usage, dict):
                self._usage.update(usage)
            return self._chunk(Delta(message.get("role") or "assistant"))
        if kind == "content_block_start":
            raw = dict(obj.get("content_block") or {})
            index = obj.get("index", len(self._blocks))
            if raw.get("type") == "tool_use":
                block = self._blocks[index] = _Block(raw, self._tools)
                self._tools += 1
                call = ToolCallDelta(block.tool, raw.get("id"), "function", FunctionCallDelta(raw.get("name"), ""))
                return self._chunk(Delta(tool_calls=[call]))
            self._blocks[index] = _Block(raw)
            if raw.get("type") == "text" and raw.get("text"):
                return self._chunk(Delta(None, raw["text"]))
            if raw.get("type") == "thinking" and raw.get("thinking"):
                return self._chunk(Delta(None, None, raw["thinking"]))
            return None
        if kind == "content_block_stop":
            block = self._blocks.get(obj.get("index", -1))
            if block is not None and block.tool is not None and not block.has_args:
                # No input pieces: the call's arguments are its start's input ({} as JSON).
                block.has_args = True
                return self._arguments(block.tool, json.dumps(block.raw.get("input") or {}))
            return None
        if kind == "message_delta":
            delta = obj.get("delta") or {}
            if "stop_reason" in delta:
                self._stop = delta["stop_reason"]
            self._stop_sequence = delta.get("stop_sequence", self._stop_sequence)
            self._stop_details = delta.get("stop_details", self._stop_details)
            usage = obj.get("usage")
            if isinstance(usage, dict):
                # Cumulative: the latest value of each field wins; fields it lacks keep message_start's.
                self._usage.update({k: v for k, v in usage.items() if v is not None})
            return None
        if kind == "message_stop":
            self.ended = True
            content = [self._blocks[i].assembled() for i in sorted(self._blocks)]
            fields = _fields(content, self._stop, self._stop_sequence, self._stop_details)
            return self._chunk(Delta(provider_fields=fields), finish_reason(self._stop),
                               decode_usage(self._usage) if self._usage else None)
        return None  # ping, and event types added after this was written


def _merge(raw: Dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Fold a delta of a block type this module does not know into the block:
    strings are appended to strings, other values replace."""
    for key, value in delta.items():
        if key == "type":
            continue
        old = raw.get(key)
        raw[key] = old + value if isinstance(old, str) and isinstance(value, str) else value


# ---------------------------------------------------------------- models


def _epoch(text: Any) -> Optional[int]:
    """An RFC 3339 time (``2025-02-19T00:00:00Z``) as Unix seconds, or None."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return int(value.timestamp())


def _supported(capabilities: Any, name: str) -> Optional[bool]:
    entry = capabilities.get(name) if isinstance(capabilities, Mapping) else None
    value = entry.get("supported") if isinstance(entry, Mapping) else None
    return value if isinstance(value, bool) else None


def decode_model(obj: Mapping[str, Any], provider: str) -> ModelInfo:
    """One Anthropic model object as ModelInfo: ``id``; ``created`` from
    ``created_at`` (RFC 3339, as Unix seconds); ``context_length`` from
    ``max_input_tokens`` and ``supports_vision`` from ``capabilities`` when the
    API sends them (else None); the whole object (``display_name``...) in ``raw``."""
    context = obj.get("max_input_tokens")
    capabilities = obj.get("capabilities")
    return ModelInfo(obj["id"], provider, None, _epoch(obj.get("created_at")),
                     context if isinstance(context, int) and not isinstance(context, bool) else None,
                     supports_vision=_supported(capabilities, "image_input"), raw=dict(obj))


def decode_models(obj: Any, provider: str) -> Tuple[List[ModelInfo], Optional[str]]:
    """One page of ``GET /v1/models``: ``(models, next_page_token)``; the token is
    ``last_id`` while ``has_more`` is true, else None. Raises ValueError for a body
    without a ``data`` list."""
    items = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise ValueError("expected a models list with a 'data' array")
    models = [decode_model(m, provider) for m in items if isinstance(m, dict) and m.get("id")]
    last = obj.get("last_id")
    return models, (last if obj.get("has_more") is True and isinstance(last, str) and last else None)


class AnthropicProtocol(Protocol):
    """The Anthropic Messages protocol (see the module docstring)."""

    framing = "sse"

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {base_url}/messages`` with the encoded request (see :func:`encode_request`
        for the ConfigurationError it raises before anything is sent)."""
        return HTTPRequest("POST", endpoint(base_url, "/messages"),
                           encode_request(request, self.spec, stream=stream),
                           {"Accept": "text/event-stream"} if stream else {})

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        """A fresh :class:`StreamDecoder` for one streamed answer."""
        return StreamDecoder(self.spec.name, scrub)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        """A whole ``message`` object (see :func:`decode_response`)."""
        return decode_response(obj)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET {base_url}/models?limit=1000`` (and ``&after_id=<token>`` after the first page)."""
        query = {"limit": str(MODELS_PAGE_SIZE)}
        if page_token:
            query["after_id"] = page_token
        url = endpoint(base_url, "/models")
        return HTTPRequest("GET", url + ("&" if "?" in url else "?") + urllib.parse.urlencode(query))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        """One page of the listing and the next page's token (see :func:`decode_models`)."""
        return decode_models(obj, self.spec.name)


PROTOCOL = AnthropicProtocol
