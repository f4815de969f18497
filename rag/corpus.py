"""Reading a corpus: text, Markdown, reStructuredText, man pages and JSONL, gzip'ed or not.

Which files are read (folders recursively, hidden files and folders left out):

- ``.txt``/``.text`` (text), ``.md``/``.markdown`` (Markdown), ``.rst`` (reStructuredText),
  ``.jsonl`` (one document per line: ``{"content": str, "metadata": {...}, "id": optional}``);
- man pages (``name.<section>``: ``ls.1``, ``ssh_config.5``, ``Foo.3pm``) in troff, turned into
  Markdown (:mod:`rag.manpage`); a page that only includes another (``.so``) is an alias;
- files without a suffix, and the usual documentation names with any suffix (``README``,
  ``README.Debian``, ``NEWS``, ``changelog``, ``FAQ``, ``copyright``, ...), as text;
- any of these compressed with gzip (``README.md.gz``, ``ls.1.gz``, ``changelog.Debian.gz``).

Anything else is skipped, and every skipped file is reported with its reason (unsupported
type, binary, hidden, man page alias). A named file of an unsupported type is an error.

A text file is one document whose id is its ``source``: the path relative to the working
directory when the file is under it, else the absolute path (POSIX form), so that ingesting
the same tree from the same place gives the same ids. A JSONL line is one document whose id
is ``id`` when given, else ``<source>:<line number>``. Every document's metadata carries
``source`` (a record's own ``metadata.source`` wins), ``folders`` (the folders holding the
file, outermost first: what ``rag prune`` and ``rag delete --source FOLDER`` select on) and,
when the file has one, ``title``.

Decoding: UTF-8 (a BOM is dropped; UTF-16 with a BOM is read too). A file that is not UTF-8
is read as Windows-1252 (Latin-1 where that leaves a byte undefined) when it holds no valid
multi-byte UTF-8 at all, else as UTF-8 with the bad bytes replaced: either way with a
warning naming the file. Errors (an unreadable file, a corrupt gzip stream, a malformed JSONL
line, two documents with one id) stop the load with an InputError, or with ``skip_errors``
skip that file or line and are reported with the skipped files.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag import layout, manpage
from rag.errors import InputError
from rag.layout import Format

FORMATS: dict[str, Format] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "rst",
}
SUFFIXES = (*FORMATS, ".jsonl")
_MAN = re.compile(r"^\.[1-9][a-z0-9]{0,6}$")
_DOC_NAME = re.compile(
    r"^(readme|news|changes|changelog|history|faq|todo|thanks|authors|install|copying|copyright|"
    r"licen[cs]e|hacking|bugs|contributing|notice|credits|maintainers|upgrading)([._-]|$)",
    re.IGNORECASE,
)
_SNIFF = 8192
_MAX_ID = 200


@dataclass(frozen=True)
class Document:
    """One source document: a stable id, its text, its metadata (``source`` included), and the
    layout its text follows."""

    doc_id: str
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    format: Format = "text"


@dataclass(frozen=True)
class Skipped:
    """A file (or JSONL line) left out, and why."""

    path: str
    reason: str


@dataclass
class Corpus:
    """What a load found: the documents, what it left out, and what it read with doubts."""

    docs: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def skipped_summary(self) -> str:
        """One line: how many files were left out, by reason (types by suffix)."""
        if not self.skipped:
            return ""
        kinds = Counter(s.reason.split(":")[0] for s in self.skipped)
        parts = []
        for kind, n in kinds.most_common():
            if kind == "unsupported type":
                suffixes = Counter(
                    s.reason.split(": ", 1)[1] for s in self.skipped if s.reason.startswith(kind)
                )
                detail = ", ".join(f"{suffix} {count}" for suffix, count in suffixes.most_common(6))
                more = ", ..." if len(suffixes) > 6 else ""
                parts.append(f"{n} {kind} ({detail}{more})")
            else:
                parts.append(f"{n} {kind}")
        return f"skipped {len(self.skipped)} files: {', '.join(parts)}"


def _kind(path: Path) -> tuple[str, bool] | None:
    """(``text``/``markdown``/``rst``/``jsonl``/``man``, gzip'ed) of a file rag reads, else None."""
    name = path.name
    compressed = name.lower().endswith(".gz")
    inner = name[:-3] if compressed else name
    suffix = Path(inner).suffix
    if suffix.lower() == ".jsonl":
        return "jsonl", compressed
    if suffix.lower() in FORMATS:
        return FORMATS[suffix.lower()], compressed
    if _MAN.match(suffix):
        return "man", compressed
    if not suffix or _DOC_NAME.match(inner):
        return "text", compressed
    return None


def _unsupported(path: Path) -> str:
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    suffix = Path(name).suffix.lower() or path.suffix.lower()
    return f"unsupported type: {suffix}{'.gz' if path.name.lower().endswith('.gz') and suffix else ''}"


def _walk(root: Path, skipped: list[Skipped]) -> list[Path]:
    """Files under ``root`` in sorted order; hidden entries are skipped (not entered)."""
    out: list[Path] = []
    for here, dirs, names in os.walk(root):
        base = Path(here)
        for d in sorted(dirs):
            if d.startswith("."):
                skipped.append(Skipped(source_of(base / d) + "/", "hidden"))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for n in sorted(names):
            if n.startswith("."):
                skipped.append(Skipped(source_of(base / n), "hidden"))
            else:
                out.append(base / n)
    return sorted(out)


def files(paths: Sequence[str | Path], skipped: list[Skipped] | None = None) -> list[Path]:
    """The corpus files named by ``paths`` (files, or folders searched recursively), sorted;
    files of folders that rag does not read are added to ``skipped``."""
    if not paths:
        raise InputError("give at least one file or folder to ingest")
    left_out = skipped if skipped is not None else []
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            before = len(left_out)
            found = []
            for f in _walk(path, left_out):
                if _kind(f) is None:
                    left_out.append(Skipped(source_of(f), _unsupported(f)))
                else:
                    found.append(f)
            if not found:
                summary = Corpus(skipped=left_out[before:]).skipped_summary()
                raise InputError(f"{path} holds no file rag reads ({summary or 'it is empty'})")
            out.extend(found)
        elif path.is_file():
            if _kind(path) is None:
                raise InputError(
                    f"{path}: unsupported file type; rag reads {', '.join(SUFFIXES)}, man pages, "
                    "README-like text files, and any of them gzip'ed"
                )
            out.append(path)
        else:
            raise InputError(f"{path} does not exist")
    return out


def source_of(path: Path) -> str:
    """``path`` relative to the working directory when under it, else absolute (POSIX form)."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def folders(source: str) -> list[str]:
    """The folders that hold ``source``, outermost first (``a/b/c.md`` -> ``a``, ``a/b``)."""
    parts = source.split("/")[:-1]
    return ["/".join(parts[: k + 1]) or "/" for k in range(len(parts)) if parts[: k + 1] != [""]]


def safe_id(raw: str) -> str:
    """An Elasticsearch-safe id: short ids as they are, long ones as a hash plus their tail."""
    if len(raw.encode()) <= _MAX_ID:
        return raw
    digest = hashlib.sha1(raw.encode()).hexdigest()[:16]
    return f"{digest}~{raw[-(_MAX_ID - 40) :]}"


def decode(raw: bytes, where: str) -> tuple[str, str | None]:
    """The text of ``raw`` and a warning when it was not UTF-8 (module doc)."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16"), None
        except UnicodeDecodeError:
            pass
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        first = f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        replaced = raw.decode("utf-8", errors="replace")
        bad = replaced.count("\ufffd")
        valid = sum(1 for ch in replaced if ord(ch) > 127 and ch != "\ufffd")
        if valid > bad:
            return replaced, f"{where} is not valid UTF-8 ({first}): read as UTF-8, {bad} bad bytes replaced"
        try:
            return raw.decode("cp1252"), f"{where} is not UTF-8 ({first}): read as Windows-1252"
        except UnicodeDecodeError:
            return raw.decode("latin-1"), f"{where} is not UTF-8 ({first}): read as Latin-1"


