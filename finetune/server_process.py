"""Run ``python -m server`` on an exported model directory for the length of an evaluation.

The server starts as a child process on a free local port; :class:`ServerProcess` waits until
``GET /health/ready`` answers 200 (the model is loaded and warm), hands out the base URL, and
on exit sends SIGTERM and waits for the drain, killing it only if it does not stop. The
child's output goes to a log file whose tail is quoted if it fails to start.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from finetune.errors import RunError, UsageError

POLL_SECONDS = 0.25
STOP_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``with ServerProcess(model_dir, "int8") as url:`` serves ``model_dir`` until the block ends."""

    def __init__(
        self,
        model_dir: Path,
        variant: str,
        startup_timeout: float = 300.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if not (model_dir / "manifest.json").is_file():
            raise UsageError(
                f"--onnx-dir {model_dir} has no manifest.json; export a checkpoint first "
                "(python -m export CHECKPOINT_DIR OUT_DIR --variants fp32,int8)"
            )
        self.model_dir = model_dir
        self.variant = variant
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "server", "--model", str(self.model_dir), "--variant", self.variant,
            "--host", "127.0.0.1", "--port", str(self.port), *self.extra_args,
        ]  # fmt: skip

    def _log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> str:
        fd, name = tempfile.mkstemp(prefix="finetune-server-", suffix=".log")
        self.log_path = Path(name)
        with open(fd, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(self.process)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.url

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=5.0) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise RunError(
                        f"the server exited with code {process.returncode} before it was ready "
                        f"({' '.join(self.command())}):\n{self._log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/health/ready").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(POLL_SECONDS)
        raise RunError(f"the server was not ready within {self.startup_timeout:.0f} s:\n{self._log_tail()}")

    def stop(self) -> None:
        """SIGTERM, wait for the drain, then SIGKILL if it is still running."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None
