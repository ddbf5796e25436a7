"""Every recorded transcript of the OpenAI-compatible providers (Groq, Mistral,
OpenRouter, DeepSeek, Zhipu), replayed byte for byte over loopback at
``/v1/chat/completions`` with a Client of that provider, whole and split at random.

The expected answers below were written by reading each transcript (see
../shared/wire/SOURCES.md for where each comes from), not computed by llmlib: the
text and reasoning (long ones by length, head and tail), the tool calls (name and
parsed arguments), the finish reason, usage, and the kinds of ``events()`` in order
(runs of one kind shown once). A ``.chunks.jsonl`` recording (payloads without their
SSE framing) is replayed as ``data: <line>`` events plus ``data: [DONE]`` unless a
``*_RECONSTRUCTED_FRAMING.sse`` twin already does that.
"""

from __future__ import annotations

import json
import random
from typing import List, NamedTuple, Optional, Tuple

import pytest

import llmlib
from llmlib import collect
from llmlib.streaming import events
from tests.conftest import WIRE, make_client, wire
from tests.loopback import split_at

PROVIDER = {"groq": "groq", "mistral": "mistral", "openrouter": "openrouter", "deepseek": "deepseek",
            "zhipu_zai": "zhipu"}


def transcripts() -> List[str]:
    found = []
    for folder in PROVIDER:
        directory = WIRE / folder
        found += [f"{folder}/{p.name}" for p in sorted(directory.glob("*.sse"))]
        for p in sorted(directory.glob("*.chunks.jsonl")):
            twin = p.name[:-len(".chunks.jsonl")] + "_RECONSTRUCTED_FRAMING.sse"
            if not (directory / twin).exists():
                found.append(f"{folder}/{p.name}")
    return found


def body_of(name: str) -> bytes:
    raw = wire(*name.split("/")).read_bytes()
    if name.endswith(".chunks.jsonl"):
        lines = [line for line in raw.splitlines() if line.strip()]
        raw = b"".join(b"data: " + line + b"\n\n" for line in lines) + b"data: [DONE]\n\n"
    return raw


class Long(NamedTuple):
    """A long text, by its length, first and last characters."""
    length: int
    head: str
    tail: str

    def check(self, got: Optional[str]) -> None:
        got = got or ""
        assert (len(got), got[:len(self.head)], got[len(got) - len(self.tail):]) == self


class Expect(NamedTuple):
    chunks: int  # chunks yielded (before the error, for an error transcript)
    text: object  # str or Long
    reasoning: object  # str, Long or None
    calls: List[Tuple[str, str, dict]]  # (id, name, parsed arguments)
    finish: Optional[str]
    usage: Optional[Tuple[int, int, int, Optional[int], Optional[int]]]  # prompt, completion, total, reasoning, cached
    kinds: List[str]  # events(): runs of one kind shown once
    first_fields: Optional[dict] = None  # provider_fields of the first chunk
    error: Optional[Tuple[type, int, str]] = None  # class, status, message start


R, C, S, D, U, F = "ReasoningDelta", "ContentDelta", "ToolCallStart", "ToolCallDelta", "UsageReport", "Done"

