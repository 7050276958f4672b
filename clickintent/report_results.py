"""Report sections for the results: the embedding map, the distillation and the downstream evaluation.

Each reads one output file (embeddings.parquet + labels, distill.json, evaluation.json) and renders HTML;
a missing file gives a "not available" note, never an error. The map is a PNG (matplotlib, Agg backend)
embedded as a data: URI, so the page stays one file that opens offline. Left out: interactive plots.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from clickintent.report import Section, not_available, table

MAP_POINTS = 2000


def map_section(embeddings: Path, labels: Path | None, names: dict[str, str], seed: int = 0) -> Section:
    """A 2-D t-SNE map of up to MAP_POINTS session embeddings, coloured by label."""
    title = "Map of sessions"
    if not embeddings.exists():
        return Section(title, not_available("Embedding map", f"no {embeddings.name}"))
    emb = pq.read_table(embeddings, columns=["session_id", "embedding"])
    if emb.num_rows < 10:
        return Section(title, not_available("Embedding map", "fewer than 10 sessions"))
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(emb.num_rows, min(MAP_POINTS, emb.num_rows), replace=False))
    emb = emb.take(take)
    X = emb.column("embedding").combine_chunks().flatten().to_numpy().reshape(emb.num_rows, -1)
    label_of: dict[str, str] = {}
    if labels is not None and labels.exists():
        lt = pq.read_table(labels, columns=["session_id", "intent"])
        label_of = dict(zip(lt.column("session_id").to_pylist(), lt.column("intent").to_pylist(), strict=True))
    ids = emb.column("session_id").to_pylist()
    groups = [names.get(label_of.get(s, ""), label_of.get(s, "unlabelled")) for s in ids]
    from sklearn.manifold import TSNE

    xy = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30, max_iter=500).fit_transform(X)
    png = _scatter_png(xy, groups)
    what = "distilled label" if label_of else "no labels"
    body = (
        f"<p>{len(ids):,} sessions (a random sample) placed by t-SNE of their embeddings, coloured by {what}. "
        "Nearby points are sessions the encoder finds alike.</p>"
        f'<img alt="map of session embeddings" style="max-width:100%" src="data:image/png;base64,{png}">'
    )
    return Section(title, body)


def _scatter_png(xy: np.ndarray, groups: list[str]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [g for g, _ in sorted(_counts(groups).items(), key=lambda kv: -kv[1])]
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(10, 7), dpi=90)
    for i, g in enumerate(order):
        m = np.array([x == g for x in groups])
        ax.scatter(xy[m, 0], xy[m, 1], s=6, alpha=0.7, color=cmap(i % 20), label=f"{g} ({m.sum()})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=2, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _counts(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def distill_section(path: Path) -> Section:
    title = "Distillation: the LLM's labels at embedding speed"
    if not path.exists():
        return Section(title, not_available("Distillation", f"no {path.name}"))
    rep = json.loads(path.read_text())
    a, e, s = rep["agreement"], rep["ece"], rep["split"]
    body = (
        f"<p>A logistic regression on session embeddings learnt the LLM's labels from {rep['labelled_sessions']:,} "
        f"LLM-labelled sessions, split by visitor: {s['train']} to fit, {s['validation']} to calibrate "
        f"(temperature {rep['temperature']:.2f}) and choose the <i>other</i> threshold ({rep['threshold']:.2f}), "
        f"{s['test']} held out.</p>"
    )
    rows: list[tuple[str, Any]] = [
        ("accuracy vs LLM labels (held out)", a["accuracy"]),
        ("macro-F1 vs LLM labels", a["macro_f1"]),
        ("Cohen's kappa vs LLM labels", a["cohen_kappa"]),
        ("expected calibration error, before / after temperature", f"{e['uncalibrated']:.3f} / {e['calibrated']:.3f}"),
    ]
    t = rep.get("truth")
    if t:
        rows += [
            ("LLM labels: accuracy vs true intent (simulated)", t["llm_accuracy"]),
            ("distilled labels: accuracy vs true intent (simulated)", t["distilled_accuracy"]),
            ("distillation drop, 1 - distilled / LLM", "-" if t["drop"] is None else f"{t['drop']:.1%}"),
        ]
    lat = rep.get("latency_s")
    if lat:
        rows.append(("distilled label latency, one session in-process (p50 / p99)",
                     f"{lat['p50'] * 1e3:.2f} ms / {lat['p99'] * 1e3:.2f} ms"))  # fmt: skip
    if lat and "batch_per_session" in lat:
        rows.append(("distilled label cost per session in a batch", f"{lat['batch_per_session'] * 1e3:.3f} ms"))
    if rep.get("llm_latency_s"):
        rows.append(("LLM label latency (mean per call, local Gemma, one session at a time)",
                     f"{rep['llm_latency_s']:.2f} s"))  # fmt: skip
        rows.append(("speed-up of the distilled labeller, one session at a time", f"{rep['speedup']:,.0f}x"))
        if rep.get("speedup_batch"):
            rows.append(("speed-up of the distilled labeller, per session in a batch", f"{rep['speedup_batch']:,.0f}x"))
    body += table(["measure", "value"], rows)
    if t:
        body += (
            '<p class="note">Accuracy against the truth reads both labelings through one map from each taxonomy '
            f"label to the true intent most of its training sessions have. Cross-fitted: {t['sessions']} "
            f"LLM-labelled sessions with a true intent, each scored by a classifier and a map fitted on the "
            f"other {t.get('folds', 5) - 1} of {t.get('folds', 5)} folds (split by visitor).</p>"
        )
    return Section(title, body)


def _ci(x: dict[str, Any] | None, fmt: str = "+.4f") -> str:
    if not x or x.get("mean") is None:
        return ""
    return f"{x['mean']:{fmt}} [{x['ci'][0]:{fmt}}, {x['ci'][1]:{fmt}}]"


def evaluation_section(path: Path) -> Section:
    title = "Do web sessions help the app? Downstream tasks"
    if not path.exists():
        return Section(title, not_available("Downstream evaluation", f"no {path.name}"))
    res = json.loads(path.read_text())
    sim = "simulated" if res.get("simulated") else "real"
    proto, cut = res.get("split", {}).get("protocol", {}), res.get("split", {}).get("cut", "")
    body = (
        f"<p>Models are fitted on evaluation people's rows before the time cut ({html.escape(str(cut))}) "
        f"and score other evaluation people's rows after it ({proto.get('folds', '?')} folds by person, pooled). "
        "A gain is the drop in log loss from the production baseline (profile, holdings, past app use), in nats "
        f"per row, with a paired person-bootstrap 95% CI ({sim} data). On simulated data the ceiling is the gain "
        "of the world's own probabilities with the web visit over those without it; a share is given only where "
        "the gain is resolved (its CI excludes zero). docs/EVALUATION.md says how to read it.</p>"
    )
    for task, why in res.get("not_applicable", {}).items():
        body += not_available(task.capitalize(), why)
    for task, tres in res.get("tasks", {}).items():
        for label, part in (("", tres), (" (visits with LLM labels)", tres.get("labelled"))):
            if not part:
                continue
            body += f"<h3>{html.escape(task.capitalize() + label)}</h3>"
            note = f"{part['test_rows']:,} test rows of {part['test_people']:,} people"
            if "ceiling" in part:
                note += f"; exact ceiling {_ci(part['ceiling']['log_loss_gain'])} nats per row"
            note += f"; smallest gain this size resolves about {part.get('mde_log_loss', float('nan')):.4f}"
            body += f"<p class='note'>{html.escape(note)}.</p>"
            rows = []
            for name, entry in part["feature_sets"].items():
                share = entry.get("ceiling_share")
                share_txt = (
                    ""
                    if share is None
                    else (_ci(share, ".0%") if entry.get("resolved") else "not resolved at this size")
                )
                rows.append([name, _ci(entry["metrics"]["log_loss"], ".4f"), _ci(entry.get("log_loss_gain")),
                             share_txt])  # fmt: skip
            body += table(["feature set", "log loss [95% CI]", "gain over baseline [95% CI]", "share of ceiling"], rows)
    comps = res.get("comparisons", [])
    if comps:
        rows = [[c["task"], f"{c['a']} vs {c['b']}", _ci(c["diff"]), f"{c['sessions']:,}",
                 "" if c.get("agreement") is None else f"{c['agreement']:.0%}"] for c in comps]  # fmt: skip
        body += "<h3>The paper's comparisons, each on the same visits</h3>"
        body += table(
            ["task", "comparison", "log-loss gain of the first [95% CI]", "test rows", "label agreement"], rows
        )
    return Section(title, body)
