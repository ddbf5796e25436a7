"""The Cohere v2 Chat protocol, the whole wire format in one place.

Follows Cohere's API reference and guides:

- https://docs.cohere.com/reference/chat and
  https://docs.cohere.com/reference/chat-stream (``POST /v2/chat``, the key as
  ``Authorization: Bearer``; the request body: ``messages`` with roles
  ``system``/``user``/``assistant``/``tool``, content as a string or content
  blocks ``text``/``image_url``, assistant ``tool_calls`` and ``tool_plan``,
  tool results by ``tool_call_id``; ``tools`` in the ``{"type": "function",
  "function": {...}}`` shape, ``strict_tools``, ``tool_choice`` ``REQUIRED`` /
  ``NONE`` only; ``max_tokens``, ``temperature``, ``p``, ``k``,
  ``stop_sequences``, ``seed``, ``frequency_penalty``, ``presence_penalty``,
  ``response_format``, ``thinking``, ``documents``, ``citation_options``,
  ``safety_mode``; the answer's ``message.content[]`` / ``tool_calls`` /
  ``tool_plan`` / ``citations``, ``finish_reason`` and ``usage``);
- https://docs.cohere.com/docs/streaming and
  https://docs.cohere.com/docs/tool-use-streaming (the SSE events
  ``message-start``, ``content-start`` / ``-delta`` / ``-end``,
  ``tool-plan-delta``, ``tool-call-start`` / ``-delta`` / ``-end``,
  ``citation-start`` / ``-end``, ``message-end``; each event's name is both
  the SSE ``event:`` field and the payload's ``type``);
- https://docs.cohere.com/docs/reasoning (``thinking: {"type": "enabled" |
  "disabled", "token_budget": N}``; ``thinking`` content blocks and deltas);
- https://docs.cohere.com/docs/structured-outputs (``response_format``
  ``{"type": "json_object", "json_schema": {...}}``);
- https://docs.cohere.com/docs/tool-use-overview (the tool loop: the assistant
  message is sent back with its ``tool_plan`` and ``tool_calls``, each result
  as a ``tool`` message);
- https://docs.cohere.com/reference/list-models (``GET /v1/models``, a v1 path
  on the same host, paged by ``page_token`` / ``next_page_token``);
- https://docs.cohere.com/reference/errors (error bodies ``{"id", "message"}``;
  the HTTP status says which error it is).

The ``ChatFinishReason`` enum (``COMPLETE``, ``STOP_SEQUENCE``, ``MAX_TOKENS``,
``TOOL_CALL``, ``ERROR``, ``TIMEOUT``) and the event schemas are those of
Cohere's OpenAPI description (``cohere-openapi.yaml`` in
github.com/cohere-ai/cohere-developer-experience).

How llmlib's OpenAI-shaped values map onto it:

- ``system`` and ``developer`` messages are ``system`` messages, in place;
  ``user`` content is a string when it is all text, else ``text`` and
  ``image_url`` blocks (``https:`` or ``data:`` URLs); a ``tool`` message is a
  ``tool`` message with its ``tool_call_id`` and content (a string, or ``text``
  blocks);
- an assistant message sends its text, its ``tool_calls`` (empty arguments as
  ``"{}"``) and, from ``provider_fields["cohere"]`` (what the decoders put
  there), its ``tool_plan`` and its ``thinking`` block; a hand-built assistant
  message with tool calls sends its ``reasoning_content`` as the ``tool_plan``;
- ``tool_choice`` ``"required"`` -> ``"REQUIRED"``, ``"none"`` -> ``"NONE"``,
  ``"auto"`` -> omitted (Cohere's default); naming one tool is not possible
  in Cohere and raises ConfigurationError; a tool with ``strict=True`` sets the
  request-wide ``strict_tools``;
- ``top_p`` -> ``p``, ``stop`` -> ``stop_sequences``;
- ``response_format`` ``json_object`` -> ``{"type": "json_object"}``,
  ``json_schema`` -> ``{"type": "json_object", "json_schema": <schema>}``;
- ``reasoning_budget`` N -> ``thinking: {"type": "enabled", "token_budget": N}``
  (0 -> ``{"type": "disabled"}``); ``reasoning_effort`` ``none`` -> disabled,
  ``low`` / ``medium`` / ``high`` -> the budgets of :data:`EFFORT_BUDGETS`;
- ``documents`` (RAG), ``citation_options``, ``safety_mode``, ``k``,
  ``logprobs``, ``priority``: pass them in ``extra_body``, merged last;
- audio input, document (file) parts, ``n`` > 1, ``user``,
  ``parallel_tool_calls=False`` and a named ``tool_choice`` have no Cohere
  equivalent and raise ConfigurationError before anything is sent.

Knows nothing about HTTP, threads or retries.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Dict, List, Mapping, Optional, Tuple

from llmlib.errors import ConfigurationError
from llmlib.error_mapping import error_from_payload, is_error_payload
from llmlib.messages import ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.providers import ProviderSpec, endpoint
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
    "CohereProtocol",
    "StreamDecoder",
    "encode_request",
    "encode_message",
    "decode_response",
    "decode_usage",
    "decode_models",
    "finish_reason",
    "models_url",
    "EFFORT_BUDGETS",
    "MODELS_PAGE_SIZE",
    "PROTOCOL",
]

#: Thinking budgets (``token_budget``, in tokens) for ``reasoning_effort``; the
#: same figures as the Anthropic protocol's, so one request means the same on both.
EFFORT_BUDGETS: Mapping[str, int] = {"low": 1024, "medium": 4096, "high": 16384}

#: Models asked for per page of ``GET /v1/models`` (Cohere's maximum).
MODELS_PAGE_SIZE = 1000

_PROVIDER_KEY = "cohere"  # the key of provider_fields this module reads and writes

_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "ERROR_LIMIT": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR_TOXIC": "content_filter",
}


def finish_reason(value: Optional[str]) -> Optional[str]:
    """A Cohere ``finish_reason`` as one of OpenAI's four words: ``COMPLETE`` and
    ``STOP_SEQUENCE`` -> ``"stop"``; ``MAX_TOKENS`` (and v1's ``ERROR_LIMIT``,
    the context limit) -> ``"length"``; ``TOOL_CALL`` -> ``"tool_calls"``;
    ``ERROR_TOXIC`` -> ``"content_filter"``. ``ERROR``, ``TIMEOUT`` and other
    values are kept as sent (the raw value is also kept in
    ``provider_fields["cohere"]["finish_reason"]``); None stays None."""
    if value is None:
        return None
    return _FINISH.get(value, value)


# ---------------------------------------------------------------- requests


def _parts(message: Message) -> Tuple[ContentPart, ...]:
    return message.content.parts if message.content is not None else ()


def _check_parts(request: ChatCompletionRequest, provider: str) -> None:
    """Refuse, before any other work, the parts Cohere cannot take: audio and
    document (file) parts anywhere, images outside user messages."""
    for position, message in enumerate(request.messages):
        for i, part in enumerate(_parts(message)):
            where = _where(position, message, i)
            if part.type == "audio":
                raise ConfigurationError(
                    f"{provider} does not accept audio input; {where} is an audio part "
                    f"({part.mime or 'audio'}). Transcribe it to text first, or use a provider "
                    "that takes audio (openai, gemini)")
            if part.type == "document":
                raise _fail(provider, f"{where} is a document ({part.mime or 'file'}); Cohere chat takes "
                                      "no files. Send its text, or pass it as a RAG document: "
                                      "extra_body={'documents': [{'id': ..., 'data': {'text': ...}}]}")
            if part.type == "image" and message.role is not Role.USER:
                raise _fail(provider, f"{where}: only user messages may hold images in Cohere chat")
            if part.type not in ("text", "image"):
                raise _fail(provider, f"{where}: unknown content part type {part.type!r}")
            if part.type == "image" and not (part.url or "").startswith(("https://", "http://", "data:")):
                raise _fail(provider, f"{where}: an image needs an https: or data: URL")


def _content(message: Message) -> Any:
    """A user message's content: a string when all text, else blocks."""
    parts = _parts(message)
    if all(p.type == "text" for p in parts):
        return message.text
    return [{"type": "text", "text": p.text or ""} if p.type == "text"
            else {"type": "image_url", "image_url": {"url": p.url}} for p in parts]


