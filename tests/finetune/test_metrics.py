"""Ranking metrics on hand-made rankings whose values are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from finetune.metrics import build_qrels, rank, retrieval_metrics, truncate
from finetune.pairs import Pair


def test_known_ranks_give_exact_recall_mrr_and_ndcg() -> None:
    ranking = np.array(
        [
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],  # relevant {0} at rank 1
            [1, 2, 3, 0, 4, 5, 6, 7, 8, 9, 10, 11],  # relevant {3} at rank 3
            [2, 1, 0, 3, 4, 5, 6, 7, 8, 9, 10, 11],  # relevant {1, 4} at ranks 2 and 5
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],  # relevant {11} at rank 12: outside every cut-off
        ],
        dtype=np.int64,
    )
    relevant = [frozenset({0}), frozenset({3}), frozenset({1, 4}), frozenset({11})]

    got = retrieval_metrics(ranking, relevant, ks=(1, 2, 5, 10))

    assert got["recall@1"] == pytest.approx((1 + 0 + 0 + 0) / 4)
    assert got["recall@2"] == pytest.approx((1 + 0 + 0.5 + 0) / 4)
    assert got["recall@5"] == pytest.approx((1 + 1 + 1 + 0) / 4)
    assert got["recall@10"] == pytest.approx((1 + 1 + 1 + 0) / 4)
    assert got["mrr@10"] == pytest.approx((1 + 1 / 3 + 1 / 2 + 0) / 4)
    ndcg_q3 = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3))
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4) + ndcg_q3 + 0) / 4)


def test_rank_sorts_by_score_and_breaks_ties_by_corpus_order() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [0.3, 0.3, 0.3, 0.3]], dtype=np.float32)
    assert rank(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2]]
    assert rank(scores, 10).shape == (2, 4)


def test_qrels_merge_duplicate_passages_and_queries() -> None:
    items = [Pair("q1", "p1"), Pair("q2", "p1"), Pair("q1", "p2")]
    qrels = build_qrels(items, distractors=["p2", "d1"])
    assert qrels.queries == ("q1", "q2")
    assert qrels.corpus == ("p1", "p2", "d1")
    assert qrels.relevant == (frozenset({0, 1}), frozenset({0}))
    assert qrels.distractors == 1


def test_truncate_renormalises() -> None:
    vectors = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    assert truncate(vectors, 2)[0].tolist() == pytest.approx([0.6, 0.8])


def test_metrics_reject_mismatched_input() -> None:
    with pytest.raises(ValueError, match="relevance sets"):
        retrieval_metrics(np.zeros((2, 10), dtype=np.int64), [frozenset({1})], ks=(1,))
    with pytest.raises(ValueError, match="at least one relevant"):
        retrieval_metrics(np.zeros((1, 10), dtype=np.int64), [frozenset()], ks=(1,))
