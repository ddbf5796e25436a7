"""The Responses API calls: exact request bodies, the chat-completions fallback
for providers without ``/responses``, closing and cancelling, and the values.

Recorded transcripts are replayed over loopback (../shared/wire); the expected
values were written by reading them.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

import llmlib
from llmlib import CancelToken, Content, Message, Tool, ToolCall, Usage
from llmlib.responses import (
    FunctionCallArgumentsDelta,
    FunctionCallItem,
    FunctionCallOutput,
    FunctionCallStart,
    OutputTextDelta,
    ReasoningTextDelta,
    ResponseCreated,
    ResponseIncompleteError,
    ResponsesAccumulator,
    ResponsesRequest,
    ResponsesResult,
    collect_responses,
)
from tests.conftest import TEST_KEY, make_client, wire

MULTIPLY = Tool.function(
    "multiply", "Multiply two numbers.",
    {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"],
     "type": "object", "additionalProperties": False},
    strict=True)
MULTIPLY_WIRE = {"type": "function", "name": "multiply", "description": "Multiply two numbers.",
                 "parameters": dict(MULTIPLY.parameters), "strict": True}


def serve(server, *bodies: bytes) -> None:
    """Answer the n-th request with the n-th SSE body (the last one after that)."""
    def handler(req, reply):
        reply.sse(bodies[min(len(server.requests), len(bodies)) - 1])
    server.handler = handler


def kinds(events):
    """Event class names, runs of the same class folded into one."""
    out = []
    for e in events:
        if not out or out[-1] != type(e).__name__:
            out.append(type(e).__name__)
    return out


# ---------------------------------------------------------------- request bodies


def test_text_request_body_and_headers(client, server):
    serve(server, wire("openai_responses", "llm_stream_basic_with_headers.sse").read_bytes())
    with client.responses_stream(model="gpt-4.1", input="Count to 5") as stream:
        result = collect_responses(stream)
    assert result.output_text == "pong"
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", "/v1/responses")
    assert req.json() == {"model": "gpt-4.1", "input": "Count to 5", "stream": True}
    assert req.headers["authorization"] == f"Bearer {TEST_KEY}"
    assert req.headers["accept"] == "text/event-stream"


def test_instructions_limits_and_extra_fields(client, server):
    serve(server, wire("openai_responses", "stream_text_logprobs.sse").read_bytes())
    list(client.responses_stream(model="gpt-4o-mini", input="What is the capital of Minas Gerais?",
                                 instructions="You are a helpful assistant.", max_output_tokens=100,
                                 temperature=0.2, include=["message.output_text.logprobs"], top_logprobs=2))
    assert server.requests[-1].json() == {
        "model": "gpt-4o-mini", "input": "What is the capital of Minas Gerais?",
        "instructions": "You are a helpful assistant.", "max_output_tokens": 100, "temperature": 0.2,
        "include": ["message.output_text.logprobs"], "top_logprobs": 2, "stream": True}


def test_tools_request_body(client, server):
    serve(server, wire("openai_responses", "llm_stream_tool_use_turn1.sse").read_bytes())
    list(client.responses_stream(model="gpt-5.5", input="What is 1231 * 2331?",
                                 tools=[MULTIPLY, {"type": "web_search"}], tool_choice="multiply"))
    body = server.requests[-1].json()
    assert body["tools"] == [MULTIPLY_WIRE, {"type": "web_search"}]
    assert body["tool_choice"] == {"type": "function", "name": "multiply"}
    for choice in ("auto", "none", "required"):
        list(client.responses_stream(model="gpt-5.5", input="hi", tools=[MULTIPLY], tool_choice=choice))
        assert server.requests[-1].json()["tool_choice"] == choice


def test_function_call_output_second_turn(client, server):
    """Turn 1 calls multiply; turn 2 sends the call back with its output (llm's recording)."""
    serve(server, wire("openai_responses", "llm_stream_tool_use_turn1.sse").read_bytes(),
          wire("openai_responses", "llm_stream_tool_use_turn2.sse").read_bytes())
    question = "What is 1231 * 2331?"
    first = collect_responses(client.responses_stream(model="gpt-5.5", input=question, tools=[MULTIPLY]))
    (call,) = first.function_calls
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_sVidsfFJ6zlzRpelrPkTPlpd", "multiply", {"a": 1231, "b": 2331})
    second = collect_responses(client.responses_stream(
        model="gpt-5.5", input=[question, *first.output, FunctionCallOutput(call.call_id, "2869461")],
        tools=[MULTIPLY]))
    assert second.output_text == "1231 × 2331 = **2,869,461**"
    assert server.requests[-1].json() == {
        "model": "gpt-5.5",
        "input": [
            {"role": "user", "content": question},
            {"id": "fc_00d64fa806f333310169fab1bf324481a0852cda3180856290", "type": "function_call",
             "status": "completed", "arguments": '{"a":1231,"b":2331}', "call_id": "call_sVidsfFJ6zlzRpelrPkTPlpd",
             "name": "multiply"},
            {"type": "function_call_output", "call_id": "call_sVidsfFJ6zlzRpelrPkTPlpd", "output": "2869461"},
        ],
        "tools": [MULTIPLY_WIRE],
        "stream": True,
    }


def test_chat_style_messages_become_input_items(client, server):
    serve(server, wire("openai_responses", "stream_text_after_tool_result.sse").read_bytes())
    image = Content.of("What is in this picture?", Content.new_image("https://example.com/cat.png"))
    list(client.responses_stream(model="gpt-4o", input=[
        Message.developer("Answer in French."),
        Message.user(image),
        Message.assistant("Let me look that up.", [ToolCall.new("call_1", "get_capital", '{"country":"France"}')]),
        Message.tool("call_1", "Paris"),
        {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
        FunctionCallOutput("call_2", {"ok": True}),
    ]))
    assert server.requests[-1].json()["input"] == [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "input_text", "text": "What is in this picture?"},
                                     {"type": "input_image", "image_url": "https://example.com/cat.png"}]},
        {"role": "assistant", "content": "Let me look that up."},
        {"type": "function_call", "call_id": "call_1", "name": "get_capital", "arguments": '{"country":"France"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Paris"},
        {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
        {"type": "function_call_output", "call_id": "call_2", "output": '{"ok": true}'},
    ]


def test_reasoning_options(client, server):
    serve(server, wire("openai_responses", "stream_reasoning_summary_text.sse").read_bytes())
    list(client.responses_stream(model="o3-mini", input="How do I cross the street?",
                                 reasoning={"effort": "high", "summary": "detailed"},
                                 include=["reasoning.encrypted_content"], store=False))
    assert server.requests[-1].json() == {
        "model": "o3-mini", "input": "How do I cross the street?",
        "reasoning": {"effort": "high", "summary": "detailed"},
        "include": ["reasoning.encrypted_content"], "store": False, "stream": True}
    list(client.responses_stream(model="o3-mini", input="hi", reasoning="low"))
    assert server.requests[-1].json()["reasoning"] == {"effort": "low"}


def test_nonstream_request_has_no_stream_field(client, server):
    body = wire("openai_responses", "nonstream_output_text.json").read_bytes()
    server.handler = lambda req, reply: reply.send(200, body, [("Content-Type", "application/json")], mode="length")
    client.responses(model="gpt-4o-mini", input="hi", instructions="Be brief.")
    assert server.requests[-1].json() == {"model": "gpt-4o-mini", "input": "hi", "instructions": "Be brief."}
    assert "accept" not in server.requests[-1].headers or server.requests[-1].headers["accept"] != "text/event-stream"


@pytest.mark.parametrize("kwargs", [
    dict(model="gpt-4.1", input=""), dict(model="gpt-4.1", input=[]), dict(model="gpt-4.1", input=None),
    dict(model="gpt-4.1", input=b"bytes"), dict(model="", input="hi"), dict(input="hi"),
    dict(model="gpt-4.1", input="hi", stream=False),
    dict(model="gpt-4.1", input=[Message.user(Content.new_audio("data:audio/wav;base64,AAAA", "audio/wav"))]),
    dict(model="gpt-4.1", input=[object()]), dict(model="gpt-4.1", input="hi", tools=["not a tool"]),
])
def test_bad_input_is_refused_before_sending(kwargs, client, server):
    with pytest.raises(llmlib.ConfigurationError):
        client.responses_stream(**kwargs)
    with pytest.raises(llmlib.ConfigurationError):
        client.responses(**kwargs)
    assert server.requests == []


# ---------------------------------------------------------------- which providers have /responses


def test_only_openai_has_responses():
    assert llmlib.Client("openai", api_key=TEST_KEY)._protocol.supports_responses is True
    for name in ("groq", "deepseek", "openrouter", "mistral", "anthropic", "gemini"):
        assert llmlib.Client(name, api_key=TEST_KEY)._protocol.supports_responses is False, name


# ---------------------------------------------------------------- the fallback


@pytest.fixture
def groq(server):
    with make_client(server, "groq") as c:
        yield c


def test_fallback_emits_the_minimal_sequence(groq, server):
    serve(server, wire("openai_chat", "plain_text_with_usage.sse").read_bytes())
    with groq.responses_stream(model="llama-3.3-70b-versatile", input="Count to 5", instructions="Be brief.",
                               max_output_tokens=50) as stream:
        assert stream.fallback is True
        events = list(stream)
    assert kinds(events) == ["ResponseCreated", "OutputTextDelta", "ResponseCompleted"]
    created, completed = events[0].response, events[-1].response
    assert (created.id, created.model, created.status, created.fallback) == (
        "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL", "gpt-4o-2024-08-06", "in_progress", True)
    text = ("I'm unable to provide real-time weather updates. To get the current weather in San Francisco, "
            "I recommend checking a reliable weather website or a weather app.")
    assert "".join(e.text for e in events if isinstance(e, OutputTextDelta)) == text
    result = collect_responses(events)
    assert result == completed
    assert (result.status, result.output_text, result.fallback) == ("completed", text, True)
    assert result.usage == Usage(14, 30, 44, 0, None)
    assert [i.type for i in result.output] == ["message"]
    req = server.requests[-1]
    assert req.path == "/v1/chat/completions"
    body = req.json()
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to 5"}]
    assert (body["model"], body["max_tokens"], body["stream"]) == ("llama-3.3-70b-versatile", 50, True)


def test_fallback_reasoning_deltas(groq, server):
    serve(server, wire("groq", "stream_text_gpt_oss_x_groq_usage.sse").read_bytes())
    events = list(groq.responses_stream(model="openai/gpt-oss-120b", input="hi"))
    assert kinds(events) == ["ResponseCreated", "ReasoningTextDelta", "OutputTextDelta", "ResponseCompleted"]
    result = collect_responses(events)
    assert result.output_text == "The tool returned the expected result for the valid call."
    assert result.reasoning_text == (
        "The user wants to test error handling by calling tool with non-existent parameters first (we did) and then "
        "second try with valid args. We have succeeded. Now respond concisely.")
    assert result.reasoning_summary is None  # chat reasoning is raw reasoning, not a summary
    assert [i.type for i in result.output] == ["reasoning", "message"]
    assert {e.output_index for e in events if isinstance(e, ReasoningTextDelta)} == {0}
    assert {e.output_index for e in events if isinstance(e, OutputTextDelta)} == {1}
    assert result.usage == Usage(339, 58, 397, 38, None)
    assert result.fallback is True


def test_fallback_tool_call(groq, server):
    serve(server, wire("groq", "stream_tool_call_gpt_oss_x_groq_usage.sse").read_bytes())
    events = list(groq.responses_stream(model="openai/gpt-oss-120b", input="hi", tools=[MULTIPLY]))
    assert kinds(events) == ["ResponseCreated", "ReasoningTextDelta", "FunctionCallStart",
                             "FunctionCallArgumentsDelta", "ResponseCompleted"]
    start = next(e for e in events if isinstance(e, FunctionCallStart))
    assert start == FunctionCallStart("fc_bfb39741-3748-4def-9886-a93fc9c64a90",
                                      "fc_bfb39741-3748-4def-9886-a93fc9c64a90", "get_something_by_name", 1)
    result = collect_responses(events)
    (call,) = result.function_calls
    assert (call.call_id, call.name, call.arguments, call.status) == (
        "fc_bfb39741-3748-4def-9886-a93fc9c64a90", "get_something_by_name", '{"name":"example"}', "completed")
    assert result.reasoning_text == ('We need to call the function with correct parameter "name". '
                                     'Provide a name, e.g., "example".')
    assert result.usage == Usage(304, 49, 353, 23, None)


def test_fallback_deepseek_reasoning_content(server):
    serve(server, wire("deepseek", "stream_reasoning_content.sse").read_bytes())
    with make_client(server, "deepseek") as client:
        result = collect_responses(client.responses_stream(model="deepseek-reasoner", input="Hello"))
    assert result.fallback is True and result.output_text == "Hello there! 😊 How can I help you today?"
    assert result.reasoning_text.startswith('Hmm, the user just said "Hello".')
    assert result.usage == Usage(6, 212, 218, 198, 0)


def test_fallback_midstream_error_has_a_responses_partial(groq, server):
    serve(server, wire("groq", "stream_tool_use_failed_midstream_error.sse").read_bytes())
    with pytest.raises(llmlib.BadRequestError) as info:
        list(groq.responses_stream(model="openai/gpt-oss-120b", input="hi", tools=[MULTIPLY]))
    assert "Tool call validation failed" in str(info.value)
    partial = info.value.partial
    assert isinstance(partial, ResponsesResult) and partial.fallback is True
    assert partial.status == "in_progress"
    assert partial.id == "chatcmpl-4f39f3af-3267-4ac1-a0cf-6aa7451877dc"
    assert partial.reasoning_text.startswith("We need to call the tool with invalid parameters first, then second")


def test_fallback_length_is_incomplete(groq, server):
    serve(server, wire("openai_chat", "finish_length.sse").read_bytes())
    with pytest.raises(ResponseIncompleteError) as info:
        list(groq.responses_stream(model="gpt-4o", input="hi", max_output_tokens=1))
    assert info.value.reason == "max_output_tokens"
    partial = info.value.partial
    assert (partial.status, partial.output_text, partial.fallback) == ("incomplete", '{"', True)
    assert partial.incomplete_details == {"reason": "max_output_tokens"}
    assert partial.usage == Usage(79, 1, 80, 0, None)


def test_fallback_nonstream(groq, server):
    body = wire("openai_chat", "nonstream_plain_text.json").read_bytes()
    server.handler = lambda req, reply: reply.send(200, body, [("Content-Type", "application/json")], mode="length")
    result = groq.responses(model="gpt-4o", input="What's the weather in San Francisco?")
    assert (result.id, result.model, result.status, result.fallback) == (
        "chatcmpl-ABfvaueLEMLNYbT8YzpJxsmiQ6HSY", "gpt-4o-2024-08-06", "completed", True)
    assert result.output_text == (
        "I'm unable to provide real-time weather updates. To get the current weather in San Francisco, I recommend "
        "checking a reliable weather website or app like the Weather Channel or a local news station.")
    assert result.usage == Usage(14, 37, 51, 0, None)
    assert server.requests[-1].path == "/v1/chat/completions"
    assert "stream" not in server.requests[-1].json()


def test_fallback_request_conversion(groq, server):
    serve(server, wire("openai_chat", "plain_text_with_usage.sse").read_bytes())
    schema = {"type": "object", "properties": {"product": {"type": "integer"}}, "required": ["product"]}
    list(groq.responses_stream(
        model="llama-3.3-70b-versatile", instructions="Use the tools.", tools=[MULTIPLY_WIRE],
        input=["What is 1231 * 2331?",
               {"type": "reasoning", "id": "rs_1", "summary": []},
               {"type": "function_call", "call_id": "call_1", "name": "multiply", "arguments": '{"a":1231,"b":2331}'},
               FunctionCallOutput("call_1", "2869461")],
        reasoning={"effort": "low", "summary": "auto"}, temperature=0.2, store=False,
        include=["reasoning.encrypted_content"],
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
        tool_choice={"type": "function", "name": "multiply"}))
    body = server.requests[-1].json()
    assert body["messages"] == [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "What is 1231 * 2331?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "multiply", "arguments": '{"a":1231,"b":2331}'}}]},
        {"role": "tool", "content": "2869461", "tool_call_id": "call_1"},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "multiply", "description": "Multiply two numbers.", "parameters": MULTIPLY_WIRE["parameters"],
        "strict": True}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "multiply"}}
    assert body["reasoning_effort"] == "low" and body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "answer", "schema": schema, "strict": True}}
    assert not {"store", "include", "text", "reasoning", "input", "instructions"} & set(body)


