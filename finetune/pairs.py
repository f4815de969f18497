"""Training data: (query, passage) pairs, where they come from, and the held-out split.

``--data`` accepts four shapes, told apart by :func:`load`:

- a dataset directory holding ``train.jsonl`` and ``heldout.jsonl`` (what
  ``python -m finetune dataset`` writes): the split is used as it is;
- a JSONL file of pairs, one ``{"query": ..., "passage": ...}`` object a line, with an
  optional ``"group"`` (pairs of one group never straddle the split; a pair without one is
  its own group);
- a JSONL corpus, one ``{"content": ...}`` object a line (optional ``"title"`` and ``"id"``);
- a folder (searched recursively) or a single file of ``.md``, ``.txt`` or ``.rst`` documents.

From a corpus, :func:`pairs_from_document` makes two query styles per section: ``heading``,
the heading (prefixed with the document title when it is too short to stand alone) -> the
section's first prose paragraph, and ``sentence``, for every other prose paragraph of two or
more sentences, its first sentence -> the rest of it. Code blocks, tables, directives and
list-only blocks are skipped. The heading or sentence used as a query is never part of its
passage, so a pair cannot be solved by finding the query verbatim. (A third style,
``keywords``, is made for any passage by :mod:`finetune.keywords`.)

The split is by group (the source document for a corpus): groups are sorted, shuffled with a
seeded RNG and assigned to the held-out side until it holds ``heldout_fraction`` of the
pairs, so held-out queries come from documents the model never saw in training. A pair
without a group belongs to the group of its passage, and groups that share a passage text
are one group, so no passage is ever on both sides.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from finetune.errors import UsageError

TRAIN_FILE = "train.jsonl"
HELDOUT_FILE = "heldout.jsonl"
CORPUS_SUFFIXES = (".md", ".markdown", ".txt", ".rst")
MIN_QUERY_WORDS = 3
MIN_PASSAGE_CHARS = 40
MAX_PASSAGE_CHARS = 2000

DataKind = Literal["split", "pairs", "corpus"]
CORPUS_STYLES = ("heading", "sentence")

_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_RST_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+:.])\1{2,}\s*$")
# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or quote; the
# look-behind keeps common abbreviations (e.g., i.e., etc.) from ending one.
_SENTENCE_END = re.compile(r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\betc\.)(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")
_NON_PROSE_START = ("```", "~~~", "|", "..", "<", "![", ">>>", "$ ", "{", "+--", "===", "---")
_LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+")


@dataclass(frozen=True)
class Pair:
    """One training or evaluation example: ``passage`` is the text that answers ``query``.

    ``group`` is the unit of the held-out split (a source document, a module); empty means
    the pair goes with its passage. ``style`` says how the query was made (``heading``,
    ``sentence``, ``keywords``; empty for given pairs). ``negatives`` are passages that do
    not answer the query (mined hard negatives, or given in the data).
    """

    query: str
    passage: str
    group: str = ""
    style: str = ""
    negatives: tuple[str, ...] = ()

    def split_key(self) -> str:
        return self.group or self.passage

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"query": self.query, "passage": self.passage}
        if self.group:
            data["group"] = self.group
        if self.style:
            data["style"] = self.style
        if self.negatives:
            data["negatives"] = list(self.negatives)
        return data


@dataclass(frozen=True)
class Document:
    """One corpus document: ``id`` is stable across runs (relative path or JSONL id)."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Split:
    """Training pairs, held-out pairs, and what the data was (for the run report)."""

    train: tuple[Pair, ...]
    heldout: tuple[Pair, ...]
    kind: DataKind
    source: str


