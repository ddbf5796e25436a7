"""Resumable batches (issue 13): a real child process killed with SIGKILL in the
middle of a batch against a loopback server in this process, then resumed; torn
last lines; changed requests; retryable and permanent errors; round trips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import attrs
import pytest

from llmlib import ChatCompletionRequest, Message, errors
from llmlib.checkpoint import (Checkpoint, error_from_dict, error_to_dict, request_hash, response_from_dict,
                               response_to_dict)
from llmlib.types import ChatCompletionResponse
from tests.conftest import TEST_KEY, make_client

ROOT = Path(__file__).resolve().parents[1]
N = 40


def reqs(n=N, prefix="p"):
    return [ChatCompletionRequest("m", f"{prefix}{i}", max_tokens=50) for i in range(n)]


def answer(prompt):
    k = int("".join(c for c in prompt if c.isdigit()) or 0)
    return {"id": f"c-{prompt}", "object": "chat.completion", "model": "m", "created": 1000 + k,
            "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo {prompt}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": k, "completion_tokens": 2 * k + 1, "total_tokens": 3 * k + 1,
                      "completion_tokens_details": {"reasoning_tokens": k},
                      "prompt_tokens_details": {"cached_tokens": k // 2}}}


class Echo:
    """The loopback server's handler: counts requests by prompt; ``missing*`` is a
    404, prompts in ``flaky`` get a 503; each answer takes ``delay`` seconds."""

    def __init__(self, delay=0.0, flaky=()):
        self.delay = delay
        self.flaky = set(flaky)
        self.lock = threading.Lock()
        self.sent = Counter()
        self.answered = 0

    def __call__(self, req, reply):
        prompt = req.json()["messages"][-1]["content"]
        with self.lock:
            self.sent[prompt] += 1
        if self.delay:
            time.sleep(self.delay)
        if prompt.startswith("missing"):
            reply.json({"error": {"message": f"no such thing: {prompt}", "type": "invalid_request_error"}},
                       status=404, headers=[("x-request-id", f"req-{prompt}")])
        elif prompt in self.flaky:
            reply.json({"error": {"message": "overloaded, try later", "type": "server_error"}}, status=503)
        else:
            reply.json(answer(prompt))
        with self.lock:
            self.answered += 1

    def reset(self):
        with self.lock:
            self.sent.clear()


def same(a, b):
    """Items equal: responses by value (usage included), errors by class, message, status."""
    if isinstance(a, ChatCompletionResponse):
        return a == b and a.usage == b.usage
    return (type(a) is type(b) and a.message == b.message and a.status_code == b.status_code
            and a.request_id == b.request_id and a.is_retryable() == b.is_retryable())


CHILD = r"""
import sys
from llmlib import ChatCompletionRequest, Client, ConnectionOptions
url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
reqs = [ChatCompletionRequest("m", f"missing{i}" if i % 7 == 3 else f"p{i}", max_tokens=50) for i in range(n)]
with Client("openai", api_key="sk-test-child-0123456789", base_url=url,
            options=ConnectionOptions(max_retries=0)) as client:
    client.chat_completion_batch(reqs, concurrency_limit=4, checkpoint=path)
