from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from bench.corpus import CorpusError, from_jsonl, from_stdlib
from bench.stats import LengthStats

SMALL = ("textwrap", "json/decoder", "heapq", "bisect", "fractions", "shlex")


def test_stdlib_corpus_is_deterministic() -> None:
    a = from_stdlib(passages=50, queries=20, modules=SMALL)
    b = from_stdlib(passages=50, queries=20, modules=SMALL)
    assert a == b
    assert a.digest() == b.digest()
    assert a.passages and a.queries
    assert from_stdlib(passages=50, queries=20, modules=SMALL, seed=1).digest() != a.digest()


def test_stdlib_corpus_is_english_prose() -> None:
    corpus = from_stdlib(passages=200, queries=50, modules=SMALL)
    assert not any(">>>" in p for p in corpus.passages)
    assert all(len(p.split()) >= 25 for p in corpus.passages)
    assert all(4 <= len(q.split()) <= 14 for q in corpus.queries)


def test_missing_stdlib_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="--corpus"):
        from_stdlib(stdlib_dir=tmp_path)


@pytest.fixture
def minilm_tokens(request: pytest.FixtureRequest) -> Callable[[Sequence[str]], list[int]]:
    """Token counts with the MiniLM checkpoint's tokenizer (max 256, special tokens in)."""
    try:
        checkpoint = Path(request.getfixturevalue("minilm_checkpoint"))
    except pytest.FixtureLookupError:
        pytest.skip("no minilm_checkpoint fixture")
    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    return lambda texts: [len(e.ids) for e in tok.encode_batch(list(texts))]


@pytest.mark.slow
def test_built_in_corpus_has_a_realistic_length_mix(
    minilm_tokens: Callable[[Sequence[str]], list[int]],
) -> None:
    corpus = from_stdlib()
    assert len(corpus.passages) == 2000
    assert len(corpus.queries) == 500
    stats = LengthStats.of(minilm_tokens(corpus.passages))
    assert 60 <= stats.median <= 100
    assert 150 <= stats.p90 <= 230
    assert stats.p10 >= 25
    assert LengthStats.of(minilm_tokens(corpus.queries)).median <= 20


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def test_jsonl_corpus_reads_passages_and_queries(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.jsonl",
        [
            {"text": "first passage"},
            {"text": "a question", "kind": "query"},
            {"text": "second", "kind": "passage"},
        ],
    )
    corpus = from_jsonl(path)
    assert corpus.passages == ("first passage", "second")
    assert corpus.queries == ("a question",)
    assert from_jsonl(path, passages=1).passages == ("first passage",)


def test_jsonl_without_queries_derives_them(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(30))
    corpus = from_jsonl(_write(tmp_path / "c.jsonl", [{"text": words}]))
    assert corpus.queries == (" ".join(f"w{i}" for i in range(12)),)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", ":1: not valid JSON"),
        ('{"txt": "x"}', 'non-empty "text"'),
        ('{"text": ""}', 'non-empty "text"'),
        ('{"text": "x", "kind": "doc"}', '"kind" must be'),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(CorpusError, match=message):
        from_jsonl(path)


def test_jsonl_needs_passages(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no passages"):
        from_jsonl(_write(tmp_path / "q.jsonl", [{"text": "q", "kind": "query"}]))
