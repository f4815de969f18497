"""OpenVINO on the same ONNX files and batches as the bare engine loop (optional peer).

The ``openvino`` package is optional: :func:`available` says whether it imports, and the
suite skips this peer with a note when it does not. Each :class:`OpenVinoLoop` reads a
variant's ONNX file with OpenVINO's ONNX frontend (no conversion step, so both runtimes run
the very file the server ships), compiles it for the CPU with ``threads`` inference
threads, one stream, a latency hint and no core pinning (the same budget ORT gets), and
runs the bare loop's own pass (:func:`bench.systems.onnx.embed_packed`: the server's
tokenizer, length-sorted batches under the server's token budget, its padding and pooling).
Only the runtime differs from :class:`bench.systems.onnx.BareLoop`.

Modes (:data:`MODES`): the fp32 file at f32 (set explicitly: OpenVINO's CPU plugin runs
bf16 by default on CPUs with AVX512_BF16 or AMX), the fp32 file at bf16 (only where the CPU
has native bf16, :func:`native_bf16`), and the int8 QDQ file, whose quantised operators run
in int8 and the rest at f32.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module, metadata
from typing import Any

import numpy as np

from bench.model import ModelDir
from bench.systems import F32, Pass, Role, Transport, padding_ratio
from bench.systems.onnx import Ids, embed_packed
from server.collate import collate
from server.pooling import pool


@dataclass(frozen=True)
class Mode:
    """One way to run a model: which variant's file, at which inference precision."""

    name: str
    variant: str
    precision: str
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for the operators that are not quantised."""
    needs_bf16: bool = False


MODES = (
    Mode("fp32", "fp32", "f32"),
    Mode("bf16", "fp32", "bf16", needs_bf16=True),
    Mode("int8", "int8", "f32"),
)


def _openvino() -> Any:
    return import_module("openvino")


def available() -> str | None:
    """The installed openvino version, or None when it cannot be imported."""
    try:
        _openvino()
    except ImportError:
        return None
    try:
        return metadata.version("openvino")
    except metadata.PackageNotFoundError:
        return "unknown"


def native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bf16 natively here (AVX512_BF16 or AMX)."""
    core = _openvino().Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def modes(variants: Sequence[str], bf16: bool) -> list[Mode]:
    """The modes to measure for the model's ``variants`` (bf16 ones only when ``bf16``)."""
    return [m for m in MODES if m.variant in variants and (bf16 or not m.needs_bf16)]


def compile_config(precision: str, threads: int) -> dict[str, str]:
    """Compile properties: ``threads`` threads in one stream, latency hint, no pinning."""
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": str(threads),
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": "NO",
    }


class _OvModel:
    """A compiled OpenVINO model plus the server's tokenizer, padding and pooling."""

    def __init__(self, model: ModelDir, mode: Mode, threads: int) -> None:
        ov = _openvino()
        self.model = model
        core = ov.Core()
        graph = core.read_model(str(model.variant_path(mode.variant)))
        self.input_names = [port.get_any_name() for port in graph.inputs]
        self.compiled = core.compile_model(graph, "CPU", compile_config(mode.precision, threads))
        self.precision = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(model.manifest.output)
        self.tokenizer = model.tokenizer()

    def tokenize(self, texts: Sequence[str]) -> list[Ids]:
        return self.tokenizer.encode(texts).ids

    def forward(self, ids: Sequence[Ids]) -> F32:
        inputs = collate(ids, self.tokenizer.pad_id, self.input_names)
        result = self.request.infer(inputs)
        out = np.asarray(result[self.output], dtype=np.float32)
        manifest = self.model.manifest
        if manifest.pooling_in_graph:
            return out
        return pool(out, inputs["attention_mask"], manifest.pooling)


class OpenVinoLoop:
    """Peer: the bare engine loop with OpenVINO in place of ONNX Runtime."""

    role: Role = "peer"
    transport: Transport = "in-process"

    def __init__(
        self, model: ModelDir, mode: Mode, threads: int, max_batch_tokens: int, max_batch_size: int
    ) -> None:
        self.mode = mode
        self.variant = mode.variant
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self._ov = _OvModel(model, mode, threads)
        self.key = f"openvino-{mode.name}-t{max_batch_tokens}-b{max_batch_size}"
        self.label = (
            f"OpenVINO {available()} bare loop, {mode.variant} file at {self._ov.precision} "
            f"(length-sorted, <= {max_batch_tokens} tokens / {max_batch_size} texts)"
        )

    def run(self, texts: Sequence[str]) -> Pass:
        start = time.perf_counter()
        _, lengths = embed_packed(self._ov, texts, self.max_batch_tokens, self.max_batch_size)
        return Pass(time.perf_counter() - start, padding_ratio(lengths))

    def embed(self, texts: Sequence[str]) -> F32:
        return embed_packed(self._ov, texts, self.max_batch_tokens, self.max_batch_size)[0]

    def close(self) -> None:
        return None
