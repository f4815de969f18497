"""What evaluation embeds with: a checkpoint in process, or our server over HTTP.

Both return float32 rows of unit length, one per input text, in input order, so the same
metrics compare a PyTorch checkpoint with the fp32 and int8 ONNX variants the server runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import numpy.typing as npt

from finetune.errors import RunError, UsageError

DEFAULT_BATCH_SIZE = 32
RETRIES = 5


class Encoder(Protocol):
    """Embeds texts: ``[len(texts), dims]`` float32, unit rows, input order."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


def _normalize(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
    return unit


class CheckpointEncoder:
    """A sentence-transformers checkpoint run in process with PyTorch."""

    def __init__(self, path: Path, device: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        from finetune.trainer import load_model

        self.model: Any = load_model(path, device)
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class HttpEncoder:
    """Our embedding server's ``POST /embed`` (TEI shape), in batches of ``batch_size``.

    429 and 503 answers are retried after their ``Retry-After`` (at most 5 times); any other
    error stops the evaluation with the server's message.
    """

    def __init__(
        self,
        base_url: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = base_url.rstrip("/") + "/embed"
        self.batch_size = batch_size
        self.client = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.client.close()

    def _post(self, batch: list[str]) -> list[list[float]]:
        for _attempt in range(RETRIES):
            try:
                response = self.client.post(
                    self.url, json={"inputs": batch, "normalize": True, "truncate": True}
                )
            except httpx.HTTPError as exc:
                raise RunError(f"POST {self.url} failed: {exc}; is the server running?") from exc
            if response.status_code in (429, 503):
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code != 200:
                raise RunError(f"POST {self.url} answered {response.status_code}: {_error_message(response)}")
            data = response.json()
            if not isinstance(data, list) or len(data) != len(batch):
                raise RunError(f"POST {self.url} returned {type(data).__name__}, not {len(batch)} vectors")
            return data
        raise RunError(f"POST {self.url} stayed overloaded after {RETRIES} tries; lower the load and retry")

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._post(list(texts[start : start + self.batch_size])))
        if not rows:
            raise UsageError("nothing to embed")
        return _normalize(np.asarray(rows, dtype=np.float32))


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message", error))
        if error is not None:
            return str(error)
    return str(body)[:300]
