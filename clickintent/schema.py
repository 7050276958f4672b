"""The data contracts: Arrow schemas for events, sessions, embeddings, labels and quarantine.

Every step reads and writes Parquet with exactly these schemas, so any engine (DuckDB, Spark) and any
later step can rely on them. `ingest` adds one derived column to the DESIGN.md events contract: `page`,
the normalised URL that serves as the page id. Nothing here does I/O beyond small helpers.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

PLATFORMS = ("web", "app")

# Event types clickintent knows by name; others are kept as they come (lower-case, snake_case).
KNOWN_EVENT_TYPES = (
    "page_view",
    "click",
    "search",
    "form_start",
    "form_submit",
    "login",
    "logout",
    "app_open",
    "tile_click",
)

EVENTS = pa.schema(
    [
        pa.field("visitor_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("url", pa.string(), nullable=False),  # raw URL after PII redaction
        pa.field("page", pa.string(), nullable=False),  # normalised URL: the page id
        pa.field("page_title", pa.string()),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("device", pa.string()),
        pa.field("referrer", pa.string()),
        pa.field("search_query", pa.string()),
        pa.field("dwell_ms", pa.int64()),
        pa.field("platform", pa.string(), nullable=False),
        pa.field("customer_id", pa.string()),  # only from a login
        pa.field("session_id", pa.string()),  # kept when the source already sessionized
    ]
)

# The order of rows in events.parquet (ingest writes it, sessionize reads it without sorting again).
# Ties on ts are broken by every other column, nulls placement spelled out so DuckDB and Spark agree.
EVENTS_ORDER = (
    "visitor_id, platform, session_id NULLS FIRST, ts, url, page, page_title NULLS LAST, event_type, "
    "device NULLS LAST, referrer NULLS LAST, search_query NULLS LAST, dwell_ms NULLS LAST, customer_id NULLS LAST"
)
SORTED_KEY = "clickintent.sorted_by"  # Parquet metadata key whose value is EVENTS_ORDER when it holds

# Columns a source must provide (after the column mapping); every other column is optional.
REQUIRED_COLUMNS = ("visitor_id", "ts", "url")
# Columns a source may provide, in contract order (`page` is always derived by ingest).
SOURCE_COLUMNS = tuple(f.name for f in EVENTS if f.name != "page")

SESSION_EVENT = pa.struct(
    [
        pa.field("ts", TS),
        pa.field("url", pa.string()),
        pa.field("page", pa.string()),
        pa.field("page_title", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("device", pa.string()),
        pa.field("referrer", pa.string()),
        pa.field("search_query", pa.string()),
        pa.field("dwell_ms", pa.int64()),
    ]
)
SESSION_EVENT_FIELDS = tuple(f.name for f in SESSION_EVENT)

SESSIONS = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("visitor_id", pa.string(), nullable=False),
        pa.field("customer_id", pa.string()),
        pa.field("platform", pa.string(), nullable=False),
        pa.field("start", TS, nullable=False),
        pa.field("end", TS, nullable=False),
        pa.field("n_events", pa.int32(), nullable=False),
        pa.field("events", pa.list_(SESSION_EVENT), nullable=False),
    ]
)

EMBEDDINGS = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
    ]
)

LABELS = pa.schema(
    [
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("intent", pa.string(), nullable=False),
        pa.field("confidence", pa.float32(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # 'llm' | 'distilled'
        pa.field("taxonomy_version", pa.string(), nullable=False),
    ]
)

# One row per input row that did not make it into events.parquet. Values are PII-redacted and
# truncated (see ingest.QUARANTINE_VALUE_CHARS) so the quarantine never stores what ingest redacts.
QUARANTINE = pa.schema(
    [
        pa.field("source_row", pa.int64()),  # 1-based ordinal among the rows the reader parsed
        pa.field("source_line", pa.int64()),  # line in the file, for rows the reader itself rejected
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw", pa.string()),  # the row as JSON (redacted, truncated)
    ]
)


def empty_table(schema: pa.Schema) -> pa.Table:
    """A zero-row table with `schema`."""
    return schema.empty_table()
