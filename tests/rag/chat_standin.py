"""A scripted OpenAI-compatible chat completions server for tests (``/v1/chat/completions``).

Streams (server-sent ``chat.completion.chunk`` events, then ``[DONE]``) or answers whole,
like OpenAI and Bailian's compatible mode. What it answers is decided by ``responder``
(messages -> text); the default, :func:`grounded_responder`, behaves like a model that
follows rag's system prompt: it answers from the passage that shares the most words with
the question and cites it, or says "I don't know." when none does. Every request body is
kept in ``requests`` (and its headers in ``headers``) so that tests can assert what the model
received.

Like Bailian: ``stream_options.include_usage`` adds a last chunk with no choices and the
``usage``; ``enable_thinking: true`` streams ``reasoning`` as ``reasoning_content`` deltas
before the answer. Faults: ``fail_status`` (with ``retry_after`` as a ``Retry-After``
header); ``hold`` makes a streamed answer wait after its first delta until it is set.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.rag.embed_standin import STOP

Responder = Callable[[list[dict[str, str]]], str]
PASSAGE = re.compile(
    r"^\[(\d+)\] \(source: [^\n]*\)\n(.*?)(?=\n\n\[\d+\] \(source: |\n\nQuestion: )", re.S | re.M
)


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if w not in STOP}


def grounded_responder(messages: list[dict[str, str]]) -> str:
    """Answer with the first sentence of the best-overlapping passage and cite it as [n]."""
    user = messages[-1]["content"]
    question = user.rsplit("Question: ", 1)[-1]
    best, best_n, best_text = 0, 0, ""
    for match in PASSAGE.finditer(user):
        overlap = len(words(question) & words(match.group(2)))
        if overlap > best:
            best, best_n, best_text = overlap, int(match.group(1)), match.group(2)
    if best == 0:
        return "I don't know."
    sentence = re.split(r"(?<=[.!?])\s", best_text.strip(), maxsplit=1)[0]
    return f"{sentence} [{best_n}]"


@dataclass
class ChatStandin:
    responder: Responder = grounded_responder
    api_key: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_status: list[int] = field(default_factory=list)
    retry_after: int | None = None
    reasoning: str = "Let me look at the passages."
    hold: threading.Event | None = None

    def _error(self, status: int, message: str, kind: str) -> Response:
        headers = {"retry-after": str(self.retry_after)} if self.retry_after is not None else None
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": None}},
            status_code=status,
            headers=headers,
        )

    async def completions(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error")
        if self.fail_status:
            status = self.fail_status.pop(0)
            return self._error(status, f"injected fault {status}", "server_error")
        if not isinstance(body.get("messages"), list) or not body.get("model"):
            return self._error(400, "`model` and `messages` are required", "invalid_request_error")
        text = self.responder(body["messages"])
        created = int(time.time())
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )

        def chunk(delta: dict[str, str], finish: str | None) -> str:
            payload = {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(payload)}\n\n"

        thinking = body.get("enable_thinking") is True
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body["messages"])
        completion_tokens = len(text.split()) + (len(self.reasoning.split()) if thinking else 0)

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""}, None)
            if thinking:
                for piece in re.findall(r"\S+\s*", self.reasoning):
                    yield chunk({"reasoning_content": piece}, None)
            for i, piece in enumerate(re.findall(r"\S+\s*", text)):
                yield chunk({"content": piece}, None)
                if i == 0 and self.hold is not None:
                    self.hold.wait(30)
            yield chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                usage: dict[str, Any] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
                if thinking:
                    usage["completion_tokens_details"] = {"reasoning_tokens": len(self.reasoning.split())}
                payload = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(payload)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
