"""llmlib.notebook in a real kernel: nbclient executes notebooks on ipykernel against
a loopback fake upstream (and the bundled model), and a cell is interrupted mid-stream
through the kernel manager."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from llmlib import Message  # noqa: E402
from llmlib.notebook import chunk_markdown, markdown  # noqa: E402
from llmlib.streaming import collect  # noqa: E402
from llmlib.types import ChatCompletionChunk  # noqa: E402
from tests import fake_openai  # noqa: E402
from tests.conftest import HAS_LOCAL  # noqa: E402
from tests.loopback import LoopbackServer  # noqa: E402
from tests.test_web import Upstream  # noqa: E402

pytestmark = pytest.mark.timeout(180)

PIECES = [f"word{i} " for i in range(120)]
REASONING = ["Thinking ", "about ", "it."]


def _events(body: bytes):
    return [e + b"\n\n" for e in body.split(b"\n\n") if e]


def handler(req, reply):
    prompt = req.json()["messages"][-1]["content"]
    if prompt == "many":  # 120 tokens over ~0.6 s, with reasoning first
        reply.sse(_events(fake_openai.stream_body(PIECES, reasoning=REASONING)), delay=0.005)
    elif prompt == "tool":
        reply.sse(_events(fake_openai.tool_stream_body("call_1", "get_weather", '{"city": "Paris"}')), delay=0.02)
    else:
        fake_openai.handler(req, reply)


class CountingClient(nbclient.NotebookClient):
    """Counts the display updates the kernel sends, per cell."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates = {}

    def process_message(self, msg, cell, cell_index):
        self.loop = asyncio.get_running_loop()
        if msg["header"]["msg_type"] == "update_display_data":
            self.updates[cell_index] = self.updates.get(cell_index, 0) + 1
        return super().process_message(msg, cell, cell_index)


def notebook(*sources: str):
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])


def setup_cell(url: str) -> str:
    return ("from llmlib import Client, ConnectionOptions\n"
            "from llmlib.notebook import display_stream\n"
            f"client = Client('openai', api_key='sk-test-nb', base_url={url + '/v1'!r}, "
            "options=ConnectionOptions(max_retries=0))")


def markdown_of(output) -> str:
    return output["data"]["text/markdown"]


def test_display_stream_in_a_real_kernel():
    server = LoopbackServer(handler)
    try:
        nb = notebook(
            setup_cell(server.url),
            "import time\nstarted = time.monotonic()\n"
            "r = display_stream(client.chat_completion_stream(model='m', messages='many'))\n"
            "took = time.monotonic() - started\nr",
            "t = display_stream(client.chat_completion_stream(model='m', messages='tool'))",
            "import json\nprint(json.dumps({'text': r.text, 'reasoning': r.reasoning_content, 'took': took, "
            "'args': t.tool_calls[0].function.arguments}))",
        )
        client = CountingClient(nb, timeout=60, kernel_name="python3")
        client.execute()
    finally:
        server.close()
    summary = json.loads(nb.cells[3].outputs[0]["text"])
    text = "".join(PIECES)
    assert summary["text"] == text and summary["reasoning"] == "".join(REASONING)
    # Cell 1: one live output, updated in place, at most every 50 ms (plus the final update).
    live, result = nb.cells[1].outputs
    assert live["output_type"] == "display_data" and result["output_type"] == "execute_result"
    final = markdown_of(live)
    assert final.startswith("<details><summary>Reasoning</summary>") and "Thinking about it." in final
    assert final.split("</details>\n\n", 1)[1] == summary["text"]
    assert markdown_of(result) == final  # the response's _repr_markdown_
    updates = client.updates[1]
    assert 2 <= updates <= summary["took"] / 0.05 + 2, (updates, summary["took"])
    assert updates < len(PIECES) / 3  # not one per token
    # Cell 2: the tool call as it assembled.
    tool = markdown_of(nb.cells[2].outputs[0])
    assert "`get_weather`" in tool and '{"city": "Paris"}' in tool and summary["args"] == '{"city": "Paris"}'


