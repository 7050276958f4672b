"""Downstream evaluation, the fast parts: the model class, the metrics, person keys, the split, the
bootstrap summary. The protocol's integration tests (placebo with power, no leak, no trace of the cut) are
in tests/test_protocol.py."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from clickintent.evaluate.clusters import cluster_scores, many_to_one
from clickintent.evaluate.metrics import decisions, f1_scores, log_loss, macro_recall_at_1, mrr, top1_accuracy
from clickintent.evaluate.models import LogitData, MaskedLogit
from clickintent.evaluate.people import PersonKeys, linked_person_keys
from clickintent.evaluate.protocol import REPRESENTATION, Protocol, Split
from clickintent.evaluate.run import check_no_leak
from clickintent.evaluate.summary import Pooled, summarise
from clickintent.evaluate.tasks import TaskData


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
    prior = np.bincount(y, minlength=c) / n
    assert -np.log(probs[np.arange(n), y]).mean() < -np.log(prior[y]).mean() - 0.2


def test_row_weights_are_the_same_as_repeated_rows() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    w = rng.integers(1, 4, 300).astype(float)
    rep = np.repeat(np.arange(300), w.astype(int))
    a = MaskedLogit(3, 1e-2).fit(LogitData(X, y, weight=w)).predict_proba(LogitData(X, y))
    b = MaskedLogit(3, 1e-2).fit(LogitData(X[rep], y[rep])).predict_proba(LogitData(X, y))
    assert np.allclose(a, b, atol=2e-3)


def test_metrics_on_known_answers() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.1, 0.3], [0.2, 0.2, 0.6]])
    y = np.array([0, 1, 1, 2])
    ones = np.ones(4)
    assert macro_recall_at_1(probs, y, ones) == pytest.approx((1 + 0.5 + 1) / 3)
    assert mrr(probs, y, ones) == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert log_loss(probs, y) == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.1, 0.6])))
    assert top1_accuracy(probs, y, ones) == pytest.approx(2 / 3)  # rows 2-4 convert; row 3's top product is 2, not 1
    assert list(decisions(probs, 0.5)) == [0, 1, 0, 2]  # class 0 is none
    f1 = f1_scores(np.array([0, 1, 0, 2]), y, 3)
    assert f1["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))
    assert f1["macro_f1"] == pytest.approx((2 / 3 + 1) / 2)
    # a weight of 2 is the same as the row twice
    w = np.array([2.0, 1, 1, 1])
    twice = np.r_[0, np.arange(4)]
    assert mrr(probs, y, w) == pytest.approx(mrr(probs[twice], y[twice], np.ones(5)))


def test_person_keys_join_cookies_through_logins() -> None:
    sessions = pa.table({"visitor_id": ["a", "b", "c", "app1", "d"], "customer_id": ["C1", None, "C1", "C1", None]})
    keys = linked_person_keys(sessions)
    assert keys.of_visitor("a") == keys.of_visitor("c") == keys.of_visitor("app1") == keys.of_customer("C1")
    assert keys.of_visitor("b") != keys.of_visitor("a") and keys.of_visitor("d") == "v:d"


def _split(cut: int = 500, folds: int = 5, seed: int = 0) -> Split:
    return Split(Protocol(folds=folds, seed=seed), 0, 1000, cut, PersonKeys())


def test_roles_are_stable_and_shared_as_asked() -> None:
    s = _split()
    keys = [f"v:{i}" for i in range(20_000)]
    folds = s.folds_of_keys(keys)
    assert np.array_equal(folds, _split().folds_of_keys(keys)), "the same seed must give the same roles"
    assert (folds == REPRESENTATION).mean() == pytest.approx(0.4, abs=0.02)
    counts = np.bincount(folds[folds >= 0])
    assert len(counts) == 5 and counts.min() > 0.9 * counts.mean()
    assert not np.array_equal(folds, _split(seed=1).folds_of_keys(keys))


def _task(n: int = 3000) -> TaskData:
    rng = np.random.default_rng(2)
    t = np.sort(rng.integers(0, 1000, n))
    return TaskData(
        name="x", classes=["a", "b"], base=np.zeros((n, 1), np.float32), session_row=np.arange(n),
        recency_days=np.zeros(n), y=rng.integers(0, 2, n), mask=None, position=None,
        person=np.array([f"v:{i % 300}" for i in range(n)], dtype=object), time=t, outcome_end=t + 10,
    )  # fmt: skip


def test_the_leak_guard_refuses_test_people_and_the_future() -> None:
    task, s = _task(), _split()
    folds = s.folds_of_keys(task.person)
    test = np.flatnonzero((folds == 0) & (task.time >= s.cut_us))
    good = np.flatnonzero((folds > 0) & (task.outcome_end <= s.cut_us))
    check_no_leak(task, good, test, s)
    with pytest.raises(AssertionError):
        check_no_leak(task, np.r_[good, test[:1]], test, s)  # a test person in the fit
    with pytest.raises(AssertionError):
        check_no_leak(task, np.r_[good, np.flatnonzero(folds == REPRESENTATION)[:1]], test, s)
    with pytest.raises(AssertionError):
        late = np.flatnonzero((folds > 0) & (task.outcome_end > s.cut_us))[:1]
        check_no_leak(task, np.r_[good, late], test, s)  # an outcome known only after the cut


def test_summary_ceiling_shares_and_paired_intervals() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    y = (rng.random(n) < 0.3).astype(int)
    truth = np.where(y[:, None] == np.arange(2), 0.8, 0.2)  # a model that knows the answer well
    flat = np.full((n, 2), 0.5)
    half = (truth + flat) / 2
    person = np.array([f"p{i % 800}" for i in range(n)], dtype=object)
    pooled = Pooled(np.arange(n), np.arange(n) % 5, {"baseline": flat, "+ half": half, "+ all": truth}, {})
    out = summarise("conversion", y, person, pooled, 2, (truth, flat), 200, 0, (("+ half", "+ all"),))
    fs = out["feature_sets"]
    assert fs["+ all"]["ceiling_share"]["mean"] == pytest.approx(1.0)
    lo, hi = fs["+ half"]["ceiling_share"]["ci"]
    assert (
        0.5 < fs["+ half"]["ceiling_share"]["mean"] < 1.0
        and lo - 1e-9 <= fs["+ half"]["ceiling_share"]["mean"] <= hi + 1e-9
    )
    assert fs["+ half"]["resolved"] and out["paired"]["+ half - + all"]["ci"][1] < 0
    assert len(fs["baseline"]["metrics"]["log_loss"]["per_fold"]) == 5


def test_cluster_scores_on_hand_made_labellings() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    renamed = cluster_scores(["x", "x", "x", "y", "y", "z"], truth)  # the same partition, other names
    assert (renamed.nmi, renamed.ari, renamed.many_to_one, renamed.labels_used) == pytest.approx((1, 1, 1, 3))
    one = cluster_scores(["x"] * 6, truth)  # one label for everything: no information
    assert (one.nmi, one.ari) == pytest.approx((0, 0)) and one.many_to_one == pytest.approx(3 / 6)
    singletons = cluster_scores([str(i) for i in range(6)], truth)  # many-to-one rewards splitting; ARI does not
    assert singletons.many_to_one == 1 and singletons.ari < 0.1 and singletons.nmi < 1
    # x -> a (2 right), y -> a or b (1 right): 3 of 4; pairs agreeing (1) equal the chance expectation: ARI 0.
    half = cluster_scores(["x", "x", "y", "y"], ["a", "a", "a", "b"])
    assert half.many_to_one == 0.75 and half.ari == pytest.approx(0.0, abs=1e-12)
    assert half.as_dict() == {"nmi": round(half.nmi, 4), "ari": 0.0, "many_to_one": 0.75, "labels_used": 2}
    assert many_to_one([], []) == 0
    with pytest.raises(ValueError, match="3 predicted labels for 2"):
        many_to_one(["x", "y", "z"], ["a", "b"])
