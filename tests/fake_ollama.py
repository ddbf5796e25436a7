"""A small fake of Ollama's native API for loopback tests, in the same shape as
``tests/fake_anthropic.py`` and ``tests/fake_openai.py``.

A Client for it: ``Client("ollama", base_url=server.url + BASE_PATH)`` (no key).
``stream_body`` / ``tool_stream_body`` build NDJSON streams of ``/api/chat``
(served as :data:`STREAM_CONTENT_TYPE`), ``response_json`` / ``error_json`` the
JSON bodies, and :func:`handler` answers like a local Ollama server: chat at
:data:`CHAT_PATH` (streamed unless the body says ``"stream": false``: Ollama
streams by default) and the model list at :data:`MODELS_PATH`. Shapes follow
https://github.com/ollama/ollama/blob/main/docs/api.md,
https://docs.ollama.com/api/streaming and https://docs.ollama.com/api/errors.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

BASE_PATH = ""
CHAT_PATH = "/api/chat"
MODELS_PATH = "/api/tags"
MODEL = "llama-fake:1b"
TEXT = "Hello from the fake Ollama."
STREAM_CONTENT_TYPE = "application/x-ndjson"
CREATED_AT = "2025-07-07T20:22:19.184789Z"

# OpenAI finish words -> Ollama done reasons (tool calls end with "stop"; other values are sent as given).
_DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop"}

MODELS = {"models": [
    {"name": MODEL, "model": MODEL, "modified_at": "2025-05-04T17:37:44.706015396-07:00", "size": 1234,
     "digest": "0" * 64, "details": {"format": "gguf", "family": "llama", "parameter_size": "1B",
                                     "quantization_level": "Q4_K_M"}},
]}


def _line(obj: Dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _message(content: str = "", **more: Any) -> Dict[str, Any]:
    return {"role": "assistant", "content": content, **more}


def _final(finish: str, usage: Tuple[int, int]) -> Dict[str, Any]:
    return {"model": MODEL, "created_at": CREATED_AT, "message": _message(),
            "done_reason": _DONE_REASONS.get(finish, finish), "done": True,
            "total_duration": 182242375, "load_duration": 41295167,
            "prompt_eval_count": usage[0], "prompt_eval_duration": 24573166,
            "eval_count": usage[1], "eval_duration": 115959084}


def stream_body(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5),
                reasoning: Sequence[str] = ()) -> bytes:
    """A whole ``/api/chat`` NDJSON stream: ``reasoning`` pieces (``message.thinking``),
    then text ``pieces`` (``message.content``), then the ``done`` line with
    ``done_reason`` (``finish`` is an OpenAI finish word or an Ollama reason)
    and ``usage`` = ``(prompt_eval_count, eval_count)``."""
    out: List[bytes] = [_line({"model": MODEL, "created_at": CREATED_AT, "message": _message("", thinking=r),
                               "done": False}) for r in reasoning]
    out += [_line({"model": MODEL, "created_at": CREATED_AT, "message": _message(p), "done": False})
            for p in pieces]
    out.append(_line(_final(finish, usage)))
    return b"".join(out)


def tool_stream_body(call_id: Optional[str], name: str, arguments_json: str,
                     usage: Tuple[int, int] = (10, 5)) -> bytes:
    """A stream of one whole tool call (arguments as a JSON object, as Ollama
    sends them; with ``"id": call_id`` as current servers send, none when
    ``call_id`` is None), then the ``done`` line (``done_reason`` ``stop``)."""
    call: Dict[str, Any] = {"function": {"index": 0, "name": name, "arguments": json.loads(arguments_json)}}
    if call_id is not None:
        call = {"id": call_id, **call}
    line = {"model": MODEL, "created_at": CREATED_AT, "message": _message(tool_calls=[call]), "done": False}
    return _line(line) + _line(_final("tool_calls", usage))


def response_json(text: str, usage: Tuple[int, int] = (10, 5)) -> Dict[str, Any]:
    """A non-streamed answer (``"stream": false``) of ``text``."""
    body = _final("stop", usage)
    body["message"] = _message(text)
    return body


def error_json(status: int, message: str) -> Dict[str, Any]:
    """Ollama's error body: ``{"error": message}``, whatever the status (sent
    with it as the HTTP status; mid-stream the same object is one more line)."""
    return {"error": message}


def handler(req, reply) -> None:
    """Answer chat (streamed unless ``"stream": false``, with :data:`TEXT`) and
    the model list; Ollama's 404 otherwise."""
    path = req.path.split("?", 1)[0]
    if req.method == "POST" and path == CHAT_PATH:
        if req.json().get("stream", True):
            reply.send(200, stream_body([TEXT[:5], TEXT[5:]]), [("Content-Type", STREAM_CONTENT_TYPE)])
        else:
            reply.json(response_json(TEXT))
    elif req.method == "GET" and path == MODELS_PATH:
        reply.json(MODELS)
    else:
        reply.send(404, b"404 page not found", [("Content-Type", "text/plain")], mode="length")
