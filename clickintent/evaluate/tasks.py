"""The two downstream tasks, their honest splits, and their metrics.

**Tile ranking**: each app home-page view with a click, of a customer who has a *linked* web session that
ended in the look-back window (default 14 days) before the view; predict the clicked tile among the
tiles shown. A web cookie is linked to a customer from the end of the first session in which it logged in
(what a real system can know at that time); the view's web features come from the latest linked session.
Metrics: macro Recall@1 (recall of the top-1 tile, averaged over clicked products) and log loss.

**Conversion**: each web session (cut before its first application page, see clickintent/cut.py);
predict which product the visitor (same cookie) applies for in the window after the session (default 3
days), or none. Metrics: micro F1 over products (none counts as a negative) and macro F1; the decision
threshold on the top product's probability is chosen on the validation slice of the training rows.

Splits are by time *and* by person: a seed draws which customers (tiles) or visitors (conversion) are
test; training rows are those before the time cut (whose outcome window also closed before it), test
rows those after it, so nothing from the future and nobody from the test group is seen in training.
Left out: several sessions per view, position debiasing beyond a per-position bias term.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from clickintent.evaluate.features import CustomerFeatures, WebSessions
from clickintent.evaluate.models import L2_BASE, LogitData, MaskedLogit, choose_l2, log_loss, validation_split

DAY_US = 86_400 * 1_000_000
NONE = "none"


@dataclass
class TaskData:
    """Rows of one task: a baseline matrix, which web session each row uses, outcome, split keys."""

    name: str
    classes: list[str]
    base: np.ndarray  # [N, b]
    session_row: np.ndarray  # [N] index into WebSessions (every row has one)
    recency_days: np.ndarray  # [N] days from the session's end to the decision time (0 for conversion)
    y: np.ndarray  # [N]
    mask: np.ndarray | None  # [N, C]
    position: np.ndarray | None  # [N, C]
    group: np.ndarray  # [N] person key for the split
    time: np.ndarray  # [N] µs, decision time
    outcome_end: np.ndarray  # [N] µs, when the outcome is known

    def take(self, rows: np.ndarray) -> TaskData:
        return TaskData(
            self.name, self.classes, self.base[rows], self.session_row[rows], self.recency_days[rows], self.y[rows],
            None if self.mask is None else self.mask[rows], None if self.position is None else self.position[rows],
            self.group[rows], self.time[rows], self.outcome_end[rows],
        )  # fmt: skip

    def sample_people(self, max_rows: int) -> TaskData:
        """At most about `max_rows` rows, keeping whole people (hash of the person key), so evaluation time
        stays bounded on big worlds without mixing anyone's rows across the split."""
        if len(self.y) <= max_rows:
            return self
        u = np.array([int(hashlib.md5(f"sample:{g}".encode()).hexdigest()[:8], 16) / 2**32 for g in self.group])
        return self.take(np.flatnonzero(u < max_rows / len(self.y)))

    def matrix(self, web: WebSessions, blocks: list[str]) -> np.ndarray:
        parts = [self.base]
        if blocks:
            parts.append(np.log1p(self.recency_days)[:, None].astype(np.float32))
        parts += [web.blocks[b].values[self.session_row] for b in blocks]
        return np.hstack(parts).astype(np.float32)


def _links(web: WebSessions) -> dict[str, tuple[str, int]]:
    """visitor -> (customer, time from which the link is known) from sessions that logged in."""
    links: dict[str, tuple[str, int]] = {}
    for v, c, e in zip(web.visitor, web.customer, web.end, strict=True):
        if c and (v not in links or e < links[v][1]):
            links[v] = (c, int(e))
    return links


