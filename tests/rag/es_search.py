"""The search half of the ES stand-in: query DSL, kNN, RRF, source filtering (tests only).

Implements the subset rag uses, with Elasticsearch's semantics:
- queries: ``match_all``, ``match`` (BM25, k1=1.2, b=0.75, idf = ln(1 + (N - n + 0.5)/(n + 0.5)),
  lowercase word tokens), ``term``, ``terms``, ``range``, ``exists``, ``ids``, ``bool``
  (``must``/``filter``/``should``/``must_not``, ``minimum_should_match``), ``nested`` (score
  modes, ``inner_hits``);
- ``knn`` (one clause or a list): exact cosine over every document, ``_score = (1 + cos) / 2``,
  top ``k`` per clause, ``filter``, nested vector fields (doc score = best nested score,
  ``inner_hits``), scores of several clauses and a query summed per document;
- ``retriever``: ``standard``, ``knn`` and ``rrf`` (``rank_window_size``, ``rank_constant``);
- ``_source``: bool, includes list, or ``{"includes", "excludes"}`` with ``*`` wildcards.
Anything else is refused with a 400 that says the stand-in does not implement it, so a
test cannot pass by accident on an unsupported request.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WORD = re.compile(r"\w+")


class SearchError(Exception):
    """An ES error response: status, type, reason."""

    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason


def bad(reason: str, kind: str = "parsing_exception") -> SearchError:
    return SearchError(400, kind, reason)


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


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


@dataclass
class Mappings:
    """Field types from an index's mappings (``properties``, object and nested)."""

    properties: dict[str, Any]

    def field(self, path: str) -> dict[str, Any] | None:
        props = self.properties
        parts = path.split(".")
        for i, part in enumerate(parts):
            spec = props.get(part)
            if spec is None:
                return None
            if i == len(parts) - 1:
                return dict(spec)
            props = spec.get("properties", {})
        return None

    def nested_prefix(self, path: str) -> str | None:
        """The nested field that ``path`` is inside of, if any."""
        parts = path.split(".")
        for i in range(1, len(parts)):
            spec = self.field(".".join(parts[:i]))
            if spec is not None and spec.get("type") == "nested":
                return ".".join(parts[:i])
        return None

    def is_text(self, path: str) -> bool:
        spec = self.field(path)
        return spec is not None and spec.get("type") == "text"


@dataclass
class Match:
    score: float
    inner: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    inner_specs: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


