"""ConnectionOptions (issue 8): whole-number fields refuse None, bools and
negatives at construction (item 17), header values that cannot be sent are
refused without being quoted, and an explicit ``verify`` beats
``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (item 14), on a real TLS loopback
server with a trustme certificate authority."""

from __future__ import annotations

import json
import ssl

import pytest
import trustme

from llmlib import APIConnectionError, Client, ConfigurationError, ConnectionOptions, Timeout
from tests.conftest import TEST_KEY, wire
from tests.loopback import LoopbackServer

OK = json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes())
TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
ANSWER = OK["choices"][0]["message"]["content"]

# ---------------------------------------------------------------- 17: whole numbers

BAD = [
    ("max_response_bytes", None), ("max_response_bytes", 0), ("max_response_bytes", -1),
    ("max_response_bytes", True), ("max_response_bytes", 1.5), ("max_response_bytes", "1024"),
    ("pool_size", None), ("pool_size", -1), ("pool_size", False), ("pool_size", 4.0),
    ("max_retries", None), ("max_retries", -1), ("max_retries", True), ("max_retries", "2"),
]


@pytest.mark.parametrize("field, value", BAD, ids=[f"{f}={v!r}" for f, v in BAD])
def test_bad_whole_numbers_are_refused_at_construction(field, value):
    with pytest.raises(ConfigurationError) as caught:
        ConnectionOptions(**{field: value})
    said = str(caught.value)
    assert f"ConnectionOptions.{field}" in said and repr(value) in said and "whole number >=" in said
    with pytest.raises(ConfigurationError):  # with_changes validates too
        ConnectionOptions().with_changes(**{field: value})


def test_good_whole_numbers_are_kept():
    options = ConnectionOptions(max_response_bytes=1, pool_size=0, max_retries=0)
    assert (options.max_response_bytes, options.pool_size, options.max_retries) == (1, 0, 0)
    assert ConnectionOptions().max_response_bytes == 32 * 1024 * 1024


@pytest.mark.parametrize("value", ["a\u200bb", "a\r\nX-Evil: 1", "a\nb", "a\x00b"])
def test_header_values_that_cannot_be_sent_are_refused_without_quoting_them(value):
    secret = f"secret-{value}-{TEST_KEY}"
    with pytest.raises(ConfigurationError) as caught:
        ConnectionOptions(headers={"x-api-key": secret})
    assert "x-api-key" in str(caught.value) and "index 8" in str(caught.value)
    assert TEST_KEY not in str(caught.value) and "secret-" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="must be a str, not int"):
        ConnectionOptions(headers={"x-count": 3})
    assert ConnectionOptions(headers={"X-Title": "caf\u00e9 ok", "raw": b"bytes"}).headers["X-Title"] == "caf\u00e9 ok"


def test_bad_verify_and_proxy_values_are_refused(tmp_path):
    for value in (None, 0, "", ["x"]):
        with pytest.raises(ConfigurationError, match="verify must be True, False or a CA bundle path"):
            ConnectionOptions(verify=value)
    with pytest.raises(ConfigurationError, match="no CA bundle file or directory"):
        ConnectionOptions(verify=str(tmp_path / "missing.pem"))
    assert ConnectionOptions(verify=tmp_path).verify == str(tmp_path)  # a PathLike becomes a str
    with pytest.raises(ConfigurationError, match="proxy must be a proxy URL"):
        ConnectionOptions(proxy=8080)


# ---------------------------------------------------------------- 14: verify beats the environment


@pytest.fixture(scope="module")
def wrong_ca_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "wrong.pem"
    trustme.CA().cert_pem.write_to_path(str(path))  # a CA that signed nothing we serve
    return str(path)


@pytest.fixture
def tls_server(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)

    def handler(req, reply):
        if req.json().get("stream"):
            reply.sse(TEXT)
        else:
            reply.json(OK)

    srv = LoopbackServer(handler, tls=context)
    yield srv
    srv.close()


def _call(server: LoopbackServer, **options) -> str:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", Timeout(connect=5, read=10))
    with Client("openai", api_key=TEST_KEY, base_url=f"https://localhost:{server.port}/v1",
                options=ConnectionOptions(**options)) as client:
        text = client.chat_completion(model="m", messages="hi").text
        streamed = "".join(c.text or "" for c in client.chat_completion_stream(model="m", messages="hi"))
    assert streamed
    return text


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_an_explicit_ca_path_beats_the_environment_bundle(variable, tls_server, ca_file, wrong_ca_file, no_env_proxy):
    no_env_proxy.setenv(variable, wrong_ca_file)
    assert _call(tls_server, verify=ca_file) == ANSWER


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_verify_false_beats_the_environment_bundle(variable, tls_server, wrong_ca_file, no_env_proxy):
    no_env_proxy.setenv(variable, wrong_ca_file)
    assert _call(tls_server, verify=False) == ANSWER


def test_the_default_verify_uses_the_environment_bundle(tls_server, ca_file, wrong_ca_file, no_env_proxy):
    """The documented precedence: with the default ``verify=True`` the
    environment's CA bundle applies, as in requests and curl."""
    no_env_proxy.setenv("REQUESTS_CA_BUNDLE", ca_file)
    assert _call(tls_server) == ANSWER
    no_env_proxy.setenv("REQUESTS_CA_BUNDLE", wrong_ca_file)
    with pytest.raises(APIConnectionError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        _call(tls_server)
