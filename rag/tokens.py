"""The served model's tokenizer, seen from rag: where each token of a text starts.

:class:`ServerTokenizer` asks our server's ``POST /tokenize`` (TEI's shape: per input, a list
of ``{id, text, special, start, stop}`` with character offsets). The server truncates every
input at the model's max length and lists at most 16,384 tokens per request (413 above), so
texts are sent in pieces and packed into requests by an upper bound of their tokens
(``min(UTF-8 bytes + specials, max length)``: a token covers at least one byte); a 413 still
halves the request. A piece the server cut short is sent again from the start of the word
that holds its last token, so that every token of a long text is found. 429/502/503/504 and
transport failures are retried like the embedder does.

Without ``/tokenize`` (404/405: another server), :class:`EstimateTokenizer` takes over: one
token per word or punctuation mark, the documented fallback (WordPiece splits rare words
into several tokens, so it under-counts them).

Offsets make counting free afterwards: the tokens of any slice ``[a, b)`` of a text are the
starts that fall in it. WordPiece and SentencePiece tokenizers split at whitespace first, so
a slice cut at whitespace tokenizes as the same tokens.
"""

from __future__ import annotations

import logging
import re
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from rag.errors import EmbeddingServerError, embedding_errors
from rag.settings import Settings

# What one POST /tokenize may list, in tokens (the server's MAX_TOKENIZE_TOKENS).
REQUEST_TOKENS = 16_384
# Characters sent per piece, in units of the model's max length: enough to fill it.
_CHARS_PER_TOKEN = 8
_MAX_REQUEST_CHARS = 1_000_000
_RETRY = frozenset({429, 502, 503, 504})
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_WORDS = re.compile(r"\w+|[^\w\s]")
log = logging.getLogger("rag")


class Tokenizer(Protocol):
    """Token start offsets of texts, as the embedding model tokenizes them."""

    @property
    def specials(self) -> int:
        """Special tokens the model adds to every input ([CLS], [SEP])."""
        ...

    def starts(self, texts: Sequence[str]) -> list[list[int]]:
        """Per text, the sorted character offsets where its content tokens start (all of them)."""
        ...


@dataclass(frozen=True)
class TokenMap:
    """The content tokens of one text, by start offset: ``count(a, b)`` is free."""

    starts: Sequence[int]

    def count(self, a: int, b: int) -> int:
        """Content tokens that start in ``[a, b)``."""
        return bisect_left(self.starts, b) - bisect_left(self.starts, a)

    def offset(self, a: int, n: int) -> int:
        """Where the ``n``-th token at or after ``a`` starts (the end of the text's tokens if none)."""
        i = bisect_left(self.starts, a) + n
        return self.starts[i] if i < len(self.starts) else -1


class EstimateTokenizer:
    """The fallback without ``/tokenize``: words and punctuation marks, plus two specials."""

    specials = 2

    def starts(self, texts: Sequence[str]) -> list[list[int]]:
        return [[m.start() for m in _WORDS.finditer(t)] for t in texts]


@dataclass
class _Piece:
    text: int  # which input text
    start: int
    end: int  # the piece runs to the end of the text's range, sent in slices