EXPECTED = {
    # ---------------------------------------------------------------- DeepSeek
    "deepseek/stream_reasoning_content.sse": Expect(
        211, "Hello there! \U0001f60a How can I help you today?",
        Long(882, 'Hmm, the user just said "Hello".', "they might not reply further - and that's okay too."),
        [], "stop", (6, 212, 218, 198, 0), [R, C, F, U]),
    "deepseek/vercel_reasoning_then_tool_call_RECONSTRUCTED_FRAMING.sse": Expect(
        52, "", Long(191, "The user is asking for the weather in San Francisco.",
                     'with the location parameter set to "San Francisco".'),
        [("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather", {"location": "San Francisco"})],
        "tool_calls", (339, 83, 422, 39, 320), [R, S, D, F, U]),
    # ---------------------------------------------------------------- Groq
    # deepseek-r1-distill: the reasoning is a <think> block in the content; usage only in x_groq.usage.
    "groq/stream_reasoning_x_groq_usage.sse": Expect(
        989, Long(2051, "To make Uruguayan alfajores, follow these organized steps",
                  "\n\nEnjoy your homemade Uruguayan alfajores!"),
        Long(1975, "Okay, so I want to make Uruguayan alfajores.",
             "if something doesn't turn out right, I can adjust next time."),
        [], "stop", (21, 988, 1009, None, None), [R, C, F, U],
        first_fields={"x_groq": {"id": "req_01k5csb2e4eskv0qcffjqbscqj"}}),
    "groq/stream_text_gpt_oss_x_groq_usage.sse": Expect(
        50, "The tool returned the expected result for the valid call.",
        Long(176, "The user wants to test error handling", "We have succeeded. Now respond concisely."),
        [], "stop", (339, 58, 397, 38, None), [R, C, F, U],
        first_fields={"x_groq": {"id": "req_01khrvt3cxe8dt0makxnbdgqz6", "seed": 1734142537}}),
    "groq/stream_tool_call_gpt_oss_x_groq_usage.sse": Expect(
        25, "", 'We need to call the function with correct parameter "name". Provide a name, e.g., "example".',
        [("fc_bfb39741-3748-4def-9886-a93fc9c64a90", "get_something_by_name", {"name": "example"})],
        "tool_calls", (304, 49, 353, 23, None), [R, S, D, F, U],
        first_fields={"x_groq": {"id": "req_01khrvt32ze9rb75za4xqmdz13", "seed": 1367355884}}),
    "groq/stream_tool_use_failed_midstream_error.sse": Expect(
        94, "", Long(412, "We need to call the tool with invalid parameters first",
                     'Then second call with name: "test". Let\'s do that.'),
        [], None, None, [R],
        first_fields={"x_groq": {"id": "req_01khrvt2r6e9rb7e8qsg86ywkw", "seed": 27718886}},
        error=(llmlib.BadRequestError, 400, "Tool call validation failed")),
    "groq/vercel_tool_call_RECONSTRUCTED_FRAMING.sse": Expect(
        3, "", None, [("tk85n1k4m", "weather", {})], "tool_calls", (210, 15, 225, None, None), [S, D, F, U],
        first_fields={"x_groq": {"id": "req_01kh52nj5yfcat8hrmvrk2j2hj", "seed": 689520654}}),
    # ---------------------------------------------------------------- Mistral
    "mistral/sk_text_stream_mistral_tiny.sse": Expect(
        124, Long(477, 'It is subjective to determine the "best" French cheese',
                  "who prefer a goat cheese: Chevre (goat cheese) or Crott"),
        None, [], "length", (15, 128, 143, None, None), [C, F, U]),
    "mistral/sk_tool_call_stream.sse": Expect(
        2, "", None, [("u2ef3Udel", "WeatherPlugin-GetWeather", {"location": "Paris", "unit": "celsius"})],
        "tool_calls", (118, 31, 149, None, None), [S, D, F, U]),
    # Magistral: thinking parts in content -> reasoning, text parts -> content.
    "mistral/stream_thinking_magistral.sse": Expect(
        158, Long(607, "To cross the street safely, follow these steps:\n\n1. Look both ways",
                  "By following these steps, you can ensure a safe crossing."),
        Long(421, "Okay, the user is asking how to cross the street.",
             "compile this information into a clear and concise response."),
        [], "stop", (10, 232, 242, None, None), [R, C, F, U]),
    "mistral/vercel_text_RECONSTRUCTED_FRAMING.sse": Expect(
        8, "Hello, world! This is a test response.", None, [], "stop", (13, 8, 21, None, None), [C, F, U]),
    "mistral/vercel_tool_call_single_chunk_RECONSTRUCTED_FRAMING.sse": Expect(
        2, "", None, [("gSIMJiOkT", "weather", {"location": "San Francisco"})], "tool_calls",
        (124, 22, 146, None, None), [S, D, F, U]),
    # ---------------------------------------------------------------- OpenRouter
    # arguments null and never sent again: the call still has parseable arguments.
    "openrouter/llm_SYNTHETIC_tool_args_null.sse": Expect(
        3, "", None, [("0", "llm_version", {})], "tool_calls", (57, 17, 74, 0, 0), [S, D, F, U],
        first_fields={"provider": "Meta"}),
    # Kimi K2: arguments "" then a second delta repeating id and name with "{}"; no finish_reason at all.
    "openrouter/llm_kimi_tool_args_empty_then_braces.sse": Expect(
        5, "", None, [("0", "llm_version", {})], None, (57, 17, 74, 0, 0), [S, D, U],
        first_fields={"provider": "Novita"}),
    # The body starts with " data:", a field sseclient (rightly) ignores: the first of its 5 events is lost.
    # Its first tool-call delta has no "arguments" key; the next one no name.
    "openrouter/llm_kimi_tool_no_arguments_key_leading_space.sse": Expect(
        4, "", None, [("llm_version:0", "llm_version", {})], "tool_calls", (56, 12, 68, 0, 0), [S, D, F, U],
        first_fields={"provider": "Novita"}),
    "openrouter/stream_processing_comments_midstream_error.sse": Expect(
        3, "", "We need to respond to a greeting. The user", [], "length", None, [R, F],
        first_fields={"provider": "Minimax"}, error=(llmlib.BadRequestError, 400, "Token limit reached")),
    "openrouter/stream_reasoning_google_provider.sse": Expect(
        14, "2 + 2 = 4", "This is a simple arithmetic question. 2+2 equals 4.", [], "stop", (43, 36, 79, 13, 0),
        [R, C, F, U], first_fields={"provider": "Google"}),
    "openrouter/stream_reasoning_openai_provider.sse": Expect(
        102, Long(446, "I\u2019m ChatGPT, a large-language-model assistant created by OpenAI.",
                  "something specific you\u2019d like help with, just let me know!"),
        None, [], "stop", (9, 104, 113, 0, 0), [C, F, U], first_fields={"provider": "OpenAI"}),
    "openrouter/stream_short_with_usage_cost.sse": Expect(
        3, "Hello!", None, [], "stop", (254, 5, 259, 0, 0), [C, F, U], first_fields={"provider": "Amazon Bedrock"}),
    "openrouter/stream_xai_provider.sse": Expect(
        73, Long(284, "I'm Grok, an AI built by xAI.",
                 "(and maybe crack a few jokes along the way). What's on your mind?"),
        None, [], "stop", (687, 187, 874, 118, 679), [C, F, U], first_fields={"provider": "xAI"}),
    # ---------------------------------------------------------------- Zhipu (Z.ai GLM)
    "zhipu_zai/stream_glm_reasoning_content.sse": Expect(
        93, "4", Long(2173, "\n1.  **Analyze the User's Request:**", '7.  **Draft the final response:** "4".'),
        [], "stop", (13, 564, 577, 561, 0), [R, C, F, U]),
}

