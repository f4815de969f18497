"""The Elasticsearch resources ``rag`` owns, as request bodies, and how to compare them.

1. The index (default ``rag-kb``). Client-side ingest writes one document per chunk:
   ``doc_id``, ``chunk_index``, ``chunk``, ``metadata`` and the vector ``dense_vector``.
   Pipeline ingest writes one document per source document: ``doc_id``, ``content``,
   ``metadata`` and, added by the pipeline, ``chunks`` (nested: ``chunk``, ``dense_vector``
   and the ``model_id`` the ``inference`` processor writes next to each result; a chunk's
   index is its nested offset). A nested field is how Elasticsearch stores many vectors for
   one document: a pipeline cannot turn one document into many. Strings under ``metadata``
   are mapped as ``keyword`` so that ``term`` filters match them exactly. Every vector field
   states its ``index_options`` (the default changed between releases: ``int8_hnsw`` from 8.14,
   ``bbq_hnsw`` for 384+ dims from 9.1).
   For the ``semantic_text`` path the index also has ``semantic``, a ``semantic_text`` field
   bound to the inference endpoint: Elasticsearch embeds its values at index time (one value
   per chunk of rag's chunker, with chunking ``none`` where ES allows it) and rag searches it
   with a ``knn`` query; ``chunks`` then holds the chunks' text only, for BM25.
2. The ``_inference`` endpoint (``text_embedding``): service ``hugging_face`` posts
   ``{"inputs": [...]}`` to our ``/embed``; service ``openai`` posts to our
   ``/v1/embeddings`` or to Bailian's. ``service_settings.rate_limit`` caps the requests each
   Elasticsearch node sends (3,000 a minute when absent).
3. The ingest pipeline (default ``rag-embed``): ``foreach`` + ``set`` turns each of the
   document's ``chunks`` into ``{"chunk": text}``, then ``foreach`` + ``inference`` writes each
   chunk's vector. ``rag ingest --via pipeline`` sends the ``chunks`` its chunker made (and no
   ``content``), so both ingest paths embed the same chunks; for another client that sends
   ``content`` only, a ``split`` on blank lines (skipped when ``content`` is absent) and a
   ``trim`` make the chunks. Only standard processors: no script.
"""

from __future__ import annotations

import math
from typing import Any

from rag.errors import ConfigError
from rag.settings import IndexOptions, InferenceService

# A blank line: a newline, any whitespace (more newlines included), a newline. Java's and
# Python's regex engines read it the same way.
PARAGRAPH_SEPARATOR = r"\n\s*\n"
VECTOR_FIELD = "dense_vector"
NESTED_FIELD = "chunks"
SEMANTIC_FIELD = "semantic"
# What the inference processor writes next to each result (InferenceResults.MODEL_ID_RESULTS_FIELD).
MODEL_ID_FIELD = "model_id"
# ES requires an api_key for both services; our server ignores it when it has no key.
NO_KEY = "none"
# Elasticsearch's default when an endpoint has no rate_limit (hugging_face and openai services).
ES_DEFAULT_RATE_LIMIT = 3000
# Our rate_limit when the embedding capacity is unknown: high enough that the connection pool
# (xpack.inference.http.max_route_connections) and the server's admission control set the pace.
UNSIZED_RATE_LIMIT = 60_000
# Texts Elasticsearch puts in one request: the inference processor sends one text per call;
# semantic_text batches up to the service's size (hugging_face: 20).
TEXTS_PER_REQUEST = {"pipeline": 1, "semantic_text": 20}
BBQ_MIN_DIMS = 64


def supports_rescore_vector(version: tuple[int, int, int]) -> bool:
    """``index_options.rescore_vector`` is GA from 9.1 (a 9.0 preview is not relied on)."""
    return version >= (9, 1, 0)


