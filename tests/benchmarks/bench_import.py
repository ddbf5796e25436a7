"""Cold start: the time from a fresh interpreter to a client ready to send.

Run: ``python tests/benchmarks/bench_import.py [--runs 21]``

Each statement below runs in a fresh ``python -c`` process, the statements
alternating run by run so that every one sees the same machine; the figure is
the median wall time of ``--runs`` processes (min-max beside it), and each
figure is also given as a ratio to ``import requests; requests.Session()``,
which every requests-based client pays. Bytecode caches are written by a first
untimed run of each statement (``PYTHONDONTWRITEBYTECODE`` is dropped for the
children), as they are on a user's machine after the first import.

- ``pass``: the interpreter alone;
- ``import http.client``: the standard library's HTTP, the floor for a client;
- ``import requests; requests.Session()``: the baseline;
- ``import llmlib``;
- ``import llmlib; llmlib.Client("openai", ...)``: llmlib ready to send (the
  target: within 1.3x the baseline);
- the official ``openai`` SDK with its client, and ``import litellm``, when installed
  (with ``LITELLM_LOCAL_MODEL_COST_MAP=True``: no network fetch of its price
  list at import, which would otherwise time a download, or retries offline).

A Client imports its transport (requests, urllib3) and its provider's protocol
module at its first request, not when it is made. So that this cost is shown and
not just moved, two more statements go on to send one chat request each, to a
loopback port where nothing listens (refused at once, no retry), and their ratio
is printed too:

- ``requests`` + Session + one POST of the same JSON body;
- ``llmlib`` + Client + ``chat_completion``, which builds and checks the request
  with the provider's types and maps the refusal to ``APIConnectionError``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

STATEMENTS = [
    ("python (nothing imported)", "pass", None),
    ("http.client", "import http.client", None),
    ("requests + Session (baseline)", "import requests; requests.Session()", "requests"),
    ("import llmlib", "import llmlib", "llmlib"),
    ("llmlib + first Client", "import llmlib; llmlib.Client('openai', api_key='sk-bench')", "llmlib"),
    ("openai + first OpenAI()", "import openai; openai.OpenAI(api_key='sk-bench')", "openai"),
    ("litellm", "import litellm", "litellm"),
    ("requests + first request", "import requests\n"
     "try: requests.Session().post('http://127.0.0.1:{port}/v1/chat/completions', "
     "json={{'model': 'm', 'messages': [{{'role': 'user', 'content': 'hi'}}]}})\n"
     "except requests.ConnectionError: pass", "requests"),
    ("llmlib + first request", "import llmlib\n"
     "c = llmlib.Client('openai', api_key='sk-bench', base_url='http://127.0.0.1:{port}/v1', max_retries=0)\n"
     "try: c.chat_completion(model='m', messages='hi')\n"
     "except llmlib.APIConnectionError: pass", "llmlib"),
]
BASELINE = "requests + Session (baseline)"
TARGET = 1.3


def _refusing_port() -> int:
    """A loopback port with nothing listening: a connect there is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_once(statement: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="processes per statement (default 21)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    port = _refusing_port()
    rows = [(name, stmt.format(port=port)) for name, stmt, module in STATEMENTS
            if module is None or importlib.util.find_spec(module) is not None]
    for _, stmt in rows:  # write the bytecode caches
        run_once(stmt, env)
    times = {name: [] for name, _ in rows}
    for i in range(args.runs):
        order = rows[i % len(rows):] + rows[:i % len(rows)]
        for name, stmt in order:
            times[name].append(run_once(stmt, env))
    base = statistics.median(times[BASELINE])
    print(f"fresh interpreter to ready, median of {args.runs} processes each, alternating (ms)")
    print(f"{'':32s} {'median':>8s} {'min-max':>13s}  vs baseline")
    for name, _ in rows:
        t = times[name]
        m = statistics.median(t)
        print(f"{name:32s} {m * 1000:8.0f} {min(t) * 1000:6.0f}-{max(t) * 1000:<6.0f}  {m / base:.2f}x")
    ratio = statistics.median(times["llmlib + first Client"]) / base
    verdict = "OK" if ratio <= TARGET else "ABOVE TARGET"
    print(f"llmlib + first Client / requests + Session: {ratio:.2f} (target <= {TARGET}): {verdict}")
    first = statistics.median(times["llmlib + first request"]) / statistics.median(times["requests + first request"])
    print(f"llmlib + first request / requests + first request: {first:.2f} (no target: the cost a Client defers)")


if __name__ == "__main__":
    main()
