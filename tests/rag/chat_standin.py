"""A scripted OpenAI-compatible chat completions server for tests (``/v1/chat/completions``).

Streams (server-sent ``chat.completion.chunk`` events, then ``[DONE]``) or answers whole,
like OpenAI and Bailian's compatible mode. What it answers is decided by ``responder``
(messages -> text); the default, :func:`grounded_responder`, behaves like a model that
follows rag's system prompt: it answers from the passage that shares the most words with
the question and cites it, or says "I don't know." when none does. Every request body is
kept in ``requests`` so that tests can assert what prompt the model received.
"""

from __future__ import annotations

import json
import re
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
    fail_status: list[int] = field(default_factory=list)

    def _error(self, status: int, message: str, kind: str) -> Response:
        return JSONResponse(
            {"error": {"message": message, "type": kind, "param": None, "code": None}}, status_code=status
        )

    async def completions(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.requests.append(body)
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

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""}, None)
            for piece in re.findall(r"\S+\s*", text):
                yield chunk({"content": piece}, None)
            yield chunk({}, "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])
