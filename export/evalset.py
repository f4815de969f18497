"""The user's own held-out retrieval set (``--eval-data``): read it, score a graph on it, gate.

The built-in domains (:mod:`export.domains`) say whether a quantised variant ranks like fp32
on general kinds of text; the set an enterprise holds out from its own fine-tuning says it
on *its* text. ``python -m export SRC OUT --eval-data DIR`` measures nDCG@10 and recall@10
of every variant on it, at the full width and at every narrower width a client may ask for
with ``dimensions`` (:func:`widths`: the Matryoshka ladder), and refuses a reduced-precision
variant that loses more than ``--eval-margin`` nDCG@10 to fp32 at any of them.

The format is the fine-tuning one (:mod:`finetune.pairs`): a JSONL file of
``{"query": ..., "passage": ...}`` pairs, or a directory holding ``heldout.jsonl`` (a
dataset from ``python -m finetune dataset``, or a training output directory, whose
``training/heldout.jsonl`` is read). A query that appears in several pairs is relevant to
all of their passages; every distinct passage is in the corpus searched. Reading needs no
torch, so a bad file is refused before the export starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from export.errors import UsageError
from finetune.errors import UsageError as DataError
from finetune.metrics import CUTOFF, Qrels, build_qrels, rank, retrieval_metrics, truncate
from finetune.pairs import HELDOUT_FILE, heldout_file, read_pairs
from server.manifest import sha256_file

Vectors = npt.NDArray[np.float32]

# Widths a Matryoshka-trained model is commonly cut to; a model's own width is always added.
LADDER: tuple[int, ...] = (1024, 768, 512, 384, 256, 128, 64)
DEFAULT_MARGIN = 0.01
MIN_QUERIES = 20


@dataclass(frozen=True)
class EvalSet:
    """Queries, the passages searched, the relevant passages of each query, and where they came from."""

    name: str
    sha256: str
    qrels: Qrels

    def describe(self) -> dict[str, str | int]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "queries": len(self.qrels.queries),
            "passages": len(self.qrels.corpus),
        }


def widths(dims: int) -> tuple[int, ...]:
    """The full width and every narrower width of :data:`LADDER`, widest first."""
    return (dims, *(w for w in LADDER if w < dims))


def load(path: Path) -> EvalSet:
    """Read the held-out pairs at ``path``; a :class:`UsageError` says what is wrong with them."""
    try:
        file = heldout_file(path)
        qrels = build_qrels(read_pairs(file))
    except DataError as exc:
        raise UsageError(f"--eval-data: {exc}") from exc
    except OSError as exc:
        raise UsageError(f"--eval-data {path}: cannot read it ({exc})") from exc
    if len(qrels.queries) < MIN_QUERIES:
        raise UsageError(
            f"--eval-data {file}: {len(qrels.queries)} distinct queries; at least {MIN_QUERIES} are needed "
            "for a figure worth gating on"
        )
    return EvalSet(
        name=file.name if file.name != HELDOUT_FILE else f"{file.parent.name}/{file.name}",
        sha256=sha256_file(file),
        qrels=qrels,
    )


def score(
    queries: Vectors, passages: Vectors, relevant: Sequence[frozenset[int]], dims: int
) -> dict[str, dict[str, float]]:
    """nDCG@10 and recall@10 at each of :func:`widths` (keys are the widths, as strings)."""
    figures: dict[str, dict[str, float]] = {}
    for width in widths(dims):
        scores = truncate(queries, width) @ truncate(passages, width).T
        result = retrieval_metrics(rank(scores, CUTOFF), relevant, (10,))
        figures[str(width)] = {"ndcg_at_10": result["ndcg@10"], "recall_at_10": result["recall@10"]}
    return figures


def judge(
    fp32: dict[str, dict[str, float]], candidate: dict[str, dict[str, float]], margin: float
) -> tuple[str, ...]:
    """Why a reduced-precision variant fails the user's set: nDCG@10 below fp32's by more than
    ``margin`` at some width (empty when it passes)."""
    return tuple(
        f"eval-data at {width} dims: nDCG@10 {candidate[width]['ndcg_at_10']:.4f} is "
        f"{fp32[width]['ndcg_at_10'] - candidate[width]['ndcg_at_10']:.4f} below fp32's "
        f"{fp32[width]['ndcg_at_10']:.4f} (margin {margin})"
        for width in fp32
        if fp32[width]["ndcg_at_10"] - candidate[width]["ndcg_at_10"] > margin
    )
