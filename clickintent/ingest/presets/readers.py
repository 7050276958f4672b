"""Read analytics exports in their own file shapes, for a preset, on DuckDB and on Spark.

- Snowplow's enriched TSV has no header: its 131 columns are named in the analytics SDKs' order.
- Adobe's hit_data.tsv has no header: the names are in column_headers.tsv beside it. Neither TSV quotes
  values, so a `"` is text.
- NDJSON (GA4's `bq extract`, Segment, RudderStack, PostHog) is read in blocks of whole lines, only the
  columns the preset reads, typed as it reads them (GA4's event_params as a list of structs): by Arrow's
  JSON reader where the types allow (measured twice as fast as DuckDB's json_transform on GA4 rows), else
  (free-form JSON columns, numbers where text was expected, a bad line in the block) by DuckDB, which
  also finds the lines that are not UTF-8, not JSON or not an object and rejects them in the generic
  reader's words. The next block is read in a background thread while the last one is transformed. The
  per-line Python reader is far too slow for a million-event export.
Anything else goes through the generic readers. What it leaves out: compressed files (gunzip first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from threading import Thread
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from clickintent import schema
from clickintent.ingest import readers
from clickintent.ingest.presets.base import Preset, Shape, arrow_type, json_shape
from clickintent.ingest.presets.snowplow import ENRICHED_FIELDS
from clickintent.ingest.readers import IngestError, RawBatch

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ADOBE_HEADERS = "column_headers.tsv"
BLOCK_BYTES = 32 << 20  # NDJSON read per block: a few tens of thousands of GA4 events
ARROW_BLOCK = 8 << 20  # Arrow's JSON reader parses a block in parallel pieces of this size (4 MB: 10% more CPU)


@dataclass(frozen=True)
class PresetSource:
    """How a preset's file is laid out."""

    columns: list[str]  # source column names (JSON: the columns the preset reads)
    delimiter: str | None  # CSV/TSV delimiter
    header: bool = True  # False: the first line is data, the names come from elsewhere
    quoted: bool = True  # False: `"` is plain text (Adobe and Snowplow TSVs)


def read_source(
    path: Path, fmt: str, delimiter: str | None, preset: Preset, mapping: Mapping[str, str]
) -> PresetSource:
    """The file's layout, before reading data; fails with one clear line when it is not the preset's export."""
    if fmt in ("csv", "tsv") and preset.name in ("adobe", "snowplow"):
        first = readers._first_line(path).split("\t")
        if preset.name == "adobe" and "post_visid_high" not in first:
            headers = path.parent / ADOBE_HEADERS
            if not headers.is_file():
                raise IngestError(
                    f"{path} has no header, and {headers} is missing: an Adobe data feed's hit_data.tsv is "
                    f"named by the {ADOBE_HEADERS} that comes with it; put that file beside the hit data"
                )
            return PresetSource(readers._first_line(headers).split("\t"), "\t", header=False, quoted=False)
        if preset.name == "snowplow" and len(first) == len(ENRICHED_FIELDS) and "domain_userid" not in first:
            return PresetSource(list(ENRICHED_FIELDS), "\t", header=False, quoted=False)
        columns, delim = readers.read_columns(path, fmt, delimiter or ("\t" if len(first) > 1 else None))
        return PresetSource(columns, delim, quoted=preset.name != "adobe")
    columns, delim = readers.read_columns(path, fmt, delimiter)  # JSON: the first object's keys
    return PresetSource(columns, delim)


