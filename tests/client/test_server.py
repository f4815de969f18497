"""embedclient against the real server: the app in-process on a loopback socket (a scripted
model session, the real routes, schemas, limits and envelopes), and ``python -m server`` and
stand-in commands as child processes of :class:`ServerProcess`.

Limits here are hang guards: no test checks how long anything took.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from embedclient import (
    ApiError,
    Client,
    Retry,
    ServerProcess,
    ServerStartError,
    free_port,
    server_command,
    wait_ready,
)
from server.app import create_app
from server.settings import Settings
from tests.doubles import ScriptedSession, scripted_loader

HANG_GUARD_S = 60.0


@pytest.fixture
def serve(minilm_model_dir: Path) -> Iterator[Callable[..., str]]:
    """The real app (MiniLM's manifest and tokenizer, a scripted session) under uvicorn in a thread."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**overrides: Any) -> str:
        port = free_port()
        values: dict[str, Any] = {"model": minilm_model_dir, "variant": "fp32", "port": port, "warmup": False}
        made: list[ScriptedSession] = []
        app = create_app(Settings(**{**values, **overrides}), scripted_loader(made))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=HANG_GUARD_S, name="the in-process server")
        return url

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(HANG_GUARD_S)


class Recording(httpx.HTTPTransport):
    """A real transport that notes (texts sent, status) of every embedding request."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[int, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path in ("/embed", "/v1/embeddings"):
            body = json.loads(request.content)
            self.sent.append((len(body.get("inputs", body.get("input", []))), response.status_code))
        return response


def test_the_client_against_the_real_app(serve: Callable[..., str]) -> None:
    url = serve(max_client_batch_size=4, api_key="k")
    recording = Recording()
    with Client(url, api_key="k", transport=recording, retry=Retry(retries=0)) as client:
        info = client.info()
        assert (info.dims, info.max_client_batch_size, info.model_id) == (384, 4, "all-minilm-l6-v2")
        vectors = client.embed([f"text number {i}" for i in range(10)], batch_size=8)
        assert len(vectors) == 10 and {len(v) for v in vectors} == {384}
        assert recording.sent == [(8, 413), (4, 200), (4, 200), (2, 200)]
        assert len(client.embed(["a", "b"], api="openai", dimensions=16)[1]) == 16

        with pytest.raises(ApiError) as tei:
            client.embed([""])
        assert (tei.value.status, tei.value.type) == (422, "Validation")
        with pytest.raises(ApiError) as openai:
            client.embed([""], api="openai")
        assert (openai.value.status, openai.value.type) == (422, "invalid_request_error")
        assert "is an empty string" in tei.value.message and "is an empty string" in openai.value.message

        (tokens,) = client.tokenize(["hello world"])
        assert [t["special"] for t in tokens] == [True, False, False, True]

    with Client(url, api_key="wrong") as client, pytest.raises(ApiError) as refused:
        client.info()
    assert (refused.value.status, refused.value.type) == (401, "Unauthorized")


def script(tmp_path: Path, name: str, code: str) -> list[str]:
    path = tmp_path / name
    path.write_text(code)
    return [sys.executable, str(path)]


READY = """
import signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Ready(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health/ready" else 404)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

def drained(*args):
    print("drained", flush=True)
    raise SystemExit(0)

signal.signal(signal.SIGTERM, drained)
print("listening", flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready).serve_forever()
"""


def test_a_server_process_starts_serves_and_drains_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "logs" / "server.log"
    server = ServerProcess(argv=[*script(tmp_path, "ready.py", READY), str(port)], port=port, log=log)
    with server:
        assert httpx.get(f"{server.url}/health/ready").status_code == 200
        assert server.pid is not None
    assert server.process is not None and server.process.returncode == 0
    assert log.read_text().split() == ["listening", "drained"]


def test_a_server_that_exits_is_reported_with_its_log_tail(tmp_path: Path) -> None:
    dying = script(
        tmp_path, "dying.py", "print('cannot load the model: bad manifest')\nraise SystemExit(3)\n"
    )
    server = ServerProcess(argv=dying, name="the test server", startup_timeout=HANG_GUARD_S)
    with pytest.raises(ServerStartError, match=r"the test server exited with code 3 .*dying\.py") as caught:
        server.start()
    assert "log tail:\ncannot load the model: bad manifest" in str(caught.value)
    assert server.log is None  # the temporary log went with the process


def test_a_server_never_ready_is_stopped_after_the_startup_timeout(tmp_path: Path) -> None:
    asleep = script(tmp_path, "asleep.py", "print('loading', flush=True)\nimport time\ntime.sleep(3600)\n")
    server = ServerProcess(argv=asleep, startup_timeout=0.2)
    with pytest.raises(ServerStartError, match=r"was not ready after 0\.2 s"):
        server.start()
    assert server.process is not None and server.process.returncode is not None


def test_our_servers_command_line() -> None:
    assert server_command(8123, "--model", "m") == [
        sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", "8123", "--model", "m",
    ]  # fmt: skip
    assert ServerProcess("--model", "m", port=8123).command() == server_command(8123, "--model", "m")
    with pytest.raises(ValueError, match="not both"):
        ServerProcess("--model", "m", argv=["peer", "--port", "1"])


@pytest.mark.slow
def test_python_m_server_as_a_child_process(minilm_model_dir: Path, tmp_path: Path) -> None:
    args = ("--model", str(minilm_model_dir), "--variant", "fp32", "--no-warmup", "--log-level", "warning")
    with ServerProcess(*args, log=tmp_path / "server.log", startup_timeout=180) as server:
        with Client(server.url) as client:
            assert len(client.embed(["a text to embed"])[0]) == client.info().dims == 384
    assert server.process is not None and server.process.returncode == 0
