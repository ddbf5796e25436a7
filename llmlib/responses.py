"""OpenAI's Responses API as llmlib values: the request, the result, its output
items, the stream's events, and :func:`collect_responses`.

::

    for event in client.responses_stream(model="gpt-4.1", input="Count to 5"):
        if isinstance(event, OutputTextDelta):
            print(event.text, end="", flush=True)
    result = client.responses(model="gpt-4.1", input="Count to 5")
    result.output_text, result.function_calls, result.reasoning_summary, result.usage

Stream events (``event.type`` is the wire name)::

    ResponseCreated(response)                  response.created
    OutputTextDelta(text, item_id, ...)        response.output_text.delta
    RefusalDelta(text, item_id, ...)           response.refusal.delta
    FunctionCallStart(item_id, call_id, name)  response.output_item.added of a function call
    FunctionCallArgumentsDelta(item_id, delta) response.function_call_arguments.delta
    ReasoningSummaryTextDelta(text, ...)       response.reasoning_summary_text.delta
    ReasoningTextDelta(text, ...)              response.reasoning_text.delta (raw reasoning)
    OutputItemAdded(output_index, item)        response.output_item.added of any other item
    OutputItemDone(output_index, item)         response.output_item.done
    ResponseCompleted(response)                response.completed (with usage)
    ResponseEvent(type, data)                  any other event, as sent

``error``, ``response.failed`` and ``response.incomplete`` are raised, not
yielded: an :class:`~llmlib.APIStatusError` subclass for the first two,
:class:`ResponseIncompleteError` for the last, each with ``.partial`` (a
:class:`ResponsesResult` of what arrived). ``client.responses(...)`` raises the same
for a failed or incomplete answer.

Providers without ``POST /responses`` get the same calls through chat completions
(:mod:`llmlib.responses_fallback`): the stream is created, text (and reasoning,
tool-call) deltas, completed with usage; ``result.fallback`` and
``stream.fallback`` are True. The wire format is in
:mod:`llmlib.providers.openai_responses`.
"""

from __future__ import annotations

import collections.abc
import json
from typing import Any, ClassVar, Dict, Iterable, Iterator, Mapping, Optional, Tuple, Union

import attrs

from llmlib.errors import ConfigurationError, StreamError
from llmlib.accumulator import _Text
from llmlib.types import Usage

__all__ = [
    "ResponsesRequest", "ResponsesResult", "MessageItem", "FunctionCallItem", "ReasoningItem", "OutputItem",
    "FunctionCallOutput", "ResponseCreated", "OutputTextDelta", "RefusalDelta", "FunctionCallStart",
    "FunctionCallArgumentsDelta", "ReasoningSummaryTextDelta", "ReasoningTextDelta", "OutputItemAdded",
    "OutputItemDone", "ResponseCompleted", "ResponseEvent", "ResponsesEvent", "ResponseIncompleteError",
    "ResponseEventStream", "ResponsesAccumulator", "collect_responses",
]


def _tuple(value: Any) -> Tuple[Any, ...]:
    return tuple(value) if value is not None else ()


# ---------------------------------------------------------------- the request


_FIELDS = ("instructions", "tools", "tool_choice", "max_output_tokens", "reasoning")


