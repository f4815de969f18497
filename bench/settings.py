"""The bench's one frozen settings object, its presets and its CLI.

Every field has a default and a one-line docstring (the ``--help`` text). Each field
``foo_bar`` is set by the flag ``--foo-bar`` or the environment variable
``BENCH_FOO_BAR``; a flag wins over the environment, the environment over the default.
This module is the only reader of ``os.environ`` in the bench.

``python -m bench`` runs the quick suite (a few minutes on 2 cores) against a server it
starts itself; ``--suite full`` runs everything with more data and three interleaved
rounds; ``--url`` targets a server that is already running. Sizes of a preset can be
overridden one by one (``--passages``, ``--rounds``, ``--phase-seconds``, ``--peers``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from types import UnionType
from typing import Any, Literal, get_args, get_origin, get_type_hints

Suite = Literal["quick", "full"]
PEERS = ("st", "ort", "infinity", "openvino")
HTTP_PROFILES = ("ingest", "length", "query", "callers")
VARIANTS = ("fp32", "int8", "fp16")
DEFAULT_MODEL = Path("models/all-mpnet-base-v2")
FALLBACK_MODEL = Path("models/all-minilm-l6-v2")
INFINITY_BIN = Path("build/peer-venvs/infinity/bin/infinity_emb")
ENV_PREFIX = "BENCH_"


class SettingsError(ValueError):
    """A flag has an invalid value; the message names the flag and what is allowed."""


@dataclass(frozen=True)
class Preset:
    """Sizes of one suite. Durations in seconds; ``open_loads`` are fractions of the
    measured query capacity; empty ``batch_sizes`` skips the batch-size sweep."""

    passages: int
    queries: int
    rounds: int
    ingest_concurrency: int
    concurrency: tuple[int, ...]
    query_concurrency: tuple[int, ...]
    open_loads: tuple[float, ...]
    phase_s: float
    length_texts: int
    batch_sizes: tuple[int, ...]
    sweep_passages: int
    peers: tuple[str, ...]
    per_request: int = 20
    callers_s: float = 20.0
    """Seconds of each phase of the callers' profiles (:mod:`bench.callers`)."""


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        passages=128,
        queries=200,
        rounds=1,
        ingest_concurrency=8,
        concurrency=(1, 4, 16),
        query_concurrency=(1, 8),
        open_loads=(0.5, 0.9),
        phase_s=4.0,
        length_texts=64,
        batch_sizes=(),
        sweep_passages=0,
        peers=("st", "ort"),
    ),
    "full": Preset(
        passages=1000,
        queries=500,
        rounds=3,
        ingest_concurrency=16,
        concurrency=(1, 2, 4, 8, 16, 32, 64),
        query_concurrency=(1, 4, 16, 64),
        open_loads=(0.25, 0.5, 0.8, 0.95),
        phase_s=12.0,
        length_texts=160,
        batch_sizes=(1, 8, 32, 64),
        sweep_passages=128,
        peers=("st", "ort", "infinity"),
        callers_s=60.0,
    ),
}


def _doc(
    text: str, shown: str | None = None, choices: tuple[str, ...] = (), words: bool = False
) -> dict[str, Any]:
    """Field metadata: the ``--help`` text, the default as help shows it (for computed
    defaults), the allowed items of a comma list, or ``words`` for a whitespace-split list."""
    return {"doc": text, "shown": shown, "choices": choices, "words": words}


def _default_model() -> Path:
    return DEFAULT_MODEL if DEFAULT_MODEL.is_dir() or not FALLBACK_MODEL.is_dir() else FALLBACK_MODEL


def _default_threads() -> int:
    return min(2, os.cpu_count() or 1)


