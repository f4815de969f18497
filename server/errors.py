"""The server's error hierarchy and its one status table.

::

    EmbedError                    (status, error_type)
    ├── ValidationError           422 Validation      bad JSON, types, empty input, bad dimensions
    ├── PayloadTooLarge           413 Validation      too many inputs, body too big, text too long
    ├── UnsupportedMediaType      415 Validation      a JSON route's body is not declared application/json
    ├── BodyTimeout               408 Validation      the body did not arrive within body_timeout
    ├── Unauthorized              401 Unauthorized    missing or wrong API key
    ├── NotFound                  404 NotFound        unknown route
    ├── MethodNotAllowed          405 Validation      known route, wrong method (Allow header)
    ├── Overloaded                429 Overloaded      queue full (Retry-After)
    │   └── TokenizerBusy         429 Overloaded      tokenizer backlog full (Retry-After)
    ├── DeadlineExceeded          503 Overloaded      request waited past its deadline (Retry-After)
    ├── Saturated                 503 Overloaded      too many requests in progress (Retry-After)
    ├── Unavailable               503 Unhealthy       not ready yet, or closing
    │   └── Draining              503 Unhealthy       draining for shutdown (Retry-After)
    ├── ClientGone                499 ClientClosed    the client went away first (nobody reads it)
    └── InferenceFailed           500 Backend         the model run failed; only that batch fails

:class:`StartupError` is apart from the tree: a model directory, tokenizer or execution
provider that cannot be used; the process reports it and exits instead of serving.

Handlers raise these; one exception handler renders them in the envelope of the route's
API family (:func:`tei_body` for ``/embed``, :func:`openai_body` for ``/v1/...``).
Errors from onnxruntime and tokenizers are translated into these where they are called.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EmbedError(Exception):
    """Base of every error the server answers with; carries its HTTP status."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "Backend"
    openai_type: ClassVar[str] = "server_error"
    reason: ClassVar[str | None] = None
    """The ``embed_rejected`` label this refusal is counted under (app.py counts it, once);
    None for answers that are not refusals (404, 405, 499, 500, a loading server)."""

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}


class ValidationError(EmbedError):
    status = 422
    error_type = "Validation"
    openai_type = "invalid_request_error"
    reason = "validation"


class PayloadTooLarge(EmbedError):
    status = 413
    error_type = "Validation"
    openai_type = "invalid_request_error"
    reason = "payload"


class UnsupportedMediaType(EmbedError):
    status = 415
    error_type = "Validation"
    openai_type = "invalid_request_error"
    reason = "media_type"


class BodyTimeout(EmbedError):
    status = 408
    error_type = "Validation"
    openai_type = "invalid_request_error"
    reason = "timeout"


class Unauthorized(EmbedError):
    status = 401
    error_type = "Unauthorized"
    openai_type = "authentication_error"
    reason = "unauthorized"


class NotFound(EmbedError):
    status = 404
    error_type = "NotFound"
    openai_type = "invalid_request_error"


class MethodNotAllowed(EmbedError):
    status = 405
    error_type = "Validation"
    openai_type = "invalid_request_error"

    def __init__(self, message: str, *, allow: str) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"allow": self.allow}


class Overloaded(EmbedError):
    status = 429
    error_type = "Overloaded"
    openai_type = "rate_limit_error"
    reason = "queue_full"


class TokenizerBusy(Overloaded):
    reason = "tokenizer_busy"


class DeadlineExceeded(EmbedError):
    status = 503
    error_type = "Overloaded"
    openai_type = "server_error"
    reason = "deadline"


class Saturated(EmbedError):
    status = 503
    error_type = "Overloaded"
    openai_type = "server_error"
    reason = "concurrency"


class ClientGone(EmbedError):
    """The client disconnected before its answer; a client event, never counted as a 5xx."""

    status = 499
    error_type = "ClientClosed"
    openai_type = "invalid_request_error"


class Unavailable(EmbedError):
    status = 503
    error_type = "Unhealthy"
    openai_type = "server_error"


class Draining(Unavailable):
    reason = "draining"


class InferenceFailed(EmbedError):
    status = 500
    error_type = "Backend"
    openai_type = "server_error"


def tei_body(error: EmbedError) -> dict[str, Any]:
    """TEI's envelope, which ES's ``hugging_face`` service parses."""
    return {"error": error.message, "error_type": error.error_type}


def openai_body(error: EmbedError) -> dict[str, Any]:
    """OpenAI's envelope, which the ``openai`` SDK and ES's ``openai`` service parse."""
    return {
        "error": {
            "message": error.message,
            "type": error.openai_type,
            "param": error.param,
            "code": error.error_type.lower(),
        }
    }


class StartupError(RuntimeError):
    """The server cannot start serving; the message says what is wrong and how to fix it."""