@attrs.frozen
class ResponsesRequest:
    """One Responses API call, before it is encoded for a provider.

    ``input`` is a str (one user message) or a sequence of input items: dicts in
    the Responses shape (sent as they are), :class:`~llmlib.Message` values, items
    of an earlier result's ``output`` (``[*result.output, FunctionCallOutput(...)]``)
    or whole :class:`ResponsesResult` values (their output), and
    :class:`FunctionCallOutput`. ``tools`` holds :class:`~llmlib.Tool` values or
    Responses tool dicts; ``tool_choice`` is ``"auto"``, ``"none"``,
    ``"required"``, a function name or a dict; ``reasoning`` an effort word
    (``"low"``) or a dict (``{"effort": "low", "summary": "auto"}``); ``extra``
    other body fields, sent as they are (``temperature``, ``store``, ``include``...).
    """

    model: str
    input: Union[str, Tuple[Any, ...]]
    instructions: Optional[str] = None
    tools: Optional[Tuple[Any, ...]] = attrs.field(default=None, converter=attrs.converters.optional(tuple))
    tool_choice: Any = None
    max_output_tokens: Optional[int] = None
    reasoning: Union[str, Mapping[str, Any], None] = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def build(cls, model: Optional[str], input: Any, kwargs: Mapping[str, Any]) -> "ResponsesRequest":
        """From ``client.responses(...)`` arguments: the named fields, and the rest as
        ``extra``. Raises ConfigurationError for a missing model or input."""
        if not model or not isinstance(model, str):
            raise ConfigurationError("name the model: client.responses(model=..., input=...)")
        if isinstance(input, str):
            if not input:
                raise ConfigurationError("input is an empty str; pass the prompt, or a list of input items")
        elif input is None or isinstance(input, (bytes, bytearray)):
            raise ConfigurationError("input must be a str or a list of input items: "
                                     "client.responses(model=..., input=...)")
        else:
            if isinstance(input, (Mapping, ResponsesResult)) or not isinstance(input, Iterable):
                input = [input]  # one input item
            input = tuple(input)
            if not input:
                raise ConfigurationError("input is an empty list; add at least one input item")
        known = {k: kwargs[k] for k in _FIELDS if k in kwargs}
        extra = {k: v for k, v in kwargs.items() if k not in known}
        for name in ("model", "input", "stream"):
            if name in extra:
                raise ConfigurationError(f"{name!r} cannot be passed as an extra body field")
        return cls(model, input, extra=extra, **known)


# ---------------------------------------------------------------- output items


@attrs.frozen
class MessageItem:
    """An assistant message: ``text`` (its ``output_text`` parts joined) and
    ``refusal`` (None when it did not refuse). ``raw`` is the item as sent."""

    id: Optional[str]
    text: str = ""
    refusal: Optional[str] = None
    role: str = "assistant"
    status: Optional[str] = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    type: ClassVar[str] = "message"

    def to_input(self) -> Dict[str, Any]:
        """This item as an input item of a next turn."""
        if self.raw:
            return dict(self.raw)
        return {"role": self.role, "content": self.text}


@attrs.frozen
class FunctionCallItem:
    """A call of one of your functions: ``call_id`` (to answer with a
    :class:`FunctionCallOutput`), ``name`` and ``arguments`` (a JSON string as the
    model wrote it; it may be invalid JSON)."""

    id: Optional[str]
    call_id: Optional[str]
    name: Optional[str]
    arguments: str = ""
    status: Optional[str] = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    type: ClassVar[str] = "function_call"

    def to_input(self) -> Dict[str, Any]:
        if self.raw:
            return dict(self.raw)
        return {"type": "function_call", "call_id": self.call_id, "name": self.name, "arguments": self.arguments}


@attrs.frozen
class ReasoningItem:
    """The model's reasoning: ``summary`` (the parts of the reasoning summary,
    when one was asked for), ``text`` (raw reasoning text, from models that show
    it and from the chat fallback's ``reasoning_content``), ``encrypted_content``
    (with ``include=["reasoning.encrypted_content"]``, to send back with ``store=False``)."""

    id: Optional[str]
    summary: Tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    text: Optional[str] = None
    encrypted_content: Optional[str] = attrs.field(default=None, repr=False)
    status: Optional[str] = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    type: ClassVar[str] = "reasoning"

    def to_input(self) -> Dict[str, Any]:
        if self.raw:
            return dict(self.raw)
        summary = [{"type": "summary_text", "text": s} for s in self.summary]
        out: Dict[str, Any] = {"type": "reasoning", "summary": summary}
        if self.id:
            out["id"] = self.id
        if self.encrypted_content is not None:
            out["encrypted_content"] = self.encrypted_content
        return out


@attrs.frozen
class OutputItem:
    """Any other output item (a web search call, an image generation...), as sent."""

    type: str
    id: Optional[str]
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def to_input(self) -> Dict[str, Any]:
        return dict(self.raw)


Item = Union[MessageItem, FunctionCallItem, ReasoningItem, OutputItem]


@attrs.frozen
class FunctionCallOutput:
    """The result of a function call, sent in the next turn's input: ``call_id``
    of the :class:`FunctionCallItem` it answers and ``output`` (a str; anything
    else is sent as JSON)."""

    call_id: str
    output: Any

    def to_input(self) -> Dict[str, Any]:
        output = self.output if isinstance(self.output, str) else json.dumps(self.output)
        return {"type": "function_call_output", "call_id": self.call_id, "output": output}


