"""The command line against a loopback server (no model needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import TEST_KEY, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()


def run(server, *args, provider="openai"):
    env = dict(os.environ, LLMLIB_PROVIDER=provider, OPENAI_API_KEY=TEST_KEY, OPENAI_BASE_URL=server.url + "/v1")
    return subprocess.Popen([sys.executable, "-m", "llmlib", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_chat_streams_to_stdout(server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "hi", "--model", "gpt-4o", "--system", "terse", "--max-tokens", "9")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    want = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in TEXT.decode().splitlines() if line.startswith("data: {") and '"choices":[{' in line)
    assert out == want + "\n"
    body = server.requests[-1].json()
    assert body["messages"][0] == {"role": "system", "content": "terse"}
    assert body["max_completion_tokens"] == 9


def test_errors_go_to_stderr(server):
    server.handler = lambda req, reply: reply.json({"error": {"message": "bad key"}}, status=401)
    proc = run(server, "chat", "hi", "--model", "gpt-4o")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "bad key" in err and TEST_KEY not in err + out


def test_model_required_for_remote_providers(server):
    proc = run(server, "chat", "hi")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--model is required" in err


def test_ctrl_c_stops_generation(server):
    def handler(req, reply):
        reply.head(200, [("Content-Type", "text/event-stream")])
        reply.piece(TEXT.split(b"\n\n")[1] + b"\n\n")
        reply.hang(30)

    server.handler = handler
    proc = run(server, "chat", "hi", "--model", "gpt-4o")
    deadline = time.monotonic() + 30
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "stopped" in err
    assert server.wait_closed(5.0)
