"""Side-by-side retrieval evaluation of several embedding systems on held-out pairs.

A *system* is a checkpoint run in process, a running embedding server (its URL), or an
exported ONNX model directory plus variant, which :class:`~finetune.server_process.ServerProcess`
serves for the duration. Every system embeds the same unique held-out queries and the same
corpus (the unique held-out passages, then any distractors); each query's relevant passages
are those it was paired with. :mod:`finetune.metrics` scores the rankings, at full width and
at each requested Matryoshka width.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from finetune import metrics, pairs
from finetune.base import check as check_checkpoint
from finetune.encoder import CheckpointEncoder, Encoder, HttpEncoder
from finetune.errors import UsageError
from finetune.server_process import ServerProcess

logger = logging.getLogger("finetune")

SystemKind = Literal["checkpoint", "server", "onnx"]
DEFAULT_KS = (1, 5, 10)


@dataclass(frozen=True)
class System:
    """One thing to evaluate: ``target`` is a checkpoint dir, a base URL or an ONNX model dir."""

    label: str
    kind: SystemKind
    target: str
    variant: str = ""


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation; ``dimensions`` empty means full width only."""

    data: Path
    systems: tuple[System, ...]
    ks: tuple[int, ...] = DEFAULT_KS
    dimensions: tuple[int, ...] = ()
    distractors: Path | None = None
    batch_size: int = 32
    device: str = "cpu"
    api_key: str | None = None
    startup_timeout: float = 300.0
    server_args: tuple[str, ...] = ()

    def validate(self) -> None:
        if not self.systems:
            raise UsageError("nothing to evaluate: give --model, --base, --server-url or --onnx-dir")
        labels = [s.label for s in self.systems]
        if len(set(labels)) != len(labels):
            raise UsageError(f"system labels must be unique, got {labels}; name them with LABEL=PATH")
        if not self.ks or any(k < 1 for k in self.ks):
            raise UsageError("--k takes positive cut-offs, e.g. 1,5,10")
        if any(d < 1 for d in self.dimensions):
            raise UsageError("--dimensions takes positive widths, e.g. 384,256,128")
        if self.batch_size < 1:
            raise UsageError("--batch-size must be positive")


