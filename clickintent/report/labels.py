"""The taxonomy section: what visitors came for, as a treemap and a table, example visits the way a person
reads them (titles, search terms, the path) with their label and confidence, and the LLM labels against
the simulated truth.

Example visits come from the sessions the labels describe; their text was redacted at ingest and is escaped
here. Left out: the prompts the LLM saw (`clickintent taxonomy show` prints those visits as text).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from clickintent.report import figures
from clickintent.report.html import Section, esc, not_available, pct, table

MAX_STEPS = 8  # pages shown of one example visit


def taxonomy_section(path: Path, labels_path: Path, sim_dir: Path | None, sessions: Path | None,
                     distilled: Path | None = None) -> Section:
    title = "What visitors came for: the intent taxonomy"
    if not path.exists():
        return Section(title, not_available("Taxonomy", f"no {path.name}"))
    from clickintent.taxonomy import Taxonomy

    tax = Taxonomy.load(path)
    shares = label_shares(tax, distilled)
    body = f"<p>Taxonomy <code>{esc(tax.version)}</code>, made in <b>{esc(tax.mode)}</b> mode. "
    body += ("Shares are of every visit, from the distilled labels.</p>" if distilled and distilled.exists()
             else "Shares are of the visits the taxonomy was built from.</p>")
    body += figures.treemap("Intents by site section", {
        cat: [(lb.name, shares.get(lb.id, 0.0)) for lb in labels] for cat, labels in tax.categories().items()})
    rows = [(cat, lb.name, lb.description, pct(shares.get(lb.id, 0.0)))
            for cat, labels in tax.categories().items() for lb in labels]
    body += table(["category", "label", "description", "share"], rows)
    body += example_visits(tax, sessions, distilled)
    if labels_path.exists():
        labels = pq.read_table(labels_path)
        names = {lb.id: f"{lb.category} > {lb.name}" for lb in tax.labels}
        counts = Counter(labels.column("intent").to_pylist())
        body += (f"<h3>LLM labels on a sample of {labels.num_rows:,} visits</h3>"
                 + table(["label", "visits", "share"],
                         [(names.get(k, k), n, pct(n / labels.num_rows)) for k, n in counts.most_common()]))
        body += agreement_with_truth(labels, names, sim_dir, sessions)
    return Section(title, body)


def label_shares(tax: Any, distilled: Path | None) -> dict[str, float]:
    """Each label's share of all visits (distilled labels) or else of the taxonomy's own sample."""
    if distilled is not None and distilled.exists():
        intents = pq.read_table(distilled, columns=["intent"]).column("intent").to_pylist()
        if intents:
            return {k: n / len(intents) for k, n in Counter(intents).items()}
    return {lb.id: lb.share for lb in tax.labels}


def example_visits(tax: Any, sessions: Path | None, distilled: Path | None, per_label: int = 1) -> str:
    """One example visit per label as a numbered list of the pages a visitor saw."""
    if sessions is None or not sessions.exists():
        return ""
    wanted = {sid for lb in tax.labels for sid in lb.examples[:per_label]}
    if not wanted:
        return ""
    t = pq.read_table(sessions, columns=["session_id", "events"])
    t = t.filter(pc.is_in(t.column("session_id"), pa.array(sorted(wanted))))
    rows = {r["session_id"]: r for r in t.to_pylist()}
    confidence: dict[str, float] = {}
    if distilled is not None and distilled.exists():
        d = pq.read_table(distilled, columns=["session_id", "confidence"])
        d = d.filter(pc.is_in(d.column("session_id"), pa.array(sorted(wanted))))
        confidence = dict(zip(d.column("session_id").to_pylist(), d.column("confidence").to_pylist(), strict=True))
    parts = ["<h3>One example visit per label</h3>"]
    for lb in tax.labels:
        for sid in lb.examples[:per_label]:
            if sid in rows:
                conf = f", distilled confidence {confidence[sid]:.2f}" if sid in confidence else ""
                parts.append(f"<div class='visit'><b>{esc(lb.category)} &gt; {esc(lb.name)}</b>"
                             f"<span class='note'>{esc(conf)}</span>{visit_html(rows[sid]['events'])}</div>")
    return "".join(parts) if len(parts) > 1 else ""


def visit_html(events: list[dict[str, Any]]) -> str:
    """The pages of a visit: each page's title (or its path), a search's terms in quotes, the path small."""
    items = []
    for e in events[:MAX_STEPS]:
        page = (e.get("page") or "").split("/", 1)
        path = "/" + page[1] if len(page) > 1 else (e.get("page") or "")
        if e.get("search_query"):
            items.append(f"<li>searched <span class='q'>“{esc(e['search_query'])}”</span></li>")
        elif e.get("page_title"):
            items.append(f"<li>{esc(e['page_title'])} <span class='p'>{esc(path)}</span></li>")
        else:
            items.append(f"<li><span class='p'>{esc(path or e.get('event_type', ''))}</span></li>")
    more = f"<li class='note'>… {len(events) - MAX_STEPS} more</li>" if len(events) > MAX_STEPS else ""
    return f"<ol>{''.join(items)}{more}</ol>"


def agreement_with_truth(labels: pa.Table, names: dict[str, str], sim_dir: Path | None, sessions: Path | None) -> str:
    """For each true intent, the LLM label most of its sessions got (simulated data only)."""
    if sim_dir is None or sessions is None or not sessions.exists() or not (sim_dir / "truth").exists():
        return ""
    from clickintent.sim.join import true_intents

    visits = pq.read_table(sessions, columns=["session_id", "visitor_id", "platform", "start"])
    visits = visits.filter(pc.is_in(visits.column("session_id"), labels.column("session_id")))
    truth = true_intents(visits, sim_dir)
    pairs = Counter((truth[s] or "(bot)", lab) for s, lab in zip(labels.column("session_id").to_pylist(),
                                                                 labels.column("intent").to_pylist(), strict=True)
                    if s in truth)
    if not pairs:
        return ""
    top: dict[str, tuple[str, int]] = {}
    total: Counter[str] = Counter()
    for (intent, label), n in pairs.most_common():
        total[intent] += n
        top.setdefault(intent, (label, n))
    return "<h3>LLM labels against the simulated truth</h3>" + table(
        ["true intent", "most frequent LLM label", "share of that intent's visits"],
        [(k, names.get(v[0], v[0]), f"{pct(v[1] / total[k])} of {total[k]}") for k, v in sorted(top.items())],
    )