def check_source(source: PresetSource, preset: Preset, mapping: Mapping[str, str], path: Path) -> None:
    """Fail before reading data when the file lacks what the preset (and each --map) reads."""
    unknown = sorted(set(mapping) - set(schema.SOURCE_COLUMNS))
    if unknown:
        raise IngestError(f"--map names unknown contract column(s) {unknown}; contract columns: "
                          + ", ".join(schema.SOURCE_COLUMNS))  # fmt: skip
    try:
        mapped = {preset.override(src)[1] for src in mapping.values()}
    except ValueError as exc:
        raise IngestError(str(exc)) from None
    missing = [c for c in (*preset.required, *sorted(mapped)) if c not in source.columns]
    if missing:
        raise IngestError(
            f"{path}: not a {preset.title}: column(s) {', '.join(map(repr, missing))} missing. "
            f"Columns found: {source.columns[:40]}{' ...' if len(source.columns) > 40 else ''}. "
            "Choose the --preset of the tool that wrote the file, or map columns with --map and no preset."
        )


def iter_batches(
    path: Path, fmt: str, source: PresetSource, preset: Preset, mapping: Mapping[str, str], batch_rows: int
) -> Iterator[RawBatch]:
    """Raw batches of the file as the preset expects them."""
    if fmt == "jsonl":
        yield from _prefetch(_ndjson(path, preset.plan(mapping)[1], batch_rows))
    elif fmt in ("csv", "tsv") and not (source.header and source.quoted):
        assert source.delimiter is not None
        yield from _unquoted(path, source, batch_rows)
    else:
        yield from readers.iter_batches(path, fmt, source.delimiter, batch_rows)


def _unquoted(path: Path, source: PresetSource, batch_rows: int) -> Iterator[RawBatch]:
    """A TSV without quoting, with or without a header line, through DuckDB's reader (rejects kept)."""
    con = duckdb.connect()
    try:
        rel = con.sql(
            "SELECT * FROM read_csv(?, columns=?, header=?, auto_detect=false, delim=?, quote='', escape='', "
            "store_rejects=true, max_line_size=8388608, parallel=false)",
            params=[str(path), {c: "VARCHAR" for c in source.columns}, source.header, source.delimiter],
        )
        row = 1
        for i, batch in enumerate(rel.to_arrow_reader(batch_rows)):
            # each row is one line (no quoting), the header line counted with the first batch
            yield RawBatch(batch, row, accounted=batch.num_rows + (1 if i == 0 and source.header else 0))
            row += batch.num_rows
        rejected = con.sql(
            "SELECT line, string_agg(DISTINCT error_type, '; '), any_value(csv_line) FROM reject_errors "
            "GROUP BY line ORDER BY line"
        ).fetchall()
        if rejected:
            empty = pa.RecordBatch.from_pydict({c: pa.array([], pa.string()) for c in source.columns})
            rejects = [(int(line), _reject_reason(kinds), raw or "") for line, kinds, raw in rejected]
            yield RawBatch(empty, row, rejects, accounted=len(rejects) + (1 if row == 1 and source.header else 0))
    finally:
        con.close()


_REJECT_REASONS = {  # DuckDB's reject error types, in the words of the generic reader
    "CAST": "value does not parse",
    "MISSING COLUMNS": "too few columns",
    "TOO MANY COLUMNS": "too many columns",
    "UNQUOTED VALUE": "unterminated or misplaced quote",
    "LINE SIZE OVER MAXIMUM": "line longer than the reader's limit",
    "INVALID ENCODING": "invalid UTF-8",
    "INVALID STATE": "malformed CSV",
}


def _reject_reason(kinds: str) -> str:
    return "; ".join(_REJECT_REASONS.get(k.strip(), k.strip().lower()) for k in kinds.split(";"))


