"""The settings of ``python -m finetune``: one frozen object per command, and its flags.

Each command (``train``, ``eval``, ``dataset``) has one frozen dataclass. Every field has a
one-line docstring (the ``--help`` text) and a default, or is required. Field ``foo_bar``
of command ``CMD`` is set by the flag ``--foo-bar`` or the environment variable
``FINETUNE_<CMD>_FOO_BAR`` (``FINETUNE_TRAIN_EPOCHS``); a flag wins over the environment,
the environment over the default, and a required field may come from either. Lists are
comma-separated (``--k 1,5,10``); a repeatable flag (``--model``) is given once per value,
its environment variable holds the values separated by spaces.

This module is the only reader of the process environment in ``finetune``; it also turns
the Hugging Face Hub off (:func:`offline_hub`), because every model here is a local
directory. The defaults are those of :class:`finetune.trainer.TrainConfig`,
:class:`finetune.evaluation.EvalConfig` and :mod:`finetune.dataset` (a test keeps them
equal); they are written out here so that ``--help`` does not import torch.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin, get_type_hints

from finetune.errors import UsageError

ENV_PREFIX = "FINETUNE_"
Precision = Literal["fp32", "bf16"]
NegativeSource = Literal["none", "bm25", "model", "both"]


def _doc(text: str, repeat: bool = False) -> dict[str, Any]:
    """Field metadata: the ``--help`` text; ``repeat`` for a flag given once per value."""
    return {"doc": text, "repeat": repeat}


@dataclass(frozen=True)
class TrainSettings:
    """``python -m finetune train``: fine-tune a sentence-transformers checkpoint on pairs."""

    base: Path = field(metadata=_doc("sentence-transformers checkpoint directory to start from"))
    data: Path = field(metadata=_doc("JSONL pairs, a dataset dir, a JSONL corpus or a text folder"))
    out: Path = field(metadata=_doc("output directory (the fine-tuned checkpoint)"))
    epochs: int = field(default=1, metadata=_doc("passes over the training pairs"))
    batch_size: int = field(default=32, metadata=_doc("pairs per step"))
    lr: float = field(default=5e-5, metadata=_doc("peak learning rate"))
    warmup_ratio: float = field(default=0.1, metadata=_doc("share of steps warming up the LR"))
    weight_decay: float = field(default=0.01, metadata=_doc("AdamW weight decay"))
    max_steps: int = field(default=0, metadata=_doc("stop after N steps (0: all epochs)"))
    max_seq_length: int = field(default=128, metadata=_doc("training truncation in tokens"))
    matryoshka: tuple[int, ...] = field(
        default=(), metadata=_doc("also train at these widths, e.g. 768,512,256,128")
    )
    scale: float = field(default=20.0, metadata=_doc("similarity scale (1 / temperature)"))
    heldout_fraction: float = field(default=0.1, metadata=_doc("share of the pairs held out"))
    seed: int = field(default=42, metadata=_doc("seed for the split, batch order and dropout"))
    query_styles: tuple[str, ...] = field(
        default=("heading", "sentence", "keywords"),
        metadata=_doc("query styles: heading, sentence (from a corpus), keywords (any passage)"),
    )
    negatives: NegativeSource = field(
        default="model", metadata=_doc("hard negatives mined with: none, bm25, model (the base), both")
    )
    hard_negatives: int = field(default=1, metadata=_doc("hard negatives per training pair (loss columns)"))
    negative_margin: float = field(
        default=0.95, metadata=_doc("skip candidates scoring at least this share of the positive's score")
    )
    mine_depth: int = field(default=30, metadata=_doc("candidates looked at per query when mining"))
    mine_max_passages: int = field(
        default=50_000, metadata=_doc("at most this many passages embedded for model mining (seeded sample)")
    )
    mine_batch_size: int = field(default=64, metadata=_doc("texts per batch when embedding for mining"))
    checkpoint_every: int = field(default=50, metadata=_doc("steps between checkpoints"))
    keep_checkpoints: bool = field(default=False, metadata=_doc("keep the last checkpoint after finishing"))
    resume: bool = field(default=False, metadata=_doc("continue the run in --out from its last checkpoint"))
    device: str = field(default="auto", metadata=_doc("auto (CUDA if present), cpu, cuda or cuda:N"))
    precision: Precision = field(default="fp32", metadata=_doc("bf16 autocast for GPUs"))
    threads: int = field(default=0, metadata=_doc("torch CPU threads (0: torch's default)"))
    progress: bool = field(
        default=True, metadata=_doc("show progress: a bar on a terminal, else lines with step, rate and ETA")
    )
    log_every: int = field(default=10, metadata=_doc("steps between progress lines (also every 10 s)"))


@dataclass(frozen=True)
class EvalSettings:
    """``python -m finetune eval``: recall@k, MRR@10 and nDCG@10 on held-out pairs."""

    data: Path = field(metadata=_doc("held-out JSONL, a dataset dir or a training --out dir"))
    base: str | None = field(
        default=None, metadata=_doc("base checkpoint directory (label 'base'), or LABEL=DIR")
    )
    model: tuple[str, ...] = field(
        default=(), metadata=_doc("checkpoint directory, or LABEL=DIR (repeatable)", repeat=True)
    )
    server_url: tuple[str, ...] = field(
        default=(), metadata=_doc("running server base URL, or LABEL=URL (repeatable)", repeat=True)
    )
    onnx_dir: str | None = field(
        default=None, metadata=_doc("exported model directory to serve with `python -m server` for the run")
    )
    variant: tuple[str, ...] = field(default=(), metadata=_doc("variants of --onnx-dir, e.g. fp32,int8"))
    server_arg: tuple[str, ...] = field(
        default=(), metadata=_doc("extra argument for the started server (repeatable)", repeat=True)
    )
    api_key_file: Path | None = field(default=None, metadata=_doc("file holding the API key of --server-url"))
    distractors: Path | None = field(
        default=None, metadata=_doc("more corpus passages: JSONL or a dataset dir (its train split)")
    )
    k: tuple[int, ...] = field(default=(1, 5, 10), metadata=_doc("recall cut-offs"))
    dimensions: tuple[int, ...] = field(
        default=(), metadata=_doc("also score truncated vectors at these widths")
    )
    batch_size: int = field(default=32, metadata=_doc("texts per embedding call"))
    device: str = field(default="cpu", metadata=_doc("torch device for checkpoints"))
    startup_timeout: float = field(default=300.0, metadata=_doc("seconds to wait for a started server"))
    out: Path | None = field(
        default=None, metadata=_doc("write results JSON here and Markdown next to it (.md)")
    )


@dataclass(frozen=True)
class DatasetSettings:
    """``python -m finetune dataset``: build the built-in Python-documentation dataset."""

    out: Path = field(metadata=_doc("directory for train.jsonl, heldout.jsonl, manifest.json"))
    heldout_fraction: float = field(default=0.2, metadata=_doc("share of the groups held out"))
    seed: int = field(default=20261124, metadata=_doc("seed of the held-out split"))


Settings = TrainSettings | EvalSettings | DatasetSettings
COMMANDS: dict[str, tuple[type[Settings], str]] = {
    "train": (TrainSettings, "fine-tune a sentence-transformers checkpoint on (query, passage) pairs"),
    "eval": (EvalSettings, "recall@k, MRR@10 and nDCG@10 on held-out pairs, systems side by side"),
    "dataset": (DatasetSettings, "build the built-in Python-documentation dataset"),
}


def offline_hub() -> None:
    """Keep transformers / sentence-transformers off the network, unless the caller said otherwise."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _env_name(command: str, name: str) -> str:
    return f"{ENV_PREFIX}{command.upper()}_{name.upper()}"


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


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _number(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def convert(text: str) -> int | float:
        try:
            return kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc

    convert.__name__ = kind.__name__
    return convert


def _converter(kind: Any) -> Callable[[str], Any]:
    """The function turning one flag or environment string into a value of ``kind``."""
    if isinstance(kind, UnionType):  # X | None
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is tuple:
        return _ints if get_args(kind)[0] is int else _names
    if kind is bool:
        return _bool
    if kind in (int, float):
        return _number(kind)
    if kind is Path:
        return Path
    return str


def _add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    command: str,
    cls: type[Settings],
    help_text: str,
    env: Mapping[str, str],
) -> None:
    # No abbreviations: a mistyped flag (--epoch) is refused, not taken for another (--epochs).
    p = sub.add_parser(command, help=help_text, description=help_text, allow_abbrev=False)
    hints = get_type_hints(cls)
    for f in fields(cls):
        kind = hints[f.name]
        variable = _env_name(command, f.name)
        required = f.default is MISSING and variable not in env
        shown = "required" if f.default is MISSING else f"default {_shown(f)}"
        options: dict[str, Any] = {
            "dest": f.name,
            "default": None,
            "help": f"{f.metadata['doc']} [env {variable}; {shown}]",
        }
        if kind is bool:
            p.add_argument(f"--{_flag(f.name)}", action=argparse.BooleanOptionalAction, **options)
            continue
        options["type"] = _converter(kind) if not f.metadata["repeat"] else str
        if get_origin(kind) is Literal:
            options["choices"] = get_args(kind)
        if f.metadata["repeat"]:
            options["action"] = "append"
        if "choices" not in options:
            options["metavar"] = f.name.upper()
        p.add_argument(f"--{_flag(f.name)}", required=required, **options)


