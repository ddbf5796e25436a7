"""Error mapping is total (issue 8, item 15): any JSON value in any field of an
error body (a number where a word was expected, null, a list) gives an error of
some class, never a TypeError; ``"error": null`` is not an error; and a secret
echoed as a JSON number, or in a form json.dumps would escape, is scrubbed from
``.body`` without breaking it."""

from __future__ import annotations

import itertools
import json
import pickle

import pytest

from llmlib import Client, ConnectionOptions, errors
from llmlib.error_mapping import _class_for, _details, _status_from, error_from_payload, error_from_response
from llmlib.error_mapping import is_error_payload
from llmlib.redaction import Secrets
from tests.conftest import TEST_KEY, make_client, wire

TEXT = wire("openai_chat", "plain_text_with_usage.sse").read_bytes()
EVENTS = TEXT.split(b"\n\n")[:-1]
OK = json.loads(wire("openai_chat", "nonstream_plain_text.json").read_bytes())

#: Every kind of JSON value, for every field.
VALUES = [None, True, False, 0, 429, 500, -1, 1.5, 1e300, "", "x", "429", "rate_limit_error", "overloaded_error",
          "context_length_exceeded", "error", [], ["a", 1], {}, {"message": "nested"}, [{"loc": ["body"], "msg": "m"}]]


def _bodies():
    for value in VALUES:
        yield value  # the whole body
        yield {"error": value}
        yield {"type": "error", "error": value}
        yield {"message": value}
        yield {"type": value, "message": "m"}
        yield {"error": "e", "request_id": value}
        yield {"status": value, "message": "m"}
        yield {"code": value, "message": "m"}
        for field in ("message", "type", "status", "code", "metadata", "param", "details"):
            yield {"error": {"message": "m", field: value}}
        yield {"error": {"message": "m", "metadata": {"raw": value}}}
        yield {"error": {"message": "m", "details": [{"retryDelay": value}]}}
    for a, b in itertools.product([None, 500, "x", [1]], repeat=2):
        yield {"error": {"message": a, "type": b, "status": a, "code": b}}


@pytest.mark.parametrize("status", [None, 200, 400, 429, 503])
def test_error_mapping_is_total_over_any_json_value(status):
    for body in _bodies():
        err = error_from_payload(body, provider="x", status=status, headers={"x-request-id": "r"})
        assert isinstance(err, errors.APIStatusError), body
        str(err), repr(err), err.is_retryable()
        assert pickle.loads(pickle.dumps(err)).message == err.message
        raw = json.dumps(body).encode()
        assert isinstance(error_from_response(status or 500, {}, raw, provider="x"), errors.APIStatusError)


def test_details_status_and_class_accept_any_value():
    for value in VALUES:
        message, kind, code, request_id, statuses = _details({"error": {"message": "m", "type": value,
                                                                        "status": value, "code": value}})
        assert kind is None or isinstance(kind, str)
        assert code is None or isinstance(code, (str, int))
        _status_from(value, value)
        for status in (None, 400, 503, 529):
            assert issubclass(_class_for(status, value, value, "m"), errors.APIStatusError)


def test_integer_type_and_status_over_http(client, server):
    body = {"error": {"message": "x", "type": 500, "status": 429}}
    server.handler = lambda req, reply: reply.json(body, status=400)
    with pytest.raises(errors.BadRequestError) as caught:  # the HTTP status decides
        client.chat_completion(model="m", messages="hi")
    assert caught.value.status_code == 400 and str(caught.value).startswith("x ")
    assert caught.value.body == body


def test_integer_type_and_status_mid_stream(client, server):
    event = json.dumps({"error": {"message": "slow down", "type": 500, "status": 429}}).encode()
    server.handler = lambda req, reply: reply.sse(EVENTS[0] + b"\n\n" + EVENTS[1] + b"\n\ndata: " + event + b"\n\n")
    with pytest.raises(errors.RateLimitError) as caught:  # no HTTP status: the numeric "status" says 429
        list(client.chat_completion_stream(model="m", messages="hi"))
    assert caught.value.status_code == 429 and "slow down" in str(caught.value)
    assert caught.value.partial is not None


def test_gemini_and_anthropic_shapes_still_map():
    gemini = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    assert type(error_from_payload(gemini, provider="gemini")) is errors.RateLimitError
    anthropic = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "r"}
    err = error_from_payload(anthropic, provider="anthropic")
    assert type(err) is errors.OverloadedError and err.request_id == "r" and "[overloaded_error]" in str(err)
    responses = {"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": None}
    assert type(error_from_payload(responses, provider="openai")) is errors.RateLimitError
    assert error_from_payload({"error": "model not found"}, provider="ollama", status=404).message == "model not found"


