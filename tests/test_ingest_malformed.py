"""Malformed files lose nothing in silence (issue 17): each bad value is quarantined with its reason, the rest
of the file is kept, and "rows in" is checked against what the file holds, counted apart from the parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import clickintent.ingest as ingest_module
from clickintent.ingest import IngestError, IngestOptions, IngestReport, ingest

T0 = "2025-03-01T09:00:00Z"


def reasons(out: Path) -> dict[int | None, str]:
    q = pq.read_table(out / "quarantine.parquet").to_pylist()
    return {r["source_line"] if r["source_line"] is not None else r["source_row"]: r["reason"] for r in q}


def check_counts(report: IngestReport, rows: int) -> None:
    """Every record of the file is in the count, and the reader accounted for every line (or row) of it."""
    assert report.rows_in == rows
    assert report.reconciles and report.accounted == report.counted


def test_an_unterminated_quote_quarantines_its_line_and_keeps_the_rest(tmp_path: Path) -> None:
    """The issue's reproduction: row 11 of 100 opens a quote it never closes."""
    rows = [f"v{i},{T0},https://b.example/p{i}\n" for i in range(100)]
    rows[10] = f'v10,{T0},"https://b.example/p10\n'
    (tmp_path / "q.csv").write_text("visitor_id,ts,url\n" + "".join(rows))
    report = ingest(tmp_path / "q.csv", tmp_path / "out")
    check_counts(report, 100)
    assert (report.rows_out, report.quarantined, report.counted) == (99, 1, 101)
    assert reasons(tmp_path / "out") == {12: "unterminated quote"}  # line 12 of the file: row 11 after the header


def test_a_quoted_value_may_span_lines(tmp_path: Path) -> None:
    text = f'visitor_id,ts,url,page_title\nv1,{T0},/a,"two\nlines"\nv2,{T0},/b,"say ""hi"""\nv3,{T0},/c,x"y\n'
    (tmp_path / "m.csv").write_text(text)
    report = ingest(tmp_path / "m.csv", tmp_path / "out")
    check_counts(report, 3)
    titles = {r["visitor_id"]: r["page_title"] for r in pq.read_table(tmp_path / "out" / "events.parquet").to_pylist()}
    # the record spans two lines; its newline is a control character, which redaction reads as a space (pii.decode)
    assert titles == {"v1": "two lines", "v2": 'say "hi"', "v3": 'x"y'}