def test_interrupting_a_cell_cancels_the_stream_and_keeps_the_partial_answer():
    upstream = Upstream(interval=0.02)
    times = {}

    def interrupt_mid_stream() -> None:
        record = upstream.last(timeout=60)
        time.sleep(0.5)  # some tokens on screen
        times["open before"] = record["closed_at"] is None
        times["interrupted"] = time.monotonic()
        # km.interrupt_kernel() of nbclient's AsyncKernelManager, on nbclient's own loop.
        asyncio.run_coroutine_threadsafe(client.km.interrupt_kernel(), client.loop).result(10)
        times["closed"] = upstream.wait_closed(record, 10)

    try:
        nb = notebook(
            setup_cell(upstream.url),
            "stream = client.chat_completion_stream(model='m', messages='talk')\nr = display_stream(stream)",
            "print(repr(stream))",
        )
        client = CountingClient(nb, timeout=60, kernel_name="python3", allow_errors=True)
        helper = threading.Thread(target=interrupt_mid_stream, daemon=True)
        helper.start()
        client.execute()
        helper.join(30)
    finally:
        upstream.close()
    assert times["open before"]
    closed = times["closed"]
    assert closed is not None and closed - times["interrupted"] < 1.0, "the interrupt left the upstream connection open"
    outputs = nb.cells[1].outputs
    error = [o for o in outputs if o["output_type"] == "error"]
    assert error and error[0]["ename"] == "KeyboardInterrupt"
    partial = markdown_of(next(o for o in outputs if o["output_type"] == "display_data"))
    assert partial.startswith("tok0 tok1 ") and partial.endswith("*interrupted: the stream was cancelled*")
    assert "closed" in nb.cells[2].outputs[0]["text"]


@pytest.mark.local_model
@pytest.mark.skipif(not HAS_LOCAL, reason="needs pip install -e '.[local]'")
def test_notebook_with_the_bundled_model_stream_and_batch_progress():
    nb = notebook(
        "from llmlib import Client, Message, ChatCompletionRequest\n"
        "from llmlib.notebook import display_stream\nclient = Client('local')",
        "r = display_stream(client.chat_completion_stream(messages='Say hello.', max_tokens=24, temperature=0))",
        "reqs = [ChatCompletionRequest(model='smollm2-135m', messages=[Message.user(f'Count to {i}.')], max_tokens=8) "
        "for i in range(3)]\nresults = client.chat_completion_batch(reqs, progress=True)",
        "import json\nprint(json.dumps({'text': r.text, 'ok': [type(x).__name__ for x in results]}))\n"
        "client.close()",
    )
    client = CountingClient(nb, timeout=170, kernel_name="python3")
    client.execute()
    summary = json.loads(nb.cells[3].outputs[-1]["text"])
    assert summary["text"].strip() and summary["ok"] == ["ChatCompletionResponse"] * 3, summary
    assert markdown_of(nb.cells[1].outputs[0]) == summary["text"]
    bar = [o for o in nb.cells[2].outputs if o["output_type"] == "display_data"]
    assert bar and "application/vnd.jupyter.widget-view+json" in bar[0]["data"], nb.cells[2].outputs


def test_repr_markdown_of_chunks_and_responses():
    body = fake_openai.stream_body(["Hi ", "there"], reasoning=["hmm"])
    chunks = [ChatCompletionChunk.from_dict(json.loads(e[6:])) for e in body.split(b"\n\n")
              if e.startswith(b"data: {")]
    response = collect(chunks)
    assert response._repr_markdown_() == markdown(response)
    assert response._repr_markdown_().endswith("</details>\n\nHi there")
    assert chunks[2]._repr_markdown_() == chunk_markdown(chunks[2]) == "Hi "
    assert "usage" in chunks[-1]._repr_markdown_()
    plain = collect(c for c in chunks if not c.reasoning_content)
    assert plain._repr_markdown_() == "Hi there"
    assert Message  # imported for the local test's kernel only


def test_llmlib_notebook_imports_ipython_only_when_used():
    import subprocess
    import sys

    code = "import sys, llmlib, llmlib.notebook, llmlib.web; assert 'IPython' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_display_stream_outside_a_kernel_returns_the_answer(server):
    from llmlib.notebook import display_stream
    from tests.conftest import make_client
    from tests.fake_openai import handler

    server.handler = handler
    with make_client(server) as client:
        response = display_stream(client.chat_completion_stream(model="m", messages="hi"))
    assert response.text == "Hello from the fake OpenAI."
