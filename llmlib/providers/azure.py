"""Azure OpenAI: the OpenAI chat-completions protocol on an Azure resource's deployments.

Follows the Azure OpenAI inference REST reference
(https://learn.microsoft.com/azure/ai-services/openai/reference, GA ``2024-10-21``:
``POST {endpoint}/openai/deployments/{deployment-id}/chat/completions?api-version=...``,
the key in an ``api-key`` header, or ``Authorization: Bearer <Microsoft Entra ID token>``),
the v1 API (https://learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle:
``{endpoint}/openai/v1/chat/completions``, no ``api-version``, the deployment name as
``model``), Models - List (https://learn.microsoft.com/rest/api/azureopenai/models/list:
``GET {endpoint}/openai/models?api-version=...``), content filtering
(https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter) and
content streaming (https://learn.microsoft.com/azure/ai-services/openai/concepts/content-streaming).
Everything else is :mod:`llmlib.providers.openai`.

Configuration (the key when the Client is made, the rest at its first request):

- the key: ``api_key=`` or ``AZURE_OPENAI_API_KEY``, sent as ``api-key: <key>``. Or
  Microsoft Entra ID: ``Client("azure", api_key=get_token)`` with ``get_token()``
  returning a bearer token (a str; e.g. ``azure.identity.get_bearer_token_provider(
  DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default")``). It is
  called once per request (a retry reuses the token of its request), the token is
  sent as ``Authorization: Bearer <token>`` and kept nowhere else. The Client does
  both from this provider's row in :data:`llmlib.providers.SPECS` (the token by
  :class:`llmlib.transport.TokenAuth`).
- the endpoint: ``base_url=``, ``AZURE_BASE_URL`` or ``AZURE_OPENAI_ENDPOINT``, the
  resource's root ``https://<resource>.openai.azure.com`` (a trailing ``/openai`` is
  accepted). None of them: ConfigurationError naming ``AZURE_OPENAI_ENDPOINT`` at the
  first call that needs it (the endpoint is found by the protocol, as the local model's is).
- ``OPENAI_API_VERSION``: the ``api-version`` (default :data:`DEFAULT_API_VERSION`, the
  latest GA of the dated API). An ``api-version`` in the endpoint's query string wins.
- The ``model`` of a request is the **deployment name**: it goes in the URL path (and,
  as the OpenAI SDK does, in the body, where Azure ignores it).

Two URL shapes, chosen by the endpoint:

- classic: ``{endpoint}/openai/deployments/{model}/chat/completions?api-version=V``;
  models: ``{endpoint}/openai/models?api-version=V``. That lists the models the
  resource can deploy (base and fine-tuned), not its deployments: the data plane has
  no deployments listing since 2023 (that is the management API's, with an ARM token).
- v1, when the endpoint ends with ``/openai/v1``: ``{endpoint}/chat/completions`` and
  ``{endpoint}/models``, no ``api-version`` (one in the endpoint's query, such as
  ``?api-version=preview``, is kept).

Content filtering, in ``provider_fields={"azure": {...}}`` of each choice's message
(``collect`` merges the stream's into ``Message.provider_fields``; a whole answer has
them directly). Nothing here is sent back in the next turn.

- ``prompt_filter_results``: the filter's verdict on the prompt (the list Azure
  sends; older API versions called it ``prompt_annotations``, kept under the new
  name). A stream sends it in a first chunk with no choices: that chunk comes out
  with one choice of index 0 whose delta is empty but for ``provider_fields`` (no
  text, role or finish reason, so nothing else of the answer changes), and every
  choice's fields include it.
- ``content_filter_results``: the verdict on the answer, by category (``hate``,
  ``sexual``, ``violence``, ``self_harm``, ``protected_material_text``...). A stream
  reports it on every chunk or, with the asynchronous filter, in annotation chunks
  (empty ``id`` and ``model``, with ``content_filter_offsets``) that may come after
  ``finish_reason``. The fields hold, per category, the most severe report seen
  (``filtered``, then ``detected``, then ``severity``; the latest among equals), so
  the collected message says what the whole answer triggered.
- ``content_filter_offsets``: those of the latest annotation.

A streamed chunk's delta carries the choice's whole Azure fields so far, and only
when they change (Azure repeats the same results on nearly every chunk). An answer
stopped by the filter ends with ``finish_reason == "content_filter"``. A prompt the
filter rejects is an HTTP 400 (error code ``content_filter``): a BadRequestError whose
``.body`` holds Azure's ``innererror.content_filter_result``.

Stream end: ``data: [DONE]``, or every choice's ``finish_reason`` when the body ends
without it (as OpenAI). Annotation chunks after the finish reasons are read, since only
``[DONE]`` stops the reading.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qsl, quote, urlencode

import attrs

from llmlib.errors import ConfigurationError
from llmlib.providers import ProviderSpec
from llmlib.providers.base import HTTPRequest, Scrub
from llmlib.providers.openai import OpenAIProtocol, StreamDecoder as OpenAIStreamDecoder, decode_response, \
    encode_request
from llmlib.types import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ChunkChoice, Delta, \
    ModelInfo

__all__ = ["AzureProtocol", "StreamDecoder", "merge_filter_results", "PROTOCOL",
           "DEFAULT_API_VERSION", "ENDPOINT_ENV", "API_VERSION_ENV"]

#: The ``api-version`` used unless ``OPENAI_API_VERSION`` says otherwise: the latest
#: GA version of the dated inference API (https://learn.microsoft.com/azure/ai-services/openai/reference).
DEFAULT_API_VERSION = "2024-10-21"
#: The environment variable of the resource endpoint (``https://<resource>.openai.azure.com``).
ENDPOINT_ENV = "AZURE_OPENAI_ENDPOINT"
#: The environment variable of the ``api-version`` (as the OpenAI SDK's ``AzureOpenAI`` reads it).
API_VERSION_ENV = "OPENAI_API_VERSION"

_SEVERITY = {"safe": 0, "low": 1, "medium": 2, "high": 3}
_NONE: Dict[str, Any] = {}


# ---------------------------------------------------------------- content filter results


def _weight(result: Any) -> Tuple[bool, bool, int]:
    if not isinstance(result, dict):
        return (False, False, 0)
    severity = result.get("severity")
    return (result.get("filtered") is True, result.get("detected") is True,
            _SEVERITY.get(severity, 0) if isinstance(severity, str) else 0)


def merge_filter_results(old: Optional[Dict[str, Any]], new: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``content_filter_results`` ``new`` folded into ``old``: per category, the more
    severe report (``filtered``, then ``detected``, then ``severity``), ``new`` among
    equals. Returns ``old`` itself when nothing changes, else a new dict (``old`` is
    never modified: chunks already yielded hold it)."""
    merged = None
    for name, value in new.items():
        prev = old.get(name) if old else None
        if prev is None or (prev != value and _weight(value) >= _weight(prev)):
            if merged is None:
                merged = dict(old) if old else {}
            merged[name] = value
    return old if merged is None else merged


