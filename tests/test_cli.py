"""The command line against a loopback server (no model needed), always through a
real subprocess: ``python -m llmlib`` and the ``llmlib`` console script, stdin
pipes, real SIGINT."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest

from tests.conftest import TEST_KEY, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
FIRST = TEXT.split(b"\n\n")[1] + b"\n\n"  # the first event with text in it
LENGTH = wire("openai_chat", "finish_length.sse").read_bytes()
JSON_BODY = wire("openai_chat", "nonstream_plain_text.json").read_bytes()
TOOL_CALL = wire("openai_chat", "tool_call_single.sse").read_bytes()
MODELS = json.dumps({"object": "list", "data": [
    {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"}]}).encode()


def streamed_text(sse: bytes) -> str:
    return "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                   for line in sse.decode().splitlines() if line.startswith("data: {") and '"choices":[{' in line)


WANT = streamed_text(TEXT)


def env_for(server, provider="openai", key=True):
    env = dict(os.environ, LLMLIB_PROVIDER=provider, OPENAI_BASE_URL=server.url + "/v1")
    env.pop("OPENAI_API_KEY", None)
    if key:
        env["OPENAI_API_KEY"] = TEST_KEY
    return env


def run(server, *args, provider="openai", stdin=subprocess.DEVNULL, command=None, key=True):
    command = command or [sys.executable, "-m", "llmlib"]
    return subprocess.Popen([*command, *args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env_for(server, provider, key))


def wait_for_requests(server, n=1, timeout=30.0):
    deadline = time.monotonic() + timeout
    while len(server.requests) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.requests) >= n, f"{len(server.requests)} requests, wanted {n}"


def user_text(body, at=-1):
    return body["messages"][at]["content"]


def assert_one_error_line(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


# ------------------------------------------------------------------ one prompt


def test_chat_streams_to_stdout(server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "hi", "--model", "gpt-4o", "--system", "terse", "--max-tokens", "9",
               "--temperature", "0.5")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == WANT + "\n"
    body = server.requests[-1].json()
    assert body["messages"] == [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}]
    assert body["max_completion_tokens"] == 9 and body["temperature"] == 0.5 and body["stream"] is True


def test_console_script_beside_python_m(server):
    script = shutil.which("llmlib", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.fail("no `llmlib` console script beside the interpreter: pip install -e .")
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "hi", "-m", "gpt-4o", command=[script])
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == WANT + "\n", err
    proc = run(server, "--help", command=[script])
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.startswith("usage: llmlib ")


@pytest.mark.parametrize("args", [(), ("-",)], ids=["no-prompt", "dash"])
def test_prompt_from_stdin(server, args):
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", *args, "-m", "gpt-4o", stdin=subprocess.PIPE)
    out, err = proc.communicate("What is ownership?\n", timeout=60)
    assert proc.returncode == 0 and out == WANT + "\n", err
    assert user_text(server.requests[-1].json()) == "What is ownership?"


def test_prompt_then_piped_text(server, tmp_path):
    # cat notes.txt | llmlib chat "summarise": the prompt, a blank line, the text.
    notes = tmp_path / "notes.txt"
    notes.write_text("Line one.\nLine two.\n")
    server.handler = lambda req, reply: reply.sse(TEXT)
    with open(notes) as stdin:  # a file on stdin, as `< notes.txt` gives
        proc = run(server, "chat", "summarise", "-m", "gpt-4o", stdin=stdin)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert user_text(server.requests[-1].json()) == "summarise\n\nLine one.\nLine two."
    cat = subprocess.Popen(["cat", str(notes)], stdout=subprocess.PIPE)  # and a pipe, as `cat notes.txt |` gives
    proc = run(server, "chat", "summarise", "-m", "gpt-4o", stdin=cat.stdout)
    cat.stdout.close()
    out, err = proc.communicate(timeout=60)
    cat.wait()
    assert proc.returncode == 0, err
    assert user_text(server.requests[-1].json()) == "summarise\n\nLine one.\nLine two."


def test_no_prompt_at_all_is_a_usage_error(server):
    proc = run(server, "chat", "-m", "gpt-4o", stdin=subprocess.PIPE)
    _, err = proc.communicate("  \n", timeout=60)
    assert proc.returncode == 2 and "no prompt" in err and not server.requests


def test_no_stream_prints_the_whole_answer(server):
    server.handler = lambda req, reply: reply.send(200, JSON_BODY, [("Content-Type", "application/json")],
                                                   mode="length")
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "--no-stream")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == json.loads(JSON_BODY)["choices"][0]["message"]["content"] + "\n"
    assert "stream" not in server.requests[-1].json() or server.requests[-1].json()["stream"] is False


@pytest.mark.parametrize("no_stream", [False, True], ids=["streamed", "no-stream"])
def test_json_prints_the_collected_response(server, no_stream):
    if no_stream:
        server.handler = lambda req, reply: reply.send(200, JSON_BODY, [("Content-Type", "application/json")],
                                                       mode="length")
    else:
        server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "--json", *(["--no-stream"] if no_stream else []))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    got = json.loads(out)
    assert set(got) == {"id", "model", "text", "finish_reason", "usage", "tool_calls"}
    if no_stream:
        raw = json.loads(JSON_BODY)
        assert got["text"] == raw["choices"][0]["message"]["content"]
        assert got["id"] == raw["id"] and got["model"] == raw["model"]
        assert got["usage"]["prompt_tokens"] == raw["usage"]["prompt_tokens"]
        assert got["usage"]["total_tokens"] == raw["usage"]["total_tokens"]
    else:
        assert got["text"] == WANT and got["id"].startswith("chatcmpl-")
        assert got["usage"]["total_tokens"] == got["usage"]["prompt_tokens"] + got["usage"]["completion_tokens"] > 0
    assert got["finish_reason"] == "stop" and got["tool_calls"] == []


def test_json_carries_tool_calls(server):
    server.handler = lambda req, reply: reply.sse(TOOL_CALL)
    proc = run(server, "chat", "weather?", "-m", "gpt-4o", "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    got = json.loads(out)
    assert got["finish_reason"] == "tool_calls"
    (call,) = got["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] and json.loads(call["function"]["arguments"]) is not None


@pytest.mark.parametrize("extra", [(), ("--json",), ("--no-stream",)], ids=["stream", "json", "no-stream"])
def test_an_answer_cut_by_max_tokens_says_so_on_stderr(server, extra):
    if "--no-stream" in extra:
        body = wire("openai_chat", "nonstream_finish_length.json").read_bytes()
        server.handler = lambda req, reply: reply.send(200, body, [("Content-Type", "application/json")],
                                                       mode="length")
    else:
        server.handler = lambda req, reply: reply.sse(LENGTH)
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "--max-tokens", "1", *extra)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.strip() == "[stopped at max_tokens]"
    assert "[stopped" not in out


def test_a_finished_answer_has_no_notice(server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "hi", "-m", "gpt-4o")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and err == ""


# ------------------------------------------------------------------ attachments


def tiny_png() -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def tiny_wav() -> bytes:
    frames = b"\x00\x00" * 800
    return (b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
            + b"data" + struct.pack("<I", len(frames)) + frames)


def test_attach_an_image_and_audio_by_type(server, tmp_path):
    import base64

    png, wav = tmp_path / "dot.png", tmp_path / "beep.wav"
    png.write_bytes(tiny_png())
    wav.write_bytes(tiny_wav())
    server.handler = lambda req, reply: reply.sse(TEXT)
    # A model llmlib's model table does not know: nothing refused before sending.
    proc = run(server, "chat", "What is this?", "-m", "loopback-omni", "-a", str(png), "--attach", str(wav))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    parts = user_text(server.requests[-1].json())
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    assert parts[2]["type"] == "input_audio"
    assert parts[2]["input_audio"] == {"data": base64.b64encode(wav.read_bytes()).decode(), "format": "wav"}


@pytest.mark.parametrize("name,content,says", [("notes.txt", b"hello", "neither an image nor audio"),
                                               ("missing.png", None, "missing.png")])
def test_an_attachment_that_is_not_media_is_one_error_line(server, tmp_path, name, content, says):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "-a", str(path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and out == "" and not server.requests
    assert_one_error_line(err, says)


# ------------------------------------------------------------------ errors and keys


def test_errors_go_to_stderr(server):
    server.handler = lambda req, reply: reply.json({"error": {"message": "bad key"}}, status=401)
    proc = run(server, "chat", "hi", "--model", "gpt-4o")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and TEST_KEY not in err + out
    assert_one_error_line(err, "bad key")


def test_an_unknown_provider_is_one_error_line(server):
    proc = run(server, "chat", "hi", "--model", "m", "--provider", "no-such-provider")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert_one_error_line(err, "no-such-provider")


def test_api_key_is_sent_and_never_echoed(server):
    key = "sk-cli-CANARY-9876543210fedcba"

    def echo_key(req, reply):  # a hostile server that quotes the key back in its error
        reply.json({"error": {"message": f"key {req.headers.get('authorization')} is not valid"}}, status=401)

    server.handler = echo_key
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "--api-key", key, key=False)
    out, err = proc.communicate(timeout=60)
    assert server.requests[-1].headers["authorization"] == f"Bearer {key}"
    assert proc.returncode == 1 and key not in out + err
    assert_one_error_line(err, "is not valid")
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "--api-key", key, "--json", key=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and key not in out + err


def test_a_key_with_a_newline_is_refused_without_showing_it(server):
    key = "sk-bad\nCANARY-secret-part"
    proc = run(server, "chat", "hi", "-m", "gpt-4o", "--api-key", key, key=False)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "CANARY-secret-part" not in out + err and not server.requests
    assert_one_error_line(err)


def test_model_required_for_remote_providers(server):
    proc = run(server, "chat", "hi")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "--model is required" in err


def test_models_lists_ids(server):
    server.handler = lambda req, reply: reply.send(200, MODELS, [("Content-Type", "application/json")], mode="length")
    proc = run(server, "models")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == [m["id"] for m in json.loads(MODELS)["data"]]
    assert server.requests[-1].path.endswith("/models")


# ------------------------------------------------------------------ Ctrl-C


def hang_after_first_event(req, reply):
    reply.head(200, [("Content-Type", "text/event-stream")])
    reply.piece(FIRST)
    reply.hang(30)


def test_ctrl_c_stops_generation(server):
    server.handler = hang_after_first_event
    proc = run(server, "chat", "hi", "--model", "gpt-4o")
    wait_for_requests(server)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and err.strip() == "(stopped)", err
    assert out == streamed_text(FIRST) + "\n"
    assert server.wait_closed(5.0)


@pytest.mark.parametrize("extra", [(), ("--no-stream",)], ids=["stream", "no-stream"])
def test_ctrl_c_before_the_answer_starts(server, extra):
    server.handler = lambda req, reply: reply.hang(30)  # no headers, ever
    proc = run(server, "chat", "hi", "--model", "gpt-4o", *extra)
    wait_for_requests(server)
    time.sleep(0.2)
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - start < 5
    assert proc.returncode == 130 and "(stopped)" in err and "Traceback" not in err, err
    assert server.wait_closed(5.0)


# ------------------------------------------------------------------ interactive


def test_interactive_keeps_the_history(server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    proc = run(server, "chat", "-i", "-m", "gpt-4o", "-s", "be brief", stdin=subprocess.PIPE)
    out, err = proc.communicate("first question\n\nsecond question\n", timeout=60)  # a blank line is skipped
    assert proc.returncode == 0, err
    assert out == (WANT + "\n") * 2
    assert len(server.requests) == 2
    assert server.requests[1].json()["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": WANT},
        {"role": "user", "content": "second question"},
    ]


def test_interactive_ctrl_c_stops_only_the_answer(server):
    handlers = [hang_after_first_event, lambda req, reply: reply.sse(TEXT)]
    server.handler = lambda req, reply: handlers.pop(0)(req, reply)
    proc = run(server, "chat", "-i", "-m", "gpt-4o", stdin=subprocess.PIPE)
    proc.stdin.write("tell me a long story\n")
    proc.stdin.flush()
    wait_for_requests(server)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert server.wait_closed(5.0), "Ctrl-C did not close the answer's connection"
    assert proc.poll() is None, "Ctrl-C ended the conversation"
    proc.stdin.write("something shorter\n")
    proc.stdin.flush()
    wait_for_requests(server, 2)
    out, err = proc.communicate("", timeout=60)  # Ctrl-D
    assert proc.returncode == 0, err
    assert "(stopped)" in err and "Traceback" not in err
    assert out == streamed_text(FIRST) + "\n" + WANT + "\n"
    # The stopped answer stays as far as it got: the user saw it.
    assert server.requests[1].json()["messages"] == [
        {"role": "user", "content": "tell me a long story"},
        {"role": "assistant", "content": streamed_text(FIRST)},
        {"role": "user", "content": "something shorter"},
    ]


def test_interactive_error_keeps_the_conversation_going(server):
    handlers = [lambda req, reply: reply.json({"error": {"message": "slow down"}}, status=400),
                lambda req, reply: reply.sse(TEXT)]
    server.handler = lambda req, reply: handlers.pop(0)(req, reply)
    proc = run(server, "chat", "-i", "-m", "gpt-4o", stdin=subprocess.PIPE)
    out, err = proc.communicate("one\ntwo\n", timeout=60)
    assert proc.returncode == 0 and "error: " in err and "slow down" in err and "Traceback" not in err
    assert out == WANT + "\n"
    # The failed turn is dropped with its question.
    assert server.requests[1].json()["messages"] == [{"role": "user", "content": "two"}]


def test_interactive_in_a_terminal(server):
    # A real terminal (a pty that is the program's controlling terminal): the
    # prompt, Ctrl-C typed as ^C during an answer and at the prompt, Ctrl-D.
    pty = pytest.importorskip("pty")
    import fcntl
    import select
    import termios

    handlers = [hang_after_first_event, lambda req, reply: reply.sse(TEXT)]
    server.handler = lambda req, reply: handlers.pop(0)(req, reply)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "llmlib", "chat", "-i", "-m", "gpt-4o"], stdin=slave,
                            stdout=slave, stderr=slave, env=env_for(server), start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    seen = bytearray()

    def read_until(marker: bytes, timeout: float = 30.0) -> str:
        end = time.monotonic() + timeout
        while marker not in seen:
            left = end - time.monotonic()
            assert left > 0, f"never saw {marker!r} in {bytes(seen)!r}"
            if select.select([master], [], [], left)[0]:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the program closed the terminal
                    data = b""
                assert data, f"the terminal closed before {marker!r}: {bytes(seen)!r}"
                seen.extend(data)
        at = seen.index(marker) + len(marker)
        text = bytes(seen[:at]).decode("utf-8", "replace")
        del seen[:at]
        return text

    try:
        assert "Chatting with gpt-4o" in read_until(b"> ")
        os.write(master, b"tell me a long story\r")
        read_until(streamed_text(FIRST).encode())
        os.write(master, b"\x03")  # ^C: stops the answer, not the program
        assert "(stopped)" in read_until(b"> ")
        assert server.wait_closed(5.0)
        # ^C at the prompt: a fresh prompt (the line typed so far is dropped). Not
        # at the very instant the prompt appears: CPython's readline misses a
        # signal that arrives before it waits for input, as any program using it.
        time.sleep(0.3)
        os.write(master, b"half a line\x03")
        read_until(b"> ")
        os.write(master, b"something shorter\r")
        read_until(WANT.encode())
        read_until(b"> ")
        os.write(master, b"\x04")  # ^D: the end
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert len(server.requests) == 2
    assert [m["content"] for m in server.requests[1].json()["messages"]] == [
        "tell me a long story", streamed_text(FIRST), "something shorter"]
