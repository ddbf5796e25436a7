"""Soak: many threads share one Client against a faulty loopback server.

Run: ``python tests/benchmarks/soak.py [--threads 64] [--seconds 60] [--seed S]``.

A loopback OpenAI-compatible server runs in a process of its own on 127.0.0.1 and
answers ``POST /v1/chat/completions``, streamed (SSE ``chat.completion.chunk``
events, then ``data: [DONE]``) and not streamed, with injected faults: ~5% 503
with a small ``retry-after-ms``, ~2% connection resets (an abrupt close with
SO_LINGER 0: before the headers, or mid-body), random small delays before the
headers and between events, and now and then a close-delimited body instead of
a chunked one. Every answer encodes its request: each token is ``[nonce:k]``,
the nonce taken from the request's last user message (which also says how many
tokens to send and how fast), and the chunk ids are ``chatcmpl-<nonce>``.

N threads share one ``Client`` (max_retries=2, connect 5 s, read 10 s) for T
seconds, each looping over a random mix of: a full stream; a stream cancelled
from a timer thread (the token armed before the call, or after it through
``chat_completion_stream_with_cancel``); a stream on a second Client with a
small ``Timeout(total=...)``; an early ``break`` inside ``with
client.chat_completion_stream(...) as s:``; a non-streamed call; a small
``chat_completion_batch``; a small ``chat_completion_stream_batch`` (sometimes
left early).

Every ``llmlib.LLMError`` is an expected outcome, counted by class. A bug is:
any other exception (including one a batch wrapped into a ``DecodeError`` item
whose ``__cause__`` is not an LLMError); a crossed answer (a chunk, response,
batch item or ``.partial`` carrying another request's nonce or id); a garbled
answer (tokens duplicated, skipped or out of order, or a call that ended
without an error but with a short answer); a worker thread still stuck after
the run; and, after ``client.close()``, socket descriptors or threads left over
compared to before the Clients were made, or a ``ResourceWarning``. The script
prints one summary and exits 1 on any bug. It stops by itself: the run is
bounded in time and in calls, and a watchdog ends the process if a call hangs.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import gc
import json
import os
import random
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MAX_CALLS_PER_THREAD = 1_000_000  # a bound on the count as well as on the time
TOTAL_DEADLINE = 0.15  # seconds: the second Client's Timeout(total=...)


# --------------------------------------------------------------------- server

P_503, P_RESET = 0.05, 0.02
ASK = re.compile(rb"nonce-([0-9a-f]{16}) tokens=(\d+) pace=(\d+)")
ERROR_503 = json.dumps({"error": {"message": "The server is overloaded, try again", "type": "server_error",
                                  "code": None}}).encode()


def _token(nonce: str, k: int) -> str:
    return f"[{nonce}:{k}]"


def _event(obj) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _chunk(nonce: str, delta: dict, finish=None, usage=None) -> bytes:
    obj = {"id": f"chatcmpl-{nonce}", "object": "chat.completion.chunk", "created": 1, "model": "soak",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        obj["usage"] = usage
    return _event(obj)


def _reset(conn: socket.socket) -> None:
    """Close abruptly: with SO_LINGER 0 the kernel sends RST, not FIN."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    conn.close()


class _Reset(Exception):
    pass


FAULTS = collections.Counter()  # the server's own tally: requests and faults injected
CROSS = [0.0]  # --inject-crossed: the chance of answering with another nonce (checks the checker)


