"""Over a real socket with uvicorn: the official openai client, and ES's hugging_face request shape."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from embedclient import free_port
from server.__main__ import uvicorn_config
from server.app import create_app
from server.settings import Settings

KEY = "e2e-key"


@pytest.fixture(scope="module")
def server_url(minilm_model_dir: Path) -> Iterator[str]:
    port = free_port()
    settings = Settings(model=minilm_model_dir, port=port, api_key=KEY, variant="fp32", log_level="warning")
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not server.started:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)


def test_openai_client_float_and_base64(server_url: str) -> None:
    import openai

    client = openai.OpenAI(base_url=server_url + "/v1", api_key=KEY)
    texts = ["vector search with Elasticsearch", "retrieval augmented generation"]
    flt = client.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    b64 = client.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="base64")
    assert len(flt.data) == 2 and len(flt.data[0].embedding) == 384
    assert flt.usage.prompt_tokens > 0
    a = np.array([d.embedding for d in flt.data])
    # asked for explicitly, the SDK hands base64 back undecoded: little-endian float32
    b = np.array([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in b64.data])
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server_url + "/v1", api_key="wrong").embeddings.create(model="m", input="x")


def test_elasticsearch_hugging_face_service_shape(server_url: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    probe = httpx.post(server_url + "/embed", json={"inputs": ["how big"]}, headers=headers, timeout=60)
    assert probe.status_code == 200 and len(probe.json()[0]) == 384
    batch = [f"passage {i}: " + "text " * (i * 7) for i in range(20)]
    r = httpx.post(server_url + "/embed", json={"inputs": batch}, headers=headers, timeout=60)
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 20 and all(len(row) == 384 for row in rows)
    again = httpx.post(server_url + "/embed", json={"inputs": batch[5:6]}, headers=headers, timeout=60).json()
    assert np.abs(np.array(rows[5]) - np.array(again[0])).max() <= 1e-5
    unauthorized = httpx.post(server_url + "/embed", json={"inputs": ["x"]}, timeout=60)
    assert unauthorized.status_code == 401 and "error" in unauthorized.json()
