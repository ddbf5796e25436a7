"""The Client against real loopback servers: request shape, eager errors, cancel, close."""

from __future__ import annotations

import gc
import json
import threading
import time

import pytest

import llmlib
from llmlib import (Client, ConfigurationError, Content, Message, Tool, ToolCall, collect, errors)
from tests.conftest import TEST_KEY, make_client, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
EVENTS = TEXT.split(b"\n\n")[:-1]  # the transcript's events, [DONE] last


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="GROQ_API_KEY"):
        Client("groq")
    monkeypatch.setenv("GROQ_API_KEY", TEST_KEY)
    client = Client(llmlib.Provider.GROQ)
    assert client.base_url == "https://api.groq.com/openai/v1"
    assert TEST_KEY not in repr(client) and TEST_KEY not in repr(vars(client))
    client.close()


def test_unknown_and_unimplemented_providers():
    with pytest.raises(ConfigurationError, match="use one of: openai"):
        Client("nope")
    from llmlib.providers import SPECS, _implemented

    missing = [name for name, spec in SPECS.items() if not _implemented(spec.protocol)]
    for name in missing:  # none, once every protocol has its module
        with pytest.raises(ConfigurationError, match="not implemented"):
            Client(name, api_key="x")


def test_every_row_without_a_default_base_url_has_a_protocol_that_finds_one(monkeypatch):
    # A Client is made from its row alone; a row with no base URL relies on its protocol
    # (loaded at the first request) to find one, and says what to set when it cannot.
    from llmlib.providers import SPECS

    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_BASE_URL", "LOCAL_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    rows = [name for name, spec in SPECS.items() if spec.base_url is None]
    assert rows == ["azure", "local"]
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        Client("azure", api_key="x").base_url
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/")
    assert Client("azure", api_key="x").base_url == "https://r.openai.azure.com"


def test_request_body_and_headers(client, server):
    seen = []

    def handler(req, reply):
        seen.append(req)
        reply.sse(TEXT)

    server.handler = handler
    tool = Tool.function("get_weather", "Weather of a city", {"type": "object", "properties": {"city": {"type": "string"}}})
    list(client.chat_completion_stream(
        model="gpt-4o", max_tokens=50, temperature=0.2, tools=[tool], tool_choice="get_weather", stop=["\n"],
        messages=[Message.system("Be brief."), Message.user("Weather in Paris?"),
                  Message.assistant(tool_calls=[ToolCall.new("call_1", "get_weather", '{"city":"Paris"}')]),
                  Message.tool("call_1", "18C")]))
    req = seen[0]
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert req.headers["accept"] == "text/event-stream"
    body = req.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body  # OpenAI's current field
    assert body["stop"] == ["\n"] and body["temperature"] == 0.2
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}
    assert body["messages"][3] == {"role": "tool", "content": "18C", "tool_call_id": "call_1"}


def test_compatible_providers_send_max_tokens(server):
    server.handler = lambda req, reply: reply.json(json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes()))
    with make_client(server, provider="groq") as groq:
        groq.chat_completion(model="m", messages="hi", max_tokens=7)
    assert server.requests[-1].json()["max_tokens"] == 7


def test_image_and_audio_parts(client, server, tmp_path):
    png = tmp_path / "dot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    wav = tmp_path / "hello.wav"
    wav.write_bytes(b"RIFFfake")
    server.handler = lambda req, reply: reply.json(json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes()))
    client.chat_completion(model="m", messages=[Message.user([
        "Describe both:", Content.from_image_file(png), Content.new_image("https://example.com/cat.jpg"),
        Content.from_audio_file(wav)])])
    parts = server.requests[-1].json()["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "Describe both:"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
    assert parts[3]["type"] == "input_audio" and parts[3]["input_audio"]["format"] == "wav"
    with pytest.raises(ConfigurationError, match="from_audio_file"):
        client.chat_completion(model="m", messages=[Message.user(Content.new_audio("https://x/a.wav", "audio/wav"))])


def test_chat_completion_and_quick_chat_text(client, server):
    body = json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes())
    server.handler = lambda req, reply: reply.json(body)
    response = client.chat_completion(llmlib.ChatCompletionRequest("gpt-4o", [Message.user("hi")]))
    assert response.text == body["choices"][0]["message"]["content"]
    assert response.usage.prompt_tokens == body["usage"]["prompt_tokens"]
    assert client.quick_chat_text("gpt-4o", "hi", system="terse") == response.text
    assert [m["role"] for m in server.requests[-1].json()["messages"]] == ["system", "user"]


