"""In-process API fixtures: the real app inside its lifespan, driven by httpx ASGITransport.

``make_client`` builds an app on the exported MiniLM test model; with ``fake=True`` its
engine runs a scripted session instead of ONNX Runtime, so queueing, deadlines and
failures can be produced on demand (one session for both classes unless the test sets
``interactive_sessions``; the session returned is the bulk one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.doubles import ScriptedSession, scripted_loader

ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(minilm_model_dir: Path) -> AsyncIterator[ClientFactory]:
    async with AsyncExitStack() as stack:

        async def make(fake: bool = False, **overrides: Any) -> tuple[httpx.AsyncClient, Any]:
            # The runtime is named: --runtime auto would pick OpenVINO on some hosts (test_openvino).
            values: dict[str, Any] = {
                "model": minilm_model_dir,
                "variant": "fp32",
                "runtime": "onnxruntime",
                "warmup": False,
            }
            settings = Settings(**{**values, **overrides})
            scripted: list[ScriptedSession] = []
            loader = scripted_loader(
                scripted, settings.interactive_sessions if "interactive_sessions" in overrides else 0
            )
            app = create_app(settings, loader) if fake else create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
            )
            stack.callback(lambda: [s.gate.set() for s in scripted])
            return client, (scripted[0] if scripted else app)

        yield make
