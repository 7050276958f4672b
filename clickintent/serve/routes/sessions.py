"""POST /v1/sessions/{session_id}/events: append live events to a session the service keeps; get its intent.

The key is the client's (a visitor or tab id); the service applies the sessionizer's rule to the events
it receives under it (live.py), so the intent follows the visitor click by click and a visit after 30
minutes of inactivity starts afresh (`new_session`, `segment`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path

from clickintent.serve.clean import with_dwell
from clickintent.serve.deps import ModelDep, ServiceDep
from clickintent.serve.routes import ERRORS, check_events
from clickintent.serve.schemas import MAX_ID_CHARS, LiveRequest, LiveResponse

router = APIRouter(prefix="/v1/sessions", tags=["live sessions"])

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


@router.post("/{session_id}/events", responses=ERRORS)
async def append_events(
    session_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS, description="The client's session key.")],
    body: LiveRequest,
    service: ServiceDep,
    model: ModelDep,
) -> LiveResponse:
    """Append events to the live session `session_id` and return its updated intent."""
    check_events(service.settings, len(body.events))
    assert service.live is not None
    rows, _ = service.clean(body.events)
    state, started = service.live.append(session_id, rows)
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
