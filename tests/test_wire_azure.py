"""Every recorded Azure OpenAI transcript, replayed over loopback at the deployment path.

The expected values below were written by reading the transcripts in
../shared/wire/azure_openai (see SOURCES.md there); they are not produced by llmlib.

The two ``_ELIDED`` files are transcribed from Microsoft's content-streaming doc,
with its ``... `` elision lines. Those lines are replayed as they are: an SSE
line ``... `` is a field with an unknown name, which the SSE rules ignore, so
they make events with no data that carry nothing. The "blocked" file also has
the doc's broken line (``"gpt-35- `` / blank line / ``turbo"``, one JSON payload
cut in two events): replayed as is, it is a DecodeError with the answer so far
in ``.partial``; the tests then rejoin that one line and replay the rest unchanged.
"""

from __future__ import annotations

import json
import random

import pytest

from llmlib import Client, ConnectionOptions, DecodeError, Timeout, Usage, collect
from llmlib.streaming import ContentDelta, Done, UsageReport, events
from tests.conftest import TEST_KEY, WIRE, wire
from tests.loopback import split_at

DEPLOYMENT = "gpt-4o-deployment"
PATH = f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"

VERCEL = "vercel_azure_chat_stream_prompt_filter_results_RECONSTRUCTED_FRAMING.sse"
JSONL = "vercel_azure_chat_stream_prompt_filter_results.chunks.jsonl"
SK = "sk_async_filter_stream.sse"
PASSES = "docs_async_filter_passes_ELIDED.sse"
BLOCKED = "docs_async_filter_blocked_content_filter_ELIDED.sse"
NONSTREAM = "nonstream_chat_completion_prompt_filter_results.json"

BROKEN_LINE = b'"gpt-35- \n\nturbo"'  # the doc's line break inside one JSON payload

SAFE = {"filtered": False, "severity": "safe"}
SAFE4 = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}
NOT_DETECTED = {"filtered": False, "detected": False}
PROMPT_WITH_JAILBREAK = [{"prompt_index": 0, "content_filter_results": dict(SAFE4, jailbreak=NOT_DETECTED)}]

# Read off each transcript: chunks llmlib yields (one per data payload), the answer,
# and the Azure fields of choice 0 once collected.
EXPECTED = {
    VERCEL: dict(
        chunks=8, id="chatcmpl-CYPS1lijGoK8gd9lYzY3r9Sx50nbt", model="gpt-5-nano-2025-08-07",
        text="Capital of Denmark.", finish="stop", usage=Usage(15, 78, 93, 64, 0),
        azure={"prompt_filter_results": PROMPT_WITH_JAILBREAK, "content_filter_results": SAFE4}),
    SK: dict(
        chunks=6, id="chatcmpl-123", model="gpt-4o-2024-05-13", text="Kindness", finish="stop", usage=None,
        azure={"prompt_filter_results": PROMPT_WITH_JAILBREAK,
               "content_filter_results": dict(SAFE4, protected_material_code=NOT_DETECTED,
                                              protected_material_text=NOT_DETECTED),
               "content_filter_offsets": {"check_offset": 1576, "start_offset": 1576, "end_offset": 2318}}),
    PASSES: dict(
        chunks=8, id="chatcmpl-7rCNsVeZy0PGnX3H6jK8STps5nZUY", model="gpt-35-turbo", text="Color is a",
        finish="stop", usage=None,
        # the old key "prompt_annotations", kept under its current name
        azure={"prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE4}],
               "content_filter_results": SAFE4,
               # the annotation sent after finish_reason: stop
               "content_filter_offsets": {"check_offset": 506, "start_offset": 44, "end_offset": 571}}),
    BLOCKED: dict(
        chunks=8, id="chatcmpl-8JCbt5d4luUIhYCI7YH4dQK7hnHx2", model="gpt-35-turbo", text="Hey Jude, better",
        finish="content_filter", usage=None,
        azure={"prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE4}],
               "content_filter_results": dict(SAFE4, protected_material_text={"detected": True, "filtered": True}),
               "content_filter_offsets": {"check_offset": 65, "start_offset": 65, "end_offset": 1056}}),
}
STREAMS = sorted(EXPECTED)


