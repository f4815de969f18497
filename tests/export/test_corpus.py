"""The built-in text sets are fixed, varied and disjoint."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from export import corpus


def test_parity_texts_are_deterministic_and_varied(minilm_checkpoint: Path) -> None:
    texts = corpus.parity_texts()
    assert texts == corpus.parity_texts()
    assert len(texts) == 64 == len(set(texts))
    tokenizer = Tokenizer.from_file(str(minilm_checkpoint / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
    assert min(lengths) <= 4
    # Past 512 tokens, so every supported model truncates some of them.
    assert sum(n > 512 for n in lengths) >= 10
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t)
    assert any("\u0400" <= ch <= "\u04ff" for t in texts for ch in t)


def test_retrieval_corpus_pairs_each_query_with_its_passage() -> None:
    first = corpus.retrieval_corpus()
    assert first == corpus.retrieval_corpus()
    assert len(first.passages) == len(first.queries) == 300
    assert len(set(first.passages)) == 300
    for query, passage in zip(first.queries, first.passages, strict=True):
        assert query not in passage
        assert ": " in passage


def test_calibration_texts_are_held_out() -> None:
    calibration = corpus.calibration_texts()
    assert len(calibration) == 64
    retrieval = corpus.retrieval_corpus()
    used = set(corpus.parity_texts()) | set(retrieval.passages) | set(retrieval.queries)
    assert not used & set(calibration)
