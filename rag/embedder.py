"""Our embedding server, seen from ``rag``: ``GET /info``, ``POST /embed``, ``POST /tokenize``.

HTTP only (``rag`` never imports ``server``). Texts are sent in batches of
``embed_batch_size``, capped by the server's ``max_client_batch_size``. A 429, 502, 503 or
504 is retried after its ``Retry-After`` (or an exponential backoff), at most
``max_retries`` times, and so are the transport failures of a server that restarts or is
overloaded (connection refused or reset, closed mid-response, timeouts): every call here
is idempotent. A 413 halves the batch. Every failure is an :class:`EmbeddingServerError`
whose message names ``EMBED_URL``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from rag.errors import EmbeddingServerError, embedding_errors
from rag.settings import Settings

_RETRY = frozenset({429, 502, 503, 504})
# What a restarting or overloaded server looks like below HTTP; a bad URL or protocol is not retried.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_WORDS = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /info`` says about the served model."""

    model_id: str
    dims: int
    max_input_length: int
    max_client_batch_size: int


@dataclass(frozen=True)
class TokenCount:
    """Tokens of one text as the model sees it: ``total`` includes the ``special`` ones.

    The server truncates at ``max_input_length``, so ``total == max_input_length`` means
    "at least that many".
    """

    total: int
    special: int

    @property
    def content(self) -> int:
        return self.total - self.special


class Embedder:
    """Client of one embedding server; thread-safe (one ``httpx.Client``)."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.base_url = settings.embed_url.rstrip("/")
        headers = {"authorization": f"Bearer {settings.embed_api_key}"} if settings.embed_api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=settings.embed_timeout, transport=transport
        )
        self._info: ModelInfo | None = None
        self._tokenize_missing = False

    def close(self) -> None:
        self._http.close()

    def _request(self, path: str, payload: Any | None, action: str) -> httpx.Response:
        """The response to GET (``payload`` None) or POST ``path``, after retries (module doc)."""
        attempt = 0
        with embedding_errors(self.base_url, action):
            while True:
                retry_after = ""
                try:
                    if payload is None:
                        response = self._http.get(path)
                    else:
                        response = self._http.post(path, json=payload)
                except _TRANSIENT:
                    if attempt >= self.settings.max_retries:
                        raise
                else:
                    if response.status_code not in _RETRY or attempt >= self.settings.max_retries:
                        return response
                    retry_after = response.headers.get("retry-after", "")
                delay = self.settings.retry_backoff * (2**attempt)
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
                time.sleep(min(delay, 30.0))
                attempt += 1

    def _fail(self, response: httpx.Response, action: str) -> EmbeddingServerError:
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else body
            detail = error.get("message") if isinstance(error, dict) else error
        except ValueError:
            detail = response.text[:300]
        hint = " (check EMBED_API_KEY)" if response.status_code == 401 else ""
        return EmbeddingServerError(
            f"the embedding server at EMBED_URL={self.base_url} failed to {action}: "
            f"{response.status_code} {detail}{hint}",
            status=response.status_code,
        )

    def info(self) -> ModelInfo:
        """The served model (cached after the first call)."""
        if self._info is None:
            response = self._request("/info", None, "describe its model (GET /info)")
            if response.status_code != 200:
                raise self._fail(response, "describe its model (GET /info)")
            body = response.json()
            try:
                self._info = ModelInfo(
                    model_id=str(body.get("model_id", "unknown")),
                    dims=int(body["dims"]),
                    max_input_length=int(body.get("max_input_length", 512)),
                    max_client_batch_size=int(body.get("max_client_batch_size", 32)),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise EmbeddingServerError(
                    f"GET {self.base_url}/info did not say the model's `dims`: {str(body)[:200]}; "
                    "is EMBED_URL our embedding server?"
                ) from exc
        return self._info

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        size = max(1, min(self.settings.embed_batch_size, self.info().max_client_batch_size))
        out: list[list[float]] = []
        start = 0
        while start < len(texts):
            batch = list(texts[start : start + size])
            response = self._request(
                "/embed", {"inputs": batch, "truncate": True}, "embed texts (POST /embed)"
            )
            if response.status_code == 413 and len(batch) > 1:
                size = max(1, len(batch) // 2)
                continue
            if response.status_code != 200:
                raise self._fail(response, f"embed {len(batch)} texts (POST /embed)")
            vectors = response.json()
            if isinstance(vectors, dict):
                vectors = vectors.get("embeddings", [])
            if len(vectors) != len(batch):
                raise EmbeddingServerError(
                    f"the embedding server at EMBED_URL={self.base_url} returned {len(vectors)} vectors "
                    f"for {len(batch)} texts"
                )
            out.extend([float(x) for x in v] for v in vectors)
            start += len(batch)
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]:
        """Token counts from ``POST /tokenize``, or a word-and-punctuation estimate without it."""
        if not texts:
            return []
        if self._tokenize_missing:
            return [_estimate(t) for t in texts]
        size = max(1, self.info().max_client_batch_size)
        out: list[TokenCount] = []
        for start in range(0, len(texts), size):
            batch = list(texts[start : start + size])
            response = self._request("/tokenize", {"inputs": batch}, "count tokens (POST /tokenize)")
            if response.status_code in (404, 405) and not out:
                self._tokenize_missing = True
                return [_estimate(t) for t in texts]
            if response.status_code != 200:
                raise self._fail(response, "count tokens (POST /tokenize)")
            out.extend(_count(entry) for entry in response.json())
        return out


def _count(entry: Any) -> TokenCount:
    """Read one input's tokens in TEI's shape (a list of ``{id, special, ...}``) or as plain ids."""
    if isinstance(entry, dict):
        entry = entry.get("ids", entry.get("input_ids", entry.get("tokens", [])))
    tokens = list(entry)
    special = sum(1 for t in tokens if isinstance(t, dict) and t.get("special"))
    return TokenCount(total=len(tokens), special=special)


def _estimate(text: str) -> TokenCount:
    """A close over-estimate for WordPiece/SentencePiece models: words and marks, plus 2 specials."""
    return TokenCount(total=len(_WORDS.findall(text)) + 2, special=2)