def _fields(message: Message) -> Mapping[str, Any]:
    fields = (message.provider_fields or {}).get(_PROVIDER_KEY)
    return fields if isinstance(fields, Mapping) else {}


def _encode_assistant(message: Message) -> Dict[str, Any]:
    out: Dict[str, Any] = {"role": "assistant"}
    fields = _fields(message)
    calls = message.tool_calls or ()
    thinking = fields.get("thinking")
    text = message.text
    if isinstance(thinking, str) and thinking:
        blocks: List[Dict[str, Any]] = [{"type": "thinking", "thinking": thinking}]
        if text:
            blocks.append({"type": "text", "text": text})
        out["content"] = blocks
    elif text or not calls:
        out["content"] = text
    if calls:
        plan = fields.get("tool_plan")
        if not isinstance(plan, str):
            plan = None if fields else message.reasoning_content
        if plan:
            out["tool_plan"] = plan
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments or "{}"}}
            for c in calls
        ]
    return out


def encode_message(message: Message, position: int, provider: str) -> Dict[str, Any]:
    """One :class:`Message` as a Cohere ``messages[]`` item (see the module docstring)."""
    role = message.role
    if role in (Role.SYSTEM, Role.DEVELOPER):
        return {"role": "system", "content": message.text}
    if role is Role.USER:
        return {"role": "user", "content": _content(message)}
    if role is Role.TOOL:
        if message.tool_call_id is None:
            raise _fail(provider, f"{_where(position, message)}: a tool message needs tool_call_id: "
                                  "use Message.tool(tool_call_id, content)")
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text}
    return _encode_assistant(message)


