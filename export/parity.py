"""Parity gates: does an exported variant compute what the PyTorch model computes?

Each variant is run the way the server runs it, by the server's own code (its tokenizer on
the written ``tokenizer.json`` with truncation to the manifest's ``max_length``, its
padding of each batch to its longest row, its ONNX Runtime session options, on CPU) and
compared with the reference on :func:`export.corpus.parity_texts`:

- fp32 must reproduce the reference: every cosine >= 0.99999 and no element of the
  un-normalised pooled vector more than 1e-4 away;
- int8 and fp16 trade exactness for speed: mean cosine >= 0.99 on the parity texts, and
  on *each* retrieval domain of :mod:`export.domains` (docstrings, technical docs, short
  queries, code, prose: queries each with the one passage that answers it) a mean cosine
  to the fp32 graph >= 0.99, a recall@10 at least 97 % of the fp32 graph's and a mean
  top-10 overlap with the fp32 graph's rankings >= 0.90 (:func:`judge_domain`);
  ``recall_at_10`` is the worst domain's ratio.

Batch invariance is measured for every variant (:func:`batch_variation`: a text's vector
alone against the same text among rotated batch mates of other lengths): at most
:data:`BATCH_MAX_ABS_DIFF` apart means batch-invariant. It is part of the gate of the
variants built to be invariant (fp32, statically quantised int8); the others record it.

The reference is the sentence-transformers model itself (without its ``Normalize`` module)
when the checkpoint is a sentence-transformers one exported with its own pooling, and the
transformers encoder with the chosen pooling otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from transformers import PreTrainedTokenizerBase

from export.checkpoint import Checkpoint
from export.errors import ExportError
from export.graph import PooledEncoder
from server.collate import collate
from server.manifest import DomainParity, Parity
from server.session import session_options
from server.tokenizer import Tokenizer

Vectors = npt.NDArray[np.float32]
Encode = Callable[[Sequence[str]], Vectors]

FP32_MIN_COSINE = 0.99999
FP32_MAX_ABS_DIFF = 1e-4
REDUCED_MEAN_COSINE = 0.99
REDUCED_RECALL_AT_10 = 0.97
TOP_K = 10
# On each retrieval domain (export.domains), against the fp32 graph: the mean share of fp32's
# top 10 per query that the variant also ranks top 10, and its mean cosine there.
DOMAIN_TOP10_OVERLAP = 0.90
DOMAIN_MEAN_COSINE = 0.99
# A text's vector alone and in any batch: as far apart as fp32 rounding of padded rows allows.
BATCH_MAX_ABS_DIFF = 1e-5
# Rows per batch; texts are sorted by length first, so padding stays small.
BATCH_SIZE = 16


@dataclass(frozen=True)
class Verdict:
    """A variant's parity figures and, if it failed its gate, why."""

    parity: Parity
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def cosine_and_diff(reference: Vectors, candidate: Vectors) -> tuple[float, float, float]:
    """Mean cosine, min cosine and max absolute element difference, row by row."""
    if reference.shape != candidate.shape:
        raise ExportError(
            f"variant output shape {candidate.shape} differs from the reference {reference.shape}"
        )
    ref = reference.astype(np.float64)
    cand = candidate.astype(np.float64)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cos = (ref * cand).sum(axis=1) / np.maximum(norms, 1e-12)
    return float(cos.mean()), float(cos.min()), float(np.abs(ref - cand).max())


def _top_k(queries: Vectors, passages: Vectors, k: int) -> npt.NDArray[np.int64]:
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    p = passages / np.linalg.norm(passages, axis=1, keepdims=True)
    scores = q.astype(np.float64) @ p.astype(np.float64).T
    # Stable sort so that ties rank the same way for both encoders.
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def recall_at_k(queries: Vectors, passages: Vectors, k: int = TOP_K) -> float:
    """Fraction of queries ``i`` whose own passage ``i`` is among their top ``k`` by cosine."""
    top = _top_k(queries, passages, k)
    return float(np.mean([i in row for i, row in enumerate(top.tolist())]))


def top_k_overlaps(
    baseline: tuple[Vectors, Vectors], candidate: tuple[Vectors, Vectors], k: int = TOP_K
) -> npt.NDArray[np.float64]:
    """Per query, the fraction of the baseline's top-``k`` passages that the candidate also ranks top-``k``.

    Each argument is ``(query vectors, passage vectors)``.
    """
    base = _top_k(*baseline, k)
    cand = _top_k(*candidate, k)
    return np.array([len(set(b.tolist()) & set(c.tolist())) / k for b, c in zip(base, cand, strict=True)])


def top_k_overlap(
    baseline: tuple[Vectors, Vectors], candidate: tuple[Vectors, Vectors], k: int = TOP_K
) -> float:
    """Mean of :func:`top_k_overlaps`."""
    return float(np.mean(top_k_overlaps(baseline, candidate, k)))


