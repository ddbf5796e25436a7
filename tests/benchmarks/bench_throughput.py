"""Streaming throughput: chunks per second through ``chat_completion_stream``.

Run: ``python tests/benchmarks/bench_throughput.py [--chunks N] [--rounds R]``.

A loopback server, in a process of its own, streams N recorded
``chat.completion.chunk`` events as fast as it can. In the same run the script measures:

- bare: a raw socket reader that splits a close-delimited body's events on blank
  lines and ``json.loads`` each payload (the least work of a client that parses
  every payload; llmlib does not parse a payload of a shape it has seen);
- llmlib: ``Client.chat_completion_stream`` over the same body close-delimited and
  chunked (chunked decoding is llmlib's extra work, counted against it);
- the official ``openai`` SDK, when it is installed;

and prints each rate and its ratio to the bare reader (target: llmlib >= 0.80),
then a per-chunk cost breakdown of llmlib's stages measured in-process on the same
bytes. Best of R rounds; the machine is shared, so ratios matter, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.loopback import LoopbackServer  # noqa: E402

WIRE = ROOT.parent / "shared" / "wire" / "openai_chat" / "plain_text_with_usage.sse"


def make_body(n: int) -> bytes:
    events = WIRE.read_bytes().split(b"\n\n")
    content = [e for e in events if b'"content":"' in e and b'"role"' not in e]
    head, tail = events[0], [e for e in events if b"finish_reason\":\"stop" in e or b'"usage":{' in e]
    body = [head] + [content[i % len(content)] for i in range(n)] + tail + [b"data: [DONE]"]
    return b"\n\n".join(body) + b"\n\n"


def serve(n: int) -> None:
    """The server process: streams ``make_body(n)``, close-delimited under
    ``/close/...`` and chunked under ``/chunked/...``; prints its URL, runs until
    its stdin closes."""
    body = make_body(n)
    pieces = [body[i:i + 16384] for i in range(0, len(body), 16384)]
    server = LoopbackServer(lambda req, reply: reply.sse(pieces, mode=req.path.split("/")[1]))
    print(server.url, flush=True)
    sys.stdin.read()
    server.close()


def bare_reader(port: int) -> int:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /close/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    buf = b""
    headers_done = False
    count = 0
    loads = json.loads
    while True:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
        if not headers_done:
            if b"\r\n\r\n" not in buf:
                continue
            buf = buf.split(b"\r\n\r\n", 1)[1]
            headers_done = True
        *events, buf = buf.split(b"\n\n")
        for event in events:
            payload = event[6:]
            if payload != b"[DONE]":
                loads(payload)
                count += 1
    sock.close()
    return count


def best_rate(fn, rounds: int, expected: int) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        got = fn()
        elapsed = time.perf_counter() - start
        assert got == expected, f"{got} chunks, expected {expected}"
        best = max(best, got / elapsed)
    return best


def breakdown(body: bytes, n: int) -> dict:
    """Microseconds per chunk of each llmlib stage, measured on the same bytes."""
    from llmlib.framing import SSEFramer
    from llmlib.providers.base import json_object
    from llmlib.providers.openai import StreamDecoder
    from llmlib.streaming import Accumulator

    pieces = [body[i:i + 4096] for i in range(0, len(body), 4096)]  # the size llmlib reads
    out = {}

    def timed(name, fn, reps=3):
        best = min(_time(fn) for _ in range(reps))
        out[name] = best / n * 1e6

    events = list(SSEFramer(pieces))
    datas = [e.data for e in events if e.data != "[DONE]"]

    def decode(stream=events, shapes=True):
        decoder = StreamDecoder("openai")
        if not shapes:
            decoder._shapes_left = 0  # every payload through the JSON parser
        return [decoder.decode(e) for e in stream]

    chunks = [c for c in decode() if c is not None]
    # OpenAI's current streams add a random "obfuscation" string to every chunk:
    # a second hole in the payload's shape.
    rng = random.Random(1)
    scrambled = list(SSEFramer([b"".join(
        e[:-1] + b',"obfuscation":"%s"}\n\n' % "".join(rng.choices(string.ascii_letters, k=rng.randint(2, 14))).encode()
        if e.startswith(b"data: {") else e + b"\n\n" for e in body.split(b"\n\n") if e)]))

    def accumulate():
        add = Accumulator().add
        for c in chunks:
            add(c)

    timed("framing and fields (SSEFramer)", lambda: list(SSEFramer(pieces)))
    timed("JSON (json_object)", lambda: [json_object(d) for d in datas])
    timed("decoding, JSON included", decode)
    timed("  the same, every payload parsed", lambda: decode(shapes=False))
    timed("  with OpenAI's obfuscation field", lambda: decode(scrambled))
    timed("  the same, every payload parsed ", lambda: decode(scrambled, shapes=False))
    timed("accumulating (.partial)", accumulate)
    return out


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.chunks)

    from llmlib import Client, ConnectionOptions

    body = make_body(args.chunks)
    expected = body.count(b"\n\ndata: {") + 1
    rows = []
    # The server runs in a process of its own: in this one it would take the GIL
    # from the reader at every read.
    server = subprocess.Popen([sys.executable, __file__, "--serve", "--chunks", str(args.chunks)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    try:
        # the baseline: the least work a client that parses every payload must do, on the simplest body
        bare = best_rate(lambda: bare_reader(int(url.rsplit(":", 1)[1])), args.rounds, expected)
        rows.append(("bare socket reader (close)", bare, 1.0))
        for mode in ("close", "chunked"):
            client = Client("llamacpp", base_url=f"{url}/{mode}/v1", options=ConnectionOptions(max_retries=0))
            ours = best_rate(lambda: sum(1 for _ in client.chat_completion_stream(model="m", messages="hi")),
                             args.rounds, expected)
            client.close()
            rows.append((f"llmlib ({mode})", ours, ours / bare))
            try:
                import openai
            except ImportError:
                continue
            sdk = openai.OpenAI(api_key="x", base_url=f"{url}/{mode}/v1", max_retries=0)
            rate = best_rate(lambda: sum(1 for _ in sdk.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True)), args.rounds, expected)
            rows.append((f"openai SDK ({mode})", rate, rate / bare))
    finally:
        server.stdin.close()
        server.wait(10)

    print(f"{expected} chunks per stream, best of {args.rounds} rounds, loopback")
    print(f"{'reader':32} {'chunks/s':>12} {'vs bare':>8}")
    for name, rate, ratio in rows:
        print(f"{name:32} {rate:12,.0f} {ratio:8.2f}")
    worst = min(r for n, _, r in rows if n.startswith("llmlib"))
    print(f"llmlib / bare reader: {worst:.2f} (target >= 0.80): {'OK' if worst >= 0.80 else 'BELOW TARGET'}")
    print("\nper-chunk cost of llmlib's stages (microseconds):")
    for name, us in breakdown(body, expected).items():
        print(f"  {name:34} {us:6.2f}")


if __name__ == "__main__":
    main()
