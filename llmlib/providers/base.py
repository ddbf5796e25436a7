"""The seam between llmlib's HTTP machinery and a provider's wire format.

A protocol module (``llmlib.providers.openai``, ``.anthropic``, ``.gemini``...)
defines one subclass of :class:`Protocol`. It knows its provider's JSON shapes
and nothing about HTTP, threads, retries, cancellation or timeouts; the
:class:`~llmlib.Client` owns those. In the style of requests' ``BaseAdapter``,
the contract is small:

==========================  ==================================================
``framing``                 ``"sse"`` or ``"ndjson"``: how the stream body is cut
                            into events (:mod:`llmlib.framing`)
``base_url(configured)``    the API root (default: the configured one)
``default_model()``         the model of a request that names none (default: None)
``chat_request(...)``       a chat call as an :class:`HTTPRequest`
``stream_decoder(...)``     a :class:`StreamDecoder`: events in, chunks out, with
                            the protocol's end-of-stream rule
``decode_response(obj)``    a whole (non-streamed) answer
``models_request(...)``     the model listing, page by page
``decode_models(obj)``      one page of the listing, and the next page's token
==========================  ==================================================

How the key is sent and the headers that go with every request are facts of
the provider's row (:class:`~llmlib.providers.ProviderSpec` ``auth_header``,
``headers``, ``token_auth``), not of this class: a Client is made from its row
and imports the protocol module at its first request.

Decoders may assume well-formed payloads: whatever a decoder raises on a payload
of an unexpected shape (``KeyError``, ``TypeError``, ``AttributeError``,
``RecursionError``...) is turned by the caller into
:class:`~llmlib.DecodeError` with ``.partial``, in one place
(:mod:`llmlib.response_stream` and ``Client``). A decoder raises an
:class:`~llmlib.LLMError` for an error the provider reports in band.

Adding a provider that speaks an existing protocol is one row in
:data:`llmlib.providers.SPECS`; a new protocol is one module here plus rows.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import attrs

from llmlib.errors import ConfigurationError
from llmlib.providers import ProviderSpec
from llmlib.types import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ModelInfo

__all__ = ["HTTPRequest", "StreamDecoder", "Protocol", "Scrub", "fail", "where", "json_object"]

#: A Client's secret scrubber: text in, text with every credential replaced by ``***``.
Scrub = Callable[[str], str]


@attrs.frozen
class HTTPRequest:
    """One HTTP request a protocol wants sent: ``method`` (``"POST"``...), absolute
    ``url``, extra ``headers`` for this request, and ``json`` (the body, encoded
    as JSON by the transport; None for no body)."""

    method: str
    url: str
    json: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)


class StreamDecoder:
    """Turns the events of one streamed answer into :class:`~llmlib.ChatCompletionChunk`.

    ``decode(event)`` gets each event in order (an object with ``event``, ``data``
    and ``id``: for SSE the fields of the event; for NDJSON ``event`` is
    ``"message"`` and ``data`` one line) and returns a chunk, or None for an
    event that carries nothing for the caller (pings, the end marker). It raises
    the typed :class:`~llmlib.LLMError` of an error event.

    ``ended`` becomes True at the protocol's end marker (``data: [DONE]``,
    Anthropic ``message_stop``, Ollama ``"done": true``): nothing after it is
    read. ``complete`` says the answer is whole even without the end marker
    (OpenAI: every choice sent its ``finish_reason``); a body that ends while
    ``complete`` is False raises :class:`~llmlib.IncompleteStreamError`.
    """

    ended: bool = False
    #: Set by the stream, before the first event, when it is read through
    #: :func:`llmlib.streaming.events` for the choice of this index. A decoder may
    #: then return, for a payload that carries nothing but one piece of that
    #: choice's text or of one started tool call's arguments, the
    #: :class:`~llmlib.streaming.ContentDelta` or
    #: :class:`~llmlib.streaming.ToolCallDelta` event itself instead of a chunk
    #: (OpenAI's does, for the payloads it reads by shape); the stream folds it
    #: into ``.partial`` as it would the chunk. Ignoring it is always correct.
    events_choice: Optional[int] = None

    @property
    def complete(self) -> bool:
        return self.ended

    def decode(self, event: Any) -> Optional[ChatCompletionChunk]:  # pragma: no cover - interface
        raise NotImplementedError


class Protocol:
    """One provider wire format (see the module docstring for the contract).

    Constructed once per Client with the provider's table row (``spec``: name,
    default base URL, key variables, per-provider quirks).
    """

    #: How a streamed body is framed: ``"sse"`` (Server-Sent Events) or ``"ndjson"``.
    framing: str = "sse"
    #: True when a non-streamed call is better made as a stream and collected: a
    #: server that generates for one request at a time stops only when a stream's
    #: connection closes, so a call that is cancelled, interrupted (Ctrl-C) or past
    #: its ``total`` timeout must be a stream not to leave it generating (the
    #: bundled llama.cpp server, whose streams carry no usage: nor do such answers).
    stream_internally: bool = False
    #: True when the server may answer 200 and then send an empty stream to refuse
    #: a request (llama-cpp-python's server, for a prompt over the context window):
    #: such a stream's IncompleteStreamError is then replaced by the error the same
    #: request gets unstreamed, which carries the server's reason.
    empty_stream_means_refused: bool = False
    #: True when the provider serves OpenAI's Responses API (``POST {base_url}/responses``);
    #: otherwise ``Client.responses`` / ``responses_stream`` go through chat completions
    #: (:mod:`llmlib.responses_fallback`).
    supports_responses: bool = False

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec

    @property
    def provider(self) -> str:
        """The provider's name (``"openai"``, ``"anthropic"``...)."""
        return self.spec.name

    def base_url(self, configured: Optional[str]) -> str:
        """The API root requests go to: ``configured`` (the ``base_url`` argument,
        ``<NAME>_BASE_URL``, or the table's default). Raises ConfigurationError
        when there is none. A protocol whose rows have no default finds or
        starts one (Azure's endpoint variable, the local model's server)."""
        if configured is None:
            raise ConfigurationError(f"{self.provider} has no default base URL; pass base_url=...")
        return configured

    def default_model(self) -> Optional[str]:
        """The model used when a request names none; None: the caller must name one."""
        return None

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """The HTTP request of a chat call. Raises ConfigurationError, naming the
        provider and the field, for input this provider cannot take, before
        anything is sent."""
        raise NotImplementedError

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        """A fresh decoder for one streamed answer to ``request``; ``scrub`` must be
        applied to any provider text put into an exception message."""
        raise NotImplementedError

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        """A whole answer (the decoded JSON body of a non-streamed call)."""
        raise NotImplementedError

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """The request for one page of the model listing (``page_token`` None: the first).
        Raises ConfigurationError when the provider has no listing endpoint."""
        raise NotImplementedError

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        """One page of the listing: ``(models, next_page_token)``; the token is None on the last page."""
        raise NotImplementedError


