"""What llmlib sends to Ollama: the exact JSON bodies of ``POST /api/chat`` (and
``GET /api/tags``), recorded by a loopback server playing Ollama, and where
they go (``base_url``, ``OLLAMA_BASE_URL``, ``OLLAMA_HOST``).

Shapes follow https://github.com/ollama/ollama/blob/main/docs/api.md and
https://docs.ollama.com/capabilities/ (thinking, tool calling, structured
outputs, vision).
"""

from __future__ import annotations

import base64

import pytest

import llmlib
from llmlib import (ChatCompletionRequest, ConnectionOptions, Content, ContentPart, Message, Timeout, Tool,
                    ToolCall, collect)
from llmlib.providers.ollama import host_url
from tests import fake_ollama

MODEL = "qwen3:8b"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
PNG64 = base64.b64encode(PNG).decode()
WEATHER = Tool.function("get_weather", "Weather in a city",
                        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
WEATHER_SENT = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
OPTIONS = ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=10))


@pytest.fixture
def oclient(server):
    server.handler = fake_ollama.handler
    with llmlib.Client("ollama", base_url=server.url, options=OPTIONS) as c:
        yield c


def sent(oclient, server, *messages, **fields):
    """The JSON body the request built from ``messages`` and ``fields`` sent."""
    oclient.chat_completion(ChatCompletionRequest(fields.pop("model", MODEL), list(messages), **fields))
    return server.requests[-1].json()


def refused(oclient, server, *messages, **fields):
    """The ConfigurationError a request raises; asserts nothing was sent, streamed or not."""
    request = ChatCompletionRequest(fields.pop("model", MODEL), list(messages), **fields)
    with pytest.raises(llmlib.ConfigurationError) as info:
        oclient.chat_completion(request)
    with pytest.raises(llmlib.ConfigurationError):
        oclient.chat_completion_stream(request)
    assert server.requests == []
    assert str(info.value).startswith("ollama: ")
    return str(info.value)


def test_text_request_body_and_headers(oclient, server):
    response = oclient.chat_completion(model=MODEL, messages="Hi")
    assert response.text == fake_ollama.TEXT
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", "/api/chat")
    assert req.json() == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False}
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers


def test_streamed_request(oclient, server):
    response = collect(oclient.chat_completion_stream(model=MODEL, messages="Hi"))
    assert response.text == fake_ollama.TEXT and response.finish_reason == "stop"
    req = server.requests[-1]
    assert req.json() == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    assert req.headers["accept"] == "application/x-ndjson"


def test_an_explicit_key_is_sent_as_bearer(server):
    # Ollama needs none; ollama.com and authenticating proxies take one as a Bearer token.
    server.handler = fake_ollama.handler
    with llmlib.Client("ollama", api_key="ollama-key-123", base_url=server.url, options=OPTIONS) as c:
        c.chat_completion(model=MODEL, messages="Hi")
    assert server.requests[-1].headers["authorization"] == "Bearer ollama-key-123"


def test_system_and_multi_turn(oclient, server):
    body = sent(oclient, server, Message.system("Be brief."), Message.user("Why is the sky blue?"),
                Message.assistant("Rayleigh scattering."), Message.developer("Use one sentence."),
                Message.user("And sunsets?"))
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "Rayleigh scattering."},
        {"role": "system", "content": "Use one sentence."},
        {"role": "user", "content": "And sunsets?"},
    ]


def test_openai_style_dicts(oclient, server):
    oclient.chat_completion(model=MODEL, messages=[{"role": "system", "content": "S"},
                                                   {"role": "user", "content": "U"}])
    assert server.requests[-1].json()["messages"] == [{"role": "system", "content": "S"},
                                                      {"role": "user", "content": "U"}]


