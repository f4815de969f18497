"""End to end on the real embedding server (all-MiniLM-L6-v2) with the ES and chat stand-ins.

setup -> ingest a small corpus through both paths -> the same chunks and vectors either way
-> a question whose answer is in one document retrieves it in the top 5 -> a cited answer.
The server runs as ``python -m server`` in a subprocess on a free port.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from embedclient import ServerProcess
from rag import ingest, provision
from rag.answer import Assistant
from rag.chat import OpenAIChat
from rag.embedder import Embedder
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.store import connect
from tests.rag.chat_standin import ChatStandin
from tests.rag.conftest import Running
from tests.rag.es_standin import EsStandin

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def model_dir(request: pytest.FixtureRequest) -> Path:
    if not (ROOT / "server" / "__main__.py").is_file():
        pytest.skip("server/ does not exist yet: the end-to-end test needs `python -m server`")
    chosen = os.environ.get("RAG_TEST_MODEL_DIR")  # an already exported model directory, to skip the export
    if chosen:
        return Path(chosen)
    try:
        found: Path = request.getfixturevalue("minilm_model_dir")
    except pytest.FixtureLookupError:
        pytest.skip("no `minilm_model_dir` fixture in tests/conftest.py")
    return found


@pytest.fixture
def real_server(model_dir: Path, tmp_path: Path) -> Iterator[str]:
    args = ("--model", str(model_dir), "--variant", "fp32")
    with ServerProcess(*args, log=tmp_path / "server.log", cwd=ROOT, startup_timeout=120) as server:
        yield server.url


def test_minilm_end_to_end(
    real_server: str,
    es: Running[EsStandin],
    chat: Running[ChatStandin],
    make_settings: Callable[..., Settings],
    make_corpus: Callable[..., Path],
    in_tmp: Path,
) -> None:
    # A 20-token budget cuts each Markdown and text file of the corpus in two chunks.
    settings = make_settings(es.url, real_server, chat.url, chunk_tokens=20, chunk_overlap=0)
    piped = replace(settings, index="rag-kb-pipeline")
    store, embedder = connect(settings), Embedder(settings)
    assert embedder.info().dims == 384
    for target in (settings, piped):
        assert provision.setup(target, store, embedder).complete
    assert es.standin.endpoints["rag-embedder"].dims == 384

    docs = ingest.load_documents([make_corpus()])
    assert ingest.ingest(settings, store, embedder, docs, via="client").failed == {}
    assert ingest.ingest(piped, store, embedder, docs, via="pipeline").failed == {}

    client_docs = es.standin.indices["rag-kb"].docs
    pipeline_docs = es.standin.indices["rag-kb-pipeline"].docs
    compared = 0
    for doc_id, doc in pipeline_docs.items():
        for i, chunk in enumerate(doc["chunks"]):
            mine = client_docs[f"{doc_id}#{i}"]
            assert mine["chunk"] == chunk["chunk"]
            assert (
                max(abs(a - b) for a, b in zip(mine["dense_vector"], chunk["dense_vector"], strict=True))
                < 1e-4
            )
            assert math.isclose(math.fsum(x * x for x in chunk["dense_vector"]), 1.0, abs_tol=1e-4)
            compared += 1
    assert compared == 8 and len(client_docs) == 8

    question = "How long can I keep vacation days I did not take?"
    for target in (settings, piped):
        top = Retriever(target, store, embedder).search(question, k=5).passages
        assert "corpus/handbook/vacation.md" in [p.doc_id for p in top]

    chat_client = OpenAIChat(settings)
    answer = Assistant(settings, Retriever(settings, store, embedder), chat_client, embedder).ask(
        "Until when do unused vacation days remain valid?"
    )
    chat_client.close()
    assert "March 31" in answer.text and answer.citations[0].passage.doc_id == "corpus/handbook/vacation.md"

    openai_side = replace(
        settings,
        index="rag-kb-openai",
        inference_id="rag-openai",
        pipeline="rag-openai",
        inference_service="openai",
    )
    assert provision.setup(openai_side, store, embedder).complete
    assert ingest.ingest(openai_side, store, embedder, docs, via="pipeline").failed == {}
    vacation = es.standin.indices["rag-kb-openai"].docs["corpus/handbook/vacation.md"]["chunks"][1][
        "dense_vector"
    ]
    assert (
        max(
            abs(a - b)
            for a, b in zip(
                vacation, client_docs["corpus/handbook/vacation.md#1"]["dense_vector"], strict=True
            )
        )
        < 1e-4
    )
    store.close()
    embedder.close()
