"""Real-model checks on MiniLM: parity with sentence-transformers, batch invariance, order."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from server import providers
from server.collate import collate
from server.manifest import load
from server.session import OrtSession, SessionConfig
from server.tokenizer import Tokenizer

TEXTS = [
    "How do I configure a dense_vector field in Elasticsearch?",
    "短い文",
    "La recherche sémantique utilise des vecteurs.",
    "x",
    "The quick brown fox jumps over the lazy dog. " * 12,
    "def main():\n    return 0",
]


@pytest.fixture(scope="module")
def reference(minilm_checkpoint: Path) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_checkpoint), device="cpu")
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, batch_size=2))


async def test_server_matches_sentence_transformers(make_client, reference: np.ndarray) -> None:
    client, _ = await make_client()
    got = np.array((await client.post("/embed", json={"inputs": TEXTS})).json(), dtype=np.float32)
    cos = (got * reference).sum(axis=1)
    assert cos.min() >= 0.99999, cos


@pytest.mark.parametrize("variant", ["fp32", "int8"])
@pytest.mark.parametrize("threads", [1, 2])
def test_padding_and_batch_mates_do_not_change_a_vector(
    minilm_model_dir: Path, variant: str, threads: int
) -> None:
    manifest = load(minilm_model_dir)
    config = SessionConfig(
        device="cpu", intra_op_threads=threads, inter_op_threads=1, trt_cache_dir=Path("unused")
    )
    plan = providers.plan("cpu", ["CPUExecutionProvider"])
    session = OrtSession(minilm_model_dir, manifest, manifest.variants[variant], plan, config)
    tok = Tokenizer(minilm_model_dir, manifest.max_length)
    ids = tok.encode(TEXTS).ids
    alone = [session.run(collate([row], tok.pad_id, session.input_names))[0] for row in ids]
    worst = 0.0
    for shift in range(len(TEXTS)):
        order = [(i + shift) % len(TEXTS) for i in range(len(TEXTS))]
        # Every position among all the others, then pairs padded to different lengths.
        for rows in (order, order[:2], order[:3]):
            together = session.run(collate([ids[i] for i in rows], tok.pad_id, session.input_names))
            worst = max(worst, max(float(np.abs(together[k] - alone[i]).max()) for k, i in enumerate(rows)))
    assert worst <= 1e-5


@pytest.mark.parametrize("variant", ["fp32", "int8"])
async def test_vectors_do_not_depend_on_batch_mates_or_concurrency(make_client, variant: str) -> None:
    client, _ = await make_client(variant=variant)
    solo = [np.array((await client.post("/embed", json={"inputs": t})).json()[0]) for t in TEXTS]
    rotated = TEXTS[3:] + TEXTS[:3]
    requests = [client.post("/embed", json={"inputs": [t, *rotated]}) for t in TEXTS for _ in range(3)]
    responses = await asyncio.gather(*requests)
    for k, r in enumerate(responses):
        got = np.array(r.json())
        assert np.abs(got[0] - solo[k // 3]).max() <= 1e-5
        for j, t in enumerate(rotated):
            assert np.abs(got[j + 1] - solo[TEXTS.index(t)]).max() <= 1e-5


async def test_auto_serves_the_batch_invariant_int8_on_cpu(make_client) -> None:
    client, _ = await make_client(variant="auto", device="cpu")
    info = (await client.get("/info")).json()
    assert info["variant"] == "int8"
    assert info["batch_invariant"] is True
    assert 0.0 <= info["batch_max_abs_diff"] <= 1e-5


async def test_int8_variant_is_close_to_reference(make_client, reference: np.ndarray) -> None:
    client, _ = await make_client(variant="int8")
    info = (await client.get("/info")).json()
    assert info["variant"] == "int8"
    got = np.array((await client.post("/embed", json={"inputs": TEXTS})).json(), dtype=np.float32)
    assert (got * reference).sum(axis=1).mean() >= 0.98


def _nice_by_thread() -> dict[int, int]:
    """Nice value of each thread of this process (Linux /proc), by thread id."""
    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = int(fields[16])
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_bulk_batches_run_on_threads_at_lower_priority_and_queries_do_not(minilm_model_dir: Path) -> None:
    from server.loader import load_engine
    from server.metrics import Metrics
    from server.settings import Settings

    base = _nice_by_thread()[threading.get_native_id()]
    assert base <= 14, "this test needs room to lower the priority by 5"
    before = set(_nice_by_thread())
    settings = Settings(
        model=minilm_model_dir,
        variant="fp32",
        runtime="onnxruntime",
        intra_op_threads=2,
        bulk_nice=5,
        warmup=False,
    )
    engine = load_engine(settings, Metrics.create())
    try:
        assert engine.info()["interactive_sessions"] == 1
        new = {tid: nice for tid, nice in _nice_by_thread().items() if tid not in before}
        lowered = [tid for tid, nice in new.items() if nice == base + 5]
        # The bulk worker and the intra-op thread ORT started for the bulk session; the
        # interactive session's thread, the other worker and the assemblers keep ours.
        assert len(lowered) == 2, new
        assert sum(1 for nice in new.values() if nice <= base) >= 4, new
    finally:
        engine.close()
