"""CLI: `clickintent evaluate`: do web sessions help the app? Both downstream tasks, every feature set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from clickintent.cli.errors import StepInput, TaxonomyFile
from clickintent.inputs import EMBEDDINGS, LABELS, SESSIONS

OptPath = click.Path(exists=True, dir_okay=False, path_type=Path)


def _read(path: Path | None) -> pa.Table | None:
    return None if path is None else pq.read_table(path)


@click.command("evaluate")
@click.argument("sessions", type=StepInput(SESSIONS, "evaluate"))
@click.option(
    "--sim",
    "sim_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Simulator output: customers, app views, conversions and true intents come from its truth/.",
)
@click.option("--customers", type=OptPath, default=None, help="Customers table (production baseline features).")
@click.option(
    "--app-views", type=OptPath, default=None, help="App home-page views: customer_id, ts, tiles_shown, tile_clicked."
)
@click.option("--conversions", type=OptPath, default=None, help="Applications: visitor_id, product, ts.")
@click.option("--embeddings", type=StepInput(EMBEDDINGS), default=None, help="embeddings.parquet of SESSIONS.")
@click.option("--llm-labels", type=StepInput(LABELS), default=None, help="LLM labels.parquet (a sample).")
@click.option(
    "--distilled-labels",
    type=StepInput(LABELS),
    default=None,
    help="Distilled labels.parquet (every session).",
)
@click.option("--taxonomy", "taxonomy_path", type=TaxonomyFile(), default=None,
              help="taxonomy.json: the label columns.")  # fmt: skip
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1), help="Splits to average over.")
@click.option("--lookback-days", default=14.0, show_default=True, help="Tile ranking: how old a web session may be.")
@click.option("--window-days", default=3.0, show_default=True, help="Conversion: days after the session that count.")
@click.option(
    "--max-rows",
    default=30_000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Conversion: evaluate a sample of about this many sessions (whole visitors), to bound the time.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("evaluation.json"),
    show_default=True,
    help="JSON with every metric, CI and per-seed value.",
)
def evaluate_cmd(sessions: Path, sim_dir: Path | None, customers: Path | None, app_views: Path | None,
                 conversions: Path | None, embeddings: Path | None, llm_labels: Path | None,
                 distilled_labels: Path | None, taxonomy_path: Path | None, seeds: int, lookback_days: float,
                 window_days: float, max_rows: int, out: Path) -> None:  # fmt: skip
    """Tile ranking and conversion with the production baseline and each web feature set.

    SESSIONS are the sessions the features describe (cut before applications: `clickintent cut`). Each
    metric is reported as the mean and 95% CI over --seeds splits by time and person, with the change
    against the baseline and, on simulated data, the share of the true intent's lift captured.
    """
    from clickintent.evaluate.run import Inputs, evaluate
    from clickintent.sim import PRODUCT_IDS

    truth = None
    if sim_dir is not None:
        t = sim_dir / "truth"
        customers = customers or t / "customers.parquet"
        app_views = app_views or t / "app_home.parquet"
        conversions = conversions or t / "conversions.parquet"
    table = pq.read_table(sessions)
    if sim_dir is not None:
        from clickintent.sim.join import true_intents

        truth = true_intents(table, sim_dir)
    classes = None
    if taxonomy_path is not None:
        from clickintent.taxonomy.taxonomy import Taxonomy

        classes = Taxonomy.load(taxonomy_path).ids
    products = list(PRODUCT_IDS)
    if conversions is not None and sim_dir is None:
        products = sorted(set(pq.read_table(conversions, columns=["product"]).column("product").to_pylist()) - {None})
    inputs = Inputs(
        sessions=table, products=products,
        customers=_read(customers), app_views=_read(app_views), conversions=_read(conversions),
        embeddings=_read(embeddings), llm_labels=_read(llm_labels),
        distilled_labels=_read(distilled_labels), true_intents=truth, label_classes=classes,
    )  # fmt: skip
    result = evaluate(inputs, seeds=seeds, lookback_days=lookback_days, window_days=window_days, max_rows=max_rows,
                      progress=click.echo)  # fmt: skip
    result["simulated"] = sim_dir is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for line in headline_table(result):
        click.echo(line)
    click.echo(f"wrote {out}")


def headline_table(result: dict[str, Any]) -> list[str]:
    """The terminal table: one line per task and feature set."""
    from clickintent.evaluate.run import HEADLINE, headline_rows

    lines = []
    for task, why in result.get("not_applicable", {}).items():
        lines.append(f"{task}: not applicable ({why})")
    rows = headline_rows(result)
    if rows:
        for task, metrics in HEADLINE.items():
            task_rows = [r for r in rows if r[0] == task]
            if not task_rows:
                continue
            lines.append("")
            lines.append(f"{task:<14} {'feature set':<26} " + "  ".join(f"{m:<34}" for m in metrics))
            for r in task_rows:
                lines.append(f"{'':<14} {r[1]:<26} " + "  ".join(f"{c:<34}" for c in r[2:]))
    return lines
