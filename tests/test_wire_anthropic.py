"""Every recorded Anthropic transcript, replayed byte for byte over loopback.

The expected values below were written by reading the transcripts in
../shared/wire/anthropic (see SOURCES.md there), and are cross-checked by
:func:`oracle`, a deliberately naive reading of the SSE payloads written for
these tests; neither is derived from llmlib's decoder.
"""

from __future__ import annotations

import json
import random
import re

import pytest

import llmlib
from llmlib import collect
from llmlib.streaming import ContentDelta, Done, ReasoningDelta, ToolCallDelta, ToolCallStart, UsageReport, events
from tests import fake_anthropic
from tests.conftest import WIRE, make_client, wire
from tests.loopback import split_at

STREAMS = sorted(p.name for p in (WIRE / "anthropic").glob("*.sse"))
NONSTREAM = sorted(p.name for p in (WIRE / "anthropic").glob("nonstream_*.json"))
ERRORS = sorted(p.name for p in (WIRE / "errors").glob("anthropic_*.json"))
MODEL = "claude-sonnet-4-5"

# file -> what collect() must give. usage = (prompt, completion, total, cached);
# calls = [(id, name, parsed arguments)]; text/reasoning are whole strings, or
# (head, tail) when long (the oracle checks the whole string).
EXPECTED = {
    "llm_stream_stop_sequence.sse": dict(
        text='\ndef pelican():\n    return "A large waterbird with a long bill and a throat pouch for catching fish."\n',
        finish="stop", stop_reason="stop_sequence", usage=(16, 28, 44, 0), blocks=["text"]),
    "llm_stream_text_with_ratelimit_headers.sse": dict(
        text="- Captain\n- Scoop", finish="stop", stop_reason="end_turn", usage=(17, 10, 27, 0), blocks=["text"]),
    "llm_stream_thinking_signature.sse": dict(
        text='1. **Pouch** - references their iconic bill pouch\n2. **Pel\u00e9** - playful take on "pelican"',
        reasoning=("The user wants two names for a pet pelican, and they want me to be brief.",
                   "- Wing\n\nLet me give two brief, catchy names:"),
        signature_head="EuYDCmMIDBgCKkC05Zda4P+Cdk/LQKE+Aol4ZY3EY4wLDrf8",
        finish="stop", stop_reason="end_turn", usage=(46, 133, 179, 0), blocks=["thinking", "text"]),
    "llm_stream_tool_use_single_input_json_delta.sse": dict(
        text="", calls=[("toolu_01CzN6riCPqw4pVSuTd9Dwn7", "pelican_name_generator", {})],
        finish="tool_calls", stop_reason="tool_use", usage=(543, 40, 583, 0), blocks=["tool_use"]),
    "sdkfixture_basic_text.sse": dict(
        text="Hello there!", finish="stop", stop_reason="end_turn", usage=(11, 6, 17, None), blocks=["text"]),
    "sdkfixture_compaction_delta.sse": dict(
        text="Hello there!", finish="stop", stop_reason="end_turn", usage=(30, 8, 38, None),
        blocks=["compaction", "text"]),
    "sdkfixture_refusal_stop_details.sse": dict(
        text="", finish="content_filter", stop_reason="refusal", usage=(20, 0, 20, None), blocks=["text"]),
    "sdkfixture_text_then_tool_use.sse": dict(
        text="I'll check the current weather in Paris for you.",
        calls=[("toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather", {"location": "Paris"})],
        finish="tool_calls", stop_reason="tool_use", usage=(377, 65, 442, 0), blocks=["text", "tool_use"]),
    "sdkfixture_truncated_tool_json_max_tokens.sse": dict(
        text="I'll create a comprehensive tax guide for someone with multiple W2s and save it in a file "
             "called taxes.txt. Let me do that for you now.",
        # max_tokens cut the input JSON short: the arguments are what arrived, not JSON.
        raw_calls=[("toolu_01EKqbqmZrGRXy18eN7m9kvY", "make_file",
                    '{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS '
                    'WITH MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",\n"Filing taxes')],
        finish="length", stop_reason="max_tokens", usage=(450, 124, 574, 0), blocks=["text", "tool_use"]),
    "stream_beta_text.sse": dict(
        text="[12345,67890]", finish="stop", stop_reason="end_turn", usage=(135, 10, 145, 0), blocks=["text"]),
    "stream_high_max_tokens.sse": dict(
        text="2", finish="stop", stop_reason="end_turn", usage=(20, 5, 25, 0), blocks=["text"]),
    "stream_redacted_thinking.sse": dict(
        text="I notice that you've sent what appears to be some kind of test string or command. I don't have "
             'any special "magic string" triggers or backdoor commands that would expose internal systems or '
             "change my behavior.\n\nI'm Claude, an AI assistant created by Anthropic to be helpful, harmless, "
             "and honest. How can I assist you today with a legitimate task or question?",
        finish="stop", stop_reason="end_turn", usage=(92, 189, 281, 0),
        blocks=["redacted_thinking", "redacted_thinking", "text"]),
    "stream_server_tool_web_search.sse": dict(
        text=("Based on the search results, I can see that the information is a bit dated",
              "with very little chance of rain. It's shaping up to be a pleasant day in San Francisco!"),
        reasoning=("The user is asking about the w", "to get the most current information."),
        finish="stop", stop_reason="end_turn", usage=(22397, 637, 23034, 0),
        blocks=["thinking", "server_tool_use", "web_search_tool_result", "text", "server_tool_use",
                "web_search_tool_result"] + ["text"] * 11),
    "stream_text_structured_output.sse": dict(
        text="[12345,67890]", finish="stop", stop_reason="end_turn", usage=(135, 10, 145, 0), blocks=["text"]),
    "stream_thinking_signature.sse": dict(
        text=("Here are the basic steps for safely crossing the street:\n\n**At intersections with traffic lights:**",
              "Always prioritize safety over speed when crossing streets."),
        reasoning="This is a straightforward question about pedestrian safety. I should provide clear, helpful "
                  "advice about how to safely cross a street. This is basic safety information that could help "
                  "prevent accidents.",
        signature_head="EvMCCkYICxgCKkCHP2cSuEdcJK/0rFwqES/ecn+VurRpNTwI4XNyM0vnNfGsc9OmE8YY",
        finish="stop", stop_reason="end_turn", usage=(43, 282, 325, 0), blocks=["thinking", "text"]),
    "stream_tool_use_1.sse": dict(
        text="", calls=[("toolu_018acGYLtfR52q9yDbWaEdQZ", "get_weather",
                         {"location": "San Francisco, CA", "units": "f"})],
        finish="tool_calls", stop_reason="tool_use", usage=(656, 74, 730, 0), blocks=["tool_use"]),
    "stream_tool_use_1_turn2.sse": dict(
        text="The weather in San Francisco, CA is currently:\n- **Temperature:** 68\u00b0F\n- **Condition:** Sunny"
             "\n\nIt's a nice sunny day!",
        finish="stop", stop_reason="end_turn", usage=(770, 38, 808, 0), blocks=["text"]),
    "stream_tool_use_2.sse": dict(
        text="", calls=[("toolu_01TJoxvFknVdnV9XpWFPaRmY", "get_weather",
                         {"location": "San Francisco, CA", "units": "f"})],
        finish="tool_calls", stop_reason="tool_use", usage=(656, 74, 730, 0), blocks=["tool_use"]),
    "stream_tool_use_2_turn2.sse": dict(
        text="The weather in San Francisco, CA is currently **68\u00b0F and Sunny**. It's a nice day!",
        finish="stop", stop_reason="end_turn", usage=(770, 27, 797, 0), blocks=["text"]),
}

