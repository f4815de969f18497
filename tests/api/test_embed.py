"""Every route and every error row of CONTRACTS.md, in process, on the MiniLM test model."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import pytest

DIMS = 384


async def test_embed_list_returns_unit_vectors_in_order(make_client) -> None:
    client, _ = await make_client()
    texts = ["a cat sat on the mat", "Elasticsearch stores vectors", "a cat sat on the mat"]
    r = await client.post("/embed", json={"inputs": texts})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    vectors = np.array(r.json(), dtype=np.float32)
    assert vectors.shape == (3, DIMS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])
    for header in ("x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time", "x-request-id"):
        assert float(r.headers[header]) >= 0 if header != "x-request-id" else r.headers[header]
    assert r.headers["x-model-id"] == "all-minilm-l6-v2"


async def test_single_string_and_root_route(make_client) -> None:
    client, _ = await make_client()
    one = (await client.post("/embed", json={"inputs": "hello"})).json()
    root = (await client.post("/", json={"inputs": ["hello"], "normalize": True, "truncate": True})).json()
    assert len(one) == 1 and len(one[0]) == DIMS
    np.testing.assert_allclose(one, root, atol=1e-6)


async def test_seed_shape_input(make_client) -> None:
    client, _ = await make_client()
    single = (await client.post("/embed", json={"input": "hello"})).json()
    many = (await client.post("/embed", json={"input": ["hello", "world"]})).json()
    assert set(single) == {"embedding"} and len(single["embedding"]) == DIMS
    assert set(many) == {"embeddings"} and len(many["embeddings"]) == 2
    np.testing.assert_allclose(single["embedding"], many["embeddings"][0], atol=1e-6)


async def test_dimensions_truncate_then_normalize(make_client) -> None:
    client, _ = await make_client()
    full = np.array(
        (await client.post("/embed", json={"inputs": "matryoshka", "normalize": False})).json()[0]
    )
    cut = np.array((await client.post("/embed", json={"inputs": "matryoshka", "dimensions": 64})).json()[0])
    assert cut.shape == (64,)
    np.testing.assert_allclose(cut, full[:64] / np.linalg.norm(full[:64]), atol=1e-5)
    assert abs(np.linalg.norm(full) - 1.0) > 1e-3


async def test_truncation_and_its_refusal(make_client) -> None:
    client, _ = await make_client()
    long_text = "word " * 2000
    ok = await client.post("/embed", json={"inputs": long_text})
    assert ok.status_code == 200
    left = await client.post("/embed", json={"inputs": long_text + " tail", "truncation_direction": "left"})
    assert left.status_code == 200
    refused = await client.post("/embed", json={"inputs": ["short", long_text], "truncate": False})
    assert refused.status_code == 413
    body = refused.json()
    assert body["error_type"] == "Validation" and "tokens" in body["error"] and "input 1" in body["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "`inputs` is required"),
        (b'{"inputs": []}', "empty list"),
        (b'{"inputs": ""}', "empty string"),
        (b'{"inputs": ["ok", ""]}', "inputs[1]"),
        (b'{"inputs": 5}', "string or a list"),
        (b'{"inputs": [1, 2]}', "token-id"),
        (b'{"inputs": "x", "dimensions": 0}', "dimensions"),
        (b'{"inputs": "x", "dimensions": 385}', "1 to 384"),
        (b'{"inputs": "x", "dimensions": true}', "dimensions"),
        (b'{"inputs": "x", "dimensions": "8"}', "dimensions"),
        (b'{"inputs": "x", "normalize": "yes"}', "normalize"),
        (b'{"inputs": "x", "truncation_direction": "up"}', "truncation_direction"),
        (b'{"inputs": "x", "input": "y"}', "not both"),
        (b'{"inputs": "x", "prompt_name": "query"}', "prompt_name"),
        (b'{"inputs": NaN}', "not valid JSON"),
    ],
)
async def test_validation_errors_are_422_with_tei_envelope(make_client, body: bytes, needle: str) -> None:
    client, _ = await make_client()
    r = await client.post("/embed", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert set(r.json()) == {"error", "error_type"}
    assert r.json()["error_type"] == "Validation"
    assert needle in r.json()["error"]


async def test_too_many_inputs_and_too_big_body_are_413(make_client) -> None:
    client, _ = await make_client(max_client_batch_size=4, max_payload_bytes=1000)
    many = await client.post("/embed", json={"inputs": ["x"] * 5})
    assert many.status_code == 413 and "limit is 4" in many.json()["error"]
    big = await client.post("/embed", json={"inputs": "y" * 2000})
    assert big.status_code == 413 and "1000" in big.json()["error"]


async def test_api_key(make_client) -> None:
    client, _ = await make_client(api_key="s3cret-key")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-key"}):
        r = await client.post("/embed", json={"inputs": "x"}, headers=headers)
        assert r.status_code == 401
        assert "s3cret" not in r.text
    r = await client.post("/v1/embeddings", json={"input": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert (await client.post("/tokenize", json={"inputs": "x"})).status_code == 401
    ok = await client.post("/embed", json={"inputs": "x"}, headers={"authorization": "Bearer s3cret-key"})
    assert ok.status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    assert (await client.get("/metrics")).status_code == 401


async def test_public_metrics_opens_metrics_only(make_client) -> None:
    client, _ = await make_client(api_key="k", public_metrics=True)
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/info")).status_code == 401


async def test_openai_float_and_base64_agree(make_client) -> None:
    client, _ = await make_client()
    texts = ["first text", "second, longer text for the test"]
    flt = await client.post("/v1/embeddings", json={"input": texts, "model": "whatever", "user": "u"})
    b64 = await client.post("/v1/embeddings", json={"input": texts, "encoding_format": "base64"})
    assert flt.status_code == b64.status_code == 200
    body = flt.json()
    assert body["object"] == "list" and body["model"] == "whatever"
    assert [d["index"] for d in body["data"]] == [0, 1]
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in b64.json()["data"]]
    np.testing.assert_allclose(decoded, [d["embedding"] for d in body["data"]], atol=1e-6)
    tokens = (await client.post("/tokenize", json={"inputs": texts})).json()
    assert body["usage"]["prompt_tokens"] == sum(len(t) for t in tokens) == body["usage"]["total_tokens"]


async def test_openai_errors_use_openai_envelope(make_client) -> None:
    client, _ = await make_client(strict_model=True)
    r = await client.post("/v1/embeddings", json={"input": [[1, 2, 3]]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == "input" and "token-id" in err["message"]
    wrong = await client.post("/v1/embeddings", json={"input": "x", "model": "gpt-4"})
    assert wrong.status_code == 422 and wrong.json()["error"]["param"] == "model"
    bad = await client.post("/v1/embeddings", json={"input": "x", "encoding_format": "int8"})
    assert bad.status_code == 422


async def test_tokenize(make_client) -> None:
    client, _ = await make_client()
    r = await client.post("/tokenize", json={"inputs": "Hello world"})
    tokens = r.json()
    assert [t["text"] for t in tokens] == ["[CLS]", "hello", "world", "[SEP]"]
    assert tokens[1]["start"] == 0 and tokens[1]["stop"] == 5 and tokens[0]["special"] is True
    plain = (
        await client.post("/tokenize", json={"inputs": ["Hello world"], "add_special_tokens": False})
    ).json()
    assert [t["text"] for t in plain[0]] == ["hello", "world"]


async def test_info_health_metrics_openapi_and_404(make_client) -> None:
    client, _ = await make_client()
    info = (await client.get("/info")).json()
    assert info["dims"] == DIMS and info["max_input_length"] == 256 and info["pooling"] == "mean"
    assert info["variant"] == "fp32" and info["provider"] == "CPUExecutionProvider"
    assert info["max_client_batch_size"] == 256 and info["revision"]
    for path in ("/health", "/health/live", "/health/ready"):
        assert (await client.get(path)).status_code == 200
    await client.post("/embed", json={"inputs": ["x", "y"]})
    text = (await client.get("/metrics")).text
    for name in (
        "embed_requests_total",
        "embed_stage_seconds_bucket",
        "embed_queue_requests",
        "embed_queue_tokens",
        "embed_batch_size_bucket",
        "embed_padding_ratio_bucket",
        "embed_texts_total",
        "embed_tokens_total",
        "embed_inflight_requests",
    ):
        assert name in text
    assert 'embed_requests_total{route="/embed",status="200"} 1.0' in text
    spec = (await client.get("/openapi.json")).json()
    assert {"/embed", "/v1/embeddings", "/tokenize"} <= set(spec["paths"])
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no route /nope; see /openapi.json", "error_type": "NotFound"}
    wrong_method = await client.get("/embed")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["error_type"] == "Validation"


async def test_request_id_is_echoed(make_client) -> None:
    client, _ = await make_client()
    r = await client.get("/health/live", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len((await client.get("/health/live")).headers["x-request-id"]) == 32


async def test_queue_full_is_429_with_retry_after(make_client) -> None:
    client, session = await make_client(fake=True, max_queue_requests=1)
    session.gate.clear()
    first = asyncio.ensure_future(client.post("/embed", json={"inputs": "held"}))
    await asyncio.to_thread(session.entered.wait, 5)
    r = await client.post("/embed", json={"inputs": "refused"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error_type"] == "Overloaded"
    session.gate.set()
    assert (await first).status_code == 200


async def test_deadline_passed_while_queued_is_503(make_client) -> None:
    client, session = await make_client(fake=True)
    session.gate.clear()
    first = asyncio.ensure_future(client.post("/embed", json={"inputs": "held"}))
    await asyncio.to_thread(session.entered.wait, 5)
    r = await client.post("/embed", json={"inputs": "late"}, headers={"x-request-timeout": "0.2"})
    assert r.status_code == 503 and "retry-after" in r.headers
    bad = await client.post("/embed", json={"inputs": "x"}, headers={"x-request-timeout": "soon"})
    assert bad.status_code == 422
    session.gate.set()
    assert (await first).status_code == 200


async def test_a_request_whose_texts_have_started_is_finished_past_its_deadline(make_client) -> None:
    client, session = await make_client(fake=True, max_batch_size=1)
    session.gate.clear()
    started = asyncio.ensure_future(
        client.post("/embed", json={"inputs": ["one", "two"]}, headers={"x-request-timeout": "0.2"})
    )
    await asyncio.to_thread(session.entered.wait, 5)  # its first text is running
    await asyncio.sleep(0.5)  # at least 0.5 s: the deadline has passed, whatever the machine
    assert not started.done()
    session.gate.set()
    r = await started
    assert r.status_code == 200 and len(r.json()) == 2


@pytest.mark.parametrize("how", ["query", "header"])
async def test_stated_priority_picks_the_class_whatever_the_size(make_client, how: str) -> None:
    client, bulk = await make_client(fake=True, interactive_sessions=1)

    def stated(lane: str) -> dict[str, Any]:
        return {"params": {"priority": lane}} if how == "query" else {"headers": {"x-embed-priority": lane}}

    bulk.gate.clear()
    long_text = "word " * 400  # bulk by size (over interactive_max_tokens)
    held = asyncio.ensure_future(client.post("/embed", json={"inputs": long_text}))
    await asyncio.to_thread(bulk.entered.wait, 5)
    short_bulk = asyncio.ensure_future(client.post("/embed", json={"inputs": "short"}, **stated("bulk")))
    # A long text stated interactive runs on the interactive session while bulk is held.
    r = await client.post("/v1/embeddings", json={"input": long_text}, **stated("interactive"))
    assert r.status_code == 200
    assert (await client.post("/embed", json={"inputs": "a query"})).status_code == 200
    assert not held.done() and not short_bulk.done()  # the short one stated bulk waits for bulk
    bulk.gate.set()
    assert (await held).status_code == 200 and (await short_bulk).status_code == 200


async def test_an_unknown_priority_is_422(make_client) -> None:
    client, _ = await make_client(fake=True)
    r = await client.post("/embed?priority=urgent", json={"inputs": "x"})
    assert r.status_code == 422 and "priority" in r.json()["error"]
    o = await client.post("/v1/embeddings", json={"input": "x"}, headers={"x-embed-priority": "now"})
    assert o.status_code == 422 and o.json()["error"]["param"] == "priority"
    ok = await client.post("/embed?priority=bulk", json={"inputs": "x"}, headers={"x-embed-priority": "nope"})
    assert ok.status_code == 200  # the URL's parameter wins over the header
    for odd in ("BULK", "", " bulk"):  # exactly the documented values
        r = await client.post("/embed", params={"priority": odd}, json={"inputs": "x"})
        assert r.status_code == 422, odd


async def test_inference_failure_is_500_and_server_keeps_serving(make_client) -> None:
    client, session = await make_client(fake=True)
    session.fail_next = True
    r = await client.post("/embed", json={"inputs": "x"})
    assert r.status_code == 500 and r.json()["error_type"] == "Backend"
    o = await client.post("/v1/embeddings", json={"input": "x"})
    assert o.status_code == 200
    assert (await client.get("/health/ready")).status_code == 200


async def test_draining_refuses_new_work_and_flips_readiness(make_client) -> None:
    client, app = await make_client()
    app.state.embed.draining = True
    assert (await client.get("/health/ready")).status_code == 503
    assert (await client.get("/health/live")).status_code == 200
    r = await client.post("/embed", json={"inputs": "x"})
    assert r.status_code == 503 and r.json()["error_type"] == "Unhealthy"


async def test_a_request_the_queue_cannot_start_in_time_is_refused_before_tokenizing(make_client) -> None:
    client, session = await make_client(fake=True, max_batch_size=1)  # a prepared batch takes one text
    app_engine = client._transport.app.state.embed.engine  # type: ignore[attr-defined]
    session.gate.clear()
    bulk = {"params": {"priority": "bulk"}}
    running = asyncio.ensure_future(client.post("/embed", json={"inputs": "one"}, **bulk))
    await asyncio.to_thread(session.entered.wait, 5)
    waiting = [
        asyncio.ensure_future(client.post("/embed", json={"inputs": f"more {i}"}, **bulk)) for i in range(3)
    ]
    for _ in range(6000):  # one is prepared, the others queued; a hang guard of about 60 s
        if app_engine.batcher.queued_tokens:
            break
        await asyncio.sleep(0.01)
    assert app_engine.batcher.queued_tokens, "no text was ever queued"
    app_engine.batcher.throughput.record(1, 1.0)  # as if the model ran 1 token/s
    encode = app_engine.tokenizer.encode
    calls: list[int] = []
    app_engine.tokenizer.encode = lambda *a, **k: calls.append(1) or encode(*a, **k)
    r = await client.post("/embed", json={"inputs": "late"}, headers={"x-request-timeout": "5"}, **bulk)
    assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
    assert "more than this request's deadline" in r.json()["error"] and calls == []
    session.gate.set()
    assert [x.status_code for x in await asyncio.gather(running, *waiting)] == [200] * 4


async def test_metrics_count_each_class(make_client) -> None:
    client, _ = await make_client(fake=True)
    await client.post("/embed", json={"inputs": "a query"})
    await client.post("/embed?priority=bulk", json={"inputs": ["one", "two"]})
    text = (await client.get("/metrics")).text
    assert 'embed_lane_texts_total{lane="interactive"} 1.0' in text
    assert 'embed_lane_texts_total{lane="bulk"} 2.0' in text
    assert 'embed_lane_seconds_count{lane="bulk",stage="queue"} 1.0' in text
