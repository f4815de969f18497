"""The dependency rules of ARCHITECTURE.md, enforced on the source and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN: dict[str, set[str]] = {
    "server": {
        "torch",
        "transformers",
        "sentence_transformers",
        "elasticsearch",
        "openai",
        "export",
        "rag",
        "bench",
        "finetune",
    },
    "export": {"rag", "bench", "finetune"},
    "rag": {"server", "export", "bench", "finetune", "torch", "transformers"},
    "bench": {"export", "rag", "finetune"},
    # finetune reaches the server over HTTP (a subprocess) only
    "finetune": {"server", "export", "rag", "bench"},
}
# export may use the manifest format of the server, nothing else of it.
ALLOWED_SERVER_MODULES = {"export": {"server.manifest"}}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_import_rules(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    if not files:
        pytest.skip(f"{package}/ does not exist yet")
    offences = []
    for file in files:
        for name in imported_modules(file):
            top = name.split(".")[0]
            if top in FORBIDDEN[package] and name not in ALLOWED_SERVER_MODULES.get(package, set()):
                offences.append(f"{file.relative_to(ROOT)} imports {name}")
            if package == "export" and top == "server" and name not in ALLOWED_SERVER_MODULES["export"]:
                offences.append(f"{file.relative_to(ROOT)} imports {name}")
    assert offences == []


def test_server_runtime_never_loads_torch() -> None:
    code = (
        "import sys, server.__main__, server.app, server.engine, server.session;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch','transformers','sentence_transformers','elasticsearch','openai'});"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