def _encode_tool(tool: Tool) -> Dict[str, Any]:
    function: Dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    return {"type": "function", "function": function}


def _tool_choice(request: ChatCompletionRequest, provider: str) -> Optional[str]:
    choice = request.tool_choice
    if choice is None or choice == "auto":
        return None
    if choice == "required":
        return "REQUIRED"
    if choice == "none":
        return "NONE"
    raise _fail(provider, f"tool_choice={choice!r}: Cohere cannot force one named tool (its tool_choice is "
                          "only REQUIRED or NONE); use tool_choice='required' and pass only that tool")


def _thinking(request: ChatCompletionRequest, provider: str) -> Optional[Dict[str, Any]]:
    budget = request.reasoning_budget
    if budget is None:
        effort = request.reasoning_effort
        if effort is None:
            return None
        word = str(effort).lower()
        if word in ("none", "disabled"):
            return {"type": "disabled"}
        budget = EFFORT_BUDGETS.get(word)
        if budget is None:
            raise _fail(provider, f"reasoning_effort {effort!r} is not one of none, {', '.join(EFFORT_BUDGETS)}; "
                                  "or pass reasoning_budget=<tokens>")
    if budget < 0:
        raise _fail(provider, f"reasoning_budget must be 0 (thinking off) or a number of tokens, not {budget}")
    if budget == 0:
        return {"type": "disabled"}
    return {"type": "enabled", "token_budget": budget}


def _response_format(value: Mapping[str, Any], provider: str) -> Optional[Dict[str, Any]]:
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        out: Dict[str, Any] = {"type": "json_object"}
        schema = value.get("json_schema")
        if isinstance(schema, Mapping):  # Cohere's own shape, passed as given
            out["json_schema"] = dict(schema)
        return out
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _fail(provider, "response_format json_schema needs json_schema.schema (a JSON Schema object)")
        return {"type": "json_object", "json_schema": dict(schema)}
    raise _fail(provider, f"response_format type {kind!r} has no Cohere equivalent; use "
                          "{'type': 'json_object'} or {'type': 'json_schema', 'json_schema': {'schema': {...}}}")


