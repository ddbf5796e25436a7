"""A canary key, placed in the API key, a header, the query string and the request
body, must never show in a repr, str, exception, traceback or log record, even
when the server echoes it back and urllib3 logs at DEBUG level."""

from __future__ import annotations

import json
import logging
import socket
import traceback

import pytest

import llmlib
from llmlib import Client, ConnectionOptions, LLMError, Timeout
from tests.conftest import wire

CANARY = "sk-CANARY-7f3a9c1e5b2d4a6f8e0c"
TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
EVENTS = TEXT.split(b"\n\n")[:-1]


def _client(url: str, **options) -> Client:
    options.setdefault("max_retries", 1)
    options.setdefault("timeout", Timeout(connect=5, read=0.5))
    options.setdefault("headers", {"x-api-key": CANARY, "X-Title": "canary test"})
    return Client("openai", api_key=CANARY, base_url=f"{url}/v1?key={CANARY}",
                  options=ConnectionOptions(**options))


def _echo(status: int, mode: str):
    """A server that echoes the key and the request back, the way real ones do."""
    def handler(req, reply):
        said = f"Incorrect API key provided: {CANARY}. You sent {req.path} {req.body.decode()}"
        if mode == "json":
            reply.json({"error": {"message": said, "type": "invalid_request_error", "param": CANARY}},
                       status=status, headers=[("x-request-id", "req_1")])
        elif mode == "html":
            reply.send(status, f"<html>{said}</html>".encode(), [("Content-Type", "text/html")], mode="length")
        elif mode == "bad-json-stream":
            reply.sse(EVENTS[0] + b"\n\ndata: {" + said.encode() + b"\n\n")
        elif mode == "error-event":
            reply.sse(EVENTS[0] + b"\n\ndata: " + json.dumps({"error": {"message": said}}).encode() + b"\n\n")
        elif mode == "cut":
            reply.sse(EVENTS[0] + b"\n\n" + said.encode(), mode="close")
        elif mode == "stall":
            reply.head(200, [("Content-Type", "text/event-stream")])
            reply.piece(EVENTS[0] + b"\n\n")
            reply.hang(3)
    return handler


CASES = [(401, "json"), (400, "json"), (429, "json"), (500, "json"), (200, "html"), (502, "html"),
         (200, "bad-json-stream"), (200, "error-event"), (200, "cut"), (200, "stall")]


def _everything_printed(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
             repr(getattr(exc, "body", None)), repr(vars(exc))]
    return "\n".join(parts)


def _calls(client):
    yield lambda: client.chat_completion(model="m", messages=f"my key is {CANARY}")
    yield lambda: list(client.chat_completion_stream(model="m", messages=f"my key is {CANARY}"))


@pytest.mark.parametrize("status, mode", CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_the_canary_never_leaks(status, mode, server, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3, requests, sseclient and llmlib at DEBUG
    server.handler = _echo(status, mode)
    with _client(server.url) as client:
        assert CANARY not in repr(client) and CANARY not in str(client)
        assert CANARY not in repr(client.options) and CANARY not in repr(client._transport.session.auth)
        raised = []
        for call in _calls(client):
            with pytest.raises(LLMError) as caught:
                call()
            raised.append(caught.value)
            assert CANARY not in _everything_printed(caught.value)
        assert any(r.status_code == status for r in raised)
    assert server.requests and CANARY in server.requests[0].path  # it was really sent, and echoed
    records = [(r.name, r.getMessage()) for r in caplog.records]
    assert any(name.startswith("urllib3") for name, _ in records)  # the debug log was on
    leaked = [r for r in records if CANARY in r[1]]
    assert not leaked
    assert CANARY not in caplog.text


def test_connection_failures_do_not_leak_the_canary(caplog):
    caplog.set_level(logging.DEBUG)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with _client(f"http://127.0.0.1:{port}", max_retries=1) as client:
        with pytest.raises(llmlib.APIConnectionError) as caught:
            client.chat_completion(model="m", messages="hi")
    assert CANARY not in _everything_printed(caught.value)
    assert any("Retry" in r.getMessage() for r in caplog.records)  # urllib3 logged the retry...
    assert CANARY not in caplog.text  # ...without the query string's key


def test_a_client_never_used_nor_closed_stops_scrubbing_when_collected():
    import gc

    from llmlib.redaction import _filter

    client = _client("http://127.0.0.1:9")
    assert CANARY in _filter._values
    del client
    gc.collect()
    assert CANARY not in _filter._values


def test_scrubbing_stops_when_the_client_closes():
    from llmlib.redaction import _filter

    with _client("http://127.0.0.1:9"):
        assert CANARY in _filter._values
    assert CANARY not in _filter._values
