"""Spark and DuckDB make the same rows from the same input (ingest and sessionize)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from clickintent import schema
from clickintent.engines.spark import ingest_spark, sessionize_spark
from clickintent.ingest import IngestOptions, ingest
from clickintent.sessionize import SessionizeOptions, sessionize

pytestmark = pytest.mark.integration


def messy_csv(path: Path) -> Path:
    t0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    lines = ["visitor,time,link,title,kind,platform,customer,query"]
    for v in range(30):
        for i in range(25):
            ts = t0 + timedelta(minutes=(i * 7 if v % 3 else i * 45) + v)
            kind = "login" if i == 3 and v % 4 == 0 else ("search" if i % 6 == 0 else "page_view")
            customer = f"C{v}" if kind == "login" else ""
            query = "email me at x@y.com" if kind == "search" and v == 5 else ("cd rates" if kind == "search" else "")
            link = f"https://www.bank.com/p/{(v + i) % 9}?appId={i}&utm_source=mail"
            platform = "app" if v == 7 else "web"
            lines.append(f"v{v},{ts.isoformat()},{link},Page {(v + i) % 9},{kind},{platform},{customer},{query}")
    lines.append(lines[5])  # a duplicate
    lines.append("v99,never,/x,T,click,web,,")  # unparseable ts
    lines.append("v98,2024-03-01T08:00:00Z,/x,T,click,moon,,")  # invalid platform
    path.write_text("\n".join(lines) + "\n")
    return path


MAPPING = {"visitor_id": "visitor", "ts": "time", "url": "link", "page_title": "title", "event_type": "kind",
           "customer_id": "customer", "search_query": "query"}  # fmt: skip


def read(path: Path, target: pa.Schema, key: list[str]) -> pa.Table:
    table = ds.dataset(path).to_table().select(target.names).cast(target)
    return table.sort_by([(k, "ascending") for k in key])


def test_spark_equals_duckdb(spark: Any, tmp_path: Path) -> None:
    src = messy_csv(tmp_path / "events.csv")
    options = IngestOptions(mapping=MAPPING)
    duck = ingest(src, tmp_path / "duck", options)
    sprk = ingest_spark(spark, src, tmp_path / "spark", options)
    assert (duck.rows_in, duck.rows_out, duck.quarantined, duck.duplicates) == (
        sprk.rows_in, sprk.rows_out, sprk.quarantined, sprk.duplicates)  # fmt: skip
    assert duck.quarantine_reasons == sprk.quarantine_reasons and duck.redactions == sprk.redactions
    order = schema.EVENTS.names
    assert read(tmp_path / "duck" / "events.parquet", schema.EVENTS, order).equals(
        read(tmp_path / "spark" / "events.parquet", schema.EVENTS, order)
    )
    session_options = SessionizeOptions(max_events=10)  # exercise the count cut as well
    a = sessionize(tmp_path / "duck" / "events.parquet", tmp_path / "duck" / "sessions.parquet", session_options)
    b = sessionize_spark(
        spark, tmp_path / "spark" / "events.parquet", tmp_path / "spark" / "sessions.parquet", session_options
    )
    assert (a.events, a.sessions, a.linked_sessions) == (b.events, b.sessions, b.linked_sessions)
    assert a.linked_sessions > 0
    duck_sessions = read(tmp_path / "duck" / "sessions.parquet", schema.SESSIONS, ["session_id"])
    spark_sessions = read(tmp_path / "spark" / "sessions.parquet", schema.SESSIONS, ["session_id"])
    assert duck_sessions.equals(spark_sessions)


def test_spark_equals_duckdb_on_real_data(spark: Any, tmp_path: Path, yoochoose_dir: Path) -> None:
    options = IngestOptions(mapping={"ts": "Time", "visitor_id": "SessionId", "url": "ItemId"})
    src = yoochoose_dir / "yoochoose-clicks-100k_test.txt"
    ingest(src, tmp_path / "duck", options)
    sessionize(tmp_path / "duck" / "events.parquet", tmp_path / "duck" / "sessions.parquet")
    sessionize_spark(spark, tmp_path / "duck" / "events.parquet", tmp_path / "spark-sessions.parquet")
    a = pq.read_table(tmp_path / "duck" / "sessions.parquet").cast(schema.SESSIONS).sort_by("session_id")
    assert a.equals(read(tmp_path / "spark-sessions.parquet", schema.SESSIONS, ["session_id"]))


def test_spark_keeps_rows_distinct_in_the_source_and_fails_when_it_keeps_nothing(spark: Any, tmp_path: Path) -> None:
    """Issue 16 on the Spark engine: a duplicate is a repeated source row (an unmapped offset column makes rows
    distinct), and a run whose every timestamp is unreadable fails like DuckDB's, naming reason and examples."""
    from clickintent.ingest import IngestError

    mapping = {"visitor_id": "Visitor", "ts": "Day", "url": "Item"}
    rows = ["a,2024-03-01,1,/i1", "a,2024-03-01,2,/i1", "a,2024-03-01,2,/i1"]
    (tmp_path / "offsets.csv").write_text("Visitor,Day,Offset,Item\n" + "\n".join(rows) + "\n")
    report = ingest_spark(spark, tmp_path / "offsets.csv", tmp_path / "o", IngestOptions(mapping=mapping))
    assert (report.rows_in, report.rows_out, report.duplicates) == (3, 2, 1)
    (tmp_path / "bad.csv").write_text("visitor_id,ts,url\n" + "".join(f"v{i},day {i},/p\n" for i in range(5)))
    with pytest.raises(IngestError, match=r"no row was kept: 5 of 5 quarantined as 'unparseable ts' \(e\.g\. 'day"):
        ingest_spark(spark, tmp_path / "bad.csv", tmp_path / "b", IngestOptions())
    assert not (tmp_path / "b" / "events.parquet").exists()
    assert (tmp_path / "b" / "ingest_report.json").exists()
