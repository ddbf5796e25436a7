"""Value types, events(), and the transport helpers that need no provider."""

from __future__ import annotations

import pytest
import requests

from llmlib import (ChatCompletionChunk, ChatCompletionRequest, ChunkChoice, ConfigurationError,
                    ConnectionOptions, Content, Delta, FunctionCallDelta, Message, Role, Timeout, ToolCallDelta,
                    Usage, collect)
from llmlib.streaming import ContentDelta, Done, ReasoningDelta, ToolCallStart, UsageReport, events
from llmlib.streaming import ToolCallDelta as ArgumentsDelta
from llmlib.transport import _socket_via_http_client, parse_retry_after, socket_of


def chunk(delta=None, finish=None, usage=None, index=0):
    choices = [ChunkChoice(index, delta or Delta(), finish)] if delta or finish else []
    return ChatCompletionChunk("c1", "m", choices, usage)


def test_chunk_shortcuts_are_none_when_absent():
    empty = chunk(usage=Usage(1, 2, 3))
    assert (empty.text, empty.role, empty.finish_reason, empty.reasoning_content) == (None, None, None, None)
    assert chunk(Delta(role="assistant", content="hi")).text == "hi"


def test_events_and_collect_agree():
    chunks = [
        chunk(Delta(role="assistant", reasoning_content="thinking")),
        chunk(Delta(content="Hel")), chunk(Delta(content="lo")),
        chunk(Delta(tool_calls=[ToolCallDelta(0, "call_1", "function", FunctionCallDelta("f", '{"a"'))])),
        chunk(Delta(tool_calls=[ToolCallDelta(1, "call_2", "function", FunctionCallDelta("g", ""))])),
        chunk(Delta(tool_calls=[ToolCallDelta(0, function=FunctionCallDelta(arguments=": 1}"))])),
        chunk(finish="tool_calls"),
        chunk(usage=Usage(5, 7, 12)),
    ]
    assert list(events(chunks)) == [
        ReasoningDelta("thinking"), ContentDelta("Hel"), ContentDelta("lo"),
        ToolCallStart(0, "call_1", "f"), ArgumentsDelta(0, '{"a"'), ToolCallStart(1, "call_2", "g"),
        ArgumentsDelta(0, ": 1}"), Done("tool_calls"), UsageReport(Usage(5, 7, 12)),
    ]
    response = collect(chunks)
    assert response.text == "Hello" and response.reasoning_content == "thinking"
    assert [(c.id, c.function.name, c.function.arguments) for c in response.tool_calls] == [
        ("call_1", "f", '{"a": 1}'), ("call_2", "g", "")]
    assert response.usage.total_tokens == 12 and response.finish_reason == "tool_calls"


def test_content_parts(tmp_path):
    both = Content.new_text("a") + "b" + Content.new_image("https://x/y.png", "image/png")
    assert both.as_text() == "ab" and [p.type for p in both.parts] == ["text", "text", "image"]
    assert Message.user(["x", Content.new_text("y")]).text == "xy"
    assert Message.user("hi").role is Role.USER and Role.USER == "user"
    odd = tmp_path / "file.unknownext"
    odd.write_bytes(b"..." * 100)
    with pytest.raises(ConfigurationError, match="mime="):
        Content.from_image_file(odd)
    with pytest.raises(ConfigurationError, match="cannot read"):
        Content.from_image_file(tmp_path / "missing.png")
    big = Content.from_image_file(odd, mime="image/png")
    assert "chars>" in repr(big) and big.parts[0].data() == b"..." * 100


def test_request_and_options_validation():
    req = ChatCompletionRequest("m", "hi")
    assert req.messages == (Message.user("hi"),)
    assert req.with_changes(max_tokens=5).max_tokens == 5
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        Timeout(read=-1)
    with pytest.raises(ConfigurationError, match="max_retries"):
        ConnectionOptions(max_retries=-1)
    assert ConnectionOptions(timeout=3).timeout == Timeout(connect=3, read=3)
    assert "sk-" not in repr(ConnectionOptions(headers={"Authorization": "sk-secret"}))


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after-ms": "junk"}) is None
    assert parse_retry_after({}) is None


def test_socket_fallback_finds_the_same_socket(server):
    server.handler = lambda req, reply: reply.sse(b"data: {}\n\n")
    with requests.get(server.url, stream=True, timeout=5) as response:
        assert socket_of(response) is not None
        assert _socket_via_http_client(response.raw) is socket_of(response)
