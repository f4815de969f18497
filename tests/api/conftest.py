"""In-process API fixtures: the real app inside its lifespan, driven by httpx ASGITransport.

``make_client`` builds an app on the exported MiniLM test model; with ``fake=True`` its
engine runs a scripted session instead of ONNX Runtime, so queueing, deadlines and
failures can be produced on demand.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from server.app import create_app
from server.engine import Engine
from server.manifest import load
from server.metrics import Metrics
from server.settings import Settings
from server.tokenizer import Tokenizer


class ScriptedSession:
    """A session that waits on ``gate``, can fail on demand, and returns a fixed pattern."""

    def __init__(self, input_names: Sequence[str], dims: int) -> None:
        self.input_names = input_names
        self.dims = dims
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_next = False
        self.runs = 0

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        self.entered.set()
        self.gate.wait()
        self.runs += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("scripted failure")
        n = inputs["input_ids"].shape[0]
        out = np.ones((n, self.dims), dtype=np.float32)
        out[:, 0] = inputs["attention_mask"].sum(axis=1)
        return out


ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(minilm_model_dir: Path) -> AsyncIterator[ClientFactory]:
    async with AsyncExitStack() as stack:

        async def make(fake: bool = False, **overrides: Any) -> tuple[httpx.AsyncClient, Any]:
            values: dict[str, Any] = {"model": minilm_model_dir, "variant": "fp32", "warmup": False}
            settings = Settings(**{**values, **overrides})
            scripted: list[ScriptedSession] = []

            def fake_loader(s: Settings, metrics: Metrics) -> Engine:
                manifest = load(s.model)
                session = ScriptedSession(manifest.inputs, manifest.dims)
                scripted.append(session)
                return Engine(
                    s,
                    manifest,
                    Tokenizer(s.model, manifest.max_length),
                    [session],
                    metrics,
                    variant="fp32",
                    provider="CPUExecutionProvider",
                    max_batch_tokens=s.max_batch_tokens,
                )

            app = create_app(settings, fake_loader) if fake else create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            )
            stack.callback(lambda: [s.gate.set() for s in scripted])
            return client, (scripted[0] if scripted else app)

        yield make
