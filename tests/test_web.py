"""llmlib.web.sse under real WSGI servers: Flask on werkzeug's threaded dev server
(in a thread) and on gunicorn (sync and gthread workers, subprocesses), Django on
its runserver. Each proxies a loopback fake upstream (OpenAI SSE, slow); a raw
socket client reads a few events and hangs up; the upstream server notes when
its connection closes. tests/benchmarks/bench_disconnect.py reuses these helpers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from llmlib import Client, ConnectionOptions, IncompleteStreamError, collect
from llmlib.web import DONE, KEEP_ALIVE, SSE_HEADERS, TEXT_DONE, sse, sse_headers
from llmlib.types import ChatCompletionChunk
from tests import fake_openai
from tests.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
pytestmark = pytest.mark.timeout(120)


# -- the fake upstream: slow OpenAI SSE, and when each connection closed -------------------------

class Upstream:
    """A loopback OpenAI-style server whose stream mode comes in the prompt:
    ``talk`` (a chunk every ``interval`` s, for up to 20 s), ``silent`` (3 chunks, then
    nothing), ``short`` (a whole answer), ``fail`` (2 chunks, then the connection is cut).
    The prompt may carry ``pid=N``. ``records`` holds, per request: mode, pid, the
    client's port, and ``closed_at`` (time.monotonic() when the client closed)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.records: List[Dict] = []
        self.lock = threading.Lock()
        self.server = LoopbackServer(self.handle)
        self.url = self.server.url

    def handle(self, req, reply) -> None:
        if req.path.split("?")[0] != fake_openai.CHAT_PATH:
            return reply.json(fake_openai.error_json(404, "no route"), status=404)
        prompt = req.json()["messages"][-1]["content"]
        words = prompt.split()
        mode = words[0]
        pid = next((int(w[4:]) for w in words if w.startswith("pid=")), None)
        record = {"mode": mode, "pid": pid, "peer": reply.conn.getpeername()[1], "closed_at": None,
                  "started": time.monotonic()}
        with self.lock:
            self.records.append(record)
        if mode == "short":
            return reply.sse(fake_openai.stream_body(["Hello", " from", " upstream."]))
        conn = reply.conn
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(fake_openai._chunk({"role": "assistant", "content": ""}))
        poller = select.poll()
        poller.register(conn, select.POLLIN | select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0))
        end = time.monotonic() + 20
        sent = 0
        while time.monotonic() < end:
            if mode == "talk" or sent < 3:
                try:
                    reply.piece(fake_openai._chunk({"content": f"tok{sent} "}))
                except OSError:
                    break
                sent += 1
            if mode == "fail" and sent == 2:
                time.sleep(0.05)
                reply.keep_alive = False
                conn.shutdown(socket.SHUT_RDWR)
                return
            if poller.poll(self.interval * 1000 if mode == "talk" else 20):
                try:
                    if conn.recv(1, socket.MSG_PEEK) == b"":
                        break
                except OSError:
                    break
        record["closed_at"] = time.monotonic()
        reply.keep_alive = False

    def wait_closed(self, record: Dict, timeout: float = 10.0) -> Optional[float]:
        until = time.monotonic() + timeout
        while time.monotonic() < until and record["closed_at"] is None:
            time.sleep(0.002)
        return record["closed_at"]

    def last(self, timeout: float = 10.0) -> Dict:
        until = time.monotonic() + timeout
        count = len(self.records)
        while time.monotonic() < until:
            if self.records:
                return self.records[-1]
            time.sleep(0.005)
        raise AssertionError(f"no upstream request arrived ({count})")

    def close(self) -> None:
        self.server.close()


# -- the apps ------------------------------------------------------------------------------------

FLASK_APP = '''
import os
import flask
from llmlib import Client, ConnectionOptions
from llmlib.web import SSE_HEADERS, sse

client = Client("openai", api_key="sk-test-web", base_url=os.environ["UPSTREAM"] + "/v1",
                options=ConnectionOptions(max_retries=0))
if os.environ.get("WARMUP"):  # use the pool before gunicorn forks (--preload)
    client.chat_completion_stream(model="m", messages=f"short pid={os.getpid()}").close()
app = flask.Flask(__name__)


@app.get("/chat")
def chat():
    a = flask.request.args
    stream = client.chat_completion_stream(model="m", messages=f"{a.get('mode', 'talk')} pid={os.getpid()}")
    body = sse(stream, format=a.get("format", "openai"), heartbeat=float(a.get("heartbeat", 5)),
               environ=flask.request.environ if a.get("watch", "1") == "1" else None)
    return flask.Response(body, headers=SSE_HEADERS)


@app.get("/pid")
def pid():
    return str(os.getpid())
'''

