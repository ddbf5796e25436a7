"""A small fake of the Gemini API for loopback tests: bodies in Gemini's real
shapes (as recorded in ../shared/wire/gemini) and a handler for
:class:`tests.loopback.LoopbackServer`.

A Client for it: ``Client("gemini", api_key=..., base_url=server.url + "/v1beta")``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

MODEL = "gemini-fake-1"
MODELS_PATH = "/v1beta/models"
RESPONSE_ID = "fake-response-1"
SIGNATURE = "ZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="  # an opaque thoughtSignature, as Gemini 3 sends on calls
TEXT_PIECES = ["Hello", " from", " fake", " Gemini."]
TEXT = "".join(TEXT_PIECES)

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def chat_path(model: str = MODEL, stream: bool = False) -> str:
    """The path (and query) a Client with base ``.../v1beta`` requests for a chat call."""
    return f"{MODELS_PATH}/{model}:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")


def _usage(usage: Tuple[int, int]) -> Dict[str, int]:
    prompt, completion = usage
    return {"promptTokenCount": prompt, "candidatesTokenCount": completion, "totalTokenCount": prompt + completion}


def _response(parts: List[Dict[str, Any]], finish: Optional[str], usage: Tuple[int, int]) -> Dict[str, Any]:
    candidate: Dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": _usage(usage), "modelVersion": MODEL,
            "responseId": RESPONSE_ID}


def _sse(events: Sequence[Dict[str, Any]]) -> bytes:
    # Real captures end each event with CRLF CRLF.
    return b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)


def stream_body(pieces: List[str], finish: Optional[str] = "STOP", usage: Tuple[int, int] = (3, 4)) -> bytes:
    """A ``streamGenerateContent?alt=sse`` body whose text parts are ``pieces``, one
    event each, the last carrying ``finish`` (None: no finishReason, an
    incomplete answer); ``usage`` = (prompt, completion) tokens on every event."""
    if not pieces:
        return _sse([_response([{"text": ""}], finish, usage)])
    return _sse([_response([{"text": p}], finish if i == len(pieces) - 1 else None, usage)
                 for i, p in enumerate(pieces)])


def tool_stream_body(name: str, args: Dict[str, Any], usage: Tuple[int, int] = (3, 4)) -> bytes:
    """A streamed function call as Gemini 3 sends it: the ``functionCall`` part
    (whole ``args``, with :data:`SIGNATURE` as its ``thoughtSignature``), then an
    empty text part with ``finishReason: STOP``."""
    call = {"functionCall": {"name": name, "args": args}, "thoughtSignature": SIGNATURE}
    return _sse([_response([call], None, usage), _response([{"text": ""}], "STOP", usage)])


def response_json(text: str = TEXT, usage: Tuple[int, int] = (3, 4)) -> Dict[str, Any]:
    """A ``generateContent`` answer with one text part."""
    return _response([{"text": text}], "STOP", usage)


def error_json(status: int, message: str) -> Dict[str, Any]:
    """A Gemini error body: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def models_json() -> Dict[str, Any]:
    """A one-page ``GET /models`` listing with :data:`MODEL`."""
    return {"models": [{"name": f"models/{MODEL}", "displayName": "Gemini Fake 1", "inputTokenLimit": 32768,
                        "outputTokenLimit": 8192, "supportedGenerationMethods": ["generateContent", "countTokens"]}]}


def handler(req: Any, reply: Any) -> None:
    """Answers chat (streamed or not, by path) with :data:`TEXT`, and the model list;
    anything else with a Gemini 404 body."""
    path = req.path
    if ":streamGenerateContent" in path and "alt=sse" in path:
        reply.sse(stream_body(TEXT_PIECES))
    elif path.split("?", 1)[0].endswith(":generateContent"):
        reply.json(response_json())
    elif req.method == "GET" and path.split("?", 1)[0] == MODELS_PATH:
        reply.json(models_json())
    else:
        reply.json(error_json(404, f"{path} is not found"), status=404)
