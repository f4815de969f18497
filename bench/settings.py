"""The bench's one settings object, its presets and its CLI; the only reader of the environment.

``python -m bench`` runs the quick suite (a few minutes on 2 cores) against a server it
starts itself; ``--suite full`` runs everything with more data and three interleaved
rounds; ``--url`` targets a server that is already running. Sizes of a preset can be
overridden one by one (``--passages``, ``--rounds``, ``--phase-seconds``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

Suite = Literal["quick", "full"]
PEERS = ("st", "ort", "infinity")
VARIANTS = ("fp32", "int8", "fp16")
DEFAULT_MODEL = Path("models/all-mpnet-base-v2")
FALLBACK_MODEL = Path("models/all-minilm-l6-v2")
INFINITY_BIN = Path("build/peer-venvs/infinity/bin/infinity_emb")


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
    ),
}


@dataclass(frozen=True)
class BenchSettings:
    """Everything one bench run needs, resolved from flags and defaults."""

    model: Path
    suite: Suite = "quick"
    preset: Preset = field(default_factory=lambda: PRESETS["quick"])
    url: str | None = None
    api_key: str = ""
    peers: tuple[str, ...] = ("st", "ort")
    variants: tuple[str, ...] = ()
    corpus: Path | None = None
    checkpoint: Path | None = None
    threads: int = 2
    out: Path = Path("bench-results")
    seed: int = 0
    infinity_bin: Path = INFINITY_BIN
    server_args: tuple[str, ...] = ()
    plots: bool = True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["api_key"] = "(set)" if self.api_key else ""
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


def _csv(flag: str, raw: str, allowed: Sequence[str]) -> tuple[str, ...]:
    if raw.strip().lower() in ("", "none"):
        return ()
    items = tuple(dict.fromkeys(x.strip() for x in raw.split(",") if x.strip()))
    unknown = [x for x in items if x not in allowed]
    if unknown:
        raise SettingsError(f"{flag}: unknown {', '.join(unknown)}; choose from {', '.join(allowed)} or none")
    return items


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the embedding engine and server against sentence-transformers, plain "
        "ONNX Runtime and infinity-emb on the same model, corpus and thread count.",
    )
    p.add_argument("--model", type=Path, help=f"exported model directory [default {DEFAULT_MODEL}]")
    p.add_argument("--suite", choices=get_args(Suite), default="quick", help="preset sizes [quick]")
    p.add_argument("--url", help="benchmark this running server instead of starting ours")
    p.add_argument("--api-key", default=None, help="API key for --url [env BENCH_API_KEY]")
    p.add_argument("--peers", help=f"comma list of {', '.join(PEERS)} or none [suite's default]")
    p.add_argument("--variants", help="model variants to measure [every CPU variant of the model]")
    p.add_argument("--corpus", type=Path, help='JSONL corpus: {"text": ..., "kind": "passage"|"query"}')
    p.add_argument("--checkpoint", type=Path, help="HF checkpoint for the peers [manifest source path]")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="threads everywhere [2]")
    p.add_argument("--out", type=Path, help="results directory [bench-results/<timestamp>]")
    p.add_argument("--seed", type=int, default=0, help="seed of the corpus sample and the arrivals [0]")
    p.add_argument("--passages", type=int, help="passages in the throughput corpus [suite's]")
    p.add_argument("--rounds", type=int, help="interleaved throughput rounds [suite's]")
    p.add_argument("--phase-seconds", type=float, help="seconds of each load phase [suite's]")
    p.add_argument("--infinity-bin", type=Path, default=INFINITY_BIN, help=f"infinity_emb [{INFINITY_BIN}]")
    p.add_argument("--server-args", default="", help='extra flags for our server, e.g. "--max-batch-size 32"')
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def from_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> BenchSettings:
    """Parse flags (``BENCH_API_KEY`` from the environment) into checked settings."""
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    preset = PRESETS[args.suite]
    sizes = {"passages": args.passages, "rounds": args.rounds, "phase_s": args.phase_seconds}
    for name, value in sizes.items():
        if value is not None and value <= 0:
            raise SettingsError(f"--{name.replace('_s', '-seconds')} must be positive, got {value}")
    preset = replace(preset, **{k: v for k, v in sizes.items() if v is not None})
    if args.threads < 1:
        raise SettingsError(f"--threads must be at least 1, got {args.threads}")
    model = args.model
    if model is None:
        model = DEFAULT_MODEL if DEFAULT_MODEL.is_dir() or not FALLBACK_MODEL.is_dir() else FALLBACK_MODEL
    peers = preset.peers if args.peers is None else _csv("--peers", args.peers, PEERS)
    out = args.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    return BenchSettings(
        model=model,
        suite=args.suite,
        preset=preset,
        url=args.url,
        api_key=args.api_key if args.api_key is not None else env.get("BENCH_API_KEY", ""),
        peers=peers,
        variants=_csv("--variants", args.variants or "", VARIANTS),
        corpus=args.corpus,
        checkpoint=args.checkpoint,
        threads=args.threads,
        out=out,
        seed=args.seed,
        infinity_bin=args.infinity_bin,
        server_args=tuple(args.server_args.split()),
        plots=not args.no_plots,
    )