def transcript(name: str) -> bytes:
    """The body replayed for ``name``: as recorded, but for the one broken line of BLOCKED."""
    raw = wire("azure_openai", name).read_bytes()
    if name == BLOCKED:
        assert raw.count(BROKEN_LINE) == 1
        raw = raw.replace(BROKEN_LINE, b'"gpt-35-turbo"')
    return raw


def jsonl_reframed(crlf: bool, done: bool) -> bytes:
    """The .chunks.jsonl payload lines framed as SSE here (CRLF or LF, with or without [DONE])."""
    end = b"\r\n\r\n" if crlf else b"\n\n"
    lines = [line for line in wire("azure_openai", JSONL).read_bytes().splitlines() if line.strip()]
    return b"".join(b"data: " + line + end for line in lines) + (b"data: [DONE]" + end if done else b"")


@pytest.fixture
def azure(server):
    with Client("azure", api_key=TEST_KEY, base_url=server.url,
                options=ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=10))) as c:
        yield c


def stream(client, server, body, mode="chunked"):
    server.handler = lambda req, reply: reply.sse(body, mode=mode)
    chunks = list(client.chat_completion_stream(model=DEPLOYMENT, messages="hi"))
    assert server.requests[-1].path == PATH
    return chunks


def test_every_transcript_has_a_test():
    assert {p.name for p in (WIRE / "azure_openai").iterdir()} == set(EXPECTED) | {JSONL, NONSTREAM}


@pytest.mark.parametrize("name", STREAMS)
def test_replay_gives_the_recorded_answer(name, azure, server):
    want = EXPECTED[name]
    chunks = stream(azure, server, transcript(name))
    sent = server.requests[-1]
    assert sent.method == "POST" and sent.headers["api-key"] == TEST_KEY and "authorization" not in sent.headers
    assert json.loads(sent.body)["stream"] is True

    assert len(chunks) == want["chunks"]
    response = collect(chunks)
    assert (response.id, response.model) == (want["id"], want["model"])
    assert [c.index for c in response.choices] == [0]
    assert response.text == want["text"]
    assert response.message.role == "assistant"
    assert response.finish_reason == want["finish"]
    assert response.usage == want["usage"]
    assert response.message.provider_fields == {"azure": want["azure"]}

    # The first chunk (no choices on the wire) carries the prompt's results and nothing else.
    first = chunks[0]
    assert (first.id, first.model, first.usage) == ("", "", None)
    assert [c.index for c in first.choices] == [0]
    assert (first.text, first.role, first.finish_reason, first.tool_calls) == (None, None, None, None)
    assert first.choices[0].delta.provider_fields == {"azure": {"prompt_filter_results":
                                                                want["azure"]["prompt_filter_results"]}}


def test_vercel_chunk_by_chunk(azure, server):
    """Azure repeats the same results on each content chunk: the fields ride on a
    chunk only when they change; usage comes once, on the choice-less last chunk."""
    chunks = stream(azure, server, transcript(VERCEL))
    carried = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.provider_fields]
    assert carried == [0, 2]  # the prompt's results; the first content filter results
    assert chunks[2].choices[0].delta.provider_fields == {
        "azure": {"prompt_filter_results": PROMPT_WITH_JAILBREAK, "content_filter_results": SAFE4}}
    assert [c.text for c in chunks] == [None, "", "Capital", " of", " Denmark", ".", None, None]
    assert chunks[-1].choices == [] and chunks[-1].usage == Usage(15, 78, 93, 64, 0)
    assert all(c.usage is None for c in chunks[:-1])
    assert list(events(chunks)) == [ContentDelta("Capital"), ContentDelta(" of"), ContentDelta(" Denmark"),
                                    ContentDelta("."), Done("stop"), UsageReport(Usage(15, 78, 93, 64, 0))]


@pytest.mark.parametrize("crlf,done", [(True, True), (False, False)])
def test_jsonl_reframed_gives_the_same_chunks(crlf, done, azure, server):
    """The payload lines of the .chunks.jsonl, framed here with CRLF, or without
    [DONE]: the body then ends after the usage chunk, and the stream is complete
    since its one choice sent finish_reason."""
    expected = stream(azure, server, transcript(VERCEL))
    assert stream(azure, server, jsonl_reframed(crlf, done)) == expected


