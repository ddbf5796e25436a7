"""A cancelled or interrupted non-streamed call to the bundled model stops its
generation: the single-slot server is free for the next call at once (issue 11)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from llmlib import CancelledError, CancelToken
from tests.conftest import HAS_LOCAL

pytestmark = [pytest.mark.local_model,
              pytest.mark.skipif(not HAS_LOCAL, reason="the bundled model is not installed")]


def _say_hi(client) -> float:
    """Seconds for a short answer: the yardstick for "the next call did not wait"
    (a shared machine can slow the server several-fold)."""
    start = time.monotonic()
    assert client.chat_completion(messages="Say hi.", max_tokens=5).choices
    return time.monotonic() - start


def test_a_cancelled_chat_completion_frees_the_server_for_the_next_call(local_client):
    local_client.chat_completion(messages="Hi", max_tokens=2)  # the server is up and warm
    usual = _say_hi(local_client)
    token = CancelToken()
    outcome = []

    def long_call() -> None:
        try:
            local_client.chat_completion(messages="Count from 1 to 1000, one number per line.",
                                         max_tokens=1500, temperature=0, cancel=token)
            outcome.append("finished")
        except CancelledError:
            outcome.append("cancelled")

    worker = threading.Thread(target=long_call)
    worker.start()
    time.sleep(1.0)
    token.cancel()
    worker.join(5)
    assert outcome == ["cancelled"]
    # Generating 1,500 tokens takes this server well over 10 s; the next call must not wait for it.
    took = _say_hi(local_client)
    assert took < max(8.0, 4 * usual), (took, usual)


def test_the_local_server_ignores_a_port_in_the_environment(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PORT="1", HOST="203.0.113.1", N_CTX="16")  # all three would break it
    code = "import llmlib; print(llmlib.Client('local').chat_completion(messages='Hi', max_tokens=3).choices[0].finish_reason)"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]


INTERRUPTED = """
import sys, time
import llmlib
client = llmlib.Client("local")
client.chat_completion(messages="Hi", max_tokens=2)  # the server is up and warm
start = time.monotonic()
client.chat_completion(messages="Say hi.", max_tokens=5)
usual = time.monotonic() - start
print("generating", flush=True)
try:
    client.chat_completion(messages="Count from 1 to 1000, one number per line.", max_tokens=1500, temperature=0)
    print("finished", flush=True)
except KeyboardInterrupt:
    start = time.monotonic()
    client.chat_completion(messages="Say hi.", max_tokens=5)
    print(f"next call {time.monotonic() - start:.2f} usual {usual:.2f}", flush=True)
"""


def test_ctrl_c_during_a_chat_completion_frees_the_server_for_the_next_call():
    # A real SIGINT to a real process, as a Jupyter "interrupt kernel" or a Ctrl-C sends it.
    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={k: v for k, v in os.environ.items() if k != "PORT"})
    try:
        assert child.stdout.readline().strip() == "generating"
        time.sleep(1.0)  # well inside the 1,500-token answer
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert out.startswith("next call "), (out, err[-2000:])
    took, usual = float(out.split()[2]), float(out.split()[4])
    # Generating 1,500 tokens takes this server well over 10 s; the next call must not wait for it.
    assert took < max(8.0, 4 * usual), out
