"""The Ollama native chat protocol (``POST /api/chat``, NDJSON), the whole wire format in one place.

Follows Ollama's API documentation:

- https://github.com/ollama/ollama/blob/main/docs/api.md "Generate a chat
  completion" (the request: ``model``, ``messages`` with ``role``, ``content``,
  ``thinking``, ``images``, ``tool_calls``, ``tool_name``; ``tools``, ``think``,
  ``format``, ``options``, ``stream``, ``keep_alive``; the response objects
  with ``message``, ``done``, ``done_reason`` and the metrics) and "List Local
  Models" (``GET /api/tags``);
- https://docs.ollama.com/api/streaming (newline-delimited JSON,
  ``application/x-ndjson``; ``/api/chat`` streams unless ``"stream": false``);
- https://docs.ollama.com/api/errors (``{"error": "..."}`` bodies with an HTTP
  status; an error after the stream has started is one more NDJSON line
  ``{"error": "..."}`` and the status stays 200);
- https://docs.ollama.com/api/usage (``prompt_eval_count``, ``eval_count`` and
  the durations, in nanoseconds, on the final ``done`` object);
- https://docs.ollama.com/capabilities/thinking (``think``: a boolean, or a
  level ``"low"``, ``"medium"``, ``"high"``, which GPT-OSS requires and Ollama
  servers before 0.17.7 refuse for any other model; ``message.thinking``);
- https://docs.ollama.com/capabilities/tool-calling (OpenAI-shaped ``tools``;
  ``tool_calls`` whose ``arguments`` are JSON objects, not strings; tool
  results as ``role: "tool"`` with ``tool_name``);
- https://docs.ollama.com/capabilities/structured-outputs (``format``:
  ``"json"`` or a JSON schema) and https://docs.ollama.com/capabilities/vision
  (``images``: base64 strings, no ``data:`` prefix);
- https://docs.ollama.com/faq and ``envconfig.Host`` in Ollama's source
  (``OLLAMA_HOST``: ``host``, ``host:port`` or ``scheme://host:port[/path]``).

How llmlib's OpenAI-shaped values map onto it:

- ``system`` and ``developer`` messages are sent in place with role ``system``;
  a message's text parts are joined with ``"\\n"`` into ``content`` (always a
  string: ``""`` when there is none) and its images become ``images`` (the
  base64 payload of ``data:`` URLs; a remote URL, audio or a document raises
  ConfigurationError, naming the provider and the part, before sending);
- an assistant's ``tool_calls`` become ``[{"id", "function": {"name",
  "arguments": <object>}}]`` and its ``reasoning_content`` goes back as
  ``thinking``; a ``tool`` message becomes ``role: "tool"`` with
  ``tool_call_id`` and ``tool_name`` (the message's ``name``, else the name of
  the earlier call with that id; left out when unknown). Servers that predate
  the ``id`` / ``tool_call_id`` fields ignore them;
- ``max_tokens`` -> ``options.num_predict``; ``temperature``, ``top_p``,
  ``stop`` (a list), ``seed``, ``presence_penalty``, ``frequency_penalty`` ->
  ``options``;
- ``reasoning_effort`` ``"low"|"medium"|"high"`` -> ``think: <the word>`` for a
  GPT-OSS model (a name containing ``gpt-oss``), ``think: true`` for others;
  ``"none"`` -> ``think: false``; ``reasoning_budget`` -> ``think: true`` (or
  ``false`` for 0): Ollama takes no budget. ``extra_body={"think": "high"}``
  sends a level to any model on servers that take it;
- ``response_format`` ``json_object`` -> ``format: "json"``, ``json_schema`` ->
  ``format: <the schema>``;
- ``tools`` in OpenAI's function shape; ``tool_choice`` ``"none"`` leaves the
  tools out; ``"required"`` or a tool name raises ConfigurationError (Ollama
  cannot force a call); ``parallel_tool_calls`` and ``user`` have no Ollama
  field and are not sent; ``n`` > 1 raises ConfigurationError;
- ``extra_body`` is merged last (``keep_alive``, ``think``...); its
  ``options`` are merged into the options built from the request.

Answers: ``message.content`` -> content, ``message.thinking`` ->
``reasoning_content``, ``message.tool_calls`` -> tool calls (the id Ollama sent,
else ``call_<n>``; arguments as JSON text); ``done_reason`` ``stop`` ->
``"stop"`` (``"tool_calls"`` when the answer made tool calls; also when an older
server sends no ``done_reason``), ``length`` -> ``"length"``, others (``load``,
``unload``) kept; usage from ``prompt_eval_count`` / ``eval_count``; the rest of
the final object (durations, ``done_reason``...) in
``provider_fields["ollama"]``. No key is needed; a key passed explicitly
(``Client("ollama", api_key=...)``, e.g. for https://ollama.com) is sent as
``Authorization: Bearer``.

Knows nothing about HTTP, threads or retries.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from llmlib.error_mapping import error_from_payload, is_error_payload
from llmlib.messages import ContentPart, FunctionCall, Message, Role, Tool, ToolCall
from llmlib.providers import ProviderSpec, endpoint
from llmlib.providers.base import HTTPRequest, Protocol, Scrub, json_object
from llmlib.providers.base import fail as _fail
from llmlib.providers.base import where as _where
from llmlib.providers.base import StreamDecoder as BaseStreamDecoder
from llmlib.types import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ModelInfo,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "OllamaProtocol",
    "StreamDecoder",
    "encode_request",
    "encode_messages",
    "decode_response",
    "decode_usage",
    "decode_models",
    "finish_reason",
    "host_url",
    "THINK_LEVELS",
    "PROTOCOL",
]

#: The ``reasoning_effort`` words sent as ``think`` levels (to GPT-OSS models).
THINK_LEVELS = ("low", "medium", "high")

_PROVIDER_KEY = "ollama"  # the key of provider_fields this module writes
_DEFAULT_PORT = "11434"
_ROLES = {Role.SYSTEM: "system", Role.DEVELOPER: "system", Role.USER: "user",
          Role.ASSISTANT: "assistant", Role.TOOL: "tool"}
_DONE_REASONS = {"stop": "stop", "length": "length"}
# Fields of a response object that are not kept in provider_fields (they have llmlib fields).
_NOT_KEPT = frozenset({"model", "created_at", "message", "done"})


def finish_reason(done_reason: Optional[str], tool_calls: bool = False) -> str:
    """An Ollama ``done_reason`` as a finish reason: ``stop`` -> ``"stop"``, or
    ``"tool_calls"`` when the answer made tool calls (``tool_calls``);
    ``length`` -> ``"length"``; other values (``load``, ``unload``) are kept as
    sent. A final object without ``done_reason`` (servers before 0.1.35)
    counts as ``stop``: ``done: true`` means the model stopped."""
    reason = _DONE_REASONS.get(done_reason, done_reason) if done_reason else "stop"
    return "tool_calls" if reason == "stop" and tool_calls else reason


# ---------------------------------------------------------------- base URL


def host_url(value: str) -> str:
    """The API root an ``OLLAMA_HOST`` value names, read as Ollama's own
    ``envconfig.Host`` reads it: surrounding spaces and quotes are dropped; no
    scheme means ``http://``; a missing port is 11434 without a scheme (80 or
    443 with ``http://`` / ``https://``); a missing host is 127.0.0.1; a path is
    kept. The bind-all addresses ``0.0.0.0`` and ``::`` (what servers are often
    started with) become 127.0.0.1 and ::1, as Ollama's client does."""
    text = value.strip().strip("\"'")
    scheme, sep, rest = text.partition("://")
    default_port = _DEFAULT_PORT
    if not sep:
        scheme, rest = "http", text
        if text == "ollama.com":
            scheme, rest = "https", "ollama.com:443"
    elif scheme == "http":
        default_port = "80"
    elif scheme == "https":
        default_port = "443"
    hostport, _, path = rest.partition("/")
    host, port = _split_host_port(hostport)
    if host is None:  # no port: the whole is a host (or empty)
        host, port = hostport.strip("[]") or "127.0.0.1", default_port
    host = host or "127.0.0.1"
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        port = default_port
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        host = "127.0.0.1" if ip.version == 4 else "::1"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}" + (f"/{path.rstrip('/')}" if path.strip("/") else "")


