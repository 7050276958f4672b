"""CLI: `clickintent simulate`, a seeded bank world with ground truth (see docs/SIMULATOR.md)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from clickintent.cli.options import out_dir_option
from clickintent.sim import simulate


@click.command("simulate")
@click.option(
    "--visitors",
    default=2_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="People who visit the web site (each with 1+ cookies; a share are customers).",
)
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Length of the simulated window in days.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Random seed: the same seed, sizes, config and version give byte-identical files.",
)
@click.option(
    "--signal",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="How much recent web intent drives app tile clicks: 0 is the placebo world, 1 the strongest.",
)
@click.option(
    "--config",
    "config",
    default=None,
    metavar="FILE|NAME",
    help="JSON config changing the world (intent, device, referrer mix, extra pages); "
    "a bare name picks a shipped one, e.g. 'shifted'. Default: the built-in world.",
)
@out_dir_option("Directory for events.parquet and truth/.", default="out/sim")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate_cmd(
    visitors: int, days: int, seed: int, signal: float, config: str | None, out_dir: Path, quiet: bool
) -> None:
    """Generate raw web and app events plus the truth behind them.

    \b
    Writes OUT/events.parquet (raw events, messy like real logs: run `clickintent ingest` on it) and
    OUT/truth/: sessions, customers, app_home, conversions (Parquet), bad_rows.json, pii_bait.json,
    manifest.json.

    \b
    Example:
      clickintent simulate --visitors 20000 --days 30 --seed 1 --signal 0.5 --out out/sim
    """
    started = time.perf_counter()
    try:
        summary = simulate(
            out_dir, visitors=visitors, days=days, seed=seed, signal=signal, config=config, progress=not quiet
        )
    except FileNotFoundError as exc:
        from clickintent.sim.config import CONFIG_DIR

        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json"))) or "none"
        raise click.ClickException(
            f"--config {config}: no such file, nor a shipped world of that name (shipped: {shipped})"
        ) from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"simulate  seed {seed}, {days} days, signal {signal}, config {config or 'default'}")
    for line in summary.lines():
        click.echo(f"  {line}")
    click.echo(f"  {time.perf_counter() - started:.1f} s")