def _text_field(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: field {key!r} must be a non-empty string")
    return value.strip()


def _jsonl_objects(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{where}: not valid JSON ({exc.msg}); one JSON object per line is expected"
            ) from exc
        if not isinstance(obj, dict):
            raise UsageError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        yield where, obj


def read_pairs(path: Path) -> list[Pair]:
    """Read a JSONL file of ``{"query", "passage"[, "group", "style", "negatives"]}`` objects."""
    pairs = []
    for where, obj in _jsonl_objects(path):
        group, style, negatives = obj.get("group", ""), obj.get("style", ""), obj.get("negatives", [])
        if not isinstance(group, str) or not isinstance(style, str):
            raise UsageError(f"{where}: fields 'group' and 'style' must be strings")
        if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
            raise UsageError(f"{where}: field 'negatives' must be a list of non-empty strings")
        pairs.append(
            Pair(
                _text_field(obj, "query", where),
                _text_field(obj, "passage", where),
                group,
                style,
                tuple(n.strip() for n in negatives),
            )
        )
    if not pairs:
        raise UsageError(f"{path} holds no pairs; write one JSON object with query and passage per line")
    return pairs


def write_pairs(path: Path, pairs: Iterable[Pair]) -> int:
    """Write pairs as JSONL (UTF-8, sorted keys, one object a line); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_json(), ensure_ascii=False, sort_keys=True) + "\n")
            count += 1
    return count


def read_documents(path: Path) -> list[Document]:
    """Read a corpus: a JSONL file with ``content``, a text file, or a folder of text files."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES)
        if not files:
            raise UsageError(f"{path} holds no {', '.join(CORPUS_SUFFIXES)} files to build pairs from")
        return [_read_text_document(f, f.relative_to(path).as_posix()) for f in files]
    if path.suffix.lower() == ".jsonl":
        docs = []
        for index, (where, obj) in enumerate(_jsonl_objects(path)):
            title = obj.get("title", "")
            doc_id = obj.get("id", obj.get("doc_id", f"line-{index}"))
            if not isinstance(title, str):
                raise UsageError(f"{where}: field 'title' must be a string")
            docs.append(Document(str(doc_id), title.strip(), _text_field(obj, "content", where)))
        return docs
    if path.suffix.lower() in CORPUS_SUFFIXES:
        return [_read_text_document(path, path.name)]
    raise UsageError(
        f"{path}: expected a .jsonl file, a {', '.join(CORPUS_SUFFIXES)} file or a folder of them"
    )


def _read_text_document(path: Path, doc_id: str) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path} as UTF-8 text: {exc}") from exc
    return Document(doc_id, "", text)


def _blocks(text: str) -> list[list[str]]:
    """Blank-line separated blocks; fenced code is dropped whole, blank lines and all."""
    blocks: list[list[str]] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence):
                fence = None
            continue
        if stripped.startswith(("```", "~~~")):
            if current:
                blocks.append(current)
                current = []
            fence = stripped[:3]
            continue
        if not stripped:
            if current:
                blocks.append(current)
                current = []
            continue
        current.append(line.rstrip())
    if current:
        blocks.append(current)
    return blocks


def _heading(block: list[str]) -> tuple[str | None, list[str]]:
    """The heading a block starts with (Markdown ``#`` or reStructuredText underline), if any."""
    match = _MD_HEADING.match(block[0])
    if match:
        return match.group(2).strip(), block[1:]
    if len(block) >= 3 and _RST_UNDERLINE.match(block[0]) and _RST_UNDERLINE.match(block[2]):
        return block[1].strip(), block[3:]
    if len(block) >= 2 and _RST_UNDERLINE.match(block[1]) and len(block[1].strip()) >= len(block[0].strip()):
        return block[0].strip(), block[2:]
    return None, block


def _prose(lines: list[str]) -> str | None:
    """The block as one line of prose, or None for code, tables, directives and lists."""
    if not lines:
        return None
    first = lines[0].lstrip()
    # Indented blocks are code, grammar or list continuations; list items are fragments.
    if first.startswith(_NON_PROSE_START) or _LIST_ITEM.match(lines[0]):
        return None
    if all(line.startswith(("   ", "\t")) for line in lines):
        return None
    text = " ".join(line.strip() for line in lines)
    if text.endswith("::"):
        text = text[:-1]
    return text if len(text.split()) >= MIN_QUERY_WORDS else None


def _clip(text: str, limit: int = MAX_PASSAGE_CHARS) -> str:
    """Cut at the last sentence or word boundary before ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("\n"))
    return (cut[: end + 1] if end > limit // 2 else cut.rsplit(" ", 1)[0]).rstrip()


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph, split at ``. ``/``! ``/``? `` before an upper-case start."""
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def pairs_from_document(doc: Document, styles: Sequence[str] = CORPUS_STYLES) -> list[Pair]:
    """Heading -> first paragraph and first sentence -> rest-of-paragraph pairs of one document.

    ``styles`` picks which of the two (``heading``, ``sentence``) to make.
    """
    pairs: list[Pair] = []
    title = doc.title
    heading: str | None = title or None
    heading_used = False
    for block in _blocks(doc.text):
        found, body = _heading(block)
        if found is not None:
            heading, heading_used = found, False
            if not title:
                title = found
            block = body
        paragraph = _prose(block)
        if paragraph is None:
            continue
        if heading is not None and not heading_used:
            heading_used = True
            query = heading
            if len(heading.split()) < MIN_QUERY_WORDS and title and title != heading:
                query = f"{title}: {heading}"
            if len(paragraph) >= MIN_PASSAGE_CHARS:
                if "heading" in styles:
                    pairs.append(Pair(query, _clip(paragraph), doc.id, "heading"))
                continue
        sentences = split_sentences(paragraph)
        if len(sentences) < 2 or len(sentences[0].split()) < MIN_QUERY_WORDS:
            continue
        rest = " ".join(sentences[1:])
        # A rest ending in ":" introduces a code block or list that was dropped: too little to match.
        if len(rest) >= MIN_PASSAGE_CHARS and not rest.endswith(":") and "sentence" in styles:
            pairs.append(Pair(sentences[0], _clip(rest), doc.id, "sentence"))
    return pairs


