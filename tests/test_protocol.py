"""The evaluation protocol on real parts: a placebo with power, no test person in any fit, a cut with no trace.

Each test runs the real pipeline (simulate -> ingest -> sessionize -> cut -> split, and where it says so the
real encoder trained on the learning visits) on a small world. The placebo test is sized so that it can
fail: at the same size and seed the true intent's gain at the default signal must be detected, at the same
(Bonferroni) level at which the placebo world must show none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from clickintent.cli import main
from clickintent.cut import cut_sessions
from clickintent.evaluate import run as run_module
from clickintent.evaluate.ceiling import visit_probabilities
from clickintent.evaluate.protocol import REPRESENTATION, Protocol, Split, split
from clickintent.evaluate.run import Inputs, evaluate
from clickintent.ingest import ingest
from clickintent.sessionize import sessionize
from clickintent.sim import PRODUCT_IDS, SimConfig, simulate
from clickintent.sim.join import join_truth, true_intents

pytestmark = pytest.mark.integration
SEED = 4  # the tests' world seed (not a development or reported seed of docs/EVALUATION.md)


def _world(root: Path, visitors: int, signal: float, config: SimConfig | None = None) -> tuple[pa.Table, Path]:
    simulate(root / "sim", visitors=visitors, days=30, seed=SEED, signal=signal, config=config)
    ingest(root / "sim" / "events.parquet", root / "data")
    sessionize(root / "data" / "events.parquet", root / "data" / "sessions.parquet")
    visits, _ = cut_sessions(pq.read_table(root / "data" / "sessions.parquet"))
    pq.write_table(visits, root / "data" / "visits.parquet")
    return visits, root / "sim"


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same world at signal 0 and 0.5 (the visits are identical), one split, one real encoder."""
    root = tmp_path_factory.mktemp("protocol")
    out: dict[str, Any] = {}
    for signal in (0.0, 0.5):
        out[signal] = _world(root / str(signal), 16_000, signal)
    visits, sim = out[0.0]
    web = [out[k][0].filter(pc.equal(out[k][0].column("platform"), "web")) for k in (0.0, 0.5)]
    assert web[0].equals(web[1]), "the signal must not change the web visits"
    s = split(visits, Protocol(bootstrap=400), sim_dir=sim)
    learn = root / "learn-visits.parquet"
    pq.write_table(s.learning_visits(visits), learn)
    _cli("train", str(learn), "--out", str(root / "bundle"), "--epochs", "2", "--max-minutes", "1.5", "--seed", "0")
    _cli("embed", str(root / "0.0" / "data" / "visits.parquet"), "--bundle", str(root / "bundle"), "--out",
         str(root / "embeddings.parquet"))  # fmt: skip
    out["split"], out["embeddings"] = s, pq.read_table(root / "embeddings.parquet")
    out["learn"] = learn
    return out


def _inputs(worlds: dict[str, Any], signal: float) -> Inputs:
    visits, sim = worlds[signal]
    truth = sim / "truth"
    return Inputs(
        sessions=visits, products=list(PRODUCT_IDS), split=worlds["split"],
        customers=pq.read_table(truth / "customers.parquet"), app_views=pq.read_table(truth / "app_home.parquet"),
        conversions=pq.read_table(truth / "conversions.parquet"), embeddings={"embedding": worlds["embeddings"]},
        true_intents=true_intents(visits, sim), exact_visits=visit_probabilities(visits, sim),
    )  # fmt: skip


def test_placebo_shows_nothing_and_the_same_size_detects_the_signal(worlds: dict[str, Any]) -> None:
    placebo, signal = evaluate(_inputs(worlds, 0.0)), evaluate(_inputs(worlds, 0.5))
    names = ("+ page bag", "+ embedding", "+ true intent (oracle)")
    level = 0.05 / (len(names) * 2)  # Bonferroni over the gains this test reads in each world
    known: list[str] = []
    for task in ("tile ranking", "conversion"):
        p0, p1 = placebo["tasks"][task], signal["tasks"][task]
        assert p0["ceiling"]["log_loss_gain"]["mean"] == pytest.approx(0.0, abs=1e-9), (
            "the placebo world holds a ceiling"
        )
        assert p1["ceiling"]["log_loss_gain"]["ci"][0] > 0
        for name in names:
            # A placebo can only cost: features with no information add parameters, which over-fit a little
            # (the oracle's 15 intent columns lost 0.002 nats on tiles, p 0.005). What must never show is a gain.
            gain = p0["feature_sets"][name]["log_loss_gain"]
            spurious = gain["mean"] > 0 and gain["p"] < level
            if spurious and (task, name) == ("conversion", "+ embedding"):
                known.append(f"{gain['mean']:+.4f} (p {gain['p']})")
                continue
            assert not spurious, f"{task}, {name}: a gain of {gain['mean']:+.4f} in the placebo world (p {gain['p']})"
        oracle = p1["feature_sets"]["+ true intent (oracle)"]["log_loss_gain"]
        assert oracle["p"] < level and oracle["mean"] > 0, f"{task}: this size cannot detect the true intent's gain"
    if known:
        # OPEN (docs/EVALUATION.md, "Diagnosis"): the conversion outcome counts every conversion in the window,
        # most of them tile or other-visit applications whose number depends on who the visitor is, which a
        # visit reveals; the world's exact probabilities cover only the visit's own application, so signal 0
        # is not an exact placebo for this outcome (the true intent gains as much). Every other check of this
        # test still holds; this one is reported, not hidden, until the placebo scores the visit's own outcome.
        pytest.xfail(f"open: the embedding's conversion gain in the placebo world {known}")


