"""Every recorded Cohere v2 transcript, replayed byte for byte over loopback.

The streams in ../shared/wire/cohere are real ``/v2/chat`` payloads recorded
by vercel/ai, one per line (``*.chunks.jsonl``), and the same payloads with
the SSE framing reconstructed (``*_RECONSTRUCTED_FRAMING.sse``: ``event:
<type>`` / ``data: <payload>`` / a blank line each; see SOURCES.md). Every
reconstructed file ends with the blank line that terminates its last event
(checked by :func:`test_reconstructed_framing_is_the_payloads_framed`), and no
``data: [DONE]`` follows ``message-end``.

The expected values below were written by reading the transcripts, and are
cross-checked by :func:`oracle`, a deliberately naive reading of the payloads
written for these tests; neither is derived from llmlib's decoder.
"""

from __future__ import annotations

import json
import random
import re

import pytest

import llmlib
from llmlib import Message, collect
from llmlib.streaming import ContentDelta, Done, ReasoningDelta, ToolCallDelta, ToolCallStart, UsageReport, events
from tests import fake_cohere
from tests.conftest import TEST_KEY, WIRE, wire
from tests.loopback import split_at

STREAMS = sorted(p.name for p in (WIRE / "cohere").glob("*_RECONSTRUCTED_FRAMING.sse"))
PAYLOADS = sorted(p.name for p in (WIRE / "cohere").glob("*.chunks.jsonl"))
NONSTREAM = sorted(p.name for p in (WIRE / "cohere").glob("vercel_nonstream_*.json"))
MODEL = fake_cohere.MODEL  # no row in the model table: nothing is refused for the model

# name (without the suffix) -> what collect() must give. usage = (prompt, completion,
# total, cached); billed = billed_units; calls = [(id, name, parsed arguments)];
# runs = the events() kinds, run-length encoded.
EXPECTED = {
    "vercel_cohere-text": dict(
        id="321d178c-2c12-44d3-ae42-2f5510f6b1cc",
        text="The capital of France is Paris.", reasoning=None, calls=[],
        finish="stop", raw_finish="COMPLETE", usage=(507, 10, 517, 448),
        billed={"input_tokens": 12, "output_tokens": 7},
        runs=[(ContentDelta, 7), (Done, 1), (UsageReport, 1)]),
    "vercel_cohere-reasoning": dict(
        id="c9117d7f-a7e4-499f-b643-a2a1e139687b",
        text="The answer to 2 + 2 is 4.",
        reasoning="The user is asking for the sum of 2 and 2. Since this is a straightforward arithmetic problem, "
                  "I don't need to use any tools. I can calculate the answer directly.",
        thinking=True, calls=[], finish="stop", raw_finish="COMPLETE", usage=(1394, 54, 1448, 1360),
        billed={"input_tokens": 8, "output_tokens": 50},
        runs=[(ReasoningDelta, 36), (ContentDelta, 9), (Done, 1), (UsageReport, 1)]),
    "vercel_cohere-tool-call": dict(
        id="2941521a-b87a-45f6-9b0d-235fd66c3025",
        text="",
        reasoning="I will use the weather tool to find the weather in San Francisco and the cityAttractions tool "
                  "to find attractions in San Francisco.",
        tool_plan=True,
        calls=[("weather_e8p4pn45zt0t", "weather", {"location": "San Francisco"}),
               ("cityAttractions_pyxssbwnq9fq", "cityAttractions", {"city": "San Francisco"})],
        finish="tool_calls", raw_finish="TOOL_CALL", usage=(1549, 95, 1644, 1504),
        billed={"input_tokens": 119, "output_tokens": 44},
        runs=[(ReasoningDelta, 27), (ToolCallStart, 1), (ToolCallDelta, 7), (ToolCallStart, 1), (ToolCallDelta, 7),
              (Done, 1), (UsageReport, 1)]),
    "vercel_cohere-empty-tool-call": dict(
        id="66dec7d7-45e6-427c-8fd9-7d6375d12046",
        text="", reasoning="I will use the currentTime tool to find the current time.", tool_plan=True,
        # No argument piece arrives: the call's arguments are an empty object.
        calls=[("currentTime_y46ar19t5gvw", "currentTime", {})],
        finish="tool_calls", raw_finish="TOOL_CALL", usage=(1445, 43, 1488, 704),
        billed={"input_tokens": 46, "output_tokens": 14},
        runs=[(ReasoningDelta, 12), (ToolCallStart, 1), (ToolCallDelta, 1), (Done, 1), (UsageReport, 1)]),
}

