"""The benchmark corpus: English passages with a realistic length mix, and short queries.

The built-in corpus is generated deterministically from the docstrings of a fixed list of
CPython standard-library modules of the running interpreter (parsed with :mod:`ast`,
nothing is imported). Docstrings are split into paragraphs; paragraphs that look like code
(doctest lines, few letters) are dropped, and the rest of one docstring is packed into
chunks of at most :data:`CHUNK_WORDS` words, the way a RAG chunker packs paragraphs.
Chunks shorter than :data:`MIN_WORDS` words are dropped, the rest are de-duplicated,
sorted, and a seeded shuffle picks the passages. With the MiniLM/MPNet word-piece
tokenizers this gives a median near 80 tokens and a 90th percentile near 190 (the mix of
a documentation knowledge base). Queries are the first sentences of short docstrings
(4 to 14 words), like the questions a RAG user types.

The same interpreter version always gives the same corpus; :meth:`Corpus.digest` is
recorded with every result so runs on different interpreters are not compared blindly.

``--corpus FILE.jsonl`` replaces it: one JSON object per line with ``"text"`` and an
optional ``"kind"`` (``"passage"``, the default, or ``"query"``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CHUNK_WORDS = 150
MIN_WORDS = 25
QUERY_WORDS = (4, 14)

# Modules with rich English docstrings; kept fixed so the corpus only changes with Python.
STDLIB_MODULES: tuple[str, ...] = tuple(
    """
    abc argparse ast asyncio/base_events asyncio/events asyncio/streams asyncio/tasks asyncio/locks
    asyncio/queues asyncio/subprocess asyncio/transports asyncio/protocols asyncio/futures
    asyncio/runners bisect calendar cmd codecs collections/__init__ concurrent/futures/_base
    concurrent/futures/process concurrent/futures/thread configparser contextlib copy csv
    dataclasses datetime decimal difflib email/message email/utils email/headerregistry
    email/parser email/feedparser email/generator email/policy email/_policybase email/charset
    email/header enum fileinput fnmatch fractions ftplib functools getopt gettext glob gzip
    hashlib heapq hmac html/parser http/client http/cookiejar http/server http/cookies imaplib
    inspect ipaddress json/__init__ json/decoder json/encoder locale logging/__init__
    logging/handlers logging/config mailbox mimetypes multiprocessing/pool multiprocessing/managers
    netrc ntpath numbers optparse os pathlib pdb pickle pkgutil platform plistlib poplib posixpath
    pprint pydoc queue random re/__init__ reprlib sched secrets selectors shelve shlex shutil
    smtplib socket socketserver ssl statistics string subprocess tarfile tempfile textwrap
    threading timeit tokenize trace traceback turtle typing unittest/case unittest/mock
    urllib/parse urllib/request urllib/robotparser urllib/error uuid warnings weakref
    xml/dom/minidom xml/dom/pulldom xml/etree/ElementTree xml/sax/handler xml/sax/saxutils
    zipfile/__init__ zipfile importlib/__init__ importlib/metadata/__init__ _pydecimal _pyio
    sre_compile doctest nntplib telnetlib aifc wave sunau chunk colorsys imghdr sndhdr quopri uu
    base64 binhex mailcap cgi cgitb wsgiref/handlers wsgiref/simple_server xmlrpc/client
    xmlrpc/server sqlite3/__init__ dis opcode code codeop compileall py_compile modulefinder runpy
    symtable tabnanny pyclbr filecmp stat tty pty getpass curses/__init__ lzma bz2 zipapp
    zipimport operator keyword linecache types copyreg contextvars html/__init__ tomllib/_parser
    graphlib genericpath sysconfig site bdb profile pstats cProfile
    """.split()
)


class CorpusError(ValueError):
    """The corpus cannot be built or read; the message says what to fix."""


@dataclass(frozen=True)
class Corpus:
    """Passages (documents to ingest) and queries (short questions), in a fixed order."""

    passages: tuple[str, ...]
    queries: tuple[str, ...]
    source: str

    def digest(self) -> str:
        """SHA-256 (first 16 hex digits) of the texts, to tell corpora apart in results."""
        h = hashlib.sha256()
        for kind, texts in (("p", self.passages), ("q", self.queries)):
            for text in texts:
                h.update(kind.encode())
                h.update(text.encode())
                h.update(b"\0")
        return h.hexdigest()[:16]

    def head(self, passages: int, queries: int) -> Corpus:
        """The first ``passages`` passages and ``queries`` queries (a smaller run's subset)."""
        return Corpus(self.passages[:passages], self.queries[:queries], self.source)


def _is_prose(paragraph: str) -> bool:
    lines = [line.strip() for line in paragraph.strip().splitlines()]
    if not lines or any(line.startswith(">>>") for line in lines):
        return False
    letters = sum(c.isalpha() or c.isspace() for c in paragraph)
    return letters / max(1, len(paragraph)) >= 0.85


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def _chunks(doc: str) -> Iterator[str]:
    """Prose paragraphs of one docstring, packed into chunks of <= CHUNK_WORDS words."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", doc) if _is_prose(p)]
    current: list[str] = []
    words = 0
    for paragraph in paragraphs:
        n = len(paragraph.split())
        if current and words + n > CHUNK_WORDS:
            yield " ".join(current)
            current, words = [], 0
        current.append(paragraph)
        words += n
    if current:
        yield " ".join(current)


def _first_sentence(doc: str) -> str:
    first = " ".join(re.split(r"\n\s*\n", doc.strip())[0].split())
    return re.split(r"(?<=[.!?])\s", first)[0].rstrip(".")


def stdlib_files(modules: Sequence[str] = STDLIB_MODULES, stdlib_dir: Path | None = None) -> list[Path]:
    """The source files of ``modules`` that exist in this interpreter's standard library."""
    root = stdlib_dir or Path(sysconfig.get_paths()["stdlib"])
    return [path for m in modules if (path := root / f"{m}.py").is_file()]


def from_stdlib(
    passages: int = 2000,
    queries: int = 500,
    seed: int = 0,
    modules: Sequence[str] = STDLIB_MODULES,
    stdlib_dir: Path | None = None,
) -> Corpus:
    """Build the built-in corpus (see the module docstring); deterministic for one Python."""
    files = stdlib_files(modules, stdlib_dir)
    if not files:
        raise CorpusError("no standard-library sources found; pass your own texts with --corpus FILE.jsonl")
    chunk_set: set[str] = set()
    query_set: set[str] = set()
    for path in files:
        for doc in _docstrings(path):
            chunk_set.update(c for c in _chunks(doc) if len(c.split()) >= MIN_WORDS)
            sentence = _first_sentence(doc)
            if QUERY_WORDS[0] <= len(sentence.split()) <= QUERY_WORDS[1] and _is_prose(sentence):
                query_set.add(sentence)
    rng = random.Random(seed)
    chosen = sorted(chunk_set)
    rng.shuffle(chosen)
    asked = sorted(query_set)
    rng.shuffle(asked)
    version = ".".join(map(str, sys.version_info[:3]))
    return Corpus(
        tuple(chosen[:passages]),
        tuple(asked[:queries]),
        f"CPython {version} stdlib docstrings ({len(files)} modules)",
    )


def _records(lines: Iterable[str], where: str) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str) or not record["text"]:
            raise CorpusError(f'{where}:{number}: each line must be an object with a non-empty "text" string')
        kind = record.get("kind", "passage")
        if kind not in ("passage", "query"):
            raise CorpusError(f'{where}:{number}: "kind" must be "passage" or "query", not {kind!r}')
        yield kind, record["text"]


def from_jsonl(path: Path, passages: int | None = None, queries: int | None = None) -> Corpus:
    """Read a JSONL corpus (see the module docstring), in file order.

    Without any ``"query"`` lines, queries are the first 12 words of each passage.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc}") from exc
    found: dict[str, list[str]] = {"passage": [], "query": []}
    for kind, text in _records(lines, str(path)):
        found[kind].append(text)
    if not found["passage"]:
        raise CorpusError(f'{path} has no passages; add lines like {{"text": "..."}}')
    asked = found["query"] or [" ".join(p.split()[:12]) for p in found["passage"]]
    return Corpus(
        tuple(found["passage"][:passages]),
        tuple(asked[:queries]),
        f"{path.name} ({len(found['passage'])} passages, {len(found['query'])} queries)",
    )
