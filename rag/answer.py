"""``python -m rag ask``: retrieve, prompt, stream the chat model's answer, resolve citations.

When retrieval finds nothing the answer is ``I don't know.`` without calling the chat
model: a grounded answer needs at least one passage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rag import prompt
from rag.chat import ChatClient, ChatStream, Usage
from rag.chunking import TokenCounter
from rag.prompt import Citation, Prompt
from rag.retrieval import Fusion, Retriever
from rag.settings import Settings


@dataclass(frozen=True)
class Answer:
    """The model's text and the passages it cites (``citations``) or was given (``prompt``).

    ``usage`` is the chat API's token count (None when the model was not called or did not
    report it).
    """

    text: str
    citations: list[Citation]
    prompt: Prompt
    fusion: Fusion = "none"
    usage: Usage | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "question": self.prompt.question,
            "answer": self.text,
            "citations": [c.as_dict() for c in self.citations],
            "passages": len(self.prompt.passages),
            "fusion": self.fusion,
            "usage": self.usage.as_dict() if self.usage else None,
        }

    def render_sources(self) -> str:
        lines = ["Sources:" if self.citations else "Sources: none cited"]
        lines += [
            f"[{c.n}] {c.passage.source} (chunk {c.passage.chunk_index}, score {c.passage.score:.4f})"
            for c in self.citations
        ]
        if self.usage:
            u = self.usage
            lines.append(
                f"Tokens: {u.prompt_tokens} prompt, {u.completion_tokens} completion"
                + (f" ({u.reasoning_tokens} reasoning)" if u.reasoning_tokens else "")
            )
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

    def stream(self, grounded: Prompt) -> ChatStream:
        """The answer's text deltas (one "I don't know." when there is no passage); then ``usage``."""
        if not grounded.passages:
            return ChatStream.of([prompt.I_DONT_KNOW])
        return self.chat.stream(grounded.messages)

    @staticmethod
    def finish(grounded: Prompt, fusion: Fusion, text: str, usage: Usage | None = None) -> Answer:
        return Answer(text.strip(), prompt.citations(text, grounded.passages), grounded, fusion, usage)

    def ask(
        self,
        question: str,
        k: int | None = None,
        filters: Mapping[str, Sequence[str]] | None = None,
        hybrid: bool | None = None,
    ) -> Answer:
        grounded, fusion = self.prepare(question, k, filters, hybrid)
        stream = self.stream(grounded)
        text = "".join(stream)
        return self.finish(grounded, fusion, text, stream.usage)
