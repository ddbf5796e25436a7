"""``events(stream)`` on a stream not yet started reads the stream's events
directly (the OpenAI decoder makes the per-token events without chunks), and
must give exactly what the chunks would: the same events, the same error with
the same ``.partial``, the same cancel and close behaviour (issue 14: events()
within 10% of iterating the chunks, with nothing lost).

Each case is served twice over loopback, byte for byte: once read as chunks
(``events`` then runs over the list of chunks, the general path) and once read
through ``events(stream)``; the two must agree, whole and cut short anywhere.
"""

from __future__ import annotations

import json
import random
import threading
import time
from typing import List, Optional, Tuple

import attrs
import pytest

import llmlib
from llmlib import collect
from llmlib.streaming import ContentDelta, Done, ToolCallDelta, ToolCallStart, UsageReport, events
from tests.conftest import WIRE, make_client

SSE_FOLDERS = {"openai_chat": "openai", "groq": "groq", "mistral": "mistral", "openrouter": "openrouter",
               "deepseek": "deepseek", "zhipu_zai": "zhipu", "anthropic": "anthropic", "gemini": "gemini",
               "cohere": "cohere", "azure_openai": "azure"}
NDJSON = [("Content-Type", "application/x-ndjson")]


def recorded() -> List[str]:
    found = [f"{folder}/{p.name}" for folder in SSE_FOLDERS for p in sorted((WIRE / folder).glob("*.sse"))]
    found += [f"ollama/{p.name}" for p in sorted((WIRE / "ollama").glob("docs_chat_stream*.ndjson"))]
    found += [f"ollama/{p.name}" for p in sorted((WIRE / "ollama").glob("sk_chat_stream*.ndjson"))]
    return found


def _payload(choices, **extra) -> bytes:
    obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": choices, **extra}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _tokens(n: int, seed: int) -> List[str]:
    rng = random.Random(seed)
    return [rng.choice([" the", " a\u00e9", "\"q\"", "\\", "\n", " \U0001f600", "x"]) for _ in range(n)]


