"""The parity figures and the gates built on them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from export.parity import (
    BATCH_MAX_ABS_DIFF,
    FP32_MAX_ABS_DIFF,
    batch_invariant,
    batch_variation,
    judge,
    judge_domain,
    recall_at_k,
    top_k_overlap,
    top_k_overlaps,
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


def test_the_gate_refuses_a_variant_that_is_not_batch_invariant() -> None:
    ref = _vectors(rows=64)
    assert judge("int8", ref, ref.copy(), recall=1.0, batch_diff=2e-7).passed
    refused = judge("int8", ref, ref.copy(), recall=1.0, batch_diff=5.5e-3)
    assert not refused.passed
    assert "not batch-invariant" in refused.failures[0] and "5.5e-03" in refused.failures[0]
    assert not judge("fp32", ref, ref.copy(), recall=1.0, batch_diff=BATCH_MAX_ABS_DIFF * 2).passed
    # Measured but not gated (a dynamic int8 fallback, fp16): the caller passes no batch_diff.
    assert judge("int8", ref, ref.copy(), recall=1.0).passed
    assert batch_invariant(BATCH_MAX_ABS_DIFF) and not batch_invariant(BATCH_MAX_ABS_DIFF * 1.01)


class _Encoder:
    """Embeds a text as its length and code points; ``leak`` mixes in the batch's mean, as
    per-batch activation scales do."""

    def __init__(self, leak: float) -> None:
        self.leak = leak
        self.batches: list[list[str]] = []

    def batch(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        own = np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)
        return own + np.float32(self.leak) * own.mean(axis=0)


def test_batch_variation_moves_texts_between_batch_mates_positions_and_lengths() -> None:
    texts = ["a", "bb bb", "ccc ccc ccc", "dddd " * 9]
    exact = _Encoder(leak=0.0)
    assert batch_variation(exact, texts) == 0.0
    alone = [b for b in exact.batches if len(b) == 1]
    together = [b for b in exact.batches if len(b) > 1]
    assert sorted(b[0] for b in alone) == sorted(texts)
    for text in texts:
        assert {b.index(text) for b in together if len(b) == len(texts)} == set(range(len(texts)))
        assert len({tuple(b) for b in together if len(b) == 2 and text in b}) >= 2
    assert batch_variation(_Encoder(leak=1e-3), texts) > BATCH_MAX_ABS_DIFF


def _domain(queries: int = 40, passages: int = 200, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Passages, and queries that are noisy copies of the first ``queries`` of them."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(passages, 32)).astype(np.float32)
    q = (p[:queries] + 0.5 * rng.normal(size=(queries, 32))).astype(np.float32)
    return q, p


def test_a_domain_is_passed_by_a_close_variant_and_failed_by_a_reranking_one() -> None:
    fp32 = _domain()
    figures, failures = judge_domain("prose", fp32, (fp32[0].copy(), fp32[1].copy()))
    assert failures == () and figures.passed
    assert figures.top10_overlap == figures.top10_overlap_min == 1.0
    assert figures.recall_at_10 == 1.0 and figures.queries == 40
    assert figures.fp32_recall_at_10 == recall_at_k(*fp32)
    # Noise that keeps every cosine near 0.995 but reorders the near-ties of each top 10.
    rng = np.random.default_rng(9)
    noisy = tuple((v + 0.1 * rng.normal(size=v.shape)).astype(np.float32) for v in fp32)
    figures, failures = judge_domain("code", fp32, noisy)  # type: ignore[arg-type]
    assert figures.cos_mean > 0.99
    assert figures.top10_overlap < 0.9 and not figures.passed
    assert any(f.startswith("code: top-10 overlap") for f in failures)


def test_a_domain_fails_on_cosine_and_on_lost_recall() -> None:
    fp32 = _domain()
    # Every passage moved far from where fp32 put it: cosine and recall both collapse.
    shuffled = (fp32[0], np.roll(fp32[1], 1, axis=0))
    figures, failures = judge_domain("tech-docs", fp32, shuffled)
    assert figures.cos_mean < 0.5 and figures.recall_at_10 < 0.97
    assert [f.split(":")[1].split()[0] for f in failures] == ["mean", "recall@10", "top-10"]


def test_top_k_overlaps_are_per_query() -> None:
    fp32 = _domain(queries=4, passages=30)
    swapped = (fp32[0][[1, 0, 2, 3]], fp32[1])
    overlaps = top_k_overlaps(fp32, swapped)
    assert overlaps.shape == (4,)
    assert overlaps[2] == overlaps[3] == 1.0 and overlaps[0] < 1.0
    assert top_k_overlap(fp32, swapped) == pytest.approx(overlaps.mean())
