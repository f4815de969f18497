"""What evaluation embeds with: a checkpoint in process, or our server over HTTP.

Both return float32 rows of unit length, one per input text, in input order, so the same
metrics compare a PyTorch checkpoint with the fp32 and int8 ONNX variants the server runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import numpy.typing as npt

from embedclient import ApiError, Client, NotOurServer, Retry, TransportError
from finetune.errors import RunError, UsageError

DEFAULT_BATCH_SIZE = 32
RETRIES = 5
BACKOFF = 0.1
"""Seconds before the first retry, doubled after each (a Retry-After that asks more wins)."""


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
    """Our embedding server's ``POST /embed`` (TEI shape) through :class:`embedclient.Client`,
    in batches of ``batch_size`` (a 413 halves them).

    Overload (429/503, after its ``Retry-After``) and a server that restarts are retried, at
    most ``RETRIES`` tries per request; any other error stops the evaluation with the
    server's message.
    """

    def __init__(
        self,
        base_url: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        api_key: str | None = None,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/embed"
        self.batch_size = batch_size
        self.client = Client(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retry=Retry(retries=RETRIES - 1, backoff=BACKOFF),
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            raise UsageError("nothing to embed")
        try:
            rows = self.client.embed(texts, batch_size=self.batch_size, normalize=True, truncate=True)
        except ApiError as exc:
            raise RunError(f"POST {self.url} answered {exc.status}: {exc.message}") from exc
        except TransportError as exc:
            raise RunError(f"POST {self.url} failed: {exc.__cause__ or exc}; is the server running?") from exc
        except NotOurServer as exc:
            raise RunError(f"{exc}; is {self.client.base_url} our embedding server?") from exc
        return _normalize(np.asarray(rows, dtype=np.float32))