def test_tools_and_tool_results(oclient, server):
    call = ToolCall.new("call_abc", "get_weather", '{"city": "Toronto"}')
    body = sent(oclient, server,
                Message.user("What is the weather in Toronto?"),
                Message.assistant(None, [call], reasoning_content="I should look it up."),
                Message.tool("call_abc", "11 degrees celsius"),
                tools=[WEATHER])
    assert body == {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": "What is the weather in Toronto?"},
            {"role": "assistant", "content": "", "thinking": "I should look it up.",
             "tool_calls": [{"id": "call_abc",
                             "function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}]},
            {"role": "tool", "content": "11 degrees celsius", "tool_call_id": "call_abc",
             "tool_name": "get_weather"},
        ],
        "tools": [WEATHER_SENT],
        "stream": False,
    }


def test_tool_name_from_the_latest_call_or_the_message_name(oclient, server):
    first = ToolCall.new("call_0", "get_weather", '{"city": "Paris"}')
    second = ToolCall.new("call_0", "get_time", "")  # generated ids repeat across turns
    body = sent(oclient, server,
                Message.user("Weather?"), Message.assistant(None, [first]), Message.tool("call_0", "21C"),
                Message.user("Time?"), Message.assistant(None, [second]), Message.tool("call_0", "noon"),
                Message(llmlib.Role.TOOL, "?", tool_call_id="call_unknown"),
                Message(llmlib.Role.TOOL, "ok", tool_call_id="call_0", name="explicit"))
    tools = [m for m in body["messages"] if m["role"] == "tool"]
    assert [m.get("tool_name") for m in tools] == ["get_weather", "get_time", None, "explicit"]
    assert body["messages"][4]["tool_calls"] == [
        {"id": "call_0", "function": {"name": "get_time", "arguments": {}}}]


def test_tool_choice(oclient, server):
    body = sent(oclient, server, Message.user("Hi"), tools=[WEATHER], tool_choice="auto")
    assert body["tools"] == [WEATHER_SENT]
    assert "tools" not in sent(oclient, server, Message.user("Hi"), tools=[WEATHER], tool_choice="none")
    # parallel_tool_calls and user have no Ollama field: not sent.
    body = sent(oclient, server, Message.user("Hi"), tools=[WEATHER], parallel_tool_calls=False, user="u1")
    assert set(body) == {"model", "messages", "tools", "stream"}
    server.requests.clear()
    for choice in ("required", "get_weather"):
        assert "cannot force a tool call" in refused(oclient, server, Message.user("Hi"), tools=[WEATHER],
                                                     tool_choice=choice)


def test_tool_arguments_must_be_an_object(oclient, server):
    bad = ToolCall.new("call_1", "get_weather", '["Paris"]')
    text = refused(oclient, server, Message.user("Hi"), Message.assistant(None, [bad]),
                   Message.tool("call_1", "x"))
    assert "messages[1] (assistant)" in text and "not a JSON object" in text


def test_a_tool_round_trip_sends_the_streamed_call_back(oclient, server):
    server.handler = lambda req, reply: reply.send(
        200, fake_ollama.tool_stream_body(None, "get_weather", '{"city": "Tokyo"}'),
        [("Content-Type", fake_ollama.STREAM_CONTENT_TYPE)])
    messages = [Message.user("Weather in Tokyo?")]
    first = collect(oclient.chat_completion_stream(model=MODEL, messages=messages, tools=[WEATHER]))
    (call,) = first.tool_calls
    assert (call.id, call.function.name, first.finish_reason) == ("call_0", "get_weather", "tool_calls")
    server.handler = fake_ollama.handler
    oclient.chat_completion(model=MODEL, messages=messages + [first.message, Message.tool(call.id, "sunny")],
                            tools=[WEATHER])
    assert server.requests[-1].json()["messages"][1:] == [
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": "call_0", "function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_0", "tool_name": "get_weather"},
    ]


def test_images(oclient, server, tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    body = sent(oclient, server, Message.user(Content.of("What is this?", Content.from_image_file(path),
                                                         Content.new_image(f"data:image/jpeg;base64,{PNG64}"),
                                                         "Answer briefly.")))
    assert body["messages"] == [{"role": "user", "content": "What is this?\nAnswer briefly.",
                                 "images": [PNG64, PNG64]}]


def test_a_remote_image_is_refused_before_sending(oclient, server):
    text = refused(oclient, server, Message.user(Content.of("What is this?",
                                                            Content.new_image("https://example.com/cat.png"))))
    assert "messages[0] (user) part 1" in text and "only inline" in text


def test_audio_and_documents_are_refused_before_sending(oclient, server):
    wav = "data:audio/wav;base64," + base64.b64encode(b"RIFF....WAVE").decode()
    text = refused(oclient, server, Message.user(Content.of("Transcribe", Content.new_audio(wav, "audio/wav"))))
    assert "does not accept audio" in text and "messages[0] (user) part 1" in text
    pdf = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4").decode()
    assert "does not accept documents" in refused(oclient, server, Message.user(Content.new_document(pdf)))
    assert "base64" in refused(oclient, server, Message.user([ContentPart("image", url="data:image/png,abc")]))


@pytest.mark.parametrize("model, fields, think", [
    ("qwen3:8b", dict(reasoning_effort="high"), True),
    ("qwen3:8b", dict(reasoning_effort="none"), False),
    ("gpt-oss:20b", dict(reasoning_effort="low"), "low"),
    ("gpt-oss:120b-cloud", dict(reasoning_effort="HIGH"), "high"),
    ("deepseek-r1", dict(reasoning_budget=2048), True),
    ("deepseek-r1", dict(reasoning_budget=0), False),
    ("qwen3:8b", dict(reasoning_effort="medium", extra_body={"think": "max"}), "max"),  # extra_body wins
])
def test_think(oclient, server, model, fields, think):
    assert sent(oclient, server, Message.user("Hi"), model=model, **fields)["think"] == think


def test_no_think_unless_asked_and_unknown_efforts_refused(oclient, server):
    assert "think" not in sent(oclient, server, Message.user("Hi"))
    server.requests.clear()
    text = refused(oclient, server, Message.user("Hi"), reasoning_effort="extreme")
    assert "reasoning_effort 'extreme'" in text


def test_format(oclient, server):
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    assert sent(oclient, server, Message.user("Hi"), response_format={"type": "json_object"})["format"] == "json"
    assert sent(oclient, server, Message.user("Hi"), response_format={
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema}})["format"] == schema
    assert "format" not in sent(oclient, server, Message.user("Hi"), response_format={"type": "text"})
    server.requests.clear()
    assert "no Ollama equivalent" in refused(oclient, server, Message.user("Hi"), response_format={"type": "xml"})
    assert "json_schema.schema" in refused(oclient, server, Message.user("Hi"),
                                           response_format={"type": "json_schema", "json_schema": {}})


def test_options(oclient, server):
    body = sent(oclient, server, Message.user("Hi"), temperature=0.2, top_p=0.9, max_tokens=100, stop="\n",
                seed=42, presence_penalty=1.5, frequency_penalty=1.0)
    assert body["options"] == {"temperature": 0.2, "top_p": 0.9, "num_predict": 100, "stop": ["\n"], "seed": 42,
                               "presence_penalty": 1.5, "frequency_penalty": 1.0}
    assert sent(oclient, server, Message.user("Hi"), stop=["a", "b"])["options"] == {"stop": ["a", "b"]}
    assert sent(oclient, server, Message.user("Hi"), n=1)["messages"] == [{"role": "user", "content": "Hi"}]


def test_keep_alive_and_extra_body(oclient, server):
    body = sent(oclient, server, Message.user("Hi"), temperature=0.2,
                extra_body={"keep_alive": "10m", "options": {"num_ctx": 8192, "temperature": 0.5}})
    assert body == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": False,
                    "keep_alive": "10m", "options": {"temperature": 0.5, "num_ctx": 8192}}
    # Without request options, extra_body's options go as given; keep_alive 0 unloads the model.
    body = sent(oclient, server, Message.user("Hi"), extra_body={"keep_alive": 0, "options": {"num_ctx": 4096}})
    assert (body["keep_alive"], body["options"]) == (0, {"num_ctx": 4096})


def test_n_above_one_is_refused(oclient, server):
    assert "n=2" in refused(oclient, server, Message.user("Hi"), n=2)


def test_models_request(oclient, server):
    assert [m.id for m in oclient.list_models()] == [fake_ollama.MODEL]
    req = server.requests[-1]
    assert (req.method, req.path, req.body) == ("GET", "/api/tags", b"")


# ---------------------------------------------------------------- where requests go


@pytest.fixture
def no_env(monkeypatch):
    for name in ("OLLAMA_HOST", "OLLAMA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_default_base_url(no_env):
    with llmlib.Client("ollama") as c:
        assert c.base_url == "http://127.0.0.1:11434"


def test_ollama_host_is_honoured(no_env, server):
    server.handler = fake_ollama.handler
    no_env.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")
    with llmlib.Client("ollama", options=OPTIONS) as c:
        assert c.base_url == server.url
        assert c.chat_completion(model=MODEL, messages="Hi").text == fake_ollama.TEXT
        assert collect(c.chat_completion_stream(model=MODEL, messages="Hi")).text == fake_ollama.TEXT
    assert [r.path for r in server.requests] == ["/api/chat", "/api/chat"]
    no_env.setenv("OLLAMA_HOST", f"http://localhost:{server.port}/")
    with llmlib.Client("ollama", options=OPTIONS) as c:
        assert c.base_url == f"http://localhost:{server.port}"
        assert [m.id for m in c.list_models()] == [fake_ollama.MODEL]


def test_base_url_and_ollama_base_url_win_over_ollama_host(no_env, server):
    no_env.setenv("OLLAMA_HOST", "http://192.0.2.1:1")  # TEST-NET: never reached
    server.handler = fake_ollama.handler
    with llmlib.Client("ollama", base_url=server.url, options=OPTIONS) as c:
        assert c.chat_completion(model=MODEL, messages="Hi").text == fake_ollama.TEXT
    no_env.setenv("OLLAMA_BASE_URL", server.url)
    with llmlib.Client("ollama", options=OPTIONS) as c:
        assert c.base_url == server.url
        assert c.chat_completion(model=MODEL, messages="Hi").text == fake_ollama.TEXT
    assert len(server.requests) == 2


@pytest.mark.parametrize("value, url", [
    ("127.0.0.1:11434", "http://127.0.0.1:11434"),
    ("0.0.0.0:11434", "http://127.0.0.1:11434"),  # the FAQ's server bind address
    ("0.0.0.0", "http://127.0.0.1:11434"),
    ("example.com", "http://example.com:11434"),
    ("example.com:8080", "http://example.com:8080"),
    (":9999", "http://127.0.0.1:9999"),
    ("http://example.com", "http://example.com:80"),
    ("https://example.com", "https://example.com:443"),
    ("https://example.com:8443/ollama/", "https://example.com:8443/ollama"),
    ("ollama.com", "https://ollama.com:443"),
    ("[::1]:8080", "http://[::1]:8080"),
    ("::", "http://[::1]:11434"),
    ("::1", "http://[::1]:11434"),
    ("  'localhost:1234'  ", "http://localhost:1234"),
    ('"localhost:99999"', "http://localhost:11434"),  # an invalid port: the default
    ("", "http://127.0.0.1:11434"),
])
def test_ollama_host_values(value, url):
    assert host_url(value) == url
