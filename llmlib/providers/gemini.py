"""The Gemini Generative Language API, the whole wire format in one place.

Follows the Gemini API reference and guides:

- https://ai.google.dev/api/generate-content (``models.generateContent``,
  ``models.streamGenerateContent``; ``GenerateContentResponse``, ``Candidate``,
  ``FinishReason``, ``UsageMetadata``, ``PromptFeedback``);
- https://ai.google.dev/api/caching#Content (``Content`` and ``Part``: ``text``,
  ``thought``, ``thoughtSignature``, ``inlineData``, ``fileData``,
  ``functionCall``, ``functionResponse``);
- https://ai.google.dev/gemini-api/docs/text-generation#streaming (``?alt=sse``:
  one ``GenerateContentResponse`` per SSE event, no end marker);
- https://ai.google.dev/gemini-api/docs/function-calling (``tools``,
  ``toolConfig.functionCallingConfig``, function responses in a ``user`` turn);
- https://ai.google.dev/gemini-api/docs/thinking and
  https://ai.google.dev/gemini-api/docs/thought-signatures (``thinkingConfig``;
  signatures go back in the parts they came in, unmerged);
- https://ai.google.dev/gemini-api/docs/structured-output (``responseMimeType``,
  ``responseJsonSchema``);
- https://ai.google.dev/api/models#method:-models.list (``pageSize``,
  ``pageToken``, ``nextPageToken``);
- https://ai.google.dev/gemini-api/docs/api-key (the ``x-goog-api-key`` header)
  and https://ai.google.dev/gemini-api/docs/troubleshooting (error bodies,
  mapped by :mod:`llmlib.error_mapping`).

Choices where the API leaves room (each a documented behaviour of this module):

- System and developer messages, wherever they stand, become one
  ``systemInstruction`` (one text part each, in order).
- Consecutive turns of the same Gemini role are merged (tool results, which
  Gemini takes in a ``user`` turn, join a following user message).
- ``response_format`` ``json_schema`` is sent as ``responseJsonSchema`` (plain
  JSON Schema, as OpenAI users write it: ``additionalProperties``, ``$ref``...),
  not ``responseSchema`` (Gemini's OpenAPI subset, which rejects those keys).
- A tool whose parameters are an object schema without properties is declared
  without ``parameters``: Gemini rejects an empty OBJECT schema.
- ``reasoning_budget`` wins over ``reasoning_effort``. ``reasoning_effort`` is a
  ``thinkingLevel`` for Gemini 3 and later (``none`` -> ``minimal``, the least
  thinking they allow) and a ``thinkingBudget`` for the others (:data:`EFFORT_BUDGETS`).
- ``parallel_tool_calls`` and ``user`` have no Gemini field and are not sent.
- ``extra_body`` is merged last, recursively for objects (``{"generationConfig":
  {"topK": 40}}`` adds to the generation config instead of replacing it).

Knows nothing about HTTP, threads or retries.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import urllib.parse
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple

from llmlib.errors import ConfigurationError
from llmlib.error_mapping import error_from_payload, is_error_payload
from llmlib.messages import ContentPart, Message, Role, Tool
from llmlib.providers import endpoint
from llmlib.providers.base import HTTPRequest, Protocol, Scrub, json_object
from llmlib.providers.base import StreamDecoder as BaseStreamDecoder
from llmlib.streaming import Accumulator
from llmlib.types import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ModelInfo,
    ToolCallDelta,
    Usage,
)

__all__ = ["GeminiProtocol", "GeminiStreamDecoder", "encode_request", "decode_response", "decode_usage",
           "decode_models", "finish_reason", "EFFORT_BUDGETS", "EFFORT_LEVELS", "PROTOCOL"]

#: Gemini ``finishReason`` -> one of OpenAI's four words (others are kept, lowercased).
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}

#: ``reasoning_effort`` -> ``thinkingBudget`` (tokens) for models before Gemini 3
#: (the budgets of Google's OpenAI-compatibility mapping; ``none`` turns thinking off).
EFFORT_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

#: ``reasoning_effort`` -> ``thinkingLevel`` for Gemini 3 and later, which cannot
#: turn thinking off (``none`` asks for the least).
EFFORT_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}

_GENERATION = re.compile(r"gemini-(\d+)")


def finish_reason(value: Optional[str], called: bool = False) -> Optional[str]:
    """A Gemini ``finishReason`` as an OpenAI word: ``STOP`` is ``"tool_calls"``
    when the candidate made a function call (``called``), else ``"stop"``;
    ``MAX_TOKENS`` is ``"length"``; the safety and recitation reasons are
    ``"content_filter"``; any other value is kept, lowercased. None stays None."""
    if value is None:
        return None
    if value == "STOP" and called:
        return "tool_calls"
    return _FINISH.get(value) or value.lower()


# ---------------------------------------------------------------- requests


def model_path(model: str) -> str:
    """The resource name of ``model`` in a URL path: ``gemini-2.5-flash`` ->
    ``models/gemini-2.5-flash``; a name that already has a collection
    (``models/x``, ``tunedModels/x``) is kept as given, never doubled."""
    name = model.strip().strip("/")
    return urllib.parse.quote(name if "/" in name else f"models/{name}", safe="/")


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _inline(part: ContentPart) -> Dict[str, Any]:
    """A ``data:`` URL part as ``inlineData`` (base64 ``data``, ``mimeType``)."""
    header, _, payload = part.url.partition(",")  # type: ignore[union-attr]
    fields = header[5:].split(";")
    mime = part.mime or fields[0] or "application/octet-stream"
    if "base64" not in fields[1:]:  # a percent-encoded data: URL; Gemini wants base64
        payload = base64.b64encode(urllib.parse.unquote_to_bytes(payload)).decode("ascii")
    return {"inlineData": {"mimeType": mime, "data": payload}}


def _encode_part(part: ContentPart) -> Optional[Dict[str, Any]]:
    """One content part as a Gemini ``Part``; None for an empty text part."""
    if part.type == "text":
        return {"text": part.text} if part.text else None
    if part.type in ("image", "audio", "document"):
        if not part.url:
            raise ConfigurationError(f"gemini: a {part.type} part needs a url (https: or data:)")
        if part.url.startswith("data:"):
            return _inline(part)
        file: Dict[str, Any] = {"fileUri": part.url}
        mime = part.mime or mimetypes.guess_type(urllib.parse.urlsplit(part.url).path)[0]
        if mime:
            file = {"mimeType": mime, "fileUri": part.url}
        return {"fileData": file}
    raise ConfigurationError(f"gemini: unknown content part type {part.type!r}")


def _parts(message: Message) -> List[Dict[str, Any]]:
    if message.content is None:
        return []
    return [p for p in (_encode_part(part) for part in message.content.parts) if p is not None]


def _arguments(call: Any) -> Dict[str, Any]:
    text = call.function.arguments or "{}"
    try:
        args = json.loads(text)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise ConfigurationError(
            f"gemini: the arguments of tool call {call.id!r} ({call.function.name}) must be a JSON object, "
            f"got {text[:80]!r}"
        )
    return args


def _tool_result(text: str) -> Dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"result": text}


def encode_contents(messages: Any) -> Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """``(contents, systemInstruction)`` for a conversation (a sequence of
    :class:`Message`); ``systemInstruction`` is None without system messages.

    Raises ConfigurationError for a tool result whose call no earlier assistant
    message made, for tool-call arguments that are not a JSON object, and for a
    system message that is not text.
    """
    system: List[Dict[str, Any]] = []
    contents: List[Dict[str, Any]] = []
    calls: Dict[str, Tuple[str, Optional[str]]] = {}  # tool_call_id -> (function name, Gemini's own call id)
    for message in messages:
        role = message.role
        if role in (Role.SYSTEM, Role.DEVELOPER):
            if message.content is not None and not message.content.is_text_only():
                raise ConfigurationError("gemini: system instructions may hold only text")
            if message.text:
                system.append({"text": message.text})
            continue
        if role is Role.ASSISTANT:
            kept = (message.provider_fields or {}).get("gemini")
            raw = kept.get("parts") if isinstance(kept, Mapping) else None
            gemini_ids = {p["functionCall"].get("id") for p in raw or () if isinstance(p, Mapping)
                          and isinstance(p.get("functionCall"), Mapping)}
            for call in message.tool_calls or ():
                calls[call.id] = (call.function.name, call.id if call.id in gemini_ids else None)
            if raw:
                parts = [dict(p) for p in raw]  # sent back as received: thought signatures stay on their parts
            else:
                parts = _parts(message)
                parts += [{"functionCall": {"name": c.function.name, "args": _arguments(c)}}
                          for c in message.tool_calls or ()]
            turn = "model"
        elif role is Role.TOOL:
            if message.tool_call_id is None:
                raise ConfigurationError("gemini: a tool message needs tool_call_id: use Message.tool(id, content)")
            name, call_id = calls.get(message.tool_call_id, (message.name, None))
            if not name:
                raise ConfigurationError(
                    f"gemini: no earlier assistant message made tool call {message.tool_call_id!r}; Gemini needs "
                    "the function name of every tool result"
                )
            response: Dict[str, Any] = {"name": name, "response": _tool_result(message.text)}
            if call_id is not None:
                response["id"] = call_id
            parts, turn = [{"functionResponse": response}], "user"
        else:
            parts, turn = _parts(message), "user"
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn, "parts": parts})
    return contents, ({"parts": system} if system else None)


def _schema_is_empty(schema: Mapping[str, Any]) -> bool:
    return set(schema) <= {"type", "properties"} and schema.get("type", "object") == "object" \
        and not schema.get("properties")


def _encode_tool(tool: Tool) -> Dict[str, Any]:
    declaration: Dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        declaration["description"] = tool.description
    if tool.parameters and not _schema_is_empty(tool.parameters):
        declaration["parameters"] = dict(tool.parameters)
    return declaration


def _response_format(value: Mapping[str, Any]) -> Dict[str, Any]:
    kind = value.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = value.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise ConfigurationError("gemini: response_format json_schema needs json_schema.schema (an object)")
        return {"responseMimeType": "application/json", "responseJsonSchema": dict(schema)}
    raise ConfigurationError(f"gemini: unknown response_format type {kind!r}; use text, json_object or json_schema")


def _thinking(request: ChatCompletionRequest) -> Optional[Dict[str, Any]]:
    if request.reasoning_budget is not None:
        budget = request.reasoning_budget
        return {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}
    effort = request.reasoning_effort
    if effort is None:
        return None
    effort = effort.lower()
    if effort not in EFFORT_BUDGETS:
        raise ConfigurationError(f"gemini: unknown reasoning_effort {request.reasoning_effort!r}; "
                                 f"use one of {', '.join(EFFORT_BUDGETS)}")
    generation = _GENERATION.search(request.model)
    if generation and int(generation.group(1)) >= 3:
        config: Dict[str, Any] = {"thinkingLevel": EFFORT_LEVELS[effort]}
    else:
        config = {"thinkingBudget": EFFORT_BUDGETS[effort]}
    if effort != "none":
        config["includeThoughts"] = True
    return config


def _merge(into: Dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


_CONFIG = (("temperature", "temperature"), ("top_p", "topP"), ("max_tokens", "maxOutputTokens"),
           ("n", "candidateCount"), ("seed", "seed"), ("presence_penalty", "presencePenalty"),
           ("frequency_penalty", "frequencyPenalty"))


def encode_request(request: ChatCompletionRequest) -> Dict[str, Any]:
    """The JSON body of ``generateContent`` / ``streamGenerateContent`` for
    ``request`` (``contents``, ``systemInstruction``, ``tools``, ``toolConfig``,
    ``generationConfig``, then ``extra_body`` merged in).

    Raises ConfigurationError, naming the field, for input Gemini cannot take:
    no model, no user or assistant message, an unknown ``response_format`` or
    ``reasoning_effort``, tool-call arguments that are not a JSON object, a tool
    result for an unknown call.
    """
    if not request.model:
        raise ConfigurationError("ChatCompletionRequest.model is empty; name the model to use")
    contents, system = encode_contents(request.messages)
    if not contents:
        raise ConfigurationError("gemini: the request needs at least one user or assistant message "
                                 "besides system instructions")
    body: Dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    config: Dict[str, Any] = {}
    for name, field in _CONFIG:
        value = getattr(request, name)
        if value is not None:
            config[field] = value
    if request.stop is not None:
        config["stopSequences"] = [request.stop] if isinstance(request.stop, str) else list(request.stop)
    if request.response_format is not None:
        config.update(_response_format(request.response_format))
    thinking = _thinking(request)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_encode_tool(t) for t in request.tools]}]
    if request.tool_choice is not None:
        choice = request.tool_choice
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}.get(choice)
        calling: Dict[str, Any] = {"mode": mode} if mode else {"mode": "ANY", "allowedFunctionNames": [choice]}
        body["toolConfig"] = {"functionCallingConfig": calling}
    if request.extra_body:
        _merge(body, request.extra_body)
    return body


# ---------------------------------------------------------------- responses


def decode_usage(obj: Mapping[str, Any]) -> Usage:
    """A ``usageMetadata`` object as :class:`Usage` (tokens): prompt =
    ``promptTokenCount``; completion = ``candidatesTokenCount`` +
    ``thoughtsTokenCount`` (Gemini counts thinking apart from the candidates);
    reasoning = ``thoughtsTokenCount``; cached = ``cachedContentTokenCount``;
    total = ``totalTokenCount``, or the sum when absent."""
    prompt = obj.get("promptTokenCount") or 0
    thoughts = obj.get("thoughtsTokenCount")
    completion = (obj.get("candidatesTokenCount") or 0) + (thoughts or 0)
    return Usage(prompt, completion, obj.get("totalTokenCount") or prompt + completion, thoughts,
                 obj.get("cachedContentTokenCount"))


class _Candidate:
    """What one candidate has sent so far: its parts, in order, for the next turn.

    A run of plain text parts (no signature, same ``thought`` flag) becomes one
    part; its pieces are joined only when the parts are taken (:meth:`taken`),
    so a long answer costs linear time, not a string copy per event."""

    __slots__ = ("parts", "run", "thought", "calls", "finished")

    def __init__(self) -> None:
        self.parts: List[Dict[str, Any]] = []
        self.run: Optional[List[str]] = None  # text pieces of parts[-1], a plain text part still growing
        self.thought = False  # the thought flag of that run
        self.calls = 0  # function calls made
        self.finished = False

    def keep(self, part: Dict[str, Any]) -> None:
        """Add one part as received (a copy); an empty unsigned text part is dropped."""
        # Plain text (nothing but "text" and a "thought" flag, no signature) may be merged.
        if "text" in part and (len(part) == 1 or (len(part) == 2 and "thought" in part)):
            text = part["text"]
            if not text:
                return  # an empty unsigned text part carries nothing
            thought = bool(part.get("thought"))
            if self.run is not None and thought == self.thought:
                self.run.append(text)
                if len(self.run) >= 256:
                    self.run[:] = ["".join(self.run)]
                return
            self._close()
            self.parts.append(dict(part))
            self.run, self.thought = [text], thought
            return
        self._close()
        self.parts.append(dict(part))

    def _close(self) -> None:
        if self.run is not None:
            self.parts[-1]["text"] = "".join(self.run)
            self.run = None

    def taken(self) -> List[Dict[str, Any]]:
        """Copies of the parts so far, text runs joined."""
        self._close()
        return [dict(p) for p in self.parts]


_EMPTY: Dict[str, Any] = {}


class GeminiStreamDecoder(BaseStreamDecoder):
    """Turns the SSE events of one ``streamGenerateContent?alt=sse`` answer into chunks.

    Each event is a ``GenerateContentResponse``. Per candidate (``index``): text
    parts become ``delta.content``, ``thought`` parts ``delta.reasoning_content``,
    each ``functionCall`` part (its ``args`` whole) one tool call with the
    part's ``id`` or a generated ``call_...`` id; ``finishReason`` maps through
    :func:`finish_reason`. The chunk carrying a candidate's ``finishReason`` also
    carries ``delta.provider_fields = {"gemini": {"parts": [...]}}``: every part of
    that candidate in order (thought signatures where they came, unsigned text
    runs merged; parts llmlib has no field for, such as ``inlineData`` or
    ``executableCode``, kept there only) for the next turn. ``usageMetadata`` is cumulative: it is
    reported once, on the chunk that completes the answer (or a later chunk
    whose usage differs). ``promptFeedback.blockReason`` without candidates
    finishes choice 0 with ``"content_filter"``.

    Gemini has no end marker: ``ended`` stays False, and ``complete`` becomes
    True once every candidate (``candidates`` expected, at least) has sent its
    ``finishReason``. ``decode`` raises the typed error of an ``{"error": ...}``
    event and ValueError for a payload that is not a JSON object.
    """

    __slots__ = ("provider", "ended", "_expected", "_scrub", "_candidates", "_finished", "_blocked", "_usage",
                 "_reported")

    def __init__(self, provider: str = "gemini", candidates: int = 1, scrub: Scrub = lambda s: s) -> None:
        self.provider = provider
        self.ended = False
        self._expected = max(candidates, 1)
        self._scrub = scrub
        self._candidates: Dict[int, _Candidate] = {}
        self._finished = 0
        self._blocked = False
        self._usage: Optional[Mapping[str, Any]] = None  # the latest usageMetadata (cumulative)
        self._reported: Optional[Mapping[str, Any]] = None  # the one last reported

    @property
    def complete(self) -> bool:
        """True once every candidate has sent its ``finishReason`` (or the prompt was blocked)."""
        return self._blocked or (self._finished >= self._expected and self._finished == len(self._candidates))

    def decode(self, event: Any) -> Optional[ChatCompletionChunk]:
        """The chunk of one SSE event (its ``data``, a ``GenerateContentResponse``), or None."""
        obj = json_object(event.data)
        if "error" in obj and is_error_payload(obj):
            raise error_from_payload(obj, provider=self.provider, scrub=self._scrub)
        return self.chunk(obj)

    def chunk(self, obj: Mapping[str, Any], final: bool = False) -> Optional[ChatCompletionChunk]:
        """One ``GenerateContentResponse`` as a chunk (None when it carries nothing
        new); ``final`` treats every candidate as finished (a whole, non-streamed answer).

        The hot path of streaming (once per event): plain dict lookups; usage is
        decoded only when it is reported."""
        choices = []
        position = 0
        for cand in obj.get("candidates") or ():
            index = cand.get("index", position)
            position += 1
            state = self._candidates.get(index)
            first = state is None
            if first:
                state = self._candidates[index] = _Candidate()
            text = reasoning = None
            calls = None
            for part in (cand.get("content") or _EMPTY).get("parts") or ():
                state.keep(part)
                piece = part.get("text")
                if piece:
                    if part.get("thought"):
                        reasoning = piece if reasoning is None else reasoning + piece
                    else:
                        text = piece if text is None else text + piece
                elif "functionCall" in part:
                    call = part["functionCall"]
                    if calls is None:
                        calls = []
                    calls.append(ToolCallDelta(
                        state.calls, call.get("id") or f"call_{uuid.uuid4().hex[:24]}", "function",
                        FunctionCallDelta(call.get("name") or "",
                                          json.dumps(call.get("args") or {}, ensure_ascii=False))))
                    state.calls += 1
            reason = cand.get("finishReason")
            delta = Delta("assistant" if first else None, text, reasoning, calls)
            if (reason is not None or final) and not state.finished:
                state.finished = True
                self._finished += 1
                delta.provider_fields = {"gemini": {"parts": state.taken()}}
                reason = finish_reason(reason, state.calls > 0)
            elif reason is not None:
                reason = finish_reason(reason, state.calls > 0)
            choices.append(ChunkChoice(index, delta, reason))
        if not choices:
            feedback = obj.get("promptFeedback")
            if feedback and feedback.get("blockReason") and not self._blocked:
                self._blocked = True
                choices.append(ChunkChoice(0, Delta("assistant"), "content_filter"))
        metadata = obj.get("usageMetadata")
        if metadata:
            self._usage = metadata
        usage = None
        if self._usage is not None and self._usage != self._reported and (final or self.complete):
            self._reported = self._usage
            usage = decode_usage(self._usage)
        if not choices and usage is None:
            return None
        return ChatCompletionChunk(obj.get("responseId"), obj.get("modelVersion"), choices, usage)


def decode_response(obj: Mapping[str, Any]) -> ChatCompletionResponse:
    """A whole ``GenerateContentResponse`` (``generateContent``) as
    :class:`ChatCompletionResponse`, with the stream's mapping: text, reasoning
    (``thought`` parts), tool calls (arguments as JSON text), finish reasons,
    usage, and each message's ``provider_fields["gemini"]["parts"]``."""
    candidates = obj.get("candidates") or ()
    chunk = GeminiStreamDecoder("gemini", len(candidates)).chunk(obj, final=True)
    if chunk is None:
        return ChatCompletionResponse(obj.get("responseId"), obj.get("modelVersion"), ())
    accumulator = Accumulator()
    accumulator.add(chunk)
    return accumulator.response()


