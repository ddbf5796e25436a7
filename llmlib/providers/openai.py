"""The OpenAI chat-completions protocol, the whole wire format in one place.

Follows https://platform.openai.com/docs/api-reference/chat/create (request body),
https://platform.openai.com/docs/api-reference/chat/object (response),
https://platform.openai.com/docs/api-reference/chat/streaming (``chat.completion.chunk``
events ended by ``data: [DONE]``) and
https://platform.openai.com/docs/api-reference/models/list. Every OpenAI-compatible
provider (Groq, DeepSeek, OpenRouter, Mistral, llama.cpp...) uses this module with
its own row of :mod:`llmlib.providers`.

What the compatible providers add to the format, and where it goes:

- Top-level keys llmlib has no field for (OpenRouter ``provider``, Groq
  ``x_groq``, Perplexity ``citations`` and ``search_results``, llama.cpp
  ``timings``, OpenAI ``service_tier``...) are kept as sent in
  ``chunk.provider_fields`` (None when a chunk has none). Keys inside choices
  and deltas that llmlib does not map (Groq's ``channel``, OpenRouter's
  ``native_finish_reason``) are not kept.
- Usage: ``usage`` may be ``null`` on every chunk but the last (DeepSeek, Zhipu,
  Mistral); Groq sends it only as ``x_groq.usage`` on the last chunk, which becomes
  ``chunk.usage`` when there is no top-level ``usage``. ``Usage.raw`` keeps the usage
  object as sent (OpenRouter's ``cost`` and ``cost_details``, Groq's timings).
- Reasoning: ``reasoning_content`` (DeepSeek, Zhipu, Qwen, Moonshot, xAI) or
  ``reasoning`` (OpenRouter, Groq) -> ``delta.reasoning_content``; Mistral's
  Magistral ``content`` as typed parts (see :func:`content_parts`); and, for the
  providers whose table row sets ``think_tags`` (local servers, Groq, Together,
  Fireworks, Perplexity), a ``<think>...</think>`` block at the start of the answer
  text, even with its tags split across chunks (see :class:`StreamDecoder`).
  OpenRouter's ``reasoning_details`` are kept in
  ``delta.provider_fields[<provider>]["reasoning_details"]``: each chunk holds the
  pieces it brought, and the chunk that finishes the choice holds the whole list,
  pieces of one detail merged: what ``collect`` keeps, and what goes back (to the
  same provider only) when the collected message is sent in a later request, as
  OpenRouter needs to continue a reasoning model's turn.
- Tool calls: Mistral sends whole calls without ``index``: each new call (a new
  ``id``) gets the next free index, so calls in separate chunks are never merged;
  a name repeated on a later delta (Kimi via OpenRouter) is not a new call, and
  the stream layer does not double it; a call whose ``arguments`` never came
  (``null``, no key, or only ``""``) gets ``"{}"`` on the chunk that finishes its
  choice, so its arguments always parse.
- Errors inside the stream: an ``event: error`` (Groq's ``tool_use_failed``, whose
  ``failed_generation`` stays reachable in ``error.body["error"]``) or an
  ``"error"`` object in an ordinary chunk (OpenRouter, then ``[DONE]``) raise the
  typed error, with ``.partial``; ``"error": null`` is no error. OpenRouter's
  ``: OPENROUTER PROCESSING`` lines are SSE comments, dropped by the event parser.
- OpenRouter's ``provider/model`` names are sent as given. Its optional
  attribution headers go in ``ConnectionOptions(headers={"HTTP-Referer":
  "https://myapp.example", "X-Title": "My App"})``, sent with every request.

Knows nothing about HTTP, threads or retries.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Tuple

from llmlib.accumulator import _Text
from llmlib.errors import ConfigurationError
from llmlib.error_mapping import error_from_payload
from llmlib.framing import Event
from llmlib.messages import ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.providers import ProviderSpec, endpoint
from llmlib.providers.base import HTTPRequest, Protocol, Scrub, json_object
from llmlib.providers.base import StreamDecoder as BaseStreamDecoder
from llmlib.providers.shape import Shape
from llmlib.streaming import content_delta, tool_call_delta
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


def encode_message(message: Message, provider: Optional[str] = None) -> Dict[str, Any]:
    """One :class:`Message` as an OpenAI ``messages[]`` item. An assistant message
    collected from ``provider`` goes back with the ``reasoning_details`` it kept
    (OpenRouter: the reasoning blocks a reasoning model needs to continue a turn)."""
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
    if message.provider_fields and provider is not None and message.role is Role.ASSISTANT:
        kept = message.provider_fields.get(provider)
        if isinstance(kept, Mapping) and kept.get("reasoning_details"):
            out["reasoning_details"] = list(kept["reasoning_details"])
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
        "messages": [encode_message(m, spec.name) for m in request.messages],
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
    """An OpenAI ``usage`` object (with its ``*_details``) as :class:`Usage`, the
    object itself kept as ``raw``."""
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
        obj,
    )


def _decode_tool_call(obj: Dict[str, Any]) -> ToolCall:
    fn = obj.get("function") or {}
    return ToolCall(obj.get("id") or "", FunctionCall(fn.get("name") or "", fn.get("arguments") or "{}"),
                    obj.get("type") or "function")


def decode_response(obj: Dict[str, Any], provider: str = "openai",
                    think_tags: bool = False) -> ChatCompletionResponse:
    """A ``chat.completion`` object as :class:`ChatCompletionResponse` (a message's
    ``reasoning_details`` kept in ``provider_fields[provider]``; a tool call without
    arguments gets ``"{}"``; with ``think_tags``, a ``<think>...</think>`` block
    opening the text becomes reasoning, as in a stream)."""
    choices = []
    for position, c in enumerate(obj.get("choices") or ()):
        m = c.get("message") or {}
        calls = m.get("tool_calls")
        content, reasoning = m.get("content"), m.get("reasoning_content") or m.get("reasoning")
        if content is not None and not isinstance(content, str):
            content, reasoning = content_parts(content, reasoning)
        if think_tags and content:
            content, reasoning = _split_whole(content, reasoning)
        details = m.get("reasoning_details")
        choices.append(Choice(
            c.get("index", position),
            Message(
                m.get("role") or "assistant",
                content,
                tuple(_decode_tool_call(t) for t in calls) if calls else None,
                reasoning_content=reasoning,
                refusal=m.get("refusal"),
                provider_fields={provider: {"reasoning_details": details}} if details else None,
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


# Shapes (see StreamDecoder._learn): the holes, the most one stream learns, and
# the types of the values the chunks of one shape may share.
_CONTENT = ("choices", 0, "delta", "content")
_ARGUMENTS = ("choices", 0, "delta", "tool_calls", 0, "function", "arguments")
_OBFUSCATION = ("obfuscation",)
_SHAPES = 8
_SCALARS = (str, int, float, bool, type(None))

# Top-level keys of a chunk that llmlib maps (or, for "error", checks); any
# other key goes to chunk.provider_fields.
_KNOWN_KEYS = frozenset({"id", "object", "created", "model", "choices", "usage", "system_fingerprint", "error"})
_all_known = _KNOWN_KEYS.issuperset


def decode_chunk(obj: Dict[str, Any], stream: Optional["StreamDecoder"] = None) -> ChatCompletionChunk:
    """A ``chat.completion.chunk`` object as :class:`ChatCompletionChunk`.

    The hot path of streaming (once per token): plain dict lookups, no helpers
    but for the rare tool-call, reasoning-details, usage and unknown-key parts.
    ``stream`` is the :class:`StreamDecoder` of the answer, which numbers tool
    calls sent without ``index`` across chunks and merges reasoning details; None
    decodes the chunk alone (a call without ``index`` is numbered by its position).
    """
    get = obj.get
    choices = []
    for c in get("choices") or ():
        d = c.get("delta") or _EMPTY
        index = c.get("index", 0)
        calls = d.get("tool_calls")
        reason = c.get("finish_reason")
        content = d.get("content")
        reasoning = d.get("reasoning_content") or d.get("reasoning")
        if content.__class__ is not str and content is not None:
            content, reasoning = content_parts(content, reasoning)
        elif reasoning.__class__ is not str and reasoning is not None:
            raise ValueError(f"reasoning must be a string, not {type(reasoning).__name__}")
        details = d.get("reasoning_details")
        choices.append(ChunkChoice(
            index,
            Delta(d.get("role"), content, reasoning,
                  (_decode_call_deltas(calls) if stream is None else stream.tool_calls(index, calls))
                  if calls else None,
                  d.get("refusal"),
                  _details_field(details, stream, index) if details else None),
            None if reason is None else _FINISH.get(reason, reason),
            c.get("logprobs"),
        ))
    usage = get("usage")
    chunk = ChatCompletionChunk(
        get("id"), get("model"), choices, decode_usage(usage) if usage else None,
        get("created"), get("object") or "chat.completion.chunk", get("system_fingerprint"),
    )
    if not _all_known(obj):
        _keep_unknown(chunk, obj)
    return chunk


def _keep_unknown(chunk: ChatCompletionChunk, obj: Dict[str, Any]) -> None:
    """Top-level keys llmlib has no field for, kept in ``chunk.provider_fields``;
    Groq's ``x_groq.usage`` is the chunk's usage when it has no ``usage``."""
    extra = {k: v for k, v in obj.items() if k not in _KNOWN_KEYS}
    chunk.provider_fields = extra
    if chunk.usage is None:
        groq = extra.get("x_groq")
        if groq.__class__ is dict and groq.get("usage"):
            chunk.usage = decode_usage(groq["usage"])


def _details_field(details: Any, stream: Optional["StreamDecoder"], index: int) -> Dict[str, Any]:
    if details.__class__ is not list:
        raise ValueError(f"reasoning_details must be a list, not {type(details).__name__}")
    if stream is None:
        return {"openai": {"reasoning_details": details}}
    return stream.reasoning_details(index, details)


# ---------------------------------------------------------------- stream state


def _split_whole(content: str, reasoning: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """A whole answer's text with its opening ``<think>`` block moved to reasoning."""
    think = _Think()
    text, thought = think.feed(content)
    rest, more = think.flush()
    text = (text or "") + (rest or "")
    thought = (thought or "") + (more or "")
    if thought and reasoning:
        thought = reasoning + thought
    return text, thought or reasoning