def _split_host_port(hostport: str) -> Tuple[Optional[str], str]:
    """``(host, port)`` of ``host:port`` or ``[v6]:port`` (Go's ``net.SplitHostPort``);
    ``(None, "")`` when it has no port or too many colons."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not hostport[end + 1:].startswith(":"):
            return None, ""
        return hostport[1:end], hostport[end + 2:]
    if hostport.count(":") != 1:
        return None, ""
    host, _, port = hostport.partition(":")
    return host, port


# ---------------------------------------------------------------- requests


def _image(part: ContentPart, provider: str, where: str) -> str:
    """The base64 payload of an image part (Ollama takes images only inline)."""
    url = part.url or ""
    if not url.startswith("data:"):
        raise _fail(provider, f"{where}: Ollama takes images only inline, as base64; use "
                              "Content.from_image_file(path) or a data: URL instead of a remote URL")
    header, _, data = url[5:].partition(",")
    if ";base64" not in header:
        raise _fail(provider, f"{where}: image data: URLs must be base64-encoded")
    return data


def _content(message: Message, position: int, provider: str) -> Tuple[str, List[str]]:
    """``(content text, images)`` of one message."""
    texts: List[str] = []
    images: List[str] = []
    for i, part in enumerate(message.content.parts if message.content is not None else ()):
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "image":
            images.append(_image(part, provider, _where(position, message, i)))
        elif part.type == "audio":
            raise _fail(provider, f"Ollama does not accept audio input; {_where(position, message, i)} is an "
                                  f"audio part ({part.mime or 'audio'}). Transcribe it to text first, or use a "
                                  "provider that takes audio (openai, gemini)")
        elif part.type == "document":
            raise _fail(provider, f"Ollama does not accept documents; {_where(position, message, i)} is a "
                                  f"document ({part.mime or 'document'}). Extract its text and send that")
        else:
            raise _fail(provider, f"{_where(position, message, i)}: unknown content part type {part.type!r}")
    return "\n".join(texts), images


def _arguments(call: ToolCall, provider: str, where: str) -> Any:
    """A tool call's arguments as the JSON object Ollama wants (``{}`` for none)."""
    text = call.function.arguments or ""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _fail(provider, f"{where}: the arguments of tool call {call.id!r} ({call.function.name}) "
                              "are not a JSON object; Ollama's tool call arguments must be one")
    return value


