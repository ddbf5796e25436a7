"""The readers of ``bench_peers.py`` and what each child process measures with them.

Not a benchmark on its own: ``bench_peers.py`` runs every reader in a fresh
process (``--measure NAME``), which calls :func:`child` here. Its docstring says
what is measured; this module says how each client is driven:

- bare: a socket per stream, the chunked encoding undone by hand, events split on
  blank lines, ``json.loads`` of each payload; cancel = ``socket.shutdown()`` from
  the other thread; batch calls on one keep-alive socket per worker thread;
- requests+sseclient: ``requests.Session.post(stream=True)`` read by
  ``sseclient.SSEClient``; cancel = ``response.close()`` from the other thread;
- requests+sseclient+text (memory only): the same, keeping each stream's answer
  text with ``text += piece``, as llmlib's streams keep it;
- openai: ``OpenAI().chat.completions.create(stream=True)``; cancel =
  ``stream.close()`` (which closes ``stream.response``) from the other thread;
- litellm: ``litellm.completion(stream=True)``; its sync stream object
  (``CustomStreamWrapper``) has no close() (only ``aclose``): "no cancel". A
  stream left unfinished (the memory cap, time to first chunk) is cleaned up by
  closing the openai ``Stream`` it wraps (``.completion_stream``), not timed;
- llmlib: ``Client("openai").chat_completion_stream``; cancel = the
  ``CancelToken`` of ``chat_completion_stream_with_cancel``; batches with its own
  ``Client.chat_completion_batch(concurrency_limit=32)``.

Every other reader's batch is a ``ThreadPoolExecutor(32)`` mapping one
non-streamed call per request over one shared client (requests: a Session with a
pool of 32; openai: one ``OpenAI`` client; litellm: ``litellm.completion``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

MODEL = "gpt-4o-mini"
FIRST_BOUND = 2.0  # s a reader may take to yield the first chunk before it is reported as "> 2 s"
CANCEL_BOUND = 5.0  # s a cancelled reading loop may take to end before it is reported as "> 5 s"
BATCH_N, BATCH_WORKERS = 256, 32


def payload(prompt: str, stream: bool = True) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


# ------------------------------------------------------------------ bare

def read_bare(url: str, prompt: str) -> int:
    """The bare reader: reads one chunked stream to the end, json.loads each event, counts them."""
    host = urlsplit(url)
    data = payload(prompt)
    sock = socket.create_connection((host.hostname, host.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
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
            body = event[6:]
            if body != b"[DONE]":
                loads(body)
                count += 1
        if done:
            break
        data = sock.recv(262144)
        if not data:
            break
        raw += data
    sock.close()
    return count


class BareStream:
    """One stream on a socket of its own, chunked or close-delimited; yields each
    event's ``json.loads``. ``close()`` closes the socket, ``cancel()`` shuts it down."""

    def __init__(self, url: str, prompt: str) -> None:
        host = urlsplit(url)
        data = payload(prompt)
        self.sock = socket.create_connection((host.hostname, host.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                          b"\r\nAccept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))

    def __iter__(self):
        sock, loads = self.sock, json.loads
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            if not data:
                return
            raw += data
        head, raw = raw.split(b"\r\n\r\n", 1)
        chunked = b"transfer-encoding: chunked" in head.lower()
        pending = b""
        while True:
            if chunked:
                pos = 0
                while True:
                    eol = raw.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(raw[pos:eol].split(b";")[0], 16)
                    if size == 0 or len(raw) < eol + 4 + size:
                        break
                    pending += raw[eol + 2:eol + 2 + size]
                    pos = eol + 4 + size
                raw = raw[pos:]
            else:
                pending, raw = pending + raw, b""
            *events, pending = pending.split(b"\n\n")
            for event in events:
                body = event[6:]
                if body == b"[DONE]":
                    return
                yield loads(body)
            data = sock.recv(65536)
            if not data:
                return
            raw += data

    def close(self) -> None:
        self.sock.close()

    def cancel(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class BareCaller:
    """Non-streamed calls on one keep-alive socket per thread (Content-Length bodies)."""

    def __init__(self, url: str) -> None:
        host = urlsplit(url)
        self.addr = (host.hostname, host.port)
        self.local = threading.local()

    def __call__(self, prompt: str) -> str:
        local = self.local
        if getattr(local, "sock", None) is None:
            local.sock = socket.create_connection(self.addr)
            local.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local.buf = b""
        data = payload(prompt, stream=False)
        sock = local.sock
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        buf = local.buf
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(buf) < length:
            buf += sock.recv(65536)
        body, local.buf = buf[:length], buf[length:]
        return json.loads(body)["choices"][0]["message"]["content"]


# ------------------------------------------------------------------ every reader behind one face

class Reader:
    """``open(prompt)`` -> (iterable of chunks, close or None, cancel or None, how
    cancel is done); ``call(prompt)`` -> one non-streamed answer's text;
    ``batch(prompts)`` -> the texts."""

    name = ""
    batch_how = f"ThreadPoolExecutor({BATCH_WORKERS})"

    def batch(self, prompts):
        with ThreadPoolExecutor(BATCH_WORKERS) as pool:
            return list(pool.map(self.call, prompts))


class Bare(Reader):
    name = "bare"

    def __init__(self, url: str, pool: int) -> None:
        self.url = url
        self.call = BareCaller(url)

    def open(self, prompt):
        s = BareStream(self.url, prompt)
        return s, s.close, s.cancel, "socket.shutdown()"


class RequestsSSE(Reader):
    name = "requests+sseclient"

    def __init__(self, url: str, pool: int) -> None:
        import requests
        import sseclient

        self.sseclient = sseclient
        self.url = url + "/v1/chat/completions"
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool))

    def open(self, prompt):
        response = self.session.post(self.url, stream=True, data=payload(prompt),
                                     headers={"Content-Type": "application/json"})

        def chunks():
            for event in self.sseclient.SSEClient(response).events():
                if event.data == "[DONE]":
                    return
                yield json.loads(event.data)
        return chunks(), response.close, response.close, "response.close()"

    def call(self, prompt):
        r = self.session.post(self.url, data=payload(prompt, stream=False),
                              headers={"Content-Type": "application/json"}, timeout=60)
        return r.json()["choices"][0]["message"]["content"]


class RequestsSSEText(RequestsSSE):
    """requests+sseclient keeping each stream's answer text as it arrives, with
    ``text += piece`` on a local (which CPython grows in place, about a byte per
    character): what a user who wants the answer pays, and so the like-for-like
    reference for llmlib, whose streams keep the text for ``.partial`` and
    ``collect()``. Memory only."""

    name = "requests+sseclient+text"
    metrics = ("memory",)

    def open(self, prompt):
        chunks, close, cancel, how = super().open(prompt)
        kept = _KeptText(chunks, close)
        return kept, kept.close, cancel, how


class _KeptText:
    """Chunks passed through, their ``delta.content`` kept in ``text`` (alive
    as long as this object, as a stream object keeps its text)."""

    def __init__(self, chunks, close) -> None:
        self.chunks, self._close, self.text = chunks, close, ""

    def __iter__(self):
        text = self.text
        try:
            for chunk in self.chunks:
                for choice in chunk.get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        text += piece
                yield chunk
        finally:
            self.text = text

    def close(self) -> None:
        self._close()


class OpenAISDK(Reader):
    name = "openai"

    def __init__(self, url: str, pool: int) -> None:
        import openai

        self.sdk = openai.OpenAI(api_key="sk-bench", base_url=url + "/v1", max_retries=0)

    def open(self, prompt):
        stream = self.sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}],
                                                  stream=True)
        return stream, stream.close, stream.close, "stream.close()"

    def call(self, prompt):
        r = self.sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content