def tile_task(
    web: WebSessions, views: pa.Table, customers: CustomerFeatures, products: list[str], lookback_days: float = 14
) -> TaskData:
    links = _links(web)
    by_customer: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # customer -> [(end, link_t, row)]
    for i, v in enumerate(web.visitor):
        if v in links:
            c, t = links[v]
            by_customer[c].append((int(web.end[i]), t, i))
    for lst in by_customer.values():
        lst.sort()
    clicked = views.filter(pa.compute.is_valid(views.column("tile_clicked")))
    pidx = {p: i for i, p in enumerate(products)}
    rows, ys, masks, positions, recency, cust, times = [], [], [], [], [], [], []
    look = int(lookback_days * DAY_US)
    cols = [clicked.column(c).to_pylist() for c in ("customer_id", "tiles_shown", "tile_clicked")]
    ts = clicked.column("ts").cast(pa.int64()).to_numpy()
    for c, shown, tile, t in zip(*cols, ts, strict=True):
        best = None
        for end, link_t, i in by_customer.get(c, ()):
            if end >= t:
                break
            if link_t <= t and end >= t - look:
                best = (end, i)
        if best is None or tile not in pidx:
            continue
        m = np.zeros(len(products), bool)
        pos = np.full(len(products), -1, np.int64)
        for k, p in enumerate(shown):
            if p in pidx:
                m[pidx[p]] = True
                pos[pidx[p]] = k
        rows.append(best[1])
        ys.append(pidx[tile])
        masks.append(m)
        positions.append(pos)
        recency.append((t - best[0]) / DAY_US)
        cust.append(c)
        times.append(int(t))
    n = len(rows)
    cust_arr = np.array(cust, dtype=object)
    return TaskData(
        name="tile ranking",
        classes=products,
        base=customers.rows(cust_arr) if n else np.zeros((0, customers.values.shape[1] + 1), np.float32),
        session_row=np.array(rows, np.int64),
        recency_days=np.array(recency, np.float64),
        y=np.array(ys, np.int64),
        mask=np.array(masks, bool).reshape(n, len(products)),
        position=np.array(positions, np.int64).reshape(n, len(products)),
        group=cust_arr,
        time=np.array(times, np.int64),
        outcome_end=np.array(times, np.int64),
    )


def conversion_task(
    web: WebSessions, conversions: pa.Table, customers: CustomerFeatures, products: list[str], window_days: float = 3
) -> TaskData:
    links = _links(web)
    conv: dict[str, list[tuple[int, str]]] = defaultdict(list)
    cv = conversions.column("visitor_id").to_pylist()
    cp = conversions.column("product").to_pylist()
    ct = conversions.column("ts").cast(pa.int64()).to_numpy()
    for v, p, t in zip(cv, cp, ct, strict=True):
        if v:
            conv[v].append((int(t), p))
    for lst in conv.values():
        lst.sort()
    classes = [NONE, *products]
    cidx = {p: i for i, p in enumerate(classes)}
    win = int(window_days * DAY_US)
    ys = np.zeros(len(web.ids), np.int64)
    for i, (v, end) in enumerate(zip(web.visitor, web.end, strict=True)):
        for t, p in conv.get(v, ()):
            if end <= t <= end + win and p in cidx:
                ys[i] = cidx[p]
                break
    known = np.array(
        [
            c or (links[v][0] if v in links and links[v][1] <= e else "")
            for v, c, e in zip(web.visitor, web.customer, web.end, strict=True)
        ],
        dtype=object,
    )
    devices = sorted({d for d in web.device if d})
    dev = np.array([[d == x for x in devices] for d in web.device], np.float32).reshape(len(web.ids), len(devices))
    base = np.hstack([customers.rows(known), dev]).astype(np.float32)
    return TaskData(
        name="conversion",
        classes=classes,
        base=base,
        session_row=np.arange(len(web.ids)),
        recency_days=np.zeros(len(web.ids)),
        y=ys,
        mask=None,
        position=None,
        group=web.visitor.copy(),
        time=web.end.copy(),
        outcome_end=web.end + win,
    )


