"""``python -m rag serve``: the RAG chat endpoint over HTTP (Starlette).

Routes:
- ``GET /``: the web page (:mod:`rag.page`), which carries no data and needs no key.
- ``POST /ask`` ``{"question": str, "k"?: int, "filters"?: {key: value | [values]},
  "hybrid"?: bool}`` -> ``{"question", "answer", "citations": [{n, doc_id, source,
  chunk_index, score, text}], "passages", "fusion", "usage"}``.
- ``POST /ask/stream``: the same request; server-sent events ``token`` (``{"text"}``, the
  answer's deltas), then ``answer`` (the ``/ask`` body) or ``error`` (``{"message"}``).
- ``GET /health``: ``{"status": "ok"}``.

Guards on ``/ask`` and ``/ask/stream``, in this order: the API key when
``RAG_SERVE_API_KEY`` is set (``Authorization: Bearer <key>`` or ``X-API-Key``, compared in
constant time; 401), a per-client rate limit (``RAG_SERVE_RATE_LIMIT`` questions a minute per
client address, sliding window; 429 with ``Retry-After``), a body cap (413) and the question
length cap (``RAG_MAX_QUESTION_CHARS``; 422).

Errors: ``{"error": {"message", "type"}}`` with 401, 413, 422, 429 as above, 503 when the
index is not set up, 502 when Elasticsearch, the embedding server or the chat model failed.
Retrieval and generation use blocking clients, so they run in Starlette's thread pool.
"""

from __future__ import annotations

import hmac
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rag.answer import Assistant
from rag.errors import ConfigError, NotSetUpError, RagError
from rag.page import render_page

# Room for the question (4 bytes a character at most in UTF-8), k, filters and JSON syntax.
BODY_OVERHEAD = 16 * 1024
# Clients tracked by the rate limiter at once; the least recently seen are forgotten first.
MAX_CLIENTS = 10_000


class BadRequest(ConfigError):
    """The request body is not what the route accepts."""


class Refused(RagError):
    """The request was refused before any work: ``status`` says why (401, 413, 429)."""

    def __init__(self, message: str, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class RateLimiter:
    """At most ``per_minute`` events per client in any 60-second window (thread-safe)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, client: str) -> float:
        """0 when ``client`` may proceed (and counts it), else the seconds until it may."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        with self._lock:
            times = self._seen.pop(client, None) or deque()
            while times and times[0] <= now - 60.0:
                times.popleft()
            wait = 0.0
            if len(times) >= self.per_minute:
                wait = times[0] + 60.0 - now
            else:
                times.append(now)
            self._seen[client] = times
            while len(self._seen) > MAX_CLIENTS:
                self._seen.popitem(last=False)
            return wait


def _status(exc: RagError) -> int:
    if isinstance(exc, Refused):
        return exc.status
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, NotSetUpError):
        return 503
    return 502


def _error(exc: RagError) -> JSONResponse:
    headers = exc.headers if isinstance(exc, Refused) else None
    return JSONResponse(
        {"error": {"message": str(exc), "type": type(exc).__name__}},
        status_code=_status(exc),
        headers=headers,
    )


def _parse(raw: bytes, max_chars: int) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest('the body must be JSON: {"question": "..."}') from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("question"), str)
        or not body["question"].strip()
    ):
        raise BadRequest("`question` must be a non-empty string")
    if len(body["question"]) > max_chars:
        raise BadRequest(f"`question` is {len(body['question'])} characters; the limit is {max_chars}")
    k = body.get("k")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100):
        raise BadRequest("`k` must be an integer from 1 to 100")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise BadRequest("`filters` must be an object of metadata field -> value or list of values")
    clean: dict[str, list[str]] = {}
    for key, value in filters.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise BadRequest(f"`filters.{key}` must be a value or a non-empty list of values")
        clean[str(key)] = [str(v) for v in values]
    hybrid = body.get("hybrid")
    if hybrid is not None and not isinstance(hybrid, bool):
        raise BadRequest("`hybrid` must be true or false")
    return {"question": body["question"], "k": k, "filters": clean, "hybrid": hybrid}


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _presented_key(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "")


def create_app(assistant: Assistant, clock: Callable[[], float] = time.monotonic) -> Starlette:
    """The ASGI app answering from ``assistant``; ``clock`` drives the per-client rate limit."""
    settings = assistant.settings
    limiter = RateLimiter(settings.serve_rate_limit, clock)
    max_body = settings.max_question_chars * 4 + BODY_OVERHEAD
    page_html = render_page(auth=settings.serve_api_key is not None, max_chars=settings.max_question_chars)

    async def admitted(request: Request) -> dict[str, Any]:
        """The parsed request, once it passed the guards (module doc), else a :class:`RagError`."""
        expected = settings.serve_api_key
        if expected is not None and not hmac.compare_digest(
            _presented_key(request).encode(), expected.encode()
        ):
            raise Refused(
                "a valid API key is required: send Authorization: Bearer <key> or X-API-Key",
                401,
                {"www-authenticate": "Bearer"},
            )
        client = request.client.host if request.client else "unknown"
        wait = limiter.admit(client)
        if wait > 0:
            raise Refused(
                f"too many questions from {client}: at most {settings.serve_rate_limit} a minute",
                429,
                {"retry-after": str(max(1, math.ceil(wait)))},
            )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body:
            raise Refused(f"the request body is over {max_body} bytes", 413)
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > max_body:
                raise Refused(f"the request body is over {max_body} bytes", 413)
        return _parse(bytes(raw), settings.max_question_chars)

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ask(request: Request) -> Response:
        try:
            args = await admitted(request)
            answer = await run_in_threadpool(assistant.ask, **args)
        except RagError as exc:
            return _error(exc)
        return JSONResponse(answer.as_dict())

    async def ask_stream(request: Request) -> Response:
        try:
            args = await admitted(request)
            grounded, fusion = await run_in_threadpool(
                assistant.prepare, args["question"], args["k"], args["filters"], args["hybrid"]
            )
        except RagError as exc:
            return _error(exc)

        def events() -> Iterator[str]:
            parts: list[str] = []
            stream = assistant.stream(grounded)
            try:
                for delta in stream:
                    parts.append(delta)
                    yield _sse("token", {"text": delta})
            except RagError as exc:
                yield _sse("error", {"message": str(exc), "type": type(exc).__name__})
                return
            yield _sse("answer", assistant.finish(grounded, fusion, "".join(parts), stream.usage).as_dict())

        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ask", ask, methods=["POST"]),
            Route("/ask/stream", ask_stream, methods=["POST"]),
        ]
    )