def encode_request(request: ChatCompletionRequest, spec: ProviderSpec, *, stream: bool) -> Dict[str, Any]:
    """The JSON body of ``POST /v2/chat`` for ``request`` (a dict).

    Raises ConfigurationError, naming the provider and the field or message, for
    input Cohere cannot take (audio or file parts, images outside user messages,
    ``n`` > 1, ``user``, ``parallel_tool_calls=False``, a named ``tool_choice``,
    a ``response_format`` other than text / JSON, a tool message without
    ``tool_call_id``); nothing is sent then.
    """
    provider = spec.name
    if not request.model:
        raise _fail(provider, "ChatCompletionRequest.model is empty; name the model to use")
    if not request.messages:
        raise _fail(provider, "ChatCompletionRequest.messages is empty; add at least one Message")
    _check_parts(request, provider)
    if request.n is not None and request.n > 1:
        raise _fail(provider, f"n={request.n}: Cohere returns one answer per request; send several "
                              "requests (client.chat_completion_batch) instead")
    if request.user is not None:
        raise _fail(provider, "user is not supported by the Cohere chat API; leave it unset")
    if request.parallel_tool_calls is False:
        raise _fail(provider, "parallel_tool_calls=False: Cohere has no switch to turn parallel tool calls "
                              "off; leave it unset")

    body: Dict[str, Any] = {
        "model": request.model,
        "messages": [encode_message(m, i, provider) for i, m in enumerate(request.messages)],
    }
    if request.tools:
        body["tools"] = [_encode_tool(t) for t in request.tools]
        if any(t.strict for t in request.tools):
            body["strict_tools"] = True
    choice = _tool_choice(request, provider)
    if choice is not None:
        body["tool_choice"] = choice
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["p"] = request.top_p
    if request.stop is not None:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.frequency_penalty is not None:
        body["frequency_penalty"] = request.frequency_penalty
    if request.presence_penalty is not None:
        body["presence_penalty"] = request.presence_penalty
    if request.response_format is not None:
        response_format = _response_format(request.response_format, provider)
        if response_format is not None:
            body["response_format"] = response_format
    thinking = _thinking(request, provider)
    if thinking is not None:
        body["thinking"] = thinking
    if stream:
        body["stream"] = True
    if request.extra_body:
        body.update(request.extra_body)
    return body


# ---------------------------------------------------------------- responses


def _count(value: Any) -> Optional[int]:
    # Cohere documents token counts as JSON numbers: 507 or 507.0.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def decode_usage(usage: Mapping[str, Any]) -> Usage:
    """A Cohere ``usage`` object as :class:`Usage`.

    ``prompt_tokens`` / ``completion_tokens`` are ``tokens.input_tokens`` /
    ``tokens.output_tokens`` (what the model processed; ``billed_units``, what
    is invoiced, is kept apart in ``provider_fields["cohere"]["billed_units"]``
    and used only when ``tokens`` is absent); ``cached_tokens`` is
    ``cached_tokens`` (prompt tokens that hit the cache, part of the prompt);
    ``reasoning_tokens`` None (Cohere does not count thinking apart).
    """
    tokens = usage.get("tokens")
    if not isinstance(tokens, Mapping):
        tokens = usage.get("billed_units")
    if not isinstance(tokens, Mapping):
        tokens = {}
    prompt = _count(tokens.get("input_tokens")) or 0
    completion = _count(tokens.get("output_tokens")) or 0
    return Usage(prompt, completion, prompt + completion, None, _count(usage.get("cached_tokens")))


def _provider_fields(finish: Any, usage: Any, tool_plan: Optional[str], thinking: Optional[str],
                     citations: List[Any], error: Any = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"finish_reason": finish}
    if isinstance(usage, Mapping) and usage.get("billed_units") is not None:
        out["billed_units"] = usage["billed_units"]
    if tool_plan:
        out["tool_plan"] = tool_plan
    if thinking:
        out["thinking"] = thinking
    if citations:
        out["citations"] = citations
    if error is not None:
        out["error"] = error
    return {_PROVIDER_KEY: out}


def _call(obj: Mapping[str, Any]) -> ToolCall:
    fn = obj.get("function") or {}
    return ToolCall(obj.get("id") or "", FunctionCall(fn.get("name") or "", fn.get("arguments") or "{}"))