def synthetic() -> dict:
    """Long streams whose per-token payloads repeat a shape (the decoder's fast
    path): text with OpenAI's ``obfuscation``, two parallel tool calls, two
    interleaved choices, and usage after the finish."""
    text = b"".join(_payload([{"index": 0, "delta": {"content": t}, "finish_reason": None}],
                             obfuscation="x" * (i % 7)) for i, t in enumerate(_tokens(300, 1)))
    text = (_payload([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            + text + _payload([{"index": 0, "delta": {}, "finish_reason": "stop"}])
            + _payload([], usage={"prompt_tokens": 3, "completion_tokens": 300, "total_tokens": 303})
            + b"data: [DONE]\n\n")
    calls = [_payload([{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": k, "id": f"call_{k}", "type": "function", "function": {"name": f"f{k}", "arguments": ""}}]},
        "finish_reason": None}]) for k in range(2)]
    for k in range(2):
        calls += [_payload([{"index": 0, "delta": {"tool_calls": [{"index": k, "function": {"arguments": piece}}]},
                             "finish_reason": None}]) for piece in _tokens(150, 2 + k)]
    tools = b"".join(calls) + _payload([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]) + b"data: [DONE]\n\n"
    two = [_payload([{"index": c, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
           for c in range(2)]
    for i, t in enumerate(_tokens(200, 4)):
        two.append(_payload([{"index": i % 2, "delta": {"content": t}, "finish_reason": None}]))
    two += [_payload([{"index": c, "delta": {}, "finish_reason": "stop"}]) for c in range(2)]
    return {"text": (text, 1), "tools": (tools, 1), "two_choices": (b"".join(two) + b"data: [DONE]\n\n", 2)}


SYNTHETIC = synthetic()


def case(name: str) -> Tuple[str, bytes, int]:
    """(provider, body, choices) of a recorded transcript or a synthetic stream."""
    if name in SYNTHETIC:
        body, n = SYNTHETIC[name]
        return "openai", body, n
    folder, file = name.split("/")
    body = (WIRE / folder / file).read_bytes()
    n = 3 if "n3" in file else 1
    return ("ollama" if folder == "ollama" else SSE_FOLDERS[folder]), body, n


def read(server, provider: str, body: bytes, choice: Optional[int]):
    """Serve ``body`` once; read it as chunks (``choice`` None) or through
    ``events(stream, choice)``. Returns (items, error)."""
    if provider == "ollama":
        server.handler = lambda req, reply: reply.send(200, body, NDJSON)
    else:
        server.handler = lambda req, reply: reply.sse(body)
    items, error = [], None
    with make_client(server, provider) as client:
        stream = client.chat_completion_stream(model="some-model", messages="hi")
        try:
            for item in (stream if choice is None else events(stream, choice)):
                items.append(item)
        except llmlib.LLMError as exc:
            error = exc
    return items, error


def _fresh_ids(items: list) -> list:
    """Gemini sends no tool call ids: llmlib makes a random one per call."""
    return [attrs.evolve(e, id=None) if type(e) is ToolCallStart else e for e in items]


def same(server, provider: str, body: bytes, choices: int) -> None:
    chunks, error = read(server, provider, body, None)
    for choice in range(choices):
        got, got_error = read(server, provider, body, choice)
        want = list(events(chunks, choice))
        if provider == "gemini":
            got, want = _fresh_ids(got), _fresh_ids(want)
        assert got == want
        assert type(got_error) is type(error)
        if error is not None:
            assert str(got_error) == str(error)
            assert got_error.partial == error.partial
            if error.partial is not None:
                assert error.partial == collect(chunks)


@pytest.mark.parametrize("name", recorded() + sorted(SYNTHETIC))
def test_events_of_a_stream_are_the_events_of_its_chunks(name, server):
    provider, body, choices = case(name)
    same(server, provider, body, choices)


@pytest.mark.parametrize("name", sorted(SYNTHETIC) + ["openai_chat/tool_calls_parallel_two.sse",
                                                      "openai_chat/multiple_choices_n3.sse",
                                                      "anthropic/stream_tool_use_2.sse"])
def test_a_stream_cut_anywhere_keeps_the_same_partial_read_as_events(name, server):
    """Cut before the end marker: the IncompleteStreamError and its ``.partial``
    (text and tool-call arguments folded from events made without chunks) are
    those of the same stream read as chunks."""
    provider, body, choices = case(name)
    rng = random.Random(name)
    for cut in sorted(rng.sample(range(1, len(body) - 20), 6)):
        same(server, provider, body[:cut], choices)


def test_events_of_a_stream_returns_the_stream_itself(server):
    body, _ = SYNTHETIC["text"]
    server.handler = lambda req, reply: reply.sse(body)
    with make_client(server) as client:
        stream = client.chat_completion_stream(model="m", messages="hi")
        flat = events(stream)
        assert flat is stream and stream.http.status_code == 200
        kinds = [type(e) for e in flat]
        assert kinds[0] is ContentDelta and kinds[-2:] == [Done, UsageReport]
        # Dropped at once (the usual `for e in events(client.chat_completion_stream(...))`):
        # the stream stays open while its events are read.
        text = "".join(e.text for e in events(client.chat_completion_stream(model="m", messages="hi"))
                       if type(e) is ContentDelta)
        assert text == "".join(_tokens(300, 1))


def test_a_started_stream_gives_the_events_of_its_remaining_chunks(server):
    body, _ = SYNTHETIC["tools"]
    chunks, _ = read(server, "openai", body, None)
    server.handler = lambda req, reply: reply.sse(body)
    with make_client(server) as client:
        stream = client.chat_completion_stream(model="m", messages="hi")
        first = [next(stream) for _ in range(3)]
        rest = list(events(stream))
    assert first == chunks[:3]
    assert rest == list(events(chunks[3:]))


def _slow_tokens(pause: float, then_hang: float):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        try:
            for i in range(50):
                reply.piece(_payload([{"index": 0, "delta": {"content": f"t{i} "}, "finish_reason": None}]))
                time.sleep(pause)
            reply.hang(then_hang)
        except OSError:
            reply.keep_alive = False
    return handler


def test_cancel_stops_a_stream_read_as_events_quietly_with_its_text_so_far(server):
    server.handler = _slow_tokens(0.002, 10)
    with make_client(server) as client:
        stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
        seen = []
        timer = threading.Timer(0.5, token.cancel)  # mid-stream, then on the silent socket
        timer.start()
        start = time.monotonic()
        for event in events(stream):
            seen.append(event.text)
        stopped = time.monotonic() - start
        timer.join()
    assert token.cancelled and 0.45 < stopped < 0.5 + 0.5
    assert seen == [f"t{i} " for i in range(50)]
    assert server.wait_closed(2)


def test_break_and_close_free_a_stream_read_as_events(server):
    server.handler = _slow_tokens(0.001, 10)
    with make_client(server, max_in_flight=1) as client:
        with client.chat_completion_stream(model="m", messages="hi") as stream:
            for event in events(stream):
                if event.text == "t10 ":
                    break
        assert server.wait_closed(2)
        # The one in-flight slot is free again: this would wait forever otherwise.
        stream = client.chat_completion_stream(model="m", messages="hi")
        assert isinstance(next(events(stream)), ContentDelta)
        stream.close()
        assert list(stream) == []


def test_the_total_deadline_raises_with_the_partial_from_events(server):
    server.handler = _slow_tokens(0.002, 10)
    with make_client(server, timeout=llmlib.Timeout(connect=5, read=10, total=0.5)) as client:
        seen = []
        with pytest.raises(llmlib.APITimeoutError) as caught:
            for event in events(client.chat_completion_stream(model="m", messages="hi")):
                seen.append(event.text)
    assert len(seen) == 50
    assert caught.value.partial.text == "".join(seen)


def test_tool_call_arguments_made_without_chunks_reach_the_partial(server):
    body, _ = SYNTHETIC["tools"]
    cut = body.index(b"tool_calls\"}")  # before the finish: the stream breaks after every argument piece
    server.handler = lambda req, reply: reply.sse(body[:cut])
    with make_client(server) as client:
        args = {0: "", 1: ""}
        with pytest.raises(llmlib.IncompleteStreamError) as caught:
            for event in events(client.chat_completion_stream(model="m", messages="hi")):
                if type(event) is ToolCallDelta:
                    args[event.index] += event.arguments
    calls = caught.value.partial.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_0", "f0", "".join(_tokens(150, 2))), ("call_1", "f1", "".join(_tokens(150, 3)))]
    assert args == {0: calls[0].function.arguments, 1: calls[1].function.arguments}
