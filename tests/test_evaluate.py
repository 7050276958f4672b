"""Downstream evaluation: the model class, the metrics, the splits, and the placebo world.

The placebo test is the one that guards honesty: at `--signal 0` app clicks do not depend on web intent,
so no web feature set may show a lift whose CI excludes zero; at `--signal 1` the true intent must.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clickintent.cut import cut_sessions
from clickintent.evaluate.models import LogitData, MaskedLogit
from clickintent.evaluate.run import Inputs, evaluate, mean_ci
from clickintent.evaluate.tasks import conversion_decisions, f1_scores, split, tile_metrics


def test_masked_logit_gradient_and_mask() -> None:
    rng = np.random.default_rng(0)
    n, f, c = 400, 5, 4
    X = rng.normal(size=(n, f)).astype(np.float32)
    W = rng.normal(size=(f, c))
    y = (X @ W + rng.gumbel(size=(n, c))).argmax(axis=1)
    mask = np.ones((n, c), bool)
    mask[:, 3] = rng.random(n) < 0.5  # class 3 shown on half the rows
    y = np.where(mask[np.arange(n), y], y, 0)
    data = LogitData(X, y, mask)
    model = MaskedLogit(c, l2=1e-3).fit(data)
    probs = model.predict_proba(data)
    assert np.allclose(probs.sum(axis=1), 1)
    assert np.all(probs[~mask] < 1e-12), "a class that was not shown must get no probability"
    assert model.converged_
    # better than the class prior on the training data
    prior = np.bincount(y, minlength=c) / n
    assert -np.log(probs[np.arange(n), y]).mean() < -np.log(prior[y]).mean() - 0.2


def test_metrics_on_known_answers() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    y = np.array([0, 1, 1, 2])
    m = tile_metrics(probs, y)
    assert m["macro_recall_at_1"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.3, 0.6])))
    # conversion: class 0 is "none"
    assert list(conversion_decisions(probs, 0.5)) == [0, 1, 0, 2]
    f1 = f1_scores(np.array([0, 1, 0, 2]), np.array([0, 1, 1, 2]), 3)
    assert f1["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert f1["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)


def test_mean_ci() -> None:
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2 and lo < 2 < hi
    assert mean_ci([5.0]) == (5.0, 5.0, 5.0)


def test_split_is_by_person_and_time() -> None:
    from clickintent.evaluate.tasks import TaskData

    n = 2000
    rng = np.random.default_rng(1)
    t = np.sort(rng.integers(0, 10**9, n))
    task = TaskData(
        name="x", classes=["a", "b"], base=np.zeros((n, 1), np.float32), session_row=np.arange(n),
        recency_days=np.zeros(n), y=np.zeros(n, np.int64), mask=None, position=None,
        group=np.array([f"p{i % 97}" for i in range(n)], dtype=object), time=t, outcome_end=t + 10**7,
    )  # fmt: skip
    for seed in range(3):
        train, test = split(task, seed)
        assert len(train) and len(test)
        assert not set(task.group[train]) & set(task.group[test]), "a person on both sides"
        assert task.outcome_end[train].max() <= task.time[test].min(), "training saw the test period"


def _page_bag(sessions: pa.Table, dim: int = 32) -> pa.Table:
    """A cheap, real session vector: counts of pages, randomly projected (no training needed)."""
    pages: dict[str, int] = {}
    rows = []
    for evs in sessions.column("events").to_pylist():
        rows.append([pages.setdefault(e["page"], len(pages)) for e in evs])
    proj = np.random.default_rng(0).normal(size=(len(pages), dim)).astype(np.float32)
    vecs = [proj[r].sum(axis=0) / max(1, len(r)) for r in rows]
    return pa.table({"session_id": sessions.column("session_id"), "embedding": pa.array([v.tolist() for v in vecs],
                     pa.list_(pa.float32())), "model_version": ["bag"] * len(vecs)})  # fmt: skip


def _world(root: Path, signal: float) -> dict[str, Any]:
    from clickintent.ingest import IngestOptions, ingest
    from clickintent.sessionize import sessionize
    from clickintent.sim import PRODUCT_IDS, simulate
    from clickintent.sim.join import true_intents

    simulate(root / "sim", visitors=8000, days=30, seed=3, signal=signal, progress=False)
    ingest(root / "sim" / "events.parquet", root / "data", IngestOptions())
    sessionize(root / "data" / "events.parquet", root / "data" / "sessions.parquet")
    visits, _ = cut_sessions(pq.read_table(root / "data" / "sessions.parquet"))
    truth = root / "sim" / "truth"
    inputs = Inputs(
        sessions=visits, products=list(PRODUCT_IDS), customers=pq.read_table(truth / "customers.parquet"),
        app_views=pq.read_table(truth / "app_home.parquet"), embeddings=_page_bag(visits),
        true_intents=true_intents(visits, root / "sim"),
    )  # fmt: skip
    return {"inputs": inputs}


@pytest.mark.integration
def test_placebo_world_shows_no_lift_and_signal_world_does(tmp_path: Path) -> None:
    placebo = evaluate(_world(tmp_path / "s0", 0.0)["inputs"], tasks=("tile ranking",), seeds=5)
    for name, entry in placebo["tasks"]["tile ranking"]["feature_sets"].items():
        if name == "baseline":
            continue
        assert entry["macro_recall_at_1"]["rel_ci"][0] <= 0, f"{name}: recall lift in the placebo world"
        assert entry["log_loss"]["rel_ci"][1] >= 0, f"{name}: log-loss lift in the placebo world"
    signal = evaluate(_world(tmp_path / "s1", 1.0)["inputs"], tasks=("tile ranking",), seeds=5)
    oracle = signal["tasks"]["tile ranking"]["feature_sets"]["+ true intent (oracle)"]
    assert oracle["macro_recall_at_1"]["rel_ci"][0] > 0, "the true intent must help when web intent drives clicks"
