"""Read raw event files in bounded batches: CSV/TSV, Parquet (pyarrow), JSONL.

Each reader yields `RawBatch`es: Arrow rows exactly as the source has them (CSV and JSONL values as
text), plus the records the reader itself could not parse (a CSV line with too many columns, an
unterminated quote, bytes that are not UTF-8, a JSON line that is not an object), each with its line
in the file and a reason, so ingest can quarantine them. Every batch also says how much of the file it
accounted for (`RawBatch.accounted`: lines of a text file, the header and blank lines included; rows
of a Parquet file), and `count_source` counts the same thing apart from the parser, so ingest can prove
that no line went missing. A file that cannot be read at all (empty, not Parquet, not UTF-8 in its
header) raises `IngestError` with a message saying what to do.
What it leaves out: compressed files, Excel, fixed-width files, and JSON that is not one object a line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from clickintent.ingest.lines import MAX_RECORD_BYTES, Record, count_lines, csv_records, physical_lines

FORMATS = ("csv", "tsv", "parquet", "jsonl")
# The csv module refuses fields over 128 KiB by default; a record may be as long as the line reader allows.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
DELIMITERS = (",", "\t", ";", "|")


class IngestError(Exception):
    """Input that cannot be ingested at all (as opposed to single bad rows, which are quarantined)."""


@dataclass
class RawBatch:
    rows: pa.RecordBatch  # parsed rows, source column names and types
    first_row: int  # 1-based number of the first parsed row
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # (line in the file, reason, raw text)
    accounted: int = 0  # lines (text formats) or rows (Parquet) of the file this batch accounts for


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
    head = next(physical_lines(path), b"")
    if not head.strip():
        raise IngestError(f"{path} is empty: no header line and no rows. Export the data again with a header line.")
    try:
        return head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: the header line is not UTF-8 ({exc.reason}); re-encode the file as UTF-8") from exc


def sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def parquet_file(path: Path) -> pq.ParquetFile:
    """The file opened as Parquet, or an IngestError saying why it is not one."""
    if path.stat().st_size == 0:
        raise IngestError(f"{path} is empty (0 bytes): it is not a Parquet file. Export the data again.")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(
            f"{path} is not a readable Parquet file ({exc}); check the export, or pass --format csv|tsv|jsonl "
            "if it is text"
        ) from exc


def read_columns(path: Path, fmt: str, delimiter: str | None = None) -> tuple[list[str], str | None]:
    """The source's column names (and the CSV delimiter in use), without reading the data."""
    if fmt == "parquet":
        return parquet_file(path).schema_arrow.names, None
    if fmt == "jsonl":
        for i, line in enumerate(physical_lines(path)):
            if line.strip():
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
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
    try:
        names = next(csv.reader(io.StringIO(header, newline=""), delimiter=delim))
    except csv.Error as exc:
        raise IngestError(f"{path}: the header line is not valid CSV ({exc}); check --delimiter") from exc
    return [n.strip() for n in names], delim


