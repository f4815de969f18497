"""The one frozen settings object of ``python -m rag``, and the flags that set it.

Every field has a default and a one-line docstring (the ``--help`` text) and is set by the
flag ``--foo-bar`` or by its environment variable (the table below); a flag wins over the
environment, the environment over the default. This module is the only reader of
``os.environ`` in ``rag``.

The environment variables follow the deployment's names: ``ES_URL``, ``ES_API_KEY``,
``EMBED_URL``, ``EMBED_API_KEY`` (the same key the server reads), ``CHAT_BASE_URL``,
``CHAT_MODEL`` and ``DASHSCOPE_API_KEY`` (Bailian) or ``OPENAI_API_KEY`` for the chat key;
the tuning knobs use a ``RAG_`` prefix.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

from rag.errors import ConfigError

BAILIAN_BASE_URL = "https://dashscope.aliyuncs.com/compatible-mode/v1"

EsCompat = Literal["auto", "8", "9"]
InferenceService = Literal["hugging_face", "openai"]
RrfMode = Literal["auto", "server", "client"]


def _opt(doc: str, env: str | tuple[str, ...], secret: bool = False) -> dict[str, Any]:
    names = (env,) if isinstance(env, str) else env
    return {"doc": doc, "env": names, "secret": secret}


@dataclass(frozen=True)
class Settings:
    """Where Elasticsearch, the embedding server and the chat model are, and how to use them."""

    es_url: str = field(
        default="http://localhost:9200", metadata=_opt("Elasticsearch URL (https://... for TLS)", "ES_URL")
    )
    es_api_key: str | None = field(
        default=None, metadata=_opt("Elasticsearch API key (base64 'id:key' form)", "ES_API_KEY", True)
    )
    es_compat: EsCompat = field(
        default="auto",
        metadata=_opt(
            "REST compatibility major sent to Elasticsearch: auto asks the cluster its version; "
            "8 lets a 9.x client talk to an 8.x cluster",
            "ES_COMPAT",
        ),
    )
    es_ca_certs: str | None = field(
        default=None, metadata=_opt("CA bundle that signed the cluster's certificate", "ES_CA_CERTS")
    )
    es_verify_certs: bool = field(
        default=True, metadata=_opt("verify the cluster's TLS certificate", "ES_VERIFY_CERTS")
    )
    es_timeout: float = field(
        default=60.0, metadata=_opt("seconds to wait for one Elasticsearch request", "ES_TIMEOUT")
    )
    index: str = field(default="rag-kb", metadata=_opt("Elasticsearch index of the chunks", "RAG_INDEX"))
    pipeline: str = field(
        default="rag-embed", metadata=_opt("ingest pipeline that splits and embeds `content`", "RAG_PIPELINE")
    )
    inference_id: str = field(
        default="rag-embedder",
        metadata=_opt(
            "id of the Elasticsearch _inference endpoint that calls the server", "RAG_INFERENCE_ID"
        ),
    )
    inference_service: InferenceService = field(
        default="hugging_face",
        metadata=_opt(
            "service of the _inference endpoint: hugging_face (our /embed) or openai (our /v1/embeddings)",
            "RAG_INFERENCE_SERVICE",
        ),
    )
    embed_url: str = field(
        default="http://127.0.0.1:8000", metadata=_opt("base URL of the embedding server", "EMBED_URL")
    )
    embed_url_for_es: str | None = field(
        default=None,
        metadata=_opt(
            "base URL of the embedding server as Elasticsearch reaches it (default: EMBED_URL)",
            "EMBED_URL_FOR_ES",
        ),
    )
    embed_api_key: str | None = field(
        default=None, metadata=_opt("API key of the embedding server", "EMBED_API_KEY", True)
    )
    embed_timeout: float = field(
        default=60.0, metadata=_opt("seconds to wait for one embedding request", "EMBED_TIMEOUT")
    )
    embed_batch_size: int = field(
        default=32,
        metadata=_opt("texts per embedding request (capped by the server)", "RAG_EMBED_BATCH_SIZE"),
    )
    chunk_tokens: int = field(
        default=256,
        metadata=_opt(
            "most tokens in one chunk, special tokens included (capped by the model)", "RAG_CHUNK_TOKENS"
        ),
    )
    chunk_overlap: int = field(
        default=32,
        metadata=_opt("tokens repeated between consecutive windows of a long paragraph", "RAG_CHUNK_OVERLAP"),
    )
    bulk_size: int = field(
        default=200, metadata=_opt("documents or chunks per _bulk request", "RAG_BULK_SIZE")
    )
    max_retries: int = field(
        default=5, metadata=_opt("retries of a request or bulk item answered 429/503", "RAG_MAX_RETRIES")
    )
    retry_backoff: float = field(
        default=0.5, metadata=_opt("first retry delay in seconds, doubled per attempt", "RAG_RETRY_BACKOFF")
    )
    k: int = field(default=5, metadata=_opt("chunks to retrieve", "RAG_K"))
    num_candidates: int = field(
        default=50,
        metadata=_opt("kNN candidates per shard (>= k; more is slower and more exact)", "RAG_NUM_CANDIDATES"),
    )
    hybrid: bool = field(
        default=False, metadata=_opt("fuse kNN with BM25 by reciprocal rank fusion", "RAG_HYBRID")
    )
    rrf: RrfMode = field(
        default="auto",
        metadata=_opt(
            "where hybrid fusion runs: auto (the cluster's retriever.rrf when it has it), server, client",
            "RAG_RRF",
        ),
    )
    rrf_rank_constant: int = field(default=60, metadata=_opt("RRF rank constant", "RAG_RRF_RANK_CONSTANT"))
    chat_base_url: str = field(
        default=BAILIAN_BASE_URL,
        metadata=_opt("OpenAI-compatible chat API base URL (default: Bailian)", "CHAT_BASE_URL"),
    )
    chat_model: str = field(default="qwen-plus", metadata=_opt("chat model name", "CHAT_MODEL"))
    chat_api_key: str | None = field(
        default=None,
        metadata=_opt("chat API key", ("DASHSCOPE_API_KEY", "OPENAI_API_KEY"), True),
    )
    chat_timeout: float = field(
        default=120.0, metadata=_opt("seconds to wait for the chat model", "CHAT_TIMEOUT")
    )
    chat_temperature: float = field(
        default=0.1, metadata=_opt("chat sampling temperature", "CHAT_TEMPERATURE")
    )
    context_tokens: int = field(
        default=2000,
        metadata=_opt("token budget of the retrieved passages in the prompt", "RAG_CONTEXT_TOKENS"),
    )
    host: str = field(default="127.0.0.1", metadata=_opt("address `serve` listens on", "RAG_HOST"))
    port: int = field(default=8080, metadata=_opt("port `serve` listens on", "RAG_PORT"))

    def __post_init__(self) -> None:
        for name in ("es_url", "embed_url", "chat_base_url", "embed_url_for_es"):
            value = getattr(self, name)
            if value is not None and not value.startswith(("http://", "https://")):
                raise ConfigError(f"--{_flag(name)} must be an http:// or https:// URL, got {value!r}")
        positive = ("embed_batch_size", "chunk_tokens", "bulk_size", "k", "num_candidates", "context_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{_flag(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("es_timeout", "embed_timeout", "chat_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{_flag(name)} must be more than 0 seconds")
        if self.max_retries < 0 or self.retry_backoff < 0 or self.chunk_overlap < 0:
            raise ConfigError("--max-retries, --retry-backoff and --chunk-overlap cannot be negative")
        if self.chunk_overlap * 2 > self.chunk_tokens:
            raise ConfigError(
                f"--chunk-overlap ({self.chunk_overlap}) must be at most half of --chunk-tokens "
                f"({self.chunk_tokens})"
            )
        if self.num_candidates < self.k or self.num_candidates > 10_000:
            raise ConfigError(
                f"--num-candidates must be between --k ({self.k}) and 10000, got {self.num_candidates}"
            )
        if self.rrf_rank_constant < 1:
            raise ConfigError("--rrf-rank-constant must be at least 1")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 1 and 65535, got {self.port}")
        if not self.index or self.index != self.index.lower() or self.index.startswith(("_", "-", "+")):
            raise ConfigError(
                f"--index {self.index!r} is not a valid index name: use lowercase, not starting with _ - +"
            )

    @property
    def es_side_embed_url(self) -> str:
        """The embedding server's base URL as Elasticsearch must call it."""
        return (self.embed_url_for_es or self.embed_url).rstrip("/")


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _parse(name: str, kind: Any, raw: str) -> Any:
    origin = get_origin(kind)
    args = [a for a in get_args(kind) if a is not type(None)]
    if origin is Literal:
        if raw not in args:
            raise ConfigError(f"--{_flag(name)} must be one of {', '.join(map(str, args))}, got {raw!r}")
        return raw
    if args and origin is not Literal:
        kind = args[0]
    if kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--{_flag(name)} must be true or false, got {raw!r}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(f"--{_flag(name)} must be a number, got {raw!r}") from None
    return raw


