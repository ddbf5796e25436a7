"""Input people already write (OpenAI-style dicts), checked before anything is
sent, with errors that say what to change (issue 11)."""

from __future__ import annotations

import json

import pytest

from llmlib import ChatCompletionRequest, Client, ConfigurationError, Message, NotFoundError, collect
from tests.conftest import TEST_KEY, make_client
from tests.fake_openai import handler as openai_handler, response_json, stream_body


def test_openai_style_dicts_are_accepted_everywhere(client, server):
    seen = []

    def handler(req, reply):
        seen.append(req.json())
        openai_handler(req, reply)

    server.handler = handler
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": '{"x": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
    ]
    tools = [{"type": "function", "function": {"name": "look", "description": "Look.",
                                               "parameters": {"type": "object", "properties": {}}}}]
    response = client.chat_completion(model="m", messages=messages, tools=tools,
                                      tool_choice={"type": "function", "function": {"name": "look"}},
                                      response_format={"type": "json_object"})
    assert response.text
    sent = seen[0]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert sent["messages"][2]["tool_calls"][0]["function"] == {"name": "look", "arguments": '{"x": 1}'}
    assert sent["tools"][0]["function"]["name"] == "look"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "look"}}
    assert sent["response_format"] == {"type": "json_object"}


def test_a_single_dict_is_one_message_not_its_keys(client, server):
    seen = []
    server.handler = lambda req, reply: (seen.append(req.json()), openai_handler(req, reply))
    client.chat_completion(model="m", messages={"role": "user", "content": "Hello"})
    assert seen[0]["messages"] == [{"role": "user", "content": "Hello"}]


def test_dict_requests_survive_the_stream_batch(client, server):
    server.handler = openai_handler
    reqs = [ChatCompletionRequest(model="m", messages=[{"role": "user", "content": f"q{i}"}]) for i in range(3)]
    got = {}
    for index, item in client.chat_completion_stream_batch(reqs):
        got[index] = got.get(index, "") + (item.text or "")
    assert sorted(got) == [0, 1, 2] and all(got.values())


@pytest.mark.parametrize("field, value", [
    ("max_tokens", -5), ("max_tokens", 0), ("max_tokens", 1.5), ("max_tokens", True),
    ("temperature", 3), ("temperature", -0.1), ("temperature", "hot"), ("top_p", 1.5),
    ("n", 0), ("seed", 1.5), ("presence_penalty", 5), ("messages", []),
    ("messages", [{"content": "no role"}]), ("messages", [{"role": "wizard", "content": "x"}]),
    ("messages", [{"role": "user", "content": [{"type": "video", "url": "x"}]}]),
    ("tools", [{"type": "function", "function": {}}]), ("tool_choice", {"type": "function"}),
    ("model", ""),
])
def test_bad_fields_are_refused_before_sending_naming_the_field(server, field, value):
    with make_client(server) as client:
        kwargs = {"model": "m", "messages": "hi", field: value}
        with pytest.raises(ConfigurationError) as info:
            client.chat_completion(**kwargs)
    assert field.rstrip("s") in str(info.value) or "role" in str(info.value) or "part" in str(info.value)
    assert server.requests == []


def test_a_base_url_without_a_scheme_is_refused_at_once():
    with pytest.raises(ConfigurationError, match="http://127.0.0.1:8080/v1"):
        Client("openai", api_key=TEST_KEY, base_url="127.0.0.1:8080/v1")


def test_a_404_from_a_base_url_without_its_version_says_so(server):
    server.handler = lambda req, reply: reply.json({"error": {"message": "not found"}}, status=404)
    with Client("openai", api_key=TEST_KEY, base_url=server.url, max_retries=0) as client:
        with pytest.raises(NotFoundError, match=r"did you mean '.*/v1'\?"):
            client.chat_completion(model="m", messages="hi")


def test_common_options_as_keywords(server):
    with Client("openai", api_key=TEST_KEY, base_url=server.url + "/v1", timeout=7, max_retries=0,
                default_headers={"X-Title": "mine"}) as client:
        assert client.options.timeout.read == 7 and client.options.max_retries == 0
        server.handler = openai_handler
        client.chat_completion(model="m", messages="hi")
    assert server.requests[0].headers["x-title"] == "mine"
    with pytest.raises(ConfigurationError, match="unknown keyword 'tmeout'"):
        Client("openai", api_key=TEST_KEY, tmeout=3)


