"""Pure parts of rag: settings, corpus reading, chunking, prompt building, fusion."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from rag import corpus, prompt
from rag.chunking import Chunker, paragraphs
from rag.embedder import TokenCount
from rag.errors import ConfigError, InputError
from rag.ingest import load_documents
from rag.retrieval import Passage, filter_clauses, fuse, parse_filters
from rag.settings import BAILIAN_BASE_URL, Settings, load

ROOT = Path(__file__).resolve().parents[2]


# -- settings ----------------------------------------------------------------------------


def test_flag_beats_environment_beats_default() -> None:
    env = {"ES_URL": "http://es:9200", "RAG_K": "7", "RAG_HYBRID": "yes", "EMBED_URL": ""}
    s = load({"es_url": None, "k": "3"}, env)
    assert (s.es_url, s.k, s.hybrid, s.embed_url) == ("http://es:9200", 3, True, "http://127.0.0.1:8000")
    assert load({"es_url": "https://x:1"}, env).es_url == "https://x:1"
    assert load({}, {}).chat_base_url == BAILIAN_BASE_URL


def test_chat_key_prefers_dashscope_then_openai() -> None:
    assert load({}, {"DASHSCOPE_API_KEY": "d", "OPENAI_API_KEY": "o"}).chat_api_key == "d"
    assert load({}, {"OPENAI_API_KEY": "o"}).chat_api_key == "o"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"k": "many"}, "--k must be a number"),
        ({"hybrid": None, "rrf": "both"}, "--rrf must be one of auto, server, client"),
        ({"es_url": "localhost:9200"}, "--es-url must be an http"),
        ({"k": "20", "num_candidates": "10"}, "--num-candidates must be between"),
        ({"chunk_tokens": "64", "chunk_overlap": "40"}, "--chunk-overlap"),
        ({"index": "RAG"}, "not a valid index name"),
    ],
)
def test_bad_settings_name_the_flag(flags: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(flags, {})


def test_bad_environment_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--hybrid must be true or false"):
        load({}, {"RAG_HYBRID": "perhaps"})


def test_only_the_settings_module_reads_the_environment() -> None:
    readers = [
        p.name for p in (ROOT / "rag").glob("*.py") if re.search(r"os\.(environ|getenv)", p.read_text())
    ]
    assert readers == ["settings.py"]


# -- corpus ------------------------------------------------------------------------------


def test_corpus_reads_folders_recursively_and_skips_hidden(
    make_corpus: Callable[..., Path], in_tmp: Path
) -> None:
    root = make_corpus()
    (root / ".git").mkdir()
    (root / ".git" / "HEAD.md").write_text("hidden")
    (root / "image.png").write_bytes(b"\x89PNG")
    docs = load_documents([root])
    ids = [d.doc_id for d in docs]
    assert ids == [
        "faq-1",
        "faq-2",
        "corpus/handbook/expenses.md",
        "corpus/handbook/vacation.md",
        "corpus/notes/servers.txt",
    ]
    assert docs[0].metadata == {"source": "corpus/faq.jsonl", "line": 1, "lang": "en"}
    assert docs[3].metadata == {"source": "corpus/handbook/vacation.md", "title": "Vacation policy"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "faq.jsonl:2: not valid JSON"),
        ('["a"]', "faq.jsonl:2: each line must be a JSON object"),
        ('{"content": ""}', "faq.jsonl:2: `content` must be a non-empty string"),
        ('{"content": "x", "metadata": [1]}', "faq.jsonl:2: `metadata` must be an object"),
    ],
)
def test_bad_jsonl_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text('{"content": "fine"}\n' + line + "\n")
    with pytest.raises(InputError, match=re.escape(message)):
        list(corpus.read(path))


def test_missing_unsupported_duplicate_and_binary_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        corpus.files([tmp_path / "nope"])
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(InputError, match="unsupported file type"):
        corpus.files([tmp_path / "a.pdf"])
    (tmp_path / "dup.jsonl").write_text('{"id": 1, "content": "a"}\n{"id": "1", "content": "b"}\n')
    with pytest.raises(InputError, match="appears twice"):
        load_documents([tmp_path / "dup.jsonl"])
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_documents([tmp_path / "latin.txt"])


def test_long_ids_are_hashed_but_stable() -> None:
    raw = "x/" * 300
    assert corpus.safe_id(raw) == corpus.safe_id(raw) and len(corpus.safe_id(raw).encode()) <= 200
    assert corpus.safe_id("short") == "short"


# -- chunking ----------------------------------------------------------------------------


class WordCounter:
    """Counts like the fake server: words and marks, plus [CLS] and [SEP], truncated at ``limit``."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self.calls = 0

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]:
        self.calls += 1
        return [TokenCount(min(len(re.findall(r"\w+|[^\w\s]", t)) + 2, self.limit), 2) for t in texts]


