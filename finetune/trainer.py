"""Contrastive fine-tuning of a sentence-transformers checkpoint on (query, passage) pairs.

:func:`train` is the whole of ``python -m finetune train``: split the data, train with
in-batch negatives (:mod:`finetune.loss`), checkpoint every ``checkpoint_every`` steps and on
Ctrl-C, and write a normal sentence-transformers checkpoint that ``python -m export`` takes.

Output directory::

    OUT/                       the fine-tuned checkpoint (config, weights, tokenizer,
                               modules.json, 1_Pooling/, sentence_bert_config.json)
    OUT/training/config.json   the run's settings (checked on --resume)
    OUT/training/train.jsonl   the pairs trained on
    OUT/training/heldout.jsonl the held-out pairs (for `python -m finetune eval --data OUT`)
    OUT/training/checkpoints/  the latest checkpoint while the run is incomplete
    OUT/training/report.json   loss history, probe losses before/after, timings

A run is deterministic for a given seed on a given device: batches come from a seeded
shuffle per epoch, the torch RNG (dropout) is seeded, and a resumed run restores the RNG
and skips the batches already done, so it ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import torch

from finetune import checkpoint, loss, pairs
from finetune.errors import UsageError
from finetune.pairs import Pair

logger = logging.getLogger("finetune")

Precision = Literal["fp32", "bf16"]
TRAINING_DIR = "training"
CONFIG_FILE = "config.json"
REPORT_FILE = "report.json"
CHECKPOINTS_DIR = "checkpoints"
# Settings a resumed run must share with the run it continues, or the result would be a
# mixture of two different trainings.
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
)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run; the defaults suit MiniLM-L6 on a 2-core CPU.

    ``max_seq_length`` bounds training inputs only (in tokens); the saved checkpoint keeps the
    base model's limit. ``max_steps`` 0 means "all epochs". ``matryoshka`` lists the widths
    the loss is also computed at (empty: full width only). ``checkpoint_every`` counts
    optimiser steps.
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
    scale: float = loss.DEFAULT_SCALE
    heldout_fraction: float = 0.1
    seed: int = 42
    checkpoint_every: int = 50
    keep_checkpoints: bool = False
    resume: bool = False
    device: str = "auto"
    precision: Precision = "fp32"
    probe_pairs: int = 64
    progress: bool = True

    def validate(self) -> None:
        """Raise :class:`UsageError` for settings no run could use."""
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
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
            (self.probe_pairs >= 2, "probe_pairs must be at least 2"),
            (
                self.device in ("auto", "cpu") or self.device.startswith("cuda"),
                "--device is auto, cpu or cuda[:N]",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        if not (self.base / "config.json").is_file():
            raise UsageError(f"--base {self.base} is not a checkpoint directory (no config.json)")

    def resume_view(self) -> dict[str, Any]:
        """The settings a resumed run must share, as they read back from ``config.json``."""
        data = asdict(self)
        view = {key: str(data[key]) if isinstance(data[key], Path) else data[key] for key in RESUME_KEYS}
        loaded: dict[str, Any] = json.loads(json.dumps(view))
        return loaded


@dataclass
class Report:
    """What a finished run did; also written to ``OUT/training/report.json``."""

    out: str
    steps: int
    epochs: int
    train_pairs: int
    heldout_pairs: int
    data_kind: str
    seconds: float
    losses: list[float]
    probe_before: dict[str, float]
    probe_after: dict[str, float]
    device: str
    versions: dict[str, str] = field(default_factory=dict)
    finished: str = ""


def plan_batches(items: Sequence[Pair], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of ``items`` per batch for one epoch: a seeded shuffle, no repeated text in a batch.

    Two pairs sharing a query or a passage in one batch would make one of them a false
    negative, so a pair that collides waits for the next batch. A last batch of one pair is
    dropped (it has no negatives).
    """
    order = list(range(len(items)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    batches: list[list[int]] = []
    waiting = order
    while waiting:
        batch: list[int] = []
        texts: set[str] = set()
        later: list[int] = []
        for index in waiting:
            pair = items[index]
            if len(batch) < batch_size and pair.query not in texts and pair.passage not in texts:
                batch.append(index)
                texts.update((pair.query, pair.passage))
            else:
                later.append(index)
        if len(batch) >= 2:
            batches.append(batch)
        waiting = later if len(batch) >= 2 else []
    return batches


def _device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            f"--device {requested} was requested but torch sees no CUDA device; use --device cpu"
        )
    return requested


def load_model(path: Path, device: str) -> Any:
    """Load a sentence-transformers checkpoint from a local directory (never the Hub)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load {path} as a sentence-transformers checkpoint: {exc}") from exc


def _features(model: Any, texts: list[str], device: str) -> dict[str, Any]:
    # sentence-transformers 5.x and later call it `preprocess`; 3.x and 4.x `tokenize`.
    prepare = getattr(model, "preprocess", None) or model.tokenize
    features: dict[str, Any] = prepare(texts)
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def embed(model: Any, texts: list[str], device: str) -> torch.Tensor:
    """Sentence embeddings ``[n, dims]`` of ``texts`` with autograd as the caller's context sets it."""
    output: torch.Tensor = model(_features(model, texts, device))["sentence_embedding"]
    return output


def batch_loss(model: Any, batch: Sequence[Pair], config: TrainConfig, device: str) -> torch.Tensor:
    """The in-batch negatives loss of one batch of pairs."""
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if config.precision == "bf16"
        else nullcontext()
    )
    with autocast:
        queries = embed(model, [p.query for p in batch], device)
        passages = embed(model, [p.passage for p in batch], device)
    return loss.in_batch_negatives(queries.float(), passages.float(), config.scale, config.matryoshka)


