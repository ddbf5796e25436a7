"""The edges of secret scrubbing (issue 8): a key echoed in an error's code, type
or request id (19); a long key straddling the cut of an error snippet after
multi-byte text, or a body that ends in the middle of a key (20); a key with a
pasted zero-width space or a line break (21); sseclient-py's own DEBUG records
(22); a proxy URL's password (23). Each against a loopback server where there
is a network, with the canary style of tests/test_secrets.py: every printed
form of the exception, and every log record, is searched for the secret."""

from __future__ import annotations

import base64
import json
import logging
import traceback

import pytest

import llmlib
from llmlib import Client, ConnectionOptions, LLMError, Timeout
from llmlib.error_mapping import error_from_payload, error_from_response
from llmlib.framing import first_bytes
from llmlib.redaction import Secrets, check_api_key, cut
from tests.conftest import TEST_KEY, make_client, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
EVENTS = TEXT.split(b"\n\n")[:-1]
#: A long key, as some providers issue (154 characters).
LONG_KEY = "sk-proj-" + "".join("abcdefghijkLMNOPQRSTUVwxyz0123456789_-"[(i * 7 + 3) % 38] for i in range(146))
assert len(LONG_KEY) == 154


def _printed(exc: BaseException) -> str:
    """Everything a user may see of an exception."""
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
             repr(getattr(exc, "body", None)), repr(vars(exc))]
    return "\n".join(parts)


def _pieces(secret: str, size: int = 8):
    """Every run of ``size`` characters of ``secret``: a leak of any is a leak."""
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def _leaks(text: str, secret: str, size: int = 8) -> list:
    return [p for p in _pieces(secret, size) if p in text]


def _unreachable_client(key: str = TEST_KEY, **options) -> Client:
    options.setdefault("max_retries", 0)
    return Client("openai", api_key=key, base_url="http://127.0.0.1:9/v1", options=ConnectionOptions(**options))


# ---------------------------------------------------------------- 19: code, type, request id


def test_key_echoed_in_code_type_and_request_id_is_scrubbed(server, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"error": {"message": "no such key", "type": TEST_KEY, "code": f"bad_key:{TEST_KEY}",
                      "param": TEST_KEY}, "request_id": TEST_KEY}
    server.handler = lambda req, reply: reply.json(body, status=401, headers=[("x-request-id", TEST_KEY)])
    with make_client(server) as client:
        with pytest.raises(llmlib.AuthenticationError) as caught:
            client.chat_completion(model="m", messages="hi")
    err = caught.value
    assert server.requests  # it was really sent, and echoed
    assert TEST_KEY not in _printed(err)
    assert err.request_id == "***" and "no such key" in str(err) and "bad_key:***" in str(err)
    assert TEST_KEY not in caplog.text


def test_key_echoed_in_a_header_request_id_is_scrubbed(server):
    server.handler = lambda req, reply: reply.json({"error": {"message": "slow down"}}, status=429,
                                                   headers=[("x-request-id", f"req-{TEST_KEY}")])
    with make_client(server) as client:
        with pytest.raises(llmlib.RateLimitError) as caught:
            client.chat_completion(model="m", messages="hi")
    assert TEST_KEY not in _printed(caught.value) and caught.value.request_id == "req-***"


def test_key_echoed_in_a_stream_error_event_code_and_type_is_scrubbed(server):
    event = json.dumps({"error": {"message": "stop", "type": TEST_KEY, "code": TEST_KEY}, "request_id": TEST_KEY})
    server.handler = lambda req, reply: reply.sse(EVENTS[0] + b"\n\ndata: " + event.encode() + b"\n\n")
    with make_client(server) as client:
        with pytest.raises(llmlib.APIStatusError) as caught:
            list(client.chat_completion_stream(model="m", messages="hi"))
    assert TEST_KEY not in _printed(caught.value)


# ---------------------------------------------------------------- 20: cuts