def _read_request(conn: socket.socket, buf: bytearray):
    """(method, path, headers, body) of the next request, or None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    del buf[:end + 4]
    method, path, _ = head[0].split(" ", 2)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(buf) < length:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    body = bytes(buf[:length])
    del buf[:length]
    return method, path, headers, body


def _answer(conn: socket.socket, rnd: random.Random, path: str, body: bytes) -> bool:
    """Write one response; True to keep the connection open."""
    if path != "/v1/chat/completions":
        msg = b'{"error":{"message":"not found","type":"invalid_request_error"}}'
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(msg), msg))
        return True
    ask = ASK.search(body)
    stream = b'"stream":true' in body.replace(b" ", b"")
    nonce, tokens, pace = (ask.group(1).decode(), int(ask.group(2)), int(ask.group(3))) if ask else ("0" * 16, 3, 0)
    FAULTS["streamed requests" if stream else "plain requests"] += 1
    if CROSS[0] and rnd.random() < CROSS[0]:
        nonce = "%016x" % rnd.getrandbits(64)
        FAULTS["crossed on purpose"] += 1
    if rnd.random() < 0.3:
        time.sleep(rnd.random() * 0.01)  # thinking before the headers
    fault = rnd.random()
    if fault < P_503:
        FAULTS["503"] += 1
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"retry-after-ms: %d\r\nContent-Length: %d\r\n\r\n%s"
                     % (rnd.randint(5, 40), len(ERROR_503), ERROR_503))
        return True
    reset_at = None
    if fault < P_503 + P_RESET:
        if rnd.random() < 0.3:
            FAULTS["reset before the headers"] += 1
            raise _Reset()  # before any byte of the response
        FAULTS["reset mid-body"] += 1
        reset_at = rnd.random()  # this far through the body
    if stream:
        return _stream(conn, rnd, nonce, tokens, pace, reset_at)
    text = "".join(_token(nonce, k) for k in range(tokens))
    payload = json.dumps({"id": f"chatcmpl-{nonce}", "object": "chat.completion", "created": 1, "model": "soak",
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                       "finish_reason": "stop"}],
                          "usage": {"prompt_tokens": 5, "completion_tokens": tokens,
                                    "total_tokens": tokens + 5}}).encode()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload))
    if reset_at is not None:
        conn.sendall(head + payload[:int(len(payload) * reset_at)])
        raise _Reset()
    conn.sendall(head + payload)
    return True


def _stream(conn, rnd, nonce, tokens, pace, reset_at) -> bool:
    chunked = rnd.random() < 0.9
    events = [_chunk(nonce, {"role": "assistant", "content": ""})]
    events += [_chunk(nonce, {"content": _token(nonce, k)}) for k in range(tokens)]
    events.append(_chunk(nonce, {}, "stop", {"prompt_tokens": 5, "completion_tokens": tokens,
                                             "total_tokens": tokens + 5}))
    events.append(b"data: [DONE]\n\n")
    cut = None if reset_at is None else int(len(events) * reset_at)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                 + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Connection: close\r\n\r\n"))
    i = 0
    while i < len(events):
        if cut is not None and i >= cut:
            raise _Reset()
        group = rnd.choice((1, 1, 1, 2, 4))  # several events in one write now and then
        data = b"".join(events[i:i + group])
        i += group
        conn.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if pace:
            time.sleep(pace / 1000.0)
        elif rnd.random() < 0.03:
            time.sleep(rnd.random() * 0.005)
    if cut is not None:
        raise _Reset()  # cut after the last event, before the terminator
    if chunked:
        conn.sendall(b"0\r\n\r\n")
        return True
    return False


def _serve_connection(conn: socket.socket, seed: int) -> None:
    rnd = random.Random(seed)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    try:
        while True:
            request = _read_request(conn, buf)
            if request is None:
                break
            _method, path, _headers, body = request
            if not _answer(conn, rnd, path, body):
                break
    except _Reset:
        _reset(conn)
        return
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass


def serve(seed: int, cross: float) -> None:
    CROSS[0] = cross
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    seeds = random.Random(seed)
    def stop() -> None:
        # The parent closes our stdin when it is done (or killed): report, then stop.
        sys.stdin.read()
        print(json.dumps(dict(FAULTS)), flush=True)
        os._exit(0)

    threading.Thread(target=stop, daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_connection, args=(conn, seeds.getrandbits(64)), daemon=True).start()


class Server:
    """The loopback server in a process of its own, as a real provider would be."""

    def __init__(self, seed: int, cross: float = 0.0) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(seed), str(cross)],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def close(self) -> dict:
        """Stop the server; return its tally of requests and injected faults."""
        self.proc.stdin.close()
        try:
            tally = json.loads(self.proc.stdout.readline() or "{}")
            self.proc.wait(10)
        except (ValueError, subprocess.TimeoutExpired):
            tally = {}
            self.proc.kill()
            self.proc.wait(10)
        self.proc.stdout.close()
        return tally


# --------------------------------------------------------------------- client

TOKEN = re.compile(r"\[([0-9a-f]{16}):(\d+)\]")


def socket_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


class Findings(dict):
    """Bad answers, one entry per request (keyed by its nonce): the first finding kept."""

    KEY = re.compile(r"request ([0-9a-f]{16})")

    def append(self, message: str) -> None:
        key = self.KEY.search(message)
        self.setdefault(key.group(1) if key else message, message)


class Stats:
    """One worker's counts (merged at the end, so no lock on the hot path)."""

    def __init__(self) -> None:
        self.calls = collections.Counter()  # kind -> calls
        self.outcomes = collections.Counter()  # (kind, outcome) -> count
        self.crossed = Findings()  # request nonce -> what was wrong
        self.garbled = Findings()
        self.foreign: list = []  # formatted tracebacks of non-LLMError exceptions
        self.foreign_count = 0


