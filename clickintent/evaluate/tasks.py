"""The two downstream tasks as rows a model can learn from.

**Tile ranking**: each clicked app home-page view of a customer who has a *linked* web visit that ended in
the look-back window (default 28 days) before the view; predict the clicked tile among the tiles shown. A
cookie is linked to a customer from the end of its first visit with a login (what a bank knows at that
time); the row's web features come from the customer's latest linked visit.

**Conversion**: each web visit (cut before its first application page, clickintent/cut.py); predict
which product the person applies for in the window after the visit (default 3 days), or none: the first
application by the visit's cookie or by the customer the cookie is linked to at the end of the visit (an
application in the app or at a branch carries the customer, not the cookie).

Each row carries its person key (protocol.py), its decision time and the time its outcome is known, so the
protocol keeps training rows before the cut and test rows after it. On simulated data a row also carries
the world's exact probabilities with and without the web visit (ceiling.py): the task's ceiling.
Left out: several visits per view, position debiasing beyond a per-position bias term.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clickintent.evaluate.features import CustomerFeatures, WebSessions
from clickintent.evaluate.protocol import Split

DAY_US = 86_400 * 1_000_000
NONE = "none"
# Half-lives (days) of the copies of each web block in the tile task: a generic basis from days to a month,
# not the simulator's own half-lives (chosen on development worlds, docs/EVALUATION.md).
DECAY_DAYS = (2.0, 7.0, 30.0)


@dataclass
class TaskData:
    """Rows of one task: a baseline matrix, which web visit each row uses, the outcome, who and when."""

    name: str
    classes: list[str]
    base: np.ndarray  # [N, b] production-baseline features
    session_row: np.ndarray  # [N] index into WebSessions (every row has one)
    recency_days: np.ndarray  # [N] days from the visit's end to the decision (0 for conversion)
    y: np.ndarray  # [N] class index
    mask: np.ndarray | None  # [N, C] classes allowed per row (tiles shown); None: all
    position: np.ndarray | None  # [N, C] screen position of each class (-1: not shown)
    person: np.ndarray  # [N] person key (protocol.py)
    time: np.ndarray  # [N] µs, the decision
    outcome_end: np.ndarray  # [N] µs, when the outcome is known
    exact_full: np.ndarray | None = None  # [N, C] the world's P(class) knowing everything (simulation only)
    exact_profile: np.ndarray | None = None  # [N, C] the same from the profile alone
    offset: np.ndarray | None = None  # [N, C] fixed scores every fit adds (with_profile_offset), or None

    def take(self, rows: np.ndarray) -> TaskData:
        def sub(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return TaskData(
            self.name, self.classes, self.base[rows], self.session_row[rows], self.recency_days[rows], self.y[rows],
            sub(self.mask), sub(self.position), self.person[rows], self.time[rows], self.outcome_end[rows],
            sub(self.exact_full), sub(self.exact_profile), sub(self.offset),
        )  # fmt: skip

    def with_profile_offset(self) -> TaskData:
        """The same rows with the log of the world's profile-only probabilities as every fit's offset: a
        baseline that knows segment, holdings, taste and who is a bot exactly (simulation only)."""
        if self.exact_profile is None:
            raise ValueError(f"{self.name}: no profile-only probabilities (only a simulated world has them)")
        out = self.take(np.arange(len(self.y)))
        out.offset = np.log(np.clip(self.exact_profile, 1e-12, None)).astype(np.float32)
        return out

    def matrix(self, web: WebSessions, blocks: list[str]) -> np.ndarray:
        """[N, F]: the baseline's columns, then the web blocks'. Where the visit is older than the decision
        (tile ranking), each web block comes once per half-life of DECAY_DAYS, scaled by how much of it is
        left: a linear model can then let a visit's pull fade, fast for some products and slow for others."""
        parts = [self.base]
        if blocks:
            parts.append(np.log1p(self.recency_days)[:, None].astype(np.float32))
        web_cols = [web.blocks[b].values[self.session_row] for b in blocks]
        if web_cols and self.recency_days.any():
            left = np.exp2(-self.recency_days[:, None] / np.asarray(DECAY_DAYS)[None, :]).astype(np.float32)
            web_cols = [col * left[:, [k]] for col in web_cols for k in range(len(DECAY_DAYS))]
        return np.hstack(parts + web_cols).astype(np.float32)


def links(web: WebSessions) -> dict[str, tuple[str, int]]:
    """cookie -> (customer, time from which the link is known): the end of its first visit with a login."""
    out: dict[str, tuple[str, int]] = {}
    for v, c, e in zip(web.visitor, web.customer, web.end, strict=True):
        if c and (v not in out or e < out[v][1]):
            out[v] = (c, int(e))
    return out


