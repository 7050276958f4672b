"""End to end through the CLI on the real YOOCHOOSE sample: ingest then sessionize."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from clickintent.cli import main


def test_yoochoose_ingest_and_sessionize(tmp_path: Path, yoochoose_dir: Path) -> None:
    runner = CliRunner()
    src = yoochoose_dir / "yoochoose-clicks-100k_train_full.txt"
    result = runner.invoke(
        main, ["ingest", str(src), "--out", str(tmp_path), "--map", "ts=Time", "--map", "visitor_id=SessionId",
               "--map", "url=ItemId"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reconciles" in result.output
    report = json.loads((tmp_path / "ingest_report.json").read_text())
    assert report["rows_in"] == 70_278 and report["ts_unit"] == "s"
    assert report["rows_in"] == report["rows_out"] + report["quarantined"] + report["duplicates"]

    result = runner.invoke(main, ["sessionize", str(tmp_path / "events.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    sessions = pq.read_table(tmp_path / "sessions.parquet")
    assert summary["events"] == report["rows_out"] == sum(sessions.column("n_events").to_pylist())
    # the sample has 17,794 source sessions; a 30-minute gap splits a few of them
    assert 17_794 <= sessions.num_rows < 17_794 * 1.1


def test_missing_mapping_is_a_clear_error(tmp_path: Path, yoochoose_dir: Path) -> None:
    src = yoochoose_dir / "yoochoose-clicks-100k_test.txt"
    result = CliRunner().invoke(main, ["ingest", str(src), "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "Columns found: ['SessionId', 'ItemId', 'Time']" in result.output and "--map" in result.output


def test_help_lists_every_step() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "sessionize"):
        assert command in result.output
