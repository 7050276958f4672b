"""Pooled test predictions -> the figures evaluation.json reports, with paired person-bootstrap CIs.

Every interval is a paired bootstrap over the evaluation people of the test rows: a replicate draws people
with replacement and weighs each row by how often its person was drawn, and every feature set, the exact
ceiling and the baseline are scored on the same replicate, so a difference's interval accounts for the
pairing. Log loss gets `Protocol.bootstrap` replicates; the other metrics a fifth as many (they cost more
per replicate and are secondary). Gains are absolute (baseline log loss minus the feature set's, in nats
per row; positive is better) and shares of the exact ceiling; a relative change is given only for log loss,
whose baseline is far from zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from clickintent.evaluate.metrics import CONVERSION_METRICS, TILE_METRICS, Metric, f1_scores, row_log_loss

Z = (2.5, 97.5)


@dataclass
class Pooled:
    """Test predictions of every feature set, pooled over the folds."""

    rows: np.ndarray  # [T] task rows that were scored
    fold: np.ndarray  # [T] the fold each row was scored in
    probs: dict[str, np.ndarray]  # feature set -> [T, C]
    decisions: dict[str, np.ndarray]  # feature set -> [T] class decided (conversion F1), else empty


def interval(values: np.ndarray) -> list[float]:
    lo, hi = np.percentile(values, Z)
    return [float(lo), float(hi)]


def _replicates(person: np.ndarray, n: int, seed: int, chunk: int = 100) -> Iterator[np.ndarray]:
    """Row-weight matrices [b, T] of `n` person-bootstrap replicates, in chunks."""
    _, index = np.unique(person, return_inverse=True)
    n_people = int(index.max()) + 1 if len(index) else 0
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        draws = rng.integers(0, n_people, size=(b, n_people))
        counts = np.stack([np.bincount(d, minlength=n_people) for d in draws])
        yield counts[:, index].astype(np.float64)


def summarise(task_name: str, y: np.ndarray, person: np.ndarray, pooled: Pooled, n_classes: int,
              exact: tuple[np.ndarray, np.ndarray] | None, bootstrap: int, seed: int,
              pairs: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:  # fmt: skip
    """Per feature set: metrics with CIs and per-fold values, gains against the baseline, ceiling shares.
    For each (a, b) of `pairs` present: the log-loss gain of a over b (`paired["a - b"]`) and the share of
    b's gain over the baseline that a keeps (`gain_kept["a / b"]`), with paired CIs."""
    names = list(pooled.probs)
    ll = np.stack([row_log_loss(pooled.probs[n], y) for n in names])  # [F, T]
    ceiling_rows = None if exact is None else row_log_loss(exact[1], y) - row_log_loss(exact[0], y)
    boot_ll, boot_ceiling = [], []
    for w in _replicates(person, bootstrap, seed):
        total = w.sum(axis=1)
        boot_ll.append((w @ ll.T) / total[:, None])
        if ceiling_rows is not None:
            boot_ceiling.append((w @ ceiling_rows) / total)
    b_ll = np.concatenate(boot_ll)  # [B, F]
    b_ceiling = np.concatenate(boot_ceiling) if boot_ceiling else None
    base = names.index("baseline")
    out: dict[str, Any] = {"test_rows": len(y), "test_people": len(np.unique(person)), "feature_sets": {}}
    if ceiling_rows is not None and b_ceiling is not None:
        out["ceiling"] = {"log_loss_gain": {"mean": float(ceiling_rows.mean()), "ci": interval(b_ceiling)},
                          "log_loss_profile": float(row_log_loss(exact[1], y).mean()),  # type: ignore[index]
                          "log_loss_full": float(row_log_loss(exact[0], y).mean())}  # type: ignore[index]  # fmt: skip
    others = _other_metrics(task_name, y, person, pooled, n_classes, max(bootstrap // 5, 20), seed + 1)
    for f, name in enumerate(names):
        gain, b_gain = float(ll[base].mean() - ll[f].mean()), b_ll[:, base] - b_ll[:, f]
        entry: dict[str, Any] = {"metrics": {"log_loss": {
            "mean": float(ll[f].mean()), "ci": interval(b_ll[:, f]),
            "per_fold": _per_fold(lambda r, f=f: float(ll[f][r].mean()), pooled.fold)}}}  # fmt: skip
        entry["metrics"].update(others[name]["metrics"])
        if name != "baseline":
            entry["log_loss_gain"] = {"mean": gain, "ci": interval(b_gain), "p": _p_value(b_gain)}
            entry["rel_log_loss"] = -gain / float(ll[base].mean())
            entry["resolved"] = bool(np.percentile(b_gain, Z[0]) > 0 or np.percentile(b_gain, Z[1]) < 0)
            entry["diff"] = others[name]["diff"]
            if b_ceiling is not None and ceiling_rows is not None and np.percentile(b_ceiling, Z[0]) > 0:
                # a share only of a ceiling that is there (never of a world that holds nothing)
                entry["ceiling_share"] = {"mean": gain / float(ceiling_rows.mean()), "ci": interval(b_gain / b_ceiling)}
        out["feature_sets"][name] = entry
    out["mde_log_loss"] = _mde(b_ll, base)
    out["paired"], out["gain_kept"] = {}, {}
    for a, b in pairs:
        if a in names and b in names:
            ia, ib = names.index(a), names.index(b)
            out["paired"][f"{a} - {b}"] = {"mean": float(ll[ib].mean() - ll[ia].mean()),
                                            "ci": interval(b_ll[:, ib] - b_ll[:, ia])}  # fmt: skip
            ga, gb = ll[base].mean() - ll[ia].mean(), ll[base].mean() - ll[ib].mean()
            ratio = (b_ll[:, base] - b_ll[:, ia]) / (b_ll[:, base] - b_ll[:, ib])
            out["gain_kept"][f"{a} / {b}"] = {"mean": float(ga / gb), "ci": interval(ratio)}
    return out


def _p_value(replicates: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no gain": twice the share of replicates on the far side of zero."""
    below, above = float((replicates <= 0).mean()), float((replicates >= 0).mean())
    return min(1.0, 2 * min(below, above))


def _per_fold(score: Any, fold: np.ndarray) -> list[float]:
    return [score(np.flatnonzero(fold == f)) for f in np.unique(fold)]


def _mde(b_ll: np.ndarray, base: int) -> float:
    """Minimum detectable log-loss gain at this size: 2.8 bootstrap SDs of a gain (95% CI, 80% power),
    taken as the median over the feature sets of their gains' SD."""
    sds = [float(np.std(b_ll[:, base] - b_ll[:, f])) for f in range(b_ll.shape[1]) if f != base]
    return 2.8 * float(np.median(sds)) if sds else float("nan")


def _other_metrics(task_name: str, y: np.ndarray, person: np.ndarray, pooled: Pooled, n_classes: int, n_boot: int,
                   seed: int) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Secondary metrics: value, CI, per-fold values and the paired difference from the baseline."""
    metrics: dict[str, Metric] = dict(TILE_METRICS if task_name == "tile ranking" else CONVERSION_METRICS)
    metrics.pop("log_loss")
    names = list(pooled.probs)
    ones = np.ones(len(y))

    def scores(name: str, w: np.ndarray) -> dict[str, float]:
        out = {m: fn(pooled.probs[name], y, w) for m, fn in metrics.items()}
        if len(pooled.decisions.get(name, ())):
            out.update(f1_scores(pooled.decisions[name], y, n_classes, w))
        return out

    def scores_rows(name: str, metric: str, rows: np.ndarray) -> float:
        w = np.zeros(len(y))
        w[rows] = 1.0
        return scores(name, w)[metric]

    point = {n: scores(n, ones) for n in names}
    boot: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for chunk in _replicates(person, n_boot, seed, chunk=n_boot):
        for w in chunk:
            for n in names:
                boot[n].append(scores(n, w))
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        entry: dict[str, Any] = {"metrics": {}, "diff": {}}
        for m, value in point[n].items():
            vals = np.array([b[m] for b in boot[n]])
            entry["metrics"][m] = {"mean": value, "ci": interval(vals), "per_fold": _per_fold(
                lambda r, n=n, m=m: scores_rows(n, m, r), pooled.fold)}  # fmt: skip
            if n != "baseline":
                base = np.array([b[m] for b in boot["baseline"]])
                entry["diff"][m] = {"mean": value - point["baseline"][m], "ci": interval(vals - base)}
        out[n] = entry
    return out
