"""PySpark engine: the SparkSession, and the distributed path for ingest and sessionize.

`get_spark` builds (or reuses) a SparkSession. For local masters it binds the driver to 127.0.0.1: on
machines with several interfaces Spark otherwise binds to a non-loopback address. PySpark is the `spark`
extra; a missing one fails with the exact pip command. Embed and label on Spark are `engines/spark_bundle.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from clickintent import schema
from clickintent.ingest import IngestError, IngestOptions, IngestReport, open_source
from clickintent.ingest.diagnose import EXAMPLES, Examples, problem
from clickintent.ingest.lines import physical_lines
from clickintent.ingest.presets import get_preset, preset_ts_unit
from clickintent.ingest.presets import readers as preset_readers
from clickintent.ingest.readers import count_source
from clickintent.ingest.transform import SOURCE_KEY, TransformOptions, detect_ts_unit, transform_batch
from clickintent.pii import redact
from clickintent.sessionize import SessionizeOptions, SessionizeReport, sessionize_sql

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "PySpark is not installed. Install the extra: pip install 'clickintent[spark]'"


def require_pyspark() -> Any:
    """Import pyspark or fail with the pip command that installs it."""
    try:
        import pyspark
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError(INSTALL_HINT) from exc
    return pyspark


def get_spark(master: str = "local[*]", app_name: str = "clickintent", **conf: str) -> SparkSession:
    """Return a SparkSession for `master`; local masters bind to 127.0.0.1."""
    require_pyspark()
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.environ.get("PYSPARK_PYTHON", _python()))
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", conf.pop("spark.sql.shuffle.partitions", "8"))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _python() -> str:
    import sys

    return sys.executable


# --- ingest and sessionize on Spark -------------------------------------------------------------------


def _stage_schema() -> pa.Schema:
    """What the mapInArrow step emits: event columns plus the quarantine reason/raw and redaction stats."""
    return pa.schema(
        [pa.field(f.name, f.type) for f in schema.EVENTS]
        + [
            pa.field(SOURCE_KEY, pa.binary()),
            pa.field("_reason", pa.string()),
            pa.field("_raw", pa.string()),
            pa.field("_redactions", pa.string()),
        ]
    )


def _transform_partition(
    options: TransformOptions, columns: list[str]
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    stage = _stage_schema()

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            corrupt = batch.column("_corrupt") if "_corrupt" in batch.schema.names else None
            rows = batch.select(columns)
            if corrupt is not None and corrupt.null_count < len(corrupt):
                good = pc.is_null(corrupt)
                bad_raw = corrupt.filter(pc.invert(good))
                rows = rows.filter(good)
                yield _stage_rows(
                    stage,
                    len(bad_raw),
                    reason="malformed CSV row",
                    raw=[json.dumps({"line": redact(r)[:4096]}) for r in bad_raw.to_pylist()],
                )
            counts: Counter[str] = Counter()
            events, quarantine = transform_batch(rows, options, 1, counts)
            cols = {name: events.column(name) for name in events.schema.names}
            n = events.num_rows
            out = pa.table(
                cols
                | {
                    "_reason": pa.nulls(n, pa.string()),
                    "_raw": pa.nulls(n, pa.string()),
                    "_redactions": pa.nulls(n, pa.string()),
                },
                schema=stage,
            )
            yield from out.to_batches()
            if quarantine.num_rows:
                yield _stage_rows(
                    stage,
                    quarantine.num_rows,
                    reason=quarantine.column("reason").to_pylist(),
                    raw=quarantine.column("raw").to_pylist(),
                )
            yield _stage_rows(stage, 1, redactions=json.dumps(dict(counts)))

    return run


def _stage_rows(
    stage: pa.Schema,
    n: int,
    reason: str | list[str] | None = None,
    raw: list[str] | None = None,
    redactions: str | None = None,
) -> pa.RecordBatch:
    columns = {f.name: pa.nulls(n, f.type) for f in stage}
    if reason is not None:
        columns["_reason"] = pa.array(reason if isinstance(reason, list) else [reason] * n, pa.string())
    if raw is not None:
        columns["_raw"] = pa.array(raw, pa.string())
    if redactions is not None:
        columns["_redactions"] = pa.array([redactions] * n, pa.string())
    return pa.RecordBatch.from_pydict(columns, schema=stage)


def ingest_spark(
    spark: SparkSession, input_path: str | Path, out_dir: str | Path, options: IngestOptions | None = None
) -> IngestReport:
    """`ingest` on Spark: the same transform per batch (mapInArrow), duplicates dropped by Spark.

    Writes out_dir/events.parquet and out_dir/quarantine.parquet as Spark directories of part files.
    Rows Spark's CSV reader cannot parse are quarantined as "malformed CSV row"; quarantined rows carry no
    source row number here (partitions are read in parallel).
    """
    from pyspark.sql import functions as F

    options = options or IngestOptions()
    started = time.perf_counter()
    path, out, delim, report = open_source(input_path, out_dir, options)
    fmt, columns = report.format, report.columns_found
    header = 1 if fmt in ("csv", "tsv") else 0  # lines before the data
    if options.preset is not None:  # the tool's own file layout (ingest.presets.readers)
        preset = get_preset(options.preset)
        source = preset_readers.read_source(path, fmt, options.delimiter, preset, options.mapping)
        df, columns = preset_readers.spark_frame(spark, path, fmt, source, preset, options.mapping)
        header = header if source.header else 0
    else:  # the same text-column reader with the file's own header, quoting on
        generic = preset_readers.PresetSource(columns, delim)
        df, columns = preset_readers.spark_frame(spark, path, fmt, generic, None, options.mapping)

    unit = options.ts_unit
    if options.preset is not None:
        unit = preset_ts_unit(options.preset, unit)
    elif unit == "auto":
        sample = df.select(options.mapping.get("ts", "ts")).limit(10_000).toArrow()
        unit = detect_ts_unit(sample.column(0).combine_chunks())
    report.ts_unit = unit
    transform_options = TransformOptions(
        mapping=dict(options.mapping),
        ts_unit=unit,
        platform=options.platform,
        preset=options.preset,
        source_key=True,
    )
    staged = out / ".ingest-staging"
    shutil.rmtree(staged, ignore_errors=True)
    stage = _stage_schema()
    mapped = df.mapInArrow(_transform_partition(transform_options, columns), _spark_schema(spark, stage))
    mapped.write.mode("overwrite").parquet(str(staged))
    staged_df = spark.read.parquet(str(staged))

    # A duplicate is a repeated source row (the same key), not two rows that map to the same event.
    events = staged_df.filter(F.col("_reason").isNull() & F.col("_redactions").isNull()).select(
        *schema.EVENTS.names, SOURCE_KEY
    )
    deduped = events.dropDuplicates().drop(SOURCE_KEY)
    deduped.write.mode("overwrite").parquet(str(out / "events.parquet"))
    quarantine = staged_df.filter(F.col("_reason").isNotNull()).select(
        F.lit(None).cast("long").alias("source_row"),
        F.lit(None).cast("long").alias("source_line"),
        F.col("_reason").alias("reason"),
        F.col("_raw").alias("raw"),
    )
    quarantine.write.mode("overwrite").parquet(str(out / "quarantine.parquet"))

    n_staged = events.count()
    report.rows_out = spark.read.parquet(str(out / "events.parquet")).count()
    report.duplicates = n_staged - report.rows_out
    reasons = {
        r["reason"]: int(r["count"])
        for r in spark.read.parquet(str(out / "quarantine.parquet")).groupBy("reason").count().collect()
    }
    report.quarantine_reasons = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    report.quarantined = sum(reasons.values())
    redactions: Counter[str] = Counter()
    for row in staged_df.filter(F.col("_redactions").isNotNull()).select("_redactions").collect():
        redactions.update(json.loads(row[0]))
    report.redactions = {k: redactions[k] for k in sorted(redactions)}
    report.rows_in = df.count()
    shutil.rmtree(staged, ignore_errors=True)
    # What the file holds, counted apart from Spark's reader: its rows must all be there (Spark reads each
    # text line as one record, so a quoted value spanning lines cannot reconcile: the DuckDB engine reads those).
    report.counted = count_source(path, fmt)
    report.accounted = report.rows_in + (header + _blank_lines(path, fmt) if fmt != "parquet" else 0)
    if report.accounted != report.counted:
        for name in ("events.parquet", "quarantine.parquet"):
            shutil.rmtree(out / name, ignore_errors=True)
        raise IngestError(
            f"{path}: Spark read {report.rows_in:,} records where the file has {report.counted - header:,} lines "
            "of data (quoted values spanning lines?); run ingest with --engine local (DuckDB), which reads them"
        )
    # As on DuckDB: a run that keeps nothing fails with its main reason, examples and the fix.
    examples = Examples(options.mapping)
    if reasons:
        top = next(iter(report.quarantine_reasons))  # the most common reason, as `problem` picks it
        written = spark.read.parquet(str(out / "quarantine.parquet"))
        examples.add_quarantine(written.filter(F.col("reason") == top).limit(EXAMPLES).toArrow())
    report.problem = problem(report.rows_in, report.rows_out, Counter(reasons), examples)
    if report.rows_out == 0:
        shutil.rmtree(out / "events.parquet", ignore_errors=True)
        if report.rows_in == 0:
            shutil.rmtree(out / "quarantine.parquet", ignore_errors=True)
            raise IngestError(f"{path}: {report.problem}.")
        report.finish(out, started, events=False)
        raise IngestError(f"{path}: {report.problem}. See {out / 'quarantine.parquet'}.")
    return report.finish(out, started)


def _blank_lines(path: Path, fmt: str) -> int:
    """Lines Spark's reader skips: empty ones (CSV), or only white space (JSON Lines)."""
    return sum(1 for line in physical_lines(path) if not (line.strip() if fmt == "jsonl" else line))


def _spark_schema(spark: SparkSession, arrow_schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(arrow_schema)


def sessionize_spark(
    spark: SparkSession,
    events_path: str | Path,
    out_path: str | Path,
    options: SessionizeOptions | None = None,
) -> SessionizeReport:
    """`sessionize` on Spark: the same rules as the DuckDB path, written as Spark SQL window functions."""
    options = options or SessionizeOptions()
    started = time.perf_counter()
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    spark.read.parquet(str(events_path)).createOrReplaceTempView("clickintent_events")
    sessions = spark.sql(sessionize_sql("spark", "clickintent_events", options))
    sessions.write.mode("overwrite").parquet(str(out_path))
    result = spark.read.parquet(str(out_path))
    row = result.selectExpr("count(*)", "coalesce(sum(n_events), 0)", "count(customer_id)").collect()[0]
    return SessionizeReport(
        engine="spark",
        events=int(row[1]),
        sessions=int(row[0]),
        linked_sessions=int(row[2]),
        seconds=round(time.perf_counter() - started, 3),
        output=str(out_path),
    )
