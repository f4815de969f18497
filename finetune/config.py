"""The settings of one training run, and every check that can be made before torch is imported.

:class:`TrainConfig` is what :func:`finetune.trainer.train` runs. :meth:`TrainConfig.validate`
refuses settings no run could use, a ``--base`` that is not a checkpoint and an ``--out``
that holds something else; :func:`load_split` reads ``--data`` into the training and held-out
pairs (query styles included) and refuses missing, empty or too small data. Both read files
only, so ``python -m finetune train`` answers bad input in seconds, before the heavy imports.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from finetune import base, keywords, pairs
from finetune.errors import UsageError

Precision = Literal["fp32", "bf16"]
NegativeSource = Literal["none", "bm25", "model", "both"]
QUERY_STYLES = ("heading", "sentence", "keywords")
TRAINING_DIR = "training"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.json"
CHECKPOINTS_DIR = "checkpoints"
# Settings a resumed run must share with the run it continues, or the result would be a
# mixture of two different trainings. The base is compared by content hash, not by path.
RESUME_KEYS = (
    "base",
    "epochs",
    "batch_size",
    "lr",
    "warmup_ratio",
    "weight_decay",
    "max_steps",
    "max_seq_length",
    "matryoshka",
    "scale",
    "seed",
    "precision",
    "query_styles",
    "negatives",
    "hard_negatives",
    "negative_margin",
    "mine_depth",
    "mine_max_passages",
)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; the defaults suit MiniLM-L6 on a 2-core CPU.

    ``max_seq_length`` bounds training inputs only (in tokens); the saved checkpoint keeps the
    base model's limit. ``max_steps`` 0 means "all epochs". ``matryoshka`` lists the widths
    the loss is also computed at (empty: full width only). ``checkpoint_every`` and
    ``log_every`` count optimiser steps. The recipe (:mod:`finetune.negatives`):
    ``query_styles`` generated per passage, ``hard_negatives`` mined per training pair from
    ``negatives`` (``none``, ``bm25``, ``model``: the base model's embeddings, ``both``),
    skipping candidates scoring at least ``negative_margin`` times the positive, among the
    ``mine_depth`` best of at most ``mine_max_passages`` passages.
    """

    base: Path
    data: Path
    out: Path
    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_steps: int = 0
    max_seq_length: int = 128
    matryoshka: tuple[int, ...] = ()
    scale: float = 20.0
    heldout_fraction: float = 0.1
    seed: int = 42
    query_styles: tuple[str, ...] = QUERY_STYLES
    negatives: NegativeSource = "model"
    hard_negatives: int = 1
    negative_margin: float = 0.95
    mine_depth: int = 30
    mine_max_passages: int = 50_000
    mine_batch_size: int = 64
    checkpoint_every: int = 50
    keep_checkpoints: bool = False
    resume: bool = False
    device: str = "auto"
    precision: Precision = "fp32"
    probe_pairs: int = 64
    progress: bool = True
    log_every: int = 10

    @property
    def training_dir(self) -> Path:
        return self.out / TRAINING_DIR

    def resuming(self) -> bool:
        """True when ``--resume`` finds a run (its ``training/config.json``) to continue."""
        return self.resume and (self.training_dir / CONFIG_FILE).is_file()

    def validate(self) -> None:
        """Raise :class:`UsageError` for settings, a base or an output no run could use."""
        unknown = sorted(set(self.query_styles) - set(QUERY_STYLES))
        checks = [
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 2, "--batch-size must be at least 2 (in-batch negatives need company)"),
            (self.lr > 0, "--lr must be positive"),
            (0 <= self.warmup_ratio < 1, "--warmup-ratio must be in [0, 1)"),
            (self.weight_decay >= 0, "--weight-decay must be non-negative"),
            (self.max_steps >= 0, "--max-steps must be 0 (no cap) or positive"),
            (self.max_seq_length >= 8, "--max-seq-length must be at least 8 tokens"),
            (all(d > 0 for d in self.matryoshka), "--matryoshka widths must be positive"),
            (self.scale > 0, "--scale must be positive"),
            (0 <= self.heldout_fraction < 1, "--heldout-fraction must be in [0, 1)"),
            (not unknown, f"--query-styles: unknown {unknown}; choose from {', '.join(QUERY_STYLES)}"),
            (self.hard_negatives >= 0, "--hard-negatives must be 0 or more"),
            (0 < self.negative_margin <= 1, "--negative-margin must be in (0, 1]"),
            (self.mine_depth >= 1, "--mine-depth must be at least 1"),
            (self.mine_max_passages >= 2, "--mine-max-passages must be at least 2"),
            (self.mine_batch_size >= 1, "--mine-batch-size must be at least 1"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
            (self.log_every >= 1, "--log-every must be at least 1"),
            (self.probe_pairs >= 2, "probe_pairs must be at least 2"),
            (
                self.device in ("auto", "cpu") or self.device.startswith("cuda"),
                "--device is auto, cpu or cuda[:N]",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        base.check(self.base)
        self._check_out()

    def _check_out(self) -> None:
        training = self.training_dir
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} is a file; choose a directory")
        if self.resuming():
            saved = json.loads((training / CONFIG_FILE).read_text(encoding="utf-8"))
            current = self.resume_view()
            changed = sorted(k for k in RESUME_KEYS if saved.get(k) != current[k])
            if changed:
                detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
                raise UsageError(f"--resume with different settings ({detail}); rerun with the original ones")
            if (training / REPORT_FILE).is_file():
                raise UsageError(
                    f"{self.out} already holds a finished run; choose another --out to train again"
                )
            return
        if self.out.exists() and any(self.out.iterdir()):
            hint = "pass --resume to continue it" if (training / CONFIG_FILE).is_file() else "it is not empty"
            raise UsageError(f"--out {self.out} already exists and {hint}; or choose another --out")

    def mines(self) -> bool:
        return self.negatives != "none" and self.hard_negatives > 0

    def resume_view(self) -> dict[str, Any]:
        """The settings a resumed run must share, as they read back from ``config.json``."""
        data = asdict(self)
        view = {key: data[key] for key in RESUME_KEYS}
        view["base"] = base.identify(self.base).to_json()
        loaded: dict[str, Any] = json.loads(json.dumps(view))
        return loaded


def load_split(config: TrainConfig) -> pairs.Split:
    """``--data`` as training and held-out pairs, with the keyword queries added to training.

    Corpus styles (``heading``, ``sentence``) shape the pairs made from a corpus; ``keywords``
    adds one keyword query per distinct training passage, whatever the data's shape. The
    held-out side is left as the data gives it. Raises :class:`UsageError` for missing, empty
    or too small data.
    """
    corpus_styles = [s for s in config.query_styles if s in pairs.CORPUS_STYLES]
    split = pairs.load(config.data, config.heldout_fraction, config.seed, corpus_styles)
    train = list(split.train)
    if "keywords" in config.query_styles and train:
        train += keywords.keyword_pairs(train)
    if len(train) < 2:
        raise UsageError(
            f"--data {config.data} gives {len(train)} training pair(s); at least 2 are needed "
            "(a larger corpus, more --query-styles, or JSONL pairs)"
        )
    return replace(split, train=tuple(train))