SSE = "_RECONSTRUCTED_FRAMING.sse"
JSONL = ".chunks.jsonl"


def test_every_transcript_has_an_expectation():
    assert [n[:-len(SSE)] for n in STREAMS] == sorted(EXPECTED)
    assert [n[:-len(JSONL)] for n in PAYLOADS] == sorted(EXPECTED)
    assert len(NONSTREAM) == 2


def lines(name: str):
    """The payloads of ``<name>.chunks.jsonl``, one JSON text each (the file has
    no newline after its last line)."""
    return wire("cohere", name + JSONL).read_text().splitlines()


def reframe(payload_lines, event_names=True) -> bytes:
    """SSE framing for payload lines: ``event: <type>`` (optional), ``data:``, a blank line."""
    out = []
    for line in payload_lines:
        head = f"event: {json.loads(line)['type']}\n" if event_names else ""
        out.append(f"{head}data: {line}\n\n")
    return "".join(out).encode()


def oracle(name: str):
    """Text, reasoning, tool calls [[id, name, arguments]] and the events() kinds,
    by a naive reading of the payloads."""
    text, reasoning, calls, kinds = "", "", {}, []
    for line in lines(name):
        p = json.loads(line)
        if p["type"] == "content-delta":
            c = p["delta"]["message"]["content"]
            if c.get("thinking"):
                reasoning += c["thinking"]
                kinds.append(ReasoningDelta)
            if c.get("text"):
                text += c["text"]
                kinds.append(ContentDelta)
        elif p["type"] == "tool-plan-delta":
            reasoning += p["delta"]["message"]["tool_plan"]
            kinds.append(ReasoningDelta)
        elif p["type"] == "tool-call-start":
            call = p["delta"]["message"]["tool_calls"]
            calls[p["index"]] = [call["id"], call["function"]["name"], call["function"]["arguments"]]
            kinds.append(ToolCallStart)
        elif p["type"] == "tool-call-delta":
            calls[p["index"]][2] += p["delta"]["message"]["tool_calls"]["function"]["arguments"]
            kinds.append(ToolCallDelta)
        elif p["type"] == "tool-call-end" and not calls[p["index"]][2]:
            calls[p["index"]][2] = "{}"
            kinds.append(ToolCallDelta)
        elif p["type"] == "message-end":
            kinds += [Done, UsageReport]
    return text, reasoning, [calls[i] for i in sorted(calls)], kinds


def runs(kinds):
    out = []
    for k in kinds:
        if out and out[-1][0] is k:
            out[-1] = (k, out[-1][1] + 1)
        else:
            out.append((k, 1))
    return out


@pytest.fixture
def cclient(server):
    with fake_cohere.make_client(server) as c:
        yield c


def serve_sse(server, pieces):
    server.handler = lambda req, reply: reply.sse(pieces)


def stream(client, server, pieces):
    serve_sse(server, pieces)
    return list(client.chat_completion_stream(model=MODEL, messages="hi"))


def transcript(key: str) -> bytes:
    return wire("cohere", key + SSE).read_bytes()


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_reconstructed_framing_is_the_payloads_framed(key):
    raw = transcript(key)
    assert raw.endswith(b"}\n\n") and not raw.endswith(b"\n\n\n")  # the last event is terminated
    assert b"[DONE]" not in raw
    assert raw == reframe(lines(key))


