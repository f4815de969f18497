"""The search half of the ES stand-in: query DSL, kNN, semantic, RRF, fields, source filtering.

Implements the subset rag uses, with Elasticsearch's semantics:
- queries: ``match_all``, ``match`` (BM25, k1=1.2, b=0.75, idf = ln(1 + (N - n + 0.5)/(n + 0.5)),
  lowercase word tokens; on a ``semantic_text`` field it is a ``semantic`` query), ``term`` (on a
  text field scored like one BM25 term), ``terms``, ``range``, ``exists``, ``ids`` (and ``_id`` in
  ``term``/``terms``), ``bool`` (``must``/``filter``/``should``/``must_not``,
  ``minimum_should_match``), ``nested`` (score modes, ``inner_hits``), ``knn`` (as a query),
  ``semantic`` (dense ``semantic_text`` fields: the best chunk's score); ``_name`` on any of them
  gives ``matched_queries``;
- ``knn`` (one clause or a list): exact over every document, with ES's score for the field's
  similarity (``cosine`` (1 + cos) / 2, ``dot_product`` (1 + dot) / 2, ``l2_norm``
  1 / (1 + d^2), ``max_inner_product`` dot + 1, or 1 / (1 - dot) below 0), the ``similarity``
  threshold on the raw similarity (a distance for ``l2_norm``), top ``k`` per clause, ``filter``,
  nested vector fields (doc score = best nested score, ``inner_hits``), scores of several clauses
  and a query summed per document; ``rescore_vector`` is accepted and changes nothing, since
  nothing is quantized (index_options only change how ES approximates; the stand-in is exact);
- ``retriever``: ``standard``, ``knn`` and ``rrf`` (``rank_window_size``, ``rank_constant``,
  ``filter`` applied to every child retriever);
- responses: ``fields`` (typed values of mapped leaf fields, nested fields grouped),
  ``_source`` filtering, ``track_total_hits``, ``rest_total_hits_as_int``, ``min_score``, the
  ``semantic`` highlighter on ``semantic_text`` fields (the best chunks' text).
Anything else is refused with a 400 that says the stand-in does not implement it, so a test
cannot pass by accident on an unsupported request.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WORD = re.compile(r"\w+")
TOTAL_HITS_CAP = 10_000
# Search body keys ES has that the stand-in refuses (rather than ignore).
NOT_IMPLEMENTED = {
    "aggs",
    "aggregations",
    "collapse",
    "docvalue_fields",
    "explain",
    "indices_boost",
    "pit",
    "post_filter",
    "profile",
    "rank",
    "rescore",
    "runtime_mappings",
    "script_fields",
    "search_after",
    "seq_no_primary_term",
    "slice",
    "sort",
    "stats",
    "stored_fields",
    "suggest",
    "terminate_after",
    "timeout",
    "version",
}
BODY_KEYS = {
    "query",
    "knn",
    "retriever",
    "size",
    "from",
    "_source",
    "track_total_hits",
    "fields",
    "highlight",
    "min_score",
}
KNN_KEYS = {
    "field",
    "query_vector",
    "query_vector_builder",
    "k",
    "num_candidates",
    "filter",
    "similarity",
    "boost",
    "_name",
    "inner_hits",
    "rescore_vector",
}
# Text chunks' embeddings by doc id: {field: {"inference_id", "chunks": [(start, end, vector)]}}.
InferenceFields = Mapping[str, Mapping[str, Any]]
Embed = Callable[[str, str], list[float]]


class SearchError(Exception):
    """An ES error response: status, type, reason (and extra fields of the error object)."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason
        self.extra = extra


def bad(reason: str, kind: str = "parsing_exception") -> SearchError:
    return SearchError(400, kind, reason)


def unsupported(what: str) -> SearchError:
    return bad(f"{what} is not implemented by the ES stand-in", "illegal_argument_exception")


def analyze(text: Any) -> list[str]:
    return WORD.findall(str(text).lower())


def values(doc: Any, path: str) -> list[Any]:
    """Leaf values at dotted ``path`` through objects and arrays (ES flattening)."""
    if path == "":
        return doc if isinstance(doc, list) else [doc]
    if isinstance(doc, list):
        return [v for item in doc for v in values(item, path)]
    if not isinstance(doc, dict):
        return []
    if path in doc:
        return values(doc[path], "")
    head, _, rest = path.partition(".")
    if head not in doc or not rest:
        return []
    return values(doc[head], rest)


# -- vector similarity ---------------------------------------------------------------------


def raw_similarity(kind: str, a: Sequence[float], b: Sequence[float]) -> float:
    """The similarity ES thresholds on: cosine, dot product, or the L2 distance."""
    if kind == "l2_norm":
        return math.sqrt(math.fsum((x - y) ** 2 for x, y in zip(a, b, strict=True)))
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    if kind == "cosine":
        na = math.sqrt(math.fsum(x * x for x in a))
        nb = math.sqrt(math.fsum(y * y for y in b))
        return dot / (na * nb) if na and nb else 0.0
    return dot


def vector_score(kind: str, raw: float) -> float:
    """ES's ``_score`` for a raw similarity (VectorSimilarity.score for float vectors)."""
    if kind == "l2_norm":
        return 1.0 / (1.0 + raw * raw)
    if kind in ("cosine", "dot_product"):
        return max((1.0 + raw) / 2.0, 0.0)
    return 1.0 / (1.0 - raw) if raw < 0 else raw + 1.0


