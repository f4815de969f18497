"""Factory fixtures for the rag tests: the stand-ins on real sockets, settings, corpora."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

from rag.settings import Settings
from tests.rag.chat_standin import ChatStandin
from tests.rag.embed_standin import EmbedStandin
from tests.rag.es_standin import EsStandin, InferenceRetry
from tests.rag.standin_server import ThreadedServer

T = TypeVar("T")


@dataclass
class Running(Generic[T]):
    """A stand-in and the server that serves it."""

    standin: T
    server: ThreadedServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def serve() -> Iterator[Callable[[Any], ThreadedServer]]:
    """Start an ASGI app on a free loopback port; stopped at teardown."""
    started: list[ThreadedServer] = []

    def start(app: Any, host: str = "127.0.0.1") -> ThreadedServer:
        server = ThreadedServer(app, host).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.request_stop()
    for server in started:
        server.stop()


@pytest.fixture
def make_embed(serve: Callable[..., ThreadedServer]) -> Callable[..., Running[EmbedStandin]]:
    def make(host: str = "127.0.0.1", **kwargs: Any) -> Running[EmbedStandin]:
        standin = EmbedStandin(**kwargs)
        return Running(standin, serve(standin.app(), host))

    return make


@pytest.fixture
def make_es(serve: Callable[..., ThreadedServer]) -> Iterator[Callable[..., Running[EsStandin]]]:
    made: list[EsStandin] = []

    def make(**kwargs: Any) -> Running[EsStandin]:
        # ES's retry delays (1 s, up to 5 s) would make every injected fault cost real seconds.
        kwargs.setdefault("inference_retry", InferenceRetry(0.001, 0.005, 5.0))
        standin = EsStandin(**kwargs)
        made.append(standin)
        return Running(standin, serve(standin.app()))

    yield make
    for standin in made:
        standin.close()


@pytest.fixture
def make_chat(serve: Callable[..., ThreadedServer]) -> Callable[..., Running[ChatStandin]]:
    def make(**kwargs: Any) -> Running[ChatStandin]:
        standin = ChatStandin(**kwargs)
        return Running(standin, serve(standin.app()))

    return make


@pytest.fixture
def embed(make_embed: Callable[..., Running[EmbedStandin]]) -> Running[EmbedStandin]:
    return make_embed()


@pytest.fixture
def es(make_es: Callable[..., Running[EsStandin]]) -> Running[EsStandin]:
    return make_es()


@pytest.fixture
def chat(make_chat: Callable[..., Running[ChatStandin]]) -> Running[ChatStandin]:
    return make_chat()


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings for the given service URLs, with fast retries; keyword overrides win."""

    def make(es_url: str, embed_url: str, chat_url: str | None = None, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "es_url": es_url,
            "embed_url": embed_url,
            "retry_backoff": 0.01,
            "max_retries": 3,
            "es_timeout": 10.0,
            "embed_timeout": 10.0,
            "chat_timeout": 10.0,
        }
        if chat_url is not None:
            values.update(chat_base_url=f"{chat_url}/v1", chat_model="standin-chat", chat_api_key="chat-key")
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(
    es: Running[EsStandin],
    embed: Running[EmbedStandin],
    chat: Running[ChatStandin],
    make_settings: Callable[..., Settings],
) -> Settings:
    return make_settings(es.url, embed.url, chat.url)


CORPUS = {
    "handbook/vacation.md": (
        "# Vacation policy\n\n"
        "Employees receive twenty-five vacation days per calendar year.\n\n"
        "Unused vacation days expire on March 31 of the following year."
    ),
    "handbook/expenses.md": (
        "# Travel expenses\n\n"
        "Train tickets are reimbursed in second class.\n\n"
        "Hotel costs are reimbursed up to 150 euros per night with receipts."
    ),
    "notes/servers.txt": (
        "The embedding server listens on port 8000 by default.\n\n"
        "Readiness is reported at /health/ready and flips to 503 while draining."
    ),
}
JSONL = (
    '{"id": "faq-1", "content": "The office opens at eight in the morning.", "metadata": {"lang": "en"}}\n'
    '{"id": "faq-2", "content": "Das Büro schließt um achtzehn Uhr.", "metadata": {"lang": "de"}}\n'
)


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[..., Path]:
    """Write a corpus (relative path -> text) under a fresh folder and return the folder."""

    def make(files: dict[str, str] | None = None, jsonl: str | None = JSONL, name: str = "corpus") -> Path:
        root = tmp_path / name
        for rel, text in (CORPUS if files is None else files).items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if jsonl:
            (root / "faq.jsonl").write_text(jsonl, encoding="utf-8")
        return root

    return make


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from tmp_path, so that document ids (paths relative to the cwd) are short."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rag/ES/chat variables from the caller's environment leak into a test."""
    for name in list(os.environ):
        if name.startswith(("ES_", "EMBED_", "CHAT_", "RAG_")) or name in (
            "DASHSCOPE_API_KEY",
            "OPENAI_API_KEY",
        ):
            monkeypatch.delenv(name)
