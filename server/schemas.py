"""Request parsing and validation (orjson), response rendering, and the OpenAPI document.

Validation lives here once: handlers call ``parse_*`` and get a typed request or an
:class:`~server.errors.EmbedError` naming the field and what is allowed. Unknown fields
are ignored (clients such as ES and the openai SDK send extras like ``user``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from server.engine import EmbedOptions
from server.errors import PayloadTooLarge, ValidationError

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Limits:
    """What the parsers check against: the served model and the request caps."""

    dims: int
    max_client_batch_size: int


@dataclass(frozen=True)
class EmbedRequest:
    """A validated embedding request of either API family."""

    texts: list[str]
    single: bool
    options: EmbedOptions
    seed_shape: bool = False
    model: str | None = None
    encoding_format: str = "float"


@dataclass(frozen=True)
class TokenizeRequest:
    texts: list[str]
    single: bool
    options: EmbedOptions
    add_special_tokens: bool = True


def _object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"the body is not valid JSON: {exc}; send a JSON object") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"the body must be a JSON object, not a {type(data).__name__}")
    return data


def _texts(
    value: Any, field: str, limits: Limits, *, allow_token_ids: bool = False
) -> tuple[list[str], bool]:
    if isinstance(value, str):
        texts, single = [value], True
    elif isinstance(value, list):
        texts, single = value, False
        if not texts:
            raise ValidationError(f"`{field}` is an empty list; send at least one string", param=field)
        if len(texts) > limits.max_client_batch_size:
            raise PayloadTooLarge(
                f"`{field}` has {len(texts)} items; the limit is {limits.max_client_batch_size} per request "
                "(split the request)",
                param=field,
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                hint = (
                    "; token-id input is not supported, send strings" if isinstance(text, (int, list)) else ""
                )
                raise ValidationError(
                    f"`{field}[{i}]` must be a string, not {_kind(text)}{hint}", param=field
                )
    else:
        raise ValidationError(
            f"`{field}` must be a string or a list of strings, not {_kind(value)}", param=field
        )
    for i, text in enumerate(texts):
        if not text:
            where = field if single else f"{field}[{i}]"
            raise ValidationError(f"`{where}` is an empty string; send non-empty text", param=field)
    return texts, single


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
        str: "a string",
    }.get(type(value), type(value).__name__)


def _bool(data: dict[str, Any], field: str, default: bool) -> bool:
    value = data.get(field, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(f"`{field}` must be true or false, not {_kind(value)}", param=field)
    return value


def _dimensions(data: dict[str, Any], limits: Limits) -> int | None:
    value = data.get("dimensions")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limits.dims:
        raise ValidationError(
            f"`dimensions` must be an integer from 1 to {limits.dims}, got {value!r}", param="dimensions"
        )
    return value


def _options(data: dict[str, Any], limits: Limits) -> EmbedOptions:
    direction = data.get("truncation_direction", "right")
    if not isinstance(direction, str) or direction.lower() not in ("right", "left"):
        raise ValidationError(
            '`truncation_direction` must be "right" or "left"', param="truncation_direction"
        )
    prompt_name = data.get("prompt_name")
    if prompt_name is not None and not isinstance(prompt_name, str):
        raise ValidationError("`prompt_name` must be a string", param="prompt_name")
    return EmbedOptions(
        truncate=_bool(data, "truncate", True),
        direction="left" if direction.lower() == "left" else "right",
        normalize=_bool(data, "normalize", True),
        dimensions=_dimensions(data, limits),
        prompt_name=prompt_name,
    )


def parse_embed(body: bytes, limits: Limits) -> EmbedRequest:
    """``POST /embed`` and ``POST /``: TEI's ``inputs`` or the seed's ``input``."""
    data = _object(body)
    if "inputs" in data and "input" in data:
        raise ValidationError("send either `inputs` (TEI) or `input`, not both", param="inputs")
    seed = "inputs" not in data and "input" in data
    field = "input" if seed else "inputs"
    if field not in data:
        raise ValidationError("`inputs` is required: a string or a list of strings", param="inputs")
    texts, single = _texts(data[field], field, limits)
    return EmbedRequest(texts=texts, single=single, options=_options(data, limits), seed_shape=seed)


def parse_openai(body: bytes, limits: Limits) -> EmbedRequest:
    """``POST /v1/embeddings``: OpenAI's request shape."""
    data = _object(body)
    if "input" not in data:
        raise ValidationError("`input` is required: a string or a list of strings", param="input")
    texts, single = _texts(data["input"], "input", limits)
    encoding = data.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ValidationError('`encoding_format` must be "float" or "base64"', param="encoding_format")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise ValidationError("`model` must be a string", param="model")
    options = EmbedOptions(dimensions=_dimensions(data, limits))
    return EmbedRequest(texts=texts, single=single, options=options, model=model, encoding_format=encoding)


