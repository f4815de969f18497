"""The training objective: in-batch negatives contrastive loss with hard negatives, optionally Matryoshka.

For a batch of ``n`` (query, passage) pairs and ``m - n`` extra passages (the pairs' hard
negatives, :mod:`finetune.negatives`), every query is scored against all ``m`` passages by
scaled cosine similarity, and cross-entropy pushes its own passage (row ``i`` for query ``i``)
to the top: the other ``n - 1`` positives and every hard negative are its negatives. This is
InfoNCE, and the same value sentence-transformers' ``MultipleNegativesRankingLoss`` (scale 20,
cosine) computes for (anchor, positive, negative...) columns.

With Matryoshka dimensions the loss is summed over the embeddings truncated to each width
(and re-normalised), as ``MatryoshkaLoss`` with unit weights does, so a client asking the
server for ``dimensions=256`` gets a vector trained to work at that width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

DEFAULT_SCALE = 20.0


def in_batch_negatives(
    queries: torch.Tensor,
    passages: torch.Tensor,
    scale: float = DEFAULT_SCALE,
    dims: Sequence[int] = (),
) -> torch.Tensor:
    """Mean cross-entropy of each query against all passages; query ``i`` matches passage ``i``.

    ``queries`` is ``[n, width]``; ``passages`` is ``[m, width]`` with ``m >= n``: the ``n``
    positives first, then any hard negatives (shared by every query of the batch). Rows may be
    unnormalised. ``dims`` lists Matryoshka widths (each at most ``width``); empty means the
    full width only.
    """
    if queries.ndim != 2 or passages.ndim != 2 or queries.shape[1] != passages.shape[1]:
        raise ValueError(
            f"queries {tuple(queries.shape)} and passages {tuple(passages.shape)} must be [n, d] and [m, d]"
        )
    if passages.shape[0] < queries.shape[0]:
        raise ValueError(f"{passages.shape[0]} passages for {queries.shape[0]} queries: each needs one")
    width = queries.shape[1]
    widths = tuple(dims) or (width,)
    if any(not 0 < d <= width for d in widths):
        raise ValueError(f"Matryoshka dimensions {widths} must each be in 1..{width}")
    labels = torch.arange(queries.shape[0], device=queries.device)
    total = queries.new_zeros(())
    for d in widths:
        q = F.normalize(queries[:, :d], dim=-1)
        p = F.normalize(passages[:, :d], dim=-1)
        total = total + F.cross_entropy(scale * (q @ p.T), labels)
    return total