def decode_response(obj: Mapping[str, Any]) -> ChatCompletionResponse:
    """A non-streamed ``/v2/chat`` answer as :class:`ChatCompletionResponse`.

    ``message.content[]`` text blocks are joined into the content, ``thinking``
    blocks then ``message.tool_plan`` into ``reasoning_content``;
    ``message.tool_calls`` become tool calls (empty arguments as ``"{}"``);
    ``provider_fields["cohere"]`` keeps the raw ``finish_reason``,
    ``billed_units``, ``tool_plan``, ``thinking`` and ``citations``. Cohere
    names no model in its answers: ``model`` is None.
    """
    message = obj.get("message")
    if message is None:
        message = {}
    elif not isinstance(message, Mapping):
        raise ValueError(f"message must be an object, not {type(message).__name__}")
    text: List[str] = []
    thinking: List[str] = []
    for block in message.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
    plan = message.get("tool_plan") or None
    calls = tuple(_call(c) for c in message.get("tool_calls") or ())
    reasoning = "".join(thinking) + (plan or "")
    usage = obj.get("usage")
    raw_finish = obj.get("finish_reason")
    fields = _provider_fields(raw_finish, usage, plan, "".join(thinking), list(message.get("citations") or ()))
    result = Message(
        message.get("role") or "assistant",
        "".join(text) if text or not calls else None,
        calls or None,
        reasoning_content=reasoning or None,
        provider_fields=fields,
    )
    return ChatCompletionResponse(obj.get("id"), None, [Choice(0, result, finish_reason(raw_finish))],
                                  decode_usage(usage) if isinstance(usage, Mapping) else None)


_COMPACT = 256  # pieces of reasoning kept before they are joined (memory ~ a byte per character)


def _add(pieces: List[str], text: str) -> None:
    pieces.append(text)
    if len(pieces) >= _COMPACT:
        pieces[:] = ["".join(pieces)]


def _text(value: Any, what: str) -> Optional[str]:
    """``value`` when it is a string or None; ValueError otherwise (an odd payload)."""
    if value is None or value.__class__ is str:
        return value
    raise ValueError(f"{what} must be a string, not {type(value).__name__}")