class Ask:
    """One request and what its answer must be."""

    def __init__(self, rnd: random.Random, tokens: int, pace: int = 0) -> None:
        self.nonce = "%016x" % rnd.getrandbits(64)
        self.tokens = tokens
        self.pace = pace
        self.next = 0  # the next token index a stream must deliver

    def request(self):
        from llmlib import ChatCompletionRequest, Message

        return ChatCompletionRequest(model="soak", messages=[
            Message.system("You are a soak test."),
            Message.user(f"nonce-{self.nonce} tokens={self.tokens} pace={self.pace}")], max_tokens=self.tokens)

    @property
    def text(self) -> str:
        return "".join(_token(self.nonce, k) for k in range(self.tokens))


class Worker:
    def __init__(self, client, total_client, seed: int, until: float, stats: Stats, llm_error) -> None:
        self.client = client
        self.total_client = total_client
        self.rnd = random.Random(seed)
        self.until = until
        self.stats = stats
        self.LLMError = llm_error
        self.kinds = [
            ("stream", self.full_stream),
            ("stream+cancel", self.cancelled_stream),
            ("stream+total", self.deadline_stream),
            ("stream+break", self.broken_stream),
            ("non-stream", self.plain),
            ("batch", self.batch),
            ("stream_batch", self.stream_batch),
        ]

    # -- checks

    def check_text(self, ask: Ask, text, where: str) -> None:
        """``text``: whatever part of ``ask``'s answer arrived, from its start."""
        if not text:
            return
        found = TOKEN.findall(text)
        nonces = {n for n, _ in found}
        if nonces - {ask.nonce} or (not found and text):
            self.stats.crossed.append(f"{where}: request {ask.nonce} got {text[:120]!r}")
            return
        ks = [int(k) for _, k in found]
        if ks != list(range(len(ks))) or "".join(_token(ask.nonce, k) for k in ks) != text:
            self.stats.garbled.append(f"{where}: request {ask.nonce} got tokens {ks[:20]}...")

    def check_chunk(self, ask: Ask, chunk, where: str) -> None:
        if chunk.id != f"chatcmpl-{ask.nonce}":
            self.stats.crossed.append(f"{where}: request {ask.nonce} got a chunk with id {chunk.id!r}")
            return
        text = chunk.text
        if not text:
            return
        found = TOKEN.fullmatch(text)
        if found is None or found.group(1) != ask.nonce:
            self.stats.crossed.append(f"{where}: request {ask.nonce} got a chunk {text[:120]!r}")
        elif int(found.group(2)) != ask.next:
            self.stats.garbled.append(f"{where}: request {ask.nonce} expected token {ask.next}, got {text!r}")
            ask.next = int(found.group(2)) + 1
        else:
            ask.next += 1

    def check_error(self, kind: str, ask, exc) -> None:
        """An LLMError: count it, and check its ``.partial`` and any ``__cause__``."""
        name = type(exc).__name__
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, self.LLMError):
            # A batch item wrapping an exception that is not an LLMError: a bug underneath.
            self.foreign(kind, cause, wrapped=True)
            name += f"({type(cause).__name__})"
        self.stats.outcomes[(kind, name)] += 1
        partial = getattr(exc, "partial", None)
        if partial is not None and ask is not None:
            if getattr(partial, "id", None) not in (None, f"chatcmpl-{ask.nonce}"):
                self.stats.crossed.append(f"{kind}: request {ask.nonce}: .partial has id {partial.id!r}")
            self.check_text(ask, partial.text, f"{kind} .partial")

    def foreign(self, kind: str, exc: BaseException, wrapped: bool = False) -> None:
        self.stats.foreign_count += 1
        if not wrapped:
            self.stats.outcomes[(kind, f"BUG {type(exc).__name__}")] += 1
        if len(self.stats.foreign) < 3:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            self.stats.foreign.append(f"[{kind}{', wrapped in a batch DecodeError' if wrapped else ''}]\n{tb}")

    def finished(self, kind: str, ask: Ask, stream_ended: bool) -> None:
        """A stream that ended without an error: complete, or quietly cancelled."""
        if ask.next == ask.tokens:
            self.stats.outcomes[(kind, "complete")] += 1
        elif stream_ended:
            self.stats.garbled.append(f"{kind}: request {ask.nonce} ended quietly after {ask.next} of "
                                      f"{ask.tokens} tokens, without a cancel")
        else:
            self.stats.outcomes[(kind, "ended by cancel")] += 1

    # -- the kinds of call

    def consume(self, kind: str, ask: Ask, stream) -> None:
        for chunk in stream:
            self.check_chunk(ask, chunk, kind)

    def full_stream(self, kind: str) -> None:
        ask = Ask(self.rnd, self.rnd.randint(5, 60))
        self.consume(kind, ask, self.client.chat_completion_stream(ask.request()))
        self.finished(kind, ask, stream_ended=True)

    def cancelled_stream(self, kind: str) -> None:
        from llmlib import CancelToken

        ask = Ask(self.rnd, self.rnd.randint(20, 80), pace=self.rnd.choice((0, 0, 1)))
        delay = self.rnd.random() * 0.03
        timer = None
        try:
            if self.rnd.random() < 0.5:  # armed before the call: may hit connect or the wait for headers
                token = CancelToken()
                timer = threading.Timer(delay, token.cancel)
                timer.start()
                stream = self.client.chat_completion_stream(ask.request(), cancel=token)
            else:
                stream, token = self.client.chat_completion_stream_with_cancel(ask.request())
                timer = threading.Timer(delay, token.cancel)
                timer.start()
            self.consume(kind, ask, stream)
            if ask.next < ask.tokens and not token.cancelled:
                self.stats.garbled.append(f"{kind}: request {ask.nonce} ended quietly after {ask.next} of "
                                          f"{ask.tokens} tokens, token not cancelled")
            else:
                self.finished(kind, ask, stream_ended=False)
        finally:
            if timer is not None:
                timer.cancel()
                timer.join()

    def deadline_stream(self, kind: str) -> None:
        # 20-60 tokens, 0-6 ms apart: some end well within the deadline, some well past it.
        ask = Ask(self.rnd, self.rnd.randint(20, 60), pace=self.rnd.choice((0, 1, 3, 6)))
        self.consume(kind, ask, self.total_client.chat_completion_stream(ask.request()))
        self.finished(kind, ask, stream_ended=True)

    def broken_stream(self, kind: str) -> None:
        ask = Ask(self.rnd, self.rnd.randint(5, 60))
        stop = self.rnd.randint(0, ask.tokens - 1)
        with self.client.chat_completion_stream(ask.request()) as s:
            for chunk in s:
                self.check_chunk(ask, chunk, kind)
                if ask.next > stop:
                    break
        if ask.next > stop:
            self.stats.outcomes[(kind, "left early")] += 1
        else:
            self.stats.garbled.append(f"{kind}: request {ask.nonce} ended quietly after {ask.next} tokens")

    def plain(self, kind: str) -> None:
        ask = Ask(self.rnd, self.rnd.randint(1, 40))
        response = self.client.chat_completion(ask.request())
        if response.id != f"chatcmpl-{ask.nonce}":
            self.stats.crossed.append(f"{kind}: request {ask.nonce} got a response with id {response.id!r}")
        self.check_text(ask, response.text, kind)
        if response.text != ask.text:
            self.stats.garbled.append(f"{kind}: request {ask.nonce} got a short answer {response.text[:80]!r}")
        else:
            self.stats.outcomes[(kind, "complete")] += 1

    def batch(self, kind: str) -> None:
        asks = [Ask(self.rnd, self.rnd.randint(1, 20)) for _ in range(self.rnd.randint(2, 4))]
        results = self.client.chat_completion_batch([a.request() for a in asks], concurrency_limit=len(asks))
        if len(results) != len(asks):
            self.stats.garbled.append(f"{kind}: {len(asks)} requests, {len(results)} results")
        for ask, item in zip(asks, results):
            if isinstance(item, self.LLMError):
                self.check_error(kind + " item", ask, item)
            elif isinstance(item, BaseException):
                self.foreign(kind + " item", item)
            elif item.id != f"chatcmpl-{ask.nonce}":
                self.stats.crossed.append(f"{kind}: request {ask.nonce} got a response with id {item.id!r}")
            elif item.text != ask.text:
                self.check_text(ask, item.text, kind)
                if ask.nonce not in self.stats.crossed:
                    self.stats.garbled.append(f"{kind}: request {ask.nonce} got a short answer {item.text[:80]!r}")
            else:
                self.stats.outcomes[(kind + " item", "complete")] += 1
        self.stats.outcomes[(kind, "returned")] += 1

    def stream_batch(self, kind: str) -> None:
        asks = [Ask(self.rnd, self.rnd.randint(3, 30)) for _ in range(self.rnd.randint(2, 4))]
        leave_after = self.rnd.randint(1, 40) if self.rnd.random() < 0.3 else None
        failed = set()
        seen = 0
        batch = self.client.chat_completion_stream_batch([a.request() for a in asks], concurrency_limit=len(asks))
        try:
            for index, item in batch:
                if not 0 <= index < len(asks):
                    self.stats.garbled.append(f"{kind}: index {index} of a batch of {len(asks)}")
                    continue
                ask = asks[index]
                if isinstance(item, self.LLMError):
                    failed.add(index)
                    self.check_error(kind + " item", ask, item)
                elif isinstance(item, BaseException):
                    failed.add(index)
                    self.foreign(kind + " item", item)
                else:
                    self.check_chunk(ask, item, kind)
                seen += 1
                if leave_after is not None and seen >= leave_after:
                    break
        finally:
            batch.close()
        if leave_after is not None and seen >= leave_after:
            self.stats.outcomes[(kind, "left early")] += 1
            return
        for i, ask in enumerate(asks):
            if i not in failed:
                if ask.next == ask.tokens:
                    self.stats.outcomes[(kind + " item", "complete")] += 1
                else:
                    self.stats.garbled.append(f"{kind}: request {ask.nonce} ended after {ask.next} of "
                                              f"{ask.tokens} tokens without an error")
        self.stats.outcomes[(kind, "returned")] += 1

    def run(self) -> None:
        calls = 0
        while time.monotonic() < self.until and calls < MAX_CALLS_PER_THREAD:
            calls += 1
            kind, fn = self.rnd.choice(self.kinds)
            self.stats.calls[kind] += 1
            try:
                fn(kind)
            except self.LLMError as exc:
                # A stream's partial is checked against a request we no longer know
                # here, except through the traceback's frame: check_error needs the
                # ask, so find it in the innermost frame of this module that has one.
                self.check_error(kind, _ask_of(exc), exc)
            except Exception as exc:
                self.foreign(kind, exc)