#: OpenRouter usage costs, kept in Usage.raw.
COST = {
    "openrouter/llm_SYNTHETIC_tool_args_null.sse": 0.00007159,
    "openrouter/llm_kimi_tool_args_empty_then_braces.sse": 0.00007159,
    "openrouter/llm_kimi_tool_no_arguments_key_leading_space.sse": 0.00005952,
    "openrouter/stream_reasoning_google_provider.sse": 0.000669,
    "openrouter/stream_reasoning_openai_provider.sse": 0.00085,
    "openrouter/stream_short_with_usage_cost.sse": 0.000837,
    "openrouter/stream_xai_provider.sse": 0.00333825,
}

#: OpenRouter reasoning_details as the collected message keeps them (pieces of one detail merged).
DETAILS = {
    "openrouter/stream_processing_comments_midstream_error.sse": [
        {"type": "reasoning.text", "text": "We need to respond to a greeting. The user", "index": 0, "format": None}],
    "openrouter/stream_reasoning_google_provider.sse": [
        {"type": "reasoning.text", "text": "This is a simple arithmetic question. 2+2 equals 4.",
         "signature": Long(304, "Et0BCkgIChACGAIqQA2s", "X0Rq1AXjvIcYAQ=="), "format": "anthropic-claude-v1",
         "index": 0}],
    "openrouter/stream_reasoning_openai_provider.sse": [
        {"type": "reasoning.encrypted", "data": Long(1164, "gAAAAABpCCSIBxdevbk-", "sutrbS0KIv6S4ySa"),
         "id": "rs_0aa4f2c435e6d1dc0169082486816c8193a029b5fc4ef1764f", "format": "openai-responses-v1", "index": 0}],
    "openrouter/stream_xai_provider.sse": [
        {"type": "reasoning.encrypted", "data": Long(799, "B7oH6rUO9kQMWKmZOE/v", "9bGZgNW63Tbqiw38"),
         "id": "rs_619f3702-e30e-6ba5-7b57-466db8036365_us-east-1", "format": "xai-responses-v1", "index": 0}],
}

