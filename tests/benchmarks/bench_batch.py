"""Batch wall time against the ideal, and against a plain thread pool.

Run: ``python tests/benchmarks/bench_batch.py``.

1. 256 requests to a loopback server that answers each after 200 ms, 32 at a time:
   wall time / ideal (256 / 32 x 200 ms = 1.6 s). Target: at most 1.10.
2. The same at 50 ms, beside a plain ``ThreadPoolExecutor`` over a ``requests``
   Session with a pool of 32, in the same run. Target: llmlib at most 1.10x it
   (at 50 ms, requests' per-call CPU limits both on two cores).

Both runs also report any "Connection pool is full" warning (there should be none).

The plain pool is printed at 200 ms too: on a 2-core machine each call's CPU in
requests (~1 ms) is paid in line, and a thread's place in that line is the same
in every one of the 8 waves, so both clients land near 1.2x the ideal there.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from llmlib import ChatCompletionRequest, Client, ConnectionOptions  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402

N, CONCURRENCY = 256, 32
BODY = json.dumps({"id": "c", "object": "chat.completion", "model": "m", "created": 1,
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


class PoolWarnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        if "pool is full" in record.getMessage():
            self.count += 1


class server:
    """The loopback server in a process of its own, as a real provider would be:
    in-process, its CPU would share the client's GIL and be counted against it."""

    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(delay)], stdout=subprocess.PIPE,
                                     text=True)
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def serve(delay: float) -> None:
    def handler(req, reply):
        time.sleep(delay)
        reply.send(200, BODY, [("Content-Type", "application/json")], mode="length")
    srv = LoopbackServer(handler)
    print(srv.url, flush=True)
    time.sleep(3600)  # until the benchmark terminates this process


def llmlib_batch(url: str) -> float:
    client = Client("llamacpp", base_url=url + "/v1", options=ConnectionOptions(max_retries=0))
    reqs = [ChatCompletionRequest("m", f"p{i}") for i in range(N)]
    start = time.perf_counter()
    results = client.chat_completion_batch(reqs, concurrency_limit=CONCURRENCY)
    elapsed = time.perf_counter() - start
    client.close()
    assert all(r.text == "ok" for r in results), [r for r in results if isinstance(r, Exception)][:1]
    return elapsed


def plain_pool(url: str) -> float:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=CONCURRENCY)
    session.mount("http://", adapter)
    body = {"model": "m", "messages": [{"role": "user", "content": "p"}]}

    def call(_):
        r = session.post(url + "/v1/chat/completions", json=body, timeout=30)
        return r.json()["choices"][0]["message"]["content"]

    start = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        assert all(text == "ok" for text in pool.map(call, range(N)))
    elapsed = time.perf_counter() - start
    session.close()
    return elapsed


def best(fn, url, rounds=3):
    return min(fn(url) for _ in range(rounds))


def main() -> None:
    warnings = PoolWarnings()
    logging.getLogger("urllib3").addHandler(warnings)

    srv = server(0.2)
    try:
        ideal = N / CONCURRENCY * 0.2
        wall = best(llmlib_batch, srv.url, rounds=2)
        plain200 = best(plain_pool, srv.url, rounds=2)
    finally:
        srv.close()
    print(f"{N} requests, 200 ms each, {CONCURRENCY} at a time: llmlib {wall:.2f} s, ideal {ideal:.2f} s, "
          f"ratio {wall / ideal:.3f} (target <= 1.10); plain ThreadPoolExecutor + requests: "
          f"{plain200 / ideal:.3f} of ideal")

    srv = server(0.05)
    try:
        ours = best(llmlib_batch, srv.url)
        plain = best(plain_pool, srv.url)
    finally:
        srv.close()
    print(f"{N} requests, 50 ms each: llmlib {ours:.2f} s, plain ThreadPoolExecutor + requests {plain:.2f} s, "
          f"ratio {ours / plain:.3f} (target <= 1.10)")
    print(f"'Connection pool is full' warnings: {warnings.count}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(float(sys.argv[2]))
    else:
        main()