def supports_semantic_text(version: tuple[int, int, int]) -> bool:
    """``semantic_text`` GA with the ``semantic`` highlighter rag reads chunks from: 8.18+."""
    return version >= (8, 18, 0)


def supports_semantic_options(version: tuple[int, int, int]) -> bool:
    """``chunking_settings`` (strategy ``none``) and ``index_options`` on ``semantic_text``: 8.19, 9.1+."""
    return version >= (9, 1, 0) or (8, 19, 0) <= version < (9, 0, 0)


def vector_options(
    kind: IndexOptions, dims: int, oversample: float, version: tuple[int, int, int]
) -> dict[str, Any]:
    """The ``index_options`` of a ``dense_vector`` of ``dims`` (ConfigError if ES would refuse it)."""
    if kind == "bbq_hnsw" and dims < BBQ_MIN_DIMS:
        raise ConfigError(
            f"--index-options bbq_hnsw needs at least {BBQ_MIN_DIMS} dims, the model has {dims}: "
            "use int8_hnsw or hnsw"
        )
    if kind == "int4_hnsw" and dims % 2:
        raise ConfigError(f"--index-options int4_hnsw needs an even number of dims, the model has {dims}")
    options: dict[str, Any] = {"type": kind}
    if kind != "hnsw" and supports_rescore_vector(version):
        # Explicit, also when 0: ES 9.1+ would otherwise oversample bbq_hnsw 3x on its own.
        options["rescore_vector"] = {"oversample": oversample}
    return options


