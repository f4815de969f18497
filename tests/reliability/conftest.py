"""Live servers for the reliability suite: uvicorn on a loopback socket, in a thread or a process.

The limits in here (``wait_ready``'s, the joins') are hang guards: a test never checks how
long something took, only what it ended with.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import embedclient
from embedclient import ServerProcess, free_port
from server.__main__ import DrainingServer, uvicorn_config
from server.app import create_app
from server.routes import State
from server.settings import Settings
from tests.doubles import ScriptedSession, scripted_loader

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 60.0
"""How long a test waits for something that must happen before it calls it a hang."""


def wait_ready(url: str, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``url`` is ready (:func:`embedclient.wait_ready`); a hang guard, as every limit here."""
    embedclient.wait_ready(url, timeout=timeout, process=proc)


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
        values: dict[str, Any] = {
            "model": minilm_model_dir,
            "variant": "fp32",
            "port": port,
            "warmup": False,
            "log_level": "warning",
        }
        settings = Settings(**{**values, **overrides})
        scripted: list[ScriptedSession] = []
        app = create_app(settings, scripted_loader(scripted)) if fake else create_app(settings)
        server = uvicorn.Server(uvicorn_config(app, settings))
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
        server = ServerProcess(
            "--model", str(minilm_model_dir), *args,
            port=port, log=log, cwd=ROOT, env={**os.environ, **(env or {})}, startup_timeout=120.0,
        )  # fmt: skip
        server.start()
        assert server.process is not None
        procs.append(server.process)
        return ProcessServer(server.url, server.process, log)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


@pytest.fixture(scope="module")
def thread_server_shared(minilm_model_dir: Path) -> Iterator[ThreadServer]:
    """One real-model server shared by a module's tests (keeps parametrised suites fast)."""
    port = free_port()
    settings = Settings(model=minilm_model_dir, variant="fp32", warmup=False, port=port, log_level="warning")
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings))
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
        return self.state.engine.queued_requests

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
