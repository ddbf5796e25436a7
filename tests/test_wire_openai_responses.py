"""Every recorded OpenAI Responses transcript, replayed byte for byte at ``/v1/responses``.

The expected values below were written by reading the transcripts
(../shared/wire/openai_responses), not computed from them.
"""

from __future__ import annotations

import json
import random

import pytest

import llmlib
from llmlib import Usage
from llmlib.responses import (
    FunctionCallArgumentsDelta,
    FunctionCallStart,
    OutputTextDelta,
    RefusalDelta,
    ReasoningItem,
    ReasoningSummaryTextDelta,
    ResponseCompleted,
    ResponseCreated,
    ResponseEvent,
    ResponseIncompleteError,
    ResponsesResult,
    collect_responses,
)
from tests.conftest import WIRE, make_client, wire
from tests.loopback import split_at

DIR = "openai_responses"

SUMMARY_0 = (
    "**Providing street crossing instructions**\n\nThe user is asking how to cross the street, which seems to be "
    "a request for safety instructions. I think it’s important to interpret this as a request for guidance on "
    "safe behaviors like checking for traffic and using crosswalks. So, I'll explain how to cross safely. Since "
    "this is general advice on pedestrian safety, it definitely fits within providing helpful, non-harmful "
    "guidance for safely crossing the street."
)

EXPECTED = {
    "llm_stream_basic_with_headers.sse": dict(
        id="resp_00592e63e61b66660169fab1b9f8e481a2b321356198d7ac1b", model="gpt-5.5-2026-04-23",
        items=["message"], text="pong", deltas="pong", calls=[], usage=Usage(11, 5, 16, 0, 0)),
    "llm_stream_tool_use_turn1.sse": dict(
        id="resp_00d64fa806f333310169fab1be69d081a08f8285661855594c", model="gpt-5.5-2026-04-23",
        items=["function_call"], text="", deltas="",
        calls=[("fc_00d64fa806f333310169fab1bf324481a0852cda3180856290", "call_sVidsfFJ6zlzRpelrPkTPlpd",
                "multiply", '{"a":1231,"b":2331}')],
        usage=Usage(58, 23, 81, 0, 0)),
    "llm_stream_tool_use_turn2.sse": dict(
        id="resp_0dacb603de1c9e6b0169fab1c2314081a3b1df3cc5c09e0c60", model="gpt-5.5-2026-04-23",
        items=["message"], text="1231 × 2331 = **2,869,461**", deltas="1231 × 2331 = **2,869,461**", calls=[],
        usage=Usage(94, 18, 112, 0, 0)),
    # The docs example elides its deltas with a literal "..." line: the deltas say
    # "Hi", the completed response (which collect returns) the whole answer.
    "spec_example_streaming_text_ELIDED.sse": dict(
        id="resp_67c9fdcecf488190bdd9a0409de3a1ec07b8b0ad4e5eb654", model="gpt-5.4",
        items=["message"], text="Hi there! How can I assist you today?", deltas="Hi", calls=[],
        usage=Usage(37, 11, 48, 0, None)),
    "stream_function_call.sse": dict(
        id="resp_67e554a155508191900ee113293c4c830794405d35281ae2", model="gpt-4o-2024-08-06",
        items=["function_call"], text="", deltas="",
        calls=[("fc_67e554a1de488191af0831d35cbe082e0794405d35281ae2", "call_kL0PCQV7M2WMoVX8V8OtYSAL",
                "get_capital", '{"country":"France"}')],
        usage=Usage(255, 16, 271, 0, 0)),
    "stream_reasoning_encrypted_function_call_gpt5.sse": dict(
        id="resp_0050471a34b36ae60068c97b94a480819587a9d70cf2979b33", model="gpt-5-2025-08-07",
        items=["reasoning", "function_call"], text="", deltas="",
        calls=[("fc_0050471a34b36ae60068c97bf19d9c819590eaf42c0edc1042", "call_CWXgs68YprAjp6t0371hiPOI",
                "final_result", '{"result":6666}')],
        usage=Usage(53, 469, 522, 448, 0)),
    "stream_reasoning_summary_text.sse": dict(
        id="resp_68c42d0fb418819dbfa579f69406b49508fbf9b1584184ff", model="o3-mini-2025-01-31",
        items=["reasoning", "message"], calls=[], usage=Usage(13, 1680, 1693, 1408, 0),
        text_start="I'm not a road safety professional, but here are some generally accepted guidelines",
        text_end="familiarize yourself with the rules specific to your area. Stay safe!", text_len=1251,
        summary_titles=["**Providing street crossing instructions**", "**Explaining street crossing safety**",
                        "**Sharing street crossing safety tips**", "**Providing safe crossing advice**"],
        summary_lens=[460, 517, 540, 505]),
    "stream_text_after_tool_result.sse": dict(
        id="resp_67e554a21aa88191b65876ac5e5bbe0406c52f0e511c76ed", model="gpt-4o-2024-08-06",
        items=["message"], text="The capital of France is Paris.", deltas="The capital of France is Paris.",
        calls=[], usage=Usage(278, 9, 287, 0, 0)),
    "stream_text_logprobs.sse": dict(
        id="resp_0ecff685e411ca7b0069e063569c7c819bbc74c80d853802e6", model="gpt-4o-mini-2024-07-18",
        items=["message"], text="The capital of Minas Gerais is Belo Horizonte.",
        deltas="The capital of Minas Gerais is Belo Horizonte.", calls=[], usage=Usage(25, 10, 35, 0, 0)),
}
ERROR_STREAMS = ["vercel_stream_error_insufficient_quota_RECONSTRUCTED_FRAMING.sse"]
QUOTA = "You exceeded your current quota, please check your plan and billing details."


