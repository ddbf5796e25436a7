"""Provider batch jobs: the same requests, run by the provider within 24 hours at
half the price.

::

    job = client.submit_batch(requests)          # OpenAI or Anthropic
    print(job.id)                                # keep it: client.batch_job(id) picks the job up anywhere
    job.wait(poll_interval=30, progress=True)    # blocks; a CancelToken stops the wait
    results = job.results()                      # list, input order: ChatCompletionResponse or LLMError

Wire formats, as the providers document them:

- **OpenAI** (https://platform.openai.com/docs/api-reference/batch): the requests
  are one JSONL file, a line per request ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions", "body"}``, uploaded with ``POST /files`` (multipart,
  ``purpose=batch``); ``POST /batches`` with that ``input_file_id``, ``endpoint
  "/v1/chat/completions"`` and ``completion_window "24h"`` starts the job. Status:
  ``validating -> in_progress -> finalizing -> completed``, or ``failed``,
  ``expired``, ``cancelling -> cancelled``. The answers are the JSONL files
  ``output_file_id`` and ``error_file_id`` (``GET /files/{id}/content``), a line
  per request with its ``custom_id``, in any order.
- **Anthropic** (https://docs.anthropic.com/en/api/creating-message-batches):
  ``POST /messages/batches`` with ``{"requests": [{"custom_id", "params"}]}``;
  ``processing_status`` ``in_progress -> canceling -> ended``; once ended,
  ``results_url`` serves JSONL lines ``{"custom_id", "result": {"type":
  "succeeded" | "errored" | "canceled" | "expired", ...}}``. The results URL is
  used only when it is on the Client's own API host (the key is never sent
  elsewhere); otherwise ``{base_url}/messages/batches/{id}/results``.

Each request's ``custom_id`` is ``llmlib-<index>``, so any process can map the
answers back to input order. Every answer goes through the provider's own
decoder (the same as ``chat_completion``); every item the provider reports as
failed becomes its typed error (``error_from_payload``: a 400 is a
BadRequestError...), ``canceled`` a CancelledError, ``expired`` an
APITimeoutError (retryable: send it again), and an item the output does not
mention at all a :class:`MissingResultError`: never silently dropped.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote, urlsplit

import attrs
import requests as _requests

from llmlib import models
from llmlib.cancel import CancelToken
from llmlib.error_mapping import error_from_payload, error_from_response
from llmlib.errors import (APIConnectionError, APIStatusError, APITimeoutError, CancelledError, ConfigurationError,
                           DecodeError, LLMError)
from llmlib.providers import endpoint
from llmlib.providers.base import HTTPRequest
from llmlib.types import ChatCompletionRequest, ChatCompletionResponse

if TYPE_CHECKING:  # pragma: no cover
    from llmlib.client import Client

__all__ = ["BatchJob", "BatchStatus", "MissingResultError", "submit_batch", "batch_job", "BATCH_PROVIDERS"]

#: Providers whose batch API llmlib speaks.
BATCH_PROVIDERS = ("openai", "anthropic")
#: Bytes of a results file read at most (they are larger than chat answers).
RESULTS_LIMIT = 1 << 30
_PREFIX = "llmlib-"
_FINAL = frozenset(["completed", "failed", "expired", "cancelled"])
Result = Union[ChatCompletionResponse, LLMError]


class MissingResultError(APIStatusError):
    """The provider's output has no line for this request (the job failed, expired
    or was cancelled before it, or the output is incomplete). Retryable: send it again."""

    def _retryable_by_default(self) -> bool:
        return True


@attrs.frozen
class BatchStatus:
    """Where a batch job stands, in one vocabulary for both providers.

    ``state``: ``validating``, ``in_progress``, ``finalizing``, ``cancelling``
    (not final) or ``completed``, ``failed``, ``expired``, ``cancelled`` (final;
    an Anthropic batch that ``ended`` is ``cancelled`` when a cancel was asked,
    else ``completed``). ``total``, ``succeeded``, ``failed`` count requests
    (``failed`` includes errored, cancelled and expired ones); ``provider_status``
    is the provider's own word and ``raw`` its whole batch object.
    """

    id: str
    state: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    provider_status: str = ""
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def done(self) -> bool:
        """True once the job is final: nothing will change any more."""
        return self.state in _FINAL

    @property
    def finished(self) -> int:
        """Requests with an answer or an error so far."""
        return self.succeeded + self.failed


def _check_provider(client: "Client") -> str:
    if client.provider not in BATCH_PROVIDERS:
        raise ConfigurationError(f"{client.provider} has no batch API that llmlib speaks; batch jobs work with "
                                 f"{', '.join(BATCH_PROVIDERS)} (or use client.chat_completion_batch(..., "
                                 "checkpoint=...), which works everywhere)", provider=client.provider)
    return client.provider


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class BatchJob:
    """One provider batch job (see the module docstring). Made by
    ``client.submit_batch(requests)`` or ``client.batch_job(job_id)``.

    ``size``: the number of requests when known (always for a job this process
    submitted; for a job picked up by id, from the provider's counts).
    """

    def __init__(self, client: "Client", job_id: str, size: Optional[int] = None,
                 raw: Optional[Mapping[str, Any]] = None) -> None:
        self.client = client
        self.provider = _check_provider(client)
        self.id = job_id
        self.size = size
        self._last: Optional[BatchStatus] = self._status_of(raw) if raw else None

    def __repr__(self) -> str:
        state = self._last.state if self._last else "?"
        return f"BatchJob(provider={self.provider!r}, id={self.id!r}, state={state!r})"

    # ---------------------------------------------------------- status

    def _url(self, path: str) -> str:
        return endpoint(self.client.base_url, path)

    def _job_path(self) -> str:
        job = quote(self.id, safe="")
        return f"/batches/{job}" if self.provider == "openai" else f"/messages/batches/{job}"

    def status(self) -> BatchStatus:
        """Ask the provider where the job stands (one GET)."""
        data = self.client._json(HTTPRequest("GET", self._url(self._job_path())))
        self._last = self._status_of(data)
        return self._last

    def _status_of(self, data: Mapping[str, Any]) -> BatchStatus:
        if not isinstance(data, Mapping):
            raise DecodeError(f"{self.provider} sent a batch object of an unexpected shape", provider=self.provider)
        if self.provider == "openai":
            counts = data.get("request_counts") or {}
            word = str(data.get("status") or "")
            state = word if word in ("validating", "in_progress", "finalizing", "cancelling") or word in _FINAL \
                else "in_progress"
            total, failed = _int(counts.get("total")), _int(counts.get("failed"))
            status = BatchStatus(self.id, state, total, _int(counts.get("completed")), failed, word, dict(data))
        else:
            counts = data.get("request_counts") or {}
            word = str(data.get("processing_status") or "")
            succeeded = _int(counts.get("succeeded"))
            failed = _int(counts.get("errored")) + _int(counts.get("canceled")) + _int(counts.get("expired"))
            total = succeeded + failed + _int(counts.get("processing"))
            if word == "ended":
                if data.get("cancel_initiated_at"):
                    state = "cancelled"
                elif total and _int(counts.get("expired")) == total:
                    state = "expired"
                else:
                    state = "completed"
            else:
                state = "cancelling" if word == "canceling" else "in_progress"
            status = BatchStatus(self.id, state, total, succeeded, failed, word, dict(data))
        if self.size is None and status.total:
            self.size = status.total
        return status

    def wait(self, poll_interval: float = 30.0, *, progress: Any = False, cancel: Optional[CancelToken] = None,
             timeout: Optional[float] = None) -> BatchStatus:
        """Poll :meth:`status` every ``poll_interval`` seconds until the job is final;
        return its last status.

        ``progress``: True for a tqdm bar of finished requests, or a callable
        ``(finished, total, status)``. ``cancel``: a CancelToken that stops the
        *wait* at once (CancelledError); the job keeps running at the provider
        (``job.cancel()`` stops it there). ``timeout``: seconds, then APITimeoutError.
        A poll that fails with a retryable error (connection, 5xx, 429) is tried
        again at the next interval; a permanent one is raised.
        """
        if poll_interval <= 0:
            raise ConfigurationError("poll_interval must be a positive number of seconds")
        bar = None
        if progress is True:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ConfigurationError("progress=True needs tqdm: pip install tqdm") from None
            bar = tqdm(total=self.size or 0, unit="req", desc=f"batch {self.id}")
        elif progress not in (False, None) and not callable(progress):
            raise ConfigurationError("progress must be True, False or a callable(finished, total, status)")
        until = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise CancelledError(f"stopped waiting for batch {self.id} (it keeps running at "
                                         f"{self.provider}; job.cancel() stops it there)", provider=self.provider)
                try:
                    status = self.status()
                except LLMError as exc:
                    if not exc.is_retryable() or isinstance(exc, CancelledError):
                        raise
                    status = self._last
                if status is not None:
                    if bar is not None:
                        bar.total = status.total or bar.total
                        bar.n = status.finished
                        bar.set_postfix_str(status.state, refresh=False)
                        bar.refresh()
                    elif callable(progress):
                        progress(status.finished, status.total, status)
                    if status.done:
                        return status
                pause = poll_interval
                if until is not None:
                    left = until - time.monotonic()
                    if left <= 0:
                        raise APITimeoutError(f"batch {self.id} is still {status.state if status else '?'} "
                                              f"after {timeout} s", provider=self.provider)
                    pause = min(pause, left)
                if cancel is not None:
                    cancel.wait(pause)
                else:
                    time.sleep(pause)
        finally:
            if bar is not None:
                bar.close()

    def cancel(self) -> BatchStatus:
        """Ask the provider to cancel the job (``POST .../cancel``); its status after.
        Requests already answered keep their answers; :meth:`results` gives the
        rest as CancelledError (Anthropic ``canceled``) or MissingResultError."""
        data = self.client._json(HTTPRequest("POST", self._url(self._job_path() + "/cancel")))
        self._last = self._status_of(data)
        return self._last

    # ---------------------------------------------------------- results

    def results(self) -> List[Result]:
        """The answers in input order: a ChatCompletionResponse or an LLMError per
        request (never raised, never dropped). Raises ConfigurationError while the
        job is not final (``wait()`` first), and the llmlib errors of the downloads."""
        status = self._last if self._last is not None and self._last.done else self.status()
        if not status.done:
            raise ConfigurationError(f"batch {self.id} is still {status.state}: call job.wait() before "
                                     "job.results()", provider=self.provider)
        found: Dict[int, Result] = {}
        if self.provider == "openai":
            self._openai_results(status, found)
        else:
            self._anthropic_results(found)
        size = self.size
        if size is None:
            size = max(found, default=-1) + 1
        return [found[i] if i in found else self._missing(i, status) for i in range(size)]

    def _missing(self, index: int, status: BatchStatus) -> LLMError:
        why = {"failed": "the job failed", "expired": "the job expired before it ran",
               "cancelled": "the job was cancelled before it ran"}.get(status.state, "the output has no line for it")
        detail = ""
        errors = (status.raw.get("errors") or {}).get("data") if isinstance(status.raw.get("errors"), Mapping) else None
        if errors:
            detail = ": " + "; ".join(str(e.get("message")) for e in errors[:3] if isinstance(e, Mapping))
        return MissingResultError(f"request {index} ({_PREFIX}{index}) of batch {self.id} has no result: {why}"
                                  f"{self.client._transport.scrub(detail)}", provider=self.provider)

    def _download(self, url: str) -> bytes:
        transport = self.client._transport
        response = transport.request("GET", url, stream=True)
        try:
            with response:
                self.client._check_status(response, None)
                return transport.read_body(response, limit=max(self.client.options.max_response_bytes,
                                                               RESULTS_LIMIT))
        finally:
            transport.finished()

    def _lines(self, data: bytes) -> List[Mapping[str, Any]]:
        out = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise DecodeError(f"line {number} of batch {self.id}'s results is not JSON ({exc})",
                                  provider=self.provider) from None
            if isinstance(obj, Mapping):
                out.append(obj)
        return out

    def _index(self, custom_id: Any) -> Optional[int]:
        if isinstance(custom_id, str) and custom_id.startswith(_PREFIX) and custom_id[len(_PREFIX):].isdigit():
            index = int(custom_id[len(_PREFIX):])
            if self.size is None or index < self.size:
                return index
        return None

    def _decoded(self, body: Any) -> Result:
        try:
            return self.client._decode(self.client._protocol.decode_response, body)
        except LLMError as exc:
            return exc

    def _openai_results(self, status: BatchStatus, found: Dict[int, Result]) -> None:
        scrub = self.client._transport.scrub
        for key in ("output_file_id", "error_file_id"):
            file_id = status.raw.get(key)
            if not file_id:
                continue
            data = self._download(self._url(f"/files/{quote(str(file_id), safe='')}/content"))
            for line in self._lines(data):
                index = self._index(line.get("custom_id"))
                if index is None:
                    continue
                response = line.get("response") if isinstance(line.get("response"), Mapping) else None
                error = line.get("error")
                code = _int(response.get("status_code")) if response else 0
                body = response.get("body") if response else None
                if response is not None and 200 <= code < 300 and isinstance(body, Mapping) \
                        and not body.get("error"):
                    found[index] = self._decoded(body)
                elif response is not None and code >= 400:
                    item = error_from_payload(body, provider=self.provider, status=code, scrub=scrub,
                                              headers={"x-request-id": str(response.get("request_id") or "")})
                    found[index] = item
                elif isinstance(error, Mapping):
                    found[index] = self._line_error(index, error)
                else:
                    found.setdefault(index, DecodeError(f"request {index} of batch {self.id}: a result line of "
                                                        "an unexpected shape", provider=self.provider))

    def _line_error(self, index: int, error: Mapping[str, Any]) -> LLMError:
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
        scrub = self.client._transport.scrub
        if code == "batch_expired":
            return APITimeoutError(scrub(f"request {index} of batch {self.id} expired before it ran: {message}"),
                                   provider=self.provider)
        if code == "batch_cancelled":
            return CancelledError(scrub(f"request {index} of batch {self.id} was cancelled: {message}"),
                                  provider=self.provider)
        return error_from_payload({"error": dict(error)}, provider=self.provider, scrub=scrub)

    def _anthropic_results(self, found: Dict[int, Result]) -> None:
        scrub = self.client._transport.scrub
        own = self._url(self._job_path() + "/results")
        url = str(self._last.raw.get("results_url") or "") if self._last is not None else ""
        if not url or urlsplit(url)[:2] != urlsplit(own)[:2]:
            url = own  # the key goes only to the Client's own API host
        for line in self._lines(self._download(url)):
            index = self._index(line.get("custom_id"))
            result = line.get("result")
            if index is None or not isinstance(result, Mapping):
                continue
            kind = result.get("type")
            if kind == "succeeded":
                found[index] = self._decoded(result.get("message"))
            elif kind == "errored":
                found[index] = error_from_payload(result.get("error"), provider=self.provider, scrub=scrub)
            elif kind == "canceled":
                found[index] = CancelledError(f"request {index} of batch {self.id} was canceled before it ran",
                                              provider=self.provider)
            elif kind == "expired":
                found[index] = APITimeoutError(f"request {index} of batch {self.id} expired before it ran "
                                               "(the 24 h window passed)", provider=self.provider)


# -------------------------------------------------------------- submitting


def _upload(client: "Client", name: str, data: bytes) -> Mapping[str, Any]:
    """``POST {base_url}/files``, multipart: ``purpose=batch`` and the JSONL file."""
    transport = client._transport
    timeout = client.options.timeout
    try:
        response = transport.session.post(
            endpoint(client.base_url, "/files"), data={"purpose": "batch"},
            files={"file": (name, data, "application/jsonl")}, timeout=(timeout.connect, timeout.read),
            allow_redirects=False, verify=client.options.verify)
    except _requests.exceptions.Timeout:
        raise APITimeoutError("timed out uploading the batch file", provider=client.provider) from None
    except _requests.exceptions.RequestException as exc:
        raise APIConnectionError(f"cannot upload the batch file: {transport.scrub(type(exc).__name__)}",
                                 provider=client.provider) from None
    with response:
        if response.status_code >= 300:
            raise error_from_response(response.status_code, response.headers, response.content,
                                      provider=client.provider, scrub=transport.scrub)
        try:
            return response.json()
        except ValueError:
            raise DecodeError("the file upload answered with a body that is not JSON",
                              provider=client.provider) from None


def submit_batch(client: "Client", requests: Sequence[ChatCompletionRequest], *,
                 metadata: Optional[Mapping[str, str]] = None) -> BatchJob:
    """Start a provider batch job for ``requests`` (see the module docstring).

    Every request is encoded, and checked against what the provider and the
    model table refuse, before anything is sent (ConfigurationError naming the
    index). Raises ConfigurationError for a provider without a batch API, and
    the llmlib errors of the upload and create calls.
    """
    provider = _check_provider(client)
    reqs = list(requests)
    if not reqs:
        raise ConfigurationError("submit_batch needs at least one request")
    bodies = []
    for i, req in enumerate(reqs):
        if not isinstance(req, ChatCompletionRequest):
            raise ConfigurationError(f"request {i} is a {type(req).__name__}, not a ChatCompletionRequest")
        try:
            http = client._protocol.chat_request(client.base_url, req, stream=False)
            models.check_request(client.provider, req)
        except ConfigurationError as exc:
            raise ConfigurationError(f"request {i} of the batch: {exc.message}", provider=provider) from None
        body = dict(http.json)
        body.pop("stream", None)
        bodies.append(body)
    if provider == "openai":
        lines = [json.dumps({"custom_id": f"{_PREFIX}{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": body}, separators=(",", ":")) for i, body in enumerate(bodies)]
        uploaded = _upload(client, "llmlib-batch.jsonl", ("\n".join(lines) + "\n").encode("utf-8"))
        file_id = uploaded.get("id") if isinstance(uploaded, Mapping) else None
        if not file_id:
            raise DecodeError("the file upload answered without a file id", provider=provider)
        create: Dict[str, Any] = {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                  "completion_window": "24h"}
        if metadata:
            create["metadata"] = dict(metadata)
        data = client._json(HTTPRequest("POST", endpoint(client.base_url, "/batches"), create))
    else:
        create = {"requests": [{"custom_id": f"{_PREFIX}{i}", "params": body} for i, body in enumerate(bodies)]}
        data = client._json(HTTPRequest("POST", endpoint(client.base_url, "/messages/batches"), create))
    job_id = data.get("id") if isinstance(data, Mapping) else None
    if not job_id:
        raise DecodeError(f"{provider} created a batch but sent no id", provider=provider)
    return BatchJob(client, str(job_id), len(reqs), data)


def batch_job(client: "Client", job_id: str, size: Optional[int] = None) -> BatchJob:
    """A job submitted earlier (by any process), by its id. ``size``: the number
    of requests, when known; otherwise the provider's counts say (and, for an
    OpenAI job that failed validation, the input file's lines)."""
    job = BatchJob(client, job_id, size)
    status = job.status()
    if job.size is None and client.provider == "openai" and status.raw.get("input_file_id"):
        data = job._download(job._url(f"/files/{quote(str(status.raw['input_file_id']), safe='')}/content"))
        job.size = sum(1 for line in data.splitlines() if line.strip())
    return job
