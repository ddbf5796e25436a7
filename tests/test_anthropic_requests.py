"""What llmlib sends to Anthropic: the exact JSON bodies and headers of
``POST /v1/messages``, recorded by a loopback server playing Anthropic.

Shapes follow https://docs.anthropic.com/en/api/messages and the tool-use,
extended-thinking, prompt-caching, vision and PDF guides.
"""

from __future__ import annotations

import base64
import json

import pytest

import llmlib
from llmlib import ChatCompletionRequest, Content, ContentPart, Message, Tool, ToolCall, collect
from llmlib.providers.anthropic import DEFAULT_MAX_TOKENS, EFFORT_BUDGETS
from tests import fake_anthropic
from tests.conftest import TEST_KEY, make_client

MODEL = "claude-sonnet-4-5"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
WEATHER = Tool.function("get_weather", "Weather in a city",
                        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture
def aclient(server):
    server.handler = fake_anthropic.handler
    with make_client(server, "anthropic") as c:
        yield c


def sent(aclient, server, *messages, **fields):
    """The JSON body the request built from ``messages`` and ``fields`` sent."""
    aclient.chat_completion(ChatCompletionRequest(MODEL, list(messages), **fields))
    return server.requests[-1].json()


def test_text_request_body_and_headers(aclient, server):
    response = aclient.chat_completion(model=MODEL, messages="Hi")
    assert response.text == fake_anthropic.TEXT
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", "/v1/messages")
    assert req.json() == {"model": MODEL, "max_tokens": DEFAULT_MAX_TOKENS,
                          "messages": [{"role": "user", "content": "Hi"}]}
    assert req.headers["x-api-key"] == TEST_KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers


def test_streamed_request(aclient, server):
    response = collect(aclient.chat_completion_stream(model=MODEL, messages="Hi", max_tokens=50))
    assert response.text == fake_anthropic.TEXT and response.finish_reason == "stop"
    req = server.requests[-1]
    assert req.json() == {"model": MODEL, "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}],
                          "stream": True}
    assert req.headers["accept"] == "text/event-stream"
    assert req.headers["x-api-key"] == TEST_KEY and req.headers["anthropic-version"] == "2023-06-01"


def test_multi_turn(aclient, server):
    body = sent(aclient, server, Message.user("What is 2+2?"), Message.assistant("4"), Message.user("And 3+3?"),
                temperature=0.2, top_p=0.9)
    assert body == {"model": MODEL, "max_tokens": DEFAULT_MAX_TOKENS, "temperature": 0.2, "top_p": 0.9,
                    "messages": [{"role": "user", "content": "What is 2+2?"},
                                 {"role": "assistant", "content": "4"},
                                 {"role": "user", "content": "And 3+3?"}]}


def test_system_and_developer_messages_become_top_level_system(aclient, server):
    body = sent(aclient, server, Message.system("Be brief."), Message.developer("Answer in French."),
                Message.user("Hi"))
    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_consecutive_same_role_messages_merge(aclient, server):
    body = sent(aclient, server, Message.user("one"), Message.user("two"), Message.assistant("three"),
                Message.assistant("four"), Message.user("five"))
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}]},
        {"role": "user", "content": "five"},
    ]


@pytest.mark.parametrize("choice, parallel, expected", [
    (None, None, None),
    ("auto", None, {"type": "auto"}),
    ("required", None, {"type": "any"}),
    ("none", None, {"type": "none"}),
    ("get_weather", None, {"type": "tool", "name": "get_weather"}),
    ("get_weather", False, {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}),
    ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ("auto", True, {"type": "auto"}),
])
def test_tools_and_tool_choice(choice, parallel, expected, aclient, server):
    bare = Tool.function("ping")
    body = sent(aclient, server, Message.user("Weather in Paris?"), tools=[WEATHER, bare],
                tool_choice=choice, parallel_tool_calls=parallel)
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather in a city",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    if expected is None:
        assert "tool_choice" not in body
    else:
        assert body["tool_choice"] == expected


def test_tool_calls_and_results(aclient, server):
    calls = [ToolCall.new("toolu_1", "get_weather", '{"city": "Paris"}'),
             ToolCall.new("toolu_2", "get_weather", '{"city": "Rome"}')]
    body = sent(aclient, server,
                Message.user("Weather in Paris and Rome?"),
                Message.assistant("Let me check.", tool_calls=calls),
                Message.tool("toolu_1", "18C"),
                Message.tool("toolu_2", "24C"),
                Message.user("Thanks; which is warmer?"),
                tools=[WEATHER])
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "24C"},
            {"type": "text", "text": "Thanks; which is warmer?"},
        ]},
    ]


def test_tool_call_without_text_and_with_empty_arguments(aclient, server):
    body = sent(aclient, server, Message.user("Ping"),
                Message.assistant(tool_calls=[ToolCall.new("toolu_9", "ping", "")]),
                Message.tool("toolu_9", Content.of("pong", Content.new_image("https://example.com/a.png"))))
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "ping", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": [
            {"type": "text", "text": "pong"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}]},
    ]


