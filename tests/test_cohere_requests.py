"""What llmlib sends to Cohere: the exact JSON bodies and headers of
``POST /v2/chat``, recorded by a loopback server playing Cohere.

Shapes follow https://docs.cohere.com/reference/chat and the tool-use,
reasoning, structured-outputs and image-inputs guides.
"""

from __future__ import annotations

import base64
import json

import pytest

import llmlib
from llmlib import ChatCompletionRequest, Content, Message, Tool, ToolCall, collect
from llmlib.providers.cohere import EFFORT_BUDGETS, models_url
from tests import fake_cohere
from tests.conftest import TEST_KEY

MODEL = fake_cohere.MODEL  # no row in the model table: nothing is refused for the model
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
WEATHER = Tool.function("get_weather", "Weather in a city",
                        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture
def cclient(server):
    server.handler = fake_cohere.handler
    with fake_cohere.make_client(server) as c:
        yield c


def sent(cclient, server, *messages, **fields):
    """The JSON body the request built from ``messages`` and ``fields`` sent."""
    cclient.chat_completion(ChatCompletionRequest(MODEL, list(messages), **fields))
    return server.requests[-1].json()


def test_text_request_body_and_headers(cclient, server):
    response = cclient.chat_completion(model=MODEL, messages="Hi")
    assert response.text == fake_cohere.TEXT and response.finish_reason == "stop"
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", "/v2/chat")
    assert req.json() == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert req.headers["content-type"] == "application/json"
    assert "x-api-key" not in req.headers


def test_streamed_request(cclient, server):
    response = collect(cclient.chat_completion_stream(model=MODEL, messages="Hi", max_tokens=50))
    assert response.text == fake_cohere.TEXT and response.finish_reason == "stop"
    req = server.requests[-1]
    assert req.json() == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50,
                          "stream": True}
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"


def test_system_developer_and_multi_turn(cclient, server):
    body = sent(cclient, server, Message.system("Be brief."), Message.developer("Answer in French."),
                Message.user("What is 2+2?"), Message.assistant("4"), Message.user("And 3+3?"),
                temperature=0.2, top_p=0.9, seed=7, frequency_penalty=0.1, presence_penalty=0.3)
    assert body == {"model": MODEL, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ], "temperature": 0.2, "p": 0.9, "seed": 7, "frequency_penalty": 0.1, "presence_penalty": 0.3}


@pytest.mark.parametrize("choice, expected", [(None, None), ("auto", None), ("required", "REQUIRED"),
                                              ("none", "NONE")])
