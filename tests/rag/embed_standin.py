"""A fake of our embedding server for fast tests: the wire contract, deterministic vectors.

Vectors are a hashed bag of words (lowercased ``\\w+`` tokens minus stop words, each
hashed to a signed dimension), L2-normalised, so texts that share words are close and
retrieval is meaningful. Routes: ``POST /embed`` and ``/`` (TEI and seed shapes),
``POST /v1/embeddings`` (float and base64), ``POST /tokenize`` (TEI shape, with
``[CLS]``/``[SEP]`` and offsets, truncated at ``max_input_length`` like the real server),
``GET /info``, ``GET /health``. Errors use the contract's envelopes. Every request is
recorded; ``fail_next`` injects errors (429 with ``Retry-After``, 503, 413, ...).

``capacity`` (a :class:`Capacity`) makes the double an overloaded server without timing: it
serves ``rate`` requests per logical second, requests arrive ``overload`` times faster, and
the rest are refused the way our server refuses them (429 ``Overloaded`` and 503
``DeadlineExceeded``, both with ``Retry-After``). Time is a :class:`LogicalClock` shared with
the ES stand-in, whose retry delays and ``rate_limit`` waits advance it.
``?priority=`` and ``X-Embed-Priority`` (``bulk``, ``interactive``) are accepted like the
server accepts them; anything else is a 422.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TOKEN = re.compile(r"\w+|[^\w\s]")
WORD = re.compile(r"\w+")
STOP = frozenset(
    "a an and are as at be by do does for from has have how i in is it its of on or that the this to was "
    "what when where which who why will with you your".split()
)


def hashed_vector(text: str, dims: int) -> list[float]:
    """The stand-in model: signed hashed bag of words, unit length."""
    v = [0.0] * dims
    for word in WORD.findall(text.lower()):
        if word in STOP:
            continue
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        v[h % dims] += 1.0 if (h >> 40) & 1 else -1.0
    norm = sum(x * x for x in v) ** 0.5
    if norm == 0:
        v[0] = 1.0
        return v
    return [x / norm for x in v]


@dataclass
class Recorded:
    path: str
    body: Any
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    times: int
    path: str | None = None
    retry_after: int | None = None


class LogicalClock:
    """Seconds that pass only when someone sleeps or a request arrives: no real waiting."""

    def __init__(self) -> None:
        self.t = 0.0
        self.lock = threading.Lock()

    def now(self) -> float:
        with self.lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.t += max(seconds, 0.0)


@dataclass
class Capacity:
    """A server that sustains ``rate`` embedding requests per logical second, offered ``overload``
    times that: each arriving request moves ``clock`` on by ``1 / (rate x overload)`` seconds.

    A token bucket holding at most one request's worth: a request that finds a token is served,
    any other is refused with the next status of ``refusals`` in turn: by default 429
    ``Overloaded`` (a full queue) and 503 ``DeadlineExceeded`` (a deadline the queue would
    outlast), each with ``Retry-After``.
    """

    clock: LogicalClock
    rate: float = 10.0
    overload: float = 5.0
    refusals: tuple[int, ...] = (429, 503)
    tokens: float = 1.0
    last: float = 0.0
    served: int = 0
    refused: int = 0

    def admit(self) -> int:
        """200 if served, else the status the refusal gets."""
        self.clock.sleep(1.0 / (self.rate * self.overload))
        now = self.clock.now()
        self.tokens = min(1.0, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.served += 1
            return 200
        self.refused += 1
        return self.refusals[(self.refused - 1) % len(self.refusals)]


PRIORITIES = ("bulk", "interactive")


@dataclass
class EmbedStandin:
    dims: int = 64
    max_input_length: int = 128
    max_client_batch_size: int = 32
    api_key: str | None = None
    model_id: str = "hash-bow"
    capacity: Capacity | None = None
    requests: list[Recorded] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self, status: int, times: int = 1, path: str | None = None, retry_after: int | None = None
    ) -> None:
        """The next ``times`` requests (to ``path``, if given) are answered ``status``."""
        self.faults.append(Fault(status, times, path, retry_after))

    def embedded_batches(self, path: str = "/embed") -> list[list[str]]:
        """The text batches posted to ``path``, in order."""
        out = []
        for r in self.requests:
            if r.path == path and isinstance(r.body, dict):
                texts = r.body.get("inputs", r.body.get("input"))
                out.append([texts] if isinstance(texts, str) else list(texts))
        return out

    # -- helpers -----------------------------------------------------------------------

    def _fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path is None or fault.path == path:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _tei_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
        return JSONResponse({"error": message, "error_type": kind}, status_code=status, headers=headers)

    @staticmethod
    def _openai_error(status: int, message: str, kind: str, param: str | None = None) -> Response:
        body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
        return JSONResponse(body, status_code=status)

    def _texts(self, raw: Any) -> list[str] | str:
        if isinstance(raw, str):
            if not raw:
                return "an input text is empty"
            return [raw]
        if not isinstance(raw, list) or not raw:
            return "`inputs` must be a string or a non-empty list of strings"
        if not all(isinstance(t, str) and t for t in raw):
            return "every input must be a non-empty string"
        return list(raw)

    async def _begin(self, request: Request, openai_shape: bool) -> tuple[Any, Response | None]:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        self.requests.append(
            Recorded(request.url.path, body, dict(request.headers), dict(request.query_params))
        )
        fault = self._fault(request.url.path)
        if fault is not None:
            headers = {"retry-after": str(fault.retry_after)} if fault.retry_after is not None else {}
            message = f"injected fault {fault.status}"
            if openai_shape:
                return body, JSONResponse(
                    {"error": {"message": message, "type": "server_error", "param": None, "code": None}},
                    status_code=fault.status,
                    headers=headers,
                )
            return body, self._tei_error(fault.status, message, "Overloaded", headers)
        priority = request.query_params.get("priority") or request.headers.get("x-embed-priority")
        if priority is not None and priority not in PRIORITIES:
            message = f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}"
            if openai_shape:
                return body, self._openai_error(422, message, "invalid_request_error", "priority")
            return body, self._tei_error(422, message, "Validation")
        if self.capacity is not None and request.url.path != "/tokenize":
            with self.lock:
                status = self.capacity.admit()
            if status != 200:
                kind = "Overloaded" if status == 429 else "DeadlineExceeded"
                message = "the server is at capacity: retry after Retry-After seconds"
                if openai_shape:
                    return body, JSONResponse(
                        {"error": {"message": message, "type": kind, "param": None, "code": None}},
                        status_code=status,
                        headers={"retry-after": "1"},
                    )
                return body, self._tei_error(status, message, kind, {"retry-after": "1"})
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            if openai_shape:
                return body, self._openai_error(401, "missing or wrong API key", "authentication_error")
            return body, self._tei_error(401, "missing or wrong API key", "Unauthorized")
        if not isinstance(body, dict):
            message = "the body must be a JSON object"
            if openai_shape:
                return body, self._openai_error(422, message, "invalid_request_error")
            return body, self._tei_error(422, message, "Validation")
        return body, None

    def tokens(self, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
        ]
        for m in TOKEN.finditer(text):
            if len(out) >= self.max_input_length - 1:
                break
            word = m.group().lower()
            token_id = (
                1000
                + int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % 20000
            )
            out.append({"id": token_id, "text": word, "special": False, "start": m.start(), "stop": m.end()})
        out.append({"id": 102, "text": "[SEP]", "special": True, "start": None, "stop": None})
        return out

    # -- routes ------------------------------------------------------------------------

    async def embed(self, request: Request) -> Response:
        body, error = await self._begin(request, openai_shape=False)
        if error is not None:
            return error
        seed = "inputs" not in body and "input" in body
        texts = self._texts(body.get("input") if seed else body.get("inputs"))
        if isinstance(texts, str):
            return self._tei_error(422, texts, "Validation")
        if len(texts) > self.max_client_batch_size:
            return self._tei_error(
                413,
                f"batch size {len(texts)} > maximum allowed batch size {self.max_client_batch_size}",
                "Validation",
            )
        vectors = [hashed_vector(t, self.dims) for t in texts]
        if seed:
            single = isinstance(body["input"], str)
            return JSONResponse({"embedding": vectors[0]} if single else {"embeddings": vectors})
        return JSONResponse(vectors)

    async def openai(self, request: Request) -> Response:
        body, error = await self._begin(request, openai_shape=True)
        if error is not None:
            return error
        texts = self._texts(body.get("input"))
        if isinstance(texts, str):
            return self._openai_error(422, texts, "invalid_request_error", "input")
        if len(texts) > self.max_client_batch_size:
            return self._openai_error(413, "too many inputs", "invalid_request_error", "input")
        encoding = body.get("encoding_format", "float")
        data = []
        for i, text in enumerate(texts):
            vector = hashed_vector(text, self.dims)
            value: Any = vector
            if encoding == "base64":
                value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        used = sum(len(self.tokens(t)) for t in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", self.model_id),
                "usage": {"prompt_tokens": used, "total_tokens": used},
            }
        )

    async def tokenize(self, request: Request) -> Response:
        body, error = await self._begin(request, openai_shape=False)
        if error is not None:
            return error
        texts = self._texts(body.get("inputs"))
        if isinstance(texts, str):
            return self._tei_error(422, texts, "Validation")
        out = [self.tokens(t) for t in texts]
        return JSONResponse(out[0] if isinstance(body["inputs"], str) else out)

    async def info(self, request: Request) -> Response:
        return JSONResponse(
            {
                "model_id": self.model_id,
                "dims": self.dims,
                "max_input_length": self.max_input_length,
                "pooling": "mean",
                "variant": "fp32",
                "provider": "CPUExecutionProvider",
                "max_client_batch_size": self.max_client_batch_size,
                "max_batch_tokens": 8192,
            }
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/embed", self.embed, methods=["POST"]),
                Route("/", self.embed, methods=["POST"]),
                Route("/v1/embeddings", self.openai, methods=["POST"]),
                Route("/tokenize", self.tokenize, methods=["POST"]),
                Route("/info", self.info, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )
