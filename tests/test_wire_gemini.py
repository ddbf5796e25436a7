"""Every recorded Gemini transcript, replayed over loopback at the real path.

The expected values below were written by reading the transcripts in
../shared/wire/gemini (see SOURCES.md there), plus a deliberately naive oracle
(``oracle``) for the long texts; they are not produced by llmlib.
"""

from __future__ import annotations

import json
import random
import re

import attrs
import pytest

from llmlib import Client, ConnectionOptions, Timeout, Usage, collect, errors
from llmlib.error_mapping import error_from_payload, error_from_response
from llmlib.streaming import ContentDelta, Done, ReasoningDelta, ToolCallDelta, ToolCallStart, UsageReport, events
from tests import fake_gemini
from tests.conftest import TEST_KEY, WIRE, wire
from tests.loopback import split_at

ALL = sorted(p.name for p in (WIRE / "gemini").iterdir())
NO_ALT_SSE = [n for n in ALL if "NO_ALT_SSE" in n]
JSONL = "vercel_tool_call_gemini3.chunks.jsonl"
NONSTREAM = "vercel_nonstream_text.json"

THOUGHT_SIG_PREFIX = "EpwICpkIAXLI2nxlU6gsWZaZ"  # first characters of the gemini3 transcript's thoughtSignature

# Read off each transcript: events, responseId, modelVersion, the calls made (name, args),
# the mapped finish reason, the last usageMetadata as Usage (completion = candidates + thoughts),
# and the part kinds llmlib keeps for the next turn (unsigned text runs merged, signed parts alone).
EXPECTED = {
    "stream_function_call_single_chunk.sse": dict(
        events=1, id="1lpeaMTxIpW1nvgP-O3vwQY", model="gemini-2.0-flash",
        calls=[("get_capital", {"country": "France"})], finish="tool_calls",
        usage=Usage(52, 5, 57, None, None), parts=[["functionCall"]]),
    "stream_function_call_thought_signature_gemini3.sse": dict(
        events=2, id="QUVVadTSNJ6_qtsPvN7J8Q0", model="gemini-3-pro-preview",
        calls=[("get_country", {})], finish="tool_calls",
        usage=Usage(29, 10 + 202, 241, 202, None), parts=[["functionCall", "thoughtSignature"]]),
    "stream_text_crlf.sse": dict(
        events=3, id="w1peaMz6INOvnvgPgYfPiQY", model="gemini-2.0-flash-exp",
        calls=[], finish="stop", usage=Usage(13, 8, 21, None, None), parts=[["text"]],
        text="The capital of France is Paris.\n"),
    "stream_thought_parts.sse": dict(
        events=23, id="beHBaJfEMIi-qtsP3769-Q8", model="gemini-2.5-pro",
        calls=[], finish="stop", usage=Usage(34, 469 + 787, 1290, 787, None),
        parts=[["text", "thought"], ["text", "thoughtSignature"], ["text"]]),
    "stream_usage_every_chunk.sse": dict(
        events=3, id="ru1garvBEoOiqtsP2fznmQw", model="gemini-2.5-flash",
        calls=[], finish="stop", usage=Usage(18, 80 + 35, 133, 35, None), parts=[["text"]],
        text="\n".join(str(i) for i in range(1, 31))),
    JSONL: dict(
        events=2, id="QHiLaa6LBrb8vdIPoNztsAg", model="gemini-3-pro-preview",
        calls=[("weather", {"location": "San Francisco"})], finish="tool_calls",
        usage=Usage(29, 15 + 804, 848, 804, None), parts=[["functionCall", "thoughtSignature"]]),
}
STREAMS = sorted(EXPECTED)

# The events() of the short transcripts, written out ("ID" stands for a generated call id).
EVENTS = {
    "stream_function_call_single_chunk.sse": [
        ToolCallStart(0, "ID", "get_capital"), ToolCallDelta(0, {"country": "France"}), Done("tool_calls"),
        UsageReport(Usage(52, 5, 57, None, None))],
    "stream_function_call_thought_signature_gemini3.sse": [
        ToolCallStart(0, "ID", "get_country"), ToolCallDelta(0, {}), Done("tool_calls"),
        UsageReport(Usage(29, 212, 241, 202, None))],
    "stream_text_crlf.sse": [
        ContentDelta("The"), ContentDelta(" capital of France"), ContentDelta(" is Paris.\n"), Done("stop"),
        UsageReport(Usage(13, 8, 21, None, None))],
    "stream_usage_every_chunk.sse": [
        ContentDelta("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n1"),
        ContentDelta("4\n15\n16\n17\n18\n19\n20\n21\n22\n23\n24\n25\n26\n27\n28\n29\n3"),
        ContentDelta("0"), Done("stop"), UsageReport(Usage(18, 115, 133, 35, None))],
    JSONL: [
        ToolCallStart(0, "ID", "weather"), ToolCallDelta(0, {"location": "San Francisco"}), Done("tool_calls"),
        UsageReport(Usage(29, 819, 848, 804, None))],
}


