"""DNS, TLS, proxies and redirects, on loopback: a local certificate authority
(trustme), a CONNECT proxy that tunnels to names no DNS knows, and servers on
127.0.0.1 and localhost standing for two hosts."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest

from llmlib import APIConnectionError, APIStatusError, Client, ConnectionOptions, Timeout, collect
from tests.conftest import TEST_KEY, wire
from tests.loopback import LoopbackServer, TunnelProxy

OK = json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes())
TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
ANSWER = OK["choices"][0]["message"]["content"]
FAKE_HOST = "api.llmlib.test"  # resolvable only through the proxy


@pytest.fixture
def tls_server(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", FAKE_HOST).configure_cert(context)

    def handler(req, reply):
        if req.json().get("stream"):
            reply.sse(TEXT)
        else:
            reply.json(OK)

    srv = LoopbackServer(handler, tls=context)
    yield srv
    srv.close()


def _client(url: str, **options) -> Client:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", Timeout(connect=5, read=10))
    return Client("openai", api_key=TEST_KEY, base_url=url + "/v1", options=ConnectionOptions(**options))


def _closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_dns_failure_is_a_connection_error_raised_quickly(no_env_proxy):
    with _client("http://llmlib-test.invalid") as client:  # .invalid never resolves (RFC 6761)
        start = time.monotonic()
        with pytest.raises(APIConnectionError, match="cannot reach http://llmlib-test.invalid") as caught:
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 10
    assert "NameResolutionError" in str(caught.value) or "resolve" in str(caught.value)


def test_tls_is_verified_by_default(tls_server, no_env_proxy):
    with _client(f"https://localhost:{tls_server.port}") as client:
        with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            client.chat_completion(model="m", messages="hi")
    assert tls_server.requests == []  # nothing was sent over the untrusted connection


def test_tls_with_the_right_ca_streams_and_cancels(tls_server, ca_file, no_env_proxy):
    with _client(f"https://localhost:{tls_server.port}", verify=ca_file) as client:
        assert client.chat_completion(model="m", messages="hi").text == ANSWER
        assert collect(client.chat_completion_stream(model="m", messages="hi")).text

        # Cancel wakes a read blocked inside TLS on a silent server.
        tls_server.handler = lambda req, reply: (reply.head(200, [("Content-Type", "text/event-stream")]),
                                                 reply.piece(TEXT.split(b"\n\n")[0] + b"\n\n"), reply.hang(10))
        stream, token = client.chat_completion_stream_with_cancel(model="m", messages="hi")
        next(stream)
        threading.Timer(0.1, token.cancel).start()
        start = time.monotonic()
        assert list(stream) == []
        assert time.monotonic() - start < 1


def test_https_proxy_from_the_environment_is_used(tls_server, ca_file, no_env_proxy):
    proxy = TunnelProxy({FAKE_HOST: ("127.0.0.1", tls_server.port)})
    no_env_proxy.setenv("HTTPS_PROXY", proxy.url)
    try:
        with _client(f"https://{FAKE_HOST}:{tls_server.port}", verify=ca_file) as client:
            assert client.chat_completion(model="m", messages="hi").text == ANSWER
            assert collect(client.chat_completion_stream(model="m", messages="hi")).text
    finally:
        proxy.close()
    assert proxy.connects and set(proxy.connects) == {f"{FAKE_HOST}:{tls_server.port}"}
    assert tls_server.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"  # end to end, in the tunnel


def test_no_proxy_bypasses_the_proxy(tls_server, ca_file, no_env_proxy):
    proxy = TunnelProxy({})
    no_env_proxy.setenv("HTTPS_PROXY", proxy.url)
    no_env_proxy.setenv("NO_PROXY", "localhost,127.0.0.1")
    try:
        with _client(f"https://localhost:{tls_server.port}", verify=ca_file) as client:
            assert client.chat_completion(model="m", messages="hi").text == ANSWER
    finally:
        proxy.close()
    assert proxy.connects == []


def test_the_proxy_option_needs_no_environment(tls_server, ca_file, no_env_proxy):
    proxy = TunnelProxy({FAKE_HOST: ("127.0.0.1", tls_server.port)})
    try:
        with _client(f"https://{FAKE_HOST}:{tls_server.port}", verify=ca_file, proxy=proxy.url) as client:
            assert client.chat_completion(model="m", messages="hi").text == ANSWER
    finally:
        proxy.close()
    assert proxy.connects == [f"{FAKE_HOST}:{tls_server.port}"]


def test_a_dead_proxy_gives_a_clear_error(no_env_proxy):
    no_env_proxy.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_closed_port()}")
    with _client("https://api.example.com") as client:
        start = time.monotonic()
        with pytest.raises(APIConnectionError, match="through the proxy http://127.0.0.1:") as caught:
            client.chat_completion(model="m", messages="hi")
        assert time.monotonic() - start < 5
    assert "refused" in str(caught.value)


def _redirecting(to: str, status: int = 307):
    def handler(req, reply):
        reply.send(status, b"", [("Location", to + req.path)], mode="length")
    return handler


def test_redirects_are_not_followed_by_default(server, no_env_proxy):
    other = LoopbackServer(lambda req, reply: reply.json(OK))
    server.handler = _redirecting(other.url)
    try:
        with _client(server.url) as client:
            with pytest.raises(APIStatusError, match="redirect to http://127.0.0.1.*follow_redirects=True") as caught:
                client.chat_completion(model="m", messages="hi")
            with pytest.raises(APIStatusError, match="redirect"):
                client.chat_completion_stream(model="m", messages="hi")
        assert caught.value.status_code == 307 and other.requests == []
    finally:
        other.close()


def test_no_credential_header_follows_a_redirect_to_another_host(server, no_env_proxy):
    other = LoopbackServer(lambda req, reply: reply.json(OK))  # 127.0.0.1; "localhost" is another host
    server.handler = _redirecting(f"http://localhost:{other.port}")
    headers = {"x-api-key": "canary-x-api-key", "api-key": "canary-api-key", "x-goog-api-key": "canary-goog",
               "X-Custom-Token": "canary-token", "X-Title": "my app"}
    try:
        with _client(server.url, follow_redirects=True, headers=headers) as client:
            assert client.chat_completion(model="m", messages="hi").text == ANSWER
        first, second = server.requests[0].headers, other.requests[0].headers
        assert first["authorization"] == f"Bearer {TEST_KEY}" and first["x-api-key"] == "canary-x-api-key"
        for name in ("authorization", "x-api-key", "api-key", "x-goog-api-key", "x-custom-token"):
            assert name not in second, name
        assert second["x-title"] == "my app"  # ordinary headers still go
    finally:
        other.close()


def test_a_redirect_on_the_same_host_keeps_the_key(server, no_env_proxy):
    def handler(req, reply):
        if req.path.startswith("/moved"):
            reply.json(OK)
        else:
            reply.send(308, b"", [("Location", "/moved" + req.path)], mode="length")

    server.handler = handler
    with _client(server.url, follow_redirects=True) as client:
        assert client.chat_completion(model="m", messages="hi").text == ANSWER
    assert server.requests[1].path == "/moved/v1/chat/completions"
    assert server.requests[1].headers["authorization"] == f"Bearer {TEST_KEY}"