class Searcher:
    """Evaluates search bodies over ``docs`` (id -> source) of one index."""

    def __init__(self, docs: Mapping[str, dict[str, Any]], mappings: Mappings, index: str) -> None:
        self.docs = docs
        self.mappings = mappings
        self.index = index
        self._stats: dict[str, tuple[int, float, dict[str, int]]] = {}

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
            units = self._units(path)
            lengths = []
            df: dict[str, int] = {}
            for unit in units:
                tokens = [t for v in values(unit, path) for t in analyze(v)]
                if tokens:
                    lengths.append(len(tokens))
                for t in set(tokens):
                    df[t] = df.get(t, 0) + 1
            avg = sum(lengths) / len(lengths) if lengths else 1.0
            self._stats[path] = (len(lengths), avg, df)
        return self._stats[path]

    def _bm25(self, doc: Any, path: str, query: str, operator: str) -> float | None:
        if not self.mappings.is_text(path):
            wanted = str(query)
            return 1.0 if any(str(v) == wanted for v in values(doc, path)) else None
        tokens = [t for v in values(doc, path) for t in analyze(v)]
        terms = analyze(query)
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
        if kind == "match_all":
            return Match(float(spec.get("boost", 1.0)))
        if kind == "match":
            path, arg = next(iter(spec.items()))
            text, operator = (
                (arg.get("query"), arg.get("operator", "or")) if isinstance(arg, dict) else (arg, "or")
            )
            score = self._bm25(doc, path, str(text), str(operator).lower())
            return None if score is None else Match(score)
        if kind in ("term", "terms"):
            path, arg = next((k, v) for k, v in spec.items() if k != "boost")
            wanted = arg.get("value") if kind == "term" and isinstance(arg, dict) else arg
            options = [wanted] if kind == "term" else list(wanted)
            have = values(doc, path)
            if self.mappings.is_text(path):
                have = [t for v in have for t in analyze(v)]
            return Match(1.0) if any(_same(h, o) for h in have for o in options) else None
        if kind == "range":
            path, bounds = next(iter(spec.items()))
            for v in values(doc, path):
                if all(
                    _bound(v, op, limit) for op, limit in bounds.items() if op in ("gt", "gte", "lt", "lte")
                ):
                    return Match(1.0)
            return None
        if kind == "exists":
            return Match(1.0) if any(v is not None for v in values(doc, spec["field"])) else None
        if kind == "ids":
            return Match(1.0) if doc_id in set(spec.get("values", [])) else None
        if kind == "bool":
            return self._bool(spec, doc, doc_id)
        if kind == "nested":
            return self._nested(spec, doc)
        raise bad(f"unknown query [{kind}] (or not implemented by the ES stand-in)")

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
        return total

    def _nested(self, spec: Mapping[str, Any], doc: Any) -> Match | None:
        path = spec["path"]
        if (self.mappings.field(path) or {}).get("type") != "nested":
            raise SearchError(
                400, "query_shard_exception", f"[nested] failed to find nested object under path [{path}]"
            )
        scored = []
        objects = doc.get(path, []) if isinstance(doc, dict) else []
        for offset, obj in enumerate(objects if isinstance(objects, list) else [objects]):
            found = self.match(spec["query"], {path: obj}, None)
            if found is not None:
                scored.append((offset, found.score))
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
        result = Match(score)
        if "inner_hits" in spec:
            inner = spec["inner_hits"]
            name = inner.get("name", path)
            result.inner[name] = sorted(scored, key=lambda x: -x[1])
            result.inner_specs[name] = (path, inner)
        return result

    # -- kNN ---------------------------------------------------------------------------

    def knn(self, clause: Mapping[str, Any], size: int) -> dict[str, Match]:
        """The top ``k`` documents of one kNN clause."""
        path = clause.get("field")
        spec = self.mappings.field(str(path)) if path else None
        if spec is None:
            raise bad(
                f"failed to create query: field [{path}] does not exist in the mapping",
                "illegal_argument_exception",
            )
        if spec.get("type") != "dense_vector" or not spec.get("index", True):
            raise bad(
                f"[knn] queries are only supported on [dense_vector] fields with index: true, not [{path}]",
                "illegal_argument_exception",
            )
        vector = clause.get("query_vector")
        if not isinstance(vector, list):
            raise bad(
                "[knn] requires a [query_vector] (query_vector_builder is not implemented by the stand-in)"
            )
        if len(vector) != spec["dims"]:
            raise bad(
                f"The query vector has a different number of dimensions [{len(vector)}] than the document "
                f"vectors [{spec['dims']}].",
                "illegal_argument_exception",
            )
        k = int(clause.get("k", size))
        num_candidates = int(clause.get("num_candidates", min(max(int(1.5 * k), k), 10_000)))
        if num_candidates < k:
            raise bad("[num_candidates] cannot be less than [k]", "illegal_argument_exception")
        if num_candidates > 10_000:
            raise bad("[num_candidates] cannot exceed [10000]", "illegal_argument_exception")
        filters = clause.get("filter", [])
        filters = [filters] if isinstance(filters, Mapping) else list(filters)
        prefix = self.mappings.nested_prefix(str(path))
        scored: dict[str, Match] = {}
        for doc_id, doc in self.docs.items():
            if not all(self.match(f, doc, doc_id) is not None for f in filters):
                continue
            if prefix is None:
                vecs = [v for v in [_vector(doc, str(path))] if v is not None]
                if vecs:
                    scored[doc_id] = Match((1 + cosine(vector, vecs[0])) / 2)
                continue
            inner = []
            for offset, obj in enumerate(values(doc, prefix)):
                v = _vector({prefix: obj}, str(path))
                if v is not None:
                    inner.append((offset, (1 + cosine(vector, v)) / 2))
            if inner:
                inner.sort(key=lambda x: -x[1])
                found = Match(inner[0][1])
                if "inner_hits" in clause:
                    name = clause["inner_hits"].get("name", prefix)
                    found.inner[name] = inner
                    found.inner_specs[name] = (prefix, clause["inner_hits"])
                scored[doc_id] = found
        boost = float(clause.get("boost", 1.0))
        top = sorted(scored.items(), key=lambda kv: -kv[1].score)[:k]
        for _, found in top:
            found.score *= boost
        return dict(top)

    # -- search ------------------------------------------------------------------------

    def _ranked(self, body: Mapping[str, Any], size: int) -> tuple[list[tuple[str, Match]], int]:
        combined: dict[str, Match] = {}
        query = body.get("query")
        clauses = body.get("knn", [])
        clauses = [clauses] if isinstance(clauses, Mapping) else list(clauses)
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
        order = list(self.docs)
        ranked = sorted(combined.items(), key=lambda kv: (-kv[1].score, order.index(kv[0])))
        return ranked, len(combined)

    def _retriever(self, spec: Mapping[str, Any], size: int) -> tuple[list[tuple[str, Match]], int]:
        if len(spec) != 1:
            raise bad("a retriever must have exactly one type")
        kind, body = next(iter(spec.items()))
        if kind == "standard":
            query = body.get("query", {"match_all": {}})
            if "filter" in body:
                flt = body["filter"]
                query = {
                    "bool": {"must": [query], "filter": [flt] if isinstance(flt, Mapping) else list(flt)}
                }
            return self._ranked({"query": query}, size)
        if kind == "knn":
            found = self.knn(body, size)
            ranked = sorted(found.items(), key=lambda kv: -kv[1].score)
            return ranked, len(ranked)
        if kind == "rrf":
            children = body.get("retrievers", [])
            if len(children) < 2:
                raise bad("[rrf] requires at least 2 retrievers", "illegal_argument_exception")
            window = int(body.get("rank_window_size", size))
            constant = int(body.get("rank_constant", 60))
            if window < size:
                raise bad(
                    f"[rank_window_size: {window}] must be greater than or equal to [size: {size}]",
                    "illegal_argument_exception",
                )
            if constant < 1:
                raise bad(
                    "[rank_constant] must be greater or equal to [1] for [rrf]", "illegal_argument_exception"
                )
            fused: dict[str, Match] = {}
            for child in children:
                ranked, _ = self._retriever(child, window)
                for rank, (doc_id, found) in enumerate(ranked[:window], start=1):
                    entry = fused.setdefault(doc_id, Match(0.0))
                    entry.score += 1.0 / (constant + rank)
                    for name, inner in found.inner.items():
                        entry.inner.setdefault(name, inner)
                        entry.inner_specs.setdefault(name, found.inner_specs[name])
            order = list(self.docs)
            ranked = sorted(fused.items(), key=lambda kv: (-kv[1].score, order.index(kv[0])))
            return ranked, len(ranked)
        raise bad(
            f"unknown retriever [{kind}] (or not implemented by the ES stand-in)", "x_content_parse_exception"
        )

    def search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"query", "knn", "retriever", "size", "from", "_source", "track_total_hits"}
        if unknown:
            raise bad(f"the ES stand-in does not implement search keys {sorted(unknown)}")
        size = int(body.get("size", 10))
        offset = int(body.get("from", 0))
        if "retriever" in body:
            if "query" in body or "knn" in body:
                raise bad("cannot specify [retriever] and [query] or [knn]", "illegal_argument_exception")
            ranked, total = self._retriever(body["retriever"], size)
        else:
            ranked, total = self._ranked(body, size)
        includes, excludes = source_filter(body.get("_source", True))
        hits = []
        for doc_id, found in ranked[offset : offset + size]:
            hit: dict[str, Any] = {"_index": self.index, "_id": doc_id, "_score": found.score}
            if includes is not None:
                hit["_source"] = filter_source(self.docs[doc_id], includes, excludes)
            if found.inner_specs:
                hit["inner_hits"] = {
                    name: self._inner_hits(doc_id, found.inner.get(name, []), *found.inner_specs[name])
                    for name in found.inner_specs
                }
            hits.append(hit)
        return {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": hits[0]["_score"] if hits else None,
                "hits": hits,
            },
        }

    def _inner_hits(
        self, doc_id: str, scored: list[tuple[int, float]], path: str, spec: Mapping[str, Any]
    ) -> dict[str, Any]:
        size = int(spec.get("size", 3))
        objects = values(self.docs[doc_id], path)
        includes, excludes = source_filter(spec.get("_source", True))
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
            fields = spec.get("fields", [])
            if fields:
                picked: dict[str, Any] = {}
                for name in fields:
                    rel = str(name).removeprefix(path + ".")
                    found = values(obj, rel)
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
    if found and all(isinstance(x, int | float) for x in found):
        return [float(x) for x in found]
    return None


def _merge(into: Match, other: Match) -> None:
    into.score += other.score
    for name, inner in other.inner.items():
        into.inner.setdefault(name, inner)
        into.inner_specs.setdefault(name, other.inner_specs[name])


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
