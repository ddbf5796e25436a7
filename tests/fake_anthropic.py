"""A small fake of Anthropic's Messages API for loopback tests.

``stream_body`` / ``tool_stream_body`` build valid SSE streams,
``response_json`` / ``error_json`` the JSON bodies, and :func:`handler` answers a
:class:`tests.loopback.LoopbackServer` like api.anthropic.com would: chat at
:data:`CHAT_PATH` (streamed or not, by the body's ``"stream"``) and the model list
at :data:`MODELS_PATH`. Shapes follow https://docs.anthropic.com/en/api/messages,
https://docs.anthropic.com/en/docs/build-with-claude/streaming and
https://docs.anthropic.com/en/api/errors.
"""

from __future__ import annotations

import json
from typing import List, Sequence, Tuple

CHAT_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"
MODEL = "claude-fake-1"
TEXT = "Hello from the fake Anthropic."

# OpenAI finish words -> Anthropic stop reasons (other values are sent as given).
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                500: "api_error", 504: "timeout_error", 529: "overloaded_error"}

MODELS = {
    "data": [
        {"type": "model", "id": "claude-fake-1", "display_name": "Claude Fake 1", "created_at": "2025-02-19T00:00:00Z"},
        {"type": "model", "id": "claude-fake-0", "display_name": "Claude Fake 0", "created_at": "2024-01-01T00:00:00Z"},
    ],
    "has_more": False, "first_id": "claude-fake-1", "last_id": "claude-fake-0",
}


def _event(kind: str, payload: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def _start(usage: Tuple[int, int]) -> bytes:
    return _event("message_start", {"type": "message_start", "message": {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": usage[0], "output_tokens": 1}}})


def _end(finish: str, usage: Tuple[int, int]) -> bytes:
    return (_event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": _STOP_REASONS.get(finish, finish), "stop_sequence": None},
                                     "usage": {"output_tokens": usage[1]}})
            + _event("message_stop", {"type": "message_stop"}))


def stream_body(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5)) -> bytes:
    """A whole Anthropic SSE stream whose text deltas are ``pieces``; ``finish`` is
    an OpenAI finish word (or an Anthropic stop reason); ``usage`` is
    ``(input_tokens, output_tokens)``."""
    out: List[bytes] = [_start(usage), _event("content_block_start", {
        "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        _event("ping", {"type": "ping"})]
    for piece in pieces:
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "text_delta", "text": piece}}))
    out.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(_end(finish, usage))
    return b"".join(out)


def tool_stream_body(call_id: str, name: str, arguments_json: str, usage: Tuple[int, int] = (10, 5)) -> bytes:
    """A stream of one ``tool_use`` block whose input JSON arrives in two pieces."""
    half = len(arguments_json) // 2
    out = [_start(usage), _event("content_block_start", {
        "type": "content_block_start", "index": 0,
        "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}}})]
    for piece in (arguments_json[:half], arguments_json[half:]):
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                  "delta": {"type": "input_json_delta", "partial_json": piece}}))
    out.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(_end("tool_calls", usage))
    return b"".join(out)


def response_json(text: str, usage: Tuple[int, int] = (10, 5)) -> dict:
    """A non-streamed ``message`` object answering ``text``."""
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def error_json(status: int, message: str) -> dict:
    """Anthropic's error body for an HTTP ``status``."""
    kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}


def handler(req, reply) -> None:
    """Answer chat (streamed or not, with :data:`TEXT`) and the model list; 404 otherwise."""
    path = req.path.split("?", 1)[0]
    if req.method == "POST" and path == CHAT_PATH:
        if req.json().get("stream"):
            reply.sse(stream_body([TEXT[:5], TEXT[5:]]))
        else:
            reply.json(response_json(TEXT))
    elif req.method == "GET" and path == MODELS_PATH:
        reply.json(MODELS)
    else:
        reply.json(error_json(404, f"no route {req.method} {path}"), status=404)
