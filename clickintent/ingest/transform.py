"""Turn one batch of raw rows into contract events plus quarantined rows, with the reason for each.

This is the engine-independent heart of ingest: the DuckDB path calls it on each batch it reads and
the Spark path runs the very same function inside `mapInArrow`, so both make the same rows.
Steps: map columns, check required values and sizes, parse timestamps to UTC, redact PII from the
free-text columns (decoded until stable first: clickintent.pii), derive the normalised `page` from the
redacted URL, in that order, so nothing a later step decodes was hidden from the redactor. Quarantined
rows keep a redacted excerpt of each value. It does no I/O.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clickintent import schema
from clickintent.pii import redact_array, redact_excerpt
from clickintent.urls import normalize_url

TS_UNITS = ("auto", "s", "ms", "us", "iso")
REDACTED_COLUMNS = ("url", "page_title", "referrer", "search_query")
# Longest value accepted per column; a longer value sends its row to quarantine (nothing is cut).
MAX_CHARS = {
    "visitor_id": 256, "customer_id": 256, "session_id": 256, "event_type": 64, "device": 256,
    "platform": 16, "url": 8192, "referrer": 8192, "page_title": 2048, "search_query": 1024,
}  # fmt: skip
QUARANTINE_VALUE_CHARS = 512
_TS_MIN = pd.Timestamp("1990-01-01", tz="UTC")
_TS_MAX = pd.Timestamp("2100-01-01", tz="UTC")


@dataclass(frozen=True)
class TransformOptions:
    """What `transform_batch` needs to know about the source."""

    mapping: dict[str, str] = field(default_factory=dict)  # contract column -> source column
    ts_unit: str = "auto"  # resolved to s|ms|us|iso before batches are transformed
    platform: str = "web"  # used when the source has no platform column
    default_event_type: str = "page_view"  # used when the source has no event_type column

    def source(self, column: str) -> str:
        return self.mapping.get(column, column)


def detect_ts_unit(values: pa.Array) -> str:
    """Guess the epoch unit of a timestamp column from a sample: s, ms or us ('iso' if none is numeric).

    Only numeric values are looked at: non-numeric values are parsed as ISO-8601 in any mode but 'iso'
    forcing text, so a column may mix both.
    """
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return "iso"
    numeric = pd.to_numeric(pd.Series(values.to_pandas(), dtype="object"), errors="coerce").dropna()
    if len(numeric) == 0:
        return "iso"
    magnitude = float(np.median(np.abs(numeric.to_numpy(dtype="float64"))))
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    return "us"


def parse_ts(values: pa.Array, unit: str) -> pa.Array:
    """Parse a column to timestamp[us, UTC]; values that do not parse become null.

    Numeric values are epochs in `unit` (s, ms or us); text is ISO-8601 with or without a zone (no zone
    means UTC). With unit 'iso' numbers are not accepted.
    """
    if pa.types.is_timestamp(values.type):
        if values.type.tz is None:
            values = pc.assume_timezone(values, "UTC")
        return pc.cast(values, schema.TS)
    if pa.types.is_date(values.type):
        return pc.assume_timezone(pc.cast(values, pa.timestamp("us")), "UTC")
    series = pd.Series(values.to_pandas(), dtype="object")
    micros = pd.Series(np.nan, index=series.index, dtype="float64")
    numeric = pd.to_numeric(series, errors="coerce")
    is_num = numeric.notna()
    if unit in ("s", "ms", "us"):
        micros[is_num] = (numeric[is_num] * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]).round()
    text = series[~is_num & series.notna()].astype(str).str.strip()
    # pandas applies one offset to a whole mixed column, so zoned and naive text are parsed apart.
    zoned = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    for part in (text[zoned], text[~zoned]):
        if len(part):
            parsed = pd.to_datetime(part, errors="coerce", utc=True, format="ISO8601")
            good = parsed[parsed.notna()]
            micros[good.index] = good.dt.as_unit("us").astype("int64").astype("float64")
    ok = (micros.notna() & (micros.abs() < 4e18)).to_numpy()
    out = np.zeros(len(series), dtype="int64")
    out[ok] = micros.to_numpy()[ok].astype("int64")
    return pa.array(out, pa.int64(), mask=~ok).cast(schema.TS)


def _as_string(values: pa.Array) -> pa.Array:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values.cast(pa.string())
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_floating(values.type):  # 12.0 -> "12", so ids read as floats stay ids
        as_int = pc.cast(values, pa.int64(), safe=False)
        whole = pc.fill_null(pc.equal(pc.cast(as_int, values.type), values), False)
        return pc.if_else(whole, pc.cast(as_int, pa.string()), pc.cast(values, pa.string()))
    return pc.cast(values, pa.string())


def _blank_to_null(values: pa.Array) -> pa.Array:
    stripped = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


class _Reasons:
    """Collects the first reason each row fails; later checks never overwrite an earlier reason."""

    def __init__(self, n: int) -> None:
        self.reason = np.full(n, None, dtype=object)

    def flag(self, bad: pa.Array | np.ndarray, reason: str) -> None:
        mask = bad if isinstance(bad, np.ndarray) else pc.fill_null(bad, False).to_numpy(zero_copy_only=False)
        self.reason[mask & (self.reason == None)] = reason  # noqa: E711 - elementwise on an object array

    @property
    def ok(self) -> np.ndarray:
        return self.reason == None  # noqa: E711


# A timestamp as written (kept as is in quarantine, so a reader sees why it failed): the account-number
# rule would otherwise take an epoch for one. Anything else in the ts column is redacted like all text.
_TIMESTAMP_TEXT = re.compile(r"[0-9T:.+\- ]{1,40}Z?")


def _quarantine_value(value: object, timestamp: bool) -> object:
    """One value of a quarantined row as stored in `raw`: text redacted (only its head is read) and cut;
    numbers that are all digits of some length (a card number in an integer column) redacted too."""
    if value is None or isinstance(value, bool | float):
        return value
    text = value if isinstance(value, str) else str(value)
    if timestamp and _TIMESTAMP_TEXT.fullmatch(text):
        return value if isinstance(value, int) else text[:QUARANTINE_VALUE_CHARS]
    clean = redact_excerpt(text, QUARANTINE_VALUE_CHARS)
    return value if isinstance(value, int) and clean == text else clean


def _quarantine_raw(batch: pa.RecordBatch, rows: np.ndarray, ts_column: str) -> list[str]:
    out = []
    for row in batch.take(pa.array(rows)).to_pylist():
        clean = {key: _quarantine_value(value, key == ts_column) for key, value in row.items()}
        out.append(json.dumps(clean, ensure_ascii=False, default=str))
    return out


def transform_batch(
    batch: pa.RecordBatch, options: TransformOptions, first_row: int, redactions: Counter[str]
) -> tuple[pa.Table, pa.Table]:
    """Split a raw batch into (events, quarantine). `first_row` is the 1-based number of its first row."""
    n = batch.num_rows
    reasons = _Reasons(n)
    names = set(batch.schema.names)
    cols: dict[str, pa.Array] = {}
    for column in schema.SOURCE_COLUMNS:
        src = options.source(column)
        if src in names:
            raw = batch.column(src)
            cols[column] = raw if column in ("ts", "dwell_ms") else _blank_to_null(_as_string(raw))
        else:
            cols[column] = pa.nulls(n, pa.string())

    for column, limit in MAX_CHARS.items():
        if column in cols:
            reasons.flag(
                pc.greater(pc.utf8_length(cols[column]), limit), f"{column} longer than {limit} chars"
            )
    for column in MAX_CHARS:
        reasons.flag(pc.match_substring(cols[column], "\ufffd"), f"invalid UTF-8 in {column}")
    for column in schema.REQUIRED_COLUMNS:
        if column != "ts":
            reasons.flag(pc.is_null(cols[column]), f"missing {column}")

    ts_raw = cols["ts"]
    if pa.types.is_string(ts_raw.type) or pa.types.is_large_string(ts_raw.type):
        ts_raw = _blank_to_null(ts_raw.cast(pa.string()))
    reasons.flag(pc.is_null(ts_raw), "missing ts")
    ts = parse_ts(ts_raw, options.ts_unit)
    reasons.flag(pc.is_null(ts), "unparseable ts")
    out_of_range = pc.or_(
        pc.less(ts, pa.scalar(_TS_MIN, schema.TS)), pc.greater_equal(ts, pa.scalar(_TS_MAX, schema.TS))
    )
    reasons.flag(out_of_range, "ts out of range 1990..2100 (check --ts-unit)")

    if options.source("event_type") in names:
        event_type = pc.replace_substring_regex(pc.utf8_lower(cols["event_type"]), r"[\s-]+", "_")
        reasons.flag(pc.is_null(event_type), "missing event_type")
    else:
        event_type = pa.array([options.default_event_type] * n, pa.string())
    if options.source("platform") in names:
        platform = pc.utf8_lower(cols["platform"])
        reasons.flag(
            pc.invert(pc.fill_null(pc.is_in(platform, pa.array(schema.PLATFORMS)), False)), "invalid platform"
        )
    else:
        platform = pa.array([options.platform] * n, pa.string())

    dwell = cols["dwell_ms"]
    if options.source("dwell_ms") in names and not pa.types.is_null(dwell.type):
        dwell_num = pd.to_numeric(pd.Series(_as_string(dwell).to_pandas(), dtype="object"), errors="coerce")
        given = pc.is_valid(dwell).to_numpy(zero_copy_only=False)
        reasons.flag(given & (dwell_num.isna().to_numpy() | (dwell_num < 0).to_numpy()), "invalid dwell_ms")
        dwell = pa.array(dwell_num.round().astype("Int64"), pa.int64(), from_pandas=True)
    else:
        dwell = pa.nulls(n, pa.int64())

    ok = reasons.ok
    keep = pa.array(ok)
    events: dict[str, pa.Array] = {}
    for column in schema.EVENTS.names:
        if column == "page":
            continue
        value = {"ts": ts, "event_type": event_type, "platform": platform, "dwell_ms": dwell}.get(
            column, cols.get(column)
        )
        assert value is not None
        value = value.filter(keep)
        if column in REDACTED_COLUMNS:
            value = redact_array(value, redactions)
        events[column] = value
    url_dict = events["url"].dictionary_encode()
    pages = pa.array([normalize_url(u) for u in url_dict.dictionary.to_pylist()], pa.string())
    events["page"] = pc.take(pages, url_dict.indices)
    table = pa.Table.from_pydict({c: events[c] for c in schema.EVENTS.names}, schema=schema.EVENTS)

    bad = np.flatnonzero(~ok)
    quarantine = pa.Table.from_pydict(
        {
            "source_row": pa.array(bad + first_row, pa.int64()),
            "source_line": pa.nulls(len(bad), pa.int64()),
            "reason": pa.array(reasons.reason[bad].tolist(), pa.string()),
            "raw": pa.array(_quarantine_raw(batch, bad, ts_column=options.source("ts")), pa.string()),
        },
        schema=schema.QUARANTINE,
    )
    return table, quarantine
