"""Stream throughput of llmlib beside its peers, measured side by side.

Run: ``python tests/benchmarks/bench_peers.py [--chunks 5000] [--rounds 5] [--markdown out.md]``
(the peers come with ``pip install -e '.[bench]'``).

One loopback server, in a process of its own, streams ``--chunks`` OpenAI
``chat.completion.chunk`` events per request (chunked transfer encoding, 16 KiB
writes, as fast as it can), of two kinds:

- text: the recorded ``../shared/wire/openai_chat/plain_text_with_usage.sse``
  content chunks, repeated;
- tool: chunks each carrying a ``delta.tool_calls[0].function.arguments`` piece.

Each reader runs in a fresh process of its own, one after another, the order
rotated every round, so every reader sees the same machine: it imports its
client, reads one short warm-up stream, then times one whole stream of each
kind (request sent to last chunk). Readers:

- bare: a socket, the chunked encoding undone by hand, events split on blank
  lines, ``json.loads`` of each payload (the least work any client must do);
- requests + sseclient-py: ``requests.post(stream=True)`` read by
  ``sseclient.SSEClient`` and ``json.loads``;
- openai: the official SDK's ``chat.completions.create(stream=True)``;
- litellm: ``litellm.completion(stream=True)`` (skipped when not importable);
- llmlib: ``Client("openai").chat_completion_stream``.

Rates are the server's chunk count over the time taken; the report gives each
reader's median over the rounds with min-max, and the median as a ratio to the
bare reader's. The machine is shared: compare readers within one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

WIRE = ROOT.parent / "shared" / "wire" / "openai_chat" / "plain_text_with_usage.sse"
READERS = ("bare", "requests+sseclient", "openai", "litellm", "llmlib")
MODULES = {"requests+sseclient": "sseclient", "openai": "openai", "litellm": "litellm", "llmlib": "llmlib"}
KINDS = ("text", "tool")


# ------------------------------------------------------------------ bodies

def text_body(n: int) -> bytes:
    events = WIRE.read_bytes().split(b"\n\n")
    content = [e for e in events if b'"content":"' in e and b'"role"' not in e]
    head, tail = events[0], [e for e in events if b"finish_reason\":\"stop" in e or b'"usage":{' in e]
    body = [head] + [content[i % len(content)] for i in range(n)] + tail + [b"data: [DONE]"]
    return b"\n\n".join(body) + b"\n\n"


def tool_body(n: int) -> bytes:
    def chunk(delta: dict, finish=None) -> bytes:
        return b"data: " + json.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "system_fingerprint": "fp_bench", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                           "finish_reason": finish}]}, separators=(",", ":")).encode()

    words = ["Paris", " weather", " in", " Celsius", " for", " tomorrow", " morning", ","]
    out = [chunk({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_bench", "type": "function", "function": {"name": "search", "arguments": ""}}]})]
    out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"query": "'}}]}))
    out += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": words[i % len(words)]}}]})
            for i in range(n - 2)]
    out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"}'}}]}))
    out += [chunk({}, "tool_calls"), b"data: [DONE]"]
    return b"\n\n".join(out) + b"\n\n"


def count_events(body: bytes) -> int:
    return body.count(b"data: {")


# ------------------------------------------------------------------ the server

def serve() -> None:
    from tests.loopback import LoopbackServer

    cache = {}

    def handler(req, reply):
        body = req.json()
        kind, n = body["messages"][-1]["content"].split(":")
        key = (kind, int(n))
        if key not in cache:
            data = (text_body if kind == "text" else tool_body)(int(n))
            cache[key] = [data[i:i + 16384] for i in range(0, len(data), 16384)]
        try:
            reply.sse(cache[key])
        except OSError:
            reply.keep_alive = False

    server = LoopbackServer(handler)
    print(server.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.close()


# ------------------------------------------------------------------ the readers

def read_bare(url: str, prompt: str) -> int:
    host = urlsplit(url)
    payload = json.dumps({"model": "gpt-4o-mini", "stream": True,
                          "messages": [{"role": "user", "content": prompt}]}).encode()
    sock = socket.create_connection((host.hostname, host.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536)
    raw = raw.split(b"\r\n\r\n", 1)[1]
    pending, count, loads, done = b"", 0, json.loads, False
    while True:
        pos = 0
        while True:  # undo the chunked encoding of whatever complete chunks arrived
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol].split(b";")[0], 16)
            if size == 0:
                done = True
                break
            if len(raw) < eol + 2 + size + 2:
                break
            pending += raw[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2
        raw = raw[pos:]
        *events, pending = pending.split(b"\n\n")
        for event in events:
            payload = event[6:]
            if payload != b"[DONE]":
                loads(payload)
                count += 1
        if done:
            break
        data = sock.recv(262144)
        if not data:
            break
        raw += data
    sock.close()
    return count


def make_reader(name: str, url: str):
    if name == "bare":
        return lambda prompt: read_bare(url, prompt)
    if name == "requests+sseclient":
        import requests
        import sseclient

        session = requests.Session()

        def read(prompt: str) -> int:
            response = session.post(url + "/v1/chat/completions", stream=True, json={
                "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": prompt}]})
            count = 0
            for event in sseclient.SSEClient(response).events():
                if event.data == "[DONE]":
                    break
                json.loads(event.data)
                count += 1
            response.close()
            return count
        return read
    if name == "openai":
        import openai

        sdk = openai.OpenAI(api_key="sk-bench", base_url=url + "/v1", max_retries=0)
        return lambda prompt: sum(1 for _ in sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True))
    if name == "litellm":
        import litellm

        return lambda prompt: sum(1 for _ in litellm.completion(
            model="openai/gpt-4o-mini", api_base=url + "/v1", api_key="sk-bench", stream=True,
            messages=[{"role": "user", "content": prompt}]))
    if name == "llmlib":
        from llmlib import Client, ConnectionOptions

        client = Client("openai", api_key="sk-bench", base_url=url + "/v1", options=ConnectionOptions(max_retries=0))
        return lambda prompt: sum(1 for _ in client.chat_completion_stream(model="gpt-4o-mini", messages=prompt))
    raise ValueError(name)


def measure(name: str, url: str, chunks: int) -> None:
    """In a child: one warm-up, then one timed stream of each kind; prints JSON."""
    read = make_reader(name, url)
    read("text:50")
    out = {}
    for kind in KINDS:
        expected = count_events((text_body if kind == "text" else tool_body)(chunks))
        start = time.perf_counter()
        got = read(f"{kind}:{chunks}")
        elapsed = time.perf_counter() - start
        out[kind] = {"rate": expected / elapsed, "yielded": got, "expected": expected}
    print(json.dumps(out), flush=True)


# ------------------------------------------------------------------ the run

def available() -> list:
    return [r for r in READERS if r == "bare" or importlib.util.find_spec(MODULES[r]) is not None]


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("requests", "sseclient-py", "openai", "litellm", "llmlib"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "llmlib"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        if head and "llmlib" in out:
            out["llmlib"] += f" at {head}" + (" with uncommitted changes in llmlib/" if dirty else "")
    except OSError:
        pass
    return out


def run(chunks: int, rounds: int, readers: list) -> dict:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    url = server.stdout.readline().strip()
    rates = {r: {k: [] for k in KINDS} for r in readers}
    notes = {}
    try:
        for i in range(rounds):
            order = readers[i % len(readers):] + readers[:i % len(readers)]
            for name in order:
                proc = subprocess.run([sys.executable, __file__, "--measure", name, "--url", url,
                                       "--chunks", str(chunks)], capture_output=True, text=True, timeout=900)
                if proc.returncode != 0:
                    notes[name] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
                    continue
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                for kind in KINDS:
                    rates[name][kind].append(result[kind]["rate"])
                    if result[kind]["yielded"] != result[kind]["expected"]:
                        notes.setdefault(name, f"yields {result[kind]['yielded']} items for "
                                               f"{result[kind]['expected']} events ({kind})")
            print(f"round {i + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        server.stdin.close()
        server.wait(10)
    return {"rates": rates, "notes": notes}


def report(result: dict, chunks: int, rounds: int) -> str:
    rates, notes = result["rates"], result["notes"]
    bare = {k: statistics.median(rates["bare"][k]) for k in KINDS}
    lines = [f"{chunks:,} chunks per stream, chunked body, median of {rounds} alternating rounds (min-max), "
             "chunks/s and the median's ratio to the bare reader:", "",
             "| reader | text chunks/s | vs bare | tool-call chunks/s | vs bare |", "|---|---|---|---|---|"]
    for name, by_kind in rates.items():
        cells = []
        for kind in KINDS:
            values = by_kind[kind]
            if not values:
                cells += ["–", "–"]
                continue
            med = statistics.median(values)
            cells += [f"{med / 1000:,.1f}k ({min(values) / 1000:,.1f}-{max(values) / 1000:,.1f}k)",
                      f"{med / bare[kind]:.2f}×"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".")
    for name, note in notes.items():
        lines.append(f"Note: {name} {note}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=5000, help="chunks per stream (default 5000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated subset of " + ", ".join(READERS))
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve()
    if args.measure:
        return measure(args.measure, args.url, args.chunks)
    wanted = [r.strip() for r in args.readers.split(",") if r.strip()]
    readers = [r for r in available() if r in wanted]
    skipped = [r for r in wanted if r not in readers]
    result = run(args.chunks, args.rounds, readers)
    for name in skipped:
        result["notes"][name] = "not installed (pip install -e '.[bench]')"
    text = report(result, args.chunks, args.rounds)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    main()