class _Calls:
    """The tool calls of one choice so far: the next free index, the call last
    given one (for calls sent without ``index``), and which calls got arguments."""

    __slots__ = ("next", "auto", "auto_id", "auto_name", "args")

    def __init__(self) -> None:
        self.next = 0
        self.auto: Optional[int] = None
        self.auto_id: Optional[str] = None
        self.auto_name: Optional[str] = None
        self.args: Dict[int, bool] = {}


# OpenRouter reasoning_details types whose consecutive pieces (same type and
# index) make one detail, and their keys whose text is joined.
_MERGED_DETAILS = frozenset({"reasoning.text", "reasoning.summary"})
_DETAIL_TEXT = frozenset({"text", "summary"})


class _Details:
    """OpenRouter ``reasoning_details`` of one choice, assembled compactly:
    consecutive pieces of one ``reasoning.text`` or ``reasoning.summary`` detail
    (same ``type`` and ``index``) become one detail, its ``text`` / ``summary``
    joined and its other keys the latest non-empty value sent (the signature
    comes last, after ``"signature": ""``); other details are kept as sent."""

    __slots__ = ("entries", "dirty", "finished")

    def __init__(self) -> None:
        self.entries: List[Tuple[Any, Optional[Dict[str, _Text]]]] = []  # (detail, its text pieces)
        self.dirty = False  # pieces added since the whole list was last given out
        self.finished = False  # the choice has sent its finish_reason

    def add(self, items: List[Any]) -> None:
        entries = self.entries
        for item in items:
            self.dirty = True
            kind = item.get("type") if item.__class__ is dict else None
            if kind not in _MERGED_DETAILS:
                entries.append((item, None))
                continue
            last = entries[-1] if entries else None
            if (last is not None and last[1] is not None and last[0].get("type") == kind
                    and last[0].get("index") == item.get("index")):
                fields, texts = last
            else:
                fields, texts = {}, {}
                entries.append((fields, texts))
            for key, value in item.items():
                if key in _DETAIL_TEXT and value.__class__ is str:
                    pieces = texts.get(key)
                    if pieces is None:
                        pieces = texts[key] = _Text()
                        fields.setdefault(key, "")
                    pieces.add(value)
                elif key not in fields or (value is not None and value != ""):
                    fields[key] = value

    def whole(self) -> List[Any]:
        """The details so far, as a new list of new dicts."""
        self.dirty = False
        out = []
        for detail, texts in self.entries:
            if texts is not None:  # merged: still growing, so given out as a copy
                detail = dict(detail)
                for key, pieces in texts.items():
                    detail[key] = pieces.value()
            out.append(detail)
        return out