def encode_messages(request: ChatCompletionRequest, provider: str) -> List[Dict[str, Any]]:
    """The ``messages`` array of ``POST /api/chat`` for ``request`` (see the
    module docstring). Raises ConfigurationError for a part Ollama cannot take."""
    out: List[Dict[str, Any]] = []
    names: Dict[str, str] = {}  # tool call id -> function name, latest call wins
    for position, message in enumerate(request.messages):
        content, images = _content(message, position, provider)
        item: Dict[str, Any] = {"role": _ROLES[message.role], "content": content}
        if images:
            item["images"] = images
        if message.role is Role.ASSISTANT:
            if message.reasoning_content:
                item["thinking"] = message.reasoning_content
            if message.tool_calls:
                calls = []
                for call in message.tool_calls:
                    names[call.id] = call.function.name
                    calls.append({"id": call.id, "function": {
                        "name": call.function.name,
                        "arguments": _arguments(call, provider, _where(position, message))}})
                item["tool_calls"] = calls
        elif message.role is Role.TOOL:
            if message.tool_call_id is not None:
                item["tool_call_id"] = message.tool_call_id
            name = message.name or names.get(message.tool_call_id or "")
            if name:
                item["tool_name"] = name
        out.append(item)
    return out


def _encode_tool(tool: Tool) -> Dict[str, Any]:
    function: Dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = dict(tool.parameters)
    return {"type": "function", "function": function}


