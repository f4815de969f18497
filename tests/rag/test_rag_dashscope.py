"""Bailian's text-embedding model as the embedder: batches, dimensions, keys, errors."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from rag.dashscope import MAX_ROWS, DashScopeEmbedder, embeddings_url
from rag.errors import EmbeddingServerError
from rag.settings import Settings


def _bailian(seen: list[httpx.Request], status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "Invalid API-key provided."}})
        body = json.loads(request.content)
        data = [
            {"index": i, "embedding": [3.0, 4.0] + [0.0] * (body["dimensions"] - 2)}
            for i in range(len(body["input"]))
        ]
        return httpx.Response(
            200, json={"object": "list", "data": list(reversed(data)), "model": body["model"]}
        )

    return httpx.MockTransport(handle)


def test_embeds_in_batches_of_ten_with_the_configured_dims() -> None:
    seen: list[httpx.Request] = []
    settings = Settings(
        embed_provider="dashscope",
        dashscope_region="ap-southeast-1",
        dashscope_api_key="sk-intl",
        dashscope_embed_dims=256,
        retry_backoff=0.0,
    )
    embedder = DashScopeEmbedder(settings, transport=_bailian(seen))
    vectors = embedder.embed([f"text {i}" for i in range(23)])
    embedder.close()
    assert [len(json.loads(r.content)["input"]) for r in seen] == [MAX_ROWS, MAX_ROWS, 3]
    first = json.loads(seen[0].content)
    assert first == {
        "model": "text-embedding-v4",
        "input": [f"text {i}" for i in range(10)],
        "dimensions": 256,
        "encoding_format": "float",
    }
    assert (
        str(seen[0].url)
        == embeddings_url(settings)
        == "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/embeddings"
    )
    assert seen[0].headers["authorization"] == "Bearer sk-intl"
    assert len(vectors) == 23 and len(vectors[0]) == 256
    assert math.isclose(vectors[0][0], 0.6) and math.isclose(math.fsum(x * x for x in vectors[0]), 1.0)
    info = embedder.info()
    assert (info.model_id, info.dims, info.max_client_batch_size) == ("dashscope/text-embedding-v4", 256, 10)


def test_the_key_stays_home_and_errors_name_the_region() -> None:
    seen: list[httpx.Request] = []
    proxy = Settings(
        embed_provider="dashscope", dashscope_base_url="http://127.0.0.1:9/v1", dashscope_api_key="sk-b"
    )
    embedder = DashScopeEmbedder(proxy, transport=_bailian(seen))
    embedder.embed(["a"])
    embedder.close()
    assert "authorization" not in seen[0].headers
    refused = DashScopeEmbedder(
        Settings(embed_provider="dashscope", dashscope_api_key="sk-wrong-region", max_retries=0),
        transport=_bailian(seen, status=401),
    )
    with pytest.raises(
        EmbeddingServerError, match=r"DASHSCOPE_REGION=cn-beijing.*401.*keys are bound to a region"
    ):
        refused.embed(["a"])
    refused.close()
