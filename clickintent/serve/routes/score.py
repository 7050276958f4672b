"""POST /v1/score: a batch of sessions in, an intent (and embedding) per session out."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from clickintent.serve.deps import ModelDep, ServiceDep
from clickintent.serve.routes import ERRORS, check_events
from clickintent.serve.schemas import ScoreItem, ScoreRequest, ScoreResponse

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.post("/score", responses=ERRORS)
async def score(body: ScoreRequest, service: ServiceDep, model: ModelDep) -> ScoreResponse:
    """Score up to `max_batch` sessions in one encoder call (no explanations: use /v1/intent for those)."""
    settings = service.settings
    if len(body.sessions) > settings.max_batch:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"sessions: {len(body.sessions)} sessions, this service accepts at most {settings.max_batch} per request",
        )
    for i, s in enumerate(body.sessions):
        check_events(settings, len(s.events), f"sessions[{i}].events")
    cleaned = [rows for rows, _ in await service.clean(*(s.events for s in body.sessions))]
    scored = await service.queue.score(model, cleaned, [False] * len(cleaned))
    results = [
        ScoreItem(
            session_id=s.session_id, **service.intent_fields(model, sc, rows, include_embedding=body.include_embedding)
        )
        for s, sc, rows in zip(body.sessions, scored, cleaned, strict=True)
    ]
    return ScoreResponse(**service.versions(model), results=results)