TRANSCRIPTS = transcripts()


def test_every_transcript_has_an_expected_answer():
    assert sorted(TRANSCRIPTS) == sorted(EXPECTED)


def run(server, name: str, pieces):
    """Stream ``pieces`` as the answer; (chunks, error or None, request)."""
    server.handler = lambda req, reply: reply.sse(pieces)
    folder = name.split("/")[0]
    model = "moonshotai/kimi-k2" if folder == "openrouter" else "some-model"
    chunks, error = [], None
    with make_client(server, PROVIDER[folder]) as client:
        try:
            for chunk in client.chat_completion_stream(model=model, messages="hi"):
                chunks.append(chunk)
        except llmlib.LLMError as exc:
            error = exc
    return chunks, error, server.requests[-1]


def kinds(chunks) -> List[str]:
    out: List[str] = []
    for event in events(chunks):
        kind = type(event).__name__
        if not out or out[-1] != kind:
            out.append(kind)
    return out


def check_text(want, got) -> None:
    if isinstance(want, Long):
        want.check(got)
    else:
        assert (got or None) == (want or None)


def check_answer(name: str, chunks, error) -> None:
    want = EXPECTED[name]
    assert len(chunks) == want.chunks
    if want.error is None:
        assert error is None, error
        response = collect(chunks)
    else:
        cls, status, message = want.error
        assert type(error) is cls and error.status_code == status and str(error).startswith(message)
        response = error.partial
        assert response == collect(chunks)  # .partial: everything that arrived before the error
    message = response.choices[0].message
    check_text(want.text, message.text)
    check_text(want.reasoning, message.reasoning_content)
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == want.calls
    assert response.finish_reason == want.finish
    if want.usage is None:
        assert response.usage is None
    else:
        u = response.usage
        assert (u.prompt_tokens, u.completion_tokens, u.total_tokens, u.reasoning_tokens, u.cached_tokens) == want.usage
        assert chunks[-1].usage == u  # on the last chunk
    assert kinds(chunks) == want.kinds
    assert chunks[0].provider_fields == want.first_fields


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_replay_gives_the_recorded_answer(name, server):
    chunks, error, request = run(server, name, body_of(name))
    check_answer(name, chunks, error)
    assert request.path == "/v1/chat/completions"
    if name.startswith("openrouter/"):
        assert request.json()["model"] == "moonshotai/kimi-k2"  # provider/model names pass through


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_any_split_gives_the_same_chunks(name, server):
    raw = body_of(name)
    whole, error, _ = run(server, name, raw)
    rng = random.Random(name)
    step = 7 if len(raw) < 40_000 else 211
    for cuts in (rng.sample(range(1, len(raw)), min(len(raw) - 1, 40)), range(0, len(raw), step)):
        chunks, split_error, _ = run(server, name, split_at(raw, cuts))
        assert chunks == whole
        assert repr(split_error) == repr(error)
        check_answer(name, chunks, split_error)