class LiteLLM(Reader):
    name = "litellm"

    def __init__(self, url: str, pool: int) -> None:
        import litellm

        litellm.suppress_debug_info = True
        self.litellm = litellm
        self.base = url + "/v1"

    def open(self, prompt):
        stream = self.litellm.completion(model="openai/" + MODEL, api_base=self.base, api_key="sk-bench",
                                         stream=True, messages=[{"role": "user", "content": prompt}])
        close = getattr(stream, "close", None)  # CustomStreamWrapper: only aclose() (async)
        if close is not None:
            return stream, close, close, "stream.close()"
        # Not offered as a cancel: used only to free the connection of a stream left
        # unfinished (memory's cap, time to first chunk), by closing the openai Stream
        # it wraps. Left open, they hold litellm's pool and later requests wait on it.
        inner = getattr(getattr(stream, "completion_stream", None), "close", None)
        return stream, inner, None, "no cancel (CustomStreamWrapper has no close(), only async aclose())"

    def call(self, prompt):
        r = self.litellm.completion(model="openai/" + MODEL, api_base=self.base, api_key="sk-bench",
                                    messages=[{"role": "user", "content": prompt}])
        return r.choices[0].message.content


class LLMLib(Reader):
    name = "llmlib"
    batch_how = f"Client.chat_completion_batch(concurrency_limit={BATCH_WORKERS})"

    def __init__(self, url: str, pool: int) -> None:
        from llmlib import ChatCompletionRequest, Client, ConnectionOptions

        self.request = ChatCompletionRequest
        self.client = Client("openai", api_key="sk-bench", base_url=url + "/v1",
                             options=ConnectionOptions(max_retries=0, pool_size=pool))

    def open(self, prompt):
        stream, token = self.client.chat_completion_stream_with_cancel(model=MODEL, messages=prompt)
        return stream, stream.close, token.cancel, "CancelToken.cancel()"

    def call(self, prompt):
        return self.client.chat_completion(model=MODEL, messages=prompt).text

    def batch(self, prompts):
        results = self.client.chat_completion_batch([self.request(MODEL, p) for p in prompts],
                                                    concurrency_limit=BATCH_WORKERS)
        return [r if isinstance(r, Exception) else r.text for r in results]


