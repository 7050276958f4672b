"""Turn one batch of raw rows into contract events plus quarantined rows, with the reason for each.

This is the engine-independent heart of ingest: the DuckDB path calls it on each batch it reads and
the Spark path runs the very same function inside `mapInArrow`, so both make the same rows.
Steps: map columns, check required values and sizes, parse timestamps to UTC, redact PII from the
free-text columns (decoded until stable first: clickintent.pii), derive the normalised `page` from the
redacted URL, in that order, so nothing a later step decodes was hidden from the redactor. Quarantined
rows keep a redacted excerpt of each value. It does no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from clickintent import schema
from clickintent.ingest.presets import apply_preset
from clickintent.pii import redact_array, redact_excerpt
from clickintent.urls import normalize_url

TS_UNITS = ("auto", "s", "ms", "us", "iso")
REDACTED_COLUMNS = ("url", "page_title", "referrer", "search_query")
# Longest value accepted per column; a longer value sends its row to quarantine (nothing is cut).
MAX_CHARS = {
    "visitor_id": 256, "customer_id": 256, "session_id": 256, "event_type": 64, "device": 256,
    "platform": 16, "url": 8192, "referrer": 8192, "page_title": 2048, "search_query": 1024,
}  # fmt: skip
SOURCE_KEY = "_source_key"  # the events' extra column with `source_key` on; never in events.parquet
QUARANTINE_VALUE_CHARS = 512
MAX_DWELL_MS = 10**12  # about 32 years: larger dwell times (and inf, NaN, negatives) are invalid
_TS_MIN = pd.Timestamp("1990-01-01", tz="UTC")
_TS_MAX = pd.Timestamp("2100-01-01", tz="UTC")


@dataclass(frozen=True)
class TransformOptions:
    """What `transform_batch` needs to know about the source."""

    mapping: dict[str, str] = field(default_factory=dict)  # contract column -> source column
    ts_unit: str = "auto"  # resolved to s|ms|us|iso before batches are transformed
    platform: str = "web"  # used when the source has no platform column
    default_event_type: str = "page_view"  # used when the source has no event_type column
    preset: str | None = None  # an analytics tool's export (ingest.presets), mapped onto the contract first
    source_key: bool = False  # add SOURCE_KEY (a digest of the whole source row) to the events, for de-duplication

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


# Text timestamps as exports write them: a date, then optionally a time (after "T" or a space, seconds and
# their fraction optional) and a zone (Z, UTC, GMT, +HH, +HHMM, +HH:MM, with or without a space before it).
_TS_TEXT = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?))?"
    r"\s*(?P<zone>Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_MAX_ABS_MICROS = 4e18  # timestamp[us] spans +-9.2e18; anything near that is far outside 1990..2100 anyway


def _canonical_iso(text: pd.Series) -> pd.Series:
    """Text timestamps rewritten as ISO-8601 pandas reads exactly ("2019-10-01 00:00:00 UTC" ->
    "2019-10-01T00:00:00+00:00"); values of another shape are left as they are."""
    parts = text.str.extract(_TS_TEXT)
    matched = parts["date"].notna()
    zone = parts["zone"].fillna("").str.upper()
    zone = zone.where(~zone.isin(["Z", "UTC", "GMT"]), "+00:00")
    hours = zone.str.fullmatch(r"[+-]\d{2}")
    zone = zone.where(~hours, zone + ":00")
    compact = zone.str.fullmatch(r"[+-]\d{4}")
    zone = zone.where(~compact, zone.str[:3] + ":" + zone.str[3:])
    time = parts["time"].fillna("00:00:00").str.replace(",", ".", regex=False)
    canonical = parts["date"] + "T" + time + zone
    return canonical.where(matched, text)


def _timestamp_micros(values: pa.Array) -> np.ndarray:
    """A timestamp column (any unit, any zone; naive means UTC) as float64 UTC microseconds, NaN for nulls.
    Nanoseconds are floored to microseconds in integers (a float64 of nanoseconds since 1970 is only good to
    256 ns); float64 microseconds are exact to 2**53, beyond year 2200."""
    ints = pc.cast(values, pa.int64())
    valid = pc.is_valid(ints).to_numpy(zero_copy_only=False)
    raw = pc.fill_null(ints, 0).to_numpy(zero_copy_only=False)
    unit = values.type.unit
    if unit == "ns":
        micros = (raw // 1000).astype("float64")
    else:
        micros = raw.astype("float64") * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
    micros[~valid] = np.nan
    return micros


def parse_ts(values: pa.Array, unit: str) -> pa.Array:
    """Parse a column to timestamp[us, UTC]; values that do not parse become null.

    Numeric values are epochs in `unit` (s, ms or us); text is ISO-8601-like (see `_TS_TEXT`: "T" or a
    space, fractional seconds, Z/UTC/GMT/offsets, or a date alone), and no zone means UTC. With unit 'iso'
    numbers are not accepted. Timestamp columns (Parquet) keep their instant, down to the microsecond.
    """
    if pa.types.is_timestamp(values.type):
        micros = pd.Series(_timestamp_micros(values))
    elif pa.types.is_date(values.type):
        micros = pd.Series(_timestamp_micros(pc.cast(pc.cast(values, pa.date32()), pa.timestamp("s"))))
    else:
        micros = _parse_values(_as_string(values), unit)
    micros = micros.where(micros.abs() < _MAX_ABS_MICROS)
    ok = micros.notna().to_numpy()
    out = np.zeros(len(micros), dtype="int64")
    out[ok] = micros.to_numpy()[ok].astype("int64")
    return pa.array(out, pa.int64(), mask=~ok).cast(schema.TS)


def _parse_values(values: pa.Array, unit: str) -> pd.Series:
    """Text (and numbers written as text) to float64 UTC microseconds, NaN where nothing parses."""
    series = pd.Series(values.to_pandas(), dtype="object")
    micros = pd.Series(np.nan, index=series.index, dtype="float64")
    numeric = pd.to_numeric(series, errors="coerce")
    is_num = numeric.notna() & np.isfinite(numeric.astype("float64"))
    if unit in ("s", "ms", "us"):
        micros[is_num] = (numeric[is_num] * {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]).round()
    text = _canonical_iso(series[numeric.isna() & series.notna()].astype(str).str.strip())
    # pandas applies one offset to a whole mixed column, so zoned and naive text are parsed apart.
    zoned = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True)
    for part in (text[zoned], text[~zoned]):
        if len(part):
            parsed = pd.to_datetime(part, errors="coerce", utc=True, format="ISO8601")
            good = parsed[parsed.notna()]
            micros[good.index] = good.dt.as_unit("us").astype("int64").astype("float64")
    return micros


def _as_string(values: pa.Array) -> pa.Array:
    """Any source column as text: numbers as written (12.0 -> "12", so ids read as floats stay ids),
    nested values (lists, structs, maps) as JSON like JSONL's, bytes decoded as UTF-8 with U+FFFD for
    what is not (a later check quarantines those)."""
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return values.cast(pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_dictionary(t):
        return _as_string(values.dictionary_decode())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in values.to_pylist()],
                        pa.string())  # fmt: skip
    if pa.types.is_nested(t):
        return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                         for v in values.to_pylist()], pa.string())  # fmt: skip
    if pa.types.is_floating(t):
        # Whole numbers an int64 holds exactly (|x| < 2**53) print as integers; inf, 1e30 and the like as floats.
        exact = pc.fill_null(pc.and_(pc.is_finite(values), pc.less(pc.abs(values), 2.0**53)), False)
        as_int = pc.cast(pc.if_else(exact, values, 0), pa.int64(), safe=False)
        whole = pc.and_(exact, pc.fill_null(pc.equal(pc.cast(as_int, t), values), False))
        return pc.if_else(whole, pc.cast(as_int, pa.string()), pc.cast(values, pa.string()))
    return pc.cast(values, pa.string())


def _blank_to_null(values: pa.Array) -> pa.Array:
    stripped = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


class _Reasons:
    """Collects the first reason each row fails; later checks never overwrite an earlier reason."""

    def __init__(self, n: int, first: np.ndarray | None = None) -> None:
        self.reason = np.full(n, None, dtype=object) if first is None else first

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
    bytes, nested values (as JSON), datetimes and non-finite numbers as text; integers that are all digits
    of some length (a card number in an integer column) redacted too."""
    if value is None or isinstance(value, bool) or (isinstance(value, float) and np.isfinite(value)):
        return value
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list | dict):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:  # integers, datetimes, decimals, inf and NaN
        text = str(value)
    if timestamp and _TIMESTAMP_TEXT.fullmatch(text):
        return value if isinstance(value, int) else text[:QUARANTINE_VALUE_CHARS]
    clean = redact_excerpt(text, QUARANTINE_VALUE_CHARS)
    return value if isinstance(value, int) and clean == text else clean


