"""The bundled local model: the OpenAI protocol, spoken by the llama.cpp server
that :mod:`llmlib.local` starts on loopback on first use.

Differs from :mod:`llmlib.providers.openai` in three things only: the base URL
is the server's (started lazily), the model defaults to the bundled one, and
the model list says what llmlib knows of it (a 2048-token context, no tools, no
vision). Follows https://llama-cpp-python.readthedocs.io/en/latest/server/.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from llmlib import local
from llmlib.providers.openai import OpenAIProtocol
from llmlib.types import ModelInfo

__all__ = ["LocalProtocol", "PROTOCOL"]


class LocalProtocol(OpenAIProtocol):
    """OpenAI chat completions against the bundled model's server."""

    stream_internally = True  # a cancelled or interrupted chat_completion then stops the generation too
    empty_stream_means_refused = True  # llama-cpp-python: 200 and an empty body, for a prompt too long

    def base_url(self, configured: Optional[str]) -> str:
        """``configured`` if given, else the local server's root (starting it:
        ConfigurationError when the ``local`` extra is missing, APIConnectionError
        when it does not come up)."""
        return configured if configured is not None else local.base_url()

    def default_model(self) -> Optional[str]:
        """The selected bundled model's id (``smollm2-135m`` unless ``LLMLIB_LOCAL_MODEL`` says otherwise)."""
        return local.selected()[0]

    def decode_models(self, obj: Any) -> Tuple[List[ModelInfo], Optional[str]]:
        models, page = super().decode_models(obj)
        return [local.describe(m) for m in models], page


PROTOCOL = LocalProtocol
