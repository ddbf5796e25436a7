"""Provider batch jobs (issue 13) against loopback fakes of OpenAI's Batch API and
Anthropic's Message Batches API, as the providers document them:
https://platform.openai.com/docs/api-reference/batch and
https://docs.anthropic.com/en/api/creating-message-batches."""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading

import pytest

from llmlib import CancelToken, ChatCompletionRequest, errors
from llmlib.batch_jobs import BatchJob, BatchStatus, MissingResultError
from tests.conftest import TEST_KEY, make_client


def reqs(n, prefix="p"):
    return [ChatCompletionRequest("m", f"{prefix}{i}", max_tokens=20) for i in range(n)]


def openai_answer(prompt, k):
    return {"id": f"chatcmpl-{k}", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo {prompt}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": k, "completion_tokens": 1, "total_tokens": k + 1}}


def anthropic_answer(prompt, k):
    return {"id": f"msg_{k}", "type": "message", "role": "assistant", "model": "claude-m",
            "content": [{"type": "text", "text": f"echo {prompt}"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": k, "output_tokens": 1}}


def prompt_of(body):
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


def multipart(req):
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    head = f"Content-Type: {req.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + req.body)
    assert message.is_multipart(), "the upload must be multipart/form-data"
    fields = {}
    for part in message.iter_parts():
        fields[part.get_param("name", header="content-disposition")] = (part.get_filename(),
                                                                         part.get_payload(decode=True))
    return fields


class FakeOpenAIBatches:
    """``/v1/files`` and ``/v1/batches``. Each GET of a batch moves it one step
    along ``path`` (validating -> in_progress -> finalizing -> the outcome).
    Prompts starting ``bad`` get a 400 line in the error file; custom ids in
    ``drop`` get no line at all; ``outcome`` failed / expired change the end."""

    def __init__(self, outcome="completed", drop=()):
        self.outcome = outcome
        self.drop = set(drop)
        self.files = {}
        self.batches = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def __call__(self, req, reply):
        path = req.path.split("?", 1)[0]
        assert req.headers.get("authorization") == f"Bearer {TEST_KEY}"
        with self.lock:
            if req.method == "POST" and path == "/v1/files":
                fields = multipart(req)
                assert fields["purpose"][1] == b"batch"
                name, data = fields["file"]
                assert name.endswith(".jsonl")
                for line in data.decode().splitlines():  # as OpenAI validates: every line a request
                    obj = json.loads(line)
                    assert obj["method"] == "POST" and obj["url"] == "/v1/chat/completions"
                    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", obj["custom_id"]) and "stream" not in obj["body"]
                file_id = f"file-{next(self.ids)}"
                self.files[file_id] = data
                return reply.json({"id": file_id, "object": "file", "bytes": len(data), "filename": name,
                                   "purpose": "batch", "status": "processed"})
            if req.method == "POST" and path == "/v1/batches":
                body = req.json()
                assert body["endpoint"] == "/v1/chat/completions" and body["completion_window"] == "24h"
                if body["input_file_id"] not in self.files:
                    return reply.json({"error": {"message": "no such file", "type": "invalid_request_error"}},
                                      status=400)
                batch_id = f"batch_{next(self.ids)}"
                n = len(self.files[body["input_file_id"]].splitlines())
                self.batches[batch_id] = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                                          "input_file_id": body["input_file_id"], "completion_window": "24h",
                                          "status": "validating", "output_file_id": None, "error_file_id": None,
                                          "created_at": 1, "errors": None, "metadata": body.get("metadata"),
                                          "request_counts": {"total": 0, "completed": 0, "failed": 0},
                                          "_n": n, "_steps": 0}
                return reply.json(self._public(self.batches[batch_id]))
            m = re.fullmatch(r"/v1/batches/([^/]+)(/cancel)?", path)
            if m and m.group(1) in self.batches:
                batch = self.batches[m.group(1)]
                if m.group(2) and req.method == "POST":
                    if batch["status"] in ("validating", "in_progress", "finalizing"):
                        batch["status"] = "cancelling"
                elif req.method == "GET":
                    self._advance(batch)
                return reply.json(self._public(batch))
            m = re.fullmatch(r"/v1/files/([^/]+)/content", path)
            if m and req.method == "GET" and m.group(1) in self.files:
                return reply.send(200, self.files[m.group(1)], [("Content-Type", "application/jsonl")],
                                  mode="length")
        reply.json({"error": {"message": f"no route {req.method} {path}"}}, status=404)

    @staticmethod
    def _public(batch):
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _advance(self, batch):
        status = batch["status"]
        if status == "validating":
            if self.outcome == "failed":
                batch.update(status="failed", errors={"object": "list", "data": [
                    {"code": "invalid_json_line", "message": "line 1 is not valid", "line": 1}]})
            else:
                batch.update(status="in_progress", request_counts={"total": batch["_n"], "completed": 0, "failed": 0})
        elif status == "in_progress":
            batch["_steps"] += 1
            if batch["_steps"] >= 2:
                batch["status"] = "finalizing"
        elif status == "finalizing":
            self._finish(batch, self.outcome)
        elif status == "cancelling":
            self._finish(batch, "cancelled")

    def _finish(self, batch, outcome):
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].decode().splitlines()]
        if outcome in ("expired", "cancelled"):
            lines, rest = lines[: len(lines) // 2], lines[len(lines) // 2:]
        else:
            rest = []
        out, err = [], []
        for k, line in enumerate(lines):
            if line["custom_id"] in self.drop:
                continue
            prompt = prompt_of(line["body"])
            if prompt.startswith("bad"):
                err.append({"id": f"batch_req_{k}", "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 400, "request_id": f"req_{k}",
                    "body": {"error": {"message": f"bad prompt {prompt}", "type": "invalid_request_error"}}}})
            else:
                out.append({"id": f"batch_req_{k}", "custom_id": line["custom_id"], "error": None, "response": {
                    "status_code": 200, "request_id": f"req_{k}", "body": openai_answer(prompt, k)}})
        if outcome == "expired":
            err += [{"id": "batch_req_x", "custom_id": line["custom_id"], "response": None,
                     "error": {"code": "batch_expired", "message": "This request could not be executed before "
                                                                   "the completion window expired."}}
                    for line in rest]
        for kind, items in (("output_file_id", out), ("error_file_id", err)):
            if items:
                file_id = f"file-{next(self.ids)}"
                self.files[file_id] = "".join(json.dumps(x) + "\n" for x in reversed(items)).encode()
                batch[kind] = file_id
        batch["status"] = outcome
        batch["request_counts"] = {"total": batch["_n"], "completed": len(out), "failed": len(err)}


class FakeAnthropicBatches:
    """``/v1/messages/batches``: in_progress for two GETs, then ended with a
    results_url of JSONL (reversed order). Prompts ``bad*`` are errored,
    ``late*`` expired; ``drop`` custom ids are missing; a cancel ends the batch
    with the second half canceled."""

    def __init__(self, drop=(), results_host=None):
        self.drop = set(drop)
        self.batches = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.base = None
        self.results_host = results_host

    def __call__(self, req, reply):
        path = req.path.split("?", 1)[0]
        assert req.headers.get("x-api-key") == TEST_KEY and req.headers.get("anthropic-version")
        with self.lock:
            if req.method == "POST" and path == "/v1/messages/batches":
                items = req.json()["requests"]
                ids = [r["custom_id"] for r in items]
                assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids)
                for r in items:
                    assert {"model", "max_tokens", "messages"} <= set(r["params"]) and "stream" not in r["params"]
                batch_id = f"msgbatch_{next(self.ids):04d}"
                self.batches[batch_id] = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                                          "request_counts": {"processing": len(items), "succeeded": 0, "errored": 0,
                                                             "canceled": 0, "expired": 0},
                                          "ended_at": None, "created_at": "2024-09-24T18:37:24Z",
                                          "expires_at": "2024-09-25T18:37:24Z", "cancel_initiated_at": None,
                                          "results_url": None, "_items": items, "_gets": 0, "_results": None}
                return reply.json(self._public(self.batches[batch_id]))
            m = re.fullmatch(r"/v1/messages/batches/([^/]+)(/cancel|/results)?", path)
            if m and m.group(1) in self.batches:
                batch = self.batches[m.group(1)]
                if m.group(2) == "/cancel" and req.method == "POST":
                    batch.update(processing_status="canceling", cancel_initiated_at="2024-09-24T18:40:00Z")
                    return reply.json(self._public(batch))
                if m.group(2) == "/results":
                    if batch["_results"] is None:
                        return reply.json({"type": "error", "error": {"type": "invalid_request_error",
                                                                      "message": "batch not ended"}}, status=400)
                    return reply.send(200, batch["_results"], [("Content-Type", "application/binary")],
                                      mode="length")
                batch["_gets"] += 1
                if batch["processing_status"] == "canceling" or batch["_gets"] >= 3:
                    self._end(batch, req)
                return reply.json(self._public(batch))
        reply.json({"type": "error", "error": {"type": "not_found_error", "message": "no route"}}, status=404)

    @staticmethod
    def _public(batch):
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _end(self, batch, req):
        if batch["_results"] is not None:
            return
        items = batch["_items"]
        cut = len(items) // 2 if batch["processing_status"] == "canceling" else len(items)
        lines, counts = [], {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for k, item in enumerate(items):
            if item["custom_id"] in self.drop:
                counts["succeeded"] += 1  # counted by the provider, but its line is missing from the results
                continue
            prompt = prompt_of(item["params"])
            if k >= cut:
                result = {"type": "canceled"}
            elif prompt.startswith("bad"):
                result = {"type": "errored", "error": {"type": "error", "error": {
                    "type": "invalid_request_error", "message": f"bad prompt {prompt}"}}}
            elif prompt.startswith("late"):
                result = {"type": "expired"}
            else:
                result = {"type": "succeeded", "message": anthropic_answer(prompt, k)}
            counts[result["type"]] += 1
            lines.append({"custom_id": item["custom_id"], "result": result})
        batch["_results"] = "".join(json.dumps(x) + "\n" for x in reversed(lines)).encode()
        host = self.results_host or f"http://{req.headers['host']}"
        batch.update(processing_status="ended", ended_at="2024-09-24T19:00:00Z", request_counts=counts,
                     results_url=f"{host}/v1/messages/batches/{batch['id']}/results")


@pytest.fixture
def openai(server):
    fake = FakeOpenAIBatches()
    server.handler = fake
    with make_client(server) as client:
        yield client, fake


@pytest.fixture
def anthropic(server):
    fake = FakeAnthropicBatches()
    server.handler = fake
    with make_client(server, "anthropic") as client:
        yield client, fake


def test_openai_job_round_trip_in_input_order(openai, server):
    client, fake = openai
    prompts = [f"p{i}" if i % 4 else f"bad{i}" for i in range(10)]
    job = client.submit_batch([ChatCompletionRequest("m", p, max_tokens=20) for p in prompts])
    assert job.id.startswith("batch_") and job.size == 10
    assert job.status().state == "in_progress"
    seen = []
    final = job.wait(poll_interval=0.01, progress=lambda done, total, status: seen.append(status.state))
    assert final.state == "completed" and final.done and final.total == 10
    assert seen[-1] == "completed" and "finalizing" in seen
    results = job.results()
    assert len(results) == 10
    for i, (prompt, result) in enumerate(zip(prompts, results)):
        if prompt.startswith("bad"):
            assert isinstance(result, errors.BadRequestError) and result.status_code == 400
            assert f"bad prompt {prompt}" in str(result)
        else:
            assert result.text == f"echo {prompt}" and result.usage.prompt_tokens == i
    # The batch request the provider got: one JSONL line per request, our encoder's bodies.
    upload = [r for r in server.requests if r.path == "/v1/files"][0]
    lines = [json.loads(x) for x in multipart(upload)["file"][1].decode().splitlines()]
    assert [x["custom_id"] for x in lines] == [f"llmlib-{i}" for i in range(10)]
    assert lines[1]["body"] == {"model": "m", "messages": [{"role": "user", "content": "p1"}],
                                "max_completion_tokens": 20}


def test_openai_output_missing_items_come_back_as_errors(server):
    fake = FakeOpenAIBatches(drop={"llmlib-2", "llmlib-5"})
    server.handler = fake
    with make_client(server) as client:
        job = client.submit_batch(reqs(7))
        job.wait(poll_interval=0.01)
        results = job.results()
    assert len(results) == 7
    for i in (2, 5):
        assert isinstance(results[i], MissingResultError) and results[i].is_retryable()
        assert f"llmlib-{i}" in str(results[i])
    assert [r.text for i, r in enumerate(results) if i not in (2, 5)] == [f"echo p{i}" for i in (0, 1, 3, 4, 6)]


@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_openai_failed_and_expired_jobs(server, outcome):
    server.handler = FakeOpenAIBatches(outcome=outcome)
    with make_client(server) as client:
        job = client.submit_batch(reqs(6))
        status = job.wait(poll_interval=0.01)
        assert status.state == outcome
        results = job.results()
    assert len(results) == 6
    if outcome == "failed":
        assert all(isinstance(r, MissingResultError) and "line 1 is not valid" in str(r) for r in results)
    else:
        assert [r.text for r in results[:3]] == ["echo p0", "echo p1", "echo p2"]
        assert all(isinstance(r, errors.APITimeoutError) and "expired" in str(r) for r in results[3:])


def test_openai_cancel_and_pick_up_from_another_client(openai, server):
    client, fake = openai
    job = client.submit_batch(reqs(8))
    job.status()  # validating -> in_progress
    assert job.cancel().state == "cancelling"
    with make_client(server) as other:  # another process would do the same with the id alone
        again = other.batch_job(job.id)
        assert isinstance(again, BatchJob) and again.id == job.id
        assert again.wait(poll_interval=0.01).state == "cancelled"
        results = again.results()
    assert len(results) == 8
    assert [r.text for r in results[:4]] == [f"echo p{i}" for i in range(4)]
    assert all(isinstance(r, MissingResultError) and "cancelled" in str(r) for r in results[4:])


def test_anthropic_job_round_trip_with_every_result_type(anthropic, server):
    client, fake = anthropic
    prompts = ["p0", "bad1", "p2", "late3", "p4", "p5"]
    job = client.submit_batch([ChatCompletionRequest("claude-m", p, max_tokens=20) for p in prompts])
    assert job.id.startswith("msgbatch_") and job.status().state == "in_progress"
    status = job.wait(poll_interval=0.01)
    assert status.state == "completed" and status.provider_status == "ended"
    assert (status.total, status.succeeded, status.failed) == (6, 4, 2)
    results = job.results()
    assert [r.text for r in (results[0], results[2], results[4], results[5])] == ["echo p0", "echo p2", "echo p4",
                                                                                  "echo p5"]
    assert results[2].usage.prompt_tokens == 2 and results[2].finish_reason == "stop"
    assert isinstance(results[1], errors.BadRequestError) and "bad prompt bad1" in str(results[1])
    assert isinstance(results[3], errors.APITimeoutError) and results[3].is_retryable()
    create = [r for r in server.requests if r.path == "/v1/messages/batches"][0].json()
    assert create["requests"][0] == {"custom_id": "llmlib-0", "params": {
        "model": "claude-m", "max_tokens": 20, "messages": [{"role": "user", "content": "p0"}]}}


def test_anthropic_missing_cancel_and_pick_up(server):
    fake = FakeAnthropicBatches(drop={"llmlib-1"})
    server.handler = fake
    with make_client(server, "anthropic") as client:
        job = client.submit_batch(reqs(6))
        assert job.cancel().state == "cancelling"
        with make_client(server, "anthropic") as other:
            again = other.batch_job(job.id)
            assert again.wait(poll_interval=0.01).state == "cancelled"
            results = again.results()
    assert len(results) == 6
    assert results[0].text == "echo p0" and results[2].text == "echo p2"
    assert isinstance(results[1], MissingResultError)
    assert all(isinstance(r, errors.CancelledError) for r in results[3:])


def test_anthropic_results_url_on_another_host_is_not_followed(server):
    fake = FakeAnthropicBatches(results_host="http://evil.invalid:9")
    server.handler = fake
    with make_client(server, "anthropic") as client:
        job = client.submit_batch(reqs(2))
        job.wait(poll_interval=0.01)
        assert [r.text for r in job.results()] == ["echo p0", "echo p1"]


def test_wait_cancel_progress_and_results_before_done(openai):
    client, fake = openai
    job = client.submit_batch(reqs(3))
    with pytest.raises(errors.ConfigurationError, match="wait"):
        job.results()
    token = CancelToken()
    token.cancel()
    with pytest.raises(errors.CancelledError):
        job.wait(poll_interval=0.01, cancel=token)
    status = job.wait(poll_interval=0.01, progress=True)  # a tqdm bar
    assert isinstance(status, BatchStatus) and status.done


def test_providers_without_a_batch_api_are_refused(server):
    with make_client(server, "groq") as client:
        with pytest.raises(errors.ConfigurationError, match="openai, anthropic"):
            client.submit_batch(reqs(1))
        with pytest.raises(errors.ConfigurationError, match="openai, anthropic"):
            client.batch_job("batch_1")
    assert server.requests == []
