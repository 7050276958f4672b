"""The one model class every feature set is judged with: a (masked) multinomial logit.

score(row, class c) = x_row . W[:, c] + b[c] (+ pos[position of c] for ranking), softmax over the classes
allowed for that row (for tile ranking: the tiles shown on that home-page view; for conversion: every
product and `none`). Fitted by full-batch L-BFGS (SciPy). The web columns get an L2 penalty picked on a
validation slice of the training rows (the latest 20% by time) on the first fold and kept for the others;
the baseline columns a small fixed one, so a useless web block can be shrunk away without the baseline.
The same code, the same search grid and the same standardisation for every feature set, so a difference
in a metric is a difference in the features. Rows may carry weights (the conversion task fits on all its
converting rows and a weighted sample of the others: run.py) and a fixed offset per class (the placebo check's
known profile probabilities: run.py). Left out: trees (LightGBM), class weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickintent.evaluate.metrics import log_loss

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
L2_BASE = 1e-3  # default penalty on the baseline columns (the baseline model's own choice is passed in)


@dataclass
class LogitData:
    X: np.ndarray  # [N, F] float32 features; the first `n_base` are the baseline's
    y: np.ndarray  # [N] int64 true class
    mask: np.ndarray | None = None  # [N, C] bool: classes allowed per row (None: all)
    position: np.ndarray | None = None  # [N, C] int64 screen position of each class (ranking), -1 if not shown
    n_base: int | None = None  # leading baseline columns (penalised by L2_BASE); None: all columns get `l2`
    weight: np.ndarray | None = None  # [N] row weights (None: all 1), e.g. for subsampled negatives
    offset: np.ndarray | None = None  # [N, C] fixed scores added to every class's (e.g. log of known probabilities)

    def take(self, rows: np.ndarray) -> LogitData:
        return LogitData(
            self.X[rows],
            self.y[rows],
            None if self.mask is None else self.mask[rows],
            None if self.position is None else self.position[rows],
            self.n_base,
            None if self.weight is None else self.weight[rows],
            None if self.offset is None else self.offset[rows],
        )


class MaskedLogit:
    """Estimator: `fit(data)` learns `W_`, `b_`, `pos_`; `predict_proba(data)` gives [N, C].

    numpy loss and gradient, SciPy's L-BFGS-B: for these small convex problems that is far faster than an
    autograd framework, and exactly reproducible.
    """

    def __init__(self, n_classes: int, l2: float = 1e-2, max_iter: int = 200, n_positions: int = 16,
                 l2_base: float = L2_BASE, warm_start: np.ndarray | None = None) -> None:  # fmt: skip
        self.n_classes = n_classes
        self.l2 = l2
        self.l2_base = l2_base
        self.max_iter = max_iter
        self.n_positions = n_positions
        # parameters of a fit on the same rows under another penalty to start from (choose_l2's path); never
        # another fold's, which saw this fold's test people
        self.warm_start = warm_start

    def _scores(self, X: np.ndarray, W: np.ndarray, b: np.ndarray, pos: np.ndarray, position: np.ndarray | None,
                mask: np.ndarray | None, offset: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
        s = X @ W + b  # [N, C]
        if offset is not None:
            s = s + offset
        if position is not None:
            s = s + pos[np.clip(position, 0, self.n_positions - 1)]
        if mask is not None:
            s = np.where(mask, s, -1e9)
        return s

    def fit(self, data: LogitData) -> MaskedLogit:
        from scipy.optimize import minimize

        w = np.ones(len(data.y)) if data.weight is None else data.weight.astype(np.float64)
        w = w / w.sum()
        self.mean_ = np.average(data.X, axis=0, weights=w).astype(np.float32)
        self.std_ = (np.sqrt(np.average((data.X - self.mean_) ** 2, axis=0, weights=w)) + 1e-6).astype(np.float32)
        # float32 products (the costly part, N x F x C) and float64 everywhere else: 2x faster, and the
        # optimiser still sees a smooth, exact-enough loss.
        X = ((data.X - self.mean_) / self.std_).astype(np.float32)
        N, F = X.shape
        C, P = self.n_classes, self.n_positions
        Y = np.zeros((N, C))
        Y[np.arange(N), data.y] = 1.0
        position, mask = data.position, data.mask
        shown = None if position is None else np.clip(position, 0, P - 1)
        # Per-column penalty: the web columns get the tuned `l2`, the baseline's a small fixed one, so a
        # large `l2` shrinks a useless web block to nothing instead of the baseline along with it.
        reg = np.full((F, 1), self.l2)
        if data.n_base is not None:
            reg[: data.n_base] = self.l2_base

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            W, b, pos = theta[: F * C].reshape(F, C), theta[F * C : F * C + C], theta[F * C + C :]
            s = self._scores(X, W.astype(np.float32), b, pos, position, mask, data.offset).astype(np.float64)
            s = s - s.max(axis=1, keepdims=True)
            e = np.exp(s)
            z = e.sum(axis=1, keepdims=True)
            probs = e / z
            loss = float(-(w * (s[np.arange(N), data.y] - np.log(z[:, 0]))).sum() + (reg * W**2).sum())
            G = (probs - Y) * w[:, None]  # [N, C]
            gW = (X.T @ G.astype(np.float32)).astype(np.float64) + 2 * reg * W
            gpos = np.zeros(P) if shown is None else np.bincount(shown.ravel(), weights=G.ravel(), minlength=P)
            return loss, np.concatenate([gW.ravel(), G.sum(axis=0), gpos])

        theta0 = np.zeros(F * C + C + P)
        if self.warm_start is not None and self.warm_start.shape == theta0.shape:
            theta0 = self.warm_start.copy()
        res = minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        theta = res.x
        self.theta_ = theta
        self.W_ = theta[: F * C].reshape(F, C)
        self.b_ = theta[F * C : F * C + C]
        self.pos_ = theta[F * C + C :]
        self.converged_ = bool(res.success)
        return self

    def predict_proba(self, data: LogitData) -> np.ndarray:
        X = ((data.X - self.mean_) / self.std_).astype(np.float64)
        s = self._scores(X, self.W_, self.b_, self.pos_, data.position, data.mask, data.offset)
        s = s - s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)


def validation_split(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, validation rows): the validation rows are the latest 20% by `order` (e.g. time)."""
    ranks = np.argsort(np.argsort(order, kind="stable"), kind="stable")
    val = ranks >= int(len(order) * 0.8)
    return np.flatnonzero(~val), np.flatnonzero(val)


def choose_l2(data: LogitData, order: np.ndarray, n_classes: int, l2_base: float = L2_BASE) -> float:
    """The L2 strength of `L2_GRID` with the lowest log loss on the validation slice (for the web columns
    when `data.n_base` is set, the baseline columns keeping `l2_base`)."""
    fit_rows, val_rows = validation_split(order)
    if len(val_rows) < 10 or len(fit_rows) < 10:
        return L2_GRID[1]
    losses: dict[float, float] = {}
    warm = None
    for l2 in sorted(L2_GRID, reverse=True):  # strongest penalty first: each fit starts from the previous one
        model = MaskedLogit(n_classes, l2, l2_base=l2_base, warm_start=warm).fit(data.take(fit_rows))
        warm = model.theta_
        p = model.predict_proba(data.take(val_rows))
        losses[l2] = log_loss(p, data.y[val_rows], None if data.weight is None else data.weight[val_rows])
    return min(L2_GRID, key=lambda l2: losses[l2])
