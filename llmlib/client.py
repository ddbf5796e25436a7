"""The Client: the same calls, types and errors for every provider."""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

import attrs

from llmlib import deadline
from llmlib.cancel import CancelToken
from llmlib.errors import (APIStatusError, CancelledError, ConfigurationError, DecodeError, IncompleteStreamError,
                           LLMError)
from llmlib.options import ConnectionOptions
from llmlib.providers import Provider, protocol_for, spec_for
from llmlib.redaction import Secrets, check_api_key, cut

# A Client is made from the provider's table row and checks everything it was given
# there. Its transport (requests, urllib3 and the session), the provider's protocol
# module (which brings the message and response types), the stream machinery, the
# error mapping and the model table are imported by the first request that needs
# them: see __getattr__ and the methods below.
if TYPE_CHECKING:  # pragma: no cover
    import requests

    from llmlib.transport import Transport
    from llmlib.providers.base import HTTPRequest
    from llmlib.response_stream import ChunkStream
    from llmlib.types import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse, ModelInfo

__all__ = ["Client"]

_ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error body read for its message
_MAX_MODEL_PAGES = 100  # pages of a paginated model listing read at most


_OPTION_ALIASES = {"default_headers": "headers"}


def _models() -> Any:
    """:mod:`llmlib.models`, imported at the first request rather than with the Client."""
    from llmlib import models

    return models


def _option_changes(keywords: dict) -> dict:
    """``Client(...)`` keywords as ConnectionOptions fields (``default_headers`` is ``headers``)."""
    import attrs

    fields = {f.name for f in attrs.fields(ConnectionOptions)}
    changes = {}
    for name, value in keywords.items():
        field = _OPTION_ALIASES.get(name, name)
        if field not in fields:
            raise ConfigurationError(f"Client() got an unknown keyword {name!r}; options are "
                                     f"{', '.join(sorted(fields))} (or pass options=ConnectionOptions(...))")
        changes[field] = value
    return changes


def _check_base_url(url: str, where: str) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ConfigurationError(f"{where}={url!r} is not an http(s) URL: write it with its scheme, "
                                 f"e.g. 'http://{url.split('://')[-1] or '127.0.0.1:8080/v1'}'")


