"""``python -m rag setup``: create the index, the inference endpoint and the ingest pipeline.

Idempotent: each resource is read first and is either created, reported as existing, or
reported with what differs. Differences are never silently overwritten: ``replace=True``
replaces a differing endpoint or pipeline; an index whose vector dims differ from the
model's is a :class:`SetupConflictError` (its vectors cannot be converted: use another
``--index`` or delete it). Missing fields of an existing index are added (a compatible
mapping change).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rag import resources
from rag.embedder import Embedder
from rag.errors import SetupConflictError
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


def _index(settings: Settings, store: Store, dims: int) -> Step:
    name = f"index {settings.index}"
    mappings = store.get_index_mappings(settings.index)
    if mappings is None:
        store.create_index(settings.index, resources.index_body(dims))
        return Step(name, "created", f"dense_vector {dims} dims, cosine")
    have = resources.index_dims(mappings)
    if have is not None and have != dims:
        raise SetupConflictError(
            f"index {settings.index!r} stores {have}-dim vectors but the model at "
            f"EMBED_URL={settings.embed_url} makes {dims}-dim ones: "
            "use another --index, or delete this one and ingest again"
        )
    wanted = resources.index_body(dims)["mappings"]["properties"]
    missing = {k: v for k, v in wanted.items() if k not in mappings.get("properties", {})}
    if missing:
        store.add_mappings(settings.index, missing)
        mappings = store.get_index_mappings(settings.index) or {}
    diffs = resources.index_differences(mappings, dims)
    if diffs:
        return Step(name, "differs", "; ".join(diffs))
    return Step(name, "updated" if missing else "exists", f"added {', '.join(missing)}" if missing else "")


def _endpoint(settings: Settings, store: Store, dims: int, model_id: str, replace: bool) -> Step:
    name = f"inference endpoint {settings.inference_id}"
    wanted = resources.inference_body(
        settings.inference_service, settings.es_side_embed_url, settings.embed_api_key, model_id
    )
    existing = store.get_inference(settings.inference_id)
    outcome: Outcome = "created"
    if existing is not None:
        diffs = resources.inference_differences(existing, wanted, dims)
        if not diffs:
            return Step(name, "exists", f"{existing.get('service')} -> {wanted['service_settings']['url']}")
        if not replace:
            return Step(name, "differs", "; ".join(diffs))
        store.delete_inference(settings.inference_id)
        outcome = "replaced"
    created = store.put_inference(settings.inference_id, wanted)
    learned = created.get("service_settings", {}).get("dimensions")
    if learned is not None and int(learned) != dims:
        raise SetupConflictError(
            f"Elasticsearch's endpoint {settings.inference_id} learned {learned} dims from "
            f"{wanted['service_settings']['url']} but GET {settings.embed_url}/info says {dims}: "
            "EMBED_URL and EMBED_URL_FOR_ES point at different models"
        )
    return Step(name, outcome, f"{wanted['service']} -> {wanted['service_settings']['url']}")


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


def setup(settings: Settings, store: Store, embedder: Embedder, replace: bool = False) -> SetupReport:
    """Bring the three resources to rag's definitions (see module doc)."""
    model = embedder.info()
    report = SetupReport()
    report.steps.append(
        Step("embedding model", "exists", f"{model.model_id}, {model.dims} dims at {settings.embed_url}")
    )
    report.steps.append(_index(settings, store, model.dims))
    report.steps.append(_endpoint(settings, store, model.dims, model.model_id, replace))
    report.steps.append(_pipeline(settings, store, replace))
    return report
