"""Named prompts: the model's ``default_prompt_name`` applies when a request names none, on
``/embed`` and ``/v1/embeddings`` alike, and ``/v1/embeddings`` can name a prompt too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def prompted_model(minilm_model_dir: Path, tmp_path: Path) -> Path:
    """The MiniLM test model with two prompts, ``query`` the default."""
    model = tmp_path / "prompted"
    shutil.copytree(minilm_model_dir, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["prompts"] = {"query": "query: ", "passage": "passage: "}
    manifest["default_prompt_name"] = "query"
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


async def _embed(client, text: str, **extra: object) -> np.ndarray:
    r = await client.post("/embed", json={"inputs": [text], **extra})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()[0])


async def _openai(client, text: str, **extra: object) -> np.ndarray:
    r = await client.post("/v1/embeddings", json={"input": [text], **extra})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["data"][0]["embedding"])


async def test_default_prompt_applies_when_none_is_named(make_client, prompted_model: Path) -> None:
    plain, _ = await make_client()
    prompted, _ = await make_client(model=prompted_model)
    text = "how do I reset my password"
    by_hand = await _embed(plain, "query: " + text)
    assert np.allclose(await _embed(prompted, text), by_hand, atol=1e-6)
    assert np.allclose(await _openai(prompted, text), by_hand, atol=1e-6)
    # Without the prompt the vector differs: the default really was applied.
    assert not np.allclose(await _embed(plain, text), by_hand, atol=1e-3)


async def test_a_named_prompt_replaces_the_default_on_both_routes(make_client, prompted_model: Path) -> None:
    plain, _ = await make_client()
    prompted, _ = await make_client(model=prompted_model)
    text = "Passwords are reset from the account page."
    by_hand = await _embed(plain, "passage: " + text)
    assert np.allclose(await _embed(prompted, text, prompt_name="passage"), by_hand, atol=1e-6)
    assert np.allclose(await _openai(prompted, text, prompt_name="passage"), by_hand, atol=1e-6)


async def test_unknown_prompt_is_a_422_on_both_routes(make_client, prompted_model: Path) -> None:
    prompted, _ = await make_client(model=prompted_model)
    for route, body in (("/embed", {"inputs": "x"}), ("/v1/embeddings", {"input": "x"})):
        r = await prompted.post(route, json={**body, "prompt_name": "title"})
        assert r.status_code == 422, r.text
        assert "known: passage, query" in r.text


async def test_info_and_openapi_show_the_default_prompt(make_client, prompted_model: Path) -> None:
    prompted, _ = await make_client(model=prompted_model)
    info = (await prompted.get("/info")).json()
    assert info["default_prompt_name"] == "query"
    assert info["prompts"] == {"query": "query: ", "passage": "passage: "}
    schema = (await prompted.get("/openapi.json")).json()
    assert "'query'" in json.dumps(schema)
