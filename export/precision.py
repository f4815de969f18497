"""Reduced-precision variants of the fp32 graph: int8 for CPUs, fp16 for GPUs.

int8 is first built with ONNX Runtime's **static** quantisation (``quantize_static``, QDQ
format, which ORT runs as ``MatMulIntegerToFloat``): weights int8 per output channel,
activations uint8 with one scale per tensor fixed at export by a calibration pass over
:func:`export.corpus.calibration_texts`. Fixed scales make the variant batch-invariant: a
text's vector does not depend on the texts batched with it. Only weight MatMuls are
quantised (LayerNorm, Softmax, GELU and ORT's fused ``Attention`` stay float), and their
outputs stay float (a quantised output would round every MatMul result to 8 bits).

**Dynamic** quantisation (``MatMulInteger``: activation scales computed from each batch at
run time) is the fallback when no static plan passes the gate; it is usually closer to
fp32 but not batch-invariant, which the manifest records, and the server's ``auto`` then
serves fp32 instead. Both kinds share what three measured facts taught:

- **Weights use 7 bits** (``reduce_range``). On x86 CPUs without VNNI (AVX2 only, which
  includes many cloud instances) the u8 x s8 kernel adds pairs of products in int16 and
  saturates when full-range weights meet full-range activations; per-channel scales make
  every column full-range, so MPNet's vectors came out at cosine 0.02. With 7-bit weights
  the integer result is exact on every CPU, so the parity measured here holds wherever
  the model is served.
- **Activations are smoothed first** (SmoothQuant, Xiao et al. 2022). A few hidden
  channels of these encoders carry values 50x larger than the rest (MPNet: -25 next to a
  typical 0.4), and one uint8 scale for the whole tensor then leaves the other channels a
  handful of levels. Each quantised MatMul's input is divided per channel by
  ``s = peak_act^a / peak_weight^(1-a)`` (a ``Mul`` node) and the weight rows multiplied
  by ``s``: exact in fp32, and both sides quantise well. The activation peaks come from a
  calibration pass over :func:`export.corpus.calibration_texts`.
- **FFN down-projections are not smoothed, and may stay fp32.** They read the GELU
  output, whose long positive tail smoothing makes worse rather than better (MPNet,
  other MatMuls smoothed: mean cosine 0.79 with them quantised, 0.997 without). Only some
  layers have it: a mixed plan keeps in fp32 just the down-projections whose input has a
  channel peak :data:`OUTLIER_RATIO` times its median channel's (MPNet: layers 6 to 10 of
  12), and quantises the rest.

The pipeline tries the plans of :func:`int8_plans` in order, static ones first, and ships
the first that passes the gate (for static plans the gate includes batch invariance).

fp16 is ONNX Runtime's float16 conversion with float32 inputs and outputs kept, so the
server feeds and reads the same tensors as for fp32.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    create_calibrator,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.calibrate import save_tensors_data
from onnxruntime.transformers.onnx_model import OnnxModel

from export.errors import ExportError
from export.parity import OnnxEncoder

# Activations that feed an FFN down-projection; the unfused GELU ends in Erf -> Add -> Mul.
_ACTIVATION_OPS = {"Gelu", "BiasGelu", "FastGelu", "QuickGelu", "Erf", "Tanh", "Relu"}
_ACTIVATION_SEARCH_DEPTH = 5
# SmoothQuant's migration strength: half of each activation outlier moves into the weights.
SMOOTHING_ALPHA = 0.5
_SMOOTHING_FLOOR = 1e-5

Peaks = dict[str, npt.NDArray[np.float32]]
# An FFN down-projection whose input's largest channel peak is more than this many times its
# median channel's leaves a typical channel fewer than 255 / 25 = 10 uint8 levels: kept in
# fp32 by the mixed plan. MPNet's layers 6-10 measure 32 to 55 (quantising one of them costs
# 0.007 to 0.031 of mean cosine), its other layers 5 to 14 (0.0001 to 0.0009 each).
OUTLIER_RATIO = 25.0

Calibration = Literal["percentile", "minmax"]
# The order static plans try them in. Percentile (99.999 % of values inside the range)
# clips the rare extremes that would stretch a whole tensor's fixed scale; minmax keeps
# them. Entropy calibration is not offered: ORT's KL search is quadratic in histogram bins,
# which grow as ranges widen (a minute for a two-MatMul toy graph).
CALIBRATIONS: tuple[Calibration, ...] = ("percentile", "minmax")
PERCENTILE = 99.999
_METHODS: dict[Calibration, CalibrationMethod] = {
    "percentile": CalibrationMethod.Percentile,
    "minmax": CalibrationMethod.MinMax,
}
_CALIBRATION_OPTIONS: dict[Calibration, dict[str, object]] = {
    # Asymmetric ranges: uint8 activations spend no levels on values that never occur.
    "percentile": {"percentile": PERCENTILE, "symmetric": False},
    "minmax": {"symmetric": False},
}


@dataclass(frozen=True)
class Int8Plan:
    """Which operators are quantised and which MatMuls stay in fp32, and why.

    ``calibration`` is how a static plan's fixed activation ranges are measured; ``None``
    is a dynamic plan (ranges from each batch: not batch-invariant).
    """

    label: str
    op_types: tuple[str, ...]
    keep_fp32: tuple[str, ...]
    calibration: Calibration | None = None

    @property
    def static(self) -> bool:
        return self.calibration is not None


def _load(model_path: Path) -> onnx.ModelProto:
    return onnx.load(str(model_path))


def _constants(graph: onnx.GraphProto) -> set[str]:
    names = {init.name for init in graph.initializer}
    names.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    return names


def ffn_down_projections(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMuls whose data input comes from an FFN activation (GELU and kin).

    Walks at most five producers back from each MatMul's first input, through elementwise
    nodes only, so an unfused ``x * 0.5 * (1 + erf(x / sqrt 2))`` counts as well as a fused
    ``BiasGelu``.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    found: list[str] = []
    for node in model.graph.node:
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


def activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls without a constant weight (attention scores and context in an unfused graph).

    Dynamic quantisation would quantise both of their inputs per batch, which costs
    accuracy for little speed; they always stay in fp32.
    """
    constants = _constants(model.graph)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not set(n.input[1:]) & constants]


