"""Machine-paced visits (crawlers) are left out of a taxonomy build: the rule, the share cap, the build and
the CLI's note. Against the simulator's bots: tests/test_sim_ingest.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from test_taxonomy_build import T0, catalogue, nonsense

from clickintent import schema
from clickintent.encoder.text import HashingEncoder
from clickintent.llm.fake import FakeBackend
from clickintent.taxonomy import crawls
from clickintent.taxonomy import generate as generate_mod
from clickintent.taxonomy.cluster import KMeansClusterer
from clickintent.taxonomy.crawls import machine_paced, without_crawls
from clickintent.taxonomy.generate import generate_cluster
from clickintent.taxonomy.taxonomy import Taxonomy


def visit(pages: list[str], seconds: float) -> list[dict[str, Any]]:
    return [{"ts": T0 + timedelta(seconds=seconds * i), "page": p, "event_type": "page_view"}
            for i, p in enumerate(pages)]  # fmt: skip


def test_a_visit_is_machine_paced_when_it_arrives_on_many_pages_faster_than_a_person_reads() -> None:
    pages = [f"b.com/p{i}" for i in range(12)]
    assert machine_paced(visit(pages, 1.0))
    assert not machine_paced(visit(pages, 20.0))  # a person's pace
    assert not machine_paced(visit(pages[:9], 1.0))  # too few pages to tell
    # clicks and forms on one page are not arrivals: 36 events a second apart on 12 pages, 3 s a page
    on_pages = [p for p in pages for _ in range(3)]
    assert machine_paced(visit(on_pages, 1.0)) and not machine_paced(visit(on_pages, 2.0))
    assert not machine_paced(visit(["b.com/same"] * 40, 0.5))  # one page reloaded: one arrival


def crawl_sessions(n: int) -> pa.Table:
    rows = []
    for i in range(n):
        events = visit([f"shop.example/product/{{num}}?sku={1000 + 7 * i + j}" for j in range(15)], 0.8)
        start = T0 + timedelta(hours=i)
        rows.append({"session_id": f"crawl-{i}", "visitor_id": f"bot{i}", "customer_id": None, "platform": "web",
                     "start": start, "end": start + timedelta(seconds=12), "n_events": len(events),
                     "events": [{**e, "ts": start + (e["ts"] - T0)} for e in events]})  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema.SESSIONS)


def test_crawls_are_left_out_unless_they_would_be_most_of_the_visits() -> None:
    mixed = pa.concat_tables([catalogue("category-codes", n=60), crawl_sessions(6)])
    kept, n = without_crawls(mixed)
    assert n == 6 and kept.num_rows == 60
    assert not any(s.startswith("crawl-") for s in kept.column("session_id").to_pylist())
    fast = crawl_sessions(6)
    assert without_crawls(fast) == (fast, 0)  # all machine-paced: coarse clocks or a fast site, not crawlers


def test_a_build_leaves_crawls_out_and_says_so() -> None:
    table = pa.concat_tables([catalogue("category-codes", n=60), crawl_sessions(6)])
    kw: dict[str, Any] = {"clusterer": KMeansClusterer(k=range(2, 6)), "text_encoder": HashingEncoder()}
    built = generate_cluster(table, FakeBackend(nonsense, retries=1), **kw)
    assert built.taxonomy.generator["crawls_left_out"] == 6
    assert not any(s.startswith("crawl-") for s in built.assignments)
    examples = {s for lb in built.taxonomy.labels for s in lb.examples}
    assert not any(s.startswith("crawl-") for s in examples)
    kept = generate_cluster(table, FakeBackend(nonsense, retries=1), keep_crawls=True, **kw)
    assert kept.taxonomy.generator["crawls_left_out"] == 0 and "crawl-0" in kept.assignments


def test_cli_build_notes_the_crawls_it_left_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clickintent.cli import main
    from clickintent.cli import taxonomy as cli_tax

    assert (cli_tax.CRAWL_PAGES, cli_tax.CRAWL_SECONDS) == (crawls.CRAWL_PAGES, crawls.CRAWL_SECONDS)  # the copies
    monkeypatch.setattr(cli_tax, "make_backend", lambda kind, **kw: FakeBackend(nonsense, retries=1))
    monkeypatch.setattr(generate_mod, "MiniLMEncoder", HashingEncoder)
    pq.write_table(pa.concat_tables([catalogue("category-codes", n=60), crawl_sessions(4)]), tmp_path / "s.parquet")
    args = ["taxonomy", "build", str(tmp_path / "s.parquet"), "-o", str(tmp_path / "t.json"), "--clusterer", "kmeans"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "note: 4 machine-paced visits" in res.output and "--keep-crawls" in res.output
    assert Taxonomy.load(tmp_path / "t.json").generator["crawls_left_out"] == 4
    res = CliRunner().invoke(main, [*args, "--keep-crawls"])
    assert res.exit_code == 0 and "machine-paced" not in res.output, res.output
    assert Taxonomy.load(tmp_path / "t.json").generator["crawls_left_out"] == 0
