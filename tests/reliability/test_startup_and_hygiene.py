"""A broken model directory fails at start with a clear message; secrets and bodies stay out of logs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import HANG_GUARD_S

ROOT = Path(__file__).resolve().parents[2]


def start_server(model: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "--model", str(model), "--port", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def corrupt_onnx(d: Path) -> None:
    (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:5000])


def rehash_after(change: Callable[[Path], None]) -> Callable[[Path], None]:
    """Apply a change and fix the manifest's hashes, so the deeper check must catch it."""

    def apply(d: Path) -> None:
        change(d)
        from server.manifest import sha256_file

        manifest = json.loads((d / "manifest.json").read_text())
        for variant in manifest["variants"].values():
            variant["sha256"] = sha256_file(d / variant["file"])
        (d / "manifest.json").write_text(json.dumps(manifest))

    return apply


def edit_manifest(**changes: object) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        manifest = json.loads((d / "manifest.json").read_text())
        manifest.update(changes)
        (d / "manifest.json").write_text(json.dumps(manifest))

    return apply


CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("no manifest", lambda d: (d / "manifest.json").unlink(), "not an exported model directory"),
    ("manifest not JSON", lambda d: (d / "manifest.json").write_text("{oops"), "not valid JSON"),
    ("corrupt onnx", corrupt_onnx, "does not match the SHA-256"),
    # ONNX Runtime or OpenVINO (--runtime auto on an AVX-512 + AMX CPU), each says it cannot load it.
    ("corrupt onnx, rehashed", rehash_after(corrupt_onnx), "cannot load"),
    ("dims mismatch", edit_manifest(dims=768), "outputs 384-dim vectors but the manifest says 768"),
    ("inputs mismatch", edit_manifest(inputs=["input_ids", "attention_mask"]), "the directory mixes files"),
    ("output mismatch", edit_manifest(output="last_hidden_state"), "has no output 'last_hidden_state'"),
    ("no tokenizer", lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
    ("bad tokenizer", lambda d: (d / "tokenizer.json").write_text("{}"), "cannot be loaded"),
    ("missing variant file", lambda d: (d / "model.onnx").unlink(), "file model.onnx is missing"),
]


@pytest.mark.parametrize(("name", "damage", "message"), CASES, ids=[c[0] for c in CASES])
def test_broken_model_directory_fails_at_start(
    minilm_model_dir: Path, tmp_path: Path, name: str, damage: Callable[[Path], None], message: str
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(minilm_model_dir, broken)
    for extra in broken.glob("model.*.onnx"):
        extra.unlink()
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["variants"] = {"fp32": manifest["variants"]["fp32"]}
    (broken / "manifest.json").write_text(json.dumps(manifest))
    damage(broken)
    result = start_server(broken, "--variant", "fp32")
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_keys_and_bodies_never_reach_the_logs(process_server) -> None:
    key = "sk-very-secret-0123456789"
    server = process_server("--api-key", key, "--log-level", "debug")
    marker = "PRIVATE-DOCUMENT-CONTENT-42"
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, timeout=HANG_GUARD_S) as client:
        assert client.post("/embed", json={"inputs": [marker]}, headers=headers).status_code == 200
        wrong = client.post(
            "/embed", json={"inputs": [marker]}, headers={"authorization": "Bearer sk-very-secret-guess"}
        )
        assert wrong.status_code == 401 and "sk-very" not in wrong.text
        json_headers = {**headers, "content-type": "application/json"}
        bad = client.post("/embed", content=b'{"inputs": ' + marker.encode(), headers=json_headers)
        assert bad.status_code == 422
        info = client.get("/info", headers=headers).text
    assert key not in info
    server.terminate()
    server.proc.wait(HANG_GUARD_S)
    log = server.output()
    assert key not in log and "sk-very-secret-guess" not in log
    assert marker not in log


def test_help_hides_the_key(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"EMBED_API_KEY": "hidden-key-value", "PATH": "/usr/bin"},
        check=True,
    )
    assert "hidden-key-value" not in out.stdout
    assert "--drain-timeout" in out.stdout and "EMBED_MAX_PAYLOAD_BYTES" in out.stdout
