"""What llmlib sends to Gemini: the exact JSON body, path and headers of each kind
of request (read back from a loopback server), and a multi-turn tool conversation
whose thought signature must survive the round trip."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from llmlib import (ChatCompletionRequest, Client, ConnectionOptions, Content, Message, Timeout, Tool, ToolCall,
                    collect, errors)
from tests import fake_gemini
from tests.conftest import TEST_KEY, wire

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(24)
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"
WEATHER = Tool.function("get_weather", "Current temperature in a city",
                        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def user(*parts):
    return {"role": "user", "parts": list(parts)}


def model(*parts):
    return {"role": "model", "parts": list(parts)}


@pytest.fixture
def gemini(server):
    server.handler = fake_gemini.handler
    with Client("gemini", api_key=TEST_KEY, base_url=server.url + "/v1beta",
                options=ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=10))) as c:
        yield c


def sent(client, server, stream=False, **kwargs):
    """Send one chat call; the (path, headers, JSON body) the server received."""
    kwargs.setdefault("model", fake_gemini.MODEL)
    if stream:
        collect(client.chat_completion_stream(**kwargs))
    else:
        client.chat_completion(**kwargs)
    request = server.requests[-1]
    return request.path, request.headers, request.json()


def test_text(gemini, server):
    path, headers, body = sent(gemini, server, messages="Hello")
    assert path == f"/v1beta/models/{fake_gemini.MODEL}:generateContent"
    assert body == {"contents": [user({"text": "Hello"})]}
    assert headers["x-goog-api-key"] == TEST_KEY
    assert "authorization" not in headers and headers["content-type"] == "application/json"


def test_stream_path_and_model_names(gemini, server):
    path, headers, body = sent(gemini, server, stream=True, messages="Hello")
    assert path == f"/v1beta/models/{fake_gemini.MODEL}:streamGenerateContent?alt=sse"
    assert headers["accept"] == "text/event-stream" and body == {"contents": [user({"text": "Hello"})]}
    path, _, _ = sent(gemini, server, stream=True, messages="Hello", model=f"models/{fake_gemini.MODEL}")
    assert path == f"/v1beta/models/{fake_gemini.MODEL}:streamGenerateContent?alt=sse"  # not models/models/
    path, _, _ = sent(gemini, server, messages="Hello", model="tunedModels/my-tune-1")
    assert path == "/v1beta/tunedModels/my-tune-1:generateContent"


def test_base_url_query_is_kept(server):
    server.handler = lambda req, reply: reply.sse(fake_gemini.stream_body(["ok"]))
    with Client("gemini", api_key=TEST_KEY, base_url=server.url + "/proxy/v1beta?tenant=t1",
                options=ConnectionOptions(max_retries=0)) as client:
        assert collect(client.chat_completion_stream(model="gemini-2.5-flash", messages="hi")).text == "ok"
        assert server.requests[-1].path == (
            "/proxy/v1beta/models/gemini-2.5-flash:streamGenerateContent?tenant=t1&alt=sse")


def test_multi_turn_system_and_merged_turns(gemini, server):
    _, _, body = sent(gemini, server, messages=[
        Message.system("You are terse."),
        Message.user("Hi"),
        Message.assistant("Hello."),
        Message.developer("Answer in French."),
        Message.user("How are you?"),
        Message.user("And the weather?"),
    ])
    assert body == {
        "systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]},
        "contents": [
            user({"text": "Hi"}),
            model({"text": "Hello."}),
            user({"text": "How are you?"}, {"text": "And the weather?"}),  # consecutive user turns merged
        ],
    }


def test_generation_config(gemini, server):
    _, _, body = sent(gemini, server, messages="hi", temperature=0.2, top_p=0.9, max_tokens=256, stop="END", n=2,
                      seed=42, presence_penalty=0.5, frequency_penalty=-0.5, parallel_tool_calls=False, user="u-1")
    assert body == {"contents": [user({"text": "hi"})], "generationConfig": {
        "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "candidateCount": 2, "seed": 42,
        "presencePenalty": 0.5, "frequencyPenalty": -0.5, "stopSequences": ["END"]}}
    _, _, body = sent(gemini, server, messages="hi", stop=["a", "b"])
    assert body["generationConfig"] == {"stopSequences": ["a", "b"]}


def test_tools_and_tool_choice(gemini, server):
    no_args = Tool.function("get_time")  # {"type": "object", "properties": {}}: Gemini rejects an empty OBJECT
    _, _, body = sent(gemini, server, messages="hi", tools=[WEATHER, no_args], tool_choice="auto")
    assert body == {
        "contents": [user({"text": "hi"})],
        "tools": [{"functionDeclarations": [
            {"name": "get_weather", "description": "Current temperature in a city",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time"},
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }
    for choice, config in [("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
                           ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]})]:
        _, _, body = sent(gemini, server, messages="hi", tools=[WEATHER], tool_choice=choice)
        assert body["toolConfig"] == {"functionCallingConfig": config}
    _, _, body = sent(gemini, server, messages="hi", tools=[WEATHER])
    assert "toolConfig" not in body


def test_tool_results(gemini, server):
    calls = [ToolCall.new("call_1", "get_weather", '{"city": "Paris"}'),
             ToolCall.new("call_2", "get_weather", '{"city": "Oslo"}')]
    _, _, body = sent(gemini, server, tools=[WEATHER], messages=[
        Message.user("Weather in Paris and Oslo?"),
        Message.assistant("Let me look.", tool_calls=calls),
        Message.tool("call_2", '{"temp": -3, "unit": "C"}'),
        Message.tool("call_1", "sunny, 21 C"),
        Message.user("Thanks. Warmer one?"),
    ])
    assert body["contents"] == [
        user({"text": "Weather in Paris and Oslo?"}),
        model({"text": "Let me look."},
              {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
              {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}),
        user({"functionResponse": {"name": "get_weather", "response": {"temp": -3, "unit": "C"}}},
             {"functionResponse": {"name": "get_weather", "response": {"result": "sunny, 21 C"}}},
             {"text": "Thanks. Warmer one?"}),
    ]


def test_tool_result_that_is_json_but_not_an_object(gemini, server):
    _, _, body = sent(gemini, server, messages=[
        Message.user("n?"), Message.assistant(tool_calls=[ToolCall.new("c", "count", "")]),
        Message.tool("c", "[1, 2]")])
    assert body["contents"][1:] == [model({"functionCall": {"name": "count", "args": {}}}),
                                     user({"functionResponse": {"name": "count", "response": {"result": "[1, 2]"}}})]


@pytest.mark.parametrize("arguments", ['{"city": ', '["Paris"]', '"Paris"'])
def test_tool_call_arguments_must_be_an_object(arguments, gemini, server):
    with pytest.raises(errors.ConfigurationError) as info:
        gemini.chat_completion(model="m", messages=[
            Message.user("hi"), Message.assistant(tool_calls=[ToolCall.new("call_bad", "get_weather", arguments)]),
            Message.tool("call_bad", "{}")])
    assert "call_bad" in str(info.value) and "get_weather" in str(info.value)
    assert server.requests == []  # nothing sent


def test_tool_result_for_an_unknown_call(gemini, server):
    with pytest.raises(errors.ConfigurationError) as info:
        gemini.chat_completion(model="m", messages=[Message.user("hi"), Message.tool("call_nowhere", "{}")])
    assert "call_nowhere" in str(info.value) and server.requests == []


def test_images_audio_documents(gemini, server, tmp_path):
    (tmp_path / "cat.png").write_bytes(PNG)
    (tmp_path / "hello.wav").write_bytes(WAV)
    (tmp_path / "paper.pdf").write_bytes(PDF)
    _, _, body = sent(gemini, server, messages=[Message.user([
        "Describe these.",
        Content.from_image_file(tmp_path / "cat.png"),
        Content.new_image("https://example.com/dog.jpg"),
        Content.new_image("https://example.com/raw", mime="image/webp"),
        Content.from_audio_file(tmp_path / "hello.wav", mime="audio/wav"),
        Content.new_audio("https://example.com/talk.mp3", "audio/mpeg"),
        Content.from_document_file(tmp_path / "paper.pdf"),
        Content.new_document("https://example.com/spec.pdf"),
        Content.new_image("data:image/svg+xml,%3Csvg%2F%3E"),
    ])])
    assert body == {"contents": [user(
        {"text": "Describe these."},
        {"inlineData": {"mimeType": "image/png", "data": b64(PNG)}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/dog.jpg"}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/raw"}},
        {"inlineData": {"mimeType": "audio/wav", "data": b64(WAV)}},
        {"fileData": {"mimeType": "audio/mpeg", "fileUri": "https://example.com/talk.mp3"}},
        {"inlineData": {"mimeType": "application/pdf", "data": b64(PDF)}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/spec.pdf"}},
        {"inlineData": {"mimeType": "image/svg+xml", "data": b64(b"<svg/>")}},  # a percent-encoded data: URL
    )]}


def test_remote_file_of_unknown_type_has_no_mime(gemini, server):
    _, _, body = sent(gemini, server, messages=[Message.user(Content.new_image("https://www.youtube.com/watch?v=x"))])
    assert body["contents"] == [user({"fileData": {"fileUri": "https://www.youtube.com/watch?v=x"}})]


def test_thinking(gemini, server):
    def thinking(**kwargs):
        return sent(gemini, server, messages="hi", **kwargs)[2]["generationConfig"]["thinkingConfig"]

    assert thinking(reasoning_budget=2048) == {"thinkingBudget": 2048, "includeThoughts": True}
    assert thinking(reasoning_budget=-1) == {"thinkingBudget": -1, "includeThoughts": True}  # dynamic
    assert thinking(reasoning_budget=0) == {"thinkingBudget": 0}  # thinking off: no thoughts to include
    assert thinking(reasoning_budget=512, reasoning_effort="high") == {"thinkingBudget": 512, "includeThoughts": True}
    for effort, budget in [("low", 1024), ("medium", 8192), ("high", 24576), ("minimal", 512)]:
        assert thinking(model="gemini-2.5-pro", reasoning_effort=effort) == {
            "thinkingBudget": budget, "includeThoughts": True}
    assert thinking(model="gemini-2.5-flash", reasoning_effort="none") == {"thinkingBudget": 0}
    for name in ("gemini-3-pro-preview", "models/gemini-3.1-flash-lite", "gemini-4-ultra"):
        assert thinking(model=name, reasoning_effort="HIGH") == {"thinkingLevel": "high", "includeThoughts": True}
        assert thinking(model=name, reasoning_effort="low") == {"thinkingLevel": "low", "includeThoughts": True}
    assert thinking(model="gemini-3-flash-preview", reasoning_effort="none") == {"thinkingLevel": "minimal"}
    assert "generationConfig" not in sent(gemini, server, messages="hi")[2]
    with pytest.raises(errors.ConfigurationError, match="reasoning_effort"):
        gemini.chat_completion(model="m", messages="hi", reasoning_effort="extreme")


def test_response_format(gemini, server):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
              "additionalProperties": False}
    _, _, body = sent(gemini, server, messages="hi", response_format={"type": "json_object"})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    _, _, body = sent(gemini, server, messages="hi", response_format={
        "type": "json_schema", "json_schema": {"name": "A", "strict": True, "schema": schema}})
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    _, _, body = sent(gemini, server, messages="hi", response_format={"type": "text"})
    assert "generationConfig" not in body
    with pytest.raises(errors.ConfigurationError, match="response_format"):
        gemini.chat_completion(model="m", messages="hi", response_format={"type": "xml"})


def test_extra_body_is_merged_last(gemini, server):
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    _, _, body = sent(gemini, server, messages="hi", temperature=0.1, max_tokens=9, extra_body={
        "generationConfig": {"topK": 40, "temperature": 0.7}, "safetySettings": safety,
        "cachedContent": "cachedContents/abc"})
    assert body == {"contents": [user({"text": "hi"})],
                    "generationConfig": {"temperature": 0.7, "maxOutputTokens": 9, "topK": 40},
                    "safetySettings": safety, "cachedContent": "cachedContents/abc"}


def test_bad_input_is_refused_before_sending(gemini, server):
    with pytest.raises(errors.ConfigurationError, match="user or assistant"):
        gemini.chat_completion(model="m", messages=[Message.system("only a system prompt")])
    with pytest.raises(errors.ConfigurationError, match="model"):
        gemini.chat_completion(model="", messages="hi")
    with pytest.raises(errors.ConfigurationError, match="system"):
        gemini.chat_completion(model="m", messages=[Message.system(Content.new_image("https://x/y.png")),
                                                    Message.user("hi")])
    assert server.requests == []


def test_key_stays_out_of_urls_errors_and_reprs(gemini, server):
    def handler(req, reply):
        reply.json(fake_gemini.error_json(404, f"model not found for request {req.path} key={TEST_KEY}"), status=404)

    server.handler = handler
    for call in (gemini.chat_completion, gemini.chat_completion_stream):
        with pytest.raises(errors.NotFoundError) as info:
            call(model="gemini-nope", messages="hi")
        assert TEST_KEY not in str(info.value) and TEST_KEY not in repr(info.value)
        assert TEST_KEY not in repr(info.value.body)
    with pytest.raises(errors.NotFoundError) as info:
        gemini.list_models()
    assert TEST_KEY not in str(info.value)
    for request in server.requests:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.path).query)
        assert TEST_KEY not in request.path and "key" not in query
        assert request.headers["x-goog-api-key"] == TEST_KEY
    assert TEST_KEY not in repr(gemini)


# ---------------------------------------------------------------- a tool conversation, end to end


def test_tool_conversation_round_trips_the_thought_signature(gemini, server):
    """Turn 1 is the recorded Gemini 3 call (a functionCall part with a
    thoughtSignature); turn 2 must send that part back verbatim and a
    functionResponse with the function's name; the server then answers."""
    turn1 = wire("gemini", "stream_function_call_thought_signature_gemini3.sse").read_bytes()
    recorded_part = json.loads(turn1.split(b"\r\n\r\n")[0][6:])["candidates"][0]["content"]["parts"][0]
    answer = fake_gemini.stream_body(["It is ", "21 degrees", " in France."])
    problems = []

    def handler(req, reply):
        body = req.json()
        if len(body["contents"]) == 1:
            reply.sse(turn1)
            return
        want = [user({"text": "What's the temperature in my country?"}),
                model(recorded_part),
                user({"functionResponse": {"name": "get_country", "response": {"temp": 21}}})]
        if body["contents"] != want:
            problems.append(body["contents"])
            reply.json(fake_gemini.error_json(400, "Function call is missing a thought_signature"), status=400)
            return
        reply.sse(answer)

    server.handler = handler
    tools = [Tool.function("get_country", "The user's country")]
    history = [Message.user("What's the temperature in my country?")]
    request = ChatCompletionRequest(model="gemini-3-pro-preview", messages=history, tools=tools)
    first = collect(gemini.chat_completion_stream(request))
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert call.function.name == "get_country" and json.loads(call.function.arguments) == {}

    history += [first.message, Message.tool(call.id, '{"temp": 21}')]
    final = collect(gemini.chat_completion_stream(request.with_changes(messages=history)))
    assert problems == []
    assert final.text == "It is 21 degrees in France." and final.finish_reason == "stop"
    path = "/v1beta/models/gemini-3-pro-preview:streamGenerateContent?alt=sse"
    assert [r.path for r in server.requests] == [path, path]
    sent_part = server.requests[-1].json()["contents"][1]["parts"][0]
    assert sent_part["thoughtSignature"] == recorded_part["thoughtSignature"]
    assert sent_part["thoughtSignature"].startswith("EpwICpkIAXLI2nx")


def test_non_streamed_answer_round_trips_its_signed_text(gemini, server):
    raw = json.loads(wire("gemini", "vercel_nonstream_text.json").read_bytes())
    server.handler = lambda req, reply: reply.json(raw)
    first = gemini.chat_completion(model="gemini-3-pro-preview", messages="How many r's in strawberry?")
    gemini.chat_completion(model="gemini-3-pro-preview",
                           messages=["How many r's in strawberry?", first.message, "And in raspberry?"])
    assert server.requests[-1].json()["contents"] == [
        user({"text": "How many r's in strawberry?"}),
        model(raw["candidates"][0]["content"]["parts"][0]),  # text with its thoughtSignature, verbatim
        user({"text": "And in raspberry?"}),
    ]
