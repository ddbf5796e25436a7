"""What llmlib knows of models: the provider's listing merged with a shipped table.

Providers' model listings say little: OpenAI's ``GET /models`` gives an id and an
owner, Gemini's gives token limits, Anthropic's (lately) limits and a few
capabilities. The rest — context window, output limit, whether a model takes
images, audio, tools, whether it reasons — comes from ``llmlib/data/models.json``,
one row per model, each citing the page its figures were read from. A value
nobody confirmed is ``null`` there and None here: llmlib never guesses.

Matching a model id to a row (:func:`lookup`), always within one provider:

1. the row's ``id`` or one of its ``aliases``, exactly (case aside);
2. a dated snapshot of a row: the row id plus OpenAI's ``-YYYY-MM-DD``
   (``gpt-4o-2024-08-06`` is ``gpt-4o``), Anthropic's ``-YYYYMMDD``
   (``claude-sonnet-4-5-20250929`` is ``claude-sonnet-4-5``) or Gemini's
   ``-NNN`` version (``gemini-2.0-flash-001`` is ``gemini-2.0-flash``). A
   snapshot whose figures differ has its own row, which step 1 finds first;
3. ``openrouter`` ids are ``vendor/model``: the vendor's rows apply
   (``openai/gpt-4o`` is OpenAI's ``gpt-4o``), and OpenRouter's dotted Claude
   versions are read with dashes (``anthropic/claude-sonnet-4.5``);
   ``gemini`` ids may carry the API's ``models/`` prefix.

Nothing else matches: ``gpt-4o-audio-preview`` is not ``gpt-4o``, and an Azure
deployment name (the user's own choice) matches no row.

Merging (:func:`merge`): what the provider's listing says wins — the fields its
protocol decoder filled, and the documented fields of its raw entry (Gemini
``outputTokenLimit`` and ``thinking``; Anthropic ``max_input_tokens``,
``max_tokens`` and ``capabilities``; Groq ``max_completion_tokens``; Mistral
``max_context_length`` and ``capabilities``; OpenRouter ``top_provider``,
``architecture.input_modalities`` and ``supported_parameters``). The table fills
only what the listing leaves unknown.

:func:`check_request` refuses, before anything is sent, an image, audio or tools
sent to a model the table says cannot take them; an unknown model, or an
unknown capability, passes.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import attrs

from llmlib.errors import ConfigurationError, NotFoundError
from llmlib.types import ChatCompletionRequest, ModelInfo

__all__ = ["KnownModel", "known_models", "lookup", "merge", "model_info", "check_request", "DATA_FILE"]

#: The table, inside the package (``[options.package_data]`` in setup.cfg).
DATA_FILE = "data/models.json"

#: The fields a row and a ModelInfo share, in the order of ModelInfo.
FIELDS = ("context_window", "max_output_tokens", "supports_streaming", "supports_tools", "supports_vision",
          "supports_audio", "supports_reasoning", "display_name")

# Dated snapshot suffixes, per provider (matching rule 2).
_SNAPSHOT = {
    "openai": re.compile(r"-\d{4}-\d{2}-\d{2}$"),
    "anthropic": re.compile(r"-\d{8}$"),
    "gemini": re.compile(r"-\d{3}$"),
}
# OpenRouter vendor prefixes whose models a provider's rows describe (matching rule 3).
_OPENROUTER_VENDORS = {"openai": "openai", "anthropic": "anthropic", "google": "gemini", "x-ai": "xai",
                       "mistralai": "mistral", "deepseek": "deepseek", "cohere": "cohere"}


@attrs.frozen
class KnownModel:
    """One row of the table: a provider's model and what its ``source`` page says
    of it (None: not confirmed). ``aliases`` are other exact ids of the same model."""

    provider: str
    id: str
    source: str
    aliases: Tuple[str, ...] = attrs.field(default=(), converter=tuple)
    display_name: Optional[str] = None
    context_window: Optional[int] = None
    max_output_tokens: Optional[int] = None
    supports_streaming: Optional[bool] = None
    supports_tools: Optional[bool] = None
    supports_vision: Optional[bool] = None
    supports_audio: Optional[bool] = None
    supports_reasoning: Optional[bool] = None
    note: Optional[str] = None

    def info(self, model: Optional[str] = None, provider: Optional[str] = None) -> ModelInfo:
        """This row as a ModelInfo for ``model`` (default: the row's id) of ``provider``."""
        return ModelInfo(model or self.id, provider or self.provider,
                         **{name: getattr(self, name) for name in FIELDS})


@functools.lru_cache(maxsize=1)
def _table() -> Tuple[Tuple[KnownModel, ...], Dict[Tuple[str, str], KnownModel]]:
    import importlib.resources  # here, not at import: it costs a Client's start 8 ms

    text = (importlib.resources.files("llmlib") / "data" / "models.json").read_text(encoding="utf-8")
    rows = tuple(KnownModel(**row) for row in json.loads(text)["models"])
    index: Dict[Tuple[str, str], KnownModel] = {}
    for row in rows:
        for name in (row.id, *row.aliases):
            index.setdefault((row.provider, name.lower()), row)
    return rows, index


def known_models(provider: Optional[str] = None) -> Tuple[KnownModel, ...]:
    """Every row of the table (of ``provider`` only, when given)."""
    rows = _table()[0]
    return rows if provider is None else tuple(r for r in rows if r.provider == provider)


def _names(provider: str, model: str) -> Iterable[Tuple[str, str]]:
    name = model.strip().lower()
    if provider == "openrouter":
        vendor, slash, name = name.partition("/")
        provider = _OPENROUTER_VENDORS.get(vendor, "") if slash else ""
        if provider == "anthropic":
            name = name.replace(".", "-")
    elif provider == "gemini" and name.startswith("models/"):
        name = name[len("models/"):]
    if not provider or not name:
        return
    yield provider, name
    snapshot = _SNAPSHOT.get(provider)
    found = snapshot.search(name) if snapshot else None
    if found and found.start() > 0:
        yield provider, name[:found.start()]


def lookup(provider: str, model: str) -> Optional[KnownModel]:
    """The table's row for ``model`` of ``provider`` (llmlib's provider name), by
    the matching rules of the module docstring; None when no row matches."""
    if not isinstance(model, str):
        return None
    index = _table()[1]
    for key in _names(str(provider), model):
        row = index.get(key)
        if row is not None:
            return row
    return None


# ------------------------------------------------------------ listing fields


def _whole(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _flag(value: Any) -> Optional[bool]:
    return value if isinstance(value, bool) else None


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _supported(capabilities: Any, name: str) -> Optional[bool]:
    entry = capabilities.get(name) if isinstance(capabilities, Mapping) else None
    return _flag(entry.get("supported")) if isinstance(entry, Mapping) else None


def _listed(provider: str, protocol: Optional[str], raw: Mapping[str, Any]) -> Dict[str, Any]:
    """What a listing entry's raw object says beyond what its protocol decoder
    read, by the documented fields of each provider's listing."""
    if protocol == "gemini":  # https://ai.google.dev/api/models#Model
        return {"max_output_tokens": _whole(raw.get("outputTokenLimit")),
                "supports_reasoning": True if raw.get("thinking") is True else None,
                "display_name": _text(raw.get("displayName"))}
    if protocol == "anthropic":  # https://docs.anthropic.com/en/api/models-list
        caps = raw.get("capabilities")
        return {"context_window": _whole(raw.get("max_input_tokens")), "max_output_tokens": _whole(raw.get("max_tokens")),
                "supports_vision": _supported(caps, "image_input"), "supports_reasoning": _supported(caps, "thinking"),
                "display_name": _text(raw.get("display_name"))}
    found: Dict[str, Any] = {
        "context_window": _whole(raw.get("max_context_length")),  # Mistral
        "max_output_tokens": _whole(raw.get("max_completion_tokens")),  # Groq
    }
    caps = raw.get("capabilities")
    if isinstance(caps, Mapping):  # Mistral: {"function_calling": true, "vision": false, ...}
        found["supports_tools"] = _flag(caps.get("function_calling"))
        found["supports_vision"] = _flag(caps.get("vision"))
    if provider == "openrouter":  # https://openrouter.ai/docs/api-reference/list-available-models
        top = raw.get("top_provider")
        if isinstance(top, Mapping):
            found["max_output_tokens"] = _whole(top.get("max_completion_tokens"))
        arch = raw.get("architecture")
        modalities = arch.get("input_modalities") if isinstance(arch, Mapping) else None
        if isinstance(modalities, list):
            found["supports_vision"] = "image" in modalities
            found["supports_audio"] = "audio" in modalities
        params = raw.get("supported_parameters")
        if isinstance(params, list):
            found["supports_tools"] = "tools" in params
            found["supports_reasoning"] = "reasoning" in params
        found["display_name"] = _text(raw.get("name"))
    return found


def merge(provider: str, info: ModelInfo, protocol: Optional[str] = None) -> ModelInfo:
    """``info`` (an entry of ``provider``'s listing, decoded by ``protocol``)
    completed: first from the documented fields of its raw entry, then from the
    table's row for it. What the listing says always wins."""
    values = {name: getattr(info, name) for name in FIELDS}
    raw = info.raw if isinstance(info.raw, Mapping) else {}
    sources: List[Mapping[str, Any]] = [_listed(provider, protocol, raw)]
    row = lookup(provider, info.id)
    if row is not None:
        sources.append({name: getattr(row, name) for name in FIELDS})
    for source in sources:
        for name, value in source.items():
            if values[name] is None and value is not None:
                values[name] = value
    changes = {name: value for name, value in values.items() if value != getattr(info, name)}
    return attrs.evolve(info, **changes) if changes else info


def model_info(provider: str, model: str, listed: Sequence[ModelInfo] = (), *,
               has_listing: bool = True) -> ModelInfo:
    """What is known of ``model``: its entry in ``listed`` (the provider's
    listing, already merged) if there; else, for a model the provider does not
    list or a provider with no listing (``has_listing=False``), the table's row,
    with ``model`` as its id. Raises NotFoundError when neither knows it."""
    for info in listed:
        if info.id == model:
            return info
    row = lookup(provider, model)
    if row is not None:
        return row.info(model, provider)
    where = f"{provider} does not list a model named {model!r}" if has_listing else \
        f"{provider} has no model listing, and {model!r} is not in it"
    raise NotFoundError(f"{where} and llmlib's model table does not know it"
                        f"{'; see client.list_models()' if has_listing else ''}",
                        provider=provider, status_code=404)


# ------------------------------------------------------------ request checks

_PARTS = {"image": ("supports_vision", "images"), "audio": ("supports_audio", "audio")}


def check_request(provider: str, request: ChatCompletionRequest) -> None:
    """Raise ConfigurationError, before anything is sent, when ``request`` gives
    an image, audio or tools to a model the table says cannot take them, naming
    the provider, the model and the part. A model the table does not know, or a
    capability it does not know (None), passes: this never guesses."""
    row = lookup(provider, request.model)
    if row is None:
        return
    refused: List[str] = []
    for message in request.messages:
        for part in (message.content.parts if message.content is not None else ()):
            field, what = _PARTS.get(part.type, (None, None))
            if field and getattr(row, field) is False and what not in refused:
                refused.append(what)
    if request.tools and row.supports_tools is False:
        refused.append("tools")
    if refused:
        raise ConfigurationError(
            f"{provider} model {request.model!r} does not take {' or '.join(refused)} "
            f"(llmlib's model table, from {row.source}); remove them from the request or pick a model that "
            "takes them", provider=provider)