def _prompt_results(obj: Dict[str, Any]) -> Any:
    found = obj.get("prompt_filter_results")
    return obj.get("prompt_annotations") if found is None else found


# ---------------------------------------------------------------- stream


class StreamDecoder(OpenAIStreamDecoder):
    """OpenAI's stream decoder (its end-of-stream rule, errors, tool calls, all of
    it), plus Azure's content filter results (see the module docstring for where
    they go).

    It hooks :meth:`decode_object`, so each payload is parsed once; a payload
    without filter results costs one substring test more."""

    __slots__ = ("_prompt", "_fields", "_seen")

    def __init__(self, provider: str, choices: int = 1, scrub: Scrub = lambda s: s) -> None:
        super().__init__(provider, choices, scrub)
        self._shapes_left = 0  # no per-token shapes: decode_object must see every payload's filter results
        self._prompt: Any = None
        self._fields: Dict[int, Dict[str, Any]] = {}  # choice index -> its Azure fields so far
        self._seen: Dict[int, Any] = {}  # choice index -> the last content_filter_results as sent

    def decode_object(self, obj: Dict[str, Any], data: str) -> ChatCompletionChunk:
        # Everything OpenAI's decoder does (end marker, errors, finish reasons, tool
        # calls...) is done by it; this adds Azure's fields, which it does not keep.
        chunk = super().decode_object(obj, data)
        raws: Any = ()
        prompt = None
        if "_filter_" in data or "prompt_annotations" in data:
            raws = obj.get("choices") or ()
            prompt = _prompt_results(obj)
            if prompt is not None:
                self._prompt = prompt
                for fields in self._fields.values():
                    fields["prompt_filter_results"] = prompt
                if not chunk.choices:  # the prompt's results come alone: give them a choice to ride on
                    chunk.choices = [ChunkChoice(0, Delta())]
        elif all(c.index in self._fields for c in chunk.choices):
            return chunk
        for position, c in enumerate(chunk.choices):
            self._keep(c, raws[position] if position < len(raws) else _NONE, prompt is not None)
        return chunk

    def _keep(self, c: ChunkChoice, raw: Dict[str, Any], changed: bool) -> None:
        index = c.index
        fields = self._fields.get(index)
        if fields is None:
            fields = self._fields[index] = {}
            if self._prompt is not None:
                fields["prompt_filter_results"] = self._prompt
                changed = True
        results = raw.get("content_filter_results")
        if results and results != self._seen.get(index):  # Azure repeats the same results on most chunks
            if not isinstance(results, dict):
                raise ValueError(f"content_filter_results must be an object, not {type(results).__name__}")
            self._seen[index] = results
            before = fields.get("content_filter_results")
            after = merge_filter_results(before, results)
            if after is not before:
                fields["content_filter_results"] = after
                changed = True
        offsets = raw.get("content_filter_offsets")
        if offsets is not None and offsets != fields.get("content_filter_offsets"):
            fields["content_filter_offsets"] = offsets
            changed = True
        if changed:
            c.delta.provider_fields = {"azure": dict(fields)}


