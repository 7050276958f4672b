"""CLI: `clickintent cut`: sessions before their first application page (the input of conversion
prediction). The work is `clickintent.cut.cut_sessions`; this module reads, writes and prints."""

from __future__ import annotations

from pathlib import Path

import click
import pyarrow.parquet as pq

from clickintent.cli.errors import StepInput
from clickintent.cut import DEFAULT_PATTERN
from clickintent.inputs import SESSIONS


@click.command("cut")
@click.argument("sessions", type=StepInput(SESSIONS, "cut"))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="sessions.parquet to write."
)
@click.option("--before", "pattern", default=DEFAULT_PATTERN, show_default=True,
              help="Regex on the page: each session keeps its events before the first match.")  # fmt: skip
def cut_cmd(sessions: Path, out: Path, pattern: str) -> None:
    """Cut each session of SESSIONS before its first matching page (default: the first application step).

    A model that predicts applications may only see the visit before the application starts; sessions
    that begin on a matching page are dropped and counted.
    """
    from clickintent.cut import cut_sessions

    table, report = cut_sessions(pq.read_table(sessions), pattern)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    for line in report.lines():
        click.echo(line)
    click.echo(f"wrote {out}")
