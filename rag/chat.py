"""The chat model: OpenAI-compatible chat completions (Bailian's compatible mode in production).

``ChatClient`` is the seam; :class:`OpenAIChat` implements it with the official ``openai``
SDK against ``settings.chat_url`` (``CHAT_BASE_URL``, else Bailian's endpoint for
``DASHSCOPE_REGION``). Any OpenAI-compatible server works: OpenAI itself, vLLM, llama.cpp's
server, Ollama.

Keys: a DashScope host (:func:`rag.settings.is_dashscope`) gets ``CHAT_API_KEY`` or else
``DASHSCOPE_API_KEY``; any other URL gets ``CHAT_API_KEY`` only, so a Bailian key never
reaches a third-party or local server.

Every request streams and asks for the token usage in its last chunk
(``stream_options.include_usage``), caps the answer (``max_completion_tokens`` for Bailian,
which replaced ``max_tokens`` on 2026-04-20, and for OpenAI; ``max_tokens`` elsewhere) and,
when ``CHAT_THINKING`` is on or off, sends Qwen3's ``enable_thinking`` (and
``thinking_budget``) in the body. Reasoning deltas (``reasoning_content``) are not part of
the answer.

Time is bounded: the SDK does not retry; :class:`OpenAIChat` retries 429, 5xx, timeouts and
refused connections with exponential backoff (``Retry-After`` honoured) while
``CHAT_DEADLINE`` allows, each attempt waiting at most ``CHAT_TIMEOUT`` and never past the
deadline; once the answer has started it is not retried (the user has seen it). The stream
is checked against the deadline at every chunk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from rag.errors import ChatError, ConfigError, chat_errors
from rag.settings import Settings, is_dashscope

# Local OpenAI-compatible servers need no key, but the SDK insists on one.
LOCAL_KEY = "not-needed"
log = logging.getLogger("rag")


@dataclass(frozen=True)
class Usage:
    """Tokens one answer cost, as the chat API counted them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


class ChatStream:
    """The answer's text deltas; ``usage`` is set once the API reported it (at the end)."""

    def __init__(self, produce: Callable[[ChatStream], Iterator[str]]) -> None:
        self.usage: Usage | None = None
        self._deltas = produce(self)

    @classmethod
    def of(cls, texts: Sequence[str]) -> ChatStream:
        return cls(lambda _: iter(list(texts)))

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        return next(self._deltas)


class ChatClient(Protocol):
    """Streams a completion of chat ``messages`` as text deltas."""

    def stream(self, messages: Sequence[dict[str, str]]) -> ChatStream: ...


def _token_field(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    if is_dashscope(url) or host == "api.openai.com":
        return "max_completion_tokens"
    return "max_tokens"


class OpenAIChat:
    """``chat.completions.create(..., stream=True)`` through the ``openai`` SDK (module doc)."""

    def __init__(self, settings: Settings, http_client: Any | None = None) -> None:
        # Imported here: openai takes seconds to import and only `ask` and `serve` need it.
        import openai

        url = settings.chat_url
        key = settings.chat_key
        if not key and is_dashscope(url):
            raise ConfigError(
                f"the chat model is Bailian ({url}) and no key is set: export DASHSCOPE_API_KEY "
                f"(a key of DASHSCOPE_REGION={settings.dashscope_region}), or point CHAT_BASE_URL at "
                "another OpenAI-compatible server (its key goes in CHAT_API_KEY)"
            )
        if not key and settings.dashscope_api_key:
            log.info("DASHSCOPE_API_KEY is not sent to CHAT_BASE_URL=%s (not a DashScope host)", url)
        self.settings = settings
        self.url = url
        kwargs: dict[str, Any] = {
            "api_key": key or LOCAL_KEY,
            "base_url": url,
            "timeout": settings.chat_timeout,
            "max_retries": 0,
        }
        if http_client is not None:
            kwargs["http_client"] = http_client
        self._client = openai.OpenAI(**kwargs)

    def request(self, messages: Sequence[dict[str, str]]) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for ``messages``."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": s.chat_model,
            "messages": list(messages),
            "temperature": s.chat_temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            _token_field(self.url): s.chat_max_tokens,
        }
        extra: dict[str, Any] = {}
        if s.chat_thinking != "auto":
            extra["enable_thinking"] = s.chat_thinking == "on"
        if s.chat_thinking_budget is not None:
            extra["thinking_budget"] = s.chat_thinking_budget
        if extra:
            kwargs["extra_body"] = extra
        return kwargs

    def stream(self, messages: Sequence[dict[str, str]]) -> ChatStream:
        kwargs = self.request(messages)
        return ChatStream(lambda out: self._generate(out, kwargs))

    def _generate(self, out: ChatStream, kwargs: dict[str, Any]) -> Iterator[str]:
        s = self.settings
        deadline = time.monotonic() + s.chat_deadline
        attempt = 0
        while True:
            started = False
            try:
                remaining = deadline - time.monotonic()
                with chat_errors(self.url, s.chat_model):
                    response = self._client.with_options(
                        timeout=min(s.chat_timeout, max(remaining, 0.001))
                    ).chat.completions.create(**kwargs)
                    with response:
                        for chunk in response:
                            if time.monotonic() > deadline:
                                raise self._late(attempt)
                            if chunk.usage is not None:
                                out.usage = _usage(chunk.usage)
                            if chunk.choices and chunk.choices[0].delta.content:
                                started = True
                                yield chunk.choices[0].delta.content
                return
            except ChatError as exc:
                if started or not exc.retryable or attempt >= s.max_retries:
                    raise
                delay = max(min(s.retry_backoff * (2**attempt), 8.0), exc.retry_after or 0.0)
                if time.monotonic() + delay >= deadline:
                    raise self._late(attempt + 1, exc) from exc
                log.warning("the chat API failed (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
            attempt += 1

    def _late(self, attempts: int, last: ChatError | None = None) -> ChatError:
        why = f"; last error: {last}" if last else ""
        return ChatError(
            f"the chat API at CHAT_BASE_URL={self.url} gave no complete answer within CHAT_DEADLINE="
            f"{self.settings.chat_deadline:g} s ({attempts + 1} attempt(s)){why}",
            status=504,
        )

    def close(self) -> None:
        self._client.close()


def _usage(raw: Any) -> Usage:
    details = getattr(raw, "completion_tokens_details", None)
    reasoning = getattr(details, "reasoning_tokens", None) if details is not None else None
    return Usage(
        int(raw.prompt_tokens or 0),
        int(raw.completion_tokens or 0),
        int(raw.total_tokens or 0),
        int(reasoning) if reasoning is not None else None,
    )