# Transcripts that end without message_stop: the error raised, and the text that arrived before it.
BROKEN = {
    "docs_error_event_overloaded.sse": (llmlib.OverloadedError, None),
    "issue_midstream_error_api_error_excerpt.sse": (llmlib.ServerError, "d with a replacement character ("),
}

# Literal run-length event sequences for a few transcripts: (kind, count).
EVENT_RUNS = {
    "sdkfixture_basic_text.sse": [(ContentDelta, 3), (Done, 1), (UsageReport, 1)],
    "sdkfixture_text_then_tool_use.sse": [(ContentDelta, 2), (ToolCallStart, 1), (ToolCallDelta, 4), (Done, 1),
                                          (UsageReport, 1)],
    "llm_stream_tool_use_single_input_json_delta.sse": [(ToolCallStart, 1), (ToolCallDelta, 1), (Done, 1),
                                                        (UsageReport, 1)],
    "llm_stream_thinking_signature.sse": [(ReasoningDelta, 5), (ContentDelta, 2), (Done, 1), (UsageReport, 1)],
    "stream_redacted_thinking.sse": [(ContentDelta, 15), (Done, 1), (UsageReport, 1)],
    "sdkfixture_refusal_stop_details.sse": [(Done, 1), (UsageReport, 1)],
}