def vector_mapping(dims: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    mapping: dict[str, Any] = {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}
    if options is not None:
        mapping["index_options"] = options
    return mapping


def semantic_mapping(
    inference_id: str, options: dict[str, Any], version: tuple[int, int, int]
) -> dict[str, Any]:
    """The ``semantic_text`` field: no chunking of its own where ES allows it (values are chunks)."""
    mapping: dict[str, Any] = {"type": "semantic_text", "inference_id": inference_id}
    if supports_semantic_options(version):
        mapping["chunking_settings"] = {"strategy": "none"}
        mapping["index_options"] = {"dense_vector": options}
    return mapping


def index_body(
    dims: int, options: dict[str, Any] | None = None, semantic: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Mappings of the index for vectors of ``dims`` dimensions (``semantic``: its semantic_text field)."""
    properties: dict[str, Any] = {
        "doc_id": {"type": "keyword"},
        "chunk_index": {"type": "integer"},
        "chunk": {"type": "text"},
        "content": {"type": "text"},
        "content_hash": {"type": "keyword"},
        "metadata": {"type": "object", "properties": {"source": {"type": "keyword"}}},
        VECTOR_FIELD: vector_mapping(dims, options),
        NESTED_FIELD: {
            "type": "nested",
            "properties": {
                "chunk": {"type": "text"},
                VECTOR_FIELD: vector_mapping(dims, options),
                MODEL_ID_FIELD: {"type": "keyword"},
            },
        },
    }
    if semantic is not None:
        properties[SEMANTIC_FIELD] = semantic
    return {
        "mappings": {
            "dynamic_templates": [
                {
                    "metadata_strings": {
                        "path_match": "metadata.*",
                        "match_mapping_type": "string",
                        "mapping": {"type": "keyword"},
                    }
                }
            ],
            "properties": properties,
        }
    }


def index_dims(mappings: dict[str, Any]) -> int | None:
    """The dims of the top-level vector field of existing ``mappings``, None if absent."""
    field = mappings.get("properties", {}).get(VECTOR_FIELD, {})
    dims = field.get("dims")
    return int(dims) if dims is not None else None


def has_semantic_field(mappings: dict[str, Any]) -> bool:
    """Whether an index was set up for the ``semantic_text`` path."""
    return bool(mappings.get("properties", {}).get(SEMANTIC_FIELD, {}).get("type") == "semantic_text")


def missing_properties(mappings: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``wanted`` (top level, and inside ``chunks``) an existing index lacks.

    The answer is a ``properties`` body for ``PUT <index>/_mapping`` (adding fields is allowed).
    """
    have = mappings.get("properties", {})
    out = {name: spec for name, spec in wanted.items() if name not in have}
    nested_have = have.get(NESTED_FIELD, {})
    if NESTED_FIELD in have and nested_have.get("type") == "nested":
        inner = {
            name: spec
            for name, spec in wanted[NESTED_FIELD]["properties"].items()
            if name not in nested_have.get("properties", {})
        }
        if inner:
            out[NESTED_FIELD] = {"type": "nested", "properties": inner}
    return out


def index_differences(mappings: dict[str, Any], wanted_body: dict[str, Any]) -> list[str]:
    """What an existing index's mappings lack or have otherwise than ``wanted_body``."""
    wanted = wanted_body["mappings"]["properties"]
    have = mappings.get("properties", {})
    out = []
    for name, spec in wanted.items():
        if name not in have:
            out.append(f"field {name!r} is not mapped")
            continue
        got = have[name]
        if got.get("type", "object") != spec.get("type", "object"):
            out.append(f"field {name!r} is {got.get('type', 'object')}, want {spec.get('type')}")
    want_vector = wanted[VECTOR_FIELD]
    for path, spec in (
        (VECTOR_FIELD, have.get(VECTOR_FIELD, {})),
        (
            f"{NESTED_FIELD}.{VECTOR_FIELD}",
            have.get(NESTED_FIELD, {}).get("properties", {}).get(VECTOR_FIELD, {}),
        ),
    ):
        if spec.get("type") != "dense_vector":
            continue
        if spec.get("dims") != want_vector["dims"]:
            out.append(f"{path} has {spec.get('dims')} dims but the model has {want_vector['dims']}")
        if spec.get("similarity", "cosine") != "cosine":
            out.append(f"{path} uses similarity {spec.get('similarity')}, want cosine")
        want_type = want_vector.get("index_options", {}).get("type")
        got_type = spec.get("index_options", {}).get("type")
        if want_type and got_type and got_type != want_type:
            out.append(
                f"{path} is indexed as {got_type}, want {want_type} (RAG_INDEX_OPTIONS; "
                "changing it needs a new index: use another --index)"
            )
    semantic = wanted.get(SEMANTIC_FIELD)
    got_semantic = have.get(SEMANTIC_FIELD, {})
    if semantic and got_semantic.get("type") == "semantic_text":
        if got_semantic.get("inference_id") != semantic["inference_id"]:
            out.append(
                f"{SEMANTIC_FIELD} embeds through {got_semantic.get('inference_id')}, "
                f"want {semantic['inference_id']}"
            )
    return out


def rate_limit(path: str, capacity: float | None, nodes: int, explicit: int | None) -> tuple[int, str]:
    """(requests per minute per node, how it was chosen) for an endpoint used by ``path``.

    ``capacity`` is the embedding service's sustained texts per second (all replicas); ES
    applies the limit on each of ``nodes`` nodes, and sends ``TEXTS_PER_REQUEST[path]`` texts
    per request.
    """
    if explicit is not None:
        return explicit, "RAG_INFERENCE_RATE_LIMIT"
    if capacity is None:
        return UNSIZED_RATE_LIMIT, "RAG_EMBED_CAPACITY unset: not throttled by ES"
    per_request = TEXTS_PER_REQUEST.get(path, 1)
    rpm = max(1, math.ceil(capacity * 60 / per_request / nodes))
    return rpm, f"{capacity:g} texts/s / {per_request} per request / {nodes} node(s)"


def inference_body(
    service: InferenceService,
    url: str,
    api_key: str | None,
    model_id: str,
    requests_per_minute: int | None = None,
    dimensions: int | None = None,
) -> dict[str, Any]:
    """``PUT _inference/text_embedding/<id>`` body calling ``url`` (the full endpoint URL)."""
    settings: dict[str, Any] = {"api_key": api_key or NO_KEY, "url": url}
    if service == "openai":
        settings["model_id"] = model_id
    if dimensions is not None:
        settings["dimensions"] = dimensions
    if requests_per_minute is not None:
        settings["rate_limit"] = {"requests_per_minute": requests_per_minute}
    return {"service": service, "service_settings": settings}


def server_endpoint_url(service: InferenceService, base: str) -> str:
    """Our server's route that a service calls: ``/embed`` (hugging_face), ``/v1/embeddings``,
    marked ``?priority=bulk``: ES embeds for ingest, and the server then serves queries first
    (both services send the ``url`` as given, query string included)."""
    base = base.rstrip("/")
    route = "/embed" if service == "hugging_face" else "/v1/embeddings"
    return f"{base}{route}?priority=bulk"


def inference_differences(existing: dict[str, Any], wanted: dict[str, Any], dims: int) -> list[str]:
    """What an existing endpoint (as GET returns it, without secrets) has otherwise."""
    out = []
    if existing.get("task_type", "text_embedding") != "text_embedding":
        out.append(f"task type is {existing.get('task_type')}, want text_embedding")
    if existing.get("service") != wanted["service"]:
        out.append(f"service is {existing.get('service')}, want {wanted['service']}")
    have = existing.get("service_settings", {})
    want = wanted["service_settings"]
    if have.get("url") != want["url"]:
        out.append(f"url is {have.get('url')}, want {want['url']}")
    if "model_id" in want and have.get("model_id") != want["model_id"]:
        out.append(f"model_id is {have.get('model_id')}, want {want['model_id']}")
    if have.get("dimensions") not in (None, dims):
        out.append(f"it embeds {have.get('dimensions')} dims but the model has {dims}")
    want_rpm = want.get("rate_limit", {}).get("requests_per_minute")
    have_rpm = have.get("rate_limit", {}).get("requests_per_minute", ES_DEFAULT_RATE_LIMIT)
    if want_rpm is not None and have_rpm != want_rpm:
        out.append(f"rate_limit is {have_rpm} requests/min, want {want_rpm}")
    return out


def pipeline_body(inference_id: str) -> dict[str, Any]:
    """``PUT _ingest/pipeline/<id>``: split ``content`` on blank lines, embed every chunk."""
    return {
        "description": f"rag: split `content` into paragraphs, embed each through _inference/{inference_id}",
        "processors": [
            # rag sends `chunks` made by its chunker and no `content`; other clients send `content`.
            {
                "split": {
                    "field": "content",
                    "separator": PARAGRAPH_SEPARATOR,
                    "target_field": NESTED_FIELD,
                    "ignore_missing": True,
                }
            },
            {"trim": {"field": NESTED_FIELD}},
            {
                "foreach": {
                    "field": NESTED_FIELD,
                    # Triple braces and text/plain: the chunk goes in as it is, never escaped
                    # (the set processor's default media type, JSON, would escape quotes and newlines).
                    "processor": {
                        "set": {
                            "field": "_ingest._value",
                            "value": {"chunk": "{{{_ingest._value}}}"},
                            "media_type": "text/plain",
                        }
                    },
                }
            },
            {
                "foreach": {
                    "field": NESTED_FIELD,
                    "processor": {
                        "inference": {
                            "model_id": inference_id,
                            "input_output": {
                                "input_field": "_ingest._value.chunk",
                                "output_field": f"_ingest._value.{VECTOR_FIELD}",
                            },
                        }
                    },
                }
            },
        ],
        "_meta": {"managed_by": "rag", "inference_id": inference_id},
    }


def pipeline_differences(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Whether an existing pipeline runs other processors than ``wanted``."""
    if existing.get("processors") != wanted["processors"]:
        return ["its processors differ from rag's (re-run setup with --replace to overwrite it)"]
    return []
