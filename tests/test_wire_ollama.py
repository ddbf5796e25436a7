"""Every recorded Ollama ``/api/chat`` transcript, replayed byte for byte over loopback.

The expected values below were written by reading the transcripts in
../shared/wire/ollama (see SOURCES.md there), not derived from llmlib's
decoder. Streams are served as ``application/x-ndjson``, as Ollama serves
them, through the same frame reader, cancellation, deadlines and ``.partial``
that serve SSE.

The ``/api/generate`` transcripts (``docs_generate_*``, ``sk_generate_*``) are
of an endpoint llmlib does not call (it speaks ``/api/chat``): they are
skipped, except that the mid-stream error one is rebuilt as the equivalent
``/api/chat`` stream (each ``"response": X`` line becomes ``"message":
{"role": "assistant", "content": X}``; the error line is kept as recorded).
"""

from __future__ import annotations

import datetime
import json
import random
import threading
import time

import pytest

import llmlib
from llmlib import ConnectionOptions, Timeout, collect
from llmlib.streaming import ContentDelta, Done, ReasoningDelta, ToolCallDelta, ToolCallStart, UsageReport, events
from tests import fake_ollama
from tests.conftest import WIRE, wire
from tests.loopback import split_at

NDJSON = [("Content-Type", "application/x-ndjson")]
JSON = [("Content-Type", "application/json")]
MODEL = "llama3.2"
ALL = sorted(p.name for p in (WIRE / "ollama").iterdir())
GENERATE = sorted(n for n in ALL if "_generate_" in n)
CHAT_STREAMS = sorted(n for n in ALL if "_chat_stream" in n)
CHAT_BODIES = sorted(n for n in ALL if "_chat_nonstream" in n)


def _utc(*fields: int) -> int:
    return int(datetime.datetime(*fields, tzinfo=datetime.timezone.utc).timestamp())


# file -> what collect() must give. usage = (prompt, completion, total); calls =
# [(id, name, parsed arguments)]; created = the first line's created_at in Unix
# seconds; fields = provider_fields["ollama"] of the done line; kinds = the
# events() in order.
EXPECTED = {
    "docs_chat_stream_RECONSTRUCTED.ndjson": dict(
        model="llama3.2", text="The", calls=[], finish="stop",  # no done_reason (the docs' older server)
        usage=(26, 282, 308), created=_utc(2023, 8, 4, 15, 52, 19),  # 08:52:19-07:00
        fields={"total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": 26,
                "prompt_eval_duration": 342546000, "eval_count": 282, "eval_duration": 4535599000},
        kinds=[ContentDelta, Done, UsageReport]),
    "docs_chat_stream_tools_RECONSTRUCTED.ndjson": dict(
        model="llama3.2", text="", calls=[("call_0", "get_weather", {"city": "Tokyo"})],
        finish="tool_calls",  # done_reason "stop" after a tool call
        usage=(169, 15, 184), created=_utc(2025, 7, 7, 20, 22, 19),
        fields={"done_reason": "stop", "total_duration": 182242375, "load_duration": 41295167,
                "prompt_eval_count": 169, "prompt_eval_duration": 24573166, "eval_count": 15,
                "eval_duration": 115959084},
        kinds=[ToolCallStart, ToolCallDelta, Done, UsageReport]),
    "sk_chat_stream_phi3.ndjson": dict(  # stored without a final newline
        model="phi3", text="This is test completion response", calls=[], finish="stop",
        usage=(10, 239, 249), created=_utc(2024, 7, 2, 11, 45, 16),
        fields={"done_reason": "stop", "total_duration": 58123571935, "load_duration": 55561676662,
                "prompt_eval_count": 10, "prompt_eval_duration": 34847000, "eval_count": 239,
                "eval_duration": 2381751000},
        kinds=[ContentDelta] * 5 + [Done, UsageReport]),
}

# file -> (text or None, calls, finish, usage, created)
EXPECTED_BODIES = {
    "docs_chat_nonstream.json": ("Hello! How are you today?", [], "stop", (26, 298, 324),
                                 _utc(2023, 12, 12, 14, 13, 43)),
    "docs_chat_nonstream_tools.json": (None, [("call_0", "get_weather", {"city": "Tokyo"})], "tool_calls",
                                       (169, 18, 187), _utc(2025, 7, 7, 20, 32, 53)),
}


