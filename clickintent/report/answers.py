"""The report's first screen: the answers in plain words and numbers, then the gain figures.

Per task, whether web visits help the app (the embedding's gain, its CI and, on simulated data, its share
of the world's exact ceiling) in one sentence; what visitors came for (the top labels); how well the labels
hold up (agreement and cost per label). Every number comes from a file a step wrote; a missing file makes
its sentence say so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clickintent.distill.report import DistillReport
from clickintent.report.html import Section, esc, pct, pct_ci
from clickintent.report.html import cap as _cap
from clickintent.report.results import gain_figure

UNITS = {"tile ranking": "home-page view", "conversion": "visit"}
HEADLINE_SET = "+ embedding"


def task_sentence(task: str, part: dict[str, Any]) -> str:
    entry = part["feature_sets"].get(HEADLINE_SET)
    name = esc(_cap(task))
    if entry is None or not entry.get("log_loss_gain"):
        return f"<b>{name}:</b> no embedding was evaluated, so this run does not answer it."
    g, unit = entry["log_loss_gain"], UNITS.get(task, "row")
    amount = f"{abs(g['mean']):.4f} nats per {unit} [95% CI {g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}]"
    ceiling = part.get("ceiling", {}).get("log_loss_gain")
    if entry.get("resolved") and g["mean"] > 0:
        text = f"<b>{name}: yes, web visits help.</b> Adding the session embedding lowers log loss by {amount}"
        if ceiling and entry.get("ceiling_share"):
            text += (f", {pct_ci(entry['ceiling_share'])} of the most the world's web intent allows "
                     f"(its exact ceiling, {ceiling['mean']:.4f})")
        return text + "."
    if entry.get("resolved"):
        return f"<b>{name}: no.</b> The session embedding makes log loss worse by {amount}."
    text = (f"<b>{name}: not resolved at this size.</b> The session embedding's gain is {g['mean']:+.4f} nats per "
            f"{unit} [95% CI {g['ci'][0]:+.4f}, {g['ci'][1]:+.4f}]")
    if part.get("mde_log_loss") is not None:
        text += f"; {part['test_rows']:,} test rows resolve gains of about {part['mde_log_loss']:.4f}"
    if ceiling and ceiling["ci"][0] > 0:
        text += f", and the world holds {ceiling['mean']:.4f} (its exact ceiling)"
    return text + "."


def label_sentences(shares: dict[str, float], names: dict[str, str], distill: DistillReport | None,
                    llm_usage: dict[str, Any] | None) -> list[str]:
    out = []
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:5]
    if top:
        out.append("<b>What visitors came for:</b> " + ", ".join(
            f"{esc(names.get(k, k))} ({pct(v)})" for k, v in top) + ".")
    if distill:
        a = distill.agreement
        text = (f"<b>How well the labels hold up:</b> the distilled labeller agrees with the LLM on "
                f"{pct(a.accuracy)} of held-out visits (Cohen's kappa {a.cohen_kappa:.2f})")
        t = distill.truth
        if t:
            text += (f"; against the simulated truth the LLM's labels are right for {pct(t.llm_accuracy)} of "
                     f"visits and the distilled ones for {pct(t.distilled_accuracy)}")
        out.append(text + ".")
    cost = []
    if llm_usage and llm_usage.get("seconds_per_label"):
        cost.append(f"an LLM label costs {llm_usage['seconds_per_label']:.2f} s ({esc(llm_usage.get('backend', ''))} "
                    f"model, {llm_usage.get('tokens', 0) / max(llm_usage.get('sessions', 1), 1):,.0f} tokens)")
    if distill and distill.latency_s:
        cost.append(f"a distilled label {distill.latency_s.p50 * 1e3:.1f} ms one visit at a time"
                    + (f", {distill.speedup:,.0f}x faster" if distill.speedup else ""))
    if cost:
        out.append("<b>Cost per label:</b> " + "; ".join(cost) + ".")
    return out


def answers_section(evaluation: Path, distill: Path, llm_usage: Path, shares: dict[str, float],
                    names: dict[str, str]) -> Section:
    items: list[str] = []
    res = json.loads(evaluation.read_text()) if evaluation.exists() else None
    figs = []
    if res is None:
        items.append("<b>Do web visits help the app?</b> Not evaluated: no evaluation.json "
                     "(run <code>clickintent evaluate</code>).")
    else:
        for task in ("tile ranking", "conversion"):
            if task in res.get("tasks", {}):
                items.append(task_sentence(task, res["tasks"][task]))
                figs.append(gain_figure(task, res["tasks"][task]))
            elif task in res.get("not_applicable", {}):
                items.append(f"<b>{esc(_cap(task))}: not measured here</b> "
                             f"({esc(res['not_applicable'][task])}).")
    d = DistillReport.load(distill) if distill.exists() else None
    usage = json.loads(llm_usage.read_text()) if llm_usage.exists() else None
    items += label_sentences(shares, names, d, usage)
    simulated = res is not None and res.get("simulated")
    badge = "<p><span class='badge'>simulated data</span> docs/SIMULATOR.md</p>" if simulated else ""
    body = f"{badge}<ul class='answers'>{''.join(f'<li>{i}</li>' for i in items)}</ul>"
    if figs:
        body += f"<div class='figs'>{''.join(figs)}</div>"
    return Section("The answers", body)
