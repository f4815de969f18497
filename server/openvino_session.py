"""One OpenVINO model on the CPU, with the interface of :class:`server.session.OrtSession`.

It reads the very ONNX file ONNX Runtime would (OpenVINO's ONNX frontend; no conversion
step, no cache on disk) and compiles it for the CPU with f32 inference precision stated
explicitly (the CPU plugin would otherwise run bf16 on CPUs with AVX512_BF16 or AMX, which
changes the vectors and makes them depend on the batch), one stream of ``intra_op_threads``
threads, a latency hint and no core pinning. The threads OpenVINO starts for a compiled
model are started when it is compiled and keep the nice value of the thread that compiled
it, so :func:`server.loader.build_at_lower_priority` works for it as for ONNX Runtime.

``openvino`` is imported only when such a session is built: the server runs without it.
One session is owned by one worker thread (one infer request, not thread-safe).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np

from server import pooling
from server.manifest import Manifest, Variant
from server.session import F32, I64, SessionConfig, SessionLoadError, check_graph, warm_up

log = logging.getLogger("server.openvino_session")


def compile_properties(threads: int) -> dict[str, str]:
    """The CPU plugin's properties for a session of ``threads`` threads (0: OpenVINO's default)."""
    properties = {
        "INFERENCE_PRECISION_HINT": "f32",
        "NUM_STREAMS": "1",
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": "NO",
    }
    if threads:
        properties["INFERENCE_NUM_THREADS"] = str(threads)
    return properties


class OpenVinoSession:
    """An OpenVINO compiled model that maps padded int64 inputs to ``[n, dims]`` float32 vectors."""

    def __init__(self, directory: Path, manifest: Manifest, variant: Variant, config: SessionConfig) -> None:
        self.manifest = manifest
        self.variant = variant
        path = directory / variant.file
        try:
            ov: Any = import_module("openvino")
        except ImportError as exc:
            raise SessionLoadError(
                "OpenVINO is not installed: pip install -e '.[openvino]' or use --runtime onnxruntime"
            ) from exc
        try:
            core = ov.Core()
            model = core.read_model(str(path))
            self._compiled = core.compile_model(model, "CPU", compile_properties(config.intra_op_threads))
        except Exception as exc:
            raise SessionLoadError(f"openvino cannot load {path}: {exc}") from exc
        self.input_names: Sequence[str] = check_graph(
            variant.file,
            manifest,
            [port.get_any_name() for port in self._compiled.inputs],
            {port.get_any_name(): _width(port) for port in self._compiled.outputs},
        )
        self._output = self._compiled.output(manifest.output)
        self._request = self._compiled.create_infer_request()
        precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        threads = self._compiled.get_property("INFERENCE_NUM_THREADS")
        self.provider = f"OpenVINO {ov.get_version().split('-')[0]} CPU ({precision}, {threads} threads)"

    def run(self, inputs: dict[str, I64]) -> F32:
        """Run one padded batch; returns pooled (not normalised) float32 vectors."""
        result = self._request.infer(inputs)
        out = np.asarray(result[self._output], dtype=np.float32)
        if not self.manifest.pooling_in_graph:
            out = pooling.pool(out, inputs["attention_mask"], self.manifest.pooling)
        return out

    def warm_up(self, pad_id: int, max_batch_tokens: int) -> int:
        """Run the shapes traffic will bring (short to max length, 1 to many rows); returns runs."""
        return warm_up(self.run, self.input_names, self.manifest.max_length, pad_id, max_batch_tokens)


def _width(port: Any) -> int | None:
    """The last dimension of an output port, or None where it is dynamic."""
    last = port.get_partial_shape()[-1]
    return int(last.get_length()) if last.is_static else None
