"""The quantisation simulators behind docs/RAG.md's index_options figures rank as they should."""

from __future__ import annotations

import numpy as np

from tests.rag.quantization_recall import bbq_scorer, measure, recall, rescored, scalar_scorer, top


def _clustered(n: int, dims: int, seed: int) -> np.ndarray:
    """Unit vectors around a few topics, like sentence embeddings (which are far from uniform)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dims))
    vectors = centres[rng.integers(0, 8, n)] + rng.normal(scale=0.8, size=(n, dims))
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)


def test_quantised_recall_orders_like_the_bits() -> None:
    docs, queries = _clustered(1500, 96, 0), _clustered(40, 96, 1)
    rows = {(r.option, r.rescore): r.recall[10] for r in measure(docs, queries)}
    assert rows[("hnsw", "-")] == 1.0
    assert rows[("int8_hnsw", "none")] > 0.9
    assert rows[("int8_hnsw", "none")] > rows[("int4_hnsw", "none")] > rows[("bbq_hnsw", "none")]
    # Re-ranking the quantised candidates by their float vectors wins back most of the loss.
    assert (
        rows[("bbq_hnsw", "oversample 3")] > rows[("bbq_hnsw", "oversample 2")] > rows[("bbq_hnsw", "none")]
    )


def test_scorers_approximate_the_dot_product() -> None:
    docs, queries = _clustered(500, 64, 2), _clustered(10, 64, 3)
    exact = queries @ docs.T
    # Values outside the confidence interval are clipped: small errors on average, a few larger.
    assert np.abs(scalar_scorer(docs, 7, 1 - 1 / 65)(queries, docs) - exact).mean() < 0.01
    assert np.corrcoef(bbq_scorer(docs)(queries, docs).ravel(), exact.ravel())[0, 1] > 0.8


def test_rescoring_and_recall_helpers() -> None:
    exact = np.array([[0.9, 0.8, 0.1, 0.7]], dtype=np.float32)
    approx = np.array([[0.1, 0.9, 0.8, 0.7]], dtype=np.float32)
    assert top(exact, 2).tolist() == [[0, 1]]
    assert recall(top(exact, 2), top(approx, 2)) == 0.5
    # The window of 2 x 2 holds every document: re-ranked by the exact scores, the top 2 are right.
    assert rescored(approx, exact, 2, 2.0).tolist() == [[0, 1]]
