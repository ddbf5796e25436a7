"""What goes into a conversation: roles, multi-part content, messages, tools.

The vocabulary is OpenAI's chat-completions one
(https://platform.openai.com/docs/api-reference/chat/create): a message has a
``role`` and ``content``; content is text or a list of parts (text, image, audio);
an assistant message may carry ``tool_calls``; a ``tool`` message answers one of
them by ``tool_call_id``. Each provider adapter translates these values to its
own wire format.
"""

from __future__ import annotations

import base64
import enum
import mimetypes
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple, Union

import attrs

from llmlib.errors import ConfigurationError

__all__ = ["Role", "ContentPart", "Content", "FunctionCall", "ToolCall", "Tool", "Message"]


class Role(str, enum.Enum):
    """Who speaks. A ``str`` subclass, so ``Role.USER == "user"``."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class ContentPart:
    """One part of a message: ``type`` is ``"text"``, ``"image"``, ``"audio"`` or
    ``"document"`` (a PDF or other file).

    ``text`` holds the text of a text part. ``url`` holds an ``https:`` URL or a
    ``data:<mime>;base64,...`` URL for images, audio and documents; ``mime`` its
    media type (``image/png``, ``audio/wav``, ``application/pdf``...), ``name``
    an optional file name. ``cache_control`` (e.g. ``{"type": "ephemeral"}``) marks
    a prompt-caching breakpoint for providers that take one (Anthropic); others
    ignore it.
    """

    type: str
    text: Optional[str] = None
    url: Optional[str] = attrs.field(default=None, repr=lambda u: _short_url(u))
    mime: Optional[str] = None
    name: Optional[str] = None
    cache_control: Optional[Mapping[str, Any]] = None

    def data(self) -> Optional[bytes]:
        """The decoded bytes of a ``data:`` URL part, or None for other URLs."""
        if self.url is None or not self.url.startswith("data:"):
            return None
        _, _, payload = self.url.partition(",")
        return base64.b64decode(payload)


def _short_url(url: Optional[str]) -> str:
    if url is None:
        return "None"
    return repr(url if len(url) <= 64 else url[:48] + f"...<{len(url)} chars>")


def _data_url(path: Union[str, "os.PathLike[str]"], mime: Optional[str], kind: str) -> Tuple[str, str, str]:
    path = os.fspath(path)
    if mime is None:
        mime, _ = mimetypes.guess_type(path)
    if mime is None or not mime.startswith(kind + "/"):
        raise ConfigurationError(
            f"cannot tell the {kind} type of {path!r}; pass mime='{kind}/...' explicitly"
        )
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {kind} file {path!r}: {exc.strerror}") from exc
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}", mime, os.path.basename(path)


_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def _part_from_dict(part: Mapping[str, Any]) -> ContentPart:
    """One OpenAI content part (``{"type": "text", "text": ...}``, ``image_url``,
    ``input_audio``, ``file``) as a :class:`ContentPart`."""
    kind = part.get("type")
    try:
        if kind == "text":
            return ContentPart("text", text=str(part["text"]), cache_control=part.get("cache_control"))
        if kind == "image_url":
            image = part["image_url"]
            url = image if isinstance(image, str) else image["url"]
            mime = url[5:].split(";", 1)[0] if url.startswith("data:") else None
            return ContentPart("image", url=url, mime=mime, cache_control=part.get("cache_control"))
        if kind == "input_audio":
            audio = part["input_audio"]
            mime = _AUDIO_MIME.get(audio.get("format", "wav"), f"audio/{audio.get('format')}")
            return ContentPart("audio", url=f"data:{mime};base64,{audio['data']}", mime=mime)
        if kind == "file":
            file = part["file"]
            data = file.get("file_data") or ""
            mime = data[5:].split(";", 1)[0] if data.startswith("data:") else "application/pdf"
            return ContentPart("document", url=data or None, mime=mime, name=file.get("filename"))
    except (KeyError, TypeError) as exc:
        raise ConfigurationError(f"content part {dict(part)!r:.120} is missing {exc}; see "
                                 "https://platform.openai.com/docs/api-reference/chat/create") from None
    raise ConfigurationError(f"unknown content part type {kind!r}; use text, image_url, input_audio or file")


def _to_parts(value: Any) -> Tuple[ContentPart, ...]:
    if isinstance(value, tuple) and all(isinstance(p, ContentPart) for p in value):
        return value
    if isinstance(value, str):
        return (ContentPart("text", text=value),)
    if isinstance(value, ContentPart):
        return (value,)
    if isinstance(value, Content):
        return value.parts
    if isinstance(value, Mapping):
        return (_part_from_dict(value),)
    if isinstance(value, Iterable):
        parts: list = []
        for item in value:
            parts.extend(_to_parts(item))
        return tuple(parts)
    raise ConfigurationError(
        f"message content must be a str, Content, ContentPart or a list of them, not {type(value).__name__}"
    )


@attrs.frozen
class Content:
    """The content of a message: one or more :class:`ContentPart`.

    Build it with ``Content.new_text("...")``, ``Content.new_image(url)``,
    ``Content.from_image_file(path)``, ``Content.new_audio(url, mime)`` or
    ``Content.from_audio_file(path)``; join several with ``+`` or
    ``Content.of(a, b, ...)``. ``as_text()`` gives the text parts joined.
    """

    parts: Tuple[ContentPart, ...] = attrs.field(converter=_to_parts)

    @classmethod
    def new_text(cls, text: str) -> "Content":
        """Content of one text part."""
        return cls((ContentPart("text", text=text),))

    @classmethod
    def new_image(cls, url: str, mime: Optional[str] = None, name: Optional[str] = None) -> "Content":
        """An image by ``https:`` or ``data:`` URL; ``mime`` like ``image/png``."""
        return cls((ContentPart("image", url=url, mime=mime, name=name),))

    @classmethod
    def from_image_file(cls, path: Union[str, "os.PathLike[str]"], mime: Optional[str] = None) -> "Content":
        """An image read from a local file and sent inline as a base64 ``data:`` URL.

        Raises ConfigurationError when the file cannot be read or its type is unknown.
        """
        url, mime, name = _data_url(path, mime, "image")
        return cls((ContentPart("image", url=url, mime=mime, name=name),))

    @classmethod
    def new_audio(cls, url: str, mime: Optional[str] = None) -> "Content":
        """Audio by URL; OpenAI-protocol providers accept only ``data:`` URLs
        (use :meth:`from_audio_file`), with ``mime`` ``audio/wav`` or ``audio/mpeg``."""
        return cls((ContentPart("audio", url=url, mime=mime),))

    @classmethod
    def from_audio_file(cls, path: Union[str, "os.PathLike[str]"], mime: Optional[str] = None) -> "Content":
        """Audio read from a local file and sent inline as base64."""
        url, mime, name = _data_url(path, mime, "audio")
        return cls((ContentPart("audio", url=url, mime=mime, name=name),))

    @classmethod
    def new_document(cls, url: str, mime: str = "application/pdf", name: Optional[str] = None) -> "Content":
        """A document (PDF by default) by ``https:`` or ``data:`` URL."""
        return cls((ContentPart("document", url=url, mime=mime, name=name),))

    @classmethod
    def from_document_file(cls, path: Union[str, "os.PathLike[str]"], mime: Optional[str] = None) -> "Content":
        """A document (a PDF...) read from a local file and sent inline as base64.

        Raises ConfigurationError when the file cannot be read or its type is unknown.
        """
        url, mime, name = _data_url(path, mime, "application")
        return cls((ContentPart("document", url=url, mime=mime, name=name),))

    @classmethod
    def of(cls, *items: Union[str, "Content", ContentPart]) -> "Content":
        """Several parts in one message: ``Content.of("Describe:", Content.from_image_file(p))``."""
        return cls(items)

    def __add__(self, other: Union[str, "Content", ContentPart]) -> "Content":
        return Content(self.parts + _to_parts(other))

    def as_text(self) -> str:
        """The text parts joined with no separator ("" when there are none)."""
        return "".join(p.text for p in self.parts if p.type == "text" and p.text)

    def is_text_only(self) -> bool:
        return all(p.type == "text" for p in self.parts)

    def __str__(self) -> str:
        return self.as_text()


def _to_content(value: Any) -> Optional[Content]:
    if value is None or isinstance(value, Content):
        return value
    return Content(value)


@attrs.frozen
class FunctionCall:
    """The function a tool call invokes: ``name`` and ``arguments`` (a JSON string
    as the model wrote it; it may be invalid JSON)."""

    name: str
    arguments: str = ""


@attrs.frozen
class ToolCall:
    """A complete tool call in an assistant message (OpenAI ``tool_calls[]``)."""

    id: str
    function: FunctionCall
    type: str = "function"

    @classmethod
    def new(cls, id: str, name: str, arguments: str = "") -> "ToolCall":
        return cls(id, FunctionCall(name, arguments))


def _tool_call(value: Any) -> "ToolCall":
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, Mapping):
        function = value.get("function") or {}
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):  # a dict, as some SDKs build it
            import json

            arguments = json.dumps(arguments)
        return ToolCall(str(value.get("id") or ""), FunctionCall(str(function.get("name") or ""), arguments),
                        value.get("type") or "function")
    raise ConfigurationError(f"a tool call must be a ToolCall or an OpenAI-style dict, not {type(value).__name__}")


def _to_tool_calls(value: Any) -> Optional[Tuple[ToolCall, ...]]:
    return None if value is None else tuple(_tool_call(v) for v in value)


@attrs.frozen
class Tool:
    """A function the model may call.

    ``parameters`` is a JSON Schema object (a dict) for the arguments; ``strict``
    asks OpenAI for schema-exact arguments (None leaves it to the provider).
    """

    name: str
    description: Optional[str] = None
    parameters: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "object", "properties": {}})
    strict: Optional[bool] = None

    @classmethod
    def of(cls, value: Any) -> "Tool":
        """A Tool from a Tool or an OpenAI-style dict (``{"type": "function",
        "function": {"name", "description", "parameters", "strict"}}``, or the
        inner function object). Raises ConfigurationError for anything else."""
        if isinstance(value, Tool):
            return value
        if isinstance(value, Mapping):
            function = value.get("function", value) if value.get("type", "function") == "function" else None
            if isinstance(function, Mapping) and isinstance(function.get("name"), str) and function["name"]:
                return cls(function["name"], function.get("description"),
                           function.get("parameters") or {"type": "object", "properties": {}}, function.get("strict"))
        raise ConfigurationError(f"a tool must be a llmlib.Tool or an OpenAI-style dict "
                                 f'{{"type": "function", "function": {{"name": ...}}}}, not {value!r:.120}')

    @classmethod
    def function(cls, name: str, description: Optional[str] = None,
                 parameters: Optional[Mapping[str, Any]] = None, strict: Optional[bool] = None) -> "Tool":
        return cls(name, description, parameters or {"type": "object", "properties": {}}, strict)


def _to_role(value: Any) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ConfigurationError(
            f"unknown role {value!r}; use one of {', '.join(r.value for r in Role)}"
        ) from None


@attrs.frozen
class Message:
    """One turn of the conversation.

    ``role`` is a :class:`Role`; ``content`` a :class:`Content` (a ``str`` or a list
    of parts is converted) or None; ``tool_calls`` the calls an assistant made;
    ``tool_call_id`` the call a ``tool`` message answers; ``reasoning_content`` the
    model's visible reasoning, when the provider returns it; ``refusal`` OpenAI's
    refusal text; ``provider_fields`` what a provider returned that must go back
    to it verbatim in the next turn (Anthropic thinking blocks with their
    signatures, Gemini parts with thought signatures), keyed by provider; other
    providers ignore it.
    """

    role: Role = attrs.field(converter=_to_role)
    content: Optional[Content] = attrs.field(default=None, converter=_to_content)
    tool_calls: Optional[Tuple[ToolCall, ...]] = attrs.field(default=None, converter=_to_tool_calls)
    tool_call_id: Optional[str] = None
    reasoning_content: Optional[str] = None
    name: Optional[str] = None
    refusal: Optional[str] = None
    provider_fields: Optional[Mapping[str, Any]] = attrs.field(default=None, eq=False)
    cache_control: Optional[Mapping[str, Any]] = None

    @classmethod
    def of(cls, value: Any) -> "Message":
        """A Message from a Message, a ``str`` (a user turn) or an OpenAI-style dict
        (``{"role": "user", "content": "Hello"}``; content as a string or a list of
        parts; ``tool_calls``; ``tool_call_id``; ``name``). Raises
        ConfigurationError naming what is wrong."""
        if isinstance(value, Message):
            return value
        if isinstance(value, str):
            return cls(Role.USER, value)
        if isinstance(value, Mapping):
            if "role" not in value:
                raise ConfigurationError(f"a message dict needs a 'role': {dict(value)!r:.120}")
            unknown = set(value) - {"role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content",
                                    "refusal", "cache_control", "function_call", "audio", "annotations"}
            if unknown:
                raise ConfigurationError(f"unknown message field(s) {sorted(unknown)}; a message has role, "
                                         "content, tool_calls, tool_call_id, name")
            return cls(value["role"], value.get("content"), value.get("tool_calls"), value.get("tool_call_id"),
                       value.get("reasoning_content"), value.get("name"), value.get("refusal"),
                       cache_control=value.get("cache_control"))
        raise ConfigurationError(f"a message must be a llmlib.Message, a str or a dict with 'role' and "
                                 f"'content', not {type(value).__name__}")

    @classmethod
    def system(cls, content: Any) -> "Message":
        return cls(Role.SYSTEM, content)

    @classmethod
    def developer(cls, content: Any) -> "Message":
        return cls(Role.DEVELOPER, content)

    @classmethod
    def user(cls, content: Any) -> "Message":
        """A user turn: ``Message.user("hi")`` or ``Message.user(["Describe", Content.from_image_file(p)])``."""
        return cls(Role.USER, content)

    @classmethod
    def assistant(cls, content: Any = None, tool_calls: Optional[Sequence[ToolCall]] = None,
                  reasoning_content: Optional[str] = None) -> "Message":
        return cls(Role.ASSISTANT, content, tool_calls, reasoning_content=reasoning_content)

    @classmethod
    def tool(cls, tool_call_id: str, content: Any) -> "Message":
        """The result of the tool call ``tool_call_id``."""
        return cls(Role.TOOL, content, tool_call_id=tool_call_id)

    @property
    def text(self) -> str:
        """``content.as_text()``, or "" when there is no content."""
        return self.content.as_text() if self.content is not None else ""