def weight_matmuls(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Activation tensor -> the MatMuls with an initializer weight that read it."""
    initializers = {init.name for init in model.graph.initializer}
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.name and len(node.input) == 2 and node.input[1] in initializers:
            readers.setdefault(node.input[0], []).append(node.name)
    return readers


def outlier_projections(model: onnx.ModelProto, projections: Sequence[str], peaks: Peaks) -> list[str]:
    """Those of ``projections`` whose input has a channel peak above :data:`OUTLIER_RATIO`
    times its median channel's (``peaks`` from :func:`activation_peaks`)."""
    tensor_of = {reader: tensor for tensor, readers in weight_matmuls(model).items() for reader in readers}
    outliers: list[str] = []
    for name in projections:
        peak = peaks.get(tensor_of.get(name, ""))
        if peak is not None and float(peak.max()) > OUTLIER_RATIO * max(float(np.median(peak)), 1e-6):
            outliers.append(name)
    return outliers


def int8_plans(model_path: Path, peaks: Peaks | None = None) -> list[Int8Plan]:
    """Quantisation plans to try, in order; the first that passes the gate ships.

    Static plans first (batch-invariant), for each calibration of :data:`CALIBRATIONS` in
    turn:

    1. every weight MatMul quantised;
    2. the same with only the FFN down-projections whose input has outlier channels
       (:func:`outlier_projections`, given ``peaks``) kept in fp32, when some but not all do;
    3. the same with every FFN down-projection kept in fp32.

    Then the dynamic fallbacks, fastest first:

    4. every weight MatMul (and fused ``Attention`` node) quantised;
    5. the same with the FFN down-projections kept in fp32;
    6. weight MatMuls only, fused attention and FFN down-projections kept in fp32.

    Plans that would build the same graph (no fused attention, no FFN found) are dropped.
    """
    model = _load(model_path)
    has_attention = any(n.op_type == "Attention" for n in model.graph.node)
    down = tuple(ffn_down_projections(model))
    fixed = tuple(activation_matmuls(model))
    kept = f"{len(down)} FFN down-projection MatMuls kept in fp32"
    ops: tuple[str, ...] = ("MatMul", "Attention") if has_attention else ("MatMul",)
    what = "MatMuls and fused Attention" if has_attention else "weight MatMuls"
    # Calibration outermost: each calibration pass costs a full run over the calibration
    # texts, and the first calibration usually passes with one of the two scopes.
    scopes = [("weight MatMuls quantised", fixed)]
    outliers = tuple(outlier_projections(model, down, peaks)) if peaks is not None else ()
    if 0 < len(outliers) < len(down):
        label = f"{len(outliers)} FFN down-projections with outlier channels kept in fp32"
        scopes.append((f"weight MatMuls quantised, {label}", fixed + outliers))
    scopes.append((f"weight MatMuls quantised, {kept}", fixed + down))
    candidates = [
        Int8Plan(f"static, {method} calibration, {label}", ("MatMul",), keep, method)
        for method in CALIBRATIONS
        for label, keep in scopes
    ]
    candidates += [
        Int8Plan(f"dynamic, {what} quantised", ops, fixed),
        Int8Plan(f"dynamic, {what} quantised, {kept}", ops, fixed + down),
        Int8Plan(f"dynamic, weight MatMuls quantised, fused Attention and {kept}", ("MatMul",), fixed + down),
    ]
    plans: list[Int8Plan] = []
    for plan in candidates:
        same = ((p.op_types, p.keep_fp32, p.calibration) for p in plans)
        if (plan.op_types, plan.keep_fp32, plan.calibration) not in same:
            plans.append(plan)
    return plans


def activation_peaks(model_path: Path, encoder: OnnxEncoder, texts: Sequence[str], scratch: Path) -> Peaks:
    """Per-channel peak |value| of every weight MatMul's input over ``texts`` (padding excluded).

    ``encoder`` must tokenize for this model; a copy of the graph that also outputs those
    activations is written to ``scratch`` and run.
    """
    model = _load(model_path)
    tensors = sorted(weight_matmuls(model))
    for name in tensors:
        model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    onnx.save(model, str(scratch))
    probe = OnnxEncoder(scratch, encoder.tokenizer, encoder.inputs)
    peaks: Peaks = {}
    for _rows, feed in probe.feeds(texts):
        valid = feed["attention_mask"].astype(bool)
        for name, value in zip(tensors, probe.run(tensors, feed), strict=True):
            if value.ndim != 3 or value.shape[:2] != valid.shape:
                continue
            peak = np.abs(value[valid]).max(axis=0).astype(np.float32)
            peaks[name] = np.maximum(peaks[name], peak) if name in peaks else peak
    del probe
    scratch.unlink()
    return peaks


def smooth(
    source: Path, target: Path, peaks: Peaks, skip: Sequence[str] = (), alpha: float = SMOOTHING_ALPHA
) -> int:
    """Write ``source`` with SmoothQuant scaling before each weight MatMul not in ``skip``.

    The graph computes the same function (up to fp32 rounding); returns how many
    activation tensors were smoothed.
    """
    model = _load(source)
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    nodes = {node.name: node for node in graph.node}
    skipped = set(skip)
    smoothed = 0
    for tensor, readers in sorted(weight_matmuls(model).items()):
        chosen = [nodes[name] for name in readers if name not in skipped]
        if not chosen or tensor not in peaks:
            continue
        arrays = [numpy_helper.to_array(weights[node.input[1]]) for node in chosen]
        if any(w.ndim != 2 or w.shape[0] != peaks[tensor].shape[0] for w in arrays):
            continue
        weight_peak = np.max([np.abs(w).max(axis=1) for w in arrays], axis=0)
        scale = np.maximum(peaks[tensor], _SMOOTHING_FLOOR) ** alpha
        scale = (scale / np.maximum(weight_peak, _SMOOTHING_FLOOR) ** (1 - alpha)).astype(np.float32)
        inverse = f"{tensor}/smooth_inverse"
        scaled = f"{tensor}/smoothed"
        graph.initializer.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse))
        graph.node.append(helper.make_node("Mul", [tensor, inverse], [scaled], name=f"{tensor}/smooth"))
        for node, array in zip(chosen, arrays, strict=True):
            name = f"{node.input[1]}/smoothed"
            graph.initializer.append(
                numpy_helper.from_array((array * scale[:, None]).astype(np.float32), name)
            )
            node.input[0], node.input[1] = scaled, name
        smoothed += 1
    wrapped = OnnxModel(model)
    wrapped.prune_graph()
    wrapped.topological_sort()
    wrapped.save_model_to_file(str(target))
    return smoothed


