"""MPNet's self-attention as ONNX Runtime's fused ``MultiHeadAttention`` (``com.microsoft``).

ONNX Runtime's transformer optimizer fuses BERT's attention but not MPNet's: MPNet adds a
relative position bias to the scaled scores before the padding mask, and none of the
optimizer's attention patterns (``bert``, ``tnlr``, ``t5``, with or without
``MultiHeadAttention``) accepts two addends there. This pass rewrites each layer's::

    Softmax(Q K^T / c + position_bias + mask) V     (Q, K, V split into heads, merged back)

into one ``MultiHeadAttention`` node:

- Q, K and V stay separate weight ``MatMul`` projections, so static QDQ quantisation
  (:mod:`export.precision`) still quantises them; their bias vectors move into the node's
  packed ``bias`` input, which the CPU kernel adds while it splits the heads;
- the addends (MPNet: the position bias, ``[batch, heads, S, S]``, and the padding mask,
  ``[batch, 1, S, S]`` with ``finfo.min`` at padded keys) are summed once per forward into
  the node's ``attention_bias``, shared by every layer; the kernel adds it inside its
  ``Q K^T`` GEMM. The padding stays in the bias rather than the ``key_padding_mask`` input:
  with both inputs the CPU kernel adds the mask in a scalar loop per head.

The result computes the same function up to fp32 rounding (the scores are summed in another
order); the exporter's parity gate decides whether it ships.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper
from onnxruntime.transformers.onnx_model import OnnxModel

MS_DOMAIN = "com.microsoft"
FUSED_OP = "MultiHeadAttention"
# Transpose permutations of the traced head split: [B, S, N, H] -> [B, N, S, H] for Q and V,
# [B, N, H, S] for K (K^T directly); and of the head merge back to [B, S, N, H].
_SPLIT = (0, 2, 1, 3)
_SPLIT_TRANSPOSED = (0, 2, 3, 1)
# Addends followed back from the Softmax. At least two, a position bias and a mask: their
# sum is a full [S, S] score bias, as ``attention_bias`` must be. A lone mask (BERT's
# [batch, 1, 1, S]) is not, and ONNX Runtime's optimizer fuses that attention itself.
_MIN_ADDENDS, _MAX_ADDENDS = 2, 3


@dataclass(frozen=True)
class _Block:
    """One matched attention core: what the fused node reads, writes and replaces."""

    projections: tuple[str, str, str]
    biases: tuple[npt.NDArray[np.float32], ...] | None
    addends: tuple[str, ...]
    scale: float
    output: str
    nodes: tuple[onnx.NodeProto, ...]


class _Graph:
    """Producer, consumer and constant lookups over one ONNX graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {init.name: init for init in graph.initializer}
        self.outputs = {out.name for out in graph.output}

    def made_by(self, name: str, op_type: str) -> onnx.NodeProto | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def only_reader(self, name: str, op_type: str) -> onnx.NodeProto | None:
        readers = self.consumers.get(name, [])
        if len(readers) != 1 or readers[0].op_type != op_type or name in self.outputs:
            return None
        return readers[0]

    def constant(self, name: str) -> npt.NDArray[Any] | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.made_by(name, "Constant")
        if node is None or not node.attribute or not node.attribute[0].HasField("t"):
            return None
        return numpy_helper.to_array(node.attribute[0].t)


def _perm(node: onnx.NodeProto) -> tuple[int, ...]:
    return next((tuple(a.ints) for a in node.attribute if a.name == "perm"), ())


def _split_heads(
    g: _Graph, name: str, perm: tuple[int, ...], head_size: int
) -> tuple[str, list[onnx.NodeProto]] | None:
    """``name`` = Transpose(perm)(Reshape(x, [.., .., N, head_size])): x and the two nodes."""
    transpose = g.made_by(name, "Transpose")
    if transpose is None or _perm(transpose) != perm:
        return None
    reshape = g.made_by(transpose.input[0], "Reshape")
    if reshape is None:
        return None
    if _last_dim(g, reshape.input[1]) != head_size:
        return None
    return reshape.input[0], [transpose, reshape]


def _last_dim(g: _Graph, shape: str) -> int | None:
    """The last element of a Reshape's target ``shape``: a constant, or the constant last
    part of a ``Concat`` (the tracer builds ``[batch, seq, -1, head_size]`` from ``Shape``)."""
    value = g.constant(shape)
    if value is None and (concat := g.made_by(shape, "Concat")) is not None:
        value = g.constant(concat.input[-1])
    return int(value.reshape(-1)[-1]) if value is not None and value.size else None


def _scores(g: _Graph, softmax: onnx.NodeProto) -> tuple[str, tuple[str, ...], list[onnx.NodeProto]] | None:
    """The scaled scores before ``softmax``, the addends added to them, and the Add nodes."""
    addends: list[str] = []
    adds: list[onnx.NodeProto] = []
    name = softmax.input[0]
    while (add := g.made_by(name, "Add")) is not None and len(adds) < _MAX_ADDENDS:
        left, right = (g.producer.get(i) for i in add.input)
        if left is not None and left.op_type in {"Add", "Div", "Mul"}:
            name, other = add.input[0], add.input[1]
        elif right is not None and right.op_type in {"Add", "Div", "Mul"}:
            name, other = add.input[1], add.input[0]
        else:
            return None
        addends.append(other)
        adds.append(add)
    if len(addends) < _MIN_ADDENDS:
        return None
    # Innermost first (MPNet: position bias, then mask), the order the model adds them in.
    return name, tuple(reversed(addends)), adds