# ---------------------------------------------------------------- protocol


def _split(base_url: str) -> Tuple[str, List[Tuple[str, str]]]:
    base, _, query = base_url.partition("?")
    return base.rstrip("/"), parse_qsl(query, keep_blank_values=True)


def _decode_model(obj: Dict[str, Any], provider: str) -> ModelInfo:
    caps = obj.get("capabilities")
    created = obj.get("created", obj.get("created_at"))
    streams: Optional[bool] = True
    if isinstance(caps, dict):
        streams = bool(caps.get("chat_completion") or caps.get("completion"))
    context = obj.get("context_length") or obj.get("context_window")
    return ModelInfo(obj["id"], provider, obj.get("owned_by"), created if isinstance(created, int) else None,
                     context if isinstance(context, int) else None, supports_streaming=streams, raw=obj)


class AzureProtocol(OpenAIProtocol):
    """OpenAI chat completions on Azure OpenAI deployments (see the module docstring)."""

    def __init__(self, spec: ProviderSpec) -> None:
        super().__init__(spec)
        self._endpoint = os.environ.get(ENDPOINT_ENV) or None
        self.api_version = os.environ.get(API_VERSION_ENV) or DEFAULT_API_VERSION

    def base_url(self, configured: Optional[str]) -> str:
        """``configured`` (``base_url=`` or ``AZURE_BASE_URL``), else ``AZURE_OPENAI_ENDPOINT``."""
        url = configured or self._endpoint
        if not url:
            raise ConfigurationError(
                f"no Azure OpenAI endpoint: set {ENDPOINT_ENV}=https://<resource>.openai.azure.com "
                "(or pass Client('azure', base_url=...))", provider=self.spec.name)
        if not url.lower().startswith(("https://", "http://")):
            raise ConfigurationError(f"{ENDPOINT_ENV}={url!r} is not an http(s) URL: write it as "
                                     "https://<resource>.openai.azure.com", provider=self.spec.name)
        return url.rstrip("/")

    def _url(self, base_url: str, path: str, deployment: Optional[str] = None) -> str:
        base, query = _split(base_url)
        if base.endswith("/openai/v1"):  # the v1 API: no api-version unless the endpoint asks for one
            return base + path + (f"?{urlencode(query)}" if query else "")
        if base.endswith("/openai"):
            base = base[:-len("/openai")]
        if not any(k == "api-version" for k, _ in query):
            query.append(("api-version", self.api_version))
        where = f"/deployments/{quote(deployment, safe='')}" if deployment is not None else ""
        return f"{base}/openai{where}{path}?{urlencode(query)}"

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {endpoint}/openai/deployments/{model}/chat/completions?api-version=...``
        (v1: ``POST {endpoint}/chat/completions``) with the OpenAI body."""
        body = encode_request(request, self.spec, stream=stream)
        return HTTPRequest("POST", self._url(base_url, "/chat/completions", request.model), body,
                           {"Accept": "text/event-stream"} if stream else {})

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        return StreamDecoder(self.spec.name, request.n or 1, scrub)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        """The OpenAI answer, with ``prompt_filter_results`` and each choice's
        ``content_filter_results`` in its message's ``provider_fields["azure"]``."""
        response = decode_response(obj)
        prompt = _prompt_results(obj)
        choices = []
        for choice, raw in zip(response.choices, obj.get("choices") or ()):
            fields: Dict[str, Any] = {}
            if prompt is not None:
                fields["prompt_filter_results"] = prompt
            for name in ("content_filter_results", "content_filter_offsets"):
                if raw.get(name):
                    fields[name] = raw[name]
            if fields:
                choice = attrs.evolve(choice, message=attrs.evolve(choice.message, provider_fields={"azure": fields}))
            choices.append(choice)
        return attrs.evolve(response, choices=choices)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET {endpoint}/openai/models?api-version=...`` (v1: ``GET {endpoint}/models``):
        the models the resource can use, not its deployments (see the module docstring)."""
        return HTTPRequest("GET", self._url(base_url, "/models"))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        """Azure model objects (``created_at``, ``capabilities``) or OpenAI ones; one page."""
        items = obj.get("data") if isinstance(obj, dict) else obj
        if not isinstance(items, list):
            raise ValueError("expected a models list with a 'data' array")
        return [_decode_model(m, self.spec.name) for m in items if isinstance(m, dict) and m.get("id")], None


PROTOCOL = AzureProtocol