@pytest.mark.parametrize("arguments", ['{"city": ', '["Paris"]', "null"])
def test_tool_arguments_must_be_a_json_object(arguments, aclient, server):
    with pytest.raises(llmlib.ConfigurationError, match="toolu_bad") as info:
        sent(aclient, server, Message.user("x"),
             Message.assistant(tool_calls=[ToolCall.new("toolu_bad", "get_weather", arguments)]),
             Message.tool("toolu_bad", "?"))
    assert "anthropic" in str(info.value) and "get_weather" in str(info.value)
    assert server.requests == []


def test_images_from_a_file_and_a_url(aclient, server, tmp_path):
    path = tmp_path / "dot.png"
    path.write_bytes(PNG)
    body = sent(aclient, server, Message.user(Content.of(
        "What are these?", Content.from_image_file(path), Content.new_image("https://example.com/cat.jpg"))))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "What are these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": base64.b64encode(PNG).decode()}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]}]


def test_pdf_documents(aclient, server, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(PDF)
    body = sent(aclient, server, Message.user(Content.of(
        Content.from_document_file(path), Content.new_document("https://example.com/paper.pdf"), "Summarize both.")))
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": base64.b64encode(PDF).decode()}, "title": "report.pdf"},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}},
        {"type": "text", "text": "Summarize both."},
    ]}]


def test_thinking_with_a_budget(aclient, server):
    body = sent(aclient, server, Message.user("Think."), reasoning_budget=2000)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS + 2000  # room for the answer after the thinking
    body = sent(aclient, server, Message.user("Think."), reasoning_budget=2000, max_tokens=3000)
    assert (body["max_tokens"], body["thinking"]["budget_tokens"]) == (3000, 2000)


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
def test_thinking_by_effort(effort, aclient, server):
    body = sent(aclient, server, Message.user("Think."), reasoning_effort=effort)
    budget = EFFORT_BUDGETS[effort]
    assert budget == {"low": 1024, "medium": 4096, "high": 16384}[effort]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS + budget > budget


def test_thinking_needs_max_tokens_above_the_budget(aclient, server):
    with pytest.raises(llmlib.ConfigurationError, match="max_tokens"):
        sent(aclient, server, Message.user("Think."), reasoning_effort="high", max_tokens=1000)
    with pytest.raises(llmlib.ConfigurationError, match="reasoning_effort"):
        sent(aclient, server, Message.user("Think."), reasoning_effort="extreme")
    assert server.requests == []


