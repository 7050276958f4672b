"""`write_run_report`: every section of a run (a `RunLayout`) in reading order, into one HTML file;
`write_report` does it for a folder in either layout."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clickintent.report.answers import answers_section
from clickintent.report.data import embeddings_section, ingest_section, sessions_section, simulation_section
from clickintent.report.html import Section, render
from clickintent.report.labels import label_shares, taxonomy_section
from clickintent.report.results import distill_section, evaluation_section, map_section
from clickintent.run import RunLayout

EVIDENCE = Path("benchmarks/results/evidence.json")  # the benchmark's curve, shown when the report runs beside it


def write_report(run_dir: Path, out: Path | None = None, sim_dir: Path | None = None, extra: Sequence[Section] = (),
                 *, evidence: Path | None = None) -> Path:  # fmt: skip
    """Render the report on the outputs in `run_dir`, in either layout (`RunLayout.find`)."""
    return write_run_report(RunLayout.find(run_dir), out, sim_dir=sim_dir, extra=extra, evidence=evidence)


def write_run_report(
    run: RunLayout,
    out: Path | None = None,
    *,
    sim_dir: Path | None = None,
    extra: Sequence[Section] = (),
    evidence: Path | None = None,
) -> Path:
    """Render the report on a run into `out` (an .html file; default: the layout's report.html).

    `sim_dir` is the simulator's output for the ground-truth sections (default: the run's sim/ when it holds
    the truth). Example visits are rendered from the run's visits (its sessions when there are none).
    `evidence` is a `bench_evidence` results file (default: benchmarks/results/evidence.json under the
    working directory).
    """
    out = out or run.report
    sim_dir = sim_dir or run.truth_dir()
    distilled = run.distilled if run.distilled.exists() else None
    visits = run.visits if run.visits.exists() else run.sessions
    names: dict[str, str] = {}
    shares: dict[str, float] = {}
    if run.taxonomy.exists():
        from clickintent.taxonomy import Taxonomy

        tax = Taxonomy.load(run.taxonomy)
        names = {lb.id: f"{lb.category} > {lb.name}" for lb in tax.labels}
        shares = label_shares(tax, distilled)
    sections = [
        answers_section(run.evaluation, run.distill_report, run.llm_usage, shares, names),
        evaluation_section(run.evaluation, evidence or (EVIDENCE if EVIDENCE.exists() else None)),
        taxonomy_section(run.taxonomy, run.llm_labels, sim_dir, visits, distilled),
        distill_section(run.distill_report),
        map_section(run.embeddings, distilled or run.llm_labels, names),
        ingest_section(run.ingest_report),
        sessions_section(run.sessions),
        embeddings_section(run.embeddings),
        simulation_section(sim_dir),
        *extra,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render("clickintent report", sections), encoding="utf-8")
    return out
