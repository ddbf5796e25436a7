"""A Client crosses process boundaries as its configuration (issue 13): pickle
round trips, and a ``multiprocessing`` spawn pool calling a loopback server."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest

from llmlib import ChatCompletionRequest, Client, ConnectionOptions, Timeout
from tests.conftest import TEST_KEY
from tests.fake_openai import handler as openai_handler


def ask(client: Client, prompt: str) -> tuple:
    """Runs in a worker process: the unpickled Client opens its own connections."""
    import os

    response = client.chat_completion(ChatCompletionRequest("gpt-fake-1", prompt))
    return os.getpid(), response.text, client.base_url, client.options.max_retries


def test_pickle_round_trip_carries_configuration_not_connections(server):
    server.handler = openai_handler
    options = ConnectionOptions(max_retries=3, timeout=Timeout(connect=2, read=7), headers={"x-team": "eval"},
                                requests_per_minute=600)
    with Client("openai", api_key=TEST_KEY, base_url=server.url + "/v1", options=options) as client:
        client.chat_completion(ChatCompletionRequest("gpt-fake-1", "warm the pool"))
        data = pickle.dumps(client)
        for forbidden in (b"socket", b"_thread", b"Session", b"RLock", b"HTTPConnectionPool"):
            assert forbidden not in data
        copy = pickle.loads(data)
        try:
            assert copy.provider == "openai" and copy.base_url == client.base_url
            assert copy.options == options
            assert copy._transport is not client._transport and copy._transport.session is not client._transport.session
            before = server.connections
            assert copy.chat_completion(ChatCompletionRequest("gpt-fake-1", "hi")).text
            assert server.connections == before + 1  # its own connection, not the parent's pooled one
            assert server.requests[-1].headers["authorization"] == f"Bearer {TEST_KEY}"
            assert server.requests[-1].headers["x-team"] == "eval"
            assert TEST_KEY not in repr(copy)
        finally:
            copy.close()


def test_key_from_environment_does_not_cross(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-parent-env-0123456789")
    client = Client("openai")
    data = pickle.dumps(client)
    assert b"sk-from-parent-env" not in data
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-worker-env-0123456789")
    copy = pickle.loads(data)  # the receiving process reads its own environment
    assert copy._transport.secrets.values[0].startswith("sk-from-worker-env")
    client.close()
    copy.close()
    explicit = Client("openai", api_key="sk-explicit-key-0123456789")
    assert b"sk-explicit-key-0123456789" in pickle.dumps(explicit)  # passed explicitly: it crosses (documented)
    explicit.close()


def test_spawned_pool_workers_use_their_own_connections(server):
    server.handler = openai_handler
    with Client("openai", api_key=TEST_KEY, base_url=server.url + "/v1",
                options=ConnectionOptions(max_retries=1)) as client:
        client.chat_completion(ChatCompletionRequest("gpt-fake-1", "parent"))
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            results = pool.starmap(ask, [(client, f"q{i}") for i in range(6)], chunksize=1)
    import os

    assert len(results) == 6
    assert all(pid != os.getpid() for pid, *_ in results)
    assert {text for _, text, _, _ in results} == {"Hello from the fake OpenAI."}
    assert all(url == server.url + "/v1" and retries == 1 for _, _, url, retries in results)
    assert len(server.requests) == 7
