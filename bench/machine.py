"""What machine and software a result was measured on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "onnxruntime",
    "numpy",
    "tokenizers",
    "uvicorn",
    "starlette",
    "torch",
    "sentence-transformers",
    "transformers",
)
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni")


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or "unknown", list[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("unknown", "", platform.machine()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    return model, [f for f in _FLAGS if f in flags]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def describe(root: Path) -> dict[str, Any]:
    """CPU model and features, cores, memory, load, OS, Python and package versions."""
    model, flags = _cpuinfo()
    memory_gib = None
    try:
        import psutil

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        providers = list(ort.get_available_providers())
    except ImportError:
        providers = []
    return {
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "load_average": load_average(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "ort_providers": providers,
        "git_commit": _git_commit(root),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
