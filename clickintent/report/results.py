"""Result sections: the downstream evaluation (tables, gain figures, the lift-vs-signal curve), the
distillation (with its reliability diagram) and the embedding map.

Each reads one output file (evaluation.json, evidence.json, distill.json, embeddings.parquet + labels) and
renders HTML; a missing file gives a "not available" note, never an error. The map is a PNG (matplotlib,
Agg backend) embedded as a data: URI, so the page stays one file that opens offline.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from clickintent.distill.report import DistillReport
from clickintent.report import figures
from clickintent.report.html import Section, esc, not_available, num_ci, pct, pct_ci, table
from clickintent.report.html import cap as _cap

MAP_POINTS = 2000
CURVE_SETS = ("exact ceiling", "+ embedding", "+ page bag", "+ true intent (oracle)")


def share_text(entry: dict[str, Any]) -> str:
    """A share of the ceiling only for a resolved gain: a share of noise says nothing (issue 21)."""
    share = entry.get("ceiling_share")
    if share is None:
        return ""
    return pct_ci(share) if entry.get("resolved") else "not resolved at this size"


def gain_figure(task: str, part: dict[str, Any]) -> str:
    bars = [figures.Bar(name, e["log_loss_gain"]["mean"], *e["log_loss_gain"]["ci"])
            for name, e in part["feature_sets"].items() if e.get("log_loss_gain")]
    c = part.get("ceiling", {}).get("log_loss_gain")
    ceiling = figures.Bar("exact ceiling", c["mean"], *c["ci"]) if c else None
    return figures.gain_bars(_cap(task), bars, ceiling)


def evaluation_section(path: Path, evidence: Path | None = None) -> Section:
    title = "Do web sessions help the app? The evidence"
    if not path.exists():
        return Section(title, not_available("Downstream evaluation", f"no {path.name}"))
    res = json.loads(path.read_text())
    sim = "simulated" if res.get("simulated") else "real"
    proto, cut = res.get("split", {}).get("protocol", {}), res.get("split", {}).get("cut", "")
    body = (
        f"<p>Models are fitted on evaluation people's rows before the time cut ({esc(cut)}) and score other "
        f"evaluation people's rows after it ({esc(proto.get('folds', '?'))} folds by person, pooled). A gain is "
        "the drop in log loss from the production baseline (profile, holdings, past app use), in nats per row, "
        f"with a paired person-bootstrap 95% CI ({sim} data). On simulated data the ceiling is the gain of the "
        "world's own probabilities with the web visit over those without it; a share of it is given only where "
        "the gain is resolved (its CI excludes zero). docs/EVALUATION.md says how to read it.</p>"
    )
    for task, why in res.get("not_applicable", {}).items():
        body += not_available(_cap(task), why)
    for task, tres in res.get("tasks", {}).items():
        for label, part in (("", tres), (" (visits with LLM labels)", tres.get("labelled"))):
            if not part:
                continue
            body += f"<h3>{esc(_cap(task + label))}</h3>"
            note = f"{part['test_rows']:,} test rows of {part['test_people']:,} people"
            if "ceiling" in part:
                note += f"; exact ceiling {num_ci(part['ceiling']['log_loss_gain'])} nats per row"
            if part.get("mde_log_loss") is not None:
                note += f"; the smallest gain this size resolves is about {part['mde_log_loss']:.4f}"
            body += f"<p class='note'>{esc(note)}.</p>"
            rows = [[name, num_ci(e["metrics"]["log_loss"], ".4f"), num_ci(e.get("log_loss_gain")), share_text(e)]
                    for name, e in part["feature_sets"].items()]
            body += table(["feature set", "log loss [95% CI]", "gain over baseline [95% CI]", "share of ceiling"],
                          rows)
    comps = res.get("comparisons", [])
    if comps:
        rows = [[c["task"], f"{c['a']} vs {c['b']}", num_ci(c["diff"]), f"{c['sessions']:,}",
                 "" if c.get("agreement") is None else pct(c["agreement"])] for c in comps]
        body += "<h3>The paper's comparisons, each on the same visits</h3>"
        body += table(["task", "comparison", "log-loss gain of the first [95% CI]", "test rows", "label agreement"],
                      rows)
    body += curve_figures(evidence)
    return Section(title, body)


def curve_figures(evidence: Path | None) -> str:
    """The lift-vs-signal curve of `python -m benchmarks.bench_evidence`, when its results file exists."""
    if evidence is None or not evidence.exists():
        return ""
    ev = json.loads(evidence.read_text())
    out = []
    for task in ("tile ranking", "conversion"):
        series: dict[str, list[tuple[float, float, float, float]]] = {}
        for row in ev.get("curve", []):
            if row["task"] == task and row["feature_set"] in CURVE_SETS:
                g = row["log_loss_gain"]
                series.setdefault(row["feature_set"], []).append((row["signal"], g["mean"], *g["ci"]))
        if series:
            out.append(figures.curve(f"{_cap(task)}: gain against signal", series))
    if not out:
        return ""
    seeds = ", ".join(str(s) for s in ev.get("seeds", []))
    return (f"<h3>Lift against signal (benchmark, world seeds {esc(seeds)}, {ev.get('visitors', '?'):,} visitors)</h3>"
            f"<div class='figs'>{''.join(out)}</div>")


def distill_section(path: Path) -> Section:
    title = "Distillation: the LLM's labels at embedding speed"
    if not path.exists():
        return Section(title, not_available("Distillation", f"no {path.name}"))
    rep = DistillReport.load(path)
    a, e, s = rep.agreement, rep.ece, rep.split
    body = (
        f"<p>A logistic regression on session embeddings learnt the LLM's labels from {rep.labelled_sessions:,} "
        f"LLM-labelled sessions, split by visitor: {s.train} to fit, {s.validation} to calibrate "
        f"(temperature {rep.temperature:.2f}) and choose the <i>other</i> threshold ({rep.threshold:.2f}), "
        f"{s.test} held out.</p>"
    )
    rows: list[tuple[str, Any]] = [
        ("agreement with the LLM's labels (held out)", pct(a.accuracy)),
        ("macro-F1 against the LLM's labels", f"{a.macro_f1:.2f}"),
        ("Cohen's kappa against the LLM's labels", f"{a.cohen_kappa:.2f}"),
        ("expected calibration error, before / after temperature", f"{e.uncalibrated:.3f} / {e.calibrated:.3f}"),
    ]
    t = rep.truth
    if t:
        rows += [
            ("LLM labels: accuracy against the true intent (simulated)", pct(t.llm_accuracy)),
            ("distilled labels: accuracy against the true intent (simulated)", pct(t.distilled_accuracy)),
            ("distillation drop, 1 - distilled / LLM", "-" if t.drop is None else pct(t.drop)),
        ]
    lat = rep.latency_s
    if lat:
        rows.append(("distilled label latency, one session in-process (p50 / p99)",
                     f"{lat.p50 * 1e3:.2f} ms / {lat.p99 * 1e3:.2f} ms"))
    if rep.llm_latency_s:
        rows.append(("LLM label latency (mean per call, local Gemma)", f"{rep.llm_latency_s:.2f} s"))
        rows.append(("speed-up of the distilled labeller, one session at a time", f"{rep.speedup or 0:,.0f}x"))
    body += table(["measure", "value"], rows)
    if rep.reliability:
        body += figures.reliability(rep.reliability)
    if t:
        body += (
            '<p class="note">Accuracy against the truth reads both labelings through one map from each taxonomy '
            f"label to the true intent most of its training sessions have. Cross-fitted: {t.sessions} "
            f"LLM-labelled sessions with a true intent, each scored by a classifier and a map fitted on the "
            f"other {t.folds - 1} of {t.folds} folds (split by visitor).</p>"
        )
    return Section(title, body)


def map_section(embeddings: Path, labels: Path | None, names: dict[str, str], seed: int = 0) -> Section:
    """A 2-D t-SNE map of up to MAP_POINTS session embeddings, coloured by label."""
    title = "Map of sessions"
    if not embeddings.exists():
        return Section(title, not_available("Embedding map", f"no {embeddings.name}"))
    emb = pq.read_table(embeddings, columns=["session_id", "embedding"])
    if emb.num_rows < 10:
        return Section(title, not_available("Embedding map", "fewer than 10 sessions"))
    rng = np.random.default_rng(seed)
    emb = emb.take(np.sort(rng.choice(emb.num_rows, min(MAP_POINTS, emb.num_rows), replace=False)))
    X = emb.column("embedding").combine_chunks().flatten().to_numpy().reshape(emb.num_rows, -1)
    label_of: dict[str, str] = {}
    if labels is not None and labels.exists():
        lt = pq.read_table(labels, columns=["session_id", "intent"])
        label_of = dict(zip(lt.column("session_id").to_pylist(), lt.column("intent").to_pylist(), strict=True))
    ids = emb.column("session_id").to_pylist()
    groups = [names.get(label_of.get(s, ""), label_of.get(s, "unlabelled")) for s in ids]
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(ids) - 1) / 3)
    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity, max_iter=500).fit_transform(X)
    what = "its distilled label" if label_of else "nothing (no labels)"
    alt = f"t-SNE map of {len(ids):,} session embeddings coloured by {what}"
    body = (
        f"<p>{len(ids):,} sessions (a random sample) placed by t-SNE of their embeddings, each coloured by {what}. "
        "Nearby points are sessions the encoder finds alike.</p>"
        f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{_scatter_png(xy, groups)}'>"
        f"<figcaption>{esc(alt)}; the legend gives each label's sessions in the sample.</figcaption></figure>"
    )
    return Section(title, body)


def _scatter_png(xy: np.ndarray, groups: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    order = sorted(counts, key=lambda g: -counts[g])
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(11, 7.5), dpi=90)
    for i, g in enumerate(order):
        m = np.array([x == g for x in groups])
        ax.scatter(xy[m, 0], xy[m, 1], s=9, alpha=0.75, color=cmap(i % 20), label=f"{g} ({counts[g]})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=11, markerscale=2.5, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
