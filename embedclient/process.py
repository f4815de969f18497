"""A server as a child process: ``python -m server`` (or a peer's command) on a free port.

:class:`ServerProcess` starts the command with its output in a log file, waits until
``GET /health/ready`` answers 200 (the model is loaded and warm), and stops it with SIGTERM
(our server drains admitted requests, then exits), killing it only if it has not stopped
after ``stop_timeout`` seconds. When the process exits before it is ready, or is not ready
after ``startup_timeout`` seconds (a hang guard, not a measurement), the
:class:`~embedclient.errors.ServerStartError` quotes the log's tail.

:func:`wait_ready` is the same wait for a server someone else started (a thread in a test).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from embedclient.errors import ServerStartError

READY_PATH = "/health/ready"
POLL_S = 0.1
"""Between two readiness probes: a wait for another process, which no event announces."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def server_command(port: int, *args: str, host: str = "127.0.0.1") -> list[str]:
    """``python -m server`` on ``host:port`` with this interpreter, then ``args``."""
    return [sys.executable, "-m", "server", "--host", host, "--port", str(port), *args]


def log_tail(log: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of ``log``."""
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(
    url: str,
    *,
    timeout: float = 300.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    ready_path: str = READY_PATH,
    name: str = "the embedding server",
) -> None:
    """Return once ``GET url + ready_path`` answers 200; :class:`ServerStartError` when
    ``process`` exits first or ``timeout`` seconds pass, with ``log``'s tail if given."""
    deadline = time.monotonic() + timeout

    def tail() -> str:
        return "" if log is None else f"; log tail:\n{log_tail(log)}"

    with httpx.Client(timeout=2.0) as client:
        while True:
            if process is not None and process.poll() is not None:
                command = " ".join(map(str, process.args)) if isinstance(process.args, list) else ""
                raise ServerStartError(
                    f"{name} exited with code {process.returncode} before it was ready ({command}){tail()}"
                )
            try:
                if client.get(url + ready_path).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(f"{name} at {url} was not ready after {timeout:g} s{tail()}")
            time.sleep(POLL_S)


class ServerProcess:
    """A server as a child process on ``port`` (default: a free one); see the module doc.

    The command is ``argv`` when given (a peer's, with the port in it), else
    ``python -m server --host HOST --port PORT`` followed by ``args``. The output goes to
    ``log``, or to a temporary file removed on :meth:`stop`. ``with ServerProcess(...) as
    server:`` starts it and stops it at the end of the block.
    """

    def __init__(
        self,
        *args: str,
        argv: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_path: str = READY_PATH,
        startup_timeout: float = 300.0,
        stop_timeout: float = 30.0,
        name: str = "the embedding server",
    ) -> None:
        if argv is not None and args:
            raise ValueError("give the server's arguments or a whole argv, not both")
        self.args = args
        self.argv = list(argv) if argv is not None else None
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.ready_path = ready_path
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0
        self._temporary_log = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def command(self) -> list[str]:
        return self.argv if self.argv is not None else server_command(self.port, *self.args, host=self.host)

    def start(self) -> Self:
        """Start the process and return once it is ready (module doc)."""
        if self.log is None:
            handle, name = tempfile.mkstemp(prefix="embed-server-", suffix=".log")
            with open(handle, "wb"):
                pass
            self.log, self._temporary_log = Path(name), True
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
            )
        started = time.monotonic()
        try:
            wait_ready(
                self.url,
                timeout=self.startup_timeout,
                process=self.process,
                log=self.log,
                ready_path=self.ready_path,
                name=self.name,
            )
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def log_tail(self, lines: int = 20) -> str:
        return "(no log)" if self.log is None else log_tail(self.log, lines)

    def stop(self) -> None:
        """SIGTERM, wait for the drain, SIGKILL after ``stop_timeout`` seconds; idempotent."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._temporary_log and self.log is not None:
            self.log.unlink(missing_ok=True)
            self.log, self._temporary_log = None, False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
