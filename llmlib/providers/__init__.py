"""The providers llmlib knows: names, protocols, default base URLs, key variables.

This module is a table and imports nothing heavy; each protocol's wire format lives
in its own module (``llmlib.providers.openai`` for the OpenAI chat-completions
protocol), imported at a Client's first request. A row also says how the key is
sent and which headers go with every request, so a Client is made from its row
alone. A provider that speaks the OpenAI protocol is one row here.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
from typing import TYPE_CHECKING, Dict, Optional, Tuple, Union

import attrs

from llmlib.errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.providers.base import Protocol

__all__ = ["Provider", "ProviderSpec", "SPECS", "spec_for", "protocol_for", "endpoint", "ANTHROPIC_VERSION"]

#: The Anthropic API version llmlib speaks (the ``anthropic-version`` header):
#: https://docs.anthropic.com/en/api/versioning
ANTHROPIC_VERSION = "2023-06-01"


class Provider(str, enum.Enum):
    """Every provider name llmlib accepts. A ``str``: ``Provider.GROQ == "groq"``."""

    OPENAI = "openai"
    AZURE = "azure"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    OLLAMA = "ollama"
    COHERE = "cohere"
    GROQ = "groq"
    OPENROUTER = "openrouter"
    DEEPSEEK = "deepseek"
    MISTRAL = "mistral"
    XAI = "xai"
    TOGETHER = "together"
    FIREWORKS = "fireworks"
    PERPLEXITY = "perplexity"
    MOONSHOT = "moonshot"
    ZHIPU = "zhipu"
    HUNYUAN = "hunyuan"
    QWEN = "qwen"
    EDGEE = "edgee"
    LMSTUDIO = "lmstudio"
    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    LOCAL = "local"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class ProviderSpec:
    """One row of the provider table.

    ``protocol`` names the wire-format module; ``base_url`` is the default API root
    (``<NAME>_BASE_URL`` in the environment overrides it); ``key_env`` lists the
    environment variables tried for the key, in order (empty: no key needed);
    ``max_tokens_field`` is the body field that carries ``max_tokens``;
    ``docs`` the provider's API reference. ``think_tags`` (OpenAI protocol):
    the provider's models may put their reasoning in the answer text as
    ``<think>...</think>`` at its start (open-weight reasoning models on local
    servers and on some hosts), which the stream decoder then moves into
    ``reasoning_content``.

    ``auth_header`` is the header that carries the key: ``Authorization`` as
    ``Bearer <key>``, any other header the bare key (Anthropic ``x-api-key``,
    Gemini ``x-goog-api-key``, Azure ``api-key``). ``headers`` are sent with
    every request (Anthropic's ``anthropic-version``); ``ConnectionOptions.headers``
    override them. ``token_auth``: the key may also be a callable returning a
    bearer token, asked for at each request (Azure's Microsoft Entra ID tokens).
    A ``base_url`` of None means the protocol finds the API root at the first
    request (Azure from ``AZURE_OPENAI_ENDPOINT``; ``local`` starts its server).
    """

    name: str
    protocol: str
    base_url: Optional[str]
    key_env: Tuple[str, ...] = ()
    max_tokens_field: str = "max_tokens"
    docs: str = ""
    think_tags: bool = False
    #: False for a provider with no model-listing endpoint: ``list_models`` then
    #: raises ConfigurationError before sending anything (``model_info`` answers
    #: from llmlib's model table alone).
    has_models_endpoint: bool = True
    auth_header: str = "Authorization"
    headers: Tuple[Tuple[str, str], ...] = ()
    token_auth: bool = False

    @property
    def needs_key(self) -> bool:
        return bool(self.key_env)

    def auth(self, api_key: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
        """The ``(header, value)`` that carries ``api_key`` (a str); ``(None, None)`` for no key."""
        if not api_key:
            return None, None
        return self.auth_header, (f"Bearer {api_key}" if self.auth_header == "Authorization" else api_key)

    @property
    def base_url_env(self) -> str:
        return f"{self.name.upper()}_BASE_URL"


def _openai_compatible(name: str, base_url: Optional[str], *key_env: str, docs: str = "",
                       think_tags: bool = False) -> ProviderSpec:
    return ProviderSpec(name, "openai", base_url, tuple(key_env), docs=docs, think_tags=think_tags)


SPECS: Dict[str, ProviderSpec] = {
    s.name: s
    for s in [
        ProviderSpec("openai", "openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",),
                     max_tokens_field="max_completion_tokens",
                     docs="https://platform.openai.com/docs/api-reference/chat"),
        ProviderSpec("azure", "azure", None, ("AZURE_OPENAI_API_KEY",), auth_header="api-key", token_auth=True,
                     docs="https://learn.microsoft.com/azure/ai-services/openai/reference"),
        ProviderSpec("anthropic", "anthropic", "https://api.anthropic.com/v1", ("ANTHROPIC_API_KEY",),
                     auth_header="x-api-key", headers=(("anthropic-version", ANTHROPIC_VERSION),),
                     docs="https://docs.anthropic.com/en/api/messages"),
        ProviderSpec("gemini", "gemini", "https://generativelanguage.googleapis.com/v1beta",
                     ("GEMINI_API_KEY", "GOOGLE_API_KEY"), auth_header="x-goog-api-key",
                     docs="https://ai.google.dev/api"),
        ProviderSpec("ollama", "ollama", "http://127.0.0.1:11434", (),
                     docs="https://github.com/ollama/ollama/blob/main/docs/api.md"),
        ProviderSpec("cohere", "cohere", "https://api.cohere.com/v2", ("COHERE_API_KEY", "CO_API_KEY"),
                     docs="https://docs.cohere.com/reference/chat"),
        _openai_compatible("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", think_tags=True,
                           docs="https://console.groq.com/docs/api-reference"),
        _openai_compatible("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY",
                           docs="https://openrouter.ai/docs/api-reference"),
        _openai_compatible("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY",
                           docs="https://api-docs.deepseek.com/"),
        _openai_compatible("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY",
                           docs="https://docs.mistral.ai/api/"),
        _openai_compatible("xai", "https://api.x.ai/v1", "XAI_API_KEY", docs="https://docs.x.ai/api"),
        _openai_compatible("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", think_tags=True,
                           docs="https://docs.together.ai/reference"),
        _openai_compatible("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY",
                           think_tags=True, docs="https://docs.fireworks.ai/api-reference"),
        # Perplexity has no GET /models (its models are listed only in its docs).
        attrs.evolve(_openai_compatible("perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY",
                                        think_tags=True, docs="https://docs.perplexity.ai/api-reference"),
                     has_models_endpoint=False),
        _openai_compatible("moonshot", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY",
                           docs="https://platform.moonshot.ai/docs"),
        _openai_compatible("zhipu", "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY",
                           docs="https://open.bigmodel.cn/dev/api"),
        _openai_compatible("hunyuan", "https://api.hunyuan.cloud.tencent.com/v1", "HUNYUAN_API_KEY",
                           docs="https://cloud.tencent.com/document/product/1729"),
        _openai_compatible("qwen", "https://dashscope.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY",
                           docs="https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope"),
        _openai_compatible("edgee", "https://api.edgee.ai/v1", "EDGEE_API_KEY", docs="https://www.edgee.cloud/docs"),
        _openai_compatible("lmstudio", "http://127.0.0.1:1234/v1", think_tags=True,
                           docs="https://lmstudio.ai/docs/api"),
        _openai_compatible("vllm", "http://127.0.0.1:8000/v1", think_tags=True, docs="https://docs.vllm.ai/"),
        _openai_compatible("llamacpp", "http://127.0.0.1:8080/v1", think_tags=True,
                           docs="https://github.com/ggml-org/llama.cpp/tree/master/tools/server"),
        ProviderSpec("local", "local", None, (), think_tags=True,
                     docs="https://llama-cpp-python.readthedocs.io/en/latest/server/"),
    ]
}

def _implemented(protocol: str) -> bool:
    """Whether this version of llmlib has the wire-format module ``protocol``."""
    return importlib.util.find_spec(f"{__name__}.{protocol}") is not None


def spec_for(provider: Union[str, Provider]) -> ProviderSpec:
    """The table row of ``provider`` (a name or :class:`Provider`).

    Raises ConfigurationError for an unknown name, listing the known ones, and for
    a provider whose protocol this version does not implement yet.
    """
    name = provider.value if isinstance(provider, Provider) else str(provider).strip().lower()
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigurationError(f"unknown provider {provider!r}; use one of: {', '.join(SPECS)}")
    if not _implemented(spec.protocol):
        usable = ", ".join(n for n, s in SPECS.items() if _implemented(s.protocol))
        raise ConfigurationError(
            f"provider {name!r} ({spec.protocol} protocol) is not implemented in this version of llmlib; "
            f"usable now: {usable}"
        )
    return spec


def protocol_for(spec: ProviderSpec) -> "Protocol":
    """The wire format of ``spec``: imports ``llmlib.providers.<spec.protocol>`` (only
    now: a Client calls this at its first request, so ``import llmlib`` and
    ``Client(...)`` stay light) and instantiates its ``PROTOCOL`` class, a
    :class:`llmlib.providers.base.Protocol`."""
    module = importlib.import_module(f"{__name__}.{spec.protocol}")
    return module.PROTOCOL(spec)


def endpoint(base_url: str, path: str) -> str:
    """``base_url`` with ``path`` appended to its path, keeping its query string
    (``https://h/v1?api-version=1`` + ``/chat/completions`` ->
    ``https://h/v1/chat/completions?api-version=1``)."""
    base, sep, query = base_url.partition("?")
    return f"{base.rstrip('/')}{path}{sep}{query}"
