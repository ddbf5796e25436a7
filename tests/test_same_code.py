"""The same user code, unchanged, against every provider's loopback server:
chat, stream, cancel mid-stream, tools (a whole round trip), images, reasoning,
batches, errors, and the fault suite (splits at every byte, cut streams,
in-band errors, cancel, ``total``, secrets). Only the server speaks each
provider's wire format (``tests/fakes.py``); the user code is one function per
behaviour, parametrised over providers (issue 9)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import pytest

from llmlib import (APIStatusError, APITimeoutError, AuthenticationError, ConfigurationError, CancelToken, Content, IncompleteStreamError, LLMError,
                    Message, NotFoundError, RateLimitError, Timeout, Tool, collect, events)
from llmlib.streaming import ContentDelta, Done, ReasoningDelta, ToolCallStart, UsageReport
from tests.conftest import TEST_KEY
from tests.fakes import FAKES
from tests.loopback import split_at

PROVIDERS = sorted(FAKES)
TEXT = ["Hello", ", ", "world", "!"]
WEATHER = Tool.function("get_weather", "The weather in a city.",
                        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(params=PROVIDERS)
def fake(request):
    return FAKES[request.param]


def _serve(server, fake, stream=None, whole=None, status=200, pieces=None, record=None):
    """Answer chat requests: ``stream`` bytes for streamed ones, ``whole`` (a dict) otherwise
    (the bundled model's chat_completion is a stream underneath: it gets ``stream``)."""
    def handler(req, reply):
        if record is not None:
            record.append(req)
        if not fake.is_chat(req):
            reply.json(fake.error(404, "no such route"), status=404)
        elif fake.wants_stream(req):
            if status != 200:
                reply.json(fake.error(status, "refused"), status=status)
            else:
                fake.reply_stream(reply, pieces(stream) if pieces else stream)
        else:
            reply.json(whole if status == 200 else fake.error(status, "refused"), status=status)
    server.handler = handler


# ---------------------------------------------------------------- the user code


def test_chat(fake, server):
    _serve(server, fake, whole=fake.response("".join(TEXT), usage=(12, 4)), stream=fake.stream(TEXT, usage=(12, 4)))
    with fake.client(server) as client:
        response = client.chat_completion(model=fake.model, messages=[Message.system("Be brief."),
                                                                       Message.user("Hi")], max_tokens=50)
    assert response.text == "Hello, world!"
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (12, 4)


def test_stream_and_events(fake, server):
    _serve(server, fake, stream=fake.stream(TEXT, usage=(12, 4)))
    with fake.client(server) as client:
        chunks = list(client.chat_completion_stream(model=fake.model, messages="Hi", max_tokens=50))
    assert collect(chunks).text == "Hello, world!"
    assert "".join(c.text or "" for c in chunks) == "Hello, world!"
    kinds = [type(e) for e in events(chunks)]
    assert [k for k in kinds if k is ContentDelta] == [ContentDelta] * 4
    assert Done in kinds and kinds.index(Done) > max(i for i, k in enumerate(kinds) if k is ContentDelta)
    usage = [e for e in events(chunks) if isinstance(e, UsageReport)]
    assert usage and (usage[-1].usage.prompt_tokens, usage[-1].usage.completion_tokens) == (12, 4)
    assert collect(chunks).finish_reason == "stop"


def _after_first_text(body: bytes) -> int:
    """A cut just after the event or line that carries the first text piece."""
    at = body.index(b"Hello")
    for sep in (b"\r\n\r\n", b"\n\n", b"\n"):
        end = body.find(sep, at)
        if end >= 0 and (sep != b"\n" or body.find(b"\n\n", at) < 0):
            return end + len(sep)
    raise AssertionError("no event end after the first text")


def _first_then(fake, server, then):
    body = fake.stream(TEXT)
    cut = _after_first_text(body)

    def handler(req, reply):
        reply.head(200, [("Content-Type", fake.stream_content_type)])
        reply.piece(body[:cut])
        try:
            then(reply)
        except OSError:
            reply.keep_alive = False

    server.handler = handler


def test_cancel_mid_stream(fake, server):
    _first_then(fake, server, lambda reply: reply.hang(10))
    with fake.client(server) as client:
        stream, token = client.chat_completion_stream_with_cancel(model=fake.model, messages="Hi")
        with stream:
            texts = []
            for chunk in stream:
                if chunk.text:
                    texts.append(chunk.text)
                    threading.Timer(0.1, token.cancel).start()
                    start = time.monotonic()
            assert time.monotonic() - start < 0.3  # within 100 ms of the cancel, on a silent server
        assert texts == ["Hello"] and token.cancelled
    assert server.wait_closed(2)


def test_tools_round_trip(fake, server):
    requests = []
    turn = {"n": 0}

    def handler(req, reply):
        requests.append(req)
        turn["n"] += 1
        if turn["n"] == 1:
            fake.reply_stream(reply, fake.tool_stream("call_1", "get_weather", {"city": "Paris"}))
        else:
            fake.reply_stream(reply, fake.stream(["It is 21C."]))

    server.handler = handler
    with fake.client(server) as client:
        messages = [Message.user("Weather in Paris?")]
        first = collect(client.chat_completion_stream(model=fake.model, messages=messages, tools=[WEATHER]))
        assert first.finish_reason == "tool_calls"
        (call,) = first.tool_calls
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
        messages += [first.message, Message.tool(call.id, '{"temperature": "21C"}')]
        second = collect(client.chat_completion_stream(model=fake.model, messages=messages, tools=[WEATHER]))
    assert second.text == "It is 21C."
    sent = requests[1].body.decode()
    assert "get_weather" in sent and "21C" in sent and "Paris" in sent  # the call and its result went back
    assert "get_weather" in requests[0].body.decode()  # the tool was declared


def test_image(fake, server, tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    seen = []
    _serve(server, fake, whole=fake.response("A dot."), stream=fake.stream(["A dot."]), record=seen)
    with fake.client(server) as client:
        response = client.chat_completion(model=fake.model, messages=[
            Message.user(Content.of("What is this?", Content.from_image_file(path)))])
    assert response.text == "A dot."
    assert base64.b64encode(PNG).decode() in seen[0].body.decode()


def test_reasoning(fake, server):
    try:
        body = fake.stream(["42"], reasoning=["Six times ", "seven."])
    except TypeError:
        pytest.skip(f"the {fake.name} fake has no reasoning stream")
    _serve(server, fake, stream=body)
    with fake.client(server) as client:
        chunks = list(client.chat_completion_stream(model=fake.model, messages="6*7?"))
    answer = collect(chunks)
    assert answer.reasoning_content == "Six times seven." and answer.text == "42"
    kinds = [type(e) for e in events(chunks)]
    assert kinds.index(ReasoningDelta) < kinds.index(ContentDelta)


def test_batch_and_stream_batch(fake, server):
    _serve(server, fake, stream=fake.stream(TEXT), whole=fake.response("".join(TEXT)))
    with fake.client(server) as client:
        requests = [dict(model=fake.model, messages=f"q{i}") for i in range(4)]
        from llmlib import ChatCompletionRequest

        reqs = [ChatCompletionRequest(**r) for r in requests]
        results = client.chat_completion_batch(reqs, concurrency_limit=2)
        assert [r.text for r in results] == ["Hello, world!"] * 4
        texts = {}
        for index, item in client.chat_completion_stream_batch(reqs, concurrency_limit=2):
            assert not isinstance(item, LLMError), item
            texts[index] = texts.get(index, "") + (item.text or "")
        assert texts == {i: "Hello, world!" for i in range(4)}


@pytest.mark.parametrize("status, error", [(401, AuthenticationError), (404, NotFoundError), (429, RateLimitError)])
@pytest.mark.parametrize("streamed", [False, True])
def test_http_errors(fake, server, status, error, streamed):
    _serve(server, fake, stream=b"", whole={}, status=status)
    with fake.client(server) as client:
        call = client.chat_completion_stream if streamed else client.chat_completion
        with pytest.raises(error) as info:
            call(model=fake.model, messages="Hi")
    assert info.value.status_code == status and info.value.provider == fake.name


# ---------------------------------------------------------------- the fault suite, per protocol


def test_any_split_gives_the_same_answer(fake, server):
    body = fake.stream(TEXT, usage=(12, 4))
    with fake.client(server) as client:
        for step in (1, 3, 7):
            _serve(server, fake, stream=split_at(body, range(step, len(body), step)))
            answer = collect(client.chat_completion_stream(model=fake.model, messages="Hi"))
            assert answer.text == "Hello, world!" and answer.usage.completion_tokens == 4


def test_a_cut_stream_is_incomplete_with_partial(fake, server):
    _first_then(fake, server, lambda reply: setattr(reply, "keep_alive", False) or reply.end())
    with fake.client(server) as client:
        with pytest.raises(IncompleteStreamError) as info:
            collect(client.chat_completion_stream(model=fake.model, messages="Hi"))
    assert info.value.partial.text == "Hello"


def test_an_error_in_the_stream_is_typed_with_partial(fake, server):
    _first_then(fake, server, lambda reply: (reply.piece(fake.error_event(429, "slow down")), reply.end()))
    with fake.client(server) as client:
        with pytest.raises(RateLimitError if fake.typed_errors else APIStatusError) as info:
            collect(client.chat_completion_stream(model=fake.model, messages="Hi"))
    assert info.value.partial.text == "Hello" and info.value.provider == fake.name


def test_total_stops_a_dripping_stream_with_partial(fake, server):
    body = fake.stream(TEXT)
    cut = _after_first_text(body)

    def then(reply):
        for byte in body[cut:]:
            reply.piece(bytes([byte]))
            time.sleep(0.05)

    _first_then(fake, server, then)
    with fake.client(server, timeout=Timeout(connect=5, read=10, total=0.5)) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError) as info:
            collect(client.chat_completion_stream(model=fake.model, messages="Hi"))
        assert time.monotonic() - start < 0.9
    assert info.value.partial.text == "Hello"


def test_the_key_is_never_printed(fake, server, caplog):
    if not fake.has_key:
        pytest.skip(f"{fake.name} takes no API key")
    def handler(req, reply):
        reply.json(fake.error(401, f"bad key {TEST_KEY} (you sent {TEST_KEY[:3]}...)"), status=401)

    server.handler = handler
    with caplog.at_level(logging.DEBUG):
        with fake.client(server) as client:
            assert TEST_KEY not in repr(client)
            with pytest.raises(AuthenticationError) as info:
                client.chat_completion(model=fake.model, messages="Hi")
            text = f"{info.value!s} {info.value!r} {info.value.body!r} {info.value.request_id!r}"
            assert TEST_KEY not in text
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)
    sent = server.requests[-1]
    assert TEST_KEY not in sent.path  # the key travels in a header, never in the URL


