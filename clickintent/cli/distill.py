"""CLI: `clickintent distill`: LLM labels + embeddings -> a classifier in the bundle, with its agreement,
calibration and cost report (distill.json). The work is `clickintent.distill.step.distill_step`, which
returns a `DistillReport`; this module writes it and prints it."""

from __future__ import annotations

from pathlib import Path

import click

from clickintent.cli.errors import StepInput, TaxonomyFile
from clickintent.distill.features import EMBEDDING_TEXT, INPUTS, Inputs
from clickintent.inputs import EMBEDDINGS, LABELS, SESSIONS


@click.command("distill")
@click.option(
    "--embeddings",
    required=True,
    type=StepInput(EMBEDDINGS, "distill"),
    help="embeddings.parquet of the sessions (from `clickintent embed`).",
)
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=StepInput(LABELS, "distill"),
    help="LLM labels.parquet (from `clickintent taxonomy label`).",
)
@click.option(
    "--taxonomy",
    "taxonomy_path",
    required=True,
    type=TaxonomyFile(),
    help="The taxonomy.json the labels use; stored in the bundle beside the classifier.",
)
@click.option(
    "--sessions",
    type=StepInput(SESSIONS, "distill"),
    required=True,
    help="sessions.parquet, for visitor ids (the split is by visitor) and single-session latency.",
)
@click.option(
    "--bundle",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Bundle with the encoder; the classifier is added to it.",
)
@click.option(
    "--sim",
    "sim_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Simulator output: also score both labelings against the true intents.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the JSON report (default: distill.json beside --labels).",
)
@click.option(
    "--C",
    "C",
    default=None,
    type=click.FloatRange(min=1e-6),
    help="Inverse L2 strength of the logistic regression [default: the best of 0.1, 1, 10, 100 by agreement "
    "with the LLM on the validation split].",
)
@click.option(
    "--inputs",
    type=click.Choice(INPUTS),
    default=EMBEDDING_TEXT,
    show_default=True,
    help="What the classifier reads: the session embedding, or the embedding and the session's mean page-text "
    "vector (titles and search queries, with the bundle's text model). embedding+text cut the drop against "
    "the LLM's accuracy on development worlds 7 and 11 (docs/DISTILL.md).",
)
@click.option("--seed", default=0, show_default=True, help="Seed of the visitor split.")
def distill_cmd(embeddings: Path, labels_path: Path, taxonomy_path: Path, sessions: Path, bundle: Path,
                sim_dir: Path | None, report_path: Path | None, C: float | None, inputs: Inputs,
                seed: int) -> None:  # fmt: skip
    """Learn the LLM labels from session embeddings; store the classifier in BUNDLE.

    Splits the LLM-labelled sessions 60/20/20 by visitor (fit / calibrate and pick the `other` threshold /
    held out) and reports agreement with the LLM, calibration and, with --sim, accuracy against the truth.
    """
    from dataclasses import asdict

    from clickintent.distill.step import distill_step

    try:
        result = distill_step(embeddings, labels_path, taxonomy_path, sessions, bundle, sim_dir=sim_dir, C=C,
                              seed=seed, inputs=inputs)  # fmt: skip
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    clf, report = result.classifier, result.report
    out = report.save(report_path or labels_path.with_name("distill.json"))
    a, e, t, lat = report.agreement, report.ece, report.truth, report.latency_s
    click.echo(
        f"classifier on {clf.inputs}: {len(clf.classes_)} labels, C {clf.C:g}, temperature {clf.temperature_:.2f}, "
        f"other below {clf.threshold_:.2f}; split {asdict(report.split)}"
    )
    click.echo(
        f"held out vs LLM: accuracy {a.accuracy:.3f}, macro-F1 {a.macro_f1:.3f}, kappa {a.cohen_kappa:.3f}; "
        f"ECE {e.uncalibrated:.3f} -> {e.calibrated:.3f} calibrated"
    )
    if t and t.drop is not None:
        click.echo(
            f"vs simulated truth ({t.sessions} sessions, each scored out of fold): LLM {t.llm_accuracy:.3f}, "
            f"distilled {t.distilled_accuracy:.3f}, drop {t.drop:.1%}"
        )
    speed = f" ({report.speedup:,.0f}x faster than the LLM)" if report.speedup else ""
    bspeed = f" ({report.speedup_batch:,.0f}x)" if report.speedup_batch else ""
    if lat is not None:
        click.echo(
            f"distilled label cost per session: {lat.p50 * 1e3:.2f} ms one at a time{speed}, "
            f"{lat.batch_per_session * 1e3:.3f} ms in a batch{bspeed}"
        )
    click.echo(f"wrote the classifier into {bundle} and the report to {out}")
