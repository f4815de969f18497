"""The grounded prompt: numbered passages within a token budget, and the citations back.

The system prompt demands that every claim cite its passage as ``[n]`` and that the model
answer exactly ``I don't know`` when the passages do not hold the answer. Passages enter
in rank order while they fit the context budget; one that does not fit is left out and
the next, smaller one may still enter. Tokens are counted with the embedding model's
tokenizer (the chat model's is not known here), a close estimate for the budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.chunking import TokenCounter
from rag.retrieval import Passage

I_DONT_KNOW = "I don't know."
SYSTEM_PROMPT = (
    "You answer questions using only the numbered context passages in the user's message.\n"
    "Rules:\n"
    "1. Use only facts stated in the passages; never use outside knowledge.\n"
    "2. Cite the passage behind every sentence with its number in square brackets, e.g. [1] or [2][3].\n"
    "3. If the passages do not contain the answer, reply exactly: I don't know.\n"
    "4. Cite only passages you used. Be concise."
)
_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass(frozen=True)
class Prompt:
    """Chat messages, and the passages they number ``[1]..[n]`` in order."""

    question: str
    messages: list[dict[str, str]]
    passages: list[Passage]


@dataclass(frozen=True)
class Citation:
    """``[n]`` in an answer, resolved to the passage it names."""

    n: int
    passage: Passage

    def as_dict(self) -> dict[str, object]:
        p = self.passage
        return {
            "n": self.n,
            "doc_id": p.doc_id,
            "source": p.source,
            "chunk_index": p.chunk_index,
            "score": p.score,
            "text": p.text,
        }


def render_context(passages: Sequence[Passage]) -> str:
    return "\n\n".join(
        f"[{n}] (source: {p.source}, chunk {p.chunk_index})\n{p.text}"
        for n, p in enumerate(passages, start=1)
    )


def build(question: str, retrieved: Sequence[Passage], counter: TokenCounter, budget: int) -> Prompt:
    """The messages for ``question`` with as many of ``retrieved`` as fit ``budget`` tokens."""
    counts = counter.count_tokens([p.text for p in retrieved])
    chosen: list[Passage] = []
    used = 0
    for passage, count in zip(retrieved, counts, strict=True):
        # A count the server truncated at the model's length under-states the text: estimate.
        cost = max(count.content, len(passage.text) // 4)
        if used + cost > budget:
            continue
        chosen.append(passage)
        used += cost
    user = f"Context passages:\n\n{render_context(chosen)}\n\nQuestion: {question.strip()}"
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
    return Prompt(question, messages, chosen)


def citations(answer: str, passages: Sequence[Passage]) -> list[Citation]:
    """The passages an answer cites, in order of first citation; numbers out of range are ignored."""
    out: list[Citation] = []
    seen: set[int] = set()
    for match in _CITE.finditer(answer):
        for raw in match.group(1).split(","):
            n = int(raw)
            if 1 <= n <= len(passages) and n not in seen:
                seen.add(n)
                out.append(Citation(n, passages[n - 1]))
    return out
