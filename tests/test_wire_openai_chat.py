"""Every recorded OpenAI chat transcript, replayed byte for byte over loopback."""

from __future__ import annotations

import json
import random
import re

import pytest

import llmlib
from llmlib import collect
from tests.conftest import WIRE, wire
from tests.loopback import split_at

STREAMS = sorted(p.name for p in (WIRE / "openai_chat").glob("*.sse"))
NONSTREAM = sorted(p.name for p in (WIRE / "openai_chat").glob("nonstream_*.json"))


def payloads(raw: bytes):
    """The JSON payloads of a transcript, by a deliberately naive reading (the oracle)."""
    out = []
    for block in re.split(rb"\r?\n\r?\n", raw):
        for line in block.splitlines():
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                out.append(json.loads(line[6:]))
    return out


def expected(raw: bytes):
    """What collect() must give: per choice text, finish reason, tool calls; usage."""
    choices, usage = {}, None
    for p in payloads(raw):
        usage = p.get("usage") or usage
        for c in p["choices"]:
            s = choices.setdefault(c["index"], {"text": "", "finish": None, "calls": {}, "refusal": ""})
            d = c["delta"]
            s["text"] += d.get("content") or ""
            s["refusal"] += d.get("refusal") or ""
            s["finish"] = c["finish_reason"] or s["finish"]
            for t in d.get("tool_calls") or []:
                call = s["calls"].setdefault(t["index"], {"id": None, "name": None, "args": ""})
                call["id"] = t.get("id") or call["id"]
                call["name"] = (t.get("function") or {}).get("name") or call["name"]
                call["args"] += (t.get("function") or {}).get("arguments") or ""
    return choices, usage


def stream_all(client, server, pieces, n=None):
    server.handler = lambda req, reply: reply.sse(pieces)
    return list(client.chat_completion_stream(model="gpt-4o", messages="hi", n=n))


def choices_of(raw):
    return len({c["index"] for p in payloads(raw) for c in p["choices"]}) or 1


@pytest.mark.parametrize("name", STREAMS)
def test_replay_gives_the_recorded_answer(name, client, server):
    raw = wire("openai_chat", name).read_bytes()
    chunks = stream_all(client, server, raw, n=choices_of(raw))
    assert len(chunks) == len(payloads(raw))
    response = collect(chunks)
    want, usage = expected(raw)
    assert [c.index for c in response.choices] == sorted(want)
    for choice in response.choices:
        w = want[choice.index]
        assert choice.message.text == w["text"]
        assert (choice.message.refusal or "") == w["refusal"]
        assert choice.finish_reason == w["finish"]
        calls = choice.message.tool_calls or ()
        assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
            (v["id"], v["name"], v["args"]) for _, v in sorted(w["calls"].items())
        ]
    if usage:
        assert response.usage == llmlib.Usage(
            usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"],
            usage.get("completion_tokens_details", {}).get("reasoning_tokens"),
            (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
        )
        assert chunks[-1].usage == response.usage
    assert response.text == "".join(c.text or "" for c in chunks if c.choices and c.choices[0].index == 0)


@pytest.mark.parametrize("name", STREAMS)
def test_any_split_gives_the_same_chunks(name, client, server):
    raw = wire("openai_chat", name).read_bytes()
    n = choices_of(raw)
    whole = stream_all(client, server, raw, n=n)
    rng = random.Random(name)
    splits = [
        split_at(raw, rng.sample(range(1, len(raw)), min(len(raw) - 1, 40))),  # 40 random cuts
        split_at(raw, range(0, len(raw), 7)),  # a piece every 7 bytes
        [raw[i:i + 1] for i in range(min(len(raw), 3000))] + [raw[3000:]],  # byte by byte, at first
    ]
    for pieces in splits:
        assert stream_all(client, server, pieces, n=n) == whole


@pytest.mark.parametrize("mode", ["chunked", "close", "length"])
def test_every_body_framing_streams(mode, client, server):
    raw = wire("openai_chat", "tool_calls_parallel_two.sse").read_bytes()
    server.handler = lambda req, reply: reply.sse(split_at(raw, range(0, len(raw), 97)), mode=mode)
    response = collect(client.chat_completion_stream(model="gpt-4o", messages="hi"))
    assert [c.function.name for c in response.tool_calls] == ["GetWeatherArgs", "get_stock_price"]
    assert response.finish_reason == "tool_calls"


@pytest.mark.parametrize("name", NONSTREAM)
def test_nonstream_bodies_decode(name, client, server):
    raw = wire("openai_chat", name).read_bytes()
    body = json.loads(raw)
    server.handler = lambda req, reply: reply.send(200, raw, [("Content-Type", "application/json")], mode="length")
    response = client.chat_completion(model="gpt-4o", messages="hi")
    assert response.id == body["id"] and response.model == body["model"]
    assert len(response.choices) == len(body["choices"])
    for got, want in zip(response.choices, body["choices"]):
        m = want["message"]
        assert got.message.role == "assistant"
        assert got.message.text == (m.get("content") or "")
        assert got.message.refusal == m.get("refusal")
        assert got.finish_reason == want["finish_reason"]
        assert [(c.id, c.function.name, c.function.arguments) for c in got.message.tool_calls or ()] == [
            (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or ()
        ]
    assert response.usage.total_tokens == body["usage"]["total_tokens"]
    assert response.usage.reasoning_tokens == body["usage"]["completion_tokens_details"]["reasoning_tokens"]


def test_streamed_and_nonstreamed_tool_calls_agree(client, server):
    """The same two parallel calls, streamed and not, come out equal."""
    streamed = wire("openai_chat", "tool_calls_parallel_two.sse").read_bytes()
    whole = wire("openai_chat", "nonstream_tool_calls_parallel_two.json").read_bytes()
    server.handler = lambda req, reply: reply.sse(streamed)
    a = collect(client.chat_completion_stream(model="gpt-4o", messages="hi"))
    server.handler = lambda req, reply: reply.send(200, whole, [("Content-Type", "application/json")], mode="length")
    b = client.chat_completion(model="gpt-4o", messages="hi")
    assert [c.function.name for c in a.tool_calls] == [c.function.name for c in b.tool_calls]
    assert [json.loads(c.function.arguments) for c in a.tool_calls] == [
        json.loads(c.function.arguments) for c in b.tool_calls]
