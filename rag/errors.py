"""Every error ``rag`` raises, and the one place third-party errors become them.

    RagError                      exit code 1 unless stated
    ├── ConfigError               a setting or argument is wrong (exit 2)
    ├── InputError                a corpus file cannot be read or parsed (exit 2)
    ├── EmbeddingServerError      our embedding server is unreachable or refused a request
    ├── SearchBackendError        Elasticsearch is unreachable or refused a request
    │   ├── NotSetUpError         the index, pipeline or inference endpoint is missing
    │   └── SetupConflictError    something exists but differs from what `setup` would create
    ├── ChatError                 the chat completions API failed
    └── IngestIncompleteError     some items could not be indexed (their ids are listed)

``elasticsearch``, ``openai`` and ``httpx`` exceptions are translated here, in the context
managers below, and nowhere else: each message names the setting to check (ES_URL,
EMBED_URL, CHAT_BASE_URL) and what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import elastic_transport
import elasticsearch
import httpx


class RagError(Exception):
    """Base of every error of ``rag``; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(RagError):
    """A flag, environment variable or argument has a value that cannot work."""

    exit_code = 2


class InputError(RagError):
    """A corpus path is missing, unreadable or malformed."""

    exit_code = 2


class EmbeddingServerError(RagError):
    """The embedding server (EMBED_URL) failed; ``status`` is its HTTP status if it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SearchBackendError(RagError):
    """Elasticsearch (ES_URL) failed; ``status`` and ``error_type`` come from its error body."""

    def __init__(self, message: str, status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


class NotSetUpError(SearchBackendError):
    """The index, ingest pipeline or inference endpoint does not exist: run `setup`."""


class SetupConflictError(SearchBackendError):
    """An existing index, pipeline or endpoint differs from what `setup` wants to create."""


class ChatError(RagError):
    """The chat completions API (CHAT_BASE_URL) failed.

    ``retryable``: another attempt may succeed (429, 5xx, a timeout, a refused connection);
    ``retry_after``: the seconds the API asked to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class IngestIncompleteError(RagError):
    """Ingest finished but some items failed; ``failed`` maps item id to its last error."""

    def __init__(self, message: str, failed: dict[str, str]) -> None:
        super().__init__(message)
        self.failed = failed


def es_reason(body: Any) -> tuple[str | None, str]:
    """(error type, most useful reason) of an Elasticsearch error body."""
    if not isinstance(body, dict):
        return None, str(body)
    error = body.get("error")
    if isinstance(error, str):
        return None, error
    if not isinstance(error, dict):
        return None, str(body)
    kind = error.get("type")
    reason = str(error.get("reason") or kind or "unknown error")
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        reason = f"{reason}: {caused['reason']}"
    return (str(kind) if kind else None), reason


@contextmanager
def elasticsearch_errors(es_url: str, action: str) -> Iterator[None]:
    """Translate ``elasticsearch`` exceptions raised while doing ``action`` (a verb phrase)."""
    try:
        yield
    except elasticsearch.ApiError as exc:
        status = exc.meta.status
        kind, reason = es_reason(exc.body)
        hint = ""
        if kind == "media_type_header_exception":
            hint = (
                " (the cluster refused the client's REST compatibility headers: set ES_COMPAT=8 "
                "for an 8.x cluster, or leave ES_COMPAT=auto)"
            )
        elif status == 401:
            hint = " (check ES_API_KEY)"
        elif status == 403:
            hint = " (the API key lacks a privilege, or the cluster's license does not cover this feature)"
        message = f"Elasticsearch at ES_URL={es_url} failed to {action}: {status} {kind or ''} {reason}{hint}"
        raise SearchBackendError(" ".join(message.split()), status=status, error_type=kind) from exc
    except elastic_transport.ConnectionTimeout as exc:
        raise SearchBackendError(
            f"Elasticsearch at ES_URL={es_url} timed out while trying to {action}; "
            "raise --es-timeout or check the cluster's load"
        ) from exc
    except elastic_transport.TransportError as exc:
        raise SearchBackendError(
            f"cannot reach Elasticsearch at ES_URL={es_url} to {action}: {exc}; "
            "check that the cluster is up and ES_URL is right"
        ) from exc


@contextmanager
def embedding_errors(embed_url: str, action: str) -> Iterator[None]:
    """Translate ``httpx`` transport exceptions raised while calling the embedding server."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise EmbeddingServerError(
            f"the embedding server at EMBED_URL={embed_url} timed out while trying to {action}; "
            "raise --embed-timeout or lower --embed-batch-size"
        ) from exc
    except httpx.HTTPError as exc:
        raise EmbeddingServerError(
            f"cannot reach the embedding server at EMBED_URL={embed_url} to {action}: {exc}; "
            "start it with `python -m server --model DIR` or set EMBED_URL"
        ) from exc


@contextmanager
def chat_errors(base_url: str, model: str) -> Iterator[None]:
    """Translate ``openai`` exceptions raised while calling the chat completions API."""
    # Imported here: openai takes seconds to import and only `ask` and `serve` need it.
    import openai

    from rag.settings import is_dashscope

    where = f"the chat API at CHAT_BASE_URL={base_url} (model {model})"
    key = (
        "DASHSCOPE_API_KEY (keys are bound to DASHSCOPE_REGION)" if is_dashscope(base_url) else "CHAT_API_KEY"
    )
    try:
        yield
    except openai.AuthenticationError as exc:
        raise ChatError(f"{where} refused the API key: set {key}", 401) from exc
    except openai.NotFoundError as exc:
        raise ChatError(
            f"{where} does not know this model or path: check CHAT_MODEL and CHAT_BASE_URL", 404
        ) from exc
    except openai.RateLimitError as exc:
        raise ChatError(
            f"{where} is rate limiting us (429); retry later or raise the quota",
            429,
            retryable=True,
            retry_after=_retry_after(exc.response),
        ) from exc
    except openai.APIStatusError as exc:
        raise ChatError(
            f"{where} failed with {exc.status_code}: {exc.message}",
            exc.status_code,
            retryable=exc.status_code >= 500,
            retry_after=_retry_after(exc.response),
        ) from exc
    except openai.APITimeoutError as exc:
        raise ChatError(f"{where} timed out; raise --chat-timeout", retryable=True) from exc
    except openai.APIConnectionError as exc:
        raise ChatError(f"cannot reach {where}: {exc}; check CHAT_BASE_URL", retryable=True) from exc
    except openai.OpenAIError as exc:
        raise ChatError(f"{where} failed: {exc}") from exc


def _retry_after(response: Any) -> float | None:
    raw = str(response.headers.get("retry-after", ""))
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None