AUDIO_REFUSED = {"anthropic", "ollama", "cohere"}  # their chat APIs take no audio input


def test_audio_is_sent_or_refused_before_sending(fake, server, tmp_path):
    path = tmp_path / "hi.wav"
    path.write_bytes(b"RIFF$\x00\x00\x00WAVEfmt fake-audio")
    _serve(server, fake, whole=fake.response("Heard."), stream=fake.stream(["Heard."]))
    message = Message.user(Content.of("What is said?", Content.from_audio_file(path)))
    with fake.client(server) as client:
        if fake.name in AUDIO_REFUSED:
            with pytest.raises(ConfigurationError, match=fake.name):
                client.chat_completion(model=fake.model, messages=[message])
            assert server.requests == []
        else:
            assert client.chat_completion(model=fake.model, messages=[message]).text == "Heard."
            assert base64.b64encode(path.read_bytes()).decode() in server.requests[0].body.decode()


def test_list_models(fake, server):
    from llmlib.providers import SPECS

    def handler(req, reply):
        if req.path.startswith("/openai/models"):  # Azure's listing path
            req.path = "/v1/models"
        fake.module.handler(req, reply)

    server.handler = handler
    with fake.client(server) as client:
        if not getattr(SPECS[fake.name], "has_models_endpoint", True):
            with pytest.raises(ConfigurationError, match="list"):
                client.list_models()
            assert server.requests == []
            return
        models = client.list_models()
    assert fake.model in [m.id for m in models]
    assert all(m.provider == fake.name for m in models)
