"""Retrieval quality metrics over a ranked corpus: recall@k, MRR@10 and nDCG@10.

Every query has a set of relevant corpus entries (binary relevance). For a query with
relevant set ``R`` and ranking ``d_1, d_2, ...``:

- ``recall@k`` = ``|R ∩ {d_1..d_k}| / |R|``;
- ``mrr@10`` = ``1 / rank`` of the first relevant entry within the top 10, else 0;
- ``ndcg@10`` = ``sum_{i<=10, d_i in R} 1/log2(i+1)`` divided by the same sum for an ideal
  ranking (``min(|R|, 10)`` relevant entries first).

Each metric is the mean over queries. Rankings sort by descending score; equal scores keep
corpus order, so results never depend on the sort algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from finetune.pairs import Pair

CUTOFF = 10


@dataclass(frozen=True)
class Qrels:
    """Unique queries, unique corpus passages, and the relevant passage indices per query."""

    queries: tuple[str, ...]
    corpus: tuple[str, ...]
    relevant: tuple[frozenset[int], ...]
    distractors: int = 0


def build_qrels(items: Sequence[Pair], distractors: Sequence[str] = ()) -> Qrels:
    """Queries and corpus from pairs (duplicates merged), plus distractor passages at the end.

    A query that appears in several pairs is relevant to all of their passages.
    """
    corpus: dict[str, int] = {}
    relevant: dict[str, set[int]] = {}
    for pair in items:
        index = corpus.setdefault(pair.passage, len(corpus))
        relevant.setdefault(pair.query, set()).add(index)
    added = 0
    for text in distractors:
        if text not in corpus:
            corpus[text] = len(corpus)
            added += 1
    return Qrels(
        queries=tuple(relevant),
        corpus=tuple(corpus),
        relevant=tuple(frozenset(r) for r in relevant.values()),
        distractors=added,
    )


def rank(scores: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int64]:
    """Top ``depth`` corpus indices per query row, best first; ties keep corpus order."""
    depth = min(depth, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
    return order.astype(np.int64)


def retrieval_metrics(
    ranking: npt.NDArray[np.int64],
    relevant: Sequence[frozenset[int]],
    ks: Sequence[int],
) -> dict[str, float]:
    """Mean ``recall@k`` for each k, ``mrr@10`` and ``ndcg@10`` (see the module docstring).

    ``ranking`` holds at least ``max(ks)`` and 10 columns (or the whole corpus).
    """
    if ranking.shape[0] != len(relevant) or ranking.shape[0] == 0:
        raise ValueError(
            f"{ranking.shape[0]} rankings for {len(relevant)} relevance sets; need equal, non-zero"
        )
    if any(not r for r in relevant):
        raise ValueError("every query needs at least one relevant passage")
    discounts = 1.0 / np.log2(np.arange(2, CUTOFF + 2))
    recall = {k: 0.0 for k in ks}
    mrr = ndcg = 0.0
    for row, rel in zip(ranking, relevant, strict=True):
        hits = np.fromiter((int(d) in rel for d in row), dtype=bool, count=len(row))
        for k in ks:
            recall[k] += hits[:k].sum() / len(rel)
        top = hits[:CUTOFF]
        if top.any():
            mrr += 1.0 / (int(np.argmax(top)) + 1)
        ideal = discounts[: min(len(rel), CUTOFF)].sum()
        ndcg += float(discounts[: len(top)][top].sum()) / ideal
    n = len(relevant)
    result = {f"recall@{k}": float(recall[k] / n) for k in ks}
    result["mrr@10"] = mrr / n
    result["ndcg@10"] = ndcg / n
    return result


def truncate(vectors: npt.NDArray[np.float32], dims: int) -> npt.NDArray[np.float32]:
    """The first ``dims`` components of each row, re-normalised to unit length."""
    cut = vectors[:, :dims].astype(np.float32)
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (cut / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return unit
