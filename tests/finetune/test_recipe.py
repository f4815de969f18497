"""The training recipe's data: BM25, keyword queries, hard-negative mining and its false-negative rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from finetune import bm25, keywords, negatives, pairs
from finetune.config import TrainConfig, load_split
from finetune.pairs import Pair

from .conftest import hashed_bag_of_words

PASSAGES = [
    "The scheduler retries a failed job three times with exponential backoff.",
    "Retries of failed uploads use a fixed delay of five seconds between attempts.",
    "Invoices are issued on the first working day of every month.",
    "Backups of the invoice database are restored and tested monthly.",
    "The cache evicts the least recently used entry when it is full.",
    "Log files rotate daily and are compressed after seven days.",
]


def config(**changes: object) -> TrainConfig:
    return replace(TrainConfig(Path("base"), Path("data"), Path("out")), **changes)  # type: ignore[arg-type]


def bag_embed(texts: list[str]) -> npt.NDArray[np.float32]:
    return np.stack([hashed_bag_of_words(t) for t in texts])


def test_bm25_ranks_by_rare_shared_terms() -> None:
    index = bm25.Index(PASSAGES)
    scores = index.scores("failed job retries")
    assert int(np.argmax(scores)) == 0
    assert scores[2] == 0.0 and (scores >= 0).all()
    # "the" is a stop word; "invoices" occurs once in six passages, "monthly" once too.
    assert bm25.terms("The Invoices, the monthly") == ["invoices", "monthly"]
    assert index.idf["retries"] == pytest.approx(np.log(1 + (6 - 2 + 0.5) / (2 + 0.5)))


def test_keyword_queries_are_distinctive_ordered_and_unambiguous() -> None:
    index = bm25.Index(PASSAGES)
    query = keywords.keyword_query(PASSAGES[4], index)
    assert query is not None and len(query.split()) == keywords.KEYWORDS
    words = query.split()
    assert sorted(words, key=PASSAGES[4].index) == words  # passage order, surface form
    assert keywords.keyword_query("The and of it", index) is None
    items = [Pair(f"question {i} words", p, f"g{i}") for i, p in enumerate(PASSAGES)]
    items.append(Pair("another question here", PASSAGES[0], "g0"))
    made = keywords.keyword_pairs(items)
    assert len(made) == len(PASSAGES)  # one per distinct passage
    assert all(p.style == "keywords" and p.group == f"g{PASSAGES.index(p.passage)}" for p in made)
    twins = [Pair("q one two", "alpha beta gamma"), Pair("q three four", "Alpha beta, gamma")]
    assert keywords.keyword_pairs(twins) == []  # one keyword query, two passages: dropped


def test_bm25_mining_skips_false_negatives_by_each_rule() -> None:
    items = [
        Pair("scheduler retries failed job", PASSAGES[0], "jobs"),
        Pair("uploads retry delay", PASSAGES[1], "uploads"),
        Pair("when are invoices issued", PASSAGES[2], "billing"),
        Pair("invoice backups", PASSAGES[3], "billing"),
        Pair("cache eviction", PASSAGES[4], "cache"),
        Pair("log rotation", PASSAGES[5], "logs"),
    ]
    mined, report = negatives.mine(items, config(negatives="bm25", hard_negatives=1, seed=3))
    assert [len(p.negatives) for p in mined] == [1] * 6
    by_query = {p.query: p.negatives[0] for p in mined}
    # Rule 2: the other billing passage shares the document, so it is never the negative.
    assert by_query["when are invoices issued"] != PASSAGES[3]
    assert by_query["invoice backups"] != PASSAGES[2]
    # The hardest lexical negative of the scheduler query is the upload-retry passage.
    assert by_query["scheduler retries failed job"] == PASSAGES[1]
    assert report.skipped["positive"] >= 6 and report.skipped["same_group"] >= 1
    assert report.mined + report.random == 6
    for pair in mined:
        assert pair.passage not in pair.negatives
    again, _ = negatives.mine(items, config(negatives="bm25", hard_negatives=1, seed=3))
    assert again == mined


def test_margin_rule_skips_candidates_too_close_to_the_positive() -> None:
    # Two passages the query matches equally: the second would be a false negative.
    items = [
        Pair("rotate logs daily", "Logs rotate daily.", "a"),
        Pair("other", "Logs rotate daily!", "b"),
        Pair("third query", "Something else entirely about caches.", "c"),
    ]
    mined, report = negatives.mine(items, config(negatives="bm25", hard_negatives=1, negative_margin=0.95))
    assert mined[0].negatives == ("Something else entirely about caches.",)
    assert report.skipped["too_close"] >= 1
    loose, _ = negatives.mine(items, config(negatives="bm25", hard_negatives=1, negative_margin=1.0))
    assert loose[0].negatives == ("Something else entirely about caches.",)  # equal score still skipped


def test_model_mining_embeds_each_text_once_and_respects_the_cap(
    make_pairs: Callable[..., list[Pair]],
) -> None:
    items = make_pairs(12)
    seen: list[str] = []

    def counting_embed(texts: list[str]) -> npt.NDArray[np.float32]:
        seen.extend(texts)
        return bag_embed(texts)

    mined, report = negatives.mine(
        items, config(negatives="model", hard_negatives=2, mine_batch_size=2, progress=False), counting_embed
    )
    assert len(seen) == len(set(seen)) == 24  # 12 queries and 12 passages, once each
    assert all(len(p.negatives) == 2 and p.passage not in p.negatives for p in mined)
    assert report.model_passages == 12 and report.mined + report.random == 24
    seen.clear()
    capped, report = negatives.mine(
        items, config(negatives="both", hard_negatives=2, mine_max_passages=5, progress=False), counting_embed
    )
    assert report.model_passages == 5 and len(seen) == 10  # 5 passages and the 5 queries of their pairs
    assert all(len(p.negatives) == 2 for p in capped)
    with pytest.raises(ValueError, match="needs an embed function"):
        negatives.mine(items, config(negatives="model"))


def test_given_negatives_come_first(make_pairs: Callable[..., list[Pair]]) -> None:
    items = make_pairs(6)
    items[0] = replace(items[0], negatives=("a given negative passage",))
    mined, report = negatives.mine(items, config(negatives="bm25", hard_negatives=2))
    assert mined[0].negatives[0] == "a given negative passage" and len(mined[0].negatives) == 2
    assert report.from_data == 1
    assert negatives.with_given(mined, 1)[0].negatives == ("a given negative passage",)


def test_load_split_adds_keyword_queries_to_training_only(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        (folder / f"doc{i}.md").write_text(
            f"# Topic number {i} handbook\n\n"
            f"The widget{i} service stores records in region{i}. It replicates them nightly to zone{i}.\n\n"
            f"Quotas for widget{i} are raised by tickets. Each ticket names a budget owner{i} and a limit.\n"
        )
    base_config = config(data=folder, heldout_fraction=0.3, seed=1)
    split = load_split(base_config)
    styles = {p.style for p in split.train}
    assert styles == {"heading", "sentence", "keywords"}
    assert "keywords" not in {p.style for p in split.heldout}
    train_docs = {p.group for p in split.train}
    assert train_docs.isdisjoint({p.group for p in split.heldout})
    only_headings = load_split(replace(base_config, query_styles=("heading",)))
    assert {p.style for p in only_headings.train} == {"heading"}


def test_written_pairs_keep_style_and_negatives(tmp_path: Path) -> None:
    pair = Pair("q words here", "passage text", "doc", "keywords", ("neg one", "neg two"))
    path = tmp_path / "pairs.jsonl"
    pairs.write_pairs(path, [pair])
    assert pairs.read_pairs(path) == [pair]
