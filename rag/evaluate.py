"""``python -m rag eval``: how well retrieval finds the passages that answer a set of questions.

The question file is JSONL, one question per line::

    {"id": "xz-threads", "question": "How do I make xz use every CPU core?",
     "relevant": [{"source": "man1/xz.1.gz", "text": "special value 0 makes xz use up to as many threads"}]}

``relevant`` lists the passages that answer the question: ``source`` is the document's
``metadata.source`` or a trailing part of it (whole path components), ``text`` a verbatim
phrase of the document. A retrieved chunk *holds* a passage when it comes from that source
and contains all of ``text`` (case and runs of whitespace ignored); either key may be left
out. Passages are defined on the documents, not on chunks, so one question file scores any
chunking of the corpus.

Per question, with the chunks retrieved for it (the top ``max(10, k)``, best first):

- recall@n: the share of its passages held by a chunk in the top n (n = 1, 5, 10);
- reciprocal rank: 1 / the rank of the first chunk that holds one of them (0 past the top 10);
- nDCG@10: binary gain, each passage credited once, at its first chunk;
- in prompt: the share of its passages held by the chunks ``ask`` would put in the prompt
  (the top ``k``, cut to ``context_tokens`` by :func:`rag.prompt.build`).

The report is their mean over the questions (MRR for the reciprocal rank).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag import prompt
from rag.chunking import TokenCounter
from rag.errors import InputError
from rag.retrieval import Passage, Retriever
from rag.settings import Settings

DEPTH = 10
CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class Relevant:
    """A passage that answers a question: its source (a path suffix) and/or its text."""

    source: str | None
    text: str | None

    def held_by(self, passage: Passage) -> bool:
        if self.source is not None:
            have = passage.source
            if have != self.source and not have.endswith("/" + self.source.lstrip("/")):
                return False
        return self.text is None or _fold(self.text) in _fold(passage.text)


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    relevant: tuple[Relevant, ...]


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def load_questions(path: str | Path) -> list[Question]:
    """The questions of a JSONL file (module doc); a malformed line is an InputError naming it."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the question file {path}: {exc.strerror}") from exc
    out: list[Question] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        question = record.get("question") if isinstance(record, dict) else None
        relevant = record.get("relevant") if isinstance(record, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{where}: `question` must be a non-empty string")
        if not isinstance(relevant, list) or not relevant:
            raise InputError(f"{where}: `relevant` must be a non-empty list of {{source, text}} objects")
        passages = []
        for item in relevant:
            source = item.get("source") if isinstance(item, dict) else None
            text = item.get("text") if isinstance(item, dict) else None
            if not (isinstance(source, str) or isinstance(text, str)) or not all(
                v is None or (isinstance(v, str) and v.strip()) for v in (source, text)
            ):
                raise InputError(f"{where}: each relevant passage needs a `source` and/or a `text` (strings)")
            passages.append(Relevant(source, text))
        out.append(Question(str(record.get("id", number)), question, tuple(passages)))
    if not out:
        raise InputError(f"{path} holds no questions")
    return out


@dataclass
class Scored:
    """One question's figures (module doc) and its first hits, for the report."""

    question: Question
    first_ranks: list[int | None]
    recall: dict[int, float]
    reciprocal_rank: float
    ndcg: float
    in_prompt: float
    top: list[Passage] = field(default_factory=list)


def score(question: Question, ranked: Sequence[Passage], in_prompt: Sequence[Passage]) -> Scored:
    """The figures of ``question`` given its ranked chunks and those that reached the prompt."""
    wanted = question.relevant
    first: list[int | None] = []
    for rel in wanted:
        rank = next((r for r, p in enumerate(ranked[:DEPTH], start=1) if rel.held_by(p)), None)
        first.append(rank)
    recall = {n: sum(1 for r in first if r is not None and r <= n) / len(wanted) for n in CUTOFFS}
    found = [r for r in first if r is not None]
    credited: set[int] = set()
    dcg = 0.0
    for rank, passage in enumerate(ranked[:DEPTH], start=1):
        for i, rel in enumerate(wanted):
            if i not in credited and rel.held_by(passage):
                credited.add(i)
                dcg += 1 / math.log2(rank + 1)
                break
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(wanted), DEPTH) + 1))
    held = sum(1 for rel in wanted if any(rel.held_by(p) for p in in_prompt)) / len(wanted)
    return Scored(
        question, first, recall, 1 / min(found) if found else 0.0, dcg / ideal, held, list(ranked[:3])
    )


@dataclass
class Report:
    """Mean figures over a question set, for one index."""

    index: str
    entries: int
    hybrid: bool
    k: int
    context_tokens: int
    scored: list[Scored]

    def means(self) -> dict[str, float]:
        n = len(self.scored)
        out = {f"recall@{c}": sum(s.recall[c] for s in self.scored) / n for c in CUTOFFS}
        out["mrr@10"] = sum(s.reciprocal_rank for s in self.scored) / n
        out["ndcg@10"] = sum(s.ndcg for s in self.scored) / n
        out["in_prompt"] = sum(s.in_prompt for s in self.scored) / n
        return out

    def mean_chars(self) -> float:
        """Mean length of the top retrieved chunks, in characters."""
        sizes = [len(p.text) for s in self.scored for p in s.top]
        return sum(sizes) / len(sizes) if sizes else 0.0

    def render(self, verbose: bool = False) -> str:
        m = self.means()
        search = "hybrid (kNN + BM25)" if self.hybrid else "kNN"
        lines = [
            f"{len(self.scored)} questions, index {self.index} ({self.entries} entries), {search}",
            "  ".join(f"{name} {value:.3f}" for name, value in m.items()),
            f"in_prompt: top {self.k} within {self.context_tokens} tokens; "
            f"mean top-3 chunk {self.mean_chars():.0f} characters",
        ]
        for s in self.scored if verbose else []:
            ranks = ",".join("-" if r is None else str(r) for r in s.first_ranks)
            where = "; ".join(f"{p.source}#{p.chunk_index}" for p in s.top)
            lines.append(f"  {s.question.id}: first ranks {ranks}  top: {where}")
        misses = [s.question.id for s in self.scored if s.recall[DEPTH] == 0]
        if misses:
            lines.append(f"not in the top {DEPTH}: {', '.join(misses)}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "entries": self.entries,
            "hybrid": self.hybrid,
            "k": self.k,
            "context_tokens": self.context_tokens,
            "questions": len(self.scored),
            "means": self.means(),
            "per_question": [
                {
                    "id": s.question.id,
                    "first_ranks": s.first_ranks,
                    "recall": {str(c): v for c, v in s.recall.items()},
                    "reciprocal_rank": s.reciprocal_rank,
                    "ndcg": s.ndcg,
                    "in_prompt": s.in_prompt,
                }
                for s in self.scored
            ],
        }


def evaluate(
    settings: Settings, retriever: Retriever, counter: TokenCounter, questions: Sequence[Question]
) -> Report:
    """Run every question through ``retriever`` (kNN, or hybrid per ``settings.hybrid``)."""
    depth = max(DEPTH, settings.k)
    scored = []
    for q in questions:
        ranked = retriever.search(q.question, k=depth).passages
        built = prompt.build(q.question, ranked[: settings.k], counter, settings.context_tokens)
        scored.append(score(q, ranked, built.passages))
    entries = retriever.store.count(settings.index)
    return Report(settings.index, entries, settings.hybrid, settings.k, settings.context_tokens, scored)
