"""llmlib beside its peers, side by side in one run: throughput, time to first
chunk, cancel latency, batch wall time and memory.

Run: ``python tests/benchmarks/bench_peers.py [--quick] [--rounds 3] [--metrics ...] [--markdown out.md]``
(the peers come with ``pip install -e '.[bench]'``; openai and litellm are
skipped when not importable). ``--streams 100 --mem-chunks 20000`` gives the
issue's memory size; ``--quick`` is a smoke run (one round, small sizes).

Readers (how each is driven: ``peers_clients.py``): bare (a socket reader that
runs ``json.loads`` on every event and builds nothing), requests + sseclient-py, the official
openai SDK, LiteLLM, llmlib. One loopback server (``tests/loopback.py``) runs in
a process of its own. Each round starts every reader in a fresh process, one
after another, the order rotated every round; the process imports its client,
reads one short warm-up stream, then measures every selected metric (memory
first, so its baseline is the process just after imports and warm-up), and
prints its figures. Each table gives per reader the median over the rounds (or
over all samples, for the latencies) with min-max, and the median's ratio to the
bare reader's. The machine is shared: compare readers within one run.

- throughput: the server streams ``--chunks`` ``chat.completion.chunk`` events
  (chunked, 16 KiB writes, as fast as it can), of two kinds: text (the recorded
  ``../shared/wire/openai_chat/plain_text_with_usage.sse`` content chunks,
  repeated) and tool (each chunk a ``delta.tool_calls[0].function.arguments``
  piece); chunks/s = the server's event count over the time from the call that
  sends the request to the end of the reading loop, one stream of each kind per
  round.
- time to first chunk: the server sends the headers and one content event, then
  waits 3 s (or until the client hangs up) before the rest; measured from the
  call that sends the request to the first chunk out of the reader's loop, on a
  chunked and on a close-delimited body, ``--samples`` times per round after a
  warm-up. A reader that has yielded nothing after 2 s is reported as "> 2 s"
  (it buffers the body) and not sampled again in that round.
- cancel latency: the server sends the headers and one event, then goes silent
  (8 s). A consumer thread is blocked in the reader's loop; the main thread
  cancels the stream the way the client allows (bare: ``socket.shutdown``;
  requests: ``response.close()``; openai: ``stream.close()``; litellm: its sync
  stream has no close, "no cancel"; llmlib: ``CancelToken.cancel()``) and times
  from that call to the loop's end (quietly or by an exception, which the table
  names). Bounded at 5 s: "> 5 s" when it does not end (no further samples then).
- batch: 256 non-streamed requests, 32 at a time, the server answering each
  after 50 ms and after 200 ms; wall time over the ideal (256 / 32 x delay).
  Every reader uses a ``ThreadPoolExecutor(32)`` over one shared client, except
  llmlib, which uses its own ``Client.chat_completion_batch(concurrency_limit=32)``.
  A warm-up of 32 requests opens the pools' connections first.
- memory: ``--streams`` threads in the reader's process each open a stream of
  ``--mem-chunks`` text chunks, wait until all are open, and read them to the
  end, every stream object kept alive until all have ended; the figure is the
  peak RSS (sampled every 5 ms, and the kernel's VmHWM reset at the baseline)
  above the baseline RSS taken after imports and warm-up, in MiB. Reading stops
  after ``--mem-cap`` seconds (slow readers: the figure is then a lower bound,
  and the table says how much was read).
  One more reader is measured here only: requests+sseclient+text, which keeps
  each stream's answer text as it arrives (``text += piece``), as llmlib's
  streams do for ``.partial`` and ``collect()``: the like-for-like reference.

LiteLLM is run with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no network fetch of
its price list at import).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from peers_clients import CANCEL_BOUND, FIRST_BOUND, BATCH_N, BATCH_WORKERS, child, median_inf  # noqa: E402

WIRE = ROOT.parent / "shared" / "wire" / "openai_chat" / "plain_text_with_usage.sse"
READERS = ("bare", "requests+sseclient", "requests+sseclient+text", "openai", "litellm", "llmlib")
#: Readers measured on some metrics only: the others' tables leave them out.
ONLY = {"requests+sseclient+text": ("memory",)}
MODULES = {"requests+sseclient": "sseclient", "requests+sseclient+text": "sseclient", "openai": "openai",
           "litellm": "litellm", "llmlib": "llmlib"}
KINDS = ("text", "tool")
METRICS = ("throughput", "ttfc", "cancel", "batch", "memory")
FIRST_WAIT = 3.0  # s the server waits after the first event (> FIRST_BOUND)
SILENT_WAIT = 8.0  # s the server stays silent on the cancel stream (> CANCEL_BOUND)
DELAYS = (0.05, 0.2)


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

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


def first_and_rest() -> tuple:
    """One content event, then the rest of a short answer (finish, usage, [DONE])."""
    events = text_body(1).split(b"\n\n")
    content = [e for e in events if b'"content":"' in e and b'"role"' not in e][0]
    tail = [e for e in events if b"finish_reason\":\"stop" in e or b'"usage":{' in e]
    return content + b"\n\n", b"\n\n".join(tail + [b"data: [DONE]"]) + b"\n\n"


def wait_gone(conn: socket.socket, seconds: float) -> bool:
    """Wait up to ``seconds`` for the client to hang up; True if it did."""
    conn.settimeout(seconds)
    try:
        conn.recv(1)
        return True
    except socket.timeout:
        return False
    except OSError:
        return True
    finally:
        try:
            conn.settimeout(None)
        except OSError:
            pass


def serve() -> None:
    import threading

    from tests.loopback import LoopbackServer

    cache, lock = {}, threading.Lock()
    first, rest = first_and_rest()
    sse = [("Content-Type", "text/event-stream")]

    def pieces(kind: str, n: int) -> list:
        with lock:
            if (kind, n) not in cache:
                data = (tool_body if kind == "tool" else text_body)(n)
                cache[kind, n] = [data[i:i + 16384] for i in range(0, len(data), 16384)]
            return cache[kind, n]

    def handler(req, reply):
        kind, _, arg = req.json()["messages"][-1]["content"].partition(":")
        try:
            if kind in ("text", "tool", "mem"):
                reply.sse(pieces(kind, int(arg)))
            elif kind == "first":  # the first event, a wait, the rest
                reply.head(200, sse, mode=arg)
                reply.piece(first)
                if not wait_gone(reply.conn, FIRST_WAIT):
                    reply.piece(rest)
                    reply.end()
                reply.keep_alive = reply.keep_alive and arg == "chunked"
            elif kind == "silent":  # the first event, then nothing until the client hangs up
                reply.head(200, sse, mode="chunked")
                reply.piece(first)
                wait_gone(reply.conn, SILENT_WAIT)
                reply.keep_alive = False
            elif kind == "batch":
                time.sleep(float(arg.split(":")[0]))
                reply.send(200, COMPLETION, [("Content-Type", "application/json")], mode="length")
            else:
                reply.send(400, b"unknown scenario")
        except OSError:
            reply.keep_alive = False

    server = LoopbackServer(handler)
    print(server.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.close()


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


def run(args, readers: list, metrics: list) -> dict:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    url = server.stdout.readline().strip()
    opts = {"chunks": args.chunks, "samples": args.samples, "streams": args.streams, "mem_chunks": args.mem_chunks,
            "mem_cap": args.mem_cap,
            "expected": {k: count_events((text_body if k == "text" else tool_body)(args.chunks)) for k in KINDS}}
    results = {r: [] for r in readers}
    notes = {}
    try:
        for i in range(args.rounds):
            order = readers[i % len(readers):] + readers[:i % len(readers)]
            for name in order:
                these = [m for m in metrics if m in ONLY.get(name, metrics)]
                if not these:
                    continue
                started = time.monotonic()
                proc = subprocess.run([sys.executable, __file__, "--measure", name, "--url", url,
                                       "--metrics", ",".join(these), "--opts", json.dumps(opts)],
                                      capture_output=True, text=True, timeout=900)
                lines = proc.stdout.strip().splitlines()
                if proc.returncode != 0 or not lines:
                    err = proc.stderr.strip().splitlines()
                    notes[name] = f"failed: {err[-1] if err else proc.returncode}"
                    continue
                results[name].append(json.loads(lines[-1]))
                print(f"round {i + 1}/{args.rounds}: {name} {time.monotonic() - started:.0f} s",
                      file=sys.stderr, flush=True)
    finally:
        server.stdin.close()
        server.wait(10)
    return {"results": results, "notes": notes}


# ------------------------------------------------------------------ the report

def ms(v: float, bound: float) -> str:
    return f"> {bound:.0f} s" if v == float("inf") else f"{v * 1000:.2f}"


def ratio(v: float, base) -> str:
    if base in (None, 0) or v == float("inf") or base == float("inf"):
        return "–"
    return f"{v / base:.2f}×"


def per_metric(results: dict, metric: str) -> dict:
    """reader -> list of that metric's per-round results (errors set aside)."""
    out = {}
    for name, rounds in results.items():
        if metric in ONLY.get(name, (metric,)):
            out[name] = [r[metric] for r in rounds if metric in r and "error" not in r[metric]]
    return out


