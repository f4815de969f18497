"""``python -m server``: parse settings, check the model directory, serve with uvicorn.

Exit codes: 0 after a clean shutdown, 2 for bad flags or an unusable model directory,
1 when the server fails at run time.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from server import routes
from server.app import create_app
from server.errors import Draining, StartupError
from server.protocol import ConnectionLimits, protocol_class
from server.settings import Settings, SettingsError, from_sources

log = logging.getLogger("server")


class DrainingServer(uvicorn.Server):
    """uvicorn, but SIGTERM first flips readiness to 503 and refuses new work, then (after
    ``drain_delay``) closes the listener and waits up to ``drain_timeout`` for admitted
    requests, which all complete."""

    def __init__(self, config: uvicorn.Config, state: routes.State) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self.state.draining = True
        delay = self.state.settings.drain_delay
        log.info("signal %s: draining (readiness 503), closing the listener in %.1fs", sig, delay)
        if delay > 0:
            timer = threading.Timer(delay, super().handle_exit, args=(sig, frame))
            timer.daemon = True
            timer.start()
        else:
            super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Requests still queued a second before the grace period ends get a retryable 503
        # rather than being cut off when uvicorn cancels them.
        grace = max(0.0, self.state.settings.drain_timeout - 1.0)
        timer = asyncio.get_running_loop().call_later(grace, self._abandon_queued)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()
        # uvicorn re-raises the captured signal after shutdown; a completed drain is a clean exit (0).
        self._captured_signals.clear()

    def _abandon_queued(self) -> None:
        error = Draining(
            "the server shut down before this request ran; retry on another replica", retry_after=1
        )
        count = self.state.engine.abandon_queued(error)
        log.warning("drain grace period ending: %d queued request(s) answered 503", count)


# File descriptors kept free of client connections: model files, logs, the listener, pipes.
_RESERVED_FDS = 64


def connection_cap(requested: int) -> int:
    """``requested`` connections, lowered to what the open-file limit allows (raised to the hard
    limit first): past the limit ``accept`` fails and even liveness probes cannot connect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = requested + _RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested
    cap = max(1, min(requested, soft - _RESERVED_FDS))
    if cap < requested:
        log.warning("open-file limit %d: serving at most %d connections (not %d)", soft, cap, requested)
    return cap


def uvicorn_config(app: ASGIApp, settings: Settings) -> uvicorn.Config:
    """The one uvicorn configuration, for ``python -m server`` and the tests' live servers.

    uvicorn's own concurrency limit is off: it counts idle connections and answers plain
    text. The app limits requests in flight; :mod:`server.protocol` bounds connections.
    """
    limits = ConnectionLimits(
        header_timeout=settings.header_timeout, max_connections=connection_cap(settings.max_connections)
    )
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(limits),
        log_level=settings.log_level,
        access_log=False,
        timeout_keep_alive=settings.timeout_keep_alive,
        limit_concurrency=None,
        timeout_graceful_shutdown=int(max(1, settings.drain_timeout)),
        server_header=False,
    )


def serve(settings: Settings) -> int:
    """Load and warm the model, then serve until told to stop; returns the exit code.

    The model loads before the socket opens, so a model that cannot be served is a clean
    error and exit code 2, and nothing listens until the server can answer.
    """
    try:
        app = create_app(settings)
    except StartupError as exc:
        print(f"error: cannot serve {settings.model}: {exc}", file=sys.stderr)
        return 2
    server = DrainingServer(uvicorn_config(app, settings), app.state.embed)
    server.run()
    return 0 if server.started else 1


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = from_sources(argv)
        settings.resolved_api_key  # noqa: B018 - fail early on an unreadable key file
        settings.resolved_bulk_api_key  # noqa: B018
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
