"""Turning a document's text into chunks the model can embed whole.

1. ``normalize``: ``\\r\\n`` and ``\\r`` become ``\\n``; leading and trailing whitespace go.
2. ``paragraphs``: split on blank lines (``resources.PARAGRAPH_SEPARATOR``) and trim, exactly
   what the ingest pipeline does inside Elasticsearch, so both ingest paths agree.
3. A paragraph whose token count (special tokens included, as the server counts them) is
   within the budget is one chunk. The budget is ``min(chunk_tokens, model max length)``.
4. A longer paragraph is cut into windows of whole sentences (whole words when a sentence
   is too long, characters when a word is) that fit the budget; consecutive windows repeat
   up to ``overlap`` tokens of whole units. Each window is the exact slice of the original
   paragraph, and is counted again by the server: one that still does not fit is re-cut
   with a smaller budget, so no chunk is ever truncated by the model.

The server truncates what it tokenizes at the model's max length, so a count equal to that
length means "at least that long" and the paragraph is cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rag.embedder import TokenCount
from rag.resources import PARAGRAPH_SEPARATOR

_SEPARATOR = re.compile(PARAGRAPH_SEPARATOR)
_SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f]+[\"')\]]*(?=\s)")
_WORD = re.compile(r"\S+")


class TokenCounter(Protocol):
    """Counts tokens like the embedding model (``Embedder`` is one)."""

    def count_tokens(self, texts: Sequence[str]) -> list[TokenCount]: ...


def normalize(content: str) -> str:
    return content.replace("\r\n", "\n").replace("\r", "\n").strip()


def paragraphs(content: str) -> list[str]:
    """The pipeline's chunks: ``content`` split on blank lines, each trimmed, none empty."""
    parts = (p.strip() for p in _SEPARATOR.split(normalize(content)))
    return [p for p in parts if p]


@dataclass(frozen=True)
class _Span:
    start: int
    end: int


def _sentences(text: str) -> list[_Span]:
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append(_Span(start, match.end()))
        start = match.end()
    spans.append(_Span(start, len(text)))
    out = []
    for span in spans:
        piece = text[span.start : span.end]
        lead = len(piece) - len(piece.lstrip())
        if piece.strip():
            out.append(_Span(span.start + lead, span.start + len(piece.rstrip())))
    return out


class Chunker:
    """Splits documents into chunks of at most ``budget`` tokens (see module doc)."""

    def __init__(self, counter: TokenCounter, chunk_tokens: int, overlap: int, model_max: int) -> None:
        self.counter = counter
        self.model_max = model_max
        self.budget = min(chunk_tokens, model_max)
        self.overlap = overlap

    def _fits(self, count: TokenCount, budget: int) -> bool:
        return count.total <= budget and count.total < self.model_max

    def split(self, contents: Sequence[str]) -> list[list[str]]:
        """The chunk texts of each content, in order; an empty content has no chunks."""
        per_doc = [paragraphs(c) for c in contents]
        flat = [p for ps in per_doc for p in ps]
        counts = iter(self.counter.count_tokens(flat))
        out: list[list[str]] = []
        for ps in per_doc:
            chunks: list[str] = []
            for paragraph in ps:
                count = next(counts)
                if self._fits(count, self.budget):
                    chunks.append(paragraph)
                else:
                    chunks.extend(self._windows(paragraph, count.special))
            out.append(chunks)
        return out

    def _units(self, text: str, content_budget: int, specials: int) -> tuple[list[_Span], list[int]]:
        """Sentences, or words of a sentence too long, or characters of a word too long."""
        units = _sentences(text)
        costs = [c.content for c in self.counter.count_tokens([text[u.start : u.end] for u in units])]
        final: list[_Span] = []
        final_costs: list[int] = []
        for unit, cost in zip(units, costs, strict=True):
            if cost <= content_budget and cost + specials < self.model_max:
                final.append(unit)
                final_costs.append(cost)
                continue
            words = [
                _Span(unit.start + m.start(), unit.start + m.end())
                for m in _WORD.finditer(text[unit.start : unit.end])
            ]
            word_costs = [
                c.content for c in self.counter.count_tokens([text[w.start : w.end] for w in words])
            ]
            for word, word_cost in zip(words, word_costs, strict=True):
                if word_cost <= content_budget and word_cost + specials < self.model_max:
                    final.append(word)
                    final_costs.append(word_cost)
                    continue
                # One "word" longer than the budget (a URL, a hash, base64): cut it by characters,
                # sized by its characters per token.
                step = max(1, (word.end - word.start) * content_budget // max(word_cost, 1) // 2)
                for s in range(word.start, word.end, step):
                    final.append(_Span(s, min(s + step, word.end)))
                    final_costs.append(content_budget // 2)
        return final, final_costs

    def _windows(self, text: str, specials: int) -> list[str]:
        content_budget = max(1, self.budget - specials)
        units, costs = self._units(text, content_budget, specials)
        for _ in range(8):
            windows = _pack(units, costs, content_budget, self.overlap)
            texts = [text[w[0].start : w[-1].end] for w in windows]
            counted = self.counter.count_tokens(texts)
            worst = max(c.total for c in counted)
            if all(self._fits(c, self.budget) for c in counted):
                return texts
            # Summed unit counts under-estimated the window; shrink by the excess and re-pack.
            content_budget = max(1, content_budget - max(1, worst - self.budget + 1))
        return texts


def _pack(units: list[_Span], costs: list[int], budget: int, overlap: int) -> list[list[_Span]]:
    """Greedy windows of consecutive units within ``budget``, repeating <= ``overlap`` tokens."""
    windows: list[list[_Span]] = []
    start = 0
    while start < len(units):
        end = start
        used = 0
        while end < len(units) and (end == start or used + costs[end] <= budget):
            used += costs[end]
            end += 1
        windows.append(units[start:end])
        if end >= len(units):
            break
        back = end
        carried = 0
        while back - 1 > start and carried + costs[back - 1] <= overlap:
            back -= 1
            carried += costs[back]
        start = back
    return windows