def errors_of(results: dict, metric: str) -> list:
    seen = []
    for name, rounds in results.items():
        for r in rounds:
            if metric in r and "error" in r[metric] and (name, r[metric]["error"]) not in seen:
                seen.append((name, r[metric]["error"]))
    return [f"Note: {name} failed: {err}." for name, err in seen]


def table_throughput(results: dict, args) -> list:
    data = per_metric(results, "throughput")
    lines = ["### Stream throughput", "",
             f"{args.chunks:,} chunks per stream, chunked body; chunks/s, median of {args.rounds} rounds (min-max), "
             "and the median's ratio to the bare reader's:", "",
             "| reader | text chunks/s | vs bare | tool-call chunks/s | vs bare |", "|---|---|---|---|---|"]
    base = {k: statistics.median([r[k]["rate"] for r in data["bare"]]) if data.get("bare") else None for k in KINDS}
    notes = []
    for name, rounds in data.items():
        cells = []
        for kind in KINDS:
            values = [r[kind]["rate"] for r in rounds]
            if not values:
                cells += ["–", "–"]
                continue
            med = statistics.median(values)
            cells += [f"{med / 1000:,.1f}k ({min(values) / 1000:,.1f}-{max(values) / 1000:,.1f}k)",
                      ratio(med, base[kind])]
            wrong = [r[kind] for r in rounds if r[kind]["yielded"] != r[kind]["expected"]]
            if wrong:
                notes.append(f"Note: {name} yields {wrong[0]['yielded']} items for {wrong[0]['expected']} "
                             f"events ({kind}).")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    notes.append("The bare reader runs `json.loads` on every event and builds nothing. llmlib builds its typed "
                 "chunks, but reads a payload that repeats the one before it except in its text (or arguments "
                 "piece) without the JSON parser (`llmlib/providers/shape.py`): that is how it can read faster "
                 "than the bare reader.")
    return lines + [""] + notes + errors_of(results, "throughput")