# ---------------------------------------------------------------- the result


@attrs.frozen
class ResponsesResult:
    """A Responses API answer (the ``response`` object).

    ``status`` is ``"completed"``, ``"in_progress"`` (a partial answer),
    ``"incomplete"``, ``"failed"``, ``"queued"``; ``output`` the items in order;
    ``usage`` a :class:`~llmlib.Usage` (``input_tokens`` as ``prompt_tokens``,
    ``output_tokens`` as ``completion_tokens``), None until reported; ``error``
    and ``incomplete_details`` as sent. ``fallback`` is True when the answer came
    through chat completions (a provider without ``/responses``).
    """

    id: Optional[str]
    model: Optional[str]
    status: Optional[str]
    output: Tuple[Item, ...] = attrs.field(default=(), converter=_tuple)
    usage: Optional[Usage] = None
    created_at: Optional[int] = None
    error: Optional[Mapping[str, Any]] = None
    incomplete_details: Optional[Mapping[str, Any]] = None
    fallback: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def output_text(self) -> str:
        """The text of every message item, joined ("" when there is none)."""
        return "".join(i.text for i in self.output if isinstance(i, MessageItem))

    @property
    def function_calls(self) -> Tuple[FunctionCallItem, ...]:
        return tuple(i for i in self.output if isinstance(i, FunctionCallItem))

    @property
    def reasoning_summary(self) -> Optional[str]:
        """Every reasoning summary part, joined by blank lines; None when there is none."""
        parts = [s for i in self.output if isinstance(i, ReasoningItem) for s in i.summary if s]
        return "\n\n".join(parts) if parts else None

    @property
    def reasoning_text(self) -> Optional[str]:
        """The raw reasoning text (not the summary); None when there is none."""
        parts = [i.text for i in self.output if isinstance(i, ReasoningItem) and i.text]
        return "".join(parts) if parts else None

    @property
    def refusal(self) -> Optional[str]:
        parts = [i.refusal for i in self.output if isinstance(i, MessageItem) and i.refusal]
        return "".join(parts) if parts else None