def _think(request: ChatCompletionRequest, provider: str) -> Any:
    """The ``think`` value (None: not sent). See the module docstring."""
    effort = request.reasoning_effort
    if effort is not None:
        word = str(effort).strip().lower()
        if word == "none":
            return False
        if word not in THINK_LEVELS:
            raise _fail(provider, f"reasoning_effort {effort!r} is not one of {', '.join(THINK_LEVELS)} "
                                  "or none; for another think value pass extra_body={'think': ...}")
        return word if "gpt-oss" in request.model.lower() else True
    if request.reasoning_budget is not None:
        return request.reasoning_budget > 0
    return None


def _format(response_format: Mapping[str, Any], provider: str) -> Any:
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise _fail(provider, "response_format json_schema needs json_schema.schema (a JSON Schema object)")
        return dict(schema)
    raise _fail(provider, f"response_format type {kind!r} has no Ollama equivalent; use json_object "
                          "or json_schema")


def _options(request: ChatCompletionRequest) -> Dict[str, Any]:
    options: Dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.top_p is not None:
        options["top_p"] = request.top_p
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    if request.stop is not None:
        options["stop"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.seed is not None:
        options["seed"] = request.seed
    if request.presence_penalty is not None:
        options["presence_penalty"] = request.presence_penalty
    if request.frequency_penalty is not None:
        options["frequency_penalty"] = request.frequency_penalty
    return options


def encode_request(request: ChatCompletionRequest, spec: ProviderSpec, *, stream: bool) -> Dict[str, Any]:
    """The JSON body of ``POST /api/chat`` for ``request`` (a dict); ``stream``
    is always sent, since Ollama streams when it is absent.

    Raises ConfigurationError, naming the provider and the field or message,
    for input Ollama cannot take (remote image URLs, audio, documents, ``n`` >
    1, a forced ``tool_choice``, tool-call arguments that are not a JSON
    object, an unknown ``reasoning_effort`` or ``response_format``); nothing is
    sent then.
    """
    provider = spec.name
    if not request.model:
        raise _fail(provider, "ChatCompletionRequest.model is empty; name the model to use")
    if request.n is not None and request.n > 1:
        raise _fail(provider, f"n={request.n}: Ollama returns one choice per request; send several "
                              "requests (client.chat_completion_batch) instead")
    choice = request.tool_choice
    if choice not in (None, "auto", "none"):
        raise _fail(provider, f"tool_choice={choice!r}: Ollama cannot force a tool call; use 'auto' "
                              "(the default) or 'none'")

    body: Dict[str, Any] = {"model": request.model, "messages": encode_messages(request, provider)}
    if request.tools and choice != "none":
        body["tools"] = [_encode_tool(t) for t in request.tools]
    body["stream"] = stream
    think = _think(request, provider)
    if think is not None:
        body["think"] = think
    if request.response_format is not None:
        fmt = _format(request.response_format, provider)
        if fmt is not None:
            body["format"] = fmt
    options = _options(request)
    if options:
        body["options"] = options
    if request.extra_body:
        extra = dict(request.extra_body)
        more = extra.get("options")
        if isinstance(more, Mapping) and options:
            extra["options"] = {**options, **more}
        body.update(extra)
    return body


# ---------------------------------------------------------------- responses

_FRACTION = re.compile(r"\.(\d+)")


def _epoch(text: Any) -> Optional[int]:
    """An RFC 3339 time with any number of fractional digits
    (``2023-08-04T08:52:19.385406455-07:00``) as Unix seconds, or None."""
    if not isinstance(text, str):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text.replace("Z", "+00:00"), 1)
    try:
        value = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return int(value.timestamp())


