"""`evaluate`: every feature set on both tasks under the protocol, with the paper's three comparisons.

For each task the rows are built once (tasks.py), then for each evaluation fold f of the split
(protocol.py) every feature set is fitted with the same model (models.py) on the other folds' rows known
before the cut and predicts fold f's rows after it; test predictions are pooled over the folds and scored
with paired person-bootstrap CIs (summary.py), against the exact ceiling on simulated data (ceiling.py).
A guard checks, for every fit, that no person of the test fold and nothing after the cut is in it.

Feature sets (all with the production baseline): the session embedding, references (a TF-IDF bag of pages,
a randomly initialised encoder, CoLES, the true intent), the distilled labels, and the LLM labels. LLM
labels exist only for a sample, so the conversion task is also evaluated on the visits that carry them
(`labelled`), where the paper's comparisons (b) embedding vs LLM labels and (c) distilled vs LLM labels
are made on the same visits. docs/EVALUATION.md explains how to read the results.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from clickintent.evaluate.features import (
    WebSessions,
    customer_features,
    embedding_block,
    labels_dict,
    one_hot_block,
    page_bag_block,
    principal_components,
    web_sessions,
)
from clickintent.evaluate.metrics import best_threshold, decisions
from clickintent.evaluate.models import L2_BASE, LogitData, MaskedLogit, choose_l2, validation_split
from clickintent.evaluate.protocol import Split
from clickintent.evaluate.summary import Pooled, summarise
from clickintent.evaluate.tasks import TaskData, conversion_task, tile_task

FEATURE_SETS: dict[str, list[str]] = {
    "baseline": [],
    "+ page bag": ["pages"],
    "+ random encoder": ["random encoder"],
    "+ CoLES": ["coles"],
    "+ embedding": ["embedding"],
    "+ distilled labels": ["distilled"],
    "+ embedding + distilled": ["embedding", "distilled"],
    "+ true intent (oracle)": ["oracle"],
}
LABELLED_SETS: dict[str, list[str]] = {
    "baseline": [],
    "+ embedding": ["embedding"],
    "+ LLM labels": ["llm"],
    "+ distilled labels": ["distilled"],
}
EMBEDDING_BLOCKS = ("embedding", "random encoder", "coles")


@dataclass
class Inputs:
    sessions: pa.Table  # the visits features come from (SESSIONS, cut before applications)
    products: list[str]
    split: Split
    customers: pa.Table | None = None
    app_views: pa.Table | None = None
    conversions: pa.Table | None = None
    embeddings: dict[str, pa.Table] = field(default_factory=dict)  # block name (EMBEDDING_BLOCKS) -> table
    llm_labels: pa.Table | None = None
    distilled_labels: pa.Table | None = None
    true_intents: dict[str, str] | None = None  # session id -> intent (simulation)
    exact_visits: dict[str, tuple[np.ndarray, np.ndarray, float]] | None = None  # ceiling.visit_probabilities
    label_classes: list[str] | None = None  # taxonomy label ids, for the one-hot columns
    # Simulation only: every fit (the baseline's too) adds the log of the world's profile-only probabilities,
    # so a feature set gains only what the visit tells beyond segment, holdings, taste and bot status. The
    # production baseline lacks those for anonymous visitors, and a visit reveals them (a placebo world's
    # intents depend on the segment, a bot never applies): only against this baseline is signal 0 an exact
    # placebo (docs/EVALUATION.md, "The placebo").
    profile_baseline: bool = False


DENSE_DIMS = 32  # dense blocks enter the models as their first principal components (docs/EVALUATION.md)


def build_blocks(inputs: Inputs) -> WebSessions:
    web = web_sessions(inputs.sessions)
    learning = set(inputs.split.learning_visits(inputs.sessions).column("session_id").to_pylist())
    fit = np.array([sid in learning for sid in web.ids])
    web.blocks["pages"] = principal_components(page_bag_block(web, inputs.sessions, learning), fit, DENSE_DIMS)
    for name, table in inputs.embeddings.items():
        block = embedding_block(web, table)
        block.name = name
        web.blocks[name] = principal_components(block, fit, DENSE_DIMS)
    if inputs.llm_labels is not None and inputs.llm_labels.num_rows:
        web.blocks["llm"] = one_hot_block("llm", web, labels_dict(inputs.llm_labels), inputs.label_classes)
    if inputs.distilled_labels is not None:
        labels = labels_dict(inputs.distilled_labels)
        web.blocks["distilled"] = one_hot_block("distilled", web, labels, inputs.label_classes)
    if inputs.true_intents:
        web.blocks["oracle"] = one_hot_block("oracle", web, inputs.true_intents)
    return web


def evaluate(inputs: Inputs, *, lookback_days: float = 28, window_days: float = 3, max_rows: int = 40_000,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """The evaluation as a JSON-ready dict; tasks without their inputs are listed under `not_applicable`."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only spin against each other
        return _evaluate(inputs, lookback_days, window_days, max_rows, progress or (lambda _: None))


