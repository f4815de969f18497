"""embedclient.Client against scripted stand-ins (httpx MockTransport) and a fake clock.

Error bodies and ``Retry-After`` values are the server's own (``server.errors``), so the
client parses what the server really sends. No test waits: the fake clock records the waits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from embedclient import ApiError, Client, NotOurServer, Retry, TransportError
from server.errors import Overloaded, PayloadTooLarge, Saturated, ValidationError, openai_body, tei_body

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
INFO = {"model_id": "m", "dims": 2, "max_input_length": 128, "max_client_batch_size": 3, "variant": "fp32"}


@dataclass
class FakeClock:
    """Monotonic time that moves only when the client waits; ``waits`` lists every wait."""

    t: float = 100.0
    waits: list[float] = field(default_factory=list)

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


@dataclass
class Standin:
    """Answers each request with the next scripted reply (then ``default``), recording it."""

    script: list[Reply] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def default(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            return httpx.Response(200, json=INFO)
        body = json.loads(request.content)
        texts = body.get("inputs", body.get("input"))
        if request.url.path == "/tokenize":
            return httpx.Response(200, json=[[{"id": 1, "special": True}] for _ in texts])
        return httpx.Response(200, json=[[float(len(t)), 0.0] for t in texts])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.script.pop(0) if self.script else self.default
        if isinstance(reply, Exception):
            raise reply
        return reply(request) if callable(reply) else reply

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def batches(self) -> list[int]:
        return [len(json.loads(r.content)["inputs"]) for r in self.requests if r.url.path == "/embed"]


@pytest.fixture
def make_client() -> Iterator[Callable[..., tuple[Client, Standin, FakeClock]]]:
    made: list[Client] = []

    def make(*script: Reply, **options: Any) -> tuple[Client, Standin, FakeClock]:
        standin, clock = Standin(list(script)), FakeClock()
        client = Client("http://embed.test/", transport=httpx.MockTransport(standin), clock=clock, **options)
        made.append(client)
        return client, standin, clock

    yield make
    for client in made:
        client.close()


def error(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_retry_after_is_a_floor_over_the_doubling_backoff(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    busy = Overloaded("the queue is full; retry later", retry_after=2.6)
    client, standin, clock = make_client(
        error(429, tei_body(busy), busy.headers()),  # Retry-After: 3
        error(503, tei_body(Saturated("too many requests"))),  # no Retry-After: the backoff
        error(502, "bad gateway", {"retry-after": "0"}),
        error(504, "gateway timeout"),
        retry=Retry(backoff=0.5),
    )
    assert client.embed(["a", "bb"], batch_size=8) == [[1.0, 0.0], [2.0, 0.0]]
    assert clock.waits == [3.0, 1.0, 2.0, 4.0]
    assert standin.batches() == [2, 2, 2, 2, 2]


def test_waits_are_capped_and_the_budget_bounds_the_whole_call(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    overloaded = error(503, tei_body(Saturated("busy")), {"retry-after": "60"})
    client, standin, clock = make_client(
        *[overloaded] * 50, retry=Retry(retries=40, backoff=1.0, max_wait=8.0, budget=30.0)
    )
    with pytest.raises(ApiError) as caught:
        client.embed(["x"], batch_size=1)
    assert (caught.value.status, caught.value.retry_after) == (503, 60.0)
    assert clock.waits == [8.0, 8.0, 8.0]  # a fourth wait would end 32 s after the first attempt
    assert len(standin.requests) == 4

    client, standin, clock = make_client(*[httpx.ConnectError("refused")] * 50, retry=Retry(retries=3))
    with pytest.raises(TransportError):
        client.info()
    assert (clock.waits, len(standin.requests)) == ([0.5, 1.0, 2.0], 4)


def test_connection_failures_are_retried_and_then_named(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    failures = [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.ReadTimeout("timed out"),
    ]
    client, standin, _ = make_client(*failures, retry=Retry(retries=4))
    assert client.info().dims == 2
    assert standin.paths() == ["/info"] * 5

    client, standin, _ = make_client(*[httpx.ConnectError("connection refused")] * 3, retry=Retry(retries=2))
    with pytest.raises(TransportError, match="failed after 3 attempts: connection refused") as refused:
        client.embed(["x"], batch_size=1)
    assert not refused.value.timeout and isinstance(refused.value.__cause__, httpx.ConnectError)

    client, _, _ = make_client(*[httpx.ReadTimeout("timed out")] * 2, retry=Retry(retries=1))
    with pytest.raises(TransportError) as slow:
        client.info()
    assert slow.value.timeout

    client, standin, _ = make_client(httpx.UnsupportedProtocol("ftp://"), retry=Retry(retries=5))
    with pytest.raises(TransportError):  # a wrong URL: asking again cannot help
        client.info()
    assert len(standin.requests) == 1


def test_413_halves_the_batch_for_the_rest_of_the_call(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    too_many = PayloadTooLarge("`inputs` has too many items; the limit is 2 per request")

    def limit_two(request: httpx.Request) -> httpx.Response:
        if len(json.loads(request.content)["inputs"]) > 2:
            return error(413, tei_body(too_many))
        return Standin().default(request)

    texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
    client, standin, clock = make_client(*[limit_two] * 20)
    assert client.embed(texts, batch_size=8) == [[float(len(t)), 0.0] for t in texts]
    assert standin.batches() == [7, 4, 2, 2, 2, 1]
    assert clock.waits == []

    client, _, _ = make_client(
        error(413, tei_body(PayloadTooLarge("the text has 600 tokens; the limit is 512")))
    )
    with pytest.raises(ApiError, match="the limit is 512") as caught:
        client.embed(["one very long text"], batch_size=4, truncate=False)
    assert caught.value.status == 413


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            422,
            tei_body(ValidationError("`inputs` must not be empty")),
            "Validation",
            "`inputs` must not be empty",
        ),
        (
            422,
            openai_body(ValidationError("`dimensions` must be 1..384", param="dimensions")),
            "invalid_request_error",
            "`dimensions` must be 1..384",
        ),
        (429, openai_body(Overloaded("the queue is full")), "rate_limit_error", "the queue is full"),
        (
            401,
            {"error": "missing or wrong API key", "error_type": "Unauthorized"},
            "Unauthorized",
            "missing or wrong API key",
        ),
        (404, "<html><body>404 Not Found</body></html>", None, '"<html><body>404 Not Found</body></html>"'),
    ],
)
def test_both_envelopes_become_one_error(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
    status: int,
    body: object,
    kind: str | None,
    message: str,
) -> None:
    client, _, _ = make_client(error(status, body), retry=Retry(retries=0))
    with pytest.raises(ApiError) as caught:
        client.embed(["x"], batch_size=1)
    assert (caught.value.status, caught.value.type, caught.value.message) == (status, kind, message)
    assert str(caught.value).startswith(f"POST http://embed.test/embed answered {status}")


def test_requests_are_json_with_the_bearer_key(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    client, standin, _ = make_client(api_key="s3cret", headers={"x-request-timeout": "5"})
    client.embed(["x"], batch_size=4, normalize=True, truncate=True, dimensions=2, prompt_name="query")
    client.info()
    post, get = standin.requests
    assert post.headers["content-type"] == "application/json"
    assert post.headers["authorization"] == get.headers["authorization"] == "Bearer s3cret"
    assert post.headers["x-request-timeout"] == "5"
    assert json.loads(post.content) == {
        "inputs": ["x"],
        "normalize": True,
        "truncate": True,
        "dimensions": 2,
        "prompt_name": "query",
    }


def test_batches_follow_the_servers_limit_and_keep_order(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    client, standin, _ = make_client()
    texts = [f"text {'x' * i}" for i in range(7)]
    assert client.embed(texts) == [[float(len(t)), 0.0] for t in texts]
    assert client.embed([]) == []
    tokens = client.tokenize(texts[:4])
    assert len(tokens) == 4 and tokens[0] == [{"id": 1, "special": True}]
    assert standin.paths() == ["/info", "/embed", "/embed", "/embed", "/tokenize", "/tokenize"]
    assert standin.batches() == [3, 3, 1]
    info = client.info()
    assert (info.dims, info.max_client_batch_size, info.details["variant"]) == (2, 3, "fp32")


def test_the_openai_shape_is_put_back_in_input_order(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    data = [{"object": "embedding", "index": i, "embedding": [float(i)]} for i in (2, 0, 1)]
    client, standin, _ = make_client(httpx.Response(200, json={"object": "list", "data": data}))
    assert client.embed(["a", "b", "c"], batch_size=3, api="openai", model="m") == [[0.0], [1.0], [2.0]]
    (request,) = standin.requests
    assert request.url.path == "/v1/embeddings"
    assert json.loads(request.content) == {"input": ["a", "b", "c"], "model": "m", "encoding_format": "float"}


def test_an_answer_that_is_not_our_api_says_so(
    make_client: Callable[..., tuple[Client, Standin, FakeClock]],
) -> None:
    elastic = httpx.Response(
        200,
        json={"name": "node-1", "tagline": "You Know, for Search"},
        headers={"x-elastic-product": "Elasticsearch"},
    )
    client, _, _ = make_client(elastic)
    with pytest.raises(NotOurServer, match=r"http://embed\.test is Elasticsearch, not our embedding server"):
        client.info()

    client, _, _ = make_client(httpx.Response(200, json={"status": "ok"}))
    with pytest.raises(NotOurServer, match="did not say the model's `dims`"):
        client.info()

    client, _, _ = make_client(httpx.Response(200, text="<html>welcome</html>"))
    with pytest.raises(NotOurServer, match="not JSON"):
        client.embed(["x"], batch_size=1)

    client, _, _ = make_client(httpx.Response(200, json=[[1.0]]))
    with pytest.raises(NotOurServer, match="answered 1 vectors for 2 texts"):
        client.embed(["x", "y"], batch_size=2)

    client, _, _ = make_client(httpx.Response(404, json={"error": "not found", "error_type": "NotFound"}))
    with pytest.raises(ApiError) as missing:
        client.tokenize(["x"], batch_size=1)
    assert missing.value.status == 404
