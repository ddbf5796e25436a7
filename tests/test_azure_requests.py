"""What llmlib sends to Azure OpenAI, recorded by a loopback server playing it:
URLs (deployment, api-version, the v1 API), headers (``api-key``, or a Microsoft
Entra ID bearer token from a callable), bodies; configuration errors; content
filter verdicts reported.

Shapes follow https://learn.microsoft.com/azure/ai-services/openai/reference,
https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle (v1),
https://learn.microsoft.com/rest/api/azureopenai/models/list and
https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter.
The bodies the server answers with below are written here (synthetic), in the
shapes of the recorded transcripts and those documents.
"""

from __future__ import annotations

import json

import pytest

import llmlib
from llmlib import Client, ConnectionOptions, Timeout, collect
from llmlib.providers.azure import DEFAULT_API_VERSION
from llmlib.transport import TokenAuth
from llmlib.streaming import Done, events
from tests.conftest import TEST_KEY

DEPLOYMENT = "my-gpt4o"
SAFE = {"filtered": False, "severity": "safe"}
PROMPT_RESULTS = [{"prompt_index": 0, "content_filter_results": {"hate": SAFE, "violence": SAFE}}]


def completion(text="Hello!", finish="stop", results=None):
    choice = {"index": 0, "finish_reason": finish, "logprobs": None,
              "message": {"role": "assistant", "content": text, "refusal": None}}
    if results is not None:
        choice["content_filter_results"] = results
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1741880483, "model": "gpt-4o-2024-11-20",
            "choices": [choice], "prompt_filter_results": PROMPT_RESULTS,
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def sse(*payloads, done=True) -> bytes:
    body = b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)
    return body + (b"data: [DONE]\n\n" if done else b"")


def chunk(index=0, content=None, finish=None, results=None, **extra):
    choice = {"index": index, "delta": {} if content is None else {"content": content}, "finish_reason": finish}
    if results is not None:
        choice["content_filter_results"] = results
    choice.update(extra)
    return {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [choice]}


