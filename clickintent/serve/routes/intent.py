"""POST /v1/intent: one session's events in; label, confidence, top-3 and the events that weighed most out."""

from __future__ import annotations

from fastapi import APIRouter

from clickintent.serve.deps import ModelDep, ServiceDep
from clickintent.serve.routes import ERRORS, check_events
from clickintent.serve.schemas import IntentRequest, IntentResponse

router = APIRouter(prefix="/v1", tags=["scoring"])


@router.post("/intent", responses=ERRORS)
async def intent(body: IntentRequest, service: ServiceDep, model: ModelDep) -> IntentResponse:
    """The session's intent label. With `explain`, each event the encoder read is hidden in turn (one batched
    call) and the events whose absence lowers the top label's probability most are returned."""
    check_events(service.settings, len(body.events))
    [(rows, order)] = await service.clean(body.events)
    (scored,) = await service.queue.score(model, [rows], [body.explain and service.settings.top_events > 0])
    fields = service.intent_fields(model, scored, rows, order, include_embedding=body.include_embedding)
    return IntentResponse(**service.versions(model), **fields, n_events=len(rows))
