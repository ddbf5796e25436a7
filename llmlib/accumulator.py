"""What a stream has brought so far, folded into one response as chunks arrive.

:class:`Accumulator` is how a stream keeps what arrived (for ``.partial`` and
:func:`llmlib.collect`) without keeping its chunks: memory grows with the text
received, about a byte per character, not with the number of chunks.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from llmlib.messages import FunctionCall, Message, ToolCall
from llmlib.types import ChatCompletionChunk, ChatCompletionResponse, Choice, Usage

__all__ = ["Accumulator"]


_COMPACT = 64  # pieces joined into one block, and blocks joined into one large block


class _Text:
    """Text received in pieces, kept at about a byte per character whatever the
    pieces' count. Every :data:`_COMPACT` pieces are joined into a block, and
    every :data:`_COMPACT` blocks into a large one (~20 kB of 5-character
    tokens), so each character is copied twice at most before :meth:`value`,
    and the per-str overhead (~50 bytes) is paid per 64 x 64 pieces, not per token."""

    __slots__ = ("blocks", "large", "small")

    def __init__(self) -> None:
        self.large = 0  # blocks[:large] are large blocks, the rest blocks of _COMPACT pieces
        self.blocks: List[str] = []
        self.small: List[str] = []

    def add(self, text: str) -> None:
        small = self.small
        small.append(text)
        if len(small) >= _COMPACT:
            self.compact()

    def compact(self) -> None:
        blocks = self.blocks
        blocks.append("".join(self.small))
        self.small.clear()
        if len(blocks) - self.large >= _COMPACT:
            blocks[self.large:] = ["".join(blocks[self.large:])]
            self.large += 1

    def __bool__(self) -> bool:
        return bool(self.blocks or self.small)

    def value(self) -> str:
        return "".join(self.blocks) + "".join(self.small)


class _ChoiceState:
    __slots__ = ("role", "content", "reasoning", "refusal", "calls", "finish_reason", "fields")

    def __init__(self) -> None:
        self.fields: Optional[Dict[str, Any]] = None
        self.role: Optional[str] = None
        self.content = _Text()
        self.reasoning = _Text()
        self.refusal = _Text()
        self.calls: Dict[int, List] = {}  # index -> [id, type, name, [argument pieces]]
        self.finish_reason: Optional[str] = None


class Accumulator:
    """Builds a response from chunks one at a time (what :func:`collect` uses).

    ``add(chunk)`` folds a chunk in (``add_content`` and ``add_arguments`` one
    piece of text that came without a chunk); ``response()`` gives the response so far, at
    any moment (the stream layer uses it for the ``.partial`` of a broken stream);
    ``count`` is the number of chunks (and pieces) added. Memory grows with the text received,
    about a byte per character, not with the number of chunks.
    """

    __slots__ = ("id", "model", "created", "system_fingerprint", "usage", "count", "_choices")

    def __init__(self) -> None:
        self.id: Optional[str] = None
        self.model: Optional[str] = None
        self.created: Optional[int] = None
        self.system_fingerprint: Optional[str] = None
        self.usage: Optional[Usage] = None
        self.count = 0
        self._choices: Dict[int, _ChoiceState] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.count += 1
        if self.id is None and chunk.id:
            self.id = chunk.id
        if self.model is None and chunk.model:
            self.model = chunk.model
        if self.created is None and chunk.created:
            self.created = chunk.created
        if chunk.system_fingerprint:
            self.system_fingerprint = chunk.system_fingerprint
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            state = self._choices.get(choice.index)
            if state is None:
                state = self._choices[choice.index] = _ChoiceState()
            delta = choice.delta
            content = delta.content
            if content:  # _Text.add, inlined: once per token
                small = state.content.small
                small.append(content)
                if len(small) >= _COMPACT:
                    state.content.compact()
            calls = delta.tool_calls
            if calls:
                call = calls[0]
                entry = state.calls.get(call.index)
                function = call.function
                arguments = function.arguments
                if len(calls) == 1 and entry is not None and arguments and call.id is None \
                        and call.type is None and function.name is None:
                    entry[3].add(arguments)  # more arguments of a started call: once per token
                else:
                    self._add_calls(state, calls)
            if delta.reasoning_content:
                state.reasoning.add(delta.reasoning_content)
            if delta.role:
                state.role = delta.role
            if delta.refusal:
                state.refusal.add(delta.refusal)
            if delta.provider_fields:
                if state.fields is None:
                    state.fields = {}
                state.fields.update(delta.provider_fields)
            if choice.finish_reason is not None:
                state.finish_reason = choice.finish_reason

    def add_content(self, choice: int, text: str) -> None:
        """Fold in a piece of choice ``choice``'s answer text that came as an
        event, without a chunk (a stream read through :func:`llmlib.streaming.events`)."""
        self.count += 1
        state = self._choices.get(choice)
        if state is None:
            state = self._choices[choice] = _ChoiceState()
        state.content.add(text)

    def add_arguments(self, choice: int, call: int, text: str) -> None:
        """Fold in a piece of the arguments of tool call ``call`` (its index) of
        choice ``choice`` that came as an event, without a chunk."""
        self.count += 1
        state = self._choices.get(choice)
        if state is None:
            state = self._choices[choice] = _ChoiceState()
        entry = state.calls.get(call)
        if entry is None:
            entry = state.calls[call] = [None, None, None, _Text()]
        entry[3].add(text)

    @staticmethod
    def _add_calls(state: _ChoiceState, calls: Any) -> None:
        for call in calls:
            entry = state.calls.get(call.index)
            if entry is None:
                entry = state.calls[call.index] = [None, None, None, _Text()]
            if call.id:
                entry[0] = call.id
            if call.type:
                entry[1] = call.type
            function = call.function
            name = function.name
            if name and name != entry[2]:
                # Sent once by most providers, repeated by some, in pieces by a few.
                entry[2] = name if entry[2] is None else entry[2] + name
            if function.arguments:
                entry[3].add(function.arguments)

    def response(self) -> ChatCompletionResponse:
        choices = []
        for index in sorted(self._choices):
            s = self._choices[index]
            calls = tuple(
                ToolCall(e[0] or "", FunctionCall(e[2] or "", e[3].value()), e[1] or "function")
                for _, e in sorted(s.calls.items())
            )
            message = Message(
                s.role or "assistant",
                s.content.value() if s.content or not calls else None,
                calls or None,
                reasoning_content=s.reasoning.value() if s.reasoning else None,
                refusal=s.refusal.value() if s.refusal else None,
                provider_fields=s.fields,
            )
            choices.append(Choice(index, message, s.finish_reason))
        return ChatCompletionResponse(self.id, self.model, choices, self.usage, self.created,
                                      "chat.completion", self.system_fingerprint)
