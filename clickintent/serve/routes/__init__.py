"""One router per resource: embed, intent, score, sessions (live), health, metrics, admin, docs."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, status

from clickintent.serve.schemas import Problem
from clickintent.serve.settings import Settings

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or wrong API key (when one is configured)."},
    413: {"model": Problem, "description": "Request body larger than the limit."},
    422: {"model": Problem, "description": "Invalid request: the message says which field and why."},
}


def check_events(settings: Settings, n: int, where: str = "events") -> None:
    """422 when a session has more events than this service accepts (the schema's cap may be lowered)."""
    if n > settings.max_events:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{where}: {n} events, this service accepts at most {settings.max_events}",
        )
