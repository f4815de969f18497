"""Servers the bench starts itself: ours (``python -m server``) or a peer, as subprocesses.

A server runs in its own process so the load generator cannot steal its event loop. Starting,
waiting for readiness and stopping with SIGTERM (our server drains; others just exit) are
:class:`embedclient.ServerProcess`'s; this module adds the bench's command line for our
server and the :class:`~bench.client.Endpoint` its load generator aims at. Output goes to a
log file in the results directory, whose tail the error quotes when a server dies or does
not get ready in time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.client import Endpoint
from embedclient import ServerProcess, free_port, server_command
from embedclient import ServerStartError as ServerError

__all__ = ["ManagedServer", "ServerError", "free_port", "our_server_argv"]


def our_server_argv(
    model: Path, port: int, variant: str, threads: int, extra: Sequence[str] = ()
) -> list[str]:
    """The command line of our server on ``model`` with ``threads`` intra-op threads."""
    return server_command(
        port,
        "--model", str(model), "--variant", variant, "--intra-op-threads", str(threads),
        "--log-level", "warning", *extra,
    )  # fmt: skip


class ManagedServer(ServerProcess):
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
        super().__init__(
            argv=argv,
            port=port,
            log=log_path,
            env=env,
            ready_path=ready_path,
            startup_timeout=startup_timeout,
            name=name,
        )
        self.endpoint = Endpoint(self.host, port, "")
