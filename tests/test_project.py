"""The project's promises about itself: CI runs the README's command; import stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HAS_LOCAL

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_command = next(b for b in blocks if "pytest" in b)
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == test_command


@pytest.mark.local_model
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not HAS_LOCAL, reason="needs pip install -e '.[local]' (the README's first command)")
def test_the_readme_and_every_docs_example_work_on_a_fresh_virtualenv():
    # A new virtualenv, the README's install and first command, then every README and
    # docs/ example run by that virtualenv's interpreter: see tests/try_readme.py.
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "try_readme.py")], capture_output=True, text=True,
                          timeout=1700)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_import_is_light():
    code = ("import sys, llmlib; heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('requests', 'urllib3', 'sseclient', 'llama_cpp', 'numpy') or m.startswith('llmlib.providers.') "
            "or m in ('llmlib.types', 'llmlib.messages', 'llmlib.streaming', 'llmlib.models')]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # A Client is made from its table row: its transport (requests, urllib3), protocol module,
    # the types, the model table and the stream machinery load at the first request that needs them.
    code = ("import sys, llmlib; llmlib.Client('openai', api_key='sk-test'); llmlib.Client('anthropic', api_key='k'); "
            "llmlib.Client('azure', api_key=lambda: 'token', base_url='https://x.openai.azure.com/openai/v1'); "
            "print([m for m in sys.modules if m.startswith('llmlib.providers.') or m in ('llmlib.types', "
            "'llmlib.messages', 'llmlib.models', 'llmlib.streaming', 'llmlib.response_stream', 'llmlib.framing', "
            "'llmlib.transport') or m.split('.')[0] in ('requests', 'urllib3')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # Every public name is still there, imported when first named.
    code = ("import llmlib; from llmlib import Message, ChatCompletionChunk, collect, events, Client; "
            "import llmlib.types, llmlib.streaming; "
            "assert Message is llmlib.messages.Message and ChatCompletionChunk is llmlib.types.ChatCompletionChunk; "
            "assert collect is llmlib.streaming.collect and events is llmlib.streaming.events; "
            "assert all(hasattr(llmlib, n) for n in llmlib.__all__) and set(llmlib.__all__) <= set(dir(llmlib)); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"


def test_public_names_have_docstrings():
    import llmlib

    missing = [name for name in llmlib.__all__ if not (getattr(llmlib, name).__doc__ or "").strip()]
    assert missing == []


def test_every_guarantee_links_to_a_test_that_exists():
    page = (ROOT / "docs" / "guarantees.md").read_text()
    links = re.findall(r"\[(test_\w+)\]\(\.\./tests/(\w+\.py)\)", page)
    assert len(links) > 40
    for name, file in links:
        assert re.search(rf"def {name}\(", (ROOT / "tests" / file).read_text()), f"{file}::{name}"


def test_the_providers_page_has_a_row_per_provider_and_every_cell_is_a_test():
    from llmlib.providers import SPECS
    from tests.test_same_code import AUDIO_REFUSED

    page = (ROOT / "docs" / "providers.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", page, re.M)}
    assert set(SPECS) <= set(rows)
    for name in SPECS:
        audio = re.search(r"\[(.)\]\(\.\./tests/test_same_code\.py#test_audio", rows[name]).group(1)
        assert (audio == "✗") == (name in AUDIO_REFUSED), name
    links = re.findall(r"\]\(\.\./tests/(\w+\.py)(?:#(test_\w+))?\)", page)
    assert len(links) > 100
    for file, name in links:
        text = (ROOT / "tests" / file).read_text()
        assert not name or re.search(rf"def {name}\(", text), f"{file}::{name}"
