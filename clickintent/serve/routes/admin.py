"""POST /admin/reload: load the bundle again without a restart (key-protected like every non-health route).

One worker: the bundle is loaded beside the running one and swapped in (service.py); requests in flight
finish on the old model. Several workers (`--workers N`): the route asks uvicorn's supervisor for a rolling
restart (SIGHUP to the parent process), which starts each new worker before retiring an old one.
"""

from __future__ import annotations

import logging
import os
import signal

from fastapi import APIRouter, HTTPException, status

from clickintent.bundle import BundleError
from clickintent.serve.deps import ModelDep, ServiceDep
from clickintent.serve.schemas import Problem, ReloadResponse

log = logging.getLogger(__name__)
router = APIRouter(prefix="/admin", tags=["admin"])


@router.post(
    "/reload",
    responses={
        401: {"model": Problem, "description": "Missing or wrong API key."},
        409: {"model": Problem, "description": "The bundle failed to load; the previous one keeps serving."},
    },
)
async def reload(service: ServiceDep, model: ModelDep) -> ReloadResponse:
    """Reload the bundle from the configured path (it may be a symlink you flipped to a new version)."""
    if service.settings.workers > 1:
        os.kill(os.getppid(), signal.SIGHUP)
        return ReloadResponse(
            **service.versions(model), status="restarting", previous_bundle_version=model.bundle_version,
            engine=model.engine.name, seconds=0.0,
        )  # fmt: skip
    try:
        old, new, seconds = await service.reload()
    except Exception as exc:  # the client gets what is wrong in words; paths and library errors go to the log
        log.error("reload failed, still serving bundle %s: %s", model.bundle_version, exc)
        reason = exc.reason if isinstance(exc, BundleError) else "the bundle could not be loaded (see the server log)"
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"reload failed, still serving bundle {model.bundle_version}: {reason}"
        ) from None
    return ReloadResponse(
        **service.versions(new), status="reloaded", previous_bundle_version=old.bundle_version,
        engine=new.engine.name, seconds=round(seconds, 3),
    )  # fmt: skip