class ServerTokenizer:
    """``POST /tokenize`` of our embedding server (module doc); falls back to the estimate."""

    def __init__(
        self,
        settings: Settings,
        max_length: int,
        max_batch: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.embed_url.rstrip("/")
        self.max_length = max(max_length, 8)
        self.max_batch = max(max_batch, 1)
        headers = {"content-type": "application/json"}
        if settings.embed_api_key:
            headers["authorization"] = f"Bearer {settings.embed_api_key}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=settings.embed_timeout, transport=transport
        )
        self._specials: int | None = None
        self._fallback: EstimateTokenizer | None = None

    def close(self) -> None:
        self._http.close()

    @property
    def specials(self) -> int:
        if self._fallback is not None:
            return self._fallback.specials
        return 2 if self._specials is None else self._specials

    @property
    def estimating(self) -> bool:
        """True once the server turned out to have no ``/tokenize``."""
        return self._fallback is not None

    def starts(self, texts: Sequence[str]) -> list[list[int]]:
        if self._fallback is not None:
            return self._fallback.starts(texts)
        out: list[list[int]] = [[] for _ in texts]
        pending = [_Piece(i, 0, len(t)) for i, t in enumerate(texts) if t.strip()]
        while pending:
            nxt: list[_Piece] = []
            for batch in self._requests(texts, pending):
                answered = self._tokenize(batch)
                if answered is None:
                    self._fallback = EstimateTokenizer()
                    log.warning(
                        "the embedding server at EMBED_URL=%s has no POST /tokenize: chunk sizes are "
                        "estimated (one token per word or mark)",
                        self.base_url,
                    )
                    return self._fallback.starts(texts)
                for (piece, sent), tokens in zip(batch, answered, strict=True):
                    more = self._take(texts[piece.text], piece, sent, tokens, out[piece.text])
                    if more is not None:
                        nxt.append(more)
            pending = nxt
        return out

    def _slice(self, text: str, piece: _Piece) -> str:
        return text[piece.start : min(piece.end, piece.start + self.max_length * _CHARS_PER_TOKEN)]

    def _requests(self, texts: Sequence[str], pending: list[_Piece]) -> list[list[tuple[_Piece, str]]]:
        """Pieces packed into requests under the server's token and batch limits."""
        batches: list[list[tuple[_Piece, str]]] = []
        batch: list[tuple[_Piece, str]] = []
        tokens = chars = 0
        for piece in pending:
            sent = self._slice(texts[piece.text], piece)
            bound = min(len(sent.encode()) + self.specials, self.max_length)
            if batch and (
                tokens + bound > REQUEST_TOKENS
                or len(batch) >= self.max_batch
                or chars + len(sent) > _MAX_REQUEST_CHARS
            ):
                batches.append(batch)
                batch, tokens, chars = [], 0, 0
            batch.append((piece, sent))
            tokens += bound
            chars += len(sent)
        if batch:
            batches.append(batch)
        return batches

    def _take(
        self, text: str, piece: _Piece, sent: str, tokens: list[dict[str, Any]], into: list[int]
    ) -> _Piece | None:
        """Record the tokens of ``sent``; the rest of the piece when the server did not reach it."""
        content = [t for t in tokens if not t.get("special") and t.get("start") is not None]
        if not content:
            rest = piece.start + len(sent)
            return _Piece(piece.text, rest, piece.end) if text[rest : piece.end].strip() else None
        stop = piece.start + int(content[-1]["stop"])
        if not text[stop : piece.end].strip():
            into.extend(piece.start + int(t["start"]) for t in content)
            return None
        # Cut short (truncated, or sent in a slice): resume at the word holding the last token.
        last = piece.start + int(content[-1]["start"])
        resume = last
        while resume > piece.start and not text[resume - 1].isspace():
            resume -= 1
        if resume <= piece.start + int(content[0]["start"]):
            resume = last if last > piece.start else stop
        into.extend(piece.start + int(t["start"]) for t in content if piece.start + int(t["start"]) < resume)
        return _Piece(piece.text, resume, piece.end)

    def _tokenize(self, batch: list[tuple[_Piece, str]]) -> list[list[dict[str, Any]]] | None:
        """Tokens of each text of ``batch`` (413: halved); None when there is no ``/tokenize``."""
        texts = [sent for _, sent in batch]
        response = self._post(texts)
        if response.status_code in (404, 405):
            return None
        if response.status_code == 413 and len(texts) > 1:
            half = len(batch) // 2
            first, second = self._tokenize(batch[:half]), self._tokenize(batch[half:])
            return None if first is None or second is None else first + second
        if response.status_code != 200:
            raise _failure(self.base_url, response)
        body = response.json()
        if not isinstance(body, list) or len(body) != len(texts):
            raise EmbeddingServerError(
                f"POST {self.base_url}/tokenize answered {str(body)[:120]} for {len(texts)} texts; "
                "is EMBED_URL our embedding server?"
            )
        entries = [e if isinstance(e, list) else [] for e in body]
        if self._specials is None and entries:
            self._specials = sum(1 for t in entries[0] if isinstance(t, dict) and t.get("special"))
        return [[t for t in e if isinstance(t, dict)] for e in entries]

    def _post(self, texts: list[str]) -> httpx.Response:
        attempt = 0
        with embedding_errors(self.base_url, "count tokens (POST /tokenize)"):
            while True:
                retry_after = ""
                try:
                    response = self._http.post("/tokenize", json={"inputs": texts})
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


def _failure(base_url: str, response: httpx.Response) -> EmbeddingServerError:
    try:
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else body
        detail = error.get("message") if isinstance(error, dict) else error
    except ValueError:
        detail = response.text[:200]
    hint = " (check EMBED_API_KEY)" if response.status_code == 401 else ""
    return EmbeddingServerError(
        f"the embedding server at EMBED_URL={base_url} failed to count tokens (POST /tokenize): "
        f"{response.status_code} {detail}{hint}",
        status=response.status_code,
    )
