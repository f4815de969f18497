"""Chunks for retrieval: whole sections where they fit, paragraphs merged up to a token budget.

The one chunker of both ingest paths (``--via pipeline`` sends the chunks it makes, so
Elasticsearch embeds exactly these). For each document:

1. ``normalize``: ``\\r\\n`` and ``\\r`` become ``\\n``; leading and trailing whitespace go.
2. Layout (:mod:`rag.layout`): headings, paragraphs and code blocks, each split further into
   *atoms* (sentences and list items of a paragraph, lines of a code block, a heading line).
   Between two atoms is a break, ranked: before a heading (a section starts) > between blocks
   > between sentences > between code lines > glued > inside a word. Glued: after a heading,
   after a paragraph that ends with ``:`` and before a code block that follows a paragraph,
   so that a heading, a lead-in and its code travel together.
3. Tokens are counted with the served model's tokenizer (:mod:`rag.tokens`: ``POST
   /tokenize`` offsets, or the documented estimate without it), special tokens included.
4. Packing: a chunk takes atoms while they fit the budget (``min(chunk_tokens, model max
   length)``, the section prefix included); when the next does not fit, the chunk ends at the
   best-ranked break among those that leave it at least 30 % full (the latest of equals).
   The next chunk starts ``overlap`` tokens back (whole atoms), except after a section break.
   An atom longer than the budget is cut between words, or between tokens when one word is.
5. Each chunk is an exact slice of the text, prefixed by its section path (``Title > Section
   > Subsection`` and a blank line; the heading that opens the chunk is not repeated).
   Chunks counted within 2 tokens of the model's max length are counted again whole, and the
   document is re-packed with a smaller budget if one would be truncated.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag import layout
from rag.embedder import TokenCount
from rag.layout import Format
from rag.resources import PARAGRAPH_SEPARATOR
from rag.tokens import Tokenizer, TokenMap

# Part of the ingest hash: a change here re-chunks and re-embeds on the next run.
CHUNKER_VERSION = 2
SECTION, BLOCK, SENTENCE, LINE, GLUED, FORCED = 5, 4, 3, 2, 1, 0
MIN_FILL = 0.3
_SEPARATOR = re.compile(PARAGRAPH_SEPARATOR)


class TokenCounter(Protocol):
    """Counts tokens like the embedding model (``Embedder`` is one)."""

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]: ...


def normalize(content: str) -> str:
    return content.replace("\r\n", "\n").replace("\r", "\n").strip()


def paragraphs(content: str) -> list[str]:
    """``content`` split on blank lines, each trimmed, none empty: the pipeline's own split of a
    document sent with ``content`` only (by a client other than rag)."""
    parts = (p.strip() for p in _SEPARATOR.split(normalize(content)))
    return [p for p in parts if p]


@dataclass(frozen=True)
class Source:
    """What the chunker needs of a document."""

    content: str
    format: Format = "text"
    title: str | None = None


@dataclass(frozen=True)
class Chunk:
    """``text`` = section prefix + ``body``; ``body`` is ``content[start:end]`` (normalized)."""

    text: str
    start: int
    end: int
    tokens: int


@dataclass(frozen=True)
class _Atom:
    start: int
    end: int
    quality: int  # of the break before it
    section: int  # index of its section path
    heading: bool


@dataclass
class _Doc:
    text: str
    title: str | None
    atoms: list[_Atom]
    paths: list[tuple[str, ...]]
    tokens: TokenMap


class Chunker:
    """Cuts documents into chunks of at most ``budget`` tokens (module doc)."""

    def __init__(self, tokenizer: Tokenizer, chunk_tokens: int, overlap: int, model_max: int) -> None:
        self.tokenizer = tokenizer
        self.model_max = model_max
        self.budget = min(chunk_tokens, model_max)
        self.overlap = overlap
        self._prefixes: dict[str, int] = {}

    def split(self, docs: Sequence[Source]) -> list[list[Chunk]]:
        """The chunks of each document, in order; a document without text has none."""
        texts = [normalize(d.content) for d in docs]
        maps = self.tokenizer.starts(texts)
        parsed = [
            _parse(text, doc.format, doc.title, TokenMap(starts))
            for text, doc, starts in zip(texts, docs, maps, strict=True)
        ]
        self._count_prefixes(parsed)
        budgets = [self.budget] * len(parsed)
        out = [self._pack(doc, self.budget) for doc in parsed]
        for _ in range(3):
            over = self._overflowing(out)
            if not over:
                break
            for i, excess in over.items():
                budgets[i] = max(8, budgets[i] - excess - 1)
                out[i] = self._pack(parsed[i], budgets[i])
        return out

    # -- prefixes ------------------------------------------------------------------------

    def _titles(self, doc: _Doc, atom: _Atom) -> tuple[str, ...]:
        full = doc.paths[atom.section]
        path = full[:-1] if atom.heading else full
        if doc.title and (not full or full[0] != doc.title):
            path = (doc.title, *path)
        return path

    def _count_prefixes(self, docs: list[_Doc]) -> None:
        wanted = set()
        for doc in docs:
            for atom in doc.atoms:
                titles = self._titles(doc, atom)
                for k in range(len(titles)):
                    wanted.add(" > ".join(titles[k:]))
        fresh = sorted(p for p in wanted if p and p not in self._prefixes)
        for prefix, starts in zip(fresh, self.tokenizer.starts(fresh), strict=True):
            self._prefixes[prefix] = len(starts)

    def _prefix(self, doc: _Doc, atom: _Atom, budget: int) -> tuple[str, int]:
        """The section prefix of a chunk that starts at ``atom``, and its tokens (at most 1/4)."""
        titles = self._titles(doc, atom)
        for k in range(len(titles)):
            prefix = " > ".join(titles[k:])
            cost = self._prefixes.get(prefix, 0)
            if cost <= budget // 4:
                return prefix, cost
        return "", 0

    # -- packing -------------------------------------------------------------------------

    def _fit(self, doc: _Doc, budget: int) -> list[_Atom]:
        """The atoms, those longer than the budget cut between words, or tokens."""
        cap = max(1, budget - self.tokenizer.specials - budget // 4)
        out: list[_Atom] = []
        for atom in doc.atoms:
            bounds = [atom.start, *_cuts(doc, atom.start, atom.end, cap), atom.end]
            for k, (a, b) in enumerate(itertools.pairwise(bounds)):
                end = a + len(doc.text[a:b].rstrip())
                if end > a:
                    first = k == 0
                    out.append(
                        _Atom(a, end, atom.quality if first else FORCED, atom.section, atom.heading and first)
                    )
        return out

    def _pack(self, doc: _Doc, budget: int) -> list[Chunk]:
        atoms = self._fit(doc, budget)
        count = doc.tokens.count
        specials = self.tokenizer.specials

        def room(i: int) -> tuple[str, int, int]:
            """Prefix, its tokens, and the tokens left for the body of a chunk starting at ``i``."""
            prefix, cost = self._prefix(doc, atoms[i], budget)
            return prefix, cost, budget - specials - cost

        chunks: list[Chunk] = []
        i = covered = 0
        while i < len(atoms):
            first = i
            prefix, cost, avail = room(i)
            lo = max(i + 1, covered + 1)
            j = lo
            while j < len(atoms) and count(atoms[i].start, atoms[j].end) <= avail:
                j += 1
            if j < len(atoms):
                breaks = range(lo, j + 1)
                full = [b for b in breaks if count(atoms[i].start, atoms[b - 1].end) >= MIN_FILL * avail]
                j = max(full or breaks, key=lambda b: (atoms[b].quality, b))
            start, end = atoms[i].start, atoms[j - 1].end
            body = doc.text[start:end]
            chunks.append(
                Chunk(
                    f"{prefix}\n\n{body}" if prefix else body, start, end, specials + cost + count(start, end)
                )
            )
            covered = i = j
            if j < len(atoms) and self.overlap and atoms[j].quality < SECTION:
                # Start back by whole atoms worth at most ``overlap`` tokens, if they fit with the next.
                s = j
                while s - 1 > first and count(atoms[s - 1].start, atoms[j - 1].end) <= self.overlap:
                    s -= 1
                while s < j and count(atoms[s].start, atoms[j].end) > room(s)[2]:
                    s += 1
                i = s
        return chunks

    def _overflowing(self, out: list[list[Chunk]]) -> dict[int, int]:
        """Documents with a chunk the model would truncate: index -> tokens too many."""
        risky = [(i, c) for i, chunks in enumerate(out) for c in chunks if c.tokens >= self.model_max - 2]
        if not risky:
            return {}
        counted = self.tokenizer.starts([c.text for _, c in risky])
        over: dict[int, int] = {}
        for (i, _), starts in zip(risky, counted, strict=True):
            excess = len(starts) + self.tokenizer.specials - self.model_max
            if excess > 0:
                over[i] = max(over.get(i, 0), excess)
        return over


def _cuts(doc: _Doc, start: int, end: int, cap: int) -> list[int]:
    """Where to cut ``[start, end)`` into pieces of at most ``cap`` tokens: at the last word
    start that keeps a piece within ``cap``, or after ``cap`` tokens when one word is longer."""
    cuts: list[int] = []
    pos = start
    text = doc.text
    while doc.tokens.count(pos, end) > cap:
        limit = doc.tokens.offset(pos, cap)  # the first token that does not fit
        k = limit
        while k > pos and not (text[k - 1].isspace() and not text[k].isspace()):
            k -= 1
        cut = k if k > pos else limit
        if cut <= pos:
            break
        cuts.append(cut)
        pos = cut
    return cuts


def _is_fence(text: str, start: int, end: int) -> bool:
    return text[start:end].lstrip().startswith(("```", "~~~"))


def _parse(text: str, fmt: Format, title: str | None, tokens: TokenMap) -> _Doc:
    """Atoms and section paths of one document (module doc, step 2)."""
    atoms: list[_Atom] = []
    paths: list[tuple[str, ...]] = [()]
    stack: list[tuple[int, str]] = []
    previous: layout.Block | None = None
    for block in layout.blocks(text, fmt):
        if block.kind == "heading":
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.title))
            paths.append(tuple(t for _, t in stack))
            atoms.append(_Atom(block.start, block.end, SECTION, len(paths) - 1, True))
            previous = block
            continue
        quality = BLOCK
        if previous is not None and (
            previous.kind == "heading"
            or (previous.kind == "text" and text[previous.end - 1] == ":")
            or (block.kind == "code" and previous.kind == "text")
        ):
            quality = GLUED
        if block.kind == "code":
            cuts, inner = layout.lines(text, block.start, block.end), LINE
        else:
            cuts, inner = layout.sentences(text, block.start, block.end), SENTENCE
        bounds = [block.start, *cuts, block.end]
        pieces = [(a, a + len(text[a:b].rstrip())) for a, b in itertools.pairwise(bounds)]
        for k, (a, end) in enumerate(pieces):
            if end <= a:
                continue
            here = quality if k == 0 else inner
            # A code fence stays with the code it opens or closes.
            if (
                block.kind == "code"
                and k > 0
                and ((_is_fence(text, *pieces[k - 1]) and k == 1) or _is_fence(text, a, end))
            ):
                here = GLUED
            atoms.append(_Atom(a, end, here, len(paths) - 1, False))
        previous = block
    return _Doc(text, title, atoms, paths, tokens)
