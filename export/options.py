"""What an export is asked to do, and the checks that refuse bad input in a second.

Nothing here imports torch (nor does :mod:`export.checkpoint`): ``python -m export`` runs
:func:`preflight` before it imports the pipeline, so a missing checkpoint, an unsupported
architecture, a bad flag or an existing output directory is refused with exit code 2 before
PyTorch and transformers take their 10 to 50 seconds to load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export import checkpoint as checkpoints
from export import evalset
from export.errors import UsageError
from server.manifest import VARIANTS

DEFAULT_VARIANTS: tuple[str, ...] = ("fp32", "int8")
MIN_OPSET, MAX_OPSET = 14, 21


@dataclass(frozen=True)
class ExportOptions:
    """How to export; every field has the CLI's default.

    ``variants`` are attempted; ``required`` ones must pass their gate or the export fails
    (fp32 is always required). ``None`` for ``pooling``, ``max_length`` and ``normalize``
    means "as the checkpoint's configs say".
    """

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    required: frozenset[str] = frozenset({"fp32"})
    pooling: str | None = None
    max_length: int | None = None
    normalize: bool | None = None
    opset: int = 17
    force: bool = False
    name: str | None = None
    eval_data: Path | None = None
    """The user's held-out retrieval set (:mod:`export.evalset`), or None."""
    eval_margin: float = evalset.DEFAULT_MARGIN
    """The nDCG@10 a reduced-precision variant may lose to fp32 on ``eval_data``, at any width."""


def check_options(options: ExportOptions) -> None:
    unknown = [v for v in options.variants if v not in VARIANTS]
    if unknown:
        raise UsageError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if "fp32" not in options.variants:
        raise UsageError("--variants must include fp32: the other variants are gated against it")
    if not MIN_OPSET <= options.opset <= MAX_OPSET:
        raise UsageError(f"--opset must be between {MIN_OPSET} and {MAX_OPSET}, not {options.opset}")
    if not 0.0 <= options.eval_margin < 1.0:
        raise UsageError(
            f"--eval-margin must be from 0 to below 1 (nDCG@10 points / 100), not {options.eval_margin}"
        )


def check_output(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory; choose another output path")
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; pass --force to replace it")


def preflight(source: Path, out: Path, options: ExportOptions) -> checkpoints.Checkpoint:
    """Every check that needs no model loaded: the options, the output path, the checkpoint's
    configs and the ``--eval-data`` file."""
    check_options(options)
    check_output(out.absolute(), options.force)
    checkpoint = checkpoints.inspect(source, options.pooling, options.max_length, options.normalize)
    if options.eval_data is not None:
        evalset.load(options.eval_data)
    return checkpoint
