"""How much recall Elasticsearch's vector quantisation costs, simulated in numpy on a real corpus.

``python -m tests.rag.quantization_recall --model DIR [--model DIR ...]`` embeds the bench corpus
(:func:`bench.corpus.from_stdlib`: passages of CPython docstrings, plus the docstring first
sentences that are not held out as queries) with an exported model directory (ONNX Runtime on
the CPU, the model's own pooling and normalisation), then for each ``dense_vector``
``index_options`` type ranks every query's neighbours two ways: exactly (float32 cosine) and
by the quantised scores. Recall@k is the share of the exact top ``k`` that the quantised top
``k`` holds, averaged over the queries.

What is simulated, and what is not:

- ``hnsw``: float32 vectors; its quantisation recall is 1 by definition.
- ``int8_hnsw``: Lucene's scalar quantiser as Elasticsearch configures it: 7 bits, one
  interval for all dimensions from the corpus' ``1 - 1/(dims + 1)`` confidence interval,
  documents and query quantised alike, scored by the dot product of the de-quantised values.
- ``int4_hnsw``: the same at 4 bits with the 0.5% .. 99.5% quantiles (Elasticsearch computes
  "dynamic" quantiles; this is a fixed stand-in for them).
- ``bbq_hnsw``: 1 bit per dimension of the document vector centred on the corpus centroid,
  with the two per-vector corrections of RaBitQ-style estimators (the centred norm and the
  code's alignment with it), and the query at 4 bits: the family Elasticsearch's BBQ belongs
  to, not its code (Elasticsearch's optimised scalar quantisation picks each vector's interval
  by a search, which should do at least as well). Shown without rescoring and with
  ``rescore_vector.oversample`` 3, which Elasticsearch 9.1+ applies to ``bbq_hnsw`` by default:
  the top ``ceil(k * 3)`` by quantised score are re-ranked by their float32 vectors.

Not simulated: the HNSW graph itself (every option searches exhaustively here), so the
figures isolate the cost of quantisation; the graph's own approximation comes on top of every
option alike and is governed by ``num_candidates``. The embeddings are cached under
``build/quantization-recall/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Scorer = Callable[[Matrix, Matrix], Matrix]
CACHE = Path("build/quantization-recall")


def int_scalar(bits: int, low: float, high: float) -> Callable[[Matrix], Matrix]:
    """Quantise every value to ``bits`` bits on ``[low, high]`` and de-quantise it again."""
    levels = (1 << bits) - 1
    step = (high - low) / levels

    def quantise(x: Matrix) -> Matrix:
        codes = np.rint((np.clip(x, low, high) - low) / step)
        return np.asarray(codes * step + low, dtype=np.float32)

    return quantise


def scalar_scorer(docs: Matrix, bits: int, confidence: float) -> Scorer:
    """Scores of a scalar-quantised index (one interval for all dimensions, from ``docs``)."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(docs, [tail, 1.0 - tail])
    quantise = int_scalar(bits, float(low), float(high))

    def score(queries: Matrix, corpus: Matrix) -> Matrix:
        return quantise(queries) @ quantise(corpus).T

    return score


def bbq_scorer(docs: Matrix) -> Scorer:
    """Scores of a 1-bit index: RaBitQ-style estimate of <doc, query> (see module doc)."""
    centroid = docs.mean(axis=0)
    dims = docs.shape[1]

    def score(queries: Matrix, corpus: Matrix) -> Matrix:
        residual = corpus - centroid
        norms = np.linalg.norm(residual, axis=1)
        codes = np.where(residual >= 0, 1.0, -1.0).astype(np.float32) / math.sqrt(dims)
        alignment = np.abs(residual).sum(axis=1) / (math.sqrt(dims) * np.maximum(norms, 1e-12))
        centred = queries - centroid
        low, high = centred.min(axis=1, keepdims=True), centred.max(axis=1, keepdims=True)
        step = (high - low) / 15.0
        query4 = np.rint((centred - low) / step) * step + low
        estimate = (query4 @ codes.T) * (norms / alignment)[None, :]
        return np.asarray(
            estimate + (residual @ centroid)[None, :] + (queries @ centroid)[:, None], dtype=np.float32
        )

    return score


