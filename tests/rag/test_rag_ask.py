"""`ask` and `serve`: grounded prompts, cited answers, streaming, the HTTP endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from rag import ingest, prompt, provision
from rag.answer import Assistant
from rag.app import RateLimiter, create_app
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
    # A 20-token budget cuts each Markdown and text file of the corpus in two chunks.
    small = replace(settings, chunk_tokens=20, chunk_overlap=0)
    ingest.ingest(small, store, embedder, ingest.load_documents([make_corpus()]))
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
    # The stand-in answers with the chunk's first sentence: its section prefix, then the fact.
    assert answer.text == (
        "Travel expenses\n\nHotel costs are reimbursed up to 150 euros per night with receipts. [1]"
    )
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
    with pytest.raises(ChatError, match="refused the API key: set CHAT_API_KEY"):
        make_assistant().ask("vacation days?")
    chat.standin.api_key = None
    chat.standin.fail_status.extend([500])
    with pytest.raises(ChatError, match=r"CHAT_BASE_URL=.*failed with 500"):
        make_assistant(max_retries=0).ask("vacation days?")
    with pytest.raises(ConfigError, match="export DASHSCOPE_API_KEY"):
        OpenAIChat(Settings())


def test_the_dashscope_key_goes_to_dashscope_hosts_only(
    make_assistant: MakeAssistant, chat: Running[ChatStandin]
) -> None:
    # The chat stand-in wants the Bailian key; it is not a DashScope host, so it never gets it.
    chat.standin.api_key = "sk-bailian"
    assistant = make_assistant(chat_api_key=None, dashscope_api_key="sk-bailian")
    with pytest.raises(ChatError, match="refused the API key: set CHAT_API_KEY"):
        assistant.ask("vacation days?")
    assert chat.standin.headers[-1]["authorization"] == "Bearer not-needed"
    # Its own key goes to it.
    chat.standin.api_key = "sk-local"
    assert make_assistant(chat_api_key="sk-local", dashscope_api_key="sk-bailian").ask("vacation days?").text
    for region, host in (
        ("cn-beijing", "dashscope.aliyuncs.com"),
        ("ap-southeast-1", "dashscope-intl.aliyuncs.com"),
        ("us-east-1", "dashscope-us.aliyuncs.com"),
        ("cn-hongkong", "cn-hongkong.dashscope.aliyuncs.com"),
    ):
        bailian = Settings(dashscope_region=region, dashscope_api_key="sk-bailian")  # type: ignore[arg-type]
        assert bailian.chat_url == f"https://{host}/compatible-mode/v1" and bailian.chat_key == "sk-bailian"
    assert Settings(chat_base_url="http://127.0.0.1:8001/v1", dashscope_api_key="sk-b").chat_key is None
    assert (
        Settings(
            chat_base_url="https://dashscope.aliyuncs.com.evil.example/v1", dashscope_api_key="k"
        ).chat_key
        is None
    )
    workspace = "https://ws-1.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1"
    assert Settings(chat_base_url=workspace, dashscope_api_key="sk-b").chat_key == "sk-b"


def test_requests_cap_tokens_ask_for_usage_and_switch_thinking(
    make_assistant: MakeAssistant, chat: Running[ChatStandin]
) -> None:
    plain = make_assistant(chat_max_tokens=300).ask("What does a hotel night cost at most?")
    sent = chat.standin.requests[-1]
    assert sent["max_tokens"] == 300 and "max_completion_tokens" not in sent
    assert sent["stream_options"] == {"include_usage": True} and "enable_thinking" not in sent
    assert plain.usage is not None and plain.usage.completion_tokens == len(plain.text.split())
    assert plain.as_dict()["usage"] == plain.usage.as_dict()
    assert "Tokens: " in plain.render_sources()

    thinking = make_assistant(chat_thinking="on", chat_thinking_budget=200).ask(
        "What does a hotel night cost?"
    )
    sent = chat.standin.requests[-1]
    assert (sent["enable_thinking"], sent["thinking_budget"]) == (True, 200)
    # The reasoning is counted, never part of the answer.
    assert thinking.text == plain.text and thinking.usage is not None
    assert thinking.usage.reasoning_tokens == len(chat.standin.reasoning.split())
    make_assistant(chat_thinking="off").ask("What does a hotel night cost?")
    assert chat.standin.requests[-1]["enable_thinking"] is False

    bailian = OpenAIChat(Settings(dashscope_api_key="sk-b", chat_max_tokens=77))
    request = bailian.request([{"role": "user", "content": "hi"}])
    bailian.close()
    assert request["max_completion_tokens"] == 77 and "max_tokens" not in request


def test_retries_end_at_the_deadline(make_assistant: MakeAssistant, chat: Running[ChatStandin]) -> None:
    chat.standin.fail_status.extend([503])
    answer = make_assistant(max_retries=3).ask("When do unused vacation days expire?")
    assert answer.citations and len(chat.standin.requests) == 2
    # A Retry-After that would outlast the deadline ends the answer now, not after the wait.
    chat.standin.retry_after = 600
    chat.standin.fail_status.extend([429])
    started = time.monotonic()
    with pytest.raises(ChatError, match=r"no complete answer within CHAT_DEADLINE=5 s .*429"):
        make_assistant(max_retries=5, chat_deadline=5.0).ask("When do unused vacation days expire?")
    assert time.monotonic() - started < 5


def test_a_stream_that_outlives_the_deadline_is_cut(
    make_assistant: MakeAssistant, chat: Running[ChatStandin]
) -> None:
    chat.standin.hold = threading.Event()
    try:
        with pytest.raises(ChatError) as caught:
            make_assistant(chat_deadline=1.0, chat_timeout=0.5, max_retries=5).ask("vacation days?")
    finally:
        chat.standin.hold.set()
    # Started answers are not retried (the reader has seen them): one request, a clear error.
    assert "timed out" in str(caught.value) or "CHAT_DEADLINE" in str(caught.value)
    assert len(chat.standin.requests) == 1


@pytest.fixture
def web(make_assistant: MakeAssistant, serve: Callable[..., ThreadedServer]) -> Iterator[httpx.Client]:
    server = serve(create_app(make_assistant()))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_serve_wants_the_api_key_when_one_is_set(
    make_assistant: MakeAssistant, serve: Callable[..., ThreadedServer]
) -> None:
    server = serve(create_app(make_assistant(serve_api_key="s3cret")))
    question = {"question": "When do unused vacation days expire?"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        refused = client.post("/ask", json=question)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["type"] == "Refused"
        assert (
            client.post("/ask", json=question, headers={"authorization": "Bearer wrong"}).status_code == 401
        )
        assert client.post("/ask/stream", json=question).status_code == 401
        assert (
            client.post("/ask", json=question, headers={"authorization": "Bearer s3cret"}).status_code == 200
        )
        assert client.post("/ask", json=question, headers={"x-api-key": "s3cret"}).status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and 'data-auth="required"' in page.text
        assert client.get("/health").status_code == 200


def test_serve_caps_questions_and_bodies(
    make_assistant: MakeAssistant, serve: Callable[..., ThreadedServer]
) -> None:
    server = serve(create_app(make_assistant(max_question_chars=40)))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        long = client.post("/ask", json={"question": "x" * 41})
        assert long.status_code == 422
        assert long.json()["error"]["message"] == "`question` is 41 characters; the limit is 40"
        huge = client.post("/ask", json={"question": "x" * 200_000})
        assert huge.status_code == 413 and "over" in huge.json()["error"]["message"]
        assert client.post("/ask", json={"question": "When do vacation days expire?"}).status_code == 200


def test_serve_limits_questions_per_client(
    make_assistant: MakeAssistant, serve: Callable[..., ThreadedServer], chat: Running[ChatStandin]
) -> None:
    clock = Clock()
    server = serve(create_app(make_assistant(serve_rate_limit=2), clock=clock))
    question = {"question": "When do unused vacation days expire?"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert [client.post("/ask", json=question).status_code for _ in range(2)] == [200, 200]
        clock.now += 30
        refused = client.post("/ask/stream", json=question)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "30"
        assert "at most 2 a minute" in refused.json()["error"]["message"]
        assert len(chat.standin.requests) == 2
        clock.now += 30.5
        assert client.post("/ask", json=question).status_code == 200


def test_rate_limiter_forgets_old_events_and_clients() -> None:
    clock = Clock()
    limiter = RateLimiter(1, clock)
    assert (limiter.admit("a"), limiter.admit("b")) == (0.0, 0.0)
    assert limiter.admit("a") == pytest.approx(60.0)
    clock.now += 60
    assert limiter.admit("a") == 0.0
    assert RateLimiter(0, clock).admit("a") == 0.0


def test_post_ask_returns_the_answer_and_citations(web: httpx.Client) -> None:
    response = web.post("/ask", json={"question": "When do unused vacation days expire?", "k": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == (
        "Vacation policy\n\nUnused vacation days expire on March 31 of the following year. [1]"
    )
    assert [(c["n"], c["source"], c["chunk_index"]) for c in body["citations"]] == [
        (1, "corpus/handbook/vacation.md", 1)
    ]
    assert body["passages"] == 3 and body["fusion"] == "none"
    assert (
        body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


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
    assert (
        response.status_code == 503
        and "run `python -m rag setup --index rag-kb`" in response.json()["error"]["message"]
    )


def test_the_page_and_health(web: httpx.Client) -> None:
    page = web.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="question"' in page.text and "ask/stream" in page.text
    assert web.get("/health").json() == {"status": "ok"}