@pytest.mark.parametrize("framing", ["sse", "jsonl_reframed"])
@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_replay_gives_the_recorded_answer(key, framing, cclient, server):
    raw = transcript(key) if framing == "sse" else reframe(lines(key))
    chunks = stream(cclient, server, raw)
    assert server.requests[-1].path == fake_cohere.CHAT_PATH
    want = EXPECTED[key]
    response = collect(chunks)
    text, reasoning, calls, _ = oracle(key)

    assert chunks[0].role == "assistant" and chunks[0].id == want["id"]
    assert response.id == want["id"] and response.model is None  # Cohere's events name no model
    assert response.text == want["text"] == text
    assert response.reasoning_content == want["reasoning"] == (reasoning or None)
    assert response.finish_reason == want["finish"]
    assert response.usage == llmlib.Usage(*want["usage"][:3], None, want["usage"][3])
    assert chunks[-1].usage == response.usage and chunks[-1].finish_reason == want["finish"]
    got = [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls]
    assert got == [tuple(c) for c in calls]
    assert [(i, n, json.loads(a)) for i, n, a in got] == want["calls"]
    assert all(c.type == "function" for c in response.tool_calls)
    if want["calls"]:
        assert response.message.content is None
    fields = response.message.provider_fields["cohere"]
    assert chunks[-1].choices[0].delta.provider_fields["cohere"] == fields
    assert fields["finish_reason"] == want["raw_finish"] and fields["billed_units"] == want["billed"]
    assert fields.get("tool_plan") == (want["reasoning"] if want.get("tool_plan") else None)
    assert fields.get("thinking") == (want["reasoning"] if want.get("thinking") else None)
    assert "citations" not in fields and "error" not in fields


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_events_come_in_the_recorded_order(key, cclient, server):
    serve_sse(server, transcript(key))
    got = list(events(cclient.chat_completion_stream(model=MODEL, messages="hi")))
    kinds = [type(e) for e in got]
    assert kinds == oracle(key)[3]
    assert runs(kinds) == EXPECTED[key]["runs"]
    assert got[-2] == Done(EXPECTED[key]["finish"])
    starts = [e for e in got if isinstance(e, ToolCallStart)]
    assert [(e.index, e.id, e.name) for e in starts] == [(i, c[0], c[1]) for i, c in enumerate(EXPECTED[key]["calls"])]


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_any_split_gives_the_same_chunks(key, cclient, server):
    raw = transcript(key)
    whole = stream(cclient, server, raw)
    rng = random.Random(key)
    splits = [
        split_at(raw, rng.sample(range(1, len(raw)), min(len(raw) - 1, 40))),  # 40 random cuts
        split_at(raw, range(0, len(raw), 13)),  # a piece every 13 bytes
    ]
    for pieces in splits:
        assert stream(cclient, server, pieces) == whole


def test_byte_by_byte(cclient, server):
    raw = transcript("vercel_cohere-tool-call")
    whole = stream(cclient, server, raw)
    assert stream(cclient, server, [raw[i:i + 1] for i in range(len(raw))]) == whole


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_the_payload_type_names_the_event(key, cclient, server):
    """The kind is the payload's ``type``: without ``event:`` lines, or with every
    event named ``message``, the answer is the same; a payload without ``type``
    falls back to its ``event:`` name."""
    whole = collect(stream(cclient, server, transcript(key)))
    no_names = reframe(lines(key), event_names=False)
    assert collect(stream(cclient, server, no_names)) == whole
    renamed = re.sub(rb"^event: .*$", b"event: message", transcript(key), flags=re.M)
    assert collect(stream(cclient, server, renamed)) == whole
    untyped = re.sub(rb'"type":"(message|content|tool|citation)-[a-z-]+",?', b"", transcript(key))
    assert b'"type":"message-end"' not in untyped
    assert collect(stream(cclient, server, untyped)) == whole


@pytest.mark.parametrize("key", ["vercel_cohere-reasoning", "vercel_cohere-tool-call"])
def test_cut_before_message_end_is_incomplete(key, cclient, server):
    raw = transcript(key)
    serve_sse(server, raw[:raw.index(b"event: message-end")])
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(cclient.chat_completion_stream(model=MODEL, messages="hi"))
    partial = info.value.partial
    text, reasoning, calls, _ = oracle(key)
    assert partial.text == text and partial.reasoning_content == reasoning
    assert [(c.id, c.function.name, c.function.arguments) for c in partial.tool_calls] == [tuple(c) for c in calls]
    assert partial.finish_reason is None and partial.usage is None  # both come with message-end
    assert info.value.provider == "cohere"