def _ask_of(exc: BaseException):
    tb = exc.__traceback__
    ask = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename == __file__ and isinstance(frame.f_locals.get("ask"), Ask):
            ask = frame.f_locals["ask"]
        tb = tb.tb_next
    return ask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    parser.add_argument("--inject-crossed", type=float, default=0.0, metavar="P",
                        help="check the checker: the server answers this fraction of requests with a "
                             "wrong nonce, so the run must report crossed answers and fail")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    # However a call might hang, the process ends: dump every thread's stack and exit.
    faulthandler.dump_traceback_later(args.seconds + 180, exit=True)

    resource_warnings = []
    warnings.simplefilter("always", ResourceWarning)
    default_show = warnings.showwarning

    def show(message, category, *rest, **kw):
        if issubclass(category, ResourceWarning):
            resource_warnings.append(str(message))
        else:
            default_show(message, category, *rest, **kw)

    warnings.showwarning = show

    import llmlib
    from llmlib import ConnectionOptions, Timeout
    import llmlib.client  # noqa: F401  (the HTTP stack, imported before the "before" counts)
    import requests  # noqa: F401

    server = Server(seed, args.inject_crossed)
    start_threads = set(threading.enumerate())
    start_fds = socket_fds()
    print(f"soak: {args.threads} threads, {args.seconds:g} s, seed {seed}, server {server.url} (pid {server.proc.pid})",
          flush=True)

    client = llmlib.Client("openai", api_key="sk-soak", base_url=server.url + "/v1",
                           options=ConnectionOptions(max_retries=2, timeout=Timeout(connect=5, read=10)))
    total_client = llmlib.Client("openai", api_key="sk-soak", base_url=server.url + "/v1",
                                 options=ConnectionOptions(max_retries=2,
                                                           timeout=Timeout(connect=5, read=10,
                                                                           total=TOTAL_DEADLINE)))
    until = time.monotonic() + args.seconds
    seeds = random.Random(seed)
    stats = [Stats() for _ in range(args.threads)]
    workers = [Worker(client, total_client, seeds.getrandbits(64), until, s, llmlib.LLMError) for s in stats]
    threads = [threading.Thread(target=w.run, name=f"soak-{i}") for i, w in enumerate(workers)]
    began = time.monotonic()
    for t in threads:
        t.start()
    stuck = []
    for t in threads:
        # Each call is bounded (connect 5 s, read 10 s, two retries): a worker
        # still running a minute after the end is stuck.
        t.join(max(0.0, until + 60 - time.monotonic()))
        if t.is_alive():
            stuck.append(t.name)
    elapsed = time.monotonic() - began
    if stuck:
        print(f"STUCK workers: {stuck}; their stacks:", flush=True)
        frames = sys._current_frames()
        for t in threads:
            if t.is_alive():
                print(f"--- {t.name}\n" + "".join(traceback.format_stack(frames[t.ident])), flush=True)

    client.close()
    total_client.close()
    # A grace for threads that are ending (a batch's pool, the deadline watchdog).
    grace_end = time.monotonic() + 2.0
    while time.monotonic() < grace_end:
        if not (set(threading.enumerate()) - start_threads - {t for t in threads if t.is_alive()}):
            break
        time.sleep(0.05)
    leaked_threads = sorted(t.name for t in set(threading.enumerate()) - start_threads
                            if t not in threads)
    fds_before_gc = socket_fds() - start_fds
    del workers
    gc.collect()
    leaked_fds = socket_fds() - start_fds
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tally = server.close()

    # ----------------------------------------------------------------- summary
    calls = collections.Counter()
    outcomes = collections.Counter()
    crossed, garbled, foreign = {}, {}, []
    foreign_count = 0
    for s in stats:
        calls.update(s.calls)
        outcomes.update(s.outcomes)
        crossed.update(s.crossed)
        garbled.update(s.garbled)
        foreign += s.foreign
        foreign_count += s.foreign_count
    total_calls = sum(calls.values())
    print(f"\n{total_calls} calls in {elapsed:.1f} s ({total_calls / elapsed:.0f}/s) on {args.threads} threads")
    print(f"{'kind':16} {'calls':>7}   outcomes")
    for kind, _ in workers_kinds():
        row = sorted(((o, n) for (k, o), n in outcomes.items() if k == kind), key=lambda x: -x[1])
        items = sorted(((o, n) for (k, o), n in outcomes.items() if k == kind + " item"), key=lambda x: -x[1])
        print(f"{kind:16} {calls[kind]:7}   " + ", ".join(f"{o} {n}" for o, n in row))
        if items:
            print(f"{'  items':16} {sum(n for _, n in items):7}   " + ", ".join(f"{o} {n}" for o, n in items))
    print("server: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.items())))
    # A crossed answer is often short of its own tokens too: count it once, as crossed.
    garbled = {k: v for k, v in garbled.items() if k not in crossed}
    print(f"crossed answers:             {len(crossed)} (requests)")
    for line in list(crossed.values())[:5]:
        print(f"  {line}")
    print(f"garbled/short answers:       {len(garbled)} (requests)")
    for line in list(garbled.values())[:5]:
        print(f"  {line}")
    print(f"non-LLMError exceptions:     {foreign_count}")
    for tb in foreign:
        print("  " + tb.replace("\n", "\n  "))
    print(f"stuck workers:               {len(stuck)}")
    print(f"leaked socket fds:           {leaked_fds} (before gc.collect(): {fds_before_gc})")
    print(f"leaked threads:              {len(leaked_threads)} {leaked_threads if leaked_threads else ''}")
    print(f"ResourceWarnings:            {len(resource_warnings)} {resource_warnings[:3] if resource_warnings else ''}")
    print(f"peak RSS:                    {peak_mb:.1f} MB")
    bad = (crossed or garbled or foreign_count or stuck or leaked_fds > 0 or fds_before_gc > 0 or leaked_threads
           or resource_warnings)
    print("RESULT: " + ("FAIL" if bad else "OK"))
    faulthandler.cancel_dump_traceback_later()
    return 1 if bad else 0


def workers_kinds():
    return Worker(None, None, 0, 0, Stats(), Exception).kinds


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit(main())
