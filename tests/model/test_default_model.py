"""Smoke test of the model `make run` serves: ``models/all-mpnet-base-v2`` as `make model` built it.

`make test` builds that directory first (the target depends on it), so in CI this checks the
shipped default end to end: both variants gated on every retrieval domain, the int8 served
under ``auto`` because it is batch-invariant, and its vectors those of fp32. Run by hand
without the directory, it skips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export import domains
from server.manifest import load

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "all-mpnet-base-v2"
TEXTS = ["How do I reset my password?", "Passwords are reset from the account settings page.", "x"]

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL / "manifest.json").is_file(), reason="models/all-mpnet-base-v2 not built (make model)"
)


def test_the_default_model_was_gated_on_every_domain() -> None:
    manifest = load(DEFAULT_MODEL)
    assert manifest.dims == 768 and set(manifest.variants) == {"fp32", "int8"}
    int8 = manifest.variants["int8"]
    assert int8.batch_invariant is True
    assert set(int8.domains) == set(domains.names())
    assert all(figures.passed for figures in int8.domains.values())
    assert manifest.gated_on["isa"] is not None and manifest.gated_on["onnxruntime"]


async def test_the_default_model_serves_int8_close_to_fp32(make_client) -> None:
    served, _ = await make_client(model=DEFAULT_MODEL, variant="auto")
    exact, _ = await make_client(model=DEFAULT_MODEL, variant="fp32")
    assert (await served.get("/info")).json()["variant"] == "int8"
    got = np.asarray((await served.post("/embed", json={"inputs": TEXTS})).json())
    body = (await exact.post("/v1/embeddings", json={"input": TEXTS})).json()
    ref = np.asarray(body["data"][0]["embedding"])
    assert got.shape == (3, 768)
    assert float(got[0] @ ref) > 0.99
    assert float(got[0] @ got[1]) > float(got[0] @ got[2]), "the answer is nearer the question than 'x'"
