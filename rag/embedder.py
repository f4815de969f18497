"""Our embedding server, seen from ``rag``: ``GET /info``, ``POST /embed``, ``POST /tokenize``.

HTTP only (``rag`` never imports ``server``), through :class:`embedclient.Client`: texts go
in batches of ``embed_batch_size``, capped by the server's ``max_client_batch_size``; 429,
502, 503, 504 and the transport failures of a restarting server (refused, reset, closed
mid-response, timed out) are retried ``max_retries`` times after ``Retry-After`` or a
backoff from ``retry_backoff``; a 413 halves the batch. Every failure is an
:class:`EmbeddingServerError` whose message names ``EMBED_URL``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from embedclient import ApiError, Client, Info, NotOurServer, Retry, TransportError
from rag.errors import EmbeddingServerError
from rag.settings import Settings

_WORDS = re.compile(r"\w+|[^\w\s]")

ModelInfo = Info
"""What ``GET /info`` says about the served model (``model_id``, ``dims``, ``max_input_length``,
``max_client_batch_size``)."""


# How the server learns a request's priority (``?priority=`` works too, for ES's endpoints).
PRIORITY_HEADER = "x-embed-priority"


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
    """Client of one embedding server; thread-safe (one :class:`embedclient.Client`)."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.base_url = settings.embed_url.rstrip("/")
        # The server serves interactive work before bulk work: queries say which they are, and
        # ingest (embedding and token counting) says it is bulk.
        self._client, self._bulk = (
            Client(
                self.base_url,
                api_key=settings.embed_api_key,
                timeout=settings.embed_timeout,
                retry=Retry(retries=settings.max_retries, backoff=settings.retry_backoff),
                transport=transport,
                headers={PRIORITY_HEADER: priority},
            )
            for priority in ("interactive", "bulk")
        )
        self._tokenize_missing = False

    def close(self) -> None:
        self._client.close()
        self._bulk.close()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Translate the client's errors raised while doing ``action`` (a verb phrase)."""
        where = f"the embedding server at EMBED_URL={self.base_url}"
        try:
            yield
        except ApiError as exc:
            hint = " (check EMBED_API_KEY)" if exc.status == 401 else ""
            raise EmbeddingServerError(
                f"{where} failed to {action}: {exc.status} {exc.message}{hint}", status=exc.status
            ) from exc
        except TransportError as exc:
            if exc.timeout:
                raise EmbeddingServerError(
                    f"{where} timed out while trying to {action}; "
                    "raise --embed-timeout or lower --embed-batch-size"
                ) from exc
            raise EmbeddingServerError(
                f"cannot reach {where} to {action}: {exc.__cause__ or exc}; "
                "start it with `python -m server --model DIR` or set EMBED_URL"
            ) from exc
        except NotOurServer as exc:
            raise EmbeddingServerError(
                f"{exc} (EMBED_URL): set EMBED_URL to where `python -m server` listens", status=exc.status
            ) from exc

    def _request(self, path: str, payload: Any | None, action: str) -> httpx.Response:
        """The response to GET (``payload`` None) or POST ``path``, after the client's retries."""
        with self._errors(action):
            return self._client.request("GET" if payload is None else "POST", path, payload)

    def info(self) -> ModelInfo:
        """The served model (cached after the first call)."""
        with self._errors("describe its model (GET /info)"):
            return self._client.info()

    def embed(self, texts: Sequence[str], bulk: bool = False) -> list[list[float]]:
        """One unit-length vector per text, in order; ``bulk`` for ingest, else interactive."""
        size = max(1, min(self.settings.embed_batch_size, self.info().max_client_batch_size))
        client = self._bulk if bulk else self._client
        with self._errors(f"embed {len(texts)} texts (POST /embed)"):
            return client.embed(texts, batch_size=size, truncate=True)

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]:
        """Token counts from ``POST /tokenize``, or a word-and-punctuation estimate without it."""
        if not texts or self._tokenize_missing:
            return [_estimate(t) for t in texts]
        size = max(1, self.info().max_client_batch_size)
        with self._errors("count tokens (POST /tokenize)"):
            try:
                return [_count(entry) for entry in self._bulk.tokenize(texts, batch_size=size)]
            except ApiError as exc:
                if exc.status not in (404, 405):
                    raise
        self._tokenize_missing = True
        return [_estimate(t) for t in texts]


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
