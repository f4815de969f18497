"""The Starlette application: routes, lifespan, request-id and metrics middleware, errors.

``create_app(settings)`` builds an app whose lifespan loads the model, warms it up and
starts the batcher (readiness turns 200 only after that), and on shutdown finishes every
admitted request before stopping the worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import routes, schemas
from server.engine import Engine, __version__
from server.errors import (
    EmbedError,
    InferenceFailed,
    NotFound,
    StartupError,
    ValidationError,
    openai_body,
    tei_body,
)
from server.metrics import Metrics
from server.settings import Settings

log = logging.getLogger("server.app")

EngineLoader = Callable[[Settings, Metrics], Engine]
_REJECT_REASONS = {401: "unauthorized", 413: "payload", 422: "validation", 429: "queue_full"}


def _route_label(path: str) -> str:
    return path if path in _KNOWN_PATHS else "other"


class RequestContext:
    """Pure ASGI middleware: ``x-request-id`` on every response, request counts, in-flight gauge."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        request_id = incoming[:128] if incoming else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode("latin-1")
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.inflight.dec()
            self.metrics.requests.labels(_route_label(scope["path"]), str(status)).inc()


def _render(request: Request, error: EmbedError) -> Response:
    openai_family = request.url.path.startswith("/v1/")
    body = openai_body(error) if openai_family else tei_body(error)
    return Response(
        orjson.dumps(body), status_code=error.status, media_type="application/json", headers=error.headers()
    )


async def _on_embed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmbedError)
    state: routes.State = request.app.state.embed
    reason = _REJECT_REASONS.get(exc.status)
    if reason and reason not in ("unauthorized",):
        state.metrics.rejected.labels(reason).inc()
    if exc.status >= 500:
        log.warning("request %s failed: %s", request.scope.get("state", {}).get("request_id"), exc.message)
    return _render(request, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _render(request, NotFound(f"no route {request.url.path}; see /openapi.json"))
    error = ValidationError(f"{request.method} is not allowed on {request.url.path}")
    response = _render(request, error)
    response.status_code = exc.status_code
    return response


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception("unexpected error in request %s", request_id)
    return _render(request, InferenceFailed(f"internal error (request id {request_id}); the server stays up"))


ROUTES = [
    Route("/embed", routes.embed, methods=["POST"]),
    Route("/", routes.embed, methods=["POST"]),
    Route("/v1/embeddings", routes.openai_embeddings, methods=["POST"]),
    Route("/tokenize", routes.tokenize, methods=["POST"]),
    Route("/info", routes.info, methods=["GET"]),
    Route("/health", routes.ready, methods=["GET"]),
    Route("/health/live", routes.live, methods=["GET"]),
    Route("/health/ready", routes.ready, methods=["GET"]),
    Route("/ready", routes.ready, methods=["GET"]),
    Route("/metrics", routes.metrics, methods=["GET"]),
    Route("/openapi.json", routes.openapi, methods=["GET"]),
]
_KNOWN_PATHS = {route.path for route in ROUTES}


def create_app(
    settings: Settings, loader: EngineLoader = Engine.load, metrics: Metrics | None = None
) -> Starlette:
    """Build the ASGI app; the model loads in the lifespan (use it under a lifespan-aware server)."""
    metrics = metrics or Metrics.create()
    state = routes.State(settings=settings, metrics=metrics, api_key=settings.resolved_api_key.encode())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started = time.perf_counter()
        try:
            state.engine = await asyncio.to_thread(loader, settings, metrics)
        except StartupError as exc:
            log.error("cannot serve %s: %s", settings.model, exc)
            raise
        state.openapi = schemas.openapi(
            state.engine.manifest.dims, settings.max_client_batch_size, __version__
        )
        state.ready = True
        log.info(
            "ready in %.1fs on http://%s:%d", time.perf_counter() - started, settings.host, settings.port
        )
        try:
            yield
        finally:
            state.draining = True
            state.ready = False
            await asyncio.to_thread(state.engine.close)
            log.info("stopped")

    handlers: dict[Any, Any] = {
        EmbedError: _on_embed_error,
        HTTPException: _on_http_error,
        Exception: _on_unexpected,
    }
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers=handlers)
    app.state.embed = state
    app.add_middleware(RequestContext, metrics=metrics)
    return app