def tile_task(web: WebSessions, views: pa.Table, customers: CustomerFeatures, products: list[str], split: Split,
              lookback_days: float = 28) -> TaskData:  # fmt: skip
    """Rows of the tile task; `views` needs customer_id, ts, tiles_shown, tile_clicked (and, from the
    simulator, p_tiles and p_tiles_profile)."""
    linked = links(web)
    by_customer: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # customer -> [(end, link_t, row)]
    for i, v in enumerate(web.visitor):
        if v in linked:
            c, t = linked[v]
            by_customer[c].append((int(web.end[i]), t, i))
    for lst in by_customer.values():
        lst.sort()
    clicked = views.filter(pc.is_valid(views.column("tile_clicked")))
    exact = "p_tiles" in clicked.column_names and "p_tiles_profile" in clicked.column_names
    pidx = {p: i for i, p in enumerate(products)}
    C = len(products)
    rows, ys, masks, positions, recency, cust, times, full, prof = ([] for _ in range(9))
    look = int(lookback_days * DAY_US)
    names = ["customer_id", "tiles_shown", "tile_clicked"] + (["p_tiles", "p_tiles_profile"] if exact else [])
    cols = [clicked.column(c).to_pylist() for c in names]
    if not exact:
        cols += [[None] * clicked.num_rows] * 2
    ts = clicked.column("ts").cast(pa.int64()).to_numpy()
    for c, shown, tile, p_full, p_prof, t in zip(*cols, ts, strict=True):
        best = None
        for end, link_t, i in by_customer.get(c, ()):
            if end >= t:
                break
            if link_t <= t and end >= t - look:
                best = (end, i)
        if best is None or tile not in pidx:
            continue
        m = np.zeros(C, bool)
        pos = np.full(C, -1, np.int64)
        pf, pp = np.zeros(C), np.zeros(C)
        for k, p in enumerate(shown):
            if p in pidx:
                m[pidx[p]], pos[pidx[p]] = True, k
                if exact:
                    pf[pidx[p]], pp[pidx[p]] = p_full[k], p_prof[k]
        rows.append(best[1])
        ys.append(pidx[tile])
        masks.append(m)
        positions.append(pos)
        recency.append((t - best[0]) / DAY_US)
        cust.append(c)
        times.append(int(t))
        full.append(pf)
        prof.append(pp)
    n = len(rows)
    cust_arr = np.array(cust, dtype=object)
    return TaskData(
        name="tile ranking",
        classes=products,
        base=customers.rows(cust_arr) if n else np.zeros((0, customers.values.shape[1] + 1), np.float32),
        session_row=np.array(rows, np.int64),
        recency_days=np.array(recency, np.float64),
        y=np.array(ys, np.int64),
        mask=np.array(masks, bool).reshape(n, C),
        position=np.array(positions, np.int64).reshape(n, C),
        person=split.customer_keys(cust_arr),
        time=np.array(times, np.int64),
        outcome_end=np.array(times, np.int64),
        exact_full=np.array(full).reshape(n, C) if exact else None,
        exact_profile=np.array(prof).reshape(n, C) if exact else None,
    )


def conversion_task(web: WebSessions, conversions: pa.Table, customers: CustomerFeatures, products: list[str],
                    split: Split, window_days: float = 3,
                    exact: dict[str, tuple[np.ndarray, np.ndarray, float]] | None = None) -> TaskData:  # fmt: skip
    """Rows of the conversion task; `conversions` needs visitor_id, product, ts and may have customer_id.
    `exact`: session id -> (P full, P profile, P(app channel)) over [none, products] (ceiling.py)."""
    linked = links(web)
    by_visitor: dict[str, list[tuple[int, str]]] = defaultdict(list)
    by_customer: dict[str, list[tuple[int, str]]] = defaultdict(list)
    cust_col = conversions.column("customer_id").to_pylist() if "customer_id" in conversions.column_names else None
    cv, cp = conversions.column("visitor_id").to_pylist(), conversions.column("product").to_pylist()
    ct = conversions.column("ts").cast(pa.int64()).to_numpy()
    for i, (v, p, t) in enumerate(zip(cv, cp, ct, strict=True)):
        if v:
            by_visitor[v].append((int(t), p))
        if cust_col is not None and cust_col[i]:
            by_customer[cust_col[i]].append((int(t), p))
    for lst in (*by_visitor.values(), *by_customer.values()):
        lst.sort()
    classes = [NONE, *products]
    cidx = {p: i for i, p in enumerate(classes)}
    win = int(window_days * DAY_US)
    S = len(web.ids)
    known = np.array([c or (linked[v][0] if v in linked and linked[v][1] <= e else "")
                      for v, c, e in zip(web.visitor, web.customer, web.end, strict=True)], dtype=object)  # fmt: skip
    ys = np.zeros(S, np.int64)
    for i, (v, c, end) in enumerate(zip(web.visitor, known, web.end, strict=True)):
        hits = [(t, p) for t, p in (*by_visitor.get(v, ()), *by_customer.get(c, ())) if end < t <= end + win]
        if hits:
            ys[i] = cidx.get(min(hits)[1], 0)
    devices = sorted({d for d in web.device if d})
    dev = np.array([[d == x for x in devices] for d in web.device], np.float32).reshape(S, len(devices))
    full = prof = None
    if exact is not None:
        full, prof = np.zeros((S, len(classes))), np.zeros((S, len(classes)))
        for i, sid in enumerate(web.ids):
            if sid in exact:
                pf, pp, p_app = exact[sid]
                seen = 1.0 if known[i] else 1.0 - p_app  # an app application carries the customer, not the cookie
                full[i, 1:], prof[i, 1:] = pf[1:] * seen, pp[1:] * seen
                full[i, 0], prof[i, 0] = 1.0 - full[i, 1:].sum(), 1.0 - prof[i, 1:].sum()
            else:  # a bot: the world never lets one apply
                full[i, 0] = prof[i, 0] = 1.0
    return TaskData(
        name="conversion",
        classes=classes,
        base=np.hstack([customers.rows(known), dev]).astype(np.float32),
        session_row=np.arange(S),
        recency_days=np.zeros(S),
        y=ys,
        mask=None,
        position=None,
        person=split.visitor_keys(web.visitor),
        time=web.end.copy(),
        outcome_end=web.end + win,
        exact_full=full,
        exact_profile=prof,
    )