def test_error_null_is_not_an_error():
    for falsy in (None, False, "", {}, []):
        assert not is_error_payload({"error": falsy, "choices": []})
    assert not is_error_payload(OK) and not is_error_payload([1]) and not is_error_payload("error")
    for truthy in ({"message": "m"}, "model not found", True):
        assert is_error_payload({"error": truthy})
    assert is_error_payload({"type": "error", "message": "m"})
    # Given one anyway, the top-level fields are read, not the null.
    err = error_from_payload({"error": None, "message": "top", "code": "rate_limit_exceeded"}, provider="x")
    assert type(err) is errors.RateLimitError and err.message == "top [rate_limit_exceeded]"


def test_error_null_in_bodies_and_chunks_is_ignored(client, server):
    chunked = b"\n\n".join(e.replace(b'"choices"', b'"error":null,"choices"', 1) for e in EVENTS) + b"\n\n"
    whole = dict(OK, error=None)

    def handler(req, reply):
        if req.json().get("stream"):
            reply.sse(chunked)
        else:
            reply.json(whole)

    server.handler = handler
    assert client.chat_completion(model="m", messages="hi").text == OK["choices"][0]["message"]["content"]
    assert "".join(c.text or "" for c in client.chat_completion_stream(model="m", messages="hi"))


NUMERIC_KEY = "80386486991234"  # a key (or header token) of digits only


def test_a_secret_echoed_as_a_json_number_is_scrubbed_from_the_body(server):
    body = {"error": {"message": f"bad key {NUMERIC_KEY}", "param": int(NUMERIC_KEY), "code": float(NUMERIC_KEY),
                      "list": [1, int(NUMERIC_KEY), True, None]}}
    server.handler = lambda req, reply: reply.json(body, status=401)
    with Client("openai", api_key=NUMERIC_KEY, base_url=server.url + "/v1",
                options=ConnectionOptions(max_retries=0)) as client:
        with pytest.raises(errors.AuthenticationError) as caught:
            client.chat_completion(model="m", messages="hi")
    err = caught.value
    assert NUMERIC_KEY not in repr(err.body) and NUMERIC_KEY not in str(err)
    assert err.body == {"error": {"message": "bad key ***", "param": "***", "code": "***",
                                  "list": [1, "***", True, None]}}


def test_a_secret_that_json_would_escape_is_scrubbed_from_the_body(server):
    token = 'tok"en\\with-quotes'  # a header secret with characters json.dumps escapes
    body = {"error": {"message": "no", "echo": token, token: "as a key"}}
    server.handler = lambda req, reply: reply.json(body, status=403)
    with make_client(server, headers={"x-api-token": token}) as client:
        with pytest.raises(errors.PermissionDeniedError) as caught:
            client.chat_completion(model="m", messages="hi")
    assert server.requests[0].headers["x-api-token"] == token
    assert token not in repr(caught.value.body) and token not in str(caught.value.body)
    assert caught.value.body == {"error": {"message": "no", "echo": "***", "***": "as a key"}}


def test_body_scrubbing_keeps_types_and_survives_depth():
    secrets = Secrets(TEST_KEY)
    try:
        body = {"a": [1, 2.5, True, None, "x", {"b": TEST_KEY}], "n": 0}
        err = error_from_payload(body, provider="x", status=400, scrub=secrets.scrub)
        assert err.body == {"a": [1, 2.5, True, None, "x", {"b": "***"}], "n": 0}
        deep: object = TEST_KEY
        for _ in range(200):
            deep = [deep]
        err = error_from_payload({"error": {"message": "m", "deep": deep}}, provider="x", scrub=secrets.scrub)
        assert TEST_KEY not in repr(err.body)
        nested = b"[" * 100_000 + b"]" * 100_000  # json.loads gives up with RecursionError
        assert isinstance(error_from_response(500, {}, nested, provider="x"), errors.ServerError)
    finally:
        secrets.close()


def test_nonfinite_gemini_retry_delay_is_ignored():
    body = {"error": {"code": 429, "message": "q", "details": [{"retryDelay": "infs"}]}}
    assert error_from_payload(body, provider="gemini").retry_after is None
    body["error"]["details"][0]["retryDelay"] = "2.5s"
    assert error_from_payload(body, provider="gemini").retry_after == 2.5