@pytest.mark.parametrize("mode", ["chunked", "close", "length"])
def test_sk_stream_without_final_newline(mode, azure, server):
    """sk_async_filter_stream.sse ends ``data: [DONE]`` with no line break: by the SSE
    rules that last event is never finished, so it is dropped. The stream still ends
    without an error, because its one choice had sent finish_reason; the two
    annotation chunks sent after the finish (empty id and model) are read."""
    raw = transcript(SK)
    assert raw.endswith(b"\n\ndata: [DONE]")
    chunks = stream(azure, server, raw, mode=mode)
    assert len(chunks) == 6
    finish = [i for i, c in enumerate(chunks) if c.finish_reason]
    assert finish == [3] and chunks[3].finish_reason == "stop"
    after = chunks[4:]
    assert [(c.id, c.model, c.text) for c in after] == [("", "", None), ("", "", None)]
    assert after[1].choices[0].delta.provider_fields["azure"]["content_filter_offsets"] == {
        "check_offset": 1576, "start_offset": 1576, "end_offset": 2318}
    assert collect(chunks).message.provider_fields == {"azure": EXPECTED[SK]["azure"]}


@pytest.mark.parametrize("name", STREAMS)
def test_any_split_gives_the_same_chunks(name, azure, server):
    raw = transcript(name)
    whole = stream(azure, server, raw)
    rng = random.Random(name)
    splits = [
        split_at(raw, rng.sample(range(1, len(raw)), 40)),  # 40 random cuts
        split_at(raw, range(0, len(raw), 7)),  # a piece every 7 bytes
    ]
    if name == SK:
        splits.append([raw[i:i + 1] for i in range(len(raw))])  # byte by byte, the whole body
    for pieces in splits:
        assert stream(azure, server, pieces) == whole


def test_blocked_doc_as_transcribed_is_a_decode_error(azure, server):
    """The doc's broken line, replayed as is: DecodeError, the answer so far in .partial."""
    raw = wire("azure_openai", BLOCKED).read_bytes()
    server.handler = lambda req, reply: reply.sse(raw)
    with pytest.raises(DecodeError) as info:
        list(azure.chat_completion_stream(model=DEPLOYMENT, messages="hi"))
    partial = info.value.partial
    assert partial.text == "Hey Jude,"
    assert partial.finish_reason is None
    assert partial.message.provider_fields == {"azure": {
        "prompt_filter_results": EXPECTED[BLOCKED]["azure"]["prompt_filter_results"]}}


def test_content_filter_finish_is_reported(azure, server):
    """BLOCKED: finish_reason content_filter comes on an annotation chunk (empty id),
    with the protected_material_text result that caused it."""
    chunks = stream(azure, server, transcript(BLOCKED))
    last = chunks[-1]
    assert (last.id, last.finish_reason, last.text) == ("", "content_filter", None)
    assert last.choices[0].delta.provider_fields["azure"]["content_filter_results"]["protected_material_text"] == {
        "detected": True, "filtered": True}
    assert [e for e in events(chunks) if isinstance(e, Done)] == [Done("content_filter")]


def test_nonstream_body_decodes(azure, server):
    raw = wire("azure_openai", NONSTREAM).read_bytes()
    server.handler = lambda req, reply: reply.send(200, raw, [("Content-Type", "application/json")], mode="length")
    response = azure.chat_completion(model=DEPLOYMENT, messages="hi")
    sent = server.requests[-1]
    assert sent.path == PATH and sent.headers["api-key"] == TEST_KEY
    assert "stream" not in json.loads(sent.body)
    assert response.id == "chatcmpl-BAeyRj7gU6aCNSSAskAFbupBWYMIT"
    assert response.model == "gpt-4o-2024-11-20" and response.system_fingerprint == "fp_ded0d14823"
    assert response.text == "The capital of France is **Paris**."
    assert response.message.refusal is None
    assert response.finish_reason == "stop"
    assert response.usage == Usage(14, 9, 23, 0, 0)
    assert response.message.provider_fields == {"azure": {
        "prompt_filter_results": PROMPT_WITH_JAILBREAK,
        "content_filter_results": dict(SAFE4, protected_material_code=NOT_DETECTED,
                                       protected_material_text=NOT_DETECTED),
    }}