def _bytes(path: Path, compressed: bool) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if not compressed:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"{path} is not a valid gzip file ({exc})") from exc


def _md_title(content: str) -> str | None:
    for line in content.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None


def _first_heading(content: str, fmt: Format) -> str | None:
    found = layout.blocks(content[:_SNIFF], fmt)
    return found[0].title or None if found and found[0].kind == "heading" else None


def read(path: Path, corpus: Corpus | None = None, skip_errors: bool = False) -> Iterator[Document]:
    """The documents of one corpus file; a malformed JSONL line is an InputError naming it.

    Warnings and, with ``skip_errors``, skipped lines go to ``corpus``. A binary file or a man
    page alias yields nothing and is recorded as skipped there.
    """
    found = corpus if corpus is not None else Corpus()
    kind = _kind(path)
    if kind is None:
        raise InputError(f"{path}: unsupported file type")
    form, compressed = kind
    raw = _bytes(path, compressed)
    if b"\x00" in raw[:_SNIFF] and not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        found.skipped.append(Skipped(source_of(path), "binary"))
        return
    source = source_of(path)
    text, warning = decode(raw, source)
    if warning:
        found.warnings.append(warning)
    if form == "jsonl":
        yield from _records(path, source, text, found, skip_errors)
        return
    metadata: dict[str, Any] = {"source": source, "folders": folders(source)}
    fmt: Format
    if form == "man":
        stripped = text.lstrip()
        if stripped.startswith((".", "'")):
            text, title = manpage.to_markdown(text)
            if not text.strip() and ".so " in stripped:
                found.skipped.append(Skipped(source_of(path), "man page alias (.so)"))
                return
            fmt = "markdown"
        else:
            fmt, title = "text", None
    else:
        fmt = "markdown" if form == "markdown" else "rst" if form == "rst" else "text"
        title = _md_title(text) if fmt == "markdown" else _first_heading(text, fmt) if fmt == "rst" else None
    if title:
        metadata["title"] = title
    yield Document(safe_id(source), text, metadata, fmt)