def transcript(name: str) -> bytes:
    """The body to replay: the .sse bytes as recorded, or SSE framing rebuilt around
    the payload lines of a .chunks.jsonl (Gemini ends events with CRLF CRLF)."""
    raw = wire("gemini", name).read_bytes()
    if name.endswith(".chunks.jsonl"):
        return b"".join(b"data: " + line + b"\r\n\r\n" for line in raw.splitlines() if line.strip())
    return raw


def payloads(raw: bytes):
    """The JSON payloads of an SSE body, by a deliberately naive reading."""
    out = []
    for block in re.split(rb"\r?\n\r?\n", raw):
        for line in block.splitlines():
            if line.startswith(b"data: "):
                out.append(json.loads(line[6:]))
    return out


def oracle(raw: bytes):
    """(text, reasoning, [text pieces per event], [thought pieces per event]) of candidate 0."""
    text, thoughts = [], []
    for p in payloads(raw):
        for c in p.get("candidates", []):
            for part in c["content"]["parts"]:
                if part.get("text"):
                    (thoughts if part.get("thought") else text).append(part["text"])
    return "".join(text), "".join(thoughts), text, thoughts


@pytest.fixture
def gemini(server):
    with Client("gemini", api_key=TEST_KEY, base_url=server.url + "/v1beta",
                options=ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=10))) as c:
        yield c


def stream(client, server, body, model="gemini-2.5-flash", **kwargs):
    server.handler = lambda req, reply: reply.sse(body)
    return list(client.chat_completion_stream(model=model, messages="hi", **kwargs))


def normalized(chunks):
    """Chunks as plain data with generated tool-call ids blanked (they differ per run)."""
    out = []
    for chunk in chunks:
        data = attrs.asdict(chunk)
        for choice in data["choices"]:
            for call in choice["delta"]["tool_calls"] or ():
                assert call["id"].startswith("call_")
                call["id"] = "ID"
        out.append(data)
    return out


def test_every_transcript_has_a_test():
    assert set(ALL) == set(EXPECTED) | set(NO_ALT_SSE) | {NONSTREAM}
    assert len(NO_ALT_SSE) == 2


@pytest.mark.parametrize("name", NO_ALT_SSE)
def test_json_array_streams_are_not_requested(name):
    pytest.skip(f"{name}: a JSON-array stream, a format llmlib does not request (it asks for alt=sse)")


