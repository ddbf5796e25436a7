"""Disconnect-to-cancel time: seconds from a browser hanging up to the upstream
request's socket closing, through a real WSGI server.

    python tests/benchmarks/bench_disconnect.py [--runs 15]

A Flask app streams ``llmlib.web.sse(client.chat_completion_stream(...))`` from a
loopback fake upstream (OpenAI SSE) under gunicorn (sync and gthread workers, in
subprocesses) and werkzeug's threaded dev server. A raw socket client reads three
events and closes; the upstream server notes when its socket closes. Upstream is
either silent after three chunks, or talking (a chunk every 20 ms). "watch" passes
the request's environ (the client socket is watched); "heartbeat" does not, and
relies on 0.3 s heartbeats (a sync worker notices a disconnect only when it writes).
Targets: under 1 s silent, under 100 ms talking.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.test_web import (Upstream, WerkzeugServer, disconnect_delay, gunicorn, load_module,  # noqa: E402
                            write_apps)

CASES = [("silent, watch", "/chat?mode=silent"),
         ("silent, heartbeat 0.3 s", "/chat?mode=silent&watch=0&heartbeat=0.3"),
         ("talking (20 ms/chunk)", "/chat?mode=talk")]


def measure(port: int, upstream: Upstream, path: str, runs: int):
    delays = sorted(disconnect_delay(upstream, port, path) for _ in range(runs))
    return statistics.median(delays), delays[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    upstream = Upstream()
    with tempfile.TemporaryDirectory() as tmp:
        app_dir = write_apps(Path(tmp))
        print(f"disconnect -> upstream socket closed, median (max) of {args.runs} runs")
        for worker in ("sync", "gthread"):
            server = gunicorn(app_dir, upstream.url, worker)
            try:
                for name, path in CASES:
                    median, worst = measure(server.port, upstream, path, args.runs)
                    print(f"gunicorn {worker:8s} {name:26s} {median * 1000:8.1f} ms  ({worst * 1000:.1f} ms)")
            finally:
                server.close()
        import os

        os.environ["UPSTREAM"] = upstream.url
        module = load_module(app_dir / "flask_app.py", "flask_app_bench")
        server = WerkzeugServer(module.app)
        try:
            for name, path in CASES:
                median, worst = measure(server.port, upstream, path, args.runs)
                print(f"werkzeug threaded {name:26s} {median * 1000:8.1f} ms  ({worst * 1000:.1f} ms)")
        finally:
            server.close()
    upstream.close()


if __name__ == "__main__":
    main()