def transcript(name: str) -> bytes:
    """The bytes of a recorded stream, its last event terminated: the docs example
    was stored without the blank line that ends its last event, which the SSE
    spec then drops (see :func:`test_unterminated_last_event_is_dropped`)."""
    raw = wire(DIR, name).read_bytes()
    return raw if raw.endswith(b"\n\n") else raw.rstrip(b"\n") + b"\n\n"


def replay(client, server, body, **kwargs):
    server.handler = lambda req, reply: reply.sse(body)
    kwargs.setdefault("model", "gpt-4.1")
    kwargs.setdefault("input", "hi")
    return list(client.responses_stream(**kwargs))


def sse(*payloads) -> bytes:
    """An SSE body of JSON payloads, each named by its type (as OpenAI sends them)."""
    return b"".join(b"event: %s\ndata: %s\n\n" % (p["type"].encode(), json.dumps(p).encode()) for p in payloads)


def spec(name: str) -> dict:
    return json.loads(wire(DIR, "spec_examples", name + ".json").read_text())


def test_every_transcript_has_expectations():
    assert sorted(EXPECTED) + ERROR_STREAMS == sorted(p.name for p in (WIRE / DIR).glob("*.sse"))


def check(result: ResponsesResult, want: dict) -> None:
    assert (result.id, result.model, result.status) == (want["id"], want["model"], "completed")
    assert [item.type for item in result.output] == want["items"]
    if "text" in want:
        assert result.output_text == want["text"]
    else:
        assert result.output_text.startswith(want["text_start"]) and result.output_text.endswith(want["text_end"])
        assert len(result.output_text) == want["text_len"]
    assert [(c.id, c.call_id, c.name, c.arguments) for c in result.function_calls] == want["calls"]
    assert result.usage == want["usage"]
    assert result.fallback is False


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_replay_gives_the_recorded_answer(name, client, server):
    want = EXPECTED[name]
    events = replay(client, server, transcript(name))
    assert isinstance(events[0], ResponseCreated) and events[0].response.status == "in_progress"
    assert events[0].response.id == want["id"] and events[0].response.usage is None
    assert isinstance(events[-1], ResponseCompleted)
    result = collect_responses(events)
    check(result, want)
    assert result == events[-1].response
    if "deltas" in want:
        assert "".join(e.text for e in events if isinstance(e, OutputTextDelta)) == want["deltas"]
    starts = [(e.item_id, e.call_id, e.name) for e in events if isinstance(e, FunctionCallStart)]
    assert starts == [c[:3] for c in want["calls"]]
    for call_id, _, _, arguments in want["calls"]:
        assert "".join(e.delta for e in events
                       if isinstance(e, FunctionCallArgumentsDelta) and e.item_id == call_id) == arguments
    assert all(not isinstance(e, ResponseEvent) or e.type.startswith("response.") for e in events)