def _quarantine_raw(batch: pa.RecordBatch, rows: np.ndarray, ts_column: str) -> list[str]:
    """The quarantined rows as JSON text, every value through `_quarantine_value`."""
    out = []
    for row in batch.take(pa.array(rows)).to_pylist():
        clean = {key: _quarantine_value(value, key == ts_column) for key, value in row.items()}
        out.append(json.dumps(clean, ensure_ascii=False, default=str))
    return out


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the bits of each uint64."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def source_keys(batch: pa.RecordBatch) -> pa.Array:
    """A 128-bit digest of each whole source row: every column, mapped or not (issue 16: rows that differ
    only in an unmapped column are distinct events, not duplicates).

    Equal rows get equal keys; different rows equal keys with a chance of about 2**-128. A column that is
    null (or absent, as in a JSONL line without that key) adds nothing, so keys do not depend on which
    other columns a batch happens to have.
    """
    n = batch.num_rows
    halves = []
    for hash_key in _KEY_SEEDS:
        total = np.zeros(n, dtype=np.uint64)
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            text = _as_string(column)
            values = text.to_numpy(zero_copy_only=False)
            salt = np.uint64(int.from_bytes(hashlib.blake2b(f"{hash_key}{name}".encode(), digest_size=8).digest()))
            h = _mix(pd.util.hash_array(values, hash_key=hash_key, categorize=False) ^ salt)
            total += np.where(pc.is_valid(text).to_numpy(zero_copy_only=False), h, np.uint64(0))
        halves.append(_mix(total))
    data = np.stack(halves, axis=1).astype("<u8").tobytes() if n else b""
    keys = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(data)])
    return keys.cast(pa.binary())  # variable-length binary: Spark's Arrow bridge has no fixed-size type


