"""`ask` and `serve`: grounded prompts, cited answers, streaming, the HTTP endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from rag import ingest, prompt, provision
from rag.answer import Assistant
from rag.app import create_app
from rag.chat import OpenAIChat
from rag.embedder import Embedder
from rag.errors import ChatError, ConfigError
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.store import connect
from tests.rag.chat_standin import ChatStandin
from tests.rag.conftest import Running
from tests.rag.es_standin import EsStandin
from tests.rag.standin_server import ThreadedServer

MakeAssistant = Callable[..., Assistant]


@pytest.fixture
def make_assistant(
    settings: Settings, make_corpus: Callable[..., Path], in_tmp: Path
) -> Iterator[MakeAssistant]:
    """An assistant over the ingested test corpus; keyword overrides change its settings."""
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    ingest.ingest(settings, store, embedder, ingest.load_documents([make_corpus()]))
    chats: list[OpenAIChat] = []

    def make(**overrides: object) -> Assistant:
        tuned = replace(settings, **overrides)  # type: ignore[arg-type]
        chat = OpenAIChat(tuned)
        chats.append(chat)
        return Assistant(tuned, Retriever(tuned, store, embedder), chat, embedder)

    yield make
    for chat in chats:
        chat.close()
    store.close()
    embedder.close()


def test_the_prompt_carries_the_retrieved_chunks_and_citations_map_to_them(
    make_assistant: MakeAssistant, chat: Running[ChatStandin], es: Running[EsStandin]
) -> None:
    answer = make_assistant().ask("What does a hotel night cost at most?")
    sent = chat.standin.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": prompt.SYSTEM_PROMPT}
    user = sent["messages"][1]["content"]
    for n, passage in enumerate(answer.prompt.passages, start=1):
        assert f"[{n}] (source: {passage.source}, chunk {passage.chunk_index})\n{passage.text}" in user
    assert len(answer.prompt.passages) == 5
    assert answer.text == "Hotel costs are reimbursed up to 150 euros per night with receipts. [1]"
    (citation,) = answer.citations
    stored = es.standin.indices["rag-kb"].docs[f"{citation.passage.doc_id}#{citation.passage.chunk_index}"]
    assert stored["chunk"] == citation.passage.text and "150 euros" in stored["chunk"]
    assert answer.as_dict()["citations"][0]["source"] == "corpus/handbook/expenses.md"


def test_the_context_budget_limits_the_passages(
    make_assistant: MakeAssistant, chat: Running[ChatStandin]
) -> None:
    answer = make_assistant(context_tokens=15).ask("What does a hotel night cost at most?")
    assert 1 <= len(answer.prompt.passages) < 5
    assert chat.standin.requests[-1]["messages"][1]["content"].count("(source: ") == len(
        answer.prompt.passages
    )


def test_nothing_retrieved_means_i_dont_know_without_calling_the_model(
    settings: Settings, chat: Running[ChatStandin], in_tmp: Path
) -> None:
    store, embedder = connect(settings), Embedder(settings)
    provision.setup(settings, store, embedder)
    assistant = Assistant(settings, Retriever(settings, store, embedder), OpenAIChat(settings), embedder)
    answer = assistant.ask("Anything at all?")
    assert (answer.text, answer.citations, chat.standin.requests) == ("I don't know.", [], [])
    store.close()
    embedder.close()


def test_chat_failures_are_clear(make_assistant: MakeAssistant, chat: Running[ChatStandin]) -> None:
    chat.standin.api_key = "other"
    with pytest.raises(ChatError, match="refused the API key: set DASHSCOPE_API_KEY"):
        make_assistant().ask("vacation days?")
    chat.standin.api_key = None
    chat.standin.fail_status.extend([500])
    with pytest.raises(ChatError, match=r"CHAT_BASE_URL=.*failed with 500"):
        make_assistant(max_retries=0).ask("vacation days?")
    with pytest.raises(ConfigError, match="DASHSCOPE_API_KEY"):
        OpenAIChat(Settings())


@pytest.fixture
def web(make_assistant: MakeAssistant, serve: Callable[..., ThreadedServer]) -> Iterator[httpx.Client]:
    server = serve(create_app(make_assistant()))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_post_ask_returns_the_answer_and_citations(web: httpx.Client) -> None:
    response = web.post("/ask", json={"question": "When do unused vacation days expire?", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "Unused vacation days expire on March 31 of the following year. [1]"
    assert [(c["n"], c["source"], c["chunk_index"]) for c in body["citations"]] == [
        (1, "corpus/handbook/vacation.md", 2)
    ]
    assert body["passages"] == 3 and body["fusion"] == "none"


def test_streaming_sends_tokens_then_the_answer(web: httpx.Client) -> None:
    events = []
    with web.stream(
        "POST",
        "/ask/stream",
        json={
            "question": "Which port does the embedding server use?",
            "filters": {"source": "corpus/notes/servers.txt"},
        },
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for block in response.read().decode().split("\n\n"):
            if block.strip():
                kind, data = block.split("\n", 1)
                events.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    tokens = [data["text"] for kind, data in events if kind == "token"]
    assert len(tokens) > 3 and events[-1][0] == "answer"
    final = events[-1][1]
    assert (
        "".join(tokens).strip()
        == final["answer"]
        == "The embedding server listens on port 8000 by default. [1]"
    )
    assert final["citations"][0]["source"] == "corpus/notes/servers.txt"


def test_bad_requests_and_missing_index_are_json_errors(web: httpx.Client, es: Running[EsStandin]) -> None:
    for body, message in (
        ({"question": ""}, "`question` must be a non-empty string"),
        ({"question": "x", "k": 0}, "`k` must be an integer from 1 to 100"),
        ({"question": "x", "hybrid": "yes"}, "`hybrid` must be true or false"),
    ):
        response = web.post("/ask", json=body)
        assert response.status_code == 422 and response.json()["error"]["message"] == message
    assert web.post("/ask", content=b"{oops").status_code == 422
    del es.standin.indices["rag-kb"]
    response = web.post("/ask/stream", json={"question": "vacation?"})
    assert response.status_code == 503 and "run `python -m rag setup`" in response.json()["error"]["message"]


def test_the_page_and_health(web: httpx.Client) -> None:
    page = web.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="question"' in page.text and "ask/stream" in page.text
    assert web.get("/health").json() == {"status": "ok"}
