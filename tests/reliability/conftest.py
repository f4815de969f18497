"""Live servers for the reliability suite: uvicorn on a loopback socket, in a thread or a process.

The limits in here (``wait_ready``'s, the joins') are hang guards: a test never checks how
long something took, only what it ended with.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from server.__main__ import DrainingServer, uvicorn_config
from server.app import create_app
from server.routes import State
from server.settings import Settings
from tests.doubles import ScriptedSession, scripted_loader

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 60.0
"""How long a test waits for something that must happen before it calls it a hang."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become ready")


@dataclass
class ThreadServer:
    url: str
    app: Any
    sessions: list[ScriptedSession] = field(default_factory=list)


@pytest.fixture
def thread_server(minilm_model_dir: Path) -> Iterator[Callable[..., ThreadServer]]:
    """uvicorn in a thread on the MiniLM model (real, or a scripted session with fake=True)."""
    running: list[tuple[uvicorn.Server, threading.Thread, list[ScriptedSession]]] = []

    def start(fake: bool = False, **overrides: Any) -> ThreadServer:
        port = free_port()
        values: dict[str, Any] = {"model": minilm_model_dir, "variant": "fp32", "port": port, "warmup": False}
        settings = Settings(**{**values, **overrides})
        scripted: list[ScriptedSession] = []
        app = create_app(settings, scripted_loader(scripted)) if fake else create_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_level="warning",
                limit_concurrency=settings.limit_concurrency,
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread, scripted))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        return ThreadServer(url, app, scripted)

    yield start
    for server, thread, scripted in running:
        for s in scripted:
            s.gate.set()
        server.should_exit = True
        thread.join(30)


@dataclass
class ProcessServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def process_server(minilm_model_dir: Path, tmp_path: Path) -> Iterator[Callable[..., ProcessServer]]:
    """``python -m server`` as a subprocess (real signals, real memory), on the MiniLM model."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ProcessServer:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        cmd = [sys.executable, "-m", "server", "--model", str(minilm_model_dir), "--port", str(port), *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc=proc)
        return ProcessServer(url, proc, log)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.fixture(scope="module")
def thread_server_shared(minilm_model_dir: Path) -> Iterator[ThreadServer]:
    """One real-model server shared by a module's tests (keeps parametrised suites fast)."""
    port = free_port()
    app = create_app(Settings(model=minilm_model_dir, variant="fp32", warmup=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    yield ThreadServer(url, app)
    server.should_exit = True
    thread.join(30)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` to hold; polled, and only a hang fails it."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {HANG_GUARD_S:.0f} s")
        await asyncio.sleep(0.01)


@dataclass
class DrainingThread:
    """``DrainingServer`` (the drain logic of ``python -m server``) in a thread, on one scripted
    session whose ``gate`` the test holds and releases."""

    url: str
    server: DrainingServer
    thread: threading.Thread
    state: State
    session: ScriptedSession

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Deliver ``sig`` the way uvicorn's handler does (it installs one only on the main thread)."""
        self.server.handle_exit(sig, None)

    @property
    def admitted(self) -> int:
        """Requests admitted and not yet answered (running, prefetched or queued)."""
        assert self.state.engine is not None
        return self.state.engine.batcher.queued_requests

    def stopped(self) -> bool:
        """Whether the server thread ends (waits up to the hang guard)."""
        self.thread.join(HANG_GUARD_S)
        return not self.thread.is_alive()


@pytest.fixture
def draining_server(minilm_model_dir: Path) -> Iterator[Callable[..., DrainingThread]]:
    """``DrainingServer`` with ``python -m server``'s uvicorn configuration, in a thread, on the
    MiniLM tokenizer and a ScriptedSession (its gate starts held)."""
    running: list[tuple[DrainingServer, threading.Thread, list[ScriptedSession]]] = []

    def start(**overrides: Any) -> DrainingThread:
        port = free_port()
        values: dict[str, Any] = {
            "model": minilm_model_dir,
            "variant": "fp32",
            "host": "127.0.0.1",
            "port": port,
            "warmup": False,
            "log_level": "warning",
        }
        settings = Settings(**{**values, **overrides})
        made: list[ScriptedSession] = []
        app = create_app(settings, scripted_loader(made))
        server = DrainingServer(uvicorn_config(app, settings), app.state.embed)
        thread = threading.Thread(target=server.run, name=f"draining-server-{port}", daemon=True)
        thread.start()
        running.append((server, thread, made))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        (session,) = made
        session.gate.clear()
        return DrainingThread(url, server, thread, app.state.embed, session)

    yield start
    for server, thread, made in running:
        for session in made:
            session.gate.set()
        server.should_exit = True
        thread.join(30)
