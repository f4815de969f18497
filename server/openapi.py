"""The OpenAPI 3.1 document served at ``/openapi.json``, generated from the route table.

Every route of ``app.ROUTES`` appears, under the operation of its handler (``Route.name``);
a handler missing from :func:`_operations` fails the startup. The request schemas say
exactly what the ``parse_*`` functions of :mod:`server.schemas` accept (a schema-valid
request gets 200, any other a documented 4xx), which is what the schema fuzzer relies on.
Error responses use the envelope of the route's API family (OpenAI under ``/v1/``, TEI
elsewhere), as the one error handler renders them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import Route

from server import __version__
from server.engine import Engine
from server.scheduler import Lane
from server.schemas import DIRECTIONS

JSON = "application/json"
Schema = dict[str, Any]

_TEI_ERROR: Schema = {
    "type": "object",
    "required": ["error", "error_type"],
    "additionalProperties": False,
    "properties": {
        "error": {"type": "string", "minLength": 1},
        "error_type": {
            "enum": ["Validation", "Unauthorized", "NotFound", "Overloaded", "Unhealthy", "Backend"]
        },
    },
}
_OPENAI_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "type": {
                    "enum": [
                        "invalid_request_error",
                        "authentication_error",
                        "rate_limit_error",
                        "server_error",
                    ]
                },
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_ERRORS = {
    401: "missing or wrong API key; send `Authorization: Bearer <key>`",
    408: "the body did not arrive in time",
    413: "too many inputs, a body over the size limit, or a text too long with `truncate: false`",
    415: "the body is not declared `application/json` (or `application/*+json`)",
    422: "the body is not JSON or breaks this schema; the message names the field",
    429: "the queue is full; retry after `Retry-After` seconds",
    500: "the model run failed for this request's batch; the server stays up",
    503: "loading, draining, too many requests in progress, or the deadline passed in the queue; "
    "retry after `Retry-After` seconds",
}
_PRIORITY: Schema = {"enum": [lane.label for lane in Lane]}
_EMBED_PARAMETERS: tuple[Schema, ...] = (
    {
        "name": "priority",
        "in": "query",
        "required": False,
        "description": "the request's class: `interactive` (latency-critical queries, run on their "
        "own session ahead of bulk work) or `bulk` (ingest); without it or the header, requests "
        "made with the bulk API key are bulk, and others of at most `interactive_max_tokens` "
        "tokens (see /info) interactive",
        "schema": _PRIORITY,
    },
    {
        "name": "X-Embed-Priority",
        "in": "header",
        "required": False,
        "description": "the class, as the `priority` query parameter (which wins when both are sent)",
        "schema": _PRIORITY,
    },
    {
        "name": "X-Request-Timeout",
        "in": "header",
        "required": False,
        "description": "seconds this request may wait before its texts start (503 after); work that "
        "has started is finished. The server takes any value in (0, 600]; under 1 s a request "
        "may be refused before it is even tokenized",
        "schema": {"type": "number", "minimum": 1, "maximum": 600},
    },
)
_STATUS: Schema = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}},
}


@dataclass(frozen=True)
class _Operation:
    """One handler's part of the document; ``errors`` are the statuses it answers with an envelope."""

    summary: str
    responses: dict[str, Any]
    errors: tuple[int, ...] = ()
    body: Schema | None = None
    open: bool = False
    parameters: tuple[Schema, ...] = ()


def openapi(routes: Sequence[Route], engine: Engine, secured: bool) -> dict[str, Any]:
    """The document for ``routes`` served by ``engine``; ``secured``: an API key is configured.

    HEAD (which Starlette adds to every GET route) is left out.
    """
    operations = _operations(engine)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op = operations[route.name]
        envelope = _OPENAI_ERROR if route.path.startswith("/v1/") else _TEI_ERROR
        errors = (*op.errors, 401) if secured and not op.open else op.errors
        responses = {**op.responses, **{str(code): _error(code, envelope) for code in sorted(errors)}}
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            operation: dict[str, Any] = {
                "operationId": _operation_id(method, route.path),
                "summary": op.summary,
                "responses": responses,
            }
            if op.parameters:
                operation["parameters"] = list(op.parameters)
            if op.body is not None:
                operation["requestBody"] = {"required": True, "content": {JSON: {"schema": op.body}}}
            if secured:
                operation["security"] = [] if op.open else [{"bearer": []}]
            paths.setdefault(route.path, {})[method.lower()] = operation
    settings = engine.settings
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "embedding server",
            "version": __version__,
            "description": f"TEI-compatible /embed and OpenAI-compatible /v1/embeddings for "
            f"{engine.model_name}: {engine.manifest.dims}-dim vectors, at most "
            f"{settings.max_client_batch_size} inputs and {settings.max_payload_bytes} bytes per request.",
        },
        "paths": paths,
    }
    if secured:
        document["components"] = {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}
    return document


def _operation_id(method: str, path: str) -> str:
    name = path.strip("/").replace("/", "_").replace(".", "_") or "root"
    return f"{method.lower()}_{name}"


def _error(code: int, envelope: Schema) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _ERRORS[code], "content": {JSON: {"schema": envelope}}}
    if code in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def _ok(description: str, schema: Schema, media_type: str = JSON) -> dict[str, Any]:
    return {"200": {"description": description, "content": {media_type: {"schema": schema}}}}


