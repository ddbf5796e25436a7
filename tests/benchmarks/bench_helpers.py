"""The cost of llmlib's stream helpers: ``collect(stream)`` and ``events(stream)``
over plain iteration of the same stream's chunks.

Run: ``python tests/benchmarks/bench_helpers.py [--quick] [--chunks 20000] [--rounds 9]``.

The loopback server of ``bench_peers.py`` runs in a process of its own and
streams ``--chunks`` ``chat.completion.chunk`` events per request (chunked, 16
KiB writes, as fast as it can), text chunks and tool-call-argument chunks. One
``Client("openai").chat_completion_stream`` per stream; three ways to read it:

- plain: ``for chunk in stream: pass``;
- collect: ``llmlib.collect(stream)`` (the whole ``ChatCompletionResponse``);
- events: ``for event in llmlib.streaming.events(stream): pass`` (the stream
  then reads its events directly: its decoder makes the per-token events
  without chunks, which is why this can be below 1.00x).

Each round reads one stream each way, the order rotated every round, and takes
the ratio of collect's and events' time to plain's in that round (each timed
from the stream's return, headers in, to its end). The report gives the median ratio over ``--rounds`` rounds with
min-max, against the target: at most 1.10x. Below it, the helpers' own cost per
chunk, measured in-process on the chunks of one stream already in a list
(no network), beside the plain stream's time per chunk.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 1.10
WAYS = ("plain", "collect", "events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 chunks, 3 rounds")
    parser.add_argument("--chunks", type=int, help="chunks per stream (default 20000)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 9)")
    args = parser.parse_args()
    chunks = args.chunks or (1000 if args.quick else 20000)  # 5,000 (40 ms a stream) swung 1.06-1.19x
    rounds = args.rounds or (3 if args.quick else 9)

    from llmlib import Client, ConnectionOptions, collect
    from llmlib.streaming import events

    server = subprocess.Popen([sys.executable, str(HERE / "bench_peers.py"), "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    client = Client("openai", api_key="sk-bench", base_url=url + "/v1", options=ConnectionOptions(max_retries=0))

    def plain(stream):
        for _ in stream:
            pass

    def via_events(stream):
        for _ in events(stream):
            pass

    readers = {"plain": plain, "collect": collect, "events": via_events}
    ratios = {kind: {"collect": [], "events": []} for kind in ("text", "tool")}
    plain_times = {"text": [], "tool": []}
    kept = {}
    try:
        for kind in ("text", "tool"):  # warm-up, and the chunks kept for the in-process figures
            kept[kind] = list(client.chat_completion_stream(model="m", messages=f"{kind}:{chunks}"))
        for i in range(rounds):
            for kind in ("text", "tool"):
                order = WAYS[i % 3:] + WAYS[:i % 3]
                took = {}
                for way in order:
                    stream = client.chat_completion_stream(model="m", messages=f"{kind}:{chunks}")
                    start = time.perf_counter()
                    readers[way](stream)
                    took[way] = time.perf_counter() - start
                plain_times[kind].append(took["plain"])
                for way in ("collect", "events"):
                    ratios[kind][way].append(took[way] / took["plain"])
    finally:
        client.close()
        server.stdin.close()
        server.wait(10)

    print(f"{chunks:,} chunks per stream, llmlib chat_completion_stream, {rounds} alternating rounds: time of "
          "each helper over plain iteration of the same stream in the same round, median (min-max)")
    print(f"{'':20} {'text chunks':>20} {'tool-call chunks':>20}")
    worst = 0.0
    for way in ("collect", "events"):
        cells = []
        for kind in ("text", "tool"):
            r = ratios[kind][way]
            med = statistics.median(r)
            worst = max(worst, med)
            cells.append(f"{med:.2f}x ({min(r):.2f}-{max(r):.2f})")
        print(f"{way + '(stream)':20} {cells[0]:>20} {cells[1]:>20}")
    print(f"worst median: {worst:.2f}x (target <= {TARGET:.2f}x): {'OK' if worst <= TARGET else 'ABOVE TARGET'}")

    print("\nper chunk, microseconds (in-process on the chunks of one stream in a list; plain: the stream read)")
    for kind in ("text", "tool"):
        n = len(kept[kind])
        cost = {}
        for way, fn in (("collect", collect), ("events", lambda cs: list(events(cs)))):
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                fn(iter(kept[kind]))
                best = min(best, time.perf_counter() - start)
            cost[way] = best / n * 1e6
        read = statistics.median(plain_times[kind]) / n * 1e6
        print(f"  {kind:5} plain stream {read:6.2f}   collect {cost['collect']:5.2f}   events {cost['events']:5.2f}")


if __name__ == "__main__":
    main()
