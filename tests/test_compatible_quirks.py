"""The quirks of OpenAI-compatible servers that no recorded transcript covers on its
own, each streamed over loopback (and the think-tag splitter also fed directly at
every split point): ``<think>`` blocks in the answer text, top-level keys llmlib
does not know, OpenRouter's attribution headers, repeated tool-call names, calls
without ``index`` or without arguments, ``"error": null``, usage only in
``x_groq``. The payloads here are SYNTHETIC, shaped after each provider's docs."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import pytest

import llmlib
from llmlib import collect
from llmlib.providers import SPECS
from llmlib.providers.openai import StreamDecoder
from llmlib.streaming import events
from tests.conftest import make_client
from tests.loopback import split_at

ID = "chatcmpl-quirk"


def chunk(delta=None, finish=None, index=0, **top):
    """One ``chat.completion.chunk`` payload (``delta`` None: no choices)."""
    obj = {"id": ID, "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}
    obj["choices"] = [] if delta is None else [{"index": index, "delta": delta, "finish_reason": finish}]
    obj.update(top)
    return obj


def sse(*objs) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs) + b"data: [DONE]\n\n"


def stream(server, provider, body, **options):
    server.handler = lambda req, reply: reply.sse(body)
    with make_client(server, provider, **options) as client:
        return list(client.chat_completion_stream(model="m", messages="hi"))


def kinds(chunks):
    return [type(e).__name__ for e in events(chunks)]


# ---------------------------------------------------------------- <think> tags


ANSWER = "<think>\nI should greet them.\n</think>\n\nHello there!"


def text_chunks(pieces, finish="stop"):
    objs = [chunk({"role": "assistant", "content": ""})]
    objs += [chunk({"content": p}) for p in pieces]
    objs.append(chunk({}, finish))
    return objs


def decode_all(objs, think_tags=True):
    decoder = StreamDecoder("llamacpp", think_tags=think_tags)
    out = [decoder.decode(SimpleNamespace(event="message", data=json.dumps(o))) for o in objs]
    return [c for c in out if c is not None]


def test_think_block_is_reasoning_at_every_split_point():
    """Every way of cutting the answer in two or three pieces gives the same split."""
    n = len(ANSWER)
    for points in itertools.chain(([i] for i in range(1, n)), itertools.combinations(range(1, n), 2)):
        pieces = [ANSWER[a:b] for a, b in zip((0, *points), (*points, n))]
        chunks = decode_all(text_chunks(pieces))
        response = collect(chunks)
        assert (response.reasoning_content, response.text) == ("I should greet them.", "Hello there!"), pieces
        for c in chunks:  # no piece of a tag ever shows as text or reasoning
            for text in (c.text or "", c.reasoning_content or ""):
                assert "<" not in text and ">" not in text, pieces


def test_think_block_streams_over_loopback_split_anywhere(server):
    """Over HTTP, with the llamacpp row (think_tags on): one chunk per piece, cut at every point."""
    for i in range(1, len(ANSWER)):
        body = sse(*text_chunks([ANSWER[:i], ANSWER[i:]]))
        chunks = stream(server, "llamacpp", split_at(body, [i * 3]))
        response = collect(chunks)
        assert (response.reasoning_content, response.text) == ("I should greet them.", "Hello there!")
        assert [k for k, _ in itertools.groupby(kinds(chunks))] == ["ReasoningDelta", "ContentDelta", "Done"]


def test_each_piece_arrives_as_soon_as_it_is_known():
    """Reasoning streams while the block is open; only a possible tag is held back."""
    pieces = ["<thi", "nk>", "Let me", " think", " <", "/thi", "nk>", "Hi", "!"]
    chunks = decode_all(text_chunks(pieces))[1:-1]
    assert [(c.reasoning_content, c.text) for c in chunks] == [
        (None, None), (None, None), ("Let me", None), (" think", None), (None, None), (None, None),
        (None, None), (None, "Hi"), (None, "!")]


@pytest.mark.parametrize("provider", ["lmstudio", "vllm", "llamacpp", "local", "groq", "together", "fireworks",
                                      "perplexity"])
def test_rows_with_think_tags(provider):
    assert SPECS[provider].think_tags


@pytest.mark.parametrize("provider", ["openai", "deepseek", "openrouter", "mistral", "zhipu", "qwen", "moonshot",
                                      "xai", "hunyuan", "edgee"])
def test_think_tags_off_keeps_the_text_as_sent(provider, server):
    """Providers that send reasoning in its own field keep a literal <think> as text."""
    assert not SPECS[provider].think_tags
    body = sse(*text_chunks(["<think>", "x</think>", "y"]))
    response = collect(stream(server, provider, body))
    assert (response.text, response.reasoning_content) == ("<think>x</think>y", None)


@pytest.mark.parametrize("pieces, text, reasoning", [
    (["Hello <think>x</think>"], "Hello <think>x</think>", None),  # not at the start: text
    (["<", "b>bold</b>"], "<b>bold</b>", None),  # starts like the tag, is not
    (["  \n", "Hi"], "  \nHi", None),  # leading whitespace of a plain answer kept
    (["\n<think>", "a</think>b"], "b", "a"),  # whitespace before the tag
    (["<think>", "unfinished </thi"], "", "unfinished </thi"),  # never closed: reasoning, released at the end
    (["<thi"], "<thi", None),  # the answer ends while it still looked like a tag
    (["<think></think>", "Answer"], "Answer", None),  # an empty block
    (["<think>a</think>", "<think>b</think>"], "<think>b</think>", "a"),  # only the first block
])
def test_think_edge_cases(pieces, text, reasoning, server):
    response = collect(stream(server, "vllm", sse(*text_chunks(pieces))))
    assert (response.text, response.reasoning_content) == (text, reasoning)


def test_server_reasoning_and_think_text_are_joined(server):
    body = sse(chunk({"reasoning_content": "From the server. "}), *text_chunks(["<think>From the text.</think>Hi"]))
    response = collect(stream(server, "vllm", body))
    assert (response.reasoning_content, response.text) == ("From the server. From the text.", "Hi")


def test_think_splitting_stops_once_the_answer_has_started():
    """After the answer's start is decided, the decoder does nothing more per chunk."""
    decoder = StreamDecoder("vllm", think_tags=True)
    decode = lambda o: decoder.decode(SimpleNamespace(event="message", data=json.dumps(o)))  # noqa: E731
    decode(chunk({"role": "assistant", "content": ""}))
    assert decoder._think is not None
    decode(chunk({"content": "Plain answer"}))
    assert decoder._think is None
    decoder = StreamDecoder("vllm", think_tags=True)
    decoder.decode(SimpleNamespace(event="message", data=json.dumps(chunk({"content": "<think>a</think>b"}))))
    assert decoder._think is None