def transcript(name: str) -> bytes:
    """The bytes of a recorded stream, its last event terminated.

    Six files (the five SDK fixtures and the issue excerpt) were stored without
    the blank line that ends their last event; on the wire Anthropic always sends
    it, and the SSE spec drops an unterminated last event (see
    :func:`test_unterminated_last_event_is_dropped`, which replays them as stored).
    """
    raw = wire("anthropic", name).read_bytes()
    return raw if raw.endswith(b"\n\n") else raw.rstrip(b"\n") + b"\n\n"


UNTERMINATED = sorted(n for n in STREAMS if not (WIRE / "anthropic" / n).read_bytes().endswith(b"\n\n"))


def test_every_transcript_has_an_expectation():
    assert set(STREAMS) == set(EXPECTED) | set(BROKEN)
    assert len(STREAMS) == 21  # 19 complete, 2 that end in an error
    assert len(UNTERMINATED) == 6


def payloads(raw: bytes):
    """``(event, payload)`` pairs of a transcript, by a naive reading (one data line per event)."""
    out = []
    for block in re.split(rb"\r?\n\r?\n", raw):
        name, data = "message", None
        for line in block.splitlines():
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = json.loads(line[5:])
        if data is not None:
            out.append((name, data))
    return out


def oracle(raw: bytes):
    """Text, reasoning, signature, client tool calls {block index: [id, name, json]} and kinds of events."""
    text, reasoning, signature, calls, kinds = "", "", "", {}, []
    for _, p in payloads(raw):
        if p["type"] == "content_block_start" and p["content_block"]["type"] == "tool_use":
            calls[p["index"]] = [p["content_block"]["id"], p["content_block"]["name"], ""]
            kinds.append(ToolCallStart)
        elif p["type"] == "content_block_delta":
            d = p["delta"]
            if d["type"] == "text_delta" and d["text"]:
                text += d["text"]
                kinds.append(ContentDelta)
            elif d["type"] == "thinking_delta" and d["thinking"]:
                reasoning += d["thinking"]
                kinds.append(ReasoningDelta)
            elif d["type"] == "signature_delta":
                signature += d["signature"]
            elif d["type"] == "input_json_delta" and p["index"] in calls and d["partial_json"]:
                calls[p["index"]][2] += d["partial_json"]
                kinds.append(ToolCallDelta)
        elif p["type"] == "content_block_stop" and p["index"] in calls and not calls[p["index"]][2]:
            calls[p["index"]][2] = "{}"  # a call with no input pieces: empty arguments object
            kinds.append(ToolCallDelta)
        elif p["type"] == "message_stop":
            kinds += [Done, UsageReport]
    return text, reasoning, signature, [calls[i] for i in sorted(calls)], kinds


def runs(kinds):
    out = []
    for k in kinds:
        if out and out[-1][0] is k:
            out[-1] = (k, out[-1][1] + 1)
        else:
            out.append((k, 1))
    return out


