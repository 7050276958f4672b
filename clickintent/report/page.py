"""`write_report`: every section in reading order, into one HTML file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clickintent.report.answers import answers_section
from clickintent.report.data import embeddings_section, ingest_section, sessions_section, simulation_section
from clickintent.report.html import Section, render
from clickintent.report.labels import label_shares, taxonomy_section
from clickintent.report.results import distill_section, evaluation_section, map_section

EVIDENCE = Path("benchmarks/results/evidence.json")  # the benchmark's curve, shown when the report runs beside it


def write_report(
    run_dir: Path,
    out: Path,
    sim_dir: Path | None = None,
    taxonomy: Path | None = None,
    labels: Path | None = None,
    extra: Sequence[Section] = (),
    *,
    sessions: Path | None = None,
    embeddings: Path | None = None,
    distilled: Path | None = None,
    distill_json: Path | None = None,
    evaluation: Path | None = None,
    evidence: Path | None = None,
) -> Path:
    """Render the report for a pipeline directory into `out` (an .html file).

    `run_dir` holds ingest_report.json and sessions.parquet; the other paths default to files in it.
    `sessions` are the sessions the labels describe (example visits are rendered from them). `evidence` is
    a `bench_evidence` results file (default: benchmarks/results/evidence.json under the working directory).
    """
    tax_path = taxonomy or run_dir / "taxonomy.json"
    labels = labels or run_dir / "labels.parquet"
    names: dict[str, str] = {}
    shares: dict[str, float] = {}
    if tax_path.exists():
        from clickintent.taxonomy import Taxonomy

        tax = Taxonomy.load(tax_path)
        names = {lb.id: f"{lb.category} > {lb.name}" for lb in tax.labels}
        shares = label_shares(tax, distilled)
    emb = embeddings or run_dir / "embeddings.parquet"
    evaluation = evaluation or run_dir / "evaluation.json"
    distill_json = distill_json or run_dir / "distill.json"
    visits = sessions or run_dir / "sessions.parquet"
    sections = [
        answers_section(evaluation, distill_json, labels.with_suffix(".json"), shares, names),
        evaluation_section(evaluation, evidence or (EVIDENCE if EVIDENCE.exists() else None)),
        taxonomy_section(tax_path, labels, sim_dir, visits, distilled),
        distill_section(distill_json),
        map_section(emb, distilled or labels, names),
        ingest_section(run_dir),
        sessions_section(run_dir),
        embeddings_section(emb),
        simulation_section(sim_dir),
        *extra,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render("clickintent report", sections), encoding="utf-8")
    return out