def _operations(engine: Engine) -> dict[str, _Operation]:
    """Each handler's operation, keyed by handler name (what ``Route.name`` defaults to)."""
    settings, manifest = engine.settings, engine.manifest
    text: Schema = {"type": "string", "minLength": 1}
    texts: Schema = {
        "oneOf": [
            text,
            {"type": "array", "items": text, "minItems": 1, "maxItems": settings.max_client_batch_size},
        ]
    }
    flag: Schema = {"type": ["boolean", "null"], "default": True}
    dimensions: Schema = {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": manifest.dims,
        "description": "keep the first N dimensions (normalisation comes after)",
    }
    prompt_name: Schema = {
        "enum": [*sorted(manifest.prompts), None],
        "description": "the model's named prompt to prefix; none given: "
        + (repr(manifest.default_prompt_name) if manifest.default_prompt_name else "no prompt"),
    }
    options: Schema = {
        "truncate": flag,
        "truncation_direction": {"enum": list(DIRECTIONS), "default": "right"},
        "normalize": flag,
        "dimensions": dimensions,
        "prompt_name": prompt_name,
    }
    tei_request: Schema = {
        "type": "object",
        "properties": {"inputs": texts, "input": texts, **options},
        "oneOf": [{"required": ["inputs"]}, {"required": ["input"]}],
    }
    openai_request: Schema = {
        "type": "object",
        "required": ["input"],
        "properties": {
            "input": texts,
            "model": {"enum": [engine.model_name, None]}
            if settings.strict_model
            else {"type": ["string", "null"]},
            "encoding_format": {"enum": ["float", "base64", None], "default": "float"},
            "dimensions": dimensions,
            "prompt_name": prompt_name,
            "user": {"description": "accepted and ignored"},
        },
    }
    tokenize_request: Schema = {
        "type": "object",
        "required": ["inputs"],
        "properties": {"inputs": texts, "add_special_tokens": flag, **options},
    }
    vector: Schema = {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": manifest.dims}
    vectors: Schema = {"type": "array", "items": vector, "minItems": 1}
    tei_ok: Schema = {
        "anyOf": [
            vectors,
            _closed({"embedding": vector}),
            _closed({"embeddings": vectors}),
        ]
    }
    openai_ok = _closed(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {
                        "object": {"const": "embedding"},
                        "index": {"type": "integer", "minimum": 0},
                        "embedding": {"anyOf": [vector, {"type": "string", "contentEncoding": "base64"}]},
                    }
                ),
            },
            "model": {"type": "string"},
            "usage": _closed(
                {
                    "prompt_tokens": {"type": "integer", "minimum": 0},
                    "total_tokens": {"type": "integer", "minimum": 0},
                }
            ),
        }
    )
    offset: Schema = {"type": ["integer", "null"], "minimum": 0}
    tokens: Schema = {
        "type": "array",
        "items": _closed(
            {
                "id": {"type": "integer", "minimum": 0},
                "text": {"type": "string"},
                "special": {"type": "boolean"},
                "start": offset,
                "stop": offset,
            }
        ),
    }
    info_ok: Schema = {
        "type": "object",
        "required": ["model_id", "revision", "source", "dims", "max_input_length", "pooling", "variant"],
        "properties": {
            "model_id": {"type": "string"},
            "revision": {"type": "string"},
            "source": {"type": "object", "not": {"required": ["path"]}},
            "dims": {"const": manifest.dims},
            "max_input_length": {"const": manifest.max_length},
            "pooling": {"type": "string"},
            "variant": {"type": "string"},
            "batch_invariant": {
                "type": ["boolean", "null"],
                "description": "a text's vector is the same alone and in any batch (null: not measured)",
            },
            "batch_max_abs_diff": {"type": ["number", "null"], "minimum": 0},
            "provider": {"type": "string"},
            "max_client_batch_size": {"const": settings.max_client_batch_size},
        },
    }
    embedding_errors = (408, 413, 415, 422, 429, 500, 503)
    not_ready = {
        "description": "loading or draining",
        "content": {JSON: {"schema": _STATUS}},
    }
    return {
        "embed": _Operation(
            "Embed texts (TEI); the seed's `input` instead of `inputs` answers {embedding(s): ...}",
            _ok("one vector per input, in input order", tei_ok),
            embedding_errors,
            tei_request,
            parameters=_EMBED_PARAMETERS,
        ),
        "openai_embeddings": _Operation(
            "Embed texts (OpenAI); base64 rows are little-endian float32",
            _ok("OpenAI list object", openai_ok),
            embedding_errors,
            openai_request,
            parameters=_EMBED_PARAMETERS,
        ),
        "tokenize": _Operation(
            "Tokens per input: id, text, special flag, character offsets",
            _ok(
                "tokens (a list of lists for a list of inputs)",
                {"anyOf": [tokens, {"type": "array", "items": tokens}]},
            ),
            (408, 413, 415, 422, 429, 503),
            tokenize_request,
        ),
        "info": _Operation(
            "Served model, precision, provider and limits", _ok("model and limits", info_ok), (503,)
        ),
        "live": _Operation("Liveness: the process is up", _ok("live", _STATUS), open=True),
        "ready": _Operation(
            "Readiness: loaded, warm and not draining",
            {**_ok("ready", _STATUS), "503": not_ready},
            open=True,
        ),
        "metrics": _Operation(
            "Prometheus metrics",
            _ok("Prometheus text format", {"type": "string"}, "text/plain"),
            open=settings.public_metrics,
        ),
        "openapi": _Operation("This document", _ok("OpenAPI 3.1", {"type": "object"}), (503,)),
    }


def _closed(properties: Schema) -> Schema:
    """An object with exactly these properties, all required."""
    return {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }
