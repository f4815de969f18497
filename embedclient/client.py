"""Our embedding server's HTTP API from the caller's side: ``/info``, ``/embed``, ``/tokenize``.

:class:`Client` is synchronous (httpx) and thread-safe. Every caller embeds from plain
functions or worker threads (rag's ingest and chat endpoint, finetune's evaluation, the
bench's agreement check), so there is no asyncio twin; the bench's load generator keeps its
own lower-overhead asyncio client (``bench/client.py``).

Every call of this API is idempotent, so every call is retried (:class:`Retry`):

- on 429, 502, 503 and 504, after the ``Retry-After`` the server sent or the exponential
  backoff, whichever is longer;
- on the transport failures of a server that restarts or is overloaded: connection refused
  or reset, closed mid-response, timeouts (a bad URL or protocol is not retried);
- at most ``retries`` times, and no wait is started that would end more than ``budget``
  seconds after the first attempt.

Texts go in batches of ``batch_size`` (default: the server's ``max_client_batch_size`` from
``GET /info``); a 413 halves the batch, for that request and the ones after it. Bodies are
JSON sent as ``content-type: application/json``; ``api_key`` goes as ``Authorization:
Bearer``. Failures are the exceptions of :mod:`embedclient.errors`: both error envelopes
become an :class:`ApiError`, and an answer that is not our API (Elasticsearch, a web page,
a body of the wrong shape) is a :class:`NotOurServer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

import httpx
import orjson

from embedclient.errors import ApiError, NotOurServer, TransportError, retry_after

Api = Literal["tei", "openai"]
"""``tei``: ``{"inputs": [...]}`` answered ``[[...], ...]`` (``/embed``); ``openai``:
``{"input": [...], "model": ...}`` answered ``{"data": [{"index", "embedding"}]}``
(``/v1/embeddings``)."""

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# What a restarting or overloaded server looks like below HTTP.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_ROUTES: dict[Api, str] = {"tei": "/embed", "openai": "/v1/embeddings"}
T = TypeVar("T")


class Clock(Protocol):
    """Where the retries read the time and wait (tests pass a fake one)."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class Retry:
    """When a call is sent again (module doc)."""

    retries: int = 5
    """Attempts after the first one."""
    backoff: float = 0.5
    """Seconds before the first retry, doubled for each one after it."""
    max_wait: float = 30.0
    """Longest single wait; a longer ``Retry-After`` is cut to it."""
    budget: float = 300.0
    """Seconds after the first attempt by which the last wait must have ended."""

    def wait(self, retry: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``retry`` (from 0)."""
        delay = self.backoff * 2.0**retry
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.max_wait)


@dataclass(frozen=True)
class Info:
    """What ``GET /info`` says about the served model; ``details`` is the whole answer."""

    model_id: str
    dims: int
    max_input_length: int = 512
    max_client_batch_size: int = 32
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Client:
    """A client of one embedding server at ``base_url`` (module doc)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or Retry()
        self._clock = clock or SystemClock()
        sent = {"accept": "application/json", **(headers or {})}
        if api_key:
            sent["authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(base_url=self.base_url, headers=sent, timeout=timeout, transport=transport)
        self._info: Info | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def request(self, method: str, path: str, payload: Any = None) -> httpx.Response:
        """The answer to ``method path`` (``payload`` as its JSON body) after the retries, whatever
        its status; :class:`TransportError` when no answer came."""
        url = f"{self.base_url}{path}"
        content = None if payload is None else orjson.dumps(payload)
        headers = {} if content is None else {"content-type": "application/json"}
        start = self._clock.now()
        retry = 0
        while True:
            asked: float | None = None
            try:
                response = self._http.request(method, path, content=content, headers=headers)
            except _TRANSIENT as exc:
                failure: httpx.Response | httpx.HTTPError = exc
            except httpx.HTTPError as exc:
                raise TransportError(f"{method} {url} failed: {exc}", url, timeout=False) from exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure, asked = response, retry_after(response.headers)
            wait = self.retry.wait(retry, asked)
            if retry >= self.retry.retries or self._clock.now() + wait - start > self.retry.budget:
                if isinstance(failure, httpx.Response):
                    return failure
                raise TransportError(
                    f"{method} {url} failed after {retry + 1} attempts: {failure}",
                    url,
                    timeout=isinstance(failure, httpx.TimeoutException),
                ) from failure
            self._clock.sleep(wait)
            retry += 1

    def call(self, method: str, path: str, payload: Any = None) -> Any:
        """The JSON body of a 2xx answer to ``method path``; :class:`ApiError` for any other."""
        response = self.request(method, path, payload)
        url = f"{self.base_url}{path}"
        if response.headers.get("x-elastic-product") == "Elasticsearch":
            raise NotOurServer(
                f"{self.base_url} is Elasticsearch, not our embedding server", url, response.status_code
            )
        if not response.is_success:
            raise ApiError.from_response(response)
        try:
            return response.json()
        except ValueError:
            raise NotOurServer(
                f"{method} {url} answered {response.status_code} with a body that is not JSON: "
                f"{response.text[:120]!r}",
                url,
                response.status_code,
            ) from None

    def info(self) -> Info:
        """The served model, from ``GET /info`` (asked once, then cached)."""
        if self._info is None:
            body = self.call("GET", "/info")
            try:
                self._info = Info(
                    model_id=str(body.get("model_id", "unknown")),
                    dims=int(body["dims"]),
                    max_input_length=int(body.get("max_input_length", 512)),
                    max_client_batch_size=int(body.get("max_client_batch_size", 32)),
                    details=dict(body),
                )
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise NotOurServer(
                    f"GET {self.base_url}/info did not say the model's `dims`: {str(body)[:200]}",
                    f"{self.base_url}/info",
                    200,
                ) from exc
        return self._info

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        api: Api = "tei",
        path: str | None = None,
        model: str | None = None,
        normalize: bool | None = None,
        truncate: bool | None = None,
        dimensions: int | None = None,
        prompt_name: str | None = None,
    ) -> list[list[float]]:
        """One vector per text, in input order.

        ``api`` picks the route and shapes (:data:`Api`); ``path`` another server's route of that
        shape (infinity-emb's ``/embeddings``). The other options are sent when given.
        """
        route = path or _ROUTES[api]
        given = (("normalize", normalize), ("truncate", truncate), ("dimensions", dimensions))
        options: dict[str, Any] = {k: v for k, v in (*given, ("prompt_name", prompt_name)) if v is not None}
        if api == "openai":
            options["encoding_format"] = "float"
            if model is not None:
                options["model"] = model

        def send(batch: list[str]) -> list[list[float]]:
            payload = {"inputs": batch, **options} if api == "tei" else {"input": batch, **options}
            vectors = _vectors(self.call("POST", route, payload), api)
            if vectors is None or len(vectors) != len(batch):
                raise NotOurServer(
                    f"POST {self.base_url}{route} answered {_shape(vectors)} for {len(batch)} texts",
                    f"{self.base_url}{route}",
                    200,
                )
            return vectors

        return self._batched(texts, batch_size, send)

    def tokenize(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[Any]:
        """Per text, its tokens as ``POST /tokenize`` lists them (TEI: ``{id, text, special,
        start, stop}`` each); an :class:`ApiError` with status 404 or 405 from a server without it."""

        def send(batch: list[str]) -> list[Any]:
            body = self.call("POST", "/tokenize", {"inputs": batch})
            if not isinstance(body, list) or len(body) != len(batch):
                raise NotOurServer(
                    f"POST {self.base_url}/tokenize answered {str(body)[:120]} for {len(batch)} texts",
                    f"{self.base_url}/tokenize",
                    200,
                )
            return body

        return self._batched(texts, batch_size, send)

    def _batched(
        self, texts: Sequence[str], batch_size: int | None, send: Callable[[list[str]], list[T]]
    ) -> list[T]:
        """``send`` over batches of ``texts`` in order; a 413 halves the batch (module doc)."""
        if not texts:
            return []
        size = max(1, batch_size if batch_size is not None else self.info().max_client_batch_size)
        out: list[T] = []
        start = 0
        while start < len(texts):
            batch = list(texts[start : start + size])
            try:
                out.extend(send(batch))
            except ApiError as exc:
                if exc.status != 413 or len(batch) == 1:
                    raise
                size = (len(batch) + 1) // 2
                continue
            start += len(batch)
        return out


def _vectors(body: Any, api: Api) -> list[list[float]] | None:
    """The vectors of an embedding answer in ``api``'s shape, or None if it is not that shape."""
    if api == "openai":
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(d, dict) and "embedding" in d for d in data):
            return None
        body = [d["embedding"] for d in sorted(data, key=lambda d: int(d.get("index", 0)))]
    elif isinstance(body, dict):
        body = body.get("embeddings")
    if not isinstance(body, list) or not all(isinstance(v, list) for v in body):
        return None
    return [[float(x) for x in v] for v in body]


def _shape(vectors: list[list[float]] | None) -> str:
    return "something other than a list of vectors" if vectors is None else f"{len(vectors)} vectors"
