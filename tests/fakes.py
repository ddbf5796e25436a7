"""One interface over every provider fake (``tests/fake_<provider>.py``), so a
test can run the same user code against each provider's loopback server.

``FAKES[name]`` is a :class:`Fake`: it makes a Client for a server, tells chat
requests apart, and builds the provider's own bodies: a text stream (with
optional reasoning), a tool-call stream, a whole answer, an error body and an
in-stream error event. A provider whose fake module is missing is left out.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Callable, Dict, Sequence, Tuple

from llmlib import Client, ConnectionOptions, Timeout
from tests.conftest import TEST_KEY

_FINISH_GEMINI = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


class Fake:
    """How to talk to, and speak as, one provider on a loopback server."""

    def __init__(self, name: str, module: Any, base_path: str, is_chat: Callable[[Any], bool],
                 wants_stream: Callable[[Any], bool], stream: Callable[..., bytes],
                 tool_stream: Callable[[str, str, Dict[str, Any]], bytes], error_event: Callable[[int, str], bytes],
                 stream_content_type: str = "text/event-stream") -> None:
        self.name, self.module, self.base_path = name, module, base_path
        self.is_chat, self.wants_stream = is_chat, wants_stream
        self.stream, self.tool_stream, self.error_event = stream, tool_stream, error_event
        self.stream_content_type = stream_content_type
        self.model = module.MODEL

    @property
    def has_key(self) -> bool:
        """Whether the provider takes an API key (Ollama and the local servers do not)."""
        from llmlib.providers import SPECS

        return SPECS[self.name].needs_key

    @property
    def typed_errors(self) -> bool:
        """Whether an in-stream error says its kind (Ollama's is a bare message)."""
        return self.name != "ollama"

    def client(self, server: Any, **options: Any) -> Client:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", Timeout(connect=5, read=10))
        key = TEST_KEY if self.has_key else None
        return Client(self.name, api_key=key, base_url=server.url + self.base_path,
                      options=ConnectionOptions(**options))

    def response(self, text: str, usage: Tuple[int, int] = (10, 5)) -> Dict[str, Any]:
        return self.module.response_json(text, usage=usage)

    def error(self, status: int, message: str) -> Dict[str, Any]:
        return self.module.error_json(status, message)

    def reply_stream(self, reply: Any, body: Any, **kwargs: Any) -> None:
        reply.send(200, body, [("Content-Type", self.stream_content_type)], **kwargs)

    def __repr__(self) -> str:
        return self.name


def _post_to(path: str) -> Callable[[Any], bool]:
    return lambda req: req.method == "POST" and req.path.split("?", 1)[0] == path


def _stream_flag(default: bool = False) -> Callable[[Any], bool]:
    return lambda req: bool(req.json().get("stream", default))


def _openai(m: Any, name: str = "openai") -> Fake:
    """The OpenAI fake, speaking for ``name`` (any provider of the OpenAI protocol)."""
    return Fake(
        name, m, m.BASE_PATH, _post_to(m.CHAT_PATH), _stream_flag(),
        lambda pieces, finish="stop", usage=(10, 5), reasoning=(): m.stream_body(pieces, finish, usage, reasoning),
        lambda call_id, name, args: m.tool_stream_body(call_id, name, json.dumps(args)),
        lambda status, message: b"data: " + json.dumps(m.error_json(status, message)).encode() + b"\n\n",
    )


def _anthropic(m: Any) -> Fake:
    def stream(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5),
               reasoning: Sequence[str] = ()) -> bytes:
        body = m.stream_body(pieces, finish, usage)
        if not reasoning:
            return body
        # A thinking block (with its signature) before the text block, shifting the text to index 1.
        thinking = [m._event("content_block_start", {"type": "content_block_start", "index": 0,
                                                     "content_block": {"type": "thinking", "thinking": ""}})]
        thinking += [m._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "thinking_delta", "thinking": r}})
                     for r in reasoning]
        thinking += [m._event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "signature_delta", "signature": "sig=="}}),
                     m._event("content_block_stop", {"type": "content_block_stop", "index": 0})]
        start, rest = body.split(b"\n\n", 1)
        rest = rest.replace(b'"index": 0', b'"index": 1')
        return start + b"\n\n" + b"".join(thinking) + rest

    return Fake(
        "anthropic", m, "/v1", _post_to(m.CHAT_PATH), _stream_flag(), stream,
        lambda call_id, name, args: m.tool_stream_body(call_id, name, json.dumps(args)),
        lambda status, message: m._event("error", m.error_json(status, message)),
    )