def within(kind: str, raw: float, threshold: float | None) -> bool:
    if threshold is None:
        return True
    return raw <= threshold if kind == "l2_norm" else raw >= threshold


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return raw_similarity("cosine", a, b)


@dataclass
class Mappings:
    """Field types from an index's mappings (``properties``, object and nested, multi-fields)."""

    properties: dict[str, Any]

    def field(self, path: str) -> dict[str, Any] | None:
        props = self.properties
        parts = path.split(".")
        spec: dict[str, Any] | None = None
        for i, part in enumerate(parts):
            found = props.get(part)
            if found is None and spec is not None and part in spec.get("fields", {}):
                found = spec["fields"][part]
            if found is None:
                return None
            spec = found
            if i == len(parts) - 1:
                return dict(found)
            props = found.get("properties", {})
        return None

    def nested_prefix(self, path: str) -> str | None:
        """The innermost nested field that ``path`` is inside of, if any."""
        parts = path.split(".")
        found = None
        for i in range(1, len(parts)):
            spec = self.field(".".join(parts[:i]))
            if spec is not None and spec.get("type") == "nested":
                found = ".".join(parts[:i])
        return found

    def kind(self, path: str) -> str | None:
        spec = self.field(path)
        return None if spec is None else str(spec.get("type", "object"))

    def is_text(self, path: str) -> bool:
        return self.kind(path) == "text"

    def source_path(self, path: str) -> str:
        """Where a field's values live in ``_source``: a multi-field reads its parent's."""
        parts = path.split(".")
        props = self.properties
        for i, part in enumerate(parts):
            spec = props.get(part)
            if spec is None:
                return ".".join(parts[:i])
            props = spec.get("properties", {})
        return path

    def leaves(
        self, props: dict[str, Any] | None = None, prefix: str = ""
    ) -> list[tuple[str, dict[str, Any]]]:
        """Every mapped leaf field (multi-fields included) as (path, spec)."""
        out = []
        for name, spec in (self.properties if props is None else props).items():
            path = f"{prefix}{name}"
            if "properties" in spec or spec.get("type") in ("object", "nested"):
                out.extend(self.leaves(spec.get("properties", {}), path + "."))
                continue
            out.append((path, spec))
            for sub, sub_spec in spec.get("fields", {}).items():
                out.append((f"{path}.{sub}", sub_spec))
        return out


@dataclass
class Match:
    score: float
    inner: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    inner_specs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)
    chunks: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


@dataclass
class Query:
    """What the search's semantic queries asked, for the semantic highlighter."""

    vectors: dict[str, list[float]] = field(default_factory=dict)