def test_a_misplaced_quote_is_one_bad_line(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(f'visitor_id,ts,url\nv1,{T0},"/a"b\nv2,{T0},/b\n')
    report = ingest(tmp_path / "m.csv", tmp_path / "out")
    check_counts(report, 2)
    assert reasons(tmp_path / "out") == {2: "misplaced quote"}


def test_cr_only_line_endings(tmp_path: Path) -> None:
    rows = "".join(f"v{i},{T0},/p{i}\r" for i in range(5))
    (tmp_path / "cr.csv").write_bytes(("visitor_id,ts,url\r" + rows).encode())
    report = ingest(tmp_path / "cr.csv", tmp_path / "out")
    check_counts(report, 5)
    assert report.rows_out == 5 and report.counted == 6


def test_jsonl_values_too_deep_too_long_or_infinite(tmp_path: Path) -> None:
    good = [{"visitor_id": f"v{i}", "ts": T0, "url": f"/p{i}"} for i in range(4)]
    lines = [json.dumps(r) for r in good]
    head = f'{{"ts": "{T0}", "visitor_id": '
    lines.insert(1, head + '"deep", "url": ' + "[" * 100_000 + "]" * 100_000 + "}")
    lines.insert(2, head + '"long", "url": "/x", "n": 1' + "0" * 5000 + "}")
    lines.insert(3, head + '"inf", "url": "/x", "dwell_ms": Infinity}')
    (tmp_path / "e.jsonl").write_text("\n".join(lines) + "\n")
    report = ingest(tmp_path / "e.jsonl", tmp_path / "out")
    check_counts(report, 7)
    assert report.rows_out == 4
    assert report.quarantine_reasons == {
        "JSON nested too deeply": 1, "JSON number too long to read": 1, "invalid dwell_ms": 1,
    }  # fmt: skip


def test_parquet_with_nested_binary_infinite_and_nanosecond_values(tmp_path: Path) -> None:
    n = 6
    ts = pd.Series(pd.to_datetime([T0] * n, utc=True)) + pd.to_timedelta([0, 999, 2, 3, 4, 1_000_999], unit="ns")
    table = pa.table(
        {
            "visitor_id": [f"v{i}" for i in range(n)],
            "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),  # pandas writes nanoseconds
            "url": pa.array([b"/a", b"/b", b"/\xff\xfe", b"/d", b"/e", b"/f"], pa.binary()),
            "dwell_ms": pa.array([1.0, 2.0, 3.0, float("inf"), 1e30, 6.0]),
            "tags": pa.array([["x"], ["y"], [], None, ["z"], ["w"]], pa.list_(pa.string())),
            "meta": pa.array([{"a": i} for i in range(n)], pa.struct([("a", pa.int64())])),
        }
    )
    pq.write_table(table, tmp_path / "e.parquet")
    report = ingest(tmp_path / "e.parquet", tmp_path / "out", IngestOptions(mapping={}))
    check_counts(report, n)
    assert report.counted_as == "rows" and report.counted == n
    assert reasons(tmp_path / "out") == {3: "invalid UTF-8 in url", 4: "invalid dwell_ms", 5: "invalid dwell_ms"}
    events = pq.read_table(tmp_path / "out" / "events.parquet").to_pylist()
    assert sorted(e["visitor_id"] for e in events) == ["v0", "v1", "v5"]
    # nanoseconds floored to microseconds, exactly (999 ns is 0 us, not the 1 us float64 nanoseconds round to)
    t0 = datetime(2025, 3, 1, 9, tzinfo=UTC)
    assert {e["visitor_id"]: e["ts"] for e in events} == {"v0": t0, "v1": t0, "v5": t0 + timedelta(microseconds=1000)}


@pytest.mark.parametrize("content", [b"", b"\x00\x01 not parquet \xff" * 100], ids=["empty", "random bytes"])
def test_a_parquet_file_that_is_not_one(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "e.parquet").write_bytes(content)
    with pytest.raises(IngestError, match=r"is empty|not a readable Parquet file"):
        ingest(tmp_path / "e.parquet", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_reader_that_stops_early_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the old CSV reader did (it stopped at a bad quote and reported the rows it had): the count of the
    file's own lines catches it, and nothing is published."""
    (tmp_path / "e.csv").write_text("visitor_id,ts,url\n" + "".join(f"v{i},{T0},/p{i}\n" for i in range(30)))
    real = ingest_module.iter_batches
    monkeypatch.setattr(ingest_module, "iter_batches", lambda *a, **k: iter([next(real(*a, **k))]))
    with pytest.raises(IngestError, match="accounted for 11 of the file's 31 lines"):
        ingest(tmp_path / "e.csv", tmp_path / "out", IngestOptions(batch_rows=10))
    assert not (tmp_path / "out" / "events.parquet").exists()
    assert json.loads((tmp_path / "out" / "ingest_report.json").read_text())["counted"] == 31


def test_ingest_replaces_the_folders_a_spark_run_left(tmp_path: Path) -> None:
    """`--engine spark` writes events.parquet and quarantine.parquet as folders of part files; a DuckDB run into
    the same --out replaces them instead of failing on a folder."""
    (tmp_path / "e.csv").write_text("visitor_id,ts,url\n" + "".join(f"v{i},{T0},/p{i}\n" for i in range(3)) + "v,x,/\n")
    for name in ("events.parquet", "quarantine.parquet"):
        (tmp_path / "out" / name).mkdir(parents=True)
        (tmp_path / "out" / name / "part-0.parquet").write_bytes(b"old")
    report = ingest(tmp_path / "e.csv", tmp_path / "out")
    assert (report.rows_out, report.quarantined) == (3, 1)
    assert pq.read_table(tmp_path / "out" / "events.parquet").num_rows == 3
