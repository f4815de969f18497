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
        "embedclient",
    },
    "export": {"rag", "bench", "finetune", "embedclient"},
    "rag": {"server", "export", "bench", "finetune", "torch", "transformers"},
    "bench": {"export", "rag", "finetune"},
    # finetune reaches the server over HTTP (a subprocess) only
    "finetune": {"server", "export", "rag", "bench"},
    # the one client of our HTTP API (rag, finetune and bench use it) knows the server by its wire contract
    "embedclient": {"server", "export", "rag", "bench", "finetune"},
}
# The server's pure modules (no HTTP, no threads) are the one implementation of the manifest,
# tokenizer, collate, pooling and session options: export and bench import them, nothing else
# of the server (server.session is where session_options lives, next to ORT itself).
PURE_SERVER_MODULES = {
    "server.manifest",
    "server.tokenizer",
    "server.collate",
    "server.pooling",
    "server.session",
    "server.cpu",
}
# The fine-tuning data format and its retrieval metrics (numpy only): export reads a user's
# held-out set (--eval-data) with them rather than keep a second copy of either.
PURE_FINETUNE_MODULES = {"finetune.pairs", "finetune.metrics", "finetune.errors"}
ALLOWED_SERVER_MODULES = {"export": PURE_SERVER_MODULES | PURE_FINETUNE_MODULES, "bench": PURE_SERVER_MODULES}
# bench's in-process engine system measures the server's engine itself, without HTTP.
ALLOWED_SERVER_FILES = {
    "bench/systems/engine.py": {"server.engine", "server.loader", "server.metrics", "server.settings"}
}


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
            allowed = ALLOWED_SERVER_MODULES.get(package, set()) | ALLOWED_SERVER_FILES.get(
                file.relative_to(ROOT).as_posix(), set()
            )
            if package in ALLOWED_SERVER_MODULES and top == "server" and name not in allowed:
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


@pytest.mark.parametrize("module", sorted(PURE_SERVER_MODULES))
def test_pure_server_module_loads_no_http_and_no_threads(module: str) -> None:
    """Importing a module export and bench share loads no HTTP stack, no thread pools, no
    server module beyond the pure ones, and starts no thread; only server.session loads ORT."""
    code = (
        f"import importlib, sys, threading; importlib.import_module({module!r});"
        "print(threading.active_count());"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'onnxruntime','starlette','uvicorn','httptools','prometheus_client'} "
        "or m.startswith(('server.', 'concurrent.futures')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    threads, loaded = out.stdout.split("\n")[:2]
    allowed = PURE_SERVER_MODULES | {"server.errors", "server.providers"}
    if module == "server.session":
        allowed |= {m for m in loaded.split(",") if m.split(".")[0] == "onnxruntime"}
    assert threads == "1"
    assert sorted(set(filter(None, loaded.split(","))) - allowed) == []


def test_the_modules_other_packages_may_import_stay_pure() -> None:
    """What export and bench import from server and finetune pulls in no heavy or stateful
    part of them: no torch, no web framework, no other project package."""
    heavy = {
        "torch",
        "transformers",
        "sentence_transformers",
        "starlette",
        "uvicorn",
        "httpx",
        "elasticsearch",
    }
    for module in sorted(PURE_SERVER_MODULES | PURE_FINETUNE_MODULES):
        own = module.split(".")[0]
        path = ROOT / (module.replace(".", "/") + ".py")
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in heavy and (top == own or top not in FORBIDDEN), f"{module} imports {name}"