def load(flags: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings: a flag that is not None wins, then the environment, then the default.

    ``flags`` maps field names to parsed flag values (None when the flag was not given);
    ``environ`` defaults to ``os.environ``. Raises ConfigError naming the flag at fault.
    """
    env = os.environ if environ is None else environ
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        given = flags.get(f.name)
        if given is not None:
            values[f.name] = _parse(f.name, hints[f.name], str(given)) if isinstance(given, str) else given
            continue
        for var in f.metadata["env"]:
            raw = env.get(var)
            if raw not in (None, ""):
                values[f.name] = _parse(f.name, hints[f.name], raw)
                break
    return Settings(**values)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per settings field; each defaults to None so that `load` can tell."""
    hints = get_type_hints(Settings)
    group = parser.add_argument_group("settings (flag, else environment variable, else default)")
    for f in fields(Settings):
        kind = hints[f.name]
        default = f.default if f.default is not MISSING else None
        shown = "(set)" if f.metadata["secret"] and default else default
        env = " or ".join(f.metadata["env"])
        help_text = f"{f.metadata['doc']} [env {env}; default {shown}]"
        if kind is bool:
            group.add_argument(
                f"--{_flag(f.name)}",
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            group.add_argument(
                f"--{_flag(f.name)}", dest=f.name, default=None, metavar="VALUE", help=help_text
            )