def _prefetch(batches: Iterator[RawBatch]) -> Iterator[RawBatch]:
    """Read one block ahead in a thread (both parsers release the GIL)."""
    queue: Queue[RawBatch | BaseException | None] = Queue(maxsize=1)

    def produce() -> None:
        try:
            for batch in batches:
                queue.put(batch)
            queue.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            queue.put(exc)

    Thread(target=produce, daemon=True).start()
    while (item := queue.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


def _ndjson(path: Path, shapes: Mapping[str, Shape], batch_rows: int) -> Iterator[RawBatch]:
    """NDJSON in blocks of whole lines, parsed into the columns of `shapes`."""
    con = duckdb.connect()
    structure = json.dumps({c: json_shape(t) for c, t in shapes.items()})
    types = {c: arrow_type(t) for c, t in shapes.items()}
    schema = pa.schema(list(types.items())) if None not in types.values() else None
    # line numbers matter only for a block DuckDB reads (its rejects): lines are counted up to such a block
    row, line_no, counted = 1, 1, 0
    try:
        for start, block in _blocks(path):
            fast = _arrow_block(block, schema) if schema is not None else None
            if fast is not None and fast.num_rows != _lines_in(block):
                fast = None  # Arrow skipped lines (blank ones): DuckDB reads the block and accounts for each line
            if fast is not None:
                for first in range(0, fast.num_rows, batch_rows):
                    part = fast.slice(first, batch_rows)
                    yield RawBatch(part, row + first, accounted=part.num_rows)
                row += fast.num_rows
                continue
            line_no += _newlines(path, counted, start)
            chunk = block.to_pybytes()
            for batch in _parse_block(con, chunk, line_no, row, structure, list(shapes), batch_rows):
                row += batch.rows.num_rows
                yield batch
            line_no += chunk.count(b"\n")
            counted = start + len(chunk)
    finally:
        con.close()


def _blocks(path: Path) -> Iterator[tuple[int, pa.Buffer]]:
    """(offset, bytes) of about BLOCK_BYTES each, ending at a line end (the last block may not), read from a
    memory map without copying: copying each block into Python bytes cost as much as parsing it."""
    data = pa.memory_map(str(path)).read_buffer()
    start = 0
    while start < data.size:
        end = min(start + BLOCK_BYTES, data.size)
        cut = _after_last_newline(data, start, end) if end < data.size else end
        while cut == start:  # a line longer than the block: grow it to that line's end
            end = min(end + BLOCK_BYTES, data.size)
            cut = _after_last_newline(data, start, end) if end < data.size else end
        yield start, data.slice(start, cut - start)
        start = cut


def _after_last_newline(data: pa.Buffer, start: int, end: int) -> int:
    """The offset just after the last newline in data[start:end], or `start` if there is none."""
    pos = end
    while pos > start:
        lo = max(start, pos - 65_536)
        i = data.slice(lo, pos - lo).to_pybytes().rfind(b"\n")
        if i >= 0:
            return lo + i + 1
        pos = lo
    return start


def _lines_in(block: pa.Buffer) -> int:
    """Lines in a block that ends at a line end (or at the end of the file, maybe without one)."""
    data = np.frombuffer(block, dtype=np.uint8)
    n = int(np.count_nonzero(data == 10))
    return n + (1 if len(data) and data[-1] != 10 else 0)


def _newlines(path: Path, start: int, end: int) -> int:
    """Newlines in bytes [start, end) of the file."""
    if end <= start:
        return 0
    view = pa.memory_map(str(path)).read_buffer().slice(start, end - start)
    return int(np.count_nonzero(np.frombuffer(view, dtype=np.uint8) == 10))


def _arrow_block(block: pa.Buffer, schema: pa.Schema) -> pa.RecordBatch | None:
    """The block by Arrow's JSON reader, or None where it cannot read it all (then DuckDB reads it)."""
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pj.read_json(pa.BufferReader(block), pj.ReadOptions(block_size=ARROW_BLOCK), options)
    except pa.ArrowInvalid:
        return None
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)


