"""Resumable batches: a JSON Lines file of the items a batch has finished.

``client.chat_completion_batch(reqs, checkpoint="results.jsonl")`` (and
``chat_completion_batch_smart``) appends one line per finished item::

    {"v": 1, "index": 7, "request": "<sha256>", "response": {...chat.completion...}}
    {"v": 1, "index": 9, "request": "<sha256>", "error": {"class": "NotFoundError",
     "message": "...", "status": 404, "retryable": false, "retry_after": null, ...}}

Each line is written whole with one ``write`` and ``os.fsync``-ed before the
item counts as done, so a process killed at any moment (SIGKILL, a laptop that
sleeps, an evicted pod) leaves every finished item on disk, plus at most one
torn last line, which is ignored (and cut off before the next append).

Calling the same batch again with the same file sends only what is not
finished and returns the whole list in input order:

- an item whose line holds a response is read back (a ``ChatCompletionResponse``
  equal to the fresh one, usage included; ``.http`` is None, there was no call);
- an item whose line holds a permanent error (``is_retryable()`` False: a 400,
  404, quota...) is that error again, rebuilt as the same class with the same
  message, status, request id, body and ``retry_after``;
- an item whose last error was retryable (429, 5xx, connection, timeout) is
  sent again;
- a request that changed at the same index is detected by its hash (sha256 of
  the canonical JSON of the provider-neutral ``ChatCompletionRequest``) and sent
  again: an old line never answers a different question. The new answer is
  appended; the last line for an (index, hash) pair wins. The hash covers the
  request, not the Client: the same file used with another provider reads
  back the first provider's answers (use one file per provider).

Items cancelled (``CancelledError``) are not written: they were not finished.
A checkpoint that cannot be written (disk full, permissions) stops the batch:
the ``OSError`` is raised once the threads are joined, since going on would
pay for answers that could not be kept.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attrs

from llmlib import errors as _errors
from llmlib.errors import CancelledError, LLMError
from llmlib.types import ChatCompletionRequest, ChatCompletionResponse

__all__ = ["Checkpoint", "request_hash", "error_to_dict", "error_from_dict", "response_to_dict",
           "response_from_dict"]

Result = Union[ChatCompletionResponse, LLMError]
_VERSION = 1


def _plain(value: Any) -> Any:
    """A JSON-ready form of an ``attrs.asdict`` value (tuples as lists, bytes as base64)."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if attrs.has(type(value)):
        return _plain(attrs.asdict(value, recurse=False))
    return {"$type": type(value).__qualname__, "$str": str(value)}