def test_unterminated_last_event_is_dropped(cclient, server):
    """Without the blank line after ``message-end`` (as the .chunks.jsonl has no
    newline after its last line), that event is dropped, as the SSE spec says:
    the answer is incomplete, with what arrived in .partial."""
    raw = transcript("vercel_cohere-text")[:-1]
    serve_sse(server, raw)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(cclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.partial.text == "The capital of France is Paris."
    assert info.value.partial.finish_reason is None


def test_nothing_after_message_end_is_read(cclient, server):
    tail = b'event: content-delta\ndata: {"type":"content-delta","index":0,' \
           b'"delta":{"message":{"content":{"text":" EXTRA"}}}}\n\n'
    response = collect(stream(cclient, server, transcript("vercel_cohere-text") + tail))
    assert response.text == "The capital of France is Paris."
    # A [DONE] line after message-end, as some gateways send, changes nothing.
    response = collect(stream(cclient, server, transcript("vercel_cohere-text") + b"data: [DONE]\n\n"))
    assert response.text == "The capital of France is Paris." and response.finish_reason == "stop"


def test_done_line_ends_the_stream(cclient, server):
    raw = transcript("vercel_cohere-text")
    cut = raw[:raw.index(b"event: message-end")] + b"data: [DONE]\n\n"
    response = collect(stream(cclient, server, cut))
    assert response.text == "The capital of France is Paris." and response.finish_reason is None


def _sse(payload):
    return f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()


def test_citations_are_kept(cclient, server):
    # The citation of https://docs.cohere.com/docs/streaming (citation-start sample event).
    citation = {"start": 14, "end": 29, "text": "gym memberships", "sources": [
        {"type": "document", "id": "doc:1", "document": {
            "id": "doc:1", "text": "Health and Wellness Benefits: We care about your well-being and offer gym "
                                   "memberships, on-site yoga classes, and comprehensive health insurance."}}]}
    body = fake_cohere.stream_body(["We offer gym", " memberships."]).replace(
        b"event: content-end", _sse({"type": "citation-start", "index": 0,
                                     "delta": {"message": {"citations": citation}}})
        + _sse({"type": "citation-end", "index": 0}) + b"event: content-end")
    response = collect(stream(cclient, server, body))
    assert response.text == "We offer gym memberships."
    assert response.message.provider_fields["cohere"]["citations"] == [citation]


def test_error_finish_is_kept(cclient, server):
    body = fake_cohere.stream_body(["Partly"]).replace(
        b'"delta": {"finish_reason": "COMPLETE"',
        b'"delta": {"error": "internal error, please retry", "finish_reason": "ERROR"')
    response = collect(stream(cclient, server, body))
    assert response.text == "Partly" and response.finish_reason == "ERROR"
    assert response.message.provider_fields["cohere"]["error"] == "internal error, please retry"
    body = fake_cohere.stream_body(["Bad"], finish="ERROR_TOXIC")
    assert collect(stream(cclient, server, body)).finish_reason == "content_filter"
    body = fake_cohere.stream_body(["Stop"], finish="STOP_SEQUENCE")
    assert collect(stream(cclient, server, body)).finish_reason == "stop"
    body = fake_cohere.stream_body(["Lo"], finish="MAX_TOKENS")
    assert collect(stream(cclient, server, body)).finish_reason == "length"


@pytest.mark.parametrize("event, cls, status", [
    (fake_cohere.error_event(429, "slow down"), llmlib.RateLimitError, 429),
    (fake_cohere.error_event(500, "internal"), llmlib.ServerError, 500),
    # Cohere's error body with no event name and no status: an error all the same.
    (b'data: {"id": "e1", "message": "slow down"}\n\n', llmlib.APIStatusError, None),
    (b'data: {"error": {"message": "slow down", "type": "rate_limit_error"}}\n\n', llmlib.RateLimitError, 429),
])
def test_an_error_in_the_stream_is_typed_with_partial(event, cls, status, cclient, server):
    body = fake_cohere.stream_body(["Hello", " world"])
    cut = body.index(b"event: content-delta", body.index(b"Hello"))
    serve_sse(server, body[:cut] + event)
    with pytest.raises(cls) as info:
        list(cclient.chat_completion_stream(model=MODEL, messages="hi"))
    err = info.value
    assert err.partial.text == "Hello" and err.provider == "cohere" and err.status_code == status
    assert "slow down" in str(err) or "internal" in str(err)


@pytest.mark.parametrize("name", NONSTREAM)
def test_nonstream_bodies_decode(name, cclient, server):
    raw = wire("cohere", name).read_bytes()
    body = json.loads(raw)
    server.handler = lambda req, reply: reply.send(200, raw, [("Content-Type", "application/json")], mode="length")
    response = cclient.chat_completion(model=MODEL, messages="hi")
    assert server.requests[-1].path == fake_cohere.CHAT_PATH
    assert response.id == body["id"] and response.model is None
    fields = response.message.provider_fields["cohere"]
    if name == "vercel_nonstream_text.json":
        assert response.text == "The capital of France is Paris."
        assert response.finish_reason == "stop" and response.tool_calls == () and response.reasoning_content is None
        assert response.usage == llmlib.Usage(507, 10, 517, None, 448)
        assert fields == {"finish_reason": "COMPLETE", "billed_units": {"input_tokens": 12, "output_tokens": 7}}
    else:
        assert response.message.content is None and response.finish_reason == "tool_calls"
        plan = ("I will use the weather tool to find out the weather in San Francisco. I will also use the "
                "cityAttractions tool to find out what attractions are in San Francisco.")
        assert response.reasoning_content == plan and fields["tool_plan"] == plan
        assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == [
            ("weather_dqgshstja6p9", "weather", {"location": "San Francisco"}),
            ("cityAttractions_dcxfx4myvx68", "cityAttractions", {"city": "San Francisco"})]
        assert response.usage == llmlib.Usage(1549, 103, 1652, None, 992)
        assert fields["billed_units"] == {"input_tokens": 119, "output_tokens": 52}


def test_streamed_and_nonstreamed_answers_agree(cclient, server):
    whole = json.loads(wire("cohere", "vercel_nonstream_text.json").read_bytes())
    server.handler = lambda req, reply: reply.json(whole)
    one = cclient.chat_completion(model=MODEL, messages="hi")
    two = collect(stream(cclient, server, transcript("vercel_cohere-text")))
    assert (one.text, one.finish_reason, one.usage) == (two.text, two.finish_reason, two.usage)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_recorded_error_body_maps_to_not_found(streamed, cclient, server):
    raw = wire("errors", "cohere_404_embed.json").read_bytes()
    server.handler = lambda req, reply: reply.send(404, raw, [("Content-Type", "application/json")], mode="length")
    call = cclient.chat_completion_stream if streamed else cclient.chat_completion
    with pytest.raises(llmlib.NotFoundError) as info:
        call(model="nonexistent", messages="hi")
    err = info.value
    assert err.status_code == 404 and err.provider == "cohere" and not err.is_retryable()
    assert "model 'nonexistent' not found" in err.message
    assert len(server.requests) == 1


def test_models_list_is_paginated(cclient, server):
    server.handler = fake_cohere.handler
    models = cclient.list_models()
    assert [m.id for m in models] == ["command-fake-1", "embed-fake-1", "command-fake-0"]
    assert [r.path for r in server.requests] == ["/v1/models?page_size=1000",
                                                 "/v1/models?page_size=1000&page_token=page-2"]
    assert all(r.headers["authorization"] == f"Bearer {TEST_KEY}" for r in server.requests)
    chat, embed, old = models
    assert (chat.provider, str(chat), chat.context_length) == ("cohere", "command-fake-1", 256000)
    assert (chat.supports_streaming, chat.supports_tools, chat.supports_vision) == (True, True, True)
    assert (embed.supports_streaming, embed.supports_tools, embed.supports_vision) == (False, None, None)
    assert old.context_length == 4096 and old.raw["is_deprecated"] is True
    assert cclient.model_info("command-fake-0").supports_streaming is True


def test_fake_handler_answers_chat_and_models(cclient, server):
    server.handler = fake_cohere.handler
    assert cclient.chat_completion(model=MODEL, messages="hi").text == fake_cohere.TEXT
    assert collect(cclient.chat_completion_stream(model=MODEL, messages="hi")).text == fake_cohere.TEXT
    body = fake_cohere.stream_body(["a", "b"], finish="length", usage=(4, 2), reasoning=["x", "y"])
    response = collect(stream(cclient, server, body))
    assert (response.text, response.reasoning_content, response.finish_reason, response.usage.total_tokens) == (
        "ab", "xy", "length", 6)
    call = collect(stream(cclient, server, fake_cohere.tool_stream_body("c1", "f", '{"a": 1}')))
    assert call.reasoning_content == "I will call the tool."
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in call.tool_calls] == [
        ("c1", "f", {"a": 1})]
    server.handler = lambda req, reply: reply.json(fake_cohere.error_json(429, "slow down"), status=429)
    with pytest.raises(llmlib.RateLimitError):
        cclient.chat_completion(model=MODEL, messages="hi")