def read_headers(path):
    """(status, [(name, value)]) from a recorded ``.headers`` file; the framing
    headers are dropped (the loopback server writes its own)."""
    lines = path.read_text().splitlines()
    status = int(lines[0].split(":", 1)[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() not in ("content-length", "transfer-encoding", "connection"):
            headers.append((name.strip(), value.strip()))
    return status, headers


@pytest.fixture
def aclient(server):
    with make_client(server, "anthropic") as c:
        yield c


def serve_sse(server, pieces, headers=()):
    if headers:  # recorded headers, Content-Type included
        server.handler = lambda req, reply: reply.send(200, pieces, headers)
    else:
        server.handler = lambda req, reply: reply.sse(pieces)


def stream(client, server, pieces, headers=()):
    serve_sse(server, pieces, headers)
    return list(client.chat_completion_stream(model=MODEL, messages="hi"))


def check_text(got, want):
    if isinstance(want, tuple):
        assert got.startswith(want[0]) and got.endswith(want[1]), got
    else:
        assert got == want


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_replay_gives_the_recorded_answer(name, aclient, server):
    path = wire("anthropic", name)
    raw = transcript(name)
    headers = read_headers(path.with_name(name + ".headers"))[1] if path.with_name(name + ".headers").exists() else ()
    chunks = stream(aclient, server, raw, headers)
    assert server.requests[-1].path == fake_anthropic.CHAT_PATH
    want = EXPECTED[name]
    response = collect(chunks)
    text, reasoning, signature, calls, _ = oracle(raw)
    start = payloads(raw)[0][1]["message"]

    assert chunks[0].role == "assistant" and chunks[0].id == start["id"] and chunks[0].model == start["model"]
    assert response.id == start["id"] and response.model == start["model"]
    check_text(response.text, want["text"])
    assert response.text == text
    if "reasoning" in want:
        check_text(response.reasoning_content, want["reasoning"])
        assert response.reasoning_content == reasoning
    else:
        assert response.reasoning_content is None
    assert response.finish_reason == want["finish"]
    assert response.usage == llmlib.Usage(*want["usage"][:3], None, want["usage"][3])
    assert chunks[-1].usage == response.usage and chunks[-1].finish_reason == want["finish"]
    got_calls = [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls]
    assert got_calls == [tuple(c) for c in calls]
    if "raw_calls" in want:
        assert got_calls == want["raw_calls"]
    else:
        assert [(i, n, json.loads(a)) for i, n, a in got_calls] == want.get("calls", [])
    assert all(c.type == "function" for c in response.tool_calls)

    fields = response.message.provider_fields["anthropic"]
    assert [b["type"] for b in fields["content"]] == want["blocks"]
    assert fields["stop_reason"] == want["stop_reason"]
    assert chunks[-1].choices[0].delta.provider_fields["anthropic"] == fields
    thinking = [b for b in fields["content"] if b["type"] == "thinking"]
    if "signature_head" in want:
        assert thinking[0]["signature"] == signature and signature.startswith(want["signature_head"])
        assert thinking[0]["thinking"] == reasoning
    text_blocks = "".join(b["text"] for b in fields["content"] if b["type"] == "text")
    assert text_blocks == text
    for block, (call_id, name_, arguments) in zip([b for b in fields["content"] if b["type"] == "tool_use"], calls):
        assert (block["id"], block["name"]) == (call_id, name_)
        assert block["input"] == (json.loads(arguments) if "raw_calls" not in want else arguments)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_events_come_in_the_recorded_order(name, aclient, server):
    raw = transcript(name)
    serve_sse(server, raw)
    got = list(events(aclient.chat_completion_stream(model=MODEL, messages="hi")))
    kinds = [type(e) for e in got]
    assert kinds == oracle(raw)[4]
    if name in EVENT_RUNS:
        assert runs(kinds) == EVENT_RUNS[name]
    assert got[-2] == Done(EXPECTED[name]["finish"])
    starts = [e for e in got if isinstance(e, ToolCallStart)]
    assert [(e.index, e.id, e.name) for e in starts] == [
        (i, c[0], c[1]) for i, c in enumerate(EXPECTED[name].get("calls") or EXPECTED[name].get("raw_calls") or [])]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_split_gives_the_same_chunks(name, aclient, server):
    raw = transcript(name)
    whole = stream(aclient, server, raw)
    rng = random.Random(name)
    splits = [
        split_at(raw, rng.sample(range(1, len(raw)), min(len(raw) - 1, 40))),  # 40 random cuts
        split_at(raw, range(0, len(raw), 13)),  # a piece every 13 bytes
    ]
    for pieces in splits:
        assert stream(aclient, server, pieces) == whole


@pytest.mark.parametrize("name", ["llm_stream_thinking_signature.sse", "sdkfixture_text_then_tool_use.sse"])
def test_byte_by_byte(name, aclient, server):
    raw = transcript(name)
    whole = stream(aclient, server, raw)
    assert stream(aclient, server, [raw[i:i + 1] for i in range(len(raw))]) == whole


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_transcripts_raise_with_partial(name, aclient, server):
    raw = transcript(name)
    cls, text = BROKEN[name]
    serve_sse(server, raw)
    with pytest.raises(cls) as info:
        list(aclient.chat_completion_stream(model=MODEL, messages="hi"))
    err = info.value
    assert err.provider == "anthropic"
    if text is None:
        assert err.partial is None  # the error was the first event
    else:
        assert err.partial.text == text
    # Split anywhere, the same error and partial.
    serve_sse(server, split_at(raw, range(0, len(raw), 5)))
    with pytest.raises(cls) as again:
        list(aclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert (again.value.partial and again.value.partial.text) == (err.partial and err.partial.text)


@pytest.mark.parametrize("name", UNTERMINATED)
def test_unterminated_last_event_is_dropped(name, aclient, server):
    """As stored (no blank line after the last event), the last event is dropped,
    as the SSE spec says: the answer is incomplete, with what arrived in .partial."""
    raw = wire("anthropic", name).read_bytes()
    serve_sse(server, raw)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(aclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.partial.text == oracle(raw)[0]
    assert info.value.partial.finish_reason is None


def test_overloaded_error_event_is_retryable_and_typed(aclient, server):
    serve_sse(server, wire("anthropic", "docs_error_event_overloaded.sse").read_bytes())
    with pytest.raises(llmlib.OverloadedError) as info:
        list(aclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.status_code == 529 and info.value.is_retryable()
    assert "Overloaded" in str(info.value)


@pytest.mark.parametrize("name", ["llm_stream_thinking_signature.sse", "stream_tool_use_1.sse",
                                  "sdkfixture_truncated_tool_json_max_tokens.sse"])
def test_cut_before_message_stop_is_incomplete(name, aclient, server):
    raw = transcript(name)
    cut = raw[:raw.index(b"event: message_stop")]
    text, reasoning, _, _, _ = oracle(raw)
    serve_sse(server, cut)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(aclient.chat_completion_stream(model=MODEL, messages="hi"))
    partial = info.value.partial
    assert partial.text == text and partial.reasoning_content == (reasoning or None)
    assert partial.finish_reason is None  # the finish reason and usage come with message_stop


def test_events_after_message_stop_are_not_read(aclient, server):
    raw = transcript("sdkfixture_basic_text.sse")
    tail = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' \
           b'"delta":{"type":"text_delta","text":"EXTRA"}}\n\n'
    response = collect(stream(aclient, server, raw + tail))
    assert response.text == "Hello there!"


def test_cache_tokens_count_in_the_prompt(aclient, server):
    """prompt = input + cache creation + cache read; cached = cache read; message_delta wins."""
    body = fake_anthropic.stream_body(["ok"]).replace(
        b'"usage": {"input_tokens": 10, "output_tokens": 1}',
        b'"usage": {"input_tokens": 3, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, '
        b'"output_tokens": 1}').replace(
        b'"usage": {"output_tokens": 5}', b'"usage": {"output_tokens": 7, "cache_read_input_tokens": 2048}')
    response = collect(stream(aclient, server, body))
    assert response.usage == llmlib.Usage(3 + 100 + 2048, 7, 3 + 100 + 2048 + 7, None, 2048)


@pytest.mark.parametrize("name", NONSTREAM)
def test_nonstream_bodies_decode(name, aclient, server):
    path = wire("anthropic", name)
    raw = path.read_bytes()
    status, headers = read_headers(path.with_name(name + ".headers"))
    server.handler = lambda req, reply: reply.send(status, raw, headers, mode="length")
    response = aclient.chat_completion(model=MODEL, messages="hi")
    body = json.loads(raw)
    assert server.requests[-1].path == fake_anthropic.CHAT_PATH
    assert response.id == body["id"] and response.model == body["model"]
    fields = response.message.provider_fields["anthropic"]
    assert fields["content"] == body["content"]
    if name == "nonstream_message_text.json":
        assert response.text == '{"product_name": "Green Tea", "price": 5.50, "quantity": 2}'
        assert response.finish_reason == "stop" and response.tool_calls == ()
        assert response.usage == llmlib.Usage(249, 26, 275, None, 0)
    else:
        assert response.message.content is None and response.finish_reason == "tool_calls"
        [call] = response.tool_calls
        assert (call.id, call.function.name) == ("toolu_013DU6hV4C1M8dJ32ybQFAFi", "get_weather")
        assert json.loads(call.function.arguments) == {"location": "SF", "units": "c"}
        assert response.usage == llmlib.Usage(597, 71, 668, None, 0)


def test_streamed_and_nonstreamed_tool_calls_agree(aclient, server):
    body = json.loads(wire("anthropic", "nonstream_message_tool_use.json").read_bytes())
    server.handler = lambda req, reply: reply.json(body)
    whole = aclient.chat_completion(model=MODEL, messages="hi")
    streamed = collect(stream(aclient, server, fake_anthropic.tool_stream_body(
        "toolu_013DU6hV4C1M8dJ32ybQFAFi", "get_weather", '{"location": "SF", "units": "c"}')))
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in streamed.tool_calls] == [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in whole.tool_calls]


ERROR_CLASSES = {
    "anthropic_400_invalid_request_error.json": llmlib.BadRequestError,
    "anthropic_400_invalid_request_error_2.json": llmlib.BadRequestError,
    "anthropic_401_authentication_error_RECONSTRUCTED.json": llmlib.AuthenticationError,
    "anthropic_404_not_found_error.json": llmlib.NotFoundError,
    "anthropic_429_rate_limit_error.json": llmlib.RateLimitError,
    "anthropic_529_overloaded_error_from_issue_log.json": llmlib.OverloadedError,
    "anthropic_docs_error_shape_404.json": llmlib.NotFoundError,
}


def error_reply(name, extra=()):
    path = wire("errors", name)
    raw = path.read_bytes()
    headers_file = path.with_name(name + ".headers")
    if headers_file.exists():
        status, headers = read_headers(headers_file)
    else:
        # The status is in the name: anthropic_<status>_... (anthropic_docs_error_shape_<status>).
        status = int(re.search(r"_(\d{3})(_|\.)", name).group(1))
        headers = [("Content-Type", "application/json")]
    return status, raw, [*headers, *extra]


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", ERRORS)
def test_error_bodies_map_to_classes(name, streamed, aclient, server):
    assert set(ERRORS) == set(ERROR_CLASSES)
    status, raw, headers = error_reply(name)
    server.handler = lambda req, reply: reply.send(status, raw, headers, mode="length")
    call = (lambda: aclient.chat_completion_stream(model=MODEL, messages="hi")) if streamed else (
        lambda: aclient.chat_completion(model=MODEL, messages="hi"))
    with pytest.raises(ERROR_CLASSES[name]) as info:
        call()
    err = info.value
    body = json.loads(raw)
    assert err.status_code == status and err.provider == "anthropic"
    assert body["error"]["message"] in err.message
    assert err.request_id == body.get("request_id")
    assert len(server.requests) == 1  # max_retries=0 in tests


def test_rate_limit_headers(aclient, server):
    # As recorded: no Retry-After, and x-should-retry: true.
    status, raw, headers = error_reply("anthropic_429_rate_limit_error.json")
    server.handler = lambda req, reply: reply.send(status, raw, headers, mode="length")
    with pytest.raises(llmlib.RateLimitError) as info:
        aclient.chat_completion(model=MODEL, messages="hi")
    assert info.value.retry_after is None and info.value.is_retryable()
    # With the retry-after header Anthropic sends on most 429s.
    status, raw, headers = error_reply("anthropic_429_rate_limit_error.json", [("retry-after", "17")])
    server.handler = lambda req, reply: reply.send(status, raw, headers, mode="length")
    with pytest.raises(llmlib.RateLimitError) as info:
        aclient.chat_completion_stream(model=MODEL, messages="hi")
    assert info.value.retry_after == 17.0


def test_bad_request_is_not_retryable(aclient, server):
    status, raw, headers = error_reply("anthropic_400_invalid_request_error.json")
    server.handler = lambda req, reply: reply.send(status, raw, headers, mode="length")
    with pytest.raises(llmlib.BadRequestError) as info:
        aclient.chat_completion(model=MODEL, messages="hi")
    assert not info.value.is_retryable()
    assert "tool_use_id" in str(info.value)


def test_models_list_is_paginated(aclient, server):
    page1 = json.loads(wire("models", "anthropic_models_list_docs.json").read_bytes())
    page2 = {"data": [{"type": "model", "id": "claude-3-haiku-20240307", "display_name": "Claude Haiku 3",
                       "created_at": "2024-03-07T00:00:00Z"}],
             "has_more": False, "first_id": "claude-3-haiku-20240307", "last_id": "claude-3-haiku-20240307"}
    server.handler = lambda req, reply: reply.json(page2 if "after_id=" in req.path else page1)
    models = aclient.list_models()
    assert [m.id for m in models] == ["claude-sonnet-4-20250514", "claude-3-haiku-20240307"]
    assert [r.path for r in server.requests] == ["/v1/models?limit=1000",
                                                 "/v1/models?limit=1000&after_id=%3Cstring%3E"]
    first = models[0]
    assert first.provider == "anthropic" and str(first) == "claude-sonnet-4-20250514"
    assert first.created == 1739923200  # 2025-02-19T00:00:00Z
    assert first.raw["display_name"] == "Claude Sonnet 4" and first.raw["created_at"] == "2025-02-19T00:00:00Z"
    assert all(r.headers["x-api-key"] and r.headers["anthropic-version"] == "2023-06-01" for r in server.requests)


def test_fake_handler_answers_chat_and_models(aclient, server):
    server.handler = fake_anthropic.handler
    assert aclient.chat_completion(model=MODEL, messages="hi").text == fake_anthropic.TEXT
    assert collect(aclient.chat_completion_stream(model=MODEL, messages="hi")).text == fake_anthropic.TEXT
    assert [m.id for m in aclient.list_models()] == ["claude-fake-1", "claude-fake-0"]
    body = fake_anthropic.stream_body(["a", "b"], finish="length", usage=(4, 2))
    response = collect(stream(aclient, server, body))
    assert (response.text, response.finish_reason, response.usage.total_tokens) == ("ab", "length", 6)
    server.handler = lambda req, reply: reply.json(fake_anthropic.error_json(529, "Overloaded"), status=529)
    with pytest.raises(llmlib.OverloadedError):
        aclient.chat_completion(model=MODEL, messages="hi")


@pytest.mark.parametrize("name", ["stream_server_tool_web_search.sse", "stream_redacted_thinking.sse",
                                  "llm_stream_thinking_signature.sse", "sdkfixture_compaction_delta.sse"])
def test_collected_blocks_go_back_verbatim(name, aclient, server):
    """The next turn sends the assistant's blocks exactly as assembled from the stream:
    signatures, redacted thinking, server tool calls and results, unknown blocks."""
    raw = transcript(name)
    first = collect(stream(aclient, server, raw))
    blocks = first.message.provider_fields["anthropic"]["content"]
    server.handler = fake_anthropic.handler
    aclient.chat_completion(model=MODEL, messages=[llmlib.Message.user("hi"), first.message,
                                                  llmlib.Message.user("and?")])
    assert server.requests[-1].json()["messages"][1] == {"role": "assistant", "content": blocks}
    by_type = {}
    for b in blocks:
        by_type.setdefault(b["type"], []).append(b)
    if name == "stream_server_tool_web_search.sse":
        assert [b["input"] for b in by_type["server_tool_use"]] == [
            {"query": "San Francisco weather today"}, {"query": "San Francisco weather September 16 2025"}]
        assert [b["id"] for b in by_type["server_tool_use"]] == [
            "srvtoolu_01FYcUbzEaqqQh1WBRj1QX3h", "srvtoolu_01FDqc7ruGpVRoNuD5G6jkUx"]
        assert [b["tool_use_id"] for b in by_type["web_search_tool_result"]] == [
            "srvtoolu_01FYcUbzEaqqQh1WBRj1QX3h", "srvtoolu_01FDqc7ruGpVRoNuD5G6jkUx"]
        cited = [b for b in by_type["text"] if b.get("citations")]
        assert [len(b["citations"]) for b in cited] == [1, 2, 2, 1, 1]  # citations_delta events per block
        assert first.tool_calls == ()  # server tools are not client tool calls
    elif name == "stream_redacted_thinking.sse":
        assert [b["data"][:12] for b in by_type["redacted_thinking"]] == ["EqkECkYIBxgC", "EtgBCkYIBxgC"]
    elif name == "sdkfixture_compaction_delta.sse":
        assert by_type["compaction"] == [{"type": "compaction", "content": "Earlier conversation summarized.",
                                          "encrypted_content": "EpwBCioIDxgCEAEYASJALd_opaque_compaction_payload"}]
    else:
        [thinking] = by_type["thinking"]
        assert thinking["signature"].startswith("EuYDCmMIDBgCKkC05Zda4P") and thinking["thinking"].startswith(
            "The user wants two names")