def _parse_block(
    con: duckdb.DuckDBPyConnection, chunk: bytes, first_line: int, first_row: int, structure: str,
    names: list[str], batch_rows: int,
) -> Iterator[RawBatch]:  # fmt: skip
    buf = np.frombuffer(chunk, dtype=np.uint8)
    starts = np.r_[0, np.flatnonzero(buf == 10) + 1]
    if starts[-1] == len(chunk):
        starts = starts[:-1]
    numbers = np.arange(first_line, first_line + len(starts))
    offsets = pa.py_buffer(np.r_[starts, len(chunk)].astype(np.int64).tobytes())
    lines = pa.Array.from_buffers(pa.large_binary(), len(starts), [None, offsets, pa.py_buffer(chunk)])
    rejects: list[tuple[int, str, str]] = []
    try:
        text = lines.cast(pa.large_string())
    except pa.ArrowInvalid:  # some line is not UTF-8: find it (rare, so line by line)
        good = np.array([_is_utf8(v) for v in lines.to_pylist()])
        for i in np.flatnonzero(~good):
            raw = chunk[starts[i] :].split(b"\n", 1)[0].decode(errors="replace")
            rejects.append((int(numbers[i]), "invalid UTF-8", raw))
        lines, numbers = lines.filter(pa.array(good)), numbers[good]
        text = lines.cast(pa.large_string())
    trimmed = pc.utf8_trim_whitespace(text)
    keep = pc.greater(pc.binary_length(trimmed), 0).to_numpy(zero_copy_only=False)  # blank lines are no rows
    text, numbers = text.filter(pa.array(keep)), numbers[keep]
    con.register("lines", pa.table({"line": text}))
    parsed = con.sql(f"SELECT try(json_transform(line, {_literal(structure)})) AS j FROM lines").to_arrow_table()
    con.unregister("lines")
    record = parsed.column("j").combine_chunks()
    ok = (pc.is_valid(record).to_numpy(zero_copy_only=False)
          & pc.starts_with(pc.utf8_ltrim_whitespace(text), "{").to_numpy(zero_copy_only=False))  # fmt: skip
    for i in np.flatnonzero(~ok):
        line = text[int(i)].as_py().removesuffix("\n").removesuffix("\r")  # as the generic reader parses it
        rejects.append((int(numbers[i]), _json_reason(line), line.strip()))
    rows = record.filter(pa.array(ok))
    columns = rows.flatten() if len(rows) else [pa.array([], f.type) for f in record.type]
    batch = pa.RecordBatch.from_arrays(columns, names=names)
    for start in range(0, max(batch.num_rows, 1), batch_rows):
        part = batch.slice(start, batch_rows)
        # every line of the chunk (blank and rejected ones too) is accounted for with the first part
        yield RawBatch(part, first_row + start, rejects if start == 0 else [], len(starts) if start == 0 else 0)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _json_reason(line: str) -> str:
    """The generic JSONL reader's words for a line DuckDB could not read as an object."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return f"malformed JSON: {exc.msg}"
    return "malformed JSON: not strict JSON" if isinstance(obj, dict) else "JSON line is not an object"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def spark_frame(
    spark: SparkSession, path: Path, fmt: str, source: PresetSource, preset: Preset | None,
    mapping: Mapping[str, str],
) -> tuple[DataFrame, list[str]]:
    """The file as a Spark DataFrame of text columns (plus `_corrupt`), and the columns the preset reads."""
    from pyspark.sql.types import StringType, StructField, StructType

    if fmt == "parquet":
        return spark.read.parquet(str(path)), source.columns
    columns = source.columns
    if fmt == "jsonl" and preset is not None:  # keys differ line to line (null fields left out): what it needs
        columns = list(dict.fromkeys([*columns, *preset.plan(mapping)[1]]))
    fields = [StructField(c, StringType()) for c in columns] + [StructField("_corrupt", StringType())]
    reader = (
        spark.read.schema(StructType(fields))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", "_corrupt")
    )
    if fmt == "jsonl":
        return reader.json(str(path)), columns
    quote = '"' if source.quoted else "\u0000"  # \u0000: Spark's way to turn quoting off
    df = (
        reader.option("header", source.header).option("sep", source.delimiter).option("quote", quote)
        .option("escape", quote).option("multiLine", False).csv(str(path))
    )  # fmt: skip
    return df, source.columns
