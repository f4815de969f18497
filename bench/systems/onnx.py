"""ONNX Runtime without our server: the plain peer and the bare engine loop.

Both run the exported graph of the model directory the way the server runs it, with the
server's own pure parts: its session options (:func:`server.session.session_options`:
``ORT_ENABLE_ALL``, sequential execution, ``threads`` intra-op threads), its tokenizer
(:class:`server.tokenizer.Tokenizer`: truncation, pad id, input clip), its padding
(:func:`server.collate.collate`) and its pooling (:func:`server.pooling.pool`, for graphs
that do not pool). They differ only in how texts become batches:

- :class:`PlainOrt` is what a user writes by hand: batches of ``batch_size`` texts in
  corpus order, each padded to its longest text;
- :class:`BareLoop` is the best our server could do with no server around it: tokenize
  everything, sort by length, pack consecutive texts into batches under the same token
  budget (``n x longest``) and size cap as the server, run them, put rows back in order.
  The server at saturation should reach at least 0.9x of it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from bench.model import ModelDir
from bench.systems import F32, Pass, Role, Transport, padding_ratio
from server.collate import collate
from server.pooling import pool
from server.session import session_options

Ids = npt.NDArray[np.int64]


class _OrtModel:
    """An ORT session plus the server's tokenizer that turns padded batches into pooled vectors."""

    def __init__(self, model: ModelDir, variant: str, threads: int) -> None:
        self.model = model
        options = session_options(intra_op_threads=threads, inter_op_threads=1)
        self.session = ort.InferenceSession(
            str(model.variant_path(variant)), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = model.tokenizer()
        self.input_names = [i.name for i in self.session.get_inputs()]

    def tokenize(self, texts: Sequence[str]) -> list[Ids]:
        return self.tokenizer.encode(texts).ids

    def forward(self, ids: Sequence[Ids]) -> F32:
        inputs = collate(ids, self.tokenizer.pad_id, self.input_names)
        manifest = self.model.manifest
        out = np.asarray(self.session.run([manifest.output], inputs)[0], dtype=np.float32)
        if manifest.pooling_in_graph:
            return out
        return pool(out, inputs["attention_mask"], manifest.pooling)


class PlainOrt:
    """Peer: ONNX Runtime, batches of ``batch_size`` texts in corpus order."""

    role: Role = "peer"
    transport: Transport = "in-process"

    def __init__(
        self,
        model: ModelDir,
        threads: int,
        batch_size: int = 32,
        variant: str = "fp32",
        shared: _OrtModel | None = None,
    ) -> None:
        self.variant = variant
        self.batch_size = batch_size
        self.key = f"ort-{variant}-b{batch_size}"
        self.label = f"onnxruntime {variant}, corpus-order batches of {batch_size}"
        self._ort = shared or _OrtModel(model, variant, threads)

    def with_batch_size(self, batch_size: int) -> PlainOrt:
        """The same session with another batch size (no reload)."""
        return PlainOrt(self._ort.model, 0, batch_size, self.variant, self._ort)

    def _batches(self, texts: Sequence[str]) -> list[Sequence[str]]:
        return [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]

    def run(self, texts: Sequence[str]) -> Pass:
        lengths: list[list[int]] = []
        start = time.perf_counter()
        for batch in self._batches(texts):
            ids = self._ort.tokenize(batch)
            self._ort.forward(ids)
            lengths.append([len(row) for row in ids])
        return Pass(time.perf_counter() - start, padding_ratio(lengths))

    def embed(self, texts: Sequence[str]) -> F32:
        return np.concatenate([self._ort.forward(self._ort.tokenize(b)) for b in self._batches(texts)])

    def close(self) -> None:
        return None


def pack(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Indices of texts in batches: sorted by length, consecutive, each batch within
    ``n x longest <= max_tokens`` (a single text over it gets a batch alone) and ``max_size``."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        n = len(current) + 1
        if current and (n > max_size or n * lengths[i] > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class Forward(Protocol):
    """A runtime behind the bare loop: the server's tokenizer and one padded batch's vectors."""

    def tokenize(self, texts: Sequence[str]) -> list[Ids]: ...

    def forward(self, ids: Sequence[Ids]) -> F32: ...


def embed_packed(
    runtime: Forward, texts: Sequence[str], max_tokens: int, max_size: int
) -> tuple[F32, list[list[int]]]:
    """The bare loop's pass: tokenize all, :func:`pack`, run each batch, rows back in order.
    Returns the vectors ``[n, d]`` and each batch's token lengths (for the padding share)."""
    ids = runtime.tokenize(texts)
    batches = pack([len(row) for row in ids], max_tokens, max_size)
    out: F32 | None = None
    for batch in batches:
        vectors = runtime.forward([ids[i] for i in batch])
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
        out[batch] = vectors
    assert out is not None
    return out, [[len(ids[i]) for i in batch] for batch in batches]


class BareLoop:
    """The bare engine loop: tokenize all, sort by length, pack by token budget, run."""

    role: Role = "ours"
    transport: Transport = "in-process"

    def __init__(
        self,
        model: ModelDir,
        variant: str,
        threads: int,
        max_batch_tokens: int,
        max_batch_size: int,
        shared: _OrtModel | None = None,
    ) -> None:
        self.variant = variant
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.key = f"bare-{variant}-t{max_batch_tokens}-b{max_batch_size}"
        self.label = (
            f"bare engine loop {variant} (ORT + tokenizer, length-sorted, "
            f"<= {max_batch_tokens} tokens / {max_batch_size} texts)"
        )
        self._ort = shared or _OrtModel(model, variant, threads)

    def with_limits(self, max_batch_tokens: int, max_batch_size: int) -> BareLoop:
        """The same session with other batch limits (no reload)."""
        return BareLoop(self._ort.model, self.variant, 0, max_batch_tokens, max_batch_size, self._ort)

    def run(self, texts: Sequence[str]) -> Pass:
        start = time.perf_counter()
        _, lengths = embed_packed(self._ort, texts, self.max_batch_tokens, self.max_batch_size)
        return Pass(time.perf_counter() - start, padding_ratio(lengths))

    def embed(self, texts: Sequence[str]) -> F32:
        return embed_packed(self._ort, texts, self.max_batch_tokens, self.max_batch_size)[0]

    def close(self) -> None:
        return None
