"""Hostile connections and inputs against a live uvicorn server on loopback.

Each test reproduces an attack or an operator's mistake that took the server down or
misreported it, and checks the answer the server gives now. Servers run in a thread with
the production uvicorn configuration (``server.__main__.uvicorn_config``); the model is
the real MiniLM tokenizer with a scripted session (or a tokenizer double) that blocks
until the test releases it, so no assertion depends on the machine's speed. Timeouts in
these tests are hang guards only.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from server.__main__ import uvicorn_config
from server.app import create_app
from server.engine import INLINE_TOKENIZE_CHARS, Engine
from server.manifest import load
from server.metrics import Metrics
from server.settings import Settings
from server.tokenizer import Encoded, Tokenizer
from tests.doubles import ScriptedSession
from tests.reliability.conftest import free_port

GUARD = 30.0
"""Seconds before a test gives up waiting for something that must happen (a hang guard)."""


class GatedTokenizer(Tokenizer):
    """The real tokenizer, but calls with more than INLINE_TOKENIZE_CHARS characters (those
    that go to the pool) wait until ``gate`` is set; every encoded text is recorded."""

    def __init__(self, directory: Path, max_length: int) -> None:
        super().__init__(directory, max_length)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str], **kwargs: Any) -> Encoded:
        if sum(len(t) for t in texts) > INLINE_TOKENIZE_CHARS:
            self.entered.release()
            assert self.gate.wait(GUARD)
        self.seen.extend(texts)
        return super().encode(texts, **kwargs)


@dataclass
class Live:
    url: str
    port: int
    app: Any
    sessions: list[ScriptedSession] = field(default_factory=list)
    tokenizers: list[GatedTokenizer] = field(default_factory=list)

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=GUARD).text
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = rf"^{name}{{{selector}}} ([0-9.e+]+)$" if labels else rf"^{name} ([0-9.e+]+)$"
        return sum(float(m) for m in re.findall(pattern, text, re.M))

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + GUARD
        while not condition():
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.02)


@pytest.fixture
def live(minilm_model_dir: Path) -> Iterator[Callable[..., Live]]:
    running: list[tuple[uvicorn.Server, threading.Thread, Live]] = []

    def start(**overrides: Any) -> Live:
        port = free_port()
        values: dict[str, Any] = {"model": minilm_model_dir, "variant": "fp32", "port": port, "warmup": False}
        settings = Settings(**{**values, **overrides})
        made = Live(f"http://127.0.0.1:{port}", port, None)

        def loader(settings: Settings, metrics: Metrics) -> Engine:
            manifest = load(settings.model)
            session = ScriptedSession(manifest.inputs, manifest.dims)
            tokenizer = GatedTokenizer(settings.model, manifest.max_length)
            made.sessions.append(session)
            made.tokenizers.append(tokenizer)
            return Engine(
                settings,
                manifest,
                tokenizer,
                [session],
                metrics,
                variant="fp32",
                provider="CPUExecutionProvider",
                max_batch_tokens=settings.batch_tokens(on_gpu=False),
            )

        made.app = create_app(settings, loader)
        server = uvicorn.Server(uvicorn_config(made.app, settings))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread, made))
        made.wait_for(lambda: server.started, "the server to start")
        return made

    yield start
    for server, thread, made in running:
        for s in made.sessions:
            s.gate.set()
        for t in made.tokenizers:
            t.gate.set()
        server.should_exit = True
        thread.join(GUARD)


SOCKETS: list[socket.socket] = []


def raw(port: int, data: bytes = b"") -> socket.socket:
    """A raw client connection, closed at the end of the test (see ``close_sockets``)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
    SOCKETS.append(sock)
    if data:
        sock.sendall(data)
    return sock


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    yield
    while SOCKETS:
        SOCKETS.pop().close()


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (hang-guarded)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def post_head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {length}\r\n{extra}\r\n"
    ).encode()


def embed_ok(url: str, text: str = "hello") -> httpx.Response:
    return httpx.post(url + "/embed", json={"inputs": text}, timeout=GUARD)


# ---- connections ---------------------------------------------------------------------


def test_idle_connections_do_not_make_the_server_refuse_requests(live: Callable[..., Live]) -> None:
    server = live(limit_concurrency=8)
    idle = [raw(server.port) for _ in range(40)]
    try:
        assert httpx.get(server.url + "/health/live", timeout=GUARD).status_code == 200
        assert embed_ok(server.url).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_connections_without_a_complete_request_head_are_closed(live: Callable[..., Live]) -> None:
    server = live(header_timeout=0.3)
    silent = raw(server.port)
    slow = raw(server.port, b"POST /embed HTTP/1.1\r\nhost: x\r\n")
    assert read_all(silent) == b""
    answer = read_all(slow)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    # A keep-alive connection that starts a second head and stalls is closed as well.
    kept = raw(server.port, post_head("/embed", 17) + b'{"inputs": "hi"} ')
    first = kept.recv(65536)
    assert first.startswith(b"HTTP/1.1 200"), first[:80]
    kept.sendall(b"POST /embed HTTP/1.1\r\n")
    assert b"HTTP/1.1 408" in read_all(kept)