def _records(path: Path, source: str, text: str, found: Corpus, skip_errors: bool) -> Iterator[Document]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield _record(line, where, source, number)
        except InputError as exc:
            if not skip_errors:
                raise
            found.skipped.append(Skipped(where, f"error: {exc}"))


def _record(line: str, where: str, source: str, number: int) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise InputError(f"{where}: each line must be a JSON object with `content`")
    content = record.get("content")
    if not isinstance(content, str) or not content.strip():
        raise InputError(f"{where}: `content` must be a non-empty string")
    meta = record.get("metadata", {})
    if not isinstance(meta, dict):
        raise InputError(f"{where}: `metadata` must be an object")
    raw_id = record.get("id")
    if raw_id is not None and not isinstance(raw_id, str | int):
        raise InputError(f"{where}: `id` must be a string or an integer")
    doc_id = safe_id(str(raw_id) if raw_id is not None else f"{source}:{number}")
    return Document(doc_id, content, {"source": source, "line": number, **meta, "folders": folders(source)})


def load(paths: Sequence[str | Path], skip_errors: bool = False) -> Corpus:
    """Every document under ``paths``, and what was skipped (module doc).

    Two documents with one id is an InputError (with ``skip_errors``, the second is skipped).
    """
    corpus = Corpus()
    seen: dict[str, str] = {}
    for path in files(paths, corpus.skipped):
        try:
            docs = list(read(path, corpus, skip_errors))
        except InputError as exc:
            if not skip_errors:
                raise InputError(f"{exc} (--skip-errors skips such files)") from exc
            corpus.skipped.append(Skipped(source_of(path), f"error: {exc}"))
            continue
        for doc in docs:
            where = f"{doc.metadata.get('source')}" + (
                f":{doc.metadata['line']}" if "line" in doc.metadata else ""
            )
            if doc.doc_id in seen:
                message = f"document id {doc.doc_id!r} appears twice: {seen[doc.doc_id]} and {where}"
                if not skip_errors:
                    raise InputError(message)
                corpus.skipped.append(Skipped(where, f"error: {message}"))
                continue
            seen[doc.doc_id] = where
            corpus.docs.append(doc)
    return corpus


def content_hash(content: str) -> str:
    """Identity of a document's text, stored to skip unchanged documents on a re-run."""
    return hashlib.sha256(content.encode()).hexdigest()
