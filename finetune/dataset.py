"""The built-in domain dataset: the Python documentation as (query, passage) pairs.

Sources, all read from the running interpreter (CPython; PSF License Version 2):

1. API docstrings of a fixed list of standard library modules. For every public function,
   class, method and property defined there whose own docstring (never an inherited one) has
   a summary sentence and more text after it:

   - query: the summary sentence (``"Return the median (middle value) of numeric data."``);
   - passage: the qualified name and signature, then the rest of the docstring
     (``"statistics.median(data)\\n\\nWhen the number of data points is odd, ..."``).

   A leading C-style signature paragraph (``"sqrt(x) -> float"``) is skipped.
2. The module docstrings of the same modules, and
3. the Language Reference topics that ``pydoc`` ships (``pydoc_data.topics``), both turned into
   pairs by the plain-corpus rules of :func:`finetune.pairs.pairs_from_document` (heading ->
   first paragraph, first sentence -> rest of the paragraph).

Queries or passages that occur more than once are dropped (they would have several right
answers). Pairs are grouped by module (API and module docstrings together) or by reference
topic, and the held-out split is by group, so every held-out query is about a module or topic
the model never saw in training.

The output is deterministic for a given interpreter version: modules, members and pairs are
processed in sorted order and the split uses a seeded RNG. ``manifest.json`` records the
Python version, the groups on each side, counts per source and file hashes.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from finetune.pairs import (
    HELDOUT_FILE,
    MAX_PASSAGE_CHARS,
    MIN_PASSAGE_CHARS,
    TRAIN_FILE,
    Document,
    Pair,
    pairs_from_document,
    split,
    write_pairs,
)

# Modules with substantial English docstrings and no import side effects (no GUI, no network,
# no deprecation warnings on 3.11-3.13). Changing this list changes the dataset: bump VERSION.
MODULES: tuple[str, ...] = (
    "abc", "argparse", "array", "ast", "asyncio.base_events", "asyncio.events", "asyncio.futures",
    "asyncio.locks", "asyncio.queues", "asyncio.streams", "asyncio.subprocess", "asyncio.tasks",
    "asyncio.transports", "base64", "bdb", "binascii", "bisect", "builtins", "bz2", "calendar", "cmath",
    "cmd", "code", "codecs", "codeop", "collections", "collections.abc", "colorsys", "compileall",
    "concurrent.futures._base", "concurrent.futures.process", "concurrent.futures.thread",
    "configparser", "contextlib", "contextvars", "copy", "copyreg", "csv", "ctypes", "dataclasses",
    "datetime", "dbm", "decimal", "difflib", "dis", "doctest", "email.charset", "email.feedparser",
    "email.generator", "email.header", "email.headerregistry", "email.message", "email.parser",
    "email.policy", "email.utils", "enum", "errno", "faulthandler", "filecmp", "fileinput", "fnmatch",
    "fractions", "ftplib", "functools", "gc", "getopt", "getpass", "gettext", "glob", "graphlib", "gzip",
    "hashlib", "heapq", "hmac", "html", "html.parser", "http.client", "http.cookiejar", "http.cookies",
    "http.server", "imaplib", "importlib", "importlib.abc", "importlib.machinery", "importlib.metadata",
    "importlib.resources", "importlib.util", "inspect", "io", "ipaddress", "itertools", "json",
    "json.decoder", "json.encoder", "keyword", "linecache", "locale", "logging", "logging.config",
    "logging.handlers", "lzma", "mailbox", "marshal", "math", "mimetypes", "modulefinder",
    "multiprocessing.connection", "multiprocessing.context", "multiprocessing.managers",
    "multiprocessing.pool", "multiprocessing.process", "multiprocessing.queues",
    "multiprocessing.shared_memory", "multiprocessing.synchronize", "netrc", "numbers", "operator",
    "optparse", "os", "pathlib", "pdb", "pickle", "pickletools", "pkgutil", "platform", "plistlib",
    "poplib", "posixpath", "pprint", "profile", "pstats", "pty", "py_compile", "pyclbr", "pydoc", "queue",
    "quopri", "random", "re", "reprlib", "rlcompleter", "runpy", "sched", "secrets", "selectors",
    "shelve", "shlex", "shutil", "signal", "site", "smtplib", "socket", "socketserver", "sqlite3", "ssl",
    "stat", "statistics", "string", "struct", "subprocess", "symtable", "sys", "sysconfig", "tabnanny",
    "tarfile", "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "tomllib", "trace",
    "traceback", "tracemalloc", "types", "typing", "unicodedata", "unittest.case", "unittest.loader",
    "unittest.mock", "unittest.result", "unittest.runner", "unittest.suite", "urllib.error",
    "urllib.parse", "urllib.request", "urllib.response", "urllib.robotparser", "uuid", "venv", "warnings",
    "wave", "weakref", "webbrowser", "wsgiref.handlers", "wsgiref.headers", "wsgiref.simple_server",
    "wsgiref.util", "wsgiref.validate", "xml.dom.minidom", "xml.dom.pulldom", "xml.etree.ElementTree",
    "xml.sax.handler", "xml.sax.saxutils", "xml.sax.xmlreader", "xmlrpc.client", "xmlrpc.server",
    "zipapp", "zipfile", "zipimport", "zlib", "zoneinfo",
)  # fmt: skip
VERSION = 1
DEFAULT_HELDOUT_FRACTION = 0.2
DEFAULT_SEED = 20261124
MIN_SUMMARY_WORDS = 3
MAX_SUMMARY_WORDS = 40
MAX_SIGNATURE_CHARS = 160
MANIFEST_FILE = "manifest.json"

# "name(args) -> result" lines that C functions put before their prose.
_C_SIGNATURE = re.compile(r"^[\w.]+\(.*\)(\s*->\s*.+)?$|^[\w.]+\s*->\s*.+$")
# "D.pop(k[,d]) -> v, remove specified key ...": the prose starts after the comma.
_C_SIGNATURE_PREFIX = re.compile(r"^[\w.]+\([^)]*\)\s*->\s*[^,]+,\s*")
# Default values without a stable repr print their address, which changes every run.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# reST's "::" introduces a literal block, which was dropped; plain ":" reads right.
_RST_LITERAL = re.compile(r"::(?=\n|$)")
_SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<=[.!?])\s+(?=[A-Z0-9`'\"(])")


@dataclass(frozen=True)
class ApiDoc:
    """One documented API object: its dotted name, signature text and cleaned docstring."""

    module: str
    qualname: str
    signature: str
    doc: str


def _import(name: str) -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except ImportError:
            return None


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring, cleaned; never one inherited from a base class."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def _signature(obj: Any) -> str:
    try:
        text = _ADDRESS.sub("", str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return ""
    return text if len(text) <= MAX_SIGNATURE_CHARS else "(...)"


def _is_api(obj: Any) -> bool:
    return inspect.isclass(obj) or inspect.isroutine(obj)


def _public_members(module: ModuleType) -> Iterator[tuple[str, Any]]:
    exported = getattr(module, "__all__", None)
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not _is_api(obj):
            continue
        home = getattr(obj, "__module__", None)
        if exported is not None:
            if name not in exported:
                continue
        elif home != module.__name__:
            continue
        yield name, obj


def api_docs(modules: tuple[str, ...] = MODULES) -> tuple[list[ApiDoc], list[str]]:
    """Every documented public API object of ``modules``, and the modules that failed to import.

    An object reachable from several modules is kept once, under the first module (in sorted
    order) that exports it.
    """
    docs: list[ApiDoc] = []
    missing: list[str] = []
    seen: set[int] = set()
    for module_name in sorted(modules):
        module = _import(module_name)
        if module is None:
            missing.append(module_name)
            continue
        for name, obj in _public_members(module):
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            doc = _own_doc(obj)
            if doc:
                docs.append(ApiDoc(module_name, f"{module_name}.{name}", _signature(obj), doc))
            if not inspect.isclass(obj):
                continue
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_"):
                    continue
                target = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if not (inspect.isroutine(target) or isinstance(target, property)) or id(target) in seen:
                    continue
                seen.add(id(target))
                member_doc = _own_doc(target)
                if member_doc:
                    signature = "" if isinstance(target, property) else _signature(target)
                    docs.append(ApiDoc(module_name, f"{module_name}.{name}.{attr}", signature, member_doc))
    return docs, missing


def _is_code(paragraph: str) -> bool:
    """Doctest sessions and indented (literal) blocks: examples, not prose to retrieve by."""
    lines = [line for line in paragraph.splitlines() if line.strip()]
    return lines[0].lstrip().startswith(">>>") or all(line.startswith((" ", "\t")) for line in lines)


def pair_from_doc(api: ApiDoc) -> Pair | None:
    """The (summary sentence -> name, signature and rest of the docstring) pair, if there is one."""
    paragraphs = [p.rstrip() for p in api.doc.split("\n\n") if p.strip() and not _is_code(p)]
    while paragraphs and all(_C_SIGNATURE.match(line.strip()) for line in paragraphs[0].splitlines()):
        paragraphs.pop(0)
    if not paragraphs:
        return None
    first = " ".join(line.strip() for line in paragraphs[0].splitlines())
    first = _C_SIGNATURE_PREFIX.sub("", first)
    sentences = [s for s in _SENTENCE_END.split(first) if s.strip()]
    if not sentences:
        return None
    summary = sentences[0].strip()
    summary = summary[:1].upper() + summary[1:]
    words = len(summary.split())
    if not MIN_SUMMARY_WORDS <= words <= MAX_SUMMARY_WORDS or summary.endswith(":"):
        return None
    rest_parts = [" ".join(sentences[1:]).strip(), *paragraphs[1:]]
    rest = "\n\n".join(_RST_LITERAL.sub(":", part) for part in rest_parts if part)
    if len(rest) < MIN_PASSAGE_CHARS:
        return None
    passage = f"{api.qualname}{api.signature}\n\n{rest}"
    if len(passage) > MAX_PASSAGE_CHARS:
        cut = passage[:MAX_PASSAGE_CHARS]
        passage = (
            cut[: cut.rfind("\n\n")] if cut.rfind("\n\n") > MAX_PASSAGE_CHARS // 2 else cut.rsplit(" ", 1)[0]
        )
    return Pair(summary, passage.rstrip(), api.module)


def module_doc_pairs(modules: tuple[str, ...] = MODULES) -> list[Pair]:
    """Corpus-rule pairs from the module docstrings, grouped by module."""
    pairs: list[Pair] = []
    for name in sorted(modules):
        module = _import(name)
        doc = _own_doc(module) if module is not None else None
        if doc:
            document = Document(name, f"The {name} module", doc)
            pairs.extend(Pair(p.query, p.passage, name) for p in pairs_from_document(document))
    return pairs


def reference_pairs() -> list[Pair]:
    """Corpus-rule pairs from the Language Reference topics ``pydoc`` ships, grouped by topic."""
    module = _import("pydoc_data.topics")
    topics: dict[str, str] = getattr(module, "topics", {}) if module is not None else {}
    pairs: list[Pair] = []
    for topic in sorted(topics):
        group = f"reference/{topic}"
        pairs.extend(
            Pair(p.query, p.passage, group) for p in pairs_from_document(Document(group, "", topics[topic]))
        )
    return pairs


def build_pairs(modules: tuple[str, ...] = MODULES) -> tuple[list[Pair], dict[str, int], list[str]]:
    """All unambiguous pairs in a deterministic order, the count per source, the missing modules."""
    docs, missing = api_docs(modules)
    sources = {
        "api": [p for p in (pair_from_doc(d) for d in docs) if p is not None],
        "module_docs": module_doc_pairs(modules),
        "reference": reference_pairs(),
    }
    pairs = [p for source in sources.values() for p in source]
    queries = Counter(p.query.casefold() for p in pairs)
    passages = Counter(p.passage for p in pairs)

    def unambiguous(pair: Pair) -> bool:
        return queries[pair.query.casefold()] == 1 and passages[pair.passage] == 1

    counts = {name: sum(1 for p in source if unambiguous(p)) for name, source in sources.items()}
    unique = sorted((p for p in pairs if unambiguous(p)), key=lambda p: (p.group, p.query, p.passage))
    return unique, counts, missing


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    out: Path, heldout_fraction: float = DEFAULT_HELDOUT_FRACTION, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Write ``train.jsonl``, ``heldout.jsonl`` and ``manifest.json`` into ``out``; return the manifest."""
    pairs, counts, missing = build_pairs()
    train, heldout = split(pairs, heldout_fraction, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_pairs(out / TRAIN_FILE, train)
    write_pairs(out / HELDOUT_FILE, heldout)
    manifest: dict[str, Any] = {
        "name": "python-stdlib-docstrings",
        "version": VERSION,
        "source": "CPython standard library docstrings (API members and module docstrings of the "
        "modules listed below) and the Language Reference topics of pydoc_data.topics, as shipped "
        f"with this interpreter (Python {sys.version.split()[0]})",
        "license": "Python Software Foundation License Version 2 (PSF-2.0)",
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "seed": seed,
        "heldout_fraction": heldout_fraction,
        "pairs": {"train": len(train), "heldout": len(heldout), "by_source": counts},
        "groups": {"train": sorted({p.group for p in train}), "heldout": sorted({p.group for p in heldout})},
        "modules": {"listed": sorted(MODULES), "missing": missing},
        "sha256": {TRAIN_FILE: _sha256(out / TRAIN_FILE), HELDOUT_FILE: _sha256(out / HELDOUT_FILE)},
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest
