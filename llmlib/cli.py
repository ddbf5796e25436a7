"""The command line, as simonw/llm users know it: ``llmlib chat`` and ``llmlib models``
(also ``python -m llmlib ...``).

::

    llmlib chat "Why is the sky blue?"               # streams the answer to stdout
    echo "Why is the sky blue?" | llmlib chat        # the prompt from stdin (also: chat -)
    cat notes.txt | llmlib chat "Summarise this"     # the prompt, a blank line, then stdin
    llmlib chat "What is in it?" -a photo.jpg        # attach images or audio (by file type)
    llmlib chat "Hi" --no-stream --json              # the whole response as JSON
    llmlib chat -i                                   # a conversation; Ctrl-D ends it
    llmlib chat "Hi" --provider groq --model llama-3.3-70b-versatile --api-key ...
    llmlib models --provider groq

The provider is ``--provider``, else ``$LLMLIB_PROVIDER``, else ``local`` (the
bundled model). The answer goes to standard output as it arrives, and notices to
standard error: ``[stopped at max_tokens]`` after an answer cut short by
``--max-tokens``, ``(stopped)`` after Ctrl-C.

Ctrl-C stops the answer being generated (its connection is closed, so the server
stops generating too): the command then exits with status 130, while ``-i``
returns to the prompt with the conversation intact. A second Ctrl-C for the same
answer interrupts at once. Errors print one line, ``error: <message>``, with
status 1 (2 for a bad command line). The API key given with ``--api-key`` is
never printed; being an argument, it is visible to other local users in ``ps``
while the command runs, so prefer the provider's environment variable on a
shared machine.
"""

from __future__ import annotations

import _thread
import argparse
import collections
import contextlib
import json
import mimetypes
import os
import signal
import stat
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = ["main"]

#: ``--max-tokens`` when none is given for the bundled model (a 135M model may
#: otherwise go on until its 2048-token context is full); other providers use
#: their own default.
LOCAL_MAX_TOKENS = 512
#: Seconds a cancelled answer gets to end before Ctrl-C interrupts the program
#: (a server still starting, say, is not cancellable).
FORCE_AFTER = 1.0


def _prog() -> str:
    return "python -m llmlib" if sys.argv and sys.argv[0].endswith("__main__.py") else "llmlib"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_prog(), description="Talk to an LLM from the terminal.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--provider", default=os.environ.get("LLMLIB_PROVIDER") or "local",
                        help="provider name (default: $LLMLIB_PROVIDER, else 'local', the bundled model)")
    common.add_argument("--api-key", metavar="KEY",
                        help="API key (default: the provider's environment variable, e.g. OPENAI_API_KEY); "
                             "never printed, but visible in ps while the command runs")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", parents=[common], help="answer a prompt, or hold a conversation (-i)",
                          description="Send a prompt and print the answer as it arrives. With text piped "
                                      "in, the prompt is followed by a blank line and that text.")
    chat.add_argument("prompt", nargs="?",
                      help="the user message; '-' or none reads it from stdin")
    chat.add_argument("-m", "--model", help="model id (required for every provider but 'local')")
    chat.add_argument("-s", "--system", help="a system message sent before the conversation")
    chat.add_argument("-a", "--attach", action="append", default=[], metavar="FILE",
                      help="attach an image or audio file, by its type (or an image https:// URL); "
                           "repeatable")
    chat.add_argument("--max-tokens", type=int, metavar="N",
                      help=f"most tokens to generate (default: the provider's; {LOCAL_MAX_TOKENS} "
                           "for 'local')")
    chat.add_argument("--temperature", type=float, metavar="T", help="sampling temperature")
    chat.add_argument("--no-stream", action="store_true", help="wait for the whole answer, then print it")
    chat.add_argument("--json", action="store_true",
                      help="print the response as JSON: id, model, text, finish_reason, usage, tool_calls")
    chat.add_argument("-i", "--interactive", action="store_true",
                      help="a conversation that keeps its history: one message per line; Ctrl-D ends it, "
                           "Ctrl-C stops only the current answer")

    sub.add_parser("models", parents=[common], help="list the provider's models")
    return parser


# ------------------------------------------------------------------ Ctrl-C


