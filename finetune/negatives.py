"""Hard negatives: for each training pair, passages that look like answers but are not.

:func:`mine` gives every training pair ``hard_negatives`` negatives, the extra columns of the
loss (:func:`finetune.loss.in_batch_negatives`). Candidates are the training passages (never
held-out ones), ranked for the pair's query by

- ``bm25``: :class:`finetune.bm25.Index` over all training passages;
- ``model``: cosine similarity of the base model's embeddings (every distinct query and
  passage embedded once, in batches, with progress lines; at most ``mine_max_passages``
  passages, a seeded sample when there are more: pairs whose positive is outside the sample
  get random negatives);
- ``both``: the two rankings interleaved (model first).

False negatives are the danger: a "negative" that answers the query teaches the model the
wrong thing. Of the ``mine_depth`` best candidates of each ranking, in rank order, a candidate is skipped
(and counted under its rule in the report) when

1. it is the pair's passage, or a passage of another pair with the same query (case-folded);
2. it comes from the pair's source document (same ``group``, or the same passage for pairs
   without one): other sections of the same document often answer the query too;
3. its score is at least ``negative_margin`` (default 0.95) times the positive passage's score
   under the same ranking (when the positive scores 0 or less: at least the positive's score),
   the "positive-aware" rule: so close to the positive that it is likely relevant as well.

Negatives given in the data (``"negatives"`` in a pairs file) come first; mining fills up to
``hard_negatives``; a pair left short (few candidates survive) gets random training passages
that pass rules 1 and 2, so every pair has the same number of columns. The run report counts
each rule's skips, the random fills and the time taken.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from finetune import bm25, progress
from finetune.config import TrainConfig
from finetune.pairs import Pair

logger = logging.getLogger("finetune")

Embed = Callable[[list[str]], npt.NDArray[np.float32]]
"""Unit-length float32 rows for texts, in order (the base model, in the trainer)."""
SCORE_BLOCK = 256
"""Queries scored against the passages at once (bounds the score matrix's memory)."""
RANDOM_TRIES = 50


@dataclass
class MiningReport:
    """What :func:`mine` did; written into the run report."""

    source: str
    per_pair: int
    pairs: int = 0
    passages: int = 0
    model_passages: int = 0
    from_data: int = 0
    mined: int = 0
    random: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: {"positive": 0, "same_group": 0, "too_close": 0})
    seconds: float = 0.0


Ranked = list[tuple[int, float]]


def _bm25_rankings(
    queries: Sequence[str], positives: Sequence[int], index: bm25.Index, depth: int
) -> list[tuple[Ranked, float]]:
    result = []
    for query, positive in zip(queries, positives, strict=True):
        scores = index.scores(query)
        result.append((_top(scores, depth), float(scores[positive])))
    return result


def _top(scores: npt.NDArray[np.float32], depth: int) -> Ranked:
    """The ``depth`` best (row, score), best first, ties by row."""
    depth = min(depth, scores.shape[0])
    rows = np.argpartition(-scores, depth - 1)[:depth] if depth < scores.shape[0] else np.arange(depth)
    rows = rows[np.lexsort((rows, -scores[rows]))]
    return [(int(r), float(scores[r])) for r in rows]


