"""Schema fuzzing from our own OpenAPI document, plus hand-written nasty requests.

The document says exactly what the parsers accept, so the checks are strict: a generated
request that fits the schema gets 200, one that does not gets 413 or 422 in the route's
envelope, and every response matches its documented status, content type, schema and
headers. It runs on the scripted model (fast, many cases) and on the real MiniLM model.
Case count: FUZZ_CASES (default 1,800: two thirds on the scripted model, one third on the
real one; about 90 s on 2 cores).
"""

from __future__ import annotations

import gzip
import os

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from server.app import ROUTES

TOTAL_CASES = int(os.environ.get("FUZZ_CASES", "1800"))
PER_GET = 5
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.positive_data_acceptance,
    checks.negative_data_rejection,
]
# A schema-valid request must get 200; an invalid one 413 (too many inputs) or 422.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ["200"]},
            "negative_data_rejection": {"expected-statuses": ["413", "422"]},
        }
    }
)


def fuzz(url: str, cases: int) -> dict[int, int]:
    """About ``cases`` generated requests over every documented operation; count by status."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json", config=CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]
    posts = [op for op in operations if op.method.upper() == "POST"]
    per_post = max(1, (cases - PER_GET * (len(operations) - len(posts))) // (2 * len(posts)))
    seen: dict[int, int] = {}
    for operation in operations:
        # a GET without parameters has no invalid form: only positive cases exist
        post = operation.method.upper() == "POST"
        for mode in (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if post else (GenerationMode.POSITIVE,)
        ):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=per_post if post else PER_GET,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                response = case.call_and_validate(base_url=url, checks=CHECKS)
                seen[response.status_code] = seen.get(response.status_code, 0) + 1

            run()
    print(f"\nfuzzed {sum(seen.values())} requests over {len(operations)} operations; {sorted(seen.items())}")
    # schemathesis leaves out the operation that serves the schema itself (tests/api covers it)
    assert {op.path for op in operations} == {route.path for route in ROUTES} - {"/openapi.json"}
    assert sum(seen.values()) >= 0.8 * 2 * per_post * len(posts)
    assert seen.get(200) and seen.get(422) and not any(code >= 500 for code in seen)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health/ready").status_code == 200
        assert client.post("/embed", json={"inputs": "still fine"}).status_code == 200
    return seen


@pytest.mark.slow
def test_fuzzing_the_scripted_model(thread_server) -> None:
    fuzz(thread_server(fake=True, max_client_batch_size=64).url, TOTAL_CASES * 2 // 3)


@pytest.mark.slow
def test_fuzzing_the_real_model(thread_server_shared) -> None:
    fuzz(thread_server_shared.url, TOTAL_CASES // 3)


FRAKTUR = "".join(chr(c) for c in (0x1D518, 0x1D52B, 0x1D526, 0x1D520, 0x1D52C, 0x1D521, 0x1D522))
NASTY: list[tuple[str, bytes, dict[str, str]]] = [
    ("huge string", b'{"inputs": "' + b"a" * 1_500_000 + b'"}', {}),
    ("10k-item list", b'{"inputs": [' + b",".join([b'"x"'] * 10_000) + b"]}", {}),
    ("deeply nested", b'{"inputs": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", {}),
    ("wrong content type", b'{"inputs": "x"}', {"content-type": "text/plain"}),
    ("form body", b"inputs=x", {"content-type": "application/x-www-form-urlencoded"}),
    ("invalid utf-8", b'{"inputs": "\xff\xfe\xfd"}', {}),
    ("lone surrogate escape", b'{"inputs": "\\ud800"}', {}),
    ("NaN", b'{"inputs": "x", "dimensions": NaN}', {}),
    ("Infinity", b'{"inputs": "x", "dimensions": Infinity}', {}),
    ("negative dimensions", b'{"inputs": "x", "dimensions": -5}', {}),
    ("huge dimensions", b'{"inputs": "x", "dimensions": 1e400}', {}),
    ("huge int dimensions", b'{"inputs": "x", "dimensions": 99999999999999999999999999}', {}),
    ("empty string", b'{"inputs": ""}', {}),
    ("whitespace only", b'{"inputs": "   \\n\\t  "}', {}),
    ("non-JSON", b"\x00\x01\x02", {}),
    ("empty body", b"", {}),
    ("null", b"null", {}),
    ("gzip bomb", gzip.compress(b"[" * 1_000_000), {"content-encoding": "gzip"}),
    ("control characters", b'{"inputs": "\\u0000\\u0001\\u001f"}', {}),
    (
        "emoji and RTL",
        orjson.dumps({"inputs": ["😀👍🏽", "مرحبا بالعالم", FRAKTUR]}),
        {},
    ),
]


@pytest.mark.parametrize(("name", "body", "headers"), NASTY, ids=[n for n, _, _ in NASTY])
@pytest.mark.parametrize("path", ["/embed", "/v1/embeddings", "/tokenize"])
def test_nasty_requests_get_documented_4xx_or_200(
    thread_server_shared, name: str, body: bytes, headers: dict[str, str], path: str
) -> None:
    url = thread_server_shared.url
    if path == "/v1/embeddings":
        body = body.replace(b'"inputs"', b'"input"')
    r = httpx.post(
        url + path, content=body, headers={"content-type": "application/json", **headers}, timeout=60
    )
    allowed = (415,) if name in ("wrong content type", "form body") else (200, 413, 422)
    assert r.status_code in allowed, (name, r.status_code, r.text[:200])
    if r.status_code != 200:
        envelope = r.json()
        if path.startswith("/v1/"):
            assert set(envelope["error"]) == {"message", "type", "param", "code"}
        else:
            assert set(envelope) == {"error", "error_type"} and envelope["error"]
    assert httpx.get(url + "/health/ready").status_code == 200