@pytest.mark.parametrize("name", sorted(COST))
def test_openrouter_cost_is_kept_in_usage_raw(name, server):
    chunks, _, _ = run(server, name, body_of(name))
    usage = collect(chunks).usage
    assert usage.raw["cost"] == COST[name]
    assert usage.raw["is_byok"] is False and "upstream_inference_cost" in usage.raw["cost_details"]


def test_groq_timings_are_kept_in_usage_raw(server):
    chunks, _, _ = run(server, "groq/stream_text_gpt_oss_x_groq_usage.sse",
                       body_of("groq/stream_text_gpt_oss_x_groq_usage.sse"))
    assert chunks[-1].usage.raw["queue_time"] == 0.005626991
    assert chunks[-1].usage.raw["total_time"] == 0.142982269


def _check_details(want, got) -> None:
    assert len(got) == len(want)
    for w, g in zip(want, got):
        assert list(g) == list(w)  # the keys, in the order sent
        for key, value in w.items():
            if isinstance(value, Long):
                value.check(g[key])
            else:
                assert g[key] == value


@pytest.mark.parametrize("name", sorted(DETAILS))
def test_openrouter_reasoning_details_are_kept(name, server):
    chunks, error, _ = run(server, name, body_of(name))
    response = error.partial if error is not None else collect(chunks)
    _check_details(DETAILS[name], response.message.provider_fields["openrouter"]["reasoning_details"])


def test_each_chunk_keeps_the_reasoning_details_it_brought(server):
    name = "openrouter/stream_reasoning_google_provider.sse"
    chunks, _, _ = run(server, name, body_of(name))
    brought = [c.choices[0].delta.provider_fields for c in chunks[:6]]
    assert brought[0] is None  # "reasoning_details": [] brings nothing
    assert brought[1:6] == [{"openrouter": {"reasoning_details": [d]}} for d in (
        {"type": "reasoning.text", "text": "", "signature": "", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.text", "text": "This", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.text", "text": " is a simple arithmetic question. ", "format": "anthropic-claude-v1",
         "index": 0},
        {"type": "reasoning.text", "text": "2+2 equals 4.", "format": "anthropic-claude-v1", "index": 0},
        {"type": "reasoning.text", "text": "", "format": "anthropic-claude-v1", "index": 0},
    )]
    finishing = [c for c in chunks if c.finish_reason == "stop"]
    assert len(finishing) == 1
    _check_details(DETAILS[name], finishing[0].choices[0].delta.provider_fields["openrouter"]["reasoning_details"])


def test_groq_failed_generation_is_reachable_on_the_error(server):
    name = "groq/stream_tool_use_failed_midstream_error.sse"
    _, error, _ = run(server, name, body_of(name))
    assert error.body["error"]["code"] == "tool_use_failed"
    assert error.body["error"]["failed_generation"] == (
        '{"name": "get_something_by_name", "arguments": {\n  "invalid_param": "value"\n}}')
    assert "tool_use_failed" in str(error) and not error.is_retryable()


def test_openrouter_midstream_error_keeps_the_answer_so_far(server):
    name = "openrouter/stream_processing_comments_midstream_error.sse"
    chunks, error, _ = run(server, name, body_of(name))
    assert error.body["error"] == {"code": 400, "message": "Token limit reached"}
    assert error.partial.reasoning_content == "We need to respond to a greeting. The user"
    assert error.partial.id == "gen-1762179802-UN8pkJI4AGZvryk0kFnb"
    assert all(c.provider_fields == {"provider": "Minimax"} for c in chunks)


@pytest.mark.parametrize("name", [n for n in TRANSCRIPTS if n.endswith(".sse") and "RECONSTRUCTED" in n])
def test_reconstructed_framing_matches_its_recorded_payloads(name, server):
    """The .chunks.jsonl recording, reframed here, gives what its RECONSTRUCTED twin gives."""
    jsonl = name.replace("_RECONSTRUCTED_FRAMING.sse", ".chunks.jsonl")
    twin, _, _ = run(server, name, body_of(name))
    framed, _, _ = run(server, name, body_of(jsonl))
    assert framed == twin