def read_distractors(path: Path) -> list[str]:
    """Passages to add to the corpus: a dataset dir (its train passages) or JSONL with passage/content."""
    if path.is_dir():
        path = path / pairs.TRAIN_FILE
    if not path.is_file():
        raise UsageError(f"--distractors {path} does not exist; give a JSONL file with passage or content")
    texts = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        obj = json.loads(line)
        text = obj.get("passage", obj.get("content")) if isinstance(obj, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{path}:{line_number}: expected an object with a passage or content string")
        texts.append(text.strip())
    return texts


@contextmanager
def open_encoder(system: System, config: EvalConfig) -> Iterator[Encoder]:
    """The encoder for a system, with its server (if any) running while the block runs."""
    if system.kind == "checkpoint":
        yield CheckpointEncoder(Path(system.target), config.device, config.batch_size)
    elif system.kind == "server":
        http = HttpEncoder(system.target, config.batch_size, config.api_key)
        try:
            yield http
        finally:
            http.close()
    else:
        launcher = ServerProcess(
            Path(system.target), system.variant, config.startup_timeout, config.server_args
        )
        with launcher as url:
            http = HttpEncoder(url, config.batch_size)
            try:
                yield http
            finally:
                http.close()


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Embed and score every system; return the results document (see :func:`render_markdown`)."""
    config.validate()
    data_file = pairs.heldout_file(config.data)
    heldout = pairs.read_pairs(data_file)
    distractors = read_distractors(config.distractors) if config.distractors else []
    qrels = metrics.build_qrels(heldout, distractors)
    depth = max(*config.ks, metrics.CUTOFF)
    rows = []
    for system in config.systems:
        started = time.monotonic()
        with open_encoder(system, config) as encoder:
            queries = encoder.encode(qrels.queries)
            corpus = encoder.encode(qrels.corpus)
        seconds = time.monotonic() - started
        width = int(queries.shape[1])
        widths = sorted({d for d in config.dimensions if d <= width} | {width}, reverse=True)
        if any(d > width for d in config.dimensions):
            skipped = [d for d in config.dimensions if d > width]
            logger.warning(
                "%s: vectors have %d dimensions; skipping --dimensions %s", system.label, width, skipped
            )
        for dims in widths:
            # Encoders return unit rows; only a narrower width needs cutting and re-normalising.
            q, c = (
                (queries, corpus)
                if dims == width
                else (metrics.truncate(queries, dims), metrics.truncate(corpus, dims))
            )
            scores = (q @ c.T).astype(np.float32)
            ranking = metrics.rank(scores, depth)
            rows.append(
                {
                    "label": system.label,
                    "kind": system.kind,
                    "target": system.target,
                    "variant": system.variant,
                    "dims": dims,
                    "metrics": {
                        k: round(v, 4)
                        for k, v in metrics.retrieval_metrics(ranking, qrels.relevant, config.ks).items()
                    },
                    "embed_seconds": round(seconds, 1),
                }
            )
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(data_file),
        "queries": len(qrels.queries),
        "corpus": len(qrels.corpus),
        "distractors": qrels.distractors,
        "ks": list(config.ks),
        "results": rows,
    }


def render_markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown table (one row per system and width) with a provenance line."""
    ks = results["ks"]
    columns = [f"recall@{k}" for k in ks] + ["mrr@10", "ndcg@10"]
    header = ["system", "source", "dims", *[c.replace("mrr", "MRR").replace("ndcg", "nDCG") for c in columns]]
    lines = [
        f"Held-out pairs: `{results['data']}`; {results['queries']} queries, corpus of {results['corpus']} "
        f"passages ({results['distractors']} distractors); evaluated {results['created']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] * len(columns)) + "|",
    ]
    for row in results["results"]:
        source = row["target"] + (f" ({row['variant']})" if row["variant"] else "")
        values = [f"{row['metrics'][c]:.4f}" for c in columns]
        lines.append("| " + " | ".join([row["label"], f"`{source}`", str(row["dims"]), *values]) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and the same name with ``.md`` (Markdown); return both paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    markdown = out.with_suffix(".md")
    markdown.write_text(render_markdown(results), encoding="utf-8")
    return out, markdown


def parse_systems(
    base: str | None,
    models: Sequence[str],
    server_urls: Sequence[str],
    onnx_dir: str | None,
    variants: Sequence[str],
) -> tuple[System, ...]:
    """Systems from CLI values; ``LABEL=VALUE`` names one, else the label is derived."""

    def split_label(value: str, default: str) -> tuple[str, str]:
        label, sep, rest = value.partition("=")
        if sep and label and "/" not in label and ":" not in label:
            return label, rest
        return default, value

    systems: list[System] = []
    if base:
        label, path = split_label(base, "base")
        systems.append(System(label, "checkpoint", path))
    for value in models:
        label, path = split_label(value, Path(value).name or value)
        systems.append(System(label, "checkpoint", path))
    for value in server_urls:
        label, url = split_label(value, "server")
        systems.append(System(label, "server", url))
    if onnx_dir:
        label, path = split_label(onnx_dir, Path(onnx_dir).name or onnx_dir)
        for variant in variants or ("fp32",):
            systems.append(System(f"{label}-{variant}", "onnx", path, variant))
    elif variants:
        raise UsageError("--variant needs --onnx-dir")
    for system in systems:
        if system.kind != "server" and not Path(system.target).is_dir():
            raise UsageError(f"{system.label}: {system.target} is not a directory")
        if system.kind == "checkpoint":
            check_checkpoint(Path(system.target), flag=f"{system.label}:")
        if system.kind == "onnx" and not (Path(system.target) / "manifest.json").is_file():
            raise UsageError(
                f"--onnx-dir {system.target} has no manifest.json; export a checkpoint first "
                "(python -m export CHECKPOINT_DIR OUT_DIR --variants fp32,int8)"
            )
    return tuple(systems)
