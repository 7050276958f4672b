"""CLI: `clickintent split` (who may be learned from, who is scored) and `clickintent evaluate` (do web
sessions help the app? both downstream tasks, every feature set, the paper's comparisons)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq

from clickintent.cli.errors import StepInput, TaxonomyFile
from clickintent.cli.options import out_dir_option
from clickintent.inputs import EMBEDDINGS, LABELS, SESSIONS

OptPath = click.Path(exists=True, dir_okay=False, path_type=Path)
SimDir = click.Path(exists=True, file_okay=False, path_type=Path)


def _read(path: Path | None) -> pa.Table | None:
    return None if path is None else pq.read_table(path)


@click.command("split")
@click.argument("visits", type=StepInput(SESSIONS, "split"))
@out_dir_option("Directory for split.json, split-keys.parquet, learn-visits.parquet, eval-visits.parquet.",
                default=None)
@click.option(
    "--sim",
    "sim_dir",
    type=SimDir,
    default=None,
    help="Simulator output: people come from its truth (every cookie of a person together).",
)
@click.option(
    "--cut",
    default=0.6,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="The time cut, as a share of the data's time span.",
)
@click.option(
    "--representation-share",
    default=0.4,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Share of people whose visits before the cut train the encoder, taxonomy and distiller.",
)
@click.option(
    "--folds",
    default=5,
    show_default=True,
    type=click.IntRange(min=2),
    help="Folds of the evaluation people (test predictions are pooled over them).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the people's roles.")
def split_cmd(visits: Path, out_dir: Path, sim_dir: Path | None, cut: float, representation_share: float, folds: int,
              seed: int) -> None:  # fmt: skip
    """Draw the evaluation protocol's split of VISITS (sessions cut before applications).

    Writes learn-visits.parquet, the only visits the encoder, the taxonomy and the distiller may learn from
    (representation people's web visits before the cut), and eval-visits.parquet, the evaluation people's web
    visits (draw the LLM label sample of the comparisons from these). docs/EVALUATION.md explains the protocol.
    """
    from clickintent.evaluate.protocol import REPRESENTATION, Protocol, split

    table = pq.read_table(visits)
    try:
        s = split(table, Protocol(cut, representation_share, folds, seed), sim_dir)
    except ValueError as exc:
        raise click.ClickException(f"{visits}: {exc}") from exc
    s.save(out_dir)
    learn, evaluation = s.learning_visits(table), s.evaluation_visits(table)
    pq.write_table(learn, out_dir / "learn-visits.parquet")
    pq.write_table(evaluation, out_dir / "eval-visits.parquet")
    keys = s.visitor_keys(table.column("visitor_id").to_pylist())
    n_rep = int((s.folds_of_keys(list(set(keys))) == REPRESENTATION).sum())
    click.echo(f"split  cut at {s.to_dict()['cut']}; {len(set(keys)):,} people ({n_rep:,} representation, "
               f"the rest in {folds} evaluation folds; people from {s.to_dict()['person_keys']})")  # fmt: skip
    click.echo(f"  learn-visits.parquet {learn.num_rows:,} visits (representation people, before the cut); "
               f"eval-visits.parquet {evaluation.num_rows:,}")  # fmt: skip


@click.command("evaluate")
@click.argument("sessions", type=StepInput(SESSIONS, "evaluate"))
@click.option(
    "--split",
    "split_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A `clickintent split` directory. Default: drawn here with the default protocol.",
)
@click.option(
    "--sim",
    "sim_dir",
    type=SimDir,
    default=None,
    help="Simulator output: customers, app views, conversions, true intents and the exact ceilings.",
)
@click.option("--customers", type=OptPath, default=None, help="Customers table (production baseline features).")
@click.option(
    "--app-views", type=OptPath, default=None, help="App home-page views: customer_id, ts, tiles_shown, tile_clicked."
)
@click.option(
    "--conversions",
    type=OptPath,
    default=None,
    help="Applications: visitor_id, product, ts (and customer_id for app or branch applications).",
)
@click.option("--embeddings", type=StepInput(EMBEDDINGS), default=None, help="embeddings.parquet of SESSIONS.")
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="NAME=FILE",
    help="Reference embeddings: 'random encoder=FILE' or 'coles=FILE'. Repeatable.",
)
@click.option("--llm-labels", type=StepInput(LABELS), default=None, help="LLM labels.parquet (a sample).")
@click.option(
    "--distilled-labels", type=StepInput(LABELS), default=None, help="Distilled labels.parquet (every session)."
)
@click.option(
    "--taxonomy", "taxonomy_path", type=TaxonomyFile(), default=None, help="taxonomy.json: the label columns."
)
@click.option(
    "--bootstrap",
    default=1000,
    show_default=True,
    type=click.IntRange(min=20),
    help="Paired person-bootstrap replicates for every CI.",
)
@click.option("--lookback-days", default=28.0, show_default=True, help="Tile ranking: how old a web visit may be.")
@click.option("--window-days", default=3.0, show_default=True, help="Conversion: days after the visit that count.")
@click.option(
    "--max-rows",
    default=40_000,
    show_default=True,
    type=click.IntRange(min=100),
    help="Conversion: evaluate a sample of about this many visits (whole people), to bound the time.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("evaluation.json"),
    show_default=True,
    help="JSON with every metric, CI and per-fold value.",
)
def evaluate_cmd(sessions: Path, split_dir: Path | None, sim_dir: Path | None, customers: Path | None,
                 app_views: Path | None, conversions: Path | None, embeddings: Path | None,
                 references: tuple[str, ...], llm_labels: Path | None, distilled_labels: Path | None,
                 taxonomy_path: Path | None, bootstrap: int, lookback_days: float, window_days: float,
                 max_rows: int, out: Path) -> None:  # fmt: skip
    """Tile ranking and conversion with the production baseline and each web feature set.

    SESSIONS are the visits the features describe (cut before applications: `clickintent cut`). Models are
    fitted on evaluation people's rows before the time cut and scored on other evaluation people's rows after
    it (folds, pooled); every gain is a log-loss difference with a paired person-bootstrap 95% CI and, on
    simulated data, a share of the world's exact ceiling. docs/EVALUATION.md says how to read it.
    """
    from dataclasses import replace

    from clickintent.evaluate.protocol import Split, split
    from clickintent.evaluate.run import Inputs, evaluate
    from clickintent.sim import PRODUCT_IDS

    if sim_dir is not None:
        t = sim_dir / "truth"
        customers = customers or t / "customers.parquet"
        app_views = app_views or t / "app_home.parquet"
        conversions = conversions or t / "conversions.parquet"
    table = pq.read_table(sessions)
    drawn = Split.load(split_dir) if split_dir is not None else split(table, sim_dir=sim_dir)
    drawn = replace(drawn, protocol=replace(drawn.protocol, bootstrap=bootstrap))
    truth = exact = None
    if sim_dir is not None:
        from clickintent.evaluate.ceiling import visit_probabilities
        from clickintent.sim.join import true_intents

        truth, exact = true_intents(table, sim_dir), visit_probabilities(table, sim_dir)
    classes = None
    if taxonomy_path is not None:
        from clickintent.taxonomy.taxonomy import Taxonomy

        classes = Taxonomy.load(taxonomy_path).ids
    products = list(PRODUCT_IDS)
    if conversions is not None and sim_dir is None:
        products = sorted(set(pq.read_table(conversions, columns=["product"]).column("product").to_pylist()) - {None})
    embedding_tables = {name: pq.read_table(path) for name, path in _references(references).items()}
    if embeddings is not None:
        embedding_tables["embedding"] = pq.read_table(embeddings)
    inputs = Inputs(
        sessions=table, products=products, split=drawn,
        customers=_read(customers), app_views=_read(app_views), conversions=_read(conversions),
        embeddings=embedding_tables, llm_labels=_read(llm_labels), distilled_labels=_read(distilled_labels),
        true_intents=truth, exact_visits=exact, label_classes=classes,
    )  # fmt: skip
    result = evaluate(inputs, lookback_days=lookback_days, window_days=window_days, max_rows=max_rows,
                      progress=click.echo)  # fmt: skip
    result["simulated"] = sim_dir is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for line in headline_table(result):
        click.echo(line)
    click.echo(f"wrote {out}")


def _references(pairs: tuple[str, ...]) -> dict[str, Path]:
    names = {"random encoder": "random encoder", "random": "random encoder", "coles": "coles"}
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or name.strip().lower() not in names or not Path(path).is_file():
            raise click.BadParameter(f"expected 'random encoder=FILE' or 'coles=FILE' (an existing file), got {pair!r}",
                                     param_hint="--reference")  # fmt: skip
        out[names[name.strip().lower()]] = Path(path)
    return out


def _cell(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not value or value.get("mean") is None:
        return ""
    if key == "ceiling_share" and not entry.get("resolved"):
        return "not resolved at this size"  # a share of a gain that is noise says nothing
    lo, hi = value["ci"]
    return f"{value['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}]" if key == "log_loss_gain" else (
        f"{value['mean']:.0%} [{lo:.0%}, {hi:.0%}]")  # fmt: skip


def headline_table(result: dict[str, Any]) -> list[str]:
    """The terminal table: per task and feature set, log loss, its gain (nats per row, 95% CI) and the share
    of the exact ceiling."""
    lines = [f"{task}: not applicable ({why})" for task, why in result.get("not_applicable", {}).items()]
    for task, res in result.get("tasks", {}).items():
        lines.append("")
        head = f"{task} ({res['test_rows']:,} test rows, {res['test_people']:,} people)"
        lines.append(f"{head:<44} {'log loss':>9}  {'gain [95% CI]':<28} {'share of ceiling':<18}")
        if "ceiling" in res:
            c = res["ceiling"]["log_loss_gain"]
            lines.append(f"  {'exact ceiling (simulation)':<42} {res['ceiling']['log_loss_full']:>9.4f}  "
                         f"{c['mean']:+.4f} [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]")  # fmt: skip
        for name, entry in res["feature_sets"].items():
            ll = entry["metrics"]["log_loss"]["mean"]
            lines.append(
                f"  {name:<42} {ll:>9.4f}  {_cell(entry, 'log_loss_gain'):<28} {_cell(entry, 'ceiling_share')}"
            )
    for c in result.get("comparisons", []):
        d = c["diff"]
        lines.append(f"\n{c['task']}: {c['a']} vs {c['b']}: log-loss gain {d['mean']:+.4f} "
                     f"[{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] on {c['sessions']:,} visits")  # fmt: skip
    return lines
