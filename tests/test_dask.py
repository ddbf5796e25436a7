"""A Client on a real Dask cluster (issue 13): a ``distributed.LocalCluster`` of two
worker processes on loopback maps 200 requests over one loopback server in this
process; every answer arrives once and equals a local batch's."""

from __future__ import annotations

import os
import threading
from collections import Counter

import pytest

from llmlib import ChatCompletionRequest, Client, ConnectionOptions, Timeout
from tests.conftest import TEST_KEY

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed: "
                                                        "pip install -e '.[scale]'")

N = 200
CHUNK = 25


def answer(prompt):
    k = int(prompt[1:])
    return {"id": f"c{k}", "object": "chat.completion", "model": "m", "created": k,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"echo {prompt}"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": k, "completion_tokens": 1, "total_tokens": k + 1}}


def run_chunk(llm: Client, prompts):
    """On a worker: the unpickled Client (its own connections) runs a thread-pool batch."""
    results = llm.chat_completion_batch([ChatCompletionRequest("m", p) for p in prompts], concurrency_limit=4)
    return os.getpid(), results


def test_local_cluster_maps_200_requests_once_each(server):
    sent = Counter()
    lock = threading.Lock()

    def handler(req, reply):
        prompt = req.json()["messages"][-1]["content"]
        with lock:
            sent[prompt] += 1
        reply.json(answer(prompt))

    server.handler = handler
    llm = Client("openai", api_key=TEST_KEY, base_url=server.url + "/v1",
                 options=ConnectionOptions(max_retries=0, timeout=Timeout(connect=5, read=20)))
    prompts = [f"p{i}" for i in range(N)]
    chunks = [prompts[i:i + CHUNK] for i in range(0, N, CHUNK)]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as cluster, \
            distributed.Client(cluster) as dask:
        workers = {info["pid"] for info in dask.scheduler_info()["workers"].values()} if all(
            "pid" in info for info in dask.scheduler_info()["workers"].values()) else None
        futures = dask.map(run_chunk, [llm] * len(chunks), chunks, pure=False)
        out = dask.gather(futures, errors="raise")
    pids = {pid for pid, _ in out}
    assert os.getpid() not in pids
    if workers:
        assert pids <= workers
    remote = [r for _, results in out for r in results]
    assert len(remote) == N
    assert sent == Counter({p: 1 for p in prompts}), "every request sent exactly once"

    local = llm.chat_completion_batch([ChatCompletionRequest("m", p) for p in prompts], concurrency_limit=8)
    llm.close()
    assert remote == local
    assert [r.text for r in remote] == [f"echo {p}" for p in prompts]