class Searcher:
    """Evaluates search bodies over ``docs`` (id -> source) of one index."""

    def __init__(
        self,
        docs: Mapping[str, dict[str, Any]],
        mappings: Mappings,
        index: str,
        settings: Mapping[str, Any] | None = None,
        inference: Mapping[str, InferenceFields] | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.docs = docs
        self.mappings = mappings
        self.index = index
        self.settings = settings or {}
        self.inference = inference or {}
        self.embed = embed
        self.order = {doc_id: i for i, doc_id in enumerate(docs)}
        self._stats: dict[str, tuple[int, float, dict[str, int]]] = {}
        self._knn_queries: dict[str, dict[str, Match]] = {}
        self._semantic: dict[str, list[float]] = {}
        self.asked = Query()
        # The size of the page asked for, which an rrf retriever's rank_window_size must cover.
        self._page: int | None = None

    # -- BM25 --------------------------------------------------------------------------

    def _units(self, path: str) -> list[Any]:
        """What BM25 statistics count: documents, or nested objects for nested fields."""
        prefix = self.mappings.nested_prefix(path)
        if prefix is None:
            return list(self.docs.values())
        return [
            {prefix: obj}
            for doc in self.docs.values()
            for obj in values(doc, prefix)
            if isinstance(obj, dict)
        ]

    def _field_stats(self, path: str) -> tuple[int, float, dict[str, int]]:
        if path not in self._stats:
            lengths = []
            df: dict[str, int] = {}
            for unit in self._units(path):
                tokens = [t for v in values(unit, path) for t in analyze(v)]
                if tokens:
                    lengths.append(len(tokens))
                for t in set(tokens):
                    df[t] = df.get(t, 0) + 1
            avg = sum(lengths) / len(lengths) if lengths else 1.0
            self._stats[path] = (len(lengths), avg, df)
        return self._stats[path]

    def _bm25(self, doc: Any, path: str, terms: list[str], operator: str) -> float | None:
        tokens = [t for v in values(doc, path) for t in analyze(v)]
        if not tokens or not terms:
            return None
        n_docs, avg, df = self._field_stats(path)
        score = 0.0
        hits = 0
        for term in terms:
            tf = tokens.count(term)
            if not tf:
                continue
            hits += 1
            n = df.get(term, 0)
            idf = math.log(1 + (n_docs - n + 0.5) / (n + 0.5))
            score += idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * len(tokens) / avg))
        if hits == 0 or (operator == "and" and hits < len(set(terms))):
            return None
        return score

    # -- query DSL ---------------------------------------------------------------------

    def match(self, query: Mapping[str, Any], doc: Any, doc_id: str | None) -> Match | None:
        """Whether ``doc`` matches ``query``, with its score and inner hits."""
        if not isinstance(query, Mapping) or len(query) != 1:
            raise bad("a query must be an object with exactly one query type")
        kind, spec = next(iter(query.items()))
        if not isinstance(spec, Mapping):
            raise bad(f"[{kind}] query malformed, no start_object after query name")
        found = self._match(kind, spec, doc, doc_id)
        if found is not None:
            # _name sits on the query, or (term, match, range) in the field's object.
            for where in (spec, *(v for v in spec.values() if isinstance(v, Mapping))):
                if isinstance(where.get("_name"), str):
                    found.names.add(where["_name"])
        return found

    def _match(self, kind: str, spec: Mapping[str, Any], doc: Any, doc_id: str | None) -> Match | None:
        boost = float(spec.get("boost", 1.0))
        if kind == "match_all":
            return Match(boost)
        if kind == "match_none":
            return None
        if kind == "match":
            path, arg = _field_arg(spec)
            text, operator = (
                (arg.get("query"), arg.get("operator", "or")) if isinstance(arg, dict) else (arg, "or")
            )
            if self.mappings.kind(path) == "semantic_text":
                return self._semantic_match({"field": path, "query": text}, doc_id)
            if not self.mappings.is_text(path):
                wanted = [str(text)]
                return (
                    Match(boost)
                    if any(_same(v, w) for v in self._values(doc, path) for w in wanted)
                    else None
                )
            score = self._bm25(doc, path, analyze(text), str(operator).lower())
            return None if score is None else Match(score * boost)
        if kind in ("term", "terms"):
            path, arg = _field_arg(spec)
            asked = arg.get("value", arg.get("term")) if kind == "term" and isinstance(arg, dict) else arg
            if kind == "term" and isinstance(arg, dict) and "boost" in arg:
                boost = float(arg["boost"])
            options = [asked] if kind == "term" else list(asked or [])
            if path == "_id":
                return Match(boost) if any(_same(doc_id, o) for o in options) else None
            if self.mappings.is_text(path):
                score = sum(self._bm25(doc, path, [str(o)], "or") or 0.0 for o in options)
                return Match(score * boost) if score else None
            have = self._values(doc, path)
            return Match(boost) if any(_same(h, o) for h in have for o in options) else None
        if kind == "range":
            path, bounds = _field_arg(spec)
            for v in self._values(doc, path):
                if all(_bound(v, op, lim) for op, lim in bounds.items() if op in ("gt", "gte", "lt", "lte")):
                    return Match(boost)
            return None
        if kind == "exists":
            return Match(boost) if any(v is not None for v in self._values(doc, spec["field"])) else None
        if kind == "ids":
            return Match(boost) if doc_id in {str(v) for v in spec.get("values", [])} else None
        if kind == "bool":
            return self._bool(spec, doc, doc_id)
        if kind == "nested":
            return self._nested(spec, doc)
        if kind == "knn":
            top = self._knn_query(spec)
            return top.get(str(doc_id)) if doc_id is not None else None
        if kind == "semantic":
            return self._semantic_match(spec, doc_id)
        raise bad(f"unknown query [{kind}] (or not implemented by the ES stand-in)")

    def _values(self, doc: Any, path: str) -> list[Any]:
        return values(doc, self.mappings.source_path(path))

    def _bool(self, spec: Mapping[str, Any], doc: Any, doc_id: str | None) -> Match | None:
        def clauses(name: str) -> list[Mapping[str, Any]]:
            raw = spec.get(name, [])
            return [raw] if isinstance(raw, Mapping) else list(raw)

        total = Match(0.0)
        for name in ("must", "filter"):
            for clause in clauses(name):
                found = self.match(clause, doc, doc_id)
                if found is None:
                    return None
                if name == "must":
                    _merge(total, found)
                else:
                    total.names |= found.names
        for clause in clauses("must_not"):
            if self.match(clause, doc, doc_id) is not None:
                return None
        should = clauses("should")
        matched = 0
        for clause in should:
            found = self.match(clause, doc, doc_id)
            if found is not None:
                matched += 1
                _merge(total, found)
        default_min = 0 if clauses("must") or clauses("filter") else (1 if should else 0)
        if matched < int(spec.get("minimum_should_match", default_min)):
            return None
        total.score *= float(spec.get("boost", 1.0))
        return total

    def _nested(self, spec: Mapping[str, Any], doc: Any) -> Match | None:
        path = spec["path"]
        if (self.mappings.field(path) or {}).get("type") != "nested":
            raise SearchError(
                400, "query_shard_exception", f"[nested] failed to find nested object under path [{path}]"
            )
        scored = []
        names: set[str] = set()
        objects = values(doc, path)
        for offset, obj in enumerate(objects):
            found = self.match(spec["query"], {path: obj}, None)
            if found is not None:
                scored.append((offset, found.score))
                names |= found.names
        if not scored:
            return None
        mode = spec.get("score_mode", "avg")
        scores = [s for _, s in scored]
        score = {
            "avg": sum(scores) / len(scores),
            "max": max(scores),
            "min": min(scores),
            "sum": sum(scores),
            "none": 0.0,
        }[mode]
        result = Match(score, names=names)
        if "inner_hits" in spec:
            inner = spec["inner_hits"]
            name = inner.get("name", path)
            result.inner[name] = sorted(scored, key=lambda x: -x[1])
            result.inner_specs[name] = (path, inner)
        return result

    # -- kNN ---------------------------------------------------------------------------

    def _knn_query(self, spec: Mapping[str, Any]) -> dict[str, Match]:
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._knn_queries:
            clause = dict(spec)
            clause.setdefault("k", clause.get("num_candidates", 10))
            self._knn_queries[key] = self.knn(clause, int(clause["k"]))
        return {doc_id: _copy(found) for doc_id, found in self._knn_queries[key].items()}

    def knn(
        self, clause: Mapping[str, Any], size: int, extra_filters: Sequence[Any] = ()
    ) -> dict[str, Match]:
        """The top ``k`` documents of one kNN clause."""
        unknown = set(clause) - KNN_KEYS
        if unknown:
            raise bad(f"[knn] unknown field [{sorted(unknown)[0]}]", "x_content_parse_exception")
        path = str(clause.get("field", ""))
        spec = self.mappings.field(path) if path else None
        k = int(clause.get("k", size))
        if k < 1:
            raise bad("[k] must be greater than 0", "illegal_argument_exception")
        num_candidates = int(clause.get("num_candidates", min(max(int(1.5 * k), k), 10_000)))
        if num_candidates < k:
            raise bad("[num_candidates] cannot be less than [k]", "illegal_argument_exception")
        if num_candidates > 10_000:
            raise bad("[num_candidates] cannot exceed [10000]", "illegal_argument_exception")
        _check_rescore(clause.get("rescore_vector"))
        if spec is None:
            if not _flag(self.settings.get("index.query.parse.allow_unmapped_fields", True)):
                raise SearchError(
                    400,
                    "query_shard_exception",
                    f"No field mapping can be found for the field with name [{path}]",
                )
            return {}
        if spec.get("type") == "semantic_text":
            return self._semantic_knn(clause, path, spec, k, list(extra_filters))
        if spec.get("type") != "dense_vector" or not spec.get("index", True):
            raise bad(
                f"[knn] queries are only supported on [dense_vector] fields with index: true, not [{path}]",
                "illegal_argument_exception",
            )
        vector = self._query_vector(clause)
        dims = spec.get("dims")
        if dims is not None and len(vector) != dims:
            raise bad(
                f"The query vector has a different number of dimensions [{len(vector)}] than the document "
                f"vectors [{dims}].",
                "illegal_argument_exception",
            )
        similarity = str(spec.get("similarity", "cosine"))
        threshold = float(clause["similarity"]) if clause.get("similarity") is not None else None
        filters = clause.get("filter", [])
        filters = [filters] if isinstance(filters, Mapping) else list(filters)
        filters += list(extra_filters)
        prefix = self.mappings.nested_prefix(path)
        scored: dict[str, Match] = {}
        for doc_id, doc in self.docs.items():
            if not all(self.match(f, doc, doc_id) is not None for f in filters):
                continue
            units = (
                [(0, doc)]
                if prefix is None
                else [(i, {prefix: o}) for i, o in enumerate(values(doc, prefix))]
            )
            inner = []
            for offset, unit in units:
                v = _vector(unit, path)
                if v is None or len(v) != len(vector):
                    continue
                raw = raw_similarity(similarity, vector, v)
                if within(similarity, raw, threshold):
                    inner.append((offset, vector_score(similarity, raw)))
            if not inner:
                continue
            inner.sort(key=lambda x: -x[1])
            found = Match(inner[0][1])
            if prefix is not None and "inner_hits" in clause:
                name = clause["inner_hits"].get("name", prefix)
                found.inner[name] = inner
                found.inner_specs[name] = (prefix, clause["inner_hits"])
            if isinstance(clause.get("_name"), str):
                found.names.add(clause["_name"])
            scored[doc_id] = found
        boost = float(clause.get("boost", 1.0))
        top = sorted(scored.items(), key=lambda kv: (-kv[1].score, self.order[kv[0]]))[:k]
        for _, found in top:
            found.score *= boost
            for name, inner in found.inner.items():
                found.inner[name] = [(o, s * boost) for o, s in inner]
        return dict(top)

    def _semantic_knn(
        self, clause: Mapping[str, Any], path: str, spec: Mapping[str, Any], k: int, extra: list[Any]
    ) -> dict[str, Match]:
        """kNN on a semantic_text field (8.18+): a document scores as its best chunk."""
        default = str(spec.get("search_inference_id") or spec.get("inference_id"))
        vector = self._query_vector(clause, default)
        threshold = float(clause["similarity"]) if clause.get("similarity") is not None else None
        filters = clause.get("filter", [])
        filters = [filters] if isinstance(filters, Mapping) else list(filters)
        filters += extra
        self.asked.vectors[path] = vector
        scored: dict[str, Match] = {}
        for doc_id, doc in self.docs.items():
            entry = self.inference.get(doc_id, {}).get(path)
            if not entry or not entry.get("chunks"):
                continue
            if not all(self.match(f, doc, doc_id) is not None for f in filters):
                continue
            similarity = str(entry.get("similarity", "cosine"))
            chunks = []
            for i, (_, _, v) in enumerate(entry["chunks"]):
                if len(v) != len(vector):
                    raise bad(
                        f"The query vector has a different number of dimensions [{len(vector)}] than the "
                        f"document vectors [{len(v)}].",
                        "illegal_argument_exception",
                    )
                raw = raw_similarity(similarity, vector, v)
                if within(similarity, raw, threshold):
                    chunks.append((i, vector_score(similarity, raw)))
            if not chunks:
                continue
            chunks.sort(key=lambda x: -x[1])
            found = Match(chunks[0][1], chunks={path: chunks})
            if isinstance(clause.get("_name"), str):
                found.names.add(clause["_name"])
            scored[doc_id] = found
        boost = float(clause.get("boost", 1.0))
        top = sorted(scored.items(), key=lambda kv: (-kv[1].score, self.order[kv[0]]))[:k]
        for _, found in top:
            found.score *= boost
        return dict(top)

    def _query_vector(self, clause: Mapping[str, Any], default_model: str | None = None) -> list[float]:
        if "query_vector" in clause and "query_vector_builder" in clause:
            raise bad(
                "cannot provide both [query_vector] and [query_vector_builder]", "illegal_argument_exception"
            )
        if "query_vector_builder" in clause:
            builder = clause["query_vector_builder"]
            spec = builder.get("text_embedding") if isinstance(builder, Mapping) else None
            if not isinstance(spec, Mapping) or self.embed is None:
                raise unsupported(
                    f"[query_vector_builder] {sorted(builder) if isinstance(builder, Mapping) else ''}"
                )
            model = spec.get("model_id", default_model)
            if model is None:
                raise bad("[text_embedding] requires a [model_id]", "illegal_argument_exception")
            return self.embed(str(model), str(spec.get("model_text")))
        vector = clause.get("query_vector")
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise bad("[knn] requires a [query_vector] array of numbers (or a [query_vector_builder])")
        return [float(x) for x in vector]

    # -- semantic --------------------------------------------------------------------------

    def _semantic_match(self, spec: Mapping[str, Any], doc_id: str | None) -> Match | None:
        path = str(spec.get("field", ""))
        kind = self.mappings.kind(path)
        if kind is None:
            return None
        if kind != "semantic_text":
            raise SearchError(
                400,
                "illegal_argument_exception",
                f"Field [{path}] of type [{kind}] does not support semantic queries",
                wrap="search_phase_execution_exception",
            )
        vector = self._semantic_vector(path, str(spec.get("query", "")))
        entry = self.inference.get(str(doc_id), {}).get(path) if doc_id is not None else None
        if not entry or not entry.get("chunks"):
            return None
        similarity = str(entry.get("similarity", "cosine"))
        scored = [
            (i, vector_score(similarity, raw_similarity(similarity, vector, chunk[2])))
            for i, chunk in enumerate(entry["chunks"])
        ]
        scored.sort(key=lambda x: -x[1])
        found = Match(scored[0][1] * float(spec.get("boost", 1.0)))
        found.chunks[path] = scored
        return found

    def _semantic_vector(self, path: str, text: str) -> list[float]:
        if path not in self._semantic:
            spec = self.mappings.field(path) or {}
            inference_id = str(spec.get("search_inference_id") or spec.get("inference_id"))
            if self.embed is None:
                raise unsupported("[semantic] without an inference service")
            self._semantic[path] = self.embed(inference_id, text)
            self.asked.vectors[path] = self._semantic[path]
        return self._semantic[path]

    # -- search ------------------------------------------------------------------------

    def _ranked(self, body: Mapping[str, Any], size: int) -> tuple[list[tuple[str, Match]], int]:
        combined: dict[str, Match] = {}
        query = body.get("query")
        clauses = body.get("knn", [])
        clauses = [clauses] if isinstance(clauses, Mapping) else list(clauses)
        if query is not None:
            validate_query(query)
        if query is not None or not clauses:
            for doc_id, doc in self.docs.items():
                found = self.match(query or {"match_all": {}}, doc, doc_id)
                if found is not None:
                    combined[doc_id] = found
        for clause in clauses:
            for doc_id, found in self.knn(clause, size).items():
                if doc_id in combined:
                    _merge(combined[doc_id], found)
                else:
                    combined[doc_id] = found
        ranked = sorted(combined.items(), key=lambda kv: (-kv[1].score, self.order[kv[0]]))
        return ranked, len(combined)

    def _retriever(
        self, spec: Mapping[str, Any], size: int, filters: Sequence[Any] = ()
    ) -> tuple[list[tuple[str, Match]], int]:
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise bad("a retriever must have exactly one type")
        kind, body = next(iter(spec.items()))
        own = body.get("filter", [])
        filters = [*filters, *([own] if isinstance(own, Mapping) else own)]
        if kind == "standard":
            unknown = set(body) - {"query", "filter", "min_score", "_name"}
            if unknown:
                raise unsupported(f"[standard] retriever option {sorted(unknown)}")
            query = body.get("query", {"match_all": {}})
            if filters:
                query = {"bool": {"must": [query], "filter": list(filters)}}
            ranked, total = self._ranked({"query": query}, size)
            if "min_score" in body:
                ranked = [(d, m) for d, m in ranked if m.score >= float(body["min_score"])]
                total = len(ranked)
            return ranked, total
        if kind == "knn":
            clause = {k: v for k, v in body.items() if k != "filter"}
            clause.setdefault("k", size)
            top = self.knn(clause, size, filters)
            ranked = sorted(top.items(), key=lambda kv: (-kv[1].score, self.order[kv[0]]))
            return ranked, len(ranked)
        if kind == "rrf":
            unknown = set(body) - {"retrievers", "rank_window_size", "rank_constant", "filter", "_name"}
            if unknown:
                raise unsupported(f"[rrf] retriever option {sorted(unknown)}")
            children = body.get("retrievers", [])
            if len(children) < 2:
                raise bad("[rrf] requires at least 2 retrievers", "illegal_argument_exception")
            page, self._page = self._page or size, None
            window = int(body.get("rank_window_size", max(page, 10)))
            constant = int(body.get("rank_constant", 60))
            if window < page:
                raise bad(
                    f"[rank_window_size: {window}] must be greater than or equal to [size: {page}]",
                    "illegal_argument_exception",
                )
            if constant < 1:
                raise bad(
                    "[rank_constant] must be greater or equal to [1] for [rrf]", "illegal_argument_exception"
                )
            fused: dict[str, Match] = {}
            for child in children:
                if isinstance(child, Mapping) and "retriever" in child:
                    raise unsupported("[rrf] weighted child retrievers")
                ranked, _ = self._retriever(child, window, filters)
                for rank, (doc_id, hit) in enumerate(ranked[:window], start=1):
                    entry = fused.setdefault(doc_id, Match(0.0))
                    entry.score += 1.0 / (constant + rank)
                    entry.names |= hit.names
                    for name, inner in hit.inner.items():
                        entry.inner.setdefault(name, inner)
                        entry.inner_specs.setdefault(name, hit.inner_specs[name])
                    for name, chunks in hit.chunks.items():
                        entry.chunks.setdefault(name, chunks)
            ranked = sorted(fused.items(), key=lambda kv: (-kv[1].score, self.order[kv[0]]))
            return ranked[:window], len(ranked)
        raise bad(
            f"unknown retriever [{kind}] (or not implemented by the ES stand-in)", "x_content_parse_exception"
        )

    def rank(
        self, body: Mapping[str, Any], params: Mapping[str, str] | None = None
    ) -> tuple[list[tuple[str, Match]], int]:
        """Every matching document, best first, and the total (before ``from``/``size``)."""
        params = params or {}
        for key in body:
            if key in NOT_IMPLEMENTED:
                raise unsupported(f"[{key}]")
            if key not in BODY_KEYS:
                raise bad(f"Unknown key for a VALUE in [{key}].")
        size, offset = self.window(body, params)
        if "search_type" in params and body.get("knn"):
            raise bad(
                "cannot set [search_type] when using [knn] search, since the search type is determined "
                "automatically",
                "illegal_argument_exception",
            )
        if "retriever" in body:
            if "query" in body or "knn" in body:
                raise bad("cannot specify [retriever] and [query] or [knn]", "illegal_argument_exception")
            self._page = size
            ranked, total = self._retriever(body["retriever"], size + offset)
        else:
            ranked, total = self._ranked(body, size + offset)
        if "min_score" in body:
            ranked = [(d, m) for d, m in ranked if m.score >= float(body["min_score"])]
            total = len(ranked)
        return ranked, total

    @staticmethod
    def window(body: Mapping[str, Any], params: Mapping[str, str]) -> tuple[int, int]:
        size = int(params.get("size", body.get("size", 10)))
        offset = int(params.get("from", body.get("from", 0)))
        if size < 0 or offset < 0:
            raise bad("[size] and [from] must be non-negative", "illegal_argument_exception")
        return size, offset

    def search(self, body: Mapping[str, Any], params: Mapping[str, str] | None = None) -> dict[str, Any]:
        params = params or {}
        ranked, total = self.rank(body, params)
        size, offset = self.window(body, params)
        hits = [self.hit(doc_id, found, body, params) for doc_id, found in ranked[offset : offset + size]]
        return render(hits, total, body, params)

    def hit(
        self, doc_id: str, found: Match, body: Mapping[str, Any], params: Mapping[str, str]
    ) -> dict[str, Any]:
        spec = source_spec(body, params)
        hit: dict[str, Any] = {"_index": self.index, "_id": doc_id, "_score": found.score}
        includes, excludes = source_filter(spec)
        if includes is not None:
            hit["_source"] = filter_source(self.docs[doc_id], includes, excludes)
        wanted = _field_patterns(body.get("fields", []))
        if wanted:
            if "_inference_fields" in wanted and includes is not None:
                extra = self.inference_source(doc_id)
                if extra:
                    hit["_source"]["_inference_fields"] = extra
            picked = self.fields(self.docs[doc_id], wanted)
            if picked:
                hit["fields"] = picked
        if found.inner_specs:
            hit["inner_hits"] = {
                name: self._inner_hits(doc_id, found.inner.get(name, []), *found.inner_specs[name])
                for name in found.inner_specs
            }
        if found.names:
            hit["matched_queries"] = sorted(found.names)
        highlight = self._highlight(doc_id, found, body.get("highlight"))
        if highlight:
            hit["highlight"] = highlight
        return hit

    def inference_source(self, doc_id: str) -> dict[str, Any]:
        """The ``_inference_fields`` metadata of a document, as ES shows it in ``_source``."""
        out: dict[str, Any] = {}
        for path, entry in self.inference.get(doc_id, {}).items():
            out[path] = {
                "inference": {
                    "inference_id": entry["inference_id"],
                    "model_settings": entry["model_settings"],
                    "chunks": {
                        path: [
                            {"start_offset": s, "end_offset": e, "embeddings": list(v)}
                            for s, e, v in entry["chunks"]
                        ]
                    },
                }
            }
        return out

    def fields(self, source: Any, patterns: Sequence[str], prefix: str = "") -> dict[str, Any]:
        """The ``fields`` section: typed values of the mapped leaf fields matching ``patterns``."""
        out: dict[str, Any] = {}
        for path, spec in self.mappings.leaves():
            if prefix and not path.startswith(prefix):
                continue
            if not any(fnmatch.fnmatchcase(path, p) for p in patterns):
                continue
            nested = self.mappings.nested_prefix(path)
            if nested is not None and nested != prefix.rstrip("."):
                group = out.setdefault(nested, [])
                objects = [o for o in values(source, nested) if isinstance(o, dict)]
                while len(group) < len(objects):
                    group.append({})
                for i, obj in enumerate(objects):
                    rel = path[len(nested) + 1 :]
                    found = _typed(values(obj, Mappings(self._sub(nested)).source_path(rel)), spec)
                    if found:
                        group[i][rel] = found
                continue
            found = _typed(values(source, self.mappings.source_path(path)), spec)
            if found:
                out[path[len(prefix) :]] = found
        for name, group in list(out.items()):
            if isinstance(group, list) and group and all(isinstance(g, dict) for g in group):
                out[name] = [g for g in group if g]
                if not out[name]:
                    del out[name]
        return out

    def _sub(self, path: str) -> dict[str, Any]:
        return dict((self.mappings.field(path) or {}).get("properties", {}))

    def _highlight(self, doc_id: str, found: Match, spec: Any) -> dict[str, list[str]]:
        if not spec:
            return {}
        if not isinstance(spec, Mapping) or not isinstance(spec.get("fields"), Mapping | list):
            raise bad("[highlight] needs [fields]")
        requested = spec["fields"]
        items = (
            list(requested.items())
            if isinstance(requested, Mapping)
            else [next(iter(f.items())) for f in requested]
        )
        out: dict[str, list[str]] = {}
        for name, options in items:
            options = {**{k: v for k, v in spec.items() if k != "fields"}, **(options or {})}
            if self.mappings.kind(name) != "semantic_text" or options.get("type", "semantic") != "semantic":
                raise unsupported(
                    f"highlighting [{name}] (only the semantic highlighter on semantic_text fields is)"
                )
            chunks = found.chunks.get(name)
            entry = self.inference.get(doc_id, {}).get(name)
            if not chunks or not entry:
                continue
            count = int(options.get("number_of_fragments", 5))
            picked = chunks[:count] if count > 0 else chunks
            if options.get("order", "none") != "score":
                picked = sorted(picked)
            text = entry["text"]
            out[name] = [text[entry["chunks"][i][0] : entry["chunks"][i][1]] for i, _ in picked]
        return out

    def _inner_hits(
        self, doc_id: str, scored: list[tuple[int, float]], path: str, spec: Mapping[str, Any]
    ) -> dict[str, Any]:
        size = int(spec.get("size", 3))
        objects = values(self.docs[doc_id], path)
        includes, excludes = source_filter(spec.get("_source", True))
        inner_mappings = Mappings(self._sub(path))
        hits = []
        for offset, score in scored[:size]:
            hit: dict[str, Any] = {
                "_index": self.index,
                "_id": doc_id,
                "_nested": {"field": path, "offset": offset},
                "_score": score,
            }
            obj = objects[offset]
            if includes is not None:
                hit["_source"] = filter_source(
                    obj,
                    [i.removeprefix(path + ".") for i in includes],
                    [e.removeprefix(path + ".") for e in excludes],
                )
            patterns = [p.removeprefix(path + ".") for p in _field_patterns(spec.get("fields", []))]
            if patterns:
                picked = {}
                for rel, leaf in inner_mappings.leaves():
                    if any(fnmatch.fnmatchcase(rel, p) for p in patterns):
                        found = _typed(values(obj, inner_mappings.source_path(rel)), leaf)
                        if found:
                            picked[rel] = found
                if picked:
                    hit["fields"] = {path: [picked]}
            hits.append(hit)
        return {
            "hits": {
                "total": {"value": len(scored), "relation": "eq"},
                "max_score": scored[0][1] if scored else None,
                "hits": hits,
            }
        }