def top(scores: Matrix, k: int) -> npt.NDArray[np.int64]:
    """Indices of the ``k`` highest scores per row, best first."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def recall(exact: npt.NDArray[np.int64], found: npt.NDArray[np.int64]) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found, strict=True)]))


def rescored(approx: Matrix, exact_scores: Matrix, k: int, oversample: float) -> npt.NDArray[np.int64]:
    """The top ``k`` after re-ranking the quantised top ``ceil(k * oversample)`` by float32."""
    window = top(approx, math.ceil(k * oversample))
    exact_window = np.take_along_axis(exact_scores, window, axis=1)
    order = np.argsort(-exact_window, axis=1)[:, :k]
    return np.take_along_axis(window, order, axis=1)


@dataclass(frozen=True)
class Row:
    option: str
    rescore: str
    recall: dict[int, float]


def measure(docs: Matrix, queries: Matrix, ks: Sequence[int] = (5, 10)) -> list[Row]:
    """Recall@k of each simulated ``index_options`` type against exact cosine."""
    dims = docs.shape[1]
    exact_scores = queries @ docs.T
    exact = {k: top(exact_scores, k) for k in ks}
    options: list[tuple[str, Matrix]] = [
        ("int8_hnsw", scalar_scorer(docs, 7, 1.0 - 1.0 / (dims + 1))(queries, docs)),
        ("int4_hnsw", scalar_scorer(docs, 4, 0.99)(queries, docs)),
        ("bbq_hnsw", bbq_scorer(docs)(queries, docs)),
    ]
    rows = [Row("hnsw", "-", {k: 1.0 for k in ks})]
    for name, approx in options:
        rows.append(Row(name, "none", {k: recall(exact[k], top(approx, k)) for k in ks}))
        for oversample in (2.0, 3.0):
            rows.append(
                Row(
                    name,
                    f"oversample {oversample:g}",
                    {k: recall(exact[k], rescored(approx, exact_scores, k, oversample)) for k in ks},
                )
            )
    return rows


def embed(model_dir: Path, texts: Sequence[str], batch: int = 32) -> Matrix:
    """Unit vectors of ``texts`` from an exported model directory (in-graph pooling)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    manifest = json.loads((model_dir / "manifest.json").read_text())
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(int(manifest["max_length"]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), int(manifest["dims"])), dtype=np.float32)
    for start in range(0, len(order), batch):
        ids = order[start : start + batch]
        encoded = tokenizer.encode_batch([texts[i] for i in ids])
        width = max(len(e.ids) for e in encoded)
        feed = {
            "input_ids": np.array([e.ids + [0] * (width - len(e.ids)) for e in encoded], dtype=np.int64),
            "attention_mask": np.array(
                [e.attention_mask + [0] * (width - len(e.ids)) for e in encoded], dtype=np.int64
            ),
            "token_type_ids": np.zeros((len(ids), width), dtype=np.int64),
        }
        (vectors,) = session.run([manifest["output"]], {n: feed[n] for n in names})[:1]
        out[ids] = vectors
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


def corpus_texts(queries: int) -> tuple[list[str], list[str], str]:
    """(documents, queries, description): bench passages plus the first sentences not asked."""
    from bench.corpus import from_stdlib

    corpus = from_stdlib(passages=100_000, queries=100_000)
    asked = list(corpus.queries[:queries])
    docs = list(corpus.passages) + list(corpus.queries[queries:])
    return docs, asked, f"{corpus.source}, digest {corpus.digest()}"


def cached_embeddings(model_dir: Path, texts: Sequence[str], tag: str) -> Matrix:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{model_dir.name}-{tag}-{len(texts)}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    vectors = embed(model_dir, texts)
    np.save(path, vectors)
    return vectors


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", action="append", required=True, type=Path, help="exported model directory")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args(argv)
    docs, asked, described = corpus_texts(args.queries)
    print(f"corpus: {len(docs)} documents, {len(asked)} queries ({described})")
    for model_dir in args.model:
        manifest = json.loads((model_dir / "manifest.json").read_text())
        started = time.monotonic()
        doc_vectors = cached_embeddings(model_dir, docs, "docs")
        query_vectors = cached_embeddings(model_dir, asked, "queries")
        print(
            f"\n{manifest['name']} ({manifest['dims']} dims), embedded in {time.monotonic() - started:.0f} s"
        )
        print("| index_options | rescore | recall@5 | recall@10 |\n|---|---|---|---|")
        for row in measure(doc_vectors, query_vectors):
            print(f"| `{row.option}` | {row.rescore} | {row.recall[5]:.3f} | {row.recall[10]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