def test_tool_turn_goes_back_with_its_plan(cclient, server):
    """The collected tool turn of a recorded stream is sent back as Cohere's
    docs do it: the assistant message with its tool_plan and tool_calls, then one
    tool message per call."""
    first = collect(stream(cclient, server, transcript("vercel_cohere-tool-call")))
    server.handler = fake_cohere.handler
    results = [Message.tool(c.id, json.dumps({"ok": c.function.name})) for c in first.tool_calls]
    cclient.chat_completion(model=MODEL, messages=[Message.user("Weather and sights in SF?"), first.message, *results])
    sent = server.requests[-1].json()["messages"]
    assert sent[1] == {"role": "assistant", "tool_plan": EXPECTED["vercel_cohere-tool-call"]["reasoning"],
                       "tool_calls": [
                           {"id": "weather_e8p4pn45zt0t", "type": "function",
                            "function": {"name": "weather", "arguments": '{"location": "San Francisco"}'}},
                           {"id": "cityAttractions_pyxssbwnq9fq", "type": "function",
                            "function": {"name": "cityAttractions", "arguments": '{"city": "San Francisco"}'}}]}
    assert sent[2:] == [{"role": "tool", "tool_call_id": "weather_e8p4pn45zt0t", "content": '{"ok": "weather"}'},
                        {"role": "tool", "tool_call_id": "cityAttractions_pyxssbwnq9fq",
                         "content": '{"ok": "cityAttractions"}'}]