def test_quick_chat_text_with_the_model_as_a_keyword(client, server):
    server.handler = openai_handler
    assert client.quick_chat_text("What?", model="m") == client.quick_chat_text("m", "What?")
    with pytest.raises(ConfigurationError, match="no default model"):
        client.quick_chat_text("What?")


def test_responses_and_chunks_round_trip_through_dicts(client, server):
    server.handler = lambda req, reply: (reply.sse(stream_body(["Hi", " there"])) if req.json().get("stream")
                                         else reply.json(response_json("Hi there", usage=(7, 2))))
    response = client.chat_completion(model="m", messages="hi")
    again = type(response).from_dict(json.loads(json.dumps(response.to_dict())))
    assert again == response and again.usage.total_tokens == 9
    chunks = list(client.chat_completion_stream(model="m", messages="hi"))
    assert [type(c).from_dict(json.loads(json.dumps(c.to_dict()))) for c in chunks] == chunks
    assert collect(chunks).to_dict()["choices"][0]["message"]["content"] == "Hi there"


def test_a_response_exposes_status_headers_request_id_and_rate_limits(client, server):
    headers = [("x-request-id", "req_123"), ("x-ratelimit-limit-requests", "500"),
               ("x-ratelimit-remaining-requests", "499"), ("x-ratelimit-remaining-tokens", "29000"),
               ("x-ratelimit-reset-tokens", "2ms")]
    server.handler = lambda req, reply: (
        reply.sse(stream_body(["Hi"]), headers=headers) if req.json().get("stream")
        else reply.json(response_json("Hi"), headers=headers))
    http = client.chat_completion(model="m", messages="hi").http
    assert http.status_code == 200 and http.request_id == "req_123"
    assert (http.rate_limits.requests_limit, http.rate_limits.requests_remaining,
            http.rate_limits.tokens_remaining, http.rate_limits.tokens_reset) == (500, 499, 29000, "2ms")
    with client.chat_completion_stream(model="m", messages="hi") as stream:
        assert stream.http.request_id == "req_123" and stream.http.rate_limits.requests_remaining == 499
        list(stream)


def test_anthropic_rate_limit_headers_are_parsed():
    from llmlib import RateLimits
    from tests.conftest import wire

    lines = wire("anthropic", "llm_stream_text_with_ratelimit_headers.sse.headers").read_text().splitlines()
    headers = dict(line.split(": ", 1) for line in lines if ": " in line and not line.startswith("HTTP"))
    limits = RateLimits.from_headers(headers)
    assert (limits.requests_limit, limits.requests_remaining, limits.tokens_remaining) == (20000, 19999, 2400000)
    assert limits.requests_reset == "2026-02-17T23:44:11Z"


def test_retries_are_logged_at_info_and_requests_at_debug(server, caplog):
    import logging

    calls = {"n": 0}

    def handler(req, reply):
        calls["n"] += 1
        if calls["n"] < 3:
            reply.send(503, b"", [("Retry-After-Ms", "5")], mode="length")
        else:
            reply.json(response_json("ok"))

    server.handler = handler
    with caplog.at_level(logging.DEBUG, logger="llmlib"), make_client(server, max_retries=2) as client:
        assert client.chat_completion(model="m", messages="hi").text == "ok"
    ours = [r for r in caplog.records if r.name == "llmlib"]
    retries = [r.getMessage() for r in ours if r.levelno == logging.INFO]
    assert retries == ["retry 1 of 2 in 0.01 s after HTTP 503", "retry 2 of 2 in 0.01 s after HTTP 503"] or \
        all("after HTTP 503" in m for m in retries) and len(retries) == 2
    assert any(r.levelno == logging.DEBUG and "POST" in r.getMessage() for r in ours)
    assert all(TEST_KEY not in r.getMessage() for r in caplog.records)


def test_an_image_for_a_model_known_to_be_text_only_is_refused_before_sending(server):
    from llmlib import Content

    image = Message.user(Content.of("What is this?", Content.new_image("https://example.com/a.png")))
    with make_client(server, provider="groq") as client:
        with pytest.raises(ConfigurationError, match="llama-3.3-70b-versatile"):
            client.chat_completion(model="llama-3.3-70b-versatile", messages=[image])
        with pytest.raises(ConfigurationError):
            client.chat_completion_stream(model="llama-3.3-70b-versatile", messages=[image])
        server.handler = openai_handler
        client.chat_completion(model="some-unknown-model", messages=[image])  # unknown: never guessed
    assert len(server.requests) == 1