def _default_out() -> Path:
    return Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class BenchSettings:
    """Everything one bench run needs."""

    model: Path = field(
        default_factory=_default_model,
        metadata=_doc(
            f"exported model directory ({FALLBACK_MODEL} when the default is not built)", str(DEFAULT_MODEL)
        ),
    )
    suite: Suite = field(default="quick", metadata=_doc("preset sizes: quick (minutes on 2 cores) or full"))
    url: str | None = field(
        default=None, metadata=_doc("benchmark this running server instead of starting ours")
    )
    api_key: str = field(default="", repr=False, metadata=_doc("API key for --url", "(none)"))
    peers: tuple[str, ...] | None = field(
        default=None,
        metadata=_doc(f"comma list of {', '.join(PEERS)} or none", "the suite's", PEERS),
    )
    variants: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            "comma list of model variants to measure", "fp32,int8 where the model has them", VARIANTS
        ),
    )
    corpus: Path | None = field(
        default=None,
        metadata=_doc(
            'JSONL corpus: {"text": ..., "kind": "passage"|"query"}', "docstrings of the standard library"
        ),
    )
    checkpoint: Path | None = field(
        default=None,
        metadata=_doc(
            "Hugging Face checkpoint of the model, for the peers and the roofline "
            "(`python -m export.shipped NAME --print-checkpoint` prints a shipped model's)"
        ),
    )
    threads: int = field(
        default_factory=_default_threads,
        metadata=_doc("threads everywhere (ORT intra-op, torch, OMP/MKL/OpenBLAS)", "2, at most the CPUs"),
    )
    out: Path = field(
        default_factory=_default_out, metadata=_doc("results directory", "bench-results/<timestamp>")
    )
    seed: int = field(default=0, metadata=_doc("seed of the corpus sample and the arrivals"))
    passages: int | None = field(
        default=None, metadata=_doc("passages in the throughput corpus", "the suite's")
    )
    rounds: int | None = field(default=None, metadata=_doc("interleaved throughput rounds", "the suite's"))
    phase_seconds: float | None = field(
        default=None, metadata=_doc("seconds of each load phase", "the suite's")
    )
    infinity_bin: Path = field(default=INFINITY_BIN, metadata=_doc("the infinity_emb executable"))
    server_args: tuple[str, ...] = field(
        default=(),
        metadata=_doc('extra flags for our server, e.g. "--max-batch-size 32"', "none", words=True),
    )
    http_profiles: tuple[str, ...] = field(
        default=HTTP_PROFILES,
        metadata=_doc("comma list of the HTTP load profiles to run", "all", HTTP_PROFILES),
    )
    callers_seconds: float | None = field(
        default=None, metadata=_doc("seconds of each phase of the callers' profiles", "the suite's")
    )
    plots: bool = field(default=True, metadata=_doc("draw the PNG plots"))
    sizes: Preset | None = field(default=None, metadata={})
    """Sizes replacing the suite's preset, for library callers (tests); no flag."""

    def __post_init__(self) -> None:
        for name in ("passages", "rounds", "phase_seconds", "callers_seconds"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise SettingsError(f"--{_flag(name)} must be positive, got {value}")
        if self.threads < 1:
            raise SettingsError(f"--threads must be at least 1, got {self.threads}")
        for name, allowed in (("peers", PEERS), ("variants", VARIANTS), ("http_profiles", HTTP_PROFILES)):
            unknown = [x for x in getattr(self, name) or () if x not in allowed]
            if unknown:
                raise SettingsError(
                    f"--{name}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)} or none"
                )

    @property
    def preset(self) -> Preset:
        """The suite's sizes (or :attr:`sizes`) with the overrides that were given."""
        overrides: dict[str, Any] = {
            "passages": self.passages,
            "rounds": self.rounds,
            "phase_s": self.phase_seconds,
            "callers_s": self.callers_seconds,
            "peers": self.peers,
        }
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self.sizes or PRESETS[self.suite], **given)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sizes"}
        data["api_key"] = "(set)" if self.api_key else ""
        data["peers"] = self.preset.peers
        data["preset"] = asdict(self.preset)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}


def child_env(threads: int) -> dict[str, str]:
    """The environment for a child process (server, peer, GEMM probe): this one's, with
    every math library limited to ``threads`` threads and the Hugging Face hub offline."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["INFINITY_ANONYMOUS_USAGE_STATS"] = "0"
    env["DO_NOT_TRACK"] = "1"
    return env


def offline_hub() -> None:
    """Keep transformers / sentence-transformers in this process off the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _convert(f: Field[Any], raw: str, kind: Any) -> Any:
    """Turn a flag or environment string into the field's type, with a clear error."""
    name = f.name
    if isinstance(kind, UnionType):  # X | None
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Literal:
        allowed = get_args(kind)
        if raw not in allowed:
            raise SettingsError(f"--{_flag(name)} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw
    if get_origin(kind) is tuple:
        if f.metadata["words"]:
            return tuple(raw.split())
        if raw.strip().lower() in ("", "none"):
            return ()
        return tuple(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise SettingsError(f"--{_flag(name)} must be true or false, got {raw!r}")
    if kind is Path:
        return Path(raw)
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
    except ValueError as exc:
        raise SettingsError(f"--{_flag(name)} must be a number, got {raw!r}") from exc
    return raw


def _flag_fields() -> list[Field[Any]]:
    return [f for f in fields(BenchSettings) if "doc" in f.metadata]


def parser() -> argparse.ArgumentParser:
    """The CLI, generated from the fields so help text and env vars cannot drift."""
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the embedding engine and server against sentence-transformers, plain "
        "ONNX Runtime and infinity-emb on the same model, corpus and thread count. Every flag can "
        f"also be set as an environment variable {ENV_PREFIX}<FLAG>.",
    )
    hints = get_type_hints(BenchSettings)
    for f in _flag_fields():
        shown = f.metadata["shown"] if f.metadata["shown"] is not None else f.default
        help_text = f"{f.metadata['doc']} [env {ENV_PREFIX}{f.name.upper()}; default {shown}]"
        if hints[f.name] is bool:
            p.add_argument(
                f"--{_flag(f.name)}",
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            kind = hints[f.name]
            choices = get_args(kind) if get_origin(kind) is Literal else None
            p.add_argument(
                f"--{_flag(f.name)}",
                dest=f.name,
                default=None,
                choices=choices,
                metavar=f.name.upper(),
                help=help_text,
            )
    return p


def from_sources(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> BenchSettings:
    """Build settings from flags over ``BENCH_*`` variables over defaults."""
    env = os.environ if env is None else env
    args = vars(parser().parse_args(argv))
    hints = get_type_hints(BenchSettings)
    values: dict[str, Any] = {}
    for f in _flag_fields():
        given = args.get(f.name)
        if given is not None:
            values[f.name] = given if isinstance(given, bool) else _convert(f, given, hints[f.name])
        elif (raw := env.get(ENV_PREFIX + f.name.upper())) is not None:
            values[f.name] = _convert(f, raw, hints[f.name])
    return BenchSettings(**values)
