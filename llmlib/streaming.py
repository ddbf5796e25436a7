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

from typing import Any, Iterable, Iterator, Optional, Union

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
    """
    started = set()
    # The per-token events are built as attrs' own frozen __init__ builds them (no
    # validators or converters here), without its Python call: each field set
    # through its slot, a third of the cost.
    new = object.__new__
    set_text, set_index, set_arguments = ContentDelta.text.__set__, ToolCallDelta.index.__set__, \
        ToolCallDelta.arguments.__set__
    # A ChunkStream's own generator: one forwarding step less per chunk.
    for chunk in getattr(chunks, "_gen", chunks):
        for c in chunk.choices:
            if c.index != choice:
                continue
            d = c.delta
            if d.reasoning_content:
                yield ReasoningDelta(d.reasoning_content)
            text = d.content
            if text:
                event = new(ContentDelta)
                set_text(event, text)
                yield event
            calls = d.tool_calls
            if calls:
                for call in calls:
                    index = call.index
                    if index not in started:
                        started.add(index)
                        yield ToolCallStart(index, call.id, call.function.name)
                    arguments = call.function.arguments
                    if arguments:
                        event = new(ToolCallDelta)
                        set_index(event, index)
                        set_arguments(event, arguments)
                        yield event
            if c.finish_reason is not None:
                yield Done(c.finish_reason)
        if chunk.usage is not None:
            yield UsageReport(chunk.usage)
