"""``python -m export.compare MODEL_DIR [ONNX_FILE ...]``: the figures behind docs/EXPORT.md.

For each ONNX graph of one model directory (its variants, or the files named, e.g. an int8
built another way from the same fp32 graph) prints its batch variation (a text alone
against the same text among other batch mates, :func:`export.parity.batch_variation`), its
cosine to the fp32 variant on the retrieval corpus's passages, and the best time to embed
those passages as the exporter's gate does (length-sorted batches of 16) with ``--threads``
intra-op threads, runs interleaved so that load from other processes hits every graph alike.
Parity with the PyTorch reference is in the manifest; this adds what the gate does not time.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from export import corpus, parity
from server.manifest import ManifestError, load
from server.tokenizer import Tokenizer


def compare(directory: Path, files: Sequence[Path], threads: int, rounds: int, texts: int) -> list[str]:
    """One line of figures per graph file (the directory's variants when ``files`` is empty)."""
    manifest = load(directory)
    tokenizer = Tokenizer(directory, manifest.max_length)
    graphs = {name: directory / v.file for name, v in manifest.variants.items()}
    graphs |= {str(path): path for path in files}
    encoders = {
        name: parity.OnnxEncoder(path, tokenizer, manifest.inputs, threads=threads)
        for name, path in graphs.items()
    }
    passages = list(corpus.retrieval_corpus().passages[:texts])
    fp32 = encoders["fp32"](passages)
    seconds = parity.best_seconds(list(encoders.values()), passages, rounds=rounds)
    lines = []
    for (name, encode), best in zip(encoders.items(), seconds, strict=True):
        cos_mean, cos_min, _ = parity.cosine_and_diff(fp32, encode(passages))
        variation = parity.batch_variation(encode, corpus.invariance_texts())
        lines.append(
            f"{name}: batch variation {variation:.1e}, cos to fp32 mean {cos_mean:.4f} min {cos_min:.4f}, "
            f"{len(passages)} passages in {best:.2f} s ({len(passages) / best:.1f}/s, {threads} threads)"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m export.compare",
        description="Batch variation, agreement and speed of a model directory's graphs.",
    )
    parser.add_argument("model", type=Path, metavar="MODEL_DIR", help="exported model directory")
    parser.add_argument(
        "files", type=Path, nargs="*", metavar="ONNX_FILE", help="other graphs of the same model"
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads per session (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per graph, best kept (default 3)")
    parser.add_argument("--texts", type=int, default=300, help="corpus passages to embed (default all 300)")
    args = parser.parse_args(argv)
    try:
        lines = compare(args.model, args.files, args.threads, args.rounds, args.texts)
    except ManifestError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