def decode_usage(obj: Mapping[str, Any]) -> Optional[Usage]:
    """Usage from a final object: ``prompt_eval_count`` (prompt) and
    ``eval_count`` (completion); a missing one counts 0 (Ollama omits zero
    counts, e.g. a prompt served from its cache). None when both are missing
    (a ``load`` answer)."""
    prompt = obj.get("prompt_eval_count")
    completion = obj.get("eval_count")
    if prompt is None and completion is None:
        return None
    prompt = prompt or 0
    completion = completion or 0
    return Usage(prompt, completion, prompt + completion)


def _fields(obj: Mapping[str, Any]) -> Dict[str, Any]:
    return {_PROVIDER_KEY: {k: v for k, v in obj.items() if k not in _NOT_KEPT}}


def _tool_call(raw: Mapping[str, Any], index: int) -> Tuple[str, Optional[str], str]:
    """``(id, name, arguments JSON)`` of one Ollama tool call."""
    function = raw.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    return raw.get("id") or f"call_{index}", function.get("name"), arguments


def decode_response(obj: Mapping[str, Any]) -> ChatCompletionResponse:
    """A whole answer (the body of ``"stream": false``) as
    :class:`ChatCompletionResponse`: see the module docstring for the fields.
    Ollama sends no id: ``id`` is None; ``created`` comes from ``created_at``."""
    message = obj.get("message") or {}
    calls = [ToolCall(i, FunctionCall(n or "", a))
             for i, n, a in (_tool_call(raw, k) for k, raw in enumerate(message.get("tool_calls") or ()))]
    content = message.get("content") or ""
    reply = Message(
        message.get("role") or "assistant",
        content if content or not calls else None,
        tuple(calls) or None,
        reasoning_content=message.get("thinking") or None,
        provider_fields=_fields(obj),
    )
    return ChatCompletionResponse(None, obj.get("model"), [Choice(0, reply, finish_reason(obj.get("done_reason"),
                                                                                        bool(calls)))],
                                  decode_usage(obj), _epoch(obj.get("created_at")))


class StreamDecoder(BaseStreamDecoder):
    """Turns the NDJSON lines of one ``/api/chat`` stream into chunks.

    Each line is one JSON object: ``message.content`` -> ``delta.content``,
    ``message.thinking`` -> ``delta.reasoning_content``, each of
    ``message.tool_calls`` (whole calls, arguments as objects) -> a
    :class:`ToolCallDelta` (``index`` running over the answer, the id Ollama
    sent or ``call_<index>``, type ``"function"``, the name, the arguments as JSON
    text). The first chunk carries role ``assistant``; a line with nothing to
    pass on gives None. The line with ``"done": true`` is the end marker
    (``ended``): its chunk carries whatever text it has, the finish reason,
    usage, and ``provider_fields={"ollama": {...}}`` (``done_reason``, the
    counts and durations). A line ``{"error": "..."}`` raises the typed error.
    Raises ValueError for a line that is not a JSON object.
    """

    def __init__(self, provider: str = "ollama", scrub: Scrub = lambda s: s) -> None:
        self.provider = provider
        self.ended = False
        self._scrub = scrub
        self._model: Optional[str] = None
        self._created: Optional[int] = None
        self._role: Optional[str] = "assistant"  # sent on the first chunk only
        self._calls = 0
        self._started = False

    def decode(self, event: Any) -> Optional[ChatCompletionChunk]:
        """One NDJSON line (``event.data``) -> a chunk, or None (see the class
        docstring). Raises the typed error of an error line; ValueError (or
        KeyError...) for a line of another shape, which the caller reports as
        DecodeError (or IncompleteStreamError for a cut last line)."""
        obj = json_object(event.data)
        if obj.get("error") and is_error_payload(obj):
            raise error_from_payload(obj, provider=self.provider, scrub=self._scrub)
        if not self._started:
            self._started = True
            self._model = obj.get("model")
            self._created = _epoch(obj.get("created_at"))
        message = obj.get("message")
        content = thinking = calls = None
        if message is not None:
            content = message.get("content") or None
            thinking = message.get("thinking") or None
            raw_calls = message.get("tool_calls")
            if raw_calls:
                calls = []
                for raw in raw_calls:
                    index = self._calls
                    self._calls += 1
                    call_id, name, arguments = _tool_call(raw, index)
                    calls.append(ToolCallDelta(index, call_id, "function", FunctionCallDelta(name, arguments)))
        if obj.get("done") is not True:
            if content is None and thinking is None and calls is None:
                return None
            role, self._role = self._role, None
            return ChatCompletionChunk(None, self._model, [ChunkChoice(0, Delta(role, content, thinking, calls))],
                                       None, self._created)
        self.ended = True
        role, self._role = self._role, None
        delta = Delta(role, content, thinking, calls, provider_fields=_fields(obj))
        finish = finish_reason(obj.get("done_reason"), self._calls > 0)
        return ChatCompletionChunk(None, self._model, [ChunkChoice(0, delta, finish)], decode_usage(obj),
                                   self._created)


