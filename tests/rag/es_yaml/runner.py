"""A compact runner for Elasticsearch's own YAML REST tests (tests only).

It runs the vendored files under this folder (see README.md) against any cluster URL: the ES
stand-in or a real cluster. Requests go through the official client's ``perform_request``
with plain JSON (the client adds its compatible-with media type, as for every rag request).

Supported, as ES's runner does them: ``setup``/``teardown`` sections; the steps ``do``
(``catch``, ``headers``, ``ignore``, ``allowed_warnings``), ``match`` (deep equality, ``/regex/``
strings, ``$stash`` values), ``length``, ``is_true``, ``is_false``, ``gt``/``gte``/``lt``/``lte``,
``close_to``, ``contains``, ``exists``, ``set``; ``skip`` (``version``, ``cluster_features``,
``features``, ``awaits_fix``, ``known_issues``) and ``requires`` (``cluster_features``,
``test_runner_features``, ``capabilities``). Cluster features are read the way ES's own test
framework reads them (``GET _cluster/state?filter_path=nodes_features``), ``gte_vX.Y.Z`` from the
version; capabilities with ``GET _capabilities``. An API missing from ``APIS`` fails the test:
add its URL templates (from ES's ``rest-api-spec/api/*.json``) when vendoring a file that uses it.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from elasticsearch import ApiError, Elasticsearch

ROOT = Path(__file__).parent

# API name -> (method, URL template) in the order ES's spec lists them; the first template whose
# parts are all given wins (as in ES's runner). Bodies go to POST where the spec allows GET|POST.
APIS: dict[str, list[tuple[str, str]]] = {
    "index": [("PUT", "/{index}/_doc/{id}"), ("POST", "/{index}/_doc")],
    "create": [("PUT", "/{index}/_create/{id}")],
    "get": [("GET", "/{index}/_doc/{id}")],
    "delete": [("DELETE", "/{index}/_doc/{id}")],
    "bulk": [("POST", "/{index}/_bulk"), ("POST", "/_bulk")],
    "count": [("POST", "/{index}/_count"), ("POST", "/_count")],
    "search": [("POST", "/{index}/_search"), ("POST", "/_search")],
    "knn_search": [("POST", "/{index}/_knn_search")],
    "indices.create": [("PUT", "/{index}")],
    "indices.get": [("GET", "/{index}")],
    "indices.delete": [("DELETE", "/{index}")],
    "indices.refresh": [("POST", "/{index}/_refresh"), ("POST", "/_refresh")],
    "indices.flush": [("POST", "/{index}/_flush"), ("POST", "/_flush")],
    "indices.get_mapping": [("GET", "/{index}/_mapping"), ("GET", "/_mapping")],
    "indices.put_mapping": [("PUT", "/{index}/_mapping")],
    "indices.put_alias": [("PUT", "/{index}/_alias/{name}")],
    "ingest.put_pipeline": [("PUT", "/_ingest/pipeline/{id}")],
    "ingest.get_pipeline": [("GET", "/_ingest/pipeline/{id}"), ("GET", "/_ingest/pipeline")],
    "ingest.delete_pipeline": [("DELETE", "/_ingest/pipeline/{id}")],
    "inference.put": [
        ("PUT", "/_inference/{task_type}/{inference_id}"),
        ("PUT", "/_inference/{inference_id}"),
    ],
    "inference.delete": [
        ("DELETE", "/_inference/{task_type}/{inference_id}"),
        ("DELETE", "/_inference/{inference_id}"),
    ],
}
NDJSON_APIS = {"bulk"}
CATCHES = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "missing": 404,
    "request_timeout": 408,
    "conflict": 409,
    "unavailable": 503,
}
RUNNER_FEATURES = {
    "headers",
    "close_to",
    "contains",
    "allowed_warnings",
    "allowed_warnings_regex",
    "capabilities",
    "default_shards",
    "stash_in_path",
}
PART = re.compile(r"\{(\w+)\}")


class Skip(Exception):
    """The test does not apply to this cluster or runner; the message says why."""


class Failure(AssertionError):
    """A step of the test failed; the message names the step."""


@dataclass(frozen=True)
class YamlTest:
    file: str
    name: str
    setup: list[dict[str, Any]]
    teardown: list[dict[str, Any]]
    steps: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


def load(root: Path = ROOT) -> list[YamlTest]:
    """Every test section of every ``*.yml`` under ``root``, in file order."""
    tests = []
    for path in sorted(root.rglob("*.yml")):
        sections: dict[str, list[dict[str, Any]]] = {}
        order: list[str] = []
        with path.open(encoding="utf-8") as handle:
            for doc in yaml.safe_load_all(handle):
                for name, steps in (doc or {}).items():
                    sections[name] = steps or []
                    order.append(name)
        rel = path.relative_to(root).as_posix()
        for name in order:
            if name not in ("setup", "teardown"):
                tests.append(
                    YamlTest(
                        rel, name, sections.get("setup", []), sections.get("teardown", []), sections[name]
                    )
                )
    return tests


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@dataclass
class Cluster:
    """A cluster as the runner sees it: client, version and the features it declares."""

    client: Elasticsearch
    version: tuple[int, ...] = ()
    features: set[str] = field(default_factory=set)

    @classmethod
    def connect(cls, url: str, api_key: str | None = None) -> Cluster:
        client = Elasticsearch(url, api_key=api_key) if api_key else Elasticsearch(url)
        cluster = cls(client.options(request_timeout=30))
        cluster.version = _version(str(client.info()["version"]["number"]))
        try:
            state = client.perform_request(
                "GET", "/_cluster/state", params={"filter_path": "nodes_features"}, headers=JSON
            ).body
            per_node = [set(n.get("features", [])) for n in state.get("nodes_features", [])]
            cluster.features = set.intersection(*per_node) if per_node else set()
        except ApiError:
            cluster.features = set()
        return cluster

    def has_feature(self, name: str) -> bool:
        if name.startswith("gte_v"):
            return self.version >= _version(name)
        return name in self.features

    def supports(self, spec: Mapping[str, Any]) -> bool:
        params = {
            "method": spec.get("method", "GET"),
            "path": spec["path"],
            "capabilities": ",".join(_as_list(spec.get("capabilities", []))),
        }
        if spec.get("parameters"):
            params["parameters"] = ",".join(_as_list(spec["parameters"]))
        try:
            found = self.client.perform_request("GET", "/_capabilities", params=params, headers=JSON)
        except ApiError:
            return False
        return found.body.get("supported") is True

    def resources(self) -> dict[str, set[str]]:
        """Indices, pipelines and inference endpoints that exist now (for cleaning a real cluster)."""
        ok = self.client.options(ignore_status=404)
        indices = ok.perform_request(
            "GET", "/_cat/indices", params={"format": "json", "h": "index"}, headers=JSON
        ).body
        pipelines = ok.perform_request("GET", "/_ingest/pipeline", headers=JSON).body
        endpoints = ok.perform_request("GET", "/_inference/_all", headers=JSON).body
        return {
            "indices": {i["index"] for i in indices if isinstance(indices, list)},
            "pipelines": set(pipelines) if isinstance(pipelines, dict) else set(),
            "endpoints": {e["inference_id"] for e in (endpoints or {}).get("endpoints", [])},
        }

    def remove_new(self, before: dict[str, set[str]]) -> None:
        """Delete what a test created, leaving everything that existed before it."""
        now = self.resources()
        ok = self.client.options(ignore_status=(400, 404))
        for name in sorted(now["indices"] - before["indices"]):
            ok.perform_request("DELETE", f"/{quote(name, safe='')}", headers=JSON)
        for name in sorted(now["pipelines"] - before["pipelines"]):
            ok.perform_request("DELETE", f"/_ingest/pipeline/{quote(name, safe='')}", headers=JSON)
        for name in sorted(now["endpoints"] - before["endpoints"]):
            ok.perform_request(
                "DELETE", f"/_inference/{quote(name, safe='')}", params={"force": "true"}, headers=JSON
            )


JSON = {"accept": "application/json", "content-type": "application/json"}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_param(v) for v in value)
    return str(value)


class Runner:
    """Runs one YamlTest against one Cluster; raises Skip or Failure."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.stash: dict[str, Any] = {}
        self.body: Any = None

    # -- skips -----------------------------------------------------------------------------

    def check_skip(self, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            kind, spec = next(iter(step.items()))
            if kind == "skip":
                self._skip(spec)
            elif kind == "requires":
                self._requires(spec)
            else:
                return

    def _skip(self, spec: Mapping[str, Any]) -> None:
        reason = spec.get("reason", "")
        if "awaits_fix" in spec:
            raise Skip(f"awaits fix: {spec['awaits_fix']}")
        if "known_issues" in spec:
            raise Skip(f"known issue: {reason}")
        missing = [f for f in _as_list(spec.get("features", [])) if f not in RUNNER_FEATURES]
        if missing:
            raise Skip(f"the runner lacks {missing}")
        if "version" in spec and self._in_range(str(spec["version"])):
            raise Skip(f"version {spec['version']}: {reason}")
        present = [f for f in _as_list(spec.get("cluster_features", [])) if self.cluster.has_feature(f)]
        if present:
            raise Skip(f"cluster has {present}: {reason}")

    def _requires(self, spec: Mapping[str, Any]) -> None:
        reason = spec.get("reason", "")
        missing = [f for f in _as_list(spec.get("test_runner_features", [])) if f not in RUNNER_FEATURES]
        if missing:
            raise Skip(f"the runner lacks {missing}")
        absent = [f for f in _as_list(spec.get("cluster_features", [])) if not self.cluster.has_feature(f)]
        if absent:
            raise Skip(f"cluster lacks {absent}: {reason}")
        for capability in spec.get("capabilities", []):
            if not self.cluster.supports(capability):
                raise Skip(f"cluster lacks capability {capability}: {reason}")

    def _in_range(self, ranges: str) -> bool:
        if ranges.strip() == "all":
            return True
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            lo = _version(low) if low.strip() else (0,)
            hi = _version(high) if high.strip() else (math.inf,)
            if lo <= self.cluster.version <= hi:
                return True
        return False

    # -- running ---------------------------------------------------------------------------

    def run(self, test: YamlTest) -> None:
        self.check_skip(test.setup)
        self.check_skip(test.steps)
        try:
            for step in test.setup + test.steps:
                self.step(step)
        finally:
            for step in test.teardown:
                self.step(step)

    def step(self, step: Mapping[str, Any]) -> None:
        kind, spec = next(iter(step.items()))
        if kind in ("skip", "requires"):
            return
        if kind == "do":
            self.do(dict(spec))
            return
        if kind == "set":
            for path, name in spec.items():
                self.stash[name] = self.value(path)
            return
        if kind in ("is_true", "is_false", "exists"):
            found = self._lookup(str(spec))
            truthy = found not in (None, False, "", 0, "false") and found is not _MISSING
            wanted = kind != "is_false"
            if kind == "exists":
                truthy = found is not _MISSING and found is not None
            if truthy != wanted:
                raise Failure(f"{kind}: {spec} is {found!r}")
            return
        for path, expected in spec.items():
            actual = self.value(path)
            expected = self.resolve(expected)
            if kind == "match":
                if not _matches(actual, expected):
                    raise Failure(f"match {path}: expected {expected!r}, got {actual!r}")
            elif kind == "length":
                if not isinstance(actual, list | dict | str) or len(actual) != expected:
                    raise Failure(f"length {path}: expected {expected}, got {actual!r}")
            elif kind == "close_to":
                if not isinstance(actual, int | float) or abs(actual - expected["value"]) > expected["error"]:
                    raise Failure(f"close_to {path}: expected {expected}, got {actual!r}")
            elif kind == "contains":
                if not isinstance(actual, list) or not any(_matches(a, expected) for a in actual):
                    raise Failure(f"contains {path}: {expected!r} not in {actual!r}")
            elif kind in ("gt", "gte", "lt", "lte"):
                compare = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[kind]
                if not isinstance(actual, int | float) or not compare(actual, expected):
                    raise Failure(f"{kind} {path}: {actual!r} vs {expected!r}")
            else:
                raise Failure(f"the runner does not know the step [{kind}]")

    def do(self, spec: dict[str, Any]) -> None:
        catch = spec.pop("catch", None)
        headers = {k.lower(): str(v) for k, v in spec.pop("headers", {}).items()}
        for name in ("allowed_warnings", "allowed_warnings_regex", "node_selector"):
            spec.pop(name, None)
        if "warnings" in spec or "warnings_regex" in spec:
            raise Failure("the runner does not check response warnings")
        (api, raw_params), *rest = spec.items()
        if rest:
            raise Failure(f"one API per do, got {list(spec)}")
        params = self.resolve(dict(raw_params or {}))
        ignore = {int(s) for s in _as_list(params.pop("ignore", []))}
        body = params.pop("body", None)
        method, path = self._url(api, params)
        query = {k: _param(v) for k, v in params.items() if v is not None}
        headers = {**JSON, **headers}
        payload: Any = None
        if body is not None:
            if api in NDJSON_APIS:
                lines = body.splitlines() if isinstance(body, str) else [_line(b) for b in body]
                payload = ("\n".join(line for line in lines if line.strip()) + "\n").encode()
                headers["content-type"] = "application/x-ndjson"
            else:
                payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        status, self.body = self._send(method, path, query, headers, payload)
        if catch is None:
            if status >= 400 and status not in ignore:
                raise Failure(f"{api} answered {status}: {json.dumps(self.body)[:600]}")
            return
        if catch in CATCHES:
            if status != CATCHES[catch]:
                raise Failure(f"{api}: expected {catch} ({CATCHES[catch]}), got {status}: {self.body}")
        elif catch == "request":
            if status < 400 or status in (400, 401, 403, 404, 408, 409):
                raise Failure(f"{api}: expected another error status, got {status}")
        elif isinstance(catch, str) and catch.startswith("/"):
            if status < 400 or not re.search(catch[1:-1], json.dumps(self.body)):
                raise Failure(f"{api}: expected an error matching {catch}, got {status}: {self.body}")
        else:
            raise Failure(f"the runner does not know catch [{catch}]")

    def _url(self, api: str, params: dict[str, Any]) -> tuple[str, str]:
        if api not in APIS:
            raise Failure(f"API [{api}] is not in the runner's APIS table")
        for method, template in APIS[api]:
            parts = PART.findall(template)
            if all(params.get(p) not in (None, "") for p in parts):
                path = template
                for part in parts:
                    path = path.replace("{" + part + "}", quote(_param(params.pop(part)), safe=",*"))
                return method, path
        raise Failure(f"no URL of [{api}] fits the parameters {sorted(params)}")

    def _send(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes | None
    ) -> tuple[int, Any]:
        try:
            found = self.cluster.client.perform_request(
                method, path, params=query or None, headers=headers, body=body
            )
        except ApiError as exc:
            return exc.meta.status, exc.body
        return found.meta.status, found.body

    # -- values ----------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """``value`` with ``$name`` and ``${name}`` replaced by stashed values."""
        if isinstance(value, str):
            if value.startswith("$") and value[1:] in self.stash:
                return self.stash[value[1:]]
            return re.sub(r"\$\{(\w+)\}", lambda m: str(self.stash.get(m.group(1), m.group(0))), value)
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def value(self, path: str) -> Any:
        found = self._lookup(path)
        if found is _MISSING:
            raise Failure(f"{path} is not in the response {json.dumps(self.body)[:600]}")
        return found

    def _lookup(self, path: str) -> Any:
        if path in ("$body", ""):
            return self.body
        node = self.body
        for raw in _split(path):
            part = self.resolve(raw)
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and str(part).isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return _MISSING
        return node


_MISSING = object()


def _split(path: str) -> Iterator[str]:
    """Dotted path parts; ``\\.`` is a literal dot."""
    for part in re.split(r"(?<!\\)\.", path):
        yield part.replace("\\.", ".")


def _line(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item)


def _matches(actual: Any, expected: Any) -> bool:
    if (
        isinstance(expected, str)
        and len(expected) > 1
        and expected.startswith("/")
        and expected.endswith("/")
    ):
        return isinstance(actual, str) and re.search(expected[1:-1], actual, re.X) is not None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(actual) == float(expected)
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(actual) == set(expected)
            and all(_matches(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected)
