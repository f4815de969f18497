"""``python -m finetune``: train, evaluate, or build the built-in dataset.

::

    python -m finetune train   --base DIR --data PATH --out DIR [options]
    python -m finetune         --base DIR --data PATH --out DIR [options]   (same as train)
    python -m finetune eval    --data PATH [--base DIR] [--model [LABEL=]DIR ...]
                               [--server-url [LABEL=]URL ...] [--onnx-dir DIR --variant fp32,int8]
                               [--k 1,5,10] [--dimensions 384,256] [--out results.json]
    python -m finetune dataset --out DIR [--heldout-fraction 0.2] [--seed N]

Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input data, 130 interrupted
(Ctrl-C or SIGTERM; training leaves a checkpoint to ``--resume`` from). This module is the package's only
reader of the process environment: it turns the Hugging Face Hub off, because every model
here is a local directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from finetune.errors import FinetuneError, UsageError

COMMANDS = ("train", "eval", "dataset")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _train_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from finetune.trainer import TrainConfig

    d = TrainConfig(Path(), Path(), Path())
    p = sub.add_parser("train", help="fine-tune a sentence-transformers checkpoint on (query, passage) pairs")
    p.add_argument(
        "--base", type=Path, required=True, help="sentence-transformers checkpoint directory to start from"
    )
    p.add_argument(
        "--data", type=Path, required=True, help="JSONL pairs, a dataset dir, a JSONL corpus or a text folder"
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (the fine-tuned checkpoint)")
    p.add_argument(
        "--epochs", type=int, default=d.epochs, help=f"passes over the training pairs (default {d.epochs})"
    )
    p.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"pairs per step (default {d.batch_size})"
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument(
        "--warmup-ratio", type=float, default=d.warmup_ratio, help="share of steps warming up the LR"
    )
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--max-steps", type=int, default=d.max_steps, help="stop after N steps (0: all epochs)")
    p.add_argument(
        "--max-seq-length",
        type=int,
        default=d.max_seq_length,
        help="training truncation in tokens (default 128)",
    )
    p.add_argument(
        "--matryoshka", type=_ints, default=(), help="also train at these widths, e.g. 768,512,256,128"
    )
    p.add_argument(
        "--scale", type=float, default=d.scale, help="similarity scale (1 / temperature), default 20"
    )
    p.add_argument(
        "--heldout-fraction", type=float, default=d.heldout_fraction, help="share held out (default 0.1)"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the split, batch order and dropout")
    p.add_argument(
        "--checkpoint-every", type=int, default=d.checkpoint_every, help="steps between checkpoints"
    )
    p.add_argument("--keep-checkpoints", action="store_true", help="keep the last checkpoint after finishing")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default=d.device, help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument(
        "--precision", choices=("fp32", "bf16"), default=d.precision, help="bf16 autocast for GPUs"
    )
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _eval_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("eval", help="recall@k, MRR@10 and nDCG@10 on held-out pairs, systems side by side")
    p.add_argument(
        "--data", type=Path, required=True, help="held-out JSONL, a dataset dir or a training --out dir"
    )
    p.add_argument("--base", help="base checkpoint directory (label 'base'), or LABEL=DIR")
    p.add_argument(
        "--model", action="append", default=[], help="checkpoint directory, or LABEL=DIR (repeatable)"
    )
    p.add_argument("--server-url", action="append", default=[], help="running server base URL, or LABEL=URL")
    p.add_argument("--onnx-dir", help="exported model directory to serve with `python -m server` for the run")
    p.add_argument("--variant", type=_names, default=(), help="variants of --onnx-dir, e.g. fp32,int8")
    p.add_argument("--server-arg", action="append", default=[], help="extra argument for the started server")
    p.add_argument("--api-key-file", type=Path, help="file holding the API key of --server-url")
    p.add_argument(
        "--distractors", type=Path, help="more corpus passages: JSONL or a dataset dir (its train split)"
    )
    p.add_argument("--k", type=_ints, default=(1, 5, 10), help="recall cut-offs (default 1,5,10)")
    p.add_argument(
        "--dimensions", type=_ints, default=(), help="also score truncated vectors at these widths"
    )
    p.add_argument("--batch-size", type=int, default=32, help="texts per embedding call (default 32)")
    p.add_argument("--device", default="cpu", help="torch device for checkpoints (default cpu)")
    p.add_argument(
        "--startup-timeout", type=float, default=300.0, help="seconds to wait for a started server"
    )
    p.add_argument("--out", type=Path, help="write results JSON here and Markdown next to it (.md)")


def _dataset_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from finetune import dataset

    p = sub.add_parser("dataset", help="build the built-in Python-documentation dataset")
    p.add_argument(
        "--out", type=Path, required=True, help="directory for train.jsonl, heldout.jsonl, manifest.json"
    )
    p.add_argument("--heldout-fraction", type=float, default=dataset.DEFAULT_HELDOUT_FRACTION)
    p.add_argument("--seed", type=int, default=dataset.DEFAULT_SEED)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m finetune", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _dataset_parser(sub)
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run_train(args: argparse.Namespace) -> int:
    from finetune.trainer import TrainConfig, train

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = TrainConfig(
        base=args.base,
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_ratio=args.warmup_ratio,
        weight_decay=args.weight_decay,
        max_steps=args.max_steps,
        max_seq_length=args.max_seq_length,
        matryoshka=args.matryoshka,
        scale=args.scale,
        heldout_fraction=args.heldout_fraction,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        resume=args.resume,
        device=args.device,
        precision=args.precision,
        progress=not args.no_progress,
    )
    # A scheduler or platform stopping the job sends SIGTERM: checkpoint as for Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = train(config)
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


def _run_eval(args: argparse.Namespace) -> int:
    from finetune.evaluation import EvalConfig, evaluate, parse_systems, render_markdown, write_results

    api_key = None
    if args.api_key_file:
        try:
            api_key = args.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"cannot read --api-key-file {args.api_key_file}: {exc}") from exc
    config = EvalConfig(
        data=args.data,
        systems=parse_systems(args.base, args.model, args.server_url, args.onnx_dir, args.variant),
        ks=args.k,
        dimensions=args.dimensions,
        distractors=args.distractors,
        batch_size=args.batch_size,
        device=args.device,
        api_key=api_key,
        startup_timeout=args.startup_timeout,
        server_args=tuple(args.server_arg),
    )
    results = evaluate(config)
    print(render_markdown(results), end="")
    if args.out:
        json_path, md_path = write_results(results, args.out)
        print(f"wrote {json_path} and {md_path}")
    return 0


def _run_dataset(args: argparse.Namespace) -> int:
    from finetune import dataset

    manifest = dataset.build(args.out, args.heldout_fraction, args.seed)
    counts = manifest["pairs"]
    print(
        f"wrote {counts['train']} training and {counts['heldout']} held-out pairs "
        f"({len(manifest['groups']['heldout'])} held-out groups) to {args.out}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, map errors to exit codes."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0].startswith("-") and args_list[0] not in ("-h", "--help"):
        args_list.insert(0, "train")
    args = build_parser().parse_args(args_list)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # noqa: TID251
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    runners = {"train": _run_train, "eval": _run_eval, "dataset": _run_dataset}
    try:
        return runners[args.command](args)
    except FinetuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