def test_every_transcript_is_accounted_for():
    assert set(CHAT_STREAMS) == set(EXPECTED)
    assert set(CHAT_BODIES) == set(EXPECTED_BODIES)
    assert set(ALL) == set(CHAT_STREAMS) | set(CHAT_BODIES) | set(GENERATE) | {"docs_error_body.json"}
    assert len(GENERATE) == 4


@pytest.mark.parametrize("name", GENERATE)
def test_generate_transcripts_are_not_replayed(name):
    pytest.skip(f"{name} is an /api/generate transcript: llmlib calls /api/chat, never /api/generate "
                "(the mid-stream error one is replayed as its /api/chat equivalent below)")


@pytest.fixture
def oclient(server):
    with llmlib.Client("ollama", base_url=server.url,
                       options=ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=10))) as c:
        yield c


def serve(server, body, **kwargs):
    server.handler = lambda req, reply: reply.send(200, body, NDJSON, **kwargs)


def stream(client, server, body):
    serve(server, body)
    return list(client.chat_completion_stream(model=MODEL, messages="hi"))


def check(name, chunks):
    want = EXPECTED[name]
    response = collect(chunks)
    assert response.text == want["text"]
    assert response.reasoning_content is None
    got_calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls]
    assert got_calls == want["calls"]
    assert all(c.type == "function" for c in response.tool_calls)
    assert response.finish_reason == want["finish"]
    assert response.usage == llmlib.Usage(*want["usage"])
    assert response.model == want["model"] and response.id is None
    assert response.created == want["created"]
    assert response.message.provider_fields == {"ollama": want["fields"]}
    assert chunks[0].role == "assistant" and all(c.role is None for c in chunks[1:])
    last = chunks[-1]
    assert last.usage == response.usage and last.finish_reason == want["finish"]
    assert last.choices[0].delta.provider_fields == {"ollama": want["fields"]}
    assert [type(e) for e in events(chunks)] == want["kinds"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_replay_gives_the_recorded_answer(name, oclient, server):
    chunks = stream(oclient, server, wire("ollama", name).read_bytes())
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", "/api/chat") and req.json()["stream"] is True
    check(name, chunks)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_any_split_gives_the_same_chunks(name, oclient, server):
    raw = wire("ollama", name).read_bytes()
    whole = stream(oclient, server, raw)
    rng = random.Random(name)
    for pieces in (split_at(raw, rng.sample(range(1, len(raw)), 40)),  # 40 random cuts
                   split_at(raw, range(0, len(raw), 13)),  # a piece every 13 bytes
                   [raw[i:i + 1] for i in range(len(raw))]):  # byte by byte
        chunks = stream(oclient, server, pieces)
        assert chunks == whole
        check(name, chunks)


def test_tool_call_events_carry_id_name_and_arguments(oclient, server):
    chunks = stream(oclient, server, wire("ollama", "docs_chat_stream_tools_RECONSTRUCTED.ndjson").read_bytes())
    got = list(events(chunks))
    assert got[:2] == [ToolCallStart(0, "call_0", "get_weather"),
                       ToolCallDelta(0, '{"city": "Tokyo"}')]
    assert got[2] == Done("tool_calls")


@pytest.mark.parametrize("name", sorted(EXPECTED_BODIES))
def test_nonstream_bodies_decode(name, oclient, server):
    raw = wire("ollama", name).read_bytes()
    server.handler = lambda req, reply: reply.send(200, raw, JSON, mode="length")
    response = oclient.chat_completion(model=MODEL, messages="hi")
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", "/api/chat") and req.json()["stream"] is False
    text, calls, finish, usage, created = EXPECTED_BODIES[name]
    if text is None:
        assert response.message.content is None
    else:
        assert response.text == text
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == calls
    assert response.finish_reason == finish and response.usage == llmlib.Usage(*usage)
    assert response.model == "llama3.2" and response.created == created and response.id is None
    assert response.message.provider_fields["ollama"]["total_duration"] == json.loads(raw)["total_duration"]


def test_streamed_and_nonstreamed_tool_calls_agree(oclient, server):
    body = json.loads(wire("ollama", "docs_chat_nonstream_tools.json").read_bytes())
    server.handler = lambda req, reply: reply.json(body)
    whole = oclient.chat_completion(model=MODEL, messages="hi")
    streamed = collect(stream(oclient, server,
                              wire("ollama", "docs_chat_stream_tools_RECONSTRUCTED.ndjson").read_bytes()))
    assert [(c.id, c.function.name, c.function.arguments) for c in streamed.tool_calls] == [
        (c.id, c.function.name, c.function.arguments) for c in whole.tool_calls]


# ---------------------------------------------------------------- errors


def chat_midstream_error() -> bytes:
    """docs_generate_stream_midstream_error.ndjson as the /api/chat stream it stands for."""
    out = []
    for line in wire("ollama", "docs_generate_stream_midstream_error.ndjson").read_bytes().splitlines():
        obj = json.loads(line)
        if "response" in obj:
            obj["message"] = {"role": "assistant", "content": obj.pop("response")}
        out.append(json.dumps(obj).encode() + b"\n")
    return b"".join(out)


def test_midstream_error_is_typed_with_partial(oclient, server):
    body = chat_midstream_error()
    assert body.count(b'"message"') == 4
    assert body.endswith(b'{"error": "an error was encountered while running the model"}\n')
    for pieces in (body, split_at(body, range(0, len(body), 7))):
        serve(server, pieces)
        got = []
        with pytest.raises(llmlib.APIStatusError) as info:
            for chunk in oclient.chat_completion_stream(model=MODEL, messages="hi"):
                got.append(chunk.text)
        err = info.value
        assert got == [" Yes", ".", "I", "can"]
        # Ollama's in-stream error carries no status (the HTTP status stays 200): the base class.
        assert type(err) is llmlib.APIStatusError and err.status_code is None
        assert err.provider == "ollama" and "an error was encountered while running the model" in str(err)
        assert err.partial.text == " Yes.Ican" and err.partial.finish_reason is None
        assert err.body == {"error": "an error was encountered while running the model"}


def test_an_error_line_first_has_no_partial(oclient, server):
    serve(server, json.dumps(json.loads(wire("ollama", "docs_error_body.json").read_bytes())).encode() + b"\n")
    with pytest.raises(llmlib.APIStatusError) as info:
        list(oclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.partial is None and "the model failed to generate a response" in str(info.value)


@pytest.mark.parametrize("streamed", [False, True], ids=["json", "stream"])
def test_model_not_found_is_not_found_error(streamed, oclient, server):
    raw = wire("errors", "ollama_404_model_not_found_RECONSTRUCTED.json").read_bytes()
    server.handler = lambda req, reply: reply.send(404, raw, JSON, mode="length")
    call = oclient.chat_completion_stream if streamed else oclient.chat_completion
    with pytest.raises(llmlib.NotFoundError) as info:
        call(model="llama3.2", messages="hi")
    err = info.value
    assert err.status_code == 404 and err.provider == "ollama" and not err.is_retryable()
    assert err.message == 'model "llama3.2" not found, try pulling it first'
    assert len(server.requests) == 1


@pytest.mark.parametrize("status, cls", [(500, llmlib.ServerError), (400, llmlib.BadRequestError)])
def test_docs_error_body_maps_by_status(status, cls, oclient, server):
    # The docs show the body without its status; 500 is what Ollama sends for a failed generation.
    raw = wire("ollama", "docs_error_body.json").read_bytes()
    server.handler = lambda req, reply: reply.send(status, raw, JSON, mode="length")
    with pytest.raises(cls) as info:
        oclient.chat_completion(model=MODEL, messages="hi")
    assert info.value.status_code == status and info.value.message == "the model failed to generate a response"


# ---------------------------------------------------------------- cut streams


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_stream_without_its_done_line_is_incomplete(name, oclient, server):
    raw = wire("ollama", name).read_bytes()
    cut = raw[:raw.rindex(b'{"model"')]  # every line but the done line, whole
    serve(server, cut)
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(oclient.chat_completion_stream(model=MODEL, messages="hi"))
    partial = info.value.partial
    want = EXPECTED[name]
    assert partial.text == want["text"]
    calls = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in partial.tool_calls]
    assert calls == want["calls"]
    assert partial.finish_reason is None and partial.usage is None  # they come with the done line
    assert "end marker" in str(info.value)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_stream_cut_inside_its_last_line_is_incomplete(name, oclient, server):
    raw = wire("ollama", name).read_bytes()
    done = raw.rindex(b'{"model"')
    serve(server, raw[:done + 40])  # the done line cut after 40 bytes, no newline
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(oclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.partial.text == EXPECTED[name]["text"]
    assert info.value.partial.finish_reason is None
    assert "ended inside a line" in str(info.value)


def test_a_stream_cut_inside_its_first_line_has_no_partial(oclient, server):
    serve(server, wire("ollama", "sk_chat_stream_phi3.ndjson").read_bytes()[:50])
    with pytest.raises(llmlib.IncompleteStreamError) as info:
        list(oclient.chat_completion_stream(model=MODEL, messages="hi"))
    assert info.value.partial is None


def test_an_invalid_line_mid_stream_is_a_decode_error_with_partial(oclient, server):
    raw = wire("ollama", "sk_chat_stream_phi3.ndjson").read_bytes()
    first = raw.index(b"\n") + 1
    for bad in (b'{"model": oops}\n', b'["not", "an", "object"]\n'):
        serve(server, raw[:first] + bad + raw[first:])
        with pytest.raises(llmlib.DecodeError) as info:
            list(oclient.chat_completion_stream(model=MODEL, messages="hi"))
        assert info.value.partial.text == "This " and info.value.offset == first


def test_lines_after_the_done_line_are_not_read(oclient, server):
    raw = wire("ollama", "docs_chat_stream_RECONSTRUCTED.ndjson").read_bytes()
    extra = b'{"model":"llama3.2","message":{"role":"assistant","content":"EXTRA"},"done":false}\n'
    assert collect(stream(oclient, server, raw + extra)).text == "The"


def test_crlf_and_blank_lines_are_accepted(oclient, server):
    raw = wire("ollama", "sk_chat_stream_phi3.ndjson").read_bytes()
    chunks = stream(oclient, server, b"\r\n" + raw.replace(b"\n", b"\r\n\r\n"))
    check("sk_chat_stream_phi3.ndjson", chunks)


# ---------------------------------------------------------------- shared stream layer on NDJSON


def _first_line_then(server, body, then):
    cut = body.index(b"\n") + 1

    def handler(req, reply):
        reply.head(200, NDJSON)
        reply.piece(body[:cut])
        try:
            then(reply, body[cut:])
        except OSError:
            reply.keep_alive = False

    server.handler = handler


def test_cancel_mid_stream_ends_quietly(oclient, server):
    _first_line_then(server, wire("ollama", "sk_chat_stream_phi3.ndjson").read_bytes(),
                     lambda reply, rest: reply.hang(10))
    stream_, token = oclient.chat_completion_stream_with_cancel(model=MODEL, messages="hi")
    texts = []
    with stream_:
        for chunk in stream_:
            texts.append(chunk.text)
            threading.Timer(0.1, token.cancel).start()
            start = time.monotonic()
        took = time.monotonic() - start
    assert texts == ["This "] and token.cancelled
    assert took < 0.3, took  # within 100 ms of the cancel, on a silent server
    assert server.wait_closed(2)


def test_total_stops_a_dripping_ndjson_stream_with_partial(server):
    def drip(reply, rest):
        for byte in rest:
            reply.piece(bytes([byte]))
            time.sleep(0.05)

    _first_line_then(server, wire("ollama", "sk_chat_stream_phi3.ndjson").read_bytes(), drip)
    options = ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=10, total=0.5))
    with llmlib.Client("ollama", base_url=server.url, options=options) as c:
        start = time.monotonic()
        with pytest.raises(llmlib.APITimeoutError) as info:
            collect(c.chat_completion_stream(model=MODEL, messages="hi"))
        took = time.monotonic() - start
    assert 0.4 < took < 0.9, took
    assert "total timeout" in str(info.value) and info.value.partial.text == "This "
    assert server.wait_closed(2)


