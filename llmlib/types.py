"""Requests, responses, stream chunks, usage and model information.

Names and shapes follow OpenAI's chat-completions API
(https://platform.openai.com/docs/api-reference/chat/object and
https://platform.openai.com/docs/api-reference/chat/streaming); every provider's
answers are normalised into these types.

The chunk family (``ChatCompletionChunk``, ``ChunkChoice``, ``Delta``,
``ToolCallDelta``, ``FunctionCallDelta``) is built once per streamed token, so it
uses plain slotted attrs classes: a frozen attrs ``__init__`` goes through
``object.__setattr__`` and costs about three times as much (measured by
``tests/benchmarks/bench_throughput.py``). Treat chunks as read-only all the same.
Every other class here is a frozen value.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import attrs

from llmlib.errors import ConfigurationError
from llmlib.messages import Message, Tool

__all__ = [
    "ChatCompletionRequest",
    "Usage",
    "Choice",
    "ChatCompletionResponse",
    "FunctionCallDelta",
    "ToolCallDelta",
    "Delta",
    "ChunkChoice",
    "ChatCompletionChunk",
    "ModelInfo",
    "FINISH_REASONS",
]

#: The four finish reasons every provider's stop reason is mapped onto.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


def _tuple(value: Any) -> Tuple[Any, ...]:
    return tuple(value) if value is not None else ()


def _messages(value: Any) -> Tuple[Message, ...]:
    if isinstance(value, (str, Message, Mapping)):
        value = [value]  # one message (a dict is one message, never its keys)
    if not isinstance(value, (list, tuple)) and not hasattr(value, "__iter__"):
        raise ConfigurationError(f"messages must be a list of messages, not {type(value).__name__}")
    return tuple(Message.of(m) for m in value)


def _tools(value: Any) -> Optional[Tuple[Tool, ...]]:
    if value is None:
        return None
    if isinstance(value, (Tool, Mapping)):
        value = [value]
    return tuple(Tool.of(t) for t in value)


def _tool_choice(value: Any) -> Optional[str]:
    # OpenAI's {"type": "function", "function": {"name": ...}} means "this tool".
    if isinstance(value, Mapping):
        function = value.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return function["name"]
        if isinstance(value.get("name"), str):
            return value["name"]
        raise ConfigurationError(f"tool_choice {dict(value)!r:.120} names no function; use \"auto\", "
                                 "\"none\", \"required\", a tool name or {\"type\": \"function\", "
                                 "\"function\": {\"name\": ...}}")
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"tool_choice must be a string or a dict, not {type(value).__name__}")
    return value


def _check(name: str, ok: Callable[[Any], bool], accepted: str) -> Callable[[Any, Any, Any], None]:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and not ok(value):
            raise ConfigurationError(f"{name}={value!r} is not accepted: {name} must be {accepted}")
    return check


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _check_messages(_inst: Any, _attr: Any, value: Tuple[Message, ...]) -> None:
    if not value:
        raise ConfigurationError("messages is empty: pass at least one message, e.g. messages=\"Hello\" "
                                 "or [{\"role\": \"user\", \"content\": \"Hello\"}]")


@attrs.frozen
class ChatCompletionRequest:
    """One chat-completion request, provider-neutral.

    ``model`` the model id; ``messages`` the conversation (a bare ``str`` is a user
    message). Sampling: ``max_tokens`` (tokens of output), ``temperature``,
    ``top_p``, ``n`` (number of choices), ``stop`` (a string or list),
    ``seed``, ``presence_penalty``, ``frequency_penalty``. Tools: ``tools`` and
    ``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or a tool name).
    ``response_format`` is passed as given (e.g. ``{"type": "json_object"}``);
    ``reasoning_effort`` (``"low"|"medium"|"high"``) for reasoning models, or
    ``reasoning_budget`` (tokens of thinking: Anthropic ``budget_tokens``, Gemini
    ``thinkingBudget``) where the provider takes a budget;
    ``user`` an end-user id; ``extra_body`` fields merged into the provider's JSON
    body as they are, for options llmlib does not model.
    """

    model: str = attrs.field(validator=_check("model", lambda v: isinstance(v, str) and bool(v.strip()),
                                              "a non-empty model id string"))
    messages: Tuple[Message, ...] = attrs.field(converter=_messages, validator=_check_messages)
    max_tokens: Optional[int] = attrs.field(
        default=None, validator=_check("max_tokens", lambda v: _whole(v) and v >= 1, "a whole number >= 1"))
    temperature: Optional[float] = attrs.field(
        default=None, validator=_check("temperature", lambda v: _number(v) and 0 <= v <= 2, "a number from 0 to 2"))
    top_p: Optional[float] = attrs.field(
        default=None, validator=_check("top_p", lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1"))
    n: Optional[int] = attrs.field(default=None, validator=_check("n", lambda v: _whole(v) and v >= 1,
                                                                  "a whole number >= 1"))
    stop: Union[str, Sequence[str], None] = None
    seed: Optional[int] = attrs.field(default=None, validator=_check("seed", _whole, "a whole number"))
    presence_penalty: Optional[float] = attrs.field(
        default=None, validator=_check("presence_penalty", lambda v: _number(v) and -2 <= v <= 2,
                                       "a number from -2 to 2"))
    frequency_penalty: Optional[float] = attrs.field(
        default=None, validator=_check("frequency_penalty", lambda v: _number(v) and -2 <= v <= 2,
                                       "a number from -2 to 2"))
    tools: Optional[Tuple[Tool, ...]] = attrs.field(default=None, converter=_tools)
    tool_choice: Optional[str] = attrs.field(default=None, converter=_tool_choice)
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[Mapping[str, Any]] = None
    reasoning_effort: Optional[str] = None
    reasoning_budget: Optional[int] = attrs.field(
        default=None, validator=_check("reasoning_budget", lambda v: _whole(v) and v >= -1,
                                       "a whole number of tokens >= 0, or -1 (dynamic, Gemini)"))
    user: Optional[str] = None
    extra_body: Optional[Mapping[str, Any]] = None

    def with_changes(self, **changes: Any) -> "ChatCompletionRequest":
        """A copy with some fields replaced (``attrs.evolve``)."""
        return attrs.evolve(self, **changes)


@attrs.frozen
class Usage:
    """Token counts of one call. ``reasoning_tokens`` (part of
    ``completion_tokens``) and ``cached_tokens`` (part of ``prompt_tokens``) are
    None when the provider does not report them.

    ``raw`` is the provider's usage object as sent, for what these fields do not
    hold (OpenRouter's ``cost`` and ``cost_details``, Groq's timings, Perplexity's
    search counts...); set by the OpenAI-compatible protocols, None otherwise. It
    takes no part in equality."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        """This usage as an OpenAI ``usage`` object (with ``*_details`` when known)."""
        out: Dict[str, Any] = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                               "total_tokens": self.total_tokens}
        if self.reasoning_tokens is not None:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return out
    raw: Optional[Mapping[str, Any]] = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class Choice:
    """One complete answer: ``message`` (role assistant), ``finish_reason`` (one of
    :data:`FINISH_REASONS` or None), ``logprobs`` as the provider sent them."""

    index: int
    message: Message
    finish_reason: Optional[str] = None
    logprobs: Any = attrs.field(default=None, eq=False, repr=False)


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@attrs.frozen
class RateLimits:
    """The rate-limit headers of one response, parsed: OpenAI's
    ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` and Anthropic's
    ``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``. Counts are
    whole numbers (None when absent); ``*_reset`` is the header's text (a
    duration such as ``6m0s`` for OpenAI, an RFC 3339 time for Anthropic); ``raw``
    holds every rate-limit header as sent."""

    requests_limit: Optional[int] = None
    requests_remaining: Optional[int] = None
    requests_reset: Optional[str] = None
    tokens_limit: Optional[int] = None
    tokens_remaining: Optional[int] = None
    tokens_reset: Optional[str] = None
    raw: Mapping[str, str] = attrs.field(factory=dict, eq=False)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Optional["RateLimits"]:
        """The rate limits in ``headers`` (case-insensitive), or None when there are none."""
        raw = {k.lower(): v for k, v in headers.items() if "ratelimit" in k.lower()}
        if not raw:
            return None

        def get(kind: str, what: str) -> Optional[str]:
            return raw.get(f"x-ratelimit-{what}-{kind}") or raw.get(f"anthropic-ratelimit-{kind}-{what}")

        return cls(_int(get("requests", "limit")), _int(get("requests", "remaining")), get("requests", "reset"),
                   _int(get("tokens", "limit")), _int(get("tokens", "remaining")), get("tokens", "reset"), raw)


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id", "cf-ray")


@attrs.frozen
class HTTPInfo:
    """What the HTTP response of a call said besides its body: ``status_code``,
    ``headers`` (a case-insensitive mapping as sent), the provider's
    ``request_id`` (for support tickets) and the parsed ``rate_limits``."""

    status_code: int
    headers: Mapping[str, str] = attrs.field(eq=False, repr=False)
    request_id: Optional[str] = None
    rate_limits: Optional[RateLimits] = None

    @classmethod
    def of(cls, status_code: int, headers: Mapping[str, str]) -> "HTTPInfo":
        request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if headers.get(h)), None)
        return cls(status_code, headers, request_id, RateLimits.from_headers(headers))


@attrs.frozen
class ChatCompletionResponse:
    """A complete chat completion (OpenAI ``chat.completion`` object).

    ``text`` is the first choice's text; ``usage`` is None when the provider did
    not report it. ``http`` (an :class:`HTTPInfo`: status, headers, request id,
    rate limits) is set on answers of :meth:`Client.chat_completion`.
    ``to_dict()`` / ``from_dict()`` convert to and from the OpenAI-compatible
    JSON shape.
    """

    id: Optional[str]
    model: Optional[str]
    choices: Tuple[Choice, ...] = attrs.field(converter=_tuple)
    usage: Optional[Usage] = None
    created: Optional[int] = None
    object: str = "chat.completion"
    system_fingerprint: Optional[str] = None
    http: Optional[HTTPInfo] = attrs.field(default=None, eq=False, repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """This answer as an OpenAI ``chat.completion`` dict (JSON-ready)."""
        from llmlib.providers.openai import encode_message

        out: Dict[str, Any] = {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                               "choices": []}
        for c in self.choices:
            message = encode_message(c.message)
            if c.message.reasoning_content is not None:
                message["reasoning_content"] = c.message.reasoning_content
            if c.message.refusal is not None:
                message["refusal"] = c.message.refusal
            out["choices"].append({"index": c.index, "message": message, "finish_reason": c.finish_reason,
                                   "logprobs": c.logprobs})
        if self.usage is not None:
            out["usage"] = self.usage.to_dict()
        if self.system_fingerprint is not None:
            out["system_fingerprint"] = self.system_fingerprint
        return out

    def _repr_markdown_(self) -> str:
        """How Jupyter shows an answer: its text as Markdown, reasoning collapsed, tool calls."""
        from llmlib.notebook import markdown

        return markdown(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "ChatCompletionResponse":
        """An answer from an OpenAI ``chat.completion`` dict (as :meth:`to_dict` gives).
        Raises DecodeError for a dict of another shape."""
        from llmlib.errors import DecodeError
        from llmlib.providers.openai import decode_response

        try:
            return decode_response(dict(obj))
        except Exception as exc:  # noqa: BLE001 - any shape error is the caller's bad input
            raise DecodeError(f"not a chat.completion dict ({type(exc).__name__}: {exc})") from None

    @property
    def text(self) -> str:
        """``choices[0].message.content.as_text()``; "" when there is no text."""
        return self.choices[0].message.text if self.choices else ""

    @property
    def message(self) -> Optional[Message]:
        return self.choices[0].message if self.choices else None

    @property
    def finish_reason(self) -> Optional[str]:
        return self.choices[0].finish_reason if self.choices else None

    @property
    def reasoning_content(self) -> Optional[str]:
        return self.choices[0].message.reasoning_content if self.choices else None

    @property
    def tool_calls(self):
        """The first choice's tool calls (a tuple, possibly empty)."""
        return (self.choices[0].message.tool_calls or ()) if self.choices else ()


@attrs.define
class FunctionCallDelta:
    """A piece of a streamed function call: ``name`` arrives once, ``arguments`` in
    fragments to be concatenated."""

    name: Optional[str] = None
    arguments: Optional[str] = None


@attrs.define
class ToolCallDelta:
    """A piece of a streamed tool call (OpenAI ``delta.tool_calls[]``).

    ``index`` says which call it belongs to (several may stream in parallel);
    ``id``, ``type`` and ``function.name`` come on the first piece of a call.
    """

    index: int
    id: Optional[str] = None
    type: Optional[str] = None
    function: FunctionCallDelta = attrs.Factory(FunctionCallDelta)


@attrs.define
class Delta:
    """What one chunk adds to a choice: ``role`` (first chunk), ``content`` (text),
    ``reasoning_content`` (visible reasoning), ``tool_calls`` (pieces of calls),
    ``refusal`` (OpenAI refusal text), ``provider_fields`` (what a provider needs
    kept verbatim for the next turn, e.g. Anthropic thinking signatures or Gemini
    thought signatures; merged into ``Message.provider_fields`` by ``collect``)."""

    role: Optional[str] = None
    content: Optional[str] = None
    reasoning_content: Optional[str] = None
    tool_calls: Optional[Sequence[ToolCallDelta]] = None
    refusal: Optional[str] = None
    provider_fields: Optional[Dict[str, Any]] = None


@attrs.define
class ChunkChoice:
    """One choice's part of a chunk: ``delta`` and, on the last, ``finish_reason``."""

    index: int
    delta: Delta
    finish_reason: Optional[str] = None
    logprobs: Any = attrs.field(default=None, eq=False, repr=False)


_NO_CHOICE = ChunkChoice(0, Delta())


@attrs.define
class ChatCompletionChunk:
    """One streamed piece (OpenAI ``chat.completion.chunk``).

    ``choices`` may be empty (the usage-only last chunk); ``usage`` is set only on
    the last chunk. The shortcuts ``text``, ``role``, ``finish_reason`` and
    ``reasoning_content`` read ``choices[0]`` and give None when absent.
    ``provider_fields`` holds the chunk's top-level keys llmlib has no field for,
    as sent (OpenRouter's ``provider``, Groq's ``x_groq``, Perplexity's
    ``citations`` and ``search_results``, llama.cpp's ``timings``...); None when
    there are none.
    """

    id: Optional[str]
    model: Optional[str]
    choices: Sequence[ChunkChoice]
    usage: Optional[Usage] = None
    created: Optional[int] = None
    object: str = "chat.completion.chunk"
    system_fingerprint: Optional[str] = None
    provider_fields: Optional[Dict[str, Any]] = None

    @property
    def text(self) -> Optional[str]:
        return (self.choices[0] if self.choices else _NO_CHOICE).delta.content

    @property
    def role(self) -> Optional[str]:
        return (self.choices[0] if self.choices else _NO_CHOICE).delta.role

    @property
    def finish_reason(self) -> Optional[str]:
        return (self.choices[0] if self.choices else _NO_CHOICE).finish_reason

    @property
    def reasoning_content(self) -> Optional[str]:
        return (self.choices[0] if self.choices else _NO_CHOICE).delta.reasoning_content

    @property
    def tool_calls(self) -> Optional[Sequence[ToolCallDelta]]:
        return (self.choices[0] if self.choices else _NO_CHOICE).delta.tool_calls

    def to_dict(self) -> Dict[str, Any]:
        """This chunk as an OpenAI ``chat.completion.chunk`` dict (JSON-ready)."""
        choices = []
        for c in self.choices:
            d = c.delta
            delta: Dict[str, Any] = {k: v for k, v in (("role", d.role), ("content", d.content),
                                                       ("reasoning_content", d.reasoning_content),
                                                       ("refusal", d.refusal)) if v is not None}
            if d.tool_calls:
                delta["tool_calls"] = [
                    {k: v for k, v in (("index", t.index), ("id", t.id), ("type", t.type)) if v is not None}
                    | {"function": {k: v for k, v in (("name", t.function.name),
                                                      ("arguments", t.function.arguments)) if v is not None}}
                    for t in d.tool_calls]
            choices.append({"index": c.index, "delta": delta, "finish_reason": c.finish_reason})
        out: Dict[str, Any] = {"id": self.id, "object": self.object, "created": self.created, "model": self.model,
                               "choices": choices}
        if self.usage is not None:
            out["usage"] = self.usage.to_dict()
        if self.system_fingerprint is not None:
            out["system_fingerprint"] = self.system_fingerprint
        return out

    def _repr_markdown_(self) -> str:
        """How Jupyter shows a chunk: what it adds, as Markdown."""
        from llmlib.notebook import chunk_markdown

        return chunk_markdown(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> "ChatCompletionChunk":
        """A chunk from an OpenAI ``chat.completion.chunk`` dict (as :meth:`to_dict` gives)."""
        from llmlib.errors import DecodeError
        from llmlib.providers.openai import decode_chunk

        try:
            return decode_chunk(dict(obj))
        except Exception as exc:  # noqa: BLE001 - any shape error is the caller's bad input
            raise DecodeError(f"not a chat.completion.chunk dict ({type(exc).__name__}: {exc})") from None


@attrs.frozen(init=False)
class ModelInfo:
    """A model a provider offers. ``str(info) == info.id``.

    ``context_window`` and ``max_output_tokens`` in tokens (for Gemini the
    context window is the input token limit); ``display_name`` the provider's
    name for it. The ``supports_*`` flags (streaming, tools, vision = image
    input, audio = audio input, reasoning) are what llmlib knows of the model:
    None means unknown, never a guess. ``Client.model_info`` and
    ``Client.list_models`` merge the provider's listing with llmlib's model
    table (:mod:`llmlib.models`); ``raw`` is the provider's listing entry.

    ``context_length`` is the old name of ``context_window``: a read-only
    property, and still accepted as a keyword (it wins over ``context_window``).
    """

    id: str
    provider: Optional[str] = None
    owned_by: Optional[str] = None
    created: Optional[int] = None
    context_window: Optional[int] = None
    supports_streaming: Optional[bool] = True
    supports_tools: Optional[bool] = None
    supports_vision: Optional[bool] = None
    raw: Dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    supports_audio: Optional[bool] = None
    supports_reasoning: Optional[bool] = None
    max_output_tokens: Optional[int] = None
    display_name: Optional[str] = None

    def __init__(self, id: str, provider: Optional[str] = None, owned_by: Optional[str] = None,
                 created: Optional[int] = None, context_window: Optional[int] = None,
                 supports_streaming: Optional[bool] = True, supports_tools: Optional[bool] = None,
                 supports_vision: Optional[bool] = None, raw: Optional[Dict[str, Any]] = None,
                 supports_audio: Optional[bool] = None, supports_reasoning: Optional[bool] = None,
                 max_output_tokens: Optional[int] = None, display_name: Optional[str] = None, *,
                 context_length: Optional[int] = None) -> None:
        # A hand-written __init__ only to keep the old keyword: attrs.evolve(info,
        # context_length=n) passes both names, and the one asked for must win.
        if context_length is not None:
            context_window = context_length
        self.__attrs_init__(id, provider, owned_by, created, context_window, supports_streaming,
                            supports_tools, supports_vision, {} if raw is None else raw, supports_audio,
                            supports_reasoning, max_output_tokens, display_name)

    @property
    def context_length(self) -> Optional[int]:
        """The old name of :attr:`context_window`."""
        return self.context_window

    def __str__(self) -> str:
        return self.id