def request_hash(request: ChatCompletionRequest) -> str:
    """A stable hash of a provider-neutral request: sha256 of the canonical JSON
    (sorted keys, no spaces) of ``attrs.asdict(request)``. The same request gives
    the same hash in any process and any Python session."""
    canonical = json.dumps(_plain(attrs.asdict(request, recurse=False)), sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ values


def response_to_dict(response: ChatCompletionResponse) -> Dict[str, Any]:
    """``response.to_dict()``, plus what that OpenAI shape has no room for and a
    next turn needs: each message's ``provider_fields`` (Anthropic thinking
    signatures...) and the provider's raw usage object."""
    out = response.to_dict()
    extra: Dict[str, Any] = {}
    fields = [c.message.provider_fields for c in response.choices]
    if any(f for f in fields):
        extra["provider_fields"] = [_plain(f) if f else None for f in fields]
    if response.usage is not None and response.usage.raw is not None:
        extra["usage_raw"] = _plain(response.usage.raw)
    if extra:
        out["llmlib"] = extra
    return out


def response_from_dict(obj: Mapping[str, Any]) -> ChatCompletionResponse:
    """The inverse of :func:`response_to_dict`."""
    obj = dict(obj)
    extra = obj.pop("llmlib", None) or {}
    response = ChatCompletionResponse.from_dict(obj)
    fields = extra.get("provider_fields")
    if fields:
        choices = tuple(attrs.evolve(c, message=attrs.evolve(c.message, provider_fields=f)) if f else c
                        for c, f in zip(response.choices, fields))
        response = attrs.evolve(response, choices=choices)
    if extra.get("usage_raw") is not None and response.usage is not None:
        response = attrs.evolve(response, usage=attrs.evolve(response.usage, raw=extra["usage_raw"]))
    return response


def error_to_dict(error: LLMError) -> Dict[str, Any]:
    """An error as JSON: its class name, message, status, whether it is
    retryable, ``retry_after``, provider, request id and body."""
    body = error.body
    try:
        json.dumps(body)
    except (TypeError, ValueError):
        body = str(body)
    return {"class": type(error).__name__, "message": error.message, "status": error.status_code,
            "retryable": error.is_retryable(), "retry_after": getattr(error, "retry_after", None),
            "provider": error.provider, "request_id": error.request_id, "body": body,
            "should_retry": getattr(error, "_should_retry", None)}


def error_from_dict(obj: Mapping[str, Any]) -> LLMError:
    """The error :func:`error_to_dict` wrote, rebuilt as the same class (an
    unknown class name, from a newer llmlib, as an ``APIStatusError`` or ``LLMError``)."""
    cls = getattr(_errors, str(obj.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, LLMError)):
        cls = _errors.APIStatusError if obj.get("status") is not None else LLMError
    kwargs: Dict[str, Any] = {"provider": obj.get("provider"), "status_code": obj.get("status"),
                              "request_id": obj.get("request_id"), "body": obj.get("body"),
                              "should_retry": obj.get("should_retry")}
    if issubclass(cls, _errors.RateLimitError):
        kwargs["retry_after"] = obj.get("retry_after")
    error = cls(str(obj.get("message", "")), **kwargs)
    if not issubclass(cls, _errors.RateLimitError) and obj.get("retry_after") is not None:
        error.retry_after = obj.get("retry_after")  # type: ignore[attr-defined]
    return error


# ------------------------------------------------------------------ the file


class Checkpoint:
    """One batch's checkpoint file, open for appending.

    ``Checkpoint(path, requests)`` reads what the file already holds for these
    requests (``done``: index -> the response or permanent error read back;
    ``pending``: the indices still to send, in order), cuts off a torn last
    line, and opens the file for appending. ``record(index, result)`` writes one
    line (thread-safe) and returns once it is on disk. ``close()`` closes the file.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], requests: Sequence[ChatCompletionRequest]) -> None:
        self.path = os.fspath(path)
        self.hashes: List[str] = [request_hash(r) for r in requests]
        self.done: Dict[int, Result] = {}
        self.stale = 0  # lines ignored: another request at that index, torn, or unreadable
        self._lock = threading.Lock()
        self._fd: Optional[int] = None
        latest: Dict[Tuple[int, str], Dict[str, Any]] = {}
        for entry in self._read():
            index, digest = entry.get("index"), entry.get("request")
            if isinstance(index, int) and 0 <= index < len(self.hashes) and digest == self.hashes[index]:
                latest[(index, digest)] = entry  # the last line for this question wins
            else:
                self.stale += 1
        for (index, _), entry in latest.items():
            result = self._result(entry)
            if result is not None:
                self.done[index] = result
        self.pending: List[int] = [i for i in range(len(self.hashes)) if i not in self.done]
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _read(self) -> List[Dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A torn last line (killed mid-write): cut it off, or the next line
            # appended would be glued to it and lost as well.
            self.stale += 1
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
            data = data[:end]
        entries = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                self.stale += 1
                continue
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                self.stale += 1
        return entries

    @staticmethod
    def _result(entry: Mapping[str, Any]) -> Optional[Result]:
        """A finished item, or None when it must be sent again (a retryable error,
        or a line this version cannot read)."""
        try:
            if isinstance(entry.get("response"), Mapping):
                return response_from_dict(entry["response"])
            error = entry.get("error")
            if isinstance(error, Mapping) and not error.get("retryable"):
                return error_from_dict(error)
        except Exception:  # noqa: BLE001 - an unreadable line is sent again, never fatal
            return None
        return None

    def record(self, index: int, result: Result) -> None:
        """Append ``result`` as request ``index``'s line and fsync it. A
        ``CancelledError`` (not finished) is not written."""
        if isinstance(result, CancelledError):
            return
        entry: Dict[str, Any] = {"v": _VERSION, "index": index, "request": self.hashes[index]}
        if isinstance(result, ChatCompletionResponse):
            entry["response"] = response_to_dict(result)
        else:
            entry["error"] = error_to_dict(result)
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise OSError(f"checkpoint {self.path} is closed")
            view = memoryview(line)
            while view:  # one write for a regular file; the loop only guards a short write
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
