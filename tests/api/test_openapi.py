"""/openapi.json is generated from the route table and says exactly what the parsers accept."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from server.app import ROUTES

KEY = "k3y-for-tests"


async def _spec(make_client, **settings: Any) -> tuple[Any, dict[str, Any]]:
    client, _ = await make_client(**settings)
    headers = {"authorization": f"Bearer {KEY}"} if "api_key" in settings else {}
    r = await client.get("/openapi.json", headers=headers)
    assert r.status_code == 200
    Draft202012Validator.check_schema(r.json())
    return client, r.json()


async def test_every_route_and_method_is_documented_once(make_client) -> None:
    _, spec = await _spec(make_client)
    routed = {(r.path, m.lower()) for r in ROUTES for m in r.methods or () if m != "HEAD"}
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert documented == routed
    ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert "components" not in spec and all(
        "security" not in op and "401" not in op["responses"]
        for ops in spec["paths"].values()
        for op in ops.values()
    )


async def test_errors_use_the_family_envelope_and_retry_after(make_client) -> None:
    _, spec = await _spec(make_client, api_key=KEY)
    for path, ops in spec["paths"].items():
        for op in ops.values():
            for status, response in op["responses"].items():
                if status in ("200", "503") and path in ("/health", "/health/ready", "/ready"):
                    continue
                if status == "200":
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert ("error_type" in schema["properties"]) == (not path.startswith("/v1/")), (path, status)
                assert ("Retry-After" in response.get("headers", {})) == (status in ("429", "503"))
    assert {"401", "413", "415", "422", "429", "503"} <= set(
        spec["paths"]["/v1/embeddings"]["post"]["responses"]
    )


BODIES: list[tuple[str, dict[str, Any] | list[Any] | str]] = [
    ("/embed", {"inputs": "x"}),
    ("/embed", {"input": ["x", "y"]}),
    ("/embed", {"inputs": "x", "input": "y"}),
    ("/embed", {}),
    ("/embed", {"inputs": "x", "truncation_direction": "Left"}),
    ("/embed", {"inputs": "x", "truncation_direction": "LEFT"}),
    ("/embed", {"inputs": "x", "truncation_direction": None}),
    ("/embed", {"inputs": "x", "truncate": None, "normalize": None, "dimensions": None, "prompt_name": None}),
    ("/embed", {"inputs": "x", "dimensions": 384}),
    ("/embed", {"inputs": "x", "dimensions": 385}),
    ("/embed", {"inputs": "x", "prompt_name": "query"}),
    ("/embed", {"inputs": "x", "extra": [1, {"a": None}]}),
    ("/embed", {"inputs": ["x"] * 257}),
    ("/embed", {"inputs": [""]}),
    ("/embed", ["x"]),
    ("/", {"inputs": ["x", "y"], "normalize": False}),
    ("/v1/embeddings", {"input": "x", "model": "m", "user": 5, "encoding_format": None}),
    ("/v1/embeddings", {"input": "x", "encoding_format": ""}),
    ("/v1/embeddings", {"input": "x", "encoding_format": False}),
    ("/v1/embeddings", {"input": "x", "encoding_format": "base64", "dimensions": 8}),
    ("/v1/embeddings", {"input": "x", "model": 5}),
    ("/v1/embeddings", {"inputs": "x"}),
    ("/v1/embeddings", {"input": [[1, 2]]}),
    ("/tokenize", {"inputs": ["x"], "add_special_tokens": None, "input": 5}),
    ("/tokenize", {"inputs": "x", "dimensions": 0}),
    ("/tokenize", {"input": "x"}),
]


@pytest.mark.parametrize(("path", "body"), BODIES, ids=[f"{p} {b}"[:60] for p, b in BODIES])
async def test_schema_valid_bodies_get_200_and_invalid_ones_a_documented_4xx(
    make_client, path: str, body: Any
) -> None:
    client, spec = await _spec(make_client)
    operation = spec["paths"][path]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    valid = Draft202012Validator(schema).is_valid(body)
    r = await client.post(path, json=body)
    if valid:
        assert r.status_code == 200, r.text
    else:
        assert 400 <= r.status_code < 500 and str(r.status_code) in operation["responses"], r.text
