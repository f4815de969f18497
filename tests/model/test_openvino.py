"""Real-model checks of the OpenVINO runtime on MiniLM: the same vectors as ONNX Runtime,
batch invariance, priorities and /info (skipped where openvino is not installed)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from server import providers
from server.collate import collate
from server.manifest import load
from server.openvino_session import OpenVinoSession
from server.session import OrtSession, SessionConfig
from server.tokenizer import Tokenizer
from tests.model.test_model import TEXTS, _nice_by_thread

pytest.importorskip("openvino")


def _config(threads: int) -> SessionConfig:
    return SessionConfig(
        device="cpu", intra_op_threads=threads, inter_op_threads=1, trt_cache_dir=Path("unused")
    )


DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "all-mpnet-base-v2"


@pytest.mark.parametrize(
    ("model", "threads"),
    [
        ("minilm", 1),
        ("minilm", 2),
        # The default MPNet's fp32 graph carries com.microsoft MultiHeadAttention nodes
        # (export.attention): OpenVINO must read them and agree with ONNX Runtime.
        pytest.param(
            "mpnet",
            2,
            marks=pytest.mark.skipif(
                not (DEFAULT_MODEL / "manifest.json").is_file(), reason="models/all-mpnet-base-v2 not built"
            ),
        ),
    ],
)
def test_fp32_on_openvino_matches_onnxruntime_and_is_batch_invariant(
    minilm_model_dir: Path, model: str, threads: int
) -> None:
    if model == "mpnet":
        minilm_model_dir = DEFAULT_MODEL
    manifest = load(minilm_model_dir)
    variant = manifest.variants["fp32"]
    ov = OpenVinoSession(minilm_model_dir, manifest, variant, _config(threads))
    assert ov.provider.startswith("OpenVINO") and "f32" in ov.provider
    plan = providers.plan("cpu", ["CPUExecutionProvider"])
    ort = OrtSession(minilm_model_dir, manifest, variant, plan, _config(threads))
    tok = Tokenizer(minilm_model_dir, manifest.max_length)
    ids = tok.encode(TEXTS).ids
    alone = np.stack([ov.run(collate([row], tok.pad_id, ov.input_names))[0] for row in ids])
    np.testing.assert_allclose(alone, ort.run(collate(ids, tok.pad_id, ort.input_names)), atol=1e-5)
    worst = 0.0
    for shift in range(len(TEXTS)):
        order = [(i + shift) % len(TEXTS) for i in range(len(TEXTS))]
        for rows in (order, order[:2], order[:3]):
            together = ov.run(collate([ids[i] for i in rows], tok.pad_id, ov.input_names))
            worst = max(worst, float(np.abs(together - alone[rows]).max()))
    assert worst <= 1e-5
    assert ov.warm_up(tok.pad_id, 2048) > 0


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_openvino_bulk_threads_run_at_lower_priority(minilm_model_dir: Path) -> None:
    from server.loader import load_engine
    from server.metrics import Metrics
    from server.settings import Settings

    base = _nice_by_thread()[threading.get_native_id()]
    assert base <= 14, "this test needs room to lower the priority by 5"
    before = set(_nice_by_thread())
    settings = Settings(
        model=minilm_model_dir, variant="fp32", runtime="openvino", intra_op_threads=2, bulk_nice=5
    )
    engine = load_engine(settings, Metrics.create())
    try:
        assert engine.info()["provider"].startswith("OpenVINO")
        new = {tid: nice for tid, nice in _nice_by_thread().items() if tid not in before}
        lowered = [tid for tid, nice in new.items() if nice == base + 5]
        # The bulk worker and the threads OpenVINO started when it compiled the bulk model;
        # the interactive model's threads, the other worker and the assemblers keep ours.
        assert len(lowered) >= 2, new
        assert sum(1 for nice in new.values() if nice <= base) >= 4, new
    finally:
        engine.close()


async def test_info_names_the_runtime(make_client) -> None:
    client, _ = await make_client(variant="fp32", runtime="openvino")
    info = (await client.get("/info")).json()
    assert info["provider"].startswith("OpenVINO") and info["variant"] == "fp32"
    got = np.array((await client.post("/embed", json={"inputs": TEXTS})).json(), dtype=np.float32)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
