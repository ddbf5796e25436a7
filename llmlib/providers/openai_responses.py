"""The OpenAI Responses API wire format, the whole of it in one place.

Follows https://platform.openai.com/docs/api-reference/responses/create (the
request body), https://platform.openai.com/docs/api-reference/responses/object
(the ``response`` object) and
https://platform.openai.com/docs/api-reference/responses-streaming (the stream:
typed SSE events ended by ``response.completed``, ``response.failed`` or
``response.incomplete``; there is no ``data: [DONE]``, though a ``[DONE]`` from a
compatible server also ends it). Errors arrive as an ``error`` event, as
``{"type": "error", "code", "message"}`` or with a nested ``"error"`` object.

Decodes into the values of :mod:`llmlib.responses`; knows nothing about HTTP,
threads or retries. Not a provider protocol of its own: OpenAI's row uses it
through ``Client.responses`` / ``Client.responses_stream``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional

import attrs

from llmlib.error_mapping import error_from_payload, is_error_payload
from llmlib.errors import ConfigurationError
from llmlib.messages import ContentPart, Message, Role, Tool
from llmlib.providers import endpoint
from llmlib.providers.base import HTTPRequest, json_object
from llmlib.responses import (
    FunctionCallArgumentsDelta,
    FunctionCallItem,
    FunctionCallStart,
    MessageItem,
    OutputItem,
    OutputItemAdded,
    OutputItemDone,
    OutputTextDelta,
    ReasoningItem,
    ReasoningSummaryTextDelta,
    ReasoningTextDelta,
    RefusalDelta,
    ResponseCompleted,
    ResponseCreated,
    ResponseEvent,
    ResponseIncompleteError,
    ResponsesAccumulator,
    ResponsesRequest,
    ResponsesResult,
)
from llmlib.types import Usage

__all__ = ["http_request", "encode_request", "encode_input", "encode_tool", "decode_response", "decode_item",
           "decode_usage", "checked", "StreamDecoder"]

Scrub = Callable[[str], str]


# ---------------------------------------------------------------- requests


def _encode_part(part: ContentPart, role: Role) -> Dict[str, Any]:
    if part.type == "text":
        return {"type": "output_text" if role is Role.ASSISTANT else "input_text", "text": part.text or ""}
    if part.type == "image":
        return {"type": "input_image", "image_url": part.url}
    if part.type == "document":
        if part.url and part.url.startswith("data:"):
            return {"type": "input_file", "file_data": part.url, "filename": part.name or "document.pdf"}
        return {"type": "input_file", "file_url": part.url}
    raise ConfigurationError(f"the Responses API takes text, images and files as input, not {part.type} parts")


def _encode_message(message: Message) -> List[Dict[str, Any]]:
    """One :class:`Message` as Responses input items: a tool message is a
    ``function_call_output``; an assistant's tool calls are ``function_call`` items."""
    if message.role is Role.TOOL:
        if message.tool_call_id is None:
            raise ConfigurationError("a tool message needs tool_call_id: use Message.tool(tool_call_id, content)")
        return [{"type": "function_call_output", "call_id": message.tool_call_id, "output": message.text}]
    items: List[Dict[str, Any]] = []
    content = message.content
    if content is not None and content.parts:
        value: Any = content.as_text() if content.is_text_only() else [
            _encode_part(p, message.role) for p in content.parts]
        items.append({"role": message.role.value, "content": value})
    elif not message.tool_calls:
        items.append({"role": message.role.value, "content": ""})
    for call in message.tool_calls or ():
        items.append({"type": "function_call", "call_id": call.id, "name": call.function.name,
                      "arguments": call.function.arguments})
    return items


def encode_input(value: Any) -> Any:
    """``ResponsesRequest.input`` as the body's ``input``: a str as it is, and each
    item of a list as Responses input items (see :class:`~llmlib.responses.ResponsesRequest`)."""
    if isinstance(value, str):
        return value
    out: List[Any] = []
    for item in value:
        if isinstance(item, str):
            out.append({"role": "user", "content": item})
        elif isinstance(item, Mapping):
            out.append(dict(item))
        elif isinstance(item, Message):
            out.extend(_encode_message(item))
        elif isinstance(item, ResponsesResult):
            out.extend(i.to_input() for i in item.output)
        elif hasattr(item, "to_input"):
            out.append(item.to_input())
        else:
            raise ConfigurationError(
                f"cannot send a {type(item).__name__} as a Responses input item; use a str, a dict, a Message, "
                "an output item or FunctionCallOutput")
    return out


