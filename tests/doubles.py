"""Test doubles for the server: a scripted model session and an engine loader using it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

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


def scripted_loader(
    made: list[ScriptedSession], interactive: int = 0
) -> Callable[[Settings, Metrics], Engine]:
    """An engine loader with the real manifest and tokenizer but ScriptedSession models: the
    bulk (or, without ``interactive`` ones, shared) session first in ``made``, then those."""

    def load_engine(settings: Settings, metrics: Metrics) -> Engine:
        manifest = load(settings.model)
        session = ScriptedSession(manifest.inputs, manifest.dims)
        dedicated = [ScriptedSession(manifest.inputs, manifest.dims) for _ in range(interactive)]
        made.extend([session, *dedicated])
        return Engine(
            settings,
            manifest,
            Tokenizer(settings.model, manifest.max_length),
            [session],
            metrics,
            interactive=dedicated,
            variant="fp32",
            provider="CPUExecutionProvider",
            max_batch_tokens=settings.batch_tokens(on_gpu=False),
        )

    return load_engine
