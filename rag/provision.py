"""``python -m rag setup``: create what the chosen ingest path needs in Elasticsearch.

``settings.ingest_path`` decides which resources exist (see :mod:`rag.resources`):

- ``client``: the index only (Elasticsearch never calls the embedding model);
- ``pipeline``, and unset: the index, the inference endpoint and the ingest pipeline (the
  index serves client-side ingest too);
- ``semantic_text``: the inference endpoint, then the index with its ``semantic_text``
  field bound to it (Elasticsearch 8.18+).

Idempotent: each resource is read first and is either created, reported as existing, or
reported with what differs. Differences are never silently overwritten: ``replace=True``
replaces a differing endpoint or pipeline; an index whose vector dims differ from the
model's is a :class:`SetupConflictError` (its vectors cannot be converted: use another
``--index`` or delete it). Missing fields of an existing index are added (a compatible
mapping change).

The endpoint's ``rate_limit`` (requests per minute, applied by each Elasticsearch node) is
sized from ``embed_capacity`` (:func:`rag.resources.rate_limit`); without it Elasticsearch
would allow 3,000 a minute, 50 chunks a second through the pipeline whatever the server
can do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rag import resources
from rag.dashscope import embeddings_url
from rag.embedder import Embedder
from rag.errors import ConfigError, SearchBackendError, SetupConflictError
from rag.settings import Settings
from rag.store import Store

Outcome = Literal["created", "exists", "updated", "replaced", "differs"]


@dataclass(frozen=True)
class Step:
    """What setup did to one resource."""

    resource: str
    outcome: Outcome
    detail: str = ""


@dataclass
class SetupReport:
    steps: list[Step] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Everything exists as rag wants it (nothing left ``differs``)."""
        return all(step.outcome != "differs" for step in self.steps)

    def render(self) -> str:
        lines = [f"{s.resource}: {s.outcome}" + (f" ({s.detail})" if s.detail else "") for s in self.steps]
        if not self.complete:
            lines.append("some resources differ from rag's: re-run with --replace to overwrite them")
        return "\n".join(lines)


def _index(settings: Settings, store: Store, dims: int, body: dict[str, Any]) -> Step:
    name = f"index {settings.index}"
    options = body["mappings"]["properties"][resources.VECTOR_FIELD].get("index_options", {})
    described = f"dense_vector {dims} dims, cosine, {options.get('type', 'ES default')}"
    if "rescore_vector" in options:
        described += f" (rescore oversample {options['rescore_vector']['oversample']:g})"
    if resources.SEMANTIC_FIELD in body["mappings"]["properties"]:
        described += f"; {resources.SEMANTIC_FIELD}: semantic_text via {settings.inference_id}"
    mappings = store.get_index_mappings(settings.index)
    if mappings is None:
        store.create_index(settings.index, body)
        return Step(name, "created", described)
    have = resources.index_dims(mappings)
    if have is not None and have != dims:
        raise SetupConflictError(
            f"index {settings.index!r} stores {have}-dim vectors but the model "
            f"({_model_source(settings)}) makes {dims}-dim ones: "
            "use another --index, or delete this one and ingest again"
        )
    missing = resources.missing_properties(mappings, body["mappings"]["properties"])
    if missing:
        store.add_mappings(settings.index, missing)
        mappings = store.get_index_mappings(settings.index) or {}
    diffs = resources.index_differences(mappings, body)
    if diffs:
        return Step(name, "differs", "; ".join(diffs))
    return Step(name, "updated" if missing else "exists", f"added {', '.join(missing)}" if missing else "")


def _model_source(settings: Settings) -> str:
    if settings.embed_provider == "dashscope":
        return f"Bailian {settings.dashscope_embed_model}"
    return f"EMBED_URL={settings.embed_url}"


def _endpoint_body(settings: Settings, model_id: str, dims: int) -> tuple[dict[str, Any], str]:
    """The endpoint's body and how its rate limit was chosen."""
    path = "semantic_text" if settings.ingest_path == "semantic_text" else "pipeline"
    if settings.embed_provider == "dashscope":
        # Bailian sets its own quotas: only an explicit figure (or a measured capacity) is sent.
        rpm: int | None = None
        why = "ES default 3000/min; set RAG_INFERENCE_RATE_LIMIT to your Bailian quota"
        if settings.inference_rate_limit is not None or settings.embed_capacity is not None:
            rpm, why = resources.rate_limit(
                path, settings.embed_capacity, settings.es_inference_nodes, settings.inference_rate_limit
            )
        body = resources.inference_body(
            "openai",
            embeddings_url(settings),
            settings.dashscope_key,
            settings.dashscope_embed_model,
            rpm,
            dimensions=dims,
        )
        return body, why
    rpm, why = resources.rate_limit(
        path, settings.embed_capacity, settings.es_inference_nodes, settings.inference_rate_limit
    )
    url = resources.server_endpoint_url(settings.inference_service, settings.es_side_embed_url)
    return resources.inference_body(
        settings.inference_service, url, settings.embed_api_key, model_id, rpm
    ), why