_KEY_SEEDS = ("clickintent-k-lo", "clickintent-k-hi")  # pandas' hash keys are 16 bytes


def transform_batch(
    batch: pa.RecordBatch, options: TransformOptions, first_row: int, redactions: Counter[str]
) -> tuple[pa.Table, pa.Table]:
    """Split a raw batch into (events, quarantine). `first_row` is the 1-based number of its first row."""
    excluded = None
    if options.preset is not None:  # the preset maps the tool's columns (and --map overrides) itself
        batch, excluded = apply_preset(batch, options.preset, options.mapping)
        options = replace(options, mapping={}, preset=None)
    n = batch.num_rows
    reasons = _Reasons(n, excluded)  # rows the tool itself excludes (Adobe) keep the tool's reason
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
            reasons.flag(pc.greater(pc.utf8_length(cols[column]), limit), f"{column} longer than {limit} chars")
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
        reasons.flag(pc.invert(pc.fill_null(pc.is_in(platform, pa.array(schema.PLATFORMS)), False)), "invalid platform")
    else:
        platform = pa.array([options.platform] * n, pa.string())

    dwell = cols["dwell_ms"]
    if options.source("dwell_ms") in names and not pa.types.is_null(dwell.type):
        dwell_num = pd.to_numeric(pd.Series(_as_string(dwell).to_pandas(), dtype="object"), errors="coerce")
        dwell_num = dwell_num.astype("float64").where((dwell_num >= 0) & (dwell_num <= MAX_DWELL_MS))  # inf, 1e30
        given = pc.is_valid(dwell).to_numpy(zero_copy_only=False)
        reasons.flag(given & dwell_num.isna().to_numpy(), "invalid dwell_ms")
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
    if options.source_key:
        table = table.append_column(SOURCE_KEY, source_keys(batch).filter(keep))

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