def _one_call(value: Any) -> Mapping[str, Any]:
    """``delta.message.tool_calls`` of a tool-call event: an object (a list of one tolerated)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"tool_calls must be an object, not {type(value).__name__}")
    return value


def _is_error(obj: Dict[str, Any], kind: Any, event: Any) -> bool:
    # Cohere documents no in-band error event for /v2/chat; these are the shapes
    # a failure can take in a stream: an "error" event or type, any payload with
    # a truthy "error", and Cohere's own error body ({"id", "message"}, no "type").
    return (kind == "error" or event == "error" or is_error_payload(obj)
            or ("type" not in obj and isinstance(obj.get("message"), str)))


class StreamDecoder(BaseStreamDecoder):
    """Turns the SSE events of one Cohere ``/v2/chat`` stream into chunks.

    The event's kind is the payload's ``type`` (the SSE ``event:`` name when the
    payload has none):

    - ``message-start``: a chunk with the answer's ``id`` and its role;
    - ``content-start`` / ``content-delta``: ``delta.message.content.text`` ->
      ``delta.content``, ``.thinking`` -> ``delta.reasoning_content``;
    - ``tool-plan-delta``: ``delta.message.tool_plan`` -> ``delta.reasoning_content``;
    - ``tool-call-start``: a :class:`ToolCallDelta` (``index`` = the call's
      position among this answer's calls, ``id``, ``type`` ``"function"``, name,
      arguments as sent); ``tool-call-delta``: argument pieces;
      ``tool-call-end`` of a call whose arguments never came: ``"{}"``;
    - ``citation-start``: the citation is kept; ``content-end``,
      ``citation-end``, ``debug`` and unknown events: None;
    - ``message-end`` (the end marker, ``ended``): the last chunk, with the
      finish reason (:func:`finish_reason`), usage (:func:`decode_usage`) and
      ``provider_fields={"cohere": {"finish_reason": raw, "billed_units": ...,
      "tool_plan": ..., "thinking": ..., "citations": [...], "error": ...}}``
      (keys present when sent), so the collected message goes back in the
      next turn with its tool plan and thinking;
    - ``data: [DONE]`` (which Cohere's SDKs accept as a terminator) also ends
      the stream;
    - an error payload (see :func:`_is_error`) raises the typed error.

    ``complete`` is True only after ``message-end`` (or ``[DONE]``). Raises
    ValueError for a payload that is not a JSON object.
    """

    def __init__(self, provider: str = "cohere", scrub: Scrub = lambda s: s) -> None:
        self.provider = provider
        self.ended = False
        self._scrub = scrub
        self._id: Optional[str] = None
        self._calls: Dict[Any, List[Any]] = {}  # Cohere's index -> [our index, arguments arrived]
        self._plan: List[str] = []
        self._thinking: List[str] = []
        self._citations: List[Any] = []

    def _chunk(self, delta: Delta, finish: Optional[str] = None,
               usage: Optional[Usage] = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(self._id, None, [ChunkChoice(0, delta, finish)], usage)

    def _content(self, content: Any) -> Optional[ChatCompletionChunk]:
        text = content.get("text")
        thinking = content.get("thinking")
        if (text.__class__ is not str and text is not None) or (thinking.__class__ is not str and thinking is not None):
            raise ValueError(f"content text and thinking must be strings: {content!r:.80}")
        if thinking:
            _add(self._thinking, thinking)
        if text or thinking:
            return self._chunk(Delta(None, text or None, thinking or None))
        return None

    def _call_state(self, index: Any) -> List[Any]:
        state = self._calls.get(index)
        if state is None:  # a delta without its call's start (an excerpt): a new call
            state = self._calls[index] = [len(self._calls), False]
        return state

    def _arguments(self, call: int, text: str) -> ChatCompletionChunk:
        return self._chunk(Delta(tool_calls=[ToolCallDelta(call, function=FunctionCallDelta(None, text))]))

    def decode(self, event: Any) -> Optional[ChatCompletionChunk]:
        """One SSE event -> a chunk, or None (see the class docstring). Raises the
        typed error of an error payload; ValueError (or KeyError...) for a
        payload of another shape, which the caller reports as DecodeError."""
        data = event.data
        if data == "[DONE]":
            self.ended = True
            return None
        obj = json_object(data)
        kind = obj.get("type") or event.event
        if kind == "content-delta":  # the hot path: once per token
            return self._content(obj["delta"]["message"]["content"])
        if kind == "tool-plan-delta":
            plan = _text(obj["delta"]["message"].get("tool_plan"), "tool_plan")
            if not plan:
                return None
            _add(self._plan, plan)
            return self._chunk(Delta(None, None, plan))
        if kind == "tool-call-delta":
            state = self._call_state(obj.get("index"))
            fn = _one_call(obj["delta"]["message"].get("tool_calls")).get("function") or {}
            text = _text(fn.get("arguments"), "arguments")
            if not text:
                return None
            state[1] = True
            return self._arguments(state[0], text)
        if _is_error(obj, kind, event.event):
            raise error_from_payload(obj, provider=self.provider, scrub=self._scrub)
        if kind == "message-start":
            self._id = obj.get("id") or self._id
            message = (obj.get("delta") or {}).get("message") or {}
            return self._chunk(Delta(message.get("role") or "assistant"))
        if kind == "content-start":
            return self._content(((obj.get("delta") or {}).get("message") or {}).get("content") or {})
        if kind == "tool-call-start":
            call = _one_call(((obj.get("delta") or {}).get("message") or {}).get("tool_calls"))
            fn = call.get("function") or {}
            index = obj.get("index", len(self._calls))
            arguments = _text(fn.get("arguments"), "arguments") or ""
            state = self._calls[index] = [len(self._calls), bool(arguments)]
            return self._chunk(Delta(tool_calls=[ToolCallDelta(
                state[0], _text(call.get("id"), "id"), "function",
                FunctionCallDelta(_text(fn.get("name"), "name"), arguments))]))
        if kind == "tool-call-end":
            state = self._calls.get(obj.get("index"))
            if state is not None and not state[1]:
                state[1] = True  # no argument pieces: an empty arguments object
                return self._arguments(state[0], "{}")
            return None
        if kind == "citation-start":
            citation = ((obj.get("delta") or {}).get("message") or {}).get("citations")
            if citation is not None:
                self._citations.append(citation)
            return None
        if kind == "message-end":
            self.ended = True
            self._id = self._id or obj.get("id")
            delta = obj.get("delta") or {}
            raw = _text(delta.get("finish_reason"), "finish_reason")
            usage = delta.get("usage")
            if usage is not None and not isinstance(usage, Mapping):
                raise ValueError(f"usage must be an object: {usage!r:.80}")
            fields = _provider_fields(raw, usage, "".join(self._plan), "".join(self._thinking),
                                      self._citations, delta.get("error"))
            return self._chunk(Delta(provider_fields=fields), finish_reason(raw),
                               decode_usage(usage) if isinstance(usage, Mapping) else None)
        return None  # content-end, citation-end, debug, and event types added after this was written


# ---------------------------------------------------------------- models

_VERSION = re.compile(r"/v\d+$")


def models_url(base_url: str, page_token: Optional[str] = None) -> str:
    """The URL of one page of Cohere's model list: ``GET /v1/models`` on the API
    root of ``base_url`` (its trailing ``/v2``, or any ``/v<N>``, replaced by
    ``/v1``), with ``page_size`` and the ``page_token`` of the page (if any)."""
    base, _, query = base_url.partition("?")
    root = _VERSION.sub("", base.rstrip("/"))
    params = [("page_size", str(MODELS_PAGE_SIZE))]
    if page_token:
        params.append(("page_token", page_token))
    extra = urllib.parse.urlencode(params)
    return f"{root}/v1/models?{query + '&' if query else ''}{extra}"


def _features(obj: Mapping[str, Any]) -> List[str]:
    features = obj.get("features")
    if not isinstance(features, list):
        return []
    return [f.lower().replace("-", "_") for f in features if isinstance(f, str)]


def decode_model(obj: Mapping[str, Any], provider: str) -> ModelInfo:
    """One Cohere model object as ModelInfo: ``id`` from ``name``;
    ``context_length``; ``supports_streaming`` True when ``endpoints`` lists
    ``chat`` (False when it lists others only, None when absent);
    ``supports_tools`` / ``supports_vision`` True when ``features`` names tool
    use / vision, None (unknown) otherwise; the whole object in ``raw``."""
    endpoints = obj.get("endpoints")
    streaming = ("chat" in endpoints) if isinstance(endpoints, list) else None
    features = _features(obj)
    tools = True if any(f.startswith("tool") or f == "strict_tools" for f in features) else None
    vision = True if "vision" in features else None
    return ModelInfo(obj["name"], provider, None, None, _count(obj.get("context_length")),
                     supports_streaming=streaming, supports_tools=tools, supports_vision=vision, raw=dict(obj))


def decode_models(obj: Any, provider: str) -> Tuple[List[ModelInfo], Optional[str]]:
    """One page of ``GET /v1/models``: ``(models, next_page_token)``; the token is
    None on the last page (absent or empty). Raises ValueError for a body
    without a ``models`` list."""
    items = obj.get("models") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise ValueError("expected a models list with a 'models' array")
    models = [decode_model(m, provider) for m in items if isinstance(m, dict) and m.get("name")]
    token = obj.get("next_page_token")
    return models, (token if isinstance(token, str) and token else None)


class CohereProtocol(Protocol):
    """The Cohere v2 Chat protocol (see the module docstring); the key goes in
    ``Authorization: Bearer`` (the default of :class:`Protocol`)."""

    framing = "sse"

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {base_url}/chat`` with the encoded request (see :func:`encode_request`
        for the ConfigurationError it raises before anything is sent)."""
        return HTTPRequest("POST", endpoint(base_url, "/chat"), encode_request(request, self.spec, stream=stream),
                           {"Accept": "text/event-stream"} if stream else {})

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        """A fresh :class:`StreamDecoder` for one streamed answer. Cohere's events
        name no model: the chunks carry none (``model`` None), as whole answers."""
        return StreamDecoder(self.spec.name, scrub)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        """A whole answer (see :func:`decode_response`)."""
        return decode_response(obj)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET /v1/models?page_size=1000`` on the API root of ``base_url`` (and
        ``&page_token=<token>`` after the first page; see :func:`models_url`)."""
        return HTTPRequest("GET", models_url(base_url, page_token))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        """One page of the listing and the next page's token (see :func:`decode_models`)."""
        return decode_models(obj, self.spec.name)


PROTOCOL = CohereProtocol
