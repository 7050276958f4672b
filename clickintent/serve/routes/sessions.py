"""Live sessions: `POST /v1/sessions` starts one under a server-issued id; `POST /v1/sessions/{id}/events`
appends events to it. Both answer its updated intent.

The service applies the sessionizer's rule to the events it receives under an id (live.py), so the intent
follows the visitor click by click and a visit after 30 minutes of inactivity starts afresh
(`new_session`, `segment`). The id is made by the service and is the only way to reach the session
(live.py says why): an id the service does not hold, because it never issued it or because the session
expired or was evicted, is 404, and the client starts a new session.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from clickintent.serve.clean import with_dwell
from clickintent.serve.deps import ModelDep, ServiceDep
from clickintent.serve.live import LiveSession
from clickintent.serve.model import ServingModel
from clickintent.serve.routes import ERRORS, check_events
from clickintent.serve.schemas import MAX_ID_CHARS, LiveRequest, LiveResponse, Problem
from clickintent.serve.service import Service

router = APIRouter(prefix="/v1/sessions", tags=["live sessions"])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNKNOWN = "no live session has this id (it expired, was evicted, or was never issued): start one with POST /v1/sessions"


def _ts(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@router.post("", responses=ERRORS, status_code=status.HTTP_201_CREATED)
async def start_session(body: LiveRequest, service: ServiceDep, model: ModelDep) -> LiveResponse:
    """Start a live session with `events`; the answer's `session_id` (made by the service) is how to add more."""
    check_events(service.settings, len(body.events))
    assert service.live is not None
    [(rows, _)] = await service.clean(body.events)
    session_id, state = service.live.start(rows)
    return await _answer(service, model, body, session_id, state, started=True)


@router.post(
    "/{session_id}/events",
    responses={**ERRORS, 404: {"model": Problem, "description": "No live session has this id."}},
)
async def append_events(
    session_id: Annotated[
        str, Path(min_length=1, max_length=MAX_ID_CHARS, description="The id `POST /v1/sessions` answered.")
    ],
    body: LiveRequest,
    service: ServiceDep,
    model: ModelDep,
) -> LiveResponse:
    """Append events to the live session `session_id` and return its updated intent."""
    check_events(service.settings, len(body.events))
    assert service.live is not None
    [(rows, _)] = await service.clean(body.events)
    appended = service.live.append(session_id, rows)
    if appended is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, UNKNOWN)
    state, started = appended
    return await _answer(service, model, body, session_id, state, started)


async def _answer(
    service: Service, model: ServingModel, body: LiveRequest, session_id: str, state: LiveSession, started: bool
) -> LiveResponse:
    assert service.live is not None
    service.metrics.sync_live(service.live)
    snapshot = with_dwell(state.events)  # a copy: later appends may change the stored session meanwhile
    (scored,) = await service.queue.score(model, [snapshot], [body.explain and service.settings.top_events > 0])
    offset = state.n_events - len(snapshot)  # index of the first stored event within the session
    index = [offset + i for i in range(len(snapshot))]
    fields = service.intent_fields(model, scored, snapshot, index, include_embedding=body.include_embedding)
    return LiveResponse(
        **service.versions(model), **fields, session_id=session_id, segment=state.segment, new_session=started,
        n_events=state.n_events, start=_ts(state.start), end=_ts(state.last),
    )  # fmt: skip
