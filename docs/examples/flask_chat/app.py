"""A minimal streaming chat page on Flask and llmlib.

    pip install -e '.[local]' flask && python docs/examples/flask_chat/app.py

then open http://127.0.0.1:5000. It talks to the bundled local model; set
LLMLIB_PROVIDER (and LLMLIB_MODEL, and the provider's key variable) for another,
e.g. ``LLMLIB_PROVIDER=groq LLMLIB_MODEL=llama-3.3-70b-versatile``. Closing the tab
cancels the upstream generation at once (llmlib.web.sse). Under gunicorn:
``gunicorn -k gthread --threads 8 --chdir docs/examples/flask_chat app:app``.
"""

from __future__ import annotations

import os

from flask import Flask, Response, jsonify, render_template, request

from llmlib import Client, LLMError
from llmlib.web import SSE_HEADERS, sse

PROVIDER = os.environ.get("LLMLIB_PROVIDER", "local")
MODEL = os.environ.get("LLMLIB_MODEL") or None  # None: the provider's default (the bundled model has one)
MAX_TOKENS = int(os.environ.get("LLMLIB_MAX_TOKENS", "256"))

client = Client(PROVIDER)  # one Client per process: it pools connections and is thread-safe
app = Flask(__name__)


@app.get("/")
def index():
    return render_template("index.html", provider=PROVIDER, model=MODEL or "default model")


@app.post("/chat")
def chat():
    messages = (request.get_json(silent=True) or {}).get("messages") or []
    if not messages:
        return jsonify(error={"type": "BadRequest", "message": "send {\"messages\": [...]}"}), 400
    kwargs = {"model": MODEL} if MODEL else {}
    try:  # HTTP errors (bad key, unknown model) arrive here, before the first byte
        stream = client.chat_completion_stream(messages=messages, max_tokens=MAX_TOKENS, **kwargs)
    except LLMError as exc:
        return jsonify(error={"type": type(exc).__name__, "message": str(exc)}), exc.status_code or 502
    # OpenAI-compatible SSE; closing the tab closes this body, which cancels the upstream request.
    return Response(sse(stream, environ=request.environ), headers=SSE_HEADERS)


if __name__ == "__main__":
    port = int(os.environ.get("CHAT_PORT", "5000"))
    print(f"llmlib chat ({PROVIDER}) on http://127.0.0.1:{port}", flush=True)
    app.run(host="127.0.0.1", port=port, threaded=True)
