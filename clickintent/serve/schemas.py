"""Request and response models of the service: what the OpenAPI document shows and pydantic enforces.

An `Event` carries the SESSION_EVENT fields of clickintent.schema that a client knows (`page` is derived
by the service, as ingest derives it). Its string limits are ingest's `MAX_CHARS`, its checks ingest's
(blank strings are missing, invalid UTF-8 is refused, timestamps 1990..2100), so a row ingest would
quarantine is a 422 here. Hard caps on list lengths live in the schema; `Settings` may only lower them.
Nothing here redacts: clickintent.serve.clean does, right after validation.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from clickintent.ingest.transform import MAX_CHARS
from clickintent.sessionize import SessionizeOptions

MAX_EVENTS = SessionizeOptions().max_events  # a session never holds more (the sessionizer cuts there)
MAX_BATCH = 256  # sessions per /v1/score request, at most
MAX_ID_CHARS = MAX_CHARS["visitor_id"]
MAX_DWELL_MS = 10**12  # ~31 years: keeps the value inside int64 arithmetic
_TS_MIN = datetime(1990, 1, 1, tzinfo=UTC)
_TS_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_EVENT_TYPE_SEP = re.compile(r"[\s-]+")


def _text(value: str) -> str:
    """Ingest's rule: text with U+FFFD (a decoder's mark of invalid UTF-8) is refused. Lone surrogates
    (possible through JSON escapes) pydantic refuses by itself."""
    if not value.isascii() and "\ufffd" in value:
        raise ValueError("invalid UTF-8 (a replacement character)")
    return value


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _event_type(value: str) -> str:
    return _EVENT_TYPE_SEP.sub("_", value.lower())


def _utc(value: datetime) -> datetime:
    try:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # an offset that moves year 1 or 9999 out of datetime's range (issue 17: was a 500)
        raise ValueError("ts out of range 1990..2100") from None
    if not _TS_MIN <= value < _TS_MAX:
        raise ValueError("ts out of range 1990..2100")
    return value


def _chars(column: str) -> Any:
    return Field(min_length=1, max_length=MAX_CHARS[column])


Url = Annotated[str, _chars("url"), AfterValidator(_text)]
EventType = Annotated[str, _chars("event_type"), AfterValidator(_text), AfterValidator(_event_type)]
Title = Annotated[Annotated[str, _chars("page_title"), AfterValidator(_text)] | None, BeforeValidator(_blank_to_none)]
Device = Annotated[Annotated[str, _chars("device"), AfterValidator(_text)] | None, BeforeValidator(_blank_to_none)]
Referrer = Annotated[Annotated[str, _chars("referrer"), AfterValidator(_text)] | None, BeforeValidator(_blank_to_none)]
Query = Annotated[Annotated[str, _chars("search_query"), AfterValidator(_text)] | None, BeforeValidator(_blank_to_none)]


class Event(BaseModel):
    """One click: the raw values a client saw. Strings are stripped; blank optional strings count as missing."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ts: Annotated[datetime, AfterValidator(_utc)] = Field(
        description="When it happened: ISO-8601 (no zone = UTC) or Unix time in seconds or milliseconds.",
        examples=["2025-03-01T09:00:00Z"],
    )
    url: Url = Field(description="The URL as seen (PII is redacted on arrival).", examples=["https://bank.example/a"])
    page_title: Title = Field(None, description="Page title.")
    event_type: EventType = Field(
        "page_view", description="page_view, click, search, form_start, form_submit, login, ... (lower-cased)."
    )
    device: Device = Field(None, description="desktop, mobile, tablet, ...")
    referrer: Referrer = Field(None, description="Referrer URL or label.")
    search_query: Query = Field(None, description="On-site search text.")
    dwell_ms: int | None = Field(
        None, ge=0, le=MAX_DWELL_MS, description="Time on the event; missing = time to the next event."
    )


Events = Annotated[list[Event], Field(min_length=1, max_length=MAX_EVENTS, description="Events of one session.")]


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Events


class IntentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Events
    explain: bool = Field(True, description="Return the events that weighed most for the label.")
    include_embedding: bool = Field(False, description="Also return the session embedding.")


class ScoreSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Echoed back; not stored.")
    events: Events


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sessions: list[ScoreSession] = Field(min_length=1, max_length=MAX_BATCH)
    include_embedding: bool = Field(True, description="Return each session's embedding beside its intent.")


class LiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: Events
    explain: bool = Field(False, description="Return the events that weighed most for the label.")
    include_embedding: bool = Field(False, description="Also return the session embedding.")


# --- responses ------------------------------------------------------------------------------------


class Versions(BaseModel):
    bundle_version: str = Field(description="The bundle's version (changes with any file).")
    model_version: str = Field(description="The encoder's version (written beside embeddings).")
    taxonomy_version: str = Field(description="The taxonomy's version (written beside labels).")


class EmbedResponse(Versions):
    dim: int
    n_events: int = Field(description="Events received (the encoder reads the most recent ones).")
    embedding: list[float] = Field(description="Unit-length session embedding.")


class LabelScore(BaseModel):
    id: str
    name: str
    category: str
    probability: float = Field(description="Calibrated probability.")


class WeighedEvent(BaseModel):
    index: int = Field(description="Position of the event in the request (or in the live session).")
    event_type: str
    page: str = Field(description="The normalised, redacted page id.")
    weight: float = Field(description="Drop of the top label's probability when this event is hidden.")


class Intent(BaseModel):
    intent: str = Field(description="Label id; `other` when the top probability is under the threshold.")
    name: str
    category: str
    confidence: float = Field(description="The top label's calibrated probability.")
    top: list[LabelScore] = Field(description="The three most probable labels.")
    events: list[WeighedEvent] | None = Field(None, description="The events that weighed most (explain=true).")
    embedding: list[float] | None = None


class IntentResponse(Versions, Intent):
    n_events: int


class ScoreItem(Intent):
    session_id: str


class ScoreResponse(Versions):
    results: list[ScoreItem]


class LiveResponse(Versions, Intent):
    session_id: str = Field(description="The live session's id, made by the service: send more events to it.")
    segment: int = Field(description="How many sessions this id had before the current one (the gap rule cuts).")
    new_session: bool = Field(description="This request started a new session (first events, gap, 12 h or 512).")
    n_events: int = Field(description="Events in the current session.")
    start: datetime
    end: datetime


class Health(BaseModel):
    status: str


class Ready(Versions):
    status: str
    engine: str
    live_sessions: int


class ReloadResponse(Versions):
    status: str = Field(description="reloaded | restarting (several workers: a rolling restart)")
    previous_bundle_version: str
    engine: str
    seconds: float


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """Every 4xx/5xx body: a message, and the field errors for a 422."""

    detail: str
    errors: list[ErrorDetail] | None = None
