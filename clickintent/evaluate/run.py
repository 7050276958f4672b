"""`evaluate`: every feature set on every task over several seeds, summarised with 95% CIs.

For each task and seed the split is drawn once and every feature set is fitted and scored on it, so the
changes against the baseline are paired. Reported per feature set and metric: the mean over seeds with a
95% t-interval, the relative change against the baseline (mean and 95% CI of the per-seed relative
changes, as arXiv 2606.26277 reports it), and the share of the oracle's lift captured
(lift / oracle lift, from the means). Seeds re-draw the test people, so the seeds' test sets overlap in
time and the intervals are somewhat optimistic; the placebo world (`--signal 0`) is the check that they
are not badly so. Left out: bootstrap intervals, significance corrections across feature sets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from clickintent.evaluate.features import (
    WebSessions,
    customer_features,
    embedding_block,
    labels_dict,
    one_hot_block,
    web_sessions,
)
from clickintent.evaluate.tasks import TaskData, conversion_task, run_once, split, tile_task

FEATURE_SETS: dict[str, list[str]] = {
    "baseline": [],
    "+ embedding": ["embedding"],
    "+ LLM labels": ["llm"],
    "+ distilled labels": ["distilled"],
    "+ embedding + distilled": ["embedding", "distilled"],
    "+ true intent (oracle)": ["oracle"],
}
HIGHER_IS_BETTER = {"macro_recall_at_1": True, "log_loss": False, "micro_f1": True, "macro_f1": True}
HEADLINE = {"tile ranking": ["macro_recall_at_1", "log_loss"], "conversion": ["micro_f1", "macro_f1"]}


@dataclass
class Inputs:
    sessions: pa.Table  # the sessions features come from (SESSIONS; cut before applications)
    products: list[str]
    customers: pa.Table | None = None
    app_views: pa.Table | None = None
    conversions: pa.Table | None = None
    embeddings: pa.Table | None = None
    llm_labels: pa.Table | None = None
    distilled_labels: pa.Table | None = None
    true_intents: dict[str, str] | None = None  # session id -> intent (simulation)
    label_classes: list[str] | None = None  # taxonomy label ids, for the one-hot columns


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) of a 95% t-interval; with one value the interval is the value itself."""
    x = np.asarray(values, np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, m, m
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def build_blocks(inputs: Inputs) -> WebSessions:
    web = web_sessions(inputs.sessions)
    if inputs.embeddings is not None:
        web.blocks["embedding"] = embedding_block(web, inputs.embeddings)
    if inputs.llm_labels is not None and inputs.llm_labels.num_rows:
        web.blocks["llm"] = one_hot_block("llm", web, labels_dict(inputs.llm_labels), inputs.label_classes)
    if inputs.distilled_labels is not None:
        web.blocks["distilled"] = one_hot_block(
            "distilled", web, labels_dict(inputs.distilled_labels), inputs.label_classes
        )
    if inputs.true_intents:
        web.blocks["oracle"] = one_hot_block("oracle", web, inputs.true_intents)
    return web


def evaluate(
    inputs: Inputs,
    *,
    seeds: int = 5,
    lookback_days: float = 14,
    window_days: float = 3,
    tasks: tuple[str, ...] = ("tile ranking", "conversion"),
    max_rows: int = 30_000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The evaluation as a JSON-ready dict (see the module docstring); tasks without their inputs are
    listed under `not_applicable` with the reason."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only spin against each other
        return _evaluate(inputs, seeds, lookback_days, window_days, tasks, max_rows, progress or (lambda _: None))


def _evaluate(
    inputs: Inputs,
    seeds: int,
    lookback_days: float,
    window_days: float,
    which: tuple[str, ...],
    max_rows: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    started = time.perf_counter()
    web = build_blocks(inputs)
    result: dict[str, Any] = {
        "seeds": seeds,
        "lookback_days": lookback_days,
        "window_days": window_days,
        "max_conversion_rows": max_rows,
        "coverage": {name: b.coverage for name, b in web.blocks.items()},
        "tasks": {},
        "not_applicable": {},
    }
    if inputs.customers is None:
        result["not_applicable"]["tile ranking"] = "no customers table (the app side is unknown)"
        result["not_applicable"]["conversion"] = "no customers table (the app side is unknown)"
        return result
    customers = customer_features(inputs.customers)
    tasks: list[TaskData] = []
    if "tile ranking" not in which:
        pass
    elif inputs.app_views is None:
        result["not_applicable"]["tile ranking"] = "no app home-page views"
    else:
        tasks.append(tile_task(web, inputs.app_views, customers, inputs.products, lookback_days))
    if "conversion" not in which:
        pass
    elif inputs.conversions is None:
        result["not_applicable"]["conversion"] = "no conversions table"
    else:
        conv = conversion_task(web, inputs.conversions, customers, inputs.products, window_days)
        tasks.append(conv.sample_people(max_rows))
    sets = {k: v for k, v in FEATURE_SETS.items() if all(b in web.blocks for b in v)}
    result["feature_sets"] = {k: v for k, v in sets.items()}
    result["skipped_feature_sets"] = sorted(set(FEATURE_SETS) - set(sets))
    for task in tasks:
        say(f"{task.name}: {len(task.y):,} rows, {len(sets)} feature sets x {seeds} seeds")
        per_seed: dict[str, list[dict[str, float]]] = {k: [] for k in sets}
        sizes = []
        l2: dict[str, float | None] = {k: None for k in sets}
        for seed in range(seeds):
            train, test = split(task, seed)
            sizes.append((len(train), len(test)))
            if len(train) < 20 or len(test) < 20:
                break
            for name, blocks in sets.items():  # "baseline" first: its penalty is the others' baseline penalty
                metrics, l2[name] = run_once(task, web, blocks, train, test, l2[name], l2["baseline"])
                per_seed[name].append(metrics)
            say(f"  seed {seed}: train {len(train):,}, test {len(test):,}")
        if not per_seed["baseline"]:
            result["not_applicable"][task.name] = f"too few rows to split ({len(task.y)} rows)"
            continue
        result["tasks"][task.name] = _summarise(task, per_seed, sizes)
    result["seconds"] = time.perf_counter() - started
    return result


def _summarise(
    task: TaskData, per_seed: dict[str, list[dict[str, float]]], sizes: list[tuple[int, int]]
) -> dict[str, Any]:
    metrics = list(per_seed["baseline"][0])
    base = per_seed["baseline"]
    oracle = per_seed.get("+ true intent (oracle)")
    out: dict[str, Any] = {
        "rows": len(task.y),
        "train_test_sizes": sizes,
        "classes": task.classes,
        "outcome_rate": float((task.y > 0).mean()) if task.mask is None else None,
        "feature_sets": {},
    }
    for name, runs in per_seed.items():
        entry: dict[str, Any] = {}
        for m in metrics:
            vals = [r[m] for r in runs]
            rel = [(r[m] - b[m]) / abs(b[m]) if b[m] else 0.0 for r, b in zip(runs, base, strict=True)]
            mean, lo, hi = mean_ci(vals)
            rmean, rlo, rhi = mean_ci(rel)
            e: dict[str, Any] = {"mean": mean, "ci": [lo, hi], "per_seed": vals, "rel": rmean, "rel_ci": [rlo, rhi]}
            if oracle:
                lift = np.mean(vals) - np.mean([b[m] for b in base])
                olift = np.mean([o[m] for o in oracle]) - np.mean([b[m] for b in base])
                e["oracle_share"] = float(lift / olift) if abs(olift) > 1e-12 else None
            entry[m] = e
        out["feature_sets"][name] = entry
    return out


def headline_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows for a terminal/HTML table: task, feature set, then `mean [lo, hi] (rel%)` per headline metric."""
    rows = []
    for task, res in result["tasks"].items():
        for name, entry in res["feature_sets"].items():
            cells = [task, name]
            for m in HEADLINE[task]:
                e = entry[m]
                rel = "" if name == "baseline" else f" ({e['rel']:+.1%})"
                cells.append(f"{e['mean']:.4f} [{e['ci'][0]:.4f}, {e['ci'][1]:.4f}]{rel}")
            rows.append(cells)
    return rows
