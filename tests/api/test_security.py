"""Which routes a key closes, what /info reveals, and which bodies JSON routes take."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from server.app import ROUTES

KEY = "k3y-for-tests"
OPEN = {"/health", "/health/live", "/health/ready", "/ready"}
JSON_ROUTES = [("/embed", "inputs"), ("/", "inputs"), ("/v1/embeddings", "input"), ("/tokenize", "inputs")]


def _calls() -> list[tuple[str, str]]:
    return [(method, r.path) for r in ROUTES for method in sorted(r.methods or ()) if method != "HEAD"]


async def test_a_key_closes_every_route_but_the_probes(make_client) -> None:
    client, _ = await make_client(api_key=KEY)
    spec = (await client.get("/openapi.json", headers={"authorization": f"Bearer {KEY}"})).json()
    for method, path in _calls():
        anonymous = await client.request(method, path)
        keyed = await client.request(method, path, headers={"authorization": f"Bearer {KEY}"})
        assert (anonymous.status_code == 401) == (path not in OPEN), (method, path, anonymous.status_code)
        assert keyed.status_code != 401, (method, path)
        documented = spec["paths"][path][method.lower()]["security"]
        assert documented == ([] if path in OPEN else [{"bearer": []}]), (method, path)


async def test_public_metrics_is_the_one_exception(make_client) -> None:
    client, _ = await make_client(api_key=KEY, public_metrics=True)
    assert (await client.get("/metrics")).status_code == 200
    for path in ("/info", "/openapi.json"):
        assert (await client.get(path)).status_code == 401


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


async def test_info_shows_no_machine_paths(
    make_client, minilm_model_dir: Path, minilm_checkpoint: Path
) -> None:
    client, _ = await make_client()
    r = await client.get("/info")
    source = r.json()["source"]
    assert source["name"] == minilm_checkpoint.resolve().name and len(source["sha256"]) == 64
    assert "path" not in source
    assert not [s for s in _strings(r.json()) if s.startswith(("/", "~")) or ":\\" in s]
    for private in (minilm_model_dir.resolve(), minilm_checkpoint.resolve(), Path.home()):
        assert str(private) not in r.text


async def test_an_old_manifest_path_is_cut_to_its_base_name(
    make_client, minilm_model_dir: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for item in minilm_model_dir.iterdir():
        if item.name != "manifest.json":
            (model / item.name).symlink_to(item)
    manifest = json.loads((minilm_model_dir / "manifest.json").read_text())
    del manifest["source"]["name"]
    manifest["source"]["path"] = "/home/alice/checkpoints/minilm-finetuned"
    (model / "manifest.json").write_text(json.dumps(manifest))
    client, _ = await make_client(model=model)
    r = await client.get("/info")
    assert r.json()["source"]["name"] == "minilm-finetuned"
    assert "alice" not in r.text and "path" not in r.json()["source"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "application/json-seq",
    ],
)
@pytest.mark.parametrize(("path", "field"), JSON_ROUTES)
async def test_json_routes_refuse_other_content_types(
    make_client, path: str, field: str, content_type: str | None
) -> None:
    client, _ = await make_client()
    headers = {} if content_type is None else {"content-type": content_type}
    r = await client.post(path, content=json.dumps({field: "x"}).encode(), headers=headers)
    assert r.status_code == 415, r.text
    if path.startswith("/v1/"):
        assert r.json()["error"]["type"] == "invalid_request_error"
    else:
        assert r.json()["error_type"] == "Validation" and "application/json" in r.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json"]
)
@pytest.mark.parametrize(("path", "field"), JSON_ROUTES)
async def test_json_routes_take_json_with_parameters(
    make_client, path: str, field: str, content_type: str
) -> None:
    client, _ = await make_client()
    r = await client.post(
        path, content=json.dumps({field: "x"}).encode(), headers={"content-type": content_type}
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("method", "path", "allow"), [("GET", "/embed", "POST"), ("POST", "/health", "GET, HEAD")]
)
async def test_wrong_method_is_405_with_allow_in_the_tei_envelope(
    make_client, method: str, path: str, allow: str
) -> None:
    client, _ = await make_client()
    r = await client.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert set(r.json()) == {"error", "error_type"} and method in r.json()["error"]


async def test_wrong_method_on_openai_route_uses_its_envelope(make_client) -> None:
    client, _ = await make_client()
    r = await client.delete("/v1/embeddings")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    missing = await client.get("/v1/models")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "notfound"


async def test_the_bulk_key_authenticates_and_makes_requests_bulk_by_default(
    make_client, tmp_path: Path
) -> None:
    bulk_key = tmp_path / "bulk.key"
    bulk_key.write_text("bulk-k3y\n")
    client, bulk = await make_client(
        fake=True, api_key=KEY, bulk_api_key_file=bulk_key, interactive_sessions=1
    )
    as_bulk = {"authorization": "Bearer bulk-k3y"}
    bulk.gate.clear()
    held = asyncio.ensure_future(
        client.post("/embed", json={"inputs": "short, but bulk by key"}, headers=as_bulk)
    )
    await asyncio.to_thread(bulk.entered.wait, 5)
    # The main key's short request is a query: it runs on the interactive session meanwhile;
    # the bulk key stating interactive is honoured too.
    query = await client.post(
        "/embed", json={"inputs": "a query"}, headers={"authorization": f"Bearer {KEY}"}
    )
    stated = await client.post("/embed?priority=interactive", json={"inputs": "q"}, headers=as_bulk)
    assert query.status_code == 200 and stated.status_code == 200 and not held.done()
    bulk.gate.set()
    assert (await held).status_code == 200
    assert (await client.get("/info", headers=as_bulk)).status_code == 200
    assert (
        await client.post("/embed", json={"inputs": "x"}, headers={"authorization": "Bearer bulk"})
    ).status_code == 401


def test_a_bulk_key_needs_a_main_key_of_its_own(tmp_path: Path) -> None:
    from server.settings import Settings, SettingsError

    key = tmp_path / "bulk.key"
    key.write_text(f"{KEY}\n")
    with pytest.raises(SettingsError, match="needs the main key"):
        _ = Settings(bulk_api_key_file=key).resolved_bulk_api_key
    with pytest.raises(SettingsError, match="a key of its own"):
        _ = Settings(api_key=KEY, bulk_api_key_file=key).resolved_bulk_api_key
    key.write_text("\n")
    with pytest.raises(SettingsError, match="first line is blank"):
        _ = Settings(api_key=KEY, bulk_api_key_file=key).resolved_bulk_api_key
