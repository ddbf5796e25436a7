"""The documentation runs: ``mkdocs build --strict`` passes, and every ```python
block in ``README.md`` and ``docs/`` executes (``tests/try_readme.py`` runs the
same blocks with a fresh virtualenv's interpreter, after the README's install).

Each page's blocks run in order, in one namespace, in a subprocess of their own
(working directory: a fresh temporary directory holding ``photo.png``,
``speech.wav`` and ``report.pdf``), with every provider pointed at loopback
fakes: ``<NAME>_BASE_URL`` and a fake key for each row of the provider table,
``local`` included (so ``Client("local")`` is answered by the OpenAI fake here;
the bundled model itself is exercised by ``tests/test_local_model.py``). A test
per block, id ``page.md:line``. A block preceded by
``<!-- not run: reason -->`` is reported as skipped with that reason.

The fake OpenAI server answers chat (streamed or not; a tool call when the
request offers tools and the last message is not a tool result; reasoning when
``reasoning_effort`` is set; a slow count when the prompt says "Count"; 404
for the model ``no-such-model``), the model list, and the Responses API (from
the recorded transcripts in ``../shared/wire/openai_responses``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE_TIMEOUT = 180  # seconds for all of one page's blocks
FAKE_KEY = "sk-docs-fake-0123456789"
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->\s*$")


class Block(NamedTuple):
    page: str
    line: int
    code: str
    skip: Optional[str]

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> List[Block]:
    """The ```python blocks of a page, with their first line number and any
    ``<!-- not run: ... -->`` reason on the last non-blank line before them."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```python" and not lines[i].startswith(" "):
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            before = next((lines[j] for j in range(start - 2, -1, -1) if lines[j].strip()), "")
            reason = _NOT_RUN.match(before.strip())
            found.append(Block(path.name, start, "\n".join(body) + "\n", reason.group(1) if reason else None))
        i += 1
    return found


#: The README's examples first, then every page of docs/.
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
ALL_BLOCKS = [b for page in PAGES for b in blocks_of(page)]
#: The interpreter that runs the examples: this one, or (``tests/try_readme.py``)
#: a fresh virtualenv's, holding only what the README's install puts there.
EXAMPLES_PYTHON = os.environ.get("LLMLIB_DOCS_PYTHON") or sys.executable


# ------------------------------------------------------------------ mkdocs

def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: pip install -e '.[test]'")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.name for p in DOCS.glob("*.md")}
    missing = [p for p in sorted(pages) if f" {p}" not in nav]
    assert missing == []


# ------------------------------------------------------------------ the fakes

def _tool_arguments(tool: dict) -> dict:
    """Arguments a model might write for ``tool``: a plausible value per property."""
    props = (tool.get("function") or tool).get("parameters", {}).get("properties", {})
    samples = {"string": "Paris", "integer": 2, "number": 2.5, "boolean": True}
    return {name: samples.get(spec.get("type"), "x") for name, spec in props.items()}


def _user_text(messages: list) -> str:
    parts = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict)]
    return " ".join(parts)


def _openai_handler(req, reply) -> None:
    from tests import fake_openai as m
    from tests.conftest import WIRE

    path = req.path.split("?", 1)[0]
    if req.method == "GET" and path.endswith("/models"):
        ids = ["gpt-4o-mini", "gpt-4o", "o3-mini", "smollm2-135m", m.MODEL]
        reply.json({"object": "list", "data": [{"id": i, "object": "model", "owned_by": "fake"} for i in ids]})
        return
    if req.method == "POST" and path.endswith("/responses"):
        body = req.json()
        recorded = WIRE / "openai_responses"
        if not body.get("stream"):
            reply.json(json.loads((recorded / "nonstream_output_text.json").read_text()))
        elif body.get("tools") and not any(isinstance(i, dict) and i.get("type") == "function_call_output"
                                           for i in (body.get("input") or [])):
            reply.sse((recorded / "stream_function_call.sse").read_bytes())
        else:
            reply.sse((recorded / "llm_stream_basic_with_headers.sse").read_bytes())
        return
    if not (req.method == "POST" and path.endswith("/chat/completions")):
        reply.json(m.error_json(404, f"no route {req.method} {path}"), status=404)
        return
    body = req.json()
    if body.get("model") == "no-such-model":
        reply.json({"error": {"message": "The model `no-such-model` does not exist", "type": "invalid_request_error",
                              "code": "model_not_found"}}, status=404)
        return
    messages = body.get("messages") or []
    tools = body.get("tools") or []
    wants_tool = bool(tools) and body.get("tool_choice") != "none" and messages[-1].get("role") != "tool"
    reasoning = ["The user wants a short answer. ", "I will give one."] if body.get("reasoning_effort") else []
    if wants_tool:
        tool = tools[0]
        name = (tool.get("function") or tool)["name"]
        args = _tool_arguments(tool)
        if body.get("stream"):
            reply.sse(m.tool_stream_body("call_1", name, json.dumps(args)))
        else:
            answer = m.response_json("")
            answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
            answer["choices"][0]["finish_reason"] = "tool_calls"
            reply.json(answer)
        return
    text = "It is 18 °C and sunny in Paris." if messages[-1].get("role") == "tool" else m.TEXT
    if body.get("stream"):
        reply.sse(m.stream_body([text[:5], text[5:]], reasoning=reasoning))
    else:
        answer = m.response_json(text)
        if reasoning:
            answer["choices"][0]["message"]["reasoning_content"] = "".join(reasoning)
        reply.json(answer)


