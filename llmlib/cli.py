"""The command line: ``python -m llmlib chat "prompt"`` and ``python -m llmlib models``.

The provider is ``--provider``, else ``$LLMLIB_PROVIDER``, else ``local`` (the
bundled model). ``chat`` streams the answer to standard output as it arrives;
Ctrl-C stops generation (the connection is closed, so the server stops too) and
exits with status 130. Errors go to standard error with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llmlib", description="Talk to an LLM from the terminal.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--provider", default=os.environ.get("LLMLIB_PROVIDER") or "local",
                        help="provider name (default: $LLMLIB_PROVIDER or 'local')")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", parents=[common], help="stream an answer to a prompt")
    chat.add_argument("prompt", help="the user message")
    chat.add_argument("--model", help="model id (required for every provider but 'local')")
    chat.add_argument("--system", help="a system message sent before the prompt")
    chat.add_argument("--max-tokens", type=int, default=256, help="most tokens to generate (default 256)")
    chat.add_argument("--temperature", type=float, help="sampling temperature")

    sub.add_parser("models", parents=[common], help="list the provider's models")
    return parser


def _chat(client, args: argparse.Namespace) -> int:
    from llmlib import Message

    if args.model is None and client.provider != "local":
        print(f"error: --model is required for provider {client.provider!r}", file=sys.stderr)
        return 2
    messages = ([Message.system(args.system)] if args.system else []) + [Message.user(args.prompt)]
    kwargs = dict(messages=messages, max_tokens=args.max_tokens, temperature=args.temperature)
    if args.model:
        kwargs["model"] = args.model
    stream = client.chat_completion_stream(**kwargs)
    try:
        for chunk in stream:
            if chunk.text:
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
    except KeyboardInterrupt:
        stream.close()  # closes the connection: the server stops generating
        sys.stdout.write("\n")
        print("(stopped)", file=sys.stderr)
        return 130
    sys.stdout.write("\n")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    from llmlib import Client, LLMError

    try:
        with Client(args.provider) as client:
            if args.command == "chat":
                return _chat(client, args)
            for info in client.list_models():
                print(info.id)
            return 0
    except LLMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("(stopped)", file=sys.stderr)
        return 130
