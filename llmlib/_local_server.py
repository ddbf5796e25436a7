"""``python -m llmlib._local_server --llmlib-parent PID [--llmlib-log PATH] ARGS``:
llama-cpp-python's server (``python -m llama_cpp.server ARGS``,
https://llama-cpp-python.readthedocs.io/en/latest/server/), run by
:mod:`llmlib.local` only, with three changes. This module runs only in the
server's own process, never in the user's.

It dies with the process that started it (``PID``), however that one ends,
SIGKILL included, and then deletes its log file (``PATH``), since nobody else
will. Two watchers, set up before llama_cpp is even imported:

- Linux: ``prctl(PR_SET_PDEATHSIG)`` has the kernel signal the server the moment
  its parent goes. The kernel counts the *thread* that started the server as its
  parent, so the signal also comes when that thread ends while the process lives
  on (a batch worker thread that made the first local call, say). Hence a signal
  of llmlib's own (:data:`PARENT_SIGNAL`), whose handler exits only when
  ``os.getppid()`` is no longer ``PID``; SIGTERM stays the "stop" request of
  :func:`llmlib.local.stop`.
- On every POSIX system: a daemon thread checks ``os.getppid()`` every
  :data:`POLL_SECONDS` and exits the same way when the parent changed (also
  covering a parent that died before ``prctl`` ran).

llama.cpp's "extra buffer types" (weight repacking, AMX) are turned off: on CPUs
with AMX and AVX-512, a llama-cpp-python built from source (0.3.36 measured
here) crashes with a general protection fault in ``libggml-cpu`` on the first
prompt of more than one token when they are on; with ``use_extra_bufts = false``
the same build answers. For the bundled 135M model the repacked kernels buy
little.

And it registers the chat format :data:`GEMMA3_FORMAT` for Gemma 3 (see
:func:`gemma3_prompt`): llama-cpp-python's own ``gemma`` format drops system
messages (``format_gemma`` in ``llama_chat_format.py`` only logs that they "are
not allowed"), and the Gemma 3 270M GGUF that llmlib serves has no chat template
in its metadata, so ``--chat_format`` left unset would fall back to ``llama-2``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Iterable, List, Mapping, Optional, Sequence

__all__ = ["PARENT_SIGNAL", "POLL_SECONDS", "GEMMA3_FORMAT", "watch_parent", "gemma3_prompt", "main"]

#: The signal the kernel sends when the server's parent thread ends (Linux).
PARENT_SIGNAL = signal.SIGUSR1 if hasattr(signal, "SIGUSR1") else None
#: Seconds between the portable watcher's checks of ``os.getppid()``.
POLL_SECONDS = 0.5
#: The ``--chat_format`` name of :func:`gemma3_prompt`.
GEMMA3_FORMAT = "llmlib-gemma3"

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _orphaned(log: Optional[str]) -> None:
    """The parent is gone: delete the log and end now (no state to save)."""
    if log:
        try:
            os.unlink(log)
        except OSError:
            pass
    os._exit(0)


def watch_parent(parent: int, log: Optional[str] = None, use_prctl: bool = True) -> None:
    """End this process (deleting ``log``) as soon as ``parent`` is no longer its
    parent. Call from the main thread, first thing."""

    def gone() -> bool:
        return os.getppid() != parent

    if use_prctl and sys.platform.startswith("linux") and PARENT_SIGNAL is not None:
        signal.signal(PARENT_SIGNAL, lambda signum, frame: _orphaned(log) if gone() else None)
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(PARENT_SIGNAL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the thread below still watches
            pass
    if gone():  # died before prctl took effect
        _orphaned(log)

    def poll() -> None:
        while not gone():
            time.sleep(POLL_SECONDS)
        _orphaned(log)

    threading.Thread(target=poll, name="llmlib-parent-watch", daemon=True).start()


def _take(argv: List[str], flag: str) -> Optional[str]:
    """Remove ``flag VALUE`` from ``argv``; return VALUE (None when absent)."""
    if flag not in argv:
        return None
    at = argv.index(flag)
    value = argv[at + 1]
    del argv[at:at + 2]
    return value


# ------------------------------------------------------------------ Gemma 3


def _text(content: Any) -> str:
    """The text of an OpenAI message content: a string, or the text parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text") or "" for part in content
                   if isinstance(part, Mapping) and part.get("type") == "text")


def gemma3_prompt(messages: Iterable[Mapping[str, Any]]) -> str:
    """The prompt Gemma 3's own chat template (``tokenizer_config.json`` of
    google/gemma-3-*-it) builds, without its leading ``<bos>`` (the tokenizer adds it).

    As that template does, system text goes first in the first user turn, followed
    by a blank line; turns are ``<start_of_turn>user`` / ``<start_of_turn>model``,
    their text trimmed, each closed by ``<end_of_turn>``, and the prompt ends with
    an open model turn. Where the template would refuse, this keeps the text
    instead: a later system message goes into the next user turn the same way,
    tool results are user turns, and turns need not alternate.
    """
    out: List[str] = []
    system: List[str] = []
    for message in messages:
        role, text = message.get("role"), _text(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
            continue
        if role == "assistant":
            out.append(f"<start_of_turn>model\n{text.strip()}<end_of_turn>\n")
            continue
        prefix = "".join(s + "\n\n" for s in system)
        system = []
        out.append(f"<start_of_turn>user\n{prefix}{text.strip()}<end_of_turn>\n")
    if system:  # system text and no user turn after it
        out.append("<start_of_turn>user\n" + "\n\n".join(system) + "<end_of_turn>\n")
    out.append("<start_of_turn>model\n")
    return "".join(out)


def _register_gemma3() -> None:
    from llama_cpp import llama_chat_format

    @llama_chat_format.register_chat_format(GEMMA3_FORMAT)
    def format_gemma3(messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
        return llama_chat_format.ChatFormatterResponse(prompt=gemma3_prompt(messages),
                                                       stop=["<end_of_turn>", "<eos>"])


# ------------------------------------------------------------------ main


def _without_extra_buffer_types() -> None:
    import llama_cpp
    import llama_cpp.llama

    default_params = llama_cpp.llama_model_default_params

    def model_params():  # type: ignore[no-untyped-def]
        params = default_params()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    llama_cpp.llama.llama_cpp.llama_model_default_params = model_params


def _without_settings_from_the_environment() -> None:
    """llama_cpp.server's settings also read the environment (``PORT``, ``HOST``,
    ``MODEL``, ``N_CTX``...): a user's ``PORT=5000`` for their own web app made the
    server bind that port instead of ours. Only our arguments may configure it."""
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    names = {n.lower() for cls in (ModelSettings, ServerSettings) for n in getattr(cls, "model_fields", {})}
    for name in list(os.environ):
        if name.lower() in names:
            del os.environ[name]


def main(argv: Optional[List[str]] = None) -> None:
    """Watch the parent, then run llama_cpp.server with the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    parent, log = _take(args, "--llmlib-parent"), _take(args, "--llmlib-log")
    if parent is not None:
        watch_parent(int(parent), log)
    _without_extra_buffer_types()
    _register_gemma3()
    _without_settings_from_the_environment()
    from llama_cpp.server.__main__ import main as serve

    sys.argv = [sys.argv[0], *args]
    serve()


if __name__ == "__main__":
    main()