@pytest.mark.parametrize("width_char, count", [("é", 250), ("€", 250), ("😀", 190)],
                         ids=["2-byte", "3-byte", "4-byte"])
def test_long_key_after_multibyte_text_never_straddles_the_snippet_cut(server, width_char, count):
    # 250 three-byte characters put the key at bytes 750..904: the old 812-byte
    # window (300 characters + 512) cut it, and its first 62 characters survived
    # into the 300-character snippet. 190 four-byte ones do the same at 760.
    before = width_char * count
    page = f"<html>{before}{LONG_KEY} and more text</html>".encode()
    server.handler = lambda req, reply: reply.send(502, page, [("Content-Type", "text/html")], mode="length")
    with Client("openai", api_key=LONG_KEY, base_url=server.url + "/v1",
                options=ConnectionOptions(max_retries=0)) as client:
        with pytest.raises(llmlib.ServerError) as caught:
            client.chat_completion(model="m", messages="hi")
    assert width_char * 10 in str(caught.value)  # the snippet is there...
    assert not _leaks(_printed(caught.value), LONG_KEY)  # ...without any piece of the key


def test_snippet_never_shows_a_piece_of_a_key_at_any_cut():
    """Every offset and character width, for the body snippet and the message cut."""
    with _unreachable_client(LONG_KEY) as client:
        scrub = client._transport.scrub
        for char in ("a", "é", "€", "😀"):
            for count in range(0, 420, 3):
                body = (char * count + LONG_KEY + " tail").encode()
                for n in (80, 200, 300):
                    snippet = first_bytes(body, n, scrub)
                    assert not _leaks(snippet, LONG_KEY, 6), (char, count, n, snippet)
                err = error_from_response(502, {}, body, provider="x", scrub=scrub)
                assert not _leaks(str(err), LONG_KEY, 6), (char, count)
        for count in range(990, 1010):  # the 1000-character message cut
            err = error_from_payload({"error": {"message": "m" * count + LONG_KEY}}, provider="x", scrub=scrub)
            assert not _leaks(str(err), LONG_KEY, 6)


def test_a_body_that_ends_inside_a_key_shows_no_piece_of_it():
    with _unreachable_client(LONG_KEY) as client:
        scrub = client._transport.scrub
        for k in range(6, len(LONG_KEY)):
            body = b"Invalid key: " + LONG_KEY[:k].encode()
            assert not _leaks(first_bytes(body, 300, scrub), LONG_KEY, 6), k
            assert not _leaks(str(error_from_response(401, {}, body, provider="x", scrub=scrub)), LONG_KEY, 6), k
            message = {"error": {"message": "Invalid key: " + LONG_KEY[:k]}}
            assert not _leaks(str(error_from_payload(message, provider="x", scrub=scrub)), LONG_KEY, 6), k
    secrets = Secrets(LONG_KEY)
    assert cut("Invalid key: sk-pro", 100, secrets.scrub) == "Invalid key: ***"
    secrets.close()


def test_a_stream_cut_inside_a_key_shows_no_piece_of_it(server):
    tail = b'data: {"choices": [{"delta": {"content": "your key is ' + LONG_KEY[:120].encode()
    server.handler = lambda req, reply: reply.sse(EVENTS[0] + b"\n\n" + tail, mode="close")
    with Client("openai", api_key=LONG_KEY, base_url=server.url + "/v1",
                options=ConnectionOptions(max_retries=0)) as client:
        with pytest.raises(llmlib.StreamError) as caught:
            list(client.chat_completion_stream(model="m", messages="hi"))
    assert not _leaks(_printed(caught.value), LONG_KEY)


def test_ordinary_snippets_are_unchanged():
    secrets = Secrets(TEST_KEY)
    scrub = secrets.scrub
    assert first_bytes(b"plain text", 200, scrub) == "plain text"
    assert first_bytes(b"x" * 500, 200, scrub) == "x" * 200 + "..."
    assert first_bytes(("€" * 300).encode(), 200, scrub) == "€" * 200 + "..."
    assert first_bytes(b"\xff\xfe ok", 200, scrub) == "\ufffd\ufffd ok"
    assert first_bytes(b"", 10, scrub) == ""
    secrets.close()


