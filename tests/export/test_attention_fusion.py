"""MPNet's attention fused into MultiHeadAttention (export.attention, through export.fusion)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import attention, fusion, graph, parity
from export.checkpoint import Checkpoint, inspect
from export.tokenizer import write_tokenizer
from server.tokenizer import Tokenizer
from tests.export.conftest import TinyCheckpoint

MAX_LENGTH = 64
TEXTS = [
    "hello",
    "A somewhat longer sentence, so that the batch has padding to mask.",
    "def f(x):\n    return x * 2  # code",
    "Zürich, 東京, Москва: ünïcödé and emoji 🚀",
    "word " * 80,
]


@dataclass(frozen=True)
class Traced:
    """A tiny checkpoint's plain traced graph, its description and its tokenizer directory."""

    checkpoint: Checkpoint
    plain: Path
    directory: Path

    def encoder(self, model: Path) -> parity.OnnxEncoder:
        tokenizer = Tokenizer(self.directory, MAX_LENGTH)
        return parity.OnnxEncoder(model, tokenizer, graph.graph_inputs(with_token_types=False))


def _trace(source: Path, directory: Path) -> Traced:
    checkpoint = inspect(source, None, MAX_LENGTH, None)
    encoder, tokenizer = graph.load_encoder(checkpoint), graph.load_tokenizer(checkpoint)
    directory.mkdir()
    write_tokenizer(checkpoint, tokenizer, directory)
    plain = directory / "plain.onnx"
    graph.export_onnx(encoder, tokenizer, checkpoint.pooling, False, plain, opset=17)
    return Traced(checkpoint, plain, directory)


@pytest.fixture
def mpnet(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> Traced:
    return _trace(tiny_checkpoint("mpnet"), tmp_path / "mpnet")


def _ops(model: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(model)).graph.node]


def test_every_mpnet_layer_fuses_with_separate_projections(mpnet: Traced) -> None:
    fused = mpnet.directory / "fused.onnx"
    counts = fusion.optimize(mpnet.plain, fused, mpnet.checkpoint)
    layers = mpnet.checkpoint.num_layers
    assert counts[attention.FUSED_OP] == layers
    ops = _ops(fused)
    assert ops.count(attention.FUSED_OP) == layers
    assert "Softmax" not in ops
    # Q, K, V and the output projection stay weight MatMuls that static QDQ can quantise.
    assert ops.count("MatMul") == 6 * layers
    nodes = onnx.load(str(fused)).graph.node
    biases = {node.input[5] for node in nodes if node.op_type == attention.FUSED_OP}
    assert len(biases) == 1, "one position bias + mask tensor, shared by every layer"
    assert not list(fused.parent.glob("*.attention.onnx"))


def test_fused_mpnet_matches_the_plain_graph(mpnet: Traced) -> None:
    fused = mpnet.directory / "fused.onnx"
    fusion.optimize(mpnet.plain, fused, mpnet.checkpoint)
    plain, candidate = mpnet.encoder(mpnet.plain), mpnet.encoder(fused)
    _, cos_min, max_abs = parity.cosine_and_diff(plain(TEXTS), candidate(TEXTS))
    assert cos_min >= parity.FP32_MIN_COSINE
    assert max_abs <= 1e-5
    assert parity.batch_invariant(parity.batch_variation(candidate, TEXTS))
    # A batch with one long and one very short text: padding is masked in the fused bias.
    _, _, padded = parity.cosine_and_diff(plain.batch(TEXTS[:2]), candidate.batch(TEXTS[:2]))
    assert padded <= 1e-5


def test_non_mpnet_graphs_are_left_alone(tiny_checkpoint: TinyCheckpoint, tmp_path: Path) -> None:
    bert = _trace(tiny_checkpoint("bert"), tmp_path / "bert")
    # The plain BERT graph has the attention pattern with a lone mask: not this pass's to fuse.
    model = onnx.load(str(bert.plain))
    before = [node.op_type for node in model.graph.node]
    assert attention.fuse_attention(model, bert.checkpoint.num_heads, bert.checkpoint.hidden_size) == 0
    assert [node.op_type for node in model.graph.node] == before
    counts = fusion.optimize(bert.plain, tmp_path / "bert.onnx", bert.checkpoint)
    assert attention.FUSED_OP not in counts
    assert counts["Attention"] == bert.checkpoint.num_layers


def test_a_fusion_that_disagrees_keeps_the_optimizer_graph(
    mpnet: Traced, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = attention.fuse_attention

    def without_mask(model: onnx.ModelProto, num_heads: int, hidden_size: int) -> int:
        fused = real(model, num_heads, hidden_size)
        for node in model.graph.node:
            if node.op_type == attention.FUSED_OP:
                node.input[5] = ""  # no position bias and no padding mask: padded keys attended
        return fused

    monkeypatch.setattr(attention, "fuse_attention", without_mask)
    fused = mpnet.directory / "fused.onnx"
    with caplog.at_level(logging.WARNING, logger="export.fusion"):
        counts = fusion.optimize(mpnet.plain, fused, mpnet.checkpoint)
    assert attention.FUSED_OP not in counts
    assert attention.FUSED_OP not in _ops(fused)
    assert "keeping the optimizer's graph" in caplog.text
    assert not list(fused.parent.glob("*.attention.onnx"))
    _, cos_min, _ = parity.cosine_and_diff(mpnet.encoder(mpnet.plain)(TEXTS), mpnet.encoder(fused)(TEXTS))
    assert cos_min >= parity.FP32_MIN_COSINE


def test_the_fused_graph_quantises_its_projections(mpnet: Traced) -> None:
    from export import precision

    fused = mpnet.directory / "fused.onnx"
    fusion.optimize(mpnet.plain, fused, mpnet.checkpoint)
    model = onnx.load(str(fused))
    readers = precision.weight_matmuls(model)
    assert sum(len(names) for names in readers.values()) == 6 * mpnet.checkpoint.num_layers
    assert precision.activation_matmuls(model) == []
    assert np.isfinite(mpnet.encoder(fused)(TEXTS)).all()