def _slow(handler):
    """``handler``, but a streamed "Count" answer is sent a piece every 10 ms."""
    def wrapped(req, reply):
        if req.method == "POST" and req.path.endswith("/chat/completions"):
            body = req.json()
            if body.get("stream") and "Count" in _user_text(body.get("messages") or []):
                from tests import fake_openai as m

                pieces = m.stream_body([f"{i} " for i in range(1, 1001)]).split(b"\n\n")
                try:
                    reply.sse([p + b"\n\n" for p in pieces if p], delay=0.01)
                except OSError:  # the client cancelled: what the example shows
                    reply.keep_alive = False
                return
        handler(req, reply)
    return wrapped


@pytest.fixture(scope="module")
def fakes():
    from llmlib.providers import SPECS
    from tests import fake_anthropic, fake_cohere, fake_gemini, fake_ollama
    from tests.loopback import LoopbackServer

    servers = {"openai": LoopbackServer(_slow(_openai_handler)), "anthropic": LoopbackServer(fake_anthropic.handler),
               "gemini": LoopbackServer(fake_gemini.handler), "ollama": LoopbackServer(fake_ollama.handler),
               "cohere": LoopbackServer(fake_cohere.handler)}
    paths = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta", "ollama": "", "cohere": "/v2"}
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy") and not k.startswith("LLMLIB_")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name, spec in SPECS.items():
        family = spec.protocol if spec.protocol in servers else "openai"
        if spec.protocol == "azure":
            env["AZURE_OPENAI_ENDPOINT"] = servers["openai"].url
            env["OPENAI_API_VERSION"] = "2024-10-21"
            env[spec.base_url_env] = servers["openai"].url
        else:
            env[spec.base_url_env] = servers[family].url + paths[family]
        for var in spec.key_env:
            env[var] = FAKE_KEY
    try:
        yield env
    finally:
        for s in servers.values():
            s.close()


# ------------------------------------------------------------------ running the pages

_RUNNER = textwrap.dedent("""
    import json, sys, time, traceback
    blocks, out = json.load(open(sys.argv[1])), sys.argv[2]
    namespace = {"__name__": "__main__"}
    for block in blocks:
        if block["skip"]:
            continue
        start = time.monotonic()
        try:
            exec(compile(block["code"], block["id"], "exec"), namespace)
            result = {"id": block["id"], "ok": True}
        except BaseException:
            result = {"id": block["id"], "ok": False, "error": traceback.format_exc(limit=8)}
        result["seconds"] = round(time.monotonic() - start, 3)
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\\n")
        if not result["ok"]:
            break
""")

_PAGE_RESULTS: Dict[str, Dict[str, dict]] = {}

# A 1x1 PNG, a 10 ms silent WAV and a one-page PDF: what the examples attach.
_PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
_WAV = (b"RIFF" + (36 + 160).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
        + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
        + (16000).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
        + b"data" + (160).to_bytes(4, "little") + bytes(160))
_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n%%EOF\n"


def run_page(page: str, env: dict, workdir: Path) -> Dict[str, dict]:
    if page in _PAGE_RESULTS:
        return _PAGE_RESULTS[page]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "photo.png").write_bytes(_PNG)
    (workdir / "speech.wav").write_bytes(_WAV)
    (workdir / "report.pdf").write_bytes(_PDF)
    blocks = [dict(b._asdict(), id=b.id) for b in ALL_BLOCKS if b.page == page]
    (workdir / "_blocks.json").write_text(json.dumps(blocks))
    out = workdir / "_results.jsonl"
    try:
        proc = subprocess.run([EXAMPLES_PYTHON, "-c", _RUNNER, str(workdir / "_blocks.json"), str(out)],
                              cwd=workdir, env=env, capture_output=True, text=True, timeout=PAGE_TIMEOUT)
        tail = (proc.stdout[-2000:], proc.stderr[-2000:])
    except subprocess.TimeoutExpired:
        tail = ("", f"the page's blocks did not finish within {PAGE_TIMEOUT} s")
    results = {}
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            results[r["id"]] = r
    for b in blocks:
        results.setdefault(b["id"], {"id": b["id"], "ok": False, "error": "did not run (an earlier block failed, "
                                     f"or the process died): stdout {tail[0]!r} stderr {tail[1]!r}"})
    _PAGE_RESULTS[page] = results
    return results


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.id for b in ALL_BLOCKS])
def test_docs_example_runs(block, fakes, tmp_path_factory):
    if block.skip:
        pytest.skip(f"not run: {block.skip}")
    result = run_page(block.page, fakes, tmp_path_factory.getbasetemp() / "docs" / block.page)[block.id]
    assert result["ok"], f"{block.id} failed:\n{result['error']}"