def test_connection_is_reused_between_streams(client, server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    for _ in range(3):
        assert collect(client.chat_completion_stream(model="m", messages="hi")).text
    assert server.connections == 1


def test_collect_of_a_stream_gives_what_its_chunks_give_started_or_not(client, server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    whole = collect(list(client.chat_completion_stream(model="m", messages="hi")))
    assert collect(client.chat_completion_stream(model="m", messages="hi")) == whole
    stream = client.chat_completion_stream(model="m", messages="hi")
    first = next(stream)
    rest = collect(stream)  # only what is left, as for any iterable
    assert (first.text or "") + rest.text == whole.text and rest.usage == whole.usage


def test_leaving_the_loop_early_closes_the_connection(client, server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(EVENTS[0] + b"\n\n" + EVENTS[1] + b"\n\n")
        reply.hang(5)

    server.handler = handler
    for chunk in client.chat_completion_stream(model="m", messages="hi"):
        break
    assert server.wait_closed(2.0)


def test_dropping_an_unstarted_generator_closes_the_connection(client, server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.hang(5)

    server.handler = handler
    stream = client.chat_completion_stream(model="m", messages="hi")
    del stream
    gc.collect()
    assert server.wait_closed(2.0)


def test_cancel_from_another_thread_wakes_a_silent_stream(client, server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(EVENTS[0] + b"\n\n")
        reply.hang(10)  # silent, far longer than the test

    server.handler = handler
    stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
    first = next(stream)
    assert first.role == "assistant"
    timer = threading.Timer(0.2, token.cancel)
    started = time.monotonic()
    timer.start()
    assert list(stream) == []  # ends quietly
    elapsed = time.monotonic() - started - 0.2
    assert token.cancelled
    assert elapsed < 1.0, f"cancel took {elapsed:.3f} s"  # the benchmark measures the real latency
    token.cancel()  # twice is harmless
    assert server.wait_closed(2.0)


def test_cancel_after_the_end_touches_nothing(client, server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
    text = collect(stream).text
    token.cancel()
    assert text and collect(client.chat_completion_stream(model="m", messages="hi")).text == text
    assert server.connections == 1  # the pooled connection survived the late cancel


def test_incomplete_stream_raises_with_partial(client, server):
    cut = b"\n\n".join(EVENTS[:4]) + b"\n\n" + EVENTS[4][:30]  # close mid-event, no [DONE]
    server.handler = lambda req, reply: reply.sse(cut, mode="close")
    chunks = []
    with pytest.raises(errors.IncompleteStreamError) as info:
        for chunk in client.chat_completion_stream(model="m", messages="hi"):
            chunks.append(chunk)
    assert len(chunks) == 4  # the partial event is not yielded
    assert info.value.partial.text == collect(chunks).text != ""


def test_midstream_error_event_raises_typed_error(client, server):
    error = b'data: {"error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    server.handler = lambda req, reply: reply.sse(b"\n\n".join(EVENTS[:3]) + b"\n\n" + error)
    with pytest.raises(errors.OverloadedError) as info:
        list(client.chat_completion_stream(model="m", messages="hi"))
    assert info.value.partial is not None and info.value.partial.text == collect(
        [llmlib.providers.openai.decode_chunk(json.loads(e[6:])) for e in EVENTS[:3]]).text


def test_html_instead_of_a_stream(client, server):
    page = b"<html><body>Please log in to the hotel wifi</body></html>"
    server.handler = lambda req, reply: reply.send(200, page, [("Content-Type", "text/html")], mode="length")
    with pytest.raises(errors.APIStatusError, match="hotel wifi"):
        client.chat_completion_stream(model="m", messages="hi")


def test_invalid_json_in_stream_is_a_decode_error(client, server):
    server.handler = lambda req, reply: reply.sse(EVENTS[0] + b"\n\ndata: {not json\n\n")
    with pytest.raises(errors.DecodeError) as info:
        list(client.chat_completion_stream(model="m", messages="hi"))
    assert info.value.offset == len(EVENTS[0]) + 2


def test_list_models_and_model_info(client, server):
    spec = wire("models", "openai_models_list_spec_example.json").read_bytes()
    server.handler = lambda req, reply: reply.send(200, spec, [("Content-Type", "application/json")], mode="length")
    with pytest.raises(errors.DecodeError, match="not JSON"):  # the published example has a trailing comma
        client.list_models()
    fixed = spec.replace(b"},\n  ]", b"}\n  ]")
    server.handler = lambda req, reply: reply.send(200, fixed, [("Content-Type", "application/json")], mode="length")
    models = client.list_models()
    assert [str(m) for m in models] == ["model-id-0", "model-id-1", "model-id-2"]
    assert client.model_info("model-id-2").owned_by == "openai"
    with pytest.raises(errors.NotFoundError):
        client.model_info("gpt-9")


def test_bad_arguments_say_what_to_change(client):
    with pytest.raises(ConfigurationError, match="bad chat request arguments"):
        client.chat_completion(model="m", messages="hi", temprature=0.1)
    with pytest.raises(ConfigurationError, match="messages is empty"):
        client.chat_completion(model="m", messages=[])
    with pytest.raises(ConfigurationError, match="tool_call_id"):
        client.chat_completion(model="m", messages=[Message("tool", "x")])
    with pytest.raises(ConfigurationError, match="unknown role"):
        Message("robot", "x")


def test_a_stall_mid_stream_is_a_timeout_with_partial(server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(EVENTS[0] + b"\n\n" + EVENTS[1] + b"\n\n")
        reply.hang(5)

    server.handler = handler
    with make_client(server, timeout=llmlib.Timeout(connect=5, read=0.3)) as client:
        chunks = []
        with pytest.raises(errors.APITimeoutError) as info:
            for chunk in client.chat_completion_stream(model="m", messages="hi"):
                chunks.append(chunk)
    assert len(chunks) == 2 and info.value.partial.text == collect(chunks).text
    assert server.wait_closed(2.0)