@pytest.mark.parametrize("name", STREAMS)
def test_replay_gives_the_recorded_answer(name, gemini, server):
    want = EXPECTED[name]
    raw = transcript(name)
    chunks = stream(gemini, server, raw, model=want["model"])

    sent = server.requests[-1]
    assert sent.method == "POST"
    assert sent.path == f"/v1beta/models/{want['model']}:streamGenerateContent?alt=sse"
    assert TEST_KEY not in sent.path and "key=" not in sent.path
    assert sent.headers["x-goog-api-key"] == TEST_KEY and "authorization" not in sent.headers

    assert len(chunks) == want["events"] == len(payloads(raw))
    response = collect(chunks)
    text, reasoning, _, _ = oracle(raw)
    assert response.id == want["id"] and response.model == want["model"]
    assert [c.index for c in response.choices] == [0]
    assert response.text == want.get("text", text) == text
    assert response.reasoning_content == (reasoning or None)
    assert response.finish_reason == want["finish"]
    assert [(c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == want["calls"]
    assert all(c.id.startswith("call_") and c.type == "function" for c in response.tool_calls)
    assert response.usage == want["usage"]
    assert chunks[-1].usage == want["usage"] and all(c.usage is None for c in chunks[:-1])  # reported once
    kept = response.message.provider_fields["gemini"]["parts"]
    assert [sorted(p) for p in kept] == [sorted(k) for k in want["parts"]]
    assert "".join(p["text"] for p in kept if "text" in p and not p.get("thought")) == text


def test_thought_transcript_details(gemini, server):
    """stream_thought_parts.sse: four thought parts, then answer text whose first
    part carries the thoughtSignature."""
    raw = transcript("stream_thought_parts.sse")
    chunks = stream(gemini, server, raw, model="gemini-2.5-pro")
    response = collect(chunks)
    assert response.reasoning_content.startswith("**Clarifying User Goals**\n\nI'm currently focused")
    assert response.reasoning_content.endswith("regardless of specific circumstances or locations.\n\n\n")
    assert response.text.startswith("This is a great question! Safely crossing the street")
    assert response.text.endswith("Always assume a driver might not see you.")
    thought, signed, rest = response.message.provider_fields["gemini"]["parts"]
    assert thought["thought"] is True and thought["text"] == response.reasoning_content
    assert signed["thoughtSignature"].startswith("CiIB0e2Kb6Syj1a961Ef")
    assert signed["text"].startswith("This is a great question!") and signed["text"].endswith("a step-by-step")
    assert signed["text"] + rest["text"] == response.text
    _, _, texts, thoughts = oracle(raw)
    assert list(events(chunks)) == (
        [ReasoningDelta(t) for t in thoughts] + [ContentDelta(t) for t in texts]
        + [Done("stop"), UsageReport(Usage(34, 1256, 1290, 787, None))])
    assert len(thoughts) == 4 and len(texts) == 19


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_events_sequence(name, gemini, server):
    got = list(events(stream(gemini, server, transcript(name))))
    for event in got:
        if isinstance(event, ToolCallStart):
            assert event.id.startswith("call_")
    simple = [ToolCallStart(e.index, "ID", e.name) if isinstance(e, ToolCallStart)
              else ToolCallDelta(e.index, json.loads(e.arguments)) if isinstance(e, ToolCallDelta) else e
              for e in got]
    assert simple == EVENTS[name]


@pytest.mark.parametrize("name", STREAMS)
def test_any_split_gives_the_same_chunks(name, gemini, server):
    raw = transcript(name)
    whole = normalized(stream(gemini, server, raw))
    rng = random.Random(name)
    splits = [
        split_at(raw, rng.sample(range(1, len(raw)), min(len(raw) - 1, 40))),  # 40 random cuts
        split_at(raw, range(0, len(raw), 7)),  # a piece every 7 bytes
        split_at(raw, [m.start() + 1 for m in re.finditer(rb"\r\n", raw)]),  # between every CR and LF
    ]
    for pieces in splits:
        assert normalized(stream(gemini, server, pieces)) == whole


def test_byte_by_byte(gemini, server):
    raw = transcript("stream_function_call_thought_signature_gemini3.sse")
    pieces = [raw[i:i + 1] for i in range(len(raw))]
    response = collect(stream(gemini, server, pieces, model="gemini-3-pro-preview"))
    assert [(c.function.name, c.function.arguments) for c in response.tool_calls] == [("get_country", "{}")]
    assert response.finish_reason == "tool_calls"
    (part,) = response.message.provider_fields["gemini"]["parts"]
    assert part["functionCall"] == {"name": "get_country", "args": {}}
    assert part["thoughtSignature"].startswith(THOUGHT_SIG_PREFIX)


@pytest.mark.parametrize("mode", ["chunked", "close", "length"])
def test_every_body_framing_streams(mode, gemini, server):
    raw = transcript("stream_text_crlf.sse")
    server.handler = lambda req, reply: reply.sse(split_at(raw, range(0, len(raw), 97)), mode=mode)
    response = collect(gemini.chat_completion_stream(model="gemini-2.0-flash-exp", messages="hi"))
    assert response.text == "The capital of France is Paris.\n" and response.finish_reason == "stop"


def test_nonstream_body_decodes(gemini, server):
    raw = wire("gemini", NONSTREAM).read_bytes()
    server.handler = lambda req, reply: reply.send(200, raw, [("Content-Type", "application/json")], mode="length")
    response = gemini.chat_completion(model="gemini-3-pro-preview", messages="How many r's in strawberry?")
    assert server.requests[-1].path == "/v1beta/models/gemini-3-pro-preview:generateContent"
    assert response.id == "Un6LacrVMcjUxs0PmJfWoQc" and response.model == "gemini-3-pro-preview"
    assert response.text == "There are **3** r's in strawberry.\n\nHere is the breakdown: st**r**awbe**rr**y."
    assert response.finish_reason == "stop" and response.reasoning_content is None
    assert response.usage == Usage(9, 28 + 244, 281, 244, None)
    (part,) = response.message.provider_fields["gemini"]["parts"]
    assert part["text"] == response.text
    assert part["thoughtSignature"].startswith("EtoFCtcFAb4+9vtfe4MX")


def test_streamed_and_nonstreamed_tool_calls_agree(gemini, server):
    streamed = transcript(JSONL)
    body = payloads(streamed)[0]
    body["candidates"][0]["finishReason"] = "STOP"  # the same call as one generateContent answer
    server.handler = lambda req, reply: reply.json(body)
    whole = gemini.chat_completion(model="gemini-3-pro-preview", messages="hi")
    piecewise = collect(stream(gemini, server, streamed))
    for r in (whole, piecewise):
        assert [(c.function.name, json.loads(c.function.arguments)) for c in r.tool_calls] == [
            ("weather", {"location": "San Francisco"})]
        assert r.finish_reason == "tool_calls"
    assert whole.message.provider_fields == piecewise.message.provider_fields


# ---------------------------------------------------------------- synthetic shapes (documented, not recorded)


def event(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"


@pytest.mark.parametrize("finish, want", [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                                          ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
                                          ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
                                          ("IMAGE_SAFETY", "content_filter"), ("OTHER", "other"),
                                          ("MALFORMED_FUNCTION_CALL", "malformed_function_call")])
def test_finish_reasons(finish, want, gemini, server):
    chunks = stream(gemini, server, fake_gemini.stream_body(["a", "b"], finish=finish))
    assert collect(chunks).finish_reason == want
    server.handler = lambda req, reply: reply.json(
        {**fake_gemini.response_json("ab"), "candidates": [
            {**fake_gemini.response_json("ab")["candidates"][0], "finishReason": finish}]})
    assert gemini.chat_completion(model="m", messages="hi").finish_reason == want


def test_blocked_prompt_is_content_filter(gemini, server):
    blocked = {"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
               "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}, "modelVersion": "gemini-2.5-flash"}
    response = collect(stream(gemini, server, event(blocked)))
    assert response.finish_reason == "content_filter" and response.text == ""
    assert response.usage == Usage(7, 0, 7, None, None)
    server.handler = lambda req, reply: reply.json(blocked)
    assert gemini.chat_completion(model="m", messages="hi").finish_reason == "content_filter"


def test_stream_without_finish_reason_is_incomplete(gemini, server):
    with pytest.raises(errors.IncompleteStreamError) as info:
        stream(gemini, server, fake_gemini.stream_body(["Hel", "lo"], finish=None))
    assert info.value.partial.text == "Hello"
    raw = transcript("stream_text_crlf.sse")
    cut = raw[:raw.rindex(b"data: ")]  # the recorded answer without its last (finishing) event
    with pytest.raises(errors.IncompleteStreamError) as info:
        stream(gemini, server, cut)
    assert info.value.partial.text == "The capital of France"


def test_two_candidates(gemini, server):
    def part(index, text, finish=None):
        c = {"content": {"role": "model", "parts": [{"text": text}]}, "index": index}
        return {**c, "finishReason": finish} if finish else c

    body = (event({"candidates": [part(0, "A1"), part(1, "B1")]})
            + event({"candidates": [part(0, "A2", "STOP")]})
            + event({"candidates": [part(1, "B2", "MAX_TOKENS")], "usageMetadata": {"promptTokenCount": 2,
                                                                               "candidatesTokenCount": 4}}))
    response = collect(stream(gemini, server, body, n=2))
    assert [(c.index, c.message.text, c.finish_reason) for c in response.choices] == [
        (0, "A1A2", "stop"), (1, "B1B2", "length")]
    assert response.usage == Usage(2, 4, 6, None, None)
    assert json.loads(server.requests[-1].body)["generationConfig"]["candidateCount"] == 2
    with pytest.raises(errors.IncompleteStreamError):  # candidate 1 never finished
        stream(gemini, server, body[:body.rindex(b"data: ")], n=2)


def test_parallel_calls_get_running_indexes(gemini, server):
    calls = [{"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "sig"},
             {"functionCall": {"name": "b", "args": {"y": "é"}, "id": "gemini-call-7"}}]
    body = event({"candidates": [{"content": {"role": "model", "parts": calls}, "finishReason": "STOP"}]})
    response = collect(stream(gemini, server, body))
    assert [(c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == [
        ("a", {"x": 1}), ("b", {"y": "é"})]
    assert response.tool_calls[1].id == "gemini-call-7"  # the part's own id when it has one
    assert response.message.provider_fields["gemini"]["parts"] == calls


# ---------------------------------------------------------------- errors

ERRORS = {
    "gemini_400_api_key_invalid_THIRDPARTY.json": (400, errors.AuthenticationError, "API key not valid"),
    "gemini_404_not_found.json": (404, errors.NotFoundError, "gemini-3.6-flahs"),
    "gemini_429_resource_exhausted_retryinfo.json": (429, errors.RateLimitError, "exceeded your current quota"),
}


def test_every_gemini_error_file_has_a_case():
    assert {p.name for p in wire("errors").glob("gemini_*")} == set(ERRORS)


@pytest.mark.parametrize("name", sorted(ERRORS))
@pytest.mark.parametrize("streaming", [False, True])
def test_error_files_map_to_classes(name, streaming, gemini, server):
    status, cls, words = ERRORS[name]
    body = wire("errors", name).read_bytes()
    server.handler = lambda req, reply: reply.send(status, body, [("Content-Type", "application/json")],
                                                   mode="length")
    call = gemini.chat_completion_stream if streaming else gemini.chat_completion
    with pytest.raises(cls) as info:
        call(model="gemini-3.6-flahs", messages="hi")
    err = info.value
    assert type(err) is cls and err.status_code == status and err.provider == "gemini"
    assert words in str(err) and err.is_retryable() == (status == 429)
    if cls is errors.RateLimitError:
        assert err.retry_after == pytest.approx(34.4)  # google.rpc.RetryInfo retryDelay "34.4s"
    assert TEST_KEY not in str(err) and TEST_KEY not in repr(err) and TEST_KEY not in repr(err.body)


@pytest.mark.parametrize("name", ["gemini_429_resource_exhausted_retryinfo.json", "gemini_404_not_found.json"])
def test_error_object_mid_stream(name, gemini, server):
    status, cls, words = ERRORS[name]
    error = json.loads(wire("errors", name).read_bytes())
    body = fake_gemini.stream_body(["Hel", "lo"], finish=None) + event(error)
    with pytest.raises(cls) as info:
        stream(gemini, server, body)
    assert info.value.partial.text == "Hello" and info.value.status_code == status and words in str(info.value)
    if cls is errors.RateLimitError:
        assert info.value.retry_after == pytest.approx(34.4)


def test_key_echoed_in_an_error_is_scrubbed(gemini, server):
    body = fake_gemini.error_json(400, f"API key {TEST_KEY} not valid")
    body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                                 "metadata": {"key": TEST_KEY}}]
    server.handler = lambda req, reply: reply.json(body, status=400)
    with pytest.raises(errors.AuthenticationError) as info:
        gemini.chat_completion(model="m", messages="hi")
    assert TEST_KEY not in str(info.value) and TEST_KEY not in repr(info.value.body)


def test_api_key_invalid_mapping_by_body():
    body = json.loads(wire("errors", "gemini_400_api_key_invalid_THIRDPARTY.json").read_bytes())
    err = error_from_payload(body, provider="gemini")  # in a stream: no HTTP status
    assert type(err) is errors.AuthenticationError and err.status_code == 400 and not err.is_retryable()
    other = {"error": {"code": 400, "message": "bad field", "status": "INVALID_ARGUMENT",
                       "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "OTHER"}]}}
    assert type(error_from_response(400, {}, json.dumps(other).encode(), provider="gemini")) is errors.BadRequestError
    for details in (None, 5, "API_KEY_INVALID", {"reason": "API_KEY_INVALID"}, [None, 1, {"reason": 7}], [[]]):
        odd = {"error": {"code": 400, "message": "m", "status": "INVALID_ARGUMENT", "details": details}}
        assert type(error_from_payload(odd, provider="gemini", status=400)) is errors.BadRequestError
    leaked = {"error": {"code": 403, "message": "Your API key was reported as leaked.", "status": "PERMISSION_DENIED",
                        "details": [{"reason": "API_KEY_INVALID"}]}}
    assert type(error_from_payload(leaked, provider="gemini")) is errors.PermissionDeniedError


def test_retry_delay_without_retry_after_header():
    body = wire("errors", "gemini_429_resource_exhausted_retryinfo.json").read_bytes()
    assert error_from_response(429, {}, body, provider="gemini").retry_after == pytest.approx(34.4)
    assert error_from_response(429, {"retry-after": "3"}, body, provider="gemini").retry_after == 3.0  # header wins


# ---------------------------------------------------------------- models

PAGE_TWO = {"models": [{"name": "models/gemini-page-two", "displayName": "Page Two", "inputTokenLimit": 4096,
                        "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]}]}
TOKEN = "Ch9tb2RlbHMvdmVvLTMuMS1nZW5lcmF0ZS1wcmV2aWV3"  # the recorded listing's nextPageToken


def test_models_list_two_pages(gemini, server):
    first = wire("models", "gemini_models_list.json").read_bytes()

    def handler(req, reply):
        if "pageToken=" in req.path:
            reply.json(PAGE_TWO)
        else:
            reply.send(200, first, [("Content-Type", "application/json")], mode="length")

    server.handler = handler
    models = gemini.list_models()
    assert [r.path for r in server.requests] == ["/v1beta/models?pageSize=1000",
                                                 f"/v1beta/models?pageSize=1000&pageToken={TOKEN}"]
    assert all(r.method == "GET" and r.headers["x-goog-api-key"] == TEST_KEY for r in server.requests)
    assert len(models) == 50 + 1
    by_id = {m.id: m for m in models}
    flash = by_id["gemini-2.5-flash"]
    assert models[0] is flash and str(flash) == "gemini-2.5-flash" and flash.provider == "gemini"
    assert flash.context_length == 1048576 and flash.supports_streaming is True
    assert flash.raw["displayName"] == "Gemini 2.5 Flash" and flash.raw["name"] == "models/gemini-2.5-flash"
    assert by_id["gemini-embedding-001"].supports_streaming is False  # embedContent only
    assert by_id["imagen-4.0-generate-001"].context_length == 480
    assert by_id["gemini-page-two"].context_length == 4096 and models[-1].id == "gemini-page-two"
    assert not any(m.id.startswith("models/") for m in models)


def test_model_info(gemini, server):
    server.handler = fake_gemini.handler
    info = gemini.model_info(fake_gemini.MODEL)
    assert info.context_length == 32768 and info.raw["displayName"] == "Gemini Fake 1"
    with pytest.raises(errors.NotFoundError):
        gemini.model_info("gemini-nope")


def test_fake_gemini_handler(gemini, server):
    server.handler = fake_gemini.handler
    assert gemini.chat_completion(model=fake_gemini.MODEL, messages="hi").text == fake_gemini.TEXT
    assert server.requests[-1].path == fake_gemini.chat_path(fake_gemini.MODEL, stream=False)
    chunks = list(gemini.chat_completion_stream(model=fake_gemini.MODEL, messages="hi"))
    assert [c.text for c in chunks] == fake_gemini.TEXT_PIECES
    assert server.requests[-1].path == fake_gemini.chat_path(fake_gemini.MODEL, stream=True)
    assert collect(chunks).usage == Usage(3, 4, 7, None, None)
    server.handler = lambda req, reply: reply.sse(fake_gemini.tool_stream_body("f", {"a": [1]}))
    response = collect(gemini.chat_completion_stream(model=fake_gemini.MODEL, messages="hi"))
    assert [(c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == [("f", {"a": [1]})]
    assert response.message.provider_fields["gemini"]["parts"][0]["thoughtSignature"] == fake_gemini.SIGNATURE


def test_long_answer_keeps_one_merged_text_part(gemini, server):
    """5,000 text events (past the 256-piece compaction of a text run) give the
    whole text once in content and once as the kept part."""
    pieces = [f"w{i} " for i in range(5000)]
    response = collect(stream(gemini, server, fake_gemini.stream_body(pieces)))
    assert response.text == "".join(pieces)
    assert response.message.provider_fields["gemini"]["parts"] == [{"text": "".join(pieces)}]