def test_reasoning_summary_streams_in_four_parts(client, server):
    want = EXPECTED["stream_reasoning_summary_text.sse"]
    events = replay(client, server, wire(DIR, "stream_reasoning_summary_text.sse").read_bytes())
    result = collect_responses(events)
    (reasoning,) = [i for i in result.output if isinstance(i, ReasoningItem)]
    assert reasoning.id == "rs_68c42d1d0878819d8266007cd3d1402c08fbf9b1584184ff"
    assert [s[:len(t)] for s, t in zip(reasoning.summary, want["summary_titles"])] == want["summary_titles"]
    assert [len(s) for s in reasoning.summary] == want["summary_lens"]
    assert reasoning.summary[0] == SUMMARY_0
    assert result.reasoning_summary == "\n\n".join(reasoning.summary)
    deltas = [e for e in events if isinstance(e, ReasoningSummaryTextDelta)]
    assert len(deltas) == 383 and {e.summary_index for e in deltas} == {0, 1, 2, 3}
    assert ["".join(e.text for e in deltas if e.summary_index == i) for i in range(4)] == list(reasoning.summary)
    assert reasoning.encrypted_content.startswith("gAAAAAB")


def test_encrypted_reasoning_item_is_kept_for_the_next_turn(client, server):
    events = replay(client, server, wire(DIR, "stream_reasoning_encrypted_function_call_gpt5.sse").read_bytes())
    result = collect_responses(events)
    reasoning = result.output[0]
    assert reasoning.id == "rs_0050471a34b36ae60068c97bac4dcc819595fd0f80d6b3c405"
    assert reasoning.summary == () and result.reasoning_summary is None
    assert reasoning.encrypted_content.startswith("gAAAAABoyXvynDJ_tG_Xp4Uzjn4eVm80")
    assert reasoning.to_input()["encrypted_content"] == reasoning.encrypted_content


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_split_gives_the_same_events(name, client, server):
    raw = transcript(name)
    whole = replay(client, server, raw)
    rng = random.Random(name)
    splits = [
        split_at(raw, rng.sample(range(1, len(raw)), min(len(raw) - 1, 40))),  # 40 random cuts
        split_at(raw, range(0, len(raw), 7)),  # a piece every 7 bytes
        [raw[i:i + 1] for i in range(min(len(raw), 3000))] + [raw[3000:]],  # byte by byte, at first
    ]
    for pieces in splits:
        assert replay(client, server, pieces) == whole


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cut_before_completed_is_incomplete_with_partial(name, client, server):
    want = EXPECTED[name]
    raw = transcript(name)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        replay(client, server, raw[:raw.index(b"event: response.completed")])
    partial = info.value.partial
    assert isinstance(partial, ResponsesResult)
    assert (partial.id, partial.model, partial.status, partial.usage) == (want["id"], want["model"],
                                                                          "in_progress", None)
    assert [item.type for item in partial.output] == want["items"]
    assert [(c.call_id, c.name, c.arguments) for c in partial.function_calls] == [c[1:] for c in want["calls"]]
    if "text" in want:
        assert partial.output_text == want["text"]


def test_unterminated_last_event_is_dropped(client, server):
    """As stored, the docs example's response.completed has no blank line after it:
    the SSE spec drops it, so the answer is incomplete, with what arrived in .partial."""
    raw = wire(DIR, "spec_example_streaming_text_ELIDED.sse").read_bytes()
    assert not raw.endswith(b"\n\n")
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        replay(client, server, raw)
    assert "response.completed" in str(info.value)
    partial = info.value.partial
    assert partial.status == "in_progress" and partial.usage is None
    assert partial.output_text == "Hi there! How can I assist you today?"  # from output_item.done


def test_cut_mid_text_keeps_the_text_so_far(client, server):
    raw = wire(DIR, "llm_stream_tool_use_turn2.sse").read_bytes()
    fifth = raw.index(b"event: response.output_text.delta")
    for _ in range(4):
        fifth = raw.index(b"event: response.output_text.delta", fifth + 1)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        replay(client, server, raw[:fifth])
    assert info.value.partial.output_text == "1231 × "  # "123", "1", " ×", " "
    assert info.value.partial.output[0].status == "in_progress"


