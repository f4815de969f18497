"""The chat model: OpenAI-compatible chat completions (Bailian's compatible mode in production).

``ChatClient`` is the seam; :class:`OpenAIChat` implements it with the official ``openai``
SDK against ``CHAT_BASE_URL`` (default Bailian,
``https://dashscope.aliyuncs.com/compatible-mode/v1``, key ``DASHSCOPE_API_KEY``). Any
OpenAI-compatible server works: OpenAI itself, vLLM, llama.cpp's server.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletionChunk

from rag.errors import ConfigError, chat_errors
from rag.settings import BAILIAN_BASE_URL, Settings

# Local OpenAI-compatible servers need no key, but the SDK insists on one.
LOCAL_KEY = "not-needed"


class ChatClient(Protocol):
    """Streams a completion of chat ``messages`` as text deltas."""

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]: ...


class OpenAIChat:
    """``chat.completions.create(..., stream=True)`` through the ``openai`` SDK."""

    def __init__(self, settings: Settings, http_client: Any | None = None) -> None:
        key = settings.chat_api_key
        if not key and settings.chat_base_url.rstrip("/") == BAILIAN_BASE_URL:
            raise ConfigError(
                "the chat model is Bailian (CHAT_BASE_URL default) and no key is set: "
                "export DASHSCOPE_API_KEY, or point CHAT_BASE_URL at another OpenAI-compatible server"
            )
        self.settings = settings
        kwargs: dict[str, Any] = {
            "api_key": key or LOCAL_KEY,
            "base_url": settings.chat_base_url,
            "timeout": settings.chat_timeout,
            "max_retries": settings.max_retries,
        }
        if http_client is not None:
            kwargs["http_client"] = http_client
        self._client = openai.OpenAI(**kwargs)

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        with chat_errors(self.settings.chat_base_url, self.settings.chat_model):
            response = self._client.chat.completions.create(
                model=self.settings.chat_model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=self.settings.chat_temperature,
                stream=True,
            )
            for chunk in response:
                if (
                    isinstance(chunk, ChatCompletionChunk)
                    and chunk.choices
                    and chunk.choices[0].delta.content
                ):
                    yield chunk.choices[0].delta.content

    def close(self) -> None:
        self._client.close()
