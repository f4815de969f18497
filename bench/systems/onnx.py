"""ONNX Runtime without our server: the plain peer and the bare engine loop.

Both run the exported graph of the model directory with the same session options as the
server (``ORT_ENABLE_ALL``, sequential execution, ``threads`` intra-op threads) and the
directory's tokenizer; they differ only in how texts become batches:

- :class:`PlainOrt` is what a user writes by hand: batches of ``batch_size`` texts in
  corpus order, each padded to its longest text;
- :class:`BareLoop` is the best our server could do with no server around it: tokenize
  everything, sort by length, pack consecutive texts into batches under the same token
  budget (``n x longest``) and size cap as the server, run them, put rows back in order.
  The server at saturation should reach at least 0.9x of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bench.model import ModelDir
from bench.systems import F32, I64, Pass, Role, Transport, pad, padding_ratio

_PAD_TOKENS = ("[PAD]", "<pad>", "<|pad|>")


def pad_id(model: ModelDir) -> int:
    """The pad token id the server would use (tokenizer_config's pad_token, else a known one)."""
    tok = model.tokenizer()
    candidates: list[str] = []
    config = model.path / "tokenizer_config.json"
    if config.is_file():
        pad_token = json.loads(config.read_text()).get("pad_token")
        if isinstance(pad_token, dict):
            pad_token = pad_token.get("content")
        if isinstance(pad_token, str):
            candidates.append(pad_token)
    for token in (*candidates, *_PAD_TOKENS):
        if (found := tok.token_to_id(token)) is not None:
            return int(found)
    return 0


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


class _OrtModel:
    """An ORT session plus tokenizer that turns padded batches into pooled vectors."""

    def __init__(self, model: ModelDir, variant: str, threads: int) -> None:
        self.model = model
        self.session = session(model.variant_path(variant), threads)
        self.tokenizer = model.tokenizer()
        self.pad_id = pad_id(model)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def forward(self, ids: Sequence[Sequence[int]]) -> F32:
        inputs = pad(ids, self.pad_id, self.input_names)
        out = np.asarray(self.session.run([self.model.output], inputs)[0], dtype=np.float32)
        if self.model.pooling_in_graph:
            return out
        return _pool(out, inputs["attention_mask"], self.model.pooling)


def _pool(hidden: F32, mask: I64, pooling: str) -> F32:
    if pooling == "cls":
        return np.ascontiguousarray(hidden[:, 0, :])
    weights = mask.astype(np.float32)[:, :, None]
    pooled: F32 = ((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)).astype(np.float32)
    return pooled


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

    def _embed(self, texts: Sequence[str]) -> tuple[F32, list[list[int]]]:
        ids = self._ort.tokenize(texts)
        batches = pack([len(row) for row in ids], self.max_batch_tokens, self.max_batch_size)
        out: F32 | None = None
        for batch in batches:
            vectors = self._ort.forward([ids[i] for i in batch])
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[batch] = vectors
        assert out is not None
        return out, [[len(ids[i]) for i in batch] for batch in batches]

    def run(self, texts: Sequence[str]) -> Pass:
        start = time.perf_counter()
        _, lengths = self._embed(texts)
        return Pass(time.perf_counter() - start, padding_ratio(lengths))

    def embed(self, texts: Sequence[str]) -> F32:
        return self._embed(texts)[0]

    def close(self) -> None:
        return None