class Client:
    """A blocking client for one provider.

    ``Client("openai")`` reads the key from the provider's environment variable
    (``OPENAI_API_KEY`` here; see ``llmlib.providers.SPECS``); ``api_key=`` and
    ``base_url=`` override them, ``options=`` sets timeouts, retries, proxy and the
    connection pool (:class:`~llmlib.ConnectionOptions`). ``Client("local")`` runs
    the bundled model, with no key and no network.

    One ``requests.Session`` per Client: share one Client between threads, and
    close it (or use ``with Client(...) as client:``) when done. The API key never
    appears in a repr, an exception or a log record.

    The common options may also be given as keywords, as openai-python takes
    them: ``Client("openai", timeout=30, max_retries=5)`` (``timeout``,
    ``max_retries``, ``proxy``, ``headers`` or ``default_headers``); they override
    the same fields of ``options``.

    Raises ConfigurationError for an unknown provider, a missing key (naming
    the variable to set), a ``base_url`` that is not an ``http(s)://`` URL, or a
    bad option.
    """

    def __init__(self, provider: Union[str, Provider], api_key: Optional[str] = None,
                 base_url: Optional[str] = None, options: Optional[ConnectionOptions] = None,
                 **option_keywords: Any) -> None:
        spec = spec_for(provider)
        self._explicit = (api_key, base_url)  # what a pickle carries (see __getstate__)
        self._spec = spec
        self.provider: str = spec.name
        self.options = options if options is not None else ConnectionOptions()
        if not isinstance(self.options, ConnectionOptions):
            raise ConfigurationError("options must be a llmlib.ConnectionOptions")
        if option_keywords:
            self.options = self.options.with_changes(**_option_changes(option_keywords))
        if api_key is None:
            api_key = next((os.environ[v] for v in spec.key_env if os.environ.get(v)), None)
        if spec.needs_key and not api_key:
            raise ConfigurationError(
                f"no API key for {spec.name}: set {' or '.join(spec.key_env)} in the environment, "
                f"or pass Client({spec.name!r}, api_key=...)"
            )
        url = base_url or os.environ.get(spec.base_url_env) or spec.base_url
        if url is not None:
            _check_base_url(url, "base_url" if base_url else spec.base_url_env)
        self._base_url = url.rstrip("/") if url else None  # None: the protocol finds it (azure, local)

        # The row says how the key travels. The transport is made at the first request
        # (_new_transport, called from __getattr__), and the protocol module loaded then too.
        options, name, headers = self.options, spec.name, dict(spec.headers)
        secrets = self._secrets = Secrets(api_key, options.headers, url or "", proxy=options.proxy)
        weakref.finalize(self, secrets.close)  # a Client never used nor closed leaves the log filter too
        token_provider = api_key if callable(api_key) and spec.token_auth else None  # asked at each request
        header = value = None
        if token_provider is None:
            check_api_key(api_key, spec.name)  # before http.client can quote it in a UnicodeEncodeError
            header, value = spec.auth(api_key)

        def new_transport() -> Transport:
            from llmlib.transport import TokenAuth, Transport

            auth = TokenAuth(token_provider, name) if token_provider is not None else None
            return Transport(options, name, auth_header=header, auth_value=value, auth=auth, secrets=secrets,
                             headers=headers)

        self._new_transport = new_transport
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Only for an attribute not yet set, each made at the first request that needs it:
        # - the transport, once (under the lock: two sessions would leave one never closed);
        # - the protocol, importing its module and the types. Two threads racing here each
        #   make an equal, stateless protocol object; the last assignment wins.
        if name == "_transport" and "_new_transport" in self.__dict__:
            with self._lock:
                transport = self.__dict__.get("_transport")
                if transport is None:
                    transport = self._transport = self._new_transport()
            return transport
        if name == "_protocol" and "_spec" in self.__dict__:
            protocol = self._protocol = protocol_for(self._spec)
            return protocol
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @classmethod
    def with_options(cls, provider: Union[str, Provider], options: ConnectionOptions, *,
                     api_key: Optional[str] = None, base_url: Optional[str] = None) -> "Client":
        """``Client(provider, options=options)``, spelled for readability."""
        return cls(provider, api_key=api_key, base_url=base_url, options=options)

    @property
    def base_url(self) -> str:
        """The API root requests go to (for ``local``, starting its server on first use)."""
        return self._protocol.base_url(self._base_url)

    def __repr__(self) -> str:
        return self._secrets.scrub(f"Client(provider={self.provider!r}, base_url={self._base_url or '<started on first use>'!r})")

    def close(self) -> None:
        """Close the pooled connections (none before the first request). The Client is not used after this."""
        with self._lock:
            transport = self.__dict__.get("_transport")
        if transport is not None:
            transport.close()
        self._secrets.close()

    def __getstate__(self) -> dict:
        """A Client pickles to its configuration, never a socket, lock or thread:
        the provider, the ``base_url`` and ``api_key`` *as passed* (None when they
        came from the environment or the provider's default, so the receiving
        process reads its own environment), and the ConnectionOptions. The key,
        when passed explicitly, does cross the wire: send pickles only where you
        would send the key."""
        api_key, base_url = self._explicit
        return {"provider": self.provider, "api_key": api_key, "base_url": base_url, "options": self.options}

    def __setstate__(self, state: dict) -> None:
        """Unpickled: a new Client from that configuration, with its own connections."""
        self.__init__(state["provider"], api_key=state.get("api_key"), base_url=state.get("base_url"),
                      options=state.get("options"))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------ chat

    def _build(self, request: Optional[ChatCompletionRequest], kwargs: dict) -> ChatCompletionRequest:
        from llmlib.types import ChatCompletionRequest

        if request is None:
            default = self._protocol.default_model()
            if default is not None:
                kwargs.setdefault("model", default)
            try:
                return ChatCompletionRequest(**kwargs)
            except TypeError as exc:
                raise ConfigurationError(f"bad chat request arguments: {exc}") from None
        if not isinstance(request, ChatCompletionRequest):
            raise ConfigurationError(
                f"expected a ChatCompletionRequest, got {type(request).__name__}; "
                "or pass model=... and messages=... as keywords"
            )
        return request.with_changes(**kwargs) if kwargs else request

    def chat_completion(self, request: Optional[ChatCompletionRequest] = None, *,
                        cancel: Optional[CancelToken] = None, **kwargs: Any) -> ChatCompletionResponse:
        """Send one chat completion and return the whole answer.

        Pass a :class:`ChatCompletionRequest`, or its fields as keywords
        (``model=``, ``messages=``, ``max_tokens=``...). Follows the provider's chat
        API (OpenAI protocol: https://platform.openai.com/docs/api-reference/chat/create).

        ``cancel``: a CancelToken; cancelling it from another thread abandons the
        call (closing its connection, even while the server is still generating)
        and raises CancelledError.

        Raises the :mod:`llmlib.errors` tree: ConfigurationError (bad input, before
        sending), APIConnectionError / APITimeoutError, APIStatusError subclasses
        (after retries), ResponseTooLargeError, DecodeError, CancelledError.
        """
        return self._chat(self._build(request, kwargs), cancel)

    def _chat(self, req: ChatCompletionRequest, cancel: Optional[CancelToken] = None,
              retry: bool = True) -> ChatCompletionResponse:
        if self._protocol.stream_internally:
            # A server that generates for one request at a time (the bundled model)
            # stops only when a stream's connection closes: a call that is cancelled,
            # interrupted (Ctrl-C) or past its total deadline must not leave it
            # generating for the next one to wait on.
            from llmlib.streaming import collect

            with self._stream(req, cancel, retry) as stream:
                response = collect(stream)
            if cancel is not None and cancel.cancelled:
                raise CancelledError("cancelled while the answer was streaming", provider=self.provider)
            return attrs.evolve(response, http=stream.http)
        http = self._protocol.chat_request(self.base_url, req, stream=False)  # the provider's own refusals first
        _models().check_request(self.provider, req)  # then what the model table knows the model cannot take
        data, info = self._json(http, cancel, retry, with_http=True)
        return attrs.evolve(self._decode(self._protocol.decode_response, data), http=info)

    def chat_completion_stream(self, request: Optional[ChatCompletionRequest] = None, *,
                               cancel: Optional[CancelToken] = None,
                               **kwargs: Any) -> Iterator[ChatCompletionChunk]:
        """Send a streamed chat completion; return a plain generator of chunks.

        The request is sent now: HTTP errors (401, 404, 429 after retries...) are
        raised by this call, before the generator exists. Errors inside the stream
        are raised from the for-loop, with ``.partial`` holding what arrived.
        Leaving the loop early, ``close()``, or dropping the generator closes the
        connection. With ``cancel``, cancelling the token ends the generator
        quietly from any thread. ``Timeout.total`` (seconds) bounds the whole
        stream: past it the loop raises APITimeoutError with ``.partial``. Usage
        arrives on the last chunk when the provider reports it.
        """
        req = self._build(request, kwargs)
        return self._stream(req, cancel)

    def _stream(self, req: ChatCompletionRequest, cancel: Optional[CancelToken] = None,
                retry: bool = True) -> ChunkStream:
        http = self._protocol.chat_request(self.base_url, req, stream=True)
        _models().check_request(self.provider, req)
        decoder = self._protocol.stream_decoder(req, self._transport.scrub)
        stream = self._open_stream(http, decoder, self._protocol.framing, cancel, retry)
        if self._protocol.empty_stream_means_refused:
            return stream.wrapped(self._explain_empty(stream, req, cancel))
        return stream

    def _explain_empty(self, stream: ChunkStream, req: ChatCompletionRequest,
                       cancel: Optional[CancelToken]) -> Iterator[ChatCompletionChunk]:
        """``stream``; but a stream that ended with nothing at all (a server that
        refused the request after its 200, such as llama.cpp's for a prompt over
        the context window) raises the refusal the same request gets unstreamed
        (ContextLengthExceededError with the server's reason, for one)."""
        try:
            yield from stream
        except IncompleteStreamError as exc:
            if exc.partial is not None:
                raise
            http = self._protocol.chat_request(self.base_url, req, stream=False)
            self._json(http, cancel)  # raises the server's error; an answer here leaves exc standing
            raise

    def _open_stream(self, http: HTTPRequest, decoder: Any, framing: str, cancel: Optional[CancelToken],
                     retry: bool = True, accumulator: Any = None) -> ChunkStream:
        """Send ``http`` now (HTTP errors raise here) and return the stream that owns
        its response, read through ``framing`` and ``decoder``."""
        token = deadline.start(self.options.timeout.total, cancel)
        try:
            response = self._transport.request(http.method, http.url, json=http.json, stream=True,
                                               cancel=token, headers=http.headers, retry=retry)
        except BaseException:
            deadline.finish(token)
            raise
        try:
            self._check_stream(response, token)
        except BaseException:
            response.close()
            self._transport.finished()
            deadline.finish(token)
            raise
        from llmlib.response_stream import open_stream

        return open_stream(self._transport, response, decoder, framing, token, accumulator=accumulator)

    def chat_completion_stream_with_cancel(self, request: Optional[ChatCompletionRequest] = None,
                                           **kwargs: Any) -> Tuple[Iterator[ChatCompletionChunk], CancelToken]:
        """``chat_completion_stream`` with a new :class:`CancelToken`: returns
        ``(generator, token)``; ``token.cancel()`` from any thread ends the stream."""
        token = CancelToken()
        return self.chat_completion_stream(request, cancel=token, **kwargs), token

    def quick_chat_text(self, model_or_prompt: Optional[str], prompt: Optional[str] = None, *,
                        system: Optional[str] = None, **kwargs: Any) -> str:
        """The text of a one-turn chat: ``prompt`` as the user message, optionally
        after a ``system`` message.

        ``quick_chat_text("gpt-4o", "What is ownership?")``, or with the model as a
        keyword, ``quick_chat_text("What is ownership?", model="gpt-4o")``, or no
        model at all where the provider has a default (``local``). Raises like
        :meth:`chat_completion`; ConfigurationError when no model is known.
        """
        if prompt is None:
            prompt = model_or_prompt
        elif model_or_prompt is not None:
            kwargs["model"] = model_or_prompt
        if not isinstance(prompt, str):
            raise ConfigurationError("quick_chat_text needs a prompt string")
        from llmlib.messages import Message

        messages = ([Message.system(system)] if system else []) + [Message.user(prompt)]
        if "model" not in kwargs and self._protocol.default_model() is None:
            raise ConfigurationError(f"{self.provider} has no default model: pass model=..., e.g. "
                                     f"client.quick_chat_text({prompt[:20]!r}, model=...)")
        return self.chat_completion(messages=messages, **kwargs).text

    # ------------------------------------------------------------ batches

    def chat_completion_batch(self, requests: Sequence[ChatCompletionRequest], concurrency_limit: Optional[int] = None,
                              *, cancel: Optional[CancelToken] = None, progress: Any = False,
                              checkpoint: Any = None) -> List[Any]:
        """Run many requests on a thread pool; a list in input order of responses or
        ``LLMError`` instances (never raised). ``checkpoint="results.jsonl"`` makes it
        resumable (:mod:`llmlib.checkpoint`). See :func:`llmlib.batch.chat_completion_batch`."""
        from llmlib.batch import chat_completion_batch

        return chat_completion_batch(self, requests, concurrency_limit, cancel=cancel, progress=progress,
                                     checkpoint=checkpoint)

    def chat_completion_batch_smart(self, requests: Sequence[ChatCompletionRequest], *, max_concurrency: int = 32,
                                    cancel: Optional[CancelToken] = None, progress: Any = False,
                                    checkpoint: Any = None) -> List[Any]:
        """A batch that adapts its concurrency to the provider's rate limits
        (AIMD, honouring ``Retry-After``); ``checkpoint=`` as in :meth:`chat_completion_batch`.
        See :func:`llmlib.batch.chat_completion_batch_smart`."""
        from llmlib.batch import chat_completion_batch_smart

        return chat_completion_batch_smart(self, requests, max_concurrency=max_concurrency, cancel=cancel,
                                           progress=progress, checkpoint=checkpoint)

    def chat_completion_stream_batch(self, requests: Sequence[ChatCompletionRequest],
                                     concurrency_limit: Optional[int] = None, *,
                                     cancel: Optional[CancelToken] = None) -> Iterator[Tuple[int, Any]]:
        """Stream many requests at once as one generator of ``(index, chunk)`` (or
        ``(index, error)``) pairs. See :func:`llmlib.batch.chat_completion_stream_batch`."""
        from llmlib.batch import chat_completion_stream_batch

        return chat_completion_stream_batch(self, requests, concurrency_limit, cancel=cancel)

    # ------------------------------------------------------------ models

    def list_models(self) -> List[ModelInfo]:
        """The models the provider offers, every page of its listing (OpenAI
        protocol: ``GET /models``; see the provider's protocol module), each
        completed from llmlib's model table where the listing is silent
        (:func:`llmlib.models.merge`: the listing wins wherever it says).

        Raises like :meth:`chat_completion`; ConfigurationError, before sending
        anything, for a provider with no listing endpoint (``perplexity``).
        """
        from llmlib import models as known  # the table is read on first use

        listed: List[ModelInfo] = []
        page: Optional[str] = None
        for _ in range(_MAX_MODEL_PAGES):
            data = self._json(self._protocol.models_request(self.base_url, page), None)
            found, page = self._decode(self._protocol.decode_models, data)
            listed.extend(found)
            if not page:
                break
        return [known.merge(self.provider, info, self._spec.protocol) for info in listed]

    def model_info(self, model: str) -> ModelInfo:
        """What llmlib knows of ``model``: its entry in the provider's listing
        (:meth:`list_models`), merged with llmlib's model table. A model the
        provider does not list, or any model of a provider with no listing
        endpoint, is answered from the table alone (``raw`` then empty).

        Raises NotFoundError when neither the listing nor the table knows it;
        otherwise like :meth:`list_models`.
        """
        from llmlib import models as known

        base_url = self.base_url
        try:
            self._protocol.models_request(base_url)  # builds the request only; raises when there is no listing
        except ConfigurationError:
            return known.model_info(self.provider, model, (), has_listing=False)
        return known.model_info(self.provider, model, self.list_models())

    # ------------------------------------------------------------ plumbing

    def _decode(self, decode: Any, data: Any) -> Any:
        """``decode(data)``, any failure on a body of an unexpected shape raised as DecodeError."""
        try:
            return decode(data)
        except LLMError:
            raise
        except Exception as exc:  # KeyError, TypeError, AttributeError, RecursionError...
            raise DecodeError(
                f"{self.provider} sent a body of an unexpected shape ({type(exc).__name__}: "
                f"{cut(str(exc), 200, self._transport.scrub)})", provider=self.provider,
            ) from None

    def _json(self, http: HTTPRequest, cancel: Optional[CancelToken] = None, retry: bool = True,
              with_http: bool = False) -> Any:
        """Send ``http`` and return its decoded JSON body (with ``with_http``: the
        pair ``(body, HTTPInfo)``). Raises the llmlib error tree."""
        from llmlib.error_mapping import error_from_payload, is_error_payload
        from llmlib.framing import first_bytes
        from llmlib.types import HTTPInfo

        token = deadline.start(self.options.timeout.total, cancel)
        try:
            response = self._transport.request(http.method, http.url, json=http.json, headers=http.headers,
                                               stream=True, cancel=token, retry=retry)
            try:
                with response:
                    self._check_status(response, token)
                    raw = self._transport.read_body(response, cancel=token)
            finally:
                self._transport.finished()
        finally:
            deadline.finish(token)
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise DecodeError(
                f"{self.provider} sent a body that is not JSON ({exc}): {first_bytes(raw, 200, self._transport.scrub)!r}",
                provider=self.provider, status_code=response.status_code,
            ) from None
        if is_error_payload(data):
            # An error object inside a 200 body.
            raise error_from_payload(data, provider=self.provider, headers=response.headers,
                                     scrub=self._transport.scrub)
        return (data, HTTPInfo.of(response.status_code, response.headers)) if with_http else data

    def _status_error(self, response: requests.Response, token: Optional[CancelToken]) -> APIStatusError:
        from llmlib.error_mapping import error_from_response

        body = self._transport.read_body(response, limit=_ERROR_BODY_LIMIT, truncate=True, cancel=token)
        error = error_from_response(response.status_code, response.headers, body,
                                    provider=self.provider, scrub=self._transport.scrub)
        hint = self._base_url_hint() if response.status_code == 404 else None
        if hint:
            error.message = f"{error.message} ({hint})"
            error.args = (error.message,) + error.args[1:]
        return error

    def _base_url_hint(self) -> Optional[str]:
        """For a 404: a base_url whose path lacks the API version the provider's
        default has (``http://host:8080`` for ``.../v1``) is the likely cause."""
        default, base = self._spec.base_url or "", self._base_url or ""
        version = re.search(r"/v\d+\w*$", urlsplit(default).path)
        path = urlsplit(base).path
        if version and not re.search(r"/v\d+\w*(/|$)", path):
            return (f"base_url {self._transport.scrub(base)!r} has no API version in its path: "
                    f"did you mean '{self._transport.scrub(base)}{version.group(0)}'?")
        return None

    def _check_status(self, response: requests.Response, token: Optional[CancelToken]) -> None:
        """Raise for an error status, or for a redirect that was not followed. The
        error body is read under the call's ``token`` (cancel and ``total``)."""
        status = response.status_code
        if status >= 400:
            raise self._status_error(response, token)
        if 300 <= status < 400:
            location = self._transport.scrub(response.headers.get("location", "?"))
            raise APIStatusError(
                f"{self.provider} answered {status}, a redirect to {location}; llmlib follows redirects "
                "only with ConnectionOptions(follow_redirects=True) (or fix base_url)",
                provider=self.provider, status_code=status,
            )

    def _check_stream(self, response: requests.Response, token: Optional[CancelToken]) -> None:
        from llmlib.error_mapping import error_from_payload, is_error_payload
        from llmlib.framing import FRAMINGS, first_bytes

        self._check_status(response, token)
        kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind in FRAMINGS[self._protocol.framing][2] or not kind:
            return
        body = self._transport.read_body(response, limit=_ERROR_BODY_LIMIT, truncate=True, cancel=token)
        if kind.endswith("json"):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            if is_error_payload(data):
                raise error_from_payload(data, provider=self.provider, headers=response.headers,
                                         scrub=self._transport.scrub)
        raise APIStatusError(
            f"expected an event stream but got {kind} (a proxy, captive portal or wrong base_url?): "
            f"{first_bytes(body, 200, self._transport.scrub)!r}",
            provider=self.provider, status_code=response.status_code,
        )

    # ------------------------------------------------------------ Responses API

    def responses(self, model: Optional[str] = None, input: Any = None, *, cancel: Optional[CancelToken] = None,
                  fallback: Optional[bool] = None, **kwargs: Any) -> Any:
        """One call of OpenAI's Responses API: a :class:`llmlib.responses.ResponsesResult`
        (``output_text``, ``function_calls``, ``reasoning_summary``, ``usage``, ``fallback``).

        ``input``: a str, or a list of input items (dicts, Messages, an earlier
        result's ``output`` items, ``FunctionCallOutput``). Keywords:
        ``instructions``, ``tools``, ``tool_choice``, ``max_output_tokens``,
        ``reasoning`` (``"low"`` or ``{"effort": ..., "summary": ...}``); any other is
        sent as a body field (https://platform.openai.com/docs/api-reference/responses/create).
        A provider without ``/responses`` (all but ``openai``) gets the call through
        chat completions, and ``result.fallback`` is True; ``fallback=True`` or
        ``False`` forces either way. Raises like :meth:`chat_completion`; for a failed
        response its APIStatusError, for an incomplete one ResponseIncompleteError,
        with ``.partial``.
        """
        from llmlib import responses_fallback as chat
        from llmlib.providers import openai_responses as wire
        from llmlib.responses import ResponsesRequest

        req = ResponsesRequest.build(model or self._protocol.default_model(), input, kwargs)
        if chat.applies(self._protocol, fallback):
            return chat.result(self._chat(chat.chat_request(req), cancel), self.provider)
        data = self._json(wire.http_request(self.base_url, req, stream=False), cancel)
        return wire.checked(self._decode(wire.decode_response, data), self.provider, self._transport.scrub)

    def responses_stream(self, model: Optional[str] = None, input: Any = None, *,
                         cancel: Optional[CancelToken] = None, fallback: Optional[bool] = None,
                         **kwargs: Any) -> Any:
        """:meth:`responses`, streamed: a :class:`llmlib.responses.ResponseEventStream`
        of typed events (ResponseCreated, OutputTextDelta, FunctionCallStart,
        FunctionCallArgumentsDelta, ReasoningSummaryTextDelta..., ResponseCompleted
        with usage); ``llmlib.responses.collect_responses(stream)`` gives the result.

        Sent now, as :meth:`chat_completion_stream`: HTTP errors are raised by this
        call; an ``error`` event, ``response.failed`` and ``response.incomplete`` from
        the for-loop, with ``.partial``. ``stream.fallback`` is True when the events
        come from chat completions (created, text, reasoning and tool-call deltas,
        completed with usage).
        """
        from llmlib import responses_fallback as chat
        from llmlib.providers import openai_responses as wire
        from llmlib.responses import ResponseEventStream, ResponsesRequest

        req = ResponsesRequest.build(model or self._protocol.default_model(), input, kwargs)
        if chat.applies(self._protocol, fallback):
            chunks = self.chat_completion_stream(chat.chat_request(req), cancel=cancel)
            return chat.events(chunks, cancel, self.provider)
        http = wire.http_request(self.base_url, req, stream=True)
        decoder = wire.StreamDecoder(self.provider, self._transport.scrub)
        events = self._open_stream(http, decoder, "sse", cancel, accumulator=decoder.accumulator)
        return ResponseEventStream(events, fallback=False)

    # ------------------------------------------------------------ provider batch jobs

    def submit_batch(self, requests: Sequence[ChatCompletionRequest], *, metadata: Optional[dict] = None) -> Any:
        """Start a provider batch job (OpenAI ``/batches``, Anthropic ``/messages/batches``:
        answers within 24 h at about half the price); returns a :class:`llmlib.batch_jobs.BatchJob`
        (``.id``, ``.status()``, ``.wait()``, ``.results()``, ``.cancel()``). Raises
        ConfigurationError for a provider without a batch API, naming those that have one."""
        from llmlib.batch_jobs import submit_batch

        return submit_batch(self, requests, metadata=metadata)

    def batch_job(self, job_id: str, size: Optional[int] = None) -> Any:
        """A batch job submitted earlier, by any process, picked up by its id
        (a :class:`llmlib.batch_jobs.BatchJob`)."""
        from llmlib.batch_jobs import batch_job

        return batch_job(self, job_id, size)