def table_ttfc(results: dict, args) -> list:
    data = per_metric(results, "ttfc")
    lines = ["### Time to first chunk", "",
             f"The server sends the headers and one event, then waits {FIRST_WAIT:.0f} s before the rest; ms from "
             "the call that sends the request to the first chunk yielded, median of all samples "
             f"({args.samples} per round after a warm-up, {args.rounds} rounds) with min-max, and the median's "
             f"ratio to the bare reader's; \"> {FIRST_BOUND:.0f} s (buffers)\": nothing yielded within "
             f"{FIRST_BOUND:.0f} s.", "",
             "| reader | chunked body, ms | vs bare | close-delimited body, ms | vs bare |", "|---|---|---|---|---|"]
    stats = {}
    for name, rounds in data.items():
        stats[name] = {}
        for mode in ("chunked", "close"):
            samples = [t for r in rounds for t in r[mode]]
            stats[name][mode] = median_inf(samples) if samples else None
    for name in data:
        cells = []
        for mode in ("chunked", "close"):
            s = stats[name][mode]
            if s is None:
                cells += ["–", "–"]
                continue
            med, lo, hi = s
            if med == float("inf"):
                cells += [f"> {FIRST_BOUND:.0f} s (buffers)", "–"]
                continue
            base = stats.get("bare", {}).get(mode)
            cells += [f"{ms(med, FIRST_BOUND)} ({ms(lo, FIRST_BOUND)}-{ms(hi, FIRST_BOUND)})",
                      ratio(med, base[0] if base else None)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""] + errors_of(results, "ttfc")


