"""GET /metrics: Prometheus text format (requests, latency, inference batches, live sessions, reloads)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from clickintent.serve.deps import ServiceDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(service: ServiceDep) -> Response:
    if service.live is not None:
        service.live.expire()
        service.metrics.sync_live(service.live)
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)