READER_CLASSES = {c.name: c for c in (Bare, RequestsSSE, RequestsSSEText, OpenAISDK, LiteLLM, LLMLib)}


# ------------------------------------------------------------------ what a child measures

def first_chunk(reader: Reader, mode: str) -> float:
    """Seconds from the call that sends the request to the first chunk yielded, or
    None when none came within FIRST_BOUND (the reading thread is then abandoned)."""
    got = threading.Event()
    out = {}

    def read():
        try:
            start = time.perf_counter()
            chunks, close, _, _ = reader.open(f"first:{mode}")
            for _ in chunks:
                out["t"] = time.perf_counter() - start
                got.set()
                break
            if close:
                close()
        except Exception as exc:  # noqa: BLE001 - reported
            out["error"] = f"{type(exc).__name__}: {exc}"[:200]
        got.set()

    threading.Thread(target=read, daemon=True).start()
    if not got.wait(FIRST_BOUND):
        return None
    if "t" not in out:
        raise RuntimeError(out.get("error", "no chunk"))
    return out["t"]


def cancel_once(reader: Reader) -> dict:
    """A reading loop blocked on a silent stream; seconds from cancel() to its end."""
    chunks, close, cancel, how = reader.open("silent")
    if cancel is None:
        if close:
            close()
        return {"unsupported": how}
    first, ended, out = threading.Event(), threading.Event(), {}

    def consume():
        try:
            for _ in chunks:
                first.set()
        except BaseException as exc:  # noqa: BLE001 - how the loop ended is reported
            out["raised"] = type(exc).__name__
        first.set()
        ended.set()

    threading.Thread(target=consume, daemon=True).start()
    if not first.wait(CANCEL_BOUND):
        raise RuntimeError("no first chunk on the silent stream")
    time.sleep(0.02)  # let the reader block in its read
    returned = threading.Event()

    def call_cancel():  # on a thread of its own: a cancel that blocks is bounded too
        try:
            cancel()
        finally:
            returned.set()

    start = time.perf_counter()
    threading.Thread(target=call_cancel, daemon=True).start()
    done = ended.wait(CANCEL_BOUND)
    took = time.perf_counter() - start
    return {"t": took if done else None, "how": how, "raised": out.get("raised"),
            "blocked": not returned.wait(max(0.0, CANCEL_BOUND - took))}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def memory(reader: Reader, streams: int, chunks: int, cap: float) -> dict:
    """Peak RSS above the baseline (taken after imports, client and warm-up) while
    ``streams`` threads each read a stream of ``chunks`` chunks, all kept alive to
    the end. Reading stops at ``cap`` seconds (then the figure is a lower bound)."""
    import gc

    gc.collect()
    baseline = rss_mib()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the kernel's peak (VmHWM) := current RSS
        reset = True
    except OSError:
        reset = False
    peak = [baseline]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib())
            time.sleep(0.005)

    opened = threading.Barrier(streams + 1)
    kept, counts, errors = [None] * streams, [0] * streams, []
    deadline = time.monotonic() + cap

    def run(i):
        try:
            kept[i] = reader.open(f"mem:{chunks}")
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
        try:
            opened.wait(60)
        except threading.BrokenBarrierError:
            pass
        if kept[i] is None:
            return
        n, clock = 0, time.monotonic
        try:
            for _ in kept[i][0]:
                n += 1
                if not n & 63 and clock() > deadline:
                    break
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
        counts[i] = n

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(streams)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    try:
        opened.wait(60)
    except threading.BrokenBarrierError:
        pass
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    top = max(peak[0], rss_mib(), hwm_mib() if reset else 0.0)
    capped = time.monotonic() > deadline
    for k in kept:
        if k is not None and k[1] is not None:
            try:
                k[1]()
            except Exception:  # noqa: BLE001
                pass
    return {"growth": top - baseline, "baseline": baseline, "read": sum(counts), "capped": capped,
            "elapsed": elapsed, "errors": errors[:2], "n_errors": len(errors)}