class _CtrlC:
    """Ctrl-C while an answer is on its way cancels that answer's CancelToken, so
    the stream just ends and its connection is closed. The token is cancelled on a
    helper thread, not in the signal handler, which would otherwise run inside
    whatever the main thread was doing and could wait for a lock held there. If
    the answer has not ended :data:`FORCE_AFTER` seconds later, or Ctrl-C comes
    again for it, or comes when no answer is under way, it is a KeyboardInterrupt
    as usual. Works from the main thread only (signals are delivered there);
    elsewhere Ctrl-C stays a KeyboardInterrupt."""

    def __init__(self) -> None:
        self._token: Any = None  # the CancelToken of the answer under way
        self._cancelling: Any = None  # the token Ctrl-C already cancelled
        self._queue: "collections.deque[Any]" = collections.deque()
        self._previous: Any = None
        self._pipe: Optional[Tuple[int, int]] = None

    def __enter__(self) -> "_CtrlC":
        if threading.current_thread() is threading.main_thread():
            self._pipe = os.pipe()
            threading.Thread(target=self._run, args=(self._pipe[0],), name="llmlib-cli-ctrl-c",
                             daemon=True).start()
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._pipe is not None:
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)
            os.close(self._pipe[1])  # the helper thread reads EOF and ends
            self._pipe = None

    @contextlib.contextmanager
    def answering(self, token: Any) -> Iterator[None]:
        """Ctrl-C inside the block cancels ``token``."""
        self._token, self._cancelling = token, None
        try:
            yield
        finally:
            self._token = None

    def _handle(self, signum: int, frame: Any) -> None:
        token = self._token
        if token is None or token is self._cancelling or self._pipe is None:
            raise KeyboardInterrupt
        self._cancelling = token
        self._queue.append(token)  # no lock taken here
        os.write(self._pipe[1], b"!")

    def _run(self, fd: int) -> None:
        try:
            while os.read(fd, 1):
                while self._queue:
                    token = self._queue.popleft()
                    token.cancel()
                    end = time.monotonic() + FORCE_AFTER
                    while self._token is token and time.monotonic() < end:
                        time.sleep(0.02)
                    if self._token is token:
                        _thread.interrupt_main()  # as a SIGINT: the handler raises KeyboardInterrupt
        finally:
            os.close(fd)


# ------------------------------------------------------------------ input