QUERIES = {
    "match_all",
    "match_none",
    "match",
    "term",
    "terms",
    "range",
    "exists",
    "ids",
    "bool",
    "nested",
    "knn",
    "semantic",
}


def validate_query(query: Any) -> None:
    """Refuse a query the stand-in cannot evaluate, whether or not any document would reach it."""
    if not isinstance(query, Mapping) or len(query) != 1:
        raise bad("a query must be an object with exactly one query type")
    kind, spec = next(iter(query.items()))
    if kind not in QUERIES:
        raise bad(f"unknown query [{kind}] (or not implemented by the ES stand-in)")
    if kind == "bool":
        for name in ("must", "filter", "should", "must_not"):
            raw = spec.get(name, [])
            for clause in [raw] if isinstance(raw, Mapping) else raw:
                validate_query(clause)
    if kind == "nested":
        validate_query(spec.get("query"))


def render(
    hits: list[dict[str, Any]], total: int, body: Mapping[str, Any], params: Mapping[str, str]
) -> dict[str, Any]:
    """A search response around ``hits`` (total hits as ``track_total_hits`` asks)."""
    track = params.get("track_total_hits", body.get("track_total_hits", True))
    as_int = _flag(params.get("rest_total_hits_as_int", False))
    out_hits: dict[str, Any] = {}
    if track not in (False, "false"):
        cap = TOTAL_HITS_CAP if track in (True, "true") else int(track)
        value, relation = (total, "eq") if total <= cap else (cap, "gte")
        out_hits["total"] = value if as_int else {"value": value, "relation": relation}
    elif as_int:
        out_hits["total"] = -1
    out_hits["max_score"] = max((h["_score"] for h in hits), default=None)
    out_hits["hits"] = hits
    return {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": out_hits,
    }


