"""Retries end to end (DESIGN.md section 4): which failures are retried, how long
llmlib waits, and that a stream is never retried once it has begun."""

from __future__ import annotations

import email.utils
import json
import socket
import struct
import threading
import time

import pytest

from llmlib import (APIConnectionError, AuthenticationError, BadRequestError, IncompleteStreamError,
                    NotFoundError, PermissionDeniedError, RateLimitError, ServerError, collect)
from tests.conftest import make_client, wire
from tests.loopback import LoopbackServer

OK = json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes())
TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()


def scripted(server, *failures):
    """Answer the first requests with ``failures`` (status, headers), then 200 OK;
    returns the monotonic arrival time of each request."""
    times = []

    def handler(req, reply):
        times.append(time.monotonic())
        n = len(times) - 1
        if n < len(failures):
            status, headers = failures[n]
            reply.json({"error": {"message": f"failure {n}", "type": "server_error"}}, status=status,
                       headers=headers)
        elif req.json().get("stream"):
            reply.sse(TEXT)
        else:
            reply.json(OK)

    server.handler = handler
    return times


FAST = [("retry-after-ms", "10")]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses_are_retried(status, server):
    times = scripted(server, (status, FAST))
    with make_client(server, max_retries=2) as client:
        assert client.chat_completion(model="m", messages="hi").text == OK["choices"][0]["message"]["content"]
    assert len(times) == 2


@pytest.mark.parametrize("status, error", [(400, BadRequestError), (401, AuthenticationError),
                                           (403, PermissionDeniedError), (404, NotFoundError),
                                           (422, BadRequestError)])
def test_other_4xx_are_not_retried(status, error, server):
    times = scripted(server, (status, FAST))
    with make_client(server, max_retries=2) as client, pytest.raises(error):
        client.chat_completion(model="m", messages="hi")
    assert len(times) == 1


def test_x_should_retry_overrides_the_status(server):
    times = scripted(server, (400, FAST + [("x-should-retry", "true")]))
    with make_client(server, max_retries=2) as client:
        client.chat_completion(model="m", messages="hi")
    assert len(times) == 2
    times = scripted(server, (503, FAST + [("x-should-retry", "false")]))
    with make_client(server, max_retries=2) as client, pytest.raises(ServerError) as caught:
        client.chat_completion(model="m", messages="hi")
    assert len(times) == 1 and not caught.value.is_retryable()


def test_retries_give_up_after_max_retries_with_the_last_error(server):
    times = scripted(server, *[(503, FAST)] * 5)
    with make_client(server, max_retries=2) as client, pytest.raises(ServerError, match="failure 2"):
        client.chat_completion(model="m", messages="hi")
    assert len(times) == 3


def test_backoff_doubles_with_jitter(server):
    times = scripted(server, (503, []), (503, []))
    with make_client(server, max_retries=2) as client:
        client.chat_completion(model="m", messages="hi")
    gaps = [b - a for a, b in zip(times, times[1:])]
    # min(0.5 * 2**n, 8) s less up to 25% jitter: 0.375-0.5 s, then 0.75-1.0 s (plus request time).
    assert 0.37 <= gaps[0] < 0.5 + 0.5 and 0.74 <= gaps[1] < 1.0 + 0.5, gaps  # upper: slack for a busy CI


@pytest.mark.parametrize("headers, low, high", [
    ([("retry-after-ms", "300")], 0.29, 0.9),
    ([("Retry-After", "1")], 0.99, 1.6),
    ([("Retry-After", "2"), ("retry-after-ms", "200")], 0.19, 0.9),  # the ms header wins
    ([("Retry-After", "soon")], 0.37, 1.0),  # junk: plain backoff (0.375-0.5 s)
], ids=["ms", "seconds", "ms-wins", "junk"])
def test_retry_after_is_honoured(headers, low, high, server):
    times = scripted(server, (429, headers))
    with make_client(server, max_retries=1) as client:
        client.chat_completion(model="m", messages="hi")
    assert low <= times[1] - times[0] < high, times[1] - times[0]


def test_retry_after_as_an_http_date(server):
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1-2 s from now
    times = scripted(server, (503, [("Retry-After", when)]))
    with make_client(server, max_retries=1) as client:
        client.chat_completion(model="m", messages="hi")
    assert 0.9 <= times[1] - times[0] < 2.6, times[1] - times[0]


def test_a_wait_over_60_s_raises_at_once_with_retry_after(server):
    times = scripted(server, (429, [("Retry-After", "120")]))
    with make_client(server, max_retries=2) as client:
        start = time.monotonic()
        with pytest.raises(RateLimitError) as caught:
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 0.5
    assert caught.value.retry_after == 120 and len(times) == 1


def test_a_refused_connection_is_retried():
    # Find a free port, keep it closed for the first try, then open it for the retry.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    served = []

    def serve_later():
        time.sleep(0.15)  # the first try (at once) is refused; the retry (after 0.375 s or more) is served
        served.append(LoopbackServer(lambda req, reply: reply.json(OK), port=port))

    threading.Thread(target=serve_later).start()
    from llmlib import Client, ConnectionOptions, Timeout

    options = ConnectionOptions(max_retries=2, timeout=Timeout(connect=2, read=5))
    try:
        with Client("openai", api_key="k", base_url=f"http://127.0.0.1:{port}/v1", options=options) as client:
            assert client.chat_completion(model="m", messages="hi").text
    finally:
        for srv in served:
            srv.close()


def test_refused_without_retries_fails_fast():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    from llmlib import Client, ConnectionOptions

    with Client("openai", api_key="k", base_url=f"http://127.0.0.1:{port}/v1",
                options=ConnectionOptions(max_retries=0)) as client:
        start = time.monotonic()
        with pytest.raises(APIConnectionError, match="refused"):
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 1


def _reset(reply) -> None:
    """Close with a TCP reset, no response."""
    reply.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    reply.conn.close()
    reply.keep_alive = False


def test_a_reset_before_the_response_is_retried(server):
    count = []

    def handler(req, reply):
        count.append(1)
        if len(count) == 1:
            _reset(reply)
        else:
            reply.json(OK)

    server.handler = handler
    with make_client(server, max_retries=1) as client:
        assert client.chat_completion(model="m", messages="hi").text
    assert len(count) == 2


def test_a_stream_is_retried_before_it_starts_never_after(server):
    times = scripted(server, (503, FAST))
    with make_client(server, max_retries=2) as client:
        assert collect(client.chat_completion_stream(model="m", messages="hi")).text
    assert len(times) == 2

    events = TEXT.split(b"\n\n")
    count = []

    def breaks_after_two_events(req, reply):
        count.append(1)
        reply.sse(b"\n\n".join(events[:2]) + b"\n\n", mode="close")  # then the connection ends

    server.handler = breaks_after_two_events
    with make_client(server, max_retries=2) as client:
        got = []
        with pytest.raises(IncompleteStreamError) as caught:
            for chunk in client.chat_completion_stream(model="m", messages="hi"):
                got.append(chunk)
    assert len(count) == 1  # no second request: a retry would repeat the first chunks
    assert len(got) == 2 and caught.value.partial.text == collect(got).text