def test_tools_and_tool_choice(choice, expected, cclient, server):
    body = sent(cclient, server, Message.user("Weather in Paris?"), tools=[WEATHER, Tool.function("ping")],
                tool_choice=choice)
    assert body["tools"] == [
        {"type": "function", "function": {
            "name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body.get("tool_choice") == expected
    assert "strict_tools" not in body


def test_strict_tool_sets_strict_tools(cclient, server):
    strict = Tool.function("get_weather", None, {"type": "object", "properties": {}}, strict=True)
    body = sent(cclient, server, Message.user("x"), tools=[strict])
    assert body["strict_tools"] is True and body["tools"][0]["function"] == {
        "name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def test_a_named_tool_choice_is_refused(cclient, server):
    with pytest.raises(llmlib.ConfigurationError) as info:
        sent(cclient, server, Message.user("x"), tools=[WEATHER], tool_choice="get_weather")
    assert str(info.value).startswith("cohere: tool_choice='get_weather': Cohere cannot force one named tool")
    assert server.requests == []


def test_tool_calls_and_results(cclient, server):
    calls = [ToolCall.new("get_weather_1", "get_weather", '{"city": "Paris"}'),
             ToolCall.new("get_weather_2", "get_weather", '{"city": "Rome"}')]
    body = sent(cclient, server,
                Message.user("Weather in Paris and Rome?"),
                Message.assistant(tool_calls=calls, reasoning_content="I will check both cities."),
                Message.tool("get_weather_1", '{"temp": "18C"}'),
                Message.tool("get_weather_2", Content.of("24C", " and sunny")),
                tools=[WEATHER])
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "tool_plan": "I will check both cities.", "tool_calls": [
            {"id": "get_weather_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "get_weather_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "get_weather_1", "content": '{"temp": "18C"}'},
        {"role": "tool", "tool_call_id": "get_weather_2", "content": "24C and sunny"},
    ]


def test_assistant_text_with_calls_and_empty_arguments(cclient, server):
    body = sent(cclient, server, Message.user("Ping"),
                Message.assistant("Pinging.", tool_calls=[ToolCall.new("ping_1", "ping", "")]),
                Message.tool("ping_1", "pong"))
    assert body["messages"][1] == {"role": "assistant", "content": "Pinging.", "tool_calls": [
        {"id": "ping_1", "type": "function", "function": {"name": "ping", "arguments": "{}"}}]}


def test_a_tool_message_needs_its_call_id(cclient, server):
    with pytest.raises(llmlib.ConfigurationError, match=r"messages\[1\] \(tool\): a tool message needs tool_call_id"):
        sent(cclient, server, Message.user("x"), Message(llmlib.Role.TOOL, "result"))
    assert server.requests == []


def test_reasoning_without_tool_calls_is_not_sent(cclient, server):
    body = sent(cclient, server, Message.user("Q"), Message.assistant("A", reasoning_content="I thought."),
                Message.user("Q2"))
    assert body["messages"][1] == {"role": "assistant", "content": "A"}


def test_thinking_goes_back_as_a_thinking_block(cclient, server):
    server.handler = lambda req, reply: reply.sse(fake_cohere.stream_body(["4"], reasoning=["Two ", "plus two."]))
    first = collect(cclient.chat_completion_stream(model=MODEL, messages="2+2?"))
    assert (first.text, first.reasoning_content) == ("4", "Two plus two.")
    server.handler = fake_cohere.handler
    body = sent(cclient, server, Message.user("2+2?"), first.message, Message.user("And 3+3?"))
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "Two plus two."}, {"type": "text", "text": "4"}]}


def test_images_from_a_file_and_a_url(cclient, server, tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    body = sent(cclient, server, Message.user(Content.of(
        "What are these?", Content.from_image_file(path), Content.new_image("https://example.com/cat.jpg"))))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What are these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]


@pytest.mark.parametrize("message, where", [
    (Message.assistant(Content.new_image("https://example.com/a.png")), "messages[1] (assistant) part 0"),
    (Message.tool("c1", Content.new_image("https://example.com/a.png")), "messages[1] (tool) part 0"),
    (Message.system(Content.new_image("https://example.com/a.png")), "messages[1] (system) part 0"),
])
def test_images_outside_user_messages_are_refused(message, where, cclient, server):
    with pytest.raises(llmlib.ConfigurationError, match="only user messages may hold images") as info:
        sent(cclient, server, Message.user("x"), message)
    assert where in str(info.value)
    assert server.requests == []


def test_documents_parts_are_refused_and_rag_documents_go_in_extra_body(cclient, server):
    with pytest.raises(llmlib.ConfigurationError, match="extra_body"):
        sent(cclient, server, Message.user(Content.new_document("https://example.com/a.pdf")))
    assert server.requests == []
    documents = [{"id": "doc:1", "data": {"title": "Benefits", "text": "Gym memberships."}}, "A plain string doc."]
    body = sent(cclient, server, Message.user("What benefits?"),
                extra_body={"documents": documents, "citation_options": {"mode": "FAST"}})
    assert body["documents"] == documents and body["citation_options"] == {"mode": "FAST"}


@pytest.mark.parametrize("fields, expected", [
    (dict(reasoning_budget=2000), {"type": "enabled", "token_budget": 2000}),
    (dict(reasoning_budget=0), {"type": "disabled"}),
    (dict(reasoning_effort="none"), {"type": "disabled"}),
    (dict(reasoning_effort="low"), {"type": "enabled", "token_budget": 1024}),
    (dict(reasoning_effort="medium"), {"type": "enabled", "token_budget": 4096}),
    (dict(reasoning_effort="high"), {"type": "enabled", "token_budget": 16384}),
    (dict(reasoning_effort="high", reasoning_budget=300), {"type": "enabled", "token_budget": 300}),
])
def test_thinking(fields, expected, cclient, server):
    body = sent(cclient, server, Message.user("Think."), **fields)
    assert body["thinking"] == expected
    assert EFFORT_BUDGETS == {"low": 1024, "medium": 4096, "high": 16384}


@pytest.mark.parametrize("fields, match", [(dict(reasoning_effort="extreme"), "reasoning_effort"),
                                           (dict(reasoning_budget=-1), "reasoning_budget")])
def test_bad_thinking_is_refused(fields, match, cclient, server):
    with pytest.raises(llmlib.ConfigurationError, match=match):
        sent(cclient, server, Message.user("Think."), **fields)
    assert server.requests == []


def test_response_format(cclient, server):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = sent(cclient, server, Message.user("A number"),
                response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": schema}})
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}
    body = sent(cclient, server, Message.user("JSON"), response_format={"type": "json_object"})
    assert body["response_format"] == {"type": "json_object"}
    body = sent(cclient, server, Message.user("JSON"), response_format={"type": "json_object", "json_schema": schema})
    assert body["response_format"] == {"type": "json_object", "json_schema": schema}
    body = sent(cclient, server, Message.user("Text"), response_format={"type": "text"})
    assert "response_format" not in body
    with pytest.raises(llmlib.ConfigurationError, match="json_schema.schema"):
        sent(cclient, server, Message.user("x"), response_format={"type": "json_schema", "json_schema": {}})
    with pytest.raises(llmlib.ConfigurationError, match="'xml' has no Cohere equivalent"):
        sent(cclient, server, Message.user("x"), response_format={"type": "xml"})


@pytest.mark.parametrize("stop, expected", [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_stop_sequences(stop, expected, cclient, server):
    body = sent(cclient, server, Message.user("Count"), stop=stop, max_tokens=20)
    assert body["stop_sequences"] == expected and body["max_tokens"] == 20
    assert "stop" not in body


def test_extra_body_is_merged_last(cclient, server):
    body = sent(cclient, server, Message.user("Hi"), max_tokens=10, top_p=0.5,
                extra_body={"k": 5, "max_tokens": 99, "safety_mode": "STRICT", "p": 0.7})
    assert body == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 99, "p": 0.7,
                    "k": 5, "safety_mode": "STRICT"}


@pytest.mark.parametrize("field, value, match", [
    ("n", 2, "n=2"), ("user", "u-1", "user"), ("parallel_tool_calls", False, "parallel_tool_calls")])
def test_fields_cohere_lacks_are_refused(field, value, match, cclient, server):
    with pytest.raises(llmlib.ConfigurationError, match=match) as info:
        sent(cclient, server, Message.user("Hi"), **{field: value})
    assert str(info.value).startswith("cohere: ")
    assert server.requests == []


@pytest.mark.parametrize("audio", [Content.new_audio("data:audio/wav;base64,UklGRg==", "audio/wav"),
                                   Content.new_audio("https://example.com/a.mp3", "audio/mpeg")])
def test_audio_is_refused_before_sending(audio, cclient, server):
    messages = [Message.user(Content.of("Hear:", audio))]
    for call in (lambda: cclient.chat_completion(model=MODEL, messages=messages),
                 lambda: cclient.chat_completion_stream(model=MODEL, messages=messages)):
        with pytest.raises(llmlib.ConfigurationError) as info:
            call()
        message = str(info.value)
        assert message.startswith("cohere does not accept audio input; ")
        assert "messages[0] (user) part 1" in message
    assert server.requests == []


def test_api_key_never_in_errors_or_reprs(cclient, server):
    # An error body that echoes the key, as some proxies do.
    server.handler = lambda req, reply: reply.json(
        fake_cohere.error_json(401, f"invalid api token: {req.headers['authorization']}"), status=401)
    errors = []
    for call in (lambda: cclient.chat_completion(model=MODEL, messages="Hi"),
                 lambda: cclient.chat_completion_stream(model=MODEL, messages="Hi"),
                 lambda: cclient.list_models(),
                 lambda: cclient.chat_completion(model=MODEL, messages=[
                     Message.user(Content.new_audio("data:a", "audio/wav"))]),
                 lambda: cclient.chat_completion(model=MODEL, messages="Hi", user="u")):
        with pytest.raises(llmlib.LLMError) as info:
            call()
        errors.append(info.value)
    assert all(isinstance(e, llmlib.AuthenticationError) for e in errors[:3])
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"  # it was sent...
    assert "invalid api token" in errors[0].message
    for err in errors:  # ...and appears nowhere
        for text in (str(err), repr(err), err.message, json.dumps(err.body)):
            assert TEST_KEY not in text
    assert TEST_KEY not in repr(cclient)
    # ...nor in a mid-stream error that echoes it.
    server.handler = lambda req, reply: reply.sse(fake_cohere.stream_body(["Hi"]).replace(
        b"event: message-end", fake_cohere.error_event(401, f"bad key {TEST_KEY}") + b"event: message-end"))
    with pytest.raises(llmlib.AuthenticationError) as info:
        list(cclient.chat_completion_stream(model=MODEL, messages="Hi"))
    assert TEST_KEY not in f"{info.value!s} {info.value!r} {json.dumps(info.value.body)}"
    assert info.value.partial.text == "Hi"


@pytest.mark.parametrize("base, expected", [
    ("https://api.cohere.com/v2", "https://api.cohere.com/v1/models?page_size=1000"),
    ("https://api.cohere.com/v2/", "https://api.cohere.com/v1/models?page_size=1000"),
    ("https://api.cohere.com", "https://api.cohere.com/v1/models?page_size=1000"),
    ("https://gw.example/cohere/v2?tenant=a", "https://gw.example/cohere/v1/models?tenant=a&page_size=1000"),
])
def test_models_url_is_v1_on_the_same_root(base, expected):
    assert models_url(base) == expected
    assert models_url(base, "a b/c") == expected + "&page_token=a+b%2Fc"


def test_the_default_base_url_is_cohere_v2():
    client = llmlib.Client("cohere", api_key=TEST_KEY)
    try:
        assert client.base_url == "https://api.cohere.com/v2"
    finally:
        client.close()


def test_the_key_comes_from_either_variable(monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.setenv("CO_API_KEY", TEST_KEY)
    with llmlib.Client("cohere") as client:
        assert TEST_KEY not in repr(client)
    monkeypatch.delenv("CO_API_KEY")
    with pytest.raises(llmlib.ConfigurationError, match="COHERE_API_KEY or CO_API_KEY"):
        llmlib.Client("cohere")