def parse_tokenize(body: bytes, limits: Limits) -> TokenizeRequest:
    """``POST /tokenize``: TEI's shape (``inputs``, ``add_special_tokens``, ``prompt_name``)."""
    data = _object(body)
    if "inputs" not in data:
        raise ValidationError("`inputs` is required: a string or a list of strings", param="inputs")
    texts, single = _texts(data["inputs"], "inputs", limits)
    return TokenizeRequest(
        texts=texts,
        single=single,
        options=_options(data, limits),
        add_special_tokens=_bool(data, "add_special_tokens", True),
    )


def render_embed(request: EmbedRequest, vectors: F32) -> bytes:
    """TEI: ``[[...], ...]``; seed shape: ``{"embedding": [...]}`` or ``{"embeddings": [[...]]}``."""
    if request.seed_shape:
        payload: Any = {"embedding": vectors[0]} if request.single else {"embeddings": vectors}
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return orjson.dumps(vectors, option=orjson.OPT_SERIALIZE_NUMPY)


def render_openai(request: EmbedRequest, vectors: F32, tokens: int, model: str) -> bytes:
    """OpenAI's list object; base64 rows are little-endian float32 bytes."""
    if request.encoding_format == "base64":
        rows: list[Any] = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors]
    else:
        rows = list(vectors)
    data = [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)]
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


# ---- OpenAPI -----------------------------------------------------------------------------

_TEXTS = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ]
}
_TEI_ERROR = {
    "type": "object",
    "required": ["error", "error_type"],
    "properties": {"error": {"type": "string"}, "error_type": {"type": "string"}},
}
_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_VECTORS = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}


def _errors(schema: dict[str, Any], codes: tuple[int, ...]) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": schema}}} for c in codes
    }


def openapi(dims: int, max_batch: int, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json``."""
    options = {
        "truncate": {"type": "boolean", "default": True},
        "truncation_direction": {"type": "string", "enum": ["right", "left", "Right", "Left"]},
        "normalize": {"type": "boolean", "default": True},
        "dimensions": {"type": ["integer", "null"], "minimum": 1, "maximum": dims},
        "prompt_name": {"type": ["string", "null"]},
    }
    tei_body = {"type": "object", "properties": {"inputs": _TEXTS, "input": _TEXTS, **options}}
    embed_responses = {
        "200": {
            "description": "one vector per input, input order",
            "content": {"application/json": {"schema": {"oneOf": [_VECTORS, {"type": "object"}]}}},
        },
        **_errors(_TEI_ERROR, (401, 413, 422, 429, 500, 503)),
    }
    embed_op = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": tei_body}}},
        "responses": embed_responses,
    }
    health = {"get": {"responses": {"200": {"description": "ok"}, "503": {"description": "not ready"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "embedding server",
            "version": version,
            "description": f"TEI-compatible /embed and OpenAI-compatible /v1/embeddings; {dims}-dim "
            f"vectors, at most {max_batch} inputs per request.",
        },
        "paths": {
            "/embed": {"post": {"operationId": "embed", **embed_op}},
            "/": {"post": {"operationId": "embed_root", **embed_op}},
            "/v1/embeddings": {
                "post": {
                    "operationId": "openai_embeddings",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["input"],
                                    "properties": {
                                        "input": _TEXTS,
                                        "model": {"type": "string"},
                                        "encoding_format": {"type": "string", "enum": ["float", "base64"]},
                                        "dimensions": options["dimensions"],
                                        "user": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "OpenAI list object",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["object", "data", "model", "usage"],
                                    }
                                }
                            },
                        },
                        **_errors(_OPENAI_ERROR, (401, 413, 422, 429, 500, 503)),
                    },
                }
            },
            "/tokenize": {
                "post": {
                    "operationId": "tokenize",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["inputs"],
                                    "properties": {
                                        "inputs": _TEXTS,
                                        "add_special_tokens": {"type": "boolean"},
                                        **options,
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "tokens per input"},
                        **_errors(_TEI_ERROR, (401, 413, 422, 503)),
                    },
                }
            },
            "/info": {
                "get": {"operationId": "info", "responses": {"200": {"description": "model and limits"}}}
            },
            "/health": health,
            "/health/live": {"get": {"responses": {"200": {"description": "process is up"}}}},
            "/health/ready": health,
            "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format"}}}},
        },
    }