def table_cancel(results: dict, args) -> list:
    data = per_metric(results, "cancel")
    lines = ["### Cancel latency on a silent stream", "",
             "The server sends the headers and one event, then nothing; another thread cancels the stream the way "
             "the client allows; ms from that call to the end of the reading loop, median of all samples "
             f"({args.samples} per round, {args.rounds} rounds) with min-max, and the median's ratio to the bare "
             f"reader's; \"> {CANCEL_BOUND:.0f} s\": the loop had not ended after {CANCEL_BOUND:.0f} s.", "",
             "| reader | cancel by | ms | vs bare | the loop ends by |", "|---|---|---|---|---|"]
    stats = {}
    for name, rounds in data.items():
        samples = [t for r in rounds for t in r.get("samples", [])]
        stats[name] = median_inf(samples) if samples else None
    base = stats.get("bare")
    for name, rounds in data.items():
        if rounds and "unsupported" in rounds[0]:
            lines.append(f"| {name} | {rounds[0]['unsupported']} | no cancel | – | – |")
            continue
        if stats[name] is None:
            lines.append(f"| {name} | – | – | – | – |")
            continue
        med, lo, hi = stats[name]
        raised = sorted({e for r in rounds for e in r.get("raised", [])})
        ends = ("raising " + ", ".join(raised)) if raised else "returning"
        if med == float("inf"):
            ends = "does not end"
        if any(r.get("blocked") for r in rounds):
            ends += f" (the cancel call itself had not returned after {CANCEL_BOUND:.0f} s)"
        figure = (f"> {CANCEL_BOUND:.0f} s" if med == float("inf")
                  else f"{ms(med, CANCEL_BOUND)} ({ms(lo, CANCEL_BOUND)}-{ms(hi, CANCEL_BOUND)})")
        lines.append(f"| {name} | `{rounds[0]['how']}` | {figure} | {ratio(med, base[0] if base else None)} "
                     f"| {ends} |")
    return lines + [""] + errors_of(results, "cancel")


def table_batch(results: dict, args) -> list:
    data = per_metric(results, "batch")
    lines = ["### Batch wall time over the ideal", "",
             f"{BATCH_N} non-streamed requests, {BATCH_WORKERS} at a time, the server answering each after the "
             f"delay; wall time / ideal ({BATCH_N} / {BATCH_WORKERS} x delay), median of {args.rounds} rounds "
             "(min-max), and the median's ratio to the bare reader's:", "",
             "| reader | run by | 50 ms: wall / ideal | vs bare | 200 ms: wall / ideal | vs bare |",
             "|---|---|---|---|---|---|"]
    base = {}
    for d in DELAYS:
        walls = [r[str(d)] for r in data.get("bare", [])]
        base[d] = statistics.median(walls) / (BATCH_N / BATCH_WORKERS * d) if walls else None
    for name, rounds in data.items():
        if not rounds:
            lines.append(f"| {name} | – | – | – | – | – |")
            continue
        cells = [f"`{rounds[0]['how']}`"]
        for d in DELAYS:
            ideal = BATCH_N / BATCH_WORKERS * d
            values = [r[str(d)] / ideal for r in rounds]
            med = statistics.median(values)
            cells += [f"{med:.2f} ({min(values):.2f}-{max(values):.2f})", ratio(med, base[d])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""] + errors_of(results, "batch")


def table_memory(results: dict, args) -> list:
    data = per_metric(results, "memory")
    expected = args.streams * count_events(text_body(args.mem_chunks))
    lines = ["### Peak RSS growth", "",
             f"{args.streams} concurrent streams x {args.mem_chunks:,} chunks, threads in the reader's process; peak "
             "RSS above the baseline after imports and warm-up (MiB), median of "
             f"{args.rounds} rounds (min-max), and the median's ratio to the bare reader's. Reading stops after "
             f"{args.mem_cap:g} s: a reader that had not read everything by then has a lower bound (\">=\").", "",
             "| reader | MiB above baseline | vs bare | chunks read | seconds |", "|---|---|---|---|---|"]
    medians = {name: statistics.median([r["growth"] for r in rounds]) for name, rounds in data.items() if rounds}
    base = medians.get("bare")
    notes = []
    for name, rounds in data.items():
        if not rounds:
            lines.append(f"| {name} | – | – | – | – |")
            continue
        values = [r["growth"] for r in rounds]
        med = medians[name]
        read = statistics.median([r["read"] for r in rounds])
        short = read < expected
        lines.append(f"| {name} | {'>= ' if short else ''}{med:.1f} ({min(values):.1f}-{max(values):.1f}) | "
                     f"{ratio(med, base)} | {read / expected:.0%} of {expected:,} | "
                     f"{statistics.median([r['elapsed'] for r in rounds]):.1f} |")
        errs = [e for r in rounds for e in r["errors"]]
        if errs:
            notes.append(f"Note: {name}: {sum(r['n_errors'] for r in rounds)} stream errors, e.g. {errs[0]}.")
    if "llmlib" in data:
        text = args.streams * text_chars(args.mem_chunks) / 2 ** 20
        note = (f"llmlib keeps the text each stream has received (for `.partial` and `collect()`, a byte per "
                f"character): {text:.1f} MiB here. requests+sseclient+text keeps it too, with "
                "`text += piece` (which CPython grows in place); the other readers keep nothing.")
        if "llmlib" in medians and medians.get("requests+sseclient+text"):
            note += (f" llmlib / requests+sseclient+text: "
                     f"{medians['llmlib'] / medians['requests+sseclient+text']:.2f}x.")
        if "llmlib" in medians and medians.get("requests+sseclient"):
            rest = medians["llmlib"] - text
            note += (f" llmlib's figure less that text: {rest:.1f} MiB, "
                     f"{rest / medians['requests+sseclient']:.2f}x requests + sseclient-py's.")
        notes.append(note)
    return lines + [""] + notes + errors_of(results, "memory")