def test_tool_calls_are_indexed_by_their_position(cclient, server):
    """A call's ``index`` is its position among the answer's calls, whatever
    index Cohere gave its event (here 1 and 3, after a text block at 0)."""
    start, rest = fake_cohere.stream_body(["Checking."], finish="tool_calls").split(b"event: message-end")
    calls = b"".join(
        _sse({"type": "tool-call-start", "index": i, "delta": {"message": {"tool_calls": {
            "id": f"call_{i}", "type": "function", "function": {"name": "f", "arguments": ""}}}}})
        + _sse({"type": "tool-call-delta", "index": i,
                "delta": {"message": {"tool_calls": {"function": {"arguments": '{"i": %d}' % i}}}}})
        + _sse({"type": "tool-call-end", "index": i}) for i in (1, 3))
    chunks = stream(cclient, server, start + calls + b"event: message-end" + rest)
    starts = [e for e in events(chunks) if isinstance(e, ToolCallStart)]
    assert [(e.index, e.id) for e in starts] == [(0, "call_1"), (1, "call_3")]
    response = collect(chunks)
    assert response.text == "Checking." and response.finish_reason == "tool_calls"
    assert [(c.id, json.loads(c.function.arguments)) for c in response.tool_calls] == [
        ("call_1", {"i": 1}), ("call_3", {"i": 3})]


ODD_EVENTS = {
    "a string": '"hello"',
    "delta a list": '{"type": "content-delta", "index": 0, "delta": ["x"]}',
    "content a string": '{"type": "content-delta", "index": 0, "delta": {"message": {"content": "x"}}}',
    "text a number": '{"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": 5}}}}',
    "thinking an object": '{"type": "content-delta", "delta": {"message": {"content": {"thinking": {"a": 1}}}}}',
    "tool_plan a list": '{"type": "tool-plan-delta", "delta": {"message": {"tool_plan": ["I"]}}}',
    "tool_calls a string": '{"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": "x"}}}',
    "arguments a number": '{"type": "tool-call-delta", "index": 0, '
                          '"delta": {"message": {"tool_calls": {"function": {"arguments": 1}}}}}',
    "message-end usage a list": '{"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": [1]}}',
    "finish_reason a number": '{"type": "message-end", "delta": {"finish_reason": 1}}',
    "10,000 nested arrays": "[" * 10000 + "]" * 10000,
}


@pytest.mark.parametrize("name", sorted(ODD_EVENTS))
def test_an_odd_event_is_a_decode_error_with_what_arrived(name, cclient, server):
    body = fake_cohere.stream_body(["Hello "])
    cut = body.index(b"event: content-end")
    serve_sse(server, body[:cut] + b"event: odd\ndata: " + ODD_EVENTS[name].encode() + b"\n\n" + body[cut:])
    with pytest.raises(llmlib.DecodeError) as info:
        collect(cclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.partial is not None and info.value.partial.text == "Hello "
    assert info.value.provider == "cohere"


@pytest.mark.parametrize("body", [
    {"id": "x", "message": [], "finish_reason": "COMPLETE"},
    {"id": "x", "message": {"content": "text"}, "finish_reason": "COMPLETE"},
    {"id": "x", "message": {"content": [{"type": "text", "text": 5}]}, "finish_reason": "COMPLETE"},
    {"id": "x", "message": {"tool_calls": ["call"]}, "finish_reason": "TOOL_CALL"},
])
def test_an_odd_body_is_a_decode_error(body, cclient, server):
    server.handler = lambda req, reply: reply.json(body)
    with pytest.raises(llmlib.DecodeError) as info:
        cclient.chat_completion(model=MODEL, messages="hi")
    assert info.value.provider == "cohere"
