"""A scripted backend for tests and dry runs: answers come from a Python function, not a model.

`FakeBackend(answer)` calls `answer(request)` and accepts a `Completion` or a plain string back; it counts
every call and every request it saw. It goes through the same base class as the real backends, so caching,
retries, validation and budgets behave exactly as they do in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clickintent.llm.base import LLM, Completion, Request

Answer = Callable[[Request], "Completion | str"]


class FakeBackend(LLM):
    """Answers with `answer(request)`; `seen` keeps every request that reached it."""

    name = "fake"
    max_concurrency = 8

    def __init__(self, answer: Answer, model: str = "scripted", **options: Any) -> None:
        options.setdefault("progress", False)
        options.setdefault("backoff", 0.0)
        super().__init__(**options)
        self.answer = answer
        self._model = model
        self.seen: list[Request] = []

    @property
    def model(self) -> str:
        return self._model

    def complete(self, request: Request) -> Completion:
        self.seen.append(request)
        out = self.answer(request)
        if isinstance(out, str):
            out = Completion(text=out, prompt_tokens=len(request.prompt.split()), completion_tokens=len(out.split()))
        return out
