"""A small fake of Cohere's v2 Chat API for loopback tests.

``stream_body`` / ``tool_stream_body`` build valid SSE streams (each event named
both in ``event:`` and in the payload's ``type``, as Cohere sends them),
``response_json`` / ``error_json`` the JSON bodies, ``error_event`` an error
inside a stream, and :func:`handler` answers a :class:`tests.loopback.LoopbackServer`
like api.cohere.com would: chat at :data:`CHAT_PATH` (streamed or not, by the
body's ``"stream"``) and the model list at :data:`MODELS_PATH` (a v1 path, paged
by ``page_token``). Shapes follow https://docs.cohere.com/reference/chat,
https://docs.cohere.com/docs/streaming, https://docs.cohere.com/reference/list-models
and the recorded streams in ../shared/wire/cohere.
"""

from __future__ import annotations

import json
from typing import List, Sequence, Tuple

BASE_PATH = "/v2"
CHAT_PATH = "/v2/chat"
MODELS_PATH = "/v1/models"
MODEL = "command-fake-1"
TEXT = "Hello from the fake Cohere."
STREAM_CONTENT_TYPE = "text/event-stream"
MESSAGE_ID = "c0fe0000-0000-4000-8000-000000000001"

# OpenAI finish words -> Cohere finish reasons (other values are sent as given).
_FINISH = {"stop": "COMPLETE", "length": "MAX_TOKENS", "tool_calls": "TOOL_CALL", "content_filter": "ERROR_TOXIC"}

#: The two pages of the model list (``next_page_token`` "page-2" links them).
MODELS_PAGES = {
    None: {"models": [
        {"name": "command-fake-1", "is_deprecated": False, "endpoints": ["chat"], "finetuned": False,
         "context_length": 256000, "default_endpoints": ["chat"], "features": ["tool_use", "strict_tools", "vision"]},
        {"name": "embed-fake-1", "is_deprecated": False, "endpoints": ["embed"], "finetuned": False,
         "context_length": 512, "default_endpoints": []},
    ], "next_page_token": "page-2"},
    "page-2": {"models": [
        {"name": "command-fake-0", "is_deprecated": True, "endpoints": ["chat", "generate"], "finetuned": False,
         "context_length": 4096.0, "default_endpoints": []},
    ]},
}


def _event(payload: dict) -> bytes:
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def _start() -> bytes:
    return _event({"id": MESSAGE_ID, "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})


def _end(finish: str, usage: Tuple[int, int]) -> bytes:
    return _event({"type": "message-end", "delta": {
        "finish_reason": _FINISH.get(finish, finish),
        "usage": {"billed_units": {"input_tokens": usage[0], "output_tokens": usage[1]},
                  "tokens": {"input_tokens": usage[0], "output_tokens": usage[1]}}}})


def stream_body(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5),
                reasoning: Sequence[str] = ()) -> bytes:
    """A whole Cohere SSE stream whose text deltas are ``pieces`` (after a
    ``thinking`` content block of ``reasoning`` deltas, if any); ``finish`` is an
    OpenAI finish word (or a Cohere finish reason); ``usage`` is
    ``(input_tokens, output_tokens)``."""
    out: List[bytes] = [_start()]
    index = 0
    if reasoning:
        out.append(_event({"type": "content-start", "index": 0,
                           "delta": {"message": {"content": {"type": "thinking", "thinking": ""}}}}))
        for piece in reasoning:
            out.append(_event({"type": "content-delta", "index": 0,
                               "delta": {"message": {"content": {"thinking": piece}}}}))
        out.append(_event({"type": "content-end", "index": 0}))
        index = 1
    out.append(_event({"type": "content-start", "index": index,
                       "delta": {"message": {"content": {"type": "text", "text": ""}}}}))
    for piece in pieces:
        out.append(_event({"type": "content-delta", "index": index,
                           "delta": {"message": {"content": {"text": piece}}}}))
    out.append(_event({"type": "content-end", "index": index}))
    out.append(_end(finish, usage))
    return b"".join(out)


def tool_stream_body(call_id: str, name: str, arguments_json: str, usage: Tuple[int, int] = (10, 5),
                     tool_plan: str = "I will call the tool.") -> bytes:
    """A stream of a tool plan (two deltas) then one tool call whose arguments
    arrive in two pieces, ending with ``TOOL_CALL``."""
    half = len(arguments_json) // 2
    out = [_start()]
    for piece in (tool_plan[:6], tool_plan[6:]) if tool_plan else ():
        out.append(_event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}))
    out.append(_event({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}}}}))
    for piece in (arguments_json[:half], arguments_json[half:]):
        out.append(_event({"type": "tool-call-delta", "index": 0,
                           "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}}))
    out.append(_event({"type": "tool-call-end", "index": 0}))
    out.append(_end("tool_calls", usage))
    return b"".join(out)


def response_json(text: str, usage: Tuple[int, int] = (10, 5)) -> dict:
    """A non-streamed ``/v2/chat`` answer of ``text``."""
    return {"id": MESSAGE_ID, "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "finish_reason": "COMPLETE",
            "usage": {"billed_units": {"input_tokens": usage[0], "output_tokens": usage[1]},
                      "tokens": {"input_tokens": usage[0], "output_tokens": usage[1]}}}


def error_json(status: int, message: str) -> dict:
    """Cohere's error body (any status: the HTTP status tells the error apart)."""
    return {"id": "e0fe0000-0000-4000-8000-00000000000%d" % (status % 10), "message": message}


def error_event(status: int, message: str) -> bytes:
    """An error inside a stream. Cohere documents no in-band error event for
    ``/v2/chat`` (a failed generation ends with ``finish_reason: ERROR``), so the
    fake sends its error body as an ``event: error`` with the HTTP status it
    stands for added as ``status``."""
    return f"event: error\ndata: {json.dumps(dict(error_json(status, message), status=status))}\n\n".encode()


def make_client(server, **options):
    """A Client for ``server`` at Cohere's API root :data:`BASE_PATH` (``/v2``;
    ``tests.conftest.make_client`` points at ``/v1``), with the same defaults:
    the test key, no retries, short timeouts; ``options`` go to ConnectionOptions."""
    from llmlib import Client, ConnectionOptions, Timeout
    from tests.conftest import TEST_KEY

    options.setdefault("max_retries", 0)
    options.setdefault("timeout", Timeout(connect=5, read=10))
    return Client("cohere", api_key=TEST_KEY, base_url=server.url + BASE_PATH, options=ConnectionOptions(**options))


def handler(req, reply) -> None:
    """Answer chat (streamed or not, with :data:`TEXT`) and the model list; 404 otherwise."""
    path, _, query = req.path.partition("?")
    if req.method == "POST" and path == CHAT_PATH:
        if req.json().get("stream"):
            reply.sse(stream_body([TEXT[:5], TEXT[5:]]))
        else:
            reply.json(response_json(TEXT))
    elif req.method == "GET" and path == MODELS_PATH:
        token = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("page_token")
        reply.json(MODELS_PAGES.get(token, {"models": []}))
    else:
        reply.json(error_json(404, f"no route {req.method} {path}"), status=404)