def _scale(g: _Graph, node: onnx.NodeProto | None) -> tuple[float, str] | None:
    """``node`` = x / c or x * c with a scalar constant c: the factor applied to x, and x."""
    if node is None or node.op_type not in {"Div", "Mul"}:
        return None
    operands = [(node.input[1], node.input[0])]
    if node.op_type == "Mul":
        operands.append((node.input[0], node.input[1]))
    for constant, scores in operands:
        factor = g.constant(constant)
        if factor is not None and factor.size == 1 and float(factor) != 0.0:
            return (1.0 / float(factor) if node.op_type == "Div" else float(factor)), scores
    return None


def _projection_biases(
    g: _Graph, projections: Sequence[str]
) -> tuple[tuple[str, str, str], tuple[npt.NDArray[np.float32], ...], list[onnx.NodeProto]] | None:
    """When each projection is ``Add(bias, MatMul(...))``: the MatMul outputs, biases and Adds."""
    inputs: list[str] = []
    biases: list[npt.NDArray[np.float32]] = []
    adds: list[onnx.NodeProto] = []
    for name in projections:
        add = g.made_by(name, "Add")
        if add is None or len(g.consumers.get(name, [])) != 1:
            return None
        constants = [i for i in add.input if i in g.initializers]
        others = [i for i in add.input if i not in g.initializers]
        if len(constants) != 1 or len(others) != 1 or g.made_by(others[0], "MatMul") is None:
            return None
        bias = numpy_helper.to_array(g.initializers[constants[0]])
        if bias.ndim != 1 or bias.dtype != np.float32:
            return None
        inputs.append(others[0])
        biases.append(bias)
        adds.append(add)
    q, k, v = inputs
    return (q, k, v), tuple(biases), adds


def _match(g: _Graph, softmax: onnx.NodeProto, num_heads: int, head_size: int) -> _Block | None:
    """The attention core around ``softmax``, or None when it is not the traced MPNet pattern."""
    axis = next((a.i for a in softmax.attribute if a.name == "axis"), -1)
    scores = _scores(g, softmax) if axis in (-1, 3) else None
    if scores is None:
        return None
    scaled_name, addends, adds = scores
    scaled = g.producer.get(scaled_name)
    scaling = _scale(g, scaled)
    if scaled is None or scaling is None:
        return None
    scale, raw = scaling
    qk = g.made_by(raw, "MatMul")
    if qk is None:
        return None
    context = g.only_reader(softmax.output[0], "MatMul")
    q = _split_heads(g, qk.input[0], _SPLIT, head_size)
    k = _split_heads(g, qk.input[1], _SPLIT_TRANSPOSED, head_size)
    if context is None or q is None or k is None or context.input[0] != softmax.output[0]:
        return None
    v = _split_heads(g, context.input[1], _SPLIT, head_size)
    merge = g.only_reader(context.output[0], "Transpose")
    merged = g.only_reader(merge.output[0], "Reshape") if merge is not None else None
    if v is None or merge is None or _perm(merge) != _SPLIT or merged is None:
        return None
    if _last_dim(g, merged.input[1]) != num_heads * head_size:
        return None
    nodes = [softmax, *adds, scaled, qk, context, merge, merged, *q[1], *k[1], *v[1]]
    projections = (q[0], k[0], v[0])
    biases = None
    packed = _projection_biases(g, projections)
    if packed is not None:
        projections, biases, projection_adds = packed
        nodes += projection_adds
    return _Block(projections, biases, addends, scale, merged.output[0], tuple(nodes))


def _self_contained(g: _Graph, block: _Block) -> bool:
    """Whether nothing outside ``block`` reads a tensor that fusing it would remove."""
    inside = {id(node) for node in block.nodes}
    for node in block.nodes:
        for out in node.output:
            if out == block.output:
                continue
            if out in g.outputs or any(id(r) not in inside for r in g.consumers.get(out, [])):
                return False
    return True


def fuse_attention(model: onnx.ModelProto, num_heads: int, hidden_size: int) -> int:
    """Rewrite every MPNet attention core of ``model`` in place; returns how many were fused.

    A graph without the pattern (BERT after ONNX Runtime's own fusion, XLM-R, ...) is left
    as it was, and so is any block whose intermediate tensors are read elsewhere.
    """
    if num_heads <= 0 or hidden_size % num_heads:
        return 0
    head_size = hidden_size // num_heads
    graph = model.graph
    g = _Graph(graph)
    blocks = [
        block
        for node in graph.node
        if node.op_type == "Softmax"
        and (block := _match(g, node, num_heads, head_size)) is not None
        and _self_contained(g, block)
    ]
    if not blocks:
        return 0
    shared: dict[tuple[str, ...], str] = {}
    added: list[onnx.NodeProto] = []
    for i, block in enumerate(blocks):
        if block.addends not in shared:
            total = block.addends[0]
            for j, addend in enumerate(block.addends[1:]):
                name = f"attention_bias_{len(shared)}" + ("" if j == len(block.addends) - 2 else f"_{j}")
                added.append(helper.make_node("Add", [total, addend], [name], name=name))
                total = name
            shared[block.addends] = total
        bias = ""
        if block.biases is not None:
            bias = f"attention_{i}/qkv_bias"
            graph.initializer.append(numpy_helper.from_array(np.concatenate(block.biases), bias))
        added.append(
            helper.make_node(
                FUSED_OP,
                [*block.projections, bias, "", shared[block.addends]],
                [block.output],
                name=f"attention_{i}/{FUSED_OP}",
                domain=MS_DOMAIN,
                num_heads=num_heads,
                scale=block.scale,
            )
        )
    removed = {id(node) for block in blocks for node in block.nodes}
    kept = [node for node in graph.node if id(node) not in removed]
    del graph.node[:]
    graph.node.extend(kept + added)
    if not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    wrapped = OnnxModel(model)
    wrapped.prune_graph()
    wrapped.topological_sort()
    return len(blocks)
