"""`ingest`: raw event files of any column names -> events.parquet + quarantine.parquet + a report.

Reads the input in bounded batches, runs `transform_batch` on each (map, validate, parse timestamps,
redact PII, normalise URLs), stages the good rows with a digest of their whole source row, then lets
DuckDB drop repeated source rows and sort, spilling to disk under a memory limit so files larger than
memory go through. Every input row ends up in events.parquet, in quarantine.parquet with a reason, or in
the duplicate count; the report checks `rows_in == rows_out + quarantined + duplicates`, and that the
readers accounted for every line (or Parquet row) of the file as counted apart from them, before
anything is published. Outputs are staged and moved into place at the end, so a failed run leaves no
half-written file. A run that keeps no row fails, naming the main reason, examples and the fix.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from clickintent import schema
from clickintent.ingest import presets
from clickintent.ingest.diagnose import Examples, problem
from clickintent.ingest.presets import readers as preset_readers
from clickintent.ingest.readers import (
    IngestError,
    RawBatch,
    count_source,
    detect_format,
    iter_batches,
    read_columns,
    sniff_delimiter,
)
from clickintent.ingest.transform import SOURCE_KEY, TS_UNITS, TransformOptions, detect_ts_unit, transform_batch
from clickintent.pii import redact

__all__ = ["IngestError", "IngestOptions", "IngestReport", "ingest", "open_source", "transform_batch"]


@dataclass(frozen=True)
class IngestOptions:
    """How to read one source. Every field has a default that suits a file in the events contract."""

    mapping: dict[str, str] = field(default_factory=dict)  # contract column -> source column
    format: str | None = None  # csv|tsv|parquet|jsonl; None = from the file extension
    delimiter: str | None = None  # CSV delimiter; None = sniffed from the header
    ts_unit: str = "auto"  # auto|s|ms|us|iso
    platform: str = "web"  # platform for sources without a platform column
    batch_rows: int = 250_000  # rows per batch held in memory at once
    memory_limit: str = "2GB"  # DuckDB's limit for de-duplication and sorting; it spills beyond
    threads: int = 2
    preset: str | None = None  # ga4|snowplow|segment|rudderstack|adobe|posthog: the tool's export (presets)


@dataclass
class IngestReport:
    input: str
    format: str
    columns_found: list[str]
    mapping: dict[str, str]
    ts_unit: str
    rows_in: int = 0
    rows_out: int = 0
    quarantined: int = 0
    duplicates: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    # What the file holds, counted apart from the readers: physical lines of a text file (the header and
    # blank lines included) or the row count in a Parquet footer; the readers must account for all of it.
    counted: int = 0
    counted_as: str = "lines"
    accounted: int = 0
    problem: str | None = None  # nothing kept, or one reason quarantined more than half the rows
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    preset: str | None = None

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.rows_out + self.quarantined + self.duplicates

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"reconciles": self.reconciles}, indent=2)

    def finish(self, out: Path, started: float, events: bool = True) -> IngestReport:
        """Record time and outputs, write ingest_report.json, and fail unless every count reconciles."""
        self.seconds = round(time.perf_counter() - started, 3)
        self.outputs = {
            "events": str(out / "events.parquet") if events else "",
            "quarantine": str(out / "quarantine.parquet"),
            "report": str(out / "ingest_report.json"),
        }
        (out / "ingest_report.json").write_text(self.to_json())
        self.check(out)
        return self

    def check(self, out: Path) -> None:
        if self.accounted != self.counted:
            raise IngestError(
                f"{self.input}: the reader accounted for {self.accounted:,} of the file's {self.counted:,} "
                f"{self.counted_as}, so rows may be missing; nothing was published (see {out / 'ingest_report.json'})"
            )
        if not self.reconciles:
            raise IngestError(
                f"row counts do not reconcile: in {self.rows_in} != out {self.rows_out} + quarantined "
                f"{self.quarantined} + duplicates {self.duplicates}; see {out / 'ingest_report.json'}"
            )


def check_mapping(columns: list[str], options: IngestOptions, delimiter: str | None, path: Path) -> None:
    """Fail with a message naming what is missing and what was found, before reading any data."""
    unknown = sorted(set(options.mapping) - set(schema.SOURCE_COLUMNS))
    if unknown:
        raise IngestError(
            f"--map names unknown contract column(s) {unknown}; contract columns: {', '.join(schema.SOURCE_COLUMNS)}"
        )
    absent = sorted(src for src in options.mapping.values() if src not in columns)
    missing = [c for c in schema.REQUIRED_COLUMNS if options.mapping.get(c, c) not in columns]
    if not absent and not missing:
        return
    problems = []
    if missing:
        problems.append(
            "missing required column(s) " + ", ".join(f"{c!r} (source {options.mapping.get(c, c)!r})" for c in missing)
        )
    if absent:
        problems.append(f"mapped source column(s) not in the file: {absent}")
    hint = ""
    if delimiter is not None and len(columns) == 1:
        other = sniff_delimiter(columns[0])
        if other != delimiter and other in columns[0]:
            hint = f"\nThe header looks {other!r}-separated: try --delimiter {other!r}."
    raise IngestError(
        f"{path}: " + "; ".join(problems) + f".\nColumns found: {columns}.\n"
        "Map source columns with --map CONTRACT=SOURCE, e.g. --map ts=Time --map visitor_id=SessionId --map url=ItemId."
        + hint
    )


def open_source(
    input_path: str | Path, out_dir: str | Path, options: IngestOptions
) -> tuple[Path, Path, str | None, IngestReport]:
    """Checks every engine makes before reading data: the file, the options, the format, the mapping.

    Returns (input path, output directory (created), CSV delimiter or None, an empty report).
    """
    path = Path(input_path)
    if not path.is_file():
        raise IngestError(f"input file not found: {path}")
    if options.ts_unit not in TS_UNITS:
        raise IngestError(f"--ts-unit must be one of {', '.join(TS_UNITS)}, not {options.ts_unit!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IngestError(f"--out {out} is a file; give a directory for events.parquet and quarantine.parquet")
    fmt = detect_format(path, options.format)
    if options.preset is not None:  # the tool's own file layout and columns (ingest.presets.readers)
        preset = _preset(options.preset)
        source = preset_readers.read_source(path, fmt, options.delimiter, preset, options.mapping)
        preset_readers.check_source(source, preset, options.mapping, path)
        columns, delim = source.columns, source.delimiter
    else:
        columns, delim = read_columns(path, fmt, options.delimiter)
        check_mapping(columns, options, delim, path)
    out.mkdir(parents=True, exist_ok=True)
    report = IngestReport(str(path), fmt, columns, dict(options.mapping), options.ts_unit, preset=options.preset)
    report.counted_as = "rows" if fmt == "parquet" else "lines"
    return path, out, delim, report


def ingest(
    input_path: str | Path,
    out_dir: str | Path,
    options: IngestOptions | None = None,
    progress: Callable[[int], object] | None = None,
) -> IngestReport:
    """Ingest one file into `out_dir` (events.parquet, quarantine.parquet, ingest_report.json).

    Raises IngestError when the file cannot be read, when no row is kept (the message names the main
    reason, examples and the option that fixes it; quarantine.parquet and ingest_report.json are written),
    or when a count does not reconcile (nothing is published).
    """
    options = options or IngestOptions()
    started = time.perf_counter()
    existed = Path(out_dir).exists()
    path, out, delim, report = open_source(input_path, out_dir, options)
    staging = out / ".ingest-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        n_staged, reasons, examples = _read(path, report, staging, delim, options, progress)
        report.counted = count_source(path, report.format)
        report.rows_out = _deduplicate(staging / "staged.parquet", staging / "events.parquet", staging, options)
        report.duplicates = n_staged - report.rows_out
        report.quarantined = sum(reasons.values())
        report.quarantine_reasons = dict(reasons.most_common())
        report.problem = problem(report.rows_in, report.rows_out, reasons, examples)
        try:
            report.check(out)
        except IngestError:
            (out / "ingest_report.json").write_text(report.to_json())
            raise
        _remove(out / "events.parquet")  # a previous run's, never left beside this run's report
        if report.rows_in:
            _remove(out / "quarantine.parquet")
            (staging / "quarantine.parquet").replace(out / "quarantine.parquet")
        if report.rows_out:
            (staging / "events.parquet").replace(out / "events.parquet")
        elif report.rows_in:
            report.finish(out, started, events=False)
            raise IngestError(f"{path}: {report.problem}. See {out / 'quarantine.parquet'}.")
        else:
            raise IngestError(f"{path}: {report.problem}.")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not existed and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    return report.finish(out, started)


def _remove(path: Path) -> None:
    """A file, or the part-file folder `--engine spark` wrote in its place."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _read(
    path: Path, report: IngestReport, staging: Path, delim: str | None, options: IngestOptions,
    progress: Callable[[int], object] | None,
) -> tuple[int, Counter[str], Examples]:  # fmt: skip
    """Read and transform every batch into staging/ (staged events with their source keys, quarantine);
    fills the report's rows_in, accounted, ts_unit and redactions. Returns (rows staged, reasons, examples)."""
    redactions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    examples = Examples(options.mapping)
    staged_schema = schema.EVENTS.append(pa.field(SOURCE_KEY, pa.binary()))
    events_writer = pq.ParquetWriter(staging / "staged.parquet", staged_schema)
    quarantine_writer = pq.ParquetWriter(staging / "quarantine.parquet", schema.QUARANTINE)
    n_staged = 0
    try:
        transform_options: TransformOptions | None = None
        for raw in _batches(path, report.format, delim, options):
            if transform_options is None and raw.rows.num_rows:
                transform_options = _resolve(options, raw)
                report.ts_unit = transform_options.ts_unit
            report.rows_in += raw.rows.num_rows + len(raw.rejects)
            report.accounted += raw.accounted
            if raw.rows.num_rows:
                assert transform_options is not None
                events, quarantine = transform_batch(raw.rows, transform_options, raw.first_row, redactions)
                events_writer.write_table(events)
                n_staged += events.num_rows
                quarantine_writer.write_table(quarantine)
                reasons.update(quarantine.column("reason").to_pylist())
                examples.add_quarantine(quarantine)
            if raw.rejects:
                quarantine_writer.write_table(_rejects_table(raw.rejects))
                reasons.update(reason for _, reason, _ in raw.rejects)
                examples.add_rejects(raw.rejects)
            if progress is not None:
                progress(raw.rows.num_rows + len(raw.rejects))
    finally:
        events_writer.close()
        quarantine_writer.close()
    report.redactions = {k: redactions[k] for k in sorted(redactions)}
    return n_staged, reasons, examples


