"""Batches under faults (issue 8), on real loopback servers: a cancel while the
consumer lags, huge or final 429s, a cancel during backoff, and items that raise
something unexpected. Each test failed before the fix it guards."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping

import pytest

import llmlib
from llmlib import CancelToken, ChatCompletionRequest, errors
from llmlib.batch import (chat_completion_batch, chat_completion_batch_smart,
                          chat_completion_stream_batch)
from llmlib.transport import MAX_RETRY_AFTER
from tests.conftest import wire

QUOTA = wire("errors", "openai_insufficient_quota.json").read_bytes()


def reqs(n, prefix="p"):
    return [ChatCompletionRequest("m", f"{prefix}{i}") for i in range(n)]


def prompt_of(req):
    return req.json()["messages"][-1]["content"]


def answer(text):
    return {"id": "c1", "object": "chat.completion", "model": "m", "created": 1,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def chunk(text=None, finish=None, delta=None):
    choice = {"index": 0, "delta": {"content": text} if delta is None else delta, "finish_reason": finish}
    obj = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "created": 1, "choices": [choice]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def sse_body(n, bad_at=None):
    """``n`` content chunks, a finish chunk and [DONE]; a list for a delta at ``bad_at``."""
    events = [chunk(f"t{k} ") if k != bad_at else chunk(delta=[1, 2]) for k in range(n)]
    return events + [chunk(finish="stop"), b"data: [DONE]\n\n"]


def stream_threads():
    return [t for t in threading.enumerate() if t.name.startswith("llmlib-stream") and t.is_alive()]


def batch_threads():
    return [t for t in threading.enumerate() if t.name.startswith("llmlib-batch") and t.is_alive()]


def finish_within(seconds, fn, token=None):
    """``fn()`` on a daemon thread; its result, or a test failure if it has not
    returned after ``seconds`` (then ``token``, if given, is cancelled so the
    thread can end instead of hanging on for the rest of the session)."""
    out = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: B902 - handed to the test thread
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        if token is not None:
            token.cancel()
            thread.join(5)
        pytest.fail(f"still running after {seconds} s (deadlock or an unbounded wait)")
    if "error" in out:
        raise out["error"]
    return out["result"], time.monotonic() - started


# ---------------------------------------------------------------- 1. stream batch cancel

@pytest.mark.parametrize("how", ["token", "break"])
def test_stream_batch_cancel_with_a_full_buffer_ends_and_joins_workers(client, server, how):
    # Four fast streams of 300 chunks, a 4-chunk buffer and a consumer far slower
    # than the streams: the buffer is full and every worker is waiting to put.
    server.handler = lambda req, reply: reply.sse(sse_body(300))
    token = CancelToken()
    seen = {"after_cancel": 0}

    def consume():
        gen = chat_completion_stream_batch(client, reqs(4), 4, cancel=token, buffer=4)
        for n, (index, item) in enumerate(gen):
            assert not isinstance(item, Exception), item
            if token.cancelled:
                seen["after_cancel"] += 1
            if n == 0:
                time.sleep(0.3)  # the buffer fills; the workers block on it
                if how == "token":
                    token.cancel()  # the caller's token, while the consumer is busy
                    seen["cancelled_at"] = time.monotonic()
                    time.sleep(0.2)  # still busy: a worker polling a full buffer gives up meanwhile
                    seen["resumed_at"] = time.monotonic()
                else:
                    seen["resumed_at"] = time.monotonic()
                    break
        if how == "break":
            gen.close()
        return time.monotonic()

    ended_at, _ = finish_within(5.0, consume, token)
    # The loop ends at the consumer's first look after the cancel, workers joined.
    assert ended_at - seen["resumed_at"] < 0.15
    assert seen["after_cancel"] == 0  # nothing is yielded after a cancel
    assert not stream_threads()
    assert server.wait_closed(2.0)


def test_stream_batch_cancel_wakes_a_consumer_waiting_for_silent_streams(client, server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(chunk("first "))
        reply.hang(10)

    server.handler = handler
    token = CancelToken()
    timer = threading.Timer(0.4, token.cancel)

    def consume():
        got = [item for item in chat_completion_stream_batch(client, reqs(3), 3, cancel=token)]
        return got, time.monotonic()

    timer.start()
    cancel_at = time.monotonic() + 0.4
    (got, ended_at), _ = finish_within(5.0, consume, token)
    assert len(got) == 3 and not any(isinstance(item, Exception) for _, item in got)
    assert ended_at - cancel_at < 0.15
    assert not stream_threads()
    assert server.wait_closed(2.0)


# ---------------------------------------------------------------- 2. smart batch and 429s

@pytest.mark.parametrize("which", ["every", "one"])
def test_smart_batch_gives_up_at_once_on_a_retry_after_over_the_limit(client, server, which):
    def handler(req, reply):
        if which == "every" or prompt_of(req) == "p0":
            reply.json({"error": {"message": "come back in an hour", "type": "rate_limit_error"}}, status=429,
                       headers=[("Retry-After", "3600")])
        else:
            reply.json(answer("ok"))

    server.handler = handler
    token = CancelToken()
    results, took = finish_within(
        5.0, lambda: chat_completion_batch_smart(client, reqs(8), cancel=token), token)
    assert took < 2.0  # an hour is never waited, not for the item, not for the others
    assert 3600 > MAX_RETRY_AFTER
    for i, result in enumerate(results):
        if which == "every" or i == 0:
            assert isinstance(result, errors.RateLimitError) and result.retry_after == 3600
        else:
            assert result.text == "ok"
    assert len(server.requests) == 8  # one request per item, none repeated


def test_smart_batch_never_retries_a_non_retryable_429(client, server):
    server.handler = lambda req, reply: reply.send(429, QUOTA, [("Content-Type", "application/json")],
                                                   mode="length")
    token = CancelToken()
    results, took = finish_within(
        10.0, lambda: chat_completion_batch_smart(client, reqs(8), cancel=token), token)
    assert all(isinstance(r, errors.RateLimitError) and not r.is_retryable() for r in results)
    assert len(server.requests) == 8  # exactly one request per item
    assert took < 1.0  # and no pause for the others either


def test_smart_batch_cancel_wakes_a_backoff_at_once(client, server):
    token = CancelToken()

    def handler(req, reply):
        reply.json({"error": {"message": "boom", "type": "server_error"}}, status=500)
        if len(server.requests) == 2:
            # The second failure starts a backoff of 0.75-1 s; cancel 0.1 s into it.
            threading.Timer(0.1, token.cancel).start()

    server.handler = handler
    cancel_at = {}
    token.on_cancel(lambda: cancel_at.setdefault("t", time.monotonic()))
    results, _ = finish_within(5.0, lambda: chat_completion_batch_smart(client, reqs(1), cancel=token), token)
    returned_at = time.monotonic()
    assert isinstance(results[0], errors.CancelledError)
    assert returned_at - cancel_at["t"] < 0.3
    time.sleep(0.1)
    assert len(server.requests) == 2  # nothing sent after the cancel


# ---------------------------------------------------------------- 3. one odd item, no data loss

class Exploding(Mapping):
    """An ``extra_body`` whose merge into the JSON body raises ``exc``: an item that
    fails with an exception llmlib itself does not raise."""

    def __init__(self, exc, after=None):
        self.exc = exc
        self.after = after  # raise once this is true (or after 2 s)

    def explode(self):
        deadline = time.monotonic() + 2.0
        while self.after is not None and not self.after() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise self.exc

    def __getitem__(self, key):
        self.explode()

    def __iter__(self):
        self.explode()

    def __len__(self):
        return 1

    def keys(self):
        self.explode()


ODD_BODIES = {
    "choices-a-string": json.dumps({"id": "x", "choices": "oops"}).encode(),
    "a-list": b"[1, 2, 3]",
    "message-a-list": json.dumps({"id": "x", "choices": [{"index": 0, "message": [1]}]}).encode(),
    "nested-too-deep": b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json.loads
}


def odd_server(server, odd_index, body):
    def handler(req, reply):
        prompt = prompt_of(req)
        if prompt == f"p{odd_index}":
            reply.send(200, body, [("Content-Type", "application/json")], mode="length")
        else:
            reply.json(answer(f"echo {prompt}"))
    server.handler = handler


@pytest.mark.parametrize("batch", [chat_completion_batch, chat_completion_batch_smart])
@pytest.mark.parametrize("odd", [*ODD_BODIES, "raises-TypeError"])
def test_batch_keeps_every_other_result_when_one_item_raises(client, server, batch, odd):
    requests = reqs(10)
    if odd == "raises-TypeError":
        odd_server(server, None, b"")
        requests[3] = requests[3].with_changes(extra_body=Exploding(TypeError("not today")))
    else:
        odd_server(server, 3, ODD_BODIES[odd])
    token = CancelToken()
    results, _ = finish_within(10.0, lambda: batch(client, requests, cancel=token), token)
    assert len(results) == 10
    for i, result in enumerate(results):
        if i == 3:
            assert isinstance(result, llmlib.LLMError)
            if not isinstance(result.__cause__, llmlib.LLMError) and result.__cause__ is not None:
                # A foreign exception, wrapped: named, with its index, kept as the cause.
                assert isinstance(result, errors.DecodeError)
                assert type(result.__cause__).__name__ in str(result) and "3" in str(result)
        else:
            assert result.text == f"echo p{i}"
    sent = 9 if odd == "raises-TypeError" else 10
    assert len(server.requests) == sent  # the odd item was not retried
    assert not batch_threads()


def test_stream_batch_reports_a_raising_stream_once_and_the_others_go_on(client, server):
    def handler(req, reply):
        prompt = prompt_of(req)
        reply.sse(sse_body(20, bad_at=5 if prompt == "p3" else None), delay=0.002)

    server.handler = handler
    requests = reqs(10)
    requests[7] = requests[7].with_changes(extra_body=Exploding(AttributeError("no such thing")))
    token = CancelToken()
    pairs, _ = finish_within(
        10.0, lambda: list(chat_completion_stream_batch(client, requests, 4, cancel=token)), token)
    failures = {i: item for i, item in pairs if isinstance(item, BaseException)}
    assert sorted(failures) == [3, 7]  # one (index, error) item each
    assert all(isinstance(e, llmlib.LLMError) for e in failures.values())
    assert sum(1 for i, item in pairs if isinstance(item, BaseException)) == 2
    assert "AttributeError" in str(failures[7]) and "7" in str(failures[7])
    for i in set(range(10)) - {3, 7}:
        chunks = [item for j, item in pairs if j == i]
        assert "".join(c.text or "" for c in chunks) == "".join(f"t{k} " for k in range(20))
        assert chunks[-1].finish_reason == "stop"
    assert not stream_threads()


@pytest.mark.parametrize("batch", [chat_completion_batch, chat_completion_batch_smart])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_still_propagate(client, server, batch, exc):
    server.handler = lambda req, reply: reply.hang(5)  # every other request: a long generation
    requests = reqs(10)
    # Among the first sent; it raises once the others running (7 of 8, or 3 of the
    # smart batch's first 4) are waiting for their answers.
    others = 7 if batch is chat_completion_batch else 3
    requests[1] = requests[1].with_changes(extra_body=Exploding(exc(), lambda: len(server.requests) >= others))
    token = CancelToken()
    started = time.monotonic()
    with pytest.raises(exc):
        finish_within(5.0, lambda: batch(client, requests, cancel=token), token)
    assert time.monotonic() - started < 1.0
    assert not batch_threads()
    assert server.wait_closed(2.0)  # the rest were cancelled, their connections closed


def test_stream_batch_propagates_keyboard_interrupt_from_a_worker(client, server):
    server.handler = lambda req, reply: reply.hang(5)
    requests = reqs(4)
    others_waiting = lambda: len(server.requests) >= 3  # noqa: E731
    requests[2] = requests[2].with_changes(extra_body=Exploding(KeyboardInterrupt(), others_waiting))
    token = CancelToken()
    with pytest.raises(KeyboardInterrupt):
        finish_within(5.0, lambda: list(chat_completion_stream_batch(client, requests, 4, cancel=token)), token)
    assert not stream_threads()
    assert server.wait_closed(2.0)
