"""The in-batch negatives loss: a hand-computed value, and agreement with sentence-transformers."""

from __future__ import annotations

import math

import pytest
import torch

from finetune.loss import in_batch_negatives


def test_two_pair_batch_matches_hand_computation() -> None:
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    passages = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    # Row 0: cos = [1, 1/sqrt2], right answer 0. Row 1: cos = [0, 1/sqrt2], right answer 1.
    c = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(20) / (math.exp(20) + math.exp(20 * c)))
    row1 = -math.log(math.exp(20 * c) / (1 + math.exp(20 * c)))
    assert float(in_batch_negatives(queries, passages)) == pytest.approx((row0 + row1) / 2, rel=1e-5)


def test_matches_sentence_transformers_mnrl_and_matryoshka_sum() -> None:
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(6, 32, generator=generator)
    passages = torch.randn(6, 32, generator=generator)
    reference = losses.MultipleNegativesRankingLoss(model=None)

    def st_loss(q: torch.Tensor, p: torch.Tensor) -> float:
        return float(reference.compute_loss_from_embeddings([q, p], None))

    assert float(in_batch_negatives(queries, passages)) == pytest.approx(st_loss(queries, passages), rel=1e-5)
    expected = sum(st_loss(queries[:, :d], passages[:, :d]) for d in (32, 16, 8))
    assert float(in_batch_negatives(queries, passages, dims=(32, 16, 8))) == pytest.approx(expected, rel=1e-5)


def test_hard_negative_columns_match_sentence_transformers_triplets() -> None:
    losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
    generator = torch.Generator().manual_seed(1)
    queries, positives, negatives = (torch.randn(5, 16, generator=generator) for _ in range(3))
    reference = losses.MultipleNegativesRankingLoss(model=None)
    expected = float(reference.compute_loss_from_embeddings([queries, positives, negatives], None))
    got = in_batch_negatives(queries, torch.cat([positives, negatives]))
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # A hard negative can only make the task harder: the loss never falls when columns are added.
    assert float(got) >= float(in_batch_negatives(queries, positives))
    matryoshka = in_batch_negatives(queries, torch.cat([positives, negatives]), dims=(16, 8))
    narrow = float(
        reference.compute_loss_from_embeddings([queries[:, :8], positives[:, :8], negatives[:, :8]], None)
    )
    assert float(matryoshka) == pytest.approx(expected + narrow, rel=1e-5)


def test_rejects_bad_shapes_and_widths() -> None:
    with pytest.raises(ValueError, match="each needs one"):
        in_batch_negatives(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"must be \[n, d\] and \[m, d\]"):
        in_batch_negatives(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="Matryoshka"):
        in_batch_negatives(torch.ones(2, 4), torch.ones(2, 4), dims=(8,))
