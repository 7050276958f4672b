"""CLI: `clickintent label`: every session -> labels.parquet (source distilled), in-process or on Spark.
The work is `clickintent.distill.label`; this module picks the engine and prints the label counts."""

from __future__ import annotations

import time
from pathlib import Path

import click
import pyarrow.parquet as pq

from clickintent.cli.errors import StepInput
from clickintent.cli.options import device_option, engine_options
from clickintent.inputs import EMBEDDINGS, SESSIONS


@click.command("label")
@click.argument("sessions", type=StepInput(SESSIONS, "label"))
@click.option(
    "--bundle",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Bundle with encoder and classifier (`clickintent distill`).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="labels.parquet to write.")
@click.option(
    "--embeddings",
    type=StepInput(EMBEDDINGS, "label"),
    default=None,
    help="Precomputed embeddings of SESSIONS (same bundle): skip the encoder.",
)
@engine_options("stream in this process", "mapInArrow, written as a Parquet directory")
@click.option("--chunk-rows", default=16_384, show_default=True, help="Sessions per chunk (bounds memory).")
@device_option("Where to run the encoder.")
def label_cmd(sessions: Path, bundle: Path, out: Path, embeddings: Path | None, engine: str, spark_master: str,
              chunk_rows: int, device: str) -> None:  # fmt: skip
    """Label every session of SESSIONS with the distilled classifier (labels.parquet, source distilled)."""
    from collections import Counter

    from clickintent.bundle import BundleError

    t0 = time.perf_counter()
    try:
        if engine == "spark":
            from clickintent.engines.spark import get_spark
            from clickintent.engines.spark_bundle import label_spark

            spark = get_spark(spark_master)
            label_spark(spark, sessions, bundle, out)
            table = pq.read_table(out)
        else:
            from clickintent.distill.label import label_file

            label_file(sessions, bundle, out, embeddings=embeddings, device=device, chunk_rows=chunk_rows,
                       progress=True)  # fmt: skip
            table = pq.read_table(out)
    except BundleError as exc:
        raise click.ClickException(str(exc)) from exc
    seconds = time.perf_counter() - t0
    counts = Counter(table.column("intent").to_pylist())
    click.echo(f"labelled {table.num_rows:,} sessions in {seconds:.1f}s ({table.num_rows / max(seconds, 1e-9):,.0f}/s)")
    for label, n in counts.most_common(8):
        click.echo(f"  {label:40s} {n:8,d} {n / max(1, table.num_rows):6.1%}")
    click.echo(f"wrote {out}")
