"""Draining with keep-alive clients: a request that reaches a draining server gets an answer
(503 + Retry-After + ``Connection: close``), never a reset.

Each client holds an idle keep-alive connection made before SIGTERM, then sends on it,
as Elasticsearch's pooled HTTP client does. Reads are hang-guarded only.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest

GUARD = 30.0
BODY = orjson.dumps({"inputs": "a keep-alive request"})
HEAD = "POST /embed HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
REQUEST = f"{HEAD}content-length: {len(BODY)}\r\n\r\n".encode() + BODY


def response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP response's head and body (content-length framed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head.lower(), body


def kept_alive(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
        sock.sendall(REQUEST)
        head, _ = response(sock)
        assert head.startswith(b"http/1.1 200") and b"connection: close" not in head
        socks.append(sock)
    return socks


def wait_for_log(log: Path, needle: str) -> None:
    deadline = time.monotonic() + GUARD
    while needle not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no {needle!r} in the server log"
        time.sleep(0.01)


def assert_answered_and_closed(sock: socket.socket) -> None:
    head, body = response(sock)
    assert head.startswith(b"http/1.1 503"), head
    assert b"retry-after: " in head and b"connection: close" in head
    assert orjson.loads(body)["error_type"] == "Unhealthy"
    assert sock.recv(65536) == b"", "the server must close the connection after the answer"


@pytest.mark.slow
def test_idle_keep_alive_connections_get_503_and_close_during_the_drain_delay(process_server) -> None:
    server = process_server("--drain-delay", "60", "--drain-timeout", "5")
    port = int(server.url.rsplit(":", 1)[1])
    socks = kept_alive(port, 4)
    try:
        server.terminate()
        wait_for_log(server.log, "draining")
        for sock in socks:
            sock.sendall(REQUEST)
            assert_answered_and_closed(sock)
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.slow
def test_without_a_drain_delay_idle_keep_alive_connections_are_answered_not_reset(process_server) -> None:
    server = process_server("--drain-timeout", "5")
    port = int(server.url.rsplit(":", 1)[1])
    socks = kept_alive(port, 4)
    try:
        server.terminate()
        wait_for_log(server.log, "draining")
        for sock in socks:
            sock.sendall(REQUEST)
        for sock in socks:
            assert_answered_and_closed(sock)
        assert server.proc.wait(GUARD) == 0
    finally:
        for sock in socks:
            sock.close()
