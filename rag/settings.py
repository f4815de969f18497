"""The one frozen settings object of ``python -m rag``, and the flags that set it.

Every field has a default and a one-line docstring (the ``--help`` text) and is set by the
flag ``--foo-bar`` or by its environment variable (the table below); a flag wins over the
environment, the environment over the default. This module is the only reader of
``os.environ`` in ``rag``.

The environment variables follow the deployment's names: ``ES_URL``, ``ES_API_KEY``,
``EMBED_URL``, ``EMBED_API_KEY`` (the same key the server reads), ``CHAT_BASE_URL``,
``CHAT_MODEL``, ``CHAT_API_KEY`` (or ``OPENAI_API_KEY``) for a chat API that is not Bailian,
and ``DASHSCOPE_API_KEY`` / ``DASHSCOPE_REGION`` for Bailian (Alibaba Cloud Model Studio);
the tuning knobs use a ``RAG_`` prefix.

Secrets go where they belong: ``DASHSCOPE_API_KEY`` is only ever sent over HTTPS to a
DashScope host (:func:`is_dashscope`), whatever ``CHAT_BASE_URL`` says.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Collection, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from rag.errors import ConfigError

# Bailian's OpenAI-compatible endpoints by region (Alibaba Cloud Model Studio documentation);
# API keys are bound to their region.
DASHSCOPE_REGIONS: dict[str, str] = {
    "cn-beijing": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
    "us-east-1": "https://dashscope-us.aliyuncs.com/compatible-mode/v1",
    "cn-hongkong": "https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1",
}
BAILIAN_BASE_URL = DASHSCOPE_REGIONS["cn-beijing"]
# Output sizes text-embedding-v4 and -v3 accept (``dimensions``).
DASHSCOPE_EMBED_DIMS: dict[str, frozenset[int]] = {
    "text-embedding-v4": frozenset({2048, 1536, 1024, 768, 512, 256, 128, 64}),
    "text-embedding-v3": frozenset({1024, 768, 512, 256, 128, 64}),
}

EsCompat = Literal["auto", "8", "9"]
InferenceService = Literal["hugging_face", "openai"]
RrfMode = Literal["auto", "server", "client"]
IngestPath = Literal["client", "pipeline", "semantic_text"]
IndexOptions = Literal["hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw"]
EmbedProvider = Literal["server", "dashscope"]
DashScopeRegion = Literal["cn-beijing", "ap-southeast-1", "us-east-1", "cn-hongkong"]
Thinking = Literal["auto", "on", "off"]


def is_dashscope(url: str) -> bool:
    """Whether ``url`` is an HTTPS URL of a DashScope (Bailian) host, the only place its key may go.

    The regional hosts (``dashscope.aliyuncs.com``, ``dashscope-intl.aliyuncs.com``,
    ``dashscope-us.aliyuncs.com``, ``cn-hongkong.dashscope.aliyuncs.com``) and the
    workspace-specific ``<workspace>.<region>.maas.aliyuncs.com`` domains.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host.endswith(".aliyuncs.com"):
        return False
    first = host.split(".")[0]
    return (
        first in ("dashscope", "dashscope-intl", "dashscope-us")
        or host.endswith(".dashscope.aliyuncs.com")
        or host.endswith(".maas.aliyuncs.com")
    )


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
    ingest_path: IngestPath | None = field(
        default=None,
        metadata=_opt(
            "what `setup` prepares and `ingest` uses: client (chunk and embed here), pipeline (an ES "
            "ingest pipeline embeds), semantic_text (a semantic_text field embeds); "
            "unset: client and pipeline",
            "RAG_INGEST_PATH",
        ),
    )
    index_options: IndexOptions = field(
        default="int8_hnsw",
        metadata=_opt(
            "dense_vector index type: hnsw (float32), int8_hnsw, int4_hnsw, bbq_hnsw (1 bit); "
            "see docs/RAG.md for the measured recall of each",
            "RAG_INDEX_OPTIONS",
        ),
    )
    rescore_oversample: float = field(
        default=2.0,
        metadata=_opt(
            "re-rank the top k x this many quantised candidates by their float vectors "
            "(index_options.rescore_vector, Elasticsearch 9.1+; 0 = off)",
            "RAG_RESCORE_OVERSAMPLE",
        ),
    )
    embed_capacity: float | None = field(
        default=None,
        metadata=_opt(
            "texts per second the embedding service sustains, all replicas together (measure with "
            "`python -m bench`); sizes the inference endpoint's rate_limit",
            "RAG_EMBED_CAPACITY",
        ),
    )
    es_inference_nodes: int = field(
        default=1,
        metadata=_opt(
            "Elasticsearch nodes that call the inference endpoint (ingest nodes for the pipeline, "
            "coordinating nodes for semantic_text): ES applies rate_limit on each node",
            "RAG_ES_INFERENCE_NODES",
        ),
    )
    inference_rate_limit: int | None = field(
        default=None,
        metadata=_opt(
            "requests per minute per node for the inference endpoint (overrides the figure "
            "derived from --embed-capacity)",
            "RAG_INFERENCE_RATE_LIMIT",
        ),
    )
    embed_provider: EmbedProvider = field(
        default="server",
        metadata=_opt(
            "who embeds: server (our embedding server at EMBED_URL) or dashscope (Bailian's "
            "text-embedding model, for queries, client-side ingest and the ES pipeline)",
            "RAG_EMBED_PROVIDER",
        ),
    )
    dashscope_embed_model: str = field(
        default="text-embedding-v4",
        metadata=_opt("Bailian embedding model (--embed-provider dashscope)", "DASHSCOPE_EMBED_MODEL"),
    )
    dashscope_embed_dims: int = field(
        default=1024,
        metadata=_opt(
            "dimensions of Bailian embeddings (--embed-provider dashscope)", "DASHSCOPE_EMBED_DIMS"
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
    dashscope_region: DashScopeRegion = field(
        default="cn-beijing",
        metadata=_opt(
            "Bailian region (keys are bound to theirs): cn-beijing, ap-southeast-1 (Singapore, "
            "international), us-east-1 (Virginia), cn-hongkong",
            "DASHSCOPE_REGION",
        ),
    )
    dashscope_base_url: str | None = field(
        default=None,
        metadata=_opt(
            "Bailian base URL instead of the region's, e.g. a workspace domain "
            "https://<WorkspaceId>.ap-southeast-1.maas.aliyuncs.com/compatible-mode/v1; "
            "DASHSCOPE_API_KEY is sent only if it is a DashScope host",
            "DASHSCOPE_BASE_URL",
        ),
    )
    dashscope_api_key: str | None = field(
        default=None,
        metadata=_opt("Bailian API key, sent only over HTTPS to DashScope hosts", "DASHSCOPE_API_KEY", True),
    )
    chat_base_url: str | None = field(
        default=None,
        metadata=_opt(
            "OpenAI-compatible chat API base URL (default: Bailian's for --dashscope-region)", "CHAT_BASE_URL"
        ),
    )
    chat_model: str = field(default="qwen-plus", metadata=_opt("chat model name", "CHAT_MODEL"))
    chat_api_key: str | None = field(
        default=None,
        metadata=_opt(
            "chat API key for CHAT_BASE_URL (a DashScope URL falls back to DASHSCOPE_API_KEY)",
            ("CHAT_API_KEY", "OPENAI_API_KEY"),
            True,
        ),
    )
    chat_timeout: float = field(
        default=60.0,
        metadata=_opt("seconds to wait for each response of the chat API (connect, read)", "CHAT_TIMEOUT"),
    )
    chat_deadline: float = field(
        default=120.0,
        metadata=_opt(
            "seconds an answer may take in all, retries of 429/5xx and timeouts included", "CHAT_DEADLINE"
        ),
    )
    chat_max_tokens: int = field(
        default=1024,
        metadata=_opt(
            "most tokens the model may generate (reasoning included); sent as max_completion_tokens "
            "to Bailian and OpenAI, max_tokens elsewhere",
            "CHAT_MAX_TOKENS",
        ),
    )
    chat_thinking: Thinking = field(
        default="auto",
        metadata=_opt(
            "Qwen3 thinking mode: on or off sends enable_thinking (Bailian), auto sends nothing",
            "CHAT_THINKING",
        ),
    )
    chat_thinking_budget: int | None = field(
        default=None,
        metadata=_opt(
            "most reasoning tokens when thinking (thinking_budget, Bailian)", "CHAT_THINKING_BUDGET"
        ),
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
    serve_api_key: str | None = field(
        default=None,
        metadata=_opt(
            "key `serve` requires on /ask (Authorization: Bearer KEY or X-API-Key); unset: no auth",
            "RAG_SERVE_API_KEY",
            True,
        ),
    )
    max_question_chars: int = field(
        default=2000,
        metadata=_opt("longest question `serve` accepts, in characters", "RAG_MAX_QUESTION_CHARS"),
    )
    serve_rate_limit: int = field(
        default=30,
        metadata=_opt(
            "questions per minute `serve` answers per client (0 = no limit)", "RAG_SERVE_RATE_LIMIT"
        ),
    )

    def __post_init__(self) -> None:
        for name in ("es_url", "embed_url", "chat_base_url", "embed_url_for_es", "dashscope_base_url"):
            value = getattr(self, name)
            if value is not None and not value.startswith(("http://", "https://")):
                raise ConfigError(f"--{_flag(name)} must be an http:// or https:// URL, got {value!r}")
        positive = (
            "embed_batch_size",
            "chunk_tokens",
            "bulk_size",
            "k",
            "num_candidates",
            "context_tokens",
            "es_inference_nodes",
            "chat_max_tokens",
            "max_question_chars",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{_flag(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("es_timeout", "embed_timeout", "chat_timeout", "chat_deadline"):
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
        if self.rescore_oversample != 0 and not 1 <= self.rescore_oversample <= 10:
            raise ConfigError(
                f"--rescore-oversample must be 0 or between 1 and 10, got {self.rescore_oversample}"
            )
        if self.embed_capacity is not None and self.embed_capacity <= 0:
            raise ConfigError("--embed-capacity must be more than 0 texts per second")
        if self.inference_rate_limit is not None and self.inference_rate_limit < 1:
            raise ConfigError("--inference-rate-limit must be at least 1 request per minute")
        if self.serve_rate_limit < 0:
            raise ConfigError("--serve-rate-limit cannot be negative (0 turns it off)")
        if self.chat_thinking_budget is not None and self.chat_thinking_budget < 1:
            raise ConfigError("--chat-thinking-budget must be at least 1 token")
        if self.embed_provider == "dashscope":
            allowed = DASHSCOPE_EMBED_DIMS.get(self.dashscope_embed_model)
            if allowed is not None and self.dashscope_embed_dims not in allowed:
                raise ConfigError(
                    f"--dashscope-embed-dims {self.dashscope_embed_dims} is not offered by "
                    f"{self.dashscope_embed_model}; use one of {', '.join(map(str, sorted(allowed)))}"
                )
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

    @property
    def dashscope_url(self) -> str:
        """Bailian's OpenAI-compatible base URL: ``dashscope_base_url``, else the region's."""
        return (self.dashscope_base_url or DASHSCOPE_REGIONS[self.dashscope_region]).rstrip("/")

    @property
    def dashscope_key(self) -> str | None:
        """``dashscope_api_key`` where ``dashscope_url`` is a DashScope host, else None."""
        return self.dashscope_api_key if is_dashscope(self.dashscope_url) else None

    @property
    def chat_url(self) -> str:
        """The chat API's base URL: ``chat_base_url``, else Bailian's (``dashscope_url``)."""
        return (self.chat_base_url or self.dashscope_url).rstrip("/")

    @property
    def chat_key(self) -> str | None:
        """The key for ``chat_url``: ``chat_api_key``; for a DashScope host, else ``dashscope_api_key``.

        ``dashscope_api_key`` never goes anywhere but an HTTPS DashScope host.
        """
        if self.chat_api_key:
            return self.chat_api_key
        return self.dashscope_api_key if is_dashscope(self.chat_url) else None


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
        if get_origin(args[0]) is Literal:
            return _parse(name, args[0], raw)
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


def add_flags(parser: argparse.ArgumentParser, names: Collection[str] | None = None) -> None:
    """Add one ``--flag`` per settings field (only ``names``, if given); each defaults to None
    so that `load` can tell."""
    hints = get_type_hints(Settings)
    group = parser.add_argument_group("settings (flag, else environment variable, else default)")
    for f in fields(Settings):
        if names is not None and f.name not in names:
            continue
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
