"""The parity figures and the gates built on them."""

from __future__ import annotations

import numpy as np
import pytest

from export.parity import (
    FP32_MAX_ABS_DIFF,
    judge,
    recall_at_k,
    top_k_overlap,
)


def _vectors(rows: int = 8, dims: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, dims)).astype(np.float32)


def test_identical_vectors_pass_the_fp32_gate() -> None:
    ref = _vectors()
    verdict = judge("fp32", ref, ref.copy(), recall=1.0)
    assert verdict.passed
    assert verdict.parity.cos_min == pytest.approx(1.0)
    assert verdict.parity.max_abs_diff == 0.0
    assert verdict.parity.texts == 8


def test_fp32_gate_fails_on_abs_diff_even_when_direction_matches() -> None:
    ref = _vectors()
    scaled = ref * np.float32(1.01)  # same direction, cosine 1.0, but not the same vector
    verdict = judge("fp32", ref, scaled, recall=1.0)
    assert verdict.parity.cos_min == pytest.approx(1.0)
    assert verdict.parity.max_abs_diff > FP32_MAX_ABS_DIFF
    assert not verdict.passed
    assert "max abs diff" in verdict.failures[0]


def test_fp32_gate_fails_on_one_bad_row() -> None:
    ref = _vectors()
    cand = ref.copy()
    cand[3] = -cand[3]
    verdict = judge("fp32", ref, cand, recall=1.0)
    assert verdict.parity.cos_min == pytest.approx(-1.0)
    assert any("min cosine" in f for f in verdict.failures)


def test_reduced_gate_uses_mean_cosine_and_recall() -> None:
    ref = _vectors(rows=64)
    noisy = ref + np.random.default_rng(1).normal(scale=0.05, size=ref.shape).astype(np.float32)
    assert judge("int8", ref, noisy, recall=0.99).passed
    low_recall = judge("int8", ref, noisy, recall=0.9)
    assert not low_recall.passed
    assert "recall@10" in low_recall.failures[0]
    very_noisy = ref + np.random.default_rng(1).normal(scale=1.0, size=ref.shape).astype(np.float32)
    assert any("mean cosine" in f for f in judge("fp16", ref, very_noisy, recall=1.0).failures)


def test_non_finite_output_fails_any_gate() -> None:
    ref = _vectors()
    cand = ref.copy()
    cand[0, 0] = np.nan
    assert not judge("int8", ref, cand, recall=1.0).passed


def test_shape_mismatch_is_an_error() -> None:
    from export.errors import ExportError

    with pytest.raises(ExportError, match="shape"):
        judge("fp32", _vectors(dims=16), _vectors(dims=8), recall=1.0)


def test_recall_counts_queries_whose_own_passage_is_in_the_top_k() -> None:
    passages = np.eye(20, dtype=np.float32)
    queries = passages.copy()
    assert recall_at_k(queries, passages, k=1) == 1.0
    # Point the first 5 queries at the wrong passage: they miss even at k=1 ... but not at k=20.
    queries[:5] = np.roll(passages[:5], 1, axis=1)
    assert recall_at_k(queries, passages, k=1) == pytest.approx(0.75)
    assert recall_at_k(queries, passages, k=20) == 1.0


def test_top_k_overlap() -> None:
    passages = _vectors(rows=50, seed=2)
    queries = _vectors(rows=5, seed=3)
    assert top_k_overlap((queries, passages), (queries, passages)) == 1.0
    shuffled = passages[::-1].copy()
    assert top_k_overlap((queries, passages), (queries, shuffled)) < 1.0
