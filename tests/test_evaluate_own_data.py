"""`clickintent evaluate` on a team's own tables, with no simulator (issue 20; docs/IMPORT.md, "Evaluate on
your own outcomes").

Sessions come from a GA4 export through --preset ga4; customers, app home-page views and conversions are
built here in the shapes the walkthrough documents, without clickintent.sim. The embeddings are random
(a stand-in for `clickintent embed`): the test checks that both tasks run end to end from such tables,
not what they measure.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from clickintent.cli import main
from clickintent.ingest import IngestOptions, ingest
from clickintent.ingest.presets import samples
from clickintent.sessionize import sessionize

PRODUCTS = ["cashback-card", "easy-saver", "personal-loan", "fixed-mortgage"]


def own_tables(tmp_path: Path) -> dict[str, Path]:
    """A bank's own tables around the GA4 sample's visits: customers, app views, conversions, embeddings."""
    rng = random.Random(7)
    hits = samples.journeys(visitors=400, seed=3)
    src = samples.write_ga4(hits, tmp_path / "events.json")
    ingest(src, tmp_path / "run", IngestOptions(preset="ga4"))
    sessionize(tmp_path / "run" / "events.parquet", tmp_path / "run" / "sessions.parquet")
    sessions = pq.read_table(tmp_path / "run" / "sessions.parquet")

    logins = {h.customer: h.ts_us for h in hits if h.kind == "login" and h.customer}
    customers = pa.table({
        "customer_id": list(logins),
        "age_band": [rng.choice(["18-34", "35-54", "55+"]) for _ in logins],
        "tenure_years": [rng.randint(0, 30) for _ in logins],
        "holdings": [rng.sample(PRODUCTS, rng.randint(0, 2)) for _ in logins],
    })  # fmt: skip
    views: dict[str, list[object]] = {"customer_id": [], "ts": [], "tiles_shown": [], "tile_clicked": []}
    for customer, login_us in logins.items():
        for k in range(15):  # home-page views over the two weeks after the login
            shown = rng.sample(PRODUCTS, 3)
            views["customer_id"].append(customer)
            views["ts"].append(datetime.fromtimestamp(login_us / 1e6, UTC) + timedelta(hours=2 + 21 * k))
            views["tiles_shown"].append(shown)
            views["tile_clicked"].append(rng.choice(shown) if rng.random() < 0.8 else None)
    app_views = pa.table(views, schema=pa.schema([("customer_id", pa.string()), ("ts", pa.timestamp("us", "UTC")),
                                                  ("tiles_shown", pa.list_(pa.string())),
                                                  ("tile_clicked", pa.string())]))  # fmt: skip
    web = sessions.filter(pa.compute.equal(sessions.column("platform"), "web")).to_pylist()
    applied = [s for s in web if rng.random() < 0.3]
    conversions = pa.table({
        "visitor_id": [s["visitor_id"] for s in applied],
        "product": [rng.choice(PRODUCTS) for _ in applied],
        "ts": pa.array([s["end"] + timedelta(hours=5) for s in applied], pa.timestamp("us", "UTC")),
    })  # fmt: skip
    vectors = np.random.default_rng(0).standard_normal((sessions.num_rows, 8)).astype(np.float32)
    embeddings = pa.table({
        "session_id": sessions.column("session_id"),
        "embedding": pa.array(list(vectors), pa.list_(pa.float32())),
        "model_version": ["own-data-test"] * sessions.num_rows,
    })  # fmt: skip
    paths = {"sessions": tmp_path / "run" / "sessions.parquet"}
    for name, table in [("customers", customers), ("app_views", app_views), ("conversions", conversions),
                        ("embeddings", embeddings)]:  # fmt: skip
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(table, paths[name])
    return paths


def test_evaluate_runs_both_tasks_on_own_tables(tmp_path: Path) -> None:
    p = own_tables(tmp_path)
    out = tmp_path / "evaluation.json"
    split = CliRunner().invoke(main, ["split", str(p["sessions"]), "--out", str(tmp_path / "split")])
    assert split.exit_code == 0, split.output
    assert (tmp_path / "split" / "learn-visits.parquet").exists()  # what train, taxonomy and distill would read
    args = ["evaluate", str(p["sessions"]), "--split", str(tmp_path / "split"), "--customers", str(p["customers"]),
            "--app-views", str(p["app_views"]), "--conversions", str(p["conversions"]), "--embeddings",
            str(p["embeddings"]), "--bootstrap", "50", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["simulated"] is False
    assert set(report["tasks"]) == {"tile ranking", "conversion"}, report.get("not_applicable")