def fail(provider: str, text: str) -> ConfigurationError:
    """The ConfigurationError for input ``provider`` cannot take, raised before
    anything is sent: ``"<provider>: <text>"``."""
    return ConfigurationError(f"{provider}: {text}")


def where(position: int, message: Any, part: Optional[int] = None) -> str:
    """Where in a request a bad input is, for error messages:
    ``messages[2] (user) part 1``."""
    text = f"messages[{position}] ({message.role.value})"
    return text if part is None else f"{text} part {part}"


#: json.loads' own C scanner: ``scan_json(text, 0)`` gives ``(value, end)``, or
#: raises StopIteration when no JSON value starts at 0 and JSONDecodeError for
#: one that is malformed. Called without loads' two whitespace regexes and three
#: Python call layers (once per streamed event, that is half its cost).
scan_json = json.JSONDecoder().scan_once


def json_object(data: str) -> Dict[str, Any]:
    """The JSON object an event or line carries. Raises ValueError for invalid JSON
    (``json.JSONDecodeError``, with ``json.loads``' message) or for a value that is
    not an object (the stream layer reports it as DecodeError with ``.partial``)."""
    try:
        obj, end = scan_json(data, 0)
    except StopIteration:  # nothing JSON at the start (or leading whitespace)
        obj, end = json.loads(data), len(data)
    if end != len(data):  # trailing whitespace is fine; json.loads raises for anything else
        obj = json.loads(data)
    if type(obj) is not dict:
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj
