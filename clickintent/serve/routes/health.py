"""GET /healthz (the process answers) and GET /readyz (a model is loaded and the inference thread runs).

Both are open without the API key, so probes need no secret; they reveal versions, never request data.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from clickintent.serve.deps import ServiceDep
from clickintent.serve.schemas import Health, Problem, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Problem, "description": "Not ready yet."}})
async def readyz(service: ServiceDep) -> Ready:
    model = service.model
    if not service.ready or model is None or service.live is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "not ready")
    return Ready(**service.versions(model), status="ready", engine=model.engine.name, live_sessions=len(service.live))