def test_past_the_connection_cap_the_longest_idle_connection_makes_room(live: Callable[..., Live]) -> None:
    server = live(max_connections=10)
    oldest = raw(server.port)
    others = [raw(server.port) for _ in range(30)]
    try:
        assert httpx.get(server.url + "/health/live", timeout=GUARD).status_code == 200
        assert embed_ok(server.url).status_code == 200
        assert read_all(oldest) == b""
    finally:
        for sock in [oldest, *others]:
            sock.close()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param("x-big: " + "a" * 100_000 + "\r\n", id="one 100 KB header"),
        pytest.param("".join(f"x-h{i}: v\r\n" for i in range(500)), id="500 headers"),
    ],
)
def test_oversized_request_heads_get_431(live: Callable[..., Live], extra: str) -> None:
    server = live()
    sock = raw(server.port, post_head("/embed", 17, extra) + b'{"inputs": "hi"} ')
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:80]
    body = orjson.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error_type"] == "Validation" and "header" in body["error"]
    assert embed_ok(server.url).status_code == 200


def test_a_client_leaving_mid_body_is_not_a_server_error(
    live: Callable[..., Live], caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("uvicorn").addHandler(caplog.handler)
    server = live()
    for _ in range(5):
        sock = raw(server.port, post_head("/embed", 100_000) + b'{"inputs": ["')
        sock.close()
    server.wait_for(lambda: server.metric("embed_requests_total", route="/embed", status="499") >= 5, "499s")
    assert server.metric("embed_requests_total", route="/embed", status="500") == 0
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]


def test_a_body_that_does_not_arrive_gets_408(live: Callable[..., Live]) -> None:
    server = live(body_timeout=0.3)
    sock = raw(server.port, post_head("/embed", 1000) + b'{"inputs": "')
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    sock.close()


def test_requests_past_the_in_flight_limit_get_a_json_503_and_probes_still_answer(
    live: Callable[..., Live],
) -> None:
    server = live(limit_concurrency=2)
    server.wait_for(lambda: bool(server.sessions), "the engine")
    session = server.sessions[0]
    session.gate.clear()
    held = [raw(server.port, post_head("/embed", 17) + b'{"inputs": "hi"} ') for _ in range(2)]
    try:
        # Two held requests plus the scrape itself.
        server.wait_for(lambda: server.metric("embed_inflight_requests") >= 3, "two requests in flight")
        over = embed_ok(server.url)
        assert over.status_code == 503
        assert int(over.headers["retry-after"]) == 1
        assert over.json()["error_type"] == "Overloaded"
        openai = httpx.post(server.url + "/v1/embeddings", json={"input": "x"}, timeout=GUARD)
        assert openai.status_code == 503 and openai.json()["error"]["type"] == "server_error"
        assert httpx.get(server.url + "/health/live", timeout=GUARD).status_code == 200
        assert httpx.get(server.url + "/health/ready", timeout=GUARD).status_code == 200
    finally:
        session.gate.set()
    for sock in held:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()


def test_a_full_queue_leaves_the_replica_ready(live: Callable[..., Live]) -> None:
    server = live(max_queue_requests=3, interactive_max_tokens=4096)
    server.wait_for(lambda: bool(server.sessions), "the engine")
    session = server.sessions[0]
    session.gate.clear()
    socks = []
    try:
        for i in range(6):
            socks.append(raw(server.port, post_head("/embed", 17) + f'{{"inputs": "{i}a"}} '.encode()))
        server.wait_for(lambda: server.metric("embed_rejected_total", reason="queue_full") >= 1, "a 429")
        assert httpx.get(server.url + "/health/ready", timeout=GUARD).status_code == 200
    finally:
        session.gate.set()
        for sock in socks:
            sock.close()


# ---- tokenization before admission ---------------------------------------------------