def test_a_line_over_the_size_limit_is_refused(server):
    body = fake_ollama.stream_body(["x" * 5000])
    # In 100-byte pieces: the framer checks the line still being buffered after each read
    # (a whole over-limit line that arrives in a single read is passed on; see framing.py).
    serve(server, split_at(body, range(100, len(body), 100)))
    with llmlib.Client("ollama", base_url=server.url,
                       options=ConnectionOptions(max_retries=0, max_response_bytes=1000)) as c:
        with pytest.raises(llmlib.ResponseTooLargeError):
            list(c.chat_completion_stream(model=MODEL, messages="hi"))


# ---------------------------------------------------------------- decoder details (fake streams)


def test_thinking_becomes_reasoning_before_the_text(oclient, server):
    chunks = stream(oclient, server, fake_ollama.stream_body(["42"], reasoning=["Six times ", "seven."]))
    response = collect(chunks)
    assert response.reasoning_content == "Six times seven." and response.text == "42"
    assert [type(e) for e in events(chunks)] == [ReasoningDelta, ReasoningDelta, ContentDelta, Done, UsageReport]


def test_text_on_the_done_line_is_kept(oclient, server):
    body = (b'{"model":"m","created_at":"2025-10-26T17:15:24.155176Z",'
            b'"message":{"role":"assistant","content":"Hi"},"done":false}\n'
            b'{"model":"m","created_at":"2025-10-26T17:15:24.166576Z",'
            b'"message":{"role":"assistant","content":"!","thinking":"done."},'
            b'"done":true, "done_reason": "length","eval_count":2}\n')
    chunks = stream(oclient, server, body)
    response = collect(chunks)
    assert (response.text, response.reasoning_content, response.finish_reason) == ("Hi!", "done.", "length")
    assert response.usage == llmlib.Usage(0, 2, 2)  # prompt_eval_count omitted: 0
    assert [type(e) for e in events(chunks)] == [ContentDelta, ReasoningDelta, ContentDelta, Done, UsageReport]


