"""The page, and the streaming view: ``StreamingHttpResponse(sse(stream))``."""
import json
import os

from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from llmlib import Client, LLMError
from llmlib.web import SSE_HEADERS, sse

PROVIDER = os.environ.get("LLMLIB_PROVIDER", "local")
MODEL = os.environ.get("LLMLIB_MODEL") or None  # None: the provider's default (the bundled model has one)
MAX_TOKENS = int(os.environ.get("LLMLIB_MAX_TOKENS", "256"))

client = Client(PROVIDER)  # one per process: pooled connections, thread-safe


def index(request):
    return render(request, "index.html", {"provider": PROVIDER, "model": MODEL or "default model"})


@require_POST
def chat(request):
    try:
        messages = json.loads(request.body or b"{}").get("messages") or []
    except ValueError:
        messages = []
    if not messages:
        return JsonResponse({"error": {"type": "BadRequest", "message": 'send {"messages": [...]}'}}, status=400)
    kwargs = {"model": MODEL} if MODEL else {}
    try:  # HTTP errors (bad key, unknown model) arrive here, before the first byte
        stream = client.chat_completion_stream(messages=messages, max_tokens=MAX_TOKENS, **kwargs)
    except LLMError as exc:
        return JsonResponse({"error": {"type": type(exc).__name__, "message": str(exc)}},
                            status=exc.status_code or 502)
    # Closing the tab makes the server close this body, which cancels the upstream request.
    return StreamingHttpResponse(sse(stream, environ=request.META), headers=SSE_HEADERS)
