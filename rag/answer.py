"""``python -m rag ask``: retrieve, prompt, stream the chat model's answer, resolve citations.

When retrieval finds nothing the answer is ``I don't know.`` without calling the chat
model: a grounded answer needs at least one passage.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag import prompt
from rag.chunking import TokenCounter
from rag.prompt import Citation, Prompt
from rag.retrieval import Fusion, Retriever
from rag.settings import Settings

if TYPE_CHECKING:  # rag.chat imports openai, which takes seconds; only its Protocol is needed here.
    from rag.chat import ChatClient


@dataclass(frozen=True)
class Answer:
    """The model's text and the passages it cites (``citations``) or was given (``prompt``)."""

    text: str
    citations: list[Citation]
    prompt: Prompt
    fusion: Fusion = "none"

    def as_dict(self) -> dict[str, object]:
        return {
            "question": self.prompt.question,
            "answer": self.text,
            "citations": [c.as_dict() for c in self.citations],
            "passages": len(self.prompt.passages),
            "fusion": self.fusion,
        }

    def render_sources(self) -> str:
        if not self.citations:
            return "Sources: none cited"
        lines = ["Sources:"]
        lines += [
            f"[{c.n}] {c.passage.source} (chunk {c.passage.chunk_index}, score {c.passage.score:.4f})"
            for c in self.citations
        ]
        return "\n".join(lines)


@dataclass
class Assistant:
    """Answers questions from the index with a chat model."""

    settings: Settings
    retriever: Retriever
    chat: ChatClient
    counter: TokenCounter

    def prepare(
        self,
        question: str,
        k: int | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        hybrid: bool | None = None,
    ) -> tuple[Prompt, Fusion]:
        """Retrieve and build the grounded prompt; also says how the ranking was fused."""
        result = self.retriever.search(question, k=k, filters=filters, hybrid=hybrid)
        built = prompt.build(question, result.passages, self.counter, self.settings.context_tokens)
        return built, result.fusion

    def stream(self, grounded: Prompt) -> Iterator[str]:
        """The answer's text deltas (one "I don't know." when there is no passage)."""
        if not grounded.passages:
            yield prompt.I_DONT_KNOW
            return
        yield from self.chat.stream(grounded.messages)

    @staticmethod
    def finish(grounded: Prompt, fusion: Fusion, text: str) -> Answer:
        return Answer(text.strip(), prompt.citations(text, grounded.passages), grounded, fusion)

    def ask(
        self,
        question: str,
        k: int | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        hybrid: bool | None = None,
    ) -> Answer:
        grounded, fusion = self.prepare(question, k, filters, hybrid)
        return self.finish(grounded, fusion, "".join(self.stream(grounded)))
