"""Request parsing and validation (orjson) and response rendering.

Validation lives here once: handlers call ``parse_*`` and get a typed request or an
:class:`~server.errors.EmbedError` naming the field and what is allowed. Unknown fields
are ignored (clients such as ES and the openai SDK send extras like ``user``).
:mod:`server.openapi` describes exactly what these parsers accept: change both together.
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
DIRECTIONS = ("right", "left", "Right", "Left")


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
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's integer: 8.0 is 8
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limits.dims:
        raise ValidationError(
            f"`dimensions` must be an integer from 1 to {limits.dims}, got {value!r}", param="dimensions"
        )
    return value


def _options(data: dict[str, Any], limits: Limits) -> EmbedOptions:
    direction = data.get("truncation_direction", "right")
    if direction not in DIRECTIONS:
        raise ValidationError(
            '`truncation_direction` must be "right" or "left" (TEI also spells them "Right", "Left")',
            param="truncation_direction",
        )
    return EmbedOptions(
        truncate=_bool(data, "truncate", True),
        direction="left" if direction.lower() == "left" else "right",
        normalize=_bool(data, "normalize", True),
        dimensions=_dimensions(data, limits),
        prompt_name=_prompt_name(data),
    )


def _prompt_name(data: dict[str, Any]) -> str | None:
    """The named prompt to prefix (None: the model's ``default_prompt_name``, if it has one)."""
    prompt_name = data.get("prompt_name")
    if prompt_name is not None and not isinstance(prompt_name, str):
        raise ValidationError("`prompt_name` must be a string", param="prompt_name")
    return prompt_name


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
    encoding = data.get("encoding_format")
    if encoding is None:
        encoding = "float"
    elif encoding not in ("float", "base64"):
        raise ValidationError('`encoding_format` must be "float" or "base64"', param="encoding_format")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise ValidationError("`model` must be a string", param="model")
    # prompt_name is our addition to OpenAI's shape (the client's ``extra_body``), as on /embed.
    options = EmbedOptions(dimensions=_dimensions(data, limits), prompt_name=_prompt_name(data))
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