class _DropPreprocessingHint(logging.Filter):
    """ORT's quantisers log a hint to the root logger on every call; it does not apply here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Hide the hint ORT logs on every call and the progress its calibrators print."""
    quiet = _DropPreprocessingHint()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(quiet)


def typed_for_quantisation(source: Path, target: Path) -> None:
    """Write ``source`` with every MatMul tensor declared float, for ``quantize_static``.

    The optimizer's fused operators (``SkipLayerNormalization``, ``BiasGelu``, ...) leave
    their outputs untyped and ONNX shape inference does not know them; the calibrator and
    the QDQ quantizer skip untyped tensors, which would leave MatMuls they feed in fp32.
    """
    model = _load(source)
    graph = model.graph
    known = {v.name for v in (*graph.value_info, *graph.input, *graph.output)}
    known |= {init.name for init in graph.initializer}
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        for name in (*node.input, *node.output):
            if name and name not in known:
                graph.value_info.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
                known.add(name)
    onnx.save(model, str(target))


Feed = dict[str, npt.NDArray[Any]]


class _OneFeed:
    """One batch of inputs for ORT's calibrators (a ``CalibrationDataReader``), then the end."""

    def __init__(self, feed: Feed) -> None:
        self._feeds = iter([feed])

    def get_next(self) -> Feed | None:
        return next(self._feeds, None)


