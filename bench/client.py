"""A minimal keep-alive HTTP/1.1 client on asyncio streams, for load generation.

The load generator shares the CPU with the server it measures (2 cores here), so every
microsecond the client spends per request is taken from the server. A general client
(httpx) spends several times more CPU per request than this one, which only does what a
benchmark needs: ``POST``/``GET`` with a ready-made body, ``Content-Length`` or chunked
responses, connection reuse, and a pool with a cap on open connections.

Failures to connect or to read a response raise :class:`HttpError`; HTTP error statuses
are returned, not raised (the load generator counts them).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit


class HttpError(OSError):
    """The connection failed or the server sent something that is not HTTP/1.1."""


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Endpoint:
    """Where a server listens, from a base URL such as ``http://127.0.0.1:8000``."""

    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must look like http://HOST:PORT (plain HTTP), got {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"


class Connection:
    """One HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host.encode()
        self.reusable = True

    @classmethod
    async def open(cls, endpoint: Endpoint) -> Connection:
        try:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, limit=1 << 20)
        except OSError as exc:
            raise HttpError(f"cannot connect to {endpoint.url}: {exc}") from exc
        return cls(reader, writer, f"{endpoint.host}:{endpoint.port}")

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._host]
        if body or method == "POST":
            head.append(b"Content-Type: application/json")
            head.append(b"Content-Length: " + str(len(body)).encode())
        for key, value in (headers or {}).items():
            head.append(f"{key}: {value}".encode())
        self._writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        try:
            await self._writer.drain()
            return await self._read_reply()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.reusable = False
            raise HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    async def _read_reply(self) -> Reply:
        status_line = await self._reader.readuntil(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.1 status line: {status_line[:60]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        elif "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        else:
            body = await self._reader.read()
            self.reusable = False
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        return Reply(status, headers, body)

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self._reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                return b"".join(chunks)
            chunks.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


class Pool:
    """Reusable connections to one endpoint, at most ``limit`` open at once."""

    def __init__(self, endpoint: Endpoint, limit: int = 1024) -> None:
        self.endpoint = endpoint
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self._all: set[Connection] = set()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        """Send one request on an idle or new connection (waiting for a slot at the cap)."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._open()
            try:
                reply = await conn.request(method, self.endpoint.prefix + path, body, headers)
            except HttpError:
                self._all.discard(conn)
                await conn.close()
                raise
            if conn.reusable:
                self._idle.append(conn)
            else:
                self._all.discard(conn)
                await conn.close()
            return reply

    async def _open(self) -> Connection:
        conn = await Connection.open(self.endpoint)
        self._all.add(conn)
        return conn

    async def close(self) -> None:
        for conn in list(self._all):
            await conn.close()
        self._all.clear()
        self._idle.clear()
