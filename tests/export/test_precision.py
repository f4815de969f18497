"""Graph rules for int8: which MatMuls are FFN down-projections, plans, and exact smoothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export import precision

HIDDEN, INNER = 8, 16


def _ffn_graph(path: Path, fused_gelu: bool) -> Path:
    """x -> up (MatMul) -> GELU -> down (MatMul) -> y, plus q (MatMul on x) and scores (x @ x^T)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(size=(HIDDEN, INNER)).astype(np.float32), "w_up"),
        numpy_helper.from_array(rng.normal(size=(INNER, HIDDEN)).astype(np.float32), "w_down"),
        numpy_helper.from_array(rng.normal(size=(HIDDEN, HIDDEN)).astype(np.float32), "w_q"),
        numpy_helper.from_array(np.array(1.4142135, dtype=np.float32), "sqrt2"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w_up"], ["h"], name="up")]
    if fused_gelu:
        nodes.append(helper.make_node("Gelu", ["h"], ["g"], name="gelu", domain="com.microsoft"))
    else:
        nodes += [
            helper.make_node("Div", ["h", "sqrt2"], ["t"], name="div"),
            helper.make_node("Erf", ["t"], ["e"], name="erf"),
            helper.make_node("Add", ["e", "one"], ["p"], name="add"),
            helper.make_node("Mul", ["h", "p"], ["m"], name="mul"),
            helper.make_node("Mul", ["m", "half"], ["g"], name="half_mul"),
        ]
    nodes += [
        helper.make_node("MatMul", ["g", "w_down"], ["y"], name="down"),
        helper.make_node("MatMul", ["x", "w_q"], ["q"], name="q"),
        helper.make_node("Transpose", ["x"], ["xt"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["scores"], name="scores"),
    ]
    graph = helper.make_graph(
        nodes,
        "ffn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("q", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, None),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.run(["y", "q", "scores"], {"x": x}))


def test_down_projection_found_behind_fused_and_unfused_gelu(tmp_path: Path) -> None:
    for fused in (True, False):
        model = onnx.load(str(_ffn_graph(tmp_path / f"ffn-{fused}.onnx", fused)))
        assert precision.ffn_down_projections(model) == ["down"]


def test_matmuls_without_constant_weights_stay_fp32(tmp_path: Path) -> None:
    model = onnx.load(str(_ffn_graph(tmp_path / "ffn.onnx", fused_gelu=False)))
    assert precision.activation_matmuls(model) == ["scores"]
    assert precision.weight_matmuls(model) == {"x": ["up", "q"], "g": ["down"]}


def test_plans_without_fused_attention(tmp_path: Path) -> None:
    plans = precision.int8_plans(_ffn_graph(tmp_path / "ffn.onnx", fused_gelu=True))
    static = [p for p in plans if p.static]
    dynamic = [p for p in plans if not p.static]
    assert plans == static + dynamic, "static plans come first"
    calibrations = list(precision.CALIBRATIONS)
    # One calibration pass serves both scopes before the next calibration is run.
    assert [p.calibration for p in static] == [c for c in calibrations for _ in range(2)]
    assert all(p.op_types == ("MatMul",) for p in plans)
    assert [p.keep_fp32 for p in static] == [("scores",), ("scores", "down")] * 2
    assert [p.keep_fp32 for p in dynamic] == [("scores",), ("scores", "down")]
    assert "1 FFN down-projection" in dynamic[1].label and dynamic[1].label.startswith("dynamic")
    assert all(p.label.startswith(f"static, {p.calibration} calibration") for p in static)


def test_smoothing_is_exact_in_fp32_and_evens_out_channels(tmp_path: Path) -> None:
    source = _ffn_graph(tmp_path / "ffn.onnx", fused_gelu=False)
    x = np.random.default_rng(1).normal(size=(2, 5, HIDDEN)).astype(np.float32)
    x[..., 3] *= 50  # one outlier channel, as in real encoders
    peaks = {"x": np.abs(x).max(axis=(0, 1)).astype(np.float32)}
    target = tmp_path / "smoothed.onnx"
    assert precision.smooth(source, target, peaks, skip=["down"]) == 1
    for before, after in zip(_run(source, x), _run(target, x), strict=True):
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-3)
    smoothed = onnx.load(str(target))
    inverse = next(i for i in smoothed.graph.initializer if i.name == "x/smooth_inverse")
    scaled_peaks = peaks["x"] * numpy_helper.to_array(inverse)
    # The outlier channel's peak relative to the others shrinks (by its square root at alpha 0.5).
    assert scaled_peaks.max() / np.median(scaled_peaks) < peaks["x"].max() / np.median(peaks["x"]) / 3
    readers = {n.name: list(n.input) for n in smoothed.graph.node if n.op_type == "MatMul"}
    assert readers["up"][0] == readers["q"][0] == "x/smoothed"
    assert readers["down"][0] == "g"


def test_quantized_graph_runs_and_keeps_excluded_nodes(tmp_path: Path) -> None:
    source = _ffn_graph(tmp_path / "ffn.onnx", fused_gelu=False)
    plan = next(p for p in precision.int8_plans(source) if not p.static and "down" in p.keep_fp32)
    target = tmp_path / "int8.onnx"
    precision.quantize_dynamic_int8(source, target, plan)
    ops = {n.name: n.op_type for n in onnx.load(str(target)).graph.node}
    assert ops["down"] == "MatMul" and ops["scores"] == "MatMul"
    assert "MatMulInteger" in ops.values()
    x = np.random.default_rng(2).normal(size=(1, 4, HIDDEN)).astype(np.float32)
    y_fp32, y_int8 = _run(source, x)[0], _run(target, x)[0]
    cos = (y_fp32 * y_int8).sum() / np.linalg.norm(y_fp32) / np.linalg.norm(y_int8)
    assert cos > 0.99


def _rows(seed: int) -> np.ndarray:
    """Four rows of different scales: per-batch activation ranges then depend on the batch."""
    x = np.random.default_rng(seed).normal(size=(4, 5, HIDDEN)).astype(np.float32)
    return x * np.array([0.2, 1.0, 3.0, 0.5], dtype=np.float32)[:, None, None]


def _static(tmp_path: Path, method: precision.Calibration, keep_down: bool = True) -> Path:
    source = _ffn_graph(tmp_path / "ffn.onnx", fused_gelu=False)
    typed = tmp_path / "typed.onnx"
    precision.typed_for_quantisation(source, typed)
    plan = next(
        p
        for p in precision.int8_plans(source)
        if p.calibration == method and ("down" in p.keep_fp32) == keep_down
    )
    feeds = ({"x": _rows(seed)[i : i + 1]} for seed in range(4) for i in range(4))
    ranges = precision.calibrate(typed, feeds, method, tmp_path / f"ranges-{method}.json")
    target = tmp_path / f"static-{method}.onnx"
    precision.quantize_static_int8(typed, target, plan, ranges)
    return target


@pytest.mark.parametrize("method", precision.CALIBRATIONS)
def test_static_quantisation_is_close_and_keeps_excluded_nodes(tmp_path: Path, method: str) -> None:
    target = _static(tmp_path, method)  # type: ignore[arg-type]
    model = onnx.load(str(target))
    ops = {n.name: n.op_type for n in model.graph.node}
    assert ops["down"] == "MatMul" and ops["scores"] == "MatMul"
    assert "QuantizeLinear" in ops.values() and "DequantizeLinear" in ops.values()
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    matmuls = {n.name: n for n in model.graph.node if n.op_type == "MatMul"}
    assert [producers.get(i) for i in matmuls["up"].input] == ["DequantizeLinear", "DequantizeLinear"]
    assert [producers.get(i) for i in matmuls["down"].input] != ["DequantizeLinear", "DequantizeLinear"]
    # MatMul outputs stay float: no QuantizeLinear reads them.
    consumers = {i: n.op_type for n in model.graph.node for i in n.input}
    assert consumers.get(matmuls["up"].output[0]) != "QuantizeLinear"
    x = _rows(9)
    source = tmp_path / "ffn.onnx"
    for y_fp32, y_int8 in zip(_run(source, x)[:2], _run(target, x)[:2], strict=True):
        cos = (
            (y_fp32 * y_int8).sum(axis=-1) / np.linalg.norm(y_fp32, axis=-1) / np.linalg.norm(y_int8, axis=-1)
        )
        assert cos.mean() > 0.99


def test_static_int8_is_batch_invariant_and_dynamic_is_not(tmp_path: Path) -> None:
    x = _rows(7)
    static = _static(tmp_path, "minmax")
    together = _run(static, x)[0]
    alone = np.concatenate([_run(static, x[i : i + 1])[0] for i in range(len(x))])
    assert np.abs(together - alone).max() == 0.0
    source = tmp_path / "ffn.onnx"
    plan = next(p for p in precision.int8_plans(source) if not p.static and "down" not in p.keep_fp32)
    dynamic = tmp_path / "dynamic.onnx"
    precision.quantize_dynamic_int8(source, dynamic, plan)
    together = _run(dynamic, x)[0]
    alone = np.concatenate([_run(dynamic, x[i : i + 1])[0] for i in range(len(x))])
    assert np.abs(together - alone).max() > 1e-3


def test_calibration_failure_is_an_export_error(tmp_path: Path) -> None:
    from export.errors import ExportError

    typed = tmp_path / "typed.onnx"
    precision.typed_for_quantisation(_ffn_graph(tmp_path / "ffn.onnx", fused_gelu=False), typed)
    with pytest.raises(ExportError, match="calibration"):
        precision.calibrate(typed, [{"nope": np.zeros(1, dtype=np.float32)}], "minmax", tmp_path / "r.json")


def _two_ffn_graph(path: Path) -> Path:
    """x -> up -> Gelu -> down -> y -> up2 -> Gelu -> down2 -> z: two FFN down-projections."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)
        for name, shape in (
            ("w_up", (HIDDEN, INNER)),
            ("w_down", (INNER, HIDDEN)),
            ("w_up2", (HIDDEN, INNER)),
            ("w_down2", (INNER, HIDDEN)),
        )
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_up"], ["h"], name="up"),
        helper.make_node("Gelu", ["h"], ["g"], name="gelu", domain="com.microsoft"),
        helper.make_node("MatMul", ["g", "w_down"], ["y"], name="down"),
        helper.make_node("MatMul", ["y", "w_up2"], ["h2"], name="up2"),
        helper.make_node("Gelu", ["h2"], ["g2"], name="gelu2", domain="com.microsoft"),
        helper.make_node("MatMul", ["g2", "w_down2"], ["z"], name="down2"),
    ]
    graph = helper.make_graph(
        nodes,
        "ffn2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(model, str(path))
    return path


def test_down_projections_with_outlier_channels_get_a_plan_of_their_own(tmp_path: Path) -> None:
    path = _two_ffn_graph(tmp_path / "ffn2.onnx")
    model = onnx.load(str(path))
    even = np.full(INNER, 2.0, dtype=np.float32)
    spiky = even.copy()
    spiky[3] = 2.0 * (precision.OUTLIER_RATIO + 1)  # one channel far above the median channel
    peaks = {"g": even, "g2": spiky}
    assert precision.ffn_down_projections(model) == ["down", "down2"]
    assert precision.outlier_projections(model, ["down", "down2"], peaks) == ["down2"]
    static = [p for p in precision.int8_plans(path, peaks) if p.static]
    assert [p.keep_fp32 for p in static] == [(), ("down2",), ("down", "down2")] * len(precision.CALIBRATIONS)
    assert "1 FFN down-projections with outlier channels kept in fp32" in static[1].label
    # No peaks, or every projection an outlier: no mixed plan.
    assert len([p for p in precision.int8_plans(path) if p.static]) == 2 * len(precision.CALIBRATIONS)
    both = {"g": spiky, "g2": spiky}
    assert len([p for p in precision.int8_plans(path, both) if p.static]) == 2 * len(precision.CALIBRATIONS)