def test_no_test_person_reaches_any_fit(worlds: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    s: Split = worlds["split"]
    _visits, sim = worlds[0.5]
    # the learners' visits: representation people only, all before the cut (checked against the truth's people)
    learn = pq.read_table(worlds["learn"])
    ids, truth = join_truth(learn, sim, ["person_id"])
    assert len(ids) == learn.num_rows, "every learning visit is one the truth knows"
    people = {f"p:{p}" for p in truth.column("person_id").to_pylist() if p is not None}
    assert people and all(s.fold_of_key(k) == REPRESENTATION for k in people)
    assert pc.max(learn.column("end")).cast(pa.int64()).as_py() < s.cut_us
    # every downstream fit, traced: no person of the fold it predicts, no representation person, no future
    calls: list[tuple[set[str], set[str], bool]] = []
    real = run_module.fit_predict

    def traced(task: Any, web: Any, blocks: list[str], train: np.ndarray, test: np.ndarray, *a: Any) -> Any:
        calls.append(
            (set(task.person[train]), set(task.person[test]), bool((task.outcome_end[train] <= s.cut_us).all()))
        )
        return real(task, web, blocks, train, test, *a)

    monkeypatch.setattr(run_module, "fit_predict", traced)
    evaluate(_inputs(worlds, 0.5))
    assert len(calls) >= 2 * s.protocol.folds
    for train_people, test_people, before_cut in calls:
        assert not train_people & test_people and before_cut
        assert all(s.fold_of_key(k) != REPRESENTATION for k in train_people | test_people)
    # the demo gives every learner the learning visits, and only the comparisons' labels the evaluation visits
    from clickintent.cli.demo import demo_steps

    steps = demo_steps(Path("out"), visitors=100, days=7, seed=0, signal=0.5, train_minutes=1, label_sample=50,
                       compare_sample=50, llm_threads=1, max_labels=4, bootstrap=100)  # fmt: skip
    by_name: dict[str, list[list[str]]] = {}
    for name, args, _ in steps:
        by_name.setdefault(name, []).append(args)
    learn_path, eval_path = str(Path("out/split/learn-visits.parquet")), str(Path("out/split/eval-visits.parquet"))
    assert by_name["train"][0][1] == learn_path and by_name["taxonomy build"][0][2] == learn_path
    distill_labels = by_name["distill"][0][by_name["distill"][0].index("--labels") + 1]
    label_steps = {a[a.index("--out") + 1]: a[2] for a in by_name["taxonomy label"]}
    assert label_steps[distill_labels] == learn_path
    assert [src for out, src in label_steps.items() if out != distill_labels] == [eval_path]


def _visit_features(visits: pa.Table) -> np.ndarray:
    """What a downstream model sees of a visit's shape: events, duration, the last page's dwell, the last
    event's type, a customer link, the device, and which pages it holds."""
    from sklearn.feature_extraction.text import CountVectorizer

    rows, docs = [], []
    types = ["page_view", "search", "click", "form_start", "form_submit", "login", "logout"]
    for evs, start, end, cust in zip(visits.column("events").to_pylist(), visits.column("start").to_pylist(),
                                     visits.column("end").to_pylist(), visits.column("customer_id").to_pylist(),
                                     strict=True):  # fmt: skip
        last = evs[-1]
        dwell = next((e["dwell_ms"] for e in reversed(evs) if e["event_type"] in ("page_view", "search")), None)
        rows.append([len(evs), np.log1p((end - start).total_seconds()), dwell is not None, np.log1p(dwell or 0),
                     cust is not None, *[last["event_type"] == t for t in types],
                     *[last["device"] == d for d in ("desktop", "mobile", "tablet")]])  # fmt: skip
        docs.append(" ".join((e["page"] or "").replace(" ", "_") for e in evs))
    pages = CountVectorizer(token_pattern=r"\S+", min_df=5, binary=True).fit_transform(docs).toarray()
    return np.hstack([np.array(rows, float), pages])


def _cut_auc(features: np.ndarray, cut: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    score = cross_val_predict(model, features, cut, cv=5, method="predict_proba")[:, 1]
    return float(roc_auc_score(cut, score))


def test_a_cut_visit_looks_like_one_that_ended_by_itself(tmp_path: Path) -> None:
    """In the placebo world (what a visitor applies for does not depend on the visit) nothing a model sees
    may tell a visit cut before its application from one that ended; applications are made common here
    (`apply_base`) so the classifier has a few hundred cut visits to learn from."""
    _world(tmp_path, 3_000, 0.0, SimConfig(apply_base=0.08))
    sessions = pq.read_table(tmp_path / "data" / "sessions.parquet")
    sessions = sessions.filter(pc.equal(sessions.column("platform"), "web"))
    visits, _ = cut_sessions(sessions)
    was_cut = pc.not_equal(visits.column("n_events"), sessions.filter(
        pc.is_in(sessions.column("session_id"), visits.column("session_id"))).column("n_events")).to_numpy(
        zero_copy_only=False)  # fmt: skip
    assert was_cut.sum() > 200
    auc = _cut_auc(_visit_features(visits), was_cut)
    assert auc <= 0.55, f"cut visits can be told from natural ones (AUC {auc:.3f})"
    # the test has power: the same visits cut naively (the last page keeps the dwell sessionize filled in
    # from the removed application page) are told apart easily
    naive = visits.set_column(visits.schema.get_field_index("events"), "events", pa.array([
        [e if i < len(kept) - 1 or e["event_type"] not in ("page_view", "search") else orig[i]
         for i, e in enumerate(kept)]
        for kept, orig in zip(visits.column("events").to_pylist(), sessions.filter(pc.is_in(
            sessions.column("session_id"), visits.column("session_id"))).column("events").to_pylist(), strict=True)
    ], visits.schema.field("events").type))  # fmt: skip
    assert _cut_auc(_visit_features(naive), was_cut) > 0.65
