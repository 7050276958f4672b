"""POST /v1/embed: one session's events in, its embedding out."""

from __future__ import annotations

from fastapi import APIRouter

from clickintent.serve.deps import ModelDep, ServiceDep
from clickintent.serve.routes import ERRORS, check_events
from clickintent.serve.schemas import EmbedRequest, EmbedResponse

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.post("/embed", responses=ERRORS)
async def embed(body: EmbedRequest, service: ServiceDep, model: ModelDep) -> EmbedResponse:
    """The session embedding of `events` (PII redacted on arrival; the encoder reads the latest events)."""
    check_events(service.settings, len(body.events))
    [(rows, _)] = await service.clean(body.events)
    (scored,) = await service.queue.score(model, [rows], [False])
    return EmbedResponse(
        **service.versions(model), dim=len(scored.embedding), n_events=len(rows), embedding=scored.embedding.tolist()
    )