def judge_domain(
    name: str, fp32: tuple[Vectors, Vectors], candidate: tuple[Vectors, Vectors]
) -> tuple[DomainParity, tuple[str, ...]]:
    """A reduced-precision variant against the fp32 graph on one retrieval domain: its
    figures and, if it fails there, why (mean cosine, recall@10 relative to fp32, top-10 overlap)."""
    cos_mean, cos_min, _ = cosine_and_diff(np.concatenate(fp32), np.concatenate(candidate))
    fp32_recall = recall_at_k(*fp32)
    recall = recall_at_k(*candidate) / max(fp32_recall, 1e-9)
    overlaps = top_k_overlaps(fp32, candidate)
    failures: list[str] = []
    if cos_mean < DOMAIN_MEAN_COSINE:
        failures.append(f"{name}: mean cosine to fp32 {cos_mean:.4f} < {DOMAIN_MEAN_COSINE}")
    if recall < REDUCED_RECALL_AT_10:
        failures.append(f"{name}: recall@10 relative to fp32 {recall:.3f} < {REDUCED_RECALL_AT_10}")
    if overlaps.mean() < DOMAIN_TOP10_OVERLAP:
        failures.append(f"{name}: top-10 overlap with fp32 {overlaps.mean():.3f} < {DOMAIN_TOP10_OVERLAP}")
    figures = DomainParity(
        cos_mean=cos_mean,
        cos_min=cos_min,
        recall_at_10=recall,
        fp32_recall_at_10=fp32_recall,
        top10_overlap=float(overlaps.mean()),
        top10_overlap_min=float(overlaps.min()),
        queries=len(fp32[0]),
        passed=not failures,
    )
    return figures, tuple(failures)


def batch_invariant(batch_diff: float) -> bool:
    """Whether a variant whose :func:`batch_variation` is ``batch_diff`` counts as batch-invariant."""
    return batch_diff <= BATCH_MAX_ABS_DIFF


def judge(
    variant: str, reference: Vectors, candidate: Vectors, recall: float, batch_diff: float | None = None
) -> Verdict:
    """Apply the gate of ``variant`` (fp32, or a reduced precision) to its figures.

    ``batch_diff`` (a :func:`batch_variation`) is gated when given: a variant whose vectors
    move with their batch mates by more than :data:`BATCH_MAX_ABS_DIFF` fails.
    """
    cos_mean, cos_min, max_abs = cosine_and_diff(reference, candidate)
    parity = Parity(
        cos_mean=cos_mean,
        cos_min=cos_min,
        max_abs_diff=max_abs,
        recall_at_10=recall,
        texts=len(reference),
    )
    failures: list[str] = []
    if variant == "fp32":
        if cos_min < FP32_MIN_COSINE:
            failures.append(f"min cosine {cos_min:.6f} < {FP32_MIN_COSINE}")
        if max_abs > FP32_MAX_ABS_DIFF:
            failures.append(f"max abs diff {max_abs:.2e} > {FP32_MAX_ABS_DIFF:.0e}")
    else:
        if cos_mean < REDUCED_MEAN_COSINE:
            failures.append(f"mean cosine {cos_mean:.4f} < {REDUCED_MEAN_COSINE}")
        if recall < REDUCED_RECALL_AT_10:
            failures.append(f"recall@10 relative to fp32 {recall:.3f} < {REDUCED_RECALL_AT_10}")
    if batch_diff is not None and not batch_invariant(batch_diff):
        failures.append(
            f"not batch-invariant: a vector moves by {batch_diff:.1e} with its batch mates "
            f"(> {BATCH_MAX_ABS_DIFF:.0e})"
        )
    if not np.isfinite(candidate).all():
        failures.append("the variant outputs NaN or infinite values")
    return Verdict(parity=parity, failures=tuple(failures))


