"""Read raw event files in bounded batches: CSV/TSV (DuckDB's reader), Parquet (pyarrow), JSONL.

Each reader yields `RawBatch`es: Arrow rows exactly as the source has them, or rows the reader itself
could not parse (a CSV line with too many columns, bytes that are not UTF-8, a JSON line that is not
an object), each with its source row number and a reason, so ingest can quarantine them.
What it leaves out: compressed JSONL, Excel, and fixed-width files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

FORMATS = ("csv", "tsv", "parquet", "jsonl")
DELIMITERS = (",", "\t", ";", "|")


class IngestError(Exception):
    """Input that cannot be ingested at all (as opposed to single bad rows, which are quarantined)."""


@dataclass
class RawBatch:
    rows: pa.RecordBatch  # parsed rows, source column names and types
    first_row: int  # 1-based number of the first parsed row
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line in the file, reason, raw text)


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise IngestError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("parquet", "pq"):
        return "parquet"
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix == "tsv":
        return "tsv"
    return "csv"  # .csv, .txt and anything else: the delimiter is sniffed from the header


def _first_line(path: Path) -> str:
    with path.open("rb") as f:
        head = f.readline(1 << 20)
    if not head.strip():
        raise IngestError(f"{path} is empty: no header line and no rows")
    try:
        return head.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"{path}: the header line is not UTF-8 ({exc.reason}); re-encode the file as UTF-8"
        ) from exc


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def read_columns(path: Path, fmt: str, delimiter: str | None = None) -> tuple[list[str], str | None]:
    """The source's column names (and the CSV delimiter in use), without reading the data."""
    if fmt == "parquet":
        return pq.ParquetFile(path).schema_arrow.names, None
    if fmt == "jsonl":
        with path.open("rb") as f:
            for i, line in enumerate(f):
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(obj, dict):
                        return list(obj), None
                if i > 1000:
                    break
        if path.stat().st_size == 0:
            raise IngestError(f"{path} is empty: no rows")
        raise IngestError(f"{path}: no JSON object found in its first 1,000 lines; is it JSON Lines?")
    header = _first_line(path)
    delim = delimiter or ("\t" if fmt == "tsv" else sniff_delimiter(header))
    names = next(csv.reader(io.StringIO(header), delimiter=delim))
    return [n.strip() for n in names], delim


def iter_batches(path: Path, fmt: str, delimiter: str | None, batch_rows: int) -> Iterator[RawBatch]:
    if fmt == "parquet":
        yield from _parquet(path, batch_rows)
    elif fmt == "jsonl":
        yield from _jsonl(path, batch_rows)
    else:
        names, delim = read_columns(path, fmt, delimiter)
        assert delim is not None
        yield from _csv(path, names, delim, batch_rows)


def _parquet(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    row = 1
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        yield RawBatch(batch, row)
        row += batch.num_rows


def _jsonl(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    records: list[dict[str, object]] = []
    rejects: list[tuple[int, str, str]] = []
    first = 1
    with path.open("rb") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                rejects.append((line_no, "invalid UTF-8", line.decode("utf-8", "replace")))
                continue
            except json.JSONDecodeError as exc:
                rejects.append((line_no, f"malformed JSON: {exc.msg}", line.decode("utf-8", "replace")))
                continue
            if not isinstance(obj, dict):
                rejects.append((line_no, "JSON line is not an object", line.decode("utf-8", "replace")))
                continue
            # Mixed types in one column are common in JSON: keep scalars as text, nested values as JSON.
            records.append({k: _json_scalar(v) for k, v in obj.items()})
            if len(records) >= batch_rows:
                yield RawBatch(_records_batch(records), first, rejects)
                first += len(records)
                records, rejects = [], []
    if records or rejects:
        yield RawBatch(_records_batch(records), first, rejects)


def _json_scalar(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) and not value.is_integer() else str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _records_batch(records: list[dict[str, object]]) -> pa.RecordBatch:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    columns = {n: pa.array([r.get(n) for r in records], pa.string()) for n in names}
    return pa.RecordBatch.from_pydict(columns) if columns else pa.RecordBatch.from_pydict({})


_REJECT_REASONS = {
    "CAST": "value does not parse",
    "MISSING COLUMNS": "too few columns",
    "TOO MANY COLUMNS": "too many columns",
    "UNQUOTED VALUE": "unterminated or misplaced quote",
    "LINE SIZE OVER MAXIMUM": "line longer than the reader's limit",
    "INVALID ENCODING": "invalid UTF-8",
    "INVALID STATE": "malformed CSV",
}


def _csv(path: Path, names: list[str], delim: str, batch_rows: int) -> Iterator[RawBatch]:
    con = duckdb.connect()
    columns = {n: "VARCHAR" for n in names}
    if len(columns) != len(names):
        raise IngestError(f"{path}: the header repeats a column name: {names}")
    rel = con.sql(
        "SELECT * FROM read_csv(?, columns=?, header=true, auto_detect=false, delim=?, quote='\"', "
        "escape='\"', store_rejects=true, max_line_size=8388608, parallel=false)",
        params=[str(path), columns, delim],
    )
    reader = rel.to_arrow_reader(batch_rows)
    row = 1
    for batch in reader:
        yield RawBatch(batch, row)
        row += batch.num_rows
    rejected = con.sql(
        "SELECT line, string_agg(DISTINCT error_type, '; ') AS kinds, any_value(csv_line) AS raw "
        "FROM reject_errors GROUP BY line ORDER BY line"
    ).fetchall()
    if rejected:
        yield RawBatch(
            pa.RecordBatch.from_pydict({n: pa.array([], pa.string()) for n in names}),
            row,
            [(int(line), _reject_reason(kinds), raw or "") for line, kinds, raw in rejected],
        )
    con.close()


def _reject_reason(kinds: str) -> str:
    return "; ".join(_REJECT_REASONS.get(k.strip(), k.strip().lower()) for k in kinds.split(";"))
