"""Validated request events -> the redacted event dicts the encoder reads, exactly as ingest makes them.

Ingest (clickintent.ingest.transform) redacts PII from `url`, `page_title`, `referrer` and `search_query`
with `clickintent.pii`, then derives `page` as `normalize_url` of the redacted URL; blank strings are
missing and event types are lower-cased with runs of spaces and dashes turned into `_` (the last two are
done by the pydantic models in schemas.py). Then, as the sessionizer does, events are put in time order and
a missing `dwell_ms` becomes the time to the next event. Raw text never leaves this module: the dicts it
returns are all that later steps (encoder, live sessions, text cache, logs) see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from clickintent.cache import BoundedCache
from clickintent.ingest.transform import REDACTED_COLUMNS
from clickintent.pii import redact_counts
from clickintent.serve.schemas import Event
from clickintent.urls import normalize_url

# Strings the redactor left unchanged (so they hold nothing it would remove): titles and URLs repeat across
# requests, and a lookup is ~100x cheaper than the redactor's pre-filter. Never holds PII.
UNCHANGED_ITEMS = 100_000
UNCHANGED_BYTES = 32 << 20
_UNCHANGED: BoundedCache[str, bool] = BoundedCache(UNCHANGED_ITEMS, UNCHANGED_BYTES)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def clean_event(event: Event, redactions: Counter[str]) -> dict[str, Any]:
    """One validated event as a SESSION_EVENT dict (`ts` in microseconds since the epoch), PII redacted."""
    row: dict[str, Any] = {
        "ts": (event.ts - _EPOCH) // _MICROSECOND,
        "event_type": event.event_type,
        "device": event.device,
        "dwell_ms": event.dwell_ms,
    }
    for column in REDACTED_COLUMNS:
        value = getattr(event, column)
        if value is not None and _UNCHANGED.get(value) is None:
            clean, counts = redact_counts(value)
            if counts:
                redactions.update(counts)
            elif clean == value:  # (decoding alone may change a value: then it is not cached)
                _UNCHANGED.put(value, True)
            value = clean
        row[column] = value
    row["page"] = page = normalize_url(row["url"])
    if "[" in page or "]" in page:  # brackets may read as an IPv6 host: the encoder's URL tokenizer would fail
        try:
            urlsplit(page if "//" in page or page.startswith("/") else "//" + page)
        except ValueError:
            raise UnparseableUrl("url is not a parseable URL once PII is redacted") from None
    return row


class UnparseableUrl(ValueError):
    """A URL that the encoder cannot tokenize (e.g. `[EMAIL]` where a host belongs)."""


def clean_session(events: Sequence[Event], redactions: Counter[str]) -> tuple[list[dict[str, Any]], list[int]]:
    """(events redacted and in time order with dwell filled, the request index of each): see the module doc."""
    rows = []
    for i, e in enumerate(events):
        try:
            rows.append(clean_event(e, redactions))
        except UnparseableUrl as exc:
            raise UnparseableUrl(f"events[{i}]: {exc}") from None
    order = sorted(range(len(rows)), key=lambda i: rows[i]["ts"])  # stable: ties keep request order
    rows = [rows[i] for i in order]
    fill_dwell(rows)
    return rows, order


def fill_dwell(rows: list[dict[str, Any]]) -> None:
    """A missing dwell becomes the time to the next event in ms (the sessionizer's rule); the last stays missing."""
    for i in range(len(rows) - 1):
        if rows[i]["dwell_ms"] is None:
            rows[i]["dwell_ms"] = (rows[i + 1]["ts"] - rows[i]["ts"]) // 1000


def with_dwell(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of time-ordered rows with missing dwell filled (for live sessions, whose last dwell grows later)."""
    out = [dict(r) for r in rows]
    fill_dwell(out)
    return out


Cleaned = tuple[list[dict[str, Any]], list[int]]  # redacted rows in time order, the request index of each


def clean_sessions(sessions: Sequence[Sequence[Event]]) -> tuple[list[Cleaned], Counter[str]]:
    """`clean_session` of each session, and the redactions of all (the service runs it in a worker
    process for large requests, so it takes and returns only picklable values)."""
    counts: Counter[str] = Counter()
    return [clean_session(events, counts) for events in sessions], counts
