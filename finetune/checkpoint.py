"""Resumable training checkpoints: the model, the optimiser, the schedule and the RNG.

A run's checkpoints live in ``OUT/training/checkpoints/step-NNNNNN/``:

- ``model/``: a complete sentence-transformers checkpoint (it can be evaluated or exported
  on its own);
- ``optimizer.pt``: optimiser and LR-schedule state and the torch RNG state, so a resumed
  run draws the same dropout masks and reaches the same weights as an uninterrupted one;
- ``state.json``: the step reached, the loss history and the probe losses measured before
  training.

A checkpoint is written under a temporary name and renamed when complete, so an interrupt
during the write never leaves a half-written "latest" checkpoint; older ones are removed
only after the new one is in place.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from finetune.errors import RunError, UsageError

MODEL_DIR = "model"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
_NAME = re.compile(r"^step-(\d{6,})$")


@dataclass
class Progress:
    """Where a run stands: completed optimiser steps and what was measured so far."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    probe_before: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def directory_for(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def latest(root: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``root``, or None."""
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return max(found)[1] if found else None


def save(
    root: Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
) -> Path:
    """Write a checkpoint for ``progress.step`` and remove the older ones; return its path."""
    final = directory_for(root, progress.step)
    staging = root / f".{final.name}.partial"
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        model.save(str(staging / MODEL_DIR), create_model_card=False)
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            staging / OPTIMIZER_FILE,
        )
        (staging / STATE_FILE).write_text(json.dumps(asdict(progress), indent=1) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except OSError as exc:
        raise RunError(
            f"cannot write checkpoint {final}: {exc}; free disk space or choose another --out"
        ) from exc
    for old in root.iterdir():
        if old != final and _NAME.match(old.name):
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_progress(path: Path) -> Progress:
    """Read ``state.json`` of a checkpoint."""
    try:
        data = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        return Progress(
            step=int(data["step"]),
            losses=[float(x) for x in data["losses"]],
            probe_before={str(k): float(v) for k, v in data["probe_before"].items()},
            seconds=float(data.get("seconds", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"checkpoint {path} is unreadable ({exc}); delete it to resume from an earlier one"
        ) from exc


def restore(
    path: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Load optimiser, schedule and RNG state from a checkpoint into live objects."""
    try:
        state = torch.load(path / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise UsageError(f"checkpoint {path} has no readable {OPTIMIZER_FILE} ({exc}); delete it") from exc
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
