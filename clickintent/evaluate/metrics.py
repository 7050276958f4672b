"""Metrics of the two tasks, each taking row weights so a person bootstrap is one call per replicate.

Log loss is the primary metric of both tasks (it scores the whole predicted distribution, and the exact
ceiling is stated in it). Tile ranking also reports macro Recall@1 (recall of the top tile, averaged over
clicked products) and MRR (mean reciprocal rank of the clicked tile among those shown). Conversion also
reports PR-AUC of "applies for anything" (1 - P(none)), top-1 product accuracy among the rows that convert,
and micro / macro F1 over products with `none` as the negative class, at a threshold on the top product's
probability chosen on the training rows' validation slice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]  # (probs [N, C], y [N], weights [N]) -> value
HIGHER_IS_BETTER = {"log_loss": False, "macro_recall_at_1": True, "mrr": True, "pr_auc": True,
                    "top1_accuracy": True, "micro_f1": True, "macro_f1": True}  # fmt: skip


def row_log_loss(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[N] -log P(observed class), clipped at 1e-12."""
    return -np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))


def log_loss(probs: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    return float(np.average(row_log_loss(probs, y), weights=w))


def macro_recall_at_1(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    hit = probs.argmax(axis=1) == y
    num = np.bincount(y, weights=w * hit, minlength=probs.shape[1])
    den = np.bincount(y, weights=w, minlength=probs.shape[1])
    present = den > 0
    return float((num[present] / den[present]).mean()) if present.any() else 0.0


def mrr(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Rank 1 is the most likely class; classes a row may not have (probability 0) never outrank it."""
    p_true = probs[np.arange(len(y)), y]
    rank = 1 + (probs > p_true[:, None]).sum(axis=1)
    return float(np.average(1.0 / rank, weights=w))


def pr_auc(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Average precision of 1 - P(none) for "converts at all" (class 0 is none)."""
    from sklearn.metrics import average_precision_score

    pos = y > 0
    if not (w[pos] > 0).any():  # no converter carries weight (a bootstrap draw may leave them all out)
        return 0.0
    return float(average_precision_score(pos, 1.0 - probs[:, 0], sample_weight=w))


def top1_accuracy(probs: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Among rows that convert: how often the most likely product is the one applied for."""
    pos = y > 0
    if not pos.any() or w[pos].sum() == 0:
        return 0.0
    best = probs[:, 1:].argmax(axis=1) + 1
    return float(np.average(best[pos] == y[pos], weights=w[pos]))


def decisions(probs: np.ndarray, threshold: float) -> np.ndarray:
    """The top product when its probability reaches `threshold`, else none (class 0)."""
    best = probs[:, 1:].argmax(axis=1) + 1
    return np.where(probs[np.arange(len(best)), best] >= threshold, best, 0)


def f1_scores(pred: np.ndarray, y: np.ndarray, n_classes: int, w: np.ndarray | None = None) -> dict[str, float]:
    """micro F1 over the product classes (class 0, none, is the negative) and macro F1 over products in y."""
    w = np.ones(len(y)) if w is None else w
    tp = float(w[(pred == y) & (y > 0)].sum())
    fp = float(w[(pred > 0) & (pred != y)].sum())
    fn = float(w[(y > 0) & (pred != y)].sum())
    micro = 2 * tp / max(2 * tp + fp + fn, 1e-12)
    per = []
    for c in range(1, n_classes):
        support = float(w[y == c].sum())
        if support > 0:
            tpc = float(w[(pred == c) & (y == c)].sum())
            per.append(2 * tpc / (float(w[pred == c].sum()) + support))
    return {"micro_f1": micro, "macro_f1": float(np.mean(per)) if per else 0.0}


def best_threshold(probs: np.ndarray, y: np.ndarray) -> float:
    """The threshold on the top product's probability with the best micro F1 (on validation rows)."""
    top = probs[:, 1:].max(axis=1)
    grid = np.unique(np.round(np.quantile(top, np.linspace(0, 1, 101)), 4)) if len(top) else np.array([0.5])
    scores = [f1_scores(decisions(probs, t), y, probs.shape[1])["micro_f1"] for t in grid]
    return float(grid[int(np.argmax(scores))])


TILE_METRICS: dict[str, Metric] = {"log_loss": log_loss, "macro_recall_at_1": macro_recall_at_1, "mrr": mrr}
CONVERSION_METRICS: dict[str, Metric] = {"log_loss": log_loss, "pr_auc": pr_auc, "top1_accuracy": top1_accuracy}