# ---------------------------------------------------------------- 21: keys that cannot be a header


BAD_KEYS = {
    "zero-width space": (TEST_KEY[:7] + "\u200b" + TEST_KEY[7:], 7, "U+200B"),
    "trailing newline": (TEST_KEY + "\n", len(TEST_KEY), "U+000A"),
    "CRLF inside": (TEST_KEY[:10] + "\r\nX-Evil: 1" + TEST_KEY[10:], 10, "U+000D"),
    "space inside": (TEST_KEY[:4] + " " + TEST_KEY[4:], 4, "U+0020"),
    "leading tab": ("\t" + TEST_KEY, 0, "U+0009"),
    "no-break space": (TEST_KEY[:5] + "\u00a0" + TEST_KEY[5:], 5, "U+00A0"),
    "en dash": (TEST_KEY[:2] + "\u2013" + TEST_KEY[3:], 2, "U+2013"),
    "NUL": (TEST_KEY + "\x00", len(TEST_KEY), "U+0000"),
}


@pytest.mark.parametrize("label", sorted(BAD_KEYS))
def test_a_key_that_cannot_be_a_header_is_a_configuration_error(label, server, monkeypatch):
    key, index, code_point = BAD_KEYS[label]
    for source in ("argument", "environment") if "\x00" not in key else ("argument",):  # no NUL in environ
        if source == "environment":
            monkeypatch.setenv("OPENAI_API_KEY", key)
        with pytest.raises(llmlib.ConfigurationError) as caught:
            Client("openai", api_key=key if source == "argument" else None, base_url=server.url + "/v1")
        printed = _printed(caught.value)
        assert f"index {index} " in str(caught.value) and code_point in str(caught.value)
        assert "openai" in str(caught.value)
        assert not _leaks(printed, TEST_KEY, 6), printed
    assert server.requests == []  # refused before anything was sent


def test_check_api_key_accepts_real_keys():
    for key in (None, TEST_KEY, LONG_KEY, "AIzaSyA-1234567890_abcdefghijklmnopqrs", "a" * 40, "0123456789abcdef"):
        check_api_key(key, "openai")
    with pytest.raises(llmlib.ConfigurationError, match="must be a str, not bytes"):
        check_api_key(TEST_KEY.encode(), "openai")


def test_a_good_key_still_works_after_the_check(server):
    server.handler = lambda req, reply: reply.sse(TEXT)
    with make_client(server) as client:
        assert "".join(c.text or "" for c in client.chat_completion_stream(model="m", messages="hi"))
    assert server.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"


# ---------------------------------------------------------------- 22: sseclient-py's records


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.getMessage()))


def test_sseclient_debug_records_never_hold_the_key(server, caplog):
    """sseclient-py logs to ``logging.getLogger(self.__class__.__module__)``: the
    module of llmlib's subclass, not "sseclient". Its records name stray field
    names and event ids, which an echoing server fills with the key."""
    import sseclient

    caplog.set_level(logging.DEBUG)
    names = set()
    todo = [sseclient.SSEClient]
    while todo:  # every logger sseclient's classes (llmlib's subclass too) log to
        cls = todo.pop()
        names.add(cls.__module__)
        todo.extend(cls.__subclasses__())
    capture = _Capture()
    for name in names:
        logging.getLogger(name).addHandler(capture)
        logging.getLogger(name).setLevel(logging.DEBUG)
    echo = (f"id: {TEST_KEY}\n{TEST_KEY}\n{TEST_KEY}-field: x\n").encode()
    server.handler = lambda req, reply: reply.sse(echo + TEXT)
    try:
        with make_client(server) as client:
            text = "".join(c.text or "" for c in client.chat_completion_stream(model="m", messages="hi"))
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(capture)
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert text  # the stream worked
    said = [message for _, message in capture.records]
    assert any(m.startswith("Saw invalid field") for m in said)  # sseclient really logged...
    assert any(m.startswith("Dispatching") and "#" in m for m in said)  # ...the event id too
    assert not [m for m in said if TEST_KEY in m]  # ...and never the key
    assert TEST_KEY not in caplog.text