def _evaluate(inputs: Inputs, lookback_days: float, window_days: float, max_rows: int,
              say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    started = time.perf_counter()
    split = inputs.split
    web = build_blocks(inputs)
    result: dict[str, Any] = {
        "split": split.to_dict(), "lookback_days": lookback_days, "window_days": window_days,
        "baseline": "production + exact profile (simulation)" if inputs.profile_baseline else "production",
        "coverage": {name: b.coverage for name, b in web.blocks.items()},
        "tasks": {}, "comparisons": [], "not_applicable": {},
    }  # fmt: skip
    if inputs.customers is None:
        for task in ("tile ranking", "conversion"):
            result["not_applicable"][task] = "no customers table (the app side is unknown)"
        return result
    customers = customer_features(inputs.customers)
    sets = {k: v for k, v in FEATURE_SETS.items() if all(b in web.blocks for b in v)}
    result["feature_sets"] = sets
    if inputs.app_views is None:
        result["not_applicable"]["tile ranking"] = "no app home-page views"
    else:
        tiles = tile_task(web, inputs.app_views, customers, inputs.products, split, lookback_days)
        tiles = tiles.with_profile_offset() if inputs.profile_baseline else tiles
        tile_result = _try_task(result, "tile ranking", lambda: _run_task(tiles, web, sets, split, say))
        if tile_result is not None:
            result["tasks"]["tile ranking"] = tile_result
    if inputs.conversions is None:
        result["not_applicable"]["conversion"] = "no conversions table"
    else:
        conv = conversion_task(web, inputs.conversions, customers, inputs.products, split, window_days,
                               inputs.exact_visits)  # fmt: skip
        conv = sample_people(conv.take(np.flatnonzero(split.folds_of_keys(conv.person) >= 0)), split, max_rows)
        conv = conv.with_profile_offset() if inputs.profile_baseline else conv
        conv_result = _try_task(result, "conversion", lambda: _run_task(conv, web, sets, split, say))
        if conv_result is not None:
            result["tasks"]["conversion"] = conv_result
        if conv_result is not None and "llm" in web.blocks:
            labelled = set(labels_dict(inputs.llm_labels).keys()) if inputs.llm_labels is not None else set()
            rows = np.flatnonzero([web.ids[i] in labelled for i in conv.session_row])
            lab_sets = {k: v for k, v in LABELLED_SETS.items() if all(b in web.blocks for b in v)}
            lab = _try_task(result, "conversion (visits with LLM labels)",
                            lambda: _run_task(conv.take(rows), web, lab_sets, split, say, label="labelled visits"))
            if lab is not None:
                result["tasks"]["conversion"]["labelled"] = lab
                result["comparisons"] += _labelled_comparisons(lab, conv.take(rows), web, inputs)
    if "tile ranking" in result["tasks"]:
        result["comparisons"].insert(0, _comparison("tile ranking", "+ embedding", "baseline",
                                                    result["tasks"]["tile ranking"]))  # fmt: skip
    result["comparisons"] = [c for c in result["comparisons"] if c is not None]
    result["seconds"] = time.perf_counter() - started
    return result


class TooSmall(ValueError):
    """A task with too few rows to fit in some fold: reported as not applicable, with this reason."""


def _try_task(result: dict[str, Any], name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """`run()`, or None with the reason under `not_applicable` when the data are too small for it."""
    try:
        return run()
    except TooSmall as exc:
        result["not_applicable"][name] = str(exc)
        return None


def sample_people(task: TaskData, split: Split, max_rows: int) -> TaskData:
    """At most about `max_rows` rows, keeping whole people (a hash of the person key), so evaluation time
    stays bounded on big worlds without splitting anyone's rows."""
    if len(task.y) <= max_rows:
        return task
    import hashlib

    u = np.array([int(hashlib.md5(f"sample:{split.protocol.seed}:{p}".encode()).hexdigest()[:8], 16) / 2**32
                  for p in task.person])  # fmt: skip
    return task.take(np.flatnonzero(u < max_rows / len(task.y)))


PAIRS = (("+ embedding", "+ LLM labels"), ("+ distilled labels", "+ LLM labels"), ("+ embedding", "+ CoLES"))


def _run_task(task: TaskData, web: WebSessions, sets: dict[str, list[str]], split: Split,
              say: Callable[[str], None], label: str = "") -> dict[str, Any]:  # fmt: skip
    pooled = fit_folds(task, web, sets, split, say, label)
    rows = pooled.rows
    exact = None
    if task.exact_full is not None and task.exact_profile is not None:
        exact = (task.exact_full[rows], task.exact_profile[rows])
    out = summarise(task.name, task.y[rows], task.person[rows], pooled, len(task.classes), exact,
                    split.protocol.bootstrap, split.protocol.seed, PAIRS)  # fmt: skip
    out["rows"] = len(task.y)
    out["classes"] = task.classes
    out["outcome_rate"] = float((task.y[rows] > 0).mean()) if task.mask is None and len(rows) else None
    return out


def fit_folds(task: TaskData, web: WebSessions, sets: dict[str, list[str]], split: Split,
              say: Callable[[str], None], label: str = "") -> Pooled:  # fmt: skip
    """Fit every feature set on each fold's training rows and pool the test predictions."""
    folds = split.folds_of_keys(task.person)
    evaluation = folds >= 0
    test_rows = np.flatnonzero(evaluation & (task.time >= split.cut_us) & (task.outcome_end <= split.end_us))
    C = len(task.classes)
    pooled = Pooled(test_rows, folds[test_rows], {n: np.zeros((len(test_rows), C)) for n in sets},
                    {n: np.zeros(len(test_rows), np.int64) for n in sets} if task.mask is None else {})  # fmt: skip
    l2: dict[str, float | None] = dict.fromkeys(sets)
    say(f"{task.name}{' (' + label + ')' if label else ''}: {len(task.y):,} rows, {len(test_rows):,} scored, "
        f"{len(sets)} feature sets x {split.protocol.folds} folds")  # fmt: skip
    for f in range(split.protocol.folds):
        train = np.flatnonzero(evaluation & (folds != f) & (task.outcome_end <= split.cut_us))
        at = np.flatnonzero(pooled.fold == f)
        test = test_rows[at]
        if len(test) == 0:
            continue
        check_no_leak(task, train, test, split)
        if len(train) < 20:
            raise TooSmall(f"only {len(train)} training rows in fold {f}: too few people for this task")
        for name, blocks in sets.items():  # "baseline" first: its penalty is the others' baseline penalty
            probs, decided, l2[name] = fit_predict(task, web, blocks, train, test, l2[name], l2["baseline"])
            pooled.probs[name][at] = probs
            if task.mask is None:
                pooled.decisions[name][at] = decided
    return pooled


def check_no_leak(task: TaskData, train: np.ndarray, test: np.ndarray, split: Split) -> None:
    """Fail if a fit would see a test person, a representation person, or an outcome after the cut."""
    overlap = set(task.person[train]) & set(task.person[test])
    folds = split.folds_of_keys(task.person[train])
    if overlap or (folds < 0).any() or (task.outcome_end[train] > split.cut_us).any():
        raise AssertionError(f"{task.name}: a fit would see test people ({len(overlap)}), representation people "
                             f"or outcomes after the cut")  # fmt: skip
    if (task.time[test] < split.cut_us).any():
        raise AssertionError(f"{task.name}: a test row is from before the cut")


def fit_predict(task: TaskData, web: WebSessions, blocks: list[str], train: np.ndarray, test: np.ndarray,
                l2: float | None, l2_base: float | None) -> tuple[np.ndarray, np.ndarray, float]:  # fmt: skip
    """(test probabilities, conversion decisions, L2 used), fitted on the train rows.

    `l2` None picks it on the validation slice (the latest 20% of the training rows). The baseline (`blocks`
    empty) tunes one penalty for all its columns; a web feature set keeps the baseline's (`l2_base`) on the
    baseline columns and tunes its own on the web columns. Conversion fits on the other 80% and picks its
    decision threshold for micro F1 on the validation slice.
    """
    X = task.matrix(web, blocks)
    n_base = task.base.shape[1] if blocks and l2_base is not None else None
    data = LogitData(X, task.y, task.mask, task.position, n_base=n_base, offset=task.offset)
    everything = train
    if task.mask is None:  # conversion: every converting row, a weighted share of the rest (the fit's cost)
        train, data.weight = _sample_negatives(task, train)
    base_pen = l2_base if l2_base is not None else L2_BASE
    if l2 is None:
        l2 = choose_l2(data.take(train), task.time[train], len(task.classes), base_pen)
    if task.mask is not None:
        model = MaskedLogit(len(task.classes), l2, l2_base=base_pen).fit(data.take(train))
        return model.predict_proba(data.take(test)), np.zeros(0, np.int64), l2
    # the threshold is chosen on the latest 20% of all training rows, after a fit on the rest
    fit_idx, val_idx = validation_split(task.time[everything])
    fit_rows = np.intersect1d(train, everything[fit_idx])
    model = MaskedLogit(len(task.classes), l2, l2_base=base_pen).fit(data.take(fit_rows))
    val = everything[val_idx]
    threshold = best_threshold(model.predict_proba(data.take(val)), task.y[val])
    probs = model.predict_proba(data.take(test))
    return probs, decisions(probs, threshold), l2


NEGATIVE_SHARE = 0.25  # conversion: the share of non-converting training rows fitted on (each weighted 1/share)


def _sample_negatives(task: TaskData, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, weights over all task rows): the converting training rows and a hashed NEGATIVE_SHARE of the
    others, weighted so the fit's loss is an unbiased estimate of the loss on every training row."""
    u = (np.arange(len(task.y)) * 2_654_435_761 % 2**32) / 2**32  # fixed per row: the same rows every fit
    keep = (task.y[train] > 0) | (u[train] < NEGATIVE_SHARE)
    weight = np.where(task.y > 0, 1.0, 1.0 / NEGATIVE_SHARE)
    return train[keep], weight


def _comparison(task: str, a: str, b: str, res: dict[str, Any], **extra: Any) -> dict[str, Any] | None:
    """{task, a, b, metric, diff: {mean, ci}, sessions}: log-loss gain of `a` over `b` (positive: a is better)."""
    fs = res["feature_sets"]
    if a not in fs or b not in fs:
        return None
    diff = fs[a]["log_loss_gain"] if b == "baseline" else res["paired"][f"{a} - {b}"]
    return {"task": task, "a": a, "b": b, "metric": "log_loss_gain", "diff": diff, "sessions": res["test_rows"],
            **extra}  # fmt: skip


def _labelled_comparisons(lab: dict[str, Any], task: TaskData, web: WebSessions, inputs: Inputs) -> list[Any]:
    """(b) + embedding vs + LLM labels and (c) + distilled labels vs + LLM labels, on the labelled visits."""
    out = [_comparison("conversion", "+ embedding", "+ LLM labels", lab)]
    agreement = None
    if inputs.llm_labels is not None and inputs.distilled_labels is not None:
        llm, dist = labels_dict(inputs.llm_labels), labels_dict(inputs.distilled_labels)
        ids = [web.ids[i] for i in task.session_row]
        pairs = [(llm[s], dist[s]) for s in ids if s in llm and s in dist]
        agreement = float(np.mean([a == b for a, b in pairs])) if pairs else None
    kept = lab["gain_kept"].get("+ distilled labels / + LLM labels")
    out.append(_comparison("conversion", "+ distilled labels", "+ LLM labels", lab, agreement=agreement,
                           gain_kept=kept))  # fmt: skip
    return out
