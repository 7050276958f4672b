"""Ingest: formats, column mapping, timestamps, redaction, and bad input that loses nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clickintent import schema
from clickintent.ingest import IngestError, IngestOptions, ingest

HEADER = ["Visitor", "When", "Link", "Title", "Kind", "Query"]
ROWS = [
    ["a", "2024-03-01T10:00:00Z", "https://www.bank.com/cards?utm_source=x", "Cards", "page_view", ""],
    ["a", "2024-03-01T10:01:00Z", "https://www.bank.com/search", "Search", "search", "mail bob@example.com"],
    ["b", "2024-03-01T11:00:00+01:00", "https://www.bank.com/apply/step-2?appId=88121", "Apply", "form_start", ""],
    [
        "b",
        "2024-03-01 11:30:00",
        "https://www.bank.com/apply/step-2?appId=90412&token=s3cr3tvalue1",
        "Apply",
        "click",
        "",
    ],
]
MAPPING = {"visitor_id": "Visitor", "ts": "When", "url": "Link", "page_title": "Title", "event_type": "Kind",
           "search_query": "Query"}  # fmt: skip


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER, delim: str = ",") -> Path:
    path.write_text("\n".join(delim.join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


def read_events(out: Path) -> pa.Table:
    return pq.read_table(out / "events.parquet")


def read_quarantine(out: Path) -> list[dict[str, object]]:
    return pq.read_table(out / "quarantine.parquet").to_pylist()


def test_csv_maps_redacts_normalises_and_reconciles(tmp_path: Path) -> None:
    report = ingest(write_csv(tmp_path / "in.csv", ROWS), tmp_path / "out", IngestOptions(mapping=MAPPING))
    assert (report.rows_in, report.rows_out, report.quarantined, report.duplicates) == (4, 4, 0, 0)
    events = read_events(tmp_path / "out")
    assert events.schema.names == schema.EVENTS.names
    rows = events.to_pylist()
    assert {r["page"] for r in rows} >= {"www.bank.com/apply/step-2?appId={num}", "www.bank.com/cards"}
    assert "[EMAIL]" in rows[1]["search_query"] and "bob@example.com" not in str(rows)
    assert "s3cr3tvalue1" not in str(rows)
    assert report.redactions == {"email": 1, "secret": 1}
    # ISO with a zone is converted to UTC; without a zone it is taken as UTC
    b_times = sorted(r["ts"] for r in rows if r["visitor_id"] == "b")
    assert b_times == [datetime(2024, 3, 1, 10, 0, tzinfo=UTC), datetime(2024, 3, 1, 11, 30, tzinfo=UTC)]
    assert json.loads((tmp_path / "out" / "ingest_report.json").read_text())["reconciles"] is True


def test_all_formats_give_the_same_events(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "in.csv", ROWS)
    tsv_path = write_csv(tmp_path / "in.tsv", ROWS, delim="\t")
    records = [dict(zip(HEADER, r, strict=True)) for r in ROWS]
    jsonl_path = tmp_path / "in.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    parquet_path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet_path)
    outputs = []
    for i, path in enumerate([csv_path, tsv_path, jsonl_path, parquet_path]):
        ingest(path, tmp_path / f"o{i}", IngestOptions(mapping=MAPPING))
        outputs.append(read_events(tmp_path / f"o{i}"))
    assert all(t.equals(outputs[0]) for t in outputs[1:])


def test_missing_column_names_it_and_lists_what_was_found(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as err:
        ingest(write_csv(tmp_path / "in.csv", ROWS), tmp_path / "out")
    message = str(err.value)
    assert "'visitor_id'" in message and "Columns found" in message and "Visitor" in message


def test_wrong_delimiter_suggests_the_right_one(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ROWS, delim=";")
    with pytest.raises(IngestError, match="try --delimiter ';'"):
        ingest(path, tmp_path / "out", IngestOptions(mapping=MAPPING, delimiter=","))
    # sniffed, it just works
    assert ingest(path, tmp_path / "ok", IngestOptions(mapping=MAPPING)).rows_out == 4


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(IngestError, match="is empty"):
        ingest(tmp_path / "empty.csv", tmp_path / "out")


def test_header_only_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="holds no rows"):
        ingest(write_csv(tmp_path / "in.csv", []), tmp_path / "out", IngestOptions(mapping=MAPPING))
    assert not (tmp_path / "out").exists()


def test_bad_rows_are_quarantined_with_reasons_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    good = "a,2024-03-01T10:00:00Z,/x,T,click,"
    lines = [
        ",".join(HEADER),
        good,
        good,  # an exact duplicate
        "a,not-a-time,/x,T,click,",
        ",2024-03-01T10:00:00Z,/x,T,click,",  # no visitor
        "a,2024-03-01T10:00:00Z,,T,click,",  # no url
        "a,2024-03-01T10:00:00Z,/x," + "T" * 1_000_000 + ",click,",  # a 1 MB title
        "a,2024-03-01T10:00:00Z,/x,T,click,,extra",  # too many columns
        "a,2024-03-01T10:02:00Z,/x,call 555-123-4567,click",  # too few columns, with PII in it
    ]
    data = ("\n".join(lines) + "\n").encode() + b"a,2024-03-01T10:00:00Z,/\xff\xfe,T,click,\n"
    path.write_bytes(data)
    report = ingest(path, tmp_path / "out", IngestOptions(mapping=MAPPING))
    assert report.rows_in == 9
    assert report.rows_out == 1 and report.duplicates == 1 and report.quarantined == 7
    assert report.rows_in == report.rows_out + report.quarantined + report.duplicates
    assert report.quarantine_reasons == {
        "unparseable ts": 1, "missing visitor_id": 1, "missing url": 1, "page_title longer than 2048 chars": 1,
        "too many columns": 1, "too few columns": 1, "invalid UTF-8": 1,
    }  # fmt: skip
    quarantine = read_quarantine(tmp_path / "out")
    assert len(quarantine) == 7
    assert all(len(str(q["raw"])) < 10_000 for q in quarantine)  # the 1 MB title is cut in quarantine
    assert "555-123-4567" not in str(quarantine)  # quarantine is redacted too


def test_mixed_types_in_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        {"visitor_id": 17, "ts": 1709287200, "url": "/a", "dwell_ms": 1500},
        {"visitor_id": "v2", "ts": "2024-03-01T10:00:00Z", "url": "/b", "dwell_ms": "2000"},
        {"visitor_id": "v3", "ts": 1709287200, "url": "/c", "dwell_ms": "soon"},
        {"visitor_id": "v4", "ts": 1709287200, "url": {"nested": True}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n{not json\n[1, 2]\n")
    report = ingest(path, tmp_path / "out")
    assert report.rows_in == 6 and report.reconciles
    events = {r["visitor_id"]: r for r in read_events(tmp_path / "out").to_pylist()}
    assert set(events) == {"17", "v2", "v4"}
    assert events["17"]["dwell_ms"] == 1500 and events["v2"]["dwell_ms"] == 2000
    assert events["17"]["ts"] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert set(report.quarantine_reasons) == {
        "invalid dwell_ms",
        "malformed JSON: Expecting property name enclosed in double quotes",
        "JSON line is not an object",
    }


@pytest.mark.parametrize(
    ("values", "unit"), [(["1709287200", "1709287260"], "s"), (["1709287200000", "1709287260000"], "ms")]
)
def test_epoch_units_are_detected(tmp_path: Path, values: list[str], unit: str) -> None:
    rows = [["a", v, "/x", "T", "click", ""] for v in values]
    report = ingest(write_csv(tmp_path / "in.csv", rows), tmp_path / "out", IngestOptions(mapping=MAPPING))
    assert report.ts_unit == unit
    assert read_events(tmp_path / "out").column("ts")[0].as_py() == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_epoch_unit_can_be_overridden(tmp_path: Path) -> None:
    rows = [["a", "1709287200", "/x", "T", "click", ""]]
    # read as milliseconds that is January 1970: outside the plausible range, so quarantined, and with no
    # row left the run fails naming the reason, the value and the option
    with pytest.raises(IngestError, match=r"no row was kept.*ts out of range.*'1709287200'.*--ts-unit"):
        ingest(write_csv(tmp_path / "in.csv", rows), tmp_path / "out", IngestOptions(mapping=MAPPING, ts_unit="ms"))
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["quarantine_reasons"] == {"ts out of range 1990..2100 (check --ts-unit)": 1}
    assert not (tmp_path / "out" / "events.parquet").exists()


def test_source_session_ids_are_kept(tmp_path: Path) -> None:
    rows = [["a", "2024-03-01T10:00:00Z", "/x", "T", "click", "", "S1"]]
    path = write_csv(tmp_path / "in.csv", rows, header=[*HEADER, "Sess"])
    ingest(path, tmp_path / "out", IngestOptions(mapping=MAPPING | {"session_id": "Sess"}))
    assert read_events(tmp_path / "out").column("session_id").to_pylist() == ["S1"]


def test_large_input_under_a_small_memory_limit(tmp_path: Path) -> None:
    """Out of core: DuckDB spills to disk instead of exceeding its memory limit."""
    n = 200_000
    rows = [[f"v{i % 5000}", str(1709287200 + i), f"https://www.bank.com/p/{i % 300}", f"Title {i % 300}", "click", ""]
            for i in range(n)]  # fmt: skip
    path = write_csv(tmp_path / "big.csv", rows)
    options = IngestOptions(mapping=MAPPING, memory_limit="64MB", batch_rows=20_000, threads=1)
    report = ingest(path, tmp_path / "out", options)
    assert report.rows_out == n and report.reconciles


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2019-10-01 00:00:00 UTC", "2019-10-01T00:00:00"),  # how BigQuery writes a TIMESTAMP as text
        ("2019-10-01T00:00:00Z", "2019-10-01T00:00:00"),
        ("2019-10-01 02:00:00+02:00", "2019-10-01T00:00:00"),
        ("2019-10-01T02:00:00+0200", "2019-10-01T00:00:00"),
        ("2019-10-01 05:30:00 +05:30", "2019-10-01T00:00:00"),
        ("2019-09-30T22:00:00-02", "2019-10-01T00:00:00"),
        ("2019-10-01 00:00:00.123456 UTC", "2019-10-01T00:00:00.123456"),
        ("2019-10-01T00:00:00,5Z", "2019-10-01T00:00:00.5"),
        ("2019-10-01 00:00 GMT", "2019-10-01T00:00:00"),
        ("2019-10-01", "2019-10-01T00:00:00"),  # a date alone is midnight UTC
        ("2019-10-01T00:00:00", "2019-10-01T00:00:00"),  # no zone means UTC
    ],
)
def test_text_timestamps_in_the_forms_exports_write(tmp_path: Path, text: str, utc: str) -> None:
    quoted = f'"{text}"' if "," in text else text
    rows = [["a", quoted, "/x", "T", "click", ""], ["b", "2019-10-01T00:00:00Z", "/y", "T", "click", ""]]
    report = ingest(write_csv(tmp_path / "in.csv", rows), tmp_path / "out", IngestOptions(mapping=MAPPING))
    assert report.quarantined == 0, report.quarantine_reasons
    got = {r["visitor_id"]: r["ts"] for r in read_events(tmp_path / "out").to_pylist()}
    assert got["a"] == datetime.fromisoformat(utc).replace(tzinfo=UTC)


def test_most_rows_bad_for_one_reason_is_reported_with_examples_and_the_fix(tmp_path: Path) -> None:
    rows = [["a", f"day {i}", "/x", "T", "click", ""] for i in range(6)]
    rows += [["b", f"2024-03-01T10:0{i}:00Z", "/x", "T", "click", ""] for i in range(4)]
    report = ingest(write_csv(tmp_path / "in.csv", rows), tmp_path / "out", IngestOptions(mapping=MAPPING))
    assert report.rows_out == 4
    assert report.problem == (
        "6 of 10 rows quarantined as 'unparseable ts' (e.g. 'day 0', 'day 1', 'day 2'); map the column that "
        "holds the time with --map ts=SOURCE, or set --ts-unit"
    )
    few = ingest(write_csv(tmp_path / "few.csv", rows[4:]), tmp_path / "few", IngestOptions(mapping=MAPPING))
    assert few.quarantined == 2 and few.problem is None  # a minority of bad rows is no problem to report


def test_duplicates_are_repeated_source_rows_not_rows_that_map_alike(tmp_path: Path) -> None:
    """An item-view log whose time is a date plus an offset column: rows that differ only in the offset (not
    mapped) are distinct events and are kept; a repeated line is a duplicate (issue 16)."""
    header = ["Visitor", "Day", "Offset", "Item"]
    rows = [["a", "2024-03-01", "1", "/i1"], ["a", "2024-03-01", "2", "/i1"], ["a", "2024-03-01", "2", "/i1"]]
    mapping = {"visitor_id": "Visitor", "ts": "Day", "url": "Item"}
    path = write_csv(tmp_path / "in.csv", rows, header=header)
    report = ingest(path, tmp_path / "out", IngestOptions(mapping=mapping))
    assert (report.rows_in, report.rows_out, report.duplicates) == (3, 2, 1)
    assert read_events(tmp_path / "out").num_rows == 2
