"""Every error the client raises, and the one parser of our two error envelopes.

::

    ClientError                  a call to the server failed; ``url`` is what was asked
    ├── ApiError                 the server answered an error status: ``status``, ``type``, ``message``
    ├── TransportError           no answer after the retries: refused, reset, closed, timed out
    └── NotOurServer             something answered, but not our API (Elasticsearch, a page, a wrong shape)

    ServerStartError             a server process exited, or was not ready in time (quotes its log)

Both API families' envelopes become one :class:`ApiError`: TEI's ``{"error": "...",
"error_type": "Overloaded"}`` (``/embed``, ``/tokenize``) and OpenAI's ``{"error": {"message":
..., "type": "rate_limit_error", ...}}`` (``/v1/...``). A body in neither shape (a proxy's page)
gives its first 300 characters as the message and no type.
"""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """A call to the embedding server failed; ``url`` is the URL it asked."""

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url


class ApiError(ClientError):
    """The server answered ``status`` (not 2xx) with its envelope's ``type`` and ``message``.

    ``retry_after`` is its ``Retry-After`` in seconds, when it sent one (429, 503).
    """

    def __init__(
        self,
        url: str,
        status: int,
        message: str,
        type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        kind = f" ({type})" if type else ""
        super().__init__(f"{url} answered {status}{kind}: {message}", url)
        self.status = status
        self.message = message
        self.type = type
        self.retry_after = retry_after

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        """The error ``response`` carries, from either envelope (module doc)."""
        message, kind = envelope(response)
        return cls(
            f"{response.request.method} {response.request.url}",
            response.status_code,
            message,
            kind,
            retry_after(response.headers),
        )


class TransportError(ClientError):
    """No answer: the connection was refused or reset, closed mid-response, or timed out.

    ``timeout`` tells a timeout from the rest; the httpx exception is the ``__cause__``.
    """

    def __init__(self, message: str, url: str, timeout: bool) -> None:
        super().__init__(message, url)
        self.timeout = timeout


class NotOurServer(ClientError):
    """The URL answered, but not as our embedding server does; ``status`` is what it answered."""

    def __init__(self, message: str, url: str, status: int | None = None) -> None:
        super().__init__(message, url)
        self.status = status


class ServerStartError(RuntimeError):
    """A server process exited before it was ready, or was not ready in time; the message
    quotes the tail of its log."""


def envelope(response: httpx.Response) -> tuple[str, str | None]:
    """(message, type) of an error body in TEI's or OpenAI's envelope, else its text."""
    try:
        body: Any = response.json()
    except ValueError:
        return _text(response), None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        kind = body.get("error_type")
        return error, str(kind) if kind is not None else None
    if isinstance(error, dict) and "message" in error:
        kind = error.get("type")
        return str(error["message"]), str(kind) if kind is not None else None
    return _text(response), None


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, if it gives a number (our server, ES and
    TEI send seconds; an HTTP date is ignored and the backoff applies)."""
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except ValueError:
        return None


def _text(response: httpx.Response) -> str:
    return " ".join(response.text.split())[:300] or response.reason_phrase