print("finished")
"""


def child_reqs(n=N):
    return [ChatCompletionRequest("m", f"missing{i}" if i % 7 == 3 else f"p{i}", max_tokens=50) for i in range(n)]


def finished_in(path):
    """Indices with a whole line in the checkpoint file."""
    done = set()
    for line in Path(path).read_bytes().split(b"\n"):
        try:
            done.add(json.loads(line)["index"])
        except ValueError:
            pass
    return done


def test_sigkill_mid_batch_then_resume_sends_nothing_twice(server, tmp_path):
    echo = Echo(delay=0.03)
    server.handler = echo
    requests = child_reqs()
    with make_client(server) as client:
        expected = client.chat_completion_batch(requests, concurrency_limit=4)
    echo.reset()
    echo.answered = 0

    path = tmp_path / "results.jsonl"
    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.url + "/v1", str(path), str(N)], cwd=ROOT,
                                 stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while echo.answered < N // 3 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        assert child.poll() is None, f"the child ended before the kill: {log.read_text()}"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    sent_before = Counter(echo.sent)
    finished = finished_in(path)
    assert 0 < len(finished) < N, f"killed mid-batch: {len(finished)} of {N} finished"

    echo.reset()
    with make_client(server) as client:
        resumed = client.chat_completion_batch(requests, concurrency_limit=4, checkpoint=path)

    for i, req in enumerate(requests):
        prompt = req.messages[-1].content.as_text()
        if i in finished:
            assert echo.sent[prompt] == 0, f"item {i} was finished before the kill and was sent again"
        else:
            assert echo.sent[prompt] == 1, f"item {i} was not finished and must be sent once, not {echo.sent[prompt]}"
    assert sum(sent_before.values()) + sum(echo.sent.values()) <= N + 4  # at most the in-flight ones twice
    assert len(resumed) == N
    for i, (got, want) in enumerate(zip(resumed, expected)):
        assert same(got, want), (i, got, want)
    assert isinstance(resumed[3], errors.NotFoundError) and resumed[3].request_id == "req-missing3"

    # A third call finds everything done: nothing is sent.
    echo.reset()
    with make_client(server) as client:
        again = client.chat_completion_batch(requests, checkpoint=path)
    assert sum(echo.sent.values()) == 0
    assert all(same(a, b) for a, b in zip(again, expected))


def test_torn_last_line_is_tolerated_and_cut_off(client, server, tmp_path):
    echo = Echo()
    server.handler = echo
    path = tmp_path / "cp.jsonl"
    requests = reqs(6)
    first = client.chat_completion_batch(requests, concurrency_limit=2, checkpoint=path)
    data = path.read_bytes()
    lines = data.split(b"\n")[:-1]
    assert len(lines) == 6
    torn_index = json.loads(lines[-1])["index"]
    # Killed in the middle of writing the last line: half of it is on disk.
    path.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2])

    echo.reset()
    resumed = client.chat_completion_batch(requests, concurrency_limit=2, checkpoint=path)
    assert sum(echo.sent.values()) == 1 and echo.sent[f"p{torn_index}"] == 1
    assert resumed == first
    # The torn piece was cut off before the new line was appended: every line is whole JSON.
    for line in path.read_bytes().split(b"\n")[:-1]:
        json.loads(line)
    assert path.read_bytes().endswith(b"\n")

    # Garbage as the last line, without a newline: ignored, nothing re-sent.
    with open(path, "ab") as f:
        f.write(b'{"v": 1, "index": 2, "requ')
    echo.reset()
    assert client.chat_completion_batch(requests, checkpoint=path) == first
    assert sum(echo.sent.values()) == 0


def test_changed_request_at_same_index_is_sent_again(client, server, tmp_path):
    echo = Echo()
    server.handler = echo
    path = tmp_path / "cp.jsonl"
    requests = reqs(5)
    client.chat_completion_batch(requests, checkpoint=path)
    changed = list(requests)
    changed[2] = requests[2].with_changes(temperature=0.5)  # same prompt, another question
    changed[4] = ChatCompletionRequest("m", "new4", max_tokens=50)
    echo.reset()
    results = client.chat_completion_batch(changed, checkpoint=path)
    assert echo.sent == Counter({"p2": 1, "new4": 1})
    assert [r.text for r in results] == ["echo p0", "echo p1", "echo p2", "echo p3", "echo new4"]


def test_retryable_errors_are_sent_again_permanent_ones_kept(client, server, tmp_path):
    echo = Echo(flaky={"p1", "p4"})
    server.handler = echo
    path = tmp_path / "cp.jsonl"
    requests = [ChatCompletionRequest("m", p) for p in ["p0", "p1", "missing2", "p3", "p4"]]
    first = client.chat_completion_batch(requests, checkpoint=path)  # max_retries=0: the 503 is the item
    assert isinstance(first[1], errors.ServerError) and first[1].is_retryable()
    assert isinstance(first[2], errors.NotFoundError)

    echo.flaky = set()
    echo.reset()
    second = client.chat_completion_batch(requests, checkpoint=path)
    assert echo.sent == Counter({"p1": 1, "p4": 1})  # the 404 is not asked again
    assert second[1].text == "echo p1" and second[4].text == "echo p4"
    assert isinstance(second[2], errors.NotFoundError)
    assert same(second[2], first[2]) and "missing2" in str(second[2])
    assert second[0] == first[0] and second[3] == first[3]


def test_smart_batch_resumes_too(client, server, tmp_path):
    echo = Echo()
    server.handler = echo
    path = tmp_path / "cp.jsonl"
    requests = reqs(8)
    first = client.chat_completion_batch_smart(requests, checkpoint=path)
    echo.reset()
    assert client.chat_completion_batch_smart(requests, checkpoint=path) == first
    assert sum(echo.sent.values()) == 0


def test_response_and_error_round_trip():
    obj = answer("p7")
    fresh = ChatCompletionResponse.from_dict(obj)
    back = response_from_dict(json.loads(json.dumps(response_to_dict(fresh))))
    assert back == fresh
    assert back.usage == fresh.usage and back.usage.reasoning_tokens == 7 and back.usage.cached_tokens == 3
    assert back.usage.raw == fresh.usage.raw
    # provider_fields (an Anthropic thinking signature) survive for the next turn.
    signed = attrs.evolve(fresh, choices=[attrs.evolve(fresh.choices[0], message=attrs.evolve(
        fresh.choices[0].message, reasoning_content="hmm", provider_fields={"thinking_signature": "sig"}))])
    back = response_from_dict(json.loads(json.dumps(response_to_dict(signed))))
    assert back == signed and back.choices[0].message.provider_fields == {"thinking_signature": "sig"}

    limited = errors.RateLimitError("slow down", retry_after=12.5, provider="openai", status_code=429,
                                    request_id="r1", body={"error": {"message": "slow down"}})
    rebuilt = error_from_dict(json.loads(json.dumps(error_to_dict(limited))))
    assert type(rebuilt) is errors.RateLimitError and rebuilt.retry_after == 12.5
    assert (rebuilt.message, rebuilt.status_code, rebuilt.request_id, rebuilt.body, rebuilt.provider) == \
        ("slow down", 429, "r1", {"error": {"message": "slow down"}}, "openai")
    quota = errors.RateLimitError("quota", status_code=429, should_retry=False)
    assert error_from_dict(error_to_dict(quota)).is_retryable() is False


def test_request_hash_is_stable_across_processes():
    req = ChatCompletionRequest("m", [Message.system("be brief"), Message.user("hi")], temperature=0.2,
                                tools=[{"name": "f", "parameters": {"type": "object", "b": 1, "a": 2}}],
                                extra_body={"z": 1, "a": [1, 2]})
    here = request_hash(req)
    assert here == request_hash(ChatCompletionRequest("m", [Message.system("be brief"), Message.user("hi")],
                                                      temperature=0.2,
                                                      tools=[{"name": "f", "parameters": {"type": "object", "a": 2,
                                                                                          "b": 1}}],
                                                      extra_body={"a": [1, 2], "z": 1}))
    assert here != request_hash(req.with_changes(temperature=0.3))
    code = ("from llmlib import ChatCompletionRequest, Message\nfrom llmlib.checkpoint import request_hash\n"
            "print(request_hash(ChatCompletionRequest('m', [Message.system('be brief'), Message.user('hi')], "
            "temperature=0.2, tools=[{'name': 'f', 'parameters': {'type': 'object', 'b': 1, 'a': 2}}], "
            "extra_body={'z': 1, 'a': [1, 2]})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == here, out.stderr


def test_unwritable_checkpoint_stops_the_batch(client, server, tmp_path):
    echo = Echo()
    server.handler = echo
    path = tmp_path / "cp.jsonl"
    store = Checkpoint(path, reqs(2))
    store.close()
    with pytest.raises(OSError):
        store.record(0, errors.NotFoundError("x", status_code=404))
