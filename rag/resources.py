"""The three Elasticsearch resources ``rag`` owns, as request bodies, and how to compare them.

1. The index (default ``rag-kb``). Client-side ingest writes one document per chunk:
   ``doc_id``, ``chunk_index``, ``chunk``, ``metadata`` and the vector ``dense_vector``.
   Pipeline ingest writes one document per source document: ``doc_id``, ``content``,
   ``metadata`` and, added by the pipeline, ``chunks`` (nested: ``chunk`` and
   ``dense_vector`` per paragraph; a chunk's index is its nested offset). A nested field is
   how Elasticsearch stores many vectors for one document: a pipeline cannot turn one
   document into many. Strings under ``metadata`` are mapped as ``keyword`` so that
   ``term`` filters match them exactly.
2. The ``_inference`` endpoint (``text_embedding``): service ``hugging_face`` posts
   ``{"inputs": [...]}`` to our ``/embed``; service ``openai`` posts to our
   ``/v1/embeddings``.
3. The ingest pipeline (default ``rag-embed``): ``split`` ``content`` on blank lines into
   ``chunks``, ``trim`` them, turn each into ``{"chunk": text}`` with ``foreach`` + ``set``,
   then ``foreach`` + ``inference`` writes each chunk's vector. Only standard processors:
   no script, so what the pipeline does is exactly what ``chunking.paragraphs`` does.
"""

from __future__ import annotations

from typing import Any

from rag.settings import InferenceService

# A blank line: a newline, any whitespace (more newlines included), a newline. Java's and
# Python's regex engines read it the same way.
PARAGRAPH_SEPARATOR = r"\n\s*\n"
VECTOR_FIELD = "dense_vector"
NESTED_FIELD = "chunks"
# ES requires an api_key for both services; our server ignores it when it has no key.
NO_KEY = "none"


def vector_mapping(dims: int) -> dict[str, Any]:
    return {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"}


def index_body(dims: int) -> dict[str, Any]:
    """Mappings of the index for vectors of ``dims`` dimensions."""
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
            "properties": {
                "doc_id": {"type": "keyword"},
                "chunk_index": {"type": "integer"},
                "chunk": {"type": "text"},
                "content": {"type": "text"},
                "content_hash": {"type": "keyword"},
                "metadata": {"type": "object", "properties": {"source": {"type": "keyword"}}},
                VECTOR_FIELD: vector_mapping(dims),
                NESTED_FIELD: {
                    "type": "nested",
                    "properties": {"chunk": {"type": "text"}, VECTOR_FIELD: vector_mapping(dims)},
                },
            },
        }
    }


def index_dims(mappings: dict[str, Any]) -> int | None:
    """The dims of the top-level vector field of existing ``mappings``, None if absent."""
    field = mappings.get("properties", {}).get(VECTOR_FIELD, {})
    dims = field.get("dims")
    return int(dims) if dims is not None else None


def index_differences(mappings: dict[str, Any], dims: int) -> list[str]:
    """What an existing index's mappings lack or have otherwise than ``index_body(dims)``."""
    wanted = index_body(dims)["mappings"]["properties"]
    have = mappings.get("properties", {})
    out = []
    for name, spec in wanted.items():
        if name not in have:
            out.append(f"field {name!r} is not mapped")
            continue
        got = have[name]
        if got.get("type", "object") != spec.get("type", "object"):
            out.append(f"field {name!r} is {got.get('type', 'object')}, want {spec.get('type')}")
    for path, spec in (
        (VECTOR_FIELD, have.get(VECTOR_FIELD, {})),
        (
            f"{NESTED_FIELD}.{VECTOR_FIELD}",
            have.get(NESTED_FIELD, {}).get("properties", {}).get(VECTOR_FIELD, {}),
        ),
    ):
        if spec.get("type") != "dense_vector":
            continue
        if spec.get("dims") != dims:
            out.append(f"{path} has {spec.get('dims')} dims but the model has {dims}")
        if spec.get("similarity", "cosine") != "cosine":
            out.append(f"{path} uses similarity {spec.get('similarity')}, want cosine")
    return out


def inference_body(
    service: InferenceService, embed_url: str, api_key: str | None, model_id: str
) -> dict[str, Any]:
    """``PUT _inference/text_embedding/<id>`` body pointing at our server's ``embed_url``."""
    base = embed_url.rstrip("/")
    if service == "hugging_face":
        settings: dict[str, Any] = {"api_key": api_key or NO_KEY, "url": f"{base}/embed"}
    else:
        settings = {"api_key": api_key or NO_KEY, "model_id": model_id, "url": f"{base}/v1/embeddings"}
    return {"service": service, "service_settings": settings}


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
    return out


def pipeline_body(inference_id: str) -> dict[str, Any]:
    """``PUT _ingest/pipeline/<id>``: split ``content`` on blank lines, embed every chunk."""
    return {
        "description": f"rag: split `content` into paragraphs, embed each through _inference/{inference_id}",
        "processors": [
            {"split": {"field": "content", "separator": PARAGRAPH_SEPARATOR, "target_field": NESTED_FIELD}},
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
