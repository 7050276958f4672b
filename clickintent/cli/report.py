"""CLI: `clickintent report`: one self-contained HTML page about a run's outputs. Which files make up a
run is `clickintent.run.RunLayout`; the page is `clickintent.report.write_run_report`."""

from __future__ import annotations

from pathlib import Path

import click

from clickintent.report import write_run_report
from clickintent.run import RunLayout


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--sim",
    "sim_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The simulator's output directory, for the ground-truth sections (default: RUN_DIR/sim if any).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write. Default: RUN_DIR/report.html.",
)
def report_cmd(run_dir: Path, sim_dir: Path | None, out: Path | None) -> None:
    """Write one self-contained HTML page about the outputs in RUN_DIR.

    RUN_DIR is either a `clickintent demo` output directory (data/, taxonomy.json, labels-llm.parquet,
    labels-distilled.parquet, distill.json, evaluation.json) or a directory holding ingest_report.json,
    sessions.parquet and whichever of embeddings.parquet, taxonomy.json, labels.parquet, distill.json and
    evaluation.json exist. Missing parts are listed as not available.
    """
    run = RunLayout.find(run_dir)
    if not run.holds_outputs():
        raise click.ClickException(
            f"{run_dir} holds no clickintent outputs (none of ingest_report.json, sessions.parquet, "
            "embeddings.parquet, taxonomy.json, labels.parquet, evaluation.json); give the folder of a run: "
            "what `clickintent demo --out DIR` wrote, or one holding ingest_report.json and sessions.parquet"
        )
    click.echo(f"wrote {write_run_report(run, out, sim_dir=sim_dir)}")
