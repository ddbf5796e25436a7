"""Valid JSON of an unexpected shape is a DecodeError with ``.partial``, never an
AttributeError, TypeError or RecursionError escaping the error tree (issue 8 item 11)."""

from __future__ import annotations

import json

import pytest

from llmlib import DecodeError, LLMError, collect
from tests.conftest import make_client

GOOD = {"id": "c", "object": "chat.completion.chunk", "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello "}, "finish_reason": None}]}
DEEP = "[" * 10000 + "]" * 10000

ODD_CHUNKS = {
    "a string": '"hello"',
    "choices a string": '{"choices": "oops"}',
    "choices an object": '{"choices": {"index": 0}}',
    "a choice a list": '{"choices": [[1, 2]]}',
    "delta a list": '{"choices": [{"index": 0, "delta": ["x"]}]}',
    "content an object": '{"choices": [{"index": 0, "delta": {"content": {"a": 1}}}]}',
    "tool_calls a string": '{"choices": [{"index": 0, "delta": {"tool_calls": "x"}}]}',
    "usage a list": '{"choices": [], "usage": [1, 2]}',
    "10,000 nested arrays": DEEP,
    "10,000 nested objects": '{"a":' * 10000 + "1" + "}" * 10000,
}


@pytest.mark.parametrize("name", sorted(ODD_CHUNKS))
def test_an_odd_chunk_is_a_decode_error_with_what_arrived(client, server, name):
    body = b"data: " + json.dumps(GOOD).encode() + b"\n\ndata: " + ODD_CHUNKS[name].encode() + b"\n\ndata: [DONE]\n\n"
    server.handler = lambda req, reply: reply.sse(body)
    with pytest.raises(DecodeError) as info:
        collect(client.chat_completion_stream(model="m", messages="hi"))
    assert info.value.partial is not None and info.value.partial.text == "Hello "
    assert info.value.provider == "openai"


ODD_BODIES = {
    "choices null": {"id": "x", "choices": None},  # no choices at all: an empty answer, not a crash
    "choices a string": {"id": "x", "choices": "oops"},
    "message a list": {"id": "x", "choices": [{"index": 0, "message": ["a"]}]},
    "usage a string": {"id": "x", "choices": [], "usage": "lots"},
    "a list": [1, 2, 3],
}


@pytest.mark.parametrize("name", sorted(ODD_BODIES))
def test_an_odd_body_is_a_decode_error_or_an_empty_answer(client, server, name):
    server.handler = lambda req, reply: reply.json(ODD_BODIES[name])
    try:
        response = client.chat_completion(model="m", messages="hi")
    except LLMError as exc:
        assert isinstance(exc, DecodeError), type(exc)
    else:
        assert response.choices == () and name == "choices null"


def test_a_deeply_nested_body_is_a_decode_error(client, server):
    server.handler = lambda req, reply: reply.send(200, DEEP.encode(), [("Content-Type", "application/json")],
                                                  mode="length")
    with pytest.raises(DecodeError):
        client.chat_completion(model="m", messages="hi")


def test_an_odd_models_list_is_a_decode_error(client, server):
    server.handler = lambda req, reply: reply.json({"data": "nope"})
    with pytest.raises(DecodeError):
        client.list_models()
