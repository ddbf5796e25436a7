"""Streamed answers in Jupyter: live Markdown that a cell interrupt leaves tidy.

::

    from llmlib.notebook import display_stream

    response = display_stream(client.chat_completion_stream(model=..., messages="Explain SSE."))

The answer is rendered as Markdown in one output, updated in place (an IPython
display handle, at most every 50 ms so that a fast stream does not flood the
front end); visible reasoning sits in a collapsed ``<details>`` block above it,
and tool calls appear as they assemble. The collected
:class:`~llmlib.ChatCompletionResponse` is returned. Interrupting the cell
(KeyboardInterrupt) closes the stream, which frees its connection (the server
stops generating), leaves the partial answer on screen, and re-raises.

IPython is imported here only, and only when :func:`display_stream` runs:
:func:`markdown` (what ``_repr_markdown_`` of chunks and responses uses) needs none.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Optional

from llmlib.streaming import Accumulator, close_quietly
from llmlib.types import ChatCompletionChunk, ChatCompletionResponse

__all__ = ["display_stream", "markdown", "chunk_markdown", "INTERVAL"]

#: Seconds between two updates of the displayed answer, at least.
INTERVAL = 0.05


def markdown(response: ChatCompletionResponse, note: Optional[str] = None) -> str:
    """The first choice of ``response`` as Markdown: reasoning in a collapsed
    ``<details>`` block, then the text, then each tool call with its arguments.
    An answer of plain text gives exactly its text. ``note`` (in italics) ends it."""
    parts = []
    message = response.message
    if message is not None:
        if message.reasoning_content:
            parts.append("<details><summary>Reasoning</summary>\n\n" + message.reasoning_content.strip("\n")
                         + "\n\n</details>")
        text = response.text
        if text:
            parts.append(text)
        if message.refusal:
            parts.append(f"**Refused:** {message.refusal}")
        for call in message.tool_calls or ():
            parts.append(_tool_call(call.function.name, call.function.arguments, call.id))
    if note:
        parts.append(f"*{note}*")
    return "\n\n".join(parts)


def chunk_markdown(chunk: ChatCompletionChunk) -> str:
    """One chunk as Markdown (what it adds: text, reasoning, tool-call pieces, finish, usage)."""
    parts = []
    for choice in chunk.choices:
        d = choice.delta
        if d.reasoning_content:
            parts.append(f"*reasoning:* {d.reasoning_content}")
        if d.content:
            parts.append(d.content)
        for call in d.tool_calls or ():
            parts.append(f"*tool call {call.index}:* `{call.function.name or ''}` `{call.function.arguments or ''}`")
        if choice.finish_reason:
            parts.append(f"*finish: {choice.finish_reason}*")
    if chunk.usage is not None:
        parts.append(f"*usage: {chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} "
                     "completion tokens*")
    return "\n\n".join(parts) or "*(empty chunk)*"


def _tool_call(name: Optional[str], arguments: Optional[str], call_id: Optional[str]) -> str:
    head = f"**Tool call** `{name or '…'}`" + (f" ({call_id})" if call_id else "")
    return f"{head}\n\n```json\n{arguments or ''}\n```"


def display_stream(chunks: Iterable[ChatCompletionChunk], *, interval: float = INTERVAL,
                   display_id: Optional[str] = None) -> ChatCompletionResponse:
    """Show ``chunks`` live as Markdown in the running notebook; return the collected response.

    The output is updated at most every ``interval`` seconds (and once at the
    end). ``KeyboardInterrupt`` (interrupting the cell) or an error from the
    stream closes ``chunks`` at once (the connection is freed), leaves what
    arrived on screen with a note, and is re-raised; a StreamError keeps its
    ``.partial`` as usual. Outside a notebook it works too (IPython prints the
    final Markdown).
    """
    from IPython.display import Markdown, display

    acc = Accumulator()
    handle = display(Markdown(""), display_id=display_id or True)
    if handle is None:  # outside a kernel IPython's display() returns None: show the last word only
        handle = _Final(display)
    last = time.monotonic()
    try:
        for chunk in chunks:
            acc.add(chunk)
            now = time.monotonic()
            if now - last >= interval:
                handle.update(Markdown(markdown(acc.response())))
                last = now
    except KeyboardInterrupt:
        close_quietly(chunks)
        handle.update(Markdown(markdown(acc.response(), "interrupted: the stream was cancelled")))
        _show(handle)
        raise
    except BaseException as exc:
        close_quietly(chunks)
        handle.update(Markdown(markdown(acc.response(), f"stopped by {type(exc).__name__}")))
        _show(handle)
        raise
    response = acc.response()
    handle.update(Markdown(markdown(response)))  # the last word is always the whole answer
    _show(handle)
    close_quietly(chunks)
    return response


class _Final:
    """Stands in for a display handle where there is none (plain ``python``):
    updates are dropped, and the final one is shown once."""

    def __init__(self, display: Any) -> None:
        self._display = display
        self._latest: Any = None

    def update(self, obj: Any) -> None:
        self._latest = obj

    def show(self) -> None:
        if self._latest is not None:
            self._display(self._latest)


def _show(handle: Any) -> None:
    if isinstance(handle, _Final):
        handle.show()


