"""Reading a corpus: ``.txt`` and ``.md`` files, ``.jsonl`` records, folders recursively.

A text or Markdown file is one document whose id is its ``source``: the path relative to
the working directory when the file is under it, else the absolute path (POSIX form), so
that ingesting the same tree from the same place gives the same ids. A JSONL line is one
document: ``{"content": str, "metadata": {...}, "id": optional}``; its id is ``id`` when
given, else ``<source>:<line number>``. Every document's metadata carries ``source``
(a record's own ``metadata.source`` wins). Hidden files and folders are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.errors import InputError

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (*TEXT_SUFFIXES, ".jsonl")
_MAX_ID = 200


@dataclass(frozen=True)
class Document:
    """One source document: a stable id, its text and its metadata (``source`` included)."""

    doc_id: str
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)


def files(paths: Sequence[str | Path]) -> list[Path]:
    """The corpus files named by ``paths`` (files, or folders searched recursively), sorted."""
    if not paths:
        raise InputError("give at least one file or folder to ingest")
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise InputError(f"{path} holds no {', '.join(SUFFIXES)} files")
            out.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(f"{path}: unsupported file type; rag reads {', '.join(SUFFIXES)}")
            out.append(path)
        else:
            raise InputError(f"{path} does not exist")
    return out


def source_of(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def safe_id(raw: str) -> str:
    """An Elasticsearch-safe id: short ids as they are, long ones as a hash plus their tail."""
    if len(raw.encode()) <= _MAX_ID:
        return raw
    digest = hashlib.sha1(raw.encode()).hexdigest()[:16]
    return f"{digest}~{raw[-(_MAX_ID - 40) :]}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); convert it first"
        ) from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc


def _title(content: str) -> str | None:
    for line in content.splitlines():
        if line.startswith("# "):
            return line[2:].strip() or None
    return None


def read(path: Path) -> Iterator[Document]:
    """The documents of one corpus file; a malformed JSONL line is an InputError naming it."""
    source = source_of(path)
    text = _read(path)
    if path.suffix.lower() in TEXT_SUFFIXES:
        metadata: dict[str, Any] = {"source": source}
        title = _title(text) if path.suffix.lower() != ".txt" else None
        if title:
            metadata["title"] = title
        yield Document(safe_id(source), text, metadata)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
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
        yield Document(doc_id, content, {"source": source, "line": number, **meta})


def content_hash(content: str) -> str:
    """Identity of a document's text, stored to skip unchanged documents on a re-run."""
    return hashlib.sha256(content.encode()).hexdigest()
