"""The HTML report renders what exists and says which parts do not apply, instead of failing."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from clickintent.distill.report import Agreement, Calibration, DistillReport, ReliabilityBin, Split
from clickintent.ingest import IngestOptions, ingest
from clickintent.report import write_report
from clickintent.run import RunLayout
from clickintent.sessionize import sessionize


class Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tables += tag == "table"
        self.external += [v for k, v in attrs if k in ("src", "href") and v and "://" in v]


def test_report_on_real_data_without_truth(tmp_path: Path, yoochoose_dir: Path) -> None:
    options = IngestOptions(mapping={"ts": "Time", "visitor_id": "SessionId", "url": "ItemId"})
    ingest(yoochoose_dir / "yoochoose-clicks-100k_test.txt", tmp_path, options)
    sessionize(tmp_path / "events.parquet", tmp_path / "sessions.parquet")
    page = write_report(tmp_path, tmp_path / "report.html").read_text()
    parser = Tables()
    parser.feed(page)
    assert parser.tables >= 2 and parser.external == []
    assert "13,568" in page  # rows in
    assert "not available here" in page and "real data" in page


def test_report_escapes_untrusted_text(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("visitor_id,ts,url\n<script>x</script>,2024-01-01T00:00:00Z,/a\n")
    ingest(tmp_path / "in.csv", tmp_path / "run")
    page = write_report(tmp_path / "run", tmp_path / "report.html").read_text()
    assert "<script>" not in page


def _report(agreement: float) -> DistillReport:
    return DistillReport(
        labelled_sessions=100, split=Split(60, 20, 20), classes=["a", "b"], C=1.0, temperature=1.2, threshold=0.3,
        agreement=Agreement(agreement, 0.5, 0.4), ece=Calibration(0.1, 0.05),
        reliability=[ReliabilityBin(0.5, 0.6, 0.55, 0.5, 20)], other_share_test=0.0,
        test_labels_unseen_in_training=[],
    )  # fmt: skip


def test_report_finds_the_demo_layout_and_reads_its_distill_report(tmp_path: Path) -> None:
    """`clickintent report OUT` on the demo's layout (data/, distill.json beside it) renders the typed
    DistillReport's figures; RunLayout.find tells the layouts apart."""
    from click.testing import CliRunner

    from clickintent.cli import main

    run = RunLayout.demo(tmp_path / "out")
    (tmp_path / "in.csv").write_text("visitor_id,ts,url\nv1,2024-01-01T00:00:00Z,/a\nv1,2024-01-01T00:01:00Z,/b\n")
    ingest(tmp_path / "in.csv", run.data)
    sessionize(run.events, run.sessions)
    _report(0.37).save(run.distill_report)
    assert RunLayout.find(run.root) == run and RunLayout.find(run.data) == RunLayout.flat(run.data)
    result = CliRunner().invoke(main, ["report", str(run.root)])
    assert result.exit_code == 0, result.output
    page = run.report.read_text()
    assert "agrees with the LLM on 37%" in page and "Reliability of the distilled labeller" in page  # from distill.json
    assert "Quarantined" in page or "rows in" in page  # from data/ingest_report.json


def test_the_demo_writes_where_its_layout_says() -> None:
    """Every output a demo step declares is one of RunLayout.demo's paths, so the report and the
    benchmark that read through the layout find them."""
    from dataclasses import fields

    from clickintent.cli.demo import demo_steps

    run = RunLayout.demo(Path("out"))
    known = {getattr(run, f.name) for f in fields(run)} | {run.events, run.learn_visits, run.eval_visits}
    steps = demo_steps(run.root, visitors=100, days=7, seed=0, signal=0.5, train_minutes=1, label_sample=50,
                       compare_sample=50, llm_threads=1, max_labels=4, bootstrap=20)  # fmt: skip
    outputs = {p for _, _, outs in steps for p in outs}
    assert outputs - known <= {run.sim / "events.parquet", run.bundle / "encoder.safetensors"}
    assert {run.distill_report, run.evaluation, run.distilled, run.compare_labels} <= outputs
