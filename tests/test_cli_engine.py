"""One `--engine` option across the CLI (issue 22): the same name, values and default on every command with a
Spark path, and `duckdb`, the data commands' old value, still runs the in-process path."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from clickintent.cli import main

SPARK_COMMANDS = ("ingest", "sessionize", "embed", "label")


@pytest.mark.parametrize("command", SPARK_COMMANDS)
def test_every_spark_command_has_the_same_engine_option(command: str) -> None:
    options = {p.name: p for p in main.commands[command].params if isinstance(p, click.Option)}
    engine, master = options["engine"], options["spark_master"]
    assert engine.opts == ["--engine"] and isinstance(engine.type, click.Choice)
    assert list(engine.type.choices) == ["local", "spark"] and engine.default == "local"
    assert master.opts == ["--spark-master"] and master.default == "local[*]"
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--engine [local|spark]" in result.output


@pytest.mark.parametrize("value", ["local", "duckdb"])
def test_local_and_its_old_name_run_in_process(value: str, tmp_path: Path) -> None:
    src = tmp_path / "raw.csv"
    src.write_text("ts,visitor_id,url\n1700000000,v1,https://bank.example/a\n1700000060,v1,https://bank.example/b\n")
    runner = CliRunner()
    result = runner.invoke(main, ["ingest", str(src), "--out", str(tmp_path / "run"), "--engine", value])
    assert result.exit_code == 0, result.output
    # The DuckDB path writes one events.parquet file (Spark writes a directory of part files).
    assert (tmp_path / "run" / "events.parquet").is_file()
    result = runner.invoke(main, ["sessionize", str(tmp_path / "run"), "--engine", value, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["engine"] == "duckdb"


def test_an_unknown_engine_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sessionize", str(tmp_path), "--engine", "pandas"])
    assert result.exit_code == 2
    assert "'pandas' is not one of 'local', 'spark'" in result.output