def calibrate(model_path: Path, feeds: Iterable[Feed], method: Calibration, cache: Path) -> Path:
    """Measure the activation range of every MatMul tensor of ``model_path`` over ``feeds``.

    The exporter feeds one text per run (no padding rows skew the ranges, and memory holds
    one text's activations at a time). The ranges are written to ``cache`` in ORT's
    calibration-cache format, which :func:`quantize_static_int8` reads; returns ``cache``.
    """
    augmented = cache.with_suffix(".augmented.onnx")
    try:
        with _quiet_quantizer():
            calibrator = create_calibrator(
                model_path,
                ["MatMul"],
                augmented_model_path=str(augmented),
                calibrate_method=_METHODS[method],
                extra_options=_CALIBRATION_OPTIONS[method],
            )
            for feed in feeds:
                # One call per feed: the histogram calibrators stack a call's outputs into one array.
                calibrator.collect_data(_OneFeed(feed))
            save_tensors_data(calibrator.compute_data(), cache)
    except Exception as exc:
        raise ExportError(f"int8 calibration ({method}) failed: {exc}") from exc
    finally:
        augmented.unlink(missing_ok=True)
    return cache


def quantize_static_int8(source: Path, target: Path, plan: Int8Plan, ranges: Path) -> None:
    """Static int8 (QDQ) quantisation of ``source`` into ``target`` following ``plan``.

    ``ranges`` is the :func:`calibrate` cache of ``source`` made with ``plan.calibration``.
    Weights are 7-bit per output channel (see the module docstring), activations uint8
    with the calibrated ranges; MatMul outputs stay float, so ORT fuses each
    dequantize-MatMul into ``MatMulIntegerToFloat``.
    """
    if plan.calibration is None:
        raise ValueError(f"{plan.label} is not a static plan")
    try:
        with _quiet_quantizer():
            quantize_static(
                model_input=str(source),
                model_output=str(target),
                calibration_data_reader=None,
                calibration_cache_path=str(ranges),
                calibrate_method=_METHODS[plan.calibration],
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(plan.op_types),
                nodes_to_exclude=list(plan.keep_fp32),
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                extra_options={
                    "MatMulConstBOnly": True,
                    "OpTypesToExcludeOutputQuantization": ["MatMul"],
                },
            )
    except Exception as exc:
        raise ExportError(f"int8 quantisation failed ({plan.label}): {exc}") from exc


def quantize_dynamic_int8(source: Path, target: Path, plan: Int8Plan) -> None:
    """Dynamic int8 quantisation of ``source`` into ``target`` following ``plan``."""
    try:
        with _quiet_quantizer():
            quantize_dynamic(
                model_input=str(source),
                model_output=str(target),
                op_types_to_quantize=list(plan.op_types),
                per_channel=True,
                reduce_range=True,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(plan.keep_fp32),
                # Optimizer output lacks value_info for some fused outputs; quantize_dynamic then
                # cannot infer their type ("Unable to find data type for weight_name") without this.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    except Exception as exc:
        raise ExportError(f"int8 quantisation failed ({plan.label}): {exc}") from exc


def convert_fp16(source: Path, target: Path) -> None:
    """Convert ``source`` to float16 weights and compute, keeping float32/int64 inputs and outputs."""
    try:
        model = OnnxModel(onnx.load(str(source)))
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(target))
    except Exception as exc:
        raise ExportError(f"fp16 conversion failed: {exc}") from exc