PROMPT_CHUNK = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                "prompt_filter_results": PROMPT_RESULTS}
STREAM = sse(PROMPT_CHUNK, chunk(content="Hi", results={"hate": SAFE}), chunk(finish="stop"),
             {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": [],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})

# The shape of https://learn.microsoft.com/rest/api/azureopenai/models/list's sample
# (its first item as there; the embeddings model is written here).
MODELS = {"data": [
    {"status": "succeeded", "capabilities": {"fine_tune": True, "inference": True, "completion": True,
                                             "chat_completion": False, "embeddings": False},
     "lifecycle_status": "generally-available", "deprecation": {"fine_tune": 1677662127, "inference": 1709284527},
     "id": "curie", "created_at": 1646126127, "object": "model"},
    {"status": "succeeded", "capabilities": {"fine_tune": False, "inference": True, "completion": False,
                                             "chat_completion": False, "embeddings": True},
     "lifecycle_status": "generally-available", "id": "text-embedding-ada-002", "created_at": 1646126127,
     "object": "model"},
]}


def handler(req, reply):
    if req.method == "GET":
        reply.json(MODELS)
    elif req.json().get("stream"):
        reply.sse(STREAM)
    else:
        reply.json(completion())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_BASE_URL", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


def azure(server, base_path="", api_key=TEST_KEY, **options):
    server.handler = handler
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", Timeout(connect=5, read=10))
    return Client("azure", api_key=api_key, base_url=server.url + base_path, options=ConnectionOptions(**options))


# ---------------------------------------------------------------- the classic deployment URL


def test_chat_request_url_headers_body(server):
    with azure(server) as client:
        response = client.chat_completion(model=DEPLOYMENT, messages="hi", max_tokens=7, temperature=0.2)
    assert response.text == "Hello!"
    req = server.requests[-1]
    assert (req.method, req.path) == ("POST", f"/openai/deployments/{DEPLOYMENT}/chat/completions"
                                              f"?api-version={DEFAULT_API_VERSION}")
    assert DEFAULT_API_VERSION == "2024-10-21"
    assert req.headers["api-key"] == TEST_KEY
    assert "authorization" not in req.headers
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"model": DEPLOYMENT, "messages": [{"role": "user", "content": "hi"}],
                          "max_tokens": 7, "temperature": 0.2}


def test_stream_request(server):
    with azure(server) as client:
        response = collect(client.chat_completion_stream(model=DEPLOYMENT, messages="hi"))
    assert response.text == "Hi" and response.usage.total_tokens == 6
    req = server.requests[-1]
    assert req.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"
    assert req.headers["accept"] == "text/event-stream" and req.headers["api-key"] == TEST_KEY
    assert req.json() == {"model": DEPLOYMENT, "messages": [{"role": "user", "content": "hi"}],
                          "stream": True, "stream_options": {"include_usage": True}}


def test_api_version_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    with azure(server) as client:
        client.chat_completion(model=DEPLOYMENT, messages="hi")
    assert server.requests[-1].path.endswith("/chat/completions?api-version=2025-04-01-preview")


@pytest.mark.parametrize("base_path,model,path", [
    ("/", DEPLOYMENT, f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"),
    ("/openai", DEPLOYMENT, f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"),
    ("/openai/", DEPLOYMENT, f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"),
    ("?api-version=2024-06-01", DEPLOYMENT,
     f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-06-01"),
    ("", "team/gpt 4o", "/openai/deployments/team%2Fgpt%204o/chat/completions?api-version=2024-10-21"),
])
def test_endpoint_spellings_and_deployment_quoting(base_path, model, path, server):
    with azure(server, base_path) as client:
        client.chat_completion(model=model, messages="hi")
    assert server.requests[-1].path == path


def test_endpoint_from_azure_openai_endpoint(server, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url + "/")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", TEST_KEY)
    server.handler = handler
    with Client("azure", options=ConnectionOptions(max_retries=0)) as client:
        assert client.base_url == server.url
        assert client.chat_completion(model=DEPLOYMENT, messages="hi").text == "Hello!"
    req = server.requests[-1]
    assert req.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions?api-version=2024-10-21"
    assert req.headers["api-key"] == TEST_KEY


def test_missing_endpoint_names_the_variable(server):
    with Client("azure", api_key=TEST_KEY) as client:
        with pytest.raises(llmlib.ConfigurationError) as info:
            client.chat_completion(model=DEPLOYMENT, messages="hi")
    message = str(info.value)
    assert "AZURE_OPENAI_ENDPOINT" in message and TEST_KEY not in message
    assert isinstance(info.value, ValueError) and info.value.provider == "azure"
    assert server.requests == []


def test_endpoint_without_scheme_is_refused(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "myres.openai.azure.com")
    with Client("azure", api_key=TEST_KEY) as client:
        with pytest.raises(llmlib.ConfigurationError, match="AZURE_OPENAI_ENDPOINT='myres.openai.azure.com'"):
            client.base_url


def test_missing_key_names_the_variable(server):
    with pytest.raises(llmlib.ConfigurationError, match="AZURE_OPENAI_API_KEY"):
        Client("azure", base_url=server.url)


def test_models_list(server):
    with azure(server) as client:
        models = client.list_models()
    assert server.requests[-1].path == "/openai/models?api-version=2024-10-21"
    assert server.requests[-1].headers["api-key"] == TEST_KEY
    assert [(m.id, m.provider, m.created, m.supports_streaming) for m in models] == [
        ("curie", "azure", 1646126127, True), ("text-embedding-ada-002", "azure", 1646126127, False)]
    assert models[0].raw["lifecycle_status"] == "generally-available"


# ---------------------------------------------------------------- the v1 API


def test_v1_api_shape(server):
    with azure(server, "/openai/v1") as client:
        assert client.chat_completion(model=DEPLOYMENT, messages="hi").text == "Hello!"
        assert server.requests[-1].path == "/openai/v1/chat/completions"
        assert server.requests[-1].json()["model"] == DEPLOYMENT
        assert server.requests[-1].headers["api-key"] == TEST_KEY
        assert collect(client.chat_completion_stream(model=DEPLOYMENT, messages="hi")).text == "Hi"
        assert server.requests[-1].path == "/openai/v1/chat/completions"
        assert [m.id for m in client.list_models()] == ["curie", "text-embedding-ada-002"]
        assert server.requests[-1].path == "/openai/v1/models"


def test_v1_api_keeps_an_api_version_it_is_given(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")  # not for the v1 API
    with azure(server, "/openai/v1/?api-version=preview") as client:
        client.chat_completion(model=DEPLOYMENT, messages="hi")
    assert server.requests[-1].path == "/openai/v1/chat/completions?api-version=preview"


# ---------------------------------------------------------------- Microsoft Entra ID


class Tokens:
    """A token provider: a new token per call, counted."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return f"eyJ0eXAiOiJKV1Qi-entra-token-{self.calls:04d}"


def test_entra_token_provider_is_called_per_request(server):
    tokens = Tokens()
    with azure(server, api_key=tokens) as client:
        client.chat_completion(model=DEPLOYMENT, messages="hi")
        collect(client.chat_completion_stream(model=DEPLOYMENT, messages="hi"))
        client.list_models()
        shown = repr(client) + repr(client._transport.session.auth) + repr(client._transport.__dict__)
    assert tokens.calls == 3
    assert [r.headers["authorization"] for r in server.requests] == [
        f"Bearer eyJ0eXAiOiJKV1Qi-entra-token-{n:04d}" for n in (1, 2, 3)]
    assert all("api-key" not in r.headers for r in server.requests)
    assert "entra-token" not in shown and "Tokens" not in shown
    assert repr(TokenAuth(tokens)) == "<Microsoft Entra ID bearer token auth>"


def test_a_retry_reuses_its_requests_token(server):
    tokens = Tokens()
    replies = iter([503, 200])

    def flaky(req, reply):
        status = next(replies)
        if status == 200:
            reply.json(completion())
        else:
            reply.json({"error": {"code": "503", "message": "busy"}}, status=status, headers=[("Retry-After", "0")])

    with azure(server, api_key=tokens, max_retries=1) as client:
        server.handler = flaky
        assert client.chat_completion(model=DEPLOYMENT, messages="hi").text == "Hello!"
    assert tokens.calls == 1
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer eyJ0eXAiOiJKV1Qi-entra-token-0001"] * 2


def test_rejected_token_is_an_authentication_error_without_the_token(server):
    tokens = Tokens()
    with azure(server, api_key=tokens) as client:
        server.handler = lambda req, reply: reply.json(
            {"error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is "
                                                 "incorrect (https://cognitiveservices.azure.com), or have expired."}},
            status=401)
        with pytest.raises(llmlib.AuthenticationError) as info:
            client.chat_completion(model=DEPLOYMENT, messages="hi")
    assert info.value.status_code == 401 and "Access token is missing" in str(info.value)
    assert "entra-token" not in str(info.value) + repr(info.value)


def test_failing_token_provider_is_a_configuration_error(server):
    def broken():
        raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    with azure(server, api_key=broken) as client:
        with pytest.raises(llmlib.ConfigurationError) as info:
            client.chat_completion(model=DEPLOYMENT, messages="hi")
    assert "token provider" in str(info.value) and "DefaultAzureCredential failed" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert server.requests == []


@pytest.mark.parametrize("token,words", [(None, "not NoneType"), ("", "not str"),
                                         ("eyJ0eXAi\r\nX-Injected: 1", "cannot be sent in an HTTP header")])
def test_bad_tokens_are_refused_before_sending(token, words, server):
    with azure(server, api_key=lambda: token) as client:
        with pytest.raises(llmlib.ConfigurationError, match=words) as info:
            client.chat_completion(model=DEPLOYMENT, messages="hi")
    assert "eyJ0eXAi" not in str(info.value)
    assert server.requests == []


def test_other_providers_take_no_token_provider(server):
    with pytest.raises(llmlib.ConfigurationError, match="must be a str"):
        Client("openai", api_key=Tokens(), base_url=server.url + "/v1")


# ---------------------------------------------------------------- content filtering


def test_content_filter_finish_is_reported(server):
    verdict = {"hate": SAFE, "sexual": {"filtered": True, "severity": "medium"}}
    with azure(server) as client:
        server.handler = lambda req, reply: reply.json(completion(text=None, finish="content_filter",
                                                                  results=verdict))
        response = client.chat_completion(model=DEPLOYMENT, messages="hi")
        assert response.finish_reason == "content_filter" and response.text == ""
        assert response.message.provider_fields == {"azure": {"prompt_filter_results": PROMPT_RESULTS,
                                                              "content_filter_results": verdict}}

        server.handler = lambda req, reply: reply.sse(sse(
            PROMPT_CHUNK, chunk(content="Once", results={"hate": SAFE, "sexual": SAFE}),
            chunk(finish="content_filter", results=verdict)))
        chunks = list(client.chat_completion_stream(model=DEPLOYMENT, messages="hi"))
    assert [e for e in events(chunks) if isinstance(e, Done)] == [Done("content_filter")]
    streamed = collect(chunks)
    assert streamed.finish_reason == "content_filter" and streamed.text == "Once"
    assert streamed.message.provider_fields["azure"]["content_filter_results"] == verdict


def test_the_most_severe_result_per_category_is_kept(server):
    """A later, milder report for a category does not hide an earlier, worse one."""
    low = {"filtered": False, "severity": "low"}
    body = sse(chunk(content="a", results={"hate": SAFE, "violence": SAFE}),
               chunk(content="b", results={"hate": low, "violence": SAFE}),
               chunk(content="c", results={"hate": SAFE, "violence": SAFE}),
               chunk(finish="stop"),
               chunk(results={"protected_material_text": {"filtered": False, "detected": False}},
                     content_filter_offsets={"check_offset": 3, "start_offset": 0, "end_offset": 3}))
    with azure(server) as client:
        server.handler = lambda req, reply: reply.sse(body)
        chunks = list(client.chat_completion_stream(model=DEPLOYMENT, messages="hi"))
    fields = collect(chunks).message.provider_fields["azure"]
    assert fields == {"content_filter_results": {"hate": low, "violence": SAFE,
                                                 "protected_material_text": {"filtered": False, "detected": False}},
                      "content_filter_offsets": {"check_offset": 3, "start_offset": 0, "end_offset": 3}}
    # Chunks already yielded keep what they carried.
    assert chunks[0].choices[0].delta.provider_fields == {
        "azure": {"content_filter_results": {"hate": SAFE, "violence": SAFE}}}
    assert chunks[2].choices[0].delta.provider_fields is None  # a milder repeat changes nothing


def test_every_choice_gets_the_prompt_results(server):
    body = sse(PROMPT_CHUNK, chunk(0, "A"), chunk(1, "B"), chunk(0, finish="stop"), chunk(1, finish="length"))
    with azure(server) as client:
        server.handler = lambda req, reply: reply.sse(body)
        response = collect(client.chat_completion_stream(model=DEPLOYMENT, messages="hi", n=2))
    assert [(c.index, c.message.text, c.finish_reason) for c in response.choices] == [
        (0, "A", "stop"), (1, "B", "length")]
    assert [c.message.provider_fields for c in response.choices] == [
        {"azure": {"prompt_filter_results": PROMPT_RESULTS}}] * 2


def test_filtered_prompt_is_a_bad_request_with_the_verdict(server):
    """A prompt the filter rejects: HTTP 400, code content_filter (the body's shape
    from the content-filter doc)."""
    verdict = {"hate": {"filtered": True, "severity": "high"}, "violence": SAFE}
    body = {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                 "management policy. Please modify your prompt and retry.",
                      "type": None, "param": "prompt", "code": "content_filter", "status": 400,
                      "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": verdict}}}
    with azure(server) as client:
        server.handler = lambda req, reply: reply.json(body, status=400)
        with pytest.raises(llmlib.BadRequestError) as info:
            client.chat_completion_stream(model=DEPLOYMENT, messages="hi")
    error = info.value
    assert error.status_code == 400 and "content management policy" in str(error)
    assert error.body["error"]["innererror"]["content_filter_result"] == verdict
