"""CLI: `clickintent demo` (every step on a simulated world) and `clickintent report`.

The demo is a script of the very commands a user would type, each printed before it runs, so its
output doubles as a tutorial. Steps whose outputs already exist are reused (the LLM answer cache and
the text-vector cache make the LLM and text steps cheap on a second run); `--fresh` starts over.
"""

from __future__ import annotations

import shlex
import shutil
import time
from pathlib import Path

import click

from clickintent.report import write_report


def _run(args: list[str], outputs: list[Path], reuse: bool) -> float:
    """Run one clickintent command in this process; skip it when reusing and its outputs exist."""
    from clickintent.cli import main

    line = "clickintent " + shlex.join(args)
    if reuse and outputs and all(p.exists() for p in outputs):
        click.secho(f"\n$ {line}   # outputs exist, reused", fg="cyan")
        return 0.0
    click.secho(f"\n$ {line}", fg="cyan", bold=True)
    started = time.perf_counter()
    try:
        main.main(args=args, prog_name="clickintent", standalone_mode=False)
    except click.ClickException as exc:
        raise click.ClickException(f"demo step failed: {line}\n{exc.format_message()}") from exc
    return time.perf_counter() - started


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("out"),
              show_default=True, help="Directory for every output; the report is OUT/report.html.")
@click.option("--visitors", default=1500, show_default=True, type=click.IntRange(min=50),
              help="People in the simulated world.")
@click.option("--days", default=14, show_default=True, type=click.IntRange(min=1), help="Days simulated.")
@click.option("--seed", default=0, show_default=True, help="Seed for the world and every model.")
@click.option("--signal", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="How much web intent drives app behaviour (0 = placebo world).")
@click.option("--train-minutes", default=3.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Time budget for training the encoder.")
@click.option("--label-sample", default=200, show_default=True, type=click.IntRange(min=10),
              help="Sessions the local LLM labels (about 1-3 s each on one core).")
@click.option("--fresh", is_flag=True, help="Delete OUT first instead of reusing what is there.")
def demo_cmd(out_dir: Path, visitors: int, days: int, seed: int, signal: float, train_minutes: float,
             label_sample: int, fresh: bool) -> None:  # fmt: skip
    """Run the whole pipeline on a simulated bank and write OUT/report.html.

    simulate -> ingest -> sessionize -> train -> embed -> taxonomy build (cluster mode, local Gemma)
    -> taxonomy label -> report. Every step is printed as the command you would type yourself.
    """
    if fresh:
        shutil.rmtree(out_dir, ignore_errors=True)
    reuse = not fresh
    sim, data, bundle = out_dir / "sim", out_dir / "data", out_dir / "bundle"
    sessions, embeddings = data / "sessions.parquet", data / "embeddings.parquet"
    taxonomy, labels = out_dir / "taxonomy.json", out_dir / "labels.parquet"
    cache = out_dir / "llm-cache.sqlite"
    steps: list[tuple[str, list[str], list[Path]]] = [
        ("simulate", ["simulate", "--visitors", str(visitors), "--days", str(days), "--seed", str(seed),
                      "--signal", str(signal), "--out", str(sim)], [sim / "events.parquet"]),
        ("ingest", ["ingest", str(sim / "events.parquet"), "--out", str(data)], [data / "events.parquet"]),
        ("sessionize", ["sessionize", str(data / "events.parquet"), "--out", str(sessions)], [sessions]),
        ("train", ["train", str(sessions), "--out", str(bundle), "--max-minutes", str(train_minutes),
                   "--seed", str(seed)], [bundle / "manifest.json"]),
        ("embed", ["embed", str(sessions), "--bundle", str(bundle), "--out", str(embeddings)], [embeddings]),
        ("taxonomy build", ["taxonomy", "build", str(sessions), "--out", str(taxonomy), "--embeddings",
                            str(embeddings), "--seed", str(seed), "--llm-cache", str(cache)], [taxonomy]),
        ("taxonomy label", ["taxonomy", "label", str(sessions), "--taxonomy", str(taxonomy), "--out", str(labels),
                            "--sample", str(label_sample), "--seed", str(seed), "--llm-cache", str(cache)], [labels]),
    ]  # fmt: skip
    timings = []
    for name, args, outputs in steps:
        timings.append((name, _run(args, outputs, reuse)))
    report = write_report(data, out_dir / "report.html", sim_dir=sim, taxonomy=taxonomy, labels=labels)
    click.secho("\nclickintent demo: done", bold=True)
    for name, seconds in timings:
        click.echo(f"  {name:16s} {'reused' if seconds == 0 else f'{seconds:7.1f} s'}")
    click.echo(f"  report           {report}  (open it in a browser)")
    click.echo("  Everything above ran on SIMULATED data (docs/SIMULATOR.md).")


@click.command("report")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--sim", "sim_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The simulator's output directory, for the ground-truth sections.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write. Default: RUN_DIR/report.html.")
def report_cmd(run_dir: Path, sim_dir: Path | None, out: Path | None) -> None:
    """Write one self-contained HTML page about the outputs in RUN_DIR."""
    path = write_report(run_dir, out or run_dir / "report.html", sim_dir=sim_dir)
    click.echo(f"wrote {path}")
