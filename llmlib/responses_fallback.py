"""The Responses API through chat completions, for providers without ``/responses``.

``Client.responses`` / ``responses_stream`` use it when the provider's protocol
does not say ``supports_responses`` (or with ``fallback=True``). The request
becomes a :class:`~llmlib.ChatCompletionRequest` (``instructions`` a system
message first, input items messages, function calls and their outputs
assistant ``tool_calls`` and tool messages, ``max_output_tokens`` ``max_tokens``,
``reasoning.effort`` ``reasoning_effort``, ``text.format`` ``response_format``);
the answer becomes a :class:`~llmlib.responses.ResponsesResult` with
``fallback=True`` (items: reasoning, then the message, then function calls, whose
item id is the chat tool call's id).

A streamed answer gives the minimal Responses sequence: ``ResponseCreated``,
``ReasoningTextDelta`` / ``OutputTextDelta`` / ``RefusalDelta`` /
``FunctionCallStart`` + ``FunctionCallArgumentsDelta`` as the chunks bring them
(their ``output_index`` numbers items in order of first appearance), then
``ResponseCompleted`` with usage. A chat answer cut for length or by a content
filter raises :class:`~llmlib.responses.ResponseIncompleteError`, as
``response.incomplete`` does.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List, Mapping, Optional

import attrs

from llmlib.cancel import CancelToken
from llmlib.errors import ConfigurationError, LLMError
from llmlib.messages import Content, ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.providers.openai_responses import encode_input
from llmlib.responses import (
    FunctionCallArgumentsDelta,
    FunctionCallItem,
    FunctionCallStart,
    MessageItem,
    OutputTextDelta,
    ReasoningItem,
    ReasoningTextDelta,
    RefusalDelta,
    ResponseCompleted,
    ResponseCreated,
    ResponseEventStream,
    ResponseIncompleteError,
    ResponsesRequest,
    ResponsesResult,
)
from llmlib.accumulator import Accumulator
from llmlib.types import ChatCompletionRequest, ChatCompletionResponse

__all__ = ["applies", "chat_request", "result", "events"]

#: Body fields that only matter to OpenAI's stored responses: not sent to chat providers.
_DROPPED = frozenset({"store", "include", "metadata", "truncation", "service_tier", "prompt_cache_key",
                      "prompt_cache_retention", "safety_identifier", "top_logprobs", "stream_options"})
#: Body fields that need OpenAI's server-side state: refused rather than silently ignored.
_REFUSED = frozenset({"previous_response_id", "conversation", "background", "prompt"})
_CHAT_FIELDS = ("temperature", "top_p", "parallel_tool_calls", "user", "seed")


def applies(protocol: Any, fallback: Optional[bool]) -> bool:
    """Whether a call goes through chat completions: ``fallback`` when given,
    else when the protocol has no ``/responses`` (``supports_responses`` False)."""
    if fallback is None:
        return not getattr(protocol, "supports_responses", False)
    return bool(fallback)


# ---------------------------------------------------------------- the request


def _part(part: Mapping[str, Any]) -> ContentPart:
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return ContentPart("text", text=part.get("text") or "")
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return ContentPart("image", url=part["image_url"])
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        return ContentPart("document", url=part["file_data"], name=part.get("filename"))
    raise ConfigurationError(f"the chat-completions fallback cannot send a {kind!r} content part "
                             "(only text, image URLs and inline files)")


def _message(item: Mapping[str, Any]) -> Message:
    role = item.get("role") or "user"
    if role == "developer":
        role = "system"  # chat providers know system; few know developer
    content = item.get("content")
    if isinstance(content, list):
        content = Content([_part(p) for p in content if p.get("type") != "refusal"])
    return Message(role, content if content is not None else "")


def _messages(request: ResponsesRequest) -> List[Message]:
    out: List[Message] = [Message.system(request.instructions)] if request.instructions else []
    if isinstance(request.input, str):
        return out + [Message.user(request.input)]
    for value in request.input:
        if isinstance(value, Message):
            out.append(attrs.evolve(value, role=Role.SYSTEM) if value.role is Role.DEVELOPER else value)
            continue
        for item in encode_input([value]):
            kind = item.get("type")
            if kind == "function_call":
                call = ToolCall(item.get("call_id") or item.get("id") or "",
                                FunctionCall(item.get("name") or "", item.get("arguments") or ""))
                last = out[-1] if out else None
                if last is not None and last.role is Role.ASSISTANT:  # calls join the assistant turn
                    out[-1] = attrs.evolve(last, tool_calls=(last.tool_calls or ()) + (call,))
                else:
                    out.append(Message.assistant(None, [call]))
            elif kind == "function_call_output":
                output = item.get("output")
                out.append(Message.tool(item.get("call_id") or "",
                                        output if isinstance(output, str) else json.dumps(output)))
            elif kind == "reasoning":
                continue  # reasoning items belong to OpenAI; a chat provider cannot take them back
            elif kind in (None, "message"):
                out.append(_message(item))
            else:
                raise ConfigurationError(f"the chat-completions fallback cannot send {kind!r} input items")
    return out


def _tool(tool: Any) -> Tool:
    if isinstance(tool, Tool):
        return tool
    if isinstance(tool, Mapping) and tool.get("type") == "function":
        fn = tool.get("function") or tool  # the chat shape, or the flat Responses one
        return Tool(fn["name"], fn.get("description"), fn.get("parameters") or {"type": "object", "properties": {}},
                    fn.get("strict"))
    kind = tool.get("type") if isinstance(tool, Mapping) else type(tool).__name__
    raise ConfigurationError(f"the chat-completions fallback takes only function tools, not {kind!r}")


def _response_format(text: Any) -> Optional[Dict[str, Any]]:
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if not isinstance(fmt, Mapping) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt.items() if k != "type"}
        return {"type": "json_schema", "json_schema": schema}
    return dict(fmt)


def chat_request(request: ResponsesRequest) -> ChatCompletionRequest:
    """``request`` as the chat-completions request of the fallback. Raises
    ConfigurationError for what chat completions cannot express
    (``previous_response_id``, built-in tools, file ids...)."""
    refused = sorted(_REFUSED.intersection(request.extra))
    if refused:
        raise ConfigurationError(f"{', '.join(refused)} needs OpenAI's stored responses; this provider has "
                                 "no /responses and gets the call through chat completions")
    fields: Dict[str, Any] = {k: request.extra[k] for k in _CHAT_FIELDS if k in request.extra}
    extra = {k: v for k, v in request.extra.items() if k not in _DROPPED and k not in fields and k != "text"}
    choice = request.tool_choice
    if isinstance(choice, Mapping):
        choice = choice.get("name") or (choice.get("function") or {}).get("name") or choice.get("type")
    reasoning = request.reasoning
    effort = reasoning if isinstance(reasoning, str) else (reasoning or {}).get("effort")
    return ChatCompletionRequest(
        request.model, _messages(request), max_tokens=request.max_output_tokens,
        tools=[_tool(t) for t in request.tools] if request.tools else None, tool_choice=choice,
        reasoning_effort=effort, response_format=_response_format(request.extra.get("text")),
        extra_body=extra or None, **fields,
    )


# ---------------------------------------------------------------- the answer


_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def _result(chat: ChatCompletionResponse, status: str) -> ResponsesResult:
    """``chat`` as a Responses result; ``status`` ``"completed"`` becomes
    ``"incomplete"`` when the chat answer stopped for length or by a filter."""
    reason = _INCOMPLETE.get(chat.finish_reason or "") if status == "completed" else None
    if reason:
        status = "incomplete"
    rid = chat.id or "fallback"
    message = chat.message
    items: List[Any] = []
    if message is not None:
        if message.reasoning_content:
            items.append(ReasoningItem(f"rs_{rid}", (), message.reasoning_content, status=status))
        if message.text or message.refusal:
            items.append(MessageItem(f"msg_{rid}", message.text, message.refusal, status=status))
        for call in message.tool_calls or ():
            items.append(FunctionCallItem(call.id, call.id, call.function.name, call.function.arguments, status))
    return ResponsesResult(chat.id, chat.model, status, items, chat.usage, chat.created,
                           incomplete_details={"reason": reason} if reason else None, fallback=True)


def result(chat: ChatCompletionResponse, provider: Optional[str] = None) -> ResponsesResult:
    """A whole chat answer as a Responses result (``fallback=True``); raises
    ResponseIncompleteError (``.partial`` the result) when it stopped for length
    or by a content filter."""
    out = _result(chat, "completed")
    if out.status == "incomplete":
        raise _incomplete(out, provider)
    return out


def _incomplete(out: ResponsesResult, provider: Optional[str]) -> ResponseIncompleteError:
    reason = (out.incomplete_details or {}).get("reason")
    return ResponseIncompleteError(f"the response is incomplete ({reason}); .partial holds what arrived",
                                   reason=reason, provider=provider, partial=out)


def _events(chunks: Any, cancel: Optional[CancelToken], provider: Optional[str]) -> Iterator[Any]:
    acc = Accumulator()
    created = False
    indexes: Dict[Any, int] = {}  # ("rs" | "msg" | call index) -> output_index, in order of appearance
    calls: Dict[int, str] = {}  # call index -> item id
    rid = "fallback"

    def index(key: Any) -> int:
        found = indexes.get(key)
        if found is None:
            found = indexes[key] = len(indexes)
        return found

    try:
        for chunk in chunks:
            acc.add(chunk)
            if not created:
                created = True
                rid = chunk.id or rid
                yield ResponseCreated(ResponsesResult(chunk.id, chunk.model, "in_progress", (),
                                                      created_at=chunk.created, fallback=True))
            for choice in chunk.choices:
                if choice.index != 0:
                    continue
                d = choice.delta
                if d.reasoning_content:
                    yield ReasoningTextDelta(d.reasoning_content, f"rs_{rid}", index("rs"), 0)
                if d.content:
                    yield OutputTextDelta(d.content, f"msg_{rid}", index("msg"), 0)
                if d.refusal:
                    yield RefusalDelta(d.refusal, f"msg_{rid}", index("msg"), 0)
                for call in d.tool_calls or ():
                    item_id = calls.get(call.index)
                    if item_id is None:
                        item_id = calls[call.index] = call.id or f"fc_{call.index}"
                        yield FunctionCallStart(item_id, call.id, call.function.name, index(call.index))
                    if call.function.arguments:
                        yield FunctionCallArgumentsDelta(item_id, call.function.arguments, index(call.index))
    except LLMError as exc:
        exc.partial = _result(acc.response(), "in_progress") if acc.count else None
        raise
    if cancel is not None and cancel.cancelled:
        return  # a cancelled stream just ends
    out = _result(acc.response(), "completed")
    if out.status == "incomplete":
        raise _incomplete(out, provider)
    yield ResponseCompleted(out)


def events(chunks: Any, cancel: Optional[CancelToken] = None, provider: Optional[str] = None) -> ResponseEventStream:
    """The Responses events of a streamed chat answer (``chunks``, a ChunkStream
    it owns and closes), as a :class:`~llmlib.responses.ResponseEventStream`
    with ``fallback=True``."""
    return ResponseEventStream(_events(chunks, cancel, provider), fallback=True, resource=chunks)
