"""Offline graph fusion with ONNX Runtime's transformer optimizer.

The optimizer rewrites the traced graph's subgraphs into fused contrib operators
(``Attention``, ``SkipLayerNormalization``, ``BiasGelu``, ``EmbedLayerNormalization``, ...).
Which of them applied depends on the architecture: MPNet's relative position bias, for
instance, keeps its attention unfused. The counts are recorded in the manifest so that a
change in what fuses is visible, and the pipeline keeps the fused graph only if it is
valid, at parity, and not slower than the plain one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from onnxruntime.transformers.optimizer import optimize_model

from export.checkpoint import Checkpoint
from export.errors import ExportError

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
    return {str(op): int(n) for op, n in sorted(stats.items()) if n}