class OnnxEncoder:
    """Embeds texts with an ONNX graph exactly as the server would: one vector per text, in order.

    The server's own parts do the work: ``tokenizer`` (:class:`server.tokenizer.Tokenizer`:
    truncation, pad id, input clip), :func:`server.collate.collate` and
    :func:`server.session.session_options` (``threads`` intra-op threads, 0: ORT's
    default); rows are length-sorted into batches of :data:`BATCH_SIZE`.
    """

    def __init__(
        self,
        model: Path,
        tokenizer: Tokenizer,
        inputs: Sequence[str],
        providers: Sequence[str] = ("CPUExecutionProvider",),
        threads: int = 0,
    ) -> None:
        self.tokenizer = tokenizer
        options = session_options(intra_op_threads=threads, inter_op_threads=1)
        try:
            self.session = ort.InferenceSession(str(model), sess_options=options, providers=list(providers))
        except Exception as exc:
            raise ExportError(f"ONNX Runtime cannot load {model.name}: {exc}") from exc
        self.inputs = tuple(inputs)
        self.output = self.session.get_outputs()[0].name

    def feeds(
        self, texts: Sequence[str], batch_size: int = BATCH_SIZE
    ) -> Iterator[tuple[list[int], dict[str, npt.NDArray[np.int64]]]]:
        """Length-sorted batches of ``texts``: the row indices of each and its input arrays."""
        ids = self.tokenizer.encode(texts).ids
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield rows, collate([ids[i] for i in rows], self.tokenizer.pad_id, self.inputs)

    def run(self, outputs: Sequence[str], feed: dict[str, npt.NDArray[np.int64]]) -> list[npt.NDArray[Any]]:
        try:
            return list(self.session.run(list(outputs), feed))
        except Exception as exc:
            raise ExportError(f"ONNX Runtime failed to run the graph: {exc}") from exc

    def batch(self, texts: Sequence[str]) -> Vectors:
        """``texts`` as one batch, in this order, padded to the longest: one vector per text."""
        ids = self.tokenizer.encode(texts).ids
        feed = collate(ids, self.tokenizer.pad_id, self.inputs)
        return np.asarray(self.run([self.output], feed)[0], dtype=np.float32)

    def __call__(self, texts: Sequence[str]) -> Vectors:
        out: Vectors | None = None
        for rows, feed in self.feeds(texts):
            result = self.run([self.output], feed)[0]
            if out is None:
                out = np.empty((len(texts), result.shape[1]), dtype=np.float32)
            out[rows] = result.astype(np.float32)
        assert out is not None
        return out


class BatchEncoder(Protocol):
    """Anything that embeds a list of texts as one batch (:meth:`OnnxEncoder.batch`)."""

    def batch(self, texts: Sequence[str]) -> Vectors: ...


def batch_variation(encode: BatchEncoder, texts: Sequence[str]) -> float:
    """Largest element difference between a text's vector computed alone and in a batch.

    Each text of ``texts`` (which should differ in length) is run alone, then among all of
    them rotated so that it sits at every position, then in pairs with each of its
    neighbours (padded to the longer of the two): batch mates, positions and padded
    lengths all change while the text does not.
    """
    alone = np.concatenate([encode.batch([text]) for text in texts])
    worst = 0.0
    for shift in range(len(texts)):
        order = [(i + shift) % len(texts) for i in range(len(texts))]
        for size in (2, len(texts)):
            rows = order[:size]
            together = encode.batch([texts[i] for i in rows])
            worst = max(worst, float(np.abs(together.astype(np.float64) - alone[rows]).max()))
    return worst


def best_seconds(encoders: Sequence[OnnxEncoder], texts: Sequence[str], rounds: int = 3) -> list[float]:
    """Best wall time of each encoder over ``texts``, runs interleaved after one warm-up each.

    Interleaving and taking the minimum keep a burst of load from other processes from
    deciding the comparison.
    """
    for encode in encoders:
        encode(texts)
    best = [float("inf")] * len(encoders)
    for _ in range(rounds):
        for i, encode in enumerate(encoders):
            start = time.perf_counter()
            encode(texts)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def reference_encoder(
    checkpoint: Checkpoint,
    encoder: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    with_token_types: bool,
) -> tuple[Encode, str]:
    """The PyTorch reference for ``checkpoint`` and a one-line description of it."""
    if checkpoint.sentence_transformers and checkpoint.pooling_source != "--pooling":
        return _sentence_transformers_encoder(checkpoint), "sentence-transformers (torch, Normalize left out)"
    wrapper = PooledEncoder(encoder, checkpoint.pooling, with_token_types).eval()

    def encode(texts: Sequence[str]) -> Vectors:
        chunks: list[Vectors] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = tokenizer(
                list(texts[start : start + BATCH_SIZE]),
                padding=True,
                truncation=True,
                max_length=checkpoint.max_length,
                return_tensors="pt",
                return_token_type_ids=True,
            )
            with torch.no_grad():
                pooled = wrapper(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            chunks.append(pooled.numpy().astype(np.float32))
        return np.concatenate(chunks)

    return encode, f"transformers (torch) with {checkpoint.pooling} pooling"


def _sentence_transformers_encoder(checkpoint: Checkpoint) -> Encode:
    from sentence_transformers import SentenceTransformer

    try:
        full = SentenceTransformer(str(checkpoint.path), device="cpu", local_files_only=True)
    except Exception as exc:
        raise ExportError(f"sentence-transformers could not load {checkpoint.path}: {exc}") from exc
    # The graph leaves normalisation to the server, so compare against the pooled output.
    modules = [m for m in full if type(m).__name__ != "Normalize"]
    model = SentenceTransformer(modules=modules, device="cpu")
    model.max_seq_length = checkpoint.max_length

    def encode(texts: Sequence[str]) -> Vectors:
        vectors = model.encode(
            list(texts), batch_size=BATCH_SIZE, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    return encode