# ---------------------------------------------------------------- 23: proxy credentials

PROXY_PASSWORD = "pr0xy-Secret-Passw0rd"


def test_proxy_password_is_hidden_in_the_options_repr():
    options = ConnectionOptions(proxy=f"http://alice:{PROXY_PASSWORD}@proxy.example:3128")
    assert PROXY_PASSWORD not in repr(options) and "'http://alice:***@proxy.example:3128'" in repr(options)
    assert options.proxy == f"http://alice:{PROXY_PASSWORD}@proxy.example:3128"  # the value itself is kept
    token = ConnectionOptions(proxy="http://tok_0123456789@proxy.example:3128")
    assert "tok_0123456789" not in repr(token) and "http://***@proxy.example:3128" in repr(token)
    quoted = ConnectionOptions(proxy="http://alice:p%40ss%3Aword!@proxy.example")
    assert "p%40ss" not in repr(quoted)
    assert "proxy=None" in repr(ConnectionOptions()) and "http://proxy.example:1" in repr(
        ConnectionOptions(proxy="http://proxy.example:1"))


def test_proxy_credentials_are_scrubbed_from_errors_and_logs(server, monkeypatch, caplog):
    """A plain HTTP proxy (the loopback server) that rejects the request and echoes
    the credentials it was given, decoded, and the raw header."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"alice:{PROXY_PASSWORD}".encode()).decode()

    def proxy(req, reply):
        header = req.headers.get("proxy-authorization", "")
        creds = base64.b64decode(header.split(" ", 1)[1]).decode() if " " in header else ""
        said = f"proxy refused {creds} ({header}) for {req.path}"
        if req.path.endswith("/chat/completions") and "stream" in req.body.decode():
            reply.send(502, said.encode(), [("Content-Type", "text/plain")], mode="length")
        else:
            reply.json({"error": {"message": said, "code": creds, "type": header}}, status=407)

    server.handler = proxy
    options = ConnectionOptions(proxy=f"http://alice:{PROXY_PASSWORD}@127.0.0.1:{server.port}", max_retries=0,
                                timeout=Timeout(connect=5, read=10))
    with Client("openai", api_key=TEST_KEY, base_url="http://api.llmlib.test/v1", options=options) as client:
        raised = []
        for call in (lambda: client.chat_completion(model="m", messages="hi"),
                     lambda: client.chat_completion_stream(model="m", messages="hi")):
            with pytest.raises(LLMError) as caught:
                call()
            raised.append(caught.value)
    assert server.requests and server.requests[0].headers["proxy-authorization"] == f"Basic {basic}"
    for err in raised:
        printed = _printed(err)
        assert "proxy refused" in str(err)
        assert PROXY_PASSWORD not in printed and basic not in printed
    assert PROXY_PASSWORD not in caplog.text and basic not in caplog.text


def test_secrets_take_the_proxy_credentials():
    secrets = Secrets(TEST_KEY, proxy="http://alice:p%40ssw0rd-x@proxy:3128")
    try:
        said = secrets.scrub("alice:p@ssw0rd-x / p%40ssw0rd-x / " + base64.b64encode(b"alice:p@ssw0rd-x").decode())
        assert "ssw0rd" not in said and "YWxpY2" not in said
        assert secrets.scrub("http://proxy:3128 alice") == "http://proxy:3128 alice"  # the user name alone is not secret
    finally:
        secrets.close()
    assert Secrets(proxy="http://proxy:3128").values == ()
    token = Secrets(proxy="http://token_abcdef@proxy:3128")
    assert token.scrub("token_abcdef") == "***"
    token.close()