def _stdin_is_data() -> bool:
    """Whether stdin is a pipe or a file (what ``cat file | llmlib chat`` gives),
    not a terminal, /dev/null or nothing."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISREG(mode)


def _read_stdin() -> str:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        return sys.stdin.read()
    return stream.read().decode(sys.stdin.encoding or "utf-8", "replace")


def _prompt_text(args: argparse.Namespace) -> Optional[str]:
    """The first user message's text: the prompt, stdin, or the prompt, a blank
    line and stdin. None when there is none (and stdin is a terminal)."""
    if args.interactive:  # stdin carries the conversation
        return None if args.prompt in (None, "-") else args.prompt
    if args.prompt in (None, "-"):
        if args.prompt is None and sys.stdin is not None and sys.stdin.isatty():
            return None
        text = _read_stdin().rstrip("\r\n") if sys.stdin is not None else ""
        return text if text.strip() else None
    if _stdin_is_data():
        piped = _read_stdin().rstrip("\r\n")
        if piped.strip():
            return f"{args.prompt}\n\n{piped}"
    return args.prompt


def _attachments(paths: List[str]) -> List[Any]:
    """Each ``-a`` value as Content: images and audio by MIME type."""
    from llmlib import ConfigurationError, Content

    parts = []
    for path in paths:
        mime, _ = mimetypes.guess_type(path)
        if path.startswith(("https://", "http://")):
            if not (mime or "").startswith("image/"):
                raise ConfigurationError(f"cannot attach {path!r}: only image URLs can be attached "
                                         "(download other files and attach them)")
            parts.append(Content.new_image(path, mime))
        elif mime and mime.startswith("image/"):
            parts.append(Content.from_image_file(path, mime))
        elif mime and mime.startswith("audio/"):
            parts.append(Content.from_audio_file(path, mime))
        elif not os.path.isfile(path):
            raise ConfigurationError(f"cannot attach {path!r}: no such file")
        else:
            raise ConfigurationError(f"cannot attach {path!r}: its type ({mime or 'unknown'}) is neither "
                                     "an image nor audio")
    return parts


def _user_message(text: Optional[str], attachments: List[Any]) -> Any:
    from llmlib import Content, Message

    if not attachments:
        return Message.user(text or "")
    return Message.user(Content.of(*([text] if text else []), *attachments))


# ------------------------------------------------------------------ output


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _as_json(response: Any) -> Dict[str, Any]:
    usage = response.usage
    counts = ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens", "cached_tokens")
    return {
        "id": response.id,
        "model": response.model,
        "text": response.text,
        "finish_reason": response.finish_reason,
        "usage": None if usage is None else {
            name: getattr(usage, name) for name in counts if getattr(usage, name) is not None},
        "tool_calls": [{"id": call.id, "type": call.type,
                        "function": {"name": call.function.name, "arguments": call.function.arguments}}
                       for call in response.tool_calls],
    }


def _answer(client: Any, messages: List[Any], args: argparse.Namespace, ctrl_c: _CtrlC) -> Tuple[Any, bool]:
    """Ask once and print the answer; returns ``(response, stopped)``: the
    response so far (None if nothing arrived) and whether Ctrl-C stopped it."""
    from llmlib import CancelledError, CancelToken
    from llmlib.accumulator import Accumulator

    kwargs: Dict[str, Any] = dict(messages=messages, max_tokens=args.max_tokens, temperature=args.temperature)
    if args.model:
        kwargs["model"] = args.model
    if kwargs["max_tokens"] is None and client.provider == "local":
        kwargs["max_tokens"] = LOCAL_MAX_TOKENS
    token = CancelToken()
    acc = Accumulator()
    response = None
    printed = ""  # the end of the text printed so far
    try:
        with ctrl_c.answering(token):
            try:
                if args.no_stream:
                    response = client.chat_completion(cancel=token, **kwargs)
                else:
                    stream = client.chat_completion_stream(cancel=token, **kwargs)
                    try:
                        for chunk in stream:
                            acc.add(chunk)
                            if chunk.text and not args.json:
                                _write(chunk.text)
                                printed = chunk.text[-1:]
                    finally:
                        stream.close()
                    response = acc.response()
            except CancelledError:
                if not token.cancelled:
                    raise
            except KeyboardInterrupt:  # a second Ctrl-C, or a first one nothing could cancel
                token.cancel()
    finally:
        if printed and printed != "\n":
            _write("\n")  # the prompt, the next answer or an error starts on a line of its own
    stopped = token.cancelled
    if response is None and acc.count:
        response = acc.response()
    if response is not None:
        if args.json:
            _write(json.dumps(_as_json(response), indent=2, ensure_ascii=False) + "\n")
        elif args.no_stream:
            _write(response.text + ("" if response.text.endswith("\n") else "\n"))
        elif not printed and not stopped:
            _write("\n")  # an empty answer: still a line
    if stopped:
        print("(stopped)", file=sys.stderr, flush=True)
    elif response is not None and response.finish_reason == "length":
        print("[stopped at max_tokens]", file=sys.stderr, flush=True)
    return response, stopped


# ------------------------------------------------------------------ commands


def _chat(client: Any, args: argparse.Namespace, ctrl_c: _CtrlC) -> int:
    from llmlib import Message

    if args.model is None and client.provider != "local":
        print(f"error: --model is required for provider {client.provider!r}", file=sys.stderr)
        return 2
    text = _prompt_text(args)
    attachments = _attachments(args.attach)
    system = [Message.system(args.system)] if args.system else []
    if args.interactive:
        return _interactive(client, args, ctrl_c, system, text, attachments)
    if text is None and not attachments:
        print("error: no prompt: give one, pipe text in, or use -i for a conversation", file=sys.stderr)
        return 2
    _, stopped = _answer(client, system + [_user_message(text, attachments)], args, ctrl_c)
    return 130 if stopped else 0


def _read_line(tty: bool) -> Optional[str]:
    """The next message typed (None at the end of input)."""
    if tty:
        try:
            return input("> ")
        except EOFError:
            return None
    line = sys.stdin.readline()
    return line.rstrip("\r\n") if line else None


def _interactive(client: Any, args: argparse.Namespace, ctrl_c: _CtrlC, system: List[Any],
                 first: Optional[str], attachments: List[Any]) -> int:
    """A conversation: each line is a message, answered with the whole history.

    A stopped answer stays in the history as far as it got (the user saw it); one
    stopped before any text came, or failed, is dropped with its question.
    """
    from llmlib import LLMError, Message

    tty = sys.stdin is not None and sys.stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        model = args.model
        if model is None and client.provider == "local":
            from llmlib import local

            model = local.selected()[0]
        print(f"Chatting with {model} ({client.provider}). Ctrl-D ends the conversation, "
              "Ctrl-C stops an answer.", file=sys.stderr, flush=True)
    history = list(system)
    pending = first
    while True:
        if pending is None:
            try:
                pending = _read_line(tty)
            except KeyboardInterrupt:  # at the prompt: a fresh line, like a shell
                if tty:
                    _write("\n")
                continue
            if pending is None:
                if tty:
                    _write("\n")
                return 0
            if not pending.strip() and not attachments:
                pending = None
                continue
            if tty and pending.strip() in ("exit", "quit"):
                return 0
        history.append(_user_message(pending, attachments))
        pending, attachments = None, []
        try:
            response, _ = _answer(client, history, args, ctrl_c)
        except LLMError as exc:
            print(_error_line(exc, args), file=sys.stderr, flush=True)
            response = None
        if response is not None and (response.text or response.tool_calls):
            history.append(Message.assistant(response.text or None, tool_calls=response.tool_calls or None))
        else:
            history.pop()


def _models(client: Any) -> int:
    for info in client.list_models():
        _write(f"{info.id}\n")
    return 0


def _error_line(exc: BaseException, args: argparse.Namespace) -> str:
    message = str(exc) or type(exc).__name__
    key = getattr(args, "api_key", None)
    if key:
        message = message.replace(key, "***")  # the library never shows it; make sure
    return f"error: {message}"


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")  # a model's emoji on a latin-1 terminal: no traceback
    from llmlib import LLMError

    try:
        with _CtrlC() as ctrl_c:
            from llmlib import Client  # requests and urllib3: a moment, which Ctrl-C may interrupt

            with Client(args.provider, api_key=args.api_key) as client:
                if args.command == "chat":
                    return _chat(client, args, ctrl_c)
                return _models(client)
    except LLMError as exc:
        print(_error_line(exc, args), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("(stopped)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `llmlib chat ... | head -1`: the reader left; leave quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
