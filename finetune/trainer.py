"""Contrastive fine-tuning of a sentence-transformers checkpoint on (query, passage) pairs.

:func:`train` is the whole of ``python -m finetune train``: split the data by source document,
add keyword queries (:func:`finetune.config.load_split`), mine hard negatives with BM25 and/or
the base model (:mod:`finetune.negatives`), train with in-batch plus hard negatives
(:mod:`finetune.loss`), checkpoint every ``checkpoint_every`` steps and on Ctrl-C, and write a
normal sentence-transformers checkpoint that ``python -m export`` takes.

Output directory::

    OUT/                       the fine-tuned checkpoint (config, weights, tokenizer,
                               modules.json, 1_Pooling/, sentence_bert_config.json)
    OUT/training/config.json   the run's settings and base model identity (checked on --resume)
    OUT/training/train.jsonl   the pairs trained on, with their hard negatives
    OUT/training/mining.json   what negative mining did (sources, skips per rule, time)
    OUT/training/heldout.jsonl the held-out pairs (for `python -m finetune eval --data OUT`)
    OUT/training/checkpoints/  the latest checkpoint while the run is incomplete
    OUT/training/report.json   loss history, probe losses before/after, timings

A run is deterministic for a given seed on a given device: batches come from a seeded
shuffle per epoch, the torch RNG (dropout) is seeded, and a resumed run restores the RNG
and skips the batches already done, so it ends with the same weights as an uninterrupted one.
The mined negatives are written once, before the first step, and a resumed run reads them back.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from finetune import base, checkpoint, loss, negatives, pairs
from finetune import progress as progress_module
from finetune.config import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    REPORT_FILE,
    TRAINING_DIR,
    Precision,
    TrainConfig,
    load_split,
)
from finetune.errors import UsageError
from finetune.pairs import Pair

__all__ = ["Precision", "Report", "TrainConfig", "load_model", "plan_batches", "train"]

logger = logging.getLogger("finetune")

MINING_FILE = "mining.json"


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
    base: dict[str, str] = field(default_factory=dict)
    query_styles: dict[str, int] = field(default_factory=dict)
    negatives: dict[str, Any] = field(default_factory=dict)
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
    """Load a sentence-transformers checkpoint from a local directory (never the Hub).

    Off a terminal, the libraries' own progress bars (loading and writing weights) are
    turned off: in a log they are lines of carriage returns between our progress lines.
    """
    from sentence_transformers import SentenceTransformer

    if not sys.stderr.isatty():
        import huggingface_hub.utils
        import transformers.utils.logging

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        huggingface_hub.utils.disable_progress_bars()  # type: ignore[attr-defined]

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


def batch_texts(batch: Sequence[Pair]) -> list[str]:
    """The passage columns of a batch: its positives in order, then each distinct hard negative
    that is not already a column (a negative of one pair may be another pair's positive: it
    stays one column, the right answer for its own query and a negative for the others)."""
    columns = [p.passage for p in batch]
    seen = set(columns)
    for pair in batch:
        for negative in pair.negatives:
            if negative not in seen:
                seen.add(negative)
                columns.append(negative)
    return columns


def batch_loss(model: Any, batch: Sequence[Pair], config: TrainConfig, device: str) -> torch.Tensor:
    """The loss of one batch: in-batch negatives plus the pairs' hard negatives."""
    autocast = (
        torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
        if config.precision == "bf16"
        else nullcontext()
    )
    with autocast:
        queries = embed(model, [p.query for p in batch], device)
        passages = embed(model, batch_texts(batch), device)
    return loss.in_batch_negatives(queries.float(), passages.float(), config.scale, config.matryoshka)


def probe(model: Any, split: pairs.Split, config: TrainConfig, device: str) -> dict[str, float]:
    """In-batch loss (no hard negatives, no dropout) over the first ``probe_pairs`` train and
    held-out pairs, so the two sides and the before/after values compare like with like."""
    was_training = model.training
    model.eval()
    result: dict[str, float] = {}
    with torch.no_grad():
        for name, items in (("train", split.train), ("heldout", split.heldout)):
            if len(items) >= 2:
                plain = [replace(p, negatives=()) for p in items[: config.probe_pairs]]
                result[name] = float(batch_loss(model, plain, config, device))
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


