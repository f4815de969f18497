"""HTTP/1.1 connection hygiene on top of uvicorn's httptools protocol.

uvicorn bounds neither how long a client may take to deliver a request head nor how large
the head may grow (httptools ignores ``h11_max_incomplete_event_size``), and its
``limit_concurrency`` counts idle connections: ~2,000 silent sockets made every route,
liveness included, answer a plain-text 503. :func:`protocol_class` returns a protocol that:

- closes a connection that has not delivered a complete request head within
  ``header_timeout`` seconds of connecting, or of its first byte after a keep-alive pause
  (slowloris; the keep-alive idle timeout still governs the pause itself);
- answers 431 and closes when a head exceeds :data:`MAX_HEADER_BYTES` or :data:`MAX_HEADERS`;
- holds at most ``max_connections`` connections: a new one past that evicts the connection
  idle the longest (no request running), and is refused only when every one is busy;
- on shutdown, lets an idle keep-alive connection linger :data:`DRAIN_LINGER` seconds so a
  request already on its way gets a response with ``Connection: close`` (503 from a draining
  app) rather than a reset; every request that starts after shutdown began closes its
  connection after the response.

How many requests run at once is the app's concern (:class:`server.app.RequestContext`),
not the protocol's, so idle sockets never count against it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("server.protocol")

MAX_HEADER_BYTES = 64 * 1024
"""Request line plus headers, in bytes; more is answered 431."""
MAX_HEADERS = 100
"""Header fields in one request; more is answered 431."""
DRAIN_LINGER = 2.0
"""Seconds an idle keep-alive connection stays open once shutdown begins."""


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection bounds (from Settings)."""

    header_timeout: float
    max_connections: int


def _canned(status: int, reason: str, message: str, error_type: str, retry_after: int | None) -> bytes:
    body = orjson.dumps({"error": message, "error_type": error_type})
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


HEADERS_TOO_LARGE = _canned(
    431,
    "Request Header Fields Too Large",
    f"the request head is larger than {MAX_HEADER_BYTES} bytes or has more than {MAX_HEADERS} "
    "header fields; send fewer or shorter headers",
    "Validation",
    None,
)
HEAD_TIMEOUT = _canned(
    408, "Request Timeout", "the request head did not arrive in time; send it at once", "Validation", None
)
TOO_MANY_CONNECTIONS = _canned(
    503,
    "Service Unavailable",
    "too many connections are busy; retry shortly",
    "Overloaded",
    1,
)


class HardenedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head deadlines, head limits, a connection cap and
    a lingering drain. Configure it through :func:`protocol_class`."""

    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._head_bytes = 0
        """Bytes received since the current head began (body bytes of the same read included)."""
        self._header_count = 0
        self._head_size = 0
        """Bytes of the request line and headers, as parsed."""
        self._refused = False
        self._shutting_down = False
        self._idle_since = time.monotonic()

    # ---- lifecycle ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            if self._head_timer is None:
                self._arm_head_timer()
            self._head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and self._head_bytes > MAX_HEADER_BYTES and not self._refused:
            self._refuse(HEADERS_TOO_LARGE)

    def shutdown(self) -> None:
        self._shutting_down = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
            return
        self.loop.call_later(DRAIN_LINGER, self._close_when_idle)

    def _close_when_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            if not self.transport.is_closing():
                self.transport.close()
        else:
            self.cycle.keep_alive = False

    # ---- parser callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self._awaiting_head = True
        self._header_count = 0
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        if self._header_count <= MAX_HEADERS:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._cancel_head_timer()
        if self._header_count > MAX_HEADERS or self._head_size > MAX_HEADER_BYTES:
            self._refuse(HEADERS_TOO_LARGE)
            return
        self._awaiting_head = False
        self._head_bytes = 0
        super().on_headers_complete()
        if self._shutting_down:
            self.cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._awaiting_head = True
        self._head_bytes = 0

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        super().on_response_complete()

    # ---- helpers --------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._busy():
            # A pipelined head behind a running request: its deadline starts after that one.
            self._arm_head_timer()
            return
        if self._awaiting_head and not self.transport.is_closing():
            log.debug(
                "closing %s: no complete request head in %.1fs", self.client, self.limits.header_timeout
            )
            self._refuse(HEAD_TIMEOUT if self._head_bytes else b"")

    def _refuse(self, response: bytes) -> None:
        """Close the connection, first sending ``response`` if any. After a response the close
        lingers: the write side shuts and what the client still sends is read and dropped for
        :data:`DRAIN_LINGER` seconds, so the client reads the answer instead of a reset."""
        self._refused = True
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        if response and self.transport.can_write_eof():
            self.transport.write(response)
            self.transport.write_eof()
            self.loop.call_later(DRAIN_LINGER, self.transport.close)
            return
        if response:
            self.transport.write(response)
        self.transport.close()

    def _busy(self) -> bool:
        """A request is being answered on this connection (not merely a head arriving)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _make_room(self) -> None:
        """Evict the connection idle the longest; refuse this one if all are busy."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, HardenedProtocol) and c is not self and not c._busy() and not c._refused
        ]
        if not idle:
            log.warning(
                "connection limit of %d reached with every connection busy", self.limits.max_connections
            )
            self._refuse(TOO_MANY_CONNECTIONS)
            return
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest._refuse(b"")


def protocol_class(limits: ConnectionLimits) -> type[HardenedProtocol]:
    """A :class:`HardenedProtocol` subclass bound to ``limits``, for ``uvicorn.Config(http=...)``."""
    return type("BoundHardenedProtocol", (HardenedProtocol,), {"limits": limits})