def long_text(n: int) -> str:
    return ("tokenization must be bounded " * (n // 29 + 1))[:n]


def test_a_query_is_not_held_behind_large_requests_waiting_for_the_tokenizer(
    live: Callable[..., Live],
) -> None:
    server = live()
    server.wait_for(lambda: bool(server.tokenizers), "the engine")
    tokenizer = server.tokenizers[0]
    tokenizer.gate.clear()
    big = {"inputs": [long_text(3000) for _ in range(4)]}
    with httpx.Client(timeout=GUARD) as client:
        pending = [
            threading.Thread(target=client.post, args=(server.url + "/embed",), kwargs={"json": big})
            for _ in range(3)
        ]
        for thread in pending:
            thread.start()
        for _ in range(2):
            assert tokenizer.entered.acquire(timeout=GUARD)
        assert embed_ok(server.url, "what is the refund policy?").status_code == 200
        tokenizer.gate.set()
        for thread in pending:
            thread.join(GUARD)


def test_the_tokenizer_backlog_is_bounded_with_429(live: Callable[..., Live]) -> None:
    server = live(max_payload_bytes=64 * 1024)
    server.wait_for(lambda: bool(server.tokenizers), "the engine")
    tokenizer = server.tokenizers[0]
    tokenizer.gate.clear()
    body = {"inputs": [long_text(15_000) for _ in range(4)]}
    statuses: list[int] = []

    def send() -> None:
        statuses.append(httpx.post(server.url + "/embed", json=body, timeout=GUARD).status_code)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    server.wait_for(lambda: 429 in statuses, "a 429 from the tokenizer backlog")
    refused = httpx.post(server.url + "/embed", json=body, timeout=GUARD)
    assert refused.status_code == 429 and "retry-after" in refused.headers
    assert server.metric("embed_rejected_total", reason="tokenizer_busy") >= 2
    tokenizer.gate.set()
    for thread in threads:
        thread.join(GUARD)
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 2


def test_work_whose_deadline_or_client_is_gone_is_never_tokenized(live: Callable[..., Live]) -> None:
    server = live()
    server.wait_for(lambda: bool(server.tokenizers), "the engine")
    tokenizer = server.tokenizers[0]
    tokenizer.gate.clear()
    blockers = [
        raw(server.port, post_head("/embed", len(b)) + b)
        for b in [orjson.dumps({"inputs": [long_text(5000)]}) for _ in range(2)]
    ]
    for _ in range(2):
        assert tokenizer.entered.acquire(timeout=GUARD)
    late = "deadline passes while this waits " * 200
    expired = httpx.post(
        server.url + "/embed", json={"inputs": [late]}, headers={"x-request-timeout": "0.2"}, timeout=GUARD
    )
    assert expired.status_code == 503 and "retry-after" in expired.headers
    gone_text = "the client leaves while this waits " * 200
    leaver = raw(server.port, post_head("/embed", len(b := orjson.dumps({"inputs": [gone_text]}))) + b)
    server.wait_for(lambda: server.metric("embed_inflight_requests") >= 4, "the leaver to be in flight")
    leaver.close()
    server.wait_for(lambda: server.metric("embed_requests_total", route="/embed", status="499") >= 1, "499")
    tokenizer.gate.set()
    for sock in blockers:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sock.close()
    assert late not in tokenizer.seen
    assert gone_text not in tokenizer.seen


def test_tokenize_responses_are_bounded(live: Callable[..., Live]) -> None:
    server = live()
    texts = [long_text(2000) for _ in range(200)]
    answer = httpx.post(server.url + "/tokenize", json={"inputs": texts}, timeout=GUARD)
    assert answer.status_code == 413, answer.text[:200]
    assert "/tokenize lists at most" in answer.json()["error"]
    small = httpx.post(server.url + "/tokenize", json={"inputs": ["hello world"]}, timeout=GUARD)
    assert small.status_code == 200 and [t["text"] for t in small.json()[0]][1:3] == ["hello", "world"]


def test_an_interactive_request_is_admitted_when_bulk_work_fills_the_queue(live: Callable[..., Live]) -> None:
    server = live(max_queue_requests=10, interactive_max_tokens=16)
    server.wait_for(lambda: bool(server.sessions), "the engine")
    session = server.sessions[0]
    session.gate.clear()
    bulk = orjson.dumps({"inputs": ["a bulk passage long enough to be bulk work " * 2]})
    socks = []
    try:
        for _ in range(12):
            socks.append(raw(server.port, post_head("/embed", len(bulk)) + bulk))
        server.wait_for(lambda: server.metric("embed_rejected_total", reason="queue_full") >= 1, "a 429")
        query = raw(server.port, post_head("/embed", 17) + b'{"inputs": "hi"} ')
        server.wait_for(
            lambda: server.metric("embed_queue_requests") >= 10, "the query to be admitted behind bulk"
        )
        session.gate.set()
        assert query.recv(65536).startswith(b"HTTP/1.1 200")
        query.close()
    finally:
        session.gate.set()
        for sock in socks:
            sock.close()


def test_request_bodies_in_flight_are_bounded_in_bytes(live: Callable[..., Live]) -> None:
    server = live(max_body_bytes_in_flight=3 * 1024 * 1024)
    size = 1536 * 1024
    first = raw(server.port, post_head("/embed", size) + b'{"inputs": "')
    second = raw(server.port, post_head("/embed", size) + b'{"inputs": "')
    server.wait_for(lambda: server.metric("embed_inflight_requests") >= 3, "two bodies in flight")
    third = raw(server.port, post_head("/embed", size) + b'{"inputs": "')
    head, _, body = third.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
    assert orjson.loads(body)["error_type"] == "Overloaded"
    first.close()
    second.close()
    server.wait_for(lambda: server.metric("embed_inflight_requests") <= 1, "the bodies to be released")
    assert embed_ok(server.url).status_code == 200