def text_chars(n: int) -> int:
    """Characters of answer text in a text stream of ``n`` chunks."""
    total = 0
    for event in text_body(n).split(b"\n\n"):
        if event.startswith(b"data: {"):
            for choice in json.loads(event[6:]).get("choices") or ():
                total += len((choice.get("delta") or {}).get("content") or "")
    return total


TABLES = {"throughput": table_throughput, "ttfc": table_ttfc, "cancel": table_cancel, "batch": table_batch,
          "memory": table_memory}


def report(result: dict, args, metrics: list) -> str:
    lines = [f"Readers side by side, each in a fresh process per round, {args.rounds} alternating rounds; "
             "one loopback server in a process of its own.", ""]
    for metric in metrics:
        lines += TABLES[metric](result["results"], args) + [""]
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".")
    for name, note in result["notes"].items():
        lines.append(f"Note: {name} {note}.")
    return "\n".join(lines) + "\n"


def _pin(slot: int) -> None:
    """The server on one CPU, each reader on another, when there are two: on a
    2-core machine the scheduler otherwise puts them on the same core in some
    rounds and not in others, and the rates of every reader jump by 1.5-2x."""
    if not hasattr(os, "sched_getaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        os.sched_setaffinity(0, {cpus[slot]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round, 300 chunks, 3 samples, 20 streams x 500 chunks, 3 s memory cap")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument("--chunks", type=int, help="chunks per throughput stream (default 2000)")
    parser.add_argument("--samples", type=int, help="first-chunk and cancel samples per reader per round (default 5)")
    parser.add_argument("--streams", type=int, help="concurrent streams for memory (default 100)")
    parser.add_argument("--mem-chunks", type=int, help="chunks per memory stream (default 2000)")
    parser.add_argument("--mem-cap", type=float, help="seconds of reading allowed in memory (default 15)")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of " + ", ".join(METRICS))
    parser.add_argument("--readers", default=",".join(READERS), help="comma-separated subset of " + ", ".join(READERS))
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--opts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve or args.measure:
        _pin(0 if args.serve else 1)
    if args.serve:
        return serve()
    asked = [m.strip() for m in args.metrics.split(",") if m.strip()]
    metrics = [m for m in METRICS if m in asked]
    if args.measure:
        out = child(args.measure, args.url, metrics, json.loads(args.opts))
        print(json.dumps(out), flush=True)
        os._exit(0)  # readers abandoned on silent streams (daemon threads) need not be waited for
    defaults = dict(rounds=3, chunks=2000, samples=5, streams=100, mem_chunks=2000, mem_cap=15.0)
    if args.quick:
        defaults = dict(rounds=1, chunks=300, samples=3, streams=20, mem_chunks=500, mem_cap=3.0)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [m for m in asked if m not in METRICS]
    if unknown:
        raise SystemExit(f"unknown metrics: {unknown}")
    wanted = [r.strip() for r in args.readers.split(",") if r.strip()]
    readers = [r for r in available() if r in wanted]
    result = run(args, readers, metrics)
    for name in wanted:
        if name not in readers:
            result["notes"][name] = "not installed (pip install -e '.[bench]')"
    text = report(result, args, metrics)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    main()