# ---------------------------------------------------------------- models


def decode_models(obj: Any, provider: str = "ollama") -> Tuple[List[ModelInfo], Optional[str]]:
    """The body of ``GET /api/tags``: ``(models, None)`` (one page). Each model
    is ModelInfo with ``id`` = ``name`` (``llama3.2:latest``) and the whole
    object (``size``, ``digest``, ``modified_at``, ``details``...) in ``raw``;
    ``modified_at`` is when the model was pulled, not made, so ``created`` is
    None. Raises ValueError for a body without a ``models`` list."""
    items = obj.get("models") if isinstance(obj, dict) else None
    if not isinstance(items, list):
        raise ValueError("expected a model list with a 'models' array")
    models = [ModelInfo(m.get("name") or m["model"], provider, raw=dict(m))
              for m in items if isinstance(m, dict) and (m.get("name") or m.get("model"))]
    return models, None


class OllamaProtocol(Protocol):
    """The Ollama native chat protocol (see the module docstring)."""

    framing = "ndjson"

    def base_url(self, configured: Optional[str]) -> str:
        """``configured``; but when that is the table's default
        (``http://127.0.0.1:11434``) and ``OLLAMA_HOST`` is set, the server that
        variable names (see :func:`host_url`), as Ollama's own CLI does. A
        ``base_url`` argument or ``OLLAMA_BASE_URL`` other than the default wins."""
        configured = super().base_url(configured)
        host = os.environ.get("OLLAMA_HOST", "").strip().strip("\"'")
        if host and configured.rstrip("/") == (self.spec.base_url or "").rstrip("/"):
            return host_url(host)
        return configured

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {base_url}/api/chat`` with the encoded request (see :func:`encode_request`
        for the ConfigurationError it raises before anything is sent)."""
        body = encode_request(request, self.spec, stream=stream)
        return HTTPRequest("POST", endpoint(base_url, "/api/chat"), body,
                           {"Accept": "application/x-ndjson"} if stream else {})

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> StreamDecoder:
        """A fresh :class:`StreamDecoder` for one streamed answer."""
        return StreamDecoder(self.spec.name, scrub)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        """A whole answer object (see :func:`decode_response`)."""
        return decode_response(obj)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET {base_url}/api/tags`` (the local models; one page)."""
        return HTTPRequest("GET", endpoint(base_url, "/api/tags"))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        """The listing and no next page (see :func:`decode_models`)."""
        return decode_models(obj, self.spec.name)


PROTOCOL = OllamaProtocol
