"""`clickintent demo` end to end on a tiny world with the real local Gemma, its report rendered in headless
Chromium, a second run that reuses everything, and the same batch path on the real YOOCHOOSE sample."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clickintent.cli import main

pytestmark = pytest.mark.integration

DEMO_ARGS = ["--visitors", "600", "--days", "14", "--train-minutes", "0.3", "--label-sample", "60",
             "--max-labels", "4", "--compare-sample", "50", "--bootstrap", "100"]  # fmt: skip


def chromium_dom(page: Path, *flags: str, dump: bool = True) -> str:
    """The DOM after headless Chromium loaded `page` (no network: the page must be self-contained)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    out = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         *flags, *(["--dump-dom"] if dump else []), page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return out.stdout


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), *DEMO_ARGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "clickintent demo: done" in result.output
    # both LLM steps print the thread count they were given
    threads = "--llm-threads 1"
    llm_steps = [line for line in result.output.splitlines() if line.startswith("$ clickintent taxonomy")]
    # build and label on the learning visits, label a sample of the evaluation visits for the comparisons
    assert len(llm_steps) == 3 and all(threads in line for line in llm_steps)
    return out


def test_demo_writes_every_output(demo_dir: Path) -> None:
    for name in ["report.html", "taxonomy.json", "labels-llm.parquet", "labels-distilled.parquet", "distill.json",
                 "evaluation.json", "bundle/classifier.safetensors", "data/visits.parquet"]:  # fmt: skip
        assert (demo_dir / name).exists(), name
    visits = pq.read_table(demo_dir / "data" / "visits.parquet", columns=["session_id"])
    distilled = pq.read_table(demo_dir / "labels-distilled.parquet")
    assert distilled.num_rows == visits.num_rows, "the distilled labeller labels every session"
    assert set(distilled.column("source").to_pylist()) == {"distilled"}
    rep = json.loads((demo_dir / "distill.json").read_text())
    assert rep["speedup"] > 1 and "truth" in rep
    ev = json.loads((demo_dir / "evaluation.json").read_text())
    assert ev["simulated"] and {"tile ranking", "conversion"} <= set(ev["tasks"]) | set(ev["not_applicable"])


ARTIFACTS = Path(os.environ.get("CLICKINTENT_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))
MEASURE = ("<script>window.addEventListener('load',()=>{document.body.dataset.scrollWidth="
           "document.documentElement.scrollWidth})</script></body>")  # fmt: skip


def test_report_renders_in_chromium_with_its_tables(demo_dir: Path) -> None:
    """At 1280 px: the answers, figures with alt text and tables are there, nothing overflows sideways; the
    screenshot is saved under test-artifacts/ (CLICKINTENT_TEST_ARTIFACTS) for a person to look at."""
    page = demo_dir / "report.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']https?://""", text), "the report must not load anything remote"
    assert "<script" not in text, "the report runs no scripts"
    probe = demo_dir / "report-probe.html"  # the page plus a script that writes its width into the DOM
    probe.write_text(text.replace("</body>", MEASURE))
    dom = chromium_dom(probe, "--window-size=1280,900")
    width = re.search(r'data-scroll-width="(\d+)"', dom)
    assert width and int(width.group(1)) <= 1280, f"the page is wider than the window: {width and width.group(1)}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium_dom(page, "--window-size=1280,3000", f"--screenshot={ARTIFACTS / 'report-1280.png'}", dump=False)
    assert (ARTIFACTS / "report-1280.png").stat().st_size > 10_000
    # answers first: the first section is the answers, one sentence per task
    assert dom.index("The answers") < dom.index("Do web sessions help the app?")
    assert re.search(r"<b>Tile ranking: [^<]+</b>", dom) and re.search(r"<b>Conversion: [^<]+</b>", dom)
    assert "What visitors came for:" in dom and "Cost per label:" in dom
    # figures, each with alt text
    svgs = re.findall(r"<svg[^>]*>", dom)
    assert len(svgs) >= 3 and all("aria-label=" in s and "role=\"img\"" in s for s in svgs)
    titled = re.findall(r"<svg[^>]*><title>[^<]{10,}</title>", dom)
    assert len(titled) == len(svgs), "each figure opens with its alt text"
    imgs = re.findall(r"<img[^>]*>", dom)
    assert imgs and all(re.search(r'alt="[^"]{10,}"', i) for i in imgs)
    assert "data:image/png;base64," in dom and dom.count("<table") >= 6
    for heading in ["What visitors came for", "Distillation", "Map of sessions"]:
        assert heading in dom, heading
    assert not re.search(r"[0-9]{3,}\.[0-9]+%", dom), "percentages are given to two significant figures"


def test_second_run_reuses_everything(demo_dir: Path) -> None:
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["demo", "--out", str(demo_dir), *DEMO_ARGS], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("outputs exist, reused") == 13
    assert time.perf_counter() - t0 < 120


def test_batch_path_on_real_yoochoose_says_what_does_not_apply(tmp_path: Path, yoochoose_dir: Path) -> None:
    run = CliRunner()
    data = tmp_path / "data"
    clicks = yoochoose_dir / "yoochoose-clicks-100k_test.txt"
    steps = [
        ["ingest", str(clicks), "--out", str(data), "--map", "ts=Time", "--map", "visitor_id=SessionId",
         "--map", "url=ItemId"],
        ["sessionize", str(data / "events.parquet"), "--out", str(data / "sessions.parquet")],
        ["cut", str(data / "sessions.parquet"), "--out", str(data / "visits.parquet")],
        ["train", str(data / "sessions.parquet"), "--out", str(tmp_path / "bundle"), "--epochs", "1",
         "--text-model", "hashing-384", "--text-cache", str(tmp_path / "tc")],
        ["embed", str(data / "visits.parquet"), "--bundle", str(tmp_path / "bundle"), "--out",
         str(data / "embeddings.parquet"), "--text-cache", str(tmp_path / "tc")],
        ["evaluate", str(data / "visits.parquet"), "--embeddings", str(data / "embeddings.parquet"), "--out",
         str(data / "evaluation.json")],
        ["report", str(data)],
    ]  # fmt: skip
    for args in steps:
        result = run.invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, f"{args[0]}: {result.output}"
    ev = json.loads((data / "evaluation.json").read_text())
    assert not ev["tasks"] and "no customers table" in ev["not_applicable"]["tile ranking"]
    page = (data / "report.html").read_text()
    assert "not available here" in page and "real data: there is no truth" in page
    assert "Downstream evaluation" in page or "Tile ranking: not available" in page
