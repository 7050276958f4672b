"""CLI: `clickintent cut`, `clickintent distill` and `clickintent label`.

cut: sessions before their first application page (the input of conversion prediction).
distill: LLM labels + embeddings -> a classifier in the bundle, with its agreement and calibration report.
label: every session -> labels.parquet (source distilled), in-process or on Spark.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import pyarrow.parquet as pq

from clickintent.cli.errors import StepInput, TaxonomyFile
from clickintent.cli.options import engine_options
from clickintent.cut import DEFAULT_PATTERN
from clickintent.inputs import EMBEDDINGS, LABELS, SESSIONS


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
@click.option("--seed", default=0, show_default=True, help="Seed of the visitor split.")
def distill_cmd(embeddings: Path, labels_path: Path, taxonomy_path: Path, sessions: Path, bundle: Path,
                sim_dir: Path | None, report_path: Path | None, C: float | None, seed: int) -> None:  # fmt: skip
    """Learn the LLM labels from session embeddings; store the classifier in BUNDLE.

    Splits the LLM-labelled sessions 60/20/20 by visitor (fit / calibrate and pick the `other` threshold /
    held out) and reports agreement with the LLM, calibration and, with --sim, accuracy against the truth.
    """
    from clickintent.distill.fit import distill
    from clickintent.distill.label import Labeller, latency
    from clickintent.taxonomy.taxonomy import Taxonomy

    tax = Taxonomy.load(taxonomy_path)
    table = pq.read_table(sessions)
    visitors = dict(zip(table.column("session_id").to_pylist(), table.column("visitor_id").to_pylist(), strict=True))
    truth = None
    if sim_dir is not None:
        from clickintent.sim.join import true_intents

        truth = true_intents(table, sim_dir)
    labels = pq.read_table(labels_path)
    try:
        clf, report = distill(pq.read_table(embeddings), labels, visitors, true_intents=truth, C=C, seed=seed)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    info = {"taxonomy_version": tax.version, "agreement": report["agreement"], "labelled_sessions": len(labels)}
    clf.save(bundle, taxonomy_path.read_bytes(), info)
    llm_meta = labels_path.with_suffix(".json")
    meta = json.loads(llm_meta.read_text()) if llm_meta.exists() else None
    # on as many threads as the LLM labeller used (1 when not recorded), so the speed-ups compare like with like
    lat = latency(Labeller.from_bundle(bundle, "cpu"), table, threads=int((meta or {}).get("threads") or 1))
    report["latency_s"] = lat
    if meta is not None:
        llm_s = meta.get("seconds_per_label")
        report["llm_latency_s"] = llm_s
        report["speedup"] = llm_s / lat["p50"] if llm_s else None  # one session at a time, both sides
        report["speedup_batch"] = llm_s / lat["batch_per_session"] if llm_s else None
    out = report_path or labels_path.with_name("distill.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    a, e = report["agreement"], report["ece"]
    click.echo(
        f"classifier: {len(clf.classes_)} labels, C {clf.C:g}, temperature {clf.temperature_:.2f}, "
        f"other below {clf.threshold_:.2f}; split {report['split']}"
    )
    click.echo(
        f"held out vs LLM: accuracy {a['accuracy']:.3f}, macro-F1 {a['macro_f1']:.3f}, kappa {a['cohen_kappa']:.3f}; "
        f"ECE {e['uncalibrated']:.3f} -> {e['calibrated']:.3f} calibrated"
    )
    t = report.get("truth")
    if t and t["drop"] is not None:
        click.echo(
            f"vs simulated truth ({t['sessions']} sessions, each scored out of fold): LLM {t['llm_accuracy']:.3f}, "
            f"distilled {t['distilled_accuracy']:.3f}, drop {t['drop']:.1%}"
        )
    speed = f" ({report['speedup']:,.0f}x faster than the LLM)" if report.get("speedup") else ""
    bspeed = f" ({report['speedup_batch']:,.0f}x)" if report.get("speedup_batch") else ""
    click.echo(
        f"distilled label cost per session: {lat['p50'] * 1e3:.2f} ms one at a time{speed}, "
        f"{lat['batch_per_session'] * 1e3:.3f} ms in a batch{bspeed}"
    )
    click.echo(f"wrote the classifier into {bundle} and the report to {out}")


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
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where to run the encoder.",
)
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
