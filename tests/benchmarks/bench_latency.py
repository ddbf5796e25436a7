"""Latency: time to the first event, and time for a cancel to end a silent stream.

Run: ``python tests/benchmarks/bench_latency.py [--rounds N]``.

A loopback server answers each request with the headers and one event, then goes
silent (the connection stays open, as while a model thinks). In one run the
script measures:

- time to first event (TTFE), on a close-delimited and on a chunked body:
  ``chat_completion_stream(...)`` up to the first chunk out of ``next()``,
  against a bare-socket reader that connects, sends the same request, and
  ``json.loads`` the first ``data:`` payload. Both open a new connection each
  time (llmlib's stream is closed early, which closes its connection). Target:
  llmlib's median under 5 ms above the bare reader's.
- cancel latency: a consumer thread is blocked in ``next()`` on the silent
  stream; the main thread calls ``token.cancel()`` and times until the
  generator has ended. Target: p99 under 50 ms over 200 cancels.

The machine is shared: compare the two columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from llmlib import Client, ConnectionOptions  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402

WIRE = ROOT.parent / "shared" / "wire" / "openai_chat" / "plain_text_with_usage.sse"
FIRST = WIRE.read_bytes().split(b"\n\n")[0] + b"\n\n"
REQUEST_BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()


def silent_after_first_event(mode: str) -> LoopbackServer:
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")], mode=mode)
        reply.piece(FIRST)
        reply.hang(30)  # until the client hangs up
        reply.keep_alive = False

    return LoopbackServer(handler)


def bare_first_event(port: int) -> float:
    start = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Accept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(REQUEST_BODY), REQUEST_BODY))
        buf = b""
        while True:
            buf += sock.recv(65536)
            head = buf.find(b"\r\n\r\n")
            if head < 0:
                continue
            i = buf.find(b"data: ", head)
            j = buf.find(b"\n\n", i) if i >= 0 else -1
            if j >= 0:
                json.loads(buf[i + 6:j])
                return time.perf_counter() - start
    finally:
        sock.close()


def llmlib_first_event(client: Client) -> float:
    start = time.perf_counter()
    stream = client.chat_completion_stream(model="m", messages="hi")
    next(stream)
    took = time.perf_counter() - start
    stream.close()
    return took


def cancel_latency(client: Client) -> float:
    stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
    next(stream)
    ended = threading.Event()

    def consume() -> None:
        for _ in stream:
            pass
        ended.set()

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(0.002)  # let the reader block in recv()
    start = time.perf_counter()
    token.cancel()
    ended.wait(5)
    took = time.perf_counter() - start
    reader.join()
    return took


def ms(values, q=None) -> str:
    if q is None:
        return f"{statistics.median(values) * 1000:7.2f}"
    return f"{sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1000:7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="measurements per figure (default 200)")
    args = parser.parse_args()
    n = args.rounds

    print(f"time to first event, {n} rounds each (ms)          median     p95")
    for mode in ("close", "chunked"):
        server = silent_after_first_event(mode)
        client = Client("openai", api_key="bench", base_url=server.url + "/v1",
                        options=ConnectionOptions(max_retries=0))
        try:
            for _ in range(10):  # warm-up: imports, first connections
                bare_first_event(server.port)
                llmlib_first_event(client)
            bare, ours = [], []
            for _ in range(n):  # interleaved, so both see the same machine load
                bare.append(bare_first_event(server.port))
                ours.append(llmlib_first_event(client))
        finally:
            client.close()
            server.close()
        extra = (statistics.median(ours) - statistics.median(bare)) * 1000
        print(f"  {mode:8s} bare socket reader                 {ms(bare)} {ms(bare, 0.95)}")
        print(f"  {mode:8s} llmlib                            {ms(ours)} {ms(ours, 0.95)}")
        print(f"  {mode:8s} llmlib above bare: {extra:+.2f} ms (target < 5 ms)  "
              f"{'OK' if extra < 5 else 'MISSED'}")

    server = silent_after_first_event("chunked")
    client = Client("openai", api_key="bench", base_url=server.url + "/v1", options=ConnectionOptions(max_retries=0))
    try:
        latencies = [cancel_latency(client) for _ in range(n)]
    finally:
        client.close()
        server.close()
    p99 = sorted(latencies)[min(n - 1, int(0.99 * n))] * 1000
    print(f"cancel latency on a silent stream, {n} cancels (ms): median {ms(latencies).strip()}, "
          f"p99 {p99:.2f}, max {max(latencies) * 1000:.2f} (target p99 < 50 ms)  {'OK' if p99 < 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
