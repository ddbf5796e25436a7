"""Memory: peak RSS above baseline for many concurrent long streams.

Run: ``python tests/benchmarks/bench_memory.py [--streams 100] [--chunks 20000]``.

A loopback server (a process of its own) streams ``--chunks`` recorded
``chat.completion.chunk`` events per request, chunked, as fast as it can. Each
reader runs in a child process of its own, so the peaks do not mix:

- bare: ``http.client`` on one connection per stream, ``readline()`` through the
  chunked body and ``json.loads`` of each ``data:`` payload, nothing kept (the
  least memory any client needs);
- llmlib: one ``Client`` shared by the threads, one ``chat_completion_stream``
  each; chunks are consumed and dropped, but every stream object is kept alive
  until all have ended;
- with ``--with-openai``, the official ``openai`` SDK the same way (about ten
  times slower than the others here: minutes at the defaults).

Each child imports everything, makes its client and runs one short warm-up
stream, then takes its baseline (current RSS) and resets the kernel's peak
(``/proc/self/clear_refs``, where allowed). It then opens ``--streams`` streams
on as many threads, waits until all are open (headers in), reads them all to
the end, and reports its peak RSS (``getrusage``) above the baseline. Target:
llmlib under 100 MB above baseline at the defaults.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

WIRE = ROOT.parent / "shared" / "wire" / "openai_chat" / "plain_text_with_usage.sse"
TARGET_MB = 100


def make_body(n: int) -> bytes:
    events = WIRE.read_bytes().split(b"\n\n")
    content = [e for e in events if b'"content":"' in e and b'"role"' not in e]
    head, tail = events[0], [e for e in events if b"finish_reason\":\"stop" in e or b'"usage":{' in e]
    body = [head] + [content[i % len(content)] for i in range(n)] + tail + [b"data: [DONE]"]
    return b"\n\n".join(body) + b"\n\n"


def prompt(chunks: int) -> str:
    """The user message: it tells the server how many chunks to stream."""
    return f"chunks={chunks}"


def request_body(chunks: int) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt(chunks)}],
                       "stream": True}).encode()


# --------------------------------------------------------------------- server

def serve() -> None:
    from tests.loopback import LoopbackServer

    bodies = {}
    lock = threading.Lock()

    def handler(req, reply):
        found = re.search(rb"chunks=(\d+)", req.body)
        n = int(found.group(1)) if found else 1
        with lock:
            if n not in bodies:
                body = make_body(n)
                bodies[n] = [body[i:i + 16384] for i in range(0, len(body), 16384)]
        try:
            reply.sse(bodies[n], mode="chunked")
        except OSError:
            reply.keep_alive = False

    srv = LoopbackServer(handler)
    print(srv.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or ends)
    srv.close()


class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()


# --------------------------------------------------------------------- readers

def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def peak_mb() -> float:
    """This process's peak RSS: VmHWM, which ``reset_peak`` resets. Not getrusage's
    ru_maxrss: after fork + exec that also holds the forking parent's RSS."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset the kernel's peak RSS of this process to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class BareStream:
    """One stream read with http.client: each ``data:`` line json.loads'ed, nothing kept."""

    def __init__(self, host: str, port: int, chunks: int) -> None:
        import http.client

        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.conn.request("POST", "/v1/chat/completions", body=request_body(chunks),
                          headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status

    def __iter__(self):
        loads = json.loads
        readline = self.response.readline
        while True:
            line = readline(1 << 20)
            if not line:
                return
            if line.startswith(b"data: "):
                payload = line[6:].rstrip(b"\r\n")
                if payload == b"[DONE]":
                    return
                yield loads(payload)

    def close(self) -> None:
        self.response.close()
        self.conn.close()


def make_opener(kind: str, url: str, streams: int):
    """(open(chunks) -> an iterable stream, close-all) for this reader."""
    if kind == "bare":
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return (lambda chunks: BareStream(parts.hostname, parts.port, chunks)), (lambda: None)
    if kind == "llmlib":
        from llmlib import Client, ConnectionOptions

        client = Client("openai", api_key="sk-bench", base_url=url + "/v1",
                        options=ConnectionOptions(max_retries=0, pool_size=streams))
        return (lambda chunks: client.chat_completion_stream(model="m", messages=prompt(chunks))), \
            client.close
    if kind == "openai":
        import openai

        sdk = openai.OpenAI(api_key="sk-bench", base_url=url + "/v1", max_retries=0)
        return (lambda chunks: sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": prompt(chunks)}], stream=True)), sdk.close
    raise SystemExit(f"unknown reader {kind}")


def child(kind: str, url: str, streams: int, chunks: int) -> None:
    """Run one reader; print a JSON line with its figures."""
    open_stream, close_all = make_opener(kind, url, streams)
    warm = open_stream(5)  # lazy imports, first connection
    for _ in warm:
        pass
    getattr(warm, "close", lambda: None)()
    del warm
    import gc

    gc.collect()
    baseline = rss_mb()
    reset = reset_peak()
    peak_before = peak_mb()

    opened = threading.Barrier(streams + 1)
    kept = [None] * streams
    counts = [0] * streams
    errors = []

    def run(i: int) -> None:
        try:
            kept[i] = stream = open_stream(chunks)
        except BaseException as exc:  # let the others go on; reported below
            errors.append(f"{type(exc).__name__}: {exc}")
            opened.wait()
            return
        opened.wait()
        n = 0
        try:
            for _ in stream:
                n += 1
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        counts[i] = n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    opened.wait()
    open_mb = rss_mb()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    end_mb = rss_mb()  # every stream object still alive here
    # VmHWM, or a sample above it (the kernel's RSS counters are approximate at the 100 kB level)
    peak = max(peak_mb(), open_mb, end_mb)
    for stream in kept:
        if stream is not None:
            getattr(stream, "close", lambda: None)()
    close_all()
    print(json.dumps({"baseline": baseline, "peak": peak, "peak_before": peak_before, "reset": reset,
                      "open": open_mb, "end": end_mb, "elapsed": elapsed, "chunks": sum(counts),
                      "errors": errors[:3], "n_errors": len(errors)}), flush=True)


def measure(kind: str, url: str, streams: int, chunks: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", kind, url, str(streams), str(chunks)],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{kind} reader failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100, help="concurrent streams (default 100)")
    parser.add_argument("--chunks", type=int, default=20000, help="chunks per stream (default 20000)")
    parser.add_argument("--with-openai", action="store_true", help="also measure the openai SDK (slow)")
    args = parser.parse_args()

    kinds = ["bare", "llmlib"]
    if args.with_openai:
        if importlib.util.find_spec("openai") is None:  # not imported here: this process stays small
            raise SystemExit("--with-openai: the openai package is not installed")
        kinds.append("openai")
    server = Server()
    rows = {}
    try:
        for kind in kinds:
            rows[kind] = measure(kind, server.url, args.streams, args.chunks)
    finally:
        server.close()

    expected = args.streams * (make_body(args.chunks).count(b"\n\ndata: {") + 1)  # JSON events per stream
    print(f"{args.streams} concurrent streams x {args.chunks} chunks, loopback, each reader in its own process")
    print(f"{'reader':10} {'baseline MB':>12} {'peak MB':>9} {'above':>8} {'all open':>9} {'at end':>8} "
          f"{'chunks':>10} {'seconds':>8}  errors")
    for kind, r in rows.items():
        above = r["peak"] - r["baseline"]
        print(f"{kind:10} {r['baseline']:12.1f} {r['peak']:9.1f} {above:8.1f} {r['open'] - r['baseline']:9.1f} "
              f"{r['end'] - r['baseline']:8.1f} {r['chunks']:10} {r['elapsed']:8.1f}  {r['n_errors']} "
              f"{r['errors'] if r['errors'] else ''}")
        if not r["reset"]:
            print(f"  ({kind}: could not reset the peak; the import-time peak was {r['peak_before']:.1f} MB)")
        if r["chunks"] != expected and not r["n_errors"]:
            print(f"  ({kind}: {r['chunks']} chunks read, expected {expected})")
    bare = rows["bare"]["peak"] - rows["bare"]["baseline"]
    ours = rows["llmlib"]["peak"] - rows["llmlib"]["baseline"]
    print("(above: peak RSS above baseline; all open / at end: RSS above baseline once every stream has its "
          "headers / once all have ended, stream objects still alive)")
    print(f"llmlib above baseline: {ours:.1f} MB (target < {TARGET_MB} MB): "
          f"{'OK' if ours < TARGET_MB else 'MISSED'}; llmlib / bare reader: {ours / max(bare, 0.1):.2f} "
          f"({ours - bare:+.1f} MB)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve()
    elif sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
