"""Before a command starts: is each service up, and is it the service it should be?

Each check makes one quick request (``GET /info`` of the embedding server, ``GET /`` of
Elasticsearch) with a timeout of at most :data:`PROBE_TIMEOUT` seconds and no retries of its
own. A service that is down (refused, reset, timed out, 429/502/503/504) gets one line on the
spot, "... retrying", then the usual retries (``max_retries``, ``retry_backoff`` doubled per
attempt) and, if it never comes up, one clear error. A service that answers but is not the
right one (Elasticsearch at ``EMBED_URL``, something other than Elasticsearch at ``ES_URL``,
an ``/info`` without the model's ``dims``) is an error at once, saying which setting to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

import elasticsearch
import httpx

from rag.errors import EmbeddingServerError, RagError, SearchBackendError
from rag.settings import Settings
from rag.store import RETRY_STATUSES, connect

PROBE_TIMEOUT = 5.0
T = TypeVar("T")
Notify = Callable[[str], None]


class _Down(Exception):
    """The service is not answering (yet): worth retrying."""

    def __init__(self, error: RagError) -> None:
        super().__init__(str(error))
        self.error = error


def _retrying(check: Callable[[], T], settings: Settings, notify: Notify) -> T:
    attempt = 0
    while True:
        try:
            return check()
        except _Down as down:
            if attempt >= settings.max_retries:
                raise down.error from down
            if attempt == 0:
                waits = [min(settings.retry_backoff * 2**n, 30.0) for n in range(settings.max_retries)]
                notify(f"{down.error}; retrying ({settings.max_retries} times over {sum(waits):.0f} s)...")
            time.sleep(min(settings.retry_backoff * 2**attempt, 30.0))
            attempt += 1


def _reason(exc: BaseException) -> str:
    """A few words for a transport failure: connection refused, unknown host, timed out, ..."""
    text = " ".join(str(e) for e in _chain(exc)).lower()
    for needle, words in (
        ("refused", "connection refused"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("getaddrinfo", "unknown host"),
        ("certificate verify failed", "its TLS certificate is not trusted"),
        ("timed out", "timed out"),
        ("reset", "connection reset"),
    ):
        if needle in text:
            return words
    return type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 8:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def embedding_server(
    settings: Settings, notify: Notify, transport: httpx.BaseTransport | None = None
) -> None:
    """Check that ``EMBED_URL`` is our embedding server, up and serving (module doc)."""
    url = settings.embed_url.rstrip("/")
    timeout = min(settings.embed_timeout, PROBE_TIMEOUT)
    headers = {"authorization": f"Bearer {settings.embed_api_key}"} if settings.embed_api_key else {}
    start_it = "start it with `python -m server --model DIR`, or set EMBED_URL"

    def once(client: httpx.Client) -> None:
        try:
            response = client.get(f"{url}/info")
        except httpx.TimeoutException as exc:
            raise _Down(
                EmbeddingServerError(
                    f"the embedding server at EMBED_URL={url} did not answer within {timeout:g} s"
                )
            ) from exc
        except httpx.HTTPError as exc:
            raise _Down(
                EmbeddingServerError(
                    f"cannot reach the embedding server at EMBED_URL={url} ({_reason(exc)}); {start_it}"
                )
            ) from exc
        if response.headers.get("x-elastic-product") == "Elasticsearch":
            raise EmbeddingServerError(
                f"EMBED_URL={url} is Elasticsearch, not our embedding server: set EMBED_URL to where "
                "`python -m server` listens (Elasticsearch's address goes in ES_URL)",
                status=response.status_code,
            )
        if response.status_code in RETRY_STATUSES:
            raise _Down(
                EmbeddingServerError(
                    f"the embedding server at EMBED_URL={url} is not ready ({response.status_code})",
                    status=response.status_code,
                )
            )
        if response.status_code == 401:
            raise EmbeddingServerError(
                f"the embedding server at EMBED_URL={url} refused the API key: set EMBED_API_KEY", status=401
            )
        body = _json(response)
        if response.status_code != 200 or not (isinstance(body, dict) and isinstance(body.get("dims"), int)):
            said = " ".join(response.text.split())[:120]
            raise EmbeddingServerError(
                f"EMBED_URL={url} is not our embedding server: GET /info answered {response.status_code} "
                f"{said!r}, not the model's `dims`; set EMBED_URL to where `python -m server` listens",
                status=response.status_code,
            )

    with httpx.Client(timeout=timeout, headers=headers, transport=transport) as client:
        _retrying(lambda: once(client), settings, notify)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def elasticsearch_cluster(settings: Settings, notify: Notify) -> None:
    """Check that ``ES_URL`` is an Elasticsearch cluster that answers (module doc)."""
    quick = replace(settings, max_retries=0, es_timeout=min(settings.es_timeout, PROBE_TIMEOUT))
    url = settings.es_url

    def once() -> None:
        try:
            connect(quick).close()
        except SearchBackendError as exc:
            cause = exc.__cause__
            if isinstance(cause, elasticsearch.ApiError) and "x-elastic-product" not in cause.meta.headers:
                raise SearchBackendError(
                    f"ES_URL={url} does not answer like Elasticsearch (GET / gave {cause.meta.status} "
                    "without the X-Elastic-Product header): set ES_URL to the cluster (is it the embedding "
                    "server?)",
                    status=cause.meta.status,
                ) from exc
            if exc.status is None:
                raise _Down(
                    SearchBackendError(
                        f"cannot reach Elasticsearch at ES_URL={url} ({_reason(exc)}); check that the "
                        "cluster is up and ES_URL is right"
                    )
                ) from exc
            if exc.status in RETRY_STATUSES:
                raise _Down(exc) from exc
            raise

    _retrying(once, settings, notify)