def batch(reader: Reader, delay: float) -> float:
    prompts = [f"batch:{delay}:{i}" for i in range(BATCH_N)]
    start = time.perf_counter()
    texts = reader.batch(prompts)
    elapsed = time.perf_counter() - start
    bad = [t for t in texts if t != "ok"]
    if bad:
        raise RuntimeError(f"{len(bad)} of {BATCH_N} failed, e.g. {bad[0]!r}"[:200])
    return elapsed


def throughput(reader: Reader, url: str, n: int, expected: dict) -> dict:
    """Chunks/s of a whole stream of each kind, request sent to last chunk: the
    fastest of up to 3 streams (fewer when they take over 3 s together), as timeit
    takes the least disturbed run: on a shared machine the others measure the
    neighbours."""
    out = {}
    for kind in ("text", "tool"):
        best, spent, runs = float("inf"), 0.0, 0
        while runs < 3 and (runs == 0 or spent < 3.0):
            start = time.perf_counter()
            if reader.name == "bare":
                got = read_bare(url, f"{kind}:{n}")
            else:
                chunks, close, _, _ = reader.open(f"{kind}:{n}")
                got = sum(1 for _ in chunks)
                if close:
                    close()
            elapsed = time.perf_counter() - start
            best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
        out[kind] = {"rate": expected[kind] / best, "yielded": got, "expected": expected[kind]}
    return out


def child(name: str, url: str, metrics: list, opts: dict) -> dict:
    """One reader, in this fresh process: every selected metric, memory first (its
    baseline is the process right after imports and a warm-up stream)."""
    reader = READER_CLASSES[name](url, max(opts["streams"], BATCH_WORKERS))
    chunks, close, _, _ = reader.open("text:50")  # warm-up: lazy imports, first connection
    for _ in chunks:
        pass
    if close:
        close()
    del chunks, close
    out = {}

    def phase(metric, fn):
        if metric not in metrics:
            return
        try:
            out[metric] = fn()
        except Exception as exc:  # noqa: BLE001 - one metric's failure is reported, the others go on
            out[metric] = {"error": f"{type(exc).__name__}: {exc}"[:300]}

    phase("memory", lambda: memory(reader, opts["streams"], opts["mem_chunks"], opts["mem_cap"]))
    phase("throughput", lambda: throughput(reader, url, opts["chunks"], opts["expected"]))

    def ttfc():
        res = {}
        first_chunk(reader, "chunked")  # warm-up
        for mode in ("chunked", "close"):
            res[mode] = []
            for _ in range(opts["samples"]):
                t = first_chunk(reader, mode)
                res[mode].append(t)
                if t is None:  # bounded: one wait is enough to show it
                    break
        return res
    phase("ttfc", ttfc)

    def cancels():
        res = {"samples": [], "how": None, "raised": []}
        for _ in range(opts["samples"]):
            one = cancel_once(reader)
            if "unsupported" in one:
                return one
            res["how"] = one["how"]
            res["samples"].append(one["t"])
            if one["raised"]:
                res["raised"].append(one["raised"])
            if one["blocked"]:
                res["blocked"] = True
            if one["t"] is None:
                break
        return res
    phase("cancel", cancels)

    def batches():
        reader.batch([f"batch:0:{i}" for i in range(BATCH_WORKERS)])  # warm-up: the pool's connections
        return {"how": reader.batch_how, **{str(d): batch(reader, d) for d in (0.05, 0.2)}}
    phase("batch", batches)
    return out


def median_inf(values):
    """Median and min-max of values where None means 'above the bound'."""
    vals = [float("inf") if v is None else v for v in values]
    return statistics.median(vals), min(vals), max(vals)
