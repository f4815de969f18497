"""``python -m finetune``: train, evaluate, or build the built-in dataset.

::

    python -m finetune train   --base DIR --data PATH --out DIR [options]
    python -m finetune         --base DIR --data PATH --out DIR [options]   (same as train)
    python -m finetune eval    --data PATH [--base DIR] [--model [LABEL=]DIR ...]
                               [--server-url [LABEL=]URL ...] [--onnx-dir DIR --variant fp32,int8]
                               [--k 1,5,10] [--dimensions 384,256] [--out results.json]
    python -m finetune dataset --out DIR [--heldout-fraction 0.2] [--seed N]

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input data, 130 interrupted
(Ctrl-C or SIGTERM; training leaves a checkpoint to ``--resume`` from). Flags and their
``FINETUNE_<COMMAND>_<FLAG>`` environment variables are defined in :mod:`finetune.settings`.

Bad input (unknown flags, missing or empty data, a ``--base`` or ``--model`` that is not a
checkpoint, an ``--out`` in the way) is refused with exit code 2 before torch is imported:
every command checks its files first and imports the heavy modules only to do the work.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from finetune.errors import FinetuneError, UsageError
from finetune.settings import (
    DatasetSettings,
    EvalSettings,
    Settings,
    TrainSettings,
    from_sources,
    offline_hub,
)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run_train(settings: TrainSettings) -> int:
    from finetune.config import TrainConfig, load_split

    config = TrainConfig(
        base=settings.base,
        data=settings.data,
        out=settings.out,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        max_steps=settings.max_steps,
        max_seq_length=settings.max_seq_length,
        matryoshka=settings.matryoshka,
        scale=settings.scale,
        heldout_fraction=settings.heldout_fraction,
        seed=settings.seed,
        query_styles=settings.query_styles,
        negatives=settings.negatives,
        hard_negatives=settings.hard_negatives,
        negative_margin=settings.negative_margin,
        mine_depth=settings.mine_depth,
        mine_max_passages=settings.mine_max_passages,
        mine_batch_size=settings.mine_batch_size,
        checkpoint_every=settings.checkpoint_every,
        keep_checkpoints=settings.keep_checkpoints,
        resume=settings.resume,
        device=settings.device,
        precision=settings.precision,
        progress=settings.progress,
        log_every=settings.log_every,
    )
    config.validate()
    split = None if config.resuming() else load_split(config)
    # Only now, with the input checked, the heavy imports.
    from finetune.trainer import train

    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    # A scheduler or platform stopping the job sends SIGTERM: checkpoint as for Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = train(config, split=split)
    finally:
        signal.signal(signal.SIGTERM, previous)
    nan = float("nan")
    before, after = report.probe_before, report.probe_after
    print(
        f"trained {report.steps} steps on {report.train_pairs} pairs in {report.seconds:.0f} s; "
        f"probe loss train {before.get('train', nan):.4f} -> {after.get('train', nan):.4f}, "
        f"held-out {before.get('heldout', nan):.4f} -> {after.get('heldout', nan):.4f}; "
        f"model in {report.out}"
    )
    return 0


def _run_eval(settings: EvalSettings) -> int:
    from finetune.evaluation import EvalConfig, evaluate, parse_systems, render_markdown, write_results

    api_key = None
    if settings.api_key_file:
        try:
            api_key = settings.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read --api-key-file {settings.api_key_file}: {exc}") from exc
    systems = parse_systems(
        settings.base, settings.model, settings.server_url, settings.onnx_dir, settings.variant
    )
    config = EvalConfig(
        data=settings.data,
        systems=systems,
        ks=settings.k,
        dimensions=settings.dimensions,
        distractors=settings.distractors,
        batch_size=settings.batch_size,
        device=settings.device,
        api_key=api_key,
        startup_timeout=settings.startup_timeout,
        server_args=settings.server_arg,
    )
    results = evaluate(config)
    print(render_markdown(results), end="")
    if settings.out:
        json_path, md_path = write_results(results, settings.out)
        print(f"wrote {json_path} and {md_path}")
    return 0


def _run_dataset(settings: DatasetSettings) -> int:
    from finetune import dataset

    if not 0 <= settings.heldout_fraction < 1:
        raise UsageError(f"--heldout-fraction must be in [0, 1), got {settings.heldout_fraction}")
    if settings.out.exists() and not settings.out.is_dir():
        raise UsageError(f"--out {settings.out} is a file; choose a directory")
    manifest = dataset.build(settings.out, settings.heldout_fraction, settings.seed)
    counts = manifest["pairs"]
    print(
        f"wrote {counts['train']} training and {counts['heldout']} held-out pairs "
        f"({len(manifest['groups']['heldout'])} held-out groups) to {settings.out}"
    )
    return 0


def _run(settings: Settings) -> int:
    if isinstance(settings, TrainSettings):
        return _run_train(settings)
    if isinstance(settings, EvalSettings):
        return _run_eval(settings)
    return _run_dataset(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (flags over the environment), run the command, map errors to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args.insert(0, "train")
    try:
        settings = from_sources(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    offline_hub()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(settings)
    except FinetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