def probe(model: Any, split: pairs.Split, config: TrainConfig, device: str) -> dict[str, float]:
    """In-batch loss, without dropout, over the first ``probe_pairs`` train and held-out pairs."""
    was_training = model.training
    model.eval()
    result: dict[str, float] = {}
    with torch.no_grad():
        for name, items in (("train", split.train), ("heldout", split.heldout)):
            if len(items) >= 2:
                result[name] = float(batch_loss(model, items[: config.probe_pairs], config, device))
    model.train(was_training)
    return result


@contextmanager
def _saved_length(model: Any, length: int) -> Iterator[None]:
    """Save with the base model's input limit, not the shorter one used for training."""
    training_length = model.max_seq_length
    model.max_seq_length = length
    try:
        yield
    finally:
        model.max_seq_length = training_length


def _schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak LR over ``warmup`` steps, then linear decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer(model: Any, config: TrainConfig) -> torch.optim.AdamW:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name or "norm" in name else decay).append(
                param
            )
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr)


def _prepare_output(config: TrainConfig) -> tuple[pairs.Split, Path | None]:
    """Create or check ``OUT/training``; return the split to use and the checkpoint to resume."""
    training = config.out / TRAINING_DIR
    config_path = training / CONFIG_FILE
    if config.resume and config_path.is_file():
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        current = config.resume_view()
        changed = sorted(k for k in RESUME_KEYS if saved.get(k) != current[k])
        if changed:
            detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
            raise UsageError(f"--resume with different settings ({detail}); rerun with the original ones")
        if (training / REPORT_FILE).is_file():
            raise UsageError(
                f"{config.out} already holds a finished run; choose another --out to train again"
            )
        split = pairs.Split(
            tuple(pairs.read_pairs(training / pairs.TRAIN_FILE)),
            tuple(pairs.read_pairs(training / pairs.HELDOUT_FILE))
            if (training / pairs.HELDOUT_FILE).stat().st_size
            else (),
            str(saved.get("data_kind", "pairs")),  # type: ignore[arg-type]
            str(saved.get("data", "")),
        )
        return split, checkpoint.latest(training / CHECKPOINTS_DIR)
    if config.out.exists() and any(config.out.iterdir()):
        hint = "pass --resume to continue it" if config_path.is_file() else "it is not empty"
        raise UsageError(f"--out {config.out} already exists and {hint}; or choose another --out")
    split = pairs.load(config.data, config.heldout_fraction, config.seed)
    if len(split.train) < 2:
        raise UsageError(
            f"--data {config.data} gives {len(split.train)} training pair(s); at least 2 are needed"
        )
    training.mkdir(parents=True, exist_ok=True)
    pairs.write_pairs(training / pairs.TRAIN_FILE, split.train)
    pairs.write_pairs(training / pairs.HELDOUT_FILE, split.heldout)
    saved = {**config.resume_view(), "data": str(config.data), "data_kind": split.kind}
    config_path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return split, None


