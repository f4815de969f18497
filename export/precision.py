"""Reduced-precision variants of the fp32 graph: int8 for CPUs, fp16 for GPUs.

int8 is ONNX Runtime's dynamic quantisation: weights int8 per output channel (per-tensor
scales lose too much even on MiniLM), activations uint8 with a scale computed per batch at
run time. Some MatMuls do not survive it: the FFN down-projections read the GELU output,
whose long positive tail a uint8 range built from the batch min/max resolves poorly
(measured on MPNet: mean cosine 0.87 with them quantised, 0.99 without). So the pipeline
tries the plans of :func:`int8_plans` in order, cheapest first, and ships the first that
passes the gate.

fp16 is ONNX Runtime's float16 conversion with float32 inputs and outputs kept, so the
server feeds and reads the same tensors as for fp32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.onnx_model import OnnxModel

from export.errors import ExportError

# Activations that feed an FFN down-projection; the unfused GELU ends in Erf -> Add -> Mul.
_ACTIVATION_OPS = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf", "Tanh", "Relu"}
_ACTIVATION_SEARCH_DEPTH = 3


@dataclass(frozen=True)
class Int8Plan:
    """Which MatMuls stay in fp32 when the rest is quantised, and why."""

    label: str
    keep_fp32: tuple[str, ...]


def ffn_down_projections(model_path: Path) -> list[str]:
    """Names of the MatMuls whose data input comes from an FFN activation (GELU and kin).

    Walks at most three producers back from each MatMul's first input, through elementwise
    nodes only, so an unfused ``x * 0.5 * (1 + erf(x / sqrt 2))`` counts as well as a fused
    ``BiasGelu``.
    """
    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    found: list[str] = []
    for node in graph.node:
        if node.op_type != "MatMul" or not node.input:
            continue
        frontier = [node.input[0]]
        for _ in range(_ACTIVATION_SEARCH_DEPTH):
            nodes = [producer[name] for name in frontier if name in producer]
            if any(n.op_type in _ACTIVATION_OPS for n in nodes):
                found.append(node.name)
                break
            frontier = [i for n in nodes if n.op_type in {"Mul", "Add", "Div"} for i in n.input]
            if not frontier:
                break
    return found


def int8_plans(model_path: Path) -> list[Int8Plan]:
    """Quantisation plans to try in order: everything, then FFN down-projections kept in fp32."""
    plans = [Int8Plan("all MatMuls quantised", ())]
    down = ffn_down_projections(model_path)
    if down:
        plans.append(Int8Plan(f"{len(down)} FFN down-projection MatMuls kept in fp32", tuple(down)))
    return plans


def quantize_int8(source: Path, target: Path, plan: Int8Plan) -> None:
    """Dynamic int8 quantisation of ``source`` into ``target`` following ``plan``."""
    quant_logger = logging.getLogger("onnxruntime.quantization")
    previous = quant_logger.level
    quant_logger.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            model_input=str(source),
            model_output=str(target),
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(plan.keep_fp32),
            # Optimizer output lacks value_info for some fused outputs; quantize_dynamic then
            # cannot infer their type ("Unable to find data type for weight_name") without this.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:
        raise ExportError(f"int8 quantisation failed ({plan.label}): {exc}") from exc
    finally:
        quant_logger.setLevel(previous)


def convert_fp16(source: Path, target: Path) -> None:
    """Convert ``source`` to float16 weights and compute, keeping float32/int64 inputs and outputs."""
    try:
        model = OnnxModel(onnx.load(str(source)))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(target))
    except Exception as exc:
        raise ExportError(f"fp16 conversion failed: {exc}") from exc
