"""What machine and software a result was measured on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from server.cpu import describe as describe_cpu

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
    model, flags = describe_cpu()
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
