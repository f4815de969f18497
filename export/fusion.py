"""Offline graph fusion with ONNX Runtime's transformer optimizer, plus MPNet's attention.

The optimizer rewrites the traced graph's subgraphs into fused contrib operators
(``Attention``, ``SkipLayerNormalization``, ``BiasGelu``, ``EmbedLayerNormalization``, ...).
Which of them applied depends on the architecture: MPNet's relative position bias defeats
its attention fusion, so for MPNet :mod:`export.attention` then fuses each layer's
attention into ``MultiHeadAttention``; that graph replaces the optimizer's only if it
computes the same vectors on a padded test batch (else the optimizer's graph is kept, with
a warning). The counts are recorded in the manifest so that a change in what fuses is
visible, and the pipeline keeps the fused graph only if it is valid, at parity, and not
slower than the plain one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnxruntime.transformers.optimizer import optimize_model

from export import attention
from export.checkpoint import Checkpoint
from export.errors import ExportError
from export.parity import BATCH_MAX_ABS_DIFF, FP32_MAX_ABS_DIFF

logger = logging.getLogger(__name__)

# ORT's basic level only folds constants and removes no-ops, so the result still runs on
# every execution provider; the Python fusions that follow are the provider-neutral ones.
ORT_OPT_LEVEL = 1


def optimize(source: Path, target: Path, checkpoint: Checkpoint) -> dict[str, int]:
    """Fuse ``source`` into ``target``; returns the count of each fused operator that applied."""
    # The optimizer logs every fusion pass at INFO/WARNING; the counts returned here are the
    # part worth showing.
    optimizer_logger = logging.getLogger("onnxruntime.transformers")
    previous = optimizer_logger.level
    optimizer_logger.setLevel(logging.ERROR)
    try:
        optimized = optimize_model(
            str(source),
            model_type=checkpoint.family.optimizer_type,
            num_heads=checkpoint.num_heads,
            hidden_size=checkpoint.hidden_size,
            opt_level=ORT_OPT_LEVEL,
            use_gpu=False,
        )
        stats = optimized.get_fused_operator_statistics()
        optimized.save_model_to_file(str(target))
    except Exception as exc:
        raise ExportError(f"the ONNX Runtime transformer optimizer failed: {exc}") from exc
    finally:
        optimizer_logger.setLevel(previous)
    counts = {str(op): int(n) for op, n in stats.items() if n}
    if checkpoint.model_type == "mpnet":
        fused = _fuse_attention(optimized.model, target, checkpoint)
        if fused:
            counts[attention.FUSED_OP] = fused
    return dict(sorted(counts.items()))


def _fuse_attention(model: onnx.ModelProto, target: Path, checkpoint: Checkpoint) -> int:
    """Replace ``target`` (``model`` as saved) with ``model`` after :func:`attention.fuse_attention`
    when that graph runs and agrees with ``target``; returns how many attention blocks it fused."""
    candidate = target.with_name(f"{target.stem}.attention{target.suffix}")
    try:
        fused = attention.fuse_attention(model, checkpoint.num_heads, checkpoint.hidden_size)
        if not fused:
            return 0
        onnx.save(model, str(candidate))
        problem = _disagreement(target, candidate)
    except Exception as exc:
        problem = f"it failed: {exc}"
    if problem is not None:
        candidate.unlink(missing_ok=True)
        logger.warning("MPNet attention fusion not used (%s); keeping the optimizer's graph", problem)
        return 0
    candidate.replace(target)
    return fused


Feed = dict[str, npt.NDArray[np.int64]]


def _test_batches(model: Path) -> tuple[Feed, Feed]:
    """Two rows of random token ids, the second padded, and that second row alone: every
    input ``model`` declares."""
    names = [i.name for i in onnx.load(str(model), load_external_data=False).graph.input]
    long, short = 16, 9
    mask = (np.arange(long)[None, :] < np.array([[long], [short]])).astype(np.int64)
    # Ids above every special token of the supported tokenizers; padding gets id 1, MPNet's pad.
    ids = np.where(mask == 1, np.random.default_rng(0).integers(5, 100, mask.shape), 1)
    arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    batch = {name: arrays[name] for name in names}
    return batch, {name: array[1:, :short] for name, array in batch.items()}


def _run(model: Path, feeds: Sequence[Feed]) -> list[npt.NDArray[np.float64]]:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return [np.asarray(session.run(None, feed)[0], dtype=np.float64) for feed in feeds]


def _disagreement(reference: Path, candidate: Path) -> str | None:
    """Why ``candidate`` is not ``reference``'s function on a padded test batch, or None.

    Its vectors must be within the fp32 gate's element tolerance of the reference's, and the
    padded row must come out as it does alone (batch invariance).
    """
    batch, row = _test_batches(reference)
    (expected,) = _run(reference, [batch])
    got, alone = _run(candidate, [batch, row])
    diff = float(np.abs(got - expected).max()) if np.isfinite(got).all() else float("inf")
    if not diff <= FP32_MAX_ABS_DIFF:
        return f"its vectors differ by {diff:.1e} from the optimizer's graph"
    moved = float(np.abs(alone - got[1:]).max())
    if not moved <= BATCH_MAX_ABS_DIFF:
        return f"a padded row moves by {moved:.1e} with its batch mate"
    return None
