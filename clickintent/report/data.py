"""Data sections: what was read (ingest), the sessions made from it, the embeddings, and the simulated
world the figures come from (or a line saying the data are real and hold no truth)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickintent.report.html import Section, esc, not_available, table


def ingest_section(path: Path) -> Section:
    if not path.exists():
        return Section("Data", not_available("Ingest report", f"no {path.name}"))
    rep = json.loads(path.read_text())
    rows = [
        ("rows in", rep["rows_in"]),
        ("rows out (events.parquet)", rep["rows_out"]),
        ("quarantined", rep["quarantined"]),
        ("repeated source rows dropped", rep["duplicates"]),
        ("counts reconcile", "yes" if rep["reconciles"] else "NO"),
        ("timestamp unit", rep["ts_unit"]),
    ]
    body = f"<p>Input <code>{esc(rep['input'])}</code> ({esc(rep['format'])}).</p>"
    body += table(["measure", "value"], rows)
    if rep["quarantine_reasons"]:
        body += "<h3>Quarantined rows by reason</h3>" + table(["reason", "rows"], rep["quarantine_reasons"].items())
    if rep["redactions"]:
        body += "<h3>PII redacted before storage</h3>" + table(["kind", "values"], rep["redactions"].items())
    return Section("Data", body)


def sessions_section(path: Path) -> Section:
    if not path.exists():
        return Section("Sessions", not_available("Sessions", f"no {path.name}"))
    t = pq.read_table(path, columns=["platform", "n_events", "customer_id"])
    n_events = t.column("n_events")
    quantiles = pc.quantile(n_events, q=[0.5, 0.9, 0.99]).to_pylist()
    rows: list[tuple[str, Any]] = [
        ("sessions", t.num_rows),
        ("events", int(pc.sum(n_events).as_py() or 0)),
        ("linked to a customer by a login", t.num_rows - t.column("customer_id").null_count),
        ("events per session: median / p90 / p99", " / ".join(f"{q:g}" for q in quantiles)),
    ]
    for platform, count in sorted(Counter(t.column("platform").to_pylist()).items()):
        rows.append((f"platform {platform}", count))
    return Section("Sessions", table(["measure", "value"], rows))


def simulation_section(sim_dir: Path | None) -> Section:
    if sim_dir is None or not (sim_dir / "truth" / "manifest.json").exists():
        return Section("Simulated world", not_available("Ground truth", "real data: there is no truth to compare with"))
    manifest = json.loads((sim_dir / "truth" / "manifest.json").read_text())
    truth = pq.read_table(sim_dir / "truth" / "sessions.parquet", columns=["intent", "platform", "is_bot"])
    web = truth.filter(pc.equal(truth.column("platform"), "web"))
    mix = Counter(v or "(bot)" for v in web.column("intent").to_pylist())
    body = (
        "<p>Everything below was measured on <b>simulated</b> data: a seeded bank with known visitor intents "
        f"(seed {manifest.get('seed')}, signal {manifest.get('signal')}). See docs/SIMULATOR.md.</p>"
    )
    body += "<h3>True intent mix of web sessions</h3>" + table(["intent", "sessions"], mix.most_common())
    return Section("Simulated world", body)


def embeddings_section(path: Path) -> Section:
    if not path.exists():
        return Section("Session embeddings", not_available("Embeddings", f"no {path.name}"))
    meta = pq.read_metadata(path)
    first = pq.read_table(path, columns=["embedding", "model_version"]).slice(0, 1).to_pylist()
    dim = len(first[0]["embedding"]) if first else 0
    version = first[0]["model_version"] if first else "-"
    rows = [("sessions embedded", meta.num_rows), ("dimensions", dim), ("model version", version)]
    return Section("Session embeddings", table(["measure", "value"], rows))