def encode_tool(tool: Any) -> Dict[str, Any]:
    """A :class:`~llmlib.Tool` as a Responses function tool (flat: ``name`` beside
    ``type``); a dict is sent as it is (``{"type": "web_search"}``...)."""
    if isinstance(tool, Mapping):
        return dict(tool)
    if not isinstance(tool, Tool):
        raise ConfigurationError(f"tools must be llmlib.Tool values or dicts, not {type(tool).__name__}")
    out: Dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parameters"] = dict(tool.parameters)
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def encode_request(request: ResponsesRequest, *, stream: bool) -> Dict[str, Any]:
    """The JSON body of ``POST /responses``."""
    body: Dict[str, Any] = {"model": request.model, "input": encode_input(request.input)}
    if request.instructions is not None:
        body["instructions"] = request.instructions
    if request.tools:
        body["tools"] = [encode_tool(t) for t in request.tools]
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = choice if not isinstance(choice, str) or choice in ("auto", "none", "required") \
            else {"type": "function", "name": choice}
    if request.max_output_tokens is not None:
        body["max_output_tokens"] = request.max_output_tokens
    if request.reasoning is not None:
        body["reasoning"] = {"effort": request.reasoning} if isinstance(request.reasoning, str) \
            else dict(request.reasoning)
    body.update(request.extra)
    if stream:
        body["stream"] = True
    return body


def http_request(base_url: str, request: ResponsesRequest, *, stream: bool) -> HTTPRequest:
    """``POST {base_url}/responses`` with the encoded request."""
    return HTTPRequest("POST", endpoint(base_url, "/responses"), encode_request(request, stream=stream),
                       {"Accept": "text/event-stream"} if stream else {})


# ---------------------------------------------------------------- responses


def decode_usage(obj: Mapping[str, Any]) -> Usage:
    """A Responses ``usage`` (``input_tokens``, ``output_tokens`` and their details)
    as :class:`~llmlib.Usage`."""
    prompt = obj.get("input_tokens") or 0
    completion = obj.get("output_tokens") or 0
    return Usage(prompt, completion, obj.get("total_tokens") or prompt + completion,
                 (obj.get("output_tokens_details") or {}).get("reasoning_tokens"),
                 (obj.get("input_tokens_details") or {}).get("cached_tokens"))


def _texts(parts: Any, kind: str, field: str = "text") -> List[str]:
    return [p.get(field) or "" for p in parts or () if p.get("type") == kind]


def decode_item(obj: Mapping[str, Any]) -> Any:
    """One ``output[]`` item as a :mod:`llmlib.responses` item (unknown types as
    :class:`~llmlib.responses.OutputItem`)."""
    kind = obj.get("type")
    if kind == "message" or (kind is None and "role" in obj):
        content = obj.get("content") or ()
        refusal = _texts(content, "refusal", "refusal")
        return MessageItem(obj.get("id"), "".join(_texts(content, "output_text")),
                           "".join(refusal) if refusal else None, obj.get("role") or "assistant",
                           obj.get("status"), obj)
    if kind == "function_call":
        return FunctionCallItem(obj.get("id"), obj.get("call_id"), obj.get("name"), obj.get("arguments") or "",
                                obj.get("status"), obj)
    if kind == "reasoning":
        text = _texts(obj.get("content"), "reasoning_text")
        return ReasoningItem(obj.get("id"), _texts(obj.get("summary"), "summary_text"),
                             "".join(text) if text else None, obj.get("encrypted_content"), obj.get("status"), obj)
    if not isinstance(kind, str):
        raise ValueError(f"an output item without a type: {obj!r:.80}")
    return OutputItem(kind, obj.get("id"), obj)