def source_spec(body: Mapping[str, Any], params: Mapping[str, str]) -> Any:
    spec: Any = body.get("_source", True)
    if "_source" in params:
        spec = {"true": True, "false": False}.get(params["_source"], params["_source"].split(","))
    if "_source_includes" in params or "_source_excludes" in params:
        spec = {
            "includes": [p for p in params.get("_source_includes", "").split(",") if p],
            "excludes": [p for p in params.get("_source_excludes", "").split(",") if p],
        }
    return spec


def _field_arg(spec: Mapping[str, Any]) -> tuple[str, Any]:
    for key, value in spec.items():
        if key not in ("boost", "_name"):
            return key, value
    raise bad("query malformed, no field")


def _field_patterns(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    return [str(f["field"]) if isinstance(f, Mapping) else str(f) for f in items]


def _typed(found: list[Any], spec: Mapping[str, Any]) -> list[Any]:
    """Values as the ``fields`` API returns them for the field's type."""
    kind = spec.get("type", "object")
    out: list[Any] = []
    for v in found:
        if v is None:
            continue
        if kind in ("keyword", "text", "semantic_text", "match_only_text"):
            out.append(
                ("true" if v else "false")
                if isinstance(v, bool)
                else (v if isinstance(v, str) else json.dumps(v))
            )
        elif kind in ("long", "integer", "short", "byte"):
            try:
                out.append(int(float(v)))
            except (TypeError, ValueError):
                continue
        elif kind in ("float", "double", "half_float", "scaled_float"):
            try:
                out.append(float(v))
            except (TypeError, ValueError):
                continue
        elif kind == "boolean":
            out.append(v if isinstance(v, bool) else str(v) == "true")
        elif kind == "dense_vector":
            return [float(x) for x in found]
        else:
            out.append(v)
    return out


def _flag(value: Any) -> bool:
    return value in (True, "true", "")


def _check_rescore(spec: Any) -> None:
    if spec is None:
        return
    oversample = spec.get("oversample") if isinstance(spec, Mapping) else None
    if not isinstance(oversample, int | float) or not (oversample == 0 or 1 <= oversample <= 10):
        raise bad(
            "[rescore_vector] requires [oversample] to be 0 (off) or between 1.0 and 10.0",
            "illegal_argument_exception",
        )


def _copy(found: Match) -> Match:
    return Match(
        found.score, dict(found.inner), dict(found.inner_specs), set(found.names), dict(found.chunks)
    )


def _same(have: Any, want: Any) -> bool:
    if isinstance(have, bool) or isinstance(want, bool):
        return str(have).lower() == str(want).lower()
    if isinstance(have, int | float) and not isinstance(want, bool):
        try:
            return float(have) == float(want)
        except (TypeError, ValueError):
            return False
    return str(have) == str(want)


def _bound(value: Any, op: str, limit: Any) -> bool:
    try:
        v, lim = float(value), float(limit)
    except (TypeError, ValueError):
        v, lim = str(value), str(limit)  # type: ignore[assignment]
    return {"gt": v > lim, "gte": v >= lim, "lt": v < lim, "lte": v <= lim}[op]


def _vector(doc: Any, path: str) -> list[float] | None:
    found = values(doc, path)
    if found and all(isinstance(x, int | float) and not isinstance(x, bool) for x in found):
        return [float(x) for x in found]
    return None


def _merge(into: Match, other: Match) -> None:
    into.score += other.score
    into.names |= other.names
    for name, inner in other.inner.items():
        into.inner.setdefault(name, inner)
        into.inner_specs.setdefault(name, other.inner_specs[name])
    for name, chunks in other.chunks.items():
        into.chunks.setdefault(name, chunks)


def source_filter(spec: Any) -> tuple[list[str] | None, list[str]]:
    """(includes, excludes) of a ``_source`` option; includes None means no source at all."""
    if spec is False:
        return None, []
    if spec is True or spec is None:
        return [], []
    if isinstance(spec, str):
        return [spec], []
    if isinstance(spec, list):
        return [str(s) for s in spec], []
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"includes", "include", "excludes", "exclude"}
        if unknown:
            raise unsupported(f"[_source] option {sorted(unknown)}")
        inc = spec.get("includes", spec.get("include", []))
        exc = spec.get("excludes", spec.get("exclude", []))
        return ([inc] if isinstance(inc, str) else list(inc)), ([exc] if isinstance(exc, str) else list(exc))
    raise bad("[_source] must be a boolean, a string, a list or an object")


def _selected(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in patterns)


def _on_the_way(path: str, patterns: Sequence[str]) -> bool:
    return any(p.startswith(path + ".") or fnmatch.fnmatchcase(path, p.split(".")[0]) for p in patterns)


def filter_source(source: Any, includes: Sequence[str], excludes: Sequence[str], prefix: str = "") -> Any:
    """``source`` with only ``includes`` (all when empty) and without ``excludes`` (dotted paths)."""
    if not isinstance(source, dict):
        return source
    out: dict[str, Any] = {}
    for key, value in source.items():
        path = f"{prefix}{key}"
        if _selected(path, excludes):
            continue
        if includes and not _selected(path, includes):
            if not _on_the_way(path, includes) or not isinstance(value, dict | list):
                continue
        keep_all = not includes or _selected(path, includes)
        if isinstance(value, dict):
            out[key] = filter_source(value, [] if keep_all else includes, excludes, path + ".")
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            out[key] = [filter_source(v, [] if keep_all else includes, excludes, path + ".") for v in value]
        else:
            out[key] = value
    return out
