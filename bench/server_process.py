"""Servers the bench starts itself: ours (``python -m server``) or a peer, as subprocesses.

A server runs in its own process so the load generator cannot steal its event loop, and
it is stopped with SIGTERM (our server drains; others just exit). Output goes to a log
file in the results directory; when a server dies or does not get ready in time the
error quotes the log's tail.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from bench.client import Endpoint, HttpError, Pool


class ServerError(RuntimeError):
    """A server the bench started exited or never became ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def our_server_argv(
    model: Path, port: int, variant: str, threads: int, extra: Sequence[str] = ()
) -> list[str]:
    """The command line of our server on ``model`` with ``threads`` intra-op threads."""
    return [
        sys.executable,
        "-m",
        "server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--variant",
        variant,
        "--intra-op-threads",
        str(threads),
        "--log-level",
        "warning",
        *extra,
    ]


class ManagedServer:
    """A server subprocess, ready once ``GET ready_path`` answers 200."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log_path: Path,
        ready_path: str = "/health/ready",
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 300.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.endpoint = Endpoint("127.0.0.1", port, "")
        self.log_path = log_path
        self.ready_path = ready_path
        self.env = dict(env) if env is not None else None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> ManagedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )
        started = time.perf_counter()
        asyncio.run(self._wait_ready())
        self.startup_s = time.perf_counter() - started
        return self

    async def _wait_ready(self) -> None:
        deadline = time.perf_counter() + self.startup_timeout
        pool = Pool(self.endpoint, limit=1)
        try:
            while time.perf_counter() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise ServerError(
                        f"{self.name} exited with code {self.process.returncode} while starting; "
                        f"log tail:\n{self.log_tail()}"
                    )
                try:
                    if (await pool.request("GET", self.ready_path)).status == 200:
                        return
                except HttpError:
                    pass
                await asyncio.sleep(0.25)
        finally:
            await pool.close()
        self.stop()
        raise ServerError(
            f"{self.name} was not ready after {self.startup_timeout:.0f}s; log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
