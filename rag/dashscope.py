"""Bailian (Alibaba Cloud Model Studio) as the embedder: ``text-embedding-v4`` (or -v3).

``RAG_EMBED_PROVIDER=dashscope`` embeds queries and client-side chunks through Bailian's
OpenAI-compatible ``POST <region>/compatible-mode/v1/embeddings`` (at most 10 texts of 8,192
tokens per request, ``dimensions`` from ``DASHSCOPE_EMBED_DIMS``); ``setup`` points the
Elasticsearch inference endpoint (service ``openai``) at the same URL, so the ingest pipeline
embeds with the same model. The key is ``DASHSCOPE_API_KEY`` and goes to the region's HTTPS
host only (``DASHSCOPE_BASE_URL`` may name a workspace domain; a URL that is not a DashScope
host, such as a local proxy or a test double, gets no key).

:class:`DashScopeEmbedder` answers like :class:`rag.embedder.Embedder` (``info``, ``embed``,
``count_tokens``) and reuses its retry policy; Bailian has no tokenize route, so token
counts are the word-and-punctuation estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import httpx

from rag.embedder import Embedder, ModelInfo, TokenCount, _estimate
from rag.errors import ConfigError, EmbeddingServerError
from rag.settings import Settings, is_dashscope

MAX_ROWS = 10
MAX_TOKENS = 8192


def embeddings_url(settings: Settings) -> str:
    """Bailian's embeddings route for ``dashscope_region``."""
    return f"{settings.dashscope_url}/embeddings"


class DashScopeEmbedder(Embedder):
    """Bailian's text-embedding model, behind the interface of our server's client."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        if settings.dashscope_key is None and is_dashscope(settings.dashscope_url):
            raise ConfigError(
                "RAG_EMBED_PROVIDER=dashscope needs DASHSCOPE_API_KEY (a key of DASHSCOPE_REGION="
                f"{settings.dashscope_region})"
            )
        # The parent's client, aimed at Bailian: its retries (429/5xx, Retry-After, resets) apply.
        # The key goes only to a DashScope host (a DASHSCOPE_BASE_URL elsewhere gets none).
        super().__init__(
            replace(settings, embed_url=settings.dashscope_url, embed_api_key=settings.dashscope_key),
            transport=transport,
        )
        self.model = settings.dashscope_embed_model
        self.dims = settings.dashscope_embed_dims
        self.region = settings.dashscope_region

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_id=f"dashscope/{self.model}",
            dims=self.dims,
            max_input_length=MAX_TOKENS,
            max_client_batch_size=MAX_ROWS,
        )

    def _failure(self, detail: str, status: int | None = None) -> EmbeddingServerError:
        hint = (
            " (check DASHSCOPE_API_KEY and DASHSCOPE_REGION: keys are bound to a region)"
            if status == 401
            else ""
        )
        return EmbeddingServerError(
            f"Bailian embeddings ({self.model}, DASHSCOPE_REGION={self.region}, {self.base_url}) "
            f"failed: {detail}{hint}",
            status=status,
        )

    def embed(self, texts: Sequence[str], bulk: bool = False) -> list[list[float]]:
        """Unit-length vectors, ``MAX_ROWS`` texts per request, in order (Bailian has no
        priority classes: ``bulk`` changes nothing)."""
        out: list[list[float]] = []
        for start in range(0, len(texts), MAX_ROWS):
            batch = list(texts[start : start + MAX_ROWS])
            payload = {
                "model": self.model,
                "input": batch,
                "dimensions": self.dims,
                "encoding_format": "float",
            }
            try:
                response = self._request("/embeddings", payload, "embed texts (POST /embeddings)")
            except EmbeddingServerError as exc:
                raise self._failure(str(exc).split(": ", 1)[-1], exc.status) from exc
            if response.status_code != 200:
                raise self._failure(f"{response.status_code} {response.text[:300]}", response.status_code)
            data = sorted(response.json().get("data", []), key=lambda d: int(d["index"]))
            if len(data) != len(batch):
                raise self._failure(f"{len(data)} vectors for {len(batch)} texts")
            for item in data:
                vector = [float(x) for x in item["embedding"]]
                norm = math.sqrt(math.fsum(x * x for x in vector)) or 1.0
                out.append([x / norm for x in vector])
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]:
        return [_estimate(t) for t in texts]


def embedder_for(settings: Settings) -> Embedder:
    """The embedder ``settings.embed_provider`` names."""
    if settings.embed_provider == "dashscope":
        return DashScopeEmbedder(settings)
    return Embedder(settings)