def split(task: TaskData, seed: int, test_share: float = 0.3, time_cut: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows): people hashed with the seed into test/train, time cut at `time_cut` of the span."""
    if not len(task.y):
        return np.array([], np.int64), np.array([], np.int64)
    h = np.array([int(hashlib.md5(f"{seed}:{g}".encode()).hexdigest()[:8], 16) / 2**32 for g in task.group])
    test_people = h < test_share
    lo, hi = task.time.min(), task.outcome_end.max()
    cut = lo + (hi - lo) * time_cut
    train = ~test_people & (task.outcome_end <= cut)
    test = test_people & (task.time >= cut) & (task.outcome_end <= hi)
    return np.flatnonzero(train), np.flatnonzero(test)


def tile_metrics(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    top = probs.argmax(axis=1)
    recalls = [float((top[y == c] == c).mean()) for c in np.unique(y)]
    return {"macro_recall_at_1": float(np.mean(recalls)), "log_loss": log_loss(probs, y)}


def conversion_decisions(probs: np.ndarray, threshold: float) -> np.ndarray:
    """The top product when its probability reaches `threshold`, else none (class 0)."""
    best = probs[:, 1:].argmax(axis=1) + 1
    return np.where(probs[np.arange(len(best)), best] >= threshold, best, 0)


def f1_scores(pred: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    """micro F1 over the product classes (class 0, none, is the negative) and macro F1 over products in y."""
    tp = int(((pred == y) & (y > 0)).sum())
    fp = int(((pred > 0) & (pred != y)).sum())
    fn = int(((y > 0) & (pred != y)).sum())
    micro = 2 * tp / max(1, 2 * tp + fp + fn)
    per = []
    for c in range(1, n_classes):
        if (y == c).any():
            tpc = int(((pred == c) & (y == c)).sum())
            per.append(2 * tpc / max(1, int((pred == c).sum()) + int((y == c).sum())))
    return {"micro_f1": micro, "macro_f1": float(np.mean(per)) if per else 0.0}


def run_once(
    task: TaskData,
    web: WebSessions,
    blocks: list[str],
    train: np.ndarray,
    test: np.ndarray,
    l2: float | None = None,
    l2_base: float | None = None,
) -> tuple[dict[str, float], float]:
    """(test metrics, L2 used): fit on the train rows with the given web blocks, score the test rows.

    `l2` None picks it on the validation slice (latest 20% of the training rows). The baseline (`blocks`
    empty) tunes one penalty for all its columns; a web feature set keeps the baseline's (`l2_base`) on the
    baseline columns and tunes its own on the web columns. Conversion fits on the other 80% and picks
    its decision threshold for micro F1 on the validation slice.
    """
    X = task.matrix(web, blocks)
    n_base = task.base.shape[1] if blocks and l2_base is not None else None
    data = LogitData(X, task.y, task.mask, task.position, n_base=n_base)
    base_pen = l2_base if l2_base is not None else L2_BASE
    if l2 is None:
        l2 = choose_l2(data.take(train), task.time[train], len(task.classes), base_pen)
    if task.mask is not None:
        model = MaskedLogit(len(task.classes), l2, l2_base=base_pen).fit(data.take(train))
        return tile_metrics(model.predict_proba(data.take(test)), task.y[test]), l2
    fit_idx, val_idx = validation_split(task.time[train])
    fit_rows, val_rows = train[fit_idx], train[val_idx]
    model = MaskedLogit(len(task.classes), l2, l2_base=base_pen).fit(data.take(fit_rows))
    vprobs = model.predict_proba(data.take(val_rows))
    grid = np.unique(np.round(np.quantile(vprobs[:, 1:].max(axis=1), np.linspace(0, 1, 101)), 4))
    scores = [f1_scores(conversion_decisions(vprobs, t), task.y[val_rows], len(task.classes))["micro_f1"] for t in grid]
    threshold = float(grid[int(np.argmax(scores))]) if len(grid) else 0.5
    probs = model.predict_proba(data.take(test))
    out = f1_scores(conversion_decisions(probs, threshold), task.y[test], len(task.classes))
    out["log_loss"] = log_loss(probs, task.y[test])
    return out, l2