DJANGO_SETTINGS = '''
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "djurls"
INSTALLED_APPS = []
MIDDLEWARE = []
USE_TZ = True
'''

DJANGO_URLS = '''
import os
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path
from llmlib import Client, ConnectionOptions
from llmlib.web import SSE_HEADERS, sse

client = Client("openai", api_key="sk-test-web", base_url=os.environ["UPSTREAM"] + "/v1",
                options=ConnectionOptions(max_retries=0))


def chat(request):
    a = request.GET
    stream = client.chat_completion_stream(model="m", messages=f"{a.get('mode', 'talk')} pid={os.getpid()}")
    body = sse(stream, format=a.get("format", "openai"), heartbeat=float(a.get("heartbeat", 5)),
               environ=request.META if a.get("watch", "1") == "1" else None)
    return StreamingHttpResponse(body, headers=SSE_HEADERS)


def pid(request):
    return HttpResponse(str(os.getpid()))


urlpatterns = [path("chat", chat), path("pid", pid)]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc: Optional[subprocess.Popen] = None, timeout: float = 30.0, path: str = "/pid") -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            status, _, _ = http_get(port, path, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("the server did not come up")


def http_get(port: int, path: str, timeout: float = 10.0):
    """A whole response, by hand: (status, headers, body) with the chunked framing removed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return status, headers, body


def read_then_hang_up(port: int, path: str, events: int = 3, timeout: float = 10.0) -> float:
    """Read ``events`` SSE ``data:`` events (a silent upstream: all it sends, and 0.1 s
    more), then close the socket, as a closed tab does; return time.monotonic()
    just before the close."""
    silent = "mode=silent" in path
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while data.count(b"data:") < events or (silent and b"tok2" not in data):
            piece = s.recv(65536)
            assert piece, f"the server closed first: {data[-300:]!r}"
            data += piece
        if silent:  # nothing but heartbeats comes now
            time.sleep(0.1)
        assert data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0], data[:300]
    finally:
        closed = time.monotonic()
        s.close()
    return closed


def disconnect_delay(upstream: Upstream, port: int, path: str) -> float:
    """Seconds from the client's hang-up to the upstream socket closing."""
    before = len(upstream.records)
    closed = read_then_hang_up(port, path)
    assert len(upstream.records) > before
    record = upstream.records[-1]
    at = upstream.wait_closed(record)
    assert at is not None, "the upstream request was never cancelled"
    return at - closed


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WerkzeugServer:
    """The Flask app on werkzeug's threaded development server, in a thread."""

    def __init__(self, app) -> None:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Subprocess:
    """A server in a subprocess (gunicorn, Django's runserver), stopped with its process group."""

    def __init__(self, argv: List[str], port: int, cwd: Path, env: Dict[str, str], ready: str = "/pid") -> None:
        full_env = dict(os.environ, PYTHONPATH=f"{cwd}{os.pathsep}{ROOT}", PYTHONUNBUFFERED="1", **env)
        self.log = open(cwd / f"server-{port}.log", "w+")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.port = port
        try:
            wait_up(port, self.proc, path=ready)
        except AssertionError:
            self.close()
            raise AssertionError(f"server failed: {self.output()}") from None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def gunicorn(app_dir: Path, upstream_url: str, worker: str = "sync", workers: int = 1, preload: bool = False,
             extra_env: Optional[Dict[str, str]] = None) -> Subprocess:
    port = free_port()
    argv = [PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", worker,
            "--graceful-timeout", "2", "--chdir", str(app_dir)]
    if worker == "gthread":
        argv += ["--threads", "4"]
    if preload:
        argv.append("--preload")
    return Subprocess(argv + ["flask_app:app"], port, app_dir, {"UPSTREAM": upstream_url, **(extra_env or {})})


def write_apps(directory: Path) -> Path:
    (directory / "flask_app.py").write_text(FLASK_APP)
    (directory / "djsettings.py").write_text(DJANGO_SETTINGS)
    (directory / "djurls.py").write_text(DJANGO_URLS)
    return directory


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def upstream():
    up = Upstream()
    yield up
    up.close()


@pytest.fixture
def app_dir(tmp_path):
    return write_apps(tmp_path)


@pytest.fixture
def werkzeug_app(app_dir, upstream, monkeypatch):
    monkeypatch.setenv("UPSTREAM", upstream.url)
    module = load_module(app_dir / "flask_app.py", "flask_app_under_test")
    server = WerkzeugServer(module.app)
    yield server
    server.close()
    module.client.close()


def upstream_client(upstream: Upstream) -> Client:
    return Client("openai", api_key="sk-test-web", base_url=upstream.url + "/v1",
                  options=ConnectionOptions(max_retries=0))


def parse(body: bytes) -> List[Dict[str, str]]:
    """SSE events as dicts of field -> value (data lines joined with \\n); comments kept as ':'."""
    events = []
    for block in body.decode().split("\n\n"):
        if not block:
            continue
        event: Dict[str, str] = {}
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[field] = event[field] + "\n" + value if field in event and field == "data" else value
        events.append(event)
    return events


# -- sse() itself, against a real upstream -------------------------------------------------------

def test_openai_format_round_trips_the_chunks(server):
    server.handler = fake_openai.handler
    client = Client("openai", api_key="sk-test-web", base_url=server.url + "/v1",
                    options=ConnectionOptions(max_retries=0))
    expected = list(client.chat_completion_stream(model="m", messages="hi"))
    body = b"".join(sse(client.chat_completion_stream(model="m", messages="hi")))
    assert body.endswith(DONE)
    events = parse(body)
    chunks = [ChatCompletionChunk.from_dict(json.loads(e["data"])) for e in events[:-1]]
    assert chunks == expected
    assert collect(chunks).text == fake_openai.TEXT
    client.close()


def test_text_format_is_multiline_safe_and_ends_with_done():
    def chunks():
        for piece in ["Hello", " world\nsecond line", "\n", "", None, "third\r\nline"]:
            yield ChatCompletionChunk("c", "m", [_choice(piece)])

    body = b"".join(sse(chunks(), format="text", heartbeat=None))
    assert body.endswith(TEXT_DONE)
    events = parse(body[:-len(TEXT_DONE)])
    assert [e["data"] for e in events] == ["Hello", " world\nsecond line", "\n", "third\nline"]
    # The same through the reader thread.
    assert b"".join(sse(chunks(), format="text")) == body


def _choice(text):
    from llmlib.types import ChunkChoice, Delta

    return ChunkChoice(0, Delta(content=text))


def test_heartbeats_while_upstream_is_silent_then_close_cancels_at_once(upstream):
    client = upstream_client(upstream)
    body = sse(client.chat_completion_stream(model="m", messages="silent"), heartbeat=0.1)
    frames = [next(body) for _ in range(6)]
    assert frames[-2:] == [KEEP_ALIVE, KEEP_ALIVE] and frames[0].startswith(b"data: {")
    record = upstream.last()
    started = time.monotonic()
    body.close()
    at = upstream.wait_closed(record)
    assert at is not None and at - started < 0.2
    assert body._thread is not None and not body._thread.is_alive()
    assert body.ended == "closed"
    assert [t for t in threading.enumerate() if t.name == "llmlib-sse"] == []
    client.close()


def test_closing_an_unstarted_body_closes_upstream(upstream):
    client = upstream_client(upstream)
    body = sse(client.chat_completion_stream(model="m", messages="silent"))
    record = upstream.last()
    body.close()
    assert upstream.wait_closed(record, 2) is not None
    client.close()


def test_an_upstream_failure_becomes_an_error_event_without_the_key(upstream):
    client = upstream_client(upstream)
    body = b"".join(sse(client.chat_completion_stream(model="m", messages="fail")))
    events = parse(body)
    assert events[-1]["event"] == "error"
    error = json.loads(events[-1]["data"])["error"]
    assert error["type"] == IncompleteStreamError.__name__ and "incomplete" in error["message"]
    assert b"sk-test-web" not in body and DONE not in body
    client.close()


def test_headers_helper():
    assert SSE_HEADERS["Content-Type"].startswith("text/event-stream")
    assert SSE_HEADERS["Cache-Control"] == "no-cache" and SSE_HEADERS["X-Accel-Buffering"] == "no"
    assert sse_headers(**{"X-Extra": "1"})["X-Extra"] == "1" and "X-Extra" not in SSE_HEADERS
    with pytest.raises(ValueError):
        sse([], format="xml")


def test_llmlib_web_imports_no_web_framework():
    code = ("import sys, llmlib.web; bad = [m for m in ('flask', 'django', 'werkzeug', 'gunicorn', 'IPython') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([PYTHON, "-c", code], check=True, cwd=ROOT, timeout=60)


# -- real WSGI servers ---------------------------------------------------------------------------

def test_flask_on_werkzeug_streams_openai_chunks_with_headers(werkzeug_app):
    status, headers, body = http_get(werkzeug_app.port, "/chat?mode=short")
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache" and headers["x-accel-buffering"] == "no"
    events = parse(body)
    assert events[-1]["data"] == "[DONE]"
    text = "".join(json.loads(e["data"])["choices"][0]["delta"].get("content", "")
                   for e in events[:-1] if json.loads(e["data"])["choices"])
    assert text == "Hello from upstream."


@pytest.mark.parametrize("mode,limit", [("silent", 1.0), ("talk", 0.1)])
def test_flask_on_werkzeug_cancels_upstream_on_disconnect(werkzeug_app, upstream, mode, limit):
    delay = disconnect_delay(upstream, werkzeug_app.port, f"/chat?mode={mode}")
    assert delay < limit, f"{mode}: upstream closed {delay:.3f} s after the client left"


def test_flask_on_werkzeug_heartbeats_alone_notice_a_silent_disconnect(werkzeug_app, upstream):
    delay = disconnect_delay(upstream, werkzeug_app.port, "/chat?mode=silent&watch=0&heartbeat=0.3")
    assert delay < 1.0, delay


@pytest.mark.parametrize("worker", ["sync", "gthread"])
def test_flask_on_gunicorn_cancels_upstream_on_disconnect(app_dir, upstream, worker):
    server = gunicorn(app_dir, upstream.url, worker)
    try:
        status, headers, body = http_get(server.port, "/chat?mode=short")
        assert status == 200 and body.endswith(DONE) and headers["x-accel-buffering"] == "no"
        silent = disconnect_delay(upstream, server.port, "/chat?mode=silent")
        talking = disconnect_delay(upstream, server.port, "/chat?mode=talk")
        # Without the socket watch, a sync worker notices only when it writes: heartbeats.
        beats = disconnect_delay(upstream, server.port, "/chat?mode=silent&watch=0&heartbeat=0.3")
    finally:
        server.close()
    assert silent < 1.0 and talking < 0.1 and beats < 1.0, (silent, talking, beats)


def test_gunicorn_preload_gives_each_worker_its_own_connections(app_dir, upstream):
    server = gunicorn(app_dir, upstream.url, "sync", workers=2, preload=True, extra_env={"WARMUP": "1"})
    try:
        results: List = []

        def fetch() -> None:
            results.append(http_get(server.port, "/chat?mode=short"))

        for _ in range(4):
            threads = [threading.Thread(target=fetch) for _ in range(6)]
            [t.start() for t in threads]
            [t.join(30) for t in threads]
            if len({r["pid"] for r in upstream.records}) >= 3:
                break
    finally:
        server.close()
    assert results and all(status == 200 and body.endswith(DONE) for status, _, body in results)
    peers: Dict[int, set] = {}
    for r in upstream.records:
        peers.setdefault(r["pid"], set()).add(r["peer"])
    assert len(peers) >= 3, peers  # the master's warm-up and two workers
    pids = list(peers)
    for i, a in enumerate(pids):
        for b in pids[i + 1:]:
            assert not peers[a] & peers[b], f"processes {a} and {b} shared a connection"


@pytest.fixture
def django_server(app_dir, upstream):
    port = free_port()
    server = Subprocess([PYTHON, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"], port, app_dir,
                        {"UPSTREAM": upstream.url, "DJANGO_SETTINGS_MODULE": "djsettings"})
    yield server
    server.close()


def test_django_runserver_streams_and_cancels_upstream_on_disconnect(django_server, upstream):
    status, headers, body = http_get(django_server.port, "/chat?mode=short&format=text")
    assert status == 200 and headers["x-accel-buffering"] == "no", headers
    assert body.endswith(TEXT_DONE)
    assert "".join(e["data"] for e in parse(body[:-len(TEXT_DONE)])) == "Hello from upstream."
    # runserver (wsgiref) does not hand the socket over: heartbeats notice a silent disconnect.
    silent = disconnect_delay(upstream, django_server.port, "/chat?mode=silent&heartbeat=0.3")
    talking = disconnect_delay(upstream, django_server.port, "/chat?mode=talk")
    assert silent < 1.0 and talking < 0.1, (silent, talking)


def test_django_on_gunicorn_cancels_upstream_on_disconnect(app_dir, upstream):
    port = free_port()
    server = Subprocess([PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-k", "gthread", "--threads", "4",
                         "--chdir", str(app_dir), "django.core.wsgi:get_wsgi_application()"], port, app_dir,
                        {"UPSTREAM": upstream.url, "DJANGO_SETTINGS_MODULE": "djsettings"})
    try:
        silent = disconnect_delay(upstream, port, "/chat?mode=silent")
    finally:
        server.close()
    assert silent < 1.0, silent


# -- the examples in docs/examples ---------------------------------------------------------------

EXAMPLES = ROOT / "docs" / "examples"


def example_env(upstream: Upstream, port: int) -> Dict[str, str]:
    return {"LLMLIB_PROVIDER": "openai", "OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-test-web",
            "LLMLIB_MODEL": "m", "CHAT_PORT": str(port)}


def chat_through_page(port: int) -> str:
    """What the page does: GET /, then POST /chat (with Django's CSRF token); the streamed text."""
    import re

    import requests

    with requests.Session() as http:
        page = http.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "llmlib chat" in page.text
        token = re.search(r'"X-CSRFToken": "([^"]+)"', page.text)
        headers = {"X-CSRFToken": token.group(1)} if token else {}
        with http.post(f"http://127.0.0.1:{port}/chat", json={"messages": [{"role": "user", "content": "short"}]},
                       headers=headers, stream=True, timeout=10) as r:
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/event-stream")
            body = r.raw.read()
    events = parse(body)
    assert events[-1]["data"] == "[DONE]"
    return "".join(json.loads(e["data"])["choices"][0]["delta"].get("content") or ""
                   for e in events[:-1] if json.loads(e["data"])["choices"])


def test_flask_example_streams_a_chat(upstream, tmp_path):
    port = free_port()
    server = Subprocess([PYTHON, str(EXAMPLES / "flask_chat" / "app.py")], port, tmp_path,
                        example_env(upstream, port), ready="/")
    try:
        assert chat_through_page(port) == "Hello from upstream."
        silent_post = disconnect_after_post(port)
        record = upstream.records[-1]
        assert upstream.wait_closed(record, 2) is not None, "closing the tab did not cancel upstream"
        assert upstream.records[-1]["closed_at"] - silent_post < 1.0
    finally:
        server.close()


def test_django_example_streams_a_chat(upstream, tmp_path):
    port = free_port()
    server = Subprocess([PYTHON, str(EXAMPLES / "django_chat" / "manage.py"), "runserver", f"127.0.0.1:{port}",
                         "--noreload"], port, tmp_path, example_env(upstream, port), ready="/")
    try:
        assert chat_through_page(port) == "Hello from upstream."
    finally:
        server.close()


def disconnect_after_post(port: int) -> float:
    """POST a silent chat, read its first events, hang up; the time of the hang-up."""
    body = json.dumps({"messages": [{"role": "user", "content": "silent"}]}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"POST /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        data = b""
        while b"tok2" not in data:
            piece = s.recv(65536)
            assert piece, data
            data += piece
    finally:
        closed = time.monotonic()
        s.close()
    return closed