def test_cut_mid_arguments_keeps_the_call_so_far(client, server):
    raw = wire(DIR, "llm_stream_tool_use_turn1.sse").read_bytes()
    fifth = raw.index(b"event: response.function_call_arguments.delta")
    for _ in range(4):
        fifth = raw.index(b"event: response.function_call_arguments.delta", fifth + 1)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        replay(client, server, raw[:fifth])
    (call,) = info.value.partial.function_calls
    assert (call.id, call.call_id, call.name, call.arguments, call.status) == (
        "fc_00d64fa806f333310169fab1bf324481a0852cda3180856290", "call_sVidsfFJ6zlzRpelrPkTPlpd", "multiply",
        '{"a":123', "in_progress")


def test_error_event_raises_the_typed_error_with_partial(client, server):
    raw = wire(DIR, "vercel_stream_error_insufficient_quota_RECONSTRUCTED_FRAMING.sse").read_bytes()
    stream = None
    with pytest.raises(llmlib.RateLimitError) as info:
        server.handler = lambda req, reply: reply.sse(raw)
        stream = client.responses_stream(model="gpt-5-nano", input="hi")
        seen = []
        for event in stream:
            seen.append(event)
    assert [type(e).__name__ for e in seen] == ["ResponseCreated", "ResponseEvent"]  # created, in_progress
    error = info.value
    assert QUOTA in str(error) and "insufficient_quota" in str(error)
    assert error.is_retryable() is False  # waiting does not refill a quota
    partial = error.partial
    assert (partial.id, partial.model, partial.status, partial.output) == (
        "resp_05500b38c2cd9bfc00691c7c9d222481a3b595421266dab424", "gpt-5-nano-2025-08-07", "in_progress", ())
    assert server.wait_closed()


def test_error_payloads_without_event_names_decode_the_same(client, server):
    """The payload's ``type`` alone drives decoding (the .jsonl kept no SSE ``event:`` lines)."""
    lines = wire(DIR, "vercel_stream_error_insufficient_quota.chunks.jsonl").read_bytes().splitlines()
    with pytest.raises(llmlib.RateLimitError) as info:
        replay(client, server, b"".join(b"data: " + line + b"\n\n" for line in lines if line.strip()))
    assert QUOTA in str(info.value)
    assert info.value.partial.id == "resp_05500b38c2cd9bfc00691c7c9d222481a3b595421266dab424"


def test_spec_error_event(client, server):
    with pytest.raises(llmlib.APIStatusError) as info:
        replay(client, server, sse(spec("response.created"), spec("error")))
    assert "Something went wrong" in str(info.value) and "ERR_SOMETHING" in str(info.value)
    assert info.value.partial.id == "resp_67ccfcdd16748190a91872c75d38539e09e4d4aac714747c"


def test_response_failed_raises_with_partial(client, server):
    body = sse(spec("response.created"), spec("response.output_item.added"), spec("response.output_text.delta"),
               spec("response.failed"))
    with pytest.raises(llmlib.ServerError) as info:  # code server_error
        replay(client, server, body)
    assert "The model failed to generate a response." in str(info.value)
    partial = info.value.partial
    assert (partial.id, partial.status, partial.output_text) == ("resp_123", "failed", "In")
    assert partial.error == {"code": "server_error", "message": "The model failed to generate a response."}


def test_response_incomplete_raises_with_partial(client, server):
    body = sse(spec("response.created"), spec("response.output_item.added"), spec("response.output_text.delta"),
               spec("response.incomplete"))
    with pytest.raises(ResponseIncompleteError) as info:
        replay(client, server, body)
    error = info.value
    assert isinstance(error, llmlib.StreamError) and error.reason == "max_tokens"
    assert error.is_retryable() is False
    assert (error.partial.status, error.partial.output_text) == ("incomplete", "In")
    assert error.partial.incomplete_details == {"reason": "max_tokens"}


def test_refusal_and_unknown_events(client, server):
    body = sse(spec("response.created"), spec("response.queued"), spec("response.output_item.added"),
               spec("response.refusal.delta"), spec("response.refusal.done"), spec("response.completed"))
    events = replay(client, server, body)
    assert [type(e).__name__ for e in events] == [
        "ResponseCreated", "ResponseEvent", "OutputItemAdded", "RefusalDelta", "ResponseEvent", "ResponseCompleted"]
    assert events[1].type == "response.queued" and events[1].data["response"]["id"] == "res_123"
    assert events[3] == RefusalDelta("refusal text so far", "msg_123", 0, 0)
    assert collect_responses(events).output_text.startswith("In a shimmering forest under a sky full of stars")


