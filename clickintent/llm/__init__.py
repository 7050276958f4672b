"""LLM backends behind one interface (`LLM.complete`), with caching, retries and a call budget in the base.

`make_backend("local" | "openai", ...)` builds one from CLI-style options; the classes can also be built
directly. The local backend needs the `llm-local` extra and is imported only when asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clickintent.llm.base import (
    LLM,
    BudgetExceeded,
    Completion,
    LLMError,
    MalformedOutput,
    MissingExtra,
    Request,
    StepFailed,
    TransientError,
    Usage,
)
from clickintent.llm.cache import Cache

BACKENDS = ("local", "openai")


def make_backend(
    kind: str,
    *,
    cache: Cache | str | Path | None = None,
    base_url: str | None = None,
    model: str | None = None,
    endpoint: str = "completions",
    api_key_env: str | None = "OPENAI_API_KEY",
    constraint: str | None = None,
    model_path: str | Path | None = None,
    n_threads: int = 1,
    **options: Any,
) -> LLM:
    """A backend by name: `local` (in-process Gemma 3 270M) or `openai` (any OpenAI-compatible server)."""
    if cache is not None and not isinstance(cache, Cache):
        cache = Cache(cache)
    if kind == "local":
        from clickintent.llm.local import LocalBackend

        return LocalBackend(model_path, n_threads=n_threads, cache=cache, **options)
    if kind == "openai":
        from clickintent.llm.openai import OpenAIBackend

        if not base_url or not model:
            raise LLMError("the openai backend needs a base URL and a model name (--llm-base-url, --llm-model)")
        return OpenAIBackend(
            base_url,
            model,
            endpoint=endpoint,  # type: ignore[arg-type]
            api_key_env=api_key_env,
            constraint=constraint,  # type: ignore[arg-type]
            cache=cache,
            **options,
        )
    raise LLMError(f"unknown LLM backend {kind!r}; expected one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "LLM",
    "BudgetExceeded",
    "Cache",
    "Completion",
    "LLMError",
    "MalformedOutput",
    "MissingExtra",
    "Request",
    "StepFailed",
    "TransientError",
    "Usage",
    "make_backend",
]