_OPEN, _CLOSE = "<think>", "</think>"
# Where a choice's answer text stands, for think-tag splitting.
_START, _THINK_START, _THINK, _AFTER, _DONE = range(5)


class _Think:
    """Splits a ``<think>...</think>`` block at the start of one choice's answer
    text into reasoning, whatever the chunk boundaries (``<thi`` + ``nk>``).

    Fed each piece of ``content`` in order; returns ``(content, reasoning)`` for
    the piece, holding back what cannot be placed yet (a possible tag prefix, and
    whitespace that may turn out to border a tag). Whitespace just inside the
    tags and just after ``</think>`` is dropped. Text that does not open with
    ``<think>`` (after leading whitespace) is content from then on: the splitter
    is then ``_DONE`` and the decoder stops calling it.
    """

    __slots__ = ("mode", "pending")

    def __init__(self) -> None:
        self.mode = _START
        self.pending = ""

    def feed(self, text: str) -> Tuple[Optional[str], Optional[str]]:
        mode = self.mode
        if mode == _START:
            buf = self.pending + text
            head = buf.lstrip()
            if head.startswith(_OPEN):
                self.pending = ""
                self.mode = _THINK_START
                return self._thinking(head[len(_OPEN):])
            if _OPEN.startswith(head):  # only whitespace so far, or the start of the tag: wait
                self.pending = buf
                return None, None
            self.pending = ""
            self.mode = _DONE
            return buf, None
        if mode == _AFTER:
            text = text.lstrip()
            if not text:
                return None, None
            self.mode = _DONE
            return text, None
        if mode == _DONE:
            return text, None
        return self._thinking(text)

    def _thinking(self, text: str) -> Tuple[Optional[str], Optional[str]]:
        buf = self.pending + text
        if self.mode == _THINK_START:
            buf = buf.lstrip()
            if not buf:
                return None, None
            self.mode = _THINK
        end = buf.find(_CLOSE)
        if end >= 0:
            self.pending = ""
            after = buf[end + len(_CLOSE):].lstrip()
            self.mode = _DONE if after else _AFTER
            return after or None, buf[:end].rstrip() or None
        cut = len(buf)
        lt = buf.rfind("<", max(0, cut - len(_CLOSE) + 1))
        if lt >= 0 and _CLOSE.startswith(buf[lt:]):
            cut = lt  # "</thi": perhaps the closing tag, held until the next piece says
        body = buf[:cut].rstrip()
        self.pending = buf[len(body):]
        return None, body or None

    def flush(self) -> Tuple[Optional[str], Optional[str]]:
        """What is still held when the choice finishes, as ``(content, reasoning)``."""
        pending, mode = self.pending, self.mode
        self.pending, self.mode = "", _DONE
        if not pending:
            return None, None
        if mode == _START:
            return pending, None
        return None, pending.rstrip() or None  # a think block never closed