def test_invalid_json_as_published_is_a_decode_error(client, server):
    """The spec's function_call_arguments.delta example is invalid JSON (a missing comma)."""
    text = wire(DIR, "spec_examples", "response.function_call_arguments.delta.json").read_text()
    bad = b"".join(b"data: " + line.encode() + b"\n" for line in text.splitlines()) + b"\n"
    with pytest.raises(llmlib.DecodeError) as info:
        replay(client, server, sse(spec("response.created")) + bad)
    assert info.value.partial.id == "resp_67ccfcdd16748190a91872c75d38539e09e4d4aac714747c"


@pytest.mark.parametrize("call", ["stream", "whole"])
def test_http_400_model_not_found(call, client, server):
    body = wire("errors", "openai_400_responses_model_not_found.json").read_bytes()
    server.handler = lambda req, reply: reply.send(400, body, [("Content-Type", "application/json")],
                                                   mode="length")
    method = client.responses_stream if call == "stream" else client.responses
    with pytest.raises(llmlib.BadRequestError) as info:  # raised by the call itself, before any iteration
        method(model="gpt-5.2-proo", input="hi")
    assert info.value.status_code == 400
    assert "The requested model 'gpt-5.2-proo' does not exist." in str(info.value)
    assert "model_not_found" in str(info.value)


def test_deepseek_400_octet_stream_error(server):
    body = wire("errors", "deepseek_400_responses_octet_stream.txt").read_bytes()
    server.handler = lambda req, reply: reply.send(400, body, [("Content-Type", "application/octet-stream")],
                                                   mode="length")
    with make_client(server, "deepseek") as client:
        with pytest.raises(llmlib.BadRequestError) as info:
            client.responses_stream(model="deepseek-chat", input="hi", fallback=False)
    assert "No tool output found for tool call call-a." in str(info.value)
    assert server.requests[-1].path == "/v1/responses"


def _json_body(server, obj) -> None:
    raw = json.dumps(obj).encode()
    server.handler = lambda req, reply: reply.send(200, raw, [("Content-Type", "application/json")],
                                                   mode="length")


def test_nonstream_body_decodes(client, server):
    _json_body(server, json.loads(wire(DIR, "nonstream_output_text.json").read_bytes()))
    result = client.responses(model="gpt-4o-mini", input="What's the weather in San Francisco?")
    assert (result.id, result.model, result.status) == (
        "resp_689a0b2545288193953c892439b42e2800b2e36c65a1fd4b", "gpt-4o-mini-2024-07-18", "completed")
    assert result.output_text == (
        "I can't provide real-time updates, but you can easily check the current weather in San Francisco using a "
        "weather website or app. Typically, San Francisco has cool, foggy summers and mild winters, so it's good to "
        "be prepared for variable weather!")
    assert result.output[0].id == "msg_689a0b2637b08193ac478e568f49e3f900b2e36c65a1fd4b"
    assert result.usage == Usage(14, 50, 64, 0, 0)
    assert result.created_at == 1754925861 and result.fallback is False
    assert server.requests[-1].json() == {"model": "gpt-4o-mini", "input": "What's the weather in San Francisco?"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_streamed_and_nonstreamed_agree(name, client, server):
    """The response object of each transcript's response.completed, served whole, decodes the same."""
    raw = wire(DIR, name).read_text(encoding="utf-8")
    completed = next(json.loads(line[6:]) for line in raw.splitlines()
                     if line.startswith("data: ") and '"type":"response.completed"' in line)
    _json_body(server, completed["response"])
    check(client.responses(model="gpt-4.1", input="hi"), EXPECTED[name])


def test_nonstream_incomplete_and_failed(client, server):
    _json_body(server, spec("response.incomplete")["response"])
    with pytest.raises(ResponseIncompleteError) as info:
        client.responses(model="gpt-4o-mini", input="hi")
    assert info.value.reason == "max_tokens" and info.value.partial.status == "incomplete"
    _json_body(server, spec("response.failed")["response"])
    with pytest.raises(llmlib.ServerError) as failed:
        client.responses(model="gpt-4o-mini", input="hi")
    assert "The model failed to generate a response." in str(failed.value)
