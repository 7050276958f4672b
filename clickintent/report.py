"""`report`: one self-contained HTML page a person can read, from a pipeline output directory.

Reads what the steps wrote under one directory (ingest_report.json, sessions.parquet, embeddings.parquet,
taxonomy.json, labels.parquet, the simulator's truth/) and renders each part that exists; a part
whose inputs are missing says so instead of failing. No scripts, no external assets: it opens offline.
What it leaves out for now: downstream metric tables and the embedding map (issue 6).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1d2733}
h1{font-size:1.7em}h2{border-bottom:1px solid #d5dbe3;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #d5dbe3;padding:.25em .6em;text-align:left}
th{background:#f1f4f8}td.n{text-align:right;font-variant-numeric:tabular-nums}.note{color:#5b6b7c}
.na{background:#fff8e6;border:1px solid #f0d58c;padding:.5em .8em}code{background:#f1f4f8;padding:0 .2em}
"""


@dataclass
class Section:
    title: str
    body: str  # HTML


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = f"{value:,}" if isinstance(value, int) else f"{value:,.3f}"
            return f'<td class="n">{text}</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def not_available(what: str, why: str) -> str:
    return f'<p class="na">{html.escape(what)}: not available here ({html.escape(why)}).</p>'


def ingest_section(run_dir: Path) -> Section:
    path = run_dir / "ingest_report.json"
    if not path.exists():
        return Section("Data", not_available("Ingest report", f"no {path.name}"))
    rep = json.loads(path.read_text())
    rows = [
        ("rows in", rep["rows_in"]),
        ("rows out (events.parquet)", rep["rows_out"]),
        ("quarantined", rep["quarantined"]),
        ("exact duplicates dropped", rep["duplicates"]),
        ("counts reconcile", "yes" if rep["reconciles"] else "NO"),
        ("timestamp unit", rep["ts_unit"]),
    ]
    body = f"<p>Input <code>{html.escape(rep['input'])}</code> ({html.escape(rep['format'])}).</p>"
    body += table(["", ""], rows)
    if rep["quarantine_reasons"]:
        body += "<h3>Quarantined rows by reason</h3>" + table(["reason", "rows"], rep["quarantine_reasons"].items())
    if rep["redactions"]:
        body += "<h3>PII redacted before storage</h3>" + table(["kind", "values"], rep["redactions"].items())
    return Section("Data", body)


def sessions_section(run_dir: Path) -> Section:
    path = run_dir / "sessions.parquet"
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
    return Section("Sessions", table(["", ""], rows))


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


def render(title: str, sections: Sequence[Section], notes: Sequence[str] = ()) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>{section.body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run_dir: Path, out: Path, sim_dir: Path | None = None, extra: Sequence[Section] = ()) -> Path:
    """Render the report for a pipeline directory into `out` (an .html file)."""
    sections = [simulation_section(sim_dir), ingest_section(run_dir), sessions_section(run_dir), *extra]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render("clickintent report", sections), encoding="utf-8")
    return out
