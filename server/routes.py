"""Thin HTTP handlers: authorise, parse (schemas.py), call the engine, render.

Failures are raised as :mod:`server.errors` exceptions and rendered by the one handler in
app.py, in the envelope of the route's API family.
"""

from __future__ import annotations

import asyncio
import hmac
import math
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from server import schemas
from server.engine import Embedded, Engine
from server.errors import (
    BodyTimeout,
    Draining,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    ValidationError,
)
from server.metrics import Metrics
from server.scheduler import Lane
from server.settings import Settings

MAX_CLIENT_TIMEOUT = 600.0
JSON = "application/json"


@dataclass
class State:
    """What handlers share: the loaded engine, its settings and metrics, and the two lifecycle
    flags (``ready`` once the lifespan started; ``draining`` from SIGTERM on)."""

    settings: Settings
    metrics: Metrics
    engine: Engine
    openapi: dict[str, Any]
    api_key: bytes = b""
    bulk_api_key: bytes = b""
    ready: bool = False
    draining: bool = False


def _state(request: Request) -> State:
    state: State = request.app.state.embed
    return state


def _engine(state: State) -> Engine:
    if state.draining:
        raise Draining("the server is draining for shutdown; retry on another replica", retry_after=1)
    if not state.ready:
        raise Unavailable("the server is starting; retry when /health/ready answers 200", retry_after=1)
    return state.engine


def authorize(request: Request, state: State) -> Lane | None:
    """Constant-time check of ``Authorization: Bearer KEY`` when a key is configured; returns
    the class the key stands for (the bulk key's bulk), None for the main key or no auth."""
    if not state.api_key:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    given = token.strip().encode() if scheme.lower() == "bearer" else b""
    main = hmac.compare_digest(given, state.api_key)
    bulk = bool(state.bulk_api_key) and hmac.compare_digest(given, state.bulk_api_key)
    if not (main or bulk):
        raise Unauthorized("missing or wrong API key; send `Authorization: Bearer <key>`")
    return Lane.BULK if bulk else None


def is_json(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, parameters (``charset``) allowed."""
    mime = content_type.partition(";")[0].strip().lower()
    return mime == JSON or (mime.startswith("application/") and mime.endswith("+json"))


async def read_body(request: Request, settings: Settings) -> bytes:
    """The JSON request body: 415 unless declared JSON, 413 as soon as it exceeds
    ``max_payload_bytes``, 408 when it takes longer than ``body_timeout`` to arrive.

    A missing Content-Type is refused too: a browser sends ``text/plain``, form types or none
    at all on a cross-origin request without a CORS preflight, and must not get embeddings.
    """
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise UnsupportedMediaType(
            f"Content-Type {content_type or '(none)'} is not accepted; send the body as {JSON}"
        )
    limit = settings.max_payload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body has {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(settings.body_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(
            f"the body did not arrive within {settings.body_timeout:.0f}s; send it at once"
        ) from None
    return b"".join(chunks)


def deadline(request: Request, settings: Settings) -> float:
    """Seconds this request may wait: the setting, or the client's ``x-request-timeout``."""
    raw = request.headers.get("x-request-timeout")
    if raw is None:
        return settings.request_timeout
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > MAX_CLIENT_TIMEOUT:
        raise ValidationError(f"x-request-timeout must be seconds between 0 and {MAX_CLIENT_TIMEOUT:.0f}")
    return value


PRIORITIES = {lane.label: lane for lane in Lane}
PRIORITY_HEADER = "x-embed-priority"


def priority(request: Request, key_default: Lane | None = None) -> Lane | None:
    """The class the caller states: ``?priority=`` in the URL (where Elasticsearch's endpoint
    ``url`` can carry it), else the ``X-Embed-Priority`` header, else its key's class; None
    leaves it to size."""
    raw = request.query_params.get("priority")
    if raw is None:
        raw = request.headers.get(PRIORITY_HEADER)
    if raw is None:
        return key_default
    lane = PRIORITIES.get(raw)
    if lane is None:
        raise ValidationError(
            f"priority must be one of {', '.join(PRIORITIES)}, got {raw[:40]!r}", param="priority"
        )
    return lane


async def disconnected(request: Request) -> None:
    """Resolves when the client goes away (the ASGI server sends ``http.disconnect``)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _embed(request: Request, parse: Any) -> tuple[State, Engine, schemas.EmbedRequest, Embedded]:
    state = _state(request)
    key_default = authorize(request, state)
    engine = _engine(state)
    lane = priority(request, key_default)
    body = await read_body(request, state.settings)
    parsed: schemas.EmbedRequest = parse(body, _limits(engine))
    if state.settings.strict_model and parsed.model not in (None, engine.model_name):
        raise ValidationError(
            f"model {parsed.model!r} is not served here; use {engine.model_name!r}", param="model"
        )
    result = await engine.embed(
        parsed.texts,
        parsed.options,
        timeout=deadline(request, state.settings),
        disconnected=lambda: disconnected(request),
        lane=lane,
    )
    return state, engine, parsed, result


def _limits(engine: Engine) -> schemas.Limits:
    return schemas.Limits(
        dims=engine.manifest.dims, max_client_batch_size=engine.settings.max_client_batch_size
    )


def _headers(engine: Engine, result: Embedded) -> dict[str, str]:
    return {**result.timings.headers(), "x-model-id": engine.model_name}


async def embed(request: Request) -> Response:
    """``POST /embed`` and ``POST /`` (TEI; ES's ``hugging_face`` service)."""
    _, engine, parsed, result = await _embed(request, schemas.parse_embed)
    return Response(
        schemas.render_embed(parsed, result.vectors), media_type=JSON, headers=_headers(engine, result)
    )


async def openai_embeddings(request: Request) -> Response:
    """``POST /v1/embeddings`` (OpenAI; ES's ``openai`` service)."""
    _, engine, parsed, result = await _embed(request, schemas.parse_openai)
    body = schemas.render_openai(parsed, result.vectors, result.tokens, parsed.model or engine.model_name)
    return Response(body, media_type=JSON, headers=_headers(engine, result))


async def tokenize(request: Request) -> Response:
    """``POST /tokenize``: tokens per input with ids, text, special flag and char offsets."""
    state = _state(request)
    authorize(request, state)
    engine = _engine(state)
    parsed = schemas.parse_tokenize(await read_body(request, state.settings), _limits(engine))
    tokens = await engine.tokens(parsed.texts, parsed.options, add_special_tokens=parsed.add_special_tokens)
    return Response(orjson.dumps(tokens[0] if parsed.single else tokens), media_type=JSON)


async def info(request: Request) -> Response:
    state = _state(request)
    authorize(request, state)
    return Response(orjson.dumps(state.engine.info()), media_type=JSON)


async def live(request: Request) -> Response:
    return JSONResponse({"status": "live"})


def _readiness(state: State) -> tuple[bool, str]:
    if state.draining:
        return False, "draining"
    if not state.ready:
        return False, "starting"
    return True, "ready"


async def ready(request: Request) -> Response:
    """200 when loaded, warm and not draining. A full queue does not make a replica unready:
    every replica would leave the Service at once under a burst, and callers would get
    connection refusals instead of 429 + Retry-After (saturation is for the HPA and 429s)."""
    ok, why = _readiness(_state(request))
    return JSONResponse({"status": why}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    state = _state(request)
    if not state.settings.public_metrics:
        authorize(request, state)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    state = _state(request)
    authorize(request, state)
    return Response(orjson.dumps(state.openapi), media_type=JSON)
