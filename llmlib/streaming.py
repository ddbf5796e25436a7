"""Helpers over any iterable of :class:`~llmlib.ChatCompletionChunk`.

``collect(chunks)`` assembles the complete :class:`~llmlib.ChatCompletionResponse`
(text, reasoning, tool calls by ``index``, finish reasons, usage);
``events(chunks)`` flattens chunks into typed events::

    ContentDelta(text) | ReasoningDelta(text) | ToolCallStart(index, id, name)
    | ToolCallDelta(index, arguments) | UsageReport(usage) | Done(finish_reason)

(this module's ``ToolCallDelta`` event is not ``llmlib.ToolCallDelta``, the piece of
a chunk: import the events from ``llmlib.streaming``).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, List, Optional, Union

import attrs

from llmlib.accumulator import Accumulator
from llmlib.types import ChatCompletionChunk, ChatCompletionResponse, Usage

__all__ = ["collect", "events", "ContentDelta", "ReasoningDelta", "ToolCallStart", "ToolCallDelta",
           "UsageReport", "Done", "StreamEvent", "Accumulator", "close_quietly"]


def collect(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletionResponse:
    """Consume ``chunks`` and return the complete response they make up.

    Text, reasoning and refusal pieces are concatenated per choice; tool calls are
    assembled by their ``index`` (several may stream in parallel); the last
    ``finish_reason`` and ``usage`` seen win. Errors raised by the stream propagate.
    """
    whole = getattr(chunks, "_collect", None)  # a ChunkStream folds its chunks in as they pass
    response = whole() if whole is not None else None
    if response is not None:
        return response
    acc = Accumulator()
    for chunk in chunks:
        acc.add(chunk)
    return acc.response()


def close_quietly(chunks: Any) -> None:
    """Close a chunk iterable that can be closed (a ChunkStream, a generator):
    its connection is freed and its request cancelled. Anything else, or an
    error while closing, is ignored."""
    close = getattr(chunks, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            pass


@attrs.frozen
class ContentDelta:
    """A piece of answer text."""
    text: str


@attrs.frozen
class ReasoningDelta:
    """A piece of visible reasoning text."""
    text: str


@attrs.frozen
class ToolCallStart:
    """A tool call begins: its ``index`` in this answer, ``id`` and function ``name``."""
    index: int
    id: Optional[str]
    name: Optional[str]


@attrs.frozen
class ToolCallDelta:
    """A fragment of the JSON ``arguments`` of tool call ``index``."""
    index: int
    arguments: str


@attrs.frozen
class UsageReport:
    """Token usage, reported once near the end."""
    usage: Usage


@attrs.frozen
class Done:
    """The answer ended, with this finish reason."""
    finish_reason: Optional[str]


StreamEvent = Union[ContentDelta, ReasoningDelta, ToolCallStart, ToolCallDelta, UsageReport, Done]


def events(chunks: Iterable[ChatCompletionChunk], choice: int = 0) -> Iterator[StreamEvent]:
    """Flatten the chunks of one choice (``choice``, default 0) into typed events.

    A ``ToolCallStart`` comes once per call, before its ``ToolCallDelta`` fragments;
    ``Done`` comes when the choice's ``finish_reason`` arrives; ``UsageReport``
    when usage arrives (usually after ``Done``).

    Given a :class:`~llmlib.response_stream.ChunkStream` not yet started (what
    ``chat_completion_stream`` returns), the stream itself is returned, now
    reading its events directly: the protocol's decoder may make the per-token
    ``ContentDelta`` / ``ToolCallDelta`` without building the chunk (see
    :attr:`llmlib.providers.base.StreamDecoder.events_choice`), and everything
    else about the stream holds (``.partial``, cancel, ``close()``, ``with``,
    ``stream.http``). Any other iterable of chunks (a list, a stream already
    started, a generator) gives a generator of its events.
    """
    flatten = Flattener(choice)
    as_events = getattr(chunks, "_as_events", None)
    if as_events is not None and as_events(flatten):
        return chunks  # type: ignore[return-value]
    return _events(chunks, flatten)


def _events(chunks: Iterable[ChatCompletionChunk], flatten: "Flattener") -> Iterator[StreamEvent]:
    of = flatten.of
    # A started ChunkStream's own generator: one forwarding step less per chunk.
    for chunk in getattr(chunks, "_gen", chunks):
        yield from of(chunk)


# The per-token events are built as attrs' own frozen __init__ builds them (no
# validators or converters here), without its Python call: each field set
# through its slot, a third of the cost.
_new = object.__new__
_set_text = ContentDelta.text.__set__
_set_index, _set_arguments = ToolCallDelta.index.__set__, ToolCallDelta.arguments.__set__


def content_delta(text: str) -> ContentDelta:
    """``ContentDelta(text)``, made at a third of the cost (a decoder's per-token event)."""
    event = _new(ContentDelta)
    _set_text(event, text)
    return event


def tool_call_delta(index: int, arguments: str) -> ToolCallDelta:
    """``ToolCallDelta(index, arguments)``, made at a third of the cost."""
    event = _new(ToolCallDelta)
    _set_index(event, index)
    _set_arguments(event, arguments)
    return event


class Flattener:
    """The events of choice ``choice``, chunk by chunk: what :func:`events` runs.

    ``of(chunk)`` gives the events of one chunk (a list, often empty or of one);
    it remembers which tool calls have started. A stream read as events
    (:meth:`~llmlib.response_stream.ChunkStream._as_events`) gives it its
    accumulator (``received``) and folds there, with ``fold(event)``, each
    ``ContentDelta`` / ``ToolCallDelta`` its decoder made without a chunk.
    """

    __slots__ = ("choice", "started", "received")

    def __init__(self, choice: int = 0) -> None:
        self.choice = choice
        self.started: set = set()
        self.received: Optional[Accumulator] = None

    def of(self, chunk: ChatCompletionChunk) -> List[StreamEvent]:
        out: List[StreamEvent] = []
        choice = self.choice
        for c in chunk.choices:
            if c.index != choice:
                continue
            d = c.delta
            if d.reasoning_content:
                out.append(ReasoningDelta(d.reasoning_content))
            if d.content:
                out.append(content_delta(d.content))
            calls = d.tool_calls
            if calls:
                started = self.started
                for call in calls:
                    index = call.index
                    if index not in started:
                        started.add(index)
                        out.append(ToolCallStart(index, call.id, call.function.name))
                    arguments = call.function.arguments
                    if arguments:
                        out.append(tool_call_delta(index, arguments))
            if c.finish_reason is not None:
                out.append(Done(c.finish_reason))
        if chunk.usage is not None:
            out.append(UsageReport(chunk.usage))
        return out

    def fold(self, event: Union[ContentDelta, ToolCallDelta]) -> None:
        if event.__class__ is ContentDelta:
            self.received.add_content(self.choice, event.text)  # type: ignore[union-attr]
        else:
            self.received.add_arguments(self.choice, event.index, event.arguments)  # type: ignore[union-attr]
