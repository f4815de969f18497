"""``python -m rag serve``: the RAG chat endpoint over HTTP (Starlette).

Routes:
- ``GET /``: the web page (:mod:`rag.page`).
- ``POST /ask`` ``{"question": str, "k"?: int, "filters"?: {key: value | [values]},
  "hybrid"?: bool}`` -> ``{"question", "answer", "citations": [{n, doc_id, source,
  chunk_index, score, text}], "passages", "fusion"}``.
- ``POST /ask/stream``: the same request; server-sent events ``token`` (``{"text"}``, the
  answer's deltas), then ``answer`` (the ``/ask`` body) or ``error`` (``{"message"}``).
- ``GET /health``: ``{"status": "ok"}``.

Errors: ``{"error": {"message", "type"}}`` with 422 for a bad request, 503 when the index
is not set up, 502 when Elasticsearch, the embedding server or the chat model failed.
Retrieval and generation use blocking clients, so they run in Starlette's thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rag.answer import Assistant
from rag.errors import ConfigError, NotSetUpError, RagError
from rag.page import PAGE


class BadRequest(ConfigError):
    """The request body is not what the route accepts."""


def _status(exc: RagError) -> int:
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, NotSetUpError):
        return 503
    return 502


def _error(exc: RagError) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": str(exc), "type": type(exc).__name__}}, status_code=_status(exc)
    )


async def _parse(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest('the body must be JSON: {"question": "..."}') from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("question"), str)
        or not body["question"].strip()
    ):
        raise BadRequest("`question` must be a non-empty string")
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


def create_app(assistant: Assistant) -> Starlette:
    """The ASGI app answering from ``assistant``."""

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ask(request: Request) -> Response:
        try:
            args = await _parse(request)
            answer = await run_in_threadpool(assistant.ask, **args)
        except RagError as exc:
            return _error(exc)
        return JSONResponse(answer.as_dict())

    async def ask_stream(request: Request) -> Response:
        try:
            args = await _parse(request)
            grounded, fusion = await run_in_threadpool(
                assistant.prepare, args["question"], args["k"], args["filters"], args["hybrid"]
            )
        except RagError as exc:
            return _error(exc)

        def events() -> Iterator[str]:
            parts: list[str] = []
            try:
                for delta in assistant.stream(grounded):
                    parts.append(delta)
                    yield _sse("token", {"text": delta})
            except RagError as exc:
                yield _sse("error", {"message": str(exc), "type": type(exc).__name__})
                return
            yield _sse("answer", assistant.finish(grounded, fusion, "".join(parts)).as_dict())

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