def split_groups(pairs: Sequence[Pair]) -> dict[int, str]:
    """The split unit of each pair (by position): its group, merged with every group that
    shares one of its passages, named by the smallest group name of the merged set."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for pair in pairs:
        union(f"g:{pair.split_key()}", f"p:{pair.passage}")
    return {i: find(f"g:{pair.split_key()}") for i, pair in enumerate(pairs)}


def split(pairs: Sequence[Pair], heldout_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Split pairs by source document: seeded shuffle of the sorted groups, held-out side first.

    The unit is :func:`split_groups`' (a group, with the groups sharing a passage text), so
    pairs of one document, or of one passage, are never on both sides. Deterministic for the
    same pairs, fraction and seed, whatever their input order. With two or more groups and a
    fraction in (0, 1), both sides are non-empty.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise UsageError(f"--heldout-fraction must be in [0, 1), got {heldout_fraction}")
    unit = split_groups(pairs)
    by_group: dict[str, list[Pair]] = {}
    for i, pair in enumerate(pairs):
        by_group.setdefault(unit[i], []).append(pair)
    groups = sorted(by_group)
    random.Random(seed).shuffle(groups)
    target = heldout_fraction * len(pairs)
    heldout_groups: set[str] = set()
    taken = 0
    for group in groups:
        if taken >= target or len(heldout_groups) == len(groups) - 1:
            break
        heldout_groups.add(group)
        taken += len(by_group[group])
    train = [p for i, p in enumerate(pairs) if unit[i] not in heldout_groups]
    heldout = [p for i, p in enumerate(pairs) if unit[i] in heldout_groups]
    return train, heldout


def _first_object(path: Path) -> dict[str, Any]:
    for _, obj in _jsonl_objects(path):
        return obj
    raise UsageError(f"{path} is empty; it needs JSON objects with query/passage or content")


def load(path: Path, heldout_fraction: float, seed: int, styles: Sequence[str] = CORPUS_STYLES) -> Split:
    """Resolve ``--data`` to a train/held-out split (see the module docstring for the shapes).

    ``styles`` selects the query styles generated from a corpus (given pairs are kept as they are).
    """
    if not path.exists():
        raise UsageError(f"--data {path} does not exist")
    if path.is_dir() and (path / TRAIN_FILE).is_file():
        heldout = read_pairs(path / HELDOUT_FILE) if (path / HELDOUT_FILE).is_file() else []
        return Split(tuple(read_pairs(path / TRAIN_FILE)), tuple(heldout), "split", str(path))
    if path.is_file() and path.suffix.lower() == ".jsonl":
        first = _first_object(path)
        if "query" in first and "passage" in first:
            train, held = split(read_pairs(path), heldout_fraction, seed)
            return Split(tuple(train), tuple(held), "pairs", str(path))
        if "content" not in first:
            raise UsageError(
                f"{path}: the first object has neither query/passage (pairs) nor content (a corpus); "
                f"its keys are {sorted(first)}"
            )
    documents = read_documents(path)
    pairs = [pair for doc in documents for pair in pairs_from_document(doc, styles)]
    if len(pairs) < 2:
        raise UsageError(
            f"{path}: only {len(pairs)} pair(s) could be generated from {len(documents)} document(s); "
            "give a larger corpus (headed sections and paragraphs of two or more sentences) or JSONL pairs"
        )
    train, held = split(pairs, heldout_fraction, seed)
    return Split(tuple(train), tuple(held), "corpus", str(path))


def heldout_file(path: Path) -> Path:
    """The held-out pairs file ``--data`` names for evaluation.

    A file is taken as it is; a directory means its ``heldout.jsonl``, or the one a training
    run wrote under ``training/``.
    """
    if path.is_file():
        return path
    for candidate in (path / HELDOUT_FILE, path / "training" / HELDOUT_FILE):
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"--data {path}: expected a JSONL file of held-out pairs, or a directory with {HELDOUT_FILE} "
        "(a dataset from `python -m finetune dataset`, or a training output directory)"
    )
