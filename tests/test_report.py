"""The HTML report renders what exists and says which parts do not apply, instead of failing."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from clickintent.ingest import IngestOptions, ingest
from clickintent.report import write_report
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