def count_source(path: Path, fmt: str) -> int:
    """What `RawBatch.accounted` adds up to, counted without the readers: a text file's physical lines,
    or the row count in a Parquet file's footer."""
    if fmt == "parquet":
        return int(parquet_file(path).metadata.num_rows)
    return count_lines(path)


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
    batches = parquet_file(path).iter_batches(batch_size=batch_rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise IngestError(
                f"{path}: the Parquet data is damaged after row {row - 1:,} ({exc}); export the file again"
            ) from exc
        yield RawBatch(batch, row, accounted=batch.num_rows)
        row += batch.num_rows


def _jsonl(path: Path, batch_rows: int) -> Iterator[RawBatch]:
    records: list[dict[str, object]] = []
    rejects: list[tuple[int, str, str]] = []
    first, accounted = 1, 0
    for line_no, line in enumerate(physical_lines(path), start=1):
        accounted += 1
        if not line.strip():
            continue
        problem = None
        try:
            obj = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            problem = "invalid UTF-8"
        except json.JSONDecodeError as exc:
            problem = f"malformed JSON: {exc.msg}"
        except ValueError:  # e.g. an integer of more digits than Python converts
            problem = "JSON number too long to read"
        except RecursionError:
            problem = "JSON nested too deeply"
        else:
            if not isinstance(obj, dict):
                problem = "JSON line is not an object"
        if problem is not None:
            rejects.append((line_no, problem, line.decode("utf-8", "replace")))
            continue
        # Mixed types in one column are common in JSON: keep scalars as text, nested values as JSON.
        records.append({k: _json_scalar(v) for k, v in obj.items()})
        if len(records) >= batch_rows:
            yield RawBatch(_records_batch(records), first, rejects, accounted)
            first += len(records)
            records, rejects, accounted = [], [], 0
    if records or rejects or accounted:
        yield RawBatch(_records_batch(records), first, rejects, accounted)


def _json_scalar(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not value.is_integer():  # also inf and nan: later checks refuse them
        return repr(value)
    if isinstance(value, int | float):
        return str(int(value))
    return json.dumps(value, ensure_ascii=False)


def _records_batch(records: list[dict[str, object]]) -> pa.RecordBatch:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    columns = {n: pa.array([r.get(n) for r in records], pa.string()) for n in names}
    return pa.RecordBatch.from_pydict(columns) if columns else pa.RecordBatch.from_pydict({})


def _csv(path: Path, names: list[str], delim: str, batch_rows: int) -> Iterator[RawBatch]:
    """CSV records (`lines.csv_records`) parsed by one strict `csv` reader, fed one record at a time."""
    if len(set(names)) != len(names):
        raise IngestError(f"{path}: the header repeats a column name: {names}")
    lines = physical_lines(path)
    next(lines)  # the header, already read by read_columns
    feed = _Feed(csv_records(lines, delim, first_line=2))
    reader = csv.reader(feed, delimiter=delim, strict=True)
    rows: list[list[str]] = []
    first = 1
    while True:
        fed = feed.fed
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # strict: text after a closing quote (or a value over the size limit)
            reason = "line longer than the reader's limit" if "field limit" in str(exc) else "misplaced quote"
            feed.reject(reason)
            continue
        finally:
            if feed.fed > fed + 1:  # the csv module read past the record the splitter made: never expected
                raise IngestError(f"{path}: CSV records out of step near line {feed.current.line}; please report it")
        if len(values) != len(names):
            feed.reject("too many columns" if len(values) > len(names) else "too few columns")
        else:
            rows.append(values)
        if len(rows) >= batch_rows:
            yield RawBatch(_text_batch(names, rows), first, *feed.take())
            first += len(rows)
            rows = []
    rejects, accounted = feed.take()
    if rows or rejects or accounted:
        yield RawBatch(_text_batch(names, rows), first, rejects, accounted)


class _Feed:
    """Record texts for the csv reader; blank and unreadable records are accounted for on the way."""

    def __init__(self, records: Iterator[Record]) -> None:
        self.records = records
        self.rejects: list[tuple[int, str, str]] = []
        self.accounted = 1  # the header line, counted in the first batch
        self.fed = 0
        self.current = Record(1, 1, None)

    def __iter__(self) -> Iterator[str]:
        for rec in self.records:
            self.accounted += rec.n_lines
            if rec.text is None:
                if rec.problem is not None:
                    self.rejects.append((rec.line, rec.problem, rec.raw))
                continue
            self.current = rec
            self.fed += 1
            yield rec.text

    def reject(self, reason: str) -> None:
        self.rejects.append((self.current.line, reason, self.current.text or ""))

    def take(self) -> tuple[list[tuple[int, str, str]], int]:
        """The rejects and lines accounted since the last call."""
        out = self.rejects, self.accounted
        self.rejects, self.accounted = [], 0
        return out


def _text_batch(names: list[str], rows: list[list[str]]) -> pa.RecordBatch:
    columns = list(zip(*rows)) if rows else [() for _ in names]  # noqa: B905 - rows were checked
    return pa.RecordBatch.from_arrays([pa.array(c, pa.string()) for c in columns], names=names)
