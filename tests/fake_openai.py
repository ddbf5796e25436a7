"""A small fake of OpenAI's chat completions API for loopback tests, in the
same shape as ``tests/fake_anthropic.py`` and ``tests/fake_gemini.py``.

A Client for it: ``Client("openai", api_key=..., base_url=server.url + BASE_PATH)``.
Shapes follow https://platform.openai.com/docs/api-reference/chat.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence, Tuple

BASE_PATH = "/v1"
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
MODEL = "gpt-fake-1"
TEXT = "Hello from the fake OpenAI."
STREAM_CONTENT_TYPE = "text/event-stream"

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          429: "rate_limit_exceeded", 500: "server_error"}


def _chunk(delta: Dict[str, Any], finish: Any = None, usage: Any = None, choices: bool = True) -> bytes:
    obj: Dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _usage(usage: Tuple[int, int]) -> Dict[str, int]:
    return {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}


def stream_body(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5),
                reasoning: Sequence[str] = ()) -> bytes:
    """A whole stream: ``reasoning`` pieces (``reasoning_content``), then text
    ``pieces``, the finish reason, a usage chunk and ``[DONE]``."""
    out: List[bytes] = [_chunk({"role": "assistant", "content": ""})]
    out += [_chunk({"reasoning_content": r}) for r in reasoning]
    out += [_chunk({"content": p}) for p in pieces]
    out += [_chunk({}, finish), _chunk({}, usage=_usage(usage), choices=False), b"data: [DONE]\n\n"]
    return b"".join(out)


def tool_stream_body(call_id: str, name: str, arguments_json: str, usage: Tuple[int, int] = (10, 5)) -> bytes:
    """One tool call whose arguments arrive in two pieces."""
    half = len(arguments_json) // 2
    return b"".join([
        _chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": call_id, "type": "function",
                                                     "function": {"name": name, "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments_json[:half]}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments_json[half:]}}]}),
        _chunk({}, "tool_calls"), _chunk({}, usage=_usage(usage), choices=False), b"data: [DONE]\n\n",
    ])


def response_json(text: str = TEXT, usage: Tuple[int, int] = (10, 5)) -> Dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": _usage(usage)}


def error_json(status: int, message: str) -> Dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "code": None}}


def handler(req: Any, reply: Any) -> None:
    """Answers chat (streamed or not, by the body's ``stream``) with :data:`TEXT`, and the model list."""
    path = req.path.split("?", 1)[0]
    if req.method == "POST" and path == CHAT_PATH:
        if req.json().get("stream"):
            reply.sse(stream_body([TEXT[:5], TEXT[5:]]))
        else:
            reply.json(response_json())
    elif req.method == "GET" and path == MODELS_PATH:
        reply.json({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]})
    else:
        reply.json(error_json(404, f"no route {req.method} {path}"), status=404)