def _shown(f: Field[Any]) -> str:
    value = f.default
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "none"
    return str(value)


def parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The CLI, generated from the fields so help text and env vars cannot drift; a flag of a
    required field is optional when ``env`` holds its variable."""
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(
        prog="python -m finetune",
        allow_abbrev=False,
        description="Train, evaluate, or build the built-in dataset. Every flag of a command can also "
        f"be set as an environment variable {ENV_PREFIX}<COMMAND>_<FLAG>.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for command, (cls, help_text) in COMMANDS.items():
        _add_command(sub, command, cls, help_text, env)
    return p


def from_sources(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """The settings of the command ``argv`` names: flags over ``FINETUNE_<CMD>_*`` over defaults.

    Bad flags exit through argparse (status 2); a bad environment value is a UsageError.
    """
    env = os.environ if env is None else env
    args = vars(parser(env).parse_args(argv))
    command = args["command"]
    cls = COMMANDS[command][0]
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):
        given = args.get(f.name)
        if given is not None:
            values[f.name] = tuple(given) if f.metadata["repeat"] else given
        elif (raw := env.get(_env_name(command, f.name))) is not None:
            try:
                values[f.name] = (
                    tuple(raw.split()) if f.metadata["repeat"] else _converter(hints[f.name])(raw)
                )
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{_env_name(command, f.name)}: {exc}") from exc
            if get_origin(hints[f.name]) is Literal and values[f.name] not in get_args(hints[f.name]):
                allowed = ", ".join(get_args(hints[f.name]))
                raise UsageError(f"{_env_name(command, f.name)} must be one of {allowed}, got {raw!r}")
    return cls(**values)