def decode_model(obj: Mapping[str, Any], provider: str = "gemini") -> ModelInfo:
    """One ``Model`` of the listing as ModelInfo: ``id`` is ``name`` without
    ``models/``; ``context_length`` is ``inputTokenLimit`` (tokens);
    ``supports_streaming`` is True when ``supportedGenerationMethods`` names
    ``streamGenerateContent`` or ``generateContent`` (the live listing names
    only the latter for models that stream); ``raw`` keeps the whole object."""
    name = obj["name"]
    methods = obj.get("supportedGenerationMethods") or ()
    limit = obj.get("inputTokenLimit")
    return ModelInfo(name[7:] if name.startswith("models/") else name, provider,
                     context_length=limit if isinstance(limit, int) else None,
                     supports_streaming="streamGenerateContent" in methods or "generateContent" in methods,
                     raw=dict(obj))


def decode_models(obj: Any, provider: str = "gemini") -> Tuple[List[ModelInfo], Optional[str]]:
    """One page of ``GET /models`` (``{"models": [...], "nextPageToken": ...}``):
    ``(models, next_page_token)``, the token None on the last page. Raises
    ValueError for a body that is not such an object."""
    if not isinstance(obj, dict):
        raise ValueError("expected a models page (an object with a 'models' array)")
    items = obj.get("models") or []
    if not isinstance(items, list):
        raise ValueError("expected a 'models' array")
    models = [decode_model(m, provider) for m in items if isinstance(m, dict) and m.get("name")]
    return models, obj.get("nextPageToken") or None


