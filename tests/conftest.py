"""Session fixtures shared by every suite.

Model fixtures (owned by the exporter):

- ``minilm_checkpoint`` / ``sre_checkpoint``: checkpoint directories of the shipped
  all-MiniLM-L6-v2 and sre-embedding-model packages;
- ``minilm_model_dir``: MiniLM exported with fp32 and int8 (both gated, also on the held-out
  set of :func:`eval_pairs` as ``--eval-data``) by :func:`export.pipeline.export_model`,
  cached under ``build/test-models/<key>/``. The key
  hashes the checkpoint's content and the exporter's sources, so a change to either
  re-exports and an unchanged tree reuses the directory across test runs. Treat it as
  read-only: copy it (``shutil.copytree``) before damaging it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEST_MODELS = ROOT / "build" / "test-models"

# Checkpoints are local; transformers must never reach for the Hub during tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _export_sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "export").glob("*.py"), ROOT / "server" / "manifest.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def eval_pairs(path: Path, size: int = 60) -> Path:
    """A held-out set in the fine-tuning format: ``size`` (first sentence, rest of the
    section) pairs of the Python reference, as a user's ``--eval-data`` file."""
    import json

    from export import domains

    built = domains.build("tech-docs", size=size)
    pairs = zip(built.queries, built.passages, strict=True)
    path.write_text("".join(json.dumps({"query": q, "passage": p}) + "\n" for q, p in pairs))
    return path


def _cached_export(checkpoint: Path, name: str, variants: tuple[str, ...]) -> Path:
    """Export ``checkpoint`` once per (content, exporter sources, variants); reuse it afterwards."""
    from export.checkpoint import inspect
    from export.pipeline import ExportOptions, Progress, export_model

    key = hashlib.sha256(
        f"{inspect(checkpoint).content_sha256()}\0{_export_sources_digest()}\0{name}\0{','.join(variants)}".encode()
    ).hexdigest()[:16]
    out = TEST_MODELS / key
    TEST_MODELS.mkdir(parents=True, exist_ok=True)
    # Several pytest processes may want the same model at once; one exports, the others wait.
    with (TEST_MODELS / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "manifest.json").is_file():
            data = eval_pairs(TEST_MODELS / f"{key}.eval.jsonl")
            options = ExportOptions(
                variants=variants, required=frozenset(variants), force=True, name=name, eval_data=data
            )
            with (TEST_MODELS / f"{key}.log").open("w") as log:
                export_model(checkpoint, out, options, Progress(log))
    return out


@pytest.fixture(scope="session")
def minilm_checkpoint() -> Path:
    from export.shipped import checkpoint_dir

    return checkpoint_dir("all-minilm-l6-v2")


@pytest.fixture(scope="session")
def sre_checkpoint() -> Path:
    from export.shipped import checkpoint_dir

    return checkpoint_dir("sre-embedding-model")


@pytest.fixture(scope="session")
def minilm_model_dir(minilm_checkpoint: Path) -> Path:
    return _cached_export(minilm_checkpoint, "all-minilm-l6-v2", ("fp32", "int8"))