def _gemini(m: Any) -> Fake:
    def stream(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5),
               reasoning: Sequence[str] = ()) -> bytes:
        thoughts = [m._response([{"text": r, "thought": True}], None, usage) for r in reasoning]
        body = m.stream_body(list(pieces), _FINISH_GEMINI.get(finish, finish), usage)
        return m._sse(thoughts) + body

    return Fake(
        "gemini", m, "/v1beta",
        lambda req: req.method == "POST" and (":generateContent" in req.path or ":streamGenerateContent" in req.path),
        lambda req: ":streamGenerateContent" in req.path, stream,
        lambda call_id, name, args: m.tool_stream_body(name, args),
        lambda status, message: m._sse([m.error_json(status, message)]),
    )


def _generic(name: str, m: Any) -> Fake:
    """A fake module with the standard interface (``BASE_PATH``, ``CHAT_PATH``...)."""
    content_type = getattr(m, "STREAM_CONTENT_TYPE", "text/event-stream")

    def error_event(status: int, message: str) -> bytes:
        payload = json.dumps(m.error_json(status, message)).encode()
        return payload + b"\n" if content_type != "text/event-stream" else b"data: " + payload + b"\n\n"

    def stream(pieces: Sequence[str], finish: str = "stop", usage: Tuple[int, int] = (10, 5),
               reasoning: Sequence[str] = ()) -> bytes:
        if not reasoning:
            return m.stream_body(pieces, finish, usage)
        return m.stream_body(pieces, finish, usage, reasoning=reasoning)  # TypeError: the fake has none

    return Fake(
        name, m, m.BASE_PATH, _post_to(m.CHAT_PATH), _stream_flag(default=name == "ollama"), stream,
        lambda call_id, name_, args: m.tool_stream_body(call_id, name_, json.dumps(args)),
        getattr(m, "error_event", error_event), content_type,
    )


def _azure(m: Any) -> Fake:
    """The OpenAI fake at Azure's deployment path (``/openai/deployments/{model}/chat/completions``)."""
    fake = _openai(m, "azure")
    fake.base_path = ""
    fake.is_chat = lambda req: (req.method == "POST" and
                                req.path.split("?", 1)[0] == f"/openai/deployments/{m.MODEL}/chat/completions")
    return fake


_BUILDERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini, "azure": _azure}
FAKES: Dict[str, Fake] = {}
for _name in ("openai", "anthropic", "gemini", "ollama", "cohere"):
    try:
        _module = importlib.import_module(f"tests.fake_{_name}")
    except ImportError:
        continue
    if _name in _BUILDERS:
        FAKES[_name] = _BUILDERS[_name](_module)
    elif hasattr(_module, "CHAT_PATH") and hasattr(_module, "BASE_PATH"):
        FAKES[_name] = _generic(_name, _module)


def _add_openai_protocol_providers() -> None:
    """Every other row of the provider table speaks the OpenAI protocol (or Azure's
    variant of it): the OpenAI fake plays each of them under its own name."""
    from llmlib.providers import SPECS

    openai_fake = importlib.import_module("tests.fake_openai")
    for name, spec in SPECS.items():
        if name in FAKES:
            continue
        if spec.protocol in ("openai", "local"):
            FAKES[name] = _openai(openai_fake, name)
        elif spec.protocol == "azure":
            FAKES[name] = _azure(openai_fake)


_add_openai_protocol_providers()