def test_paragraphs_split_on_blank_lines_like_the_pipeline() -> None:
    text = "\r\n  Title\r\n\r\nFirst para\nstill first.\n \t\n\n\nSecond.  \n\n"
    assert paragraphs(text) == ["Title", "First para\nstill first.", "Second."]
    assert paragraphs(" \n\n ") == []


def test_short_paragraphs_are_chunks_and_long_ones_become_overlapping_windows() -> None:
    sentences = [f"Sentence {i} has exactly seven words here." for i in range(30)]
    long_paragraph = " ".join(sentences)
    counter = WordCounter()
    chunks = Chunker(counter, chunk_tokens=40, overlap=9, model_max=128).split(
        ["Short one.\n\n" + long_paragraph]
    )[0]
    assert chunks[0] == "Short one."
    windows = chunks[1:]
    assert len(windows) > 3
    for window in windows:
        assert counter.count_tokens([window])[0].total <= 40
        assert window in long_paragraph  # exact slices of the original text
    for first, second in itertools.pairwise(windows):
        assert (
            first.split(". ")[-1].rstrip(".") == second.split(". ")[0]
        )  # one sentence (8 tokens <= 9) repeated
    covered = {s for w in windows for s in sentences if s in w}
    assert covered == set(sentences)


def test_a_count_at_the_model_limit_means_truncated_so_the_paragraph_is_cut() -> None:
    paragraph = " ".join(["word"] * 200)
    chunks = Chunker(WordCounter(limit=64), chunk_tokens=256, overlap=0, model_max=64).split([paragraph])[0]
    assert len(chunks) == 4 and all(len(c.split()) <= 62 for c in chunks)
    assert " ".join(chunks).split() == paragraph.split()


def test_a_giant_word_is_cut_by_characters() -> None:
    blob = "x" * 5000

    class CharCounter:
        def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]:
            return [TokenCount(min(len(t) // 10 + 2, 512), 2) for t in texts]

    chunks = Chunker(CharCounter(), chunk_tokens=50, overlap=0, model_max=512).split([blob])[0]
    assert "".join(chunks) == blob and all(len(c) // 10 + 2 <= 50 for c in chunks)


# -- prompt and fusion -------------------------------------------------------------------


def _passage(doc: str, i: int, text: str, score: float = 0.5) -> Passage:
    return Passage(doc, i, text, score, {"source": f"{doc}.md"})


def test_prompt_numbers_passages_within_the_budget() -> None:
    passages = [
        _passage("a", 0, "alpha " * 30),
        _passage("b", 1, "beta " * 200),
        _passage("c", 2, "gamma gamma"),
    ]
    built = prompt.build("What is alpha?", passages, WordCounter(), budget=60)
    assert [p.doc_id for p in built.passages] == ["a", "c"]
    assert built.messages[0]["content"] == prompt.SYSTEM_PROMPT
    assert "I don't know" in prompt.SYSTEM_PROMPT and "[1]" in prompt.SYSTEM_PROMPT
    user = built.messages[1]["content"]
    assert "[1] (source: a.md, chunk 0)\nalpha" in user and "[2] (source: c.md, chunk 2)\ngamma gamma" in user
    assert user.endswith("Question: What is alpha?")


def test_citations_resolve_numbers_to_passages() -> None:
    passages = [_passage("a", 0, "x"), _passage("b", 3, "y")]
    found = prompt.citations("Yes [2]. Also [1, 2] and [7] and [2].", passages)
    assert [(c.n, c.passage.doc_id, c.passage.chunk_index) for c in found] == [(2, "b", 3), (1, "a", 0)]
    assert json.loads(json.dumps(found[0].as_dict()))["source"] == "b.md"


def test_reciprocal_rank_fusion() -> None:
    a, b, c = _passage("a", 0, ""), _passage("b", 0, ""), _passage("c", 0, "")
    fused = fuse([[a, b, c], [c, a]], k=2, rank_constant=60)
    assert [p.doc_id for p in fused] == ["a", "c"]
    assert fused[0].score == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1].score == pytest.approx(1 / 63 + 1 / 61)


def test_filters_become_term_clauses() -> None:
    parsed = parse_filters(["lang=en", "lang=de", "source=a.md"])
    assert filter_clauses(parsed) == [
        {"terms": {"metadata.lang": ["en", "de"]}},
        {"term": {"metadata.source": "a.md"}},
    ]
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_filters(["lang"])


def test_settings_default_is_a_valid_object() -> None:
    assert Settings().index == "rag-kb" and Settings().es_side_embed_url == "http://127.0.0.1:8000"