class StreamDecoder(BaseStreamDecoder):
    """Turns the SSE events of one stream into chunks.

    ``decode(event)`` returns a chunk, or None for events that carry none
    (``[DONE]``); it raises the typed error of an error event (``event: error``,
    or a payload whose ``"error"`` is set), and ValueError for a payload that is
    not a JSON object. ``ended`` becomes True at ``[DONE]`` (read no further);
    ``complete`` also once every choice has sent its ``finish_reason`` (a server
    that closes without ``[DONE]`` has still answered in full).

    Across the chunks of the answer it numbers tool calls sent without
    ``index``, gives ``"{}"`` to calls whose arguments never came, assembles
    reasoning details (see the module docstring), and with ``think_tags`` moves a
    ``<think>...</think>`` block that opens the answer text (leading whitespace
    aside) into ``reasoning_content``: text that might still be a tag is held
    back (its chunk's ``content`` is None) until the next piece decides, and
    released on the chunk that finishes the choice. Once every choice's answer
    has started without the tag, or its think block has closed, the check costs
    nothing more per chunk.
    """

    __slots__ = ("provider", "ended", "_finished", "_choices", "_scrub", "_calls", "_details", "_think",
                 "_shape", "_again", "_shapes_left", "events_choice")

    def __init__(self, provider: str, choices: int = 1, scrub=lambda s: s, *, think_tags: bool = False) -> None:
        self.provider = provider
        self.ended = False
        self._finished: set = set()
        self._choices = max(choices, 1)
        self._scrub = scrub
        self._calls: Optional[Dict[int, _Calls]] = None  # per choice, from its first tool call
        self._details: Optional[Dict[int, _Details]] = None  # per choice, from its first reasoning detail
        self._think: Optional[Dict[int, _Think]] = {} if think_tags else None  # None: nothing to split
        # The per-token payload's shape (see _learn), and the chunks of payloads of that shape.
        self._shape: Optional[Shape] = None
        self._again: Any = None
        self._shapes_left = _SHAPES
        self.events_choice: Optional[int] = None

    @property
    def complete(self) -> bool:
        return self.ended or len(self._finished) >= self._choices

    def decode(self, event) -> Optional[ChatCompletionChunk]:
        data = event.data
        shape = self._shape
        if shape is not None and event.__class__ is Event:  # a one-data-line event: its type is "message"
            values = shape.match(data)
            if values is not None:
                return self._again(values)
        if data == "[DONE]":
            self.ended = True
            return None
        obj = json_object(data)
        if obj.get("error") or obj.get("type") == "error" or event.event == "error":  # is_error_payload, inlined
            raise error_from_payload(obj, provider=self.provider, scrub=self._scrub)
        return self.decode_object(obj, data)

    def decode_object(self, obj: Dict[str, Any], data: str) -> ChatCompletionChunk:
        """The chunk of one parsed ``chat.completion.chunk`` (``data`` is its text,
        for a subclass's cheap checks; Azure's decoder adds its fields here)."""
        # The fast path, for the chunk sent once per token: one choice, not
        # finished, whose delta is only ``content`` text or only ``tool_calls``,
        # no usage, nothing to split or merge. decode_chunk gives the same chunk.
        get = obj.get
        choices = get("choices")
        delta = hole = None
        if choices.__class__ is list and len(choices) == 1 and self._think is None and self._details is None \
                and not get("usage"):
            c = choices[0]
            d = c.get("delta") if c.__class__ is dict and c.get("finish_reason") is None else None
            if d.__class__ is dict and len(d) == 1:
                index = c.get("index", 0)
                content = d.get("content")
                if content.__class__ is str:
                    delta = Delta(None, content)
                    hole = _CONTENT
                else:
                    calls = d.get("tool_calls")
                    if calls.__class__ is list and calls:
                        delta = Delta(None, None, None, self.tool_calls(index, calls))
                        t = calls[0]
                        if len(calls) == 1 and len(t) == 2 and t.get("index").__class__ is int \
                                and delta.tool_calls[0].function.arguments and len(t.get("function")) == 1:
                            hole = _ARGUMENTS  # only {"index": i, "function": {"arguments": "..."}}
        if delta is not None:
            chunk = ChatCompletionChunk(get("id"), get("model"), [ChunkChoice(index, delta, None, c.get("logprobs"))],
                                        None, get("created"), get("object") or "chat.completion.chunk",
                                        get("system_fingerprint"))
            if not _all_known(obj):  # OpenAI's "obfuscation" and "service_tier", for one
                _keep_unknown(chunk, obj)
            if hole is not None and self._shapes_left and c.get("logprobs") is None:
                self._learn(obj, data, chunk, hole)
            return chunk

        chunk = decode_chunk(obj, self)
        think = self._think
        for c in chunk.choices:
            if think is not None:
                self._split(think, c)
            if c.finish_reason is not None:
                self._finished.add(c.index)
                if self._calls is not None:
                    self._fill_arguments(c)
            if self._details is not None:
                self._whole_details(c)
        return chunk

    # -- the per-token payload's shape

    def _learn(self, obj: Dict[str, Any], data: str, chunk: ChatCompletionChunk, hole: Tuple[Any, ...]) -> None:
        """Learn the shape of ``data``, a payload that took the fast path above:
        the following payloads that differ from it only in their text (or
        arguments piece) and ``obfuscation`` then skip the JSON parser and the
        checks of this fast path (see :mod:`llmlib.providers.shape`): the same
        text around the holes means the same keys and values, so the same chunk
        but for those. A stream learns at most a few shapes (a new tool call, a
        new choice, a provider whose payloads never repeat)."""
        self._shapes_left -= 1
        self._shape = None
        index = chunk.choices[0].index
        chunk_id, model, created, kind, fingerprint = (chunk.id, chunk.model, chunk.created, chunk.object,
                                                       chunk.system_fingerprint)
        extra = chunk.provider_fields
        paths = [hole]
        if extra is not None:
            extra = dict(extra)  # not the learned chunk's own dict, which its reader may change
            if extra.get("obfuscation").__class__ is str:
                paths.append(_OBFUSCATION)
        # Every chunk of the shape gets these values: a list or an object must not be shared.
        if any(v.__class__ not in _SCALARS for v in (index, chunk_id, model, created, kind, fingerprint,
                                                     *(extra.values() if extra else ()))):
            return
        shape = Shape.of(data, obj, paths)
        if shape is None:
            return
        at = shape.paths.index(hole)
        scrambled = shape.paths.index(_OBFUSCATION) if len(paths) == 2 else None
        call = chunk.choices[0].delta.tool_calls[0].index if hole is _ARGUMENTS else None

        if self.events_choice == index:  # read through events(): the event, without a chunk
            if call is None:
                self._shape, self._again = shape, lambda values: content_delta(values[at])
            else:
                self._shape, self._again = shape, lambda values: tool_call_delta(call, values[at])
            return

        def again(values: List[str]) -> ChatCompletionChunk:
            if call is None:
                delta = Delta(None, values[at])
            else:
                delta = Delta(None, None, None, [ToolCallDelta(call, None, None, FunctionCallDelta(None, values[at]))])
            out = ChatCompletionChunk(chunk_id, model, [ChunkChoice(index, delta)], None, created, kind, fingerprint)
            if extra is not None:
                fields = dict(extra)
                if scrambled is not None:
                    fields["obfuscation"] = values[scrambled]
                out.provider_fields = fields
            return out

        self._shape, self._again = shape, again

    # -- tool calls

    def tool_calls(self, choice: int, calls: List[Dict[str, Any]]) -> List[ToolCallDelta]:
        """The ``delta.tool_calls`` of ``choice`` as ToolCallDeltas. A call without
        ``index`` continues the last such call when it repeats its ``id`` (or, with
        no ``id``, names no other function); otherwise it is a new call, with the
        next free index."""
        states = self._calls
        if states is None:
            states = self._calls = {}
        state = states.get(choice)
        if state is None:
            state = states[choice] = _Calls()
        if len(calls) == 1:  # the common piece: more arguments of a call already started
            t = calls[0]
            index = t.get("index")
            if index is not None and index < state.next and len(t) == 2 and t.__class__ is dict:
                fn = t.get("function")
                if fn.__class__ is dict and len(fn) == 1:
                    arguments = fn.get("arguments")
                    if arguments.__class__ is str and arguments:
                        state.args[index] = True
                        return [ToolCallDelta(index, None, None, FunctionCallDelta(None, arguments))]
        out = []
        for t in calls:
            fn = t.get("function") or _EMPTY
            call_id, name, arguments = t.get("id"), fn.get("name"), fn.get("arguments")
            index = t.get("index")
            if index is None:
                auto = state.auto
                if auto is not None and (call_id == state.auto_id if call_id is not None
                                         else name is None or name == state.auto_name):
                    index = auto
                else:
                    index = state.auto = state.next
                    state.auto_id, state.auto_name = call_id, name
            if index >= state.next:
                state.next = index + 1
            if arguments:
                state.args[index] = True
            elif index not in state.args:
                state.args[index] = False
            out.append(ToolCallDelta(index, call_id, t.get("type"), FunctionCallDelta(name, arguments)))
        return out

    def _fill_arguments(self, c: ChunkChoice) -> None:
        # Calls of this choice that never got arguments get "{}" (no arguments), once.
        state = self._calls.get(c.index)
        if state is None:
            return
        missing = [i for i, got in state.args.items() if not got]
        if missing:
            fills = [ToolCallDelta(i, None, None, FunctionCallDelta(None, "{}")) for i in missing]
            for i in missing:
                state.args[i] = True
            calls = c.delta.tool_calls
            c.delta.tool_calls = fills if calls is None else [*calls, *fills]

    # -- reasoning details

    def reasoning_details(self, choice: int, details: List[Any]) -> Dict[str, Any]:
        """Folds one chunk's ``reasoning_details`` of ``choice`` into the answer's;
        returns the delta's ``provider_fields`` holding the pieces as sent."""
        kept = self._details
        if kept is None:
            kept = self._details = {}
            self._shape = None  # from now on each chunk may have to carry the whole details
        state = kept.get(choice)
        if state is None:
            state = kept[choice] = _Details()
        state.add(details)
        return {self.provider: {"reasoning_details": details}}

    def _whole_details(self, c: ChunkChoice) -> None:
        # The chunk that finishes a choice (or brings details after that) holds them all.
        state = self._details.get(c.index)
        if state is None or not (c.finish_reason is not None or state.finished):
            return
        state.finished = True
        if state.dirty:
            fields = dict(c.delta.provider_fields or ())
            fields[self.provider] = {"reasoning_details": state.whole()}
            c.delta.provider_fields = fields

    # -- think tags

    def _split(self, think: Dict[int, _Think], c: ChunkChoice) -> None:
        state = think.get(c.index)
        if state is None:
            state = think[c.index] = _Think()
        d = c.delta
        text = d.content
        if text:
            d.content, reasoning = state.feed(text)
            if reasoning is not None:
                d.reasoning_content = reasoning if d.reasoning_content is None else d.reasoning_content + reasoning
        if c.finish_reason is not None and state.mode != _DONE:
            content, reasoning = state.flush()
            if content is not None:
                d.content = content if d.content is None else d.content + content
            if reasoning is not None:
                d.reasoning_content = reasoning if d.reasoning_content is None else d.reasoning_content + reasoning
        if state.mode == _DONE and len(think) >= self._choices and all(s.mode == _DONE for s in think.values()):
            self._think = None  # every answer has started: nothing more to split


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

    @property
    def supports_responses(self) -> bool:  # type: ignore[override]
        """OpenAI's own API serves ``POST /responses``; compatible providers get
        the chat-completions fallback of ``Client.responses``."""
        return self.spec.name == "openai"

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {base_url}/chat/completions`` with the encoded request."""
        return HTTPRequest("POST", endpoint(base_url, "/chat/completions"),
                           encode_request(request, self.spec, stream=stream),
                           {"Accept": "text/event-stream"} if stream else {})

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        return StreamDecoder(self.spec.name, request.n or 1, scrub, think_tags=self.spec.think_tags)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        return decode_response(obj, self.spec.name, self.spec.think_tags)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET {base_url}/models`` (one page: OpenAI does not paginate it)."""
        if not self.spec.has_models_endpoint:
            raise ConfigurationError(f"{self.provider} has no model listing endpoint (see {self.spec.docs}); "
                                     "client.model_info(model) answers from llmlib's model table")
        return HTTPRequest("GET", endpoint(base_url, "/models"))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        return decode_models(obj, self.spec.name), None


PROTOCOL = OpenAIProtocol
