"""The Starlette application: routes, lifespan, request-id and metrics middleware, errors.

``create_app(settings)`` loads and warms the model, then builds an app whose lifespan turns
readiness on and, on shutdown, finishes every admitted request before stopping the worker
threads.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import routes
from server.engine import Engine
from server.errors import (
    ClientGone,
    EmbedError,
    InferenceFailed,
    MethodNotAllowed,
    NotFound,
    Saturated,
    ValidationError,
    openai_body,
    tei_body,
)
from server.loader import load_engine
from server.metrics import Metrics
from server.openapi import openapi
from server.settings import Settings

log = logging.getLogger("server.app")

EngineFactory = Callable[[Settings, Metrics], Engine]


def _route_label(path: str) -> str:
    return path if path in _KNOWN_PATHS else "other"


# Probes and scrapes are never refused by the in-flight limit: an operator must be able to
# see a saturated server, and liveness must not fail because the server is busy.
_UNLIMITED_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/ready", "/metrics"})


class RequestContext:
    """Pure ASGI middleware around every request.

    - ``x-request-id`` on every response; request counts by route and status; in-flight gauge.
    - The in-flight limits: past ``limit_concurrency`` requests in progress (being read,
      queued or running), or past ``max_body_bytes_in_flight`` bytes of their bodies (each
      reserved at its Content-Length, else at the payload limit, until it is answered), a
      request gets a 503 + ``Retry-After`` in its API's envelope. Memory follows the bodies.
      Connections without a request never count (idle sockets are the protocol's concern).
    - While draining, every response carries ``Connection: close``, so keep-alive clients
      reconnect (to another replica) instead of sending into a closing socket.
    """

    def __init__(self, app: ASGIApp, state: routes.State) -> None:
        self.app = app
        self.state = state
        self.limited = 0
        self.body_bytes = 0

    def _body_reservation(self, method: str, headers: dict[bytes, bytes]) -> int:
        """Bytes of body this request may bring: its Content-Length, else the payload limit."""
        if method in ("GET", "HEAD"):
            return 0
        limit = self.state.settings.max_payload_bytes
        declared = headers.get(b"content-length", b"")
        return min(int(declared), limit) if declared.isdigit() else limit

    def _refusal(self, body: int) -> Saturated | None:
        settings = self.state.settings
        if self.limited >= settings.limit_concurrency:
            why = f"{self.limited} requests are in progress, the most this server takes"
        elif self.body_bytes and self.body_bytes + body > settings.max_body_bytes_in_flight:
            why = f"{self.body_bytes} bytes of request bodies are in progress, the most this server holds"
        else:
            return None
        return Saturated(f"{why}; retry shortly", retry_after=1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.state.metrics
        headers = dict(scope["headers"])
        incoming = headers.get(b"x-request-id", b"")
        request_id = incoming[:128] if incoming else uuid.uuid4().hex.encode()
        scope.setdefault("state", {})["request_id"] = request_id.decode("latin-1")
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [(b"x-request-id", request_id)]
                if self.state.draining:
                    extra.append((b"connection", b"close"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        path = scope["path"]
        limited = path not in _UNLIMITED_PATHS
        body = self._body_reservation(scope["method"], headers) if limited else 0
        metrics.inflight.inc()
        try:
            refusal = self._refusal(body) if limited else None
            if refusal is not None:
                count(metrics, refusal)
                await _response(path, refusal)(scope, receive, send_with_id)
                return
            self.limited += limited
            self.body_bytes += body
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self.limited -= limited
                self.body_bytes -= body
        finally:
            metrics.inflight.dec()
            metrics.requests.labels(_route_label(path), str(status)).inc()


def _response(path: str, error: EmbedError) -> Response:
    body = openai_body(error) if path.startswith("/v1/") else tei_body(error)
    return Response(
        orjson.dumps(body), status_code=error.status, media_type="application/json", headers=error.headers()
    )


def count(metrics: Metrics, error: EmbedError) -> None:
    """The one place a refusal is counted: ``embed_rejected_total{reason}``."""
    if error.reason is not None:
        metrics.rejected.labels(error.reason).inc()


async def _on_embed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmbedError)
    state: routes.State = request.app.state.embed
    count(state.metrics, exc)
    if isinstance(exc, ClientGone):
        log.debug("request %s: %s", request.scope.get("state", {}).get("request_id"), exc.message)
    elif exc.status >= 500:
        log.warning("request %s failed: %s", request.scope.get("state", {}).get("request_id"), exc.message)
    return _response(request.url.path, exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _response(request.url.path, NotFound(f"no route {request.url.path}; see /openapi.json"))
    if exc.status_code == 405:
        allow = ", ".join(sorted((exc.headers or {}).get("Allow", "").split(", ")))
        message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
        return _response(request.url.path, MethodNotAllowed(message, allow=allow))
    response = _response(request.url.path, ValidationError(str(exc.detail)))
    response.status_code = exc.status_code
    return response


async def _on_client_disconnect(request: Request, exc: Exception) -> Response:
    return await _on_embed_error(request, ClientGone("the client disconnected while sending its body"))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id")
    log.exception("unexpected error in request %s", request_id)
    error = InferenceFailed(f"internal error (request id {request_id}); the server stays up")
    return _response(request.url.path, error)


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
    settings: Settings, factory: EngineFactory = load_engine, metrics: Metrics | None = None
) -> Starlette:
    """Build the ASGI app around an engine built now by ``factory`` (blocking: it loads and
    warms the model; a model that cannot be served raises StartupError). The lifespan marks
    the app ready, and on shutdown finishes every admitted request and stops the threads.
    Production and tests build apps this one way; tests pass a factory with doubles."""
    metrics = metrics or Metrics.create()
    engine = factory(settings, metrics)
    api_key = settings.resolved_api_key.encode()
    state = routes.State(
        settings=settings,
        metrics=metrics,
        engine=engine,
        openapi=openapi(ROUTES, engine, secured=bool(api_key)),
        api_key=api_key,
        bulk_api_key=settings.resolved_bulk_api_key.encode(),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.ready = True
        log.info("ready on http://%s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            state.draining = True
            state.ready = False
            await asyncio.to_thread(engine.close)
            log.info("stopped")

    handlers: dict[Any, Any] = {
        EmbedError: _on_embed_error,
        HTTPException: _on_http_error,
        ClientDisconnect: _on_client_disconnect,
        Exception: _on_unexpected,
    }
    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers=handlers)
    app.state.embed = state
    app.add_middleware(RequestContext, state=state)
    return app
