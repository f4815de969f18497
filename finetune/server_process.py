"""Run ``python -m server`` on an exported model directory for the length of an evaluation.

``with ServerProcess(model_dir, "int8") as url:`` starts the server with
:class:`embedclient.ServerProcess` (a free local port, ready once ``GET /health/ready``
answers 200, SIGTERM and the drain at the end, the log's tail quoted if it fails to start)
and hands out its base URL.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import embedclient
from embedclient import ServerStartError, free_port, server_command
from finetune.errors import RunError, UsageError


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
        self.server: embedclient.ServerProcess | None = None

    def command(self) -> list[str]:
        return server_command(
            self.port, "--model", str(self.model_dir), "--variant", self.variant, *self.extra_args
        )

    def __enter__(self) -> str:
        self.server = embedclient.ServerProcess(
            argv=self.command(), port=self.port, startup_timeout=self.startup_timeout, name="the server"
        )
        try:
            self.server.start()
        except ServerStartError as exc:
            raise RunError(str(exc)) from exc
        return self.url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.server is not None:
            self.server.stop()
