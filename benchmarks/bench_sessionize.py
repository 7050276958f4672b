"""Sessionize 5 million events: clickintent (DuckDB) beside a straightforward pandas groupby, and Spark.

Same generated file for all (realistic shape: ~25 events per visitor, second-to-minute gaps inside a
visit, multi-hour breaks between visits). Two inputs for clickintent: events as `ingest` writes them
(ordered, marked so in the file) and the same events shuffled (DuckDB must sort them first).
The pandas baseline does less work than clickintent: only the inactivity-gap rule (no 12 h or 512-event
cuts, no customer link), then one list per column per session. Reports medians of --repeats runs.

    python benchmarks/bench_sessionize.py --events 5000000 --repeats 3 [--spark]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from benchmarks.synthetic_events import write_synthetic
from clickintent import schema
from clickintent.sessionize import sessionize


def pandas_sessionize(events: Path, out: Path, gap_minutes: float = 30.0) -> int:
    df = pd.read_parquet(events)
    df = df.sort_values(["visitor_id", "platform", "ts"], kind="stable")
    gap = df.groupby(["visitor_id", "platform"], sort=False)["ts"].diff()
    new = gap.isna() | (gap > pd.Timedelta(minutes=gap_minutes))
    df["session"] = new.cumsum()
    fields = list(schema.SESSION_EVENT_FIELDS)
    sessions = df.groupby("session", sort=False).agg(
        visitor_id=("visitor_id", "first"),
        platform=("platform", "first"),
        start=("ts", "min"),
        end=("ts", "max"),
        n_events=("ts", "size"),
        **{f: (f, list) for f in fields},
    )
    sessions.to_parquet(out)
    return len(sessions)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--spark", action="store_true", help="also time Spark local[2] (one run)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        raw = tmp / "raw.parquet"
        write_synthetic(raw, args.events)
        ordered, shuffled = tmp / "ordered.parquet", tmp / "shuffled.parquet"
        with duckdb.connect() as con:
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{raw}') ORDER BY {schema.EVENTS_ORDER}) TO '{ordered}' "
                f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {{'{schema.SORTED_KEY}': '{schema.EVENTS_ORDER}'}})"
            )
            con.execute(
                f"COPY (SELECT * FROM read_parquet('{raw}') ORDER BY hash(ts)) TO '{shuffled}' (FORMAT parquet)"
            )
        rows: list[tuple[str, float, object]] = []
        t, rep = timed(lambda: sessionize(ordered, tmp / "s1.parquet"), args.repeats)
        rows.append(("clickintent duckdb, ingest-ordered input", t, rep.sessions))  # type: ignore[attr-defined]
        print(rows[-1], flush=True)
        t, rep = timed(lambda: sessionize(shuffled, tmp / "s2.parquet"), args.repeats)
        rows.append(("clickintent duckdb, shuffled input", t, rep.sessions))  # type: ignore[attr-defined]
        print(rows[-1], flush=True)
        # pandas takes minutes (a Python list per column per session): timed once
        t, n = timed(lambda: pandas_sessionize(shuffled, tmp / "s3.parquet"), 1)
        rows.append(("pandas groupby (gap rule only), 1 run", t, n))
        print(rows[-1], flush=True)
        if args.spark:
            from clickintent.engines.spark import get_spark, sessionize_spark

            spark = get_spark("local[2]")
            spark.sparkContext.setLogLevel("ERROR")
            t, rep = timed(lambda: sessionize_spark(spark, shuffled, tmp / "s4.parquet"), 1)
            rows.append(("spark local[2]", t, rep.sessions))  # type: ignore[attr-defined]
            spark.stop()
        assert pq.read_metadata(tmp / "s1.parquet").num_rows == rows[0][2]
    pandas_t = rows[2][1]
    print(f"sessionize {args.events:,} events, median of {args.repeats} (Spark: 1 run)")
    print(f"{'implementation':45s} {'seconds':>8s} {'sessions':>10s} {'pandas / this':>14s}")
    for name, t, n in rows:
        print(f"{name:45s} {t:8.2f} {n:>10,} {pandas_t / t:13.1f}x")


if __name__ == "__main__":
    main()