def decode_response(obj: Mapping[str, Any]) -> ResponsesResult:
    """A ``response`` object as :class:`~llmlib.responses.ResponsesResult`."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a response object, got {type(obj).__name__}")
    usage = obj.get("usage")
    created = obj.get("created_at")
    return ResponsesResult(
        obj.get("id"), obj.get("model"), obj.get("status"),
        tuple(decode_item(i) for i in obj.get("output") or ()),
        decode_usage(usage) if usage else None,
        created if isinstance(created, int) else None,
        obj.get("error") or None, obj.get("incomplete_details") or None,
        raw=obj,
    )


def failure(result: ResponsesResult, provider: Optional[str], scrub: Scrub = lambda s: s) -> Exception:
    """The error for a failed or incomplete response (``.partial`` left to the caller)."""
    if result.status == "incomplete":
        reason = (result.incomplete_details or {}).get("reason")
        return ResponseIncompleteError(
            f"the response is incomplete ({scrub(str(reason)) if reason else 'no reason given'}); "
            ".partial holds what arrived", reason=reason, provider=provider)
    error = result.error
    return error_from_payload({"error": dict(error)} if isinstance(error, Mapping) else error,
                              provider=provider, scrub=scrub, fallback="the response failed")


def checked(result: ResponsesResult, provider: Optional[str], scrub: Scrub = lambda s: s) -> ResponsesResult:
    """``result``, or its error raised (with ``.partial`` the result) when it
    failed or is incomplete."""
    if result.status in ("failed", "incomplete"):
        exc = failure(result, provider, scrub)
        exc.partial = result  # type: ignore[attr-defined]
        raise exc
    return result


def _delta(obj: Mapping[str, Any]) -> str:
    delta = obj["delta"]
    if delta.__class__ is not str:
        raise ValueError(f"delta must be a string, not {type(delta).__name__}")
    return delta


def _text_delta(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return OutputTextDelta(_delta(obj), obj.get("item_id"), obj.get("output_index"), obj.get("content_index"),
                           obj.get("logprobs"))


def _arguments_delta(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return FunctionCallArgumentsDelta(obj.get("item_id"), _delta(obj), obj.get("output_index"))


def _summary_delta(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return ReasoningSummaryTextDelta(_delta(obj), obj.get("item_id"), obj.get("output_index"),
                                     obj.get("summary_index") or 0)


def _reasoning_delta(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return ReasoningTextDelta(_delta(obj), obj.get("item_id"), obj.get("output_index"), obj.get("content_index"))


def _refusal_delta(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return RefusalDelta(_delta(obj), obj.get("item_id"), obj.get("output_index"), obj.get("content_index"))


def _item_added(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    item = decode_item(obj["item"])
    if isinstance(item, FunctionCallItem):
        return FunctionCallStart(item.id, item.call_id, item.name, obj.get("output_index"))
    return OutputItemAdded(obj.get("output_index"), item)


def _item_done(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return OutputItemDone(obj.get("output_index"), decode_item(obj["item"]))


def _created(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    return ResponseCreated(decode_response(obj["response"]))


def _completed(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    d.ended = True
    return ResponseCompleted(decode_response(obj["response"]))


def _ended_badly(d: "StreamDecoder", obj: Dict[str, Any]) -> Any:
    result = decode_response(obj["response"])
    if result.status not in ("failed", "incomplete"):  # the event names it: trust the event
        result = attrs.evolve(result, status="failed" if obj["type"] == "response.failed" else "incomplete")
    d.ended = True
    d.accumulator.finish(result)
    raise failure(result, d.provider, d.scrub)


_HANDLERS: Dict[str, Callable[["StreamDecoder", Dict[str, Any]], Any]] = {
    "response.output_text.delta": _text_delta,
    "response.function_call_arguments.delta": _arguments_delta,
    "response.reasoning_summary_text.delta": _summary_delta,
    "response.reasoning_text.delta": _reasoning_delta,
    "response.refusal.delta": _refusal_delta,
    "response.output_item.added": _item_added,
    "response.output_item.done": _item_done,
    "response.created": _created,
    "response.completed": _completed,
    "response.failed": _ended_badly,
    "response.incomplete": _ended_badly,
}


class StreamDecoder:
    """Turns the SSE events of one streamed response into :mod:`llmlib.responses` events.

    A :class:`~llmlib.providers.base.StreamDecoder` for
    :func:`llmlib.response_stream.open_stream`, which is given ``accumulator``
    too, to keep ``.partial``. ``decode(event)`` returns an event (None for
    ``[DONE]``); it raises the typed error of an ``error`` event, of
    ``response.failed`` (an APIStatusError subclass from ``response.error``) and
    of ``response.incomplete`` (:class:`~llmlib.responses.ResponseIncompleteError`),
    folding the terminal response into ``accumulator`` first; and ValueError for
    a payload of an unexpected shape. ``ended`` becomes True at
    ``response.completed`` (read no further).
    """

    __slots__ = ("provider", "ended", "accumulator", "scrub")

    def __init__(self, provider: Optional[str], scrub: Scrub = lambda s: s,
                 accumulator: Optional[ResponsesAccumulator] = None) -> None:
        self.provider = provider
        self.ended = False
        self.accumulator = accumulator if accumulator is not None else ResponsesAccumulator()
        self.scrub = scrub

    @property
    def complete(self) -> bool:
        return self.ended

    def decode(self, event: Any) -> Any:
        data = event.data
        if data == "[DONE]":
            self.ended = True
            return None
        obj = json_object(data)
        kind = obj.get("type") or event.event
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return handler(self, obj)
        if kind == "error" or is_error_payload(obj):
            raise error_from_payload(obj, provider=self.provider, scrub=self.scrub)
        if not isinstance(kind, str):
            raise ValueError(f"an event without a type: {data[:80]!r}")
        return ResponseEvent(kind, obj)