def _resumed_split(config: TrainConfig) -> tuple[pairs.Split, Path | None, dict[str, Any]]:
    """The pairs, latest checkpoint and mining report of the run ``--resume`` continues
    (:meth:`TrainConfig.validate` has checked that the settings and the base are the same)."""
    training = config.training_dir
    saved = json.loads((training / CONFIG_FILE).read_text(encoding="utf-8"))
    split = pairs.Split(
        tuple(pairs.read_pairs(training / pairs.TRAIN_FILE)),
        tuple(pairs.read_pairs(training / pairs.HELDOUT_FILE))
        if (training / pairs.HELDOUT_FILE).stat().st_size
        else (),
        str(saved.get("data_kind", "pairs")),  # type: ignore[arg-type]
        str(saved.get("data", "")),
    )
    mining_path = training / MINING_FILE
    mining = json.loads(mining_path.read_text(encoding="utf-8")) if mining_path.is_file() else {}
    return split, checkpoint.latest(training / CHECKPOINTS_DIR), mining


def _write_training_dir(config: TrainConfig, split: pairs.Split, mining: dict[str, Any]) -> None:
    """Write the pairs, the mining report and, last, ``config.json`` (which marks a resumable run)."""
    training = config.training_dir
    training.mkdir(parents=True, exist_ok=True)
    pairs.write_pairs(training / pairs.TRAIN_FILE, split.train)
    pairs.write_pairs(training / pairs.HELDOUT_FILE, split.heldout)
    (training / MINING_FILE).write_text(json.dumps(mining, indent=1) + "\n", encoding="utf-8")
    saved = {**config.resume_view(), "data": str(config.data), "data_kind": split.kind}
    (training / CONFIG_FILE).write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _model_embed(model: Any, config: TrainConfig) -> negatives.Embed:
    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        vectors = model.encode(
            texts,
            batch_size=config.mine_batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode


def _with_negatives(
    model: Any, split: pairs.Split, config: TrainConfig
) -> tuple[pairs.Split, dict[str, Any]]:
    """The split with each training pair's hard negatives, and the mining report."""
    if not config.mines():
        report = negatives.MiningReport(config.negatives, config.hard_negatives, pairs=len(split.train))
        train = negatives.with_given(split.train, config.hard_negatives)
        report.from_data = sum(len(p.negatives) for p in train)
        return replace(split, train=tuple(train)), asdict(report)
    with torch.no_grad():
        mined, report = negatives.mine(split.train, config, _model_embed(model, config))
    logger.info(
        "hard negatives: %d mined, %d random, %d from the data in %.0f s (skipped: %s)",
        report.mined,
        report.random,
        report.from_data,
        report.seconds,
        ", ".join(f"{k} {v}" for k, v in report.skipped.items()),
    )
    return replace(split, train=tuple(mined)), asdict(report)


def _versions() -> dict[str, str]:
    import sentence_transformers
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
    }


def train(
    config: TrainConfig,
    on_step: Callable[[int, float], None] | None = None,
    split: pairs.Split | None = None,
) -> Report:
    """Run (or resume) one training run and write the fine-tuned checkpoint to ``config.out``.

    ``split`` is what :func:`finetune.config.load_split` returns for ``config`` (the CLI reads
    it before importing torch); None reads it here. ``on_step(step, loss)`` is called after
    every optimiser step (1-based), after any checkpoint of that step. A ``KeyboardInterrupt``
    saves a checkpoint of the last completed step before propagating.
    """
    config.validate()
    device = _device(config.device)
    identity = base.identify(config.base)
    training = config.out / TRAINING_DIR
    checkpoints = training / CHECKPOINTS_DIR
    resume_from: Path | None = None
    mining: dict[str, Any] = {}
    resuming = config.resuming()
    if resuming:
        split, resume_from, mining = _resumed_split(config)
    elif split is None:
        split = load_split(config)

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
    if not resuming:
        split, mining = _with_negatives(model, split, config)
        _write_training_dir(config, split, mining)
        torch.manual_seed(config.seed)

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
    meter = progress_module.start(
        "fine-tune",
        total,
        enabled=config.progress,
        unit="step",
        initial=progress.step,
        every=config.log_every,
    )
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
            meter.update(1, loss=f"{progress.losses[-1]:.4f}", epoch=str(_epoch + 1))
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
        meter.close()

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
        base=identity.to_json(),
        query_styles=dict(sorted(Counter(p.style or "given" for p in split.train).items())),
        negatives=mining,
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