def _preset(name: str) -> presets.Preset:
    try:
        return presets.get_preset(name)
    except ValueError as exc:
        raise IngestError(str(exc)) from None


def _batches(path: Path, fmt: str, delim: str | None, options: IngestOptions) -> Iterator[RawBatch]:
    if options.preset is None:
        return iter_batches(path, fmt, delim, options.batch_rows)
    preset = _preset(options.preset)
    source = preset_readers.read_source(path, fmt, options.delimiter, preset, options.mapping)
    return preset_readers.iter_batches(path, fmt, source, preset, options.mapping, options.batch_rows)


def _resolve(options: IngestOptions, first: RawBatch) -> TransformOptions:
    unit = options.ts_unit
    if options.preset is not None:
        unit = presets.preset_ts_unit(options.preset, unit)
        return TransformOptions(dict(options.mapping), unit, options.platform, preset=options.preset, source_key=True)
    if unit == "auto":
        ts_col = options.mapping.get("ts", "ts")
        unit = detect_ts_unit(first.rows.column(ts_col).slice(0, 10_000))
    return TransformOptions(mapping=dict(options.mapping), ts_unit=unit, platform=options.platform, source_key=True)


_REJECT_CHARS = 4096  # of a rejected line kept in the quarantine


def _rejects_table(rejects: list[tuple[int, str, str]]) -> pa.Table:
    raws = [redact(raw[: _REJECT_CHARS + 512])[:_REJECT_CHARS] for _, _, raw in rejects]  # redact only what is kept
    return pa.Table.from_pydict(
        {
            "source_row": pa.nulls(len(rejects), pa.int64()),
            "source_line": pa.array([r for r, _, _ in rejects], pa.int64()),
            "reason": pa.array([reason for _, reason, _ in rejects], pa.string()),
            "raw": pa.array([json.dumps({"line": raw}, ensure_ascii=False) for raw in raws], pa.string()),
        },
        schema=schema.QUARANTINE,
    )


# Rows whose whole source row is the same (SOURCE_KEY) are duplicates; rows distinct in the source stay, even
# when they map to the same event (issue 16). The output is sorted by schema.EVENTS_ORDER (every column, so
# files are stable) and says so in its metadata for sessionize.


def _deduplicate(staged: Path, target: Path, tmp: Path, options: IngestOptions) -> int:
    con = duckdb.connect(config={"memory_limit": options.memory_limit, "threads": options.threads})
    try:
        con.execute(f"SET temp_directory = '{tmp / 'spill'}'")
        con.execute("SET enable_progress_bar = false")
        con.execute(
            f"COPY (SELECT * EXCLUDE ({SOURCE_KEY}) FROM (SELECT DISTINCT * FROM read_parquet('{staged}')) "
            f"ORDER BY {schema.EVENTS_ORDER}) "
            f"TO '{target}' (FORMAT parquet, COMPRESSION zstd, "
            f"KV_METADATA {{'{schema.SORTED_KEY}': '{schema.EVENTS_ORDER}'}})"
        )
        row = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
        assert row is not None
        return int(row[0])
    finally:
        con.close()
