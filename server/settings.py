"""The one frozen settings object of the server, and its CLI.

Every field has a default and a one-line docstring (the ``--help`` text). Each field
``foo_bar`` is set by the flag ``--foo-bar`` or the environment variable
``EMBED_FOO_BAR``; a flag wins over the environment, the environment over the default.
This module is the only reader of ``os.environ`` in the server.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

Device = Literal["auto", "cpu", "cuda", "tensorrt"]
VariantChoice = Literal["auto", "fp32", "int8", "fp16"]
RuntimeChoice = Literal["auto", "onnxruntime", "openvino"]
LogLevel = Literal["debug", "info", "warning", "error"]
ENV_PREFIX = "EMBED_"
CPU_BATCH_TOKENS = 2048
GPU_BATCH_TOKENS = 8192
log = logging.getLogger("server.settings")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the flag and what is allowed."""


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class Settings:
    """Configuration of one server process (one model, one device)."""

    model: Path = field(
        default=Path("models/all-mpnet-base-v2"),
        metadata=_doc(
            "model directory written by `python -m export` (manifest.json, model*.onnx, tokenizer.json)"
        ),
    )
    host: str = field(default="127.0.0.1", metadata=_doc("address to listen on"))
    port: int = field(default=8000, metadata=_doc("TCP port to listen on"))
    variant: VariantChoice = field(
        default="auto",
        metadata=_doc(
            "model precision: auto picks fp16 on GPU, the best gated batch-invariant variant (int8, "
            "else fp32) on CPU; a variant named here is served even if not batch-invariant (warned)"
        ),
    )
    device: Device = field(
        default="auto",
        metadata=_doc("execution provider: auto (CUDA if present, else CPU), cpu, cuda or tensorrt"),
    )
    runtime: RuntimeChoice = field(
        default="auto",
        metadata=_doc(
            "inference runtime: auto runs the fp32 variant with OpenVINO where it is installed (extra "
            "`openvino`) and the CPU has AVX-512 and AMX (measured faster there, same vectors, "
            "batch-invariant), everything else with ONNX Runtime; openvino on CPU only (its int8 is not "
            "batch-invariant: warned)"
        ),
    )
    gpu_id: int = field(default=0, metadata=_doc("CUDA device ordinal for the cuda and tensorrt devices"))
    intra_op_threads: int = field(
        default=0,
        metadata=_doc("ONNX Runtime threads inside one operator per session; 0 = CPU cores / sessions"),
    )
    inter_op_threads: int = field(default=1, metadata=_doc("ONNX Runtime threads across operators"))
    sessions: int = field(
        default=1,
        metadata=_doc(
            "ONNX Runtime sessions, each owned by one worker thread (more than 1 helps only on many cores)"
        ),
    )
    interactive_sessions: int = field(
        default=1,
        metadata=_doc(
            "extra ONNX Runtime sessions that run only interactive requests, beside the bulk ones, "
            "so a query never waits for a bulk batch (costs one more copy of the weights); 0 = "
            "both classes share the sessions and a query waits for the running batch"
        ),
    )
    bulk_nice: int = field(
        default=10,
        metadata=_doc(
            "how much lower the OS priority (nice) of the threads running bulk batches is, when "
            "interactive sessions exist: a query's threads get the cores first (0-19)"
        ),
    )
    max_batch_tokens: int = field(
        default=0,
        metadata=_doc(
            "token budget of one model batch, padding included (batch size x longest input); 0 = auto: "
            f"{CPU_BATCH_TOKENS} on CPU (throughput peaks at small batches, and a query waits less behind "
            f"one), {GPU_BATCH_TOKENS} on GPU"
        ),
    )
    max_batch_size: int = field(default=64, metadata=_doc("most texts in one model batch"))
    max_client_batch_size: int = field(default=256, metadata=_doc("most texts in one request (413 above)"))
    max_queue_requests: int = field(
        default=1024, metadata=_doc("requests admitted and waiting; more is answered 429 with Retry-After")
    )
    max_queue_tokens: int = field(
        default=262144, metadata=_doc("tokens admitted and waiting; more is answered 429 with Retry-After")
    )
    max_payload_bytes: int = field(
        default=2 * 1024 * 1024, metadata=_doc("largest request body in bytes (413 above)")
    )
    request_timeout: float = field(
        default=30.0,
        metadata=_doc(
            "seconds a request may wait in the queue before a 503; a client lowers it with x-request-timeout"
        ),
    )
    interactive_max_tokens: int = field(
        default=128,
        metadata=_doc(
            "requests that state no priority (?priority= or X-Embed-Priority) are interactive when they "
            "have at most this many tokens in all (a query), else bulk"
        ),
    )
    bulk_share: int = field(
        default=4,
        metadata=_doc(
            "when both classes wait, at least one batch in this many goes to bulk work (no starvation)"
        ),
    )
    api_key: str = field(
        default="",
        repr=False,
        metadata=_doc(
            "API key required as `Authorization: Bearer KEY` on every route but the health checks "
            "(printable ASCII, no spaces); empty = no auth. Prefer EMBED_API_KEY or --api-key-file: "
            "`ps` shows command-line flags to every user"
        ),
    )
    api_key_file: Path | None = field(
        default=None,
        metadata=_doc("file whose first line is the API key; preferred over --api-key, which `ps` shows"),
    )
    bulk_api_key_file: Path | None = field(
        default=None,
        metadata=_doc(
            "file whose first line is a second API key, whose requests are bulk unless they state "
            "otherwise (give it to Elasticsearch's inference endpoints); needs the main key too"
        ),
    )
    public_metrics: bool = field(
        default=False,
        metadata=_doc("serve /metrics without the API key (by default it needs the key when one is set)"),
    )
    drain_timeout: float = field(
        default=20.0, metadata=_doc("seconds to finish admitted requests after SIGTERM before exiting")
    )
    drain_delay: float = field(
        default=0.0,
        metadata=_doc(
            "seconds between SIGTERM (readiness goes 503) and closing the listener, for load balancers"
        ),
    )
    trt_cache_dir: Path = field(
        default=Path("build/trt-cache"),
        metadata=_doc("TensorRT engine and timing cache directory (a volume in containers)"),
    )
    served_model_name: str = field(
        default="",
        metadata=_doc("model name reported by /info and /v1/embeddings; default: the manifest's name"),
    )
    strict_model: bool = field(
        default=False,
        metadata=_doc("reject /v1/embeddings requests whose `model` is not the served model name"),
    )
    warmup: bool = field(default=True, metadata=_doc("run warm-up batches before reporting ready"))
    log_level: LogLevel = field(default="info", metadata=_doc("log level"))
    timeout_keep_alive: int = field(default=30, metadata=_doc("seconds an idle keep-alive connection stays"))
    limit_concurrency: int = field(
        default=2048,
        metadata=_doc(
            "most requests in progress at once (body being read, queued or running); more get 503 with "
            "Retry-After; health checks and /metrics are never refused; idle connections do not count"
        ),
    )
    max_body_bytes_in_flight: int = field(
        default=64 * 1024 * 1024,
        metadata=_doc(
            "request body bytes held at once (each request reserves its Content-Length until answered); "
            "more get 503 with Retry-After: the bound on request memory (docs/RELIABILITY.md)"
        ),
    )
    max_connections: int = field(
        default=4096,
        metadata=_doc(
            "most open connections; past it the connection idle the longest is closed (kept below the "
            "process's open-file limit)"
        ),
    )
    header_timeout: float = field(
        default=5.0,
        metadata=_doc("seconds a connection has to deliver a complete request head (408 and closed after)"),
    )
    body_timeout: float = field(
        default=30.0,
        metadata=_doc("seconds a client has to deliver a request body once its head arrived (408)"),
    )

    def __post_init__(self) -> None:
        positive = (
            "port",
            "sessions",
            "max_batch_size",
            "max_client_batch_size",
            "max_queue_requests",
            "max_queue_tokens",
            "max_payload_bytes",
            "bulk_share",
            "inter_op_threads",
            "limit_concurrency",
            "max_connections",
            "max_body_bytes_in_flight",
            "timeout_keep_alive",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"--{_flag(name)} must be a positive number, got {getattr(self, name)}")
        if self.max_batch_tokens < 0:
            raise SettingsError("--max-batch-tokens must be 0 (automatic) or positive")
        if self.intra_op_threads < 0:
            raise SettingsError("--intra-op-threads must be 0 (automatic) or positive")
        if self.bulk_share < 2:
            raise SettingsError(
                f"--bulk-share must be at least 2 (one batch in N goes to bulk; 1 would starve queries), "
                f"got {self.bulk_share}"
            )
        if self.interactive_sessions < 0:
            raise SettingsError("--interactive-sessions must be 0 (none) or positive")
        if not 0 <= self.bulk_nice <= 19:
            raise SettingsError(f"--bulk-nice must be between 0 and 19, got {self.bulk_nice}")
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise SettingsError("--header-timeout and --body-timeout must be positive seconds")
        if self.request_timeout <= 0 or self.drain_timeout < 0 or self.drain_delay < 0:
            raise SettingsError("--request-timeout must be positive; --drain-timeout and --drain-delay >= 0")
        if self.port > 65535:
            raise SettingsError(f"--port must be at most 65535, got {self.port}")
        if self.api_key:
            _check_key(self.api_key, "--api-key")

    @property
    def resolved_api_key(self) -> str:
        """The key from ``api_key`` or, if empty, the first line of ``api_key_file``.

        A key file whose first line is blank is an error, not "no auth".
        """
        if self.api_key or self.api_key_file is None:
            return self.api_key
        return _read_key(self.api_key_file, "--api-key-file")

    @property
    def resolved_bulk_api_key(self) -> str:
        """The first line of ``bulk_api_key_file``, or empty; a SettingsError without a main
        key or when it equals the main key."""
        if self.bulk_api_key_file is None:
            return ""
        key = _read_key(self.bulk_api_key_file, "--bulk-api-key-file")
        main = self.resolved_api_key
        if not main:
            raise SettingsError(
                "--bulk-api-key-file needs the main key too (--api-key-file or EMBED_API_KEY)"
            )
        if key == main:
            raise SettingsError("--bulk-api-key-file holds the main API key; give it a key of its own")
        return key

    def threads_per_session(self, cpu_count: int) -> int:
        """Intra-op threads for each session: the setting, or the cores split across sessions."""
        if self.intra_op_threads:
            return self.intra_op_threads
        return max(1, cpu_count // self.sessions)

    def batch_tokens(self, on_gpu: bool) -> int:
        """The batch token budget: the setting, or the device's automatic one."""
        if self.max_batch_tokens:
            return self.max_batch_tokens
        return GPU_BATCH_TOKENS if on_gpu else CPU_BATCH_TOKENS


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _read_key(path: Path, flag: str) -> str:
    """The checked key on the first line of ``path``; a blank first line is an error."""
    where = f"{flag} {path}"
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise SettingsError(f"{where} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{where} cannot be read: it is not UTF-8 text") from exc
    key = lines[0].strip() if lines else ""
    if not key:
        raise SettingsError(
            f"{where}: the first line is blank; write the key there "
            "(leave both --api-key and --api-key-file unset to run without authentication)"
        )
    return _check_key(key, where)


def _check_key(key: str, where: str) -> str:
    """``key`` if a client can send it in an ``Authorization`` header, else a SettingsError.

    Header values are ASCII in practice (latin-1 at most), and the server strips the token,
    so a key with non-ASCII characters, whitespace or control characters could never match.
    The message never repeats the key.
    """
    bad = next((char for char in key if not "!" <= char <= "~"), None)
    if bad is None:
        return key
    if bad.isspace():
        what = "whitespace"
    elif bad.isascii():
        what = "a control character"
    else:
        what = "a non-ASCII character"
    raise SettingsError(
        f"{where}: the API key contains {what}; use printable ASCII without spaces "
        "(for example the output of `openssl rand -hex 32`)"
    )


def _convert(name: str, raw: str, kind: Any) -> Any:
    """Turn a flag or environment string into the field's type, with a clear error."""
    origin = get_origin(kind)
    if origin is Literal:
        allowed = get_args(kind)
        if raw not in allowed:
            raise SettingsError(f"--{_flag(name)} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise SettingsError(f"--{_flag(name)} must be true or false, got {raw!r}")
    if kind is Path or (origin is not None and Path in get_args(kind)):
        return Path(raw) if raw else None
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
    except ValueError as exc:
        raise SettingsError(f"--{_flag(name)} must be a number, got {raw!r}") from exc
    return raw


def parser() -> argparse.ArgumentParser:
    """The CLI, generated from the fields so help text and env vars cannot drift."""
    p = argparse.ArgumentParser(
        prog="python -m server",
        description="Serve an exported embedding model over HTTP (TEI /embed, OpenAI /v1/embeddings). "
        f"Every flag can also be set as an environment variable {ENV_PREFIX}<FLAG>.",
    )
    hints = get_type_hints(Settings)
    for f in fields(Settings):
        kind = hints[f.name]
        default = f.default if f.default is not MISSING else None
        env = ENV_PREFIX + f.name.upper()
        shown = "(set)" if f.name == "api_key" else default
        help_text = f"{f.metadata['doc']} [env {env}; default {shown}]"
        if kind is bool:
            p.add_argument(
                f"--{_flag(f.name)}",
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            choices = get_args(kind) if get_origin(kind) is Literal else None
            p.add_argument(
                f"--{_flag(f.name)}",
                dest=f.name,
                default=None,
                choices=choices,
                metavar=f.name.upper(),
                help=help_text,
            )
    return p


def from_sources(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from CLI arguments over ``EMBED_*`` variables over defaults."""
    env = os.environ if env is None else env
    args = vars(parser().parse_args(argv))
    if args.get("api_key"):
        log.warning(
            "--api-key on the command line is visible to every user in `ps` and in shell history; "
            "prefer EMBED_API_KEY or --api-key-file"
        )
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        given = args.get(f.name)
        if given is not None:
            values[f.name] = given if isinstance(given, bool) else _convert(f.name, given, hints[f.name])
        elif (raw := env.get(ENV_PREFIX + f.name.upper())) is not None:
            values[f.name] = _convert(f.name, raw, hints[f.name])
    return Settings(**values)
