"""Provider error bodies, served over loopback with their status, map onto the error tree."""

from __future__ import annotations

import pickle

import pytest

import llmlib
from llmlib import errors
from tests.conftest import TEST_KEY, WIRE, wire

# file -> (status, class, words the message must contain)
CASES = {
    "anthropic_400_invalid_request_error.json": (400, errors.BadRequestError, "tool_use_id"),
    "anthropic_400_invalid_request_error_2.json": (400, errors.BadRequestError, "effort level"),
    "anthropic_401_authentication_error_RECONSTRUCTED.json": (401, errors.AuthenticationError, "invalid x-api-key"),
    "anthropic_404_not_found_error.json": (404, errors.NotFoundError, "claude-sonet-4-5"),
    "anthropic_429_rate_limit_error.json": (429, errors.RateLimitError, "rate limit"),
    "anthropic_529_overloaded_error_from_issue_log.json": (529, errors.OverloadedError, "Overloaded"),
    "anthropic_docs_error_shape_404.json": (404, errors.NotFoundError, "could not be found"),
    "cohere_404_embed.json": (404, errors.NotFoundError, "nonexistent"),
    "deepseek_400_responses_octet_stream.txt": (400, errors.BadRequestError, "No tool output"),
    "gemini_400_api_key_invalid_THIRDPARTY.json": (400, errors.AuthenticationError, "API key not valid"),
    "gemini_404_not_found.json": (404, errors.NotFoundError, "gemini-3.6-flahs"),
    "gemini_429_resource_exhausted_retryinfo.json": (429, errors.RateLimitError, "quota"),
    "groq_400_tool_use_failed.json": (400, errors.BadRequestError, "Tool call validation failed"),
    "groq_404_model_not_found.json": (404, errors.NotFoundError, "llama-3.3-70b-versatlie"),
    "ollama_404_model_not_found_RECONSTRUCTED.json": (404, errors.NotFoundError, "try pulling it first"),
    "openai_400_invalid_request_unsupported_value.json": (400, errors.BadRequestError, "does not support 'system'"),
    "openai_400_responses_model_not_found.json": (400, errors.BadRequestError, "gpt-5.2-proo"),
    "openai_400_unsupported_parameter.json": (400, errors.BadRequestError, "max_completion_tokens"),
    "openai_401_invalid_api_key_RECONSTRUCTED.json": (401, errors.AuthenticationError, "Incorrect API key"),
    "openai_404_model_not_found_chat.json": (404, errors.NotFoundError, "gpt-5.2-proo"),
    "openai_insufficient_quota.json": (429, errors.RateLimitError, "exceeded your current quota"),
    "openrouter_429_rate_limited.json": (429, errors.RateLimitError, "temporarily rate-limited upstream"),
}


def test_every_recorded_error_file_has_a_case():
    files = {p.name for p in wire("errors").iterdir() if not p.name.endswith(".headers")}
    assert files == set(CASES)


def recorded_headers(name):
    path = WIRE / "errors" / (name + ".headers")
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[1:]
    return [tuple(part.strip() for part in line.split(":", 1)) for line in lines if ":" in line
            and line.split(":", 1)[0].lower() not in ("content-length", "connection")]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("streaming", [False, True])
def test_error_body_maps_to_class(name, streaming, client, server):
    status, cls, words = CASES[name]
    body = wire("errors", name).read_bytes()
    headers = [("Content-Type", "application/json"), ("x-request-id", "req_loopback_1"), *recorded_headers(name)]
    server.handler = lambda req, reply: reply.send(status, body, headers, mode="length")
    call = client.chat_completion_stream if streaming else client.chat_completion
    with pytest.raises(cls) as info:
        call(model="m", messages="hi")  # a stream raises here, before any generator exists
    err = info.value
    assert type(err) is cls
    assert err.status_code == status and err.provider == "openai"
    assert words in str(err)
    assert err.request_id  # from the body (Anthropic) or the x-request-id header
    assert TEST_KEY not in str(err) and TEST_KEY not in repr(err.body)


def test_retry_after_and_quota():
    from llmlib.error_mapping import error_from_response

    gemini = wire("errors", "gemini_429_resource_exhausted_retryinfo.json").read_bytes()
    assert error_from_response(429, {}, gemini, provider="gemini").retry_after == pytest.approx(34.4)
    limited = error_from_response(429, {"retry-after-ms": "1500"}, b"{}", provider="x")
    assert limited.retry_after == 1.5 and limited.is_retryable()
    quota = error_from_response(429, {}, wire("errors", "openai_insufficient_quota.json").read_bytes(), provider="openai")
    assert isinstance(quota, errors.RateLimitError) and not quota.is_retryable()
    marked = error_from_response(400, {"x-should-retry": "true"}, b"{}", provider="x")
    assert marked.is_retryable()
    assert not error_from_response(503, {"x-should-retry": "false"}, b"", provider="x").is_retryable()


def test_context_length_and_overload_words():
    from llmlib.error_mapping import error_from_response

    body = b'{"error": {"message": "This model\'s maximum context length is 8192 tokens.", "code": "context_length_exceeded"}}'
    assert isinstance(error_from_response(400, {}, body, provider="openai"), errors.ContextLengthExceededError)
    over = error_from_response(503, {}, b'{"error": {"message": "The engine is currently overloaded"}}', provider="x")
    assert isinstance(over, errors.OverloadedError)
    assert isinstance(error_from_response(502, {}, b"<html>bad gateway</html>", provider="x"), errors.ServerError)


def test_non_json_error_body_keeps_a_short_snippet(client, server):
    page = b"<html>" + b"x" * 100_000 + b"</html>"
    server.handler = lambda req, reply: reply.send(502, page, [("Content-Type", "text/html")], mode="length")
    with pytest.raises(errors.ServerError) as info:
        client.chat_completion(model="m", messages="hi")
    assert "<html>" in str(info.value) and len(str(info.value)) < 2000


def test_error_object_in_a_200_body(client, server):
    body = wire("errors", "anthropic_529_overloaded_error_from_issue_log.json").read_bytes()
    server.handler = lambda req, reply: reply.send(200, body, [("Content-Type", "application/json")], mode="length")
    with pytest.raises(errors.OverloadedError):
        client.chat_completion(model="m", messages="hi")


def test_tree_and_pickling():
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.APITimeoutError, errors.APIConnectionError)
    assert issubclass(errors.ContextLengthExceededError, errors.BadRequestError)
    assert issubclass(errors.OverloadedError, errors.ServerError)
    for cls in (errors.IncompleteStreamError, errors.ResponseTooLargeError, errors.DecodeError):
        assert issubclass(cls, errors.StreamError)
    err = errors.RateLimitError("slow down", retry_after=2.0, provider="groq", status_code=429, request_id="r1")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), copy.retry_after, copy.request_id, str(copy)) == (type(err), 2.0, "r1", str(err))
    assert str(err) == "slow down (provider=groq, status=429, request_id=r1)"
    assert all(hasattr(llmlib, n) for n in errors.__all__)