def test_several_tool_calls_get_running_indexes(oclient, server):
    line1 = {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "a", "arguments": {"x": 1}}}, {"function": {"name": "b", "arguments": {}}}]},
        "done": False}
    line2 = {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_sent", "function": {"index": 0, "name": "c", "arguments": {"y": "\u00e9"}}}]}, "done": False}
    line3 = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"}
    body = b"".join(json.dumps(o).encode() + b"\n" for o in (line1, line2, line3))
    response = collect(stream(oclient, server, body))
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in response.tool_calls] == [
        ("call_0", "a", {"x": 1}), ("call_1", "b", {}), ("call_sent", "c", {"y": "\u00e9"})]
    assert response.finish_reason == "tool_calls" and response.usage is None


def test_a_load_answer_keeps_its_done_reason(oclient, server):
    # The docs' answer to an empty messages list (the model is loaded, nothing generated);
    # llmlib refuses empty messages itself, but a done_reason it does not map is kept as sent.
    body = (b'{"model":"llama3.2","created_at":"2024-09-12T21:17:29.110811Z","message":{"role":"assistant",'
            b'"content":""},"done_reason":"load","done":true}\n')
    response = collect(stream(oclient, server, body))
    assert (response.text, response.finish_reason, response.usage) == ("", "load", None)