class ResponseIncompleteError(StreamError):
    """The response ended incomplete (``response.incomplete``, or a chat fallback
    that stopped for length or a content filter): ``reason`` says why
    (``"max_output_tokens"``, ``"content_filter"``), ``.partial`` holds what arrived."""

    def __init__(self, message: str, *, reason: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason


# ---------------------------------------------------------------- events
# The deltas are built once per streamed token: plain slotted classes, as for chunks.


@attrs.frozen
class ResponseCreated:
    """The response exists (id, model, status ``in_progress``); no output yet."""

    response: ResponsesResult
    type: ClassVar[str] = "response.created"


@attrs.define
class OutputTextDelta:
    """A piece of answer text."""

    text: str
    item_id: Optional[str] = None
    output_index: Optional[int] = None
    content_index: Optional[int] = None
    logprobs: Any = attrs.field(default=None, eq=False, repr=False)
    type: ClassVar[str] = "response.output_text.delta"


@attrs.define
class RefusalDelta:
    """A piece of refusal text."""

    text: str
    item_id: Optional[str] = None
    output_index: Optional[int] = None
    content_index: Optional[int] = None
    type: ClassVar[str] = "response.refusal.delta"


@attrs.frozen
class FunctionCallStart:
    """A function call begins: its item, ``call_id`` and function ``name``."""

    item_id: Optional[str]
    call_id: Optional[str]
    name: Optional[str]
    output_index: Optional[int] = None
    type: ClassVar[str] = "response.output_item.added"


@attrs.define
class FunctionCallArgumentsDelta:
    """A fragment of the JSON arguments of the function call ``item_id``."""

    item_id: Optional[str]
    delta: str
    output_index: Optional[int] = None
    type: ClassVar[str] = "response.function_call_arguments.delta"


@attrs.define
class ReasoningSummaryTextDelta:
    """A piece of the reasoning summary (part ``summary_index`` of item ``item_id``)."""

    text: str
    item_id: Optional[str] = None
    output_index: Optional[int] = None
    summary_index: int = 0
    type: ClassVar[str] = "response.reasoning_summary_text.delta"


@attrs.define
class ReasoningTextDelta:
    """A piece of raw reasoning text (models that show it; the chat fallback's
    ``reasoning_content``)."""

    text: str
    item_id: Optional[str] = None
    output_index: Optional[int] = None
    content_index: Optional[int] = None
    type: ClassVar[str] = "response.reasoning_text.delta"


@attrs.frozen
class OutputItemAdded:
    """An output item (other than a function call) begins."""

    output_index: Optional[int]
    item: Item
    type: ClassVar[str] = "response.output_item.added"


@attrs.frozen
class OutputItemDone:
    """An output item is complete: ``item`` is its final form."""

    output_index: Optional[int]
    item: Item
    type: ClassVar[str] = "response.output_item.done"


@attrs.frozen
class ResponseCompleted:
    """The response is complete: ``response`` is the whole answer, with usage."""

    response: ResponsesResult
    type: ClassVar[str] = "response.completed"


@attrs.frozen
class ResponseEvent:
    """Any other event (``response.in_progress``, ``response.content_part.added``,
    ``response.output_text.done``...): its ``type`` and decoded ``data``."""

    type: str
    data: Mapping[str, Any] = attrs.field(eq=False, repr=False)


ResponsesEvent = Union[ResponseCreated, OutputTextDelta, RefusalDelta, FunctionCallStart,
                       FunctionCallArgumentsDelta, ReasoningSummaryTextDelta, ReasoningTextDelta,
                       OutputItemAdded, OutputItemDone, ResponseCompleted, ResponseEvent]


class ResponseEventStream(collections.abc.Iterator):
    """The events of one streamed response: an iterator, and a context manager.

    ``fallback`` is True when the events come from chat completions. ``close()``
    (or leaving a ``with`` block) closes the connection at once; dropping the
    stream closes it too. Raises from the for-loop what the stream raises (see
    the module docstring), with ``.partial`` a :class:`ResponsesResult`.
    """

    __slots__ = ("_events", "_resource", "fallback", "__weakref__")

    def __init__(self, events: Iterator[Any], fallback: bool = False, resource: Any = None) -> None:
        self._events = events
        self._resource = resource
        self.fallback = fallback

    def __iter__(self) -> "ResponseEventStream":
        return self

    def __next__(self) -> ResponsesEvent:
        return self._events.__next__()

    def close(self) -> None:
        """Stop the stream and close its connection (idempotent)."""
        try:
            close = getattr(self._events, "close", None)
            if close is not None:
                close()
        finally:
            if self._resource is not None:
                self._resource.close()

    @property
    def http(self) -> Any:
        """The HTTP response's status, headers, request id and rate limits, when
        the underlying stream knows them (else None)."""
        return getattr(self._resource if self._resource is not None else self._events, "http", None)

    def __enter__(self) -> "ResponseEventStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ResponseEventStream fallback={self.fallback}>"


# ---------------------------------------------------------------- collecting


class _ItemState:
    __slots__ = ("kind", "id", "item", "done", "text", "refusal", "arguments", "summary", "reasoning",
                 "call_id", "name")

    def __init__(self, kind: Optional[str], item_id: Optional[str]) -> None:
        self.kind, self.id = kind, item_id
        self.item: Optional[Item] = None
        self.done = False
        self.text, self.refusal, self.arguments, self.reasoning = _Text(), _Text(), _Text(), _Text()
        self.summary: Dict[int, _Text] = {}
        self.call_id: Optional[str] = None
        self.name: Optional[str] = None

    def build(self) -> Optional[Item]:
        item = self.item
        deltas = bool(self.text or self.refusal or self.arguments or self.summary or self.reasoning)
        if item is not None and (self.done or not deltas):
            return item  # the item as sent: final once done
        if self.kind == "function_call":
            return FunctionCallItem(self.id, self.call_id or getattr(item, "call_id", None),
                                    self.name or getattr(item, "name", None), self.arguments.value(), "in_progress")
        if not deltas:
            return None
        if self.kind == "reasoning":
            summary = tuple(self.summary[i].value() for i in sorted(self.summary))
            return ReasoningItem(self.id, summary or getattr(item, "summary", ()),
                                 self.reasoning.value() if self.reasoning else getattr(item, "text", None),
                                 getattr(item, "encrypted_content", None), "in_progress")
        return MessageItem(self.id, self.text.value(), self.refusal.value() if self.refusal else None,
                           status="in_progress")


class ResponsesAccumulator:
    """Builds a :class:`ResponsesResult` from events one at a time (what
    :func:`collect_responses` and the stream's ``.partial`` use).

    ``add(event)`` folds an event in; ``response()`` gives the result so far at
    any moment: the ``response.completed`` (or failed, incomplete) response once
    it arrived, else the created response with the output items assembled from
    the deltas (status ``in_progress``). ``count`` is the number of events added.
    """

    __slots__ = ("count", "_base", "_final", "_items", "_by_id", "_last")

    def __init__(self) -> None:
        self.count = 0
        self._base: Optional[ResponsesResult] = None
        self._final: Optional[ResponsesResult] = None
        self._items: Dict[int, _ItemState] = {}
        self._by_id: Dict[str, int] = {}
        self._last = 0

    def _state(self, index: Optional[int], item_id: Optional[str], kind: Optional[str]) -> _ItemState:
        if index is None:  # a server that leaves out output_index: find the item by id
            if item_id is None:
                index = self._last
            else:
                index = self._by_id.get(item_id)
                if index is None:
                    index = max(self._items, default=-1) + 1
        self._last = index
        state = self._items.get(index)
        if state is None:
            state = self._items[index] = _ItemState(kind, item_id)
            if item_id is not None:
                self._by_id[item_id] = index
        else:
            if state.kind is None:
                state.kind = kind
            if state.id is None and item_id is not None:
                state.id = item_id
                self._by_id[item_id] = index
        return state

    def add(self, event: Any) -> None:
        self.count += 1
        cls = event.__class__
        if cls is OutputTextDelta:
            self._state(event.output_index, event.item_id, "message").text.add(event.text)
        elif cls is FunctionCallArgumentsDelta:
            self._state(event.output_index, event.item_id, "function_call").arguments.add(event.delta)
        elif cls is ReasoningSummaryTextDelta:
            state = self._state(event.output_index, event.item_id, "reasoning")
            part = state.summary.get(event.summary_index)
            if part is None:
                part = state.summary[event.summary_index] = _Text()
            part.add(event.text)
        elif cls is ReasoningTextDelta:
            self._state(event.output_index, event.item_id, "reasoning").reasoning.add(event.text)
        elif cls is RefusalDelta:
            self._state(event.output_index, event.item_id, "message").refusal.add(event.text)
        elif cls is FunctionCallStart:
            state = self._state(event.output_index, event.item_id, "function_call")
            state.call_id, state.name = event.call_id, event.name
        elif cls is OutputItemAdded or cls is OutputItemDone:
            state = self._state(event.output_index, event.item.id, event.item.type)
            state.item = event.item
            state.done = cls is OutputItemDone
        elif cls is ResponseCreated:
            self._base = event.response
        elif cls is ResponseCompleted:
            self._final = event.response

    def finish(self, response: ResponsesResult) -> None:
        """Fold in the terminal response of a failed or incomplete stream (which
        is raised, not yielded)."""
        self.count += 1
        self._final = response

    def items(self) -> Tuple[Item, ...]:
        built = (self._items[i].build() for i in sorted(self._items))
        return tuple(item for item in built if item is not None)

    def response(self) -> ResponsesResult:
        final = self._final
        if final is not None:
            if not final.output and self._items:
                return attrs.evolve(final, output=self.items())
            return final
        base = self._base
        if base is None:
            return ResponsesResult(None, None, None, self.items())
        return attrs.evolve(base, output=self.items(), status=base.status or "in_progress")


def collect_responses(events: Iterable[Any]) -> ResponsesResult:
    """Consume a Responses event stream and return the result it makes up.

    The ``response.completed`` response when it arrives (the provider's own
    account, with usage); otherwise what the deltas add up to. Errors raised by
    the stream propagate (their ``.partial`` holds what arrived).
    """
    acc = ResponsesAccumulator()
    for event in events:
        acc.add(event)
    return acc.response()