def _versions() -> dict[str, str]:
    import sentence_transformers
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def train(config: TrainConfig, on_step: Callable[[int, float], None] | None = None) -> Report:
    """Run (or resume) one training run and write the fine-tuned checkpoint to ``config.out``.

    ``on_step(step, loss)`` is called after every optimiser step (1-based), after any
    checkpoint of that step. A ``KeyboardInterrupt`` saves a checkpoint of the last completed
    step before propagating.
    """
    config.validate()
    device = _device(config.device)
    split, resume_from = _prepare_output(config)
    training = config.out / TRAINING_DIR
    checkpoints = training / CHECKPOINTS_DIR

    torch.manual_seed(config.seed)
    model = load_model(resume_from / checkpoint.MODEL_DIR if resume_from else config.base, device)
    saved_length = int(model.max_seq_length or config.max_seq_length)
    # sentence-transformers 6 renamed get_sentence_embedding_dimension (a FutureWarning there).
    width_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    width = int(width_of() or 0)
    if any(d > width for d in config.matryoshka):
        raise UsageError(
            f"--matryoshka {config.matryoshka}: the model's vectors have only {width} dimensions"
        )
    model.max_seq_length = min(config.max_seq_length, saved_length)

    plans = [plan_batches(split.train, config.batch_size, config.seed, e) for e in range(config.epochs)]
    total = sum(len(plan) for plan in plans)
    if config.max_steps:
        total = min(total, config.max_steps)
    optimizer = _optimizer(model, config)
    scheduler = _schedule(optimizer, math.floor(config.warmup_ratio * total), total)

    if resume_from is not None:
        progress = checkpoint.load_progress(resume_from)
        checkpoint.restore(resume_from, optimizer, scheduler)
        logger.info("resuming from %s (step %d of %d)", resume_from, progress.step, total)
    else:
        progress = checkpoint.Progress(probe_before=probe(model, split, config, device))

    started = time.monotonic() - progress.seconds
    model.train()
    bar = _progress_bar(total, progress.step, config.progress)
    step = progress.step
    try:
        flat = [(epoch, batch) for epoch, plan in enumerate(plans) for batch in plan][:total]
        for _epoch, batch_indices in flat[step:]:
            value = batch_loss(model, [split.train[i] for i in batch_indices], config, device)
            value.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            progress.step = step
            progress.losses.append(round(float(value.detach()), 6))
            progress.seconds = time.monotonic() - started
            bar.update(1)
            bar.set_postfix(loss=f"{progress.losses[-1]:.4f}", epoch=_epoch + 1)
            if step % config.checkpoint_every == 0 and step < total:
                with _saved_length(model, saved_length):
                    checkpoint.save(checkpoints, model, optimizer, scheduler, progress)
            if on_step is not None:
                on_step(step, progress.losses[-1])
    except KeyboardInterrupt:
        if step > 0 and step < total:
            with _saved_length(model, saved_length):
                path = checkpoint.save(checkpoints, model, optimizer, scheduler, progress)
            logger.warning("interrupted after step %d; checkpoint %s; rerun with --resume", step, path)
        raise
    finally:
        bar.close()

    probe_after = probe(model, split, config, device)
    with _saved_length(model, saved_length):
        model.save(str(config.out), create_model_card=False)
    _match_permissions(config.out)
    report = Report(
        out=str(config.out),
        steps=step,
        epochs=config.epochs,
        train_pairs=len(split.train),
        heldout_pairs=len(split.heldout),
        data_kind=split.kind,
        seconds=round(time.monotonic() - started, 1),
        losses=progress.losses,
        probe_before=progress.probe_before,
        probe_after=probe_after,
        device=device,
        versions=_versions(),
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    (training / REPORT_FILE).write_text(json.dumps(asdict(report), indent=1) + "\n", encoding="utf-8")
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return report


def _match_permissions(directory: Path) -> None:
    """Give every saved file the permission bits of ``config.json``.

    The weights are written through a private temporary file (mode 0600); a checkpoint that
    only its owner can read breaks an export or image build running as another user.
    """
    mode = (directory / "config.json").stat().st_mode & 0o777
    for path in directory.rglob("*"):
        if path.is_file() and TRAINING_DIR not in path.relative_to(directory).parts:
            path.chmod(mode)


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc="fine-tune", unit="step", disable=not enabled, dynamic_ncols=True
    )