class GeminiProtocol(Protocol):
    """The Gemini Generative Language API (see the module docstring): the key in
    ``x-goog-api-key``, chat at ``{base}/models/{model}:generateContent`` or
    ``:streamGenerateContent?alt=sse``, models at ``{base}/models``."""

    framing = "sse"

    def chat_request(self, base_url: str, request: ChatCompletionRequest, *, stream: bool) -> HTTPRequest:
        """``POST {base_url}/models/{model}:generateContent``, or
        ``:streamGenerateContent?alt=sse`` when ``stream`` (any query of
        ``base_url`` kept). Raises ConfigurationError like :func:`encode_request`."""
        body = encode_request(request)
        path = f"/{model_path(request.model)}:{'streamGenerateContent' if stream else 'generateContent'}"
        url = endpoint(base_url, path)
        if stream:
            return HTTPRequest("POST", _with_query(url, "alt=sse"), body, {"Accept": "text/event-stream"})
        return HTTPRequest("POST", url, body)

    def stream_decoder(self, request: ChatCompletionRequest, scrub: Scrub) -> GeminiStreamDecoder:
        """A :class:`GeminiStreamDecoder` expecting ``request.n`` candidates (default 1)."""
        return GeminiStreamDecoder(self.spec.name, request.n or 1, scrub)

    def decode_response(self, obj: Any) -> ChatCompletionResponse:
        """See :func:`decode_response`."""
        return decode_response(obj)

    def models_request(self, base_url: str, page_token: Optional[str] = None) -> HTTPRequest:
        """``GET {base_url}/models?pageSize=1000`` (the largest page), with
        ``&pageToken=...`` for the pages after the first."""
        query = "pageSize=1000"
        if page_token:
            query += "&pageToken=" + urllib.parse.quote(page_token, safe="")
        return HTTPRequest("GET", _with_query(endpoint(base_url, "/models"), query))

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        """See :func:`decode_models`."""
        return decode_models(obj, self.spec.name)


PROTOCOL = GeminiProtocol