def test_think_tags_in_each_of_several_choices(server):
    body = sse(chunk({"content": "<think>one"}, index=0), chunk({"content": "plain"}, index=1),
               chunk({"content": "</think>A"}, "stop", index=0), chunk({}, "stop", index=1))
    server.handler = lambda req, reply: reply.sse(body)
    with make_client(server, "llamacpp") as client:
        response = collect(client.chat_completion_stream(model="m", messages="hi", n=2))
    assert [(c.message.reasoning_content, c.message.text) for c in response.choices] == [("one", "A"),
                                                                                         (None, "plain")]


def test_think_tags_in_a_whole_answer(server):
    body = {"id": ID, "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "<think>\nHmm.\n</think>\n\nYes."},
         "finish_reason": "stop"}]}
    server.handler = lambda req, reply: reply.json(body)
    with make_client(server, "llamacpp") as client:
        response = client.chat_completion(model="m", messages="hi")
    assert (response.reasoning_content, response.text) == ("Hmm.", "Yes.")
    with make_client(server, "openai") as client:
        assert client.chat_completion(model="m", messages="hi").text == "<think>\nHmm.\n</think>\n\nYes."


# ---------------------------------------------------------------- unknown top-level keys


@pytest.mark.parametrize("provider, extra", [
    ("perplexity", {"citations": ["https://example.com/a", "https://example.com/b"],
                    "search_results": [{"title": "A", "url": "https://example.com/a", "date": "2025-01-01"}]}),
    ("xai", {"citations": ["https://x.ai/news"]}),
    ("llamacpp", {"timings": {"prompt_n": 5, "predicted_n": 2, "predicted_per_second": 41.5}}),
    ("hunyuan", {"note": "以上内容为AI生成", "search_info": {"search_results": []}}),
    ("qwen", {"request_id": "5c1f3c3e-0000"}),
    ("together", {"prompt": []}),
    ("fireworks", {"perf_metrics": {"server-time-to-first-token": "0.1"}}),
    ("edgee", {"provider": "openai", "cost": {"total": 0.0001}}),
    ("openai", {"service_tier": "default", "obfuscation": "Xy1"}),
])
def test_unknown_top_level_keys_are_kept(provider, extra, server):
    body = sse(chunk({"role": "assistant", "content": "Hi"}, **extra), chunk({}, "stop", **extra),
               chunk(None, usage={"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}))
    chunks = stream(server, provider, body)
    assert [c.provider_fields for c in chunks] == [extra, extra, None]
    assert collect(chunks).text == "Hi"


def test_known_keys_alone_give_no_provider_fields(server):
    body = sse(chunk({"content": "Hi"}, system_fingerprint="fp", usage=None, error=None), chunk({}, "stop"))
    assert [c.provider_fields for c in stream(server, "deepseek", body)] == [None, None]


def test_error_null_is_not_an_error(server):
    body = sse(chunk({"role": "assistant", "content": "Fine"}, error=None), chunk({}, "stop", error=None))
    chunks = stream(server, "openrouter", body)
    assert collect(chunks).text == "Fine" and collect(chunks).finish_reason == "stop"


@pytest.mark.parametrize("error", [{"code": 502, "message": "Upstream error"}, "upstream went away"])
def test_an_error_in_an_ordinary_chunk_raises_with_partial(error, server):
    body = sse(chunk({"role": "assistant", "content": "Par"}), chunk({"content": "tial"}),
               chunk({"content": ""}, error=error, provider="X"))
    server.handler = lambda req, reply: reply.sse(body)
    with make_client(server, "openrouter") as client:
        with pytest.raises(llmlib.APIStatusError) as caught:
            list(client.chat_completion_stream(model="m", messages="hi"))
    assert caught.value.partial.text == "Partial"
    assert caught.value.provider == "openrouter"


# ---------------------------------------------------------------- OpenRouter


def test_openrouter_attribution_headers_and_model_names(server):
    body = sse(chunk({"content": "Hi"}, provider="Novita"), chunk({}, "stop"))
    server.handler = lambda req, reply: reply.sse(body)
    options = llmlib.ConnectionOptions(max_retries=0, headers={"HTTP-Referer": "https://myapp.example",
                                                               "X-Title": "My App"})
    with llmlib.Client("openrouter", api_key="sk-or-test", base_url=server.url + "/api/v1", options=options) as c:
        assert collect(c.chat_completion_stream(model="anthropic/claude-sonnet-4", messages="hi")).text == "Hi"
    request = server.requests[-1]
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["http-referer"] == "https://myapp.example"
    assert request.headers["x-title"] == "My App"
    assert request.json()["model"] == "anthropic/claude-sonnet-4"


def test_openrouter_comment_lines_are_ignored(server):
    body = b": OPENROUTER PROCESSING\n\n" + sse(chunk({"content": "Hi"}), chunk({}, "stop"))
    chunks = stream(server, "openrouter", split_at(body, range(0, len(body), 5)))
    assert len(chunks) == 2 and collect(chunks).text == "Hi"


def test_reasoning_summary_pieces_are_merged(server):
    """reasoning.summary pieces of one detail join; another detail starts a new entry."""
    def piece(kind, index, **fields):
        return {"type": kind, "index": index, "format": "openai-responses-v1", **fields}
    body = sse(
        chunk({"reasoning": "**Plan", "reasoning_details": [piece("reasoning.summary", 0, summary="**Plan")]}),
        chunk({"reasoning": "ning**", "reasoning_details": [piece("reasoning.summary", 0, summary="ning**")]}),
        chunk({"reasoning_details": [piece("reasoning.encrypted", 0, data="enc", id="rs_1")]}),
        chunk({"reasoning": "More", "reasoning_details": [piece("reasoning.summary", 1, summary="More")]}),
        chunk({"content": "Done"}, "stop"))
    response = collect(stream(server, "openrouter", body))
    assert response.reasoning_content == "**Planning**More"
    assert response.message.provider_fields == {"openrouter": {"reasoning_details": [
        piece("reasoning.summary", 0, summary="**Planning**"), piece("reasoning.encrypted", 0, data="enc", id="rs_1"),
        piece("reasoning.summary", 1, summary="More")]}}


def test_whole_answer_keeps_reasoning_details(server):
    details = [{"type": "reasoning.text", "text": "Think", "signature": "sig", "format": "anthropic-claude-v1",
                "index": 0}]
    body = {"id": "gen-1", "object": "chat.completion", "model": "anthropic/claude-sonnet-4", "provider": "Anthropic",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": "Yes", "reasoning": "Think", "reasoning_details": details}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.001}}
    server.handler = lambda req, reply: reply.json(body)
    with make_client(server, "openrouter") as client:
        response = client.chat_completion(model="anthropic/claude-sonnet-4", messages="hi")
    assert response.reasoning_content == "Think"
    assert response.message.provider_fields == {"openrouter": {"reasoning_details": details}}
    assert response.usage.raw["cost"] == 0.001


def test_reasoning_details_go_back_to_the_provider_they_came_from(server):
    """A collected OpenRouter turn sent back carries its merged reasoning_details; to
    another provider, the same message goes without them."""
    detail = {"type": "reasoning.text", "text": "I need the tool.", "signature": "sig", "index": 0}
    body = sse(chunk({"reasoning": "I need", "reasoning_details": [{**detail, "text": "I need", "signature": ""}]}),
               chunk({"reasoning": " the tool.", "reasoning_details": [{**detail, "text": " the tool."}]}),
               chunk({"tool_calls": [call(0, "c1", "ping", "{}")]}, "tool_calls"))
    turn = collect(stream(server, "openrouter", body)).message
    server.handler = lambda req, reply: reply.sse(sse(chunk({"content": "ok"}, "stop")))
    for provider, sent in (("openrouter", [detail]), ("deepseek", None)):
        with make_client(server, provider) as client:
            list(client.chat_completion_stream(model="m", messages=["hi", turn, llmlib.Message.tool("c1", "pong")]))
        assistant = server.requests[-1].json()["messages"][1]
        assert assistant.get("reasoning_details") == sent
        assert assistant["tool_calls"][0]["function"] == {"name": "ping", "arguments": "{}"}


# ---------------------------------------------------------------- tool calls


def call(index=None, id=None, name=None, arguments=None, **extra):
    out = {"function": {}}
    if index is not None:
        out["index"] = index
    if id is not None:
        out.update(id=id, type="function")
    if name is not None:
        out["function"]["name"] = name
    if arguments is not None:
        out["function"]["arguments"] = arguments
    out.update(extra)
    return out


def calls_of(response):
    return [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls]


def test_repeated_names_are_not_doubled(server):
    """Kimi via OpenRouter repeats id and name on later deltas of the same call."""
    body = sse(chunk({"tool_calls": [call(0, "c1", "get_weather", "")]}),
               chunk({"tool_calls": [call(0, "c1", "get_weather", '{"city":')]}),
               chunk({"tool_calls": [call(0, None, "get_weather", ' "Paris"}')]}),
               chunk({"tool_calls": [call(1, "c2", "get_time", "{}")]}),
               chunk({"tool_calls": [call(1, "c2", "get_time")]}),
               chunk({}, "tool_calls"))
    chunks = stream(server, "moonshot", body)
    assert calls_of(collect(chunks)) == [("c1", "get_weather", '{"city": "Paris"}'), ("c2", "get_time", "{}")]
    starts = [e for e in events(chunks) if type(e).__name__ == "ToolCallStart"]
    assert [(s.index, s.id, s.name) for s in starts] == [(0, "c1", "get_weather"), (1, "c2", "get_time")]


def test_mistral_calls_without_index_in_separate_chunks_stay_separate(server):
    body = sse(chunk({"role": "assistant", "content": ""}),
               chunk({"tool_calls": [call(None, "a1", "weather", '{"city": "Paris"}')]}),
               chunk({"tool_calls": [call(None, "b2", "weather", '{"city": "Rome"}')]}),
               chunk({"tool_calls": [call(None, "c3", "time", '{"tz": "CET"}'),
                                     call(None, "d4", "news", "{}")]}, "tool_calls"))
    chunks = stream(server, "mistral", body)
    assert calls_of(collect(chunks)) == [("a1", "weather", '{"city": "Paris"}'), ("b2", "weather", '{"city": "Rome"}'),
                                         ("c3", "time", '{"tz": "CET"}'), ("d4", "news", "{}")]
    assert [c.index for ch in chunks for c in ch.tool_calls or ()] == [0, 1, 2, 3]


def test_a_call_without_index_continues_when_it_repeats_its_id_or_sends_only_arguments(server):
    body = sse(chunk({"tool_calls": [call(None, "a1", "weather", '{"city"')]}),
               chunk({"tool_calls": [call(None, None, None, ': "Paris"')]}),
               chunk({"tool_calls": [call(None, "a1", None, "}")]}),
               chunk({"tool_calls": [call(None, "b2", "time", "{}")]}, "tool_calls"))
    assert calls_of(collect(stream(server, "mistral", body))) == [("a1", "weather", '{"city": "Paris"}'),
                                                                  ("b2", "time", "{}")]


@pytest.mark.parametrize("first, later", [
    (call(0, "c1", "ping", None), []),  # arguments null, never sent
    (call(0, "c1", "ping"), []),  # no arguments key
    (call(0, "c1", "ping", ""), []),  # only ""
    (call(0, "c1", "ping", ""), [call(0, "c1", "ping", "{}")]),  # "" then "{}" (Kimi)
    (call(0, "c1", "ping"), [call(0, None, None, "{}")]),  # no key, then "{}"
])
def test_arguments_that_never_come_are_an_empty_object(first, later, server):
    body = sse(chunk({"tool_calls": [first]}), *[chunk({"tool_calls": [t]}) for t in later], chunk({}, "tool_calls"))
    chunks = stream(server, "openrouter", body)
    assert calls_of(collect(chunks)) == [("c1", "ping", "{}")]
    assert [e.arguments for e in events(chunks) if type(e).__name__ == "ToolCallDelta"] == ["{}"]


def test_arguments_are_not_touched_when_they_came(server):
    body = sse(chunk({"tool_calls": [call(0, "c1", "ping", '{"a": 1}')]}), chunk({}, "tool_calls"))
    chunks = stream(server, "openrouter", body)
    assert calls_of(collect(chunks)) == [("c1", "ping", '{"a": 1}')]
    assert chunks[-1].tool_calls is None


# ---------------------------------------------------------------- usage


def test_groq_usage_only_in_x_groq(server):
    usage = {"queue_time": 0.01, "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "total_time": 0.2}
    body = sse(chunk({"content": "Hi"}, x_groq={"id": "req_1"}),
               chunk({}, "stop", x_groq={"id": "req_1", "usage": usage}))
    chunks = stream(server, "groq", body)
    assert chunks[-1].usage == llmlib.Usage(7, 3, 10)
    assert chunks[-1].usage.raw == usage
    assert chunks[-1].provider_fields == {"x_groq": {"id": "req_1", "usage": usage}}


def test_top_level_usage_wins_over_x_groq(server):
    body = sse(chunk({}, "stop", x_groq={"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
                     usage={"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}))
    assert stream(server, "groq", body)[-1].usage == llmlib.Usage(5, 5, 10)


def test_usage_null_until_the_last_chunk(server):
    body = sse(chunk({"reasoning_content": "Hmm"}, usage=None), chunk({"content": "Hi"}, usage=None),
               chunk({}, "stop", usage={"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6,
                                        "completion_tokens_details": {"reasoning_tokens": 1}}))
    chunks = stream(server, "zhipu", body)
    assert [c.usage for c in chunks] == [None, None, llmlib.Usage(2, 4, 6, 1)]
    assert kinds(chunks) == ["ReasoningDelta", "ContentDelta", "Done", "UsageReport"]


def test_perplexity_usage_fields_are_kept(server):
    usage = {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13, "search_context_size": "low",
             "citation_tokens": 120, "num_search_queries": 1, "cost": {"total_cost": 0.006}}
    body = sse(chunk({"content": "Answer [1]"}, citations=["https://example.com"]), chunk({}, "stop", usage=usage))
    chunks = stream(server, "perplexity", body)
    assert collect(chunks).usage.raw["num_search_queries"] == 1
    assert chunks[0].provider_fields == {"citations": ["https://example.com"]}