def _embed_all(texts: list[str], embed: Embed, config: TrainConfig) -> npt.NDArray[np.float32]:
    """Embed ``texts`` in chunks of a few batches, longest first, with progress."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunk = config.mine_batch_size * 4
    meter = progress.start(
        "mining negatives",
        len(texts),
        enabled=config.progress,
        unit="text",
        every=max(chunk, len(texts) // 20),
    )
    vectors: npt.NDArray[np.float32] | None = None
    try:
        for start in range(0, len(order), chunk):
            rows = order[start : start + chunk]
            got = np.asarray(embed([texts[i] for i in rows]), dtype=np.float32)
            if vectors is None:
                vectors = np.zeros((len(texts), got.shape[1]), dtype=np.float32)
            vectors[rows] = got
            meter.update(len(rows))
    finally:
        meter.close()
    return vectors if vectors is not None else np.zeros((0, 0), dtype=np.float32)


def _model_rankings(
    queries: Sequence[str],
    positives: Sequence[int],
    pool: Sequence[str],
    embed: Embed,
    config: TrainConfig,
    report: MiningReport,
) -> list[tuple[Ranked, float] | None]:
    """Per pair, the model's ranking over (a sample of) the pool and the positive's score."""
    rows = list(range(len(pool)))
    if len(rows) > config.mine_max_passages:
        rows = sorted(random.Random(f"{config.seed}:mine").sample(rows, config.mine_max_passages))
    column = {row: i for i, row in enumerate(rows)}
    wanted = [i for i, p in enumerate(positives) if p in column]
    distinct = list(dict.fromkeys(queries[i] for i in wanted))
    report.model_passages = len(rows)
    logger.info(
        "mining negatives with the base model: %d queries and %d passages to embed",
        len(distinct),
        len(rows),
    )
    vectors = _embed_all([*distinct, *(pool[r] for r in rows)], embed, config)
    query_vectors, passage_vectors = vectors[: len(distinct)], vectors[len(distinct) :]
    query_row = {q: i for i, q in enumerate(distinct)}
    result: list[tuple[Ranked, float] | None] = [None] * len(queries)
    for start in range(0, len(wanted), SCORE_BLOCK):
        block = wanted[start : start + SCORE_BLOCK]
        scores = query_vectors[[query_row[queries[i]] for i in block]] @ passage_vectors.T
        for line, i in zip(scores, block, strict=True):
            ranked = [(rows[c], s) for c, s in _top(line, config.mine_depth)]
            result[i] = (ranked, float(line[column[positives[i]]]))
    return result


def _interleave(*lists: Ranked) -> Ranked:
    merged: Ranked = []
    seen: set[int] = set()
    for position in range(max((len(x) for x in lists), default=0)):
        for ranked in lists:
            if position < len(ranked) and ranked[position][0] not in seen:
                seen.add(ranked[position][0])
                merged.append(ranked[position])
    return merged


def mine(
    items: Sequence[Pair], config: TrainConfig, embed: Embed | None = None
) -> tuple[list[Pair], MiningReport]:
    """``items`` with ``config.hard_negatives`` negatives each (see the module docstring).

    ``embed`` is required for the ``model`` and ``both`` sources. Deterministic for the same
    pairs, settings and embeddings.
    """
    started = time.monotonic()
    k = config.hard_negatives
    report = MiningReport(config.negatives, k, pairs=len(items))
    pool = list(dict.fromkeys(p.passage for p in items))
    report.passages = len(pool)
    row_of = {text: i for i, text in enumerate(pool)}
    groups: dict[int, set[str]] = {}
    answers: dict[str, set[int]] = {}
    for pair in items:
        groups.setdefault(row_of[pair.passage], set()).add(pair.split_key())
        answers.setdefault(pair.query.casefold(), set()).add(row_of[pair.passage])
    queries = [p.query for p in items]
    positives = [row_of[p.passage] for p in items]

    bm25_ranks: list[tuple[Ranked, float]] | None = None
    model_ranks: list[tuple[Ranked, float] | None] | None = None
    if config.negatives in ("bm25", "both"):
        bm25_ranks = _bm25_rankings(queries, positives, bm25.Index(pool), config.mine_depth)
    if config.negatives in ("model", "both"):
        if embed is None:
            raise ValueError(f"negatives={config.negatives!r} needs an embed function")
        model_ranks = _model_rankings(queries, positives, pool, embed, config, report)

    def allowed(i: int, row: int) -> str | None:
        """The rule (1 or 2) that excludes ``row`` as a negative of pair ``i``, if any."""
        pair = items[i]
        if row in answers[pair.query.casefold()] or pool[row] == pair.query:
            return "positive"
        if pair.split_key() in groups[row]:
            return "same_group"
        return None

    def kept(i: int, ranked: tuple[Ranked, float] | None) -> Ranked:
        """The candidates of one ranking that pass all three rules, in rank order."""
        if ranked is None:
            return []
        candidates, positive = ranked
        limit = positive * config.negative_margin if positive > 0 else positive
        result = []
        for row, score in candidates:
            rule = allowed(i, row) or ("too_close" if score >= limit else None)
            if rule is None:
                result.append((row, score))
            else:
                report.skipped[rule] += 1
        return result

    result = []
    for i, pair in enumerate(items):
        chosen = list(dict.fromkeys(pair.negatives))[:k]
        report.from_data += len(chosen)
        lists = []
        if model_ranks is not None:
            lists.append(kept(i, model_ranks[i]))
        if bm25_ranks is not None:
            lists.append(kept(i, bm25_ranks[i]))
        for row, _ in _interleave(*lists):
            if len(chosen) >= k:
                break
            if pool[row] not in chosen:
                chosen.append(pool[row])
                report.mined += 1
        rng = random.Random(f"{config.seed}:negatives:{i}")
        for _ in range(RANDOM_TRIES):
            if len(chosen) >= k:
                break
            row = rng.randrange(len(pool))
            if pool[row] not in chosen and allowed(i, row) is None:
                chosen.append(pool[row])
                report.random += 1
        result.append(replace(pair, negatives=tuple(chosen)))
    report.seconds = round(time.monotonic() - started, 1)
    return result, report


def with_given(items: Sequence[Pair], count: int) -> list[Pair]:
    """``items`` with their given negatives cut to ``count`` (no mining: ``--negatives none``)."""
    return [replace(p, negatives=p.negatives[:count]) for p in items]