@pytest.mark.parametrize("kwargs", [
    dict(previous_response_id="resp_1"), dict(background=True), dict(tools=[{"type": "web_search"}]),
    dict(input=[{"type": "web_search_call", "id": "ws_1"}]),
    dict(input=[{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]),
])
def test_fallback_refuses_what_chat_cannot_express(kwargs, groq, server):
    kwargs.setdefault("input", "hi")
    with pytest.raises(llmlib.ConfigurationError):
        groq.responses_stream(model="m", **kwargs)
    with pytest.raises(llmlib.ConfigurationError):
        groq.responses(model="m", **kwargs)
    assert server.requests == []


def test_fallback_can_be_forced_either_way(client, groq, server):
    serve(server, wire("openai_chat", "plain_text_with_usage.sse").read_bytes())
    stream = client.responses_stream(model="gpt-4o", input="hi", fallback=True)
    assert stream.fallback is True and collect_responses(stream).fallback is True
    assert server.requests[-1].path == "/v1/chat/completions"
    serve(server, wire("openai_responses", "llm_stream_basic_with_headers.sse").read_bytes())
    stream = groq.responses_stream(model="gpt-oss", input="hi", fallback=False)
    assert stream.fallback is False and collect_responses(stream).output_text == "pong"
    assert server.requests[-1].path == "/v1/responses"


# ---------------------------------------------------------------- closing and cancelling


def _created_then_silence(req, reply):
    created = wire("openai_responses", "llm_stream_basic_with_headers.sse").read_bytes().split(b"\n\n")[0] + b"\n\n"
    chat = wire("openai_chat", "plain_text_with_usage.sse").read_bytes().split(b"\n\n")[0] + b"\n\n"
    reply.head(200, [("Content-Type", "text/event-stream")])
    reply.piece(created if req.path.endswith("/responses") else chat)
    reply.hang(5)


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_with_block_closes_the_connection(provider, server):
    server.handler = _created_then_silence
    with make_client(server, provider) as client:
        with client.responses_stream(model="m", input="hi") as stream:
            assert isinstance(next(stream), ResponseCreated)
        assert server.wait_closed()


@pytest.mark.parametrize("provider", ["openai", "groq"])
def test_cancel_ends_the_stream_quietly(provider, server):
    server.handler = _created_then_silence
    token = CancelToken()
    with make_client(server, provider) as client:
        stream = client.responses_stream(model="m", input="hi", cancel=token)
        threading.Timer(0.2, token.cancel).start()
        started = time.monotonic()
        events = list(stream)
        assert time.monotonic() - started < 2
    assert [type(e) for e in events] == [ResponseCreated]
    assert server.wait_closed()


# ---------------------------------------------------------------- the values


def test_collect_without_completed_assembles_the_deltas():
    acc = ResponsesAccumulator()
    events = [
        ResponseCreated(ResponsesResult("resp_1", "gpt-4.1", "in_progress")),
        OutputTextDelta("Hel", "msg_1", 0, 0), OutputTextDelta("lo", "msg_1", 0, 0),
        FunctionCallStart("fc_1", "call_1", "multiply", 1),
        FunctionCallArgumentsDelta("fc_1", '{"a":', 1), FunctionCallArgumentsDelta("fc_1", "1}", 1),
        OutputTextDelta("!", "msg_2", None, 0),  # a server without output_index: found by item id
    ]
    for e in events:
        acc.add(e)
    result = acc.response()
    assert result == collect_responses(events)
    assert (result.id, result.status, result.output_text) == ("resp_1", "in_progress", "Hello!")
    assert result.function_calls == (FunctionCallItem("fc_1", "call_1", "multiply", '{"a":1}', "in_progress"),)
    assert acc.count == len(events)
    assert result.function_calls[0].to_input() == {
        "type": "function_call", "call_id": "call_1", "name": "multiply", "arguments": '{"a":1}'}


def test_request_build_splits_known_fields_from_extra():
    req = ResponsesRequest.build("gpt-4.1", ["hi"], {"instructions": "x", "temperature": 0.5})
    assert (req.input, req.instructions, dict(req.extra)) == (("hi",), "x", {"temperature": 0.5})
    assert ResponsesRequest.build("gpt-4.1", {"role": "user", "content": "hi"}, {}).input == (
        {"role": "user", "content": "hi"},)


def test_incomplete_error_is_a_stream_error_not_retried():
    error = ResponseIncompleteError("cut", reason="max_output_tokens")
    assert isinstance(error, llmlib.StreamError) and not error.is_retryable()
    assert error.reason == "max_output_tokens" and error.partial is None