def _endpoint(settings: Settings, store: Store, dims: int, model_id: str, replace: bool) -> Step:
    name = f"inference endpoint {settings.inference_id}"
    wanted, why = _endpoint_body(settings, model_id, dims)
    service_settings = wanted["service_settings"]
    rpm = service_settings.get("rate_limit", {}).get("requests_per_minute", resources.ES_DEFAULT_RATE_LIMIT)
    described = f"{wanted['service']} -> {service_settings['url']}, rate_limit {rpm}/min per node ({why})"
    existing = store.get_inference(settings.inference_id)
    outcome: Outcome = "created"
    if existing is not None:
        diffs = resources.inference_differences(existing, wanted, dims)
        if not diffs:
            return Step(name, "exists", described)
        if not replace:
            return Step(name, "differs", "; ".join(diffs))
        store.delete_inference(settings.inference_id)
        outcome = "replaced"
    created = store.put_inference(settings.inference_id, wanted)
    learned = created.get("service_settings", {}).get("dimensions")
    if learned is not None and int(learned) != dims:
        raise SetupConflictError(
            f"Elasticsearch's endpoint {settings.inference_id} learned {learned} dims from "
            f"{service_settings['url']} but {_model_source(settings)} makes {dims}: "
            "EMBED_URL and EMBED_URL_FOR_ES point at different models"
        )
    return Step(name, outcome, described)


def _pipeline(settings: Settings, store: Store, replace: bool) -> Step:
    name = f"ingest pipeline {settings.pipeline}"
    wanted = resources.pipeline_body(settings.inference_id)
    existing = store.get_pipeline(settings.pipeline)
    if existing is not None:
        diffs = resources.pipeline_differences(existing, wanted)
        if not diffs:
            return Step(name, "exists")
        if not replace:
            return Step(name, "differs", "; ".join(diffs))
    store.put_pipeline(settings.pipeline, wanted)
    return Step(
        name,
        "replaced" if existing is not None else "created",
        f"split + inference via {settings.inference_id}",
    )


def _check_semantic_text(settings: Settings, store: Store, max_client_batch_size: int) -> None:
    """semantic_text needs 8.18+, and an endpoint whose batches the model accepts."""
    version = store.info.version
    if not resources.supports_semantic_text(version):
        raise SearchBackendError(
            f"Elasticsearch at ES_URL={settings.es_url} is {'.'.join(map(str, version))}; the "
            "semantic_text path needs 8.18 or later (semantic_text GA, the semantic highlighter): "
            "use --ingest-path pipeline or client"
        )
    # semantic_text sends one request per batch of chunks: 20 for hugging_face, up to 2048 for openai.
    if settings.embed_provider == "dashscope":
        raise ConfigError(
            "--ingest-path semantic_text cannot use Bailian embeddings: Elasticsearch's openai service "
            "sends semantic_text batches of up to 2048 texts and Bailian takes 10 per request; "
            "use --ingest-path pipeline or client with RAG_EMBED_PROVIDER=dashscope"
        )
    if settings.inference_service == "openai" and max_client_batch_size < 2048:
        raise ConfigError(
            "--ingest-path semantic_text with --inference-service openai: Elasticsearch sends batches of "
            f"up to 2048 texts and the server takes {max_client_batch_size}; use --inference-service "
            "hugging_face (batches of 20)"
        )


def setup(settings: Settings, store: Store, embedder: Embedder, replace: bool = False) -> SetupReport:
    """Bring the resources ``settings.ingest_path`` needs to rag's definitions (see module doc)."""
    model = embedder.info()
    path = settings.ingest_path
    if path == "semantic_text":
        _check_semantic_text(settings, store, model.max_client_batch_size)
    version = store.info.version
    options = resources.vector_options(
        settings.index_options, model.dims, settings.rescore_oversample, version
    )
    semantic = (
        resources.semantic_mapping(settings.inference_id, options, version)
        if path == "semantic_text"
        else None
    )
    body = resources.index_body(model.dims, options, semantic)
    report = SetupReport()
    report.steps.append(
        Step("embedding model", "exists", f"{model.model_id}, {model.dims} dims ({_model_source(settings)})")
    )
    if path == "semantic_text":
        # The field names the endpoint: create the endpoint first.
        report.steps.append(_endpoint(settings, store, model.dims, model.model_id, replace))
        report.steps.append(_index(settings, store, model.dims, body))
        return report
    report.steps.append(_index(settings, store, model.dims, body))
    if path != "client":
        report.steps.append(_endpoint(settings, store, model.dims, model.model_id, replace))
        report.steps.append(_pipeline(settings, store, replace))
    return report