def test_prompt_caching(aclient, server):
    ephemeral = {"type": "ephemeral"}
    system = Message(llmlib.Role.SYSTEM, "A long system prompt.", cache_control=ephemeral)
    user = Message(llmlib.Role.USER, Content.of(
        ContentPart("text", text="A long document.", cache_control={"type": "ephemeral", "ttl": "1h"}),
        "The question."), cache_control=ephemeral)
    body = sent(aclient, server, system, user, Message.assistant("Answer."),
                Message(llmlib.Role.USER, "Follow-up", cache_control=ephemeral))
    assert body["system"] == [{"type": "text", "text": "A long system prompt.", "cache_control": ephemeral}]
    assert body["messages"] == [
        {"role": "user", "content": [
            {"type": "text", "text": "A long document.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "The question.", "cache_control": ephemeral}]},
        {"role": "assistant", "content": "Answer."},
        {"role": "user", "content": [{"type": "text", "text": "Follow-up", "cache_control": ephemeral}]},
    ]


@pytest.mark.parametrize("stop, expected", [("END", ["END"]), (["a", "b"], ["a", "b"])])
def test_stop_sequences_and_user(stop, expected, aclient, server):
    body = sent(aclient, server, Message.user("Count"), stop=stop, user="user-42")
    assert body["stop_sequences"] == expected
    assert body["metadata"] == {"user_id": "user-42"}


def test_extra_body_is_merged_last(aclient, server):
    body = sent(aclient, server, Message.user("Hi"), max_tokens=10,
                extra_body={"top_k": 5, "max_tokens": 99, "service_tier": "auto"})
    assert body == {"model": MODEL, "max_tokens": 99, "messages": [{"role": "user", "content": "Hi"}],
                    "top_k": 5, "service_tier": "auto"}


def test_structured_output_maps_to_output_config(aclient, server):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    body = sent(aclient, server, Message.user("A number"),
                response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": schema}})
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    with pytest.raises(llmlib.ConfigurationError, match="json_object"):
        sent(aclient, server, Message.user("JSON"), response_format={"type": "json_object"})


@pytest.mark.parametrize("field, value", [("n", 2), ("seed", 1), ("presence_penalty", 0.5),
                                          ("frequency_penalty", 0.5)])
def test_fields_anthropic_lacks_are_refused(field, value, aclient, server):
    with pytest.raises(llmlib.ConfigurationError, match=field):
        sent(aclient, server, Message.user("Hi"), **{field: value})
    assert server.requests == []


@pytest.mark.parametrize("audio", [Content.new_audio("data:audio/wav;base64,UklGRg==", "audio/wav"),
                                   Content.new_audio("https://example.com/a.mp3", "audio/mpeg")])
def test_audio_is_refused_before_sending(audio, aclient, server):
    for call in (lambda: aclient.chat_completion(model=MODEL, messages=[Message.user(Content.of("Hear:", audio))]),
                 lambda: aclient.chat_completion_stream(model=MODEL, messages=[Message.user(Content.of("Hear:", audio))])):
        with pytest.raises(llmlib.ConfigurationError) as info:
            call()
        message = str(info.value)
        assert message.startswith("anthropic does not accept audio input; ")
        assert "messages[0] (user) part 1" in message
    assert server.requests == []


def test_api_key_never_in_errors_or_reprs(aclient, server):
    # An error body that echoes the key, as some proxies do.
    server.handler = lambda req, reply: reply.json(
        fake_anthropic.error_json(401, f"invalid x-api-key: {req.headers['x-api-key']}"), status=401)
    errors = []
    for call in (lambda: aclient.chat_completion(model=MODEL, messages="Hi"),
                 lambda: aclient.chat_completion_stream(model=MODEL, messages="Hi"),
                 lambda: aclient.chat_completion(model=MODEL, messages=[Message.user(Content.new_audio("data:a", "audio/wav"))]),
                 lambda: aclient.chat_completion(model=MODEL, messages="Hi", seed=3)):
        with pytest.raises(llmlib.LLMError) as info:
            call()
        errors.append(info.value)
    assert isinstance(errors[0], llmlib.AuthenticationError) and isinstance(errors[1], llmlib.AuthenticationError)
    assert server.requests[0].headers["x-api-key"] == TEST_KEY  # it was sent...
    for err in errors:  # ...and appears nowhere
        for text in (str(err), repr(err), err.message, json.dumps(err.body)):
            assert TEST_KEY not in text
    assert TEST_KEY not in repr(aclient)


def test_assistant_reasoning_without_signature_is_not_sent(aclient, server):
    body = sent(aclient, server, Message.user("Q"), Message.assistant("A", reasoning_content="I thought."),
                Message.user("Q2"))
    assert body["messages"][1] == {"role": "assistant", "content": "A"}


# ---------------------------------------------------------------- a thinking turn with tools, end to end

SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
THINKING = "The user wants the weather. I should call get_weather for Paris."


def _sse(kind, payload):
    return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()


def turn1_body():
    """Anthropic's stream for turn 1: a thinking block with signature, then a tool_use."""
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_t1", "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 400, "cache_read_input_tokens": 0, "output_tokens": 2}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": THINKING[:20]}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": THINKING[20:]}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"city": '}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 90}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(_sse(k, p) for k, p in events)


EXPECTED_TURN2 = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    ]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C and sunny"}]},
]


def test_thinking_tool_conversation_end_to_end(server):
    def anthropic(req, reply):
        body = req.json()
        if len(server.requests) == 1:
            reply.sse(turn1_body())
        elif body["messages"] == EXPECTED_TURN2 and body["thinking"] == {"type": "enabled", "budget_tokens": 1024}:
            reply.sse(fake_anthropic.stream_body(["It is 18C ", "and sunny in Paris."], usage=(500, 12)))
        else:  # what a real Anthropic says when the thinking block does not come back
            reply.json(fake_anthropic.error_json(400, "messages.1.content.0.type: Expected `thinking` or "
                                                      "`redacted_thinking`, but found `text`"), status=400)

    server.handler = anthropic
    with make_client(server, "anthropic") as client:
        request = ChatCompletionRequest(MODEL, [Message.user("Weather in Paris?")], tools=[WEATHER],
                                        reasoning_effort="low")
        turn1 = collect(client.chat_completion_stream(request))
        assert turn1.finish_reason == "tool_calls" and turn1.reasoning_content == THINKING
        [call] = turn1.tool_calls
        assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
            "toolu_01A", "get_weather", {"city": "Paris"})
        assert turn1.usage == llmlib.Usage(400, 90, 490, None, 0)

        turn2 = request.with_changes(messages=[*request.messages, turn1.message,
                                               Message.tool(call.id, "18C and sunny")])
        final = collect(client.chat_completion_stream(turn2))
    assert final.text == "It is 18C and sunny in Paris." and final.finish_reason == "stop"
    assert len(server.requests) == 2
    sent2 = server.requests[1].json()
    assert sent2["messages"] == EXPECTED_TURN2
    assert sent2["tools"][0]["name"] == "get_weather" and sent2["stream"] is True


def test_tool_results_go_first_in_their_user_turn(aclient, server):
    body = sent(aclient, server, Message.user("Weather?"),
                Message.assistant(tool_calls=[ToolCall.new("toolu_1", "get_weather", '{"city": "Paris"}')]),
                Message.user("(no rush)"), Message.tool("toolu_1", "18C"))
    assert body["messages"][2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "text", "text": "(no rush)"}]}