# ---------------------------------------------------------------- models


def test_tags_list_decodes(oclient, server):
    raw = wire("models", "ollama_api_tags_docs.json").read_bytes()
    server.handler = lambda req, reply: reply.send(200, raw, JSON, mode="length")
    models = oclient.list_models()
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/api/tags")]
    assert [m.id for m in models] == ["deepseek-r1:latest", "llama3.2:latest"]
    first = models[0]
    assert str(first) == "deepseek-r1:latest" and first.provider == "ollama" and first.created is None
    assert first.raw["size"] == 4683075271 and first.raw["details"]["parameter_size"] == "7.6B"
    assert first.raw["modified_at"] == "2025-05-10T08:06:48.639712648-07:00"
    assert oclient.model_info("llama3.2:latest").raw["digest"].startswith("a80c4f17acd5")
    assert "authorization" not in server.requests[-1].headers


def test_fake_handler_answers_chat_and_models(oclient, server):
    server.handler = fake_ollama.handler
    assert oclient.chat_completion(model=MODEL, messages="hi").text == fake_ollama.TEXT
    assert collect(oclient.chat_completion_stream(model=MODEL, messages="hi")).text == fake_ollama.TEXT
    assert [m.id for m in oclient.list_models()] == [fake_ollama.MODEL]
    body = fake_ollama.stream_body(["a", "b"], finish="length", usage=(4, 2))
    response = collect(stream(oclient, server, body))
    assert (response.text, response.finish_reason, response.usage.total_tokens) == ("ab", "length", 6)
    response = collect(stream(oclient, server, fake_ollama.tool_stream_body("call_9", "f", '{"k": [1]}')))
    assert [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls] == [
        ("call_9", "f", '{"k": [1]}')]
    assert response.finish_reason == "tool_calls"
    server.handler = lambda req, reply: reply.json(fake_ollama.error_json(404, "model not found"), status=404)
    with pytest.raises(llmlib.NotFoundError):
        oclient.chat_completion(model=MODEL, messages="hi")
