"""`report`: one self-contained HTML page a person can read, from a pipeline output directory.

Reads what the steps wrote under one directory (ingest_report.json, sessions.parquet, embeddings.parquet,
taxonomy.json, labels.parquet, the simulator's truth/) and renders each part that exists; a part
whose inputs are missing says so instead of failing. No scripts, no external assets: it opens offline.
The result sections (map, distillation, downstream tables) live in report_results.py.
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
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1d2733}
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
    body += table(["measure", "value"], rows)
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


def taxonomy_section(path: Path, labels_path: Path, sim_dir: Path | None, sessions: Path | None = None) -> Section:
    if not path.exists():
        return Section("Intent taxonomy", not_available("Taxonomy", f"no {path.name}"))
    from clickintent.taxonomy import Taxonomy

    tax = Taxonomy.load(path)
    body = f"<p>Taxonomy <code>{html.escape(tax.version)}</code>, made in <b>{html.escape(tax.mode)}</b> mode.</p>"
    rows = []
    for category, labels in tax.categories().items():
        for lb in labels:
            rows.append((category, lb.name, lb.description, f"{lb.share:.1%}", ", ".join(lb.examples[:2])))
    body += table(["category", "label", "description", "share", "example sessions"], rows)
    body += _example_visits(tax, sessions)
    if labels_path.exists():
        labels = pq.read_table(labels_path)
        names = {lb.id: f"{lb.category} > {lb.name}" for lb in tax.labels}
        counts = Counter(labels.column("intent").to_pylist())
        mean_conf = pc.mean(labels.column("confidence")).as_py() or 0.0
        body += (
            f"<h3>LLM labels on a sample of {labels.num_rows:,} sessions</h3>"
            f"<p>Mean confidence {mean_conf:.2f}.</p>"
            + table(["label", "sessions", "share"],
                    [(names.get(k, k), n, f"{n / labels.num_rows:.1%}") for k, n in counts.most_common()])
        )  # fmt: skip
        body += _agreement_with_truth(labels, names, sim_dir)
    return Section("Intent taxonomy", body)


def _example_visits(tax: Any, sessions: Path | None, per_label: int = 1) -> str:
    """One example visit per label, rendered as the LLM saw it (PII already redacted at ingest)."""
    if sessions is None or not sessions.exists():
        return ""
    import pyarrow as pa

    from clickintent.taxonomy.render import render_session

    wanted = {sid for lb in tax.labels for sid in lb.examples[:per_label]}
    if not wanted:
        return ""
    t = pq.read_table(sessions, columns=["session_id", "platform", "events"])
    t = t.filter(pc.is_in(t.column("session_id"), pa.array(sorted(wanted))))
    rows = {r["session_id"]: r for r in t.to_pylist()}
    parts = ["<h3>Example visits</h3>"]
    for lb in tax.labels:
        for sid in lb.examples[:per_label]:
            if sid in rows:
                text = render_session(rows[sid]["events"], rows[sid]["platform"], max_steps=12)
                parts.append(
                    f"<details><summary>{html.escape(lb.category)} &gt; {html.escape(lb.name)} "
                    f"<code>{html.escape(sid)}</code></summary><pre>{html.escape(text)}</pre></details>"
                )
    return "".join(parts) if len(parts) > 1 else ""


def _agreement_with_truth(labels: Any, names: dict[str, str], sim_dir: Path | None) -> str:
    """Crosstab of LLM labels against the simulator's true intents (matched by visitor and start)."""
    sessions = sim_dir and sim_dir.parent / "data" / "sessions.parquet"
    if sim_dir is None or not sessions or not sessions.exists():
        return ""
    import duckdb

    truth = sim_dir / "truth" / "sessions.parquet"
    with duckdb.connect() as con:
        con.register("labels", labels)
        rows = con.execute(
            f"""SELECT t.intent, l.intent AS label, count(*) AS n
            FROM labels l JOIN read_parquet('{sessions}') s USING (session_id)
            JOIN read_parquet('{truth}') t ON t.visitor_id = s.visitor_id AND t.start = s.start
            GROUP BY ALL ORDER BY t.intent, n DESC"""
        ).fetchall()
    if not rows:
        return ""
    top: dict[str, tuple[str, int, int]] = {}
    for intent, label, n in rows:
        best = top.get(intent or "(bot)")
        total = (best[2] if best else 0) + n
        top[intent or "(bot)"] = (best[0], best[1], total) if best and best[1] >= n else (label, n, total)
    return "<h3>Against the simulated truth</h3>" + table(
        ["true intent", "most frequent LLM label", "share of that intent's sessions"],
        [(k, names.get(v[0], v[0]), f"{v[1] / v[2]:.0%} of {v[2]}") for k, v in sorted(top.items())],
    )


def embeddings_section(path: Path) -> Section:
    if not path.exists():
        return Section("Session embeddings", not_available("Embeddings", f"no {path.name}"))
    meta = pq.read_metadata(path)
    first = pq.read_table(path, columns=["embedding", "model_version"]).slice(0, 1).to_pylist()
    dim = len(first[0]["embedding"]) if first else 0
    version = first[0]["model_version"] if first else "-"
    rows = [("sessions embedded", meta.num_rows), ("dimensions", dim), ("model version", version)]
    return Section("Session embeddings", table(["measure", "value"], rows))


def render(title: str, sections: Sequence[Section], notes: Sequence[str] = ()) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>{section.body}</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


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
) -> Path:
    """Render the report for a pipeline directory into `out` (an .html file).

    `run_dir` holds ingest_report.json and sessions.parquet; the other paths default to files in it.
    `sessions` are the sessions the labels describe (example visits are rendered from them).
    """
    from clickintent.report_results import distill_section, evaluation_section, map_section

    tax_path = taxonomy or run_dir / "taxonomy.json"
    names: dict[str, str] = {}
    if tax_path.exists():
        from clickintent.taxonomy import Taxonomy

        names = {lb.id: f"{lb.category} > {lb.name}" for lb in Taxonomy.load(tax_path).labels}
    emb = embeddings or run_dir / "embeddings.parquet"
    sections = [
        simulation_section(sim_dir),
        evaluation_section(evaluation or run_dir / "evaluation.json"),
        ingest_section(run_dir),
        sessions_section(run_dir),
        embeddings_section(emb),
        map_section(emb, distilled or labels or run_dir / "labels.parquet", names),
        taxonomy_section(
            tax_path, labels or run_dir / "labels.parquet", sim_dir, sessions or run_dir / "sessions.parquet"
        ),
        distill_section(distill_json or run_dir / "distill.json"),
        *extra,
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render("clickintent report", sections), encoding="utf-8")
    return out
